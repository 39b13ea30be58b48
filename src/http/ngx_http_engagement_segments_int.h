
/*
 * http/: what the two files of engagement_segments share: a location's
 * configuration (segments_conf.c makes it, segments.c reads it on every
 * request of the location).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_SEGMENTS_INT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_SEGMENTS_INT_H_INCLUDED_


#include "ngx_http_engagement_module.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_ENGAGEMENT_SEGMENTS_IDLE     (10 * 60 * 1000)   /* ms */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_SESSION  "$arg_es"
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_TOKEN    "$arg_et"


/* a location's engagement_segments */
typedef struct {
    ngx_http_complex_value_t     *content;
    ngx_http_complex_value_t     *session;
    ngx_http_complex_value_t     *token;
    ngx_msec_t                    duration;
    ngx_msec_t                    idle;
    size_t                        bitrate;     /* bits/s of MP4 files */
    ngx_str_t                     zone;        /* counters zone= */
    ngx_str_t                     dedupe;      /* dedupe zone= */
} ngx_http_engagement_segments_loc_t;


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_SEGMENTS_INT_H_INCLUDED_ */
