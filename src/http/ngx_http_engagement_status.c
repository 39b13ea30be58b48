
/*
 * The status endpoint: every zone's figures in the Prometheus text format
 * (default) or JSON (?format=json or Accept: application/json). Figures
 * are word-sized atomics read without the zone lock; a snapshot of each
 * zone is taken first and formatted afterwards.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


typedef struct {
    ngx_str_t                     name;
    ngx_uint_t                    dedupe;
    size_t                        size;
    size_t                        free;
    ngx_uint_t                    entries;
    ngx_http_engagement_stats_t   stats;          /* counters zones */
    ngx_uint_t                    inserts;        /* dedupe zones */
    ngx_uint_t                    hits;
    ngx_uint_t                    expired;
    ngx_uint_t                    evictions;
    ngx_uint_t                    alloc_failures;
    ngx_uint_t                    pending_nodes;
    ngx_uint_t                    inflight_nodes;
    ngx_uint_t                    oldest_age;
    ngx_uint_t                    created;
    ngx_uint_t                    full;
    ngx_uint_t                    used;
} ngx_http_engagement_snapshot_t;


typedef struct {
    const char                   *family;
    const char                   *type;
    const char                   *help;
    const char                   *label;          /* NULL: no extra label */
    const char                   *value;
    size_t                        offset;         /* in the snapshot */
    ngx_uint_t                    dedupe;         /* which zones */
    ngx_uint_t                    ms;             /* shown as seconds */
} ngx_http_engagement_metric_t;


#define ngx_http_engagement_s(f)                                              \
    offsetof(ngx_http_engagement_snapshot_t, stats)                           \
    + offsetof(ngx_http_engagement_stats_t, f)
#define ngx_http_engagement_d(f)                                              \
    offsetof(ngx_http_engagement_snapshot_t, f)


