
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
 * In cluster mode a claimed group is split by hash slot: one call per
 * slot, its batch key eng:b:{<the slot's tag>}:<stream>:<seq> in that
 * slot, so a resend of what is left of the group (in any order) meets
 * the same key on the same master, and a slot's part is applied once.
 */


#include "store/ngx_http_engagement_store.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_webhook.h"


/* a round: the calls of one flush timer's turn, one per claimed group */
typedef struct {
    ngx_uint_t                     n;           /* contents */
    ngx_uint_t                     outstanding;
    ngx_uint_t                     full;        /* a zone had more */
    ngx_msec_t                     started;
} ngx_http_engagement_round_t;


/* one script call: a group of claims of one zone, one batch */
typedef struct {
    ngx_http_engagement_round_t   *round;
    ngx_uint_t                     n;
    ngx_int_t                      slot;        /* cluster mode; else -1 */
    ngx_http_engagement_claim_t    claims[1];
} ngx_http_engagement_call_t;


/* a claim's hash slot, to group a round by slot in cluster mode */
typedef struct {
    ngx_uint_t                     slot;
    ngx_uint_t                     k;
} ngx_http_engagement_slot_claim_t;


static void ngx_http_engagement_flush_timer(ngx_msec_t t);


static ngx_event_t                    ngx_http_engagement_flush_ev;
static ngx_http_engagement_round_t   *ngx_http_engagement_round;
static ngx_http_engagement_claim_t   *ngx_http_engagement_claims;
static ngx_uint_t                     ngx_http_engagement_claims_cap;
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
 * The flush script's arguments before the contents: the number of keys,
 * the batch key, the batch and bucket TTLs, the number of reaction types.
 */
#define NGX_HTTP_ENGAGEMENT_FLUSH_HEAD   7

/*
 * per content at most: key, flags, 3 deltas, old mark and sequence,
 * minute, 3 bucket deltas, n
 */
#define NGX_HTTP_ENGAGEMENT_FLUSH_ARGS   12

/* the bytes of those arguments made here, beyond the id and the hashes */
#define NGX_HTTP_ENGAGEMENT_FLUSH_TEXT                                        \
    (sizeof("eng:{c:}") + 9 * NGX_INT64_LEN + 16 + sizeof("s:") + 16)

/* a content's flags in the script's arguments */
#define NGX_HTTP_ENGAGEMENT_FLUSH_FULL     1   /* read the totals whole */
#define NGX_HTTP_ENGAGEMENT_FLUSH_BUCKET   2   /* bucket deltas follow */
#define NGX_HTTP_ENGAGEMENT_FLUSH_LEGACY   8   /* an earlier version's batch */



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


/*
 * One content's part of the answer: its three totals (-1: not touched by
 * the round, the cached one stands), then, when it was read whole, one
 * count per reaction type. NGX_ERROR: the answer is not what was asked.
 */

static ngx_int_t
ngx_http_engagement_flush_answer(redisReply *reply, ngx_uint_t *i,
    ngx_http_engagement_claim_t *cl, ngx_http_engagement_answer_t *a,
    uint64_t *reactions)
{
    ngx_uint_t    j, n;
    redisReply  **e;

    n = 3 + (cl->full ? cl->zone->nreactions : 0);

    if (*i + n > reply->elements) {
        return NGX_ERROR;
    }

    e = &reply->element[*i];
    *i += n;

    for (j = (e[0]->type == REDIS_REPLY_STRING); j < n; j++) {
        if (e[j]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    if (e[0]->type == REDIS_REPLY_STRING) {
        /* Redis refused this content's totals: nothing of it applied */
        a->error = e[0]->str;
        return NGX_OK;
    }

    a->error = NULL;

    for (j = 0; j < 3; j++) {
        a->totals[j] = (e[j]->integer >= 0) ? e[j]->integer : -1;
    }

    a->reactions = NULL;

    if (cl->full && cl->zone->nreactions && a->totals[0] >= 0) {
        for (j = 0; j < cl->zone->nreactions; j++) {
            /* a count driven below zero by hand reads as zero */
            reactions[j] = (e[3 + j]->integer > 0) ? e[3 + j]->integer : 0;
        }

        a->reactions = reactions;
    }

    return NGX_OK;
}


/*
 * The answer of a round: applied (0: a resend Redis had applied already),
 * then each content's part. Confirmed all, or released all to be resent
 * as the same batch: a round is applied whole or not at all.
 */

static ngx_int_t
ngx_http_engagement_flush_confirm(redisReply *reply,
    ngx_http_engagement_call_t *call)
{
    uint64_t                              *r;
    ngx_uint_t                             i, k, nr;
    ngx_http_engagement_answer_t          *a;
    ngx_http_engagement_counters_shctx_t  *sh;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_ERROR;
    }

    nr = call->claims[0].zone->nreactions;

    a = ngx_alloc(call->n * (sizeof(ngx_http_engagement_answer_t)
                             + nr * sizeof(uint64_t)),
                  ngx_cycle->log);
    if (a == NULL) {
        return NGX_ERROR;
    }

    r = (uint64_t *) &a[call->n];
    sh = call->claims[0].zone->sh;

    /* checked whole before anything is confirmed */
    for (i = 1, k = 0; k < call->n; k++) {
        if (ngx_http_engagement_flush_answer(reply, &i, &call->claims[k],
                                             &a[k], &r[k * nr])
            != NGX_OK)
        {
            ngx_free(a);
            return NGX_ERROR;
        }
    }

    if (i != reply->elements) {
        ngx_free(a);
        return NGX_ERROR;
    }

    for (k = 0; k < call->n; k++) {
        if (a[k].error == NULL) {
            ngx_http_engagement_counters_confirm(&call->claims[k], &a[k]);
            ngx_http_engagement_inc(sh, flush_ok);

            if (reply->element[0]->integer == 0) {
                /* a resent round Redis had applied already: counted once */
                ngx_http_engagement_inc(sh, flush_repeats);
            }

            continue;
        }

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement redis: flush of \"%*s\" failed: %s; it "
                      "will be retried", call->claims[k].id_len,
                      call->claims[k].id, a[k].error);

        /* sent again as a round of its own: this one's key is set */
        ngx_http_engagement_counters_release(&call->claims[k], 1);
        ngx_http_engagement_inc(
            sh, flush_failed);
    }

    ngx_free(a);

    return NGX_OK;
}


static void
ngx_http_engagement_flush_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_call_t             *call = data;
    ngx_uint_t                              k;
    ngx_http_engagement_round_t            *round;
    ngx_http_engagement_claim_t            *cl;

    round = call->round;
    cl = &call->claims[0];

    if (reply && call->slot >= 0) {
        /* milestones in cluster mode: the slot's pending ones move on */
        ngx_http_engagement_milestone_touch(call->slot);
    }

    if (ngx_http_engagement_flush_confirm(reply, call) != NGX_OK) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement redis: flush of \"%*s\"%s failed: %s; "
                          "it will be retried (%ui contents)", cl->id_len,
                          cl->id, call->n > 1 ? " and others" : "",
                          reply->str, call->n);
        }

        for (k = 0; k < call->n; k++) {
            ngx_http_engagement_counters_release(&call->claims[k], 0);
        }

        ngx_http_engagement_add(
            (ngx_http_engagement_counters_shctx_t *) cl->zone->sh,
            flush_failed, call->n);
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


