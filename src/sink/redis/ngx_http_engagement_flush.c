
/*
 * The flush: a timer in every worker claims dirty counter deltas from the
 * shared-memory zones and sends them to Redis, one script call per content
 * (all of its events aggregated), pipelined on the worker's connection.
 * A delta leaves shared memory only when Redis confirms it; a failed or
 * orphaned claim is resent as the same batch (stream and sequence), which
 * the script applies at most once. On a graceful stop the timer turns
 * into a final flush with a deadline; what is left is saved by the master
 * at exit. At a reload an old worker sends one round and waits for its
 * own claims only: the zone's later deltas are the new workers' to send.
 */


#include "store/ngx_http_engagement_store.h"
#include "sink/redis/ngx_http_engagement_redis.h"


typedef struct {
    ngx_uint_t                     n;
    ngx_uint_t                     outstanding;
    ngx_uint_t                     full;        /* a zone had more */
    ngx_msec_t                     started;
    ngx_http_engagement_claim_t    claims[1];
} ngx_http_engagement_round_t;


typedef struct {
    ngx_http_engagement_round_t   *round;
    ngx_http_engagement_claim_t   *claim;
} ngx_http_engagement_call_t;


static void ngx_http_engagement_flush_timer(ngx_msec_t t);


static ngx_event_t                    ngx_http_engagement_flush_ev;
static ngx_http_engagement_round_t   *ngx_http_engagement_round;
static ngx_msec_t                     ngx_http_engagement_exit_at;
static ngx_msec_t                     ngx_http_engagement_flush_due;
static ngx_uint_t                     ngx_http_engagement_flush_on;
static ngx_uint_t                     ngx_http_engagement_exit_sent;


/*
 * The flush timer wakes at least this often, so that a graceful stop or
 * reload starts its final flush within this bound whatever the interval.
 */
#define NGX_HTTP_ENGAGEMENT_EXIT_CHECK  250

/* during the final flush, how often to look whether all is answered */
#define NGX_HTTP_ENGAGEMENT_EXIT_POLL   20

/*
 * A claim is taken over by another worker when its flusher has not
 * answered within two command timeouts and this much more (ms).
 */
#define NGX_HTTP_ENGAGEMENT_RECLAIM_SLACK  1000


/*
 * The flush script's arguments: the number of keys, its 6 keys and its 9
 * arguments before the reaction types and the viewer hashes.
 */
#define NGX_HTTP_ENGAGEMENT_FLUSH_KEYS  6
#define NGX_HTTP_ENGAGEMENT_FLUSH_ARGS  (1 + NGX_HTTP_ENGAGEMENT_FLUSH_KEYS + 9)

/* the numbers written as text: keys, sequence, 3 deltas, reaction types */
#define NGX_HTTP_ENGAGEMENT_FLUSH_NUMBERS  6


/* bucket TTLs: minutes ~8 days, hours ~400 days, days ~3 years */
#define NGX_HTTP_ENGAGEMENT_TTL_MINUTE  "691200"
#define NGX_HTTP_ENGAGEMENT_TTL_HOUR    "34560000"
#define NGX_HTTP_ENGAGEMENT_TTL_DAY     "95040000"


static void
ngx_http_engagement_round_done(ngx_http_engagement_round_t *round)
{
    ngx_uint_t                             i;
    ngx_msec_t                             ms;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = ngx_http_engagement_global_sh;

    if (sh && round->n) {
        ms = ngx_current_msec - round->started;

        for (i = 0; i < NGX_HTTP_ENGAGEMENT_HIST - 1; i++) {
            if (ms <= ngx_http_engagement_hist_bounds[i]) {
                break;
            }
        }

        ngx_http_engagement_add(sh, flush_latency_ms, ms);
        ngx_http_engagement_inc(sh, flush_rounds);
        ngx_http_engagement_inc(sh, flush_hist[i]);
    }

    if (ngx_http_engagement_round == round) {
        ngx_http_engagement_round = NULL;
    }

    /*
     * A backlog larger than one round drains round after round, not one
     * round per interval: the next round starts as soon as this one is
     * answered.
     */
    if (round->full && ngx_http_engagement_flush_on && !ngx_exiting
        && ngx_http_engagement_flush_ev.timer_set)
    {
        ngx_http_engagement_flush_due = ngx_current_msec;
        ngx_http_engagement_flush_timer(1);
    }

    ngx_free(round);
}


