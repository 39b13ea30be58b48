
/*
 * Resume positions to Redis: every NGX_HTTP_ENGAGEMENT_RESUME_FLUSH ms
 * one worker of the edge (whichever asks first once the period has
 * passed) takes the pending positions from the resume zone and sends
 * each with the resume script, pipelined on the worker's connection. A
 * position is clean in the zone only once Redis answered for it (applied,
 * or older than what Redis has); with no answer (Redis down, a timeout)
 * it stays pending and goes again in a later turn. A refusal that a
 * resend cannot cure (a key of another type) drops it, counted and
 * logged once per turn. A turn of its own, not the live share's: it runs
 * whenever there is a Redis, with engagement_live_redis on or off.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_resume.h"
#include "sink/redis/ngx_http_engagement_redis.h"


/* how often a worker looks whether a turn is due (ms) */
#define NGX_HTTP_ENGAGEMENT_RESUME_CHECK  250

/*
 * Positions taken from the zone at a time, and batches of them in one
 * turn: up to 32,768 positions a turn (a second); beyond that, the rest
 * in the next turns. A batch that comes round to positions still on
 * their way sends them again, which changes nothing.
 */
#define NGX_HTTP_ENGAGEMENT_RESUME_MAX      4096
#define NGX_HTTP_ENGAGEMENT_RESUME_BATCHES  8


typedef struct {
    ngx_http_engagement_resume_conf_t  *rc;
    ngx_http_engagement_position_t      pos;
} ngx_http_engagement_resume_call_t;


static ngx_event_t                      ngx_http_engagement_resume_ev;
static ngx_http_engagement_position_t  *ngx_http_engagement_resume_items;
static ngx_uint_t                       ngx_http_engagement_resume_logged;


static void
ngx_http_engagement_resume_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_resume_call_t  *call = data;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        ngx_http_engagement_resume_done(call->rc, &call->pos);
        ngx_http_engagement_resume_inc(call->rc, flushed);

    } else if (reply && reply->type == REDIS_REPLY_ERROR
               && ngx_strstr(reply->str, "WRONGTYPE"))
    {
        /* the same answer every time: sending it again cannot help */
        ngx_http_engagement_resume_done(call->rc, &call->pos);
        ngx_http_engagement_resume_inc(call->rc, refused);

        if (!ngx_http_engagement_resume_logged) {
            ngx_http_engagement_resume_logged = 1;
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "resume position of user \"%*s\" on \"%*s\" "
                          "dropped: Redis said \"%*s\"",
                          (size_t) call->pos.ulen, call->pos.user,
                          (size_t) call->pos.clen, call->pos.content,
                          (size_t) reply->len, reply->str);
        }

    } else {
        /* no answer, or one that may pass (NOSCRIPT, LOADING): again */
        ngx_http_engagement_resume_inc(call->rc, errors);
    }

    ngx_free(call);
}


