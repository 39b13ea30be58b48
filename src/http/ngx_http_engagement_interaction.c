
/*
 * Interaction events: POST .../event ("engagement event;") with
 * {"contentId","type":"click","name":"subscribe_button","positionMs":..}.
 * The names are declared by engagement_interaction; an unknown one is a
 * 400 naming "name". An interaction goes through the view path's steps
 * where they make sense: its dimensions are resolved as a view's
 * (ngx_http_engagement_dims.c), then the rate limits, the guard (token,
 * bots, opt-out), the ts window, room in the durable writer (a "click"
 * line with its name), the series store (clicks per content, minute,
 * dimensions and name), and the answer: 202 {"counted":true,...}, or 200
 * with the reason it did not count. Clicks are not deduplicated: the
 * writer's event_id is the requestId, so the sink keeps one row of a
 * retried request.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_dims.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


/*
 * The series store (store/series.c) counts clicks per content, minute,
 * dimensions and name; 0 builds without it.
 */
#ifndef NGX_HTTP_ENGAGEMENT_SERIES
#define NGX_HTTP_ENGAGEMENT_SERIES  1
#endif

#if (NGX_HTTP_ENGAGEMENT_SERIES)
#include "store/ngx_http_engagement_series.h"
#endif


/* an interaction's name: the id rule, shorter (a Redis field, a label) */
#define NGX_HTTP_ENGAGEMENT_INTERACTION_LEN  64

#define NGX_HTTP_ENGAGEMENT_EVENT_ANSWER_LEN                                  \
    (sizeof("{\"counted\":false,\"reason\":\"duplicate_request\","           \
            "\"contentId\":\"\",\"type\":\"click\",\"name\":\"\"}\n")        \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + NGX_HTTP_ENGAGEMENT_INTERACTION_LEN)


static ngx_int_t ngx_http_engagement_interaction_process(
    ngx_http_request_t *r, ngx_http_engagement_loc_conf_t *elcf);
static void ngx_http_engagement_interaction_body(ngx_http_request_t *r);


const ngx_http_engagement_body_spec_t  ngx_http_engagement_interaction_spec = {
    NGX_HTTP_ENGAGEMENT_NO_STAT,       /* counted in the dimensions zone */
    NGX_HTTP_ENGAGEMENT_BODY_INTERACTION,
    NGX_HTTP_POST, "POST", "interaction events are sent with POST",
    ngx_http_engagement_interaction_body,
    ngx_http_engagement_interaction_process,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT
};


static ngx_http_engagement_dims_conf_t *
ngx_http_engagement_interaction_dc(ngx_http_request_t *r)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);

    return emcf->dims;
}


/* engagement_interaction <name> ...; (may be given more than once) */

