
/*
 * Rate limits at the edge, on the request path: each rule of a location
 * (engagement_limit, read by limit_conf.c) is a leaky bucket per key in a
 * zone (engagement_limit_zone), and the status endpoint shows each zone's
 * figures. The zone is one of store/'s generic zones, laid out like
 * limit_req's: a header in the zone, an rbtree keyed by a 64-bit keyed
 * hash of the key (the raw key is never stored), an LRU queue, drained
 * buckets reclaimed before each allocation and a forced, counted eviction
 * when the zone is full. Excess is kept in milli-requests, in fixed point,
 * and the whole read-modify-write of a bucket runs under the zone lock;
 * the key is evaluated and hashed before the lock is taken.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "protect/ngx_http_engagement_limit.h"
#include "http/ngx_http_engagement_http.h"


/* drained buckets reclaimed from the LRU tail per request, at most */
#define NGX_HTTP_ENGAGEMENT_LIMIT_EXPIRE   2


static void
ngx_http_engagement_limit_free(ngx_http_engagement_limit_zone_t *z,
    ngx_http_engagement_limit_node_t *ln)
{
    ngx_http_engagement_zone_unlink(z->shpool, &z->sh->head, &ln->node,
                                    &ln->queue);
}


/*
 * Reclaims up to NGX_HTTP_ENGAGEMENT_LIMIT_EXPIRE drained buckets from the
 * LRU tail; forced: the oldest one whatever its state (a client then gets
 * a fresh burst). Returns 1 when a live bucket was evicted.
 */

