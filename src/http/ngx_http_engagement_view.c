
/*
 * Endpoints: the view event (method, content type and size checks, body
 * reading, then parse -> policy -> answer) and the summary reads, for one
 * id or a batch. Every answer is JSON, including every refusal.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


static ngx_int_t ngx_http_engagement_view_handler(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);
static void ngx_http_engagement_view_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_engagement_view_process(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);
static ngx_int_t ngx_http_engagement_summary_handler(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);


#define ngx_http_engagement_stat(elcf, field)                                 \
    ngx_http_engagement_inc(                                                  \
        ((ngx_http_engagement_counters_shctx_t *) (elcf)->counters->sh), field)


static ngx_str_t  ngx_http_engagement_json_type =
    ngx_string("application/json");


ngx_int_t
ngx_http_engagement_handler(ngx_http_request_t *r)
{
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    if (elcf->endpoint == NGX_HTTP_ENGAGEMENT_SUMMARY) {
        return ngx_http_engagement_summary_handler(r, elcf);
    }

    return ngx_http_engagement_view_handler(r, elcf);
}


ngx_int_t
ngx_http_engagement_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    return ngx_http_engagement_send(r, status, &ngx_http_engagement_json_type,
                                    body, len);
}


ngx_int_t
ngx_http_engagement_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* copies src as the inside of a JSON string: ASCII only, escaped */

u_char *
ngx_http_engagement_json_escape(u_char *dst, u_char *end, u_char *src,
    size_t len)
{
    u_char         c;
    static u_char  hex[] = "0123456789abcdef";

    while (len-- && dst + 6 < end) {
        c = *src++;

        if (c == '"' || c == '\\') {
            *dst++ = '\\';
            *dst++ = c;

        } else if (c < 0x20 || c >= 0x7f) {
            *dst++ = '\\';
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];

        } else {
            *dst++ = c;
        }
    }

    return dst;
}


ngx_int_t
ngx_http_engagement_send_error_detail(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *message, u_char *detail, size_t detail_len)
{
    u_char  *p, *last, *body;
    size_t   len;

    len = sizeof("{\"error\":\"\",\"field\":\"\",\"message\":\"\","
                 "\"detail\":\"\"}\n")
          + ngx_strlen(error) + ngx_strlen(message)
          + (field ? ngx_strlen(field) : 0) + detail_len * 6;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = body + len;

    p = ngx_sprintf(body, "{\"error\":\"%s\"", error);

    if (field) {
        p = ngx_sprintf(p, ",\"field\":\"%s\"", field);
    }

    p = ngx_sprintf(p, ",\"message\":\"%s\"", message);

    if (detail_len) {
        p = ngx_cpymem(p, ",\"detail\":\"", sizeof(",\"detail\":\"") - 1);
        p = ngx_http_engagement_json_escape(p, last, detail, detail_len);
        *p++ = '"';
    }

    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, status, body, p - body);
}


ngx_int_t
ngx_http_engagement_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *field, const char *message)
{
    return ngx_http_engagement_send_error_detail(r, status, error, field,
                                                 message, NULL, 0);
}


ngx_int_t
ngx_http_engagement_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message)
{
    /* the body is not wanted; reading it keeps the connection usable */
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    return ngx_http_engagement_send_error(r, status, error, NULL, message);
}


ngx_int_t
ngx_http_engagement_method_not_allowed(ngx_http_request_t *r,
    const char *allow, const char *message)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = (u_char *) allow;
    h->value.len = ngx_strlen(allow);

    return ngx_http_engagement_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                      "method_not_allowed", message);
}


ngx_int_t
ngx_http_engagement_json_content_type(ngx_http_request_t *r)
{
    u_char     c;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    if (ct->len < sizeof("application/json") - 1
        || ngx_strncasecmp(ct->data, (u_char *) "application/json",
                           sizeof("application/json") - 1) != 0)
    {
        return 0;
    }

    if (ct->len == sizeof("application/json") - 1) {
        return 1;
    }

    c = ct->data[sizeof("application/json") - 1];

    return (c == ';' || c == ' ' || c == '\t');
}