char *
ngx_http_engagement_interaction_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t                        *value, *s, *names;
    ngx_uint_t                        i, j;
    ngx_http_engagement_dims_conf_t  *dc;

    dc = ngx_http_engagement_dims_conf_get(cf);
    if (dc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (dc->interactions == NULL) {
        dc->interactions = ngx_array_create(cf->pool, 8, sizeof(ngx_str_t));
        if (dc->interactions == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len > NGX_HTTP_ENGAGEMENT_INTERACTION_LEN
            || !ngx_http_engagement_id_valid(value[i].data, value[i].len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid interaction name \"%V\": 1-%d bytes "
                               "of [A-Za-z0-9._:-]", &value[i],
                               NGX_HTTP_ENGAGEMENT_INTERACTION_LEN);
            return NGX_CONF_ERROR;
        }

        names = dc->interactions->elts;

        for (j = 0; j < dc->interactions->nelts; j++) {
            if (names[j].len == value[i].len
                && ngx_strncmp(names[j].data, value[i].data,
                               value[i].len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "interaction \"%V\" is declared twice",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        if (dc->interactions->nelts == NGX_HTTP_ENGAGEMENT_INTERACTIONS_MAX) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "at most %d interactions may be declared",
                               NGX_HTTP_ENGAGEMENT_INTERACTIONS_MAX);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(dc->interactions);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* the declared name's index, or NGX_ERROR */

static ngx_int_t
ngx_http_engagement_interaction_find(ngx_http_engagement_dims_conf_t *dc,
    ngx_str_t *name)
{
    ngx_str_t   *names;
    ngx_uint_t   i;

    if (dc == NULL || dc->interactions == NULL) {
        return NGX_ERROR;
    }

    names = dc->interactions->elts;

    for (i = 0; i < dc->interactions->nelts; i++) {
        if (names[i].len == name->len
            && ngx_strncmp(names[i].data, name->data, name->len) == 0)
        {
            return (ngx_int_t) i;
        }
    }

    return NGX_ERROR;
}


/* a refusal as malformed (4xx but 403 and 429) is counted as invalid */

static void
ngx_http_engagement_interaction_tally(ngx_http_request_t *r)
{
    ngx_http_engagement_dims_conf_t  *dc;

    dc = ngx_http_engagement_interaction_dc(r);

    if (dc == NULL || dc->sh == NULL) {
        return;
    }

    switch (r->headers_out.status) {

    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_NOT_ALLOWED:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        ngx_http_engagement_dims_inc(dc, invalid);
        break;

    default:
        break;
    }
}


ngx_int_t
ngx_http_engagement_interaction_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_http_engagement_loc_conf_t   *elcf;
    ngx_http_engagement_dims_conf_t  *dc;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);
    dc = ngx_http_engagement_interaction_dc(r);

    if (dc && dc->sh) {
        ngx_http_engagement_dims_inc(dc, received);
    }

    rc = ngx_http_engagement_body_read(r, elcf,
                                       &ngx_http_engagement_interaction_spec);

    if (rc != NGX_DONE) {
        /* answered at once: refused before the body, or the body came
         * with the header */
        ngx_http_engagement_interaction_tally(r);
    }

    return rc;
}


/*
 * 202 {"counted":true,"contentId":..,"type":"click","name":..}, or 200
 * {"counted":false,"reason":..,...}; as engagement_answer says (minimal:
 * the outcome alone; none: 204)
 */

static ngx_int_t
ngx_http_engagement_interaction_answer(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_interaction_t *it, const char *reason)
{
    u_char      *p, *body;
    ngx_uint_t   status;

    if (reason) {
        ngx_http_engagement_set_outcome(r, "not_counted", reason,
                                        &it->ev.content_id);
        status = NGX_HTTP_OK;

    } else {
        ngx_http_engagement_set_outcome(r, "counted", NULL,
                                        &it->ev.content_id);
        status = NGX_HTTP_ACCEPTED;
    }

    if (elcf->answer == NGX_HTTP_ENGAGEMENT_ANSWER_NONE) {
        return ngx_http_engagement_send_json(r, NGX_HTTP_NO_CONTENT, NULL, 0);
    }

    body = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_EVENT_ANSWER_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reason) {
        p = ngx_sprintf(body, "{\"counted\":false,\"reason\":\"%s\"", reason);

    } else {
        p = ngx_cpymem(body, "{\"counted\":true",
                       sizeof("{\"counted\":true") - 1);
    }

    if (elcf->answer == NGX_HTTP_ENGAGEMENT_ANSWER_FULL) {
        /* ids and declared names: nothing to escape */
        p = ngx_sprintf(p, ",\"contentId\":\"%V\",\"type\":\"click\","
                        "\"name\":\"%V\"", &it->ev.content_id, &it->name);
    }

    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, status, body, p - body);
}


/*
 * The click in the series store. NGX_BUSY: no room now (the event is
 * refused with 503, so that the client's retry is not counted twice).
 */

static ngx_int_t
ngx_http_engagement_interaction_series(ngx_http_request_t *r,
    ngx_http_engagement_interaction_t *it)
{
#if (NGX_HTTP_ENGAGEMENT_SERIES)
    ngx_http_engagement_series_add_t  a;

    ngx_memzero(&a, sizeof(ngx_http_engagement_series_add_t));

    a.content_id = it->ev.content_id;
    a.channel_id = it->ev.channel_id;
    a.category = it->ev.category;
    a.source = it->ev.source;
    a.device = it->ev.device;
    a.country = it->ev.country;
    a.name = it->name;
    a.when = ngx_time();
    a.clicks = 1;

    return ngx_http_engagement_series_add(&a, r->connection->log);
#else
    (void) r;
    (void) it;

    return NGX_DECLINED;
#endif
}


