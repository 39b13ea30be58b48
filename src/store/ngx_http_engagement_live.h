
/*
 * store/: the live zone. Which sessions heartbeat on which content, kept
 * in shared memory for two heartbeat intervals; from it, the live
 * concurrent viewers of a content and its peak in the current minute.
 * Also the zone's own figures (heartbeats, live push). Nothing here knows
 * of requests or sockets; every function that takes the zone's lock
 * returns with it released.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_LIVE_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_LIVE_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


#define NGX_HTTP_ENGAGEMENT_LIVE_ZONE       "engagement_live"
#define NGX_HTTP_ENGAGEMENT_LIVE_ZSIZE      (4 * 1024 * 1024)
#define NGX_HTTP_ENGAGEMENT_LIVE_INTERVAL   10000     /* ms */
#define NGX_HTTP_ENGAGEMENT_LIVE_PUSH       1000      /* ms */
#define NGX_HTTP_ENGAGEMENT_LIVE_PUSH_MAX   10000     /* ms */
#define NGX_HTTP_ENGAGEMENT_LIVE_SHARE      2000      /* ms, with Redis */


/* the live zone's figures, atomics (no lock) */
typedef struct {
    ngx_atomic_t                  heartbeats;      /* every request */
    ngx_atomic_t                  accepted;        /* recorded */
    ngx_atomic_t                  invalid;         /* 4xx: the request */
    ngx_atomic_t                  limited;         /* 429 */
    ngx_atomic_t                  not_counted;     /* token, bot, opt-out */
    ngx_atomic_t                  full;            /* 503: no room */
    ngx_atomic_t                  subscribers;     /* unused: by worker */
    ngx_atomic_t                  streams;         /* opened, ever */
    ngx_atomic_t                  pushes;          /* events sent */
    ngx_atomic_t                  skipped;         /* a slow client's */
    ngx_atomic_t                  shared;          /* counts sent to Redis */
    ngx_atomic_t                  share_errors;    /* not answered */
} ngx_http_engagement_live_stats_t;


/* live.c's configuration: the main conf's "live" */
typedef struct {
    ngx_shm_zone_t               *shm_zone;    /* NULL: no live endpoint */
    ssize_t                       size;
    ngx_msec_t                    interval;    /* heartbeat interval */
    ngx_msec_t                    push;        /* live stream period */
    ngx_flag_t                    share;       /* engagement_live_redis */
    ngx_slab_pool_t              *shpool;
    void                         *sh;          /* the zone's header */
} ngx_http_engagement_live_conf_t;


/* what a content shows live */
typedef struct {
    ngx_uint_t                    live;
    ngx_uint_t                    peak;        /* this minute's */
} ngx_http_engagement_live_t;


/* a content shared with Redis: its count here, and Redis's answer */
typedef struct {
    uint64_t                      hash;
    ngx_int_t                     live;        /* -1: only read */
    ngx_uint_t                    watch;       /* in the watch table */
    size_t                        len;
    u_char                        data[NGX_HTTP_ENGAGEMENT_ID_MAX];
} ngx_http_engagement_live_item_t;


/* configuration: the directives and the zone for a location that uses it */
char *ngx_http_engagement_live_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_live_msec_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_http_engagement_live_conf_t *ngx_http_engagement_live_use(ngx_conf_t *cf);
ngx_http_engagement_live_conf_t *ngx_http_engagement_live_conf(void);
ngx_int_t ngx_http_engagement_live_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_live_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

/* the request path */
ngx_int_t ngx_http_engagement_live_beat(ngx_http_engagement_live_conf_t *lc,
    ngx_str_t *content_id, ngx_str_t *session_id,
    ngx_http_engagement_live_t *out);
void ngx_http_engagement_live_leave(ngx_http_engagement_live_conf_t *lc,
    ngx_str_t *content_id, ngx_str_t *session_id,
    ngx_http_engagement_live_t *out);
void ngx_http_engagement_live_get(ngx_http_engagement_live_conf_t *lc,
    ngx_str_t *content_id, ngx_http_engagement_live_t *out);
uint64_t ngx_http_engagement_live_version(
    ngx_http_engagement_live_conf_t *lc);
ngx_http_engagement_live_stats_t *ngx_http_engagement_live_stats(
    ngx_http_engagement_live_conf_t *lc);
void ngx_http_engagement_live_subscribed(ngx_http_engagement_live_conf_t *lc,
    ngx_int_t delta);
void ngx_http_engagement_live_worker_start(ngx_cycle_t *cycle);
ngx_atomic_uint_t ngx_http_engagement_live_subscribers(
    ngx_http_engagement_live_conf_t *lc);

/* sharing with Redis (sink/redis/live_share.c) */
ngx_uint_t ngx_http_engagement_live_share_due(
    ngx_http_engagement_live_conf_t *lc, ngx_msec_t period);
ngx_uint_t ngx_http_engagement_live_collect(
    ngx_http_engagement_live_conf_t *lc,
    ngx_http_engagement_live_item_t *items, ngx_uint_t max);
void ngx_http_engagement_live_apply(ngx_http_engagement_live_conf_t *lc,
    ngx_http_engagement_live_item_t *it, ngx_uint_t remote);
char *ngx_http_engagement_live_redis_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


#define ngx_http_engagement_live_inc(lc, f)                                   \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_live_stats(lc)->f, 1)


#endif /* _NGX_HTTP_ENGAGEMENT_LIVE_H_INCLUDED_ */
