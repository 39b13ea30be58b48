
/*
 * The live stream: GET /engagement/live/{contentId} as Server-Sent
 * Events. Each subscriber gets the content's counts at once, then again
 * whenever they change: views (engaged, replays), likes and reactions
 * from the counters zone, live viewers and this minute's peak from the
 * live zone -- all from shared memory, never a Redis call per subscriber.
 *
 * One timer per worker (engagement_live_push, 1 s by default) fans out to
 * the worker's subscribers, and only while it has some. Each tick first
 * compares a version of everything a count depends on (the live zone's
 * changes, slot and minute; the counters zones' counted, flushed and read
 * figures): when nothing changed, no subscriber is looked at (the slot
 * is in the version: every half heartbeat interval they all are). When
 * it changed, each content's counts are read once (a memo per fan-out)
 * and sent to a subscriber only if they differ from what it was sent
 * last. A comment line every 15 s keeps proxies from closing idle
 * streams.
 *
 * A subscriber's answer is written from one buffer of its own, reused:
 * a slow client is skipped while its last event is still on its way (the
 * counts are sent once it has taken it), so memory per subscriber is
 * bounded. The timer is not cancelable while there are subscribers and
 * wakes at least once a second (the push is done only when its period,
 * at most 10 s, has passed): when the worker shuts down (reload, quit),
 * within a second every stream is ended cleanly (the last chunk, the
 * connection closed) instead of being cut when the process exits;
 * EventSource then reconnects to the new workers (the stream asks for a
 * retry after 1 s).
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_live.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "http/ngx_http_engagement_http.h"


/* a comment line to every stream this often when nothing else is sent */
#define NGX_HTTP_ENGAGEMENT_SSE_PING      15000

/* the timer's longest sleep: a shutdown or a ping waits no longer */
#define NGX_HTTP_ENGAGEMENT_SSE_STEP      1000

/* one event at its longest */
#define NGX_HTTP_ENGAGEMENT_SSE_EVENT_LEN                                     \
    (sizeof("data: {\"contentId\":\"\",\"views\":,\"engagedViews\":,"         \
            "\"replays\":,\"live\":,\"peak\":}\n\n")                          \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + 5 * NGX_INT64_LEN                         \
     + NGX_HTTP_ENGAGEMENT_REACTIONS_LEN)

/* contents whose totals a worker read from Redis lately, and how lately */
#define NGX_HTTP_ENGAGEMENT_SSE_READS     64
#define NGX_HTTP_ENGAGEMENT_SSE_READ_GAP  1000

/* contents whose event a fan-out keeps, to read each content once */
#define NGX_HTTP_ENGAGEMENT_SSE_MEMO      256
#define NGX_HTTP_ENGAGEMENT_SSE_MEMO_PROBES  8

#define NGX_HTTP_ENGAGEMENT_SSE_HELLO     "retry: 1000\n\n"
#define NGX_HTTP_ENGAGEMENT_SSE_PING_TEXT ": ping\n\n"


typedef struct {
    ngx_queue_t                   queue;
    ngx_http_request_t           *request;
    ngx_http_engagement_zone_t   *counters;
    ngx_str_t                     id;
    uint64_t                      hash;
    ngx_buf_t                     buf;        /* reused for every write */
    u_char                       *out;        /* its memory */
    u_char                       *last;       /* the last event sent */
    size_t                        last_len;
    ngx_uint_t                    dirty;      /* counts to send once the
                                                 client took the last */
} ngx_http_engagement_sse_t;


/* a content's event, made once per fan-out for all its subscribers */
typedef struct {
    ngx_uint_t                    round;      /* 0: empty */
    ngx_http_engagement_zone_t   *counters;
    uint64_t                      hash;
    size_t                        len;
    u_char                        event[NGX_HTTP_ENGAGEMENT_SSE_EVENT_LEN];
} ngx_http_engagement_sse_memo_t;


static void ngx_http_engagement_sse_tick(ngx_event_t *ev);