/* rows of one family are consecutive: HELP and TYPE appear once */
static ngx_http_engagement_metric_t  ngx_http_engagement_metrics[] = {

    { "nginx_engagement_view_events_total", "counter",
      "View events received, whatever their outcome.",
      NULL, NULL, ngx_http_engagement_s(received), 0, 0 },

    { "nginx_engagement_counted_total", "counter",
      "Metrics counted, by metric.",
      "metric", "view", ngx_http_engagement_s(counted_views), 0, 0 },
    { "nginx_engagement_counted_total", NULL, NULL,
      "metric", "engaged", ngx_http_engagement_s(counted_engaged), 0, 0 },
    { "nginx_engagement_counted_total", NULL, NULL,
      "metric", "replay", ngx_http_engagement_s(counted_replays), 0, 0 },

    { "nginx_engagement_not_counted_total", "counter",
      "Valid events that counted nothing, by reason.",
      "reason", "duplicate", ngx_http_engagement_s(not_counted_duplicate),
      0, 0 },
    { "nginx_engagement_not_counted_total", NULL, NULL,
      "reason", "duplicate_request",
      ngx_http_engagement_s(not_counted_duplicate_request), 0, 0 },
    { "nginx_engagement_not_counted_total", NULL, NULL,
      "reason", "below_policy",
      ngx_http_engagement_s(not_counted_below_policy), 0, 0 },
    { "nginx_engagement_not_counted_total", NULL, NULL,
      "reason", "too_old", ngx_http_engagement_s(late_too_old), 0, 0 },
    { "nginx_engagement_not_counted_total", NULL, NULL,
      "reason", "in_future", ngx_http_engagement_s(late_in_future), 0, 0 },
    { "nginx_engagement_not_counted_total", NULL, NULL,
      "reason", "bot", ngx_http_engagement_s(not_counted_bot), 0, 0 },
    { "nginx_engagement_not_counted_total", NULL, NULL,
      "reason", "opted_out",
      ngx_http_engagement_s(not_counted_opted_out), 0, 0 },

    { "nginx_engagement_refused_total", "counter",
      "Events refused before counting, by reason.",
      "reason", "invalid", ngx_http_engagement_s(invalid), 0, 0 },
    { "nginx_engagement_refused_total", NULL, NULL,
      "reason", "too_large", ngx_http_engagement_s(too_large), 0, 0 },
    { "nginx_engagement_refused_total", NULL, NULL,
      "reason", "method", ngx_http_engagement_s(bad_method), 0, 0 },
    { "nginx_engagement_refused_total", NULL, NULL,
      "reason", "content_type", ngx_http_engagement_s(bad_content_type), 0, 0 },
    { "nginx_engagement_refused_total", NULL, NULL,
      "reason", "zone_full", ngx_http_engagement_s(unavailable), 0, 0 },
    { "nginx_engagement_refused_total", NULL, NULL,
      "reason", "rate_limited", ngx_http_engagement_s(rate_limited), 0, 0 },

    { "nginx_engagement_token_refused_total", "counter",
      "View events refused (403) for their view token, by reason.",
      "reason", "missing", ngx_http_engagement_s(token_refused[1]), 0, 0 },
    { "nginx_engagement_token_refused_total", NULL, NULL,
      "reason", "malformed", ngx_http_engagement_s(token_refused[2]), 0, 0 },
    { "nginx_engagement_token_refused_total", NULL, NULL,
      "reason", "expired", ngx_http_engagement_s(token_refused[3]), 0, 0 },
    { "nginx_engagement_token_refused_total", NULL, NULL,
      "reason", "wrong_content", ngx_http_engagement_s(token_refused[4]),
      0, 0 },
    { "nginx_engagement_token_refused_total", NULL, NULL,
      "reason", "bad_signature", ngx_http_engagement_s(token_refused[5]),
      0, 0 },

    { "nginx_engagement_anonymous_total", "counter",
      "Opted-out events (Sec-GPC or optOut) handled without an identity.",
      NULL, NULL, ngx_http_engagement_s(anonymous), 0, 0 },

    { "nginx_engagement_reaction_requests_total", "counter",
      "Like, reaction and unlike requests, by result.",
      "result", "changed", ngx_http_engagement_s(reactions_changed), 0, 0 },
    { "nginx_engagement_reaction_requests_total", NULL, NULL,
      "result", "unchanged", ngx_http_engagement_s(reactions_unchanged), 0,
      0 },
    { "nginx_engagement_reaction_requests_total", NULL, NULL,
      "result", "duplicate_request",
      ngx_http_engagement_s(reactions_duplicate), 0, 0 },
    { "nginx_engagement_reaction_requests_total", NULL, NULL,
      "result", "invalid", ngx_http_engagement_s(reactions_invalid), 0, 0 },
    { "nginx_engagement_reaction_requests_total", NULL, NULL,
      "result", "unavailable", ngx_http_engagement_s(reactions_failed), 0,
      0 },
    { "nginx_engagement_reaction_requests_total", NULL, NULL,
      "result", "rate_limited", ngx_http_engagement_s(reactions_limited), 0,
      0 },

    { "nginx_engagement_read_requests_total", "counter",
      "Summary (read) requests answered.",
      NULL, NULL, ngx_http_engagement_s(summary_requests), 0, 0 },

    { "nginx_engagement_flushes_total", "counter",
      "Flush rounds that sent deltas to Redis.",
      NULL, NULL, ngx_http_engagement_s(flushes), 0, 0 },

    { "nginx_engagement_flush_commands_total", "counter",
      "Per-content flush commands, by result.",
      "result", "ok", ngx_http_engagement_s(flush_ok), 0, 0 },
    { "nginx_engagement_flush_commands_total", NULL, NULL,
      "result", "failed", ngx_http_engagement_s(flush_failed), 0, 0 },
    { "nginx_engagement_flush_commands_total", NULL, NULL,
      "result", "repeat", ngx_http_engagement_s(flush_repeats), 0, 0 },

    { "nginx_engagement_flush_duration_seconds", "histogram",
      "Time from sending a flush round to its last reply.",
      NULL, NULL, ngx_http_engagement_s(flush_latency_ms), 0, 1 },

    { "nginx_engagement_oldest_pending_age_seconds", "gauge",
      "Age of the oldest delta Redis has not confirmed (freshness).",
      NULL, NULL, ngx_http_engagement_d(oldest_age), 0, 0 },

    { "nginx_engagement_redis_ready_workers", "gauge",
      "Workers whose Redis connection is ready.",
      NULL, NULL, ngx_http_engagement_s(redis_ready), 0, 0 },

    { "nginx_engagement_start_time_seconds", "gauge",
      "When the zone was created (the first start; reloads keep it).",
      NULL, NULL, ngx_http_engagement_d(created), 0, 0 },

    { "nginx_engagement_pending_contents", "gauge",
      "Contents with deltas waiting for a flush.",
      NULL, NULL, ngx_http_engagement_d(pending_nodes), 0, 0 },

    { "nginx_engagement_inflight_contents", "gauge",
      "Contents with a flush sent and not yet confirmed.",
      NULL, NULL, ngx_http_engagement_d(inflight_nodes), 0, 0 },

    { "nginx_engagement_redis_reads_total", "counter",
      "Totals read from Redis, by result.",
      "result", "ok", ngx_http_engagement_s(reads_ok), 0, 0 },
    { "nginx_engagement_redis_reads_total", NULL, NULL,
      "result", "failed", ngx_http_engagement_s(reads_failed), 0, 0 },
    { "nginx_engagement_redis_reads_total", NULL, NULL,
      "result", "unavailable", ngx_http_engagement_s(read_unavailable), 0, 0 },

    { "nginx_engagement_redis_connects_total", "counter",
      "Redis connections made ready (all workers).",
      NULL, NULL, ngx_http_engagement_s(redis_connects), 0, 0 },

    { "nginx_engagement_redis_disconnects_total", "counter",
      "Ready Redis connections lost.",
      NULL, NULL, ngx_http_engagement_s(redis_disconnects), 0, 0 },

    { "nginx_engagement_redis_errors_total", "counter",
      "Error replies from Redis.",
      NULL, NULL, ngx_http_engagement_s(redis_errors), 0, 0 },

    { "nginx_engagement_redis_timeouts_total", "counter",
      "Redis connects or commands that timed out.",
      NULL, NULL, ngx_http_engagement_s(redis_timeouts), 0, 0 },

    { "nginx_engagement_restored_contents_total", "counter",
      "Contents restored from the state file at start.",
      NULL, NULL, ngx_http_engagement_s(restored), 0, 0 },

    { "nginx_engagement_cache_evictions_total", "counter",
      "Cached totals dropped to make room (Redis mode).",
      NULL, NULL, ngx_http_engagement_s(evicted_clean), 0, 0 },

    { "nginx_engagement_zone_size_bytes", "gauge",
      "Size of each shared memory zone.",
      NULL, NULL, ngx_http_engagement_d(size), 2, 0 },

    { "nginx_engagement_zone_used_bytes", "gauge",
      "Bytes of each shared memory zone in use (whole pages).",
      NULL, NULL, ngx_http_engagement_d(used), 2, 0 },

    { "nginx_engagement_zone_full", "gauge",
      "1 when the last allocation in a zone failed.",
      NULL, NULL, ngx_http_engagement_d(full), 2, 0 },

    { "nginx_engagement_zone_free_bytes", "gauge",
      "Free pages of each shared memory zone, in bytes.",
      NULL, NULL, ngx_http_engagement_d(free), 2, 0 },

    { "nginx_engagement_zone_entries", "gauge",
      "Entries stored in each zone.",
      NULL, NULL, ngx_http_engagement_d(entries), 2, 0 },

    { "nginx_engagement_zone_alloc_failures_total", "counter",
      "Allocations that failed because a zone was full.",
      NULL, NULL, ngx_http_engagement_d(alloc_failures), 2, 0 },

    { "nginx_engagement_dedupe_inserts_total", "counter",
      "Marks stored in a dedupe zone.",
      NULL, NULL, ngx_http_engagement_d(inserts), 1, 0 },

    { "nginx_engagement_dedupe_hits_total", "counter",
      "Lookups that found a live mark (a repeat).",
      NULL, NULL, ngx_http_engagement_d(hits), 1, 0 },

    { "nginx_engagement_dedupe_expired_total", "counter",
      "Marks reclaimed after their window.",
      NULL, NULL, ngx_http_engagement_d(expired), 1, 0 },

    { "nginx_engagement_dedupe_evictions_total", "counter",
      "Live marks evicted because the zone was full.",
      NULL, NULL, ngx_http_engagement_d(evictions), 1, 0 },

    { NULL, NULL, NULL, NULL, NULL, 0, 0, 0 }
};


