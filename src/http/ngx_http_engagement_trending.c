
/*
 * The trending endpoint: GET /engagement/trending?window=5m|1h|24h&
 * category=&limit=. The ranking is Redis's: the window's sorted sets
 * (written by sink/redis/trend_flush.c from every edge's sketches) summed
 * with decay weights, so that recent buckets weigh more: a burst ranks
 * above a steady old favourite. The returned items then get their exact
 * counts from their own bucket hashes (eng:{c:<id>}:m|h:<t>, views from
 * the counters' flush, likes from the series flush), and the signals a
 * ranking system wants: views per minute, growth, like rate. A request
 * waits for Redis without blocking the worker (two steps: the top, then
 * one counts script per item, pipelined), and the wait outlives an
 * aborted request. Answers are kept in the worker for
 * engagement_trending_cache (1 s) per (window, category, limit). Redis
 * unavailable: 503, never a guess. Also: the like path's feed of the
 * sketch, and the trending figures of the status answer.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_trend.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "http/ngx_http_engagement_http.h"



#define NGX_HTTP_ENGAGEMENT_TRENDING_LIMIT   10
#define NGX_HTTP_ENGAGEMENT_TRENDING_MAX     100
/* count keys per item at most: 62 minutes (1h), 25 hours (24h) */
#define NGX_HTTP_ENGAGEMENT_TRENDING_KEYS    64
#define NGX_HTTP_ENGAGEMENT_TRENDING_CACHE   16

#define NGX_HTTP_ENGAGEMENT_TRENDING_KEY_LEN                                  \
    (sizeof("eng:{tr:cat:}:m:YYYYMMDDHHMM") + NGX_HTTP_ENGAGEMENT_ID_MAX)

#define NGX_HTTP_ENGAGEMENT_TRENDING_ITEM_LEN                                 \
    (sizeof("{\"contentId\":\"\",\"score\":,\"views\":,\"likes\":,"           \
            "\"viewsPerMinute\":,\"growth\":,\"likeRate\":},")                \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + 6 * 32)


/* a window: its sorted sets (minutes or hours), how many, the decay */
typedef struct {
    ngx_str_t                     name;
    ngx_uint_t                    hours;       /* hour sets, else minutes */
    ngx_uint_t                    n;
    double                        decay;       /* a set's weight is this
                                                  to the power of its age:
                                                  2^(-1/half-life) */
} ngx_http_engagement_window_t;


/* half-lives: 1 minute (5m), 10 minutes (1h), 6 hours (24h) */
static ngx_http_engagement_window_t  ngx_http_engagement_windows[] = {
    { ngx_string("5m"), 0, NGX_HTTP_ENGAGEMENT_TREND_5M, 0.5 },
    { ngx_string("1h"), 0, NGX_HTTP_ENGAGEMENT_TREND_1H, 0.9330329915368074 },
    { ngx_string("24h"), 1, NGX_HTTP_ENGAGEMENT_TREND_24H, 0.8908987181403393 }
};


typedef struct {
    u_char                        id[NGX_HTTP_ENGAGEMENT_ID_MAX];
    size_t                        len;
    double                        score;
    uint64_t                      views;
    uint64_t                      likes;
    double                        growth;
    ngx_uint_t                    known;      /* its counts answered */
} ngx_http_engagement_trending_item_t;


/*
 * A read of Redis for one (window, category, limit), and the requests
 * waiting for it: a request asking what is already being read waits for
 * the same answer. Outlives its requests if they are aborted.
 */
typedef struct {
    ngx_queue_t                           queue;    /* in-flight reads */
    ngx_queue_t                           waiters;
    ngx_uint_t                            window;
    ngx_uint_t                            limit;
    size_t                                cat_len;
    u_char                                cat[NGX_HTTP_ENGAGEMENT_ID_MAX];
    time_t                                now;
    time_t                                start;    /* the window's */
    ngx_uint_t                            nkeys;    /* count keys, per item */
    int64_t                               first;    /* minute or hour */
    ngx_uint_t                            n;
    ngx_uint_t                            outstanding;
    ngx_uint_t                            sending;
    ngx_uint_t                            failed;
    ngx_http_engagement_trend_conf_t     *tc;
    ngx_http_engagement_trending_item_t   items[1];
} ngx_http_engagement_trending_t;


