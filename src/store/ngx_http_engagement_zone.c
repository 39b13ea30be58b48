
/*
 * The counters zone: per-content totals (views, engaged views, replays) in
 * shared memory, in an rbtree keyed by a keyed hash of the content id with
 * the id stored inline, plus an LRU queue. Zone creation, reuse on reload
 * and the refusal of reloads that would lose or misread counts live here.
 */


#include "store/ngx_http_engagement_store.h"


/*
 * A content's entry. Without Redis, counts are the totals. With Redis,
 * counts are the totals Redis last confirmed (valid when confirmed_at is
 * set), pending the local deltas not yet claimed, inflight those claimed
 * by a flusher under sequence seq; pending and inflight are never both
 * sent at once, so each delta is applied by exactly one flush.
 */
typedef struct {
    ngx_rbtree_node_t              node;      /* key: the hash */
    ngx_queue_t                    queue;     /* LRU */
    ngx_queue_t                    flush;     /* dirty or inflight queue */
    ngx_http_engagement_counts_t   counts;
    ngx_http_engagement_counts_t   pending;
    ngx_http_engagement_counts_t   inflight;
    uint64_t                       seq;       /* 0: nothing in flight */
    uint64_t                      *uv;        /* pending viewer hashes */
    uint64_t                      *uv_inflight;
    uint64_t                      *reactions; /* counts per type, or NULL */
    uint32_t                       uniques;
    uint32_t                       uv_n;
    uint32_t                       uv_cap;
    uint32_t                       uv_inflight_n;
    ngx_pid_t                      claimed_by;  /* 0: free to re-claim */
    /* times kept in 32 bits (milliseconds modulo 2^32, seconds) for size */
    uint32_t                       claimed_at;
    uint32_t                       confirmed_at;  /* 0: totals unknown */
    uint32_t                       reading_at;
    uint32_t                       pending_since;
    uint32_t                       inflight_since;
#if (NGX_PTR_SIZE == 4)
    uint64_t                       hash;
#endif
    u_char                         len;
    u_char                         data[1];
} ngx_http_engagement_counter_node_t;


#define ngx_http_engagement_nonzero(c)                                        \
    ((c)->views || (c)->engaged || (c)->replays)

#if (NGX_PTR_SIZE == 4)
#define ngx_http_engagement_cn_hash(cn)  ((cn)->hash)
#else
/* on 64-bit platforms the rbtree key is the whole hash */
#define ngx_http_engagement_cn_hash(cn)  ((uint64_t) (cn)->node.key)
#endif

/* a millisecond stamp in 32 bits; 0 is kept for "never" */
#define ngx_http_engagement_now32()                                           \
    ((uint32_t) ngx_current_msec ? (uint32_t) ngx_current_msec : 1)
#define ngx_http_engagement_age32(t)                                          \
    ((ngx_msec_t) (uint32_t) ((uint32_t) ngx_current_msec - (t)))


static void ngx_http_engagement_counters_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_engagement_counter_node_t *
    ngx_http_engagement_counters_lookup(
    ngx_http_engagement_counters_shctx_t *sh, ngx_str_t *id, uint64_t hash);
static ngx_http_engagement_counter_node_t *
    ngx_http_engagement_counters_create(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash);


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

    return ngx_memcmp(id->data, cn->data, id->len);
}


static void
ngx_http_engagement_counters_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_str_t                            id;
    ngx_rbtree_node_t                  **p;
    ngx_http_engagement_counter_node_t  *cn, *cnt;

    cn = (ngx_http_engagement_counter_node_t *) node;
    id.len = cn->len;
    id.data = cn->data;

    for ( ;; ) {
        cnt = (ngx_http_engagement_counter_node_t *) temp;

        p = (ngx_http_engagement_counters_cmp(ngx_http_engagement_cn_hash(cn),
                                              &id, cnt) < 0)
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


static ngx_http_engagement_counter_node_t *
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
 * With Redis, entries whose counts are all in Redis are only a cache:
 * a few of the least recently used are dropped to make room.
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

    if (!z->redis) {
        return 0;
    }

    q = ngx_queue_last(&sh->head.lru);

    for (n = 0; n < 64 && q != ngx_queue_sentinel(&sh->head.lru); n++) {
        prev = ngx_queue_prev(q);
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, queue);

        if (cn != keep && cn->seq == 0
            && !ngx_http_engagement_nonzero(&cn->pending) && cn->uv_n == 0)
        {
            ngx_queue_remove(&cn->queue);
            ngx_rbtree_delete(&sh->head.rbtree, &cn->node);

            if (cn->uv) {
                ngx_slab_free_locked(z->shpool, cn->uv);
            }

            if (cn->reactions) {
                ngx_slab_free_locked(z->shpool, cn->reactions);
            }

            ngx_slab_free_locked(z->shpool, cn);
            sh->head.entries--;
            ngx_http_engagement_inc(sh, evicted_clean);

            if (++freed == 2) {
                break;
            }
        }

        q = prev;
    }

    return freed;
}