/* 503 with Retry-After: Redis is needed and cannot be used now */

ngx_int_t
ngx_http_engagement_unavailable(ngx_http_request_t *r, const char *message)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    ngx_str_set(&h->value, "1");

    return ngx_http_engagement_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "backend_unavailable", NULL,
                                          message);
}


static ngx_int_t
ngx_http_engagement_view_handler(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    ngx_int_t  rc;

    ngx_http_engagement_stat(elcf, received);

    if (r->method != NGX_HTTP_POST) {
        ngx_http_engagement_stat(elcf, bad_method);
        ngx_http_engagement_set_outcome(r, "refused", "method", NULL);
        return ngx_http_engagement_method_not_allowed(r, "POST",
                   "view events are sent with POST");
    }

    if (!ngx_http_engagement_json_content_type(r)) {
        ngx_http_engagement_stat(elcf, bad_content_type);
        ngx_http_engagement_set_outcome(r, "refused", "content_type", NULL);
        return ngx_http_engagement_refuse(r,
                   NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                   "Content-Type must be application/json");
    }

    if (r->headers_in.content_length_n > (off_t) elcf->max_body_size) {
        ngx_http_engagement_stat(elcf, too_large);
        ngx_http_engagement_set_outcome(r, "refused", "too_large", NULL);
        return ngx_http_engagement_refuse(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body_too_large",
                   "the body exceeds engagement_max_body_size");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_engagement_view_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_engagement_view_body(ngx_http_request_t *r)
{
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    ngx_http_finalize_request(r, ngx_http_engagement_view_process(r, elcf));
}


static ngx_int_t
ngx_http_engagement_view_process(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    u_char                         *data, *p, *body;
    size_t                          len;
    ngx_int_t                       rc;
    ngx_uint_t                      status;
    const char                     *late;
    void                           *wev;
    ngx_table_elt_t                *h;
    ngx_http_engagement_event_t     ev;
    ngx_http_engagement_error_t     err;
    ngx_http_engagement_outcome_t   out;

    rc = ngx_http_engagement_body_get(r, elcf->max_body_size, &data, &len);

    if (rc == NGX_DECLINED) {
        ngx_http_engagement_stat(elcf, too_large);
        ngx_http_engagement_set_outcome(r, "refused", "too_large", NULL);
        return ngx_http_engagement_send_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body_too_large", NULL,
                   "the body exceeds engagement_max_body_size");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_engagement_event_parse(r->pool, data, len, &ev, &err)
        != NGX_OK)
    {
        ngx_http_engagement_stat(elcf, invalid);
        ngx_http_engagement_set_outcome(r, "invalid",
                                        err.field ? err.field : "body", NULL);

        return ngx_http_engagement_send_error_detail(r, NGX_HTTP_BAD_REQUEST,
                   err.field ? "invalid_field" : "invalid_body", err.field,
                   err.message, err.detail, err.detail_len);
    }

    /* rate limits (keys may use the event's ids) */
    ngx_http_engagement_set_ids(r, &ev.content_id, &ev.viewer_id,
                                &ev.session_id);

    rc = ngx_http_engagement_limit_check(r, elcf);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_stat(elcf, rate_limited);
        return rc;
    }

    /* the view token, bots, opt-out */
    rc = ngx_http_engagement_guard_check(r, elcf, &ev);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ev.anonymous) {
        /* an opted-out viewer's id goes nowhere, the durable writer too */
        ev.viewer_id.len = 0;
    }

    /* the durable writer takes room for the event before it is counted */
    rc = ngx_http_engagement_record_view(r, &ev, &wev);

    if (rc == NGX_BUSY) {
        ngx_http_engagement_stat(elcf, unavailable);
        ngx_http_engagement_set_outcome(r, "unavailable", "writer_full",
                                        &ev.content_id);
        return ngx_http_engagement_unavailable(r, "the durable writer's "
                                               "queue or spool is full; "
                                               "retry later");
    }

    late = ngx_http_engagement_ts_check(elcf, &ev);

    if (late) {
        if (late[0] == 't') {
            ngx_http_engagement_stat(elcf, late_too_old);

        } else {
            ngx_http_engagement_stat(elcf, late_in_future);
        }

        /* valid and accepted, not counted: the sink still gets it */
        ngx_http_engagement_writer_commit(wev, 0, late);

        ngx_http_engagement_set_outcome(r, "not_counted", late,
                                        &ev.content_id);

        body = ngx_pnalloc(r->pool, sizeof("{\"counted\":false,\"reason\":"
                                           "\"in_future\",\"contentId\":"
                                           "\"\"}\n")
                                    + NGX_HTTP_ENGAGEMENT_ID_MAX);
        if (body == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_sprintf(body, "{\"counted\":false,\"reason\":\"%s\","
                        "\"contentId\":\"%V\"}\n", late, &ev.content_id);

        return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
    }

    rc = ngx_http_engagement_policy_apply(r, elcf, &ev, &out);

    if (rc != NGX_OK) {
        ngx_http_engagement_writer_cancel(wev);

    } else {
        ngx_http_engagement_writer_commit(wev, out.counted,
                                          out.counted ? NULL : out.reason);
    }

    if (rc == NGX_BUSY) {
        ngx_http_engagement_stat(elcf, unavailable);
        ngx_http_engagement_set_outcome(r, "unavailable", "zone_full",
                                        &ev.content_id);

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");

        return ngx_http_engagement_send_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE, "zone_full", NULL,
                   "no room to record the event now; retry later");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"counted\":false,\"reason\":\"duplicate_request\","
                 "\"contentId\":\"\",\"metrics\":[\"view\",\"engaged\","
                 "\"replay\"],\"views\":,\"engagedViews\":,\"replays\":}\n")
          + NGX_HTTP_ENGAGEMENT_ID_MAX + 3 * NGX_INT64_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (out.counted) {
        status = NGX_HTTP_ACCEPTED;
        ngx_http_engagement_set_outcome(r, "counted", NULL, &ev.content_id);

        if (out.view) {
            ngx_http_engagement_stat(elcf, counted_views);
        }

        if (out.engaged) {
            ngx_http_engagement_stat(elcf, counted_engaged);
        }

        if (out.replay) {
            ngx_http_engagement_stat(elcf, counted_replays);
        }

        p = ngx_cpymem(body, "{\"counted\":true,\"contentId\":\"",
                       sizeof("{\"counted\":true,\"contentId\":\"") - 1);
        p = ngx_cpymem(p, ev.content_id.data, ev.content_id.len);
        p = ngx_cpymem(p, "\",\"metrics\":[", sizeof("\",\"metrics\":[") - 1);

        if (out.replay) {
            p = ngx_cpymem(p, "\"replay\"", sizeof("\"replay\"") - 1);

        } else if (out.view && out.engaged) {
            p = ngx_cpymem(p, "\"view\",\"engaged\"",
                           sizeof("\"view\",\"engaged\"") - 1);

        } else if (out.view) {
            p = ngx_cpymem(p, "\"view\"", sizeof("\"view\"") - 1);

        } else {
            p = ngx_cpymem(p, "\"engaged\"", sizeof("\"engaged\"") - 1);
        }

        *p++ = ']';

    } else {
        status = NGX_HTTP_OK;
        ngx_http_engagement_set_outcome(r, "not_counted", out.reason,
                                        &ev.content_id);

        if (out.reason[0] == 'b') {
            ngx_http_engagement_stat(elcf, not_counted_below_policy);

        } else if (out.reason[sizeof("duplicate") - 1] == '_') {
            ngx_http_engagement_stat(elcf, not_counted_duplicate_request);

        } else {
            ngx_http_engagement_stat(elcf, not_counted_duplicate);
        }

        p = ngx_cpymem(body, "{\"counted\":false,\"reason\":\"",
                       sizeof("{\"counted\":false,\"reason\":\"") - 1);
        p = ngx_cpymem(p, out.reason, ngx_strlen(out.reason));
        p = ngx_cpymem(p, "\",\"contentId\":\"",
                       sizeof("\",\"contentId\":\"") - 1);
        p = ngx_cpymem(p, ev.content_id.data, ev.content_id.len);
        *p++ = '"';
    }

    /* with Redis, totals not read yet are left out rather than guessed */
    if (out.shown.known) {
        p = ngx_cpymem(p, ",\"views\":", sizeof(",\"views\":") - 1);
        p = ngx_http_engagement_put_uint(p, out.shown.counts.views);
        p = ngx_cpymem(p, ",\"engagedViews\":",
                       sizeof(",\"engagedViews\":") - 1);
        p = ngx_http_engagement_put_uint(p, out.shown.counts.engaged);
        p = ngx_cpymem(p, ",\"replays\":", sizeof(",\"replays\":") - 1);
        p = ngx_http_engagement_put_uint(p, out.shown.counts.replays);
    }

    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, status, body, p - body);
}


