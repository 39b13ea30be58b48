
/*
 * The content handler's dispatch and what every endpoint answers with:
 * JSON bodies (errors included), refusals that keep the connection
 * usable, Retry-After, and the reading of a JSON request body with the
 * checks before it (method, Content-Type, size).
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "http/ngx_http_engagement_http.h"


static ngx_int_t ngx_http_engagement_body_get(ngx_http_request_t *r,
    size_t max, u_char **data, size_t *len);


/*
 * A view event's body that came whole with the header, for the
 * spec->process that body_read() calls at once (never kept past that
 * call): it is parsed where it lies, and nginx only steps over it
 * (discards it) rather than copying it into a request body of its own.
 */
static ngx_http_request_t  *ngx_http_engagement_preread_r;
static ngx_str_t            ngx_http_engagement_preread;


static ngx_str_t  ngx_http_engagement_json_type =
    ngx_string("application/json");

static const char  ngx_http_engagement_too_large[] =
    "the body exceeds engagement_max_body_size";


/*
 * The content handler of every endpoint but status and health (module.c
 * sets theirs): view events, summaries, likes and the reaction state.
 */

ngx_int_t
ngx_http_engagement_handler(ngx_http_request_t *r)
{
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    switch (elcf->endpoint) {

    case NGX_HTTP_ENGAGEMENT_SUMMARY:
        return ngx_http_engagement_read_only(r, elcf,
                                             "summaries are read with GET",
                                             ngx_http_engagement_summary_read);

    case NGX_HTTP_ENGAGEMENT_STATE:
        return ngx_http_engagement_read_only(r, elcf,
                                             "the state is read with GET",
                                             ngx_http_engagement_state_read);

    case NGX_HTTP_ENGAGEMENT_LIKE:
        return ngx_http_engagement_body_read(r, elcf,
                                            &ngx_http_engagement_reaction_spec);

    default:
        return ngx_http_engagement_body_read(r, elcf,
                                             &ngx_http_engagement_view_spec);
    }
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
    size_t   len, field_len, message_len;

    /* the message and field are ours, escaped all the same */
    field_len = field ? ngx_strlen(field) : 0;
    message_len = ngx_strlen(message);

    len = sizeof("{\"error\":\"\",\"field\":\"\",\"message\":\"\","
                 "\"detail\":\"\"}\n")
          + ngx_strlen(error) + (message_len + field_len + detail_len) * 6;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = body + len;

    p = ngx_sprintf(body, "{\"error\":\"%s\"", error);

    if (field) {
        p = ngx_cpymem(p, ",\"field\":\"", sizeof(",\"field\":\"") - 1);
        p = ngx_http_engagement_json_escape(p, last, (u_char *) field,
                                            field_len);
        *p++ = '"';
    }

    p = ngx_cpymem(p, ",\"message\":\"", sizeof(",\"message\":\"") - 1);
    p = ngx_http_engagement_json_escape(p, last, (u_char *) message,
                                        message_len);
    *p++ = '"';

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


/* GET or HEAD only, the body (if any) discarded; then the handler */

ngx_int_t
ngx_http_engagement_read_only(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, const char *message,
    ngx_http_engagement_read_pt handler)
{
    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD",
                                                      message);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    return handler(r, elcf);
}


/*
 * "application/json" in lower case, and what folds a byte to it: 0x20
 * turns an upper-case letter into its lower case and nothing else into a
 * letter; the '/' must be itself.
 */
static const u_char  ngx_http_engagement_json_type_lc[16] = {
    'a', 'p', 'p', 'l', 'i', 'c', 'a', 't',
    'i', 'o', 'n', '/', 'j', 's', 'o', 'n'
};

static const u_char  ngx_http_engagement_json_type_fold[16] = {
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x00, 0x20, 0x20, 0x20, 0x20
};


/* application/json in any case, with parameters (charset) or none */