/*
 * An allocation that may evict cached entries until it succeeds: freed
 * chunks of one size class do not serve another, so one eviction is not
 * always enough. Called with the zone locked.
 */

static void *
ngx_http_engagement_counters_alloc(ngx_http_engagement_zone_t *z,
    size_t size, ngx_http_engagement_counter_node_t *keep)
{
    void  *p;

    for ( ;; ) {
        p = ngx_slab_calloc_locked(z->shpool, size);

        if (p != NULL || !ngx_http_engagement_counters_evict(z, keep)) {
            return p;
        }
    }
}


/* called with the zone locked */

static ngx_http_engagement_counter_node_t *
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
     * them: the caller answers 503 and the event can be retried.
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

    ngx_rbtree_insert(&sh->head.rbtree, &cn->node);
    ngx_queue_insert_head(&sh->head.lru, &cn->queue);
    sh->head.entries++;

    return cn;
}


uint64_t
ngx_http_engagement_counters_hash(ngx_http_engagement_zone_t *z,
    ngx_str_t *id)
{
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    return ngx_http_engagement_siphash(sh->head.hash_key, id->data, id->len);
}


ngx_int_t
ngx_http_engagement_counters_ensure(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash)
{
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_lookup(sh, id, hash);
    if (cn == NULL) {
        cn = ngx_http_engagement_counters_create(z, id, hash);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return (cn == NULL) ? NGX_ERROR : NGX_OK;
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

    v->counts.views += cn->pending.views + cn->inflight.views;
    v->counts.engaged += cn->pending.engaged + cn->inflight.engaged;
    v->counts.replays += cn->pending.replays + cn->inflight.replays;
    v->pending = cn->pending.views + cn->pending.engaged
                 + cn->pending.replays + cn->inflight.views
                 + cn->inflight.engaged + cn->inflight.replays;
    v->known = (cn->confirmed_at != 0)
               && (v->nreactions == z->nreactions);
}


/* stores reaction counts in an entry; called with the zone locked */

static void
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
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_lookup(sh, id, hash);
    if (cn == NULL) {
        cn = ngx_http_engagement_counters_create(z, id, hash);
    }

    if (cn) {
        ngx_http_engagement_counters_set_reactions(z, cn, reactions);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/* grows the pending viewer list; called with the zone locked */

static ngx_int_t
ngx_http_engagement_counters_uv_add(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, uint64_t uv)
{
    uint32_t   cap;
    uint64_t  *a;

    if (cn->uv_n == cn->uv_cap) {
        cap = cn->uv_cap ? cn->uv_cap * 2 : 4;

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


ngx_int_t
ngx_http_engagement_counters_add(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *delta,
    uint64_t uv, ngx_http_engagement_view_t *result)
{
    ngx_uint_t                             clean;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_lookup(sh, id, hash);
    if (cn == NULL) {
        cn = ngx_http_engagement_counters_create(z, id, hash);
        if (cn == NULL) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            return NGX_ERROR;
        }

    } else {
        ngx_queue_remove(&cn->queue);
        ngx_queue_insert_head(&sh->head.lru, &cn->queue);
    }

    if (!z->redis) {
        cn->counts.views += delta->views;
        cn->counts.engaged += delta->engaged;
        cn->counts.replays += delta->replays;

    } else {
        clean = !ngx_http_engagement_nonzero(&cn->pending) && cn->uv_n == 0;

        if (uv && ngx_http_engagement_counters_uv_add(z, cn, uv) != NGX_OK) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            ngx_http_engagement_inc(sh, alloc_failures);
            return NGX_ERROR;
        }

        if (clean) {
            cn->pending_since = (uint32_t) ngx_time();

            /* newly dirty: queue it, unless a flush of it is in flight */
            if (cn->seq == 0 && cn->flush.next == NULL) {
                ngx_queue_insert_tail(&sh->dirty, &cn->flush);
                sh->pending_nodes++;
            }
        }

        cn->pending.views += delta->views;
        cn->pending.engaged += delta->engaged;
        cn->pending.replays += delta->replays;
    }

    ngx_http_engagement_counters_view(z, cn, result);

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


void
ngx_http_engagement_counters_get(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_view_t *result)
{
    ngx_msec_t                             ttl;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;
    ngx_http_engagement_main_conf_t       *emcf;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_lookup(sh, id, hash);

    if (cn == NULL) {
        ngx_memzero(result, sizeof(ngx_http_engagement_view_t));
        result->known = !z->redis;
        ngx_shmtx_unlock(&z->shpool->mutex);
        return;
    }

    ngx_http_engagement_counters_view(z, cn, result);

    /* stale totals of content without local deltas: one re-read at a time */
    if (z->redis && result->known) {
        emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                   ngx_http_engagement_module);
        ttl = emcf->cache_ttl;

        if (ngx_http_engagement_age32(cn->confirmed_at) >= ttl
            && (cn->reading_at == 0
                || ngx_http_engagement_age32(cn->reading_at) >= ttl))
        {
            cn->reading_at = ngx_http_engagement_now32();
            result->refresh = 1;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/* totals read from Redis: cached unless a flush of this content is open */

void
ngx_http_engagement_counters_cache(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *totals,
    uint64_t uniques, uint64_t *reactions,
    ngx_http_engagement_view_t *result)
{
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_lookup(sh, id, hash);
    if (cn == NULL) {
        cn = ngx_http_engagement_counters_create(z, id, hash);
    }

    if (cn == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        ngx_memzero(result, sizeof(ngx_http_engagement_view_t));
        result->counts = *totals;
        result->uniques = uniques;
        result->known = 1;
        result->nreactions = z->nreactions;
        ngx_memcpy(result->reactions, reactions,
                   z->nreactions * sizeof(uint64_t));
        return;
    }

    cn->reading_at = 0;
    ngx_http_engagement_counters_set_reactions(z, cn, reactions);

    /*
     * A read that crossed a flush of this content may or may not include
     * it; the flush's own answer will set the totals, so do not store it.
     */
    if (cn->seq == 0) {
        cn->counts = *totals;
        cn->uniques = (uint32_t) uniques;
        cn->confirmed_at = ngx_http_engagement_now32();
        ngx_http_engagement_counters_view(z, cn, result);

    } else {
        ngx_http_engagement_counters_view(z, cn, result);
        result->counts = *totals;
        result->counts.views += cn->pending.views;
        result->counts.engaged += cn->pending.engaged;
        result->counts.replays += cn->pending.replays;
        result->uniques = uniques;
        result->known = 1;
    }

    /* shown even if the block could not be stored */
    result->nreactions = z->nreactions;
    ngx_memcpy(result->reactions, reactions,
               z->nreactions * sizeof(uint64_t));

    ngx_shmtx_unlock(&z->shpool->mutex);
}


static void
ngx_http_engagement_counters_claim_one(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, ngx_http_engagement_claim_t *cl)
{
    cl->node = cn;
    cl->zone = z;
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
 * Takes up to max contents to flush: first those whose flush failed or
 * whose flusher vanished (resent with the same sequence, so Redis applies
 * them once), then fresh deltas, which get a new sequence.
 */

ngx_uint_t
ngx_http_engagement_counters_claim(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_t *claims, ngx_uint_t max, ngx_msec_t reclaim)
{
    uint64_t                               seq;
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
        q = ngx_queue_head(&sh->dirty);
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, flush);

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&sh->inflight, q);
        sh->pending_nodes--;
        sh->inflight_nodes++;

        /* increasing across restarts too: milliseconds times 1000 */
        seq = (uint64_t) ngx_time() * 1000000;
        sh->seq = (sh->seq < seq) ? seq : sh->seq + 1;

        cn->seq = sh->seq;
        cn->inflight = cn->pending;
        cn->inflight_since = cn->pending_since;
        cn->uv_inflight = cn->uv;
        cn->uv_inflight_n = cn->uv_n;
        ngx_memzero(&cn->pending, sizeof(ngx_http_engagement_counts_t));
        cn->uv = NULL;
        cn->uv_n = 0;
        cn->uv_cap = 0;

        ngx_http_engagement_counters_claim_one(z, cn, &claims[n++]);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return n;
}


void
ngx_http_engagement_counters_confirm(ngx_http_engagement_claim_t *cl,
    ngx_http_engagement_counts_t *totals, uint64_t uniques,
    uint64_t *reactions)
{
    ngx_http_engagement_zone_t            *z;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    z = cl->zone;
    sh = z->sh;
    cn = cl->node;

    ngx_shmtx_lock(&z->shpool->mutex);

    /* another worker may have re-claimed and confirmed it already */
    if (cn->seq != cl->seq) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return;
    }

    cn->counts = *totals;
    cn->uniques = (uint32_t) uniques;
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

    if (ngx_http_engagement_nonzero(&cn->pending) || cn->uv_n) {
        ngx_queue_insert_tail(&sh->dirty, &cn->flush);
        sh->pending_nodes++;

    } else {
        cn->flush.next = NULL;
        cn->flush.prev = NULL;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/* the arrival time of the oldest delta not confirmed by Redis, or 0 */

time_t
ngx_http_engagement_counters_oldest(ngx_http_engagement_zone_t *z)
{
    time_t                                 t, oldest;
    ngx_queue_t                           *q;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    oldest = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    /* both queues are in claim or arrival order, but resends move: scan */
    for (q = ngx_queue_head(&sh->inflight);
         q != ngx_queue_sentinel(&sh->inflight);
         q = ngx_queue_next(q))
    {
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, flush);
        t = cn->inflight_since;

        if (t && (oldest == 0 || t < oldest)) {
            oldest = t;
        }
    }

    if (!ngx_queue_empty(&sh->dirty)) {
        cn = ngx_queue_data(ngx_queue_head(&sh->dirty),
                            ngx_http_engagement_counter_node_t, flush);
        t = cn->pending_since;

        if (t && (oldest == 0 || t < oldest)) {
            oldest = t;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return oldest;
}


/* a failed flush: the claim is given up, to be resent as it is */

void
ngx_http_engagement_counters_release(ngx_http_engagement_claim_t *cl)
{
    ngx_http_engagement_zone_t            *z;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    z = cl->zone;
    sh = z->sh;
    cn = cl->node;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (cn->seq == cl->seq && cn->claimed_by == ngx_pid) {
        cn->claimed_by = 0;
        ngx_queue_remove(&cn->flush);
        ngx_queue_insert_head(&sh->inflight, &cn->flush);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


void
ngx_http_engagement_zone_log_full(ngx_http_engagement_zone_t *z,
    ngx_log_t *log)
{
    /* at most one line per worker every 5 s: a full zone is a flood */
    if (z->last_full_log != 0 && ngx_current_msec - z->last_full_log < 5000) {
        return;
    }

    z->last_full_log = ngx_current_msec;

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "engagement zone \"%V\" is full (%uz bytes); events that "
                  "need new entries are refused with 503 until it has room",
                  &z->name, z->shm_zone->shm.size);
}


/*
 * nginx hands a zone over to the new cycle only when name, tag and size
 * match; a size change would silently start from empty counts, so such a
 * reload is refused while the old zone still exists. A dedupe zone may be
 * resized, with a warning: it starts empty.
 */

static ngx_int_t
ngx_http_engagement_zone_resized(ngx_shm_zone_t *shm_zone, ngx_uint_t dedupe)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *oz;

    if (ngx_cycle == NULL || ngx_cycle->shared_memory.part.elts == NULL) {
        return NGX_OK;
    }

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    oz = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }
            part = part->next;
            oz = part->elts;
            i = 0;
        }

        if (oz[i].tag != shm_zone->tag
            || oz[i].shm.name.len != shm_zone->shm.name.len
            || ngx_strncmp(oz[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) != 0)
        {
            continue;
        }

        if (oz[i].shm.size != shm_zone->shm.size && dedupe) {
            ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                          "engagement_dedupe_zone \"%V\" changed size on "
                          "reload (%uz to %uz bytes) and starts empty: "
                          "repeats of events seen before may count again "
                          "within their window", &shm_zone->shm.name,
                          oz[i].shm.size, shm_zone->shm.size);
            return NGX_OK;
        }

        if (oz[i].shm.size != shm_zone->shm.size) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "engagement_zone \"%V\" cannot change size on "
                          "reload (%uz to %uz bytes): its counts would be "
                          "lost; keep the old size, or stop and start nginx",
                          &shm_zone->shm.name, oz[i].shm.size,
                          shm_zone->shm.size);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Creates or adopts a zone's context. On reload nginx passes the old
 * cycle's zone (same name, tag and size); its header must carry this
 * module's magic and layout, or the reload is refused rather than have
 * the new workers misread it.
 */

ngx_int_t
ngx_http_engagement_zone_init(ngx_shm_zone_t *shm_zone, void *data,
    uint32_t magic, size_t size, ngx_rbtree_insert_pt insert,
    const char *directive)
{
    size_t                             len;
    ngx_slab_pool_t                   *shpool;
    ngx_http_engagement_zone_t        *z, *oz;
    ngx_http_engagement_shctx_head_t  *head;

    z = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    z->shpool = shpool;

    if (data || shm_zone->shm.exists) {
        oz = data;
        head = oz ? oz->sh : shpool->data;

        if (head == NULL
            || head->magic != magic
            || head->layout != NGX_HTTP_ENGAGEMENT_LAYOUT
            || head->shctx_size != size)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "%s \"%V\" was written by an incompatible "
                          "module version (layout %uD, this module uses "
                          "%d); stop and start nginx to recreate it",
                          directive, &shm_zone->shm.name,
                          head ? head->layout : 0,
                          NGX_HTTP_ENGAGEMENT_LAYOUT);
            return NGX_ERROR;
        }

        /* the old cycle's module may be unloaded: repoint the callback */
        head->rbtree.insert = insert;
        z->sh = head;

        return NGX_OK;
    }

    if (ngx_http_engagement_zone_resized(shm_zone, z->dedupe) != NGX_OK) {
        return NGX_ERROR;
    }

    head = ngx_slab_calloc(shpool, size);
    if (head == NULL) {
        return NGX_ERROR;
    }

    head->magic = magic;
    head->layout = NGX_HTTP_ENGAGEMENT_LAYOUT;
    head->shctx_size = size;
    head->created = ngx_time();

    ngx_rbtree_init(&head->rbtree, &head->sentinel, insert);
    ngx_queue_init(&head->lru);

    if (magic == NGX_HTTP_ENGAGEMENT_COUNTERS_MAGIC) {
        ngx_queue_init(&((ngx_http_engagement_counters_shctx_t *) head)
                       ->dirty);
        ngx_queue_init(&((ngx_http_engagement_counters_shctx_t *) head)
                       ->inflight);
    }
    ngx_http_engagement_random_key(head->hash_key);

    shpool->data = head;
    z->sh = head;

    len = sizeof(" in  \"\"") + ngx_strlen(directive)
          + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in %s \"%V\"%Z", directive,
                &shm_zone->shm.name);

    /* a full zone is reported by the module, at a limited rate */
    shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_engagement_counters_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    u_char                      *buf;
    ssize_t                      n;
    ngx_fd_t                     fd;
    ngx_int_t                    rc;
    ngx_file_info_t              fi;
    ngx_http_engagement_zone_t  *z;

    rc = ngx_http_engagement_zone_init(shm_zone, data,
             NGX_HTTP_ENGAGEMENT_COUNTERS_MAGIC,
             sizeof(ngx_http_engagement_counters_shctx_t),
             ngx_http_engagement_counters_insert, "engagement_zone");

    z = shm_zone->data;

    if (rc != NGX_OK || data || shm_zone->shm.exists || !z->redis
        || ngx_test_config || z->state_file.len == 0)
    {
        return rc;
    }

    /* a new zone: take over what the last stop could not flush */

    fd = ngx_open_file(z->state_file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return NGX_OK;
    }

    rc = NGX_OK;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 256 * 1024 * 1024)
    {
        ngx_close_file(fd);
        return NGX_OK;
    }

    buf = ngx_alloc((size_t) ngx_file_size(&fi) + 1, shm_zone->shm.log);

    if (buf) {
        n = ngx_read_fd(fd, buf, (size_t) ngx_file_size(&fi));

        if (n == (ssize_t) ngx_file_size(&fi)) {
            (void) ngx_http_engagement_state_restore(z, buf, buf + n,
                                                     shm_zone->shm.log);
        }

        ngx_free(buf);
    }

    ngx_close_file(fd);

    return rc;
}