/*
 * The body as one piece of memory. NGX_DECLINED: longer than max (chunked
 * bodies have no length up front). Parts that nginx wrote to a temporary
 * file (only when client_body_buffer_size is below the limit) are read.
 */

ngx_int_t
ngx_http_engagement_body_get(ngx_http_request_t *r, size_t max,
    u_char **data, size_t *len)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *data = (u_char *) "";
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size > (off_t) max) {
        return NGX_DECLINED;
    }

    if (size == 0) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && ngx_buf_in_memory(cl->buf)) {
        *data = cl->buf->pos;
        *len = (size_t) size;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;
    *len = (size_t) size;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (b->in_file && b->file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last
                                                    - b->file_pos),
                              b->file_pos);

            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;
        }
    }

    return NGX_OK;
}


/*
 * The content id of a summary request: the rest of the URI after a prefix
 * location's name ("/engagement/summary/abc" -> "abc"), or its last path
 * segment in other locations. An empty rest means the batch form.
 */

static ngx_int_t
ngx_http_engagement_summary_id(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char                    *p, *start, *end;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    start = r->uri.data;
    end = r->uri.data + r->uri.len;

    if (
#if (NGX_PCRE)
        clcf->regex == NULL &&
#endif
        !clcf->exact_match && !clcf->named
        && r->uri.len >= clcf->name.len)
    {
        p = start + clcf->name.len;

        if (p < end && p[-1] != '/') {
            if (*p != '/') {
                return NGX_DECLINED;
            }

            p++;
        }

    } else if (clcf->exact_match) {
        p = end;

    } else {
        for (p = end; p > start && p[-1] != '/'; p--) { /* void */ }
    }

    id->data = p;
    id->len = end - p;

    return NGX_OK;
}