static void
ngx_http_engagement_flush_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_call_t             *call = data;
    ngx_int_t                               applied;
    uint64_t                                uniques;
    uint64_t                                reactions[
                                         NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];
    ngx_http_engagement_claim_t            *cl;
    ngx_http_engagement_round_t            *round;
    ngx_http_engagement_counts_t            totals;
    ngx_http_engagement_counters_shctx_t   *sh;

    cl = call->claim;
    round = call->round;
    sh = cl->zone->sh;

    if (ngx_http_engagement_reply_totals(reply, &totals, &uniques, &applied,
                                         reactions, cl->zone->nreactions)
        == NGX_OK)
    {
        ngx_http_engagement_counters_confirm(cl, &totals, uniques, reactions);
        ngx_http_engagement_inc(sh, flush_ok);

        if (!applied) {
            /* a resent batch Redis had applied already: counted once */
            ngx_http_engagement_inc(sh, flush_repeats);
        }

    } else {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement redis: flush of \"%*s\" failed: %s; "
                          "it will be retried", cl->id_len, cl->id,
                          reply->str);
        }

        ngx_http_engagement_counters_release(cl);
        ngx_http_engagement_inc(sh, flush_failed);
    }

    ngx_free(call);

    if (--round->outstanding == 0) {
        ngx_http_engagement_round_done(round);
    }
}


/*
 * The arguments of one script call, in one allocation: the argv and
 * length arrays, then the text of the arguments that are made here.
 */
typedef struct {
    const char                   **argv;
    size_t                        *lens;
    u_char                        *p;         /* where the next text goes */
    ngx_uint_t                     n;
} ngx_http_engagement_args_t;


static void
ngx_http_engagement_args_str(ngx_http_engagement_args_t *a, const void *s,
    size_t len)
{
    a->argv[a->n] = s;
    a->lens[a->n++] = len;
}


/* the text written since start is the next argument */

static void
ngx_http_engagement_args_end(ngx_http_engagement_args_t *a, u_char *start)
{
    ngx_http_engagement_args_str(a, start, a->p - start);
}


static void
ngx_http_engagement_args_uint(ngx_http_engagement_args_t *a, uint64_t n)
{
    u_char  *start;

    start = a->p;
    a->p = ngx_http_engagement_put_uint(a->p, n);
    ngx_http_engagement_args_end(a, start);
}


/* a key of the content: eng:{c:<id>} and a suffix */

static u_char *
ngx_http_engagement_args_key(ngx_http_engagement_args_t *a, u_char *prefix,
    size_t plen, const char *suffix)
{
    u_char  *start;

    start = a->p;
    a->p = ngx_cpymem(a->p, prefix, plen);
    a->p = ngx_cpymem(a->p, suffix, ngx_strlen(suffix));

    return start;
}


/*
 * KEYS: the totals, flush marks, minute, hour and day buckets (of the
 * minute the batch's deltas arrived in) and the unique-viewer HyperLogLog;
 * they share the hash tag eng:{c:<id>}, so a content's keys share a slot.
 */

static void
ngx_http_engagement_flush_keys(ngx_http_engagement_args_t *a,
    ngx_http_engagement_claim_t *cl)
{
    u_char    *prefix, *minute, *key;
    size_t     plen;
    ngx_tm_t   tm;

    ngx_gmtime(cl->since ? cl->since : ngx_time(), &tm);

    prefix = a->p;
    a->p = ngx_cpymem(a->p, "eng:{c:", sizeof("eng:{c:") - 1);
    a->p = ngx_cpymem(a->p, cl->id, cl->id_len);
    *a->p++ = '}';
    plen = a->p - prefix;
    ngx_http_engagement_args_end(a, prefix);

    key = ngx_http_engagement_args_key(a, prefix, plen, ":fl");
    ngx_http_engagement_args_end(a, key);

    minute = ngx_http_engagement_args_key(a, prefix, plen, ":m:");
    a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_year, 4);
    a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_mon, 2);
    a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_mday, 2);
    a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_hour, 2);
    a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_min, 2);
    ngx_http_engagement_args_end(a, minute);

    /* the hour and day keys are the minute key, shorter: YYYYMMDDHH[MM] */
    key = a->p;
    a->p = ngx_cpymem(a->p, minute, plen + sizeof(":m:") - 1 + 10);
    key[plen + 1] = 'h';
    ngx_http_engagement_args_end(a, key);

    key = a->p;
    a->p = ngx_cpymem(a->p, minute, plen + sizeof(":m:") - 1 + 8);
    key[plen + 1] = 'd';
    ngx_http_engagement_args_end(a, key);

    key = ngx_http_engagement_args_key(a, prefix, plen, ":uv");
    ngx_http_engagement_args_end(a, key);
}


