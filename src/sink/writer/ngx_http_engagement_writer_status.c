
/*
 * The durable writer's figures for the status endpoint, in Prometheus
 * text (one HELP and TYPE per family) or as members of a JSON object. A
 * snapshot of the zone's counters is taken first, then rendered from a
 * table of rows.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


/* what status_len() reserves: every row below at its longest */
#define NGX_HTTP_ENGAGEMENT_WRITER_STATUS_LEN  6144


/* the figures of one snapshot */
enum {
    NGX_HTTP_ENGAGEMENT_WS_UP = 0,
    NGX_HTTP_ENGAGEMENT_WS_QUEUED,
    NGX_HTTP_ENGAGEMENT_WS_INFLIGHT,
    NGX_HTTP_ENGAGEMENT_WS_ACCEPTED,
    NGX_HTTP_ENGAGEMENT_WS_EVENTS_SENT,
    NGX_HTTP_ENGAGEMENT_WS_SENT,
    NGX_HTTP_ENGAGEMENT_WS_FAILED,
    NGX_HTTP_ENGAGEMENT_WS_SPOOLED,
    NGX_HTTP_ENGAGEMENT_WS_REPLAYED,
    NGX_HTTP_ENGAGEMENT_WS_REPLAY_FAILED,
    NGX_HTTP_ENGAGEMENT_WS_DELIVERED,
    NGX_HTTP_ENGAGEMENT_WS_REFUSED_QUEUE,
    NGX_HTTP_ENGAGEMENT_WS_REFUSED_SPOOL,
    NGX_HTTP_ENGAGEMENT_WS_SPOOL_FULL,
    NGX_HTTP_ENGAGEMENT_WS_SPOOL_ERRORS,
    NGX_HTTP_ENGAGEMENT_WS_IN_THREAD,
    NGX_HTTP_ENGAGEMENT_WS_IN_WORKER,
    NGX_HTTP_ENGAGEMENT_WS_RECLAIMED,
    NGX_HTTP_ENGAGEMENT_WS_CONNECTS,
    NGX_HTTP_ENGAGEMENT_WS_SPOOL_BYTES,
    NGX_HTTP_ENGAGEMENT_WS_SPOOL_FILES,
    NGX_HTTP_ENGAGEMENT_WS_OLDEST,
    NGX_HTTP_ENGAGEMENT_WS_N
};


/* a row: a family's first (with help and type) or a further series */
typedef struct {
    const char                   *name;
    const char                   *type;
    const char                   *help;        /* NULL: a further series */
    const char                   *label;
    const char                   *value;
    ngx_uint_t                    figure;
} ngx_http_engagement_writer_row_t;


