
/*
 * store/trend: the trending candidate sketch. Per time bucket (a minute,
 * engagement_trending_bucket) a space-saving top-k of the contents
 * counted on this edge, globally and per category, kept in a ring of
 * buckets in one shared memory zone until the trend flush
 * (sink/redis/trend_flush.c) has merged a closed bucket into Redis's
 * sorted sets. Nothing here knows of requests or sockets; each function
 * that takes the zone's lock returns with it released.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_TREND_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_TREND_H_INCLUDED_


#include "ngx_http_engagement_module.h"


#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_ENGAGEMENT_TREND_MAGIC     0x45475431   /* "EGT1" */
#define NGX_HTTP_ENGAGEMENT_TREND_ZONE      "engagement_trending"
#define NGX_HTTP_ENGAGEMENT_TREND_ZSIZE     (4 * 1024 * 1024)

/* the sketch's sizes: defaults and bounds */
#define NGX_HTTP_ENGAGEMENT_TREND_K         256
#define NGX_HTTP_ENGAGEMENT_TREND_K_MAX     4096
#define NGX_HTTP_ENGAGEMENT_TREND_CATS      16
#define NGX_HTTP_ENGAGEMENT_TREND_CATS_MAX  63       /* a bit each */
#define NGX_HTTP_ENGAGEMENT_TREND_CAT_K     16
#define NGX_HTTP_ENGAGEMENT_TREND_LIKE      5        /* a like, in views */

/* the bucket: a minute; shorter ones for tests (the windows scale too) */
#define NGX_HTTP_ENGAGEMENT_TREND_BUCKET    60

/* the windows, in buckets (a minute's) and in hours of 60 buckets */
#define NGX_HTTP_ENGAGEMENT_TREND_5M        5
#define NGX_HTTP_ENGAGEMENT_TREND_1H        60
#define NGX_HTTP_ENGAGEMENT_TREND_24H       24
/* a bucket older than the longest window is not sent any more */
#define NGX_HTTP_ENGAGEMENT_TREND_KEEP      (24 * 60)

/* Redis TTLs of the sorted sets (s): minutes 2 hours, hours 3 days */
#define NGX_HTTP_ENGAGEMENT_TREND_MTTL      7200
#define NGX_HTTP_ENGAGEMENT_TREND_HTTL      259200


/* figures of the trending zone, atomics */
typedef struct {
    ngx_atomic_t                  added;       /* updates (views, likes) */
    ngx_atomic_t                  weight;      /* their weight, in views */
    ngx_atomic_t                  evictions;   /* an entry replaced */
    ngx_atomic_t                  late;        /* its bucket already sent */
    ngx_atomic_t                  no_category; /* category sketches full */
    ngx_atomic_t                  buckets_flushed;
    ngx_atomic_t                  items_flushed;
    ngx_atomic_t                  repeats;     /* already applied */
    ngx_atomic_t                  flush_errors;
    ngx_atomic_t                  buckets_dropped; /* never sent */
    ngx_atomic_t                  reads;       /* trending answers */
    ngx_atomic_t                  cache_hits;
    ngx_atomic_t                  read_calls;  /* reads sent to Redis */
    ngx_atomic_t                  read_errors;
    ngx_atomic_t                  items;       /* gauge: entries in use */
    ngx_atomic_t                  pending;     /* gauge: buckets to send */
} ngx_http_engagement_trend_stats_t;


typedef struct {
    ngx_str_t                     name;
    ssize_t                       size;
    ngx_uint_t                    k;
    ngx_uint_t                    categories;
    ngx_uint_t                    category_k;
    time_t                        bucket;      /* s */
    ngx_uint_t                    like_weight;
    ngx_msec_t                    cache;       /* answers kept this long */
    ngx_uint_t                    declared;    /* by the zone directive */
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    void                         *sh;
} ngx_http_engagement_trend_conf_t;


/* one item of a bucket's sketch as the flush sends it */
typedef struct {
    uint32_t                      count;
    uint32_t                      err;
    u_char                        len;
    u_char                        id[NGX_HTTP_ENGAGEMENT_ID_MAX];
} ngx_http_engagement_trend_item_t;