static ngx_uint_t
ngx_http_engagement_limit_expire(ngx_http_engagement_limit_zone_t *z,
    uint32_t now, ngx_uint_t force)
{
    ngx_uint_t                          n;
    ngx_queue_t                        *q;
    ngx_http_engagement_limit_node_t   *ln;

    for (n = 0; n < NGX_HTTP_ENGAGEMENT_LIMIT_EXPIRE; n++) {

        if (ngx_queue_empty(&z->sh->head.lru)) {
            return 0;
        }

        q = ngx_queue_last(&z->sh->head.lru);
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
 * A first request's bucket, empty, which it always fits; a full zone
 * evicts its oldest bucket once (*evicted). Called with the zone locked.
 */

static ngx_http_engagement_limit_node_t *
ngx_http_engagement_limit_bucket(ngx_http_engagement_limit_zone_t *z,
    uint64_t hash, uint32_t now, ngx_uint_t *evicted)
{
    ngx_http_engagement_limit_node_t  *ln;

    ln = ngx_slab_alloc_locked(z->shpool,
                               sizeof(ngx_http_engagement_limit_node_t));
    if (ln == NULL) {
        *evicted = ngx_http_engagement_limit_expire(z, now, 1);
        ln = ngx_slab_alloc_locked(z->shpool,
                                   sizeof(ngx_http_engagement_limit_node_t));
    }

    if (ln == NULL) {
        z->sh->alloc_failures++;
        return NULL;
    }

    ngx_http_engagement_hnode_set((ngx_http_engagement_hnode_t *) ln, hash);
    ln->excess = 0;
    ln->last = now;

    ngx_http_engagement_zone_link(&z->sh->head, &ln->node, &ln->queue);

    return ln;
}


/* a bucket's excess with this request: what leaked out since, plus one */

static int64_t
ngx_http_engagement_limit_excess(ngx_http_engagement_limit_rule_t *rule,
    ngx_http_engagement_limit_node_t *ln, uint32_t now)
{
    int64_t   excess;
    uint32_t  elapsed;

    elapsed = now - ln->last;

    excess = (int64_t) ln->excess
             - (int64_t) ((uint64_t) elapsed * NGX_HTTP_ENGAGEMENT_LIMIT_ONE
                          * rule->rate / rule->period)
             + NGX_HTTP_ENGAGEMENT_LIMIT_ONE;

    return (excess < 0) ? 0 : excess;
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
    uint32_t                             now;
    ngx_int_t                            rc;
    ngx_http_engagement_limit_zone_t    *z;
    ngx_http_engagement_limit_node_t    *ln;

    z = rule->zone;
    now = (uint32_t) ngx_current_msec;
    *evicted = 0;
    *created = 0;
    rc = NGX_OK;

    ngx_shmtx_lock(&z->shpool->mutex);

    /*
     * Drained buckets go on every request, not only when room is needed,
     * so that none lives long enough for its 32-bit time to wrap.
     */
    ngx_http_engagement_limit_expire(z, now, 0);

    ln = (ngx_http_engagement_limit_node_t *)
         ngx_http_engagement_hnode_lookup(&z->sh->head.rbtree, hash);

    if (ln == NULL) {
        ln = ngx_http_engagement_limit_bucket(z, hash, now, evicted);
        *created = (ln != NULL);
        rc = (ln != NULL) ? NGX_OK : NGX_DECLINED;

    } else {
        excess = ngx_http_engagement_limit_excess(rule, ln, now);

        if ((uint64_t) excess > rule->burst) {
            /* when the excess will have leaked down to the burst */
            *wait = (ngx_msec_t) (((uint64_t) excess - rule->burst)
                                  * rule->period
                                  / (NGX_HTTP_ENGAGEMENT_LIMIT_ONE
                                     * rule->rate));
            rc = rule->dry_run ? NGX_DONE : NGX_BUSY;

        } else {
            ln->excess = (uint32_t) excess;
            ln->last = now;
            ngx_http_engagement_zone_touch(&z->sh->head, &ln->queue);
        }
    }

    switch (rc) {

    case NGX_OK:
        z->sh->passed++;
        break;

    case NGX_DONE:
        z->sh->dry_run++;
        break;

    case NGX_BUSY:
        z->sh->limited++;
        break;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
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
         ngx_http_engagement_hnode_lookup(&z->sh->head.rbtree, hash);

    if (ln != NULL && created) {
        /* the bucket was made for this request: as if it never came */
        ngx_http_engagement_limit_free(z, ln);

    } else if (ln != NULL && ln->excess >= NGX_HTTP_ENGAGEMENT_LIMIT_ONE) {
        ln->excess -= NGX_HTTP_ENGAGEMENT_LIMIT_ONE;

    } else if (ln != NULL) {
        /*
         * Less than one request of excess is left: that is an empty excess
         * whose last request lies further back, by the time the rest
         * takes to leak.
         */
        ln->last -= (uint32_t) ((uint64_t) (NGX_HTTP_ENGAGEMENT_LIMIT_ONE
                                            - ln->excess)
                                * rule->period
                                / (NGX_HTTP_ENGAGEMENT_LIMIT_ONE
                                   * rule->rate));
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
    u_char      *body, *p;
    ngx_uint_t   secs;

    /* whole seconds, rounded up: a retry at that time fits */
    secs = (wait + 999) / 1000;
    if (secs == 0) {
        secs = 1;
    }

    if (ngx_http_engagement_retry_after(r, secs) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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
 * The rules' keys, evaluated and hashed before any lock is taken. A rule
 * whose key is empty (e.g. per viewer, without a viewerId) is skipped:
 * done[i] is NGX_DECLINED for it, NGX_OK for the others.
 */

static ngx_int_t
ngx_http_engagement_limit_keys(ngx_http_request_t *r, ngx_array_t *limits,
    uint64_t *hashes, ngx_int_t *done)
{
    ngx_str_t                           key;
    ngx_uint_t                          i;
    ngx_http_engagement_limit_rule_t  **rules, *rule;

    rules = limits->elts;

    for (i = 0; i < limits->nelts; i++) {
        rule = rules[i];
        done[i] = NGX_DECLINED;
        hashes[i] = 0;

        if (ngx_http_complex_value(r, &rule->key, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        if (key.len) {
            hashes[i] = ngx_http_engagement_siphash(
                            rule->zone->sh->head.hash_key, key.data, key.len);
            done[i] = NGX_OK;
        }
    }

    return NGX_OK;
}


/*
 * Rule n refused the request: the rules before it that accounted it give
 * their share back, and the 429 goes out.
 */

static ngx_int_t
ngx_http_engagement_limit_refuse(ngx_http_request_t *r, ngx_array_t *limits,
    ngx_uint_t n, uint64_t *hashes, ngx_int_t *done, ngx_uint_t *created,
    ngx_msec_t wait)
{
    ngx_uint_t                          j;
    ngx_http_engagement_limit_rule_t  **rules;

    rules = limits->elts;

    for (j = 0; j < n; j++) {
        if (done[j] == NGX_OK) {
            ngx_http_engagement_limit_undo(rules[j], hashes[j], created[j]);
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "engagement: limiting requests by zone \"%V\"",
                  &rules[n]->zone->name);

    /* before the header goes out: add_header may show the variables */
    ngx_http_engagement_set_outcome(r, "refused", "rate_limited", NULL);

    return ngx_http_engagement_limit_reject(r, rules[n], wait);
}


/*
 * Runs the location's rules in order. NGX_DECLINED: go on; otherwise the
 * 429 was sent and this is its return code. A request refused by one rule
 * is accounted by none (earlier rules give their share back).
 */

ngx_int_t
ngx_http_engagement_limit_run(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    ngx_int_t                           rc;
    ngx_uint_t                          i, evicted;
    ngx_uint_t                          created[NGX_HTTP_ENGAGEMENT_LIMITS];
    ngx_msec_t                          wait;
    ngx_http_engagement_limit_rule_t  **rules, *rule;
    uint64_t                            hashes[NGX_HTTP_ENGAGEMENT_LIMITS];
    ngx_int_t                           done[NGX_HTTP_ENGAGEMENT_LIMITS];

    if (ngx_http_engagement_limit_keys(r, elcf->limits, hashes, done)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rules = elcf->limits->elts;

    for (i = 0; i < elcf->limits->nelts; i++) {
        rule = rules[i];

        if (done[i] == NGX_DECLINED) {
            continue;
        }

        wait = 0;
        rc = ngx_http_engagement_limit_account(rule, hashes[i], &wait,
                                                &evicted, &created[i]);

        if (evicted
            && ngx_http_engagement_zone_log_due(&rule->zone->last_full_log))
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "engagement_limit_zone \"%V\" is full: the least "
                          "recently used bucket was evicted",
                          &rule->zone->name);
        }

        done[i] = rc;

        if (rc == NGX_BUSY) {
            return ngx_http_engagement_limit_refuse(r, elcf->limits, i,
                                                    hashes, done, created,
                                                    wait);
        }
    }

    return NGX_DECLINED;
}


/*
 * The status endpoint: a snapshot of each zone taken under its lock, then
 * rows rendered outside it. A row is at most this long, besides the
 * zone's name and the number; the HELP and TYPE lines take at most the
 * other figure.
 */

#define NGX_HTTP_ENGAGEMENT_LIMIT_ROW_LEN   128
#define NGX_HTTP_ENGAGEMENT_LIMIT_HELP_LEN  4096

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
    ngx_uint_t                          i, n, rows;
    ngx_http_engagement_limit_conf_t   *lcf;
    ngx_http_engagement_limit_zone_t  **zp;

    n = ngx_http_engagement_limit_nzones(emcf);

    if (n == 0) {
        return 0;
    }

    lcf = emcf->limit;
    zp = lcf->zones.elts;

    /* a row per metric and zone, and (JSON) the zone's own */
    rows = sizeof(ngx_http_engagement_limit_metrics)
           / sizeof(ngx_http_engagement_limit_metric_t);

    len = NGX_HTTP_ENGAGEMENT_LIMIT_HELP_LEN;

    for (i = 0; i < n; i++) {
        len += rows * (NGX_HTTP_ENGAGEMENT_LIMIT_ROW_LEN + zp[i]->name.len
                       + NGX_INT64_LEN);
    }

    return len;
}


static ngx_http_engagement_limit_snap_t *
ngx_http_engagement_limit_snapshot(ngx_pool_t *pool,
    ngx_http_engagement_limit_conf_t *lcf)
{
    ngx_uint_t                           i;
    ngx_http_engagement_limit_zone_t   **zp, *z;
    ngx_http_engagement_limit_snap_t    *snaps, *s;

    zp = lcf->zones.elts;

    snaps = ngx_pcalloc(pool, lcf->zones.nelts
                              * sizeof(ngx_http_engagement_limit_snap_t));
    if (snaps == NULL) {
        return NULL;
    }

    for (i = 0; i < lcf->zones.nelts; i++) {
        z = zp[i];
        s = &snaps[i];

        s->name = z->name;
        s->size = z->shm_zone->shm.size;

        ngx_shmtx_lock(&z->shpool->mutex);
        s->used = s->size - z->shpool->pfree * ngx_pagesize;
        s->entries = z->sh->head.entries;
        s->passed = z->sh->passed;
        s->limited = z->sh->limited;
        s->dry_run = z->sh->dry_run;
        s->expired = z->sh->expired;
        s->evictions = z->sh->evictions;
        s->alloc_failures = z->sh->alloc_failures;
        ngx_shmtx_unlock(&z->shpool->mutex);
    }

    return snaps;
}


#define ngx_http_engagement_limit_value(s, m)                                 \
    (*(ngx_uint_t *) ((u_char *) (s) + (m)->offset))


/* JSON zone objects, after the status's other zones unless first */

static u_char *
ngx_http_engagement_limit_json(u_char *p,
    ngx_http_engagement_limit_snap_t *snaps, ngx_uint_t n, ngx_uint_t first)
{
    ngx_uint_t                           i;
    ngx_http_engagement_limit_snap_t    *s;
    ngx_http_engagement_limit_metric_t  *m;

    for (i = 0; i < n; i++) {
        s = &snaps[i];

        p = ngx_sprintf(p, "%s{\"zone\":\"%V\",\"kind\":\"limit\"",
                        (first && i == 0) ? "" : ",", &s->name);

        for (m = ngx_http_engagement_limit_metrics; m->family; m++) {
            p = ngx_sprintf(p, ",\"%s%s%s\":%ui",
                            m->family + sizeof("nginx_engagement_") - 1,
                            m->result ? "_" : "",
                            m->result ? m->result : "",
                            ngx_http_engagement_limit_value(s, m));
        }

        *p++ = '}';
    }

    return p;
}


static u_char *
ngx_http_engagement_limit_prometheus(u_char *p,
    ngx_http_engagement_limit_snap_t *snaps, ngx_uint_t n)
{
    ngx_uint_t                           i;
    ngx_http_engagement_limit_snap_t    *s;
    ngx_http_engagement_limit_metric_t  *m;

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
                            ngx_http_engagement_limit_value(s, m));
        }
    }

    return p;
}


/* Prometheus rows (json 0) or JSON zone objects after the others */

u_char *
ngx_http_engagement_limit_status(ngx_http_request_t *r, u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json,
    ngx_uint_t first)
{
    ngx_uint_t                         n;
    ngx_http_engagement_limit_snap_t  *snaps;

    n = ngx_http_engagement_limit_nzones(emcf);

    if (n == 0) {
        return p;
    }

    snaps = ngx_http_engagement_limit_snapshot(r->pool, emcf->limit);
    if (snaps == NULL) {
        return p;
    }

    if (json) {
        return ngx_http_engagement_limit_json(p, snaps, n, first);
    }

    return ngx_http_engagement_limit_prometheus(p, snaps, n);
}
