
/*
 * The dedupe zone: "seen within the window" marks for (metric, content,
 * identity) and for request ids, laid out like limit_req's zone: an rbtree
 * keyed by a 64-bit keyed hash, an LRU queue ordered by expiry, a few
 * expired entries reclaimed before each allocation, and a forced (counted)
 * eviction of the oldest entry when the zone is full. An entry is 64 bytes.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"


/* expired marks reclaimed before each allocation */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_EXPIRE  2


/* starts as an ngx_http_engagement_hnode_t */
typedef struct {
    ngx_rbtree_node_t    node;        /* key: the hash (its low half on
                                         32-bit platforms) */
    ngx_queue_t          queue;
#if (NGX_PTR_SIZE == 4)
    uint32_t             hash_hi;
#endif
    ngx_msec_t           expire;
} ngx_http_engagement_dedupe_node_t;


static void
ngx_http_engagement_dedupe_free(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_node_t *dn)
{
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;

    ngx_queue_remove(&dn->queue);
    ngx_rbtree_delete(&sh->head.rbtree, &dn->node);
    ngx_slab_free_locked(z->shpool, dn);
    sh->head.entries--;
}


/* reclaims a few expired entries, or the oldest one when forced */

static void
ngx_http_engagement_dedupe_expire(ngx_http_engagement_zone_t *z,
    ngx_msec_t now, ngx_uint_t force)
{
    ngx_uint_t                           n;
    ngx_queue_t                         *q;
    ngx_http_engagement_dedupe_node_t   *dn;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;

    for (n = 0; n < NGX_HTTP_ENGAGEMENT_DEDUPE_EXPIRE; n++) {

        if (ngx_queue_empty(&sh->head.lru)) {
            return;
        }

        q = ngx_queue_last(&sh->head.lru);
        dn = ngx_queue_data(q, ngx_http_engagement_dedupe_node_t, queue);

        if ((ngx_msec_int_t) (dn->expire - now) > 0) {
            if (!force) {
                return;
            }

            /* a live mark is lost: a repeat may count again; said so */
            sh->evictions++;
            ngx_http_engagement_dedupe_free(z, dn);
            return;
        }

        sh->expired++;
        ngx_http_engagement_dedupe_free(z, dn);

        if (force) {
            return;
        }
    }
}


/* one check's marks as found, so that a failed check can be undone */
typedef struct {
    ngx_http_engagement_dedupe_node_t  *nodes[NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH];
    ngx_msec_t                     old_expire[NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH];
    ngx_uint_t                     created[NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH];
} ngx_http_engagement_dedupe_set_t;


/*
 * A new node, after reclaiming expired ones; when the zone is full, the
 * oldest mark is evicted, unless the first i marks of this set made it.
 */

static ngx_http_engagement_dedupe_node_t *
ngx_http_engagement_dedupe_alloc(ngx_http_engagement_zone_t *z,
    ngx_msec_t now, ngx_http_engagement_dedupe_set_t *set, ngx_uint_t i)
{
    ngx_uint_t                           j;
    ngx_http_engagement_dedupe_node_t   *dn;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;

    ngx_http_engagement_dedupe_expire(z, now, 0);

    dn = ngx_slab_alloc_locked(z->shpool,
                               sizeof(ngx_http_engagement_dedupe_node_t));
    if (dn != NULL || ngx_queue_empty(&sh->head.lru)) {
        return dn;
    }

    dn = ngx_queue_data(ngx_queue_last(&sh->head.lru),
                        ngx_http_engagement_dedupe_node_t, queue);

    for (j = 0; j < i; j++) {
        if (set->nodes[j] == dn) {
            return NULL;
        }
    }

    ngx_http_engagement_dedupe_expire(z, now, 1);

    return ngx_slab_alloc_locked(z->shpool,
                                 sizeof(ngx_http_engagement_dedupe_node_t));
}


/* mark i of the set, under the lock; NGX_ERROR: no room for it */

static ngx_int_t
ngx_http_engagement_dedupe_mark(ngx_http_engagement_zone_t *z,
    uint64_t hash, ngx_msec_t now, ngx_msec_t window,
    ngx_http_engagement_dedupe_set_t *set, ngx_uint_t i, ngx_uint_t *fresh)
{
    ngx_http_engagement_dedupe_node_t   *dn;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;

    dn = (ngx_http_engagement_dedupe_node_t *)
        ngx_http_engagement_hnode_lookup(&sh->head.rbtree, hash);

    if (dn != NULL) {
        set->nodes[i] = dn;
        set->created[i] = 0;
        set->old_expire[i] = dn->expire;

        if ((ngx_msec_int_t) (dn->expire - now) > 0) {
            *fresh = 0;
            sh->hits++;
            return NGX_OK;
        }

        /* seen before, but the window has passed: a new mark */
        *fresh = 1;
        dn->expire = now + window;
        ngx_queue_remove(&dn->queue);
        ngx_queue_insert_head(&sh->head.lru, &dn->queue);
        return NGX_OK;
    }

    dn = ngx_http_engagement_dedupe_alloc(z, now, set, i);

    if (dn == NULL) {
        sh->alloc_failures++;
        sh->head.full = 1;
        return NGX_ERROR;
    }

    sh->head.full = 0;

    ngx_http_engagement_hnode_set((ngx_http_engagement_hnode_t *) dn, hash);
    dn->expire = now + window;

    ngx_rbtree_insert(&sh->head.rbtree, &dn->node);
    ngx_queue_insert_head(&sh->head.lru, &dn->queue);
    sh->head.entries++;
    sh->inserts++;

    set->nodes[i] = dn;
    set->created[i] = 1;
    *fresh = 1;

    return NGX_OK;
}


