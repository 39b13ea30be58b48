
/*
 * The counters zone: per-content totals (views, engaged views, replays) in
 * shared memory, in an rbtree keyed by a keyed hash of the content id with
 * the id stored inline, plus an LRU queue. Zone creation, reuse on reload
 * and the refusal of reloads that would lose or misread counts live here.
 */


#include "ngx_http_engagement_module.h"


typedef struct {
    ngx_rbtree_node_t              node;      /* key: the hash */
    ngx_queue_t                    queue;
    uint64_t                       hash;
    ngx_http_engagement_counts_t   counts;
    u_char                         len;
    u_char                         data[1];
} ngx_http_engagement_counter_node_t;


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
    if (hash != cn->hash) {
        return (hash < cn->hash) ? -1 : 1;
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

        p = (ngx_http_engagement_counters_cmp(cn->hash, &id, cnt) < 0)
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
     * Counts are the only copy in shared-memory mode, so a full zone never
     * evicts them: the caller answers 503 and the event can be retried.
     */
    cn = ngx_slab_calloc_locked(z->shpool, size);
    if (cn == NULL) {
        (void) ngx_atomic_fetch_add(&sh->stats.alloc_failures, 1);
        return NULL;
    }

    cn->node.key = (ngx_rbtree_key_t) hash;
    cn->hash = hash;
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


ngx_int_t
ngx_http_engagement_counters_add(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *delta,
    ngx_http_engagement_counts_t *result)
{
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

    cn->counts.views += delta->views;
    cn->counts.engaged += delta->engaged;
    cn->counts.replays += delta->replays;
    *result = cn->counts;

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


void
ngx_http_engagement_counters_get(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *result)
{
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    cn = ngx_http_engagement_counters_lookup(sh, id, hash);
    if (cn != NULL) {
        *result = cn->counts;

    } else {
        ngx_memzero(result, sizeof(ngx_http_engagement_counts_t));
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
    return ngx_http_engagement_zone_init(shm_zone, data,
               NGX_HTTP_ENGAGEMENT_COUNTERS_MAGIC,
               sizeof(ngx_http_engagement_counters_shctx_t),
               ngx_http_engagement_counters_insert, "engagement_zone");
}