/*
 * The round's head: KEYS[1] is the batch key, eng:b:<stream>:<seq> (one
 * per round: Redis applies the round only if it sets it); ARGV: the
 * batch and bucket TTLs, the reaction types whose counts a content read
 * whole answers.
 */

static void
ngx_http_engagement_flush_head(ngx_http_engagement_args_t *a,
    ngx_http_engagement_main_conf_t *emcf, ngx_http_engagement_call_t *call)
{
    u_char                       *start;
    ngx_str_t                    *types, *tag;
    ngx_uint_t                    k, nr;
    ngx_http_engagement_claim_t  *cl;

    cl = &call->claims[0];
    nr = cl->zone->nreactions;

    ngx_http_engagement_args_uint(a, 1 + call->n);

    start = a->p;
    a->p = ngx_cpymem(a->p, "eng:b:", sizeof("eng:b:") - 1);

    if (call->slot >= 0) {
        tag = ngx_http_engagement_cluster_tag(call->slot);
        *a->p++ = '{';
        a->p = ngx_cpymem(a->p, tag->data, tag->len);
        *a->p++ = '}';
        *a->p++ = ':';
    }

    a->p = ngx_http_engagement_put_hex64(a->p, cl->stream);
    *a->p++ = ':';
    a->p = ngx_http_engagement_put_uint(a->p, cl->seq);
    ngx_http_engagement_args_end(a, start);

    for (k = 0; k < call->n; k++) {
        start = a->p;
        a->p = ngx_cpymem(a->p, "eng:{c:", sizeof("eng:{c:") - 1);
        a->p = ngx_cpymem(a->p, call->claims[k].id, call->claims[k].id_len);
        *a->p++ = '}';
        ngx_http_engagement_args_end(a, start);
    }

    ngx_http_engagement_args_str(a, NGX_HTTP_ENGAGEMENT_TTL_BATCH,
                                 sizeof(NGX_HTTP_ENGAGEMENT_TTL_BATCH) - 1);
    ngx_http_engagement_args_str(a, NGX_HTTP_ENGAGEMENT_TTL_MINUTE,
                                 sizeof(NGX_HTTP_ENGAGEMENT_TTL_MINUTE) - 1);
    ngx_http_engagement_args_str(a, NGX_HTTP_ENGAGEMENT_TTL_HOUR,
                                 sizeof(NGX_HTTP_ENGAGEMENT_TTL_HOUR) - 1);
    ngx_http_engagement_args_str(a, NGX_HTTP_ENGAGEMENT_TTL_DAY,
                                 sizeof(NGX_HTTP_ENGAGEMENT_TTL_DAY) - 1);

    ngx_http_engagement_args_uint(a, nr);

    types = nr ? emcf->reactions->elts : NULL;

    for (k = 0; k < nr; k++) {
        ngx_http_engagement_args_str(a, types[k].data, types[k].len);
    }

    /* the views' milestones, decided by the script */
    a->n += ngx_http_engagement_milestone_args(emcf, 0, &a->argv[a->n],
                                               &a->lens[a->n], a->p);
    a->p += NGX_HTTP_ENGAGEMENT_MILESTONE_BUF;
}


