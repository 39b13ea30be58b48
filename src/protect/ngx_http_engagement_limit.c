
/*
 * Rate limits at the edge: engagement_limit_zone (a shared memory zone of
 * leaky buckets) and engagement_limit (a rule of a location: zone, key,
 * rate, burst, dry_run). The zone is laid out like limit_req's: a header
 * in the zone, an rbtree keyed by a 64-bit keyed hash of the key (the raw
 * key is never stored), an LRU queue, drained buckets reclaimed before
 * each allocation and a forced, counted eviction when the zone is full.
 * Excess is kept in milli-requests, in fixed point, and the whole
 * read-modify-write of a bucket runs under the zone lock; the key is
 * evaluated and hashed before the lock is taken.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "http/ngx_http_engagement_http.h"


#define NGX_HTTP_ENGAGEMENT_LIMIT_MAGIC    0x45474c31   /* "EGL1" */
#define NGX_HTTP_ENGAGEMENT_LIMIT_MAX      100000       /* rate and burst */


/* what the zone keeps first; magic and layout first, as in every zone */
typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    size_t                        shctx_size;
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;
    uint64_t                      hash_key[2];
    time_t                        created;
    ngx_atomic_t                  entries;
    ngx_atomic_t                  passed;
    ngx_atomic_t                  limited;
    ngx_atomic_t                  dry_run;     /* would have been limited */
    ngx_atomic_t                  expired;
    ngx_atomic_t                  evictions;   /* live buckets dropped */
    ngx_atomic_t                  alloc_failures;
} ngx_http_engagement_limit_shctx_t;


/*
 * One bucket: 64 bytes on 64-bit platforms (the slab's 64-byte class);
 * starts as an ngx_http_engagement_hnode_t.
 */
typedef struct {
    ngx_rbtree_node_t             node;        /* key: the hash (its low
                                                  half on 32-bit ones) */
    ngx_queue_t                   queue;
#if (NGX_PTR_SIZE == 4)
    uint32_t                      hash_hi;
#endif
    uint32_t                      excess;      /* milli-requests */
    uint32_t                      last;        /* ngx_current_msec, low 32 */
} ngx_http_engagement_limit_node_t;


typedef struct {
    ngx_str_t                     name;
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    ngx_http_engagement_limit_shctx_t  *sh;
    ngx_msec_t                    max_idle;    /* a bucket idle this long
                                                  is empty for every rule */
    ngx_msec_t                    last_full_log;
} ngx_http_engagement_limit_zone_t;


typedef struct {
    ngx_str_t                     zone_name;
    ngx_http_engagement_limit_zone_t  *zone;
    ngx_http_complex_value_t      key;
    ngx_uint_t                    rate;        /* requests per period */
    ngx_msec_t                    period;      /* 1000 or 60000 */
    ngx_uint_t                    burst;       /* milli-requests */
    ngx_uint_t                    dry_run;
    u_char                       *file;        /* where it was written */
    ngx_uint_t                    line;
} ngx_http_engagement_limit_rule_t;


typedef struct {
    ngx_array_t                   zones;       /* limit_zone_t * */
    ngx_array_t                   rules;       /* limit_rule_t *, all */
} ngx_http_engagement_limit_conf_t;


static ngx_http_engagement_limit_conf_t *ngx_http_engagement_limit_conf(
    ngx_conf_t *cf);


static void
ngx_http_engagement_limit_free(ngx_http_engagement_limit_zone_t *z,
    ngx_http_engagement_limit_node_t *ln)
{
    ngx_queue_remove(&ln->queue);
    ngx_rbtree_delete(&z->sh->rbtree, &ln->node);
    ngx_slab_free_locked(z->shpool, ln);
    z->sh->entries--;
}


/*
 * Reclaims up to two drained buckets from the LRU tail; forced: the
 * oldest one whatever its state (a client then gets a fresh burst).
 * Returns 1 when a live bucket was evicted.
 */