static ngx_str_t  ngx_http_engagement_prometheus_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");


static void
ngx_http_engagement_snapshot(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_snapshot_t *s)
{
    time_t                                 oldest;
    ngx_uint_t                             i, j, *dst;
    ngx_atomic_t                          *src;
    ngx_http_engagement_dedupe_shctx_t    *dsh;
    ngx_http_engagement_counters_shctx_t  *csh;

    ngx_memzero(s, sizeof(ngx_http_engagement_snapshot_t));

    s->name = z->name;
    s->dedupe = z->dedupe;
    s->size = z->shm_zone->shm.size;

    ngx_shmtx_lock(&z->shpool->mutex);
    s->free = z->shpool->pfree * ngx_pagesize;
    ngx_shmtx_unlock(&z->shpool->mutex);
    s->used = s->size - s->free;

    if (z->dedupe) {
        dsh = z->sh;
        s->entries = dsh->head.entries;
        s->inserts = dsh->inserts;
        s->hits = dsh->hits;
        s->expired = dsh->expired;
        s->evictions = dsh->evictions;
        s->alloc_failures = dsh->alloc_failures;
        s->full = dsh->head.full;
        return;
    }

    csh = z->sh;
    s->entries = csh->head.entries;
    s->pending_nodes = csh->pending_nodes;
    s->inflight_nodes = csh->inflight_nodes;
    s->created = csh->head.created;
    s->full = csh->head.full;

    /* the sum of the workers' slots */
    dst = (ngx_uint_t *) &s->stats;

    for (j = 0; j < NGX_HTTP_ENGAGEMENT_SLOTS; j++) {
        src = (ngx_atomic_t *) &csh->stats[j];

        for (i = 0; i < sizeof(ngx_http_engagement_stats_t)
                        / sizeof(ngx_atomic_t); i++)
        {
            dst[i] += src[i];
        }
    }

    s->alloc_failures = s->stats.alloc_failures;

    if (z->redis) {
        oldest = ngx_http_engagement_counters_oldest(z);
        s->oldest_age = oldest ? ngx_time() - oldest : 0;
    }
}