static void
ngx_http_engagement_flush_counts(ngx_http_engagement_args_t *a,
    ngx_http_engagement_counts_t *c)
{
    ngx_http_engagement_args_uint(a, c->views);
    ngx_http_engagement_args_uint(a, c->engaged);
    ngx_http_engagement_args_uint(a, c->replays);
}


/*
 * A content's arguments: flags, the totals' deltas; with a bucket, its
 * minute (UTC, YYYYMMDDHHMM: the hour and day keys are its prefixes) and
 * deltas; with viewers, their number and hashes.
 */

static void
ngx_http_engagement_flush_content(ngx_http_engagement_args_t *a,
    ngx_http_engagement_main_conf_t *emcf, ngx_http_engagement_claim_t *cl)
{
    u_char      *start;
    ngx_tm_t     tm;
    ngx_uint_t   flags;

    flags = (cl->full ? NGX_HTTP_ENGAGEMENT_FLUSH_FULL : 0)
            | (ngx_http_engagement_nonzero(&cl->bucket)
               ? NGX_HTTP_ENGAGEMENT_FLUSH_BUCKET : 0)
            | (cl->legacy ? NGX_HTTP_ENGAGEMENT_FLUSH_LEGACY : 0);

    ngx_http_engagement_args_uint(a, flags);
    ngx_http_engagement_flush_counts(a, &cl->delta);

    if (flags & NGX_HTTP_ENGAGEMENT_FLUSH_LEGACY) {
        /* its field in the old marks: the stream, or the edge id before */
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
    }

    if (flags & NGX_HTTP_ENGAGEMENT_FLUSH_BUCKET) {
        ngx_gmtime(cl->bucket_since ? cl->bucket_since : ngx_time(), &tm);

        start = a->p;
        a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_year, 4);
        a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_mon, 2);
        a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_mday, 2);
        a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_hour, 2);
        a->p = ngx_http_engagement_put_digits(a->p, tm.ngx_tm_min, 2);
        ngx_http_engagement_args_end(a, start);

        ngx_http_engagement_flush_counts(a, &cl->bucket);
    }
}


