
/*
 * Global dedupe's rounds (engagement_dedupe_scope global): a timer in
 * every worker takes a round of the views that wait in the global zone
 * (policy/global.c) and sends it to Redis with the global script, one
 * round in flight per worker; the answer (a digit per view) goes back to
 * the zone, where the views are counted or filed as duplicates. A round
 * not answered stays the worker's and is sent again as it was; a dead
 * worker's is taken over by another. In cluster mode a round holds the
 * views of one group (below), its answers' key in that group's slot. An exiting
 * worker goes on until nothing waits or the exit deadline, so that a
 * stop leaves nothing undecided while Redis answers.
 *
 * The marks are not in their content's slot but in one of
 * NGX_HTTP_ENGAGEMENT_GLOBAL_GROUPS groups (the tag {gd:<n>}, n from a
 * hash of the content id): the slots of a content's marks are few, so a
 * round gathers many views (a round per content slot held two views on
 * average under load, and the rounds fell behind).
 */


#include "store/ngx_http_engagement_store.h"
#include "policy/ngx_http_engagement_global.h"
#include "sink/redis/ngx_http_engagement_redis.h"


/* the answers' TTL (s): a round sent again later is not recognised */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_TTL   "86400"

/* the arguments of a round: the numkeys, the answers' key, the TTL */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_HEAD  3

/* a view's: two keys, its id, its marks, its window, its key count */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_ARGS  6

/* a view's text beyond its content id */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_TEXT                                       \
    (2 * (sizeof("eng:gd:{gd:}::") + NGX_INT32_LEN + 16)                      \
     + 4 * NGX_INT64_LEN)

/* the groups of marks in cluster mode: a round holds the views of one */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_GROUPS  64


static ngx_event_t                          ngx_http_engagement_gflush_ev;
static ngx_http_engagement_global_conf_t   *ngx_http_engagement_gflush_gc;
static ngx_http_engagement_global_round_t  *ngx_http_engagement_gflush_round;
static ngx_uint_t                           ngx_http_engagement_gflush_busy;
static ngx_msec_t                           ngx_http_engagement_gflush_until;
static ngx_str_t                            ngx_http_engagement_gflush_edge;
static const char                         **ngx_http_engagement_gflush_argv;
static size_t                              *ngx_http_engagement_gflush_lens;
static u_char                              *ngx_http_engagement_gflush_text;


static void ngx_http_engagement_gflush_arm(ngx_msec_t t);


/* the group of a content's marks, for rounds in cluster mode */

static ngx_uint_t
ngx_http_engagement_gflush_group(const u_char *id, size_t len)
{
    return ngx_crc32_short((u_char *) id, len)
           % NGX_HTTP_ENGAGEMENT_GLOBAL_GROUPS;
}


static void
ngx_http_engagement_gflush_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_global_round_t  *round = data;

    ngx_http_engagement_gflush_busy = 0;

    if (reply && reply->type == REDIS_REPLY_STRING
        && (size_t) reply->len == round->n)
    {
        ngx_http_engagement_global_resolve(ngx_http_engagement_gflush_gc,
                                           round, (u_char *) reply->str);

        /* more may wait: the next round at once */
        ngx_http_engagement_gflush_arm(1);
        return;
    }

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_dedupe_scope: a round of %ui views was "
                      "refused by Redis (\"%*s\"): sent again",
                      round->n, (size_t) reply->len, reply->str);
    }

    ngx_http_engagement_global_failed(ngx_http_engagement_gflush_gc, round);
}


/* a round's arguments and its call; NGX_OK: sent */

