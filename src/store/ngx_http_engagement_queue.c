
/*
 * The flush queue of the counters zone: contents with local deltas wait
 * in the dirty queue; a flusher claims them (claim), which moves their
 * deltas to in flight as a new batch, and Redis's answer confirms
 * them (confirm) or gives them back to be resent as they are (release).
 * A claim whose flusher vanished is taken over after a while. Both queues
 * live in the zone, so a delta outlives any worker until it is confirmed.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_counters.h"


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
    cl->uv = cn->uv_inflight;
    cl->uv_n = cn->uv_inflight_n;
    cl->id_len = cn->len;
    ngx_memcpy(cl->id, cn->data, cn->len);

    cn->claimed_by = ngx_pid;
    cn->claimed_at = ngx_http_engagement_now32();
}


/*
 * A content's pending deltas (one minute's) go in flight as a new batch;
 * those of a later minute become pending. Called with the
 * zone locked. A batch is named by the zone's stream (random, drawn when
 * the zone was created: one per nginx instance, zone and start) and a
 * sequence that only counts up within it, so no clock, edge id or other
 * zone can make two batches look alike to Redis.
 */

static void
ngx_http_engagement_counters_take(ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn)
{
    ngx_queue_remove(&cn->flush);
    ngx_queue_insert_tail(&sh->inflight, &cn->flush);
    sh->pending_nodes--;
    sh->inflight_nodes++;

    cn->seq = ++sh->seq;
    cn->stream = sh->stream;
    cn->inflight = cn->pending;
    cn->inflight_since = cn->pending_since;
    cn->uv_inflight = cn->uv;
    cn->uv_inflight_n = cn->uv_n;

    /* a later minute's deltas wait for the next batch, filed under it */
    cn->pending = cn->later;
    cn->pending_since = cn->later_since;
    ngx_memzero(&cn->later, sizeof(ngx_http_engagement_counts_t));
    cn->uv = NULL;
    cn->uv_n = 0;
    cn->uv_cap = 0;
}


/*
 * Takes up to max contents to flush: first those whose flush failed or
 * whose flusher vanished (resent as the same batch, so Redis applies
 * them once), then fresh deltas, which make a new batch.
 */

ngx_uint_t
ngx_http_engagement_counters_claim(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_t *claims, ngx_uint_t max, ngx_msec_t reclaim)
{
    ngx_uint_t                             n;
    ngx_queue_t                           *q, *next;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    n = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (q = ngx_queue_head(&sh->inflight);
         q != ngx_queue_sentinel(&sh->inflight) && n < max;
         q = next)
    {
        next = ngx_queue_next(q);
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, flush);

        if (cn->claimed_by != 0
            && ngx_http_engagement_age32(cn->claimed_at) < reclaim)
        {
            /* ordered by claim time: the rest are younger */
            break;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&sh->inflight, q);
        ngx_http_engagement_counters_claim_one(z, cn, &claims[n++]);
    }

    while (n < max && !ngx_queue_empty(&sh->dirty)) {
        cn = ngx_queue_data(ngx_queue_head(&sh->dirty),
                            ngx_http_engagement_counter_node_t, flush);

        ngx_http_engagement_counters_take(sh, cn);
        ngx_http_engagement_counters_claim_one(z, cn, &claims[n++]);
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


void
ngx_http_engagement_counters_confirm(ngx_http_engagement_claim_t *cl,
    ngx_http_engagement_counts_t *totals, uint64_t uniques,
    uint64_t *reactions)
{
    ngx_http_engagement_zone_t            *z;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    cn = ngx_http_engagement_counters_claimed(cl);
    if (cn == NULL) {
        return;
    }

    z = cl->zone;
    sh = z->sh;

    cn->counts = *totals;
    cn->uniques = uniques;
    cn->confirmed_at = ngx_http_engagement_now32();
    cn->reading_at = 0;
    cn->seq = 0;
    ngx_http_engagement_counters_set_reactions(z, cn, reactions);
    cn->claimed_by = 0;
    ngx_memzero(&cn->inflight, sizeof(ngx_http_engagement_counts_t));

    if (cn->uv_inflight) {
        ngx_slab_free_locked(z->shpool, cn->uv_inflight);
        cn->uv_inflight = NULL;
    }

    cn->uv_inflight_n = 0;

    ngx_queue_remove(&cn->flush);
    sh->inflight_nodes--;

    if (!ngx_http_engagement_cn_clean(cn)) {
        ngx_queue_insert_tail(&sh->dirty, &cn->flush);
        sh->pending_nodes++;

    } else {
        cn->flush.next = NULL;
        cn->flush.prev = NULL;
    }

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


/* a failed flush: the claim is given up, to be resent as it is */

void
ngx_http_engagement_counters_release(ngx_http_engagement_claim_t *cl)
{
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    cn = ngx_http_engagement_counters_claimed(cl);
    if (cn == NULL) {
        return;
    }

    sh = cl->zone->sh;

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