typedef struct {
    ngx_http_engagement_trending_t       *ask;
    ngx_uint_t                            item;
} ngx_http_engagement_trending_call_t;


/* a request waiting for a read */
typedef struct {
    ngx_queue_t                           queue;
    ngx_http_request_t                   *request;  /* NULL: gone */
    ngx_pool_cleanup_t                   *cleanup;
} ngx_http_engagement_trending_waiter_t;


/* a worker's recent answers */
typedef struct {
    ngx_msec_t                    expires;
    ngx_uint_t                    window;
    ngx_uint_t                    limit;
    size_t                        cat_len;
    u_char                        cat[NGX_HTTP_ENGAGEMENT_ID_MAX];
    u_char                       *body;        /* ngx_alloc'd */
    size_t                        len;
} ngx_http_engagement_trending_cached_t;


static ngx_http_engagement_trending_cached_t
    ngx_http_engagement_trending_cache[NGX_HTTP_ENGAGEMENT_TRENDING_CACHE];

/* this worker's reads in flight */
static ngx_queue_t  ngx_http_engagement_trending_reads;
static ngx_uint_t   ngx_http_engagement_trending_reads_init;


static void ngx_http_engagement_trending_complete(
    ngx_http_engagement_trending_t *ask);


static void
ngx_http_engagement_trending_cleanup(void *data)
{
    ngx_http_engagement_trending_waiter_t  *w = data;

    w->request = NULL;
}


/* r waits for ask's answer: NGX_DONE, or an error status */
static ngx_int_t
ngx_http_engagement_trending_wait(ngx_http_request_t *r,
    ngx_http_engagement_trending_t *ask)
{
    ngx_pool_cleanup_t                     *cln;
    ngx_http_engagement_trending_waiter_t  *w;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w = ngx_alloc(sizeof(ngx_http_engagement_trending_waiter_t),
                  r->connection->log);
    if (w == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w->request = r;
    w->cleanup = cln;
    cln->handler = ngx_http_engagement_trending_cleanup;
    cln->data = w;
    ngx_queue_insert_tail(&ask->waiters, &w->queue);

    r->main->count++;

    return NGX_DONE;
}


/* a read in flight for the same question, NULL: none */
static ngx_http_engagement_trending_t *
ngx_http_engagement_trending_reading(ngx_uint_t window, ngx_uint_t limit,
    ngx_str_t *cat)
{
    ngx_queue_t                     *q;
    ngx_http_engagement_trending_t  *ask;

    if (!ngx_http_engagement_trending_reads_init) {
        ngx_queue_init(&ngx_http_engagement_trending_reads);
        ngx_http_engagement_trending_reads_init = 1;
    }

    for (q = ngx_queue_head(&ngx_http_engagement_trending_reads);
         q != ngx_queue_sentinel(&ngx_http_engagement_trending_reads);
         q = ngx_queue_next(q))
    {
        ask = ngx_queue_data(q, ngx_http_engagement_trending_t, queue);

        if (ask->window == window && ask->limit == limit
            && ask->cat_len == cat->len
            && (cat->len == 0
                || ngx_memcmp(ask->cat, cat->data, cat->len) == 0))
        {
            return ask;
        }
    }

    return NULL;
}


static ngx_http_engagement_trending_cached_t *
ngx_http_engagement_trending_cached(ngx_uint_t window, ngx_uint_t limit,
    u_char *cat, size_t cat_len, ngx_uint_t fresh)
{
    ngx_uint_t                              i;
    ngx_http_engagement_trending_cached_t  *c;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_TRENDING_CACHE; i++) {
        c = &ngx_http_engagement_trending_cache[i];

        if (c->body && c->window == window && c->limit == limit
            && c->cat_len == cat_len
            && (cat_len == 0 || ngx_memcmp(c->cat, cat, cat_len) == 0)
            && (!fresh || (ngx_msec_int_t) (c->expires - ngx_current_msec)
                          > 0))
        {
            return c;
        }
    }

    return NULL;
}