/* the checks of an interaction's own fields: NGX_DECLINED, or the 400 */

static ngx_int_t
ngx_http_engagement_interaction_check(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_interaction_t *it, ngx_int_t *index)
{
    ngx_int_t    rc;
    const char  *field;

    if (it->type.len
        && !(it->type.len == 5 && ngx_strncmp(it->type.data, "click", 5) == 0))
    {
        ngx_http_engagement_set_outcome(r, "invalid", "type", NULL);
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "type", "must be click");
    }

    *index = ngx_http_engagement_interaction_find(
                 ngx_http_engagement_interaction_dc(r), &it->name);

    if (*index == NGX_ERROR) {
        ngx_http_engagement_set_outcome(r, "invalid", "name", NULL);
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "name",
                   "is not a declared interaction (engagement_interaction)");
    }

    rc = ngx_http_engagement_dims_resolve(r, elcf, &it->ev, &field);

    if (rc == NGX_DECLINED) {
        return ngx_http_engagement_dims_refuse(r, field);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/* the steps of an interaction, in order; each goes on with NGX_DECLINED */

static ngx_int_t
ngx_http_engagement_interaction_process(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    void                               *wev;
    ngx_int_t                           rc, index;
    const char                         *reason;
    ngx_http_engagement_reason_e        late;
    ngx_http_engagement_dims_conf_t    *dc;
    ngx_http_engagement_interaction_t   it;

    dc = ngx_http_engagement_interaction_dc(r);
    index = 0;

    rc = ngx_http_engagement_body_parse(r, elcf,
                                        &ngx_http_engagement_interaction_spec,
                                        &it);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_engagement_interaction_check(r, elcf, &it, &index);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* engagement_user_id: the viewer is the authenticated user */
    rc = ngx_http_engagement_user_bind(r, &it.ev.viewer_id, "viewerId", 1);
    if (rc != NGX_DECLINED) {
        ngx_http_engagement_dims_inc(dc, invalid);
        return rc;
    }

    /* rate limits (keys may use the event's ids) */
    ngx_http_engagement_set_ids(r, &it.ev.content_id, &it.ev.viewer_id,
                                &it.ev.session_id);

    rc = ngx_http_engagement_limit_check(r, elcf);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_dims_inc(dc, limited);
        return rc;
    }

    /* the token, bots, opt-out: as for a view */
    rc = ngx_http_engagement_guard_check(r, elcf, &it.ev);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_dims_inc(dc, not_counted);
        return rc;
    }

    if (it.ev.anonymous) {
        /* an opted-out viewer's id goes nowhere, the durable writer too */
        it.ev.viewer_id.len = 0;
    }

    late = ngx_http_engagement_ts_check(elcf, &it.ev);

    /* the durable writer takes room for the event before it is counted */
    rc = ngx_http_engagement_record_interaction(r, &it, &wev);

    if (rc == NGX_BUSY) {
        ngx_http_engagement_dims_inc(dc, unavailable);
        return ngx_http_engagement_unavailable_writer(r, &it.ev.content_id);
    }

    if (late != NGX_HTTP_ENGAGEMENT_REASON_NONE) {
        /* valid and accepted, not counted: the sink still gets it */
        reason = ngx_http_engagement_reason_name(late);

        if (wev) {
            ngx_http_engagement_writer_commit_reaction(wev, 0, reason, NULL);
        }

        ngx_http_engagement_dims_inc(dc, not_counted);

        return ngx_http_engagement_interaction_answer(r, elcf, &it, reason);
    }

    rc = ngx_http_engagement_interaction_series(r, &it);

    if (rc == NGX_BUSY) {
        if (wev) {
            ngx_http_engagement_writer_cancel(wev);
        }

        ngx_http_engagement_dims_inc(dc, unavailable);
        ngx_http_engagement_set_outcome(r, "unavailable", "zone_full",
                                        &it.ev.content_id);

        if (ngx_http_engagement_retry_after(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_engagement_send_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "zone_full", NULL,
                   "no room to record the event now; retry later");
    }

    /* counted: a click's line counts no view metrics */
    if (wev) {
        ngx_http_engagement_writer_commit_reaction(wev, 1, NULL, NULL);
    }

    ngx_http_engagement_dims_inc(dc, counted);
    ngx_http_engagement_dims_inc(dc, clicks[index]);

    return ngx_http_engagement_interaction_answer(r, elcf, &it, NULL);
}


