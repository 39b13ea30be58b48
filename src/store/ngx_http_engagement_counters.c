
/*
 * The counters zone: per-content totals (views, engaged views, replays) in
 * shared memory, in an rbtree keyed by a keyed hash of the content id with
 * the id stored inline, plus an LRU queue; with Redis, each entry also
 * holds the local deltas not yet confirmed, the viewer hashes for the
 * unique count and the reaction counts last read. The request path adds
 * and reads here; the flush queue (queue.c) takes the deltas out.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_counters.h"


/* flush latency histogram bounds, in milliseconds (the last is +Inf) */
ngx_uint_t  ngx_http_engagement_hist_bounds[NGX_HTTP_ENGAGEMENT_HIST] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 0
};


/*
 * A full zone drops clean entries (with Redis a cache of Redis totals,
 * without it entries that count nothing) from the LRU tail: at most this
 * many are freed per try, looking at no more than this many, and an
 * allocation makes no more than this many tries, so that one critical
 * section frees at most 8 entries and looks at no more than 256; a
 * failed allocation is a 503, and the next event evicts some more.
 */
#define NGX_HTTP_ENGAGEMENT_EVICT_FREE   2
#define NGX_HTTP_ENGAGEMENT_EVICT_SCAN   64
#define NGX_HTTP_ENGAGEMENT_EVICT_TRIES  4

/* the first size of a content's list of pending viewer hashes */
#define NGX_HTTP_ENGAGEMENT_UV_FIRST     4


static void ngx_http_engagement_counters_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


/* what a counters zone keeps, for its layout */
static const size_t  ngx_http_engagement_counters_shape[] = {
    NGX_HTTP_ENGAGEMENT_HEAD_SHAPE,
    sizeof(ngx_http_engagement_counters_shctx_t),
    offsetof(ngx_http_engagement_counters_shctx_t, dirty),
    offsetof(ngx_http_engagement_counters_shctx_t, inflight),
    offsetof(ngx_http_engagement_counters_shctx_t, slow),
    offsetof(ngx_http_engagement_counters_shctx_t, slow_nodes),
    offsetof(ngx_http_engagement_counters_shctx_t, seq),
    offsetof(ngx_http_engagement_counters_shctx_t, stream),
    offsetof(ngx_http_engagement_counters_shctx_t, pending_nodes),
    offsetof(ngx_http_engagement_counters_shctx_t, inflight_nodes),
    offsetof(ngx_http_engagement_counters_shctx_t, cycle_gen),
    offsetof(ngx_http_engagement_counters_shctx_t, running_gen),
    offsetof(ngx_http_engagement_counters_shctx_t, gen_live),
    offsetof(ngx_http_engagement_counters_shctx_t, stats),
    sizeof(ngx_http_engagement_stats_t),
    offsetof(ngx_http_engagement_stats_t, flush_hist),
    offsetof(ngx_http_engagement_stats_t, redis_ready),
    offsetof(ngx_http_engagement_stats_t, token_refused),
    offsetof(ngx_http_engagement_stats_t, flush_calls),
    sizeof(ngx_http_engagement_counts_t),
    sizeof(ngx_http_engagement_counter_node_t),
    offsetof(ngx_http_engagement_counter_node_t, queue),
    offsetof(ngx_http_engagement_counter_node_t, flush),
    offsetof(ngx_http_engagement_counter_node_t, counts),
    offsetof(ngx_http_engagement_counter_node_t, pending),
    offsetof(ngx_http_engagement_counter_node_t, later),
    offsetof(ngx_http_engagement_counter_node_t, inflight),
    offsetof(ngx_http_engagement_counter_node_t, acc),
    offsetof(ngx_http_engagement_counter_node_t, filing),
    offsetof(ngx_http_engagement_counter_node_t, seq),
    offsetof(ngx_http_engagement_counter_node_t, stream),
    offsetof(ngx_http_engagement_counter_node_t, uv),
    offsetof(ngx_http_engagement_counter_node_t, uv_inflight),
    offsetof(ngx_http_engagement_counter_node_t, reactions),
    offsetof(ngx_http_engagement_counter_node_t, uniques),
    offsetof(ngx_http_engagement_counter_node_t, uv_n),
    offsetof(ngx_http_engagement_counter_node_t, uv_cap),
    offsetof(ngx_http_engagement_counter_node_t, uv_inflight_n),
    offsetof(ngx_http_engagement_counter_node_t, claimed_by),
    offsetof(ngx_http_engagement_counter_node_t, claimed_at),
    offsetof(ngx_http_engagement_counter_node_t, confirmed_at),
    offsetof(ngx_http_engagement_counter_node_t, reading_at),
    offsetof(ngx_http_engagement_counter_node_t, pending_since),
    offsetof(ngx_http_engagement_counter_node_t, later_since),
    offsetof(ngx_http_engagement_counter_node_t, inflight_since),
    offsetof(ngx_http_engagement_counter_node_t, acc_since),
    offsetof(ngx_http_engagement_counter_node_t, filing_since),
    offsetof(ngx_http_engagement_counter_node_t, uv_since),
    offsetof(ngx_http_engagement_counter_node_t, slow_at),
    offsetof(ngx_http_engagement_counter_node_t, where),
    offsetof(ngx_http_engagement_counter_node_t, stale),
    offsetof(ngx_http_engagement_counter_node_t, legacy),
    offsetof(ngx_http_engagement_counter_node_t, len),
    offsetof(ngx_http_engagement_counter_node_t, data)
};