static void
ngx_http_engagement_trending_keep(ngx_http_engagement_trending_t *ask,
    u_char *body, size_t len)
{
    ngx_uint_t                              i;
    ngx_http_engagement_trending_cached_t  *c, *o;

    if (ask->tc->cache == 0) {
        return;
    }

    c = ngx_http_engagement_trending_cached(ask->window, ask->limit, ask->cat,
                                            ask->cat_len, 0);

    if (c == NULL) {
        /* the entry that expires first makes room */
        for (i = 0; i < NGX_HTTP_ENGAGEMENT_TRENDING_CACHE; i++) {
            o = &ngx_http_engagement_trending_cache[i];

            if (o->body == NULL) {
                c = o;
                break;
            }

            if (c == NULL
                || (ngx_msec_int_t) (o->expires - c->expires) < 0)
            {
                c = o;
            }
        }
    }

    if (c->body) {
        ngx_free(c->body);
    }

    c->body = ngx_alloc(len, ngx_cycle->log);
    if (c->body == NULL) {
        return;
    }

    ngx_memcpy(c->body, body, len);
    c->len = len;
    c->window = ask->window;
    c->limit = ask->limit;
    c->cat_len = ask->cat_len;
    ngx_memcpy(c->cat, ask->cat, sizeof(ask->cat));
    c->expires = ngx_current_msec + ask->tc->cache;
}


/* a double as JSON with two (or four) decimals */
static u_char *
ngx_http_engagement_trending_num(u_char *p, double v, ngx_uint_t frac)
{
    if (v != v || v > 1e15 || v < -1e15) {
        v = 0;
    }

    if (v < 0) {
        *p++ = '-';
        v = -v;
    }

    return frac == 4 ? ngx_sprintf(p, "%.4f", v) : ngx_sprintf(p, "%.2f", v);
}


/*
 * Growth: the least-squares slope of views per bucket over the window's
 * closed count buckets (the current, partial one left out), in views
 * per minute per minute (5m, 1h) or views per hour per hour (24h).
 */
static double
ngx_http_engagement_trending_slope(int64_t *v, ngx_uint_t n)
{
    double      sx, sy, sxx, sxy, d;
    ngx_uint_t  i;

    if (n < 2) {
        return 0;
    }

    sx = sy = sxx = sxy = 0;

    for (i = 0; i < n; i++) {
        sx += i;
        sy += v[i];
        sxx += (double) i * i;
        sxy += (double) i * v[i];
    }

    d = n * sxx - sx * sx;

    return d ? (n * sxy - sx * sy) / d : 0;
}


static u_char *
ngx_http_engagement_trending_body(ngx_http_engagement_trending_t *ask,
    ngx_pool_t *pool, size_t *len)
{
    u_char                               *p, *body;
    double                                span;
    ngx_uint_t                            i;
    ngx_time_t                           *tp;
    ngx_http_engagement_trending_item_t  *it;

    body = ngx_pnalloc(pool, sizeof("{\"window\":\"24h\",\"category\":\"\","
                                    "\"bucketSeconds\":,\"items\":[],"
                                    "\"generatedAt\":}\n")
                             + NGX_HTTP_ENGAGEMENT_ID_MAX + 2 * NGX_INT64_LEN
                             + ask->n
                               * NGX_HTTP_ENGAGEMENT_TRENDING_ITEM_LEN);
    if (body == NULL) {
        return NULL;
    }

    p = ngx_sprintf(body, "{\"window\":\"%V\",\"category\":",
                    &ngx_http_engagement_windows[ask->window].name);

    if (ask->cat_len) {
        p = ngx_sprintf(p, "\"%*s\"", ask->cat_len, ask->cat);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_sprintf(p, ",\"bucketSeconds\":%T,\"items\":[", ask->tc->bucket);

    span = (double) (ask->now - ask->start) / 60;

    if (span < 1.0 / 60) {
        span = 1.0 / 60;
    }

    for (i = 0; i < ask->n; i++) {
        it = &ask->items[i];

        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "{\"contentId\":\"%*s\",\"score\":", it->len,
                        it->id);
        p = ngx_http_engagement_trending_num(p, it->score, 2);
        p = ngx_sprintf(p, ",\"views\":%uL,\"likes\":%uL,\"viewsPerMinute\":",
                        it->views, it->likes);
        p = ngx_http_engagement_trending_num(p, (double) it->views / span, 2);
        p = ngx_cpymem(p, ",\"growth\":", sizeof(",\"growth\":") - 1);
        p = ngx_http_engagement_trending_num(p, it->growth, 2);
        p = ngx_cpymem(p, ",\"likeRate\":", sizeof(",\"likeRate\":") - 1);
        p = ngx_http_engagement_trending_num(p, it->views
                                    ? (double) it->likes / it->views : 0, 4);
        *p++ = '}';
    }

    tp = ngx_timeofday();

    p = ngx_sprintf(p, "],\"generatedAt\":%M}\n",
                    (ngx_msec_t) tp->sec * 1000 + tp->msec);

    *len = p - body;

    return body;
}


