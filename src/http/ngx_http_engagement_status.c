
/*
 * The status endpoint: every zone's figures in the Prometheus text format
 * (default) or JSON (?format=json or Accept: application/json). Figures
 * are word-sized atomics read without the zone lock; a snapshot of each
 * zone is taken first and formatted afterwards.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_series.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"
#include "policy/ngx_http_engagement_global.h"


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
    ngx_uint_t                    slow_nodes;
    ngx_uint_t                    oldest_age;
    ngx_uint_t                    created;
    ngx_uint_t                    full;
    ngx_uint_t                    used;
} ngx_http_engagement_snapshot_t;


typedef enum {
    NGX_HTTP_ENGAGEMENT_METRIC_COUNTER = 0,
    NGX_HTTP_ENGAGEMENT_METRIC_GAUGE,
    NGX_HTTP_ENGAGEMENT_METRIC_HISTOGRAM
} ngx_http_engagement_metric_type_e;


/* which zones show a metric: the values of a snapshot's dedupe, or both */
#define NGX_HTTP_ENGAGEMENT_COUNTERS_ZONES  0
#define NGX_HTTP_ENGAGEMENT_DEDUPE_ZONES    1
#define NGX_HTTP_ENGAGEMENT_ALL_ZONES       2


/*
 * A row of the status: a family's first row names it (with its HELP and
 * TYPE), the rows after it with no family are more values of its label.
 */
typedef struct {
    const char                   *family;
    const char                   *help;
    ngx_uint_t                    type;
    ngx_uint_t                    zones;
    const char                   *label;          /* NULL: no extra label */
    const char                   *value;
    size_t                        offset;         /* in the snapshot */
} ngx_http_engagement_metric_t;


#define ngx_http_engagement_s(f)                                              \
    offsetof(ngx_http_engagement_snapshot_t, stats)                           \
    + offsetof(ngx_http_engagement_stats_t, f)
#define ngx_http_engagement_d(f)                                              \
    offsetof(ngx_http_engagement_snapshot_t, f)

#define NGX_HTTP_ENGAGEMENT_METRIC_PREFIX  "nginx_engagement_"

/* a family of one row */
#define ngx_http_engagement_metric_row(family, type, zones, offset, help)     \
    { NGX_HTTP_ENGAGEMENT_METRIC_PREFIX family, help, type, zones, NULL,      \
      NULL, offset }

#define ngx_http_engagement_counter_row(family, f, help)                      \
    ngx_http_engagement_metric_row(family, NGX_HTTP_ENGAGEMENT_METRIC_COUNTER,\
        NGX_HTTP_ENGAGEMENT_COUNTERS_ZONES, ngx_http_engagement_s(f), help)
#define ngx_http_engagement_gauge_row(family, offset, help)                   \
    ngx_http_engagement_metric_row(family, NGX_HTTP_ENGAGEMENT_METRIC_GAUGE,  \
        NGX_HTTP_ENGAGEMENT_COUNTERS_ZONES, offset, help)
#define ngx_http_engagement_zone_row(family, type, f, help)                   \
    ngx_http_engagement_metric_row(family, ngx_http_engagement_zone_##type,   \
        NGX_HTTP_ENGAGEMENT_ALL_ZONES, ngx_http_engagement_d(f), help)
#define ngx_http_engagement_dedupe_row(family, f, help)                       \
    ngx_http_engagement_metric_row(family, NGX_HTTP_ENGAGEMENT_METRIC_COUNTER,\
        NGX_HTTP_ENGAGEMENT_DEDUPE_ZONES, ngx_http_engagement_d(f), help)

/* a counter by a label: its first row, then a line for each more value */
#define ngx_http_engagement_by_row(family, label, value, f, help)             \
    { NGX_HTTP_ENGAGEMENT_METRIC_PREFIX family, help,                         \
      NGX_HTTP_ENGAGEMENT_METRIC_COUNTER, NGX_HTTP_ENGAGEMENT_COUNTERS_ZONES, \
      label, value, ngx_http_engagement_s(f) }
#define ngx_http_engagement_label_row(value, f)                               \
    { NULL, NULL, 0, 0, NULL, value, ngx_http_engagement_s(f) }

/* a zone figure's type, as ngx_http_engagement_zone_row() names it */
#define ngx_http_engagement_zone_gauge    NGX_HTTP_ENGAGEMENT_METRIC_GAUGE
#define ngx_http_engagement_zone_counter  NGX_HTTP_ENGAGEMENT_METRIC_COUNTER


static const char  *ngx_http_engagement_metric_types[] = {
    "counter", "gauge", "histogram"
};

static const char  *ngx_http_engagement_zone_kinds[] = {
    "counters", "dedupe"
};