/*
 * Checks n marks and sets those not seen within the window, atomically
 * for the whole set: fresh[i] says whether mark i was new. NGX_ERROR when
 * a mark could not be stored even after an eviction; then nothing of the
 * set is changed.
 */

ngx_int_t
ngx_http_engagement_dedupe_check_set(ngx_http_engagement_zone_t *z,
    uint64_t *hashes, ngx_uint_t n, ngx_msec_t window, ngx_uint_t *fresh)
{
    ngx_uint_t                        i, j;
    ngx_msec_t                        now;
    ngx_http_engagement_dedupe_set_t  set;

    if (n > NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH) {
        return NGX_ERROR;
    }

    now = ngx_current_msec;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (i = 0; i < n; i++) {
        if (ngx_http_engagement_dedupe_mark(z, hashes[i], now, window, &set,
                                            i, &fresh[i])
            != NGX_OK)
        {
            goto failed;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;

failed:

    /* undo this set's marks, so that a retry of the event is not a repeat */
    for (j = 0; j < i; j++) {
        if (!fresh[j]) {
            continue;
        }

        if (set.created[j]) {
            ngx_http_engagement_dedupe_free(z, set.nodes[j]);

        } else {
            set.nodes[j]->expire = set.old_expire[j];
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_ERROR;
}


void
ngx_http_engagement_dedupe_remove(ngx_http_engagement_zone_t *z,
    uint64_t hash)
{
    ngx_http_engagement_dedupe_node_t  *dn;

    ngx_shmtx_lock(&z->shpool->mutex);

    dn = (ngx_http_engagement_dedupe_node_t *)
            ngx_http_engagement_hnode_lookup(
                &((ngx_http_engagement_dedupe_shctx_t *) z->sh)->head.rbtree,
                hash);
    if (dn != NULL) {
        ngx_http_engagement_dedupe_free(z, dn);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/* the hash of kind | a | 0 | b, keyed with the zone's secret */

uint64_t
ngx_http_engagement_dedupe_hash(ngx_http_engagement_zone_t *z, u_char kind,
    ngx_str_t *a, ngx_str_t *b)
{
    u_char                              *p;
    size_t                               alen, blen;
    ngx_http_engagement_dedupe_shctx_t  *sh;
    u_char                   buf[2 + 2 * NGX_HTTP_ENGAGEMENT_KEY_MAX];

    sh = z->sh;

    alen = ngx_min(a->len, NGX_HTTP_ENGAGEMENT_KEY_MAX);
    blen = b ? ngx_min(b->len, NGX_HTTP_ENGAGEMENT_KEY_MAX) : 0;

    p = buf;
    *p++ = kind;
    p = ngx_cpymem(p, a->data, alen);
    *p++ = '\0';

    if (blen) {
        p = ngx_cpymem(p, b->data, blen);
    }

    return ngx_http_engagement_siphash(sh->head.hash_key, buf, p - buf);
}


/* what a dedupe zone keeps, for its layout */
static const size_t  ngx_http_engagement_dedupe_shape[] = {
    NGX_HTTP_ENGAGEMENT_HEAD_SHAPE,
    sizeof(ngx_http_engagement_dedupe_shctx_t),
    sizeof(ngx_http_engagement_dedupe_node_t),
    offsetof(ngx_http_engagement_dedupe_node_t, queue),
    offsetof(ngx_http_engagement_dedupe_node_t, expire)
};


static const ngx_http_engagement_zone_kind_t  ngx_http_engagement_dedupe_kind
    = {
    "engagement_dedupe_zone",
    NGX_HTTP_ENGAGEMENT_DEDUPE_MAGIC,
    sizeof(ngx_http_engagement_dedupe_shctx_t),
    ngx_http_engagement_hnode_insert,
    NGX_HTTP_ENGAGEMENT_RESIZE_WARN,
    ngx_http_engagement_dedupe_shape,
    sizeof(ngx_http_engagement_dedupe_shape) / sizeof(size_t)
};


ngx_int_t
ngx_http_engagement_dedupe_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    return ngx_http_engagement_zone_init(shm_zone, data,
                                         &ngx_http_engagement_dedupe_kind);
}