static void
ngx_http_engagement_interaction_body(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    rc = ngx_http_engagement_interaction_process(r, elcf);
    ngx_http_engagement_interaction_tally(r);

    ngx_http_finalize_request(r, rc);
}


/* the interactions' figures in the status answer */

#define ngx_http_engagement_interaction_field(f)                              \
    offsetof(ngx_http_engagement_dims_stats_t, f)

static ngx_http_engagement_stat_row_t  ngx_http_engagement_interaction_rows[] = {
    { "events_total", "events", NULL, "counter",
      "Interaction events received (POST .../event)",
      ngx_http_engagement_interaction_field(received) },
    { "outcomes_total", "counted", "counted", "counter",
      "Interaction events by outcome: counted, invalid (4xx), limited "
      "(429), not_counted (token, bot, opt-out, ts window), unavailable "
      "(503: the writer's or the series store's room)",
      ngx_http_engagement_interaction_field(counted) },
    { "outcomes_total", "invalid", "invalid", NULL, NULL,
      ngx_http_engagement_interaction_field(invalid) },
    { "outcomes_total", "limited", "limited", NULL, NULL,
      ngx_http_engagement_interaction_field(limited) },
    { "outcomes_total", "notCounted", "not_counted", NULL, NULL,
      ngx_http_engagement_interaction_field(not_counted) },
    { "outcomes_total", "unavailable", "unavailable", NULL, NULL,
      ngx_http_engagement_interaction_field(unavailable) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


#define NGX_HTTP_ENGAGEMENT_CLICKS_HEAD                                       \
    "# HELP nginx_engagement_interaction_clicks_total Counted interaction "   \
    "events by declared name\n"                                               \
    "# TYPE nginx_engagement_interaction_clicks_total counter\n"


size_t
ngx_http_engagement_interaction_status_len(
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_dims_conf_t  *dc;

    dc = emcf->dims;

    if (dc == NULL || dc->sh == NULL || dc->interactions == NULL) {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("interaction",
                                       ngx_http_engagement_interaction_rows)
           + sizeof(NGX_HTTP_ENGAGEMENT_CLICKS_HEAD) + sizeof(",\"clicks\":{}")
           + dc->interactions->nelts
             * (sizeof("nginx_engagement_interaction_clicks_total"
                       "{name=\"\"} \n") + NGX_HTTP_ENGAGEMENT_INTERACTION_LEN
                + NGX_ATOMIC_T_LEN + 8);
}


u_char *
ngx_http_engagement_interaction_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_str_t                        *names;
    ngx_uint_t                        i;
    ngx_http_engagement_dims_conf_t  *dc;

    dc = emcf->dims;

    if (dc == NULL || dc->sh == NULL || dc->interactions == NULL) {
        return p;
    }

    p = ngx_http_engagement_stat_rows(p, "interaction",
                                      ngx_http_engagement_interaction_rows,
                                      &dc->sh->stats, json, (size_t) -1, 0);

    names = dc->interactions->elts;

    if (json) {
        /* inside the group's object: ...,"clicks":{"name":n,...}} */
        p--;
        p = ngx_cpymem(p, ",\"clicks\":{", sizeof(",\"clicks\":{") - 1);

        for (i = 0; i < dc->interactions->nelts; i++) {
            p = ngx_sprintf(p, "%s\"%V\":%uA", i ? "," : "", &names[i],
                            dc->sh->stats.clicks[i]);
        }

        *p++ = '}';
        *p++ = '}';

        return p;
    }

    p = ngx_cpymem(p, NGX_HTTP_ENGAGEMENT_CLICKS_HEAD,
                   sizeof(NGX_HTTP_ENGAGEMENT_CLICKS_HEAD) - 1);

    for (i = 0; i < dc->interactions->nelts; i++) {
        p = ngx_sprintf(p, "nginx_engagement_interaction_clicks_total"
                        "{name=\"%V\"} %uA\n", &names[i],
                        dc->sh->stats.clicks[i]);
    }

    return p;
}
