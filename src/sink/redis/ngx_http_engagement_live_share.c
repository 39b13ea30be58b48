
/*
 * Live viewers across edges: every NGX_HTTP_ENGAGEMENT_LIVE_SHARE ms one
 * worker of the edge (whichever asks first once the period has passed)
 * takes from the live zone the contents to share and sends each one's
 * count here to Redis with the live script, which answers the other
 * edges' current counts; the answer goes back into the zone, where the
 * live endpoint, the summary and the live stream add it to this edge's.
 * One script call per content, pipelined on the worker's connection; a
 * content of which nothing came back keeps its last answer for two
 * heartbeat intervals. Nothing is sent while Redis is down or once the
 * worker is exiting (the new workers go on).
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_live.h"
#include "sink/redis/ngx_http_engagement_redis.h"


/* how often a worker looks whether a turn is due (ms) */
#define NGX_HTTP_ENGAGEMENT_SHARE_CHECK   500

/*
 * Contents taken from the zone at a time, and batches of them in one
 * turn: a turn covers up to 65,536 contents (beyond that they take turns,
 * and one renewed less often than its count stays current drops out of
 * the other edges' counts meanwhile).
 */
#define NGX_HTTP_ENGAGEMENT_SHARE_MAX     4096
#define NGX_HTTP_ENGAGEMENT_SHARE_BATCHES 16

/*
 * How long (ms) an edge's count stays current in Redis, and its key
 * lives: three and ten turns of NGX_HTTP_ENGAGEMENT_LIVE_SHARE (2 s).
 */
#define NGX_HTTP_ENGAGEMENT_SHARE_FRESH   "6000"
#define NGX_HTTP_ENGAGEMENT_SHARE_TTL     "20000"


typedef struct {
    ngx_http_engagement_live_conf_t  *lc;
    ngx_http_engagement_live_item_t   item;
} ngx_http_engagement_share_call_t;


static ngx_event_t                       ngx_http_engagement_share_ev;
static ngx_http_engagement_live_item_t  *ngx_http_engagement_share_items;
static ngx_str_t                         ngx_http_engagement_share_edge;
static ngx_uint_t                        ngx_http_engagement_share_logged;


static void
ngx_http_engagement_share_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_share_call_t  *call = data;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0) {
        ngx_http_engagement_live_apply(call->lc, &call->item,
                                       (ngx_uint_t) reply->integer);

    } else {
        ngx_http_engagement_live_inc(call->lc, share_errors);

        /* once per turn: a key of another type would say it every time */
        if (reply && reply->type == REDIS_REPLY_ERROR
            && !ngx_http_engagement_share_logged)
        {
            ngx_http_engagement_share_logged = 1;
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "live viewers of \"%*s\" not shared: Redis said "
                          "\"%*s\"", call->item.len, call->item.data,
                          (size_t) reply->len, reply->str);
        }
    }

    ngx_free(call);
}