/* a viewer batch's answer: adding a hash again changes nothing */

static void
ngx_http_engagement_flush_viewers_reply(redisReply *reply, void *data)
{
    return;
}


/*
 * A content's viewer hashes, one plain PFADD sent before the round's
 * script on the same connection: a HyperLogLog counts a hash once however
 * often it is added, so viewers need no batch key, and outside the script
 * they cost Redis less than half. A resent round sends them again. The
 * same hashes go to the day's HyperLogLog, eng:{c:<id>}:uv:d:<YYYYMMDD>
 * (UTC, the day they are sent: unique viewers per day, and over days by
 * a union), which expires NGX_HTTP_ENGAGEMENT_TTL_UV_DAY after its last
 * write.
 */

static ngx_int_t
ngx_http_engagement_flush_viewers(ngx_http_engagement_claim_t *cl)
{
    u_char                      *buf, *start;
    ngx_tm_t                     tm;
    ngx_int_t                    rc;
    ngx_uint_t                   argc, k;
    ngx_http_engagement_args_t   a;

    argc = 3 + cl->uv_n;

    buf = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t))
                    + sizeof("eng:{c:}:uv") + cl->id_len + cl->uv_n * 16
                    + sizeof("eng:{c:}:uv:d:YYYYMMDD") + cl->id_len,
                    ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    a.argv = (const char **) buf;
    a.lens = (size_t *) (a.argv + argc);
    a.p = (u_char *) (a.lens + argc);
    a.n = 0;

    ngx_http_engagement_args_str(&a, "PFADD", sizeof("PFADD") - 1);

    start = a.p;
    a.p = ngx_cpymem(a.p, "eng:{c:", sizeof("eng:{c:") - 1);
    a.p = ngx_cpymem(a.p, cl->id, cl->id_len);
    a.p = ngx_cpymem(a.p, "}:uv", sizeof("}:uv") - 1);
    ngx_http_engagement_args_end(&a, start);

    for (k = 0; k < cl->uv_n; k++) {
        start = a.p;
        a.p = ngx_http_engagement_put_hex64(a.p, cl->uv[k]);
        ngx_http_engagement_args_end(&a, start);
    }

    rc = ngx_http_engagement_redis_send(
             ngx_http_engagement_flush_viewers_reply, NULL, (int) a.n, a.argv,
             a.lens);

    if (rc == NGX_OK) {
        /*
         * The day's HyperLogLog, by a script that gives it its TTL when
         * it makes it: numkeys, the key, the TTL, then the same hashes
         */
        ngx_gmtime(ngx_time(), &tm);
        start = a.p;
        a.p = ngx_sprintf(a.p, "eng:{c:%*s}:uv:d:%04d%02d%02d", cl->id_len,
                          cl->id, tm.ngx_tm_year, tm.ngx_tm_mon,
                          tm.ngx_tm_mday);

        ngx_memmove(&a.argv[3], &a.argv[2], cl->uv_n * sizeof(char *));
        ngx_memmove(&a.lens[3], &a.lens[2], cl->uv_n * sizeof(size_t));
        a.argv[0] = "1";
        a.lens[0] = 1;
        a.argv[1] = (const char *) start;
        a.lens[1] = a.p - start;
        a.argv[2] = NGX_HTTP_ENGAGEMENT_TTL_UV_DAY;
        a.lens[2] = sizeof(NGX_HTTP_ENGAGEMENT_TTL_UV_DAY) - 1;

        rc = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_UV_DAY,
                 ngx_http_engagement_flush_viewers_reply, NULL,
                 (int) (3 + cl->uv_n), a.argv, a.lens);
    }

    ngx_free(buf);

    /* NGX_DECLINED: the connection (the slot's master) is not ready */
    return (rc == NGX_OK || rc == NGX_DECLINED) ? rc : NGX_ERROR;
}


