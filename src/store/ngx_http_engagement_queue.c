
/*
 * The flush queue of the counters zone: contents with local deltas wait
 * in the dirty queue, those with only bucket deltas or viewer hashes
 * waiting in the slow queue; a flusher claims a round of them (claim),
 * which moves their deltas to in flight under one batch, and Redis's
 * answer confirms them (confirm) or gives them back to be resent as they
 * are (release). A round whose flusher vanished is taken over whole after
 * a while. The queues live in the zone, so a delta outlives any worker
 * until it is confirmed.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_counters.h"


/*
 * How often the slow queue's entries (only buckets or viewers waiting)
 * are looked at, at most (ms): a quiet content's minute bucket is written
 * within this long after its minute ends.
 */
#define NGX_HTTP_ENGAGEMENT_SLOW_CHECK  10000

/* a zone with less than 1/4 of its pages free writes what waits */
#define NGX_HTTP_ENGAGEMENT_PRESSURE    4

/* viewer hashes one round carries at most, about 1.7 MB of command */
#define NGX_HTTP_ENGAGEMENT_ROUND_UV    100000


/* takes an entry out of its flush queue */

static void
ngx_http_engagement_counters_unqueue(ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn)
{
    switch (cn->where) {

    case NGX_HTTP_ENGAGEMENT_Q_DIRTY:
        sh->pending_nodes--;
        break;

    case NGX_HTTP_ENGAGEMENT_Q_INFLIGHT:
        sh->inflight_nodes--;
        break;

    case NGX_HTTP_ENGAGEMENT_Q_SLOW:
        sh->slow_nodes--;
        break;

    default:
        return;
    }

    ngx_queue_remove(&cn->flush);
    cn->where = NGX_HTTP_ENGAGEMENT_Q_NONE;
}


/*
 * An entry with nothing in flight goes where it waits: dirty with totals
 * pending, slow with only buckets or viewers, else none (a cache entry).
 */

void
ngx_http_engagement_counters_queue(ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn)
{
    ngx_http_engagement_counters_unqueue(sh, cn);

    if (ngx_http_engagement_nonzero(&cn->pending)) {
        ngx_queue_insert_tail(&sh->dirty, &cn->flush);
        cn->where = NGX_HTTP_ENGAGEMENT_Q_DIRTY;
        sh->pending_nodes++;

    } else if (!ngx_http_engagement_cn_clean(cn)) {
        ngx_queue_insert_tail(&sh->slow, &cn->flush);
        cn->where = NGX_HTTP_ENGAGEMENT_Q_SLOW;
        cn->slow_at = ngx_http_engagement_now32();
        sh->slow_nodes++;
    }
}


/* an entry that got new deltas: dirty, unless a round of it is in flight */

void
ngx_http_engagement_counters_dirty(ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn)
{
    if (cn->where == NGX_HTTP_ENGAGEMENT_Q_DIRTY
        || cn->where == NGX_HTTP_ENGAGEMENT_Q_INFLIGHT)
    {
        return;
    }

    ngx_http_engagement_counters_unqueue(sh, cn);
    ngx_queue_insert_tail(&sh->dirty, &cn->flush);
    cn->where = NGX_HTTP_ENGAGEMENT_Q_DIRTY;
    sh->pending_nodes++;
}


static void
ngx_http_engagement_counters_claim_one(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, ngx_http_engagement_claim_t *cl)
{
    cl->node = cn;
    cl->zone = z;
    cl->stream = cn->stream;
    cl->seq = cn->seq;
    cl->delta = cn->inflight;
    cl->since = cn->inflight_since;
    cl->bucket = cn->filing;
    cl->bucket_since = cn->filing_since;
    cl->uv = cn->uv_inflight;
    cl->uv_n = cn->uv_inflight_n;
    cl->legacy = cn->legacy;
    cl->id_len = cn->len;
    ngx_memcpy(cl->id, cn->data, cn->len);

    /* totals never read whole (or reactions missing): the round reads them */
    cl->full = (cn->confirmed_at == 0)
               || (z->nreactions
                   && (cn->reactions == NULL
                       || cn->reactions[0] != z->nreactions));

    cn->claimed_by = ngx_pid;
    cn->claimed_at = ngx_http_engagement_now32();
}