static ngx_int_t
ngx_http_engagement_resume_send(ngx_http_engagement_resume_conf_t *rc,
    ngx_http_engagement_position_t *it)
{
    u_char                             *p;
    ngx_int_t                           rv;
    const char                         *argv[10];
    size_t                              lens[10];
    ngx_http_engagement_resume_call_t  *call;
    u_char                              keys[3 * (sizeof("eng:{u:}:history")
                                             + NGX_HTTP_ENGAGEMENT_ID_MAX)];
    u_char                              nums[5 * NGX_INT64_LEN];

    call = ngx_alloc(sizeof(ngx_http_engagement_resume_call_t),
                     ngx_cycle->log);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->rc = rc;
    call->pos = *it;

    /* the user's keys share a hash tag: one slot */
    argv[0] = "3";
    lens[0] = 1;

    p = keys;
    argv[1] = (const char *) p;
    p = ngx_sprintf(p, "eng:{u:%*s}:resume", (size_t) it->ulen, it->user);
    lens[1] = p - (u_char *) argv[1];
    argv[2] = (const char *) p;
    p = ngx_sprintf(p, "eng:{u:%*s}:history", (size_t) it->ulen, it->user);
    lens[2] = p - (u_char *) argv[2];
    argv[3] = (const char *) p;
    p = ngx_sprintf(p, "eng:{u:%*s}:cleared", (size_t) it->ulen, it->user);
    lens[3] = p - (u_char *) argv[3];

    argv[4] = (const char *) it->content;
    lens[4] = it->clen;

    p = nums;
    argv[5] = (const char *) p;
    p = ngx_sprintf(p, "%L", it->position);
    lens[5] = p - (u_char *) argv[5];

    argv[6] = (const char *) p;

    if (it->duration >= 0) {
        p = ngx_sprintf(p, "%L", it->duration);
    }

    lens[6] = p - (u_char *) argv[6];

    argv[7] = (const char *) p;
    p = ngx_sprintf(p, "%L", it->updated);
    lens[7] = p - (u_char *) argv[7];

    argv[8] = (const char *) p;
    p = ngx_sprintf(p, "%d", NGX_HTTP_ENGAGEMENT_RESUME_HISTORY);
    lens[8] = p - (u_char *) argv[8];

    argv[9] = (const char *) p;
    p = ngx_sprintf(p, "%L", (int64_t) NGX_HTTP_ENGAGEMENT_RESUME_TTL);
    lens[9] = p - (u_char *) argv[9];

    rv = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_RESUME,
                                        ngx_http_engagement_resume_reply,
                                        call, 10, argv, lens);
    if (rv != NGX_OK) {
        ngx_free(call);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_engagement_resume_handler(ngx_event_t *ev)
{
    ngx_uint_t                          i, n, b;
    ngx_http_engagement_resume_conf_t  *rc;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    rc = ev->data;

    if (ngx_http_engagement_redis_ready()
        && ngx_http_engagement_resume_stats(rc)->pending
        && ngx_http_engagement_resume_due(rc,
                                          NGX_HTTP_ENGAGEMENT_RESUME_FLUSH))
    {
        ngx_http_engagement_resume_logged = 0;

        for (b = 0; b < NGX_HTTP_ENGAGEMENT_RESUME_BATCHES; b++) {
            n = ngx_http_engagement_resume_collect(rc,
                                        ngx_http_engagement_resume_items,
                                        NGX_HTTP_ENGAGEMENT_RESUME_MAX);

            for (i = 0; i < n; i++) {
                if (ngx_http_engagement_resume_send(rc,
                                        &ngx_http_engagement_resume_items[i])
                    != NGX_OK)
                {
                    /* the connection is gone: they stay pending */
                    goto done;
                }
            }

            if (n < NGX_HTTP_ENGAGEMENT_RESUME_MAX) {
                /* every pending position is on its way */
                break;
            }
        }
    }

done:

    ngx_add_timer(ev, NGX_HTTP_ENGAGEMENT_RESUME_CHECK);
}


ngx_int_t
ngx_http_engagement_resume_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_resume_conf_t  *rc;

    rc = emcf->resume;

    if (rc == NULL || rc->shm_zone == NULL || rc->sh == NULL) {
        return NGX_OK;
    }

    ngx_http_engagement_resume_items = ngx_alloc(
                            NGX_HTTP_ENGAGEMENT_RESUME_MAX
                            * sizeof(ngx_http_engagement_position_t),
                            cycle->log);
    if (ngx_http_engagement_resume_items == NULL) {
        return NGX_ERROR;
    }

    ngx_http_engagement_resume_ev.handler = ngx_http_engagement_resume_handler;
    ngx_http_engagement_resume_ev.data = rc;
    ngx_http_engagement_resume_ev.log = cycle->log;
    ngx_http_engagement_resume_ev.cancelable = 1;

    /* workers look at different times: whoever is free takes the turn */
    ngx_add_timer(&ngx_http_engagement_resume_ev,
                  NGX_HTTP_ENGAGEMENT_RESUME_CHECK / 2
                  + ngx_random() % NGX_HTTP_ENGAGEMENT_RESUME_CHECK);

    return NGX_OK;
}