static ngx_uint_t
ngx_http_engagement_limit_expire(ngx_http_engagement_limit_zone_t *z,
    uint32_t now, ngx_uint_t force)
{
    ngx_uint_t                          n;
    ngx_queue_t                        *q;
    ngx_http_engagement_limit_node_t   *ln;

    for (n = 0; n < 2; n++) {

        if (ngx_queue_empty(&z->sh->lru)) {
            return 0;
        }

        q = ngx_queue_last(&z->sh->lru);
        ln = ngx_queue_data(q, ngx_http_engagement_limit_node_t, queue);

        if ((uint32_t) (now - ln->last) < z->max_idle) {
            if (!force) {
                return 0;
            }

            z->sh->evictions++;
            ngx_http_engagement_limit_free(z, ln);
            return 1;
        }

        z->sh->expired++;
        ngx_http_engagement_limit_free(z, ln);

        if (force) {
            return 0;
        }
    }

    return 0;
}


/*
 * One rule's leaky bucket for one key hash. NGX_OK: within the limit and
 * accounted; NGX_DONE: over it in a dry run (counted only); NGX_BUSY: over
 * it, *wait says for how many milliseconds (nothing accounted);
 * NGX_DECLINED: no room for a bucket (the request passes: a full zone
 * must not lock everybody out).
 */

