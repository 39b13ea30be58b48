
/*
 * Trending sketches to Redis: once a second one worker of the edge
 * (whichever asks first once the turn is due) takes the closed buckets of
 * the trending zone (closed: the bucket's end and a grace passed) and
 * sends each scope of each (everything, then each category) with the
 * trend script: ZINCRBY of each item's count into the scope's minute and
 * hour sorted sets, eng:{tr}:m:<YYYYMMDDHHMM> and eng:{tr}:h:<YYYYMMDDHH>
 * (eng:{tr:cat:<category>}:... for a category), applied at most once per
 * (edge, zone, bucket, scope) through a batch key set if absent in the
 * same script. A bucket's slot is freed once Redis has confirmed every
 * scope; with no answer (Redis down, a timeout) the bucket stays and goes
 * again at a later turn, the batch keys keeping a resend from counting
 * twice. With a bucket shorter than a minute (tests), bucket b is named
 * as the minute b * 60 s after the epoch: minutes and hours of buckets.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_trend.h"
#include "sink/redis/ngx_http_engagement_redis.h"


/* how often a worker looks whether a turn is due, and the turn (ms) */
#define NGX_HTTP_ENGAGEMENT_TREND_CHECK   250
#define NGX_HTTP_ENGAGEMENT_TREND_TURN    1000
/* a bucket in flight is sent again after this long without all answers */
#define NGX_HTTP_ENGAGEMENT_TREND_RESEND  10000
/* buckets sent in one turn at most */
#define NGX_HTTP_ENGAGEMENT_TREND_PER_TURN  16
/* the batch keys outlive the longest a bucket is kept (a day) */
#define NGX_HTTP_ENGAGEMENT_TREND_BTTL    (2 * 86400)

#define NGX_HTTP_ENGAGEMENT_TREND_KEY_LEN                                     \
    (sizeof("eng:{tr:cat:}:b::0123456789abcdef:") + 2 * NGX_INT64_LEN        \
     + 2 * NGX_HTTP_ENGAGEMENT_ID_MAX)


typedef struct {
    ngx_http_engagement_trend_bucket_t  *bucket;
    ngx_uint_t                           scope;
} ngx_http_engagement_trend_call_t;


static ngx_event_t  ngx_http_engagement_trend_ev;
static ngx_str_t    ngx_http_engagement_trend_edge;
static ngx_uint_t   ngx_http_engagement_trend_logged;


/* the bucket answered for every scope sent: confirmed, freed */
static void
ngx_http_engagement_trend_finish(ngx_http_engagement_trend_bucket_t *b)
{
    ngx_http_engagement_trend_conf_t  *tc;

    tc = b->data;

    /* the running cycle's zone: a reload may have come meanwhile */
    if (tc == ngx_http_engagement_trend_conf()) {
        ngx_http_engagement_trend_sent(tc, b, b->done);
    }

    ngx_http_engagement_trend_bucket_free(b);
}


static void
ngx_http_engagement_trend_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_trend_call_t    *call = data;

    ngx_uint_t                           n;
    ngx_http_engagement_trend_conf_t    *tc;
    ngx_http_engagement_trend_bucket_t  *b;

    b = call->bucket;
    tc = b->data;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        b->done |= (uint64_t) 1 << call->scope;

        n = b->nitems[call->scope];

        if (reply->integer == 1) {
            ngx_http_engagement_trend_addn(tc, items_flushed, n);

        } else {
            ngx_http_engagement_trend_inc(tc, repeats);
        }

    } else if (reply && reply->type == REDIS_REPLY_ERROR
               && ngx_strstr(reply->str, "WRONGTYPE"))
    {
        /* the same answer every time: sending it again cannot help */
        b->done |= (uint64_t) 1 << call->scope;
        ngx_http_engagement_trend_inc(tc, flush_errors);

        if (!ngx_http_engagement_trend_logged) {
            ngx_http_engagement_trend_logged = 1;
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement redis: trending bucket dropped: "
                          "Redis said \"%*s\"", (size_t) reply->len,
                          reply->str);
        }

    } else {
        ngx_http_engagement_trend_inc(tc, flush_errors);
    }

    ngx_free(call);

    if (--b->outstanding == 0) {
        ngx_http_engagement_trend_finish(b);
    }
}