typedef struct {
    ngx_str_t                      id;
    uint64_t                       hash;
    ngx_http_engagement_view_t     view;
    ngx_uint_t                     failed;
} ngx_http_engagement_item_t;


/* a summary waiting for Redis; outlives the request if it is aborted */
typedef struct {
    ngx_http_request_t            *request;     /* NULL: nobody waits */
    ngx_pool_cleanup_t            *cleanup;     /* in the request's pool */
    ngx_http_engagement_zone_t    *zone;
    ngx_uint_t                     batch;
    ngx_uint_t                     n;
    ngx_uint_t                     outstanding;
    ngx_http_engagement_item_t    *items;
} ngx_http_engagement_read_t;


typedef struct {
    ngx_http_engagement_read_t    *read;
    ngx_http_engagement_item_t    *item;
    u_char                         id[NGX_HTTP_ENGAGEMENT_ID_MAX];
    size_t                         id_len;
    uint64_t                       hash;
} ngx_http_engagement_read_call_t;


static u_char *
ngx_http_engagement_summary_item(u_char *p, ngx_http_engagement_zone_t *z,
    ngx_str_t *id, ngx_http_engagement_view_t *v)
{
    p = ngx_sprintf(p, "{\"contentId\":\"%V\",\"views\":%uL,"
                    "\"engagedViews\":%uL,\"replays\":%uL",
                    id, v->counts.views, v->counts.engaged,
                    v->counts.replays);

    if (z->redis) {
        p = ngx_sprintf(p, ",\"uniqueViewers\":%uL,\"pending\":%uL",
                        v->uniques, v->pending);
    }

    if (v->nreactions) {
        p = ngx_http_engagement_reactions_json(p, v->reactions,
                                               v->nreactions);
    }

    *p++ = '}';

    return p;
}