static ngx_http_engagement_metric_t  ngx_http_engagement_metrics[] = {

    ngx_http_engagement_counter_row("view_events_total", received,
        "View events received, whatever their outcome."),

    ngx_http_engagement_by_row("counted_total", "metric", "view",
        counted_views, "Metrics counted, by metric."),
    ngx_http_engagement_label_row("engaged", counted_engaged),
    ngx_http_engagement_label_row("replay", counted_replays),

    ngx_http_engagement_by_row("not_counted_total", "reason", "duplicate",
        not_counted_duplicate,
        "Valid events that counted nothing, by reason."),
    ngx_http_engagement_label_row("duplicate_request",
                                  not_counted_duplicate_request),
    ngx_http_engagement_label_row("below_policy", not_counted_below_policy),
    ngx_http_engagement_label_row("too_old", late_too_old),
    ngx_http_engagement_label_row("in_future", late_in_future),
    ngx_http_engagement_label_row("bot", not_counted_bot),
    ngx_http_engagement_label_row("opted_out", not_counted_opted_out),

    ngx_http_engagement_by_row("refused_total", "reason", "invalid",
        invalid, "Events refused before counting, by reason."),
    ngx_http_engagement_label_row("too_large", too_large),
    ngx_http_engagement_label_row("method", bad_method),
    ngx_http_engagement_label_row("content_type", bad_content_type),
    ngx_http_engagement_label_row("zone_full", unavailable),
    ngx_http_engagement_label_row("rate_limited", rate_limited),

    ngx_http_engagement_by_row("token_refused_total", "reason", "missing",
        token_refused[1],
        "View events refused (403) for their view token, by reason."),
    ngx_http_engagement_label_row("malformed", token_refused[2]),
    ngx_http_engagement_label_row("expired", token_refused[3]),
    ngx_http_engagement_label_row("wrong_content", token_refused[4]),
    ngx_http_engagement_label_row("bad_signature", token_refused[5]),

    ngx_http_engagement_counter_row("anonymous_total", anonymous,
        "Opted-out events (Sec-GPC or optOut) handled without an identity."),

    ngx_http_engagement_by_row("reaction_requests_total", "result",
        "changed", reactions_changed,
        "Like, reaction and unlike requests, by result."),
    ngx_http_engagement_label_row("unchanged", reactions_unchanged),
    ngx_http_engagement_label_row("duplicate_request", reactions_duplicate),
    ngx_http_engagement_label_row("invalid", reactions_invalid),
    ngx_http_engagement_label_row("unavailable", reactions_failed),
    ngx_http_engagement_label_row("rate_limited", reactions_limited),

    ngx_http_engagement_counter_row("read_requests_total", summary_requests,
        "Summary (read) requests answered."),

    ngx_http_engagement_counter_row("flushes_total", flushes,
        "Flush rounds that sent deltas to Redis."),

    ngx_http_engagement_by_row("flush_commands_total", "result", "ok",
        flush_ok, "Per-content flush commands, by result."),
    ngx_http_engagement_label_row("failed", flush_failed),
    ngx_http_engagement_label_row("repeat", flush_repeats),

    ngx_http_engagement_counter_row("flush_calls_total", flush_calls,
        "Redis calls of the flush: one per round of a zone."),

    ngx_http_engagement_counter_row("flush_contents_total", flush_contents,
        "Contents sent in flush rounds."),

    ngx_http_engagement_counter_row("flush_bucket_writes_total",
        flush_buckets, "Minute buckets (with their hour and day) written."),

    ngx_http_engagement_counter_row("flush_unique_writes_total",
        flush_uniques, "Viewer hash batches added to HyperLogLogs."),

    ngx_http_engagement_metric_row("flush_duration_seconds",
        NGX_HTTP_ENGAGEMENT_METRIC_HISTOGRAM,
        NGX_HTTP_ENGAGEMENT_COUNTERS_ZONES,
        ngx_http_engagement_s(flush_latency_ms),
        "Time from sending a flush round to its last reply."),

    ngx_http_engagement_gauge_row("oldest_pending_age_seconds",
        ngx_http_engagement_d(oldest_age),
        "Age of the oldest delta Redis has not confirmed (freshness)."),

    ngx_http_engagement_gauge_row("redis_ready_workers",
        ngx_http_engagement_s(redis_ready),
        "Workers whose Redis connection is ready."),

    ngx_http_engagement_gauge_row("start_time_seconds",
        ngx_http_engagement_d(created),
        "When the zone was created (the first start; reloads keep it)."),

    ngx_http_engagement_gauge_row("pending_contents",
        ngx_http_engagement_d(pending_nodes),
        "Contents with deltas waiting for a flush."),

    ngx_http_engagement_gauge_row("inflight_contents",
        ngx_http_engagement_d(inflight_nodes),
        "Contents with a flush sent and not yet confirmed."),

    ngx_http_engagement_gauge_row("waiting_contents",
        ngx_http_engagement_d(slow_nodes),
        "Contents whose buckets or viewers wait for their interval."),

    ngx_http_engagement_by_row("redis_reads_total", "result", "ok",
        reads_ok, "Totals read from Redis, by result."),
    ngx_http_engagement_label_row("failed", reads_failed),
    ngx_http_engagement_label_row("unavailable", read_unavailable),

    ngx_http_engagement_counter_row("redis_connects_total", redis_connects,
        "Redis connections made ready (all workers)."),

    ngx_http_engagement_counter_row("redis_disconnects_total",
        redis_disconnects, "Ready Redis connections lost."),

    ngx_http_engagement_counter_row("redis_errors_total", redis_errors,
        "Error replies from Redis."),

    ngx_http_engagement_counter_row("redis_timeouts_total", redis_timeouts,
        "Redis connects or commands that timed out."),

    ngx_http_engagement_counter_row("restored_contents_total", restored,
        "Contents restored from the state file at start."),

    ngx_http_engagement_counter_row("unique_viewers_dropped_total",
        uv_dropped, "Viewers left out of the unique count: a content's "
        "list for one flush was full."),

    ngx_http_engagement_counter_row("cache_evictions_total", evicted_clean,
        "Cached totals dropped to make room (Redis mode)."),

    ngx_http_engagement_zone_row("zone_size_bytes", gauge, size,
        "Size of each shared memory zone."),

    ngx_http_engagement_zone_row("zone_used_bytes", gauge, used,
        "Bytes of each shared memory zone in use (whole pages)."),

    ngx_http_engagement_zone_row("zone_full", gauge, full,
        "1 when the last allocation in a zone failed."),

    ngx_http_engagement_zone_row("zone_free_bytes", gauge, free,
        "Free pages of each shared memory zone, in bytes."),

    ngx_http_engagement_zone_row("zone_entries", gauge, entries,
        "Entries in each zone (dedupe: slots ever used)."),

    ngx_http_engagement_zone_row("zone_alloc_failures_total", counter,
        alloc_failures, "Allocations that failed because a zone was full."),

    ngx_http_engagement_dedupe_row("dedupe_inserts_total", inserts,
        "Marks set in a dedupe zone."),

    ngx_http_engagement_dedupe_row("dedupe_hits_total", hits,
        "Lookups that found a live mark (a repeat)."),

    ngx_http_engagement_dedupe_row("dedupe_expired_total", expired,
        "Lapsed entries reused for a new key."),

    ngx_http_engagement_dedupe_row("dedupe_evictions_total", evictions,
        "Entries with live marks evicted for room (both buckets full).")
};

