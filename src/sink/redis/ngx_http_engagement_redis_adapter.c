
/*
 * hiredis on nginx's event loop: the async context's socket is wrapped in
 * an ngx_connection_t and hiredis's add/del read/write hooks become nginx
 * event registrations. Events are level-triggered, so a reply larger than
 * what hiredis reads in one call (about 16 KB) is read on the next loop
 * iteration instead of being stranded under edge-triggered epoll.
 */


#include "store/ngx_http_engagement_store.h"
#include "sink/redis/ngx_http_engagement_redis.h"


static void
ngx_http_engagement_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    /* hiredis may free the context (and through cleanup, c) in here */
    redisAsyncHandleRead(c->data);
}


static void
ngx_http_engagement_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;

    c = ev->data;

    /*
     * A failed non-blocking connect frees the context inside this call:
     * nothing of it, nor of c, may be touched afterwards.
     */
    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_engagement_redis_add(ngx_event_t *ev, ngx_uint_t event,
    const char *what)
{
    if (!ev->active && ngx_add_event(ev, event, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "engagement redis: could not add a %s event", what);
    }
}


static void
ngx_http_engagement_redis_del(ngx_event_t *ev, ngx_uint_t event)
{
    if (ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


static void
ngx_http_engagement_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_engagement_redis_add(c->read, NGX_READ_EVENT, "read");
}


static void
ngx_http_engagement_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_engagement_redis_del(c->read, NGX_READ_EVENT);
}


static void
ngx_http_engagement_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_engagement_redis_add(c->write, NGX_WRITE_EVENT, "write");
}


static void
ngx_http_engagement_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_engagement_redis_del(c->write, NGX_WRITE_EVENT);
}


/* hiredis is freeing the context and will close the socket itself */

static void
ngx_http_engagement_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c == NULL) {
        return;
    }

    ngx_http_engagement_redis_del(c->read, NGX_READ_EVENT);
    ngx_http_engagement_redis_del(c->write, NGX_WRITE_EVENT);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    c->data = NULL;
    ngx_free_connection(c);
}


ngx_int_t
ngx_http_engagement_redis_attach(redisAsyncContext *ac, ngx_log_t *log)
{
    ngx_connection_t  *c;

    if (ac->ev.data != NULL) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = ac;
    c->read->handler = ngx_http_engagement_redis_read_handler;
    c->write->handler = ngx_http_engagement_redis_write_handler;
    c->read->log = log;
    c->write->log = log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_engagement_redis_add_read;
    ac->ev.delRead = ngx_http_engagement_redis_del_read;
    ac->ev.addWrite = ngx_http_engagement_redis_add_write;
    ac->ev.delWrite = ngx_http_engagement_redis_del_write;
    ac->ev.cleanup = ngx_http_engagement_redis_cleanup;

    return NGX_OK;
}
