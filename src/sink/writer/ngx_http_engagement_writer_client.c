
/*
 * The durable writer's HTTP/1.1 client: one request (w->req) on the
 * worker's own connection to the upstream, opened with a connect timeout
 * or taken from where it was parked after the last answer. The answer's
 * head is parsed for its status and framing (Content-Length, chunked, or
 * up to the close); the first bytes of its body are kept (a check's
 * answer). Whatever the end, writer_done() (writer.c) is told.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


/* what is read at once once the head is in */
#define NGX_HTTP_ENGAGEMENT_WRITER_RECV     8192
/* a chunk size past this is not believed */
#define NGX_HTTP_ENGAGEMENT_WRITER_CHUNK_MAX  ((off_t) 1 << 40)
/* the pool of a connection to the upstream */
#define NGX_HTTP_ENGAGEMENT_WRITER_POOL     512


/* how the answer's body ends */
enum {
    NGX_HTTP_ENGAGEMENT_W_HEAD = 0,
    NGX_HTTP_ENGAGEMENT_W_LENGTH,
    NGX_HTTP_ENGAGEMENT_W_CHUNKED,
    NGX_HTTP_ENGAGEMENT_W_CLOSE
};

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

/* the answer's headers the client reads */
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


static void ngx_http_engagement_writer_handler(ngx_event_t *ev);
static void ngx_http_engagement_writer_write(ngx_http_engagement_writer_t *w,
    ngx_connection_t *c);
static void ngx_http_engagement_writer_read(ngx_http_engagement_writer_t *w,
    ngx_connection_t *c);
static ngx_int_t ngx_http_engagement_writer_received(
    ngx_http_engagement_writer_t *w, u_char *p, size_t n);
static void ngx_http_engagement_writer_idle(ngx_event_t *rev);
static void ngx_http_engagement_writer_dummy(ngx_event_t *ev);
static ngx_int_t ngx_http_engagement_writer_parse_head(
    ngx_http_engagement_writer_t *w);
static ngx_int_t ngx_http_engagement_writer_header(
    ngx_http_engagement_writer_t *w, u_char *p, u_char *eol, off_t *length,
    ngx_uint_t *chunked);
static ngx_int_t ngx_http_engagement_writer_body(
    ngx_http_engagement_writer_t *w, u_char *p, size_t n);
static ngx_int_t ngx_http_engagement_writer_chunked(
    ngx_http_engagement_writer_t *w, u_char *p, u_char *end);
static ngx_int_t ngx_http_engagement_writer_chunk_size(
    ngx_http_engagement_writer_t *w, u_char ch);
static ngx_int_t ngx_http_engagement_writer_chunk_end(
    ngx_http_engagement_writer_t *w, u_char ch);


void
ngx_http_engagement_writer_connect(ngx_http_engagement_writer_t *w)
{
    ngx_int_t                           rc;
    ngx_connection_t                   *c;
    ngx_peer_connection_t               pc;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    w->state = NGX_HTTP_ENGAGEMENT_W_HEAD;
    w->head_n = 0;
    w->status = 0;
    w->close = 0;
    w->sent = 0;
    w->ans_n = 0;

    if (w->c) {
        /* a parked keep-alive connection */
        c = w->c;
        c->idle = 0;
        w->reused = 1;
        c->read->handler = ngx_http_engagement_writer_handler;
        c->write->handler = ngx_http_engagement_writer_handler;
        ngx_add_timer(c->write, wcf->timeout);
        ngx_http_engagement_writer_write(w, c);
        return;
    }

    w->reused = 0;
    (void) ngx_atomic_fetch_add(&wcf->sh->connects, 1);

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));
    pc.sockaddr = wcf->addr.sockaddr;
    pc.socklen = wcf->addr.socklen;
    pc.name = &wcf->addr.name;
    pc.get = ngx_event_get_peer;
    pc.log = ngx_cycle->log;
    pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }
        ngx_http_engagement_writer_done(w, 0, "connect failed");
        return;
    }

    c = pc.connection;
    w->c = c;

    w->pool = ngx_create_pool(NGX_HTTP_ENGAGEMENT_WRITER_POOL,
                              ngx_cycle->log);
    if (w->pool == NULL) {
        ngx_http_engagement_writer_done(w, 0, "out of memory");
        return;
    }

    c->pool = w->pool;
    c->data = w;
    c->log = ngx_cycle->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_engagement_writer_handler;
    c->write->handler = ngx_http_engagement_writer_handler;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, wcf->connect_timeout);
        return;
    }

    ngx_add_timer(c->write, wcf->timeout);
    ngx_http_engagement_writer_write(w, c);
}


