
/*
 * The dimensions zone ("engagement_dims", one per edge): the table of the
 * category values this edge passes on (the cardinality bound), and the
 * figures of the dimensions and of interaction events. The configuration
 * (the main conf's "dims") is made by http/ngx_http_engagement_dims.c.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_DIMS_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_DIMS_H_INCLUDED_


#include "ngx_http_engagement_module.h"


#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_ENGAGEMENT_DIMS_ZONE          "engagement_dims"

/* engagement_dimension_limit: distinct categories per edge */
#define NGX_HTTP_ENGAGEMENT_CATEGORY_MAX       64
#define NGX_HTTP_ENGAGEMENT_CATEGORY_MAX_MAX   1024
/* a category unseen this long gives its place to another */
#define NGX_HTTP_ENGAGEMENT_CATEGORY_IDLE      3600    /* s */
/* engagement_dimension_limit channels=: distinct channels per edge */
#define NGX_HTTP_ENGAGEMENT_CHANNEL_MAX        4096
#define NGX_HTTP_ENGAGEMENT_CHANNEL_MAX_MAX    65536
/* a channel is looked for in this many places from its hash's */
#define NGX_HTTP_ENGAGEMENT_CHANNEL_PROBE      16

/* engagement_interaction: names per configuration */
#define NGX_HTTP_ENGAGEMENT_INTERACTIONS_MAX   64


/* a category (or a channel) the edge passes on */
typedef struct {
    uint32_t                      hash;        /* 0: free */
    uint32_t                      len;
    time_t                        last;        /* last seen, unix s */
    u_char                        data[NGX_HTTP_ENGAGEMENT_ID_MAX];
} ngx_http_engagement_category_t;


/* the figures, atomics in the zone */
typedef struct {
    ngx_atomic_t                  received;
    ngx_atomic_t                  counted;
    ngx_atomic_t                  invalid;     /* 4xx: body, field, name */
    ngx_atomic_t                  limited;     /* 429 */
    ngx_atomic_t                  not_counted; /* token, bot, opt-out, ts */
    ngx_atomic_t                  unavailable; /* 503: writer or series */
    ngx_atomic_t                  category_folded;   /* became "other" */
    ngx_atomic_t                  category_values;   /* gauge: in the table */
    ngx_atomic_t                  device_agent;      /* from the User-Agent */
    ngx_atomic_t                  country_missing;   /* directive, no value */
    ngx_atomic_t                  channel_folded;    /* became "other" */
    ngx_atomic_t                  channel_values;    /* gauge: in the table */
    ngx_atomic_t                  clicks[NGX_HTTP_ENGAGEMENT_INTERACTIONS_MAX];
} ngx_http_engagement_dims_stats_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      fingerprint; /* the configuration's */
    ngx_http_engagement_dims_stats_t  stats;
    ngx_uint_t                    ncategories;
    ngx_uint_t                    nchannels;   /* after the categories */
    ngx_http_engagement_category_t    categories[1];
} ngx_http_engagement_dims_sh_t;

/* the channels' table follows the categories' */
#define ngx_http_engagement_dims_channels(sh)                                 \
    (&(sh)->categories[(sh)->ncategories])


/* the main conf's "dims" */
typedef struct {
    ngx_uint_t                    category_max;
    ngx_uint_t                    channel_max;
    time_t                        category_idle;
    ngx_array_t                  *interactions;   /* ngx_str_t */
    ngx_shm_zone_t               *zone;
    ngx_http_engagement_dims_sh_t  *sh;
    ngx_slab_pool_t              *shpool;
} ngx_http_engagement_dims_conf_t;


/* http/dims.c: the main conf's "dims", made at first use */
ngx_http_engagement_dims_conf_t *ngx_http_engagement_dims_conf_get(
    ngx_conf_t *cf);

/* store/dims.c */
ngx_int_t ngx_http_engagement_dims_zone(ngx_conf_t *cf,
    ngx_http_engagement_dims_conf_t *dc);
/* 1: v is a category this edge passes on; 0: it is folded into "other" */
ngx_uint_t ngx_http_engagement_category_admit(
    ngx_http_engagement_dims_conf_t *dc, ngx_str_t *v, time_t now);
/* 1: v is a channel this edge passes on; 0: it is folded into "other" */
ngx_uint_t ngx_http_engagement_channel_admit(
    ngx_http_engagement_dims_conf_t *dc, ngx_str_t *v, time_t now);

#define ngx_http_engagement_dims_inc(dc, f)                                   \
    (void) ngx_atomic_fetch_add(&(dc)->sh->stats.f, 1)


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_DIMS_H_INCLUDED_ */