static ngx_int_t
ngx_http_engagement_gflush_send(ngx_http_engagement_global_round_t *round)
{
    u_char                              *p, *s;
    ngx_int_t                            rc;
    ngx_uint_t                           i, j, k, a, nkeys;
    const char                         **argv;
    size_t                              *lens;
    ngx_http_engagement_global_entry_t  *e;

    argv = ngx_http_engagement_gflush_argv;
    lens = ngx_http_engagement_gflush_lens;
    p = ngx_http_engagement_gflush_text;

    /* the answers' key: in the round's group in cluster mode */
    s = p;

    if (ngx_http_engagement_redis_clustered()) {
        p = ngx_sprintf(p, "eng:gdr:{gd:%ui}:%V:%016uxL:%uL", round->slot,
                        &ngx_http_engagement_gflush_edge, round->birth,
                        round->seq);

    } else {
        p = ngx_sprintf(p, "eng:gdr:%V:%016uxL:%uL",
                        &ngx_http_engagement_gflush_edge, round->birth,
                        round->seq);
    }

    argv[1] = (const char *) s;
    lens[1] = p - s;

    /* the keys of every view, the TTL, then each view's arguments */
    k = 2;

    for (i = 0; i < round->n; i++) {
        e = round->e[i];

        for (j = 0; j < (ngx_uint_t) (e->nkeys > 1 ? 2 : 1); j++) {
            s = p;

            if (ngx_http_engagement_redis_clustered()) {
                p = ngx_sprintf(p, "eng:gd:{gd:%ui}:%*s:%016uxL",
                                round->slot, (size_t) e->len[0], e->data,
                                e->keys[j]);

            } else {
                p = ngx_sprintf(p, "eng:gd:{c:%*s}:%016uxL",
                                (size_t) e->len[0], e->data, e->keys[j]);
            }

            argv[k] = (const char *) s;
            lens[k++] = p - s;
        }
    }

    nkeys = k - 1;
    a = k;

    argv[a] = NGX_HTTP_ENGAGEMENT_GLOBAL_TTL;
    lens[a++] = sizeof(NGX_HTTP_ENGAGEMENT_GLOBAL_TTL) - 1;

    for (i = 0; i < round->n; i++) {
        e = round->e[i];

        s = p;
        p = ngx_sprintf(p, "%uL", e->id);
        argv[a] = (const char *) s;
        lens[a++] = p - s;

        s = p;
        p = ngx_sprintf(p, "%ud", (ngx_uint_t) e->kinds);
        argv[a] = (const char *) s;
        lens[a++] = p - s;

        s = p;
        p = ngx_sprintf(p, "%uD", e->window);
        argv[a] = (const char *) s;
        lens[a++] = p - s;

        argv[a] = e->nkeys > 1 ? "2" : "1";
        lens[a++] = 1;
    }

    s = p;
    p = ngx_sprintf(p, "%ui", nkeys);
    argv[0] = (const char *) s;
    lens[0] = p - s;

    rc = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_GLOBAL,
                                        ngx_http_engagement_gflush_reply,
                                        round, (int) a, argv, lens);
    return rc;
}