/*
 * The state file: what Redis has not confirmed when nginx stops, one line
 * per content, written by the master after the workers' final flush and
 * read back when the zone is created at the next start. A line:
 *   c <id> <seq> <in-flight v e r since> <pending v e r since> <nin> <np>
 *     <nin + np viewer hashes, hex>
 * In-flight deltas keep their sequence, so if Redis had applied them
 * before the stop, the resend is recognised and not counted again.
 */

static u_char *
ngx_http_engagement_state_flush(ngx_fd_t fd, u_char *buf, u_char *p,
    ngx_int_t *rc)
{
    if (p > buf && ngx_write_fd(fd, buf, p - buf) != (ssize_t) (p - buf)) {
        *rc = NGX_ERROR;
    }

    return buf;
}


ngx_int_t
ngx_http_engagement_state_save(ngx_cycle_t *cycle,
    ngx_http_engagement_zone_t *z, ngx_fd_t fd)
{
    u_char                                *buf, *p, *end;
    uint32_t                               i;
    ngx_int_t                              rc, n;
    ngx_queue_t                           *q;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    rc = NGX_OK;
    n = 0;

    buf = ngx_alloc(65536, cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    end = buf + 65536;
    p = ngx_sprintf(buf, "zone %V %uL\n", &z->name, sh->seq);

    /* the workers are gone: nobody else holds the lock */
    for (q = ngx_queue_head(&sh->head.lru);
         q != ngx_queue_sentinel(&sh->head.lru);
         q = ngx_queue_next(q))
    {
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, queue);

        if (cn->seq == 0 && !ngx_http_engagement_nonzero(&cn->pending)
            && cn->uv_n == 0)
        {
            continue;
        }

        if (end - p < 512) {
            p = ngx_http_engagement_state_flush(fd, buf, p, &rc);
        }

        p = ngx_sprintf(p, "c %*s %uL %uL %uL %uL %uD %uL %uL %uL %uD %uD %uD",
                        (size_t) cn->len, cn->data, cn->seq,
                        cn->inflight.views, cn->inflight.engaged,
                        cn->inflight.replays, cn->inflight_since,
                        cn->pending.views, cn->pending.engaged,
                        cn->pending.replays, cn->pending_since,
                        cn->seq ? cn->uv_inflight_n : 0, cn->uv_n);

        for (i = 0; cn->seq && i < cn->uv_inflight_n; i++) {
            if (end - p < 32) {
                p = ngx_http_engagement_state_flush(fd, buf, p, &rc);
            }
            p = ngx_sprintf(p, " %016uxL", cn->uv_inflight[i]);
        }

        for (i = 0; i < cn->uv_n; i++) {
            if (end - p < 32) {
                p = ngx_http_engagement_state_flush(fd, buf, p, &rc);
            }
            p = ngx_sprintf(p, " %016uxL", cn->uv[i]);
        }

        *p++ = '\n';
        n++;
    }

    p = ngx_http_engagement_state_flush(fd, buf, p, &rc);
    ngx_free(buf);

    if (rc == NGX_OK && n) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "engagement: saved %i unflushed entries of zone "
                      "\"%V\"", n, &z->name);
    }

    return rc;
}