/* both events of the connection while a request is on it */

static void
ngx_http_engagement_writer_handler(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_http_engagement_writer_t  *w;

    c = ev->data;
    w = c->data;

    if (ev->timedout) {
        ngx_http_engagement_writer_done(w, 0,
                                        !ev->write ? "the upstream timed out"
                                        : w->sent ? "send timed out"
                                        : "connect timed out");
        return;
    }

    if (ev->write) {
        ngx_http_engagement_writer_write(w, c);

    } else {
        ngx_http_engagement_writer_read(w, c);
    }
}


/* the request, sent from where it stopped; then the answer is waited for */

static void
ngx_http_engagement_writer_write(ngx_http_engagement_writer_t *w,
    ngx_connection_t *c)
{
    ssize_t       n;
    ngx_event_t  *wev;

    wev = c->write;

    while (w->sent < w->req_len) {
        n = c->send(c, w->req + w->head_len + w->sent, w->req_len - w->sent);

        if (n == NGX_AGAIN) {
            if (!wev->timer_set) {
                ngx_add_timer(wev, w->wcf->timeout);
            }

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_engagement_writer_done(w, 0, "event error");
            }

            return;
        }

        if (n <= 0) {
            ngx_http_engagement_writer_done(w, 0, "send failed");
            return;
        }

        w->sent += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    wev->handler = ngx_http_engagement_writer_dummy;

    if (!c->read->timer_set) {
        ngx_add_timer(c->read, w->wcf->timeout);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_engagement_writer_done(w, 0, "event error");
        return;
    }

    if (c->read->ready) {
        ngx_http_engagement_writer_read(w, c);
    }
}


static void
ngx_http_engagement_writer_dummy(ngx_event_t *ev)
{
}


/* what the upstream answers, read until it is complete or the socket empty */

static void
ngx_http_engagement_writer_read(ngx_http_engagement_writer_t *w,
    ngx_connection_t *c)
{
    u_char   buf[NGX_HTTP_ENGAGEMENT_WRITER_RECV], *p;
    size_t   size;
    ssize_t  n;

    if (w->sent < w->req_len) {
        /* an early answer or a close while sending: read it below */
        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }
    }

    do {
        if (w->state == NGX_HTTP_ENGAGEMENT_W_HEAD) {
            p = w->head + w->head_n;
            size = sizeof(w->head) - w->head_n;

            if (size == 0) {
                ngx_http_engagement_writer_done(w, 0,
                                                "response head too long");
                return;
            }

        } else {
            p = buf;
            size = sizeof(buf);
        }

        n = c->recv(c, p, size);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_engagement_writer_done(w, 0, "event error");
            }
            return;
        }

        if (n == 0 && w->state == NGX_HTTP_ENGAGEMENT_W_CLOSE) {
            /* the body ends with the connection */
            w->close = 1;
            ngx_http_engagement_writer_done(w, 1, NULL);
            return;
        }

        if (n == 0) {
            ngx_http_engagement_writer_done(w, 0,
                                       "the upstream closed the connection "
                                       "before a complete response");
            return;
        }

        if (n < 0) {
            ngx_http_engagement_writer_done(w, 0, "recv failed");
            return;
        }

    } while (ngx_http_engagement_writer_received(w, p, n) == NGX_AGAIN);
}


