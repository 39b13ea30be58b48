
/*
 * input/: the analytics query string (GET /engagement/analytics?...),
 * parsed and checked by a pure function of the query and the current
 * time: nothing here knows of zones, sockets or requests (fuzzed by
 * fuzz/fuzz_analytics.c).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_QUERY_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_QUERY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


/* at most this many points per series (written plain: messages say it) */
#define NGX_HTTP_ENGAGEMENT_AQ_POINTS_MAX  1500
/* at most this many metrics in one metric= list */
#define NGX_HTTP_ENGAGEMENT_AQ_METRICS_MAX 8
/* an id (contentId, channelId, category), as the event's id rule */
#define NGX_HTTP_ENGAGEMENT_AQ_ID_MAX      128
/* an interaction's name in metric=click:<name> (engagement_interaction's
 * rule: 1-64 bytes of [A-Za-z0-9._:-]) */
#define NGX_HTTP_ENGAGEMENT_AQ_NAME_MAX    64
/* the longest metric: click:<name> */
#define NGX_HTTP_ENGAGEMENT_AQ_METRIC_LEN                                    \
    (sizeof("click:") - 1 + NGX_HTTP_ENGAGEMENT_AQ_NAME_MAX)

/* how long Redis keeps each step's buckets (s): the flush's bucket TTLs */
#define NGX_HTTP_ENGAGEMENT_AQ_KEEP_MINUTE 691200
#define NGX_HTTP_ENGAGEMENT_AQ_KEEP_HOUR   34560000
#define NGX_HTTP_ENGAGEMENT_AQ_KEEP_DAY    95040000


typedef enum {
    NGX_HTTP_ENGAGEMENT_AQ_CONTENT = 0,
    NGX_HTTP_ENGAGEMENT_AQ_CHANNEL,
    NGX_HTTP_ENGAGEMENT_AQ_CATEGORY,
    NGX_HTTP_ENGAGEMENT_AQ_ALL
} ngx_http_engagement_aq_scope_e;


typedef enum {
    NGX_HTTP_ENGAGEMENT_AQ_MINUTE = 0,
    NGX_HTTP_ENGAGEMENT_AQ_HOUR,
    NGX_HTTP_ENGAGEMENT_AQ_DAY
} ngx_http_engagement_aq_step_e;


typedef enum {
    NGX_HTTP_ENGAGEMENT_AQ_BY_NONE = 0,
    NGX_HTTP_ENGAGEMENT_AQ_BY_COUNTRY,
    NGX_HTTP_ENGAGEMENT_AQ_BY_DEVICE,
    NGX_HTTP_ENGAGEMENT_AQ_BY_SOURCE,
    NGX_HTTP_ENGAGEMENT_AQ_BY_CATEGORY
} ngx_http_engagement_aq_by_e;


/* a parsed query: everything copied in, nothing points into the input */
typedef struct {
    ngx_uint_t    scope;                 /* _aq_scope_e */
    size_t        id_len;                /* 0 for scope=all */
    u_char        id[NGX_HTTP_ENGAGEMENT_AQ_ID_MAX];
    time_t        from;                  /* the first bucket's start */
    time_t        to;                    /* exclusive */
    ngx_uint_t    step;                  /* _aq_step_e */
    ngx_uint_t    step_secs;             /* 60, 3600, 86400 */
    ngx_uint_t    points;                /* buckets from 'from' below 'to' */
    ngx_uint_t    by;                    /* _aq_by_e */
    ngx_uint_t    csv;
    ngx_uint_t    uniques;               /* metric=uniques (alone) */
    ngx_uint_t    nmetrics;
    size_t        metric_len[NGX_HTTP_ENGAGEMENT_AQ_METRICS_MAX];
    u_char        metric[NGX_HTTP_ENGAGEMENT_AQ_METRICS_MAX]
                        [NGX_HTTP_ENGAGEMENT_AQ_METRIC_LEN];
    /* an unknown parameter's name, for the refusal that names it */
    u_char        unknown[32];
} ngx_http_engagement_aq_t;


/* a refusal: the status (400 or 422), the error code, what it names */
typedef struct {
    ngx_uint_t    status;
    const char   *error;
    const char   *field;                 /* a parameter's name */
    const char   *message;
} ngx_http_engagement_aq_error_t;


/*
 * Parses the query string args (as received, percent-encoded) at the time
 * now (unix s): NGX_OK and q filled, or NGX_ERROR and err filled (its
 * strings static or in q).
 */
ngx_int_t ngx_http_engagement_aq_parse(const u_char *args, size_t len,
    time_t now, ngx_http_engagement_aq_t *q,
    ngx_http_engagement_aq_error_t *err);

/* the names of the steps, scopes and dimensions, as answers say them */
extern const char  *ngx_http_engagement_aq_steps[];
extern const char  *ngx_http_engagement_aq_scopes[];
extern const char  *ngx_http_engagement_aq_dims[];

/* the bucket suffix of a time for a step, "YYYYMMDDHHMM" cut to the step:
 * 12, 10 or 8 digits at p; returns the end */
u_char *ngx_http_engagement_aq_bucket(u_char *p, time_t t, ngx_uint_t step);


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_QUERY_H_INCLUDED_ */
