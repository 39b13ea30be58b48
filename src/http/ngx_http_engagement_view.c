
/*
 * The view endpoint: a view event goes through its steps in order (body,
 * rate limits, the guard, room in the durable writer, the ts window, the
 * policy) and is answered with what it counted or why not.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_series.h"
#include "store/ngx_http_engagement_trend.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


/* the longest answer: every part at its longest */
#define NGX_HTTP_ENGAGEMENT_VIEW_ANSWER_LEN                                   \
    (sizeof("{\"counted\":false,\"reason\":\"duplicate_request\","           \
            "\"contentId\":\"\",\"metrics\":[\"view\",\"engaged\","           \
            "\"replay\"],\"views\":,\"engagedViews\":,\"replays\":}\n")       \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + 3 * NGX_INT64_LEN)


static ngx_int_t ngx_http_engagement_view_process(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);
static void ngx_http_engagement_view_body(ngx_http_request_t *r);


const ngx_http_engagement_body_spec_t  ngx_http_engagement_view_spec = {
    ngx_http_engagement_stat_field(received),
    NGX_HTTP_ENGAGEMENT_BODY_EVENT,
    NGX_HTTP_POST, "POST", "view events are sent with POST",
    ngx_http_engagement_view_body,
    ngx_http_engagement_view_process,
    ngx_http_engagement_stat_field(bad_method),
    ngx_http_engagement_stat_field(bad_content_type),
    ngx_http_engagement_stat_field(too_large),
    ngx_http_engagement_stat_field(too_large),
    ngx_http_engagement_stat_field(invalid)
};


/* rate limits, then the guard: NGX_DECLINED, or the answer sent */

static ngx_int_t
ngx_http_engagement_view_protect(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev)
{
    ngx_int_t  rc;

    /* engagement_user_id: the viewer is the authenticated user */
    rc = ngx_http_engagement_user_bind(r, &ev->viewer_id, "viewerId", 1);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_stat(elcf, invalid);
        return rc;
    }

    /* rate limits (keys may use the event's ids) */
    ngx_http_engagement_set_ids(r, &ev->content_id, &ev->viewer_id,
                                &ev->session_id);

    rc = ngx_http_engagement_limit_check(r, elcf);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_stat(elcf, rate_limited);
        return rc;
    }

    /* the view token, bots, opt-out */
    rc = ngx_http_engagement_guard_check(r, elcf, ev);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ev->anonymous) {
        /* an opted-out viewer's id goes nowhere, the durable writer too */
        ev->viewer_id.len = 0;
    }

    return NGX_DECLINED;
}


/* room in the durable writer: NGX_DECLINED, or the 503 sent */

static ngx_int_t
ngx_http_engagement_view_reserve(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    void **wev)
{
    ngx_int_t  rc;

    if (!ngx_http_engagement_writer_enabled()) {
        /* no durable writer: no call to make a record for it */
        *wev = NULL;
        return NGX_DECLINED;
    }

    /* the durable writer takes room for the event before it is counted */
    rc = ngx_http_engagement_record_view(r, ev, wev);

    if (rc == NGX_BUSY) {
        ngx_http_engagement_stat(elcf, unavailable);
        return ngx_http_engagement_unavailable_writer(r, &ev->content_id);
    }

    return NGX_DECLINED;
}


/*
 * The ts window, then the policy; the writer's line is committed with
 * the outcome, or cancelled. NGX_DECLINED: *out is to be answered.
 */