static void
ngx_http_engagement_trending_complete(ngx_http_engagement_trending_t *ask)
{
    u_char                                 *body, *copy;
    size_t                                  len;
    ngx_int_t                               rv;
    ngx_queue_t                            *q;
    ngx_pool_t                             *pool;
    ngx_connection_t                       *c;
    ngx_http_request_t                     *r;
    ngx_http_engagement_trending_waiter_t  *w;

    ngx_queue_remove(&ask->queue);

    if (ask->failed) {
        ngx_http_engagement_trend_inc(ask->tc, read_errors);
    }

    body = NULL;
    len = 0;
    pool = NULL;

    if (!ask->failed) {
        pool = ngx_create_pool(1024, ngx_cycle->log);

        if (pool) {
            body = ngx_http_engagement_trending_body(ask, pool, &len);
        }

        if (body) {
            ngx_http_engagement_trending_keep(ask, body, len);
        }
    }

    while (!ngx_queue_empty(&ask->waiters)) {
        q = ngx_queue_head(&ask->waiters);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_http_engagement_trending_waiter_t, queue);
        r = w->request;

        if (r) {
            /* the request may outlive w (lingering close, keep-alive) */
            w->cleanup->handler = NULL;
            c = r->connection;

            if (ask->failed) {
                ngx_http_engagement_set_outcome(r, "unavailable", "redis",
                                                NULL);
                rv = ngx_http_engagement_unavailable(r,
                                       "Redis could not answer; retry later");

            } else if (body == NULL
                       || (copy = ngx_pnalloc(r->pool, len)) == NULL)
            {
                rv = NGX_HTTP_INTERNAL_SERVER_ERROR;

            } else {
                ngx_memcpy(copy, body, len);
                rv = ngx_http_engagement_send_json(r, NGX_HTTP_OK, copy, len);
            }

            ngx_http_finalize_request(r, rv);
            ngx_http_run_posted_requests(c);
        }

        ngx_free(w);
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    ngx_free(ask);
}


/* one item's counts: per count key its views and likes, oldest first */
static void
ngx_http_engagement_trending_counts_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_trending_call_t  *call = data;

    size_t                                i;
    int64_t                               v[NGX_HTTP_ENGAGEMENT_TRENDING_KEYS];
    ngx_http_engagement_trending_t       *ask;
    ngx_http_engagement_trending_item_t  *it;

    ask = call->ask;
    it = &ask->items[call->item];

    if (reply && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2 * ask->nkeys)
    {
        for (i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
                break;
            }
        }

        if (i == reply->elements) {
            for (i = 0; i < ask->nkeys; i++) {
                v[i] = reply->element[2 * i]->integer;
                it->views += v[i];
                it->likes += reply->element[2 * i + 1]->integer;
            }

            it->growth = ngx_http_engagement_trending_slope(v,
                                                            ask->nkeys - 1);
            it->known = 1;
        }
    }

    if (!it->known) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement redis: trending counts failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        ask->failed = 1;
    }

    ngx_free(call);

    if (--ask->outstanding == 0 && !ask->sending) {
        ngx_http_engagement_trending_complete(ask);
    }
}