/* the worker's subscribers and its timer */
static ngx_queue_t   ngx_http_engagement_sse_subs;
static ngx_uint_t    ngx_http_engagement_sse_n;
static ngx_event_t   ngx_http_engagement_sse_timer;
static uint64_t      ngx_http_engagement_sse_version;
static ngx_msec_t    ngx_http_engagement_sse_pinged;
static ngx_msec_t    ngx_http_engagement_sse_pushed;
static ngx_uint_t    ngx_http_engagement_sse_round;
static ngx_http_engagement_sse_memo_t  *ngx_http_engagement_sse_memo;


static struct {
    uint64_t                      hash;
    ngx_msec_t                    at;
} ngx_http_engagement_sse_reads[NGX_HTTP_ENGAGEMENT_SSE_READS];


static ngx_str_t  ngx_http_engagement_sse_type =
    ngx_string("text/event-stream");


/*
 * What the counts of every subscriber depend on; read without a lock.
 * When it is the same as at the last tick, no count changed.
 */

static uint64_t
ngx_http_engagement_sse_state(ngx_http_engagement_live_conf_t *lc)
{
    uint64_t                               v;
    ngx_uint_t                             i, s;
    ngx_http_engagement_zone_t           **zp;
    ngx_http_engagement_stats_t           *st;
    ngx_http_engagement_main_conf_t       *emcf;
    ngx_http_engagement_counters_shctx_t  *sh;

    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_engagement_module);

    v = 0;
    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (zp[i]->dedupe || zp[i]->sh == NULL) {
            continue;
        }

        sh = zp[i]->sh;

        for (s = 0; s < NGX_HTTP_ENGAGEMENT_SLOTS; s++) {
            st = &sh->stats[s];
            v += st->counted_views + st->counted_engaged
                 + st->counted_replays + st->reactions_changed
                 + st->flush_ok + st->reads_ok;
        }
    }

    return v * 0x9e3779b97f4a7c15ULL
           ^ ngx_http_engagement_live_version(lc);
}


/*
 * With Redis, totals this edge has not read yet (or read longer than
 * engagement_cache_ttl ago) are read in the background, once a second at
 * most per content and worker however many subscribers it has; the
 * answer lands in the zone and the next tick sends it.
 */

static void
ngx_http_engagement_sse_read(ngx_http_engagement_sse_t *sub,
    ngx_http_engagement_view_t *view)
{
    ngx_uint_t  i;

    if (!sub->counters->redis || (view->known && !view->refresh)
        || !ngx_http_engagement_redis_ready())
    {
        return;
    }

    i = sub->hash % NGX_HTTP_ENGAGEMENT_SSE_READS;

    if (ngx_http_engagement_sse_reads[i].hash == sub->hash
        && ngx_current_msec - ngx_http_engagement_sse_reads[i].at
           < NGX_HTTP_ENGAGEMENT_SSE_READ_GAP)
    {
        return;
    }

    ngx_http_engagement_sse_reads[i].hash = sub->hash;
    ngx_http_engagement_sse_reads[i].at = ngx_current_msec;

    ngx_http_engagement_refresh(sub->counters, &sub->id, sub->hash);
}


/* "data: {...}\n\n": the subscriber's counts now; its length */