/* one script call for the group: the whole round of one zone */

static ngx_int_t
ngx_http_engagement_flush_send(ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_call_t *call)
{
    u_char                       *buf;
    size_t                        size;
    ngx_int_t                     rc;
    ngx_uint_t                    argc, k;
    ngx_http_engagement_args_t    a;

    size = 0;

    for (k = 0; k < call->n; k++) {
        size += call->claims[k].id_len;
    }

    argc = NGX_HTTP_ENGAGEMENT_FLUSH_HEAD + call->claims[0].zone->nreactions
           + ngx_http_engagement_milestone_argc(emcf, 0)
           + call->n * NGX_HTTP_ENGAGEMENT_FLUSH_ARGS;

    size += argc * (sizeof(char *) + sizeof(size_t))
            + NGX_HTTP_ENGAGEMENT_FLUSH_HEAD * NGX_INT64_LEN
            + NGX_HTTP_ENGAGEMENT_MILESTONE_BUF
            + sizeof("eng:b:{}::") + 4 + 16
            + call->n * NGX_HTTP_ENGAGEMENT_FLUSH_TEXT;

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    a.argv = (const char **) buf;
    a.lens = (size_t *) (a.argv + argc);
    a.p = (u_char *) (a.lens + argc);
    a.n = 0;

    for (k = 0; k < call->n; k++) {
        if (call->claims[k].uv_n) {
            rc = ngx_http_engagement_flush_viewers(&call->claims[k]);

            if (rc != NGX_OK) {
                ngx_free(buf);
                return rc;
            }
        }
    }

    ngx_http_engagement_flush_head(&a, emcf, call);

    for (k = 0; k < call->n; k++) {
        ngx_http_engagement_flush_content(&a, emcf, &call->claims[k]);
    }

    rc = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_FLUSH,
                                        ngx_http_engagement_flush_reply, call,
                                        (int) a.n, a.argv, a.lens);

    /* hiredis has the command in its own buffer */
    ngx_free(buf);

    return (rc == NGX_OK || rc == NGX_DECLINED) ? rc : NGX_ERROR;
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


/*
 * Claims a group of a zone into the worker's claims array, grown when a
 * round to resend is larger than it. 0: nothing (or no memory).
 */

static ngx_uint_t
ngx_http_engagement_flush_claim(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_conf_t *cc)
{
    ngx_uint_t                    n;
    ngx_http_engagement_claim_t  *claims;

    for ( ;; ) {
        cc->cap = ngx_http_engagement_claims_cap;

        n = ngx_http_engagement_counters_claim(z, ngx_http_engagement_claims,
                                               cc);
        if (cc->need == 0) {
            return n;
        }

        claims = ngx_alloc(cc->need * sizeof(ngx_http_engagement_claim_t),
                           ngx_cycle->log);
        if (claims == NULL) {
            return 0;
        }

        ngx_free(ngx_http_engagement_claims);
        ngx_http_engagement_claims = claims;
        ngx_http_engagement_claims_cap = cc->need;
    }
}


/*
 * A call of the round, sent (NGX_OK) or not (the caller releases it);
 * NGX_DECLINED: its connection is not ready (nothing was sent).
 */