static ngx_http_engagement_writer_row_t  ngx_http_engagement_writer_rows[] = {

    { "up", "gauge",
      "1 unless the last send to the upstream failed lately.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_UP },

    { "queued_events", "gauge",
      "Events queued in shared memory, not claimed by a sender.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_QUEUED },

    { "inflight_events", "gauge",
      "Events in a batch being sent.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_INFLIGHT },

    { "events_total", "counter",
      "Events accepted into the writer's queue.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_ACCEPTED },

    { "events_sent_total", "counter",
      "Events the upstream took straight from the queue.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_EVENTS_SENT },

    { "batches_total", "counter",
      "Batches by result: sent, failed (then spooled or requeued), "
      "spooled, replayed from the spool, replay_failed, "
      "already_delivered (a check found it in the sink).", "result", "sent",
      NGX_HTTP_ENGAGEMENT_WS_SENT },
    { "batches_total", NULL, NULL, "result", "failed",
      NGX_HTTP_ENGAGEMENT_WS_FAILED },
    { "batches_total", NULL, NULL, "result", "spooled",
      NGX_HTTP_ENGAGEMENT_WS_SPOOLED },
    { "batches_total", NULL, NULL, "result", "replayed",
      NGX_HTTP_ENGAGEMENT_WS_REPLAYED },
    { "batches_total", NULL, NULL, "result", "replay_failed",
      NGX_HTTP_ENGAGEMENT_WS_REPLAY_FAILED },
    { "batches_total", NULL, NULL, "result", "already_delivered",
      NGX_HTTP_ENGAGEMENT_WS_DELIVERED },

    { "refused_total", "counter",
      "Events refused with 503: the queue zone or the spool was full.",
      "reason", "queue_full", NGX_HTTP_ENGAGEMENT_WS_REFUSED_QUEUE },
    { "refused_total", NULL, NULL, "reason", "spool_full",
      NGX_HTTP_ENGAGEMENT_WS_REFUSED_SPOOL },

    { "spool_full_total", "counter",
      "Batches kept in the queue because the spool was at its cap.", NULL,
      NULL, NGX_HTTP_ENGAGEMENT_WS_SPOOL_FULL },

    { "spool_errors_total", "counter",
      "Spool files that could not be written.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_SPOOL_ERRORS },

    { "spool_writes_total", "counter",
      "Batches written to the spool, by where: in a thread of the "
      "writer's pool, or in the worker (at a stop, or without a pool).",
      "in", "thread", NGX_HTTP_ENGAGEMENT_WS_IN_THREAD },
    { "spool_writes_total", NULL, NULL, "in", "worker",
      NGX_HTTP_ENGAGEMENT_WS_IN_WORKER },

    { "reclaimed_total", "counter",
      "Events of a dead worker's claim put back in the queue.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_RECLAIMED },

    { "connects_total", "counter",
      "Connections opened to the upstream (the rest were kept alive).",
      NULL, NULL, NGX_HTTP_ENGAGEMENT_WS_CONNECTS },

    { "spool_bytes", "gauge",
      "Bytes in the spool directory.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_SPOOL_BYTES },

    { "spool_files", "gauge",
      "Batches in the spool directory.", NULL, NULL,
      NGX_HTTP_ENGAGEMENT_WS_SPOOL_FILES },

    { "oldest_spooled_age_seconds", "gauge",
      "Age of the oldest spooled batch, 0 when the spool is empty.", NULL,
      NULL, NGX_HTTP_ENGAGEMENT_WS_OLDEST },

    { NULL, NULL, NULL, NULL, NULL, 0 }
};


static void
ngx_http_engagement_writer_snapshot(ngx_http_engagement_writer_conf_t *wcf,
    ngx_atomic_uint_t *v)
{
    time_t                            oldest;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = wcf->sh;

    oldest = ngx_http_engagement_spool_oldest(wcf);

    v[NGX_HTTP_ENGAGEMENT_WS_UP] =
        (ngx_msec_int_t) (sh->down_until - ngx_current_msec) <= 0;
    v[NGX_HTTP_ENGAGEMENT_WS_QUEUED] = sh->queued;
    v[NGX_HTTP_ENGAGEMENT_WS_INFLIGHT] = sh->inflight_n;
    v[NGX_HTTP_ENGAGEMENT_WS_ACCEPTED] = sh->accepted;
    v[NGX_HTTP_ENGAGEMENT_WS_EVENTS_SENT] = sh->events_sent;
    v[NGX_HTTP_ENGAGEMENT_WS_SENT] = sh->batches_sent;
    v[NGX_HTTP_ENGAGEMENT_WS_FAILED] = sh->batches_failed;
    v[NGX_HTTP_ENGAGEMENT_WS_SPOOLED] = sh->batches_spooled;
    v[NGX_HTTP_ENGAGEMENT_WS_REPLAYED] = sh->batches_replayed;
    v[NGX_HTTP_ENGAGEMENT_WS_REPLAY_FAILED] = sh->replay_failed;
    v[NGX_HTTP_ENGAGEMENT_WS_DELIVERED] = sh->batches_delivered;
    v[NGX_HTTP_ENGAGEMENT_WS_REFUSED_QUEUE] = sh->refused_queue_full;
    v[NGX_HTTP_ENGAGEMENT_WS_REFUSED_SPOOL] = sh->refused_spool_full;
    v[NGX_HTTP_ENGAGEMENT_WS_SPOOL_FULL] = sh->spool_full;
    v[NGX_HTTP_ENGAGEMENT_WS_SPOOL_ERRORS] = sh->spool_errors;
    v[NGX_HTTP_ENGAGEMENT_WS_IN_THREAD] = sh->spool_in_thread;
    v[NGX_HTTP_ENGAGEMENT_WS_IN_WORKER] = sh->batches_spooled
                                          - sh->spool_in_thread;
    v[NGX_HTTP_ENGAGEMENT_WS_RECLAIMED] = sh->reclaimed;
    v[NGX_HTTP_ENGAGEMENT_WS_CONNECTS] = sh->connects;
    v[NGX_HTTP_ENGAGEMENT_WS_SPOOL_BYTES] = sh->spool_bytes;
    v[NGX_HTTP_ENGAGEMENT_WS_SPOOL_FILES] = sh->spool_files;
    v[NGX_HTTP_ENGAGEMENT_WS_OLDEST] =
        oldest ? (ngx_atomic_uint_t) ngx_max(ngx_time() - oldest, 0) : 0;
}


static u_char *
ngx_http_engagement_writer_row(u_char *p, ngx_uint_t json, ngx_uint_t first,
    ngx_http_engagement_writer_row_t *row, ngx_atomic_uint_t v)
{
    if (json) {
        return ngx_sprintf(p, "%s\"%s%s%s\":%uA", first ? "" : ",",
                           row->name, row->value ? "_" : "",
                           row->value ? row->value : "", v);
    }

    if (row->help) {
        p = ngx_sprintf(p, "# HELP nginx_engagement_writer_%s %s\n"
                        "# TYPE nginx_engagement_writer_%s %s\n",
                        row->name, row->help, row->name, row->type);
    }

    if (row->label) {
        return ngx_sprintf(p, "nginx_engagement_writer_%s{%s=\"%s\"} %uA\n",
                           row->name, row->label, row->value, v);
    }

    return ngx_sprintf(p, "nginx_engagement_writer_%s %uA\n", row->name, v);
}


size_t
ngx_http_engagement_writer_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    return emcf->writer ? NGX_HTTP_ENGAGEMENT_WRITER_STATUS_LEN : 0;
}


u_char *
ngx_http_engagement_writer_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_uint_t                          first;
    ngx_atomic_uint_t                   v[NGX_HTTP_ENGAGEMENT_WS_N];
    ngx_http_engagement_writer_row_t   *row;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = emcf->writer;

    if (wcf == NULL || wcf->sh == NULL) {
        return p;
    }

    ngx_http_engagement_writer_snapshot(wcf, v);

    if (json) {
        p = ngx_cpymem(p, ",\"writer\":{", sizeof(",\"writer\":{") - 1);
    }

    first = 1;

    for (row = ngx_http_engagement_writer_rows; row->name; row++) {
        p = ngx_http_engagement_writer_row(p, json, first, row,
                                           v[row->figure]);
        first = 0;
    }

    if (json) {
        *p++ = '}';
    }

    return p;
}


/*
 * For the health check: the upstream is down from its first failed send
 * (or check) until a send succeeds; the spool's fill meanwhile.
 */

void
ngx_http_engagement_writer_health(ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_writer_health_t *wh)
{
    ngx_msec_t                          since;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    ngx_memzero(wh, sizeof(ngx_http_engagement_writer_health_t));

    wcf = emcf->writer;

    if (wcf == NULL || wcf->sh == NULL) {
        return;
    }

    sh = wcf->sh;
    since = sh->down_since;

    wh->on = 1;
    wh->down = (since != 0);
    wh->down_ms = since ? ngx_current_msec - since : 0;
    wh->spooled = sh->spool_files;
    wh->full = sh->spool_blocked || (off_t) sh->spool_bytes >= wcf->spool_max;
}