static size_t
ngx_http_engagement_sse_event(ngx_http_engagement_sse_t *sub,
    ngx_http_engagement_live_conf_t *lc, u_char *buf)
{
    u_char                      *p;
    ngx_http_engagement_view_t   view;
    ngx_http_engagement_live_t   live;

    /* as the summary's items: what counters_get leaves alone is zero */
    ngx_memzero(&view, sizeof(ngx_http_engagement_view_t));

    ngx_http_engagement_counters_get(sub->counters, &sub->id, sub->hash,
                                     &view);
    ngx_http_engagement_sse_read(sub, &view);
    ngx_http_engagement_live_get(lc, &sub->id, &live);

    p = ngx_cpymem(buf, "data: {\"contentId\":\"",
                   sizeof("data: {\"contentId\":\"") - 1);
    p = ngx_cpymem(p, sub->id.data, sub->id.len);
    *p++ = '"';

    /* with Redis, totals not read yet are left out rather than guessed */
    if (view.known) {
        p = ngx_cpymem(p, ",\"views\":", sizeof(",\"views\":") - 1);
        p = ngx_http_engagement_put_uint(p, view.counts.views);
        p = ngx_cpymem(p, ",\"engagedViews\":",
                       sizeof(",\"engagedViews\":") - 1);
        p = ngx_http_engagement_put_uint(p, view.counts.engaged);
        p = ngx_cpymem(p, ",\"replays\":", sizeof(",\"replays\":") - 1);
        p = ngx_http_engagement_put_uint(p, view.counts.replays);

        if (view.nreactions) {
            p = ngx_http_engagement_reactions_json(p, view.reactions,
                                                   view.nreactions);
        }
    }

    p = ngx_cpymem(p, ",\"live\":", sizeof(",\"live\":") - 1);
    p = ngx_http_engagement_put_uint(p, live.live);
    p = ngx_cpymem(p, ",\"peak\":", sizeof(",\"peak\":") - 1);
    p = ngx_http_engagement_put_uint(p, live.peak);
    *p++ = '}';
    *p++ = '\n';
    *p++ = '\n';

    return p - buf;
}


/*
 * In a fan-out: the subscriber's counts, read once per content (both
 * zones' locks, and a background Redis read if due, once per content and
 * fan-out however many subscribers it has). A content whose entry is
 * taken by others within the probes is read for each of its subscribers.
 */

static size_t
ngx_http_engagement_sse_event_once(ngx_http_engagement_sse_t *sub,
    ngx_http_engagement_live_conf_t *lc, u_char *buf)
{
    size_t                           len, pre;
    ngx_uint_t                       i, n;
    ngx_http_engagement_sse_memo_t  *m, *free;

    if (ngx_http_engagement_sse_memo == NULL) {
        ngx_http_engagement_sse_memo = ngx_calloc(
                                   NGX_HTTP_ENGAGEMENT_SSE_MEMO
                                   * sizeof(ngx_http_engagement_sse_memo_t),
                                   ngx_cycle->log);
        if (ngx_http_engagement_sse_memo == NULL) {
            return ngx_http_engagement_sse_event(sub, lc, buf);
        }
    }

    pre = sizeof("data: {\"contentId\":\"") - 1;
    free = NULL;

    for (n = 0; n < NGX_HTTP_ENGAGEMENT_SSE_MEMO_PROBES; n++) {
        i = (sub->hash + n) % NGX_HTTP_ENGAGEMENT_SSE_MEMO;
        m = &ngx_http_engagement_sse_memo[i];

        if (m->round != ngx_http_engagement_sse_round) {
            if (free == NULL) {
                free = m;
            }

            continue;
        }

        /* the same zone and id: the id is in the event, after its key */
        if (m->counters == sub->counters && m->hash == sub->hash
            && m->len > pre + sub->id.len
            && m->event[pre + sub->id.len] == '"'
            && ngx_memcmp(m->event + pre, sub->id.data, sub->id.len) == 0)
        {
            ngx_memcpy(buf, m->event, m->len);
            return m->len;
        }
    }

    len = ngx_http_engagement_sse_event(sub, lc, buf);

    if (free) {
        free->round = ngx_http_engagement_sse_round;
        free->counters = sub->counters;
        free->hash = sub->hash;
        free->len = len;
        ngx_memcpy(free->event, buf, len);
    }

    return len;
}


/* the subscriber's last event is still being written to its client */

static ngx_inline ngx_uint_t
ngx_http_engagement_sse_busy(ngx_http_engagement_sse_t *sub)
{
    return sub->request->out != NULL || sub->request->connection->buffered;
}