#define NGX_HTTP_ENGAGEMENT_METRICS                                           \
    (sizeof(ngx_http_engagement_metrics)                                      \
     / sizeof(ngx_http_engagement_metric_t))


typedef ngx_int_t (*ngx_http_engagement_status_pt)(ngx_http_request_t *r,
    ngx_http_engagement_main_conf_t *emcf);


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
    s->slow_nodes = csh->slow_nodes;
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


#define ngx_http_engagement_metric_value(s, m)                                \
    (*(ngx_uint_t *) ((u_char *) (s) + (m)->offset))

#define ngx_http_engagement_metric_shown(fam, s)                              \
    ((fam)->zones == NGX_HTTP_ENGAGEMENT_ALL_ZONES                            \
     || (fam)->zones == (s)->dedupe)

/* the JSON name of a family */
#define ngx_http_engagement_metric_name(fam)                                  \
    ((fam)->family + sizeof(NGX_HTTP_ENGAGEMENT_METRIC_PREFIX) - 1)


#define NGX_HTTP_ENGAGEMENT_BUILD_INFO                                        \
    "# HELP nginx_engagement_build_info Module and nginx versions.\n"         \
    "# TYPE nginx_engagement_build_info gauge\n"                              \
    "nginx_engagement_build_info{version=\"%s\",nginx=\"%s\"} 1\n"