static ngx_int_t
ngx_http_engagement_limit_account(ngx_http_engagement_limit_rule_t *rule,
    uint64_t hash, ngx_msec_t *wait, ngx_uint_t *evicted, ngx_uint_t *created)
{
    int64_t                              excess;
    uint32_t                             now, elapsed;
    ngx_http_engagement_limit_zone_t    *z;
    ngx_http_engagement_limit_node_t    *ln;

    z = rule->zone;
    now = (uint32_t) ngx_current_msec;
    *evicted = 0;
    *created = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    /*
     * Drained buckets go on every request, not only when room is needed,
     * so that none lives long enough for its 32-bit time to wrap.
     */
    ngx_http_engagement_limit_expire(z, now, 0);

    ln = (ngx_http_engagement_limit_node_t *)
         ngx_http_engagement_hnode_lookup(&z->sh->rbtree, hash);

    if (ln == NULL) {
        /* a first request: an empty bucket, which it always fits */

        ln = ngx_slab_alloc_locked(z->shpool,
                                   sizeof(ngx_http_engagement_limit_node_t));
        if (ln == NULL) {
            *evicted = ngx_http_engagement_limit_expire(z, now, 1);
            ln = ngx_slab_alloc_locked(z->shpool,
                                  sizeof(ngx_http_engagement_limit_node_t));
        }

        if (ln == NULL) {
            z->sh->alloc_failures++;
            ngx_shmtx_unlock(&z->shpool->mutex);
            return NGX_DECLINED;
        }

        ngx_http_engagement_hnode_set((ngx_http_engagement_hnode_t *) ln,
                                      hash);
        ln->excess = 0;
        ln->last = now;

        ngx_rbtree_insert(&z->sh->rbtree, &ln->node);
        ngx_queue_insert_head(&z->sh->lru, &ln->queue);
        z->sh->entries++;
        *created = 1;

        z->sh->passed++;
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_OK;
    }

    elapsed = now - ln->last;

    /* what leaked out since the last accounted request, plus this one */
    excess = (int64_t) ln->excess
             - (int64_t) ((uint64_t) elapsed * 1000 * rule->rate
                          / rule->period)
             + 1000;

    if (excess < 0) {
        excess = 0;
    }

    if ((uint64_t) excess > rule->burst) {
        /* when the excess will have leaked down to the burst */
        *wait = (ngx_msec_t) (((uint64_t) excess - rule->burst)
                              * rule->period / (1000 * rule->rate));

        if (rule->dry_run) {
            z->sh->dry_run++;
            ngx_shmtx_unlock(&z->shpool->mutex);
            return NGX_DONE;
        }

        z->sh->limited++;
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_BUSY;
    }

    ln->excess = (uint32_t) excess;
    ln->last = now;
    ngx_queue_remove(&ln->queue);
    ngx_queue_insert_head(&z->sh->lru, &ln->queue);

    z->sh->passed++;
    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


/* a later rule refused the request: this one gives its share back */

static void
ngx_http_engagement_limit_undo(ngx_http_engagement_limit_rule_t *rule,
    uint64_t hash, ngx_uint_t created)
{
    ngx_http_engagement_limit_zone_t  *z;
    ngx_http_engagement_limit_node_t  *ln;

    z = rule->zone;

    ngx_shmtx_lock(&z->shpool->mutex);

    ln = (ngx_http_engagement_limit_node_t *)
         ngx_http_engagement_hnode_lookup(&z->sh->rbtree, hash);

    if (ln != NULL && created) {
        /* the bucket was made for this request: as if it never came */
        ngx_http_engagement_limit_free(z, ln);

    } else if (ln != NULL && ln->excess >= 1000) {
        ln->excess -= 1000;

    } else if (ln != NULL) {
        /*
         * Less than one request of excess is left: that is an empty excess
         * whose last request lies further back, by the time the rest
         * takes to leak.
         */
        ln->last -= (uint32_t) ((uint64_t) (1000 - ln->excess) * rule->period
                                / (1000 * rule->rate));
        ln->excess = 0;
    }

    if (z->sh->passed) {
        z->sh->passed--;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


static ngx_int_t
ngx_http_engagement_limit_reject(ngx_http_request_t *r,
    ngx_http_engagement_limit_rule_t *rule, ngx_msec_t wait)
{
    u_char           *body, *p;
    ngx_uint_t        secs;
    ngx_table_elt_t  *h;

    /* whole seconds, rounded up: a retry at that time fits */
    secs = (wait + 999) / 1000;
    if (secs == 0) {
        secs = 1;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%ui", secs) - p;

    body = ngx_pnalloc(r->pool, sizeof("{\"error\":\"rate_limited\","
                                       "\"zone\":\"\",\"retryAfter\":,"
                                       "\"message\":\"too many requests; "
                                       "nothing was recorded, retry after "
                                       "retryAfter seconds\"}\n")
                                + rule->zone->name.len + NGX_INT_T_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":\"rate_limited\",\"zone\":\"%V\","
                    "\"retryAfter\":%ui,\"message\":\"too many requests; "
                    "nothing was recorded, retry after retryAfter "
                    "seconds\"}\n", &rule->zone->name, secs);

    return ngx_http_engagement_send_json(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                         body, p - body);
}


/*
 * Runs the location's rules in order. NGX_DECLINED: go on; otherwise the
 * 429 was sent and this is its return code. A request refused by one rule
 * is accounted by none (earlier rules give their share back).
 */

ngx_int_t
ngx_http_engagement_limit_check(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    ngx_str_t                           key;
    ngx_int_t                           rc;
    ngx_uint_t                          i, j, evicted;
    ngx_uint_t                          created[NGX_HTTP_ENGAGEMENT_LIMITS];
    ngx_msec_t                          wait;
    ngx_http_engagement_limit_rule_t  **rules, *rule;
    uint64_t                            hashes[NGX_HTTP_ENGAGEMENT_LIMITS];
    ngx_int_t                           done[NGX_HTTP_ENGAGEMENT_LIMITS];

    if (elcf->limits == NULL) {
        return NGX_DECLINED;
    }

    rules = elcf->limits->elts;

    /* keys are evaluated and hashed before any lock is taken */
    for (i = 0; i < elcf->limits->nelts; i++) {
        rule = rules[i];
        done[i] = NGX_DECLINED;

        if (ngx_http_complex_value(r, &rule->key, &key) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (key.len == 0) {
            /* no key, no limit (e.g. a per-viewer rule, no viewerId) */
            hashes[i] = 0;
            continue;
        }

        hashes[i] = ngx_http_engagement_siphash(rule->zone->sh->hash_key,
                                                key.data, key.len);
        done[i] = NGX_OK;
    }

    for (i = 0; i < elcf->limits->nelts; i++) {
        rule = rules[i];

        if (done[i] == NGX_DECLINED) {
            continue;
        }

        wait = 0;
        rc = ngx_http_engagement_limit_account(rule, hashes[i], &wait,
                                                &evicted, &created[i]);

        if (evicted
            && ngx_current_msec - rule->zone->last_full_log >= 5000)
        {
            rule->zone->last_full_log = ngx_current_msec;
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "engagement_limit_zone \"%V\" is full: the least "
                          "recently used bucket was evicted",
                          &rule->zone->name);
        }

        done[i] = rc;

        if (rc != NGX_BUSY) {
            continue;
        }

        for (j = 0; j < i; j++) {
            if (done[j] == NGX_OK) {
                ngx_http_engagement_limit_undo(rules[j], hashes[j],
                                               created[j]);
            }
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "engagement: limiting requests by zone \"%V\"",
                      &rule->zone->name);

        /* before the header goes out: add_header may show the variables */
        ngx_http_engagement_set_outcome(r, "refused", "rate_limited", NULL);

        return ngx_http_engagement_limit_reject(r, rule, wait);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_engagement_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                              len;
    ngx_slab_pool_t                    *shpool;
    ngx_http_engagement_limit_zone_t   *z;
    ngx_http_engagement_limit_shctx_t  *sh;

    z = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    z->shpool = shpool;

    if (data || shm_zone->shm.exists) {
        /* a zone kept over a reload: whatever wrote it puts magic first */
        sh = shpool->data;

        if (sh == NULL
            || sh->magic != NGX_HTTP_ENGAGEMENT_LIMIT_MAGIC
            || sh->layout != NGX_HTTP_ENGAGEMENT_LAYOUT
            || sh->shctx_size != sizeof(ngx_http_engagement_limit_shctx_t))
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "engagement_limit_zone \"%V\" was written by "
                          "another zone kind or module version; stop and "
                          "start nginx to recreate it", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        /* the old cycle's module may be unloaded: repoint the callback */
        sh->rbtree.insert = ngx_http_engagement_hnode_insert;
        z->sh = sh;

        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_limit_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_ENGAGEMENT_LIMIT_MAGIC;
    sh->layout = NGX_HTTP_ENGAGEMENT_LAYOUT;
    sh->shctx_size = sizeof(ngx_http_engagement_limit_shctx_t);
    sh->created = ngx_time();

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_http_engagement_hnode_insert);
    ngx_queue_init(&sh->lru);
    ngx_http_engagement_random_key(sh->hash_key);

    shpool->data = sh;
    z->sh = sh;

    len = sizeof(" in engagement_limit_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in engagement_limit_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts, counted, and is logged at a limited rate */
    shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_http_engagement_limit_conf_t *
ngx_http_engagement_limit_conf(ngx_conf_t *cf)
{
    ngx_http_engagement_limit_conf_t  *lcf;
    ngx_http_engagement_main_conf_t   *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->limit) {
        return emcf->limit;
    }

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_limit_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&lcf->zones, cf->pool, 2, sizeof(void *)) != NGX_OK
        || ngx_array_init(&lcf->rules, cf->pool, 4, sizeof(void *))
           != NGX_OK)
    {
        return NULL;
    }

    emcf->limit = lcf;

    return lcf;
}


/* engagement_limit_zone name:size; */

char *
ngx_http_engagement_limit_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char                             *p;
    ssize_t                             size;
    ngx_str_t                          *value, name, s;
    ngx_uint_t                          i;
    ngx_shm_zone_t                     *shm_zone;
    ngx_http_engagement_limit_conf_t   *lcf;
    ngx_http_engagement_limit_zone_t   *z, **zp;

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid engagement_limit_zone \"%V\": expected "
                           "name:size, e.g. per_ip:10m", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid engagement_limit_zone size \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit_zone \"%V\" is too small: at "
                           "least %uzk", &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    lcf = ngx_http_engagement_limit_conf(cf);
    if (lcf == NULL) {
        return NGX_CONF_ERROR;
    }

    zp = lcf->zones.elts;

    for (i = 0; i < lcf->zones.nelts; i++) {
        if (zp[i]->name.len == name.len
            && ngx_strncmp(zp[i]->name.data, name.data, name.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_limit_zone \"%V\" is already "
                               "declared", &name);
            return NGX_CONF_ERROR;
        }
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_limit_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the module's tag: a reload keeps a zone of the same name and size */
    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_engagement_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"%V\" is already in use",
                           &name);
        return NGX_CONF_ERROR;
    }

    z->name = name;
    z->shm_zone = shm_zone;
    z->max_idle = 1000;

    shm_zone->data = z;
    shm_zone->init = ngx_http_engagement_limit_init_zone;

    zp = ngx_array_push(&lcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = z;

    return NGX_CONF_OK;
}


/* engagement_limit zone=name key=$var rate=Nr/s|Nr/m [burst=N] [dry_run]; */

char *
ngx_http_engagement_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    u_char                             *p;
    size_t                              len;
    ngx_int_t                           n;
    ngx_str_t                          *value, s;
    ngx_uint_t                          i, has_key;
    ngx_http_engagement_limit_conf_t   *lcf;
    ngx_http_engagement_limit_rule_t   *rule, **rp;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;

    rule = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_limit_rule_t));
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    has_key = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0
            && value[i].len > 5)
        {
            rule->zone_name.data = value[i].data + 5;
            rule->zone_name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            if (s.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_limit: empty \"key=\"");
                return NGX_CONF_ERROR;
            }

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
            ccv.cf = cf;
            ccv.value = &s;
            ccv.complex_value = &rule->key;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            has_key = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            len = value[i].len;

            /* "rate=" + digits + "r/s" */
            p = value[i].data + len - 3;

            if (len > 8 && ngx_strncmp(p, "r/s", 3) == 0) {
                rule->period = 1000;

            } else if (len > 8 && ngx_strncmp(p, "r/m", 3) == 0) {
                rule->period = 60000;

            } else {
                goto bad_rate;
            }

            n = ngx_atoi(value[i].data + 5, len - 8);

            if (n == NGX_ERROR || n == 0 || n > NGX_HTTP_ENGAGEMENT_LIMIT_MAX)
            {
                goto bad_rate;
            }

            rule->rate = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n == NGX_ERROR || n > NGX_HTTP_ENGAGEMENT_LIMIT_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_limit: invalid burst \"%V\": "
                                   "a number from 0 to %d", &value[i],
                                   NGX_HTTP_ENGAGEMENT_LIMIT_MAX);
                return NGX_CONF_ERROR;
            }

            rule->burst = (ngx_uint_t) n * 1000;
            continue;
        }

        if (ngx_strcmp(value[i].data, "dry_run") == 0) {
            rule->dry_run = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: invalid parameter \"%V\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    if (rule->zone_name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: \"zone=\" is required");
        return NGX_CONF_ERROR;
    }

    if (!has_key) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: \"key=\" is required, e.g. "
                           "key=$binary_remote_addr");
        return NGX_CONF_ERROR;
    }

    if (rule->rate == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: \"rate=\" is required, e.g. "
                           "rate=10r/s");
        return NGX_CONF_ERROR;
    }

    /* bucket times are 32-bit milliseconds: a bucket must drain sooner */
    if ((uint64_t) (rule->burst + 1000) * rule->period / rule->rate
        > NGX_MAX_INT32_VALUE)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: burst=%ui at this rate would "
                           "take over 24 days to drain; use a higher rate or "
                           "a smaller burst", rule->burst / 1000);
        return NGX_CONF_ERROR;
    }

    if (elcf->limits == NGX_CONF_UNSET_PTR) {
        elcf->limits = ngx_array_create(cf->pool, 2, sizeof(void *));
        if (elcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (elcf->limits->nelts == NGX_HTTP_ENGAGEMENT_LIMITS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "at most %d engagement_limit rules per location",
                           NGX_HTTP_ENGAGEMENT_LIMITS);
        return NGX_CONF_ERROR;
    }

    rule->file = cf->conf_file->file.name.data;
    rule->line = cf->conf_file->line;

    rp = ngx_array_push(elcf->limits);
    if (rp == NULL) {
        return NGX_CONF_ERROR;
    }

    *rp = rule;

    /* zones are resolved once the http block is read: any order works */
    lcf = ngx_http_engagement_limit_conf(cf);
    if (lcf == NULL) {
        return NGX_CONF_ERROR;
    }

    rp = ngx_array_push(&lcf->rules);
    if (rp == NULL) {
        return NGX_CONF_ERROR;
    }

    *rp = rule;

    return NGX_CONF_OK;

bad_rate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "engagement_limit: invalid rate \"%V\": expected "
                       "rate=Nr/s or rate=Nr/m, N from 1 to %d", &value[i],
                       NGX_HTTP_ENGAGEMENT_LIMIT_MAX);
    return NGX_CONF_ERROR;
}