/* the accumulated minute's buckets are due: over, or old enough */

static ngx_uint_t
ngx_http_engagement_counters_acc_due(ngx_http_engagement_counter_node_t *cn,
    ngx_http_engagement_claim_conf_t *cc)
{
    uint32_t  now;

    if (!ngx_http_engagement_nonzero(&cn->acc)) {
        return 0;
    }

    now = (uint32_t) ngx_time();

    return cc->force || now / 60 != cn->acc_since / 60
           || (ngx_msec_t) (now - cn->acc_since) * 1000 >= cc->buckets;
}


static ngx_uint_t
ngx_http_engagement_counters_uv_due(ngx_http_engagement_counter_node_t *cn,
    ngx_http_engagement_claim_conf_t *cc)
{
    return cn->uv_n
           && (cc->force || cn->uv_n >= NGX_HTTP_ENGAGEMENT_UV_MAX / 2
               || ngx_http_engagement_age32(cn->uv_since) >= cc->uniques);
}


/*
 * The deltas going in flight join the bucket deltas of their minute; a
 * minute's deltas are filed (sent to its buckets with this round) when
 * the next minute's arrive, or when they are due. One minute per round.
 */

static void
ngx_http_engagement_counters_file(ngx_http_engagement_counter_node_t *cn,
    ngx_http_engagement_claim_conf_t *cc)
{
    if (ngx_http_engagement_nonzero(&cn->inflight)) {

        if (ngx_http_engagement_nonzero(&cn->acc)
            && cn->acc_since / 60 != cn->inflight_since / 60)
        {
            cn->filing = cn->acc;
            cn->filing_since = cn->acc_since;
            ngx_memzero(&cn->acc, sizeof(ngx_http_engagement_counts_t));
        }

        if (!ngx_http_engagement_nonzero(&cn->acc)) {
            cn->acc_since = cn->inflight_since;
        }

        ngx_http_engagement_counts_add(&cn->acc, &cn->inflight);
    }

    if (!ngx_http_engagement_nonzero(&cn->filing)
        && ngx_http_engagement_counters_acc_due(cn, cc))
    {
        cn->filing = cn->acc;
        cn->filing_since = cn->acc_since;
        ngx_memzero(&cn->acc, sizeof(ngx_http_engagement_counts_t));
    }
}


/*
 * A content goes in flight in the round seq: its pending deltas (one
 * minute's), its due buckets and viewers; those of a later minute become
 * pending. Called with the zone locked. A round is named by the zone's
 * stream (random, drawn when the zone was created: one per nginx
 * instance, zone and start) and a sequence that only counts up within
 * it, so no clock, edge id or other zone can make two rounds look alike
 * to Redis.
 */

static void
ngx_http_engagement_counters_take(ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn, uint64_t seq,
    ngx_http_engagement_claim_conf_t *cc)
{
    ngx_http_engagement_counters_unqueue(sh, cn);
    ngx_queue_insert_tail(&sh->inflight, &cn->flush);
    cn->where = NGX_HTTP_ENGAGEMENT_Q_INFLIGHT;
    sh->inflight_nodes++;

    cn->seq = seq;
    cn->stream = sh->stream;
    cn->inflight = cn->pending;
    cn->inflight_since = ngx_http_engagement_nonzero(&cn->pending)
                         ? cn->pending_since : 0;

    /* a later minute's deltas wait for the next round, filed under it */
    cn->pending = cn->later;
    cn->pending_since = cn->later_since;
    ngx_memzero(&cn->later, sizeof(ngx_http_engagement_counts_t));

    ngx_http_engagement_counters_file(cn, cc);

    if (ngx_http_engagement_counters_uv_due(cn, cc)
        && cn->uv_n <= cc->uv_left)
    {
        cc->uv_left -= cn->uv_n;
        cn->uv_inflight = cn->uv;
        cn->uv_inflight_n = cn->uv_n;
        cn->uv = NULL;
        cn->uv_n = 0;
        cn->uv_cap = 0;
    }
}


