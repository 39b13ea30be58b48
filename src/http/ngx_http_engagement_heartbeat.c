
/*
 * The heartbeat and live endpoints. A heartbeat (POST, a JSON body) goes
 * through the view path's protection (rate limits, token, bots, opt-out)
 * and marks its session seen in the live zone; the live endpoint answers
 * a content's live viewers and this minute's peak as JSON
 * (GET ...?contentId=), or streams its counts as Server-Sent Events
 * (GET .../{contentId}, ngx_http_engagement_sse.c).
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_live.h"
#include "store/ngx_http_engagement_resume.h"
#include "protect/ngx_http_engagement_protect.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


#define NGX_HTTP_ENGAGEMENT_BEAT_ANSWER_LEN                                   \
    (sizeof("{\"counted\":true,\"contentId\":\"\",\"live\":,\"peak\":,"      \
            "\"intervalMs\":}\n")                                            \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + 3 * NGX_INT64_LEN)

#define NGX_HTTP_ENGAGEMENT_LIVE_ANSWER_LEN                                   \
    (sizeof("{\"contentId\":\"\",\"live\":,\"peak\":}\n")                     \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + 2 * NGX_INT64_LEN)


static ngx_int_t ngx_http_engagement_heartbeat_process(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);
static void ngx_http_engagement_heartbeat_body(ngx_http_request_t *r);


/* at most one "live zone is full" line per worker this often */
static ngx_msec_t  ngx_http_engagement_live_full_log;


const ngx_http_engagement_body_spec_t  ngx_http_engagement_heartbeat_spec = {
    NGX_HTTP_ENGAGEMENT_NO_STAT,       /* counted in the live zone */
    NGX_HTTP_ENGAGEMENT_BODY_HEARTBEAT,
    NGX_HTTP_POST, "POST", "heartbeats are sent with POST",
    ngx_http_engagement_heartbeat_body,
    ngx_http_engagement_heartbeat_process,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT
};


static ngx_http_engagement_live_conf_t *
ngx_http_engagement_live_lc(ngx_http_request_t *r)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);

    return emcf->live;
}


/* a heartbeat refused as malformed: method, type, size, body, a field */

static void
ngx_http_engagement_heartbeat_tally(ngx_http_request_t *r)
{
    switch (r->headers_out.status) {

    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_NOT_ALLOWED:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        ngx_http_engagement_live_inc(ngx_http_engagement_live_lc(r), invalid);
        break;

    default:
        break;
    }
}


ngx_int_t
ngx_http_engagement_heartbeat_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    ngx_http_engagement_live_inc(ngx_http_engagement_live_lc(r), heartbeats);

    rc = ngx_http_engagement_body_read(r, elcf,
                                       &ngx_http_engagement_heartbeat_spec);

    if (rc != NGX_DONE) {
        /* answered at once: refused before the body, or the body came
         * with the header */
        ngx_http_engagement_heartbeat_tally(r);
    }

    return rc;
}


/* 200 {"counted":true,"contentId":..,"live":N,"peak":M,"intervalMs":I} */

static ngx_int_t
ngx_http_engagement_heartbeat_answer(ngx_http_request_t *r,
    ngx_http_engagement_live_conf_t *lc, ngx_str_t *content_id,
    ngx_http_engagement_live_t *live)
{
    u_char  *p, *body;

    body = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_BEAT_ANSWER_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{\"counted\":true,\"contentId\":\"",
                   sizeof("{\"counted\":true,\"contentId\":\"") - 1);
    p = ngx_cpymem(p, content_id->data, content_id->len);
    p = ngx_cpymem(p, "\",\"live\":", sizeof("\",\"live\":") - 1);
    p = ngx_http_engagement_put_uint(p, live->live);
    p = ngx_cpymem(p, ",\"peak\":", sizeof(",\"peak\":") - 1);
    p = ngx_http_engagement_put_uint(p, live->peak);
    p = ngx_cpymem(p, ",\"intervalMs\":", sizeof(",\"intervalMs\":") - 1);
    p = ngx_http_engagement_put_uint(p, lc->interval);
    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


/*
 * A recorded heartbeat with a userId and a position: the user's resume
 * position, kept in the resume zone until Redis has it. Not for a user
 * who opted out (optOut in the body, always; Sec-GPC where
 * engagement_opt_out honours it, which made the heartbeat anonymous).
 * No room is counted and logged; the heartbeat is answered as ever.
 */

static void
ngx_http_engagement_heartbeat_position(ngx_http_request_t *r,
    ngx_http_engagement_heartbeat_t *hb)
{
    struct timeval                      tv;
    ngx_http_engagement_main_conf_t    *emcf;
    ngx_http_engagement_resume_conf_t  *rc;

    static ngx_msec_t  full_log;

    if (hb->user_id.len == 0 || hb->position_ms < 0 || hb->ev.opt_out
        || hb->ev.anonymous)
    {
        return;
    }

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);
    rc = emcf->resume;

    if (rc == NULL || rc->sh == NULL) {
        return;
    }

    /* the clock itself, not the worker's cached time: the order of two
     * heartbeats a few ms apart on two workers is the history's order */
    ngx_gettimeofday(&tv);

    if (ngx_http_engagement_resume_put(rc, &hb->user_id, &hb->ev.content_id,
                                       hb->position_ms, hb->duration_ms,
                                       (int64_t) tv.tv_sec * 1000
                                       + tv.tv_usec / 1000)
        == NGX_BUSY
        && ngx_http_engagement_zone_log_due(&full_log))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "resume zone \"" NGX_HTTP_ENGAGEMENT_RESUME_ZONE
                      "\" is full: resume positions are dropped until "
                      "Redis takes the pending ones (engagement_resume_zone "
                      "sets its size)");
    }
}