/* the counts script of one item: its minute or hour bucket keys */
static ngx_int_t
ngx_http_engagement_trending_counts(ngx_http_engagement_trending_t *ask,
    ngx_uint_t item)
{
    u_char                               *p, *buf;
    size_t                                lens[1 + NGX_HTTP_ENGAGEMENT_TRENDING_KEYS];
    ngx_int_t                             rv;
    ngx_uint_t                            i;
    const char                           *argv[1
                                            + NGX_HTTP_ENGAGEMENT_TRENDING_KEYS];
    ngx_http_engagement_trending_call_t  *call;
    ngx_http_engagement_trending_item_t  *it;
    u_char                                num[NGX_INT64_LEN];
    u_char                                t[16];

    it = &ask->items[item];

    buf = ngx_alloc(ask->nkeys * (sizeof("eng:{c:}:m:YYYYMMDDHHMM")
                                  + NGX_HTTP_ENGAGEMENT_ID_MAX),
                    ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    argv[0] = (const char *) num;
    lens[0] = ngx_sprintf(num, "%ui", ask->nkeys) - num;
    p = buf;

    for (i = 0; i < ask->nkeys; i++) {
        argv[1 + i] = (const char *) p;

        if (ngx_http_engagement_windows[ask->window].hours) {
            (void) ngx_http_engagement_trend_minute(t, (ask->first + i) * 60,
                                                    60);
            p = ngx_sprintf(p, "eng:{c:%*s}:h:%*s", it->len, it->id,
                            (size_t) 10, t);

        } else {
            (void) ngx_http_engagement_trend_minute(t, ask->first + i, 60);
            p = ngx_sprintf(p, "eng:{c:%*s}:m:%*s", it->len, it->id,
                            (size_t) 12, t);
        }

        lens[1 + i] = p - (u_char *) argv[1 + i];
    }

    call = ngx_alloc(sizeof(ngx_http_engagement_trending_call_t),
                     ngx_cycle->log);
    if (call == NULL) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    call->ask = ask;
    call->item = item;

    rv = ngx_http_engagement_redis_eval(
                                   NGX_HTTP_ENGAGEMENT_SCRIPT_TREND_COUNTS,
                                   ngx_http_engagement_trending_counts_reply,
                                   call, (int) (1 + ask->nkeys), argv, lens);
    ngx_free(buf);

    if (rv != NGX_OK) {
        ngx_free(call);
        return NGX_ERROR;
    }

    ask->outstanding++;

    return NGX_OK;
}


/* the top: member, score pairs, the highest first */
static void
ngx_http_engagement_trending_top_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_trending_t  *ask = data;

    size_t                                i;
    redisReply                           *id, *sc;
    ngx_http_engagement_trending_item_t  *it;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements % 2)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement redis: trending read failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        ask->failed = 1;
        ngx_http_engagement_trending_complete(ask);
        return;
    }

    for (i = 0; i + 1 < reply->elements && ask->n < ask->limit; i += 2) {
        id = reply->element[i];
        sc = reply->element[i + 1];

        /* what the module did not write is not answered */
        if (id->type != REDIS_REPLY_STRING || sc->type != REDIS_REPLY_STRING
            || !ngx_http_engagement_id_valid((u_char *) id->str, id->len))
        {
            continue;
        }

        it = &ask->items[ask->n++];
        ngx_memzero(it, sizeof(ngx_http_engagement_trending_item_t));
        ngx_memcpy(it->id, id->str, id->len);
        it->len = id->len;
        it->score = strtod(sc->str, NULL);
    }

    ask->sending = 1;

    for (i = 0; i < ask->n; i++) {
        if (ngx_http_engagement_trending_counts(ask, i) != NGX_OK) {
            ask->failed = 1;
            break;
        }
    }

    ask->sending = 0;

    if (ask->outstanding == 0) {
        ngx_http_engagement_trending_complete(ask);
    }
}


/*
 * The window's sets and weights, and where its exact counts are read:
 * minutes (5m, 1h) or hours (24h) from the start of its oldest bucket to
 * now. The newest minute set is that of the last closed bucket (a bucket
 * reaches Redis once closed); the newest hour set is the current hour's,
 * which has the hour's closed buckets so far.
 */
