
/*
 * The parser of the upstream's HTTP/1.1 answer to the durable writer: the
 * status line, the headers that frame the body (Content-Length,
 * Transfer-Encoding: chunked, or up to the close) and say whether the
 * connection may be reused (the version, Connection), then the body, of
 * which the first bytes are kept (a check's answer). It is fed the bytes as
 * they arrive, in pieces of any size, and knows nothing of sockets, pools
 * or zones: writer_client.c reads, this file understands. It calls none
 * of nginx's functions, only its macros, so that fuzz/fuzz_http.c builds
 * it alone (nginx's objects are not at hand there).
 */


#include "sink/writer/ngx_http_engagement_writer_http.h"


/* a chunk size past this is not believed */
#define NGX_HTTP_ENGAGEMENT_WRITER_CHUNK_MAX  ((off_t) 1 << 40)


/* where in a chunked body */
enum {
    NGX_HTTP_ENGAGEMENT_C_SIZE = 0,
    NGX_HTTP_ENGAGEMENT_C_EXT,
    NGX_HTTP_ENGAGEMENT_C_SIZE_LF,
    NGX_HTTP_ENGAGEMENT_C_DATA,
    NGX_HTTP_ENGAGEMENT_C_DATA_CR,
    NGX_HTTP_ENGAGEMENT_C_DATA_LF,
    NGX_HTTP_ENGAGEMENT_C_TRAILER,
    NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE,
    NGX_HTTP_ENGAGEMENT_C_TRAILER_LF,
    NGX_HTTP_ENGAGEMENT_C_DONE
};

/* the answer's headers the parser reads */
typedef enum {
    NGX_HTTP_ENGAGEMENT_H_LENGTH = 0,
    NGX_HTTP_ENGAGEMENT_H_ENCODING,
    NGX_HTTP_ENGAGEMENT_H_CONNECTION,
    NGX_HTTP_ENGAGEMENT_H_OTHER
} ngx_http_engagement_writer_header_e;


static ngx_str_t  ngx_http_engagement_writer_headers[] = {
    ngx_string("Content-Length"),
    ngx_string("Transfer-Encoding"),
    ngx_string("Connection")
};


static u_char *ngx_http_engagement_writer_http_find(u_char *p, size_t n,
    const char *word);
static off_t ngx_http_engagement_writer_http_number(u_char *p, u_char *end);
static ngx_int_t ngx_http_engagement_writer_http_head(
    ngx_http_engagement_writer_answer_t *a);
static void ngx_http_engagement_writer_http_framing(
    ngx_http_engagement_writer_answer_t *a, ngx_uint_t chunked, off_t length);
static ngx_int_t ngx_http_engagement_writer_http_header(
    ngx_http_engagement_writer_answer_t *a, u_char *p, u_char *eol,
    off_t *length, ngx_uint_t *chunked);
static ngx_int_t ngx_http_engagement_writer_http_body(
    ngx_http_engagement_writer_answer_t *a, u_char *p, size_t n);
static ngx_int_t ngx_http_engagement_writer_http_chunked(
    ngx_http_engagement_writer_answer_t *a, u_char *p, u_char *end);
static ngx_int_t ngx_http_engagement_writer_http_chunk_size(
    ngx_http_engagement_writer_answer_t *a, u_char ch);
static ngx_int_t ngx_http_engagement_writer_http_chunk_end(
    ngx_http_engagement_writer_answer_t *a, u_char ch);


void
ngx_http_engagement_writer_http_init(ngx_http_engagement_writer_answer_t *a)
{
    /* all but the head buffer: no figure, NGX_HTTP_ENGAGEMENT_W_HEAD */
    ngx_memzero(a, offsetof(ngx_http_engagement_writer_answer_t, head));
}


/*
 * n more bytes of the answer at p. NGX_AGAIN: more is needed; NGX_OK: the
 * answer is complete (a->extra: bytes past its end were given); NGX_ERROR:
 * it is not one (a->error says why). After NGX_OK or NGX_ERROR the parser
 * is fed no more.
 */