/* ,"likes":n,"reactions":{"like":n,...}: every configured type */

u_char *
ngx_http_engagement_reactions_json(u_char *p, uint64_t *counts, ngx_uint_t n)
{
    uint64_t                          likes;
    ngx_str_t                        *types;
    ngx_uint_t                        i;
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_engagement_module);
    types = emcf->reactions->elts;
    likes = 0;

    for (i = 0; i < n; i++) {
        if (types[i].len == 4 && ngx_strncmp(types[i].data, "like", 4) == 0) {
            likes = counts[i];
        }
    }

    p = ngx_sprintf(p, ",\"likes\":%uL,\"reactions\":{", likes);

    for (i = 0; i < n; i++) {
        p = ngx_sprintf(p, "%s\"%V\":%uL", i ? "," : "", &types[i], counts[i]);
    }

    *p++ = '}';

    return p;
}


#define NGX_HTTP_ENGAGEMENT_ITEM_LEN                                          \
    (sizeof("{\"contentId\":\"\",\"views\":,\"engagedViews\":,"                 \
            "\"replays\":,\"uniqueViewers\":,\"pending\":},") - 1              \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + 5 * NGX_INT64_LEN                         \
     + NGX_HTTP_ENGAGEMENT_REACTIONS_LEN)


static ngx_int_t
ngx_http_engagement_summary_send(ngx_http_request_t *r,
    ngx_http_engagement_zone_t *z, ngx_uint_t batch,
    ngx_http_engagement_item_t *items, ngx_uint_t n)
{
    u_char           *p, *body;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    for (i = 0; i < n; i++) {
        if (items[i].failed) {
            h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            h->hash = 1;
            ngx_str_set(&h->key, "Retry-After");
            ngx_str_set(&h->value, "1");

            return ngx_http_engagement_send_error(r,
                       NGX_HTTP_SERVICE_UNAVAILABLE, "backend_unavailable",
                       NULL, "Redis could not be read; retry later");
        }
    }

    body = ngx_pnalloc(r->pool, sizeof("{\"items\":[]}\n")
                                + n * NGX_HTTP_ENGAGEMENT_ITEM_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body;

    if (batch) {
        p = ngx_cpymem(p, "{\"items\":[", sizeof("{\"items\":[") - 1);
    }

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_engagement_summary_item(p, z, &items[i].id,
                                             &items[i].view);
    }

    if (batch) {
        *p++ = ']';
        *p++ = '}';
    }

    *p++ = '\n';

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


static void
ngx_http_engagement_read_done(ngx_http_engagement_read_t *rd)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = rd->request;

    if (r) {
        /* the request may outlive rd (lingering close, keep-alive) */
        rd->cleanup->handler = NULL;

        c = r->connection;
        rc = ngx_http_engagement_summary_send(r, rd->zone, rd->batch,
                                              rd->items, rd->n);
        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
    }

    if (rd->items && rd->request == NULL) {
        ngx_free(rd->items);
    }

    ngx_free(rd);
}


static void
ngx_http_engagement_read_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_read_call_t  *call = data;

    ngx_int_t                         applied;
    uint64_t                          uniques;
    ngx_str_t                         id;
    ngx_http_engagement_read_t       *rd;
    ngx_http_engagement_counts_t      totals;
    ngx_http_engagement_view_t        view;
    uint64_t                          reactions[NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];
    ngx_http_engagement_counters_shctx_t  *sh;

    rd = call->read;
    sh = rd->zone->sh;

    id.data = call->id;
    id.len = call->id_len;

    if (ngx_http_engagement_reply_totals(reply, &totals, &uniques, &applied,
                                         reactions, rd->zone->nreactions)
        == NGX_OK)
    {
        ngx_http_engagement_counters_cache(rd->zone, &id, call->hash,
                                           &totals, uniques, reactions,
                                           &view);
        ngx_http_engagement_inc(sh, reads_ok);

        if (rd->request && call->item) {
            call->item->view = view;
        }

    } else {
        ngx_http_engagement_inc(sh, reads_failed);

        if (rd->request && call->item) {
            call->item->failed = 1;
        }
    }

    ngx_free(call);

    if (--rd->outstanding == 0) {
        ngx_http_engagement_read_done(rd);
    }
}


