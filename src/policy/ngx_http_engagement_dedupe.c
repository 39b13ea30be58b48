/*
 * The dedupe zone: "seen within the window" marks for (metric, content,
 * identity) and for request ids, laid out like limit_req's zone: an rbtree
 * keyed by a 64-bit keyed hash, an LRU queue ordered by expiry, a few
 * expired entries reclaimed before each allocation, and a forced (counted)
 * eviction of the oldest entry when the zone is full. An entry is 64 bytes.
 *
 * An event's marks are taken as a set, under the zone lock from
 * ngx_http_engagement_dedupe_begin() to ngx_http_engagement_dedupe_end():
 * a mark set is pending until committed, and end() takes back every mark
 * still pending. Nobody else sees a pending mark while its owner lives
 * (the owner holds the lock); one found later was left by a worker killed
 * before its event was counted, and counts as not seen.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"


/* expired marks reclaimed before each allocation */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_EXPIRE  2

/* a mark's state, in the rbtree node's spare byte */
#define NGX_HTTP_ENGAGEMENT_MARK_SEEN      0
#define NGX_HTTP_ENGAGEMENT_MARK_PENDING   1


/* starts as an ngx_http_engagement_hnode_t */
typedef struct {
    ngx_rbtree_node_t    node;        /* key: the hash (its low half on
                                         32-bit platforms); data: state */
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


/*
 * A new node, after reclaiming expired ones; when the zone is full, the
 * oldest mark is evicted, unless this set made it.
 */

static ngx_http_engagement_dedupe_node_t *
ngx_http_engagement_dedupe_alloc(ngx_http_engagement_zone_t *z,
    ngx_msec_t now, ngx_http_engagement_dedupe_set_t *set)
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

    for (j = 0; j < set->n; j++) {
        if (set->nodes[j] == dn) {
            return NULL;
        }
    }

    ngx_http_engagement_dedupe_expire(z, now, 1);

    return ngx_slab_alloc_locked(z->shpool,
                                 sizeof(ngx_http_engagement_dedupe_node_t));
}


/* the set's marks are checked and set under the zone lock, until end() */

void
ngx_http_engagement_dedupe_begin(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set)
{
    set->n = 0;
    set->now = ngx_current_msec;

    ngx_shmtx_lock(&z->shpool->mutex);
}


/*
 * One mark of the set: *fresh is 0 when it was seen within the window
 * (and it is left as it is), else it is set, pending. NGX_ERROR: no room.
 */

ngx_int_t
ngx_http_engagement_dedupe_mark(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set, uint64_t hash, ngx_msec_t window,
    ngx_uint_t *fresh)
{
    ngx_uint_t                           i;
    ngx_http_engagement_dedupe_node_t   *dn;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;
    i = set->n;

    if (i == NGX_HTTP_ENGAGEMENT_DEDUPE_SET) {
        return NGX_ERROR;
    }

    dn = (ngx_http_engagement_dedupe_node_t *)
        ngx_http_engagement_hnode_lookup(&sh->head.rbtree, hash);

    if (dn != NULL) {

        if (dn->node.data == NGX_HTTP_ENGAGEMENT_MARK_SEEN
            && (ngx_msec_int_t) (dn->expire - set->now) > 0)
        {
            *fresh = 0;
            sh->hits++;
            return NGX_OK;
        }

        /* the window has passed, or its event was never counted */
        set->created[i] = 0;
        set->old_state[i] = dn->node.data;
        set->old_expire[i] = dn->expire;
        ngx_queue_remove(&dn->queue);

    } else {
        dn = ngx_http_engagement_dedupe_alloc(z, set->now, set);

        if (dn == NULL) {
            sh->alloc_failures++;
            sh->head.full = 1;
            return NGX_ERROR;
        }

        sh->head.full = 0;

        ngx_http_engagement_hnode_set((ngx_http_engagement_hnode_t *) dn,
                                      hash);
        ngx_rbtree_insert(&sh->head.rbtree, &dn->node);
        sh->head.entries++;
        sh->inserts++;

        set->created[i] = 1;
    }

    dn->node.data = NGX_HTTP_ENGAGEMENT_MARK_PENDING;
    dn->expire = set->now + window;
    ngx_queue_insert_head(&sh->head.lru, &dn->queue);

    set->nodes[i] = dn;
    set->n++;
    *fresh = 1;

    return NGX_OK;
}


/* the set's pending marks are seen from now on; the lock is still held */

void
ngx_http_engagement_dedupe_commit(ngx_http_engagement_dedupe_set_t *set)
{
    ngx_uint_t                          i;
    ngx_http_engagement_dedupe_node_t  *dn;

    for (i = 0; i < set->n; i++) {
        dn = set->nodes[i];
        dn->node.data = NGX_HTTP_ENGAGEMENT_MARK_SEEN;
    }

    set->n = 0;
}


/*
 * Marks still pending are taken back, newest first, so that the retry
 * of an event that was not counted is not a repeat; then the lock is
 * released. No other worker has seen them: the lock was held throughout.
 */

void
ngx_http_engagement_dedupe_end(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set)
{
    ngx_uint_t                          i;
    ngx_http_engagement_dedupe_node_t  *dn;

    for (i = set->n; i--; /* void */) {
        dn = set->nodes[i];

        if (set->created[i]) {
            ngx_http_engagement_dedupe_free(z, dn);
            continue;
        }

        /* its place in the LRU is kept: the queue is only approximate */
        dn->node.data = set->old_state[i];
        dn->expire = set->old_expire[i];
    }

    set->n = 0;

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