/* one scope of a bucket: its keys and items as the script's arguments */
static ngx_int_t
ngx_http_engagement_trend_send(ngx_http_engagement_trend_conf_t *tc,
    ngx_http_engagement_trend_bucket_t *b, ngx_uint_t scope)
{
    u_char                             *p, *tag, *minute, *buf;
    size_t                              tag_len, *lens;
    ngx_int_t                           rv;
    ngx_uint_t                          i, n, argc;
    const char                        **argv;
    ngx_http_engagement_trend_item_t   *it;
    ngx_http_engagement_trend_call_t   *call;
    u_char                              keys[3
                                          * NGX_HTTP_ENGAGEMENT_TREND_KEY_LEN];
    u_char                              ttls[3 * NGX_INT64_LEN];
    u_char                              tagbuf[sizeof("tr:cat:")
                                               + NGX_HTTP_ENGAGEMENT_ID_MAX];
    u_char                              mbuf[16];

    n = b->nitems[scope];
    argc = 1 + 3 + 3 + 2 * n;

    buf = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t))
                    + n * NGX_INT64_LEN, ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    argv = (const char **) buf;
    lens = (size_t *) (buf + argc * sizeof(char *));
    p = buf + argc * (sizeof(char *) + sizeof(size_t));

    if (scope == 0) {
        tag = (u_char *) "tr";
        tag_len = 2;

    } else {
        tag = tagbuf;
        tag_len = ngx_sprintf(tagbuf, "tr:cat:%*s",
                              (size_t) b->cats[scope - 1][0],
                              &b->cats[scope - 1][1])
                  - tagbuf;
    }

    minute = mbuf;
    (void) ngx_http_engagement_trend_minute(minute, b->bucket, tc->bucket);

    argv[0] = "3";
    lens[0] = 1;

    argv[1] = (const char *) keys;
    lens[1] = ngx_sprintf(keys, "eng:{%*s}:b:%V:%016xL:%L", tag_len, tag,
                          &ngx_http_engagement_trend_edge, b->stream,
                          b->bucket)
              - keys;
    argv[2] = argv[1] + lens[1];
    lens[2] = ngx_sprintf((u_char *) argv[2], "eng:{%*s}:m:%*s", tag_len,
                          tag, (size_t) 12, minute)
              - (u_char *) argv[2];
    argv[3] = argv[2] + lens[2];
    lens[3] = ngx_sprintf((u_char *) argv[3], "eng:{%*s}:h:%*s", tag_len,
                          tag, (size_t) 10, minute)
              - (u_char *) argv[3];

    argv[4] = (const char *) ttls;
    lens[4] = ngx_sprintf(ttls, "%d", NGX_HTTP_ENGAGEMENT_TREND_BTTL) - ttls;
    argv[5] = argv[4] + lens[4];
    lens[5] = ngx_sprintf((u_char *) argv[5], "%d",
                          NGX_HTTP_ENGAGEMENT_TREND_MTTL)
              - (u_char *) argv[5];
    argv[6] = argv[5] + lens[5];
    lens[6] = ngx_sprintf((u_char *) argv[6], "%d",
                          NGX_HTTP_ENGAGEMENT_TREND_HTTL)
              - (u_char *) argv[6];

    for (i = 0; i < n; i++) {
        it = &b->items[scope][i];
        argv[7 + 2 * i] = (const char *) it->id;
        lens[7 + 2 * i] = it->len;
        argv[8 + 2 * i] = (const char *) p;
        p = ngx_http_engagement_put_uint(p, it->count);
        lens[8 + 2 * i] = p - (u_char *) argv[8 + 2 * i];
    }

    call = ngx_alloc(sizeof(ngx_http_engagement_trend_call_t),
                     ngx_cycle->log);
    if (call == NULL) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    call->bucket = b;
    call->scope = scope;

    rv = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_TREND,
                                        ngx_http_engagement_trend_reply,
                                        call, (int) argc, argv, lens);
    ngx_free(buf);

    if (rv != NGX_OK) {
        ngx_free(call);
        return NGX_ERROR;
    }

    b->outstanding++;

    return NGX_OK;
}


static void
ngx_http_engagement_trend_handler(ngx_event_t *ev)
{
    ngx_uint_t                           i, s;
    ngx_http_engagement_trend_conf_t    *tc;
    ngx_http_engagement_trend_bucket_t  *b;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    tc = ev->data;

    if (!ngx_http_engagement_redis_ready()
        || !ngx_http_engagement_trend_due(tc, NGX_HTTP_ENGAGEMENT_TREND_TURN))
    {
        goto done;
    }

    ngx_http_engagement_trend_logged = 0;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_TREND_PER_TURN; i++) {
        b = ngx_http_engagement_trend_bucket_new(tc, ev->log);
        if (b == NULL) {
            break;
        }

        b->data = tc;

        if (ngx_http_engagement_trend_take(tc, b,
                                           NGX_HTTP_ENGAGEMENT_TREND_RESEND)
            != NGX_OK)
        {
            ngx_http_engagement_trend_bucket_free(b);
            break;
        }

        /* outstanding is one more until every scope is on its way */
        b->outstanding = 1;

        for (s = 0; s <= b->ncats; s++) {
            if ((b->todo & ((uint64_t) 1 << s))
                && ngx_http_engagement_trend_send(tc, b, s) != NGX_OK)
            {
                b->failed = 1;
                break;
            }
        }

        if (--b->outstanding == 0) {
            /* nothing went: the bucket is sent again at a later turn */
            ngx_http_engagement_trend_finish(b);
        }

        if (b->failed) {
            /* the connection is gone: the rest waits */
            break;
        }
    }

done:

    ngx_add_timer(ev, NGX_HTTP_ENGAGEMENT_TREND_CHECK);
}


ngx_int_t
ngx_http_engagement_trend_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_trend_conf_t  *tc;

    tc = ngx_http_engagement_trend_conf();

    if (tc == NULL) {
        return NGX_OK;
    }

    ngx_http_engagement_trend_edge = emcf->edge_id;

    ngx_http_engagement_trend_ev.handler = ngx_http_engagement_trend_handler;
    ngx_http_engagement_trend_ev.data = tc;
    ngx_http_engagement_trend_ev.log = cycle->log;
    ngx_http_engagement_trend_ev.cancelable = 1;

    /* workers look at different times: whoever is free takes the turn */
    ngx_add_timer(&ngx_http_engagement_trend_ev,
                  NGX_HTTP_ENGAGEMENT_TREND_CHECK / 2
                  + ngx_random() % NGX_HTTP_ENGAGEMENT_TREND_CHECK);

    return NGX_OK;
}