#define NGX_HTTP_ENGAGEMENT_JSON_HEAD                                         \
    "{\"version\":\"%s\",\"nginx\":\"%s\",\"zones\":["


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
ngx_http_engagement_histogram_json(u_char *p, const char *name,
    ngx_http_engagement_snapshot_t *s)
{
    ngx_uint_t  i, cum, b;

    p = ngx_sprintf(p, ",\"%s_sum\":%ui.%03ui,\"%s_count\":%ui,"
                    "\"%s_bucket\":{", name,
                    s->stats.flush_latency_ms / 1000,
                    s->stats.flush_latency_ms % 1000, name,
                    s->stats.flush_rounds, name);
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


/*
 * An upper bound of either format: a row of the text format is longer
 * than its JSON form (the histogram's lines as well), so both fit.
 */

static size_t
ngx_http_engagement_status_len(ngx_http_engagement_snapshot_t *snaps,
    ngx_uint_t n)
{
    size_t                         len, row, names, lines;
    ngx_uint_t                     i;
    ngx_http_engagement_metric_t  *m, *fam;

    names = 0;

    for (i = 0; i < n; i++) {
        names += snaps[i].name.len;
    }

    len = sizeof(NGX_HTTP_ENGAGEMENT_BUILD_INFO)
          + sizeof(NGX_HTTP_ENGAGEMENT_JSON_HEAD)
          + 2 * (sizeof(NGX_HTTP_ENGAGEMENT_VERSION) + sizeof(NGINX_VERSION))
          + n * sizeof(",{\"zone\":\"\",\"kind\":\"counters\"}") + names
          + sizeof("]}\n");

    fam = NULL;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_METRICS; i++) {
        m = &ngx_http_engagement_metrics[i];

        if (m->family) {
            fam = m;
            len += sizeof("# HELP  \n# TYPE  \n") + 2 * ngx_strlen(m->family)
                   + ngx_strlen(m->help)
                   + ngx_strlen(ngx_http_engagement_metric_types[m->type]);
        }

        if (fam->type == NGX_HTTP_ENGAGEMENT_METRIC_HISTOGRAM) {
            lines = NGX_HTTP_ENGAGEMENT_HIST + 2;    /* buckets, sum, count */
            row = ngx_strlen(fam->family)
                  + sizeof("_bucket{zone=\"\",le=\"+Inf\"} .\n")
                  + 3 * NGX_INT_T_LEN;

        } else {
            lines = 1;
            row = ngx_strlen(fam->family)
                  + sizeof("{zone=\"\",kind=\"counters\",=\"\"} \n")
                  + (fam->label ? ngx_strlen(fam->label) : 0)
                  + (m->value ? ngx_strlen(m->value) : 0) + NGX_INT_T_LEN;
        }

        len += lines * (n * row + names);
    }

    return len;
}


static u_char *
ngx_http_engagement_status_row(u_char *p, ngx_http_engagement_metric_t *fam,
    ngx_http_engagement_metric_t *m, ngx_http_engagement_snapshot_t *s)
{
    if (fam->type == NGX_HTTP_ENGAGEMENT_METRIC_HISTOGRAM) {
        return ngx_http_engagement_histogram_text(p, fam->family, s);
    }

    p = ngx_sprintf(p, "%s{zone=\"%V\"", fam->family, &s->name);

    if (fam->zones == NGX_HTTP_ENGAGEMENT_ALL_ZONES) {
        p = ngx_sprintf(p, ",kind=\"%s\"",
                        ngx_http_engagement_zone_kinds[s->dedupe]);
    }

    if (fam->label) {
        p = ngx_sprintf(p, ",%s=\"%s\"", fam->label, m->value);
    }

    return ngx_sprintf(p, "} %ui\n", ngx_http_engagement_metric_value(s, m));
}


/* the Prometheus text format: a family at a time, a row for each zone */

static u_char *
ngx_http_engagement_status_text(u_char *p,
    ngx_http_engagement_snapshot_t *snaps, ngx_uint_t n)
{
    ngx_uint_t                     i, j;
    ngx_http_engagement_metric_t  *m, *fam;

    p = ngx_sprintf(p, NGX_HTTP_ENGAGEMENT_BUILD_INFO,
                    NGX_HTTP_ENGAGEMENT_VERSION, NGINX_VERSION);

    fam = NULL;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_METRICS; i++) {
        m = &ngx_http_engagement_metrics[i];

        if (m->family) {
            fam = m;
            p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                            fam->family, fam->help, fam->family,
                            ngx_http_engagement_metric_types[fam->type]);
        }

        for (j = 0; j < n; j++) {
            if (ngx_http_engagement_metric_shown(fam, &snaps[j])) {
                p = ngx_http_engagement_status_row(p, fam, m, &snaps[j]);
            }
        }
    }

    return p;
}


/* JSON: a zone at a time, each of its figures by name */