static ngx_int_t
ngx_http_engagement_view_count(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    void *wev, ngx_http_engagement_outcome_t *out)
{
    ngx_int_t                     rc;
    ngx_http_engagement_reason_e  late;

    late = ngx_http_engagement_ts_check(elcf, ev);

    if (late != NGX_HTTP_ENGAGEMENT_REASON_NONE) {
        /* valid and accepted, not counted: the sink still gets it */
        ngx_memzero(out, sizeof(ngx_http_engagement_outcome_t));
        out->reason = late;
        rc = NGX_OK;

    } else {
        /* global dedupe: the line goes with the view that waits */
        rc = ngx_http_engagement_policy_apply(r, elcf, ev, &wev, out);
    }

    if (wev == NULL || (rc == NGX_OK && out->pending)) {
        /* no durable writer, or the line waits with the view */

    } else if (rc != NGX_OK) {
        ngx_http_engagement_writer_cancel(wev);

    } else {
        ngx_http_engagement_writer_commit(wev,
                              ngx_http_engagement_record_metrics(out),
                              ngx_http_engagement_reason_name(out->reason));
    }

    if (rc == NGX_BUSY) {
        ngx_http_engagement_stat(elcf, unavailable);
        ngx_http_engagement_set_outcome(r, "unavailable", "zone_full",
                                        &ev->content_id);

        if (ngx_http_engagement_retry_after(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_engagement_send_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "zone_full", NULL,
                   "no room to record the event now; retry later");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/* ,"metrics":[...]: what a counted event counted */

static u_char *
ngx_http_engagement_view_metrics(u_char *p, ngx_http_engagement_outcome_t *out)
{
    p = ngx_cpymem(p, ",\"metrics\":[", sizeof(",\"metrics\":[") - 1);

    if (out->replay) {
        p = ngx_cpymem(p, "\"replay\"", sizeof("\"replay\"") - 1);

    } else if (out->view && out->engaged) {
        p = ngx_cpymem(p, "\"view\",\"engaged\"",
                       sizeof("\"view\",\"engaged\"") - 1);

    } else if (out->view) {
        p = ngx_cpymem(p, "\"view\"", sizeof("\"view\"") - 1);

    } else {
        p = ngx_cpymem(p, "\"engaged\"", sizeof("\"engaged\"") - 1);
    }

    *p++ = ']';

    return p;
}


/* the figures and the access log's outcome of an event; its status */

static ngx_uint_t
ngx_http_engagement_view_tally(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_outcome_t *out)
{
    const ngx_http_engagement_reason_t  *reason;

    if (out->pending) {
        /* global dedupe: Redis decides, then it counts or not */
        ngx_http_engagement_set_outcome(r, "pending", NULL, &ev->content_id);
        return NGX_HTTP_ACCEPTED;
    }

    if (out->counted) {
        ngx_http_engagement_set_outcome(r, "counted", NULL, &ev->content_id);

        if (out->view) {
            ngx_http_engagement_stat(elcf, counted_views);
            ngx_http_engagement_trend_view(&ev->content_id, &ev->category);
        }

        if (out->engaged) {
            ngx_http_engagement_stat(elcf, counted_engaged);
        }

        if (out->replay) {
            ngx_http_engagement_stat(elcf, counted_replays);
        }

        return NGX_HTTP_ACCEPTED;
    }

    reason = &ngx_http_engagement_reasons[out->reason];

    ngx_http_engagement_set_outcome(r, "not_counted",
                                  ngx_http_engagement_reason_name(out->reason),
                                  &ev->content_id);
    ngx_http_engagement_stat_at(elcf, reason->stat);

    return NGX_HTTP_OK;
}


/*
 * The answer, as engagement_answer says: full (the outcome, the content,
 * what it counted, the totals when known), minimal (the outcome alone) or
 * none (204: a beacon's answer is never read).
 */

static ngx_int_t
ngx_http_engagement_view_answer(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_outcome_t *out)
{
    u_char           *p, *body;
    ngx_uint_t        status, full;
    const ngx_str_t  *name;

    status = ngx_http_engagement_view_tally(r, elcf, ev, out);

    if (elcf->answer == NGX_HTTP_ENGAGEMENT_ANSWER_NONE) {
        return ngx_http_engagement_send_json(r, NGX_HTTP_NO_CONTENT, NULL, 0);
    }

    full = (elcf->answer == NGX_HTTP_ENGAGEMENT_ANSWER_FULL);

    body = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_VIEW_ANSWER_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (out->counted) {
        p = ngx_cpymem(body, "{\"counted\":true",
                       sizeof("{\"counted\":true") - 1);

    } else if (out->pending) {
        p = ngx_cpymem(body, "{\"counted\":false,\"reason\":\"pending\"",
                       sizeof("{\"counted\":false,\"reason\":\"pending\"")
                       - 1);

    } else {
        name = &ngx_http_engagement_reasons[out->reason].name;

        p = ngx_cpymem(body, "{\"counted\":false,\"reason\":\"",
                       sizeof("{\"counted\":false,\"reason\":\"") - 1);
        p = ngx_cpymem(p, name->data, name->len);
        *p++ = '"';
    }

    if (full) {
        p = ngx_cpymem(p, ",\"contentId\":\"",
                       sizeof(",\"contentId\":\"") - 1);
        p = ngx_http_engagement_cpy_short(p, ev->content_id.data,
                                          ev->content_id.len);
        *p++ = '"';

        if (out->counted) {
            p = ngx_http_engagement_view_metrics(p, out);
        }
    }

    /* with Redis, totals not read yet are left out rather than guessed */
    if (full && out->shown.known) {
        p = ngx_cpymem(p, ",\"views\":", sizeof(",\"views\":") - 1);
        p = ngx_http_engagement_put_uint(p, out->shown.counts.views);
        p = ngx_cpymem(p, ",\"engagedViews\":",
                       sizeof(",\"engagedViews\":") - 1);
        p = ngx_http_engagement_put_uint(p, out->shown.counts.engaged);
        p = ngx_cpymem(p, ",\"replays\":", sizeof(",\"replays\":") - 1);
        p = ngx_http_engagement_put_uint(p, out->shown.counts.replays);
    }

    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, status, body, p - body);
}


/* the steps of a view event, in order; each goes on with NGX_DECLINED */

static ngx_int_t
ngx_http_engagement_view_process(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    void                           *wev;
    ngx_int_t                       rc;
    const char                     *field;
    ngx_http_engagement_event_t     ev;
    ngx_http_engagement_outcome_t   out;

    rc = ngx_http_engagement_body_parse(r, elcf,
                                        &ngx_http_engagement_view_spec, &ev);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* the dimensions: closed sets, the configuration's, the bound */
    rc = ngx_http_engagement_dims_resolve(r, elcf, &ev, &field);

    if (rc == NGX_DECLINED) {
        ngx_http_engagement_stat(elcf, invalid);
        return ngx_http_engagement_dims_refuse(r, field);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_engagement_view_protect(r, elcf, &ev);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_engagement_view_reserve(r, elcf, &ev, &wev);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_engagement_view_count(r, elcf, &ev, wev, &out);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (out.counted) {
        /* by minute and dimension; a full series zone refuses nothing */
        (void) ngx_http_engagement_series_view(&ev, out.view, out.engaged,
                                               out.replay,
                                               r->connection->log);
    }

    return ngx_http_engagement_view_answer(r, elcf, &ev, &out);
}


static void
ngx_http_engagement_view_body(ngx_http_request_t *r)
{
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    ngx_http_finalize_request(r, ngx_http_engagement_view_process(r, elcf));
}