static ngx_int_t
ngx_http_engagement_flush_call(ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_round_t *round, ngx_http_engagement_call_t *call)
{
    ngx_int_t                              rc;
    ngx_uint_t                             k;
    ngx_http_engagement_counters_shctx_t  *sh;

    rc = ngx_http_engagement_flush_send(emcf, call);
    if (rc != NGX_OK) {
        return rc;
    }

    sh = call->claims[0].zone->sh;
    ngx_http_engagement_inc(sh, flush_calls);
    ngx_http_engagement_add(sh, flush_contents, call->n);

    for (k = 0; k < call->n; k++) {
        if (ngx_http_engagement_nonzero(&call->claims[k].bucket)) {
            ngx_http_engagement_inc(sh, flush_buckets);
        }

        if (call->claims[k].uv_n) {
            ngx_http_engagement_inc(sh, flush_uniques);
        }
    }

    round->outstanding++;
    round->n += call->n;

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_engagement_slot_cmp(const void *one, const void *two)
{
    const ngx_http_engagement_slot_claim_t  *a = one, *b = two;

    if (a->slot != b->slot) {
        return (a->slot < b->slot) ? -1 : 1;
    }

    return (a->k < b->k) ? -1 : (a->k > b->k);
}


/*
 * Cluster mode: the group as one call per hash slot of its contents,
 * each sent or released on its own. A part whose master is not ready (a
 * failover) is neither: it stays claimed, in flight, and is taken again
 * as the same batch after the reclaim delay (two timeouts and a second),
 * so the other slots' deltas keep flowing meanwhile instead of the zone
 * resending that part at every round. NGX_ERROR: some part was released.
 */

static ngx_int_t
ngx_http_engagement_flush_slots(ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_round_t *round, ngx_uint_t n)
{
    u_char                             key[sizeof("c:")
                                           + NGX_HTTP_ENGAGEMENT_ID_MAX];
    ngx_int_t                          rc, rv;
    ngx_uint_t                         i, j, k, held;
    ngx_http_engagement_call_t        *call;
    ngx_http_engagement_claim_t       *cl;
    ngx_http_engagement_slot_claim_t  *sl;

    sl = ngx_alloc(n * sizeof(ngx_http_engagement_slot_claim_t),
                   ngx_cycle->log);
    if (sl == NULL) {
        for (k = 0; k < n; k++) {
            ngx_http_engagement_counters_release(
                &ngx_http_engagement_claims[k], 0);
        }

        return NGX_ERROR;
    }

    for (k = 0; k < n; k++) {
        cl = &ngx_http_engagement_claims[k];

        /* the hash tag of eng:{c:<id>} */
        key[0] = 'c';
        key[1] = ':';
        ngx_memcpy(key + 2, cl->id, cl->id_len);

        sl[k].slot = ngx_http_engagement_cluster_slot(key, 2 + cl->id_len);
        sl[k].k = k;
    }

    ngx_qsort(sl, n, sizeof(ngx_http_engagement_slot_claim_t),
              ngx_http_engagement_slot_cmp);

    rc = NGX_OK;
    held = 0;

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && sl[j].slot == sl[i].slot; j++) {
            /* void */
        }

        call = ngx_alloc(offsetof(ngx_http_engagement_call_t, claims)
                         + (j - i) * sizeof(ngx_http_engagement_claim_t),
                         ngx_cycle->log);

        if (call != NULL) {
            call->round = round;
            call->n = j - i;
            call->slot = sl[i].slot;

            for (k = i; k < j; k++) {
                call->claims[k - i] = ngx_http_engagement_claims[sl[k].k];
            }

            rv = ngx_http_engagement_flush_call(emcf, round, call);

            if (rv == NGX_OK) {
                continue;
            }

            ngx_free(call);

            if (rv == NGX_DECLINED) {
                held += j - i;
                continue;
            }
        }

        for (k = i; k < j; k++) {
            ngx_http_engagement_counters_release(
                &ngx_http_engagement_claims[sl[k].k], 0);
        }

        rc = NGX_ERROR;
    }

    ngx_free(sl);

    if (held) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "engagement redis cluster: %ui contents wait for "
                      "their master, taken again in %M ms", held,
                      2 * emcf->redis->timeout
                      + NGX_HTTP_ENGAGEMENT_RECLAIM_SLACK);
    }

    return rc;
}


