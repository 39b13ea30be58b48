
/*
 * http/: the endpoints. The view, summary, reaction, state, status and
 * health handlers, the helpers every answer goes through, and the
 * variables the access log can use.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_HTTP_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_HTTP_H_INCLUDED_


#include "ngx_http_engagement_module.h"


/* handler.c */
ngx_int_t ngx_http_engagement_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);
ngx_int_t ngx_http_engagement_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_engagement_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *message);
u_char *ngx_http_engagement_json_escape(u_char *dst, u_char *end,
    u_char *src, size_t len);
u_char *ngx_http_engagement_reactions_json(u_char *p, uint64_t *counts,
    ngx_uint_t n);
ngx_int_t ngx_http_engagement_body_get(ngx_http_request_t *r, size_t max,
    u_char **data, size_t *len);
ngx_int_t ngx_http_engagement_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message);
ngx_int_t ngx_http_engagement_method_not_allowed(ngx_http_request_t *r,
    const char *allow, const char *message);
ngx_int_t ngx_http_engagement_json_content_type(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_send_error_detail(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *message, u_char *detail, size_t detail_len);
ngx_int_t ngx_http_engagement_unavailable(ngx_http_request_t *r,
    const char *message);

/* reaction.c */
ngx_int_t ngx_http_engagement_reaction_handler(ngx_http_request_t *r);

/* status.c */
ngx_int_t ngx_http_engagement_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_health_handler(ngx_http_request_t *r);

/* variables.c: what the access log can say about a request */
ngx_int_t ngx_http_engagement_add_variables(ngx_conf_t *cf);
void ngx_http_engagement_set_outcome(ngx_http_request_t *r,
    const char *outcome, const char *reason, ngx_str_t *content_id);
void ngx_http_engagement_set_ids(ngx_http_request_t *r,
    ngx_str_t *content_id, ngx_str_t *viewer_id, ngx_str_t *session_id);


#endif /* _NGX_HTTP_ENGAGEMENT_HTTP_H_INCLUDED_ */