static ngx_int_t
ngx_http_engagement_share_send(ngx_http_engagement_live_conf_t *lc,
    ngx_http_engagement_live_item_t *it)
{
    u_char                            *p;
    ngx_int_t                          rc;
    ngx_tm_t                           tm;
    const char                        *argv[11];
    size_t                             lens[11];
    ngx_http_engagement_share_call_t  *call;
    u_char                             key[sizeof("eng:{c:}:live")
                                           + NGX_HTTP_ENGAGEMENT_ID_MAX];
    u_char                             live[NGX_INT64_LEN];
    u_char                             minute[sizeof("YYYYMMDDHHMM")];

    call = ngx_alloc(sizeof(ngx_http_engagement_share_call_t),
                     ngx_cycle->log);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->lc = lc;
    call->item = *it;

    p = ngx_sprintf(key, "eng:{c:%*s}:live", it->len, it->data);

    /* the live key, then the totals key that names the buckets */
    argv[0] = "2";
    lens[0] = 1;
    argv[1] = (const char *) key;
    lens[1] = p - key;
    argv[2] = (const char *) key;
    lens[2] = p - key - (sizeof(":live") - 1);
    argv[3] = (const char *) ngx_http_engagement_share_edge.data;
    lens[3] = ngx_http_engagement_share_edge.len;

    if (it->live < 0) {
        argv[4] = "-";
        lens[4] = 1;

    } else {
        argv[4] = (const char *) live;
        lens[4] = ngx_sprintf(live, "%i", it->live) - live;
    }

    argv[5] = NGX_HTTP_ENGAGEMENT_SHARE_FRESH;
    lens[5] = sizeof(NGX_HTTP_ENGAGEMENT_SHARE_FRESH) - 1;
    argv[6] = NGX_HTTP_ENGAGEMENT_SHARE_TTL;
    lens[6] = sizeof(NGX_HTTP_ENGAGEMENT_SHARE_TTL) - 1;

    /* the peak's minute, by this edge's clock as the flush's buckets */
    ngx_gmtime(ngx_time(), &tm);
    argv[7] = (const char *) minute;
    lens[7] = ngx_sprintf(minute, "%04d%02d%02d%02d%02d", tm.ngx_tm_year,
                          tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                          tm.ngx_tm_min)
              - minute;
    argv[8] = NGX_HTTP_ENGAGEMENT_TTL_MINUTE;
    lens[8] = sizeof(NGX_HTTP_ENGAGEMENT_TTL_MINUTE) - 1;
    argv[9] = NGX_HTTP_ENGAGEMENT_TTL_HOUR;
    lens[9] = sizeof(NGX_HTTP_ENGAGEMENT_TTL_HOUR) - 1;
    argv[10] = NGX_HTTP_ENGAGEMENT_TTL_DAY;
    lens[10] = sizeof(NGX_HTTP_ENGAGEMENT_TTL_DAY) - 1;

    rc = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_LIVE,
                                        ngx_http_engagement_share_reply, call,
                                        11, argv, lens);
    if (rc != NGX_OK) {
        ngx_free(call);
        return NGX_ERROR;
    }

    ngx_http_engagement_live_inc(lc, shared);

    return NGX_OK;
}


static void
ngx_http_engagement_share_handler(ngx_event_t *ev)
{
    ngx_uint_t                        i, n, b;
    ngx_http_engagement_live_conf_t  *lc;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    lc = ev->data;

    if (ngx_http_engagement_redis_ready()
        && ngx_http_engagement_live_share_due(lc,
                                              NGX_HTTP_ENGAGEMENT_LIVE_SHARE))
    {
        ngx_http_engagement_share_logged = 0;

        for (b = 0; b < NGX_HTTP_ENGAGEMENT_SHARE_BATCHES; b++) {
            n = ngx_http_engagement_live_collect(lc,
                                         ngx_http_engagement_share_items,
                                         NGX_HTTP_ENGAGEMENT_SHARE_MAX);

            for (i = 0; i < n; i++) {
                if (ngx_http_engagement_share_send(lc,
                                        &ngx_http_engagement_share_items[i])
                    != NGX_OK)
                {
                    /* the connection is gone: the next turn sends them */
                    goto done;
                }
            }

            if (n < NGX_HTTP_ENGAGEMENT_SHARE_MAX) {
                /* the whole zone was looked at */
                break;
            }
        }
    }

done:

    ngx_add_timer(ev, NGX_HTTP_ENGAGEMENT_SHARE_CHECK);
}


ngx_int_t
ngx_http_engagement_live_share_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_live_conf_t  *lc;

    lc = emcf->live;

    if (lc == NULL || lc->shm_zone == NULL || !lc->share || lc->sh == NULL) {
        return NGX_OK;
    }

    ngx_http_engagement_share_items = ngx_alloc(
                            NGX_HTTP_ENGAGEMENT_SHARE_MAX
                            * sizeof(ngx_http_engagement_live_item_t),
                            cycle->log);
    if (ngx_http_engagement_share_items == NULL) {
        return NGX_ERROR;
    }

    ngx_http_engagement_share_edge = emcf->edge_id;

    ngx_http_engagement_share_ev.handler = ngx_http_engagement_share_handler;
    ngx_http_engagement_share_ev.data = lc;
    ngx_http_engagement_share_ev.log = cycle->log;
    ngx_http_engagement_share_ev.cancelable = 1;

    /* workers look at different times: whoever is free takes the turn */
    ngx_add_timer(&ngx_http_engagement_share_ev,
                  NGX_HTTP_ENGAGEMENT_SHARE_CHECK / 2
                  + ngx_random() % NGX_HTTP_ENGAGEMENT_SHARE_CHECK);

    return NGX_OK;
}