static const ngx_http_engagement_zone_kind_t  ngx_http_engagement_counters_kind
    = {
    "engagement_zone",
    NGX_HTTP_ENGAGEMENT_COUNTERS_MAGIC,
    sizeof(ngx_http_engagement_counters_shctx_t),
    ngx_http_engagement_counters_insert,
    NGX_HTTP_ENGAGEMENT_RESIZE_REFUSE,
    ngx_http_engagement_counters_shape,
    sizeof(ngx_http_engagement_counters_shape) / sizeof(size_t)
};


static ngx_int_t
ngx_http_engagement_counters_cmp(uint64_t hash, ngx_str_t *id,
    ngx_http_engagement_counter_node_t *cn)
{
    if (hash != ngx_http_engagement_cn_hash(cn)) {
        return (hash < ngx_http_engagement_cn_hash(cn)) ? -1 : 1;
    }

    if (id->len != cn->len) {
        return (id->len < cn->len) ? -1 : 1;
    }

    /* the same id, the common case, without a call; else their order */
    if (ngx_http_engagement_same(id->data, cn->data, id->len)) {
        return 0;
    }

    return ngx_memcmp(id->data, cn->data, id->len);
}


/*
 * The tree's insert: nodes in the order of counters_cmp(), inline (the
 * shared insert's call of less() through a pointer at every level cost
 * more than the comparison)
 */