static ngx_int_t
ngx_http_engagement_trending_send(ngx_http_request_t *r,
    ngx_http_engagement_trending_t *ask)
{
    u_char                        *p, *keys, *nums, *tag;
    size_t                         tag_len, *lens;
    double                         weight;
    int64_t                        nowb, b, hour;
    ngx_int_t                      rv;
    ngx_uint_t                     i, n, argc;
    const char                   **argv;
    ngx_http_engagement_window_t  *w;
    u_char                         t[16];

    w = &ngx_http_engagement_windows[ask->window];
    n = w->n;
    nowb = ngx_http_engagement_trend_now(ask->tc);
    hour = nowb / 60;

    ask->now = ngx_time();

    if (w->hours) {
        ask->start = (time_t) ((hour - (int64_t) n + 1) * 60
                               * ask->tc->bucket);
        ask->first = ask->start / 3600;
        ask->nkeys = ask->now / 3600 - ask->first + 1;

    } else {
        ask->start = (time_t) ((nowb - (int64_t) n) * ask->tc->bucket);
        ask->first = ask->start / 60;
        ask->nkeys = ask->now / 60 - ask->first + 1;
    }

    if (ask->nkeys > NGX_HTTP_ENGAGEMENT_TRENDING_KEYS) {
        ask->nkeys = NGX_HTTP_ENGAGEMENT_TRENDING_KEYS;
        ask->first = (w->hours ? ask->now / 3600 : ask->now / 60)
                     - NGX_HTTP_ENGAGEMENT_TRENDING_KEYS + 1;
    }

    /* 2 + n keys, then the limit and n weights */
    argc = 1 + (1 + n) + (1 + n);

    argv = ngx_palloc(r->pool, argc * (sizeof(char *) + sizeof(size_t)));
    keys = ngx_pnalloc(r->pool, (1 + n) * NGX_HTTP_ENGAGEMENT_TRENDING_KEY_LEN
                                + (1 + n) * 32);

    if (argv == NULL || keys == NULL) {
        return NGX_ERROR;
    }

    lens = (size_t *) (argv + argc);
    nums = keys + (1 + n) * NGX_HTTP_ENGAGEMENT_TRENDING_KEY_LEN;

    if (ask->cat_len) {
        tag = ngx_pnalloc(r->pool, sizeof("tr:cat:") + ask->cat_len);
        if (tag == NULL) {
            return NGX_ERROR;
        }

        tag_len = ngx_sprintf(tag, "tr:cat:%*s", ask->cat_len, ask->cat)
                  - tag;

    } else {
        tag = (u_char *) "tr";
        tag_len = 2;
    }

    p = keys;

    argv[0] = (const char *) nums;
    nums = ngx_sprintf(nums, "%ui", 1 + n);
    lens[0] = nums - (u_char *) argv[0];

    /* the scratch key of the union: the sets' hash tag, deleted at once */
    argv[1] = (const char *) p;
    p = ngx_sprintf(p, "eng:{%*s}:union", tag_len, tag);
    lens[1] = p - (u_char *) argv[1];

    argv[2 + n] = (const char *) nums;
    nums = ngx_sprintf(nums, "%ui", ask->limit);
    lens[2 + n] = nums - (u_char *) argv[2 + n];

    weight = 1;

    for (i = 0; i < n; i++) {
        /* i: the age, in sets, of the newest first */
        argv[2 + i] = (const char *) p;

        if (w->hours) {
            b = (hour - (int64_t) i) * 60;
            (void) ngx_http_engagement_trend_minute(t, b, ask->tc->bucket);
            p = ngx_sprintf(p, "eng:{%*s}:h:%*s", tag_len, tag, (size_t) 10,
                            t);

        } else {
            b = nowb - 1 - (int64_t) i;
            (void) ngx_http_engagement_trend_minute(t, b, ask->tc->bucket);
            p = ngx_sprintf(p, "eng:{%*s}:m:%*s", tag_len, tag, (size_t) 12,
                            t);
        }

        lens[2 + i] = p - (u_char *) argv[2 + i];

        argv[3 + n + i] = (const char *) nums;
        nums = ngx_sprintf(nums, "%.6f", weight);
        lens[3 + n + i] = nums - (u_char *) argv[3 + n + i];
        weight *= w->decay;
    }

    rv = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_TREND_TOP,
                                        ngx_http_engagement_trending_top_reply,
                                        ask, (int) argc, argv, lens);
    if (rv != NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_http_engagement_trend_inc(ask->tc, read_calls);

    return NGX_OK;
}


/* a 400 naming the parameter */
static ngx_int_t
ngx_http_engagement_trending_bad(ngx_http_request_t *r, const char *name,
    const char *message)
{
    ngx_http_engagement_set_outcome(r, "invalid", name, NULL);

    return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_field", name, message);
}


/* GET /engagement/trending?window=5m|1h|24h&category=&limit= */