static void
ngx_http_engagement_read_cleanup(void *data)
{
    ngx_http_engagement_read_t  *rd = data;

    /* the request is going away before Redis answered */
    rd->request = NULL;
    rd->items = NULL;
}


/*
 * Reads one content's totals from Redis: for the waiting request rd, or,
 * with rd->request NULL, only to refresh the cache in the background.
 */

static ngx_int_t
ngx_http_engagement_read_send(ngx_http_engagement_read_t *rd,
    ngx_http_engagement_item_t *item, ngx_str_t *id, uint64_t hash)
{
    u_char                           *p;
    ngx_uint_t                        i, argc;
    ngx_str_t                        *types;
    size_t                            lens[3 + NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];
    const char                       *argv[3 + NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];
    u_char                            keys[2][sizeof("eng:{c:}:uv")
                                              + NGX_HTTP_ENGAGEMENT_ID_MAX];
    ngx_http_engagement_read_call_t  *call;
    ngx_http_engagement_main_conf_t  *emcf;

    call = ngx_alloc(sizeof(ngx_http_engagement_read_call_t),
                     ngx_cycle->log);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->read = rd;
    call->item = item;
    call->hash = hash;
    call->id_len = id->len;
    ngx_memcpy(call->id, id->data, id->len);

    argv[0] = "2";
    lens[0] = 1;
    p = ngx_sprintf(keys[0], "eng:{c:%V}", id);
    argv[1] = (const char *) keys[0];
    lens[1] = p - keys[0];
    p = ngx_sprintf(keys[1], "eng:{c:%V}:uv", id);
    argv[2] = (const char *) keys[1];
    lens[2] = p - keys[1];
    argc = 3;

    /* the reaction counts come along */
    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_engagement_module);
    types = emcf->reactions ? emcf->reactions->elts : NULL;

    for (i = 0; i < rd->zone->nreactions; i++) {
        argv[argc] = (const char *) types[i].data;
        lens[argc++] = types[i].len;
    }

    if (ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_READ,
                                       ngx_http_engagement_read_reply, call,
                                       (int) argc, argv, lens)
        != NGX_OK)
    {
        ngx_free(call);
        return NGX_ERROR;
    }

    rd->outstanding++;

    return NGX_OK;
}


static void
ngx_http_engagement_refresh(ngx_http_engagement_zone_t *z, ngx_str_t *id,
    uint64_t hash)
{
    ngx_http_engagement_read_t  *rd;

    rd = ngx_calloc(sizeof(ngx_http_engagement_read_t), ngx_cycle->log);
    if (rd == NULL) {
        return;
    }

    rd->zone = z;

    if (ngx_http_engagement_read_send(rd, NULL, id, hash) != NGX_OK) {
        ngx_free(rd);
    }
}


/*
 * Answers from shared memory when it can (local counts, or Redis totals
 * cached by the flush or an earlier read, plus pending local deltas); for
 * content it has never seen with Redis on, it reads Redis without blocking
 * the worker, and the request waits for the reply.
 */