/* Prometheus histograms are cumulative: each bucket counts all below it */

static u_char *
ngx_http_engagement_histogram_text(u_char *p, const char *family,
    ngx_http_engagement_snapshot_t *s)
{
    ngx_uint_t  i, cum, b;

    cum = 0;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_HIST; i++) {
        cum += s->stats.flush_hist[i];
        b = ngx_http_engagement_hist_bounds[i];

        if (i == NGX_HTTP_ENGAGEMENT_HIST - 1) {
            p = ngx_sprintf(p, "%s_bucket{zone=\"%V\",le=\"+Inf\"} %ui\n",
                            family, &s->name, cum);

        } else {
            p = ngx_sprintf(p, "%s_bucket{zone=\"%V\",le=\"%ui.%03ui\"} %ui\n",
                            family, &s->name, b / 1000, b % 1000, cum);
        }
    }

    p = ngx_sprintf(p, "%s_sum{zone=\"%V\"} %ui.%03ui\n", family, &s->name,
                    s->stats.flush_latency_ms / 1000,
                    s->stats.flush_latency_ms % 1000);

    return ngx_sprintf(p, "%s_count{zone=\"%V\"} %ui\n", family, &s->name,
                       s->stats.flush_rounds);
}


static u_char *
ngx_http_engagement_histogram_json(u_char *p,
    ngx_http_engagement_snapshot_t *s)
{
    ngx_uint_t  i, cum;

    ngx_uint_t  b;

    p = ngx_sprintf(p, ",\"flush_duration_seconds_sum\":%ui.%03ui,"
                    "\"flush_duration_seconds_count\":%ui,"
                    "\"flush_duration_seconds_bucket\":{",
                    s->stats.flush_latency_ms / 1000,
                    s->stats.flush_latency_ms % 1000, s->stats.flush_rounds);
    cum = 0;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_HIST; i++) {
        cum += s->stats.flush_hist[i];
        b = ngx_http_engagement_hist_bounds[i];

        if (i == NGX_HTTP_ENGAGEMENT_HIST - 1) {
            p = ngx_sprintf(p, "\"+Inf\":%ui}", cum);

        } else {
            p = ngx_sprintf(p, "\"%ui.%03ui\":%ui,", b / 1000, b % 1000, cum);
        }
    }

    return p;
}