ngx_int_t
ngx_http_engagement_json_content_type(ngx_http_request_t *r)
{
    u_char     *p, *end;
    uint64_t    w[2], fold[2], lc[2];
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    ct = &r->headers_in.content_type->value;

    if (ct->len < sizeof(ngx_http_engagement_json_type_lc)) {
        return 0;
    }

    /* two words compared, case folded, rather than byte by byte */
    ngx_memcpy(w, ct->data, sizeof(w));
    ngx_memcpy(fold, ngx_http_engagement_json_type_fold, sizeof(fold));
    ngx_memcpy(lc, ngx_http_engagement_json_type_lc, sizeof(lc));

    if (((w[0] | fold[0]) ^ lc[0]) | ((w[1] | fold[1]) ^ lc[1])) {
        return 0;
    }

    /* after the type, only whitespace, then parameters or the end */
    p = ct->data + sizeof(ngx_http_engagement_json_type_lc);
    end = ct->data + ct->len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    return (p == end || *p == ';');
}


/* Retry-After: seconds; NGX_ERROR: no memory */

ngx_int_t
ngx_http_engagement_retry_after(ngx_http_request_t *r, ngx_uint_t seconds)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%ui", seconds) - p;

    return NGX_OK;
}


/* 503 with Retry-After: Redis is needed and cannot be used now */

ngx_int_t
ngx_http_engagement_unavailable(ngx_http_request_t *r, const char *message)
{
    if (ngx_http_engagement_retry_after(r, 1) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_engagement_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "backend_unavailable", NULL,
                                          message);
}


/* 503: the durable writer has no room for the event's line */

