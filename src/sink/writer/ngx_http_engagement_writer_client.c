
/*
 * The durable writer's HTTP/1.1 client: one request (w->req) on the
 * worker's own connection to the upstream, opened with a connect timeout
 * or taken from where it was parked after the last answer. What the
 * upstream answers is fed to the parser (writer_http.c) as it arrives, and
 * its outcome copied where writer.c reads it. Whatever the end,
 * writer_done() (writer.c) is told.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


/* what is read at once */
#define NGX_HTTP_ENGAGEMENT_WRITER_RECV     8192
/* the pool of a connection to the upstream */
#define NGX_HTTP_ENGAGEMENT_WRITER_POOL     512


static void ngx_http_engagement_writer_handler(ngx_event_t *ev);
static void ngx_http_engagement_writer_write(ngx_http_engagement_writer_t *w,
    ngx_connection_t *c);
static void ngx_http_engagement_writer_read(ngx_http_engagement_writer_t *w,
    ngx_connection_t *c);
static ngx_int_t ngx_http_engagement_writer_received(
    ngx_http_engagement_writer_t *w, ngx_int_t rc);
static void ngx_http_engagement_writer_idle(ngx_event_t *rev);
static void ngx_http_engagement_writer_dummy(ngx_event_t *ev);


void
ngx_http_engagement_writer_connect(ngx_http_engagement_writer_t *w)
{
    ngx_int_t                           rc;
    ngx_connection_t                   *c;
    ngx_peer_connection_t               pc;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    ngx_http_engagement_writer_http_init(&w->answer);
    w->head_n = 0;
    w->status = 0;
    w->close = 0;
    w->body_start = NULL;
    w->body_n = 0;
    w->sent = 0;
    w->ans_n = 0;
    w->timedout = 0;

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
        w->timedout = 1;
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
    u_char     buf[NGX_HTTP_ENGAGEMENT_WRITER_RECV];
    ssize_t    n;
    ngx_int_t  rc;

    if (w->sent < w->req_len) {
        /* an early answer or a close while sending: read it below */
        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }
    }

    do {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_engagement_writer_done(w, 0, "event error");
            }
            return;
        }

        if (n < 0) {
            ngx_http_engagement_writer_done(w, 0, "recv failed");
            return;
        }

        rc = (n == 0) ? ngx_http_engagement_writer_http_eof(&w->answer)
                      : ngx_http_engagement_writer_http_parse(&w->answer,
                                                              buf, n);

    } while (ngx_http_engagement_writer_received(w, rc) == NGX_AGAIN);
}


/*
 * The parser's outcome where writer.c reads it. NGX_AGAIN: more is needed;
 * NGX_DONE: the answer is complete or bad, and writer_done() has it.
 */

static ngx_int_t
ngx_http_engagement_writer_received(ngx_http_engagement_writer_t *w,
    ngx_int_t rc)
{
    ngx_http_engagement_writer_answer_t  *a;

    a = &w->answer;

    w->head_n = a->head_n;
    w->status = a->status;
    /* bytes past the answer's end: the link is not reused either */
    w->close = a->close || a->extra;
    w->body_start = a->body_start;
    w->body_n = a->body_n;
    w->ans_n = ngx_cpymem(w->ans, a->ans, a->ans_n) - w->ans;

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    ngx_http_engagement_writer_done(w, rc == NGX_OK, a->error);

    return NGX_DONE;
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