static ngx_int_t
ngx_http_engagement_status_wants_json(ngx_http_request_t *r)
{
    ngx_str_t         fmt;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "format", 6, &fmt) == NGX_OK) {
        return fmt.len == 4 && ngx_strncmp(fmt.data, "json", 4) == 0;
    }

#if (NGX_HTTP_GZIP || NGX_HTTP_HEADERS)
    h = r->headers_in.accept;

    if (h && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                              (u_char *) "application/json",
                              sizeof("application/json") - 2)
             != NULL)
    {
        return 1;
    }
#else
    (void) h;
#endif

    return 0;
}


ngx_int_t
ngx_http_engagement_status_handler(ngx_http_request_t *r)
{
    u_char                           *p, *body;
    size_t                            len;
    ngx_int_t                         rc;
    ngx_uint_t                        i, n, v, json;
    ngx_http_engagement_zone_t      **zp;
    ngx_http_engagement_metric_t     *m;
    ngx_http_engagement_snapshot_t   *snaps, *s;
    ngx_http_engagement_main_conf_t  *emcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);

    n = emcf->zones.nelts;
    zp = emcf->zones.elts;

    snaps = ngx_palloc(r->pool, (n + 1) * sizeof(ngx_http_engagement_snapshot_t));
    if (snaps == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        ngx_http_engagement_snapshot(zp[i], &snaps[i]);
    }

    json = ngx_http_engagement_status_wants_json(r);

    /* an upper bound: every metric row for every zone, plus headers */
    len = 1024;
    for (m = ngx_http_engagement_metrics; m->family; m++) {
        len += 256 + n * (160 + 64 + NGX_INT64_LEN)
               + (m->type && m->type[0] == 'h'
                  ? n * NGX_HTTP_ENGAGEMENT_HIST * (160 + NGX_INT64_LEN) : 0);
    }

    len += ngx_http_engagement_limit_status_len(emcf);
    len += ngx_http_engagement_writer_status_len(emcf);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json) {
        p = ngx_sprintf(body, "{\"version\":\"%s\",\"nginx\":\"%s\","
                        "\"zones\":[", NGX_HTTP_ENGAGEMENT_VERSION,
                        NGINX_VERSION);

        for (i = 0; i < n; i++) {
            s = &snaps[i];
            p = ngx_sprintf(p, "%s{\"zone\":\"%V\",\"kind\":\"%s\"",
                            i ? "," : "", &s->name,
                            s->dedupe ? "dedupe" : "counters");

            for (m = ngx_http_engagement_metrics; m->family; m++) {
                if (m->dedupe != 2 && m->dedupe != s->dedupe) {
                    continue;
                }

                if (m->type && m->type[0] == 'h') {
                    p = ngx_http_engagement_histogram_json(p, s);
                    continue;
                }

                p = ngx_sprintf(p, ",\"%s%s%s\":%ui",
                                m->family + sizeof("nginx_engagement_") - 1,
                                m->value ? "_" : "",
                                m->value ? m->value : "",
                                *(ngx_uint_t *) ((u_char *) s + m->offset));
            }

            *p++ = '}';
        }

        /* the rate limit zones, kind "limit" */
        p = ngx_http_engagement_limit_status(r, p, emcf, 1, n == 0);

        *p++ = ']';
        p = ngx_http_engagement_writer_status(p, emcf, 1);
        p = ngx_cpymem(p, "}\n", 2);

        return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
    }

    p = ngx_sprintf(body,
            "# HELP nginx_engagement_build_info Module and nginx versions.\n"
            "# TYPE nginx_engagement_build_info gauge\n"
            "nginx_engagement_build_info{version=\"%s\",nginx=\"%s\"} 1\n",
            NGX_HTTP_ENGAGEMENT_VERSION, NGINX_VERSION);

    for (m = ngx_http_engagement_metrics; m->family; m++) {

        if (m->help) {
            p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                            m->family, m->help, m->family, m->type);
        }

        for (i = 0; i < n; i++) {
            s = &snaps[i];

            if (m->dedupe != 2 && m->dedupe != s->dedupe) {
                continue;
            }

            if (m->type && m->type[0] == 'h') {
                p = ngx_http_engagement_histogram_text(p, m->family, s);
                continue;
            }

            p = ngx_sprintf(p, "%s{zone=\"%V\"", m->family, &s->name);

            if (m->dedupe == 2) {
                p = ngx_sprintf(p, ",kind=\"%s\"",
                                s->dedupe ? "dedupe" : "counters");
            }

            if (m->label) {
                p = ngx_sprintf(p, ",%s=\"%s\"", m->label, m->value);
            }

            v = *(ngx_uint_t *) ((u_char *) s + m->offset);

            if (m->ms) {
                p = ngx_sprintf(p, "} %ui.%03ui\n", v / 1000, v % 1000);

            } else {
                p = ngx_sprintf(p, "} %ui\n", v);
            }
        }
    }

    p = ngx_http_engagement_limit_status(r, p, emcf, 0, 0);
    p = ngx_http_engagement_writer_status(p, emcf, 0);

    return ngx_http_engagement_send(r, NGX_HTTP_OK,
                                    &ngx_http_engagement_prometheus_type,
                                    body, p - body);
}