ngx_int_t
ngx_http_engagement_writer_http_parse(ngx_http_engagement_writer_answer_t *a,
    u_char *p, size_t n)
{
    size_t     copy;
    ngx_int_t  rc;

    if (a->framing != NGX_HTTP_ENGAGEMENT_W_HEAD) {
        return ngx_http_engagement_writer_http_body(a, p, n);
    }

    copy = ngx_min(n, sizeof(a->head) - a->head_n);
    ngx_memcpy(a->head + a->head_n, p, copy);
    a->head_n += copy;

    rc = ngx_http_engagement_writer_http_head(a);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc == NGX_ERROR) {
        a->error = "bad response head";
        return NGX_ERROR;
    }

    a->end = a->body_start - a->head;

    /* the body's first bytes came with the head, and maybe more after */
    rc = ngx_http_engagement_writer_http_body(a, a->body_start, a->body_n);

    if (rc != NGX_AGAIN) {
        if (rc == NGX_OK && copy < n) {
            a->extra = 1;
        }

        return rc;
    }

    return ngx_http_engagement_writer_http_body(a, p + copy, n - copy);
}


/* the upstream closed the connection: the end of a body that ends so */

ngx_int_t
ngx_http_engagement_writer_http_eof(ngx_http_engagement_writer_answer_t *a)
{
    if (a->framing == NGX_HTTP_ENGAGEMENT_W_CLOSE) {
        a->close = 1;
        return NGX_OK;
    }

    a->error = "the upstream closed the connection before a complete "
               "response";

    return NGX_ERROR;
}


/*
 * Where word starts in the n bytes at p, or NULL. As with ngx_strnstr(),
 * which the client used before, nothing past a zero byte is looked at.
 */

static u_char *
ngx_http_engagement_writer_http_find(u_char *p, size_t n, const char *word)
{
    size_t   len;
    u_char  *end;

    len = ngx_strlen(word);

    end = memchr(p, '\0', n);
    if (end == NULL) {
        end = p + n;
    }

    for ( /* void */ ; (size_t) (end - p) >= len; p++) {
        if (ngx_memcmp(p, word, len) == 0) {
            return p;
        }
    }

    return NULL;
}


/* the decimal number p to end, NGX_ERROR: not one, or past off_t's range */

static off_t
ngx_http_engagement_writer_http_number(u_char *p, u_char *end)
{
    off_t  value, cutoff, cutlim;

    if (p == end) {
        return NGX_ERROR;
    }

    cutoff = NGX_MAX_OFF_T_VALUE / 10;
    cutlim = NGX_MAX_OFF_T_VALUE % 10;

    for (value = 0; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        if (value > cutoff || (value == cutoff && *p - '0' > cutlim)) {
            return NGX_ERROR;
        }

        value = value * 10 + (*p - '0');
    }

    return value;
}


static ngx_uint_t
ngx_http_engagement_writer_http_caseeq(u_char *p, u_char *word, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (ngx_tolower(p[i]) != ngx_tolower(word[i])) {
            return 0;
        }
    }

    return 1;
}


/* which of the headers the parser reads the line at p is */

static ngx_http_engagement_writer_header_e
ngx_http_engagement_writer_http_name(u_char *p, u_char *end)
{
    size_t      n;
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_H_OTHER; i++) {
        n = ngx_http_engagement_writer_headers[i].len;

        if ((size_t) (end - p) > n && p[n] == ':'
            && ngx_http_engagement_writer_http_caseeq(p,
                                   ngx_http_engagement_writer_headers[i].data,
                                   n))
        {
            return i;
        }
    }

    return NGX_HTTP_ENGAGEMENT_H_OTHER;
}


static ngx_uint_t
ngx_http_engagement_writer_http_has(u_char *p, u_char *end, const char *word)
{
    size_t  n;

    n = ngx_strlen(word);

    for ( /* void */ ; (size_t) (end - p) >= n; p++) {
        if (ngx_http_engagement_writer_http_caseeq(p, (u_char *) word, n)) {
            return 1;
        }
    }

    return 0;
}


/* NGX_OK: the head is complete and parsed, NGX_AGAIN: more is needed */