/*
 * ARGV: the batch's stream (its field in the flush marks), sequence, the
 * three deltas, the three bucket TTLs, the reaction types whose counts the
 * answer carries, the viewer hashes. A batch restored from a state file of
 * an earlier version has no stream: it was sent under the edge id then.
 */

static void
ngx_http_engagement_flush_values(ngx_http_engagement_args_t *a,
    ngx_http_engagement_main_conf_t *emcf, ngx_http_engagement_claim_t *cl)
{
    u_char      *start;
    ngx_str_t   *types;
    ngx_uint_t   k;

    if (cl->stream) {
        start = a->p;
        a->p = ngx_cpymem(a->p, "s:", 2);
        a->p = ngx_http_engagement_put_hex64(a->p, cl->stream);
        ngx_http_engagement_args_end(a, start);

    } else {
        ngx_http_engagement_args_str(a, emcf->edge_id.data,
                                     emcf->edge_id.len);
    }

    ngx_http_engagement_args_uint(a, cl->seq);
    ngx_http_engagement_args_uint(a, cl->delta.views);
    ngx_http_engagement_args_uint(a, cl->delta.engaged);
    ngx_http_engagement_args_uint(a, cl->delta.replays);

    ngx_http_engagement_args_str(a, NGX_HTTP_ENGAGEMENT_TTL_MINUTE,
                                 sizeof(NGX_HTTP_ENGAGEMENT_TTL_MINUTE) - 1);
    ngx_http_engagement_args_str(a, NGX_HTTP_ENGAGEMENT_TTL_HOUR,
                                 sizeof(NGX_HTTP_ENGAGEMENT_TTL_HOUR) - 1);
    ngx_http_engagement_args_str(a, NGX_HTTP_ENGAGEMENT_TTL_DAY,
                                 sizeof(NGX_HTTP_ENGAGEMENT_TTL_DAY) - 1);

    ngx_http_engagement_args_uint(a, cl->zone->nreactions);

    types = cl->zone->nreactions ? emcf->reactions->elts : NULL;

    for (k = 0; k < cl->zone->nreactions; k++) {
        ngx_http_engagement_args_str(a, types[k].data, types[k].len);
    }

    for (k = 0; k < cl->uv_n; k++) {
        start = a->p;
        a->p = ngx_http_engagement_put_hex64(a->p, cl->uv[k]);
        ngx_http_engagement_args_end(a, start);
    }
}