/*
 * An in-flight round whose flusher failed or vanished: all its contents
 * (one stream and sequence), resent as they are so Redis applies the
 * round once. NGX_DECLINED: none; cc->need says how many claims a round
 * too large for the claims array needs.
 */

static ngx_uint_t
ngx_http_engagement_counters_reclaim(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_t *claims, ngx_http_engagement_claim_conf_t *cc)
{
    uint64_t                               seq, stream;
    ngx_uint_t                             i, n, total;
    ngx_queue_t                           *q, *next;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    if (ngx_queue_empty(&sh->inflight)) {
        return 0;
    }

    cn = ngx_queue_data(ngx_queue_head(&sh->inflight),
                        ngx_http_engagement_counter_node_t, flush);

    /* ordered by claim time, released ones first: the rest are younger */
    if (cn->claimed_by != 0
        && ngx_http_engagement_age32(cn->claimed_at) < cc->reclaim)
    {
        return 0;
    }

    seq = cn->seq;
    stream = cn->stream;
    total = sh->inflight_nodes;
    n = 0;

    for (q = ngx_queue_head(&sh->inflight), i = 0; i < total; i++, q = next) {
        next = ngx_queue_next(q);
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, flush);
        n += (cn->seq == seq && cn->stream == stream);
    }

    if (n > cc->cap) {
        cc->need = n;
        return 0;
    }

    n = 0;

    for (q = ngx_queue_head(&sh->inflight), i = 0; i < total; i++, q = next) {
        next = ngx_queue_next(q);
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, flush);

        if (cn->seq == seq && cn->stream == stream) {
            ngx_queue_remove(q);
            ngx_queue_insert_tail(&sh->inflight, q);
            ngx_http_engagement_counters_claim_one(z, cn, &claims[n++]);
        }
    }

    return n;
}


/* slow entries looked at: those whose buckets or viewers are due go */

static ngx_uint_t
ngx_http_engagement_counters_slow(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_t *claims, ngx_uint_t n, uint64_t seq,
    ngx_http_engagement_claim_conf_t *cc)
{
    ngx_msec_t                             check;
    ngx_uint_t                             i, total;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    check = ngx_min(ngx_min(cc->buckets, cc->uniques),
                    NGX_HTTP_ENGAGEMENT_SLOW_CHECK);
    total = sh->slow_nodes;

    for (i = 0; i < total && n < cc->max && !ngx_queue_empty(&sh->slow); i++)
    {
        cn = ngx_queue_data(ngx_queue_head(&sh->slow),
                            ngx_http_engagement_counter_node_t, flush);

        if (!cc->force && ngx_http_engagement_age32(cn->slow_at) < check) {
            /* in arrival order: the rest are younger */
            break;
        }

        if (!ngx_http_engagement_counters_acc_due(cn, cc)
            && !ngx_http_engagement_counters_uv_due(cn, cc))
        {
            /* looked at again later */
            ngx_http_engagement_counters_queue(sh, cn);
            continue;
        }

        ngx_http_engagement_counters_take(sh, cn, seq, cc);
        ngx_http_engagement_counters_claim_one(z, cn, &claims[n++]);
    }

    return n;
}


/*
 * Claims one round of a zone: a round in flight whose flusher failed or
 * vanished (resent whole, as the same batch), else a new round of fresh
 * deltas and due buckets and viewers, up to cc->max contents. 0: nothing
 * to send (or cc->need set: a larger claims array is needed).
 */