/*
 * n bytes read at p: NGX_AGAIN, more is needed; NGX_DONE, the answer is
 * complete or bad, and writer_done() has it.
 */

static ngx_int_t
ngx_http_engagement_writer_received(ngx_http_engagement_writer_t *w,
    u_char *p, size_t n)
{
    ngx_int_t  rc;

    if (w->state == NGX_HTTP_ENGAGEMENT_W_HEAD) {
        w->head_n += n;

        rc = ngx_http_engagement_writer_parse_head(w);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            ngx_http_engagement_writer_done(w, 0, "bad response head");
            return NGX_DONE;
        }

        p = w->body_start;
        n = w->body_n;
    }

    rc = ngx_http_engagement_writer_body(w, p, n);

    if (rc == NGX_ERROR) {
        ngx_http_engagement_writer_done(w, 0, "bad response body");
        return NGX_DONE;
    }

    if (rc == NGX_OK) {
        ngx_http_engagement_writer_done(w, 1, NULL);
        return NGX_DONE;
    }

    return NGX_AGAIN;
}


/* which of the headers the client reads the line at p is */

static ngx_http_engagement_writer_header_e
ngx_http_engagement_writer_header_name(u_char *p, u_char *end)
{
    size_t      n;
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_H_OTHER; i++) {
        n = ngx_http_engagement_writer_headers[i].len;

        if ((size_t) (end - p) > n && p[n] == ':'
            && ngx_strncasecmp(p, ngx_http_engagement_writer_headers[i].data,
                               n) == 0)
        {
            return i;
        }
    }

    return NGX_HTTP_ENGAGEMENT_H_OTHER;
}


static ngx_uint_t
ngx_http_engagement_writer_has(u_char *p, u_char *end, const char *word)
{
    size_t  n;

    n = ngx_strlen(word);

    for ( /* void */ ; (size_t) (end - p) >= n; p++) {
        if (ngx_strncasecmp(p, (u_char *) word, n) == 0) {
            return 1;
        }
    }

    return 0;
}


/* NGX_OK: the head is complete and parsed, NGX_AGAIN: more is needed */