/*
 * A closed bucket copied out for the flush: the global sketch's items
 * first (nitems[0]), then each category's (nitems[1 + c]), the category
 * names, and which scopes are still to send (bit 0 global, 1 + c).
 */
typedef struct {
    int64_t                       bucket;      /* its index: time / length */
    ngx_uint_t                    slot;
    uint64_t                      stream;      /* the zone's start */
    uint64_t                      todo;
    ngx_uint_t                    ncats;
    ngx_uint_t                   *nitems;      /* 1 + categories */
    ngx_http_engagement_trend_item_t  **items; /* 1 + categories */
    u_char                      (*cats)[NGX_HTTP_ENGAGEMENT_ID_MAX + 1];
    /* the flush's own: scopes answered, replies awaited */
    uint64_t                      done;
    ngx_uint_t                    outstanding;
    ngx_uint_t                    failed;
    void                         *data;
} ngx_http_engagement_trend_bucket_t;


/* the configuration: directives (module.c's table) and checks */
char *ngx_http_engagement_trend_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_trend_bucket_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_trend_like_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_trend_cache_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_http_engagement_trend_conf_t *ngx_http_engagement_trend_use(
    ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_trend_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_trend_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

/* the running cycle's trending configuration, NULL: none */
ngx_http_engagement_trend_conf_t *ngx_http_engagement_trend_conf(void);

/* the worker's start: the configuration the view path feeds */
void ngx_http_engagement_trend_worker_start(ngx_cycle_t *cycle);

/* the view and like paths: one content counted, with its category */
void ngx_http_engagement_trend_add(ngx_str_t *id, ngx_str_t *category,
    ngx_uint_t weight);
/* a view (weight 1), a like (engagement_trending_like_weight) */
void ngx_http_engagement_trend_view(ngx_str_t *id, ngx_str_t *category);
void ngx_http_engagement_trend_like(u_char *id, size_t len);

/* the minute YYYYMMDDHHMM (12 digits) naming a bucket's sorted set */
u_char *ngx_http_engagement_trend_minute(u_char *p, int64_t bucket,
    time_t length);

/* the flush: the bucket index of now, and the closed buckets to send */
int64_t ngx_http_engagement_trend_now(ngx_http_engagement_trend_conf_t *tc);
ngx_uint_t ngx_http_engagement_trend_due(
    ngx_http_engagement_trend_conf_t *tc, ngx_msec_t period);
ngx_int_t ngx_http_engagement_trend_take(
    ngx_http_engagement_trend_conf_t *tc, ngx_http_engagement_trend_bucket_t *b,
    ngx_msec_t resend);
void ngx_http_engagement_trend_sent(ngx_http_engagement_trend_conf_t *tc,
    ngx_http_engagement_trend_bucket_t *b, uint64_t done);
ngx_http_engagement_trend_bucket_t *ngx_http_engagement_trend_bucket_new(
    ngx_http_engagement_trend_conf_t *tc, ngx_log_t *log);
void ngx_http_engagement_trend_bucket_free(
    ngx_http_engagement_trend_bucket_t *b);

ngx_http_engagement_trend_stats_t *ngx_http_engagement_trend_stats(
    ngx_http_engagement_trend_conf_t *tc);
/* the gauges (items, buckets held) brought up to date, for the status */
void ngx_http_engagement_trend_gauges(ngx_http_engagement_trend_conf_t *tc);
/* the grace after a bucket's end before it is sent (ms) */
ngx_msec_t ngx_http_engagement_trend_grace(
    ngx_http_engagement_trend_conf_t *tc);

#define ngx_http_engagement_trend_inc(tc, f)                                  \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_trend_stats(tc)->f, 1)
#define ngx_http_engagement_trend_addn(tc, f, n)                              \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_trend_stats(tc)->f, n)

/* sink/redis/trend_flush.c */
ngx_int_t ngx_http_engagement_trend_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_TREND_H_INCLUDED_ */