/* the steps of a heartbeat, in order; each goes on with NGX_DECLINED */

static ngx_int_t
ngx_http_engagement_heartbeat_process(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    void                             *wres;
    ngx_int_t                         rc;
    ngx_http_engagement_live_t        live;
    ngx_http_engagement_heartbeat_t   hb;
    ngx_http_engagement_live_conf_t  *lc;

    lc = ngx_http_engagement_live_lc(r);

    rc = ngx_http_engagement_body_parse(r, elcf,
                                        &ngx_http_engagement_heartbeat_spec,
                                        &hb);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* engagement_user_id: positions go to the authenticated user only */
    rc = ngx_http_engagement_user_bind(r, &hb.user_id, "userId", 1);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_engagement_user_bind(r, &hb.ev.viewer_id, "viewerId", 0);
    }

    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* rate limits (keys may use the heartbeat's ids) */
    ngx_http_engagement_set_ids(r, &hb.ev.content_id, &hb.ev.viewer_id,
                                &hb.ev.session_id);

    rc = ngx_http_engagement_limit_check(r, elcf);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_live_inc(lc, limited);
        return rc;
    }

    /* the token, bots, opt-out: as for a view */
    rc = ngx_http_engagement_guard_check(r, elcf, &hb.ev);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_live_inc(lc, not_counted);
        return rc;
    }

    /* with engagement_heartbeat_record, room in the durable writer first:
     * an accepted heartbeat is never lost (as a view's, a 503 if none) */
    wres = NULL;

    if (elcf->heartbeat_record
        && ngx_http_engagement_record_heartbeat(r, &hb, &wres) == NGX_BUSY)
    {
        ngx_http_engagement_live_inc(lc, full);
        return ngx_http_engagement_unavailable_writer(r, &hb.ev.content_id);
    }

    /* an anonymous session is still one live viewer: only its keyed hash
     * is kept, for two intervals */

    if (hb.state == NGX_HTTP_ENGAGEMENT_ENDED) {
        /* the player ended or the page left: live no longer */
        ngx_http_engagement_live_leave(lc, &hb.ev.content_id,
                                       &hb.ev.session_id, &live);
        rc = NGX_OK;

    } else {
        rc = ngx_http_engagement_live_beat(lc, &hb.ev.content_id,
                                           &hb.ev.session_id, &live);
    }

    if (wres) {
        if (rc == NGX_BUSY) {
            ngx_http_engagement_writer_cancel(wres);

        } else {
            /* counted: the session was live (or left, "ended") */
            ngx_http_engagement_writer_commit_reaction(wres, 1, NULL, NULL);
        }
    }

    if (rc == NGX_BUSY) {
        ngx_http_engagement_live_inc(lc, full);

        if (ngx_http_engagement_zone_log_due(
                                     &ngx_http_engagement_live_full_log))
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "live zone \"" NGX_HTTP_ENGAGEMENT_LIVE_ZONE
                          "\" is full: heartbeats are refused with 503 "
                          "(engagement_live_zone sets its size)");
        }

        ngx_http_engagement_set_outcome(r, "unavailable", "zone_full",
                                        &hb.ev.content_id);

        if (ngx_http_engagement_retry_after(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_engagement_send_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "zone_full", NULL,
                   "no room in the live zone now; retry later");
    }

    ngx_http_engagement_live_inc(lc, accepted);
    ngx_http_engagement_set_outcome(r, "counted", NULL, &hb.ev.content_id);

    ngx_http_engagement_heartbeat_position(r, &hb);

    return ngx_http_engagement_heartbeat_answer(r, lc, &hb.ev.content_id,
                                                &live);
}


static void
ngx_http_engagement_heartbeat_body(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    rc = ngx_http_engagement_heartbeat_process(r, elcf);
    ngx_http_engagement_heartbeat_tally(r);

    ngx_http_finalize_request(r, rc);
}


/*
 * The content id of a live request: the rest of the URI after a prefix
 * location's name ("/engagement/live/abc" -> "abc", *stream set), or the
 * contentId argument. NGX_DECLINED: neither.
 */