static u_char *
ngx_http_engagement_state_token(u_char **pp, u_char *end, size_t *len)
{
    u_char  *p, *start;

    p = *pp;

    while (p < end && *p == ' ') {
        p++;
    }

    start = p;

    while (p < end && *p != ' ' && *p != '\n') {
        p++;
    }

    *len = p - start;
    *pp = p;

    return *len ? start : NULL;
}


static ngx_int_t
ngx_http_engagement_state_number(u_char **pp, u_char *end, uint64_t *v,
    ngx_uint_t hex)
{
    u_char  *t;
    size_t   len;
    off_t    n;

    t = ngx_http_engagement_state_token(pp, end, &len);
    if (t == NULL) {
        return NGX_ERROR;
    }

    if (hex) {
        if (len != 16) {
            return NGX_ERROR;
        }

        /* two halves: ngx_hextoi works on ngx_int_t */
        n = ngx_hextoi(t, 8);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }
        *v = (uint64_t) n << 32;
        n = ngx_hextoi(t + 8, 8);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }
        *v |= (uint64_t) n;
        return NGX_OK;
    }

    n = ngx_atoof(t, len);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *v = (uint64_t) n;
    return NGX_OK;
}


/* restores one zone's lines; called in the master at zone creation */

ngx_int_t
ngx_http_engagement_state_restore(ngx_http_engagement_zone_t *z, u_char *p,
    u_char *end, ngx_log_t *log)
{
    u_char                                *t, *eol;
    size_t                                 len;
    uint64_t                               v[11], h;
    ngx_str_t                              id;
    ngx_uint_t                             i, n, mine;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    mine = 0;
    n = 0;

    for ( /* void */ ; p < end; p = eol + 1) {

        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        t = ngx_http_engagement_state_token(&p, eol, &len);
        if (t == NULL) {
            continue;
        }

        if (len == 4 && ngx_strncmp(t, "zone", 4) == 0) {
            t = ngx_http_engagement_state_token(&p, eol, &len);
            mine = (t && len == z->name.len
                    && ngx_strncmp(t, z->name.data, len) == 0);

            if (mine
                && ngx_http_engagement_state_number(&p, eol, &v[0], 0)
                   == NGX_OK
                && v[0] > sh->seq)
            {
                sh->seq = v[0];
            }

            continue;
        }

        if (!mine || len != 1 || *t != 'c') {
            continue;
        }

        id.data = ngx_http_engagement_state_token(&p, eol, &id.len);
        if (id.data == NULL
            || !ngx_http_engagement_id_valid(id.data, id.len))
        {
            goto invalid;
        }

        for (i = 0; i < 11; i++) {
            if (ngx_http_engagement_state_number(&p, eol, &v[i], 0)
                != NGX_OK)
            {
                goto invalid;
            }
        }

        if (v[9] > 1000000 || v[10] > 1000000) {
            goto invalid;
        }

        h = ngx_http_engagement_siphash(sh->head.hash_key, id.data, id.len);
        cn = ngx_http_engagement_counters_lookup(sh, &id, h);

        if (cn == NULL) {
            cn = ngx_http_engagement_counters_create(z, &id, h);
            if (cn == NULL) {
                ngx_log_error(NGX_LOG_ALERT, log, 0,
                              "engagement: zone \"%V\" is too small for its "
                              "state file; the rest is lost", &z->name);
                return NGX_ERROR;
            }
        }

        cn->seq = v[0];
        cn->inflight.views = v[1];
        cn->inflight.engaged = v[2];
        cn->inflight.replays = v[3];
        cn->inflight_since = (uint32_t) v[4];
        cn->pending.views = v[5];
        cn->pending.engaged = v[6];
        cn->pending.replays = v[7];
        cn->pending_since = (uint32_t) v[8];

        if (v[9]) {
            cn->uv_inflight = ngx_slab_alloc_locked(z->shpool,
                                                v[9] * sizeof(uint64_t));
            if (cn->uv_inflight == NULL) {
                goto nomem;
            }
        }

        for (i = 0; i < v[9]; i++) {
            if (ngx_http_engagement_state_number(&p, eol, &h, 1) != NGX_OK) {
                goto invalid;
            }
            cn->uv_inflight[cn->uv_inflight_n++] = h;
        }

        for (i = 0; i < v[10]; i++) {
            if (ngx_http_engagement_state_number(&p, eol, &h, 1) != NGX_OK
                || ngx_http_engagement_counters_uv_add(z, cn, h) != NGX_OK)
            {
                goto invalid;
            }
        }

        if (cn->seq) {
            /* unowned: the first flush resends it with its sequence */
            cn->claimed_by = 0;
            ngx_queue_insert_tail(&sh->inflight, &cn->flush);
            sh->inflight_nodes++;

        } else {
            ngx_queue_insert_tail(&sh->dirty, &cn->flush);
            sh->pending_nodes++;
        }

        n++;
        continue;

    invalid:

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "engagement: invalid line in the state file of zone "
                      "\"%V\" skipped", &z->name);
        continue;

    nomem:

        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "engagement: zone \"%V\" is too small for its state "
                      "file; the rest is lost", &z->name);
        return NGX_ERROR;
    }

    sh->stats[0].restored += n;

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "engagement: restored %ui unflushed entries of zone "
                      "\"%V\" from the state file", n, &z->name);
    }

    return NGX_OK;
}
