
/*
 * The durable writer's NDJSON line, made from an event record alone. At
 * reserve the line is written up to its "edge" field; at commit the
 * outcome (,"counted":..,"views":..,...,"reason":".."}\n) is appended in
 * the room the reservation kept; with check=, a claimed line also names
 * its batch.
 * The record's strings are validated ids and configured names: they need
 * no JSON escaping.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


/* the line's "type", by ngx_http_engagement_record_type_e */
static ngx_str_t  ngx_http_engagement_writer_types[] = {
    ngx_string("view"),
    ngx_string("like"),
    ngx_string("react"),
    ngx_string("unlike"),
    ngx_string("click"),
    ngx_string("heartbeat")
};


/* the room a record's line takes in the queue, its outcome included */

size_t
ngx_http_engagement_writer_line_len(ngx_http_engagement_writer_conf_t *wcf,
    ngx_http_engagement_record_t *rec)
{
    return sizeof("{\"event_id\":\"\",\"type\":\"heartbeat\","
                  "\"content_id\":\"\",\"viewer_id\":\"\","
                  "\"session_id\":\"\",\"ts\":,\"received_at\":,"
                  "\"duration_ms\":,\"country\":\"\",\"device\":\"\","
                  "\"source\":\"\",\"channel_id\":\"\",\"category\":\"\","
                  "\"reaction\":\"\",\"edge\":\"\"")
           + wcf->edge.len + NGX_HTTP_ENGAGEMENT_WRITER_VIEWER_LEN
           + NGX_INT64_LEN * 3
           + ngx_max(rec->event_id.len,
                     wcf->edge.len + 2 * NGX_INT64_LEN + 2)
           + rec->content_id.len + rec->session_id.len + rec->country.len
           + rec->device.len + rec->source.len + rec->channel_id.len
           + rec->category.len
           + ngx_min(rec->reaction.len, NGX_HTTP_ENGAGEMENT_REACTION_LEN)
           + (rec->type >= NGX_HTTP_ENGAGEMENT_RECORD_CLICK
              ? sizeof(",\"name\":\"\",\"position_ms\":") + rec->name.len
                + NGX_INT64_LEN
              : 0)
           + NGX_HTTP_ENGAGEMENT_WRITER_TAIL;
}


/* the line up to its outcome, at p; the end is returned */

u_char *
ngx_http_engagement_writer_line(u_char *p,
    ngx_http_engagement_writer_conf_t *wcf, ngx_http_engagement_record_t *rec)
{
    uint64_t                          seq;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = wcf->sh;

    p = ngx_cpymem(p, "{\"event_id\":\"", sizeof("{\"event_id\":\"") - 1);

    if (rec->event_id.len) {
        p = ngx_cpymem(p, rec->event_id.data, rec->event_id.len);

    } else {
        /* edge, zone birth and a counter: unique across workers, restarts */
        seq = ngx_atomic_fetch_add(&sh->event_seq, 1);
        p = ngx_sprintf(p, "%V.%uL.%uL", &wcf->edge, sh->created_ms, seq);
    }

    p = ngx_sprintf(p, "\",\"type\":\"%V\",\"content_id\":\"%V\","
                    "\"viewer_id\":\"",
                    &ngx_http_engagement_writer_types[rec->type],
                    &rec->content_id);

    if (rec->has_viewer) {
        p = ngx_sprintf(p, "%0" ngx_value(NGX_HTTP_ENGAGEMENT_WRITER_VIEWER_LEN)
                        "uxL", rec->viewer);
    }

    p = ngx_sprintf(p, "\",\"session_id\":\"%V\",\"ts\":%T,"
                    "\"received_at\":%T,\"duration_ms\":%L,"
                    "\"country\":\"%V\",\"device\":\"%V\","
                    "\"source\":\"%V\",\"channel_id\":\"%V\","
                    "\"category\":\"%V\",\"reaction\":\"%*s\",",
                    &rec->session_id, rec->ts, rec->received,
                    rec->duration_ms, &rec->country, &rec->device,
                    &rec->source, &rec->channel_id, &rec->category,
                    ngx_min(rec->reaction.len,
                            NGX_HTTP_ENGAGEMENT_REACTION_LEN),
                    rec->reaction.data);

    /* only a click's line has these: the other lines are as they were */
    if (rec->type >= NGX_HTTP_ENGAGEMENT_RECORD_CLICK) {
        p = ngx_sprintf(p, "\"name\":\"%V\",\"position_ms\":%L,",
                        &rec->name, rec->position_ms);
    }

    return ngx_sprintf(p, "\"edge\":\"%V\"", &wcf->edge);
}


/*
 * The outcome, at the line's end p (a reaction's names the one before):
 * whether the event counted, and what: 1 or 0 for each of Redis's view
 * metrics (a reaction's are 0), so that a rollup's sums are Redis's.
 */

u_char *
ngx_http_engagement_writer_line_end(u_char *p, ngx_uint_t counted,
    ngx_uint_t metrics, const char *reason, ngx_str_t *previous)
{
    size_t  n;

    n = reason ? ngx_min(ngx_strlen(reason),
                         NGX_HTTP_ENGAGEMENT_WRITER_REASON_MAX)
               : 0;

    if (previous) {
        p = ngx_sprintf(p, ",\"previous_reaction\":\"%*s\"",
                        ngx_min(previous->len,
                                NGX_HTTP_ENGAGEMENT_REACTION_LEN),
                        previous->data);
    }

    return ngx_sprintf(p, ",\"counted\":%s,\"views\":%ui,\"engaged\":%ui,"
                       "\"replays\":%ui,\"reason\":\"%*s\"}\n",
                       counted ? "true" : "false",
                       (ngx_uint_t) !!(metrics
                                       & NGX_HTTP_ENGAGEMENT_RECORD_VIEWS),
                       (ngx_uint_t) !!(metrics
                                       & NGX_HTTP_ENGAGEMENT_RECORD_ENGAGED),
                       (ngx_uint_t) !!(metrics
                                       & NGX_HTTP_ENGAGEMENT_RECORD_REPLAYS),
                       n, reason ? reason : "");
}


/* what naming the batch adds to a line: ,"batch_id":"<id>" */

size_t
ngx_http_engagement_writer_line_batch_len(size_t id_len)
{
    return sizeof(",\"batch_id\":\"\"") - 1 + id_len;
}


/* a queued line into a batch at p, with its batch id unless id is NULL */

u_char *
ngx_http_engagement_writer_line_batch(u_char *p,
    ngx_http_engagement_wevent_t *e, u_char *id, size_t id_len)
{
    if (id == NULL || e->len < 2) {
        return ngx_cpymem(p, e->data, e->len);
    }

    /* the line ends with "}\n" */
    p = ngx_cpymem(p, e->data, e->len - 2);
    p = ngx_cpymem(p, ",\"batch_id\":\"", sizeof(",\"batch_id\":\"") - 1);
    p = ngx_cpymem(p, id, id_len);
    *p++ = '"'; *p++ = '}'; *p++ = '\n';

    return p;
}