ngx_int_t
ngx_http_engagement_trending_handler(ngx_http_request_t *r)
{
    u_char                                 *body;
    ngx_int_t                               n, rv;
    ngx_str_t                               v, cat;
    ngx_uint_t                              window, limit;
    ngx_http_engagement_trend_conf_t       *tc;
    ngx_http_engagement_trending_t         *ask;
    ngx_http_engagement_trending_cached_t  *c;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD",
                   "trending contents are read with GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    tc = ngx_http_engagement_trend_conf();

    if (tc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    window = 0;

    if (ngx_http_arg(r, (u_char *) "window", 6, &v) == NGX_OK) {
        for (window = 0; window < 3; window++) {
            if (v.len == ngx_http_engagement_windows[window].name.len
                && ngx_strncmp(v.data,
                               ngx_http_engagement_windows[window].name.data,
                               v.len) == 0)
            {
                break;
            }
        }

        if (window == 3) {
            return ngx_http_engagement_trending_bad(r, "window",
                                                    "must be 5m, 1h or 24h");
        }
    }

    cat.len = 0;
    cat.data = NULL;

    if (ngx_http_arg(r, (u_char *) "category", 8, &cat) == NGX_OK
        && !ngx_http_engagement_id_valid(cat.data, cat.len))
    {
        return ngx_http_engagement_trending_bad(r, "category",
                                                NGX_HTTP_ENGAGEMENT_ID_RULE);
    }

    limit = NGX_HTTP_ENGAGEMENT_TRENDING_LIMIT;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) == NGX_OK) {
        n = (v.len && v.len <= 3) ? ngx_atoi(v.data, v.len) : NGX_ERROR;

        if (n < 1 || n > NGX_HTTP_ENGAGEMENT_TRENDING_MAX) {
            return ngx_http_engagement_trending_bad(r, "limit",
                       "must be an integer from 1 to "
                       ngx_value(NGX_HTTP_ENGAGEMENT_TRENDING_MAX));
        }

        limit = (ngx_uint_t) n;
    }

    ngx_http_engagement_trend_inc(tc, reads);
    ngx_http_engagement_set_outcome(r, "read", NULL, NULL);

    if (tc->cache) {
        c = ngx_http_engagement_trending_cached(window, limit, cat.data,
                                                cat.len, 1);
        if (c) {
            /* a copy: the entry may be replaced before the answer is out */
            body = ngx_pnalloc(r->pool, c->len);
            if (body == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_memcpy(body, c->body, c->len);
            ngx_http_engagement_trend_inc(tc, cache_hits);

            return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body,
                                                 c->len);
        }
    }

    if (!ngx_http_engagement_redis_ready()) {
        ngx_http_engagement_trend_inc(tc, read_errors);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; retry later");
    }

    ask = ngx_http_engagement_trending_reading(window, limit, &cat);

    if (ask) {
        /* the same question is being asked of Redis: its answer will do */
        ngx_http_engagement_trend_inc(tc, cache_hits);
        return ngx_http_engagement_trending_wait(r, ask);
    }

    ask = ngx_calloc(sizeof(ngx_http_engagement_trending_t)
                     + limit * sizeof(ngx_http_engagement_trending_item_t),
                     r->connection->log);
    if (ask == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_queue_init(&ask->waiters);
    ask->tc = tc;
    ask->window = window;
    ask->limit = limit;
    ask->cat_len = cat.len;

    if (cat.len) {
        ngx_memcpy(ask->cat, cat.data, cat.len);
    }

    rv = ngx_http_engagement_trending_send(r, ask);

    if (rv != NGX_OK) {
        ngx_free(ask);

        if (rv == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_engagement_trend_inc(tc, read_errors);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; retry later");
    }

    ngx_queue_insert_tail(&ngx_http_engagement_trending_reads, &ask->queue);

    /* the reply comes at the earliest from the event loop: r waits first */
    return ngx_http_engagement_trending_wait(r, ask);
}


/*
 * The like path (reaction.c, once Redis answered a change): a new like
 * (a reaction set where there was none) feeds the sketch; a change of
 * type, an unlike, a repeat or a state read do not.
 */
void
ngx_http_engagement_trending_reaction(u_char *id, size_t len,
    ngx_uint_t state_read, void *r)
{
    redisReply  *reply = r;

    if (state_read || reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 4
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[0]->integer == 0
        || reply->element[2]->type != REDIS_REPLY_STRING
        || reply->element[2]->len != 0
        || reply->element[3]->type != REDIS_REPLY_STRING
        || reply->element[3]->len == 0)
    {
        return;
    }

    ngx_http_engagement_trend_like(id, len);
}


/* the trending zone's figures in the status answer */

#define ngx_http_engagement_trend_field(f)                                    \
    offsetof(ngx_http_engagement_trend_stats_t, f)

static ngx_http_engagement_stat_row_t  ngx_http_engagement_trend_rows[] = {
    { "updates_total", "updates", NULL, "counter",
      "Views and likes added to the trending sketch",
      ngx_http_engagement_trend_field(added) },
    { "weight_total", "weight", NULL, "counter",
      "Their weight in views (a like counts engagement_trending_like_weight)",
      ngx_http_engagement_trend_field(weight) },
    { "evictions_total", "evictions", NULL, "counter",
      "Sketch entries given to another content (space-saving)",
      ngx_http_engagement_trend_field(evictions) },
    { "late_total", "late", NULL, "counter",
      "Updates whose bucket had been taken by the flush: not counted",
      ngx_http_engagement_trend_field(late) },
    { "no_category_total", "noCategory", NULL, "counter",
      "Updates whose category found no room in the bucket: counted "
      "globally only",
      ngx_http_engagement_trend_field(no_category) },
    { "buckets_flushed_total", "bucketsFlushed", NULL, "counter",
      "Buckets confirmed by Redis",
      ngx_http_engagement_trend_field(buckets_flushed) },
    { "items_flushed_total", "itemsFlushed", NULL, "counter",
      "Sketch items merged into Redis's sorted sets",
      ngx_http_engagement_trend_field(items_flushed) },
    { "flush_repeats_total", "flushRepeats", NULL, "counter",
      "Bucket scopes Redis had applied already (a resend)",
      ngx_http_engagement_trend_field(repeats) },
    { "flush_errors_total", "flushErrors", NULL, "counter",
      "Bucket scopes sent and not confirmed: sent again (or refused for "
      "good: a key of another type)",
      ngx_http_engagement_trend_field(flush_errors) },
    { "buckets_dropped_total", "bucketsDropped", NULL, "counter",
      "Buckets dropped unsent: the ring was full, or older than a day",
      ngx_http_engagement_trend_field(buckets_dropped) },
    { "reads_total", "reads", NULL, "counter",
      "Trending answers asked for (valid parameters)",
      ngx_http_engagement_trend_field(reads) },
    { "cache_hits_total", "cacheHits", NULL, "counter",
      "Trending answers from the worker's cache, or from a read of the "
      "same question already on its way",
      ngx_http_engagement_trend_field(cache_hits) },
    { "read_calls_total", "readCalls", NULL, "counter",
      "Trending reads sent to Redis (one per question not cached)",
      ngx_http_engagement_trend_field(read_calls) },
    { "read_errors_total", "readErrors", NULL, "counter",
      "Trending answers Redis could not give (503)",
      ngx_http_engagement_trend_field(read_errors) },
    { "items", "items", NULL, "gauge",
      "Sketch entries in use, in the buckets held",
      ngx_http_engagement_trend_field(items) },
    { "buckets", "buckets", NULL, "gauge",
      "Buckets held in the zone (the open one, those not yet in Redis)",
      ngx_http_engagement_trend_field(pending) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


size_t
ngx_http_engagement_trending_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    if (emcf->trend == NULL
        || ((ngx_http_engagement_trend_conf_t *) emcf->trend)->sh == NULL)
    {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("trending",
                                             ngx_http_engagement_trend_rows);
}


u_char *
ngx_http_engagement_trending_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_http_engagement_trend_conf_t  *tc;

    tc = emcf->trend;

    if (tc == NULL || tc->sh == NULL) {
        return p;
    }

    ngx_http_engagement_trend_gauges(tc);

    return ngx_http_engagement_stat_rows(p, "trending",
                                         ngx_http_engagement_trend_rows,
                                         ngx_http_engagement_trend_stats(tc),
                                         json, (size_t) -1, 0);
}
