
/*
 * input/ inside: the JSON parser as the events use it. A body is checked
 * whole (strict RFC 8259) and the values of the top-level keys a caller
 * asks for are handed back; everything else is only checked. Not for use
 * outside input/: the other folders get events, not JSON.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_JSON_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_JSON_H_INCLUDED_


#include "input/ngx_http_engagement_input.h"


/* the most top-level keys one parse hands back */
#define NGX_HTTP_ENGAGEMENT_JSON_FIELDS     16


typedef enum {
    NGX_HTTP_ENGAGEMENT_JV_ABSENT = 0,
    NGX_HTTP_ENGAGEMENT_JV_STRING,
    NGX_HTTP_ENGAGEMENT_JV_INTEGER,
    NGX_HTTP_ENGAGEMENT_JV_REAL,
    NGX_HTTP_ENGAGEMENT_JV_TRUE,
    NGX_HTTP_ENGAGEMENT_JV_FALSE,
    NGX_HTTP_ENGAGEMENT_JV_NULL,
    NGX_HTTP_ENGAGEMENT_JV_OBJECT,
    NGX_HTTP_ENGAGEMENT_JV_ARRAY
} ngx_http_engagement_jv_type_e;


/* the value of one wanted key: a string, an integer, or only its type */
typedef struct {
    ngx_http_engagement_jv_type_e   type;
    ngx_str_t                       str;
    int64_t                         num;
} ngx_http_engagement_jv_t;


/* a top-level key whose value is wanted, with its hash */
typedef struct {
    ngx_str_t                       name;
    uint32_t                        hash;
} ngx_http_engagement_json_key_t;


uint32_t ngx_http_engagement_json_hash(const u_char *p, size_t len);
ngx_int_t ngx_http_engagement_json_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_json_key_t *keys, ngx_uint_t nkeys,
    ngx_http_engagement_jv_t *vals, ngx_http_engagement_error_t *err);


#endif /* _NGX_HTTP_ENGAGEMENT_JSON_H_INCLUDED_ */