static ngx_int_t
ngx_http_engagement_live_id(ngx_http_request_t *r, ngx_str_t *id,
    ngx_uint_t *stream)
{
    *stream = 0;

    if (ngx_http_engagement_uri_rest(r, id) == NGX_OK && id->len) {
        *stream = 1;
        return NGX_OK;
    }

    if (ngx_http_arg(r, (u_char *) "contentId", sizeof("contentId") - 1, id)
        == NGX_OK && id->len)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* GET /engagement/live?contentId=X, or the stream of /engagement/live/X */

ngx_int_t
ngx_http_engagement_live_handler(ngx_http_request_t *r)
{
    u_char                           *p, *body;
    ngx_str_t                         id;
    ngx_uint_t                        stream;
    ngx_http_engagement_live_t        live;
    ngx_http_engagement_live_conf_t  *lc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD",
                   "live counts are read with GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ngx_http_engagement_live_id(r, &id, &stream) != NGX_OK) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "contentId",
                   "is required: /engagement/live/{contentId} (a stream) or "
                   "?contentId= (JSON)");
    }

    if (!ngx_http_engagement_id_valid(id.data, id.len)) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "contentId",
                   "must be " NGX_HTTP_ENGAGEMENT_ID_RULE);
    }

    if (stream && r->method == NGX_HTTP_GET) {

        /* a body still coming would hide the client's leaving from the
         * stream (its reads would go to the body) */
        if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
            r->keepalive = 0;
            return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "invalid_body", NULL,
                       "a live stream request has no body");
        }

        return ngx_http_engagement_sse_start(r, &id);
    }

    lc = ngx_http_engagement_live_lc(r);
    ngx_http_engagement_live_get(lc, &id, &live);

    body = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_LIVE_ANSWER_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{\"contentId\":\"",
                   sizeof("{\"contentId\":\"") - 1);
    p = ngx_cpymem(p, id.data, id.len);
    p = ngx_cpymem(p, "\",\"live\":", sizeof("\",\"live\":") - 1);
    p = ngx_http_engagement_put_uint(p, live.live);
    p = ngx_cpymem(p, ",\"peak\":", sizeof(",\"peak\":") - 1);
    p = ngx_http_engagement_put_uint(p, live.peak);
    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


/* the live zone's figures in the status answer */

#define ngx_http_engagement_live_field(f)                                     \
    offsetof(ngx_http_engagement_live_stats_t, f)

static ngx_http_engagement_stat_row_t  ngx_http_engagement_live_rows[] = {
    { "heartbeats_total", "heartbeats", NULL, "counter",
      "Heartbeat requests received",
      ngx_http_engagement_live_field(heartbeats) },
    { "heartbeat_outcomes_total", "accepted", "accepted", "counter",
      "Heartbeats by outcome: accepted (recorded), invalid (4xx), limited "
      "(429), not_counted (token, bot, opt-out), full (503)",
      ngx_http_engagement_live_field(accepted) },
    { "heartbeat_outcomes_total", "invalid", "invalid", NULL, NULL,
      ngx_http_engagement_live_field(invalid) },
    { "heartbeat_outcomes_total", "limited", "limited", NULL, NULL,
      ngx_http_engagement_live_field(limited) },
    { "heartbeat_outcomes_total", "notCounted", "not_counted", NULL, NULL,
      ngx_http_engagement_live_field(not_counted) },
    { "heartbeat_outcomes_total", "full", "full", NULL, NULL,
      ngx_http_engagement_live_field(full) },
    { "subscribers", "subscribers", NULL, "gauge",
      "Open live streams (Server-Sent Events)",
      ngx_http_engagement_live_field(subscribers) },
    { "streams_total", "streams", NULL, "counter",
      "Live streams opened",
      ngx_http_engagement_live_field(streams) },
    { "pushes_total", "pushes", NULL, "counter",
      "Live stream events sent with changed counts",
      ngx_http_engagement_live_field(pushes) },
    { "skipped_total", "skipped", NULL, "counter",
      "Live stream events left for later: the client had not taken the last",
      ngx_http_engagement_live_field(skipped) },
    { "shared_total", "shared", NULL, "counter",
      "Contents whose live count was sent to Redis (engagement_live_redis)",
      ngx_http_engagement_live_field(shared) },
    { "share_errors_total", "shareErrors", NULL, "counter",
      "Live counts sent to Redis and not answered (an error or no answer)",
      ngx_http_engagement_live_field(share_errors) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


size_t
ngx_http_engagement_live_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    if (emcf->live == NULL
        || ((ngx_http_engagement_live_conf_t *) emcf->live)->sh == NULL)
    {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("live",
                                             ngx_http_engagement_live_rows);
}


u_char *
ngx_http_engagement_live_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_http_engagement_live_conf_t  *lc;

    lc = emcf->live;

    if (lc == NULL || lc->sh == NULL) {
        return p;
    }

    /* the gauge: the sum of the workers' own counts */
    return ngx_http_engagement_stat_rows(p, "live",
               ngx_http_engagement_live_rows,
               ngx_http_engagement_live_stats(lc), json,
               ngx_http_engagement_live_field(subscribers),
               (ngx_atomic_int_t) ngx_http_engagement_live_subscribers(lc));
}