/*
 * The health check for load balancers: 200 when events can be accepted,
 * 503 with the reason when a zone is full or Redis has been unusable for
 * longer than engagement_health_grace (as seen by the answering worker).
 */

ngx_int_t
ngx_http_engagement_health_handler(ngx_http_request_t *r)
{
    u_char                                *p, *body;
    ngx_int_t                              rc;
    ngx_msec_t                             down;
    ngx_uint_t                             i, pending;
    ngx_table_elt_t                       *h;
    ngx_http_engagement_zone_t           **zp;
    ngx_http_engagement_main_conf_t       *emcf;
    ngx_http_engagement_shctx_head_t      *head;
    ngx_http_engagement_counters_shctx_t  *csh;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);

    body = ngx_pnalloc(r->pool, 256 + NGX_HTTP_ENGAGEMENT_ID_MAX);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    zp = emcf->zones.elts;
    pending = 0;
    p = NULL;

    for (i = 0; i < emcf->zones.nelts; i++) {
        head = zp[i]->sh;

        if (!zp[i]->dedupe) {
            csh = zp[i]->sh;
            pending += csh->pending_nodes + csh->inflight_nodes;
        }

        if (head->full && p == NULL) {
            p = ngx_sprintf(body, "{\"status\":\"unavailable\","
                            "\"reason\":\"zone_full\",\"zone\":\"%V\"}\n",
                            &zp[i]->name);
        }
    }

    down = emcf->redis ? ngx_http_engagement_redis_down_for() : 0;

    if (p == NULL && emcf->redis && down > emcf->health_grace) {
        p = ngx_sprintf(body, "{\"status\":\"unavailable\","
                        "\"reason\":\"redis_unavailable\",\"downForMs\":%M}\n",
                        down);
    }

    if (p) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "5");

        return ngx_http_engagement_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             body, p - body);
    }

    p = ngx_sprintf(body, "{\"status\":\"ok\",\"redis\":\"%s\","
                    "\"pendingContents\":%ui}\n",
                    emcf->redis == NULL ? "off" : (down ? "down" : "ready"),
                    pending);

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}