static ngx_int_t
ngx_http_engagement_summary_answer(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_item_t *items,
    ngx_uint_t n, ngx_uint_t batch)
{
    ngx_uint_t                   i, missing;
    ngx_pool_cleanup_t          *cln;
    ngx_http_engagement_zone_t  *z;
    ngx_http_engagement_read_t  *rd;

    z = elcf->counters;
    missing = 0;

    for (i = 0; i < n; i++) {
        items[i].hash = ngx_http_engagement_counters_hash(z, &items[i].id);
        ngx_http_engagement_counters_get(z, &items[i].id, items[i].hash,
                                         &items[i].view);

        if (!items[i].view.known) {
            missing++;

        } else if (items[i].view.refresh
                   && ngx_http_engagement_redis_ready())
        {
            /* stale while revalidating: this answer does not wait */
            ngx_http_engagement_refresh(z, &items[i].id, items[i].hash);
        }
    }

    if (missing == 0) {
        return ngx_http_engagement_summary_send(r, z, batch, items, n);
    }

    if (!ngx_http_engagement_redis_ready()) {
        ngx_http_engagement_inc(
            (ngx_http_engagement_counters_shctx_t *) z->sh, read_unavailable);

        for (i = 0; i < n; i++) {
            items[i].failed = !items[i].view.known;
        }

        return ngx_http_engagement_summary_send(r, z, batch, items, n);
    }

    rd = ngx_calloc(sizeof(ngx_http_engagement_read_t), r->connection->log);
    if (rd == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(rd);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rd->request = r;
    rd->zone = z;
    rd->batch = batch;
    rd->n = n;
    rd->items = items;
    rd->outstanding = 1;     /* held while sending */

    cln->handler = ngx_http_engagement_read_cleanup;
    cln->data = rd;
    rd->cleanup = cln;

    for (i = 0; i < n; i++) {
        if (!items[i].view.known
            && ngx_http_engagement_read_send(rd, &items[i], &items[i].id,
                                             items[i].hash)
               != NGX_OK)
        {
            items[i].failed = 1;
        }
    }

    if (--rd->outstanding == 0) {
        /* nothing could be sent: answer now */
        cln->handler = NULL;
        ngx_free(rd);
        return ngx_http_engagement_summary_send(r, z, batch, items, n);
    }

    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_engagement_summary_handler(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    u_char                      *p, *q, *end, *dst;
    ngx_str_t                    id, ids;
    ngx_uint_t                   n;
    ngx_http_engagement_item_t  *items;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD",
                   "summaries are read with GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    ngx_http_engagement_stat(elcf, summary_requests);
    ngx_http_engagement_set_outcome(r, "read", NULL, NULL);

    if (ngx_http_engagement_summary_id(r, &id) != NGX_OK) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_NOT_FOUND,
                   "not_found", NULL,
                   "use /<location>/<contentId> or /<location>?ids=a,b");
    }

    if (id.len) {
        if (!ngx_http_engagement_id_valid(id.data, id.len)) {
            return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "invalid_field", "contentId",
                       "must be 1-128 bytes of [A-Za-z0-9._:-]");
        }

        items = ngx_pcalloc(r->pool, sizeof(ngx_http_engagement_item_t));
        if (items == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        items[0].id = id;

        return ngx_http_engagement_summary_answer(r, elcf, items, 1, 0);
    }

    if (ngx_http_arg(r, (u_char *) "ids", 3, &ids) != NGX_OK || ids.len == 0) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "ids",
                   "is required: a comma-separated list of content ids");
    }

    /* ids may arrive percent-encoded, commas included */
    dst = ngx_pnalloc(r->pool, ids.len);
    if (dst == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = dst;
    ngx_unescape_uri(&p, &ids.data, ids.len, NGX_UNESCAPE_URI);
    ids.data = dst;
    ids.len = p - dst;

    n = 1;
    for (p = ids.data; p < ids.data + ids.len; p++) {
        if (*p == ',') {
            n++;
        }
    }

    if (n > elcf->batch_max) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "ids",
                   "lists more ids than engagement_batch_max allows");
    }

    items = ngx_pcalloc(r->pool, n * sizeof(ngx_http_engagement_item_t));
    if (items == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    end = ids.data + ids.len;
    n = 0;

    for (q = ids.data; q <= end; q++) {
        id.data = q;

        while (q < end && *q != ',') {
            q++;
        }

        id.len = q - id.data;

        if (!ngx_http_engagement_id_valid(id.data, id.len)) {
            return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "invalid_field", "ids",
                       "each id must be 1-128 bytes of [A-Za-z0-9._:-]");
        }

        items[n++].id = id;
    }

    return ngx_http_engagement_summary_answer(r, elcf, items, n, 1);
}