/*
 * Writes len bytes of sub->out. NGX_ERROR: the stream is to be ended;
 * the rest is left to the write handler.
 */

static ngx_int_t
ngx_http_engagement_sse_write(ngx_http_engagement_sse_t *sub, size_t len)
{
    ngx_int_t                  rc;
    ngx_chain_t                out;
    ngx_event_t               *wev;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = sub->request;

    sub->buf.pos = sub->out;
    sub->buf.last = sub->out + len;
    sub->buf.memory = 1;
    sub->buf.flush = 1;

    out.buf = &sub->buf;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (!ngx_http_engagement_sse_busy(sub)) {
        return NGX_OK;
    }

    /* a slow client: the rest when it can take it, within send_timeout */
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    wev = r->connection->write;

    if (!wev->delayed && !wev->timer_set) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* sends the counts if they changed, or a ping; NGX_ERROR: end the stream */

static ngx_int_t
ngx_http_engagement_sse_push(ngx_http_engagement_sse_t *sub,
    ngx_http_engagement_live_conf_t *lc, ngx_uint_t ping, ngx_uint_t fanout)
{
    size_t   len;
    u_char   event[NGX_HTTP_ENGAGEMENT_SSE_EVENT_LEN];

    if (ngx_http_engagement_sse_busy(sub)) {
        sub->dirty = 1;
        ngx_http_engagement_live_inc(lc, skipped);
        return NGX_OK;
    }

    sub->dirty = 0;

    len = fanout ? ngx_http_engagement_sse_event_once(sub, lc, event)
                 : ngx_http_engagement_sse_event(sub, lc, event);

    if (len == sub->last_len && ngx_memcmp(event, sub->last, len) == 0) {
        if (!ping) {
            return NGX_OK;
        }

        len = sizeof(NGX_HTTP_ENGAGEMENT_SSE_PING_TEXT) - 1;
        ngx_memcpy(sub->out, NGX_HTTP_ENGAGEMENT_SSE_PING_TEXT, len);

        return ngx_http_engagement_sse_write(sub, len);
    }

    ngx_memcpy(sub->last, event, len);
    sub->last_len = len;
    ngx_memcpy(sub->out, event, len);

    ngx_http_engagement_live_inc(lc, pushes);

    return ngx_http_engagement_sse_write(sub, len);
}


/* ends a stream: the last chunk, then the connection is closed */

static void
ngx_http_engagement_sse_end(ngx_http_engagement_sse_t *sub, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = sub->request;
    c = r->connection;

    /* out of the list now: the request may live on while it finishes */
    ngx_queue_remove(&sub->queue);
    ngx_queue_init(&sub->queue);
    ngx_http_engagement_sse_n--;

    r->keepalive = 0;

    if (rc == NGX_OK) {
        rc = ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_engagement_sse_arm(ngx_http_engagement_live_conf_t *lc)
{
    ngx_msec_t    left;
    ngx_event_t  *ev;

    ev = &ngx_http_engagement_sse_timer;

    if (ev->timer_set || ngx_http_engagement_sse_n == 0) {
        return;
    }

    ev->handler = ngx_http_engagement_sse_tick;
    ev->log = ngx_cycle->log;
    ev->data = NULL;

    /* not cancelable: a shutting down worker waits for the tick that ends
     * the streams cleanly (at most a step) */
    ev->cancelable = 0;

    /* to the next push, in steps of at most a second */
    left = ngx_current_msec - ngx_http_engagement_sse_pushed;
    left = (left < lc->push) ? lc->push - left : lc->push;

    ngx_add_timer(ev, ngx_min(left, NGX_HTTP_ENGAGEMENT_SSE_STEP));
}


static void
ngx_http_engagement_sse_tick(ngx_event_t *ev)
{
    uint64_t                          version;
    ngx_uint_t                        ping, due;
    ngx_queue_t                       todo, *q;
    ngx_http_engagement_sse_t        *sub;
    ngx_http_engagement_live_conf_t  *lc;

    lc = ngx_http_engagement_live_conf();

    if (ngx_exiting || ngx_quit || ngx_terminate || lc == NULL) {
        while (!ngx_queue_empty(&ngx_http_engagement_sse_subs)) {
            q = ngx_queue_head(&ngx_http_engagement_sse_subs);
            sub = ngx_queue_data(q, ngx_http_engagement_sse_t, queue);
            ngx_http_engagement_sse_end(sub, NGX_OK);
        }

        return;
    }

    ping = (ngx_current_msec - ngx_http_engagement_sse_pinged
            >= NGX_HTTP_ENGAGEMENT_SSE_PING);
    due = (ngx_current_msec - ngx_http_engagement_sse_pushed >= lc->push);

    if (!due && !ping) {
        /* a step of a longer push period */
        ngx_http_engagement_sse_arm(lc);
        return;
    }

    ngx_http_engagement_sse_pushed = ngx_current_msec;

    if (ping) {
        ngx_http_engagement_sse_pinged = ngx_current_msec;
    }

    version = ngx_http_engagement_sse_state(lc);

    if (version != ngx_http_engagement_sse_version || ping) {
        ngx_http_engagement_sse_version = version;

        /* a new round of the memo: every content read again, once */
        if (++ngx_http_engagement_sse_round == 0) {
            ngx_http_engagement_sse_round = 1;
        }

        /*
         * Each subscriber is moved back to the list before it is served:
         * ending one stream may end others (streams of one HTTP/2
         * connection), whose cleanup takes them off whichever list
         * they are in.
         */
        ngx_queue_init(&todo);

        if (!ngx_queue_empty(&ngx_http_engagement_sse_subs)) {
            ngx_queue_add(&todo, &ngx_http_engagement_sse_subs);
            ngx_queue_init(&ngx_http_engagement_sse_subs);
        }

        while (!ngx_queue_empty(&todo)) {
            q = ngx_queue_head(&todo);
            ngx_queue_remove(q);
            ngx_queue_insert_tail(&ngx_http_engagement_sse_subs, q);
            sub = ngx_queue_data(q, ngx_http_engagement_sse_t, queue);

            if (ngx_http_engagement_sse_push(sub, lc, ping, 1) != NGX_OK) {
                ngx_http_engagement_sse_end(sub, NGX_ERROR);
            }
        }
    }

    ngx_http_engagement_sse_arm(lc);
}


/* the request's pool goes: the subscriber goes with it */

static void
ngx_http_engagement_sse_cleanup(void *data)
{
    ngx_http_engagement_sse_t *sub = data;

    ngx_http_engagement_live_conf_t  *lc;

    if (!ngx_queue_empty(&sub->queue)) {
        ngx_queue_remove(&sub->queue);
        ngx_queue_init(&sub->queue);
        ngx_http_engagement_sse_n--;
    }

    lc = ngx_http_engagement_live_conf();

    if (lc) {
        ngx_http_engagement_live_subscribed(lc, -1);
    }

    if (ngx_http_engagement_sse_n == 0
        && ngx_http_engagement_sse_timer.timer_set)
    {
        ngx_del_timer(&ngx_http_engagement_sse_timer);
    }
}


/*
 * The subscriber of a request, found by its pool's cleanup (the module's
 * request context is the access log variables')
 */

static ngx_http_engagement_sse_t *
ngx_http_engagement_sse_of(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_engagement_sse_cleanup) {
            return cln->data;
        }
    }

    return NULL;
}


/* the client can take more: the rest, then counts that waited for it */

static void
ngx_http_engagement_sse_writable(ngx_http_request_t *r)
{
    ngx_event_t                      *wev;
    ngx_connection_t                 *c;
    ngx_http_engagement_sse_t        *sub;
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_engagement_live_conf_t  *lc;

    c = r->connection;
    wev = c->write;
    sub = ngx_http_engagement_sse_of(r);

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "live stream: client timed out");
        c->timedout = 1;
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (ngx_http_output_filter(r, NULL) == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (sub == NULL || ngx_queue_empty(&sub->queue)) {
        return;
    }

    if (ngx_http_engagement_sse_busy(sub)) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (!wev->delayed && !wev->timer_set) {
            ngx_add_timer(wev, clcf->send_timeout);
        }

        if (ngx_handle_write_event(wev, clcf->send_lowat) != NGX_OK) {
            ngx_http_engagement_sse_end(sub, NGX_ERROR);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    lc = ngx_http_engagement_live_conf();

    if (sub->dirty && lc
        && ngx_http_engagement_sse_push(sub, lc, 0, 0) != NGX_OK)
    {
        ngx_http_engagement_sse_end(sub, NGX_ERROR);
    }
}


/*
 * A new subscriber: the headers, the retry time and the counts now; then
 * the request stays open (NGX_DONE) until the client goes or the worker
 * shuts down.
 */

ngx_int_t
ngx_http_engagement_sse_start(ngx_http_request_t *r, ngx_str_t *id)
{
    size_t                            len;
    ngx_int_t                         rc;
    ngx_table_elt_t                  *h;
    ngx_pool_cleanup_t               *cln;
    ngx_http_engagement_sse_t        *sub;
    ngx_http_engagement_loc_conf_t   *elcf;
    ngx_http_engagement_live_conf_t  *lc;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);
    lc = ngx_http_engagement_live_conf();

    if (lc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_engagement_sse_subs.next == NULL) {
        ngx_queue_init(&ngx_http_engagement_sse_subs);
    }

    sub = ngx_pcalloc(r->pool, sizeof(ngx_http_engagement_sse_t));
    if (sub == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the first write is the retry time and an event */
    sub->out = ngx_pnalloc(r->pool, sizeof(NGX_HTTP_ENGAGEMENT_SSE_HELLO)
                                    + NGX_HTTP_ENGAGEMENT_SSE_EVENT_LEN);
    sub->last = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_SSE_EVENT_LEN);
    sub->id.data = ngx_pnalloc(r->pool, id->len);

    if (sub->out == NULL || sub->last == NULL || sub->id.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(sub->id.data, id->data, id->len);
    sub->id.len = id->len;
    sub->request = r;
    sub->counters = elcf->counters;
    sub->hash = ngx_http_engagement_counters_hash(elcf->counters, &sub->id);
    ngx_queue_init(&sub->queue);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_engagement_sse_type;
    r->headers_out.content_type_len = ngx_http_engagement_sse_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = -1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    /* a proxy in front must not hold the events back */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Accel-Buffering");
    ngx_str_set(&h->value, "no");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    /* from here the subscriber is counted, and uncounted with the pool */
    cln->handler = ngx_http_engagement_sse_cleanup;
    cln->data = sub;

    ngx_queue_insert_tail(&ngx_http_engagement_sse_subs, &sub->queue);
    ngx_http_engagement_sse_n++;
    ngx_http_engagement_live_subscribed(lc, 1);

    if (ngx_http_engagement_sse_n == 1) {
        /* the first ping a full period after the first subscriber */
        ngx_http_engagement_sse_pinged = ngx_current_msec;
        ngx_http_engagement_sse_pushed = ngx_current_msec;
    }
    ngx_http_engagement_live_inc(lc, streams);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_engagement_sse_writable;

    /* the retry time and the first counts, in one write */
    len = sizeof(NGX_HTTP_ENGAGEMENT_SSE_HELLO) - 1;
    ngx_memcpy(sub->out, NGX_HTTP_ENGAGEMENT_SSE_HELLO, len);

    sub->last_len = ngx_http_engagement_sse_event(sub, lc, sub->last);
    ngx_memcpy(sub->out + len, sub->last, sub->last_len);
    ngx_http_engagement_live_inc(lc, pushes);

    if (ngx_http_engagement_sse_write(sub, len + sub->last_len) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_engagement_sse_arm(lc);

    r->main->count++;

    return NGX_DONE;
}