static ngx_int_t
ngx_http_engagement_flush_send(ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_round_t *round, ngx_http_engagement_claim_t *cl)
{
    u_char                      *buf;
    size_t                       size;
    ngx_int_t                    rc;
    ngx_uint_t                   argc;
    ngx_http_engagement_args_t   a;
    ngx_http_engagement_call_t  *call;

    argc = NGX_HTTP_ENGAGEMENT_FLUSH_ARGS + cl->zone->nreactions + cl->uv_n;

    size = argc * (sizeof(char *) + sizeof(size_t))
           + NGX_HTTP_ENGAGEMENT_FLUSH_KEYS
             * (sizeof("eng:{c:}:m:YYYYMMDDHHMM") + cl->id_len)
           + NGX_HTTP_ENGAGEMENT_FLUSH_NUMBERS * NGX_INT64_LEN
           + sizeof("s:") + 16
           + cl->uv_n * 16;

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    a.argv = (const char **) buf;
    a.lens = (size_t *) (a.argv + argc);
    a.p = (u_char *) (a.lens + argc);
    a.n = 0;

    ngx_http_engagement_args_uint(&a, NGX_HTTP_ENGAGEMENT_FLUSH_KEYS);

    ngx_http_engagement_flush_keys(&a, cl);
    ngx_http_engagement_flush_values(&a, emcf, cl);

    call = ngx_alloc(sizeof(ngx_http_engagement_call_t), ngx_cycle->log);
    if (call == NULL) {
        ngx_free(buf);
        return NGX_ERROR;
    }

    call->round = round;
    call->claim = cl;

    rc = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_FLUSH,
                                        ngx_http_engagement_flush_reply, call,
                                        (int) argc, a.argv, a.lens);

    /* hiredis has formatted the command into its own buffer */
    ngx_free(buf);

    if (rc != NGX_OK) {
        ngx_free(call);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The zones this worker flushes: those with Redis; once it is exiting and
 * has sent its first final round, only those no newer generation of
 * flushers shares. At a reload the old worker's final flush is then one
 * round and a wait for its own claims (answered or released): what is
 * pending later is the new workers' to send, the zone outliving the
 * reload; at a stop it flushes all it can.
 */

static ngx_uint_t
ngx_http_engagement_flush_mine(ngx_http_engagement_zone_t *z)
{
    if (z->dedupe || !z->redis) {
        return 0;
    }

    return !ngx_exiting || !ngx_http_engagement_exit_sent
           || !ngx_http_engagement_counters_leave(z);
}


static ngx_uint_t
ngx_http_engagement_flush_round(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_uint_t                    i, j, n, sent, full;
    ngx_msec_t                    reclaim;
    ngx_http_engagement_zone_t  **zp, *z;
    ngx_http_engagement_round_t  *round;

    zp = emcf->zones.elts;

    round = ngx_alloc(sizeof(ngx_http_engagement_round_t)
                      + emcf->flush_batch * emcf->zones.nelts
                        * sizeof(ngx_http_engagement_claim_t),
                      ngx_cycle->log);
    if (round == NULL) {
        return 0;
    }

    round->n = 0;
    round->full = 0;
    round->outstanding = 1;     /* held until every command is sent */
    round->started = ngx_current_msec;
    ngx_http_engagement_round = round;

    reclaim = 2 * emcf->redis->timeout + NGX_HTTP_ENGAGEMENT_RECLAIM_SLACK;
    full = 0;

    for (i = 0; i < emcf->zones.nelts; i++) {
        z = zp[i];

        if (!ngx_http_engagement_flush_mine(z)) {
            continue;
        }

        n = ngx_http_engagement_counters_claim(z, &round->claims[round->n],
                                               emcf->flush_batch, reclaim);
        if (n == emcf->flush_batch) {
            full = 1;
        }

        sent = 0;

        for (j = round->n; j < round->n + n; j++) {
            if (ngx_http_engagement_flush_send(emcf, round, &round->claims[j])
                == NGX_OK)
            {
                round->outstanding++;
                sent++;

            } else {
                ngx_http_engagement_counters_release(&round->claims[j]);
            }
        }

        if (sent) {
            ngx_http_engagement_inc(
                (ngx_http_engagement_counters_shctx_t *) z->sh, flushes);
        }

        round->n += n;
    }

    round->full = full;

    if (--round->outstanding == 0) {
        ngx_http_engagement_round_done(round);
    }

    return full;
}


static ngx_uint_t
ngx_http_engagement_flush_idle(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_uint_t                             i;
    ngx_http_engagement_zone_t           **zp;
    ngx_http_engagement_counters_shctx_t  *sh;

    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (!ngx_http_engagement_flush_mine(zp[i])) {
            continue;
        }

        sh = zp[i]->sh;

        if (sh->pending_nodes || sh->inflight_nodes) {
            return 0;
        }
    }

    return 1;
}


/*
 * The timer set to fire in t ms, exactly: ngx_add_timer alone leaves a set
 * timer alone when the new time is within NGX_TIMER_LAZY_DELAY (300 ms) of
 * the old one, which made a backlog drain in steps of up to 250 ms.
 */

static void
ngx_http_engagement_flush_timer(ngx_msec_t t)
{
    if (ngx_http_engagement_flush_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_flush_ev);
    }

    ngx_add_timer(&ngx_http_engagement_flush_ev, t);
}