static u_char *
ngx_http_engagement_status_json(u_char *p,
    ngx_http_engagement_snapshot_t *snaps, ngx_uint_t n)
{
    ngx_uint_t                       i, j;
    ngx_http_engagement_metric_t    *m, *fam;
    ngx_http_engagement_snapshot_t  *s;

    p = ngx_sprintf(p, NGX_HTTP_ENGAGEMENT_JSON_HEAD,
                    NGX_HTTP_ENGAGEMENT_VERSION, NGINX_VERSION);

    for (j = 0; j < n; j++) {
        s = &snaps[j];
        p = ngx_sprintf(p, "%s{\"zone\":\"%V\",\"kind\":\"%s\"",
                        j ? "," : "", &s->name,
                        ngx_http_engagement_zone_kinds[s->dedupe]);

        fam = NULL;

        for (i = 0; i < NGX_HTTP_ENGAGEMENT_METRICS; i++) {
            m = &ngx_http_engagement_metrics[i];

            if (m->family) {
                fam = m;
            }

            if (!ngx_http_engagement_metric_shown(fam, s)) {
                continue;
            }

            if (fam->type == NGX_HTTP_ENGAGEMENT_METRIC_HISTOGRAM) {
                p = ngx_http_engagement_histogram_json(p,
                        ngx_http_engagement_metric_name(fam), s);
                continue;
            }

            p = ngx_sprintf(p, ",\"%s%s%s\":%ui",
                            ngx_http_engagement_metric_name(fam),
                            m->value ? "_" : "", m->value ? m->value : "",
                            ngx_http_engagement_metric_value(s, m));
        }

        *p++ = '}';
    }

    return p;
}


/* the series zone's figures (store/series.c) */

#define ngx_http_engagement_series_field(f)                                   \
    offsetof(ngx_http_engagement_series_stats_t, f)