/* a claimed group becomes a call of the round, sent or released */

static ngx_int_t
ngx_http_engagement_flush_group(ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_round_t *round, ngx_uint_t n)
{
    ngx_uint_t                             k;
    ngx_http_engagement_call_t            *call;

    if (ngx_http_engagement_redis_clustered()) {
        return ngx_http_engagement_flush_slots(emcf, round, n);
    }

    call = ngx_alloc(offsetof(ngx_http_engagement_call_t, claims)
                     + n * sizeof(ngx_http_engagement_claim_t),
                     ngx_cycle->log);

    if (call != NULL) {
        call->round = round;
        call->n = n;
        call->slot = -1;
        ngx_memcpy(call->claims, ngx_http_engagement_claims,
                   n * sizeof(ngx_http_engagement_claim_t));

        if (ngx_http_engagement_flush_call(emcf, round, call) == NGX_OK) {
            return NGX_OK;
        }

        ngx_free(call);
    }

    for (k = 0; k < n; k++) {
        ngx_http_engagement_counters_release(&ngx_http_engagement_claims[k],
                                               0);
    }

    return NGX_ERROR;
}


/*
 * A round: per zone, the rounds to resend and one new round of up to
 * engagement_flush_batch contents, each one script call.
 */

static ngx_uint_t
ngx_http_engagement_flush_round(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_uint_t                         i, n, sent, total, full;
    ngx_http_engagement_zone_t       **zp, *z;
    ngx_http_engagement_round_t       *round;
    ngx_http_engagement_claim_conf_t   cc;

    zp = emcf->zones.elts;

    round = ngx_alloc(sizeof(ngx_http_engagement_round_t), ngx_cycle->log);
    if (round == NULL) {
        return 0;
    }

    round->n = 0;
    round->full = 0;
    round->outstanding = 1;     /* held until every command is sent */
    round->started = ngx_current_msec;
    ngx_http_engagement_round = round;

    cc.reclaim = 2 * emcf->redis->timeout + NGX_HTTP_ENGAGEMENT_RECLAIM_SLACK;
    cc.buckets = emcf->redis->buckets;
    cc.uniques = emcf->redis->uniques;
    cc.force = ngx_exiting;

    for (i = 0; i < emcf->zones.nelts; i++) {
        z = zp[i];

        if (!ngx_http_engagement_flush_mine(z)) {
            continue;
        }

        sent = 0;
        total = 0;

        while (total < emcf->flush_batch) {
            cc.max = emcf->flush_batch - total;

            n = ngx_http_engagement_flush_claim(z, &cc);
            if (n == 0) {
                break;
            }

            total += n;

            if (ngx_http_engagement_flush_group(emcf, round, n) != NGX_OK) {
                /* released: a later round resends it */
                break;
            }

            sent++;

            if (!cc.resend) {
                /* the zone's new round is out: one per turn */
                break;
            }
        }

        if (total >= emcf->flush_batch) {
            round->full = 1;
        }

        if (sent) {
            ngx_http_engagement_inc(
                (ngx_http_engagement_counters_shctx_t *) z->sh, flushes);
        }
    }

    full = round->full;

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

        if (sh->pending_nodes || sh->inflight_nodes || sh->slow_nodes) {
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
                && ngx_http_engagement_flush_idle(emcf)
                && ngx_http_engagement_series_flush_done()
                && ngx_http_engagement_global_flush_done()
                && ngx_http_engagement_webhook_idle()))
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

    ngx_http_engagement_claims_cap = emcf->flush_batch;
    ngx_http_engagement_claims = ngx_alloc(
        emcf->flush_batch * sizeof(ngx_http_engagement_claim_t), cycle->log);
    if (ngx_http_engagement_claims == NULL) {
        return NGX_ERROR;
    }

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

    if (ngx_http_engagement_claims) {
        ngx_free(ngx_http_engagement_claims);
        ngx_http_engagement_claims = NULL;
    }
}