static void
ngx_http_engagement_counters_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    uint64_t                             hash;
    ngx_str_t                            id;
    ngx_rbtree_node_t                  **p;
    ngx_http_engagement_counter_node_t  *cn;

    cn = (ngx_http_engagement_counter_node_t *) node;
    id.len = cn->len;
    id.data = cn->data;
    hash = ngx_http_engagement_cn_hash(cn);

    for ( ;; ) {
        p = (ngx_http_engagement_counters_cmp(hash, &id,
                 (ngx_http_engagement_counter_node_t *) temp) < 0)
            ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


ngx_http_engagement_counter_node_t *
ngx_http_engagement_counters_lookup(ngx_http_engagement_counters_shctx_t *sh,
    ngx_str_t *id, uint64_t hash)
{
    ngx_int_t                            rc;
    ngx_rbtree_node_t                   *node, *sentinel;
    ngx_http_engagement_counter_node_t  *cn;

    node = sh->head.rbtree.root;
    sentinel = sh->head.rbtree.sentinel;

    while (node != sentinel) {
        cn = (ngx_http_engagement_counter_node_t *) node;
        rc = ngx_http_engagement_counters_cmp(hash, id, cn);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Entries that hold nothing not kept elsewhere (with Redis, counts all
 * in Redis: a cache; without it, no counts at all) are dropped to make
 * room, a few of the least recently used.
 */

static ngx_uint_t
ngx_http_engagement_counters_evict(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *keep)
{
    ngx_uint_t                             n, freed;
    ngx_queue_t                           *q, *prev;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    freed = 0;

    q = ngx_queue_last(&sh->head.lru);

    for (n = 0;
         n < NGX_HTTP_ENGAGEMENT_EVICT_SCAN
         && q != ngx_queue_sentinel(&sh->head.lru);
         n++)
    {
        prev = ngx_queue_prev(q);
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, queue);

        if (cn != keep && cn->seq == 0 && ngx_http_engagement_cn_clean(cn)
            && (z->redis || !ngx_http_engagement_nonzero(&cn->counts)))
        {

            if (cn->uv) {
                ngx_slab_free_locked(z->shpool, cn->uv);
            }

            if (cn->reactions) {
                ngx_slab_free_locked(z->shpool, cn->reactions);
            }

            ngx_http_engagement_zone_unlink(z->shpool, &sh->head, &cn->node,
                                            &cn->queue);
            ngx_http_engagement_inc(sh, evicted_clean);

            if (++freed == NGX_HTTP_ENGAGEMENT_EVICT_FREE) {
                break;
            }
        }

        q = prev;
    }

    return freed;
}


/*
 * An allocation that may evict clean entries, a bounded number of times:
 * freed chunks of one size class do not serve another, so one eviction
 * is not always enough, but emptying the cache under the lock for one
 * allocation is worse than a refusal. Called with the zone locked.
 */

void *
ngx_http_engagement_counters_alloc(ngx_http_engagement_zone_t *z,
    size_t size, ngx_http_engagement_counter_node_t *keep)
{
    void        *p;
    ngx_uint_t   n;

    for (n = 0; /* void */; n++) {
        p = ngx_slab_calloc_locked(z->shpool, size);

        if (p != NULL || n == NGX_HTTP_ENGAGEMENT_EVICT_TRIES
            || !ngx_http_engagement_counters_evict(z, keep))
        {
            return p;
        }
    }
}


/* called with the zone locked */

ngx_http_engagement_counter_node_t *
ngx_http_engagement_counters_create(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash)
{
    size_t                                 size;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    size = offsetof(ngx_http_engagement_counter_node_t, data) + id->len;

    /*
     * Without Redis, counts are the only copy, so a full zone never evicts
     * them: the caller answers 503 and the event can be retried. Only
     * events that count make entries there, so content already present
     * keeps counting.
     */
    cn = ngx_http_engagement_counters_alloc(z, size, NULL);

    if (cn == NULL) {
        ngx_http_engagement_inc(sh, alloc_failures);
        sh->head.full = 1;
        return NULL;
    }

    sh->head.full = 0;

    cn->node.key = (ngx_rbtree_key_t) hash;
#if (NGX_PTR_SIZE == 4)
    cn->hash = hash;
#endif
    cn->len = (u_char) id->len;
    ngx_memcpy(cn->data, id->data, id->len);

    ngx_http_engagement_zone_link(&sh->head, &cn->node, &cn->queue);

    return cn;
}


uint64_t
ngx_http_engagement_counters_hash(ngx_http_engagement_zone_t *z,
    ngx_str_t *id)
{
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    /* the tree's key: see idhash() for why a plain hash will do */
    return ngx_http_engagement_idhash(sh->head.hash_key, id->data, id->len);
}


/* a content's entry, made if missing; called with the zone locked */

static ngx_http_engagement_counter_node_t *
ngx_http_engagement_counters_find(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash)
{
    ngx_http_engagement_counter_node_t  *cn;

    cn = ngx_http_engagement_counters_lookup(z->sh, id, hash);

    if (cn == NULL) {
        cn = ngx_http_engagement_counters_create(z, id, hash);
    }

    return cn;
}


/* called with the zone locked */

static void
ngx_http_engagement_counters_view(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, ngx_http_engagement_view_t *v)
{
    v->counts = cn->counts;
    v->uniques = cn->uniques;
    v->known = 1;
    v->refresh = 0;
    v->pending = 0;
    v->stale = cn->stale;

    if (!z->redis) {
        return;
    }

    /* the reaction block starts with its number of types */
    v->nreactions = 0;

    if (z->nreactions && cn->reactions && cn->reactions[0] == z->nreactions) {
        v->nreactions = z->nreactions;
        ngx_memcpy(v->reactions, &cn->reactions[1],
                   z->nreactions * sizeof(uint64_t));
    }

    ngx_http_engagement_counts_add(&v->counts, &cn->pending);
    ngx_http_engagement_counts_add(&v->counts, &cn->later);
    ngx_http_engagement_counts_add(&v->counts, &cn->inflight);
    v->pending = cn->pending.views + cn->pending.engaged
                 + cn->pending.replays + cn->later.views
                 + cn->later.engaged + cn->later.replays
                 + cn->inflight.views + cn->inflight.engaged
                 + cn->inflight.replays;
    v->known = (cn->confirmed_at != 0)
               && (v->nreactions == z->nreactions);
}


/* stores reaction counts in an entry; called with the zone locked */

void
ngx_http_engagement_counters_set_reactions(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, uint64_t *reactions)
{
    if (z->nreactions == 0) {
        return;
    }

    if (cn->reactions == NULL || cn->reactions[0] != z->nreactions) {
        if (cn->reactions) {
            ngx_slab_free_locked(z->shpool, cn->reactions);
        }

        cn->reactions = ngx_http_engagement_counters_alloc(z,
                            (z->nreactions + 1) * sizeof(uint64_t), cn);
        if (cn->reactions == NULL) {
            return;
        }

        cn->reactions[0] = z->nreactions;
    }

    ngx_memcpy(&cn->reactions[1], reactions,
               z->nreactions * sizeof(uint64_t));
}


/* reaction counts answered by Redis after a reaction changed */

void
ngx_http_engagement_counters_reactions(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, uint64_t *reactions)
{
    ngx_http_engagement_counter_node_t  *cn;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_find(z, id, hash);

    if (cn) {
        ngx_http_engagement_counters_set_reactions(z, cn, reactions);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * Grows the pending viewer list; called with the zone locked.
 * NGX_DECLINED: the list is at NGX_HTTP_ENGAGEMENT_UV_MAX; NGX_ERROR: no
 * room in the zone.
 */

ngx_int_t
ngx_http_engagement_counters_uv_add(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, uint64_t uv)
{
    uint32_t   cap;
    uint64_t  *a;

    if (cn->uv_n >= NGX_HTTP_ENGAGEMENT_UV_MAX) {
        return NGX_DECLINED;
    }

    if (cn->uv_n == 0) {
        /* the list waits the uniques interval from its first hash */
        cn->uv_since = ngx_http_engagement_now32();
    }

    if (cn->uv_n == cn->uv_cap) {
        cap = cn->uv_cap ? cn->uv_cap * 2 : NGX_HTTP_ENGAGEMENT_UV_FIRST;
        cap = ngx_min(cap, NGX_HTTP_ENGAGEMENT_UV_MAX);

        /* never evict the entry the list belongs to */
        a = ngx_http_engagement_counters_alloc(z, cap * sizeof(uint64_t), cn);

        if (a == NULL) {
            return NGX_ERROR;
        }

        if (cn->uv) {
            ngx_memcpy(a, cn->uv, cn->uv_n * sizeof(uint64_t));
            ngx_slab_free_locked(z->shpool, cn->uv);
        }

        cn->uv = a;
        cn->uv_cap = cap;
    }

    cn->uv[cn->uv_n++] = uv;

    return NGX_OK;
}


/*
 * A delta goes to the minute it arrives in: pending if that is pending's
 * minute, else later. A third minute (Redis down, or a flush behind by
 * more than a minute) merges later into pending, filed under the older
 * minute, so the latest minute stays exact and a node holds two at most.
 */

static void
ngx_http_engagement_counters_pend(ngx_http_engagement_counter_node_t *cn,
    ngx_http_engagement_counts_t *delta)
{
    uint32_t  now;

    now = (uint32_t) ngx_time();

    if (now / 60 == cn->pending_since / 60) {
        ngx_http_engagement_counts_add(&cn->pending, delta);
        return;
    }

    if (ngx_http_engagement_nonzero(&cn->later)
        && now / 60 != cn->later_since / 60)
    {
        ngx_http_engagement_counts_add(&cn->pending, &cn->later);
        ngx_memzero(&cn->later, sizeof(ngx_http_engagement_counts_t));
    }

    if (!ngx_http_engagement_nonzero(&cn->later)) {
        cn->later_since = now;
    }

    ngx_http_engagement_counts_add(&cn->later, delta);
}


/*
 * Adds an event's counts, making the content's entry if missing; called
 * with the zone locked (the policy commits its marks under the same lock).
 */

ngx_int_t
ngx_http_engagement_counters_add_locked(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *delta,
    uint64_t uv, ngx_http_engagement_view_t *result)
{
    ngx_int_t                              rc;
    ngx_uint_t                             clean;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    cn = ngx_http_engagement_counters_find(z, id, hash);

    if (cn == NULL) {
        return NGX_ERROR;
    }

    /* a new entry is at the head already */
    ngx_http_engagement_zone_touch(&sh->head, &cn->queue);

    if (!z->redis) {
        cn->counts.views += delta->views;
        cn->counts.engaged += delta->engaged;
        cn->counts.replays += delta->replays;

    } else {
        clean = !ngx_http_engagement_nonzero(&cn->pending);

        /* a viewer the list has no room for is dropped, never the view */
        rc = uv ? ngx_http_engagement_counters_uv_add(z, cn, uv) : NGX_OK;

        if (rc != NGX_OK) {
            ngx_http_engagement_inc(sh, uv_dropped);

            if (rc == NGX_ERROR) {
                ngx_http_engagement_inc(sh, alloc_failures);
            }
        }

        if (clean) {
            ngx_memzero(&cn->later, sizeof(ngx_http_engagement_counts_t));
            cn->pending_since = (uint32_t) ngx_time();

            /* newly dirty: queue it, unless a flush of it is in flight */
            ngx_http_engagement_counters_dirty(sh, cn);
        }

        ngx_http_engagement_counters_pend(cn, delta);
    }

    ngx_http_engagement_counters_view(z, cn, result);

    return NGX_OK;
}


/*
 * Redis totals older than the cache TTL are re-read by the caller, by one
 * caller at a time; called with the zone locked.
 */

static void
ngx_http_engagement_counters_refresh(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, ngx_http_engagement_view_t *v)
{
    if (!z->redis || !v->known
        || ngx_http_engagement_age32(cn->confirmed_at) < z->cache_ttl)
    {
        return;
    }

    if (cn->reading_at == 0
        || ngx_http_engagement_age32(cn->reading_at) >= z->cache_ttl)
    {
        cn->reading_at = ngx_http_engagement_now32();
        v->refresh = 1;
    }
}


void
ngx_http_engagement_counters_get(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_view_t *result)
{
    ngx_http_engagement_counter_node_t  *cn;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_lookup(z->sh, id, hash);

    if (cn) {
        ngx_http_engagement_counters_view(z, cn, result);
        ngx_http_engagement_counters_refresh(z, cn, result);

    } else {
        ngx_memzero(result, sizeof(ngx_http_engagement_view_t));
        result->known = !z->redis;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * Totals read from Redis, stored in an entry; called with the zone locked.
 * A read that crossed a flush of this content may or may not include it;
 * the flush's own answer will set the totals, so such a read is only
 * shown.
 */

static void
ngx_http_engagement_counters_store(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn,
    ngx_http_engagement_counts_t *totals, uint64_t uniques,
    uint64_t *reactions, ngx_http_engagement_view_t *result)
{
    cn->reading_at = 0;
    ngx_http_engagement_counters_set_reactions(z, cn, reactions);

    if (cn->seq == 0) {
        cn->counts = *totals;
        cn->uniques = uniques;
        cn->stale = 0;
        cn->confirmed_at = ngx_http_engagement_now32();
        ngx_http_engagement_counters_view(z, cn, result);
        return;
    }

    ngx_http_engagement_counters_view(z, cn, result);
    result->counts = *totals;
    ngx_http_engagement_counts_add(&result->counts, &cn->pending);
    ngx_http_engagement_counts_add(&result->counts, &cn->later);
    result->uniques = uniques;
    result->known = 1;
}


/* totals read from Redis: cached unless a flush of this content is open */

void
ngx_http_engagement_counters_cache(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *totals,
    uint64_t uniques, uint64_t *reactions,
    ngx_http_engagement_view_t *result)
{
    ngx_http_engagement_counter_node_t  *cn;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_find(z, id, hash);

    if (cn) {
        ngx_http_engagement_counters_store(z, cn, totals, uniques, reactions,
                                           result);

    } else {
        /* no room: shown, not stored */
        ngx_memzero(result, sizeof(ngx_http_engagement_view_t));
        result->counts = *totals;
        result->uniques = uniques;
        result->known = 1;
    }

    /* shown even if the block could not be stored */
    result->nreactions = z->nreactions;
    ngx_memcpy(result->reactions, reactions,
               z->nreactions * sizeof(uint64_t));

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * A zone kept over a reload that adds or removes engagement_redis: with
 * Redis its counts would be taken for a cache of Redis's totals and
 * overwritten by the first read, though without Redis they are the only
 * copy; without Redis its unflushed deltas would never be sent nor saved.
 * Such a reload is refused while the zone holds either; an empty zone
 * (adding) or a flushed one (removing) changes mode. A stop and start
 * keeps unflushed deltas in the state file instead.
 */

static ngx_int_t
ngx_http_engagement_counters_mode(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_zone_t *old, ngx_log_t *log)
{
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    if (old->redis == z->redis
        || (z->redis && sh->head.entries == 0)
        || (!z->redis && sh->pending_nodes == 0 && sh->inflight_nodes == 0
            && sh->slow_nodes == 0))
    {
        return NGX_OK;
    }

    if (z->redis) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "engagement_zone \"%V\" holds %uA contents counted "
                      "without Redis: a reload that adds \"engagement_redis\" "
                      "would overwrite them with Redis's totals; reload "
                      "refused (stop and start nginx to add Redis: the "
                      "local totals are then dropped)", &z->name,
                      sh->head.entries);

    } else {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "engagement_zone \"%V\" holds %uA contents not yet "
                      "flushed to Redis: a reload that removes "
                      "\"engagement_redis\" would never send them; reload "
                      "refused (stop nginx: its final flush and state file "
                      "keep them, for the next start with Redis)", &z->name,
                      sh->pending_nodes + sh->inflight_nodes
                      + sh->slow_nodes);
    }

    return NGX_ERROR;
}


/*
 * A new zone of a module with Redis takes over what the last stop could
 * not flush (the state file); a zone kept over a reload has it already.
 * A new zone draws its stream, the name of its flush batches in Redis.
 * A reload that keeps a zone flushed to Redis starts a new generation
 * of flushers (see ngx_http_engagement_counters_join).
 */

ngx_int_t
ngx_http_engagement_counters_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint64_t                               key[2];
    ngx_http_engagement_zone_t            *z;
    ngx_http_engagement_counters_shctx_t  *sh;

    z = shm_zone->data;
    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    z->sh = ngx_http_engagement_zone_attach(shm_zone, data,
                                            &ngx_http_engagement_counters_kind);
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    if (data) {
        if (ngx_http_engagement_counters_mode(z, data, shm_zone->shm.log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (z->redis) {
            /* this configuration's flushers are a new generation */
            sh = z->sh;
            sh->cycle_gen++;
        }

        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        return NGX_OK;
    }

    sh = z->sh;
    ngx_queue_init(&sh->dirty);
    ngx_queue_init(&sh->inflight);
    ngx_queue_init(&sh->slow);
    sh->cycle_gen = 1;

    ngx_http_engagement_random_key(key);
    sh->stream = key[0] ? key[0] : key[1] | 1;

    if (z->redis && !ngx_test_config && z->state_file.len) {
        ngx_http_engagement_state_load(z, shm_zone->shm.log);
    }

    return NGX_OK;
}