static ngx_http_engagement_stat_row_t  ngx_http_engagement_series_rows[] = {
    { "events_total", "events", NULL, "counter",
      "Counted events (views, likes, interactions) taken into the series "
      "zone", ngx_http_engagement_series_field(added) },
    { "dropped_total", "dropped", NULL, "counter",
      "Counted events left out of the series: no room in the series zone",
      ngx_http_engagement_series_field(dropped) },
    { "rows", "rows", NULL, "gauge",
      "Rows in use in the series zone",
      ngx_http_engagement_series_field(rows) },
    { "rows_max", "rowsMax", NULL, "gauge",
      "Rows the series zone can hold",
      ngx_http_engagement_series_field(capacity) },
    { "rows_pending", "pending", NULL, "gauge",
      "Rows with counts not yet confirmed by Redis",
      ngx_http_engagement_series_field(pending) },
    { "rounds_total", "rounds", NULL, "counter",
      "Rounds of rows sent to Redis and confirmed",
      ngx_http_engagement_series_field(rounds) },
    { "rows_flushed_total", "rowsFlushed", NULL, "counter",
      "Rows whose counts Redis confirmed",
      ngx_http_engagement_series_field(rows_sent) },
    { "fields_total", "fields", NULL, "counter",
      "Bucket fields sent (each to the minute, hour and day buckets)",
      ngx_http_engagement_series_field(fields) },
    { "resent_total", "resent", NULL, "counter",
      "Rounds sent again (no answer, or taken over from a silent worker)",
      ngx_http_engagement_series_field(resent) },
    { "repeats_total", "repeats", NULL, "counter",
      "Rounds Redis had applied already (a resend): applied once",
      ngx_http_engagement_series_field(repeats) },
    { "errors_total", "errors", NULL, "counter",
      "Round sends not confirmed (Redis down, a timeout): sent again",
      ngx_http_engagement_series_field(errors) },
    { "refused_total", "refused", NULL, "counter",
      "Bucket fields Redis refused (a key of another type): lost",
      ngx_http_engagement_series_field(refused) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


static size_t
ngx_http_engagement_series_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_series_conf_t  *sc;

    sc = emcf->series;

    if (sc == NULL || sc->sh == NULL) {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("series",
                                             ngx_http_engagement_series_rows);
}


static u_char *
ngx_http_engagement_series_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_http_engagement_series_conf_t  *sc;

    sc = emcf->series;

    if (sc == NULL || sc->sh == NULL) {
        return p;
    }

    return ngx_http_engagement_stat_rows(p, "series",
                                         ngx_http_engagement_series_rows,
                                         ngx_http_engagement_series_stats(sc),
                                         json, (size_t) -1, 0);
}


/* global dedupe (engagement_dedupe_scope global): its zone's figures */
#define ngx_http_engagement_global_field(f)                                   \
    offsetof(ngx_http_engagement_global_stats_t, f)

static ngx_http_engagement_stat_row_t  ngx_http_engagement_global_rows[] = {
    { "waiting", "waiting", NULL, "gauge",
      "Views waiting for Redis to decide whether another edge counted them",
      ngx_http_engagement_global_field(queued) },
    { "views_total", "views", NULL, "counter",
      "Views this edge would count, sent to Redis to decide",
      ngx_http_engagement_global_field(claims) },
    { "decided_total", "counted", "counted", "counter",
      "Views decided: counted, or another edge had counted them",
      ngx_http_engagement_global_field(counted) },
    { "decided_total", "duplicates", "duplicate", NULL, NULL,
      ngx_http_engagement_global_field(duplicates) },
    { "rounds_total", "rounds", NULL, "counter",
      "Rounds Redis answered",
      ngx_http_engagement_global_field(rounds) },
    { "resent_total", "resent", NULL, "counter",
      "Rounds sent again (no answer, or a dead worker's)",
      ngx_http_engagement_global_field(resent) },
    { "errors_total", "errors", NULL, "counter",
      "Round sends not answered (Redis down, a timeout): sent again",
      ngx_http_engagement_global_field(errors) },
    { "refused_total", "refused", NULL, "counter",
      "Views refused with 503: no room in the global zone",
      ngx_http_engagement_global_field(full) },
    { "lines_lost_total", "linesLost", NULL, "counter",
      "Durable writer lines of decided views lost: the writer zone was "
      "made anew by a reload",
      ngx_http_engagement_global_field(lost_lines) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


static size_t
ngx_http_engagement_global_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_global_conf_t  *gc = emcf->global;

    if (gc == NULL || gc->sh == NULL) {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("global_dedupe",
                                             ngx_http_engagement_global_rows);
}


static u_char *
ngx_http_engagement_global_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_http_engagement_global_conf_t  *gc = emcf->global;

    if (gc == NULL || gc->sh == NULL) {
        return p;
    }

    return ngx_http_engagement_stat_rows(p, json ? "globalDedupe"
                                                 : "global_dedupe",
                                         ngx_http_engagement_global_rows,
                                         &gc->sh->stats, json,
                                         (size_t) -1, 0);
}


static ngx_int_t
ngx_http_engagement_status_answer(ngx_http_request_t *r,
    ngx_http_engagement_main_conf_t *emcf)
{
    u_char                           *p, *body;
    size_t                            len;
    ngx_uint_t                        i, n;
    ngx_http_engagement_zone_t      **zp;
    ngx_http_engagement_snapshot_t   *snaps;

    n = emcf->zones.nelts;
    zp = emcf->zones.elts;

    snaps = ngx_palloc(r->pool,
                       (n + 1) * sizeof(ngx_http_engagement_snapshot_t));
    if (snaps == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        ngx_http_engagement_snapshot(zp[i], &snaps[i]);
    }

    len = ngx_http_engagement_status_len(snaps, n)
          + ngx_http_engagement_limit_status_len(emcf)
          + ngx_http_engagement_writer_status_len(emcf)
          + ngx_http_engagement_live_status_len(emcf)
          + ngx_http_engagement_resume_status_len(emcf)
          + ngx_http_engagement_series_status_len(emcf)
          + ngx_http_engagement_trending_status_len(emcf)
          + ngx_http_engagement_segments_status_len(emcf)
          + ngx_http_engagement_dims_status_len(emcf)
          + ngx_http_engagement_interaction_status_len(emcf)
          + ngx_http_engagement_global_status_len(emcf);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_engagement_status_wants_json(r)) {
        p = ngx_http_engagement_status_json(body, snaps, n);

        /* the rate limit zones, kind "limit" */
        p = ngx_http_engagement_limit_status(r, p, emcf, 1, n == 0);

        *p++ = ']';
        p = ngx_http_engagement_writer_status(p, emcf, 1);
        p = ngx_http_engagement_live_status(p, emcf, 1);
        p = ngx_http_engagement_resume_status(p, emcf, 1);
        p = ngx_http_engagement_series_status(p, emcf, 1);
        p = ngx_http_engagement_trending_status(p, emcf, 1);
        p = ngx_http_engagement_segments_status(p, emcf, 1);
        p = ngx_http_engagement_dims_status(p, emcf, 1);
        p = ngx_http_engagement_interaction_status(p, emcf, 1);
        p = ngx_http_engagement_global_status(p, emcf, 1);
        p = ngx_cpymem(p, "}\n", 2);

        return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
    }

    p = ngx_http_engagement_status_text(body, snaps, n);
    p = ngx_http_engagement_limit_status(r, p, emcf, 0, 0);
    p = ngx_http_engagement_writer_status(p, emcf, 0);
    p = ngx_http_engagement_live_status(p, emcf, 0);
    p = ngx_http_engagement_resume_status(p, emcf, 0);
    p = ngx_http_engagement_series_status(p, emcf, 0);
    p = ngx_http_engagement_trending_status(p, emcf, 0);
    p = ngx_http_engagement_segments_status(p, emcf, 0);
    p = ngx_http_engagement_dims_status(p, emcf, 0);
    p = ngx_http_engagement_interaction_status(p, emcf, 0);
    p = ngx_http_engagement_global_status(p, emcf, 0);

    return ngx_http_engagement_send(r, NGX_HTTP_OK,
                                    &ngx_http_engagement_prometheus_type,
                                    body, p - body);
}


#define NGX_HTTP_ENGAGEMENT_HEALTH_FULL                                       \
    "{\"status\":\"unavailable\",\"reason\":\"zone_full\",\"zone\":\"%V\"}\n"
#define NGX_HTTP_ENGAGEMENT_HEALTH_DOWN                                       \
    "{\"status\":\"unavailable\",\"reason\":\"redis_unavailable\","         \
    "\"downForMs\":%M}\n"
#define NGX_HTTP_ENGAGEMENT_HEALTH_SPOOL                                      \
    "{\"status\":\"unavailable\",\"reason\":\"%s\","                        \
    "\"downForMs\":%M,\"spooledBatches\":%ui}\n"
#define NGX_HTTP_ENGAGEMENT_HEALTH_OK                                         \
    "{\"status\":\"%s\",\"redis\":\"%s\",\"pendingContents\":%ui"
#define NGX_HTTP_ENGAGEMENT_HEALTH_WRITER                                     \
    ",\"writer\":\"%s\",\"spooledBatches\":%ui"

/* any of the answers above, but for the zone's name */
#define NGX_HTTP_ENGAGEMENT_HEALTH_LEN                                        \
    (ngx_max(sizeof(NGX_HTTP_ENGAGEMENT_HEALTH_FULL),                         \
             ngx_max(sizeof(NGX_HTTP_ENGAGEMENT_HEALTH_SPOOL)                 \
                     + sizeof("writer_unavailable"),                          \
                     sizeof(NGX_HTTP_ENGAGEMENT_HEALTH_OK)                    \
                     + sizeof("degraded") + sizeof("ready")                   \
                     + sizeof(NGX_HTTP_ENGAGEMENT_HEALTH_WRITER)              \
                     + sizeof("down") + sizeof("}\n")))                       \
     + 2 * NGX_INT_T_LEN)


static u_char *ngx_http_engagement_health_ok(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_msec_t down,
    ngx_http_engagement_writer_health_t *wh);


/*
 * The health check for load balancers: 200 when events can be accepted,
 * 503 with the reason when a zone is full, when Redis or the durable
 * writer's upstream has been unusable for longer than
 * engagement_health_grace (as seen by the answering worker; the writer's
 * as all workers see it), or while the writer's spool is full.
 */

static ngx_int_t
ngx_http_engagement_health_answer(ngx_http_request_t *r,
    ngx_http_engagement_main_conf_t *emcf)
{
    u_char                                *p, *body;
    ngx_msec_t                             down;
    ngx_uint_t                             i;
    ngx_http_engagement_zone_t           **zp, *full;
    ngx_http_engagement_shctx_head_t      *head;
    ngx_http_engagement_writer_health_t    wh;

    zp = emcf->zones.elts;
    full = NULL;

    for (i = 0; i < emcf->zones.nelts; i++) {
        head = zp[i]->sh;

        if (head->full && full == NULL) {
            full = zp[i];
        }
    }

    down = emcf->redis ? ngx_http_engagement_redis_down_for() : 0;

    ngx_http_engagement_writer_health(emcf, &wh);

    body = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_HEALTH_LEN
                                + (full ? full->name.len : 0));
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (full) {
        p = ngx_sprintf(body, NGX_HTTP_ENGAGEMENT_HEALTH_FULL, &full->name);

    } else if (emcf->redis && down > emcf->health_grace) {
        p = ngx_sprintf(body, NGX_HTTP_ENGAGEMENT_HEALTH_DOWN, down);

    } else if (wh.full || (wh.down && wh.down_ms > emcf->health_grace)) {
        p = ngx_sprintf(body, NGX_HTTP_ENGAGEMENT_HEALTH_SPOOL,
                        wh.full ? "spool_full" : "writer_unavailable",
                        wh.down_ms, wh.spooled);

    } else {
        p = ngx_http_engagement_health_ok(body, emcf, down, &wh);

        return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
    }

    /* a balancer may ask again sooner than it would a dead node */
    if (ngx_http_engagement_retry_after(r, 5) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_engagement_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         body, p - body);
}