static ngx_int_t
ngx_http_engagement_writer_http_head(ngx_http_engagement_writer_answer_t *a)
{
    u_char      *p, *end, *eol;
    off_t        n, length;
    size_t       size;
    ngx_uint_t   chunked;

    if (a->scan > a->head_n) {
        /* a zero byte came before the head's end: it fills and fails */
        return a->head_n < sizeof(a->head) ? NGX_AGAIN : NGX_ERROR;
    }

    p = a->head + a->scan;
    size = a->head_n - a->scan;

    end = ngx_http_engagement_writer_http_find(p, size, "\r\n\r\n");

    if (end == NULL) {
        /* the next search starts where a match could still begin */
        a->scan = memchr(p, '\0', size) ? sizeof(a->head) + 1
                                        : ngx_max(a->head_n, 3) - 3;

        return a->head_n < sizeof(a->head) ? NGX_AGAIN : NGX_ERROR;
    }

    a->body_start = end + 4;
    a->body_n = a->head + a->head_n - a->body_start;

    p = a->head;

    if (end - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return NGX_ERROR;
    }

    /* HTTP/1.0 closes unless it says otherwise */
    a->close = (p[7] == '0');

    n = ngx_http_engagement_writer_http_number(p + 9, p + 12);
    if (n < 100 || n > 599) {
        return NGX_ERROR;
    }

    a->status = n;
    chunked = 0;
    length = -1;

    p = ngx_http_engagement_writer_http_find(p, end - p + 2, "\r\n");

    while (p && p < end) {
        p += 2;
        eol = ngx_http_engagement_writer_http_find(p, end - p + 2, "\r\n");
        if (eol == NULL) {
            break;
        }

        if (ngx_http_engagement_writer_http_header(a, p, eol, &length,
                                                   &chunked)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        p = eol;
    }

    ngx_http_engagement_writer_http_framing(a, chunked, length);

    return NGX_OK;
}


/* how the body ends: by its length, its last chunk or the close */

static void
ngx_http_engagement_writer_http_framing(
    ngx_http_engagement_writer_answer_t *a, ngx_uint_t chunked, off_t length)
{
    if (a->status == 204 || a->status == 304) {
        a->framing = NGX_HTTP_ENGAGEMENT_W_LENGTH;
        a->rest = 0;

    } else if (chunked) {
        a->framing = NGX_HTTP_ENGAGEMENT_W_CHUNKED;
        a->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE;
        a->rest = 0;

    } else if (length >= 0) {
        a->framing = NGX_HTTP_ENGAGEMENT_W_LENGTH;
        a->rest = length;

    } else {
        a->framing = NGX_HTTP_ENGAGEMENT_W_CLOSE;
        a->close = 1;
    }
}


/* one header line, p to eol: the framing and the connection's reuse */

static ngx_int_t
ngx_http_engagement_writer_http_header(ngx_http_engagement_writer_answer_t *a,
    u_char *p, u_char *eol, off_t *length, ngx_uint_t *chunked)
{
    u_char  *v;

    switch (ngx_http_engagement_writer_http_name(p, eol)) {

    case NGX_HTTP_ENGAGEMENT_H_LENGTH:
        v = p + sizeof("Content-Length:") - 1;
        while (v < eol && *v == ' ') {
            v++;
        }

        *length = ngx_http_engagement_writer_http_number(v, eol);
        if (*length == NGX_ERROR) {
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_ENGAGEMENT_H_ENCODING:
        *chunked = ngx_http_engagement_writer_http_has(p, eol, "chunked");
        break;

    case NGX_HTTP_ENGAGEMENT_H_CONNECTION:
        if (ngx_http_engagement_writer_http_has(p, eol, "close")) {
            a->close = 1;
        }

        if (ngx_http_engagement_writer_http_has(p, eol, "keep-alive")) {
            a->close = 0;
        }

        break;

    default:
        break;
    }

    return NGX_OK;
}


/* n bytes of the body: the first ones are kept (what a check answers) */

static void
ngx_http_engagement_writer_http_keep(ngx_http_engagement_writer_answer_t *a,
    u_char *p, size_t n)
{
    a->body += n;
    a->end += n;

    n = ngx_min(n, sizeof(a->ans) - a->ans_n);
    a->ans_n = ngx_cpymem(a->ans + a->ans_n, p, n) - a->ans;
}


/* NGX_OK: the body is complete, NGX_AGAIN: more is needed */

static ngx_int_t
ngx_http_engagement_writer_http_body(ngx_http_engagement_writer_answer_t *a,
    u_char *p, size_t n)
{
    switch (a->framing) {

    case NGX_HTTP_ENGAGEMENT_W_LENGTH:
        ngx_http_engagement_writer_http_keep(a, p,
                                             ngx_min((off_t) n, a->rest));
        if ((off_t) n > a->rest) {
            /* more than the upstream announced */
            a->extra = 1;
            a->rest = 0;

        } else {
            a->rest -= n;
        }

        return a->rest == 0 ? NGX_OK : NGX_AGAIN;

    case NGX_HTTP_ENGAGEMENT_W_CLOSE:
        ngx_http_engagement_writer_http_keep(a, p, n);
        return NGX_AGAIN;

    default:
        if (ngx_http_engagement_writer_http_chunked(a, p, p + n)
            == NGX_ERROR)
        {
            a->error = "bad response body";
            return NGX_ERROR;
        }

        return a->cstate == NGX_HTTP_ENGAGEMENT_C_DONE ? NGX_OK : NGX_AGAIN;
    }
}


static ngx_int_t
ngx_http_engagement_writer_http_chunked(
    ngx_http_engagement_writer_answer_t *a, u_char *p, u_char *end)
{
    size_t  take;

    while (p < end) {

        if (a->cstate == NGX_HTTP_ENGAGEMENT_C_DATA) {
            take = ngx_min((off_t) (end - p), a->rest);
            ngx_http_engagement_writer_http_keep(a, p, take);
            a->rest -= take;
            p += take;

            if (a->rest == 0) {
                a->cstate = NGX_HTTP_ENGAGEMENT_C_DATA_CR;
            }

            continue;
        }

        if (a->cstate <= NGX_HTTP_ENGAGEMENT_C_SIZE_LF) {
            if (ngx_http_engagement_writer_http_chunk_size(a, *p) != NGX_OK) {
                return NGX_ERROR;
            }

        } else if (ngx_http_engagement_writer_http_chunk_end(a, *p)
                   != NGX_OK)
        {
            return NGX_ERROR;
        }

        p++;
        a->end++;

        if (a->cstate == NGX_HTTP_ENGAGEMENT_C_DONE) {
            if (p < end) {
                /* bytes after the last chunk */
                a->extra = 1;
            }

            return NGX_OK;
        }
    }

    return NGX_OK;
}


/* a byte of a chunk's size line: hex digits, extensions, CRLF */

static ngx_int_t
ngx_http_engagement_writer_http_chunk_size(
    ngx_http_engagement_writer_answer_t *a, u_char ch)
{
    u_char     c;
    ngx_int_t  d;

    switch (a->cstate) {

    case NGX_HTTP_ENGAGEMENT_C_SIZE:
        if (ch == ';' || ch == ' ' || ch == '\t') {
            a->cstate = NGX_HTTP_ENGAGEMENT_C_EXT;
            return NGX_OK;
        }

        if (ch == '\r') {
            a->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE_LF;
            return NGX_OK;
        }

        if (ch == '\n') {
            break;
        }

        c = (u_char) (ch | 0x20);

        if (ch >= '0' && ch <= '9') {
            d = ch - '0';

        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;

        } else {
            return NGX_ERROR;
        }

        if (a->rest > NGX_HTTP_ENGAGEMENT_WRITER_CHUNK_MAX) {
            return NGX_ERROR;
        }

        a->rest = a->rest * 16 + d;
        return NGX_OK;

    case NGX_HTTP_ENGAGEMENT_C_EXT:
        if (ch != '\n') {
            return NGX_OK;
        }
        break;

    default: /* NGX_HTTP_ENGAGEMENT_C_SIZE_LF */
        if (ch != '\n') {
            return NGX_ERROR;
        }
        break;
    }

    /* the size line is complete: its data, or the last chunk's trailer */
    a->cstate = a->rest ? NGX_HTTP_ENGAGEMENT_C_DATA
                        : NGX_HTTP_ENGAGEMENT_C_TRAILER;

    return NGX_OK;
}


/* a byte after a chunk's data: its CRLF, or the trailer of the last one */

static ngx_int_t
ngx_http_engagement_writer_http_chunk_end(
    ngx_http_engagement_writer_answer_t *a, u_char ch)
{
    switch (a->cstate) {

    case NGX_HTTP_ENGAGEMENT_C_DATA_CR:
        if (ch == '\r') {
            a->cstate = NGX_HTTP_ENGAGEMENT_C_DATA_LF;
            return NGX_OK;
        }

        /* fall through */

    case NGX_HTTP_ENGAGEMENT_C_DATA_LF:
        if (ch != '\n') {
            return NGX_ERROR;
        }

        a->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE;
        return NGX_OK;

    case NGX_HTTP_ENGAGEMENT_C_TRAILER:
        if (ch == '\r') {
            a->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER_LF;

        } else if (ch == '\n') {
            a->cstate = NGX_HTTP_ENGAGEMENT_C_DONE;

        } else {
            a->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE;
        }

        return NGX_OK;

    case NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE:
        if (ch == '\n') {
            a->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER;
        }

        return NGX_OK;

    default: /* NGX_HTTP_ENGAGEMENT_C_TRAILER_LF */
        if (ch != '\n') {
            return NGX_ERROR;
        }

        a->cstate = NGX_HTTP_ENGAGEMENT_C_DONE;
        return NGX_OK;
    }
}