static void
ngx_http_engagement_gflush_handler(ngx_event_t *ev)
{
    ngx_http_engagement_global_conf_t   *gc;
    ngx_http_engagement_global_round_t  *round;

    gc = ngx_http_engagement_gflush_gc;
    round = ngx_http_engagement_gflush_round;

    if ((ngx_exiting || ngx_quit || ngx_terminate)
        && ngx_http_engagement_gflush_until == 0)
    {
        ngx_http_engagement_gflush_until = ngx_current_msec
            + ((ngx_http_engagement_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(ngx_cycle,
                   ngx_http_engagement_module))->exit_deadline;
    }

    if (ngx_http_engagement_gflush_until
        && (ngx_msec_int_t) (ngx_current_msec
                             - ngx_http_engagement_gflush_until) >= 0)
    {
        /* the deadline: what waits is taken over by the next workers */
        return;
    }

    if (!ngx_http_engagement_gflush_busy
        && ngx_http_engagement_redis_ready()
        && ngx_http_engagement_global_take(gc, round,
                   ngx_http_engagement_redis_clustered()
                   ? ngx_http_engagement_gflush_group : NULL))
    {
        if (ngx_http_engagement_gflush_send(round) == NGX_OK) {
            ngx_http_engagement_gflush_busy = 1;

        } else {
            ngx_http_engagement_global_failed(gc, round);
        }
    }

    if (ngx_http_engagement_gflush_until
        && !ngx_http_engagement_gflush_busy
        && ngx_http_engagement_global_idle(gc))
    {
        /* exiting, and nothing waits: the worker may go */
        return;
    }

    ngx_http_engagement_gflush_arm(gc->interval);
}


static void
ngx_http_engagement_gflush_arm(ngx_msec_t t)
{
    ngx_event_t  *ev;

    ev = &ngx_http_engagement_gflush_ev;

    /*
     * Not cancelable: at a stop or reload it fires, and keeps the worker
     * while views wait, until the exit deadline.
     */
    ev->cancelable = 0;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    ngx_add_timer(ev, t);
}


/*
 * Whether an exiting worker may close its Redis connection as far as
 * global dedupe goes: nothing waits in the zone (decided views put
 * counts in the counters zone, which the final flush sends next), or the
 * exit deadline passed.
 */

ngx_uint_t
ngx_http_engagement_global_flush_done(void)
{
    if (ngx_http_engagement_gflush_gc == NULL) {
        return 1;
    }

    if (ngx_http_engagement_gflush_until
        && (ngx_msec_int_t) (ngx_current_msec
                             - ngx_http_engagement_gflush_until) >= 0)
    {
        return 1;
    }

    return !ngx_http_engagement_gflush_busy
           && ngx_http_engagement_global_idle(ngx_http_engagement_gflush_gc);
}


ngx_int_t
ngx_http_engagement_global_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    size_t                              n;
    ngx_http_engagement_global_conf_t  *gc;

    gc = emcf->global;

    if (gc == NULL || gc->sh == NULL) {
        return NGX_OK;
    }

    ngx_http_engagement_gflush_gc = gc;
    ngx_http_engagement_gflush_edge = emcf->edge_id;

    ngx_http_engagement_gflush_round =
        ngx_alloc(sizeof(ngx_http_engagement_global_round_t), cycle->log);

    /* room for the largest round: a dead worker's may be of another batch= */
    n = NGX_HTTP_ENGAGEMENT_GLOBAL_HEAD
        + NGX_HTTP_ENGAGEMENT_GLOBAL_ARGS
          * NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH_MAX;

    ngx_http_engagement_gflush_argv = ngx_alloc(n * sizeof(char *),
                                                cycle->log);
    ngx_http_engagement_gflush_lens = ngx_alloc(n * sizeof(size_t),
                                                cycle->log);
    ngx_http_engagement_gflush_text = ngx_alloc(
        sizeof("eng:gdr:{}::") + 16 + 3 * NGX_INT64_LEN
        + NGX_HTTP_ENGAGEMENT_ID_MAX
        + NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH_MAX
          * (NGX_HTTP_ENGAGEMENT_GLOBAL_TEXT + 2 * NGX_HTTP_ENGAGEMENT_ID_MAX),
        cycle->log);

    if (ngx_http_engagement_gflush_round == NULL
        || ngx_http_engagement_gflush_argv == NULL
        || ngx_http_engagement_gflush_lens == NULL
        || ngx_http_engagement_gflush_text == NULL)
    {
        return NGX_ERROR;
    }

    ngx_http_engagement_gflush_round->n = 0;

    ngx_http_engagement_gflush_ev.handler = ngx_http_engagement_gflush_handler;
    ngx_http_engagement_gflush_ev.log = cycle->log;
    ngx_http_engagement_gflush_ev.data = gc;

    ngx_http_engagement_gflush_arm(gc->interval / 2
                                   + ngx_random() % gc->interval);

    return NGX_OK;
}