ngx_uint_t
ngx_http_engagement_counters_claim(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_t *claims, ngx_http_engagement_claim_conf_t *cc)
{
    uint64_t                               seq;
    ngx_uint_t                             n, force;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    cc->need = 0;
    cc->uv_left = NGX_HTTP_ENGAGEMENT_ROUND_UV;

    ngx_shmtx_lock(&z->shpool->mutex);

    n = ngx_http_engagement_counters_reclaim(z, claims, cc);
    cc->resend = (n != 0);

    if (n || cc->need) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return n;
    }

    seq = sh->seq + 1;

    /*
     * A full or nearly full zone (an allocation failed since the last
     * success, or less than 1/NGX_HTTP_ENGAGEMENT_PRESSURE of its pages
     * left) writes buckets and viewers now: the entries become clean, and
     * evictable, before new content is refused.
     */
    force = cc->force;
    cc->force |= sh->head.full
                 || z->shpool->pfree
                    < ((size_t) (z->shpool->end - z->shpool->start)
                       >> ngx_pagesize_shift) / NGX_HTTP_ENGAGEMENT_PRESSURE;

    while (n < cc->max && !ngx_queue_empty(&sh->dirty)) {
        cn = ngx_queue_data(ngx_queue_head(&sh->dirty),
                            ngx_http_engagement_counter_node_t, flush);

        ngx_http_engagement_counters_take(sh, cn, seq, cc);
        ngx_http_engagement_counters_claim_one(z, cn, &claims[n++]);
    }

    n = ngx_http_engagement_counters_slow(z, claims, n, seq, cc);
    cc->force = force;

    if (n) {
        sh->seq = seq;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return n;
}


/*
 * Locks the claim's zone and answers its entry, or NULL (and unlocked)
 * when another worker has re-claimed and confirmed it already.
 */

static ngx_http_engagement_counter_node_t *
ngx_http_engagement_counters_claimed(ngx_http_engagement_claim_t *cl)
{
    ngx_http_engagement_counter_node_t  *cn;

    cn = cl->node;

    ngx_shmtx_lock(&cl->zone->shpool->mutex);

    if (cn->seq != cl->seq || cn->stream != cl->stream) {
        ngx_shmtx_unlock(&cl->zone->shpool->mutex);
        return NULL;
    }

    return cn;
}


/*
 * Redis applied the round (or had applied it): its deltas leave shared
 * memory. The totals it answered replace the cached ones; a round that
 * read them whole makes them known; viewers sent make the cached unique
 * count stale (re-read by the next summary).
 */

