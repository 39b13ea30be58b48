
/*
 * libFuzzer target for the durable writer's parser of the upstream's
 * HTTP/1.1 answer (src/sink/writer/ngx_http_engagement_writer_http.c).
 * Each input is an answer as the upstream would send it, fed whole, in
 * pieces of 1..8 bytes, in pieces whose sizes the input's own bytes give,
 * and cut in two at every position (past 64 bytes, at 16 positions the
 * input gives), then closed if the parser still wants more (the
 * upstream's close). Every way must end the same (the
 * same outcome, status, framing, body and kept bytes); the parser's figures
 * must stay inside what it was given; the body of an answer that is not
 * chunked must be the input's bytes after the head. Besides, the first
 * bytes make a Content-Length and a chunk size: one that does not fit must
 * be an error, one that fits must not.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "sink/writer/ngx_http_engagement_writer_http.h"

#include <stdlib.h>
#include <string.h>


/* what each input costs: the head is searched again after every piece */
#define PIECES_MAX   8
#define CUTS_EVERY   64      /* up to this size, a cut at every position */
#define CUTS_TAKEN   16


/* how a run ended: the parser's figures, and what it returned */
typedef struct {
    ngx_int_t                            rc;
    ngx_http_engagement_writer_answer_t  a;
} outcome_t;


typedef enum {
    FEED_WHOLE = 0,
    FEED_FIXED,          /* pieces of k bytes */
    FEED_TAKEN,          /* pieces sized by the input's bytes */
    FEED_CUT             /* two pieces, cut at k */
} feed_e;


static ngx_http_engagement_writer_answer_t  *answer;


static size_t
piece_len(feed_e how, size_t k, const uint8_t *data, size_t size, size_t off,
    ngx_uint_t i)
{
    switch (how) {
    case FEED_WHOLE:
        return size - off;
    case FEED_FIXED:
        return k;
    case FEED_TAKEN:
        return data[i % size] % 64 + 1;
    default:
        return off < k ? k - off : size - off;
    }
}


/* the parser's figures after a call, n bytes given in all */

static void
check_figures(const uint8_t *data, size_t fed, ngx_int_t rc)
{
    ngx_http_engagement_writer_answer_t  *a = answer;

    if (rc != NGX_AGAIN && rc != NGX_OK && rc != NGX_ERROR) {
        abort();
    }

    if (a->head_n > sizeof(a->head) || a->head_n > fed
        || memcmp(a->head, data, a->head_n) != 0
        || a->ans_n > sizeof(a->ans) || a->end > (off_t) fed
        || a->body > a->end || a->rest < 0)
    {
        abort();
    }

    if (a->framing != NGX_HTTP_ENGAGEMENT_W_HEAD) {
        if (a->status < 100 || a->status > 599
            || a->body_start < a->head + 4
            || a->body_start + a->body_n != a->head + a->head_n
            || memcmp(a->body_start - 4, "\r\n\r\n", 4) != 0)
        {
            abort();
        }
    }

    if (rc == NGX_ERROR && a->error == NULL) {
        abort();
    }

    if (rc == NGX_OK && a->extra != (a->end < (off_t) fed)) {
        abort();
    }
}


static void
run(const uint8_t *data, size_t size, feed_e how, size_t k, outcome_t *o)
{
    u_char      *piece;
    size_t       off, n;
    ngx_int_t    rc;
    ngx_uint_t   i;

    ngx_http_engagement_writer_http_init(answer);

    rc = NGX_AGAIN;

    for (off = 0, i = 0; off < size && rc == NGX_AGAIN; off += n, i++) {
        n = ngx_min(piece_len(how, k, data, size, off, i), size - off);

        /* an exact-size copy, so reading past a piece is caught */
        piece = malloc(n);
        if (piece == NULL) {
            abort();
        }

        memcpy(piece, data + off, n);
        rc = ngx_http_engagement_writer_http_parse(answer, piece, n);
        free(piece);

        check_figures(data, off + n, rc);
    }

    if (rc == NGX_AGAIN) {
        rc = ngx_http_engagement_writer_http_eof(answer);
        check_figures(data, size, rc);

        if (rc == NGX_OK && answer->end != (off_t) size) {
            abort();
        }
    }

    o->rc = rc;
    o->a = *answer;
}


/* the same end, however the input came (extra and the head's copy aside) */