static ngx_int_t
ngx_http_engagement_writer_parse_head(ngx_http_engagement_writer_t *w)
{
    u_char      *p, *end, *eol;
    ngx_int_t    n;
    ngx_uint_t   chunked;
    off_t        length;

    end = ngx_strnstr(w->head, "\r\n\r\n", w->head_n);

    if (end == NULL) {
        /* ngx_strnstr stops at a zero byte: look no further than that */
        return w->head_n < sizeof(w->head) ? NGX_AGAIN : NGX_ERROR;
    }

    w->body_start = end + 4;
    w->body_n = w->head + w->head_n - w->body_start;

    p = w->head;

    if (end - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return NGX_ERROR;
    }

    /* HTTP/1.0 closes unless it says otherwise */
    w->close = (p[7] == '0');

    n = ngx_atoi(p + 9, 3);
    if (n < 100 || n > 599) {
        return NGX_ERROR;
    }

    w->status = n;
    chunked = 0;
    length = -1;

    p = ngx_strnstr(p, "\r\n", end - p + 2);

    while (p && p < end) {
        p += 2;
        eol = ngx_strnstr(p, "\r\n", end - p + 2);
        if (eol == NULL) {
            break;
        }

        if (ngx_http_engagement_writer_header(w, p, eol, &length, &chunked)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        p = eol;
    }

    if (w->status == 204 || w->status == 304) {
        w->state = NGX_HTTP_ENGAGEMENT_W_LENGTH;
        w->rest = 0;

    } else if (chunked) {
        w->state = NGX_HTTP_ENGAGEMENT_W_CHUNKED;
        w->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE;
        w->rest = 0;

    } else if (length >= 0) {
        w->state = NGX_HTTP_ENGAGEMENT_W_LENGTH;
        w->rest = length;

    } else {
        w->state = NGX_HTTP_ENGAGEMENT_W_CLOSE;
        w->close = 1;
    }

    return NGX_OK;
}


/* one header line, p to eol: the framing and the connection's reuse */

static ngx_int_t
ngx_http_engagement_writer_header(ngx_http_engagement_writer_t *w,
    u_char *p, u_char *eol, off_t *length, ngx_uint_t *chunked)
{
    u_char  *v;

    switch (ngx_http_engagement_writer_header_name(p, eol)) {

    case NGX_HTTP_ENGAGEMENT_H_LENGTH:
        v = p + sizeof("Content-Length:") - 1;
        while (v < eol && *v == ' ') {
            v++;
        }

        *length = ngx_atoof(v, eol - v);
        if (*length == NGX_ERROR) {
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_ENGAGEMENT_H_ENCODING:
        *chunked = ngx_http_engagement_writer_has(p, eol, "chunked");
        break;

    case NGX_HTTP_ENGAGEMENT_H_CONNECTION:
        if (ngx_http_engagement_writer_has(p, eol, "close")) {
            w->close = 1;
        }

        if (ngx_http_engagement_writer_has(p, eol, "keep-alive")) {
            w->close = 0;
        }

        break;

    default:
        break;
    }

    return NGX_OK;
}


/* the first bytes of an answer's body: what a check answers */

static void
ngx_http_engagement_writer_keep(ngx_http_engagement_writer_t *w, u_char *p,
    size_t n)
{
    n = ngx_min(n, sizeof(w->ans) - w->ans_n);
    w->ans_n = ngx_cpymem(w->ans + w->ans_n, p, n) - w->ans;
}


/* NGX_OK: the body is complete, NGX_AGAIN: more is needed */

static ngx_int_t
ngx_http_engagement_writer_body(ngx_http_engagement_writer_t *w, u_char *p,
    size_t n)
{
    switch (w->state) {

    case NGX_HTTP_ENGAGEMENT_W_LENGTH:
        ngx_http_engagement_writer_keep(w, p, ngx_min((off_t) n, w->rest));
        if ((off_t) n > w->rest) {
            /* more than the upstream announced: do not reuse the link */
            w->close = 1;
            w->rest = 0;

        } else {
            w->rest -= n;
        }

        return w->rest == 0 ? NGX_OK : NGX_AGAIN;

    case NGX_HTTP_ENGAGEMENT_W_CLOSE:
        ngx_http_engagement_writer_keep(w, p, n);
        return NGX_AGAIN;

    default:
        return ngx_http_engagement_writer_chunked(w, p, p + n);
    }
}


static ngx_int_t
ngx_http_engagement_writer_chunked(ngx_http_engagement_writer_t *w,
    u_char *p, u_char *end)
{
    size_t  take;

    while (p < end) {

        if (w->cstate == NGX_HTTP_ENGAGEMENT_C_DONE) {
            /* bytes after the last chunk: do not reuse the link */
            w->close = 1;
            return NGX_OK;
        }

        if (w->cstate == NGX_HTTP_ENGAGEMENT_C_DATA) {
            take = ngx_min((off_t) (end - p), w->rest);
            ngx_http_engagement_writer_keep(w, p, take);
            w->rest -= take;
            p += take;

            if (w->rest == 0) {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_DATA_CR;
            }

            continue;
        }

        if (w->cstate <= NGX_HTTP_ENGAGEMENT_C_SIZE_LF) {
            if (ngx_http_engagement_writer_chunk_size(w, *p) != NGX_OK) {
                return NGX_ERROR;
            }

        } else if (ngx_http_engagement_writer_chunk_end(w, *p) != NGX_OK) {
            return NGX_ERROR;
        }

        p++;

        if (w->cstate == NGX_HTTP_ENGAGEMENT_C_DONE) {
            if (p < end) {
                w->close = 1;
            }
            return NGX_OK;
        }
    }

    return NGX_AGAIN;
}


/* a byte of a chunk's size line: hex digits, extensions, CRLF */

static ngx_int_t
ngx_http_engagement_writer_chunk_size(ngx_http_engagement_writer_t *w,
    u_char ch)
{
    ngx_int_t  d;

    switch (w->cstate) {

    case NGX_HTTP_ENGAGEMENT_C_SIZE:
        if (ch == ';' || ch == ' ' || ch == '\t') {
            w->cstate = NGX_HTTP_ENGAGEMENT_C_EXT;
            return NGX_OK;
        }

        if (ch == '\r') {
            w->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE_LF;
            return NGX_OK;
        }

        if (ch == '\n') {
            break;
        }

        d = ngx_hextoi(&ch, 1);
        if (d == NGX_ERROR || w->rest > NGX_HTTP_ENGAGEMENT_WRITER_CHUNK_MAX) {
            return NGX_ERROR;
        }

        w->rest = w->rest * 16 + d;
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
    w->cstate = w->rest ? NGX_HTTP_ENGAGEMENT_C_DATA
                        : NGX_HTTP_ENGAGEMENT_C_TRAILER;

    return NGX_OK;
}


/* a byte after a chunk's data: its CRLF, or the trailer of the last one */

static ngx_int_t
ngx_http_engagement_writer_chunk_end(ngx_http_engagement_writer_t *w,
    u_char ch)
{
    switch (w->cstate) {

    case NGX_HTTP_ENGAGEMENT_C_DATA_CR:
        if (ch == '\r') {
            w->cstate = NGX_HTTP_ENGAGEMENT_C_DATA_LF;
            return NGX_OK;
        }

        /* fall through */

    case NGX_HTTP_ENGAGEMENT_C_DATA_LF:
        if (ch != '\n') {
            return NGX_ERROR;
        }

        w->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE;
        return NGX_OK;

    case NGX_HTTP_ENGAGEMENT_C_TRAILER:
        if (ch == '\r') {
            w->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER_LF;

        } else if (ch == '\n') {
            w->cstate = NGX_HTTP_ENGAGEMENT_C_DONE;

        } else {
            w->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE;
        }

        return NGX_OK;

    case NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE:
        if (ch == '\n') {
            w->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER;
        }

        return NGX_OK;

    default: /* NGX_HTTP_ENGAGEMENT_C_TRAILER_LF */
        if (ch != '\n') {
            return NGX_ERROR;
        }

        w->cstate = NGX_HTTP_ENGAGEMENT_C_DONE;
        return NGX_OK;
    }
}


/* after a complete answer: the connection is parked, or closed */

void
ngx_http_engagement_writer_park(ngx_http_engagement_writer_t *w)
{
    ngx_connection_t  *c;

    c = w->c;

    if (w->close || c == NULL) {
        ngx_http_engagement_writer_close(w);
        return;
    }

    c->idle = 1;
    c->read->handler = ngx_http_engagement_writer_idle;
    c->write->handler = ngx_http_engagement_writer_dummy;
}


static void
ngx_http_engagement_writer_idle(ngx_event_t *rev)
{
    u_char                         buf[1];
    ngx_connection_t              *c;
    ngx_http_engagement_writer_t  *w;

    c = rev->data;
    w = c->data;

    if (!c->close && c->recv(c, buf, 1) == NGX_AGAIN) {
        if (ngx_handle_read_event(rev, 0) == NGX_OK) {
            return;
        }
    }

    /* closed by the upstream, unexpected bytes, or a shutdown */
    ngx_http_engagement_writer_close(w);
}


void
ngx_http_engagement_writer_close(ngx_http_engagement_writer_t *w)
{
    if (w->c) {
        ngx_close_connection(w->c);
        w->c = NULL;
    }

    if (w->pool) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
    }
}