/*
 * The 200: "ok", or "degraded" while the writer's upstream fails within
 * the grace (events are accepted, and pile up in the spool meanwhile).
 */

static u_char *
ngx_http_engagement_health_ok(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_msec_t down,
    ngx_http_engagement_writer_health_t *wh)
{
    ngx_uint_t                             i, pending;
    ngx_http_engagement_zone_t           **zp;
    ngx_http_engagement_counters_shctx_t  *csh;

    zp = emcf->zones.elts;
    pending = 0;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (!zp[i]->dedupe) {
            csh = zp[i]->sh;
            pending += csh->pending_nodes + csh->inflight_nodes;
        }
    }

    p = ngx_sprintf(p, NGX_HTTP_ENGAGEMENT_HEALTH_OK,
                    wh->down ? "degraded" : "ok",
                    emcf->redis == NULL ? "off" : (down ? "down" : "ready"),
                    pending);

    if (wh->on) {
        p = ngx_sprintf(p, NGX_HTTP_ENGAGEMENT_HEALTH_WRITER,
                        wh->down ? "down" : "up", wh->spooled);
    }

    *p++ = '}';
    *p++ = '\n';

    return p;
}


/* GET or HEAD, the body discarded, then the answer */

static ngx_int_t
ngx_http_engagement_status_get(ngx_http_request_t *r,
    ngx_http_engagement_status_pt answer)
{
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        /* a JSON 405 with Allow, like every other endpoint's */
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD",
                   "this endpoint answers GET and HEAD only");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return answer(r, ngx_http_get_module_main_conf(r,
                                                 ngx_http_engagement_module));
}