static void
same(outcome_t *x, outcome_t *y)
{
    ngx_http_engagement_writer_answer_t  *a = &x->a, *b = &y->a;

    if (x->rc != y->rc || a->status != b->status || a->close != b->close
        || a->framing != b->framing || a->end != b->end || a->body != b->body
        || a->ans_n != b->ans_n || memcmp(a->ans, b->ans, a->ans_n) != 0
        || (a->error == NULL) != (b->error == NULL)
        || (a->error && strcmp(a->error, b->error) != 0))
    {
        abort();
    }
}


/* a body that is not chunked is the input's bytes right after the head */

static void
check_body(const uint8_t *data, outcome_t *o)
{
    const u_char  *end;

    if (o->rc != NGX_OK || o->a.framing == NGX_HTTP_ENGAGEMENT_W_CHUNKED) {
        return;
    }

    end = memmem(answer->head, answer->head_n, "\r\n\r\n", 4);
    if (end == NULL) {
        abort();
    }

    end += 4;

    if ((off_t) (end - answer->head) + o->a.body != o->a.end
        || o->a.ans_n != (size_t) ngx_min(o->a.body, (off_t) sizeof(o->a.ans))
        || memcmp(o->a.ans, data + (end - answer->head), o->a.ans_n) != 0)
    {
        abort();
    }
}


/*
 * "HTTP/1.1 200 OK" with a Content-Length, or a chunked body's first size,
 * made of the input's first bytes as digits: too large must be an error.
 */

static void
check_sizes(const uint8_t *data, size_t size)
{
    u_char      buf[256], *p, *digits;
    size_t      i, n, lead;
    ngx_int_t   rc;
    ngx_uint_t  chunked, big, fits;

    for (chunked = 0; chunked < 2; chunked++) {
        p = ngx_cpymem(buf, "HTTP/1.1 200 OK\r\n", 17);
        p = chunked ? ngx_cpymem(p, "Transfer-Encoding: chunked\r\n\r\n", 30)
                    : ngx_cpymem(p, "Content-Length: ", 16);
        digits = p;

        n = ngx_min(size, 40);

        for (i = 0; i < n; i++) {
            *p++ = chunked ? "0123456789abcdef"[data[i] % 16]
                           : (u_char) ('0' + data[i] % 10);
        }

        if (n == 0) {
            *p++ = '0';
            n = 1;
        }

        for (lead = 0; lead < n && digits[lead] == '0'; lead++) {
            /* void */
        }

        if (chunked) {
            /* the parser takes sizes up to 2^44 + 15 */
            big = (n - lead > 12);
            fits = (n - lead <= 10);
            p = ngx_cpymem(p, "\r\n", 2);

        } else {
            big = (n - lead > 19
                   || (n - lead == 19
                       && memcmp(digits + lead, "9223372036854775807", 19)
                          > 0));
            fits = !big;
            p = ngx_cpymem(p, "\r\n\r\n", 4);
        }

        ngx_http_engagement_writer_http_init(answer);
        rc = ngx_http_engagement_writer_http_parse(answer, buf, p - buf);

        if ((big && rc != NGX_ERROR) || (fits && rc == NGX_ERROR)) {
            abort();
        }

        if (chunked && rc != NGX_ERROR && answer->rest > (off_t) 1 << 45) {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t     k;
    outcome_t  whole, other;

    if (answer == NULL) {
        /* the head buffer is last: a read past it leaves the allocation */
        answer = malloc(sizeof(ngx_http_engagement_writer_answer_t));
        if (answer == NULL) {
            abort();
        }
    }

    check_sizes(data, size);

    if (size == 0) {
        return 0;
    }

    run(data, size, FEED_WHOLE, 0, &whole);
    check_body(data, &whole);

    for (k = 1; k <= PIECES_MAX && k < size; k++) {
        run(data, size, FEED_FIXED, k, &other);
        same(&whole, &other);
    }

    run(data, size, FEED_TAKEN, 0, &other);
    same(&whole, &other);

    if (size <= CUTS_EVERY) {
        for (k = 1; k < size; k++) {
            run(data, size, FEED_CUT, k, &other);
            same(&whole, &other);
        }

    } else {
        for (k = 0; k < CUTS_TAKEN; k++) {
            run(data, size, FEED_CUT,
                1 + (data[k] * 256 + data[k + 1]) % (size - 1), &other);
            same(&whole, &other);
        }
    }

    return 0;
}