/*
 * After the http block: each rule finds its zone, and each zone learns how
 * long a bucket may sit idle before it is empty for every rule that uses
 * it (the full burst plus one request, leaked at the slowest rate).
 */

ngx_int_t
ngx_http_engagement_limit_postconf(ngx_conf_t *cf)
{
    ngx_msec_t                           idle;
    ngx_uint_t                           i, j;
    ngx_http_engagement_limit_conf_t    *lcf;
    ngx_http_engagement_limit_zone_t   **zp;
    ngx_http_engagement_limit_rule_t   **rp, *rule;
    ngx_http_engagement_main_conf_t     *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    lcf = emcf->limit;

    if (lcf == NULL) {
        return NGX_OK;
    }

    zp = lcf->zones.elts;
    rp = lcf->rules.elts;

    for (i = 0; i < lcf->rules.nelts; i++) {
        rule = rp[i];

        for (j = 0; j < lcf->zones.nelts; j++) {
            if (zp[j]->name.len == rule->zone_name.len
                && ngx_strncmp(zp[j]->name.data, rule->zone_name.data,
                               rule->zone_name.len) == 0)
            {
                break;
            }
        }

        if (j == lcf->zones.nelts) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "engagement_limit: unknown engagement_limit_zone "
                          "\"%V\" in %s:%ui", &rule->zone_name, rule->file,
                          rule->line);
            return NGX_ERROR;
        }

        rule->zone = zp[j];

        idle = (ngx_msec_t) ((rule->burst + 1000) * rule->period
                             / (1000 * rule->rate)) + 1;

        if (idle > rule->zone->max_idle) {
            rule->zone->max_idle = idle;
        }
    }

    return NGX_OK;
}