void
ngx_http_engagement_counters_confirm(ngx_http_engagement_claim_t *cl,
    ngx_http_engagement_answer_t *a)
{
    ngx_http_engagement_zone_t            *z;
    ngx_http_engagement_counter_node_t    *cn;

    cn = ngx_http_engagement_counters_claimed(cl);
    if (cn == NULL) {
        return;
    }

    z = cl->zone;

    if (a->totals[0] >= 0) {
        cn->counts.views = a->totals[0];
    }

    if (a->totals[1] >= 0) {
        cn->counts.engaged = a->totals[1];
    }

    if (a->totals[2] >= 0) {
        cn->counts.replays = a->totals[2];
    }

    if (cl->full && a->totals[0] >= 0 && a->totals[1] >= 0
        && a->totals[2] >= 0)
    {
        cn->confirmed_at = ngx_http_engagement_now32();
        cn->reading_at = 0;
        cn->stale = 1;
    }

    if (a->reactions) {
        ngx_http_engagement_counters_set_reactions(z, cn, a->reactions);
    }

    cn->seq = 0;
    cn->legacy = 0;
    cn->claimed_by = 0;
    ngx_memzero(&cn->inflight, sizeof(ngx_http_engagement_counts_t));
    ngx_memzero(&cn->filing, sizeof(ngx_http_engagement_counts_t));

    if (cn->uv_inflight) {
        ngx_slab_free_locked(z->shpool, cn->uv_inflight);
        cn->uv_inflight = NULL;
        cn->stale = 1;
    }

    cn->uv_inflight_n = 0;

    ngx_http_engagement_counters_queue(z->sh, cn);

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * In-flight entries /status looks at for the oldest delta: the queue is
 * in claim order, so the oldest is near its head unless resends moved it;
 * a bounded look keeps a status request from walking every claim under
 * the lock.
 */
#define NGX_HTTP_ENGAGEMENT_OLDEST_SCAN  64


/* the earlier of two arrival times, 0 being none */
#define ngx_http_engagement_earlier(a, b)                                     \
    (((b) != 0 && ((a) == 0 || (b) < (a))) ? (b) : (a))


/* the arrival time of the oldest delta not confirmed by Redis, or 0 */

time_t
ngx_http_engagement_counters_oldest(ngx_http_engagement_zone_t *z)
{
    time_t                                 oldest;
    ngx_uint_t                             n;
    ngx_queue_t                           *q;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    oldest = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    /* both queues are in claim or arrival order, but resends move */
    q = ngx_queue_head(&sh->inflight);

    for (n = 0;
         n < NGX_HTTP_ENGAGEMENT_OLDEST_SCAN
         && q != ngx_queue_sentinel(&sh->inflight);
         n++)
    {
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, flush);
        oldest = ngx_http_engagement_earlier(oldest,
                                             (time_t) cn->inflight_since);
        q = ngx_queue_next(q);
    }

    if (!ngx_queue_empty(&sh->dirty)) {
        cn = ngx_queue_data(ngx_queue_head(&sh->dirty),
                            ngx_http_engagement_counter_node_t, flush);
        oldest = ngx_http_engagement_earlier(oldest,
                                             (time_t) cn->pending_since);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return oldest;
}


/*
 * A failed flush: the claim is given up, to be resent as it is. Or, with
 * renumber, Redis refused the content in a round it applied (its key
 * holds another type): nothing of the content was applied and the round's
 * key is set, so the content becomes a round of its own.
 */

void
ngx_http_engagement_counters_release(ngx_http_engagement_claim_t *cl,
    ngx_uint_t renumber)
{
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    cn = ngx_http_engagement_counters_claimed(cl);
    if (cn == NULL) {
        return;
    }

    sh = cl->zone->sh;

    if (renumber) {
        cn->seq = ++sh->seq;
        cn->stream = sh->stream;
        cn->claimed_by = ngx_pid;
    }

    /* at the head, first to be resent, its round together */
    if (cn->claimed_by == ngx_pid) {
        cn->claimed_by = 0;
        ngx_queue_remove(&cn->flush);
        ngx_queue_insert_head(&sh->inflight, &cn->flush);
    }

    ngx_shmtx_unlock(&cl->zone->shpool->mutex);
}


/*
 * A flusher's start: its generation is the zone's configuration count
 * (a reload that keeps the zone counts one more); the newest generation
 * counts its live flushers.
 */

void
ngx_http_engagement_counters_join(ngx_http_engagement_zone_t *z)
{
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    z->gen = sh->cycle_gen;
    z->left = 0;

    if (z->gen > sh->running_gen) {
        sh->running_gen = z->gen;
        sh->gen_live = 0;
    }

    if (z->gen == sh->running_gen) {
        sh->gen_live++;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * An exiting flusher (called at each look during its final flush; it is
 * counted out once): 1 when live flushers of a newer generation share the
 * zone, so that its pending deltas are theirs to send (a reload), 0 when
 * none do (a stop, or the new workers have not started yet: asked again
 * at the next look). A killed flusher stays counted, but the master
 * starts another in its place.
 */

ngx_uint_t
ngx_http_engagement_counters_leave(ngx_http_engagement_zone_t *z)
{
    ngx_uint_t                             newer;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (!z->left) {
        z->left = 1;

        if (z->gen == sh->running_gen && sh->gen_live) {
            sh->gen_live--;
        }
    }

    newer = (sh->running_gen > z->gen && sh->gen_live);

    ngx_shmtx_unlock(&z->shpool->mutex);

    return newer;
}