ngx_int_t
ngx_http_engagement_unavailable_writer(ngx_http_request_t *r,
    ngx_str_t *content_id)
{
    ngx_http_engagement_set_outcome(r, "unavailable", "writer_full",
                                    content_id);

    return ngx_http_engagement_unavailable(r, "the durable writer's queue or "
                                           "spool is full; retry later");
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


static void
ngx_http_engagement_body_stat(ngx_http_engagement_loc_conf_t *elcf,
    size_t stat)
{
    if (stat != NGX_HTTP_ENGAGEMENT_NO_STAT) {
        ngx_http_engagement_stat_at(elcf, stat);
    }
}


/*
 * Whether the whole body (by its Content-Length) came in the buffer that
 * holds the header: HTTP/1, the main request, nothing read or discarded
 * yet, no temporary file asked for, no $request_body* in use, and nothing
 * that may pass the request on with its body afterwards (error_page,
 * post_action).
 */

static ngx_uint_t
ngx_http_engagement_body_preread(ngx_http_request_t *r)
{
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_engagement_main_conf_t  *emcf;

    if (r != r->main
        || r->http_version > NGX_HTTP_VERSION_11
        || r->request_body
        || r->discard_body
        || r->request_body_in_file_only
        || r->headers_in.chunked
        || r->headers_in.content_length_n <= 0
        || r->header_in->last - r->header_in->pos
           < r->headers_in.content_length_n)
    {
        return 0;
    }

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    return !emcf->body_vars
           && clcf->error_pages == NULL
           && clcf->post_action.data == NULL;
}


/*
 * The body is in the header's buffer: nginx steps over it (the discard
 * finds it all there and returns at once; the bytes stay in place for the
 * request's life), and the event is processed now, its answer returned
 * to the content phase, which finalizes the request once.
 */

static ngx_int_t
ngx_http_engagement_body_in_header(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    const ngx_http_engagement_body_spec_t *spec)
{
    ngx_int_t  rc;
    ngx_str_t  body;

    body.data = r->header_in->pos;
    body.len = (size_t) r->headers_in.content_length_n;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_engagement_preread_r = r;
    ngx_http_engagement_preread = body;

    rc = spec->process(r, elcf);

    ngx_http_engagement_preread_r = NULL;

    return rc;
}


/*
 * The checks before a JSON body is read (method, Content-Type, declared
 * length), then the read: spec->handler runs when the body is in.
 */

ngx_int_t
ngx_http_engagement_body_read(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    const ngx_http_engagement_body_spec_t *spec)
{
    ngx_int_t  rc;

    ngx_http_engagement_body_stat(elcf, spec->received);

    if (!(r->method & spec->methods)) {
        ngx_http_engagement_body_stat(elcf, spec->bad_method);
        ngx_http_engagement_set_outcome(r, "refused", "method", NULL);
        return ngx_http_engagement_method_not_allowed(r, spec->allow,
                                                      spec->method_message);
    }

    if (!ngx_http_engagement_json_content_type(r)) {
        ngx_http_engagement_body_stat(elcf, spec->bad_content_type);
        ngx_http_engagement_set_outcome(r, "refused", "content_type", NULL);
        return ngx_http_engagement_refuse(r,
                   NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                   "Content-Type must be application/json");
    }

    if (r->headers_in.content_length_n > (off_t) elcf->max_body_size) {
        ngx_http_engagement_body_stat(elcf, spec->too_large);
        ngx_http_engagement_set_outcome(r, "refused", "too_large", NULL);
        return ngx_http_engagement_refuse(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body_too_large",
                   ngx_http_engagement_too_large);
    }

    if (spec->process && ngx_http_engagement_body_preread(r)) {
        return ngx_http_engagement_body_in_header(r, elcf, spec);
    }

    rc = ngx_http_read_client_request_body(r, spec->handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * The body that was read, parsed into *parsed (an event or a reaction, as
 * spec->body says): NGX_DECLINED, or the answer sent (413, 400).
 */

ngx_int_t
ngx_http_engagement_body_parse(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    const ngx_http_engagement_body_spec_t *spec, void *parsed)
{
    u_char                       *data;
    size_t                        len;
    ngx_int_t                     rc;
    ngx_http_engagement_error_t   err;

    rc = ngx_http_engagement_body_get(r, elcf->max_body_size, &data, &len);

    if (rc == NGX_DECLINED) {
        ngx_http_engagement_body_stat(elcf, spec->too_large_read);
        ngx_http_engagement_set_outcome(r, "refused", "too_large", NULL);
        return ngx_http_engagement_send_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body_too_large", NULL,
                   ngx_http_engagement_too_large);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (spec->body == NGX_HTTP_ENGAGEMENT_BODY_REACTION) {
        rc = ngx_http_engagement_reaction_parse(r->pool, data, len, parsed,
                                                &err);

    } else if (spec->body == NGX_HTTP_ENGAGEMENT_BODY_INTERACTION) {
        rc = ngx_http_engagement_interaction_parse(r->pool, data, len, parsed,
                                                   &err);

    } else if (spec->body == NGX_HTTP_ENGAGEMENT_BODY_HEARTBEAT) {
        rc = ngx_http_engagement_heartbeat_parse(r->pool, data, len, parsed,
                                                 &err);

    } else {
        rc = ngx_http_engagement_event_parse(r->pool, data, len, parsed, &err);
    }

    if (rc == NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_http_engagement_body_stat(elcf, spec->invalid);
    ngx_http_engagement_set_outcome(r, "invalid",
                                    err.field ? err.field : "body", NULL);

    return ngx_http_engagement_send_error_detail(r, NGX_HTTP_BAD_REQUEST,
               err.field ? "invalid_field" : "invalid_body", err.field,
               err.message, err.detail, err.detail_len);
}


/*
 * The body as one piece of memory. NGX_DECLINED: longer than max (chunked
 * bodies have no length up front). Parts that nginx wrote to a temporary
 * file (only when client_body_buffer_size is below the limit) are read.
 */

static ngx_int_t
ngx_http_engagement_body_get(ngx_http_request_t *r, size_t max,
    u_char **data, size_t *len)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (ngx_http_engagement_preread_r == r) {
        ngx_http_engagement_preread_r = NULL;
        *data = ngx_http_engagement_preread.data;
        *len = ngx_http_engagement_preread.len;
        return NGX_OK;
    }

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
 * The rest of the URI after a plain prefix location's name, past one '/'
 * between them ("/engagement/summary/abc" in "location /engagement/summary"
 * -> "abc"; the URI itself -> ""). NGX_DECLINED: not a plain prefix
 * location (regex, exact, named); NGX_ERROR: the URI goes on without a
 * '/' ("/engagement/summaryx").
 */

ngx_int_t
ngx_http_engagement_uri_rest(ngx_http_request_t *r, ngx_str_t *rest)
{
    u_char                    *p, *end;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (
#if (NGX_PCRE)
        clcf->regex != NULL ||
#endif
        clcf->exact_match || clcf->named || r->uri.len < clcf->name.len)
    {
        return NGX_DECLINED;
    }

    p = r->uri.data + clcf->name.len;
    end = r->uri.data + r->uri.len;

    if (p < end && p[-1] != '/') {
        if (*p != '/') {
            return NGX_ERROR;
        }

        p++;
    }

    rest->data = p;
    rest->len = end - p;

    return NGX_OK;
}