/* the status endpoint: a snapshot of each zone, then rows */

typedef struct {
    ngx_str_t                     name;
    ngx_uint_t                    size;
    ngx_uint_t                    used;
    ngx_uint_t                    entries;
    ngx_uint_t                    passed;
    ngx_uint_t                    limited;
    ngx_uint_t                    dry_run;
    ngx_uint_t                    expired;
    ngx_uint_t                    evictions;
    ngx_uint_t                    alloc_failures;
} ngx_http_engagement_limit_snap_t;


typedef struct {
    const char                   *family;
    const char                   *type;
    const char                   *help;
    const char                   *result;      /* NULL: no result label */
    size_t                        offset;
} ngx_http_engagement_limit_metric_t;


#define ngx_http_engagement_ls(f)                                             \
    offsetof(ngx_http_engagement_limit_snap_t, f)


static ngx_http_engagement_limit_metric_t  ngx_http_engagement_limit_metrics[]
    = {

    { "nginx_engagement_limit_requests_total", "counter",
      "Requests checked by a rate limit zone, by result.",
      "passed", ngx_http_engagement_ls(passed) },
    { "nginx_engagement_limit_requests_total", NULL, NULL,
      "limited", ngx_http_engagement_ls(limited) },
    { "nginx_engagement_limit_requests_total", NULL, NULL,
      "dry_run", ngx_http_engagement_ls(dry_run) },

    { "nginx_engagement_limit_entries", "gauge",
      "Buckets stored in a rate limit zone.",
      NULL, ngx_http_engagement_ls(entries) },

    { "nginx_engagement_limit_expired_total", "counter",
      "Drained buckets reclaimed.",
      NULL, ngx_http_engagement_ls(expired) },

    { "nginx_engagement_limit_evictions_total", "counter",
      "Live buckets evicted because the zone was full.",
      NULL, ngx_http_engagement_ls(evictions) },

    { "nginx_engagement_limit_alloc_failures_total", "counter",
      "Requests let through unchecked: no room for a bucket.",
      NULL, ngx_http_engagement_ls(alloc_failures) },

    { "nginx_engagement_limit_zone_size_bytes", "gauge",
      "Size of a rate limit zone.",
      NULL, ngx_http_engagement_ls(size) },

    { "nginx_engagement_limit_zone_used_bytes", "gauge",
      "Bytes of a rate limit zone in use (whole pages).",
      NULL, ngx_http_engagement_ls(used) },

    { NULL, NULL, NULL, NULL, 0 }
};