ngx_int_t
ngx_http_engagement_status_handler(ngx_http_request_t *r)
{
    return ngx_http_engagement_status_get(r,
                                          ngx_http_engagement_status_answer);
}


ngx_int_t
ngx_http_engagement_health_handler(ngx_http_request_t *r)
{
    return ngx_http_engagement_status_get(r,
                                          ngx_http_engagement_health_answer);
}


/* the room the rows of a group take at most */

size_t
ngx_http_engagement_stat_rows_len(const char *group,
    ngx_http_engagement_stat_row_t *rows)
{
    size_t                           len, g;
    ngx_http_engagement_stat_row_t  *row;

    g = ngx_strlen(group);
    len = sizeof(",\"\":{}") + g;

    for (row = rows; row->name; row++) {
        len += sizeof("# HELP nginx_engagement__ \n"
                      "# TYPE nginx_engagement__ \n"
                      "nginx_engagement__{outcome=\"\"} \n")
               + 3 * (g + ngx_strlen(row->name)) + ngx_strlen(row->json)
               + (row->help ? ngx_strlen(row->help) : 0)
               + (row->type ? ngx_strlen(row->type) : 0)
               + (row->label ? ngx_strlen(row->label) : 0)
               + NGX_ATOMIC_T_LEN + 4;
    }

    return len;
}


/*
 * The rows of a group, their values read from base (the atomics); the
 * row at offset gauge (if any: (size_t) -1 for none) shows gauge_value
 * instead, a figure the caller made up (e.g. a sum over workers).
 */

u_char *
ngx_http_engagement_stat_rows(u_char *p, const char *group,
    ngx_http_engagement_stat_row_t *rows, void *base, ngx_uint_t json,
    size_t gauge, ngx_atomic_int_t gauge_value)
{
    ngx_uint_t                       first;
    ngx_atomic_int_t                 v;
    ngx_http_engagement_stat_row_t  *row;

    if (json) {
        p = ngx_sprintf(p, ",\"%s\":{", group);
    }

    first = 1;

    for (row = rows; row->name; row++) {
        v = (row->offset == gauge)
            ? gauge_value
            : *(ngx_atomic_int_t *) ((u_char *) base + row->offset);

        if (v < 0) {
            v = 0;
        }

        if (json) {
            p = ngx_sprintf(p, "%s\"%s\":%A", first ? "" : ",", row->json,
                            (ngx_atomic_uint_t) v);
            first = 0;
            continue;
        }

        if (row->help) {
            p = ngx_sprintf(p, "# HELP nginx_engagement_%s_%s %s\n"
                            "# TYPE nginx_engagement_%s_%s %s\n",
                            group, row->name, row->help, group, row->name,
                            row->type);
        }

        if (row->label) {
            p = ngx_sprintf(p, "nginx_engagement_%s_%s{outcome=\"%s\"} %A\n",
                            group, row->name, row->label,
                            (ngx_atomic_uint_t) v);

        } else {
            p = ngx_sprintf(p, "nginx_engagement_%s_%s %A\n", group,
                            row->name, (ngx_atomic_uint_t) v);
        }
    }

    if (json) {
        *p++ = '}';
    }

    return p;
}