/* the next flush in t ms; the timer itself never sleeps past the check */

static void
ngx_http_engagement_flush_arm(ngx_msec_t t)
{
    ngx_http_engagement_flush_due = ngx_current_msec + t;
    ngx_http_engagement_flush_timer(ngx_min(t,
                                            NGX_HTTP_ENGAGEMENT_EXIT_CHECK));
}


static void
ngx_http_engagement_flush_handler(ngx_event_t *ev)
{
    ngx_uint_t                        more;
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ev->data;
    more = 0;

    if (ngx_exiting && ngx_http_engagement_exit_at == 0) {
        ngx_http_engagement_exit_at = ngx_current_msec + emcf->exit_deadline;
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "engagement: final flush, at most %M ms",
                      emcf->exit_deadline);
    }

    if (!ngx_exiting
        && (ngx_msec_int_t) (ngx_http_engagement_flush_due - ngx_current_msec)
           > 0)
    {
        /* only a check for a stop: the flush is not due yet */
        ngx_http_engagement_flush_timer(
            ngx_min(ngx_http_engagement_flush_due - ngx_current_msec,
                    NGX_HTTP_ENGAGEMENT_EXIT_CHECK));
        return;
    }

    if (!ngx_exiting && ngx_http_engagement_round) {
        /*
         * Due, but the last round is still out: its end starts the next one
         * at once if it was full; else the flush is due at the next check.
         */
        ngx_http_engagement_flush_timer(NGX_HTTP_ENGAGEMENT_EXIT_CHECK);
        return;
    }

    if (ngx_http_engagement_round == NULL
        && ngx_http_engagement_redis_ready())
    {
        more = ngx_http_engagement_flush_round(emcf);
    }

    if (ngx_exiting) {
        ngx_http_engagement_exit_sent = 1;

        if (ngx_current_msec >= ngx_http_engagement_exit_at
            || (ngx_http_engagement_round == NULL
                && ngx_http_engagement_flush_idle(emcf)))
        {
            /* what is left stays in shared memory for the master to save */
            ngx_http_engagement_redis_stop();
            ngx_http_engagement_flush_on = 0;
            return;
        }

        ngx_http_engagement_flush_timer(NGX_HTTP_ENGAGEMENT_EXIT_POLL);
        return;
    }

    if (more && ngx_http_engagement_round == NULL) {
        /* a full round already answered (or failed to send): go on */
        ngx_http_engagement_flush_arm(1);
        return;
    }

    /* a full round in flight starts the next one when it is answered */
    ngx_http_engagement_flush_arm(emcf->flush_interval);
}


/*
 * The timer is not cancelable: at a graceful stop or reload it fires once
 * more (within NGX_HTTP_ENGAGEMENT_EXIT_CHECK ms, whatever the interval),
 * sees ngx_exiting, and flushes what is pending before the worker exits,
 * bounded by engagement_flush_deadline.
 */

ngx_int_t
ngx_http_engagement_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_uint_t                    i;
    ngx_http_engagement_zone_t  **zp;

    ngx_memzero(&ngx_http_engagement_flush_ev, sizeof(ngx_event_t));

    ngx_http_engagement_flush_ev.handler = ngx_http_engagement_flush_handler;
    ngx_http_engagement_flush_ev.data = emcf;
    ngx_http_engagement_flush_ev.log = cycle->log;

    ngx_http_engagement_round = NULL;
    ngx_http_engagement_exit_at = 0;
    ngx_http_engagement_exit_sent = 0;
    ngx_http_engagement_flush_on = 1;

    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (!zp[i]->dedupe && zp[i]->redis) {
            ngx_http_engagement_counters_join(zp[i]);
        }
    }

    if (ngx_http_engagement_redis_start(cycle, emcf->redis) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_engagement_flush_arm(emcf->flush_interval);

    return NGX_OK;
}


void
ngx_http_engagement_flush_stop(void)
{
    if (ngx_http_engagement_flush_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_flush_ev);
    }

    if (ngx_http_engagement_flush_on) {
        ngx_http_engagement_redis_stop();
        ngx_http_engagement_flush_on = 0;
    }
}