static ngx_uint_t
ngx_http_engagement_limit_nzones(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_limit_conf_t  *lcf;

    lcf = emcf->limit;

    return lcf ? lcf->zones.nelts : 0;
}


size_t
ngx_http_engagement_limit_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    size_t                              len;
    ngx_uint_t                          i, n;
    ngx_http_engagement_limit_conf_t   *lcf;
    ngx_http_engagement_limit_zone_t  **zp;

    n = ngx_http_engagement_limit_nzones(emcf);

    if (n == 0) {
        return 0;
    }

    lcf = emcf->limit;
    zp = lcf->zones.elts;

    /* HELP and TYPE lines, then a row per metric and zone */
    len = 4096;

    for (i = 0; i < n; i++) {
        len += 16 * (128 + zp[i]->name.len + NGX_INT64_LEN);
    }

    return len;
}


/* Prometheus rows (json 0) or JSON zone objects after the others */

u_char *
ngx_http_engagement_limit_status(ngx_http_request_t *r, u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json,
    ngx_uint_t first)
{
    ngx_uint_t                           i, n;
    ngx_http_engagement_limit_conf_t    *lcf;
    ngx_http_engagement_limit_zone_t   **zp, *z;
    ngx_http_engagement_limit_snap_t    *snaps, *s;
    ngx_http_engagement_limit_metric_t  *m;

    n = ngx_http_engagement_limit_nzones(emcf);

    if (n == 0) {
        return p;
    }

    lcf = emcf->limit;
    zp = lcf->zones.elts;

    snaps = ngx_pcalloc(r->pool, n * sizeof(ngx_http_engagement_limit_snap_t));
    if (snaps == NULL) {
        return p;
    }

    for (i = 0; i < n; i++) {
        z = zp[i];
        s = &snaps[i];

        s->name = z->name;
        s->size = z->shm_zone->shm.size;

        ngx_shmtx_lock(&z->shpool->mutex);
        s->used = s->size - z->shpool->pfree * ngx_pagesize;
        s->entries = z->sh->entries;
        s->passed = z->sh->passed;
        s->limited = z->sh->limited;
        s->dry_run = z->sh->dry_run;
        s->expired = z->sh->expired;
        s->evictions = z->sh->evictions;
        s->alloc_failures = z->sh->alloc_failures;
        ngx_shmtx_unlock(&z->shpool->mutex);
    }

    if (json) {
        for (i = 0; i < n; i++) {
            s = &snaps[i];

            p = ngx_sprintf(p, "%s{\"zone\":\"%V\",\"kind\":\"limit\"",
                            (first && i == 0) ? "" : ",", &s->name);

            for (m = ngx_http_engagement_limit_metrics; m->family; m++) {
                p = ngx_sprintf(p, ",\"%s%s%s\":%ui",
                                m->family + sizeof("nginx_engagement_") - 1,
                                m->result ? "_" : "",
                                m->result ? m->result : "",
                                *(ngx_uint_t *) ((u_char *) s + m->offset));
            }

            *p++ = '}';
        }

        return p;
    }

    for (m = ngx_http_engagement_limit_metrics; m->family; m++) {

        if (m->help) {
            p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                            m->family, m->help, m->family, m->type);
        }

        for (i = 0; i < n; i++) {
            s = &snaps[i];

            p = ngx_sprintf(p, "%s{zone=\"%V\"", m->family, &s->name);

            if (m->result) {
                p = ngx_sprintf(p, ",result=\"%s\"", m->result);
            }

            p = ngx_sprintf(p, "} %ui\n",
                            *(ngx_uint_t *) ((u_char *) s + m->offset));
        }
    }

    return p;
}
