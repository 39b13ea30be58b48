
/*
 * store/: the resume zone. A user's last position per content, from the
 * heartbeats that carry a userId, kept in shared memory until Redis has
 * it (sink/redis/resume_flush.c sends it; http/resume.c reads and
 * deletes). Nothing here knows of requests or sockets; every function
 * that takes the zone's lock returns with it released.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_RESUME_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_RESUME_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


#define NGX_HTTP_ENGAGEMENT_RESUME_ZONE     "engagement_resume"
#define NGX_HTTP_ENGAGEMENT_RESUME_ZSIZE    (4 * 1024 * 1024)

/* how often one worker of the edge sends the pending positions (ms) */
#define NGX_HTTP_ENGAGEMENT_RESUME_FLUSH    1000

/* the contents a user's history keeps, and how long both keys live */
#define NGX_HTTP_ENGAGEMENT_RESUME_HISTORY  200
#define NGX_HTTP_ENGAGEMENT_RESUME_TTL      (90LL * 86400 * 1000)   /* ms */

/* a history request's limit: default and largest */
#define NGX_HTTP_ENGAGEMENT_HISTORY_LIMIT   20
#define NGX_HTTP_ENGAGEMENT_HISTORY_MAX     100


/* the resume zone's figures, atomics (no lock) */
typedef struct {
    ngx_atomic_t                  buffered;        /* positions taken */
    ngx_atomic_t                  flushed;         /* confirmed by Redis */
    ngx_atomic_t                  dropped;         /* no room: lost */
    ngx_atomic_t                  errors;          /* sends not confirmed */
    ngx_atomic_t                  refused;         /* Redis refused: lost */
    ngx_atomic_t                  pending;         /* gauge: not in Redis */
} ngx_http_engagement_resume_stats_t;


/* resume.c's configuration: the main conf's "resume" */
typedef struct {
    ngx_shm_zone_t               *shm_zone;    /* NULL: no positions */
    ssize_t                       size;
    ngx_slab_pool_t              *shpool;
    void                         *sh;          /* the zone's header */
} ngx_http_engagement_resume_conf_t;


/* a position, as kept and as sent to Redis */
typedef struct {
    int64_t                       position;    /* ms */
    int64_t                       duration;    /* ms, -1: unknown */
    int64_t                       updated;     /* unix ms at the edge */
    u_char                        ulen;
    u_char                        clen;
    u_char                        user[NGX_HTTP_ENGAGEMENT_ID_MAX];
    u_char                        content[NGX_HTTP_ENGAGEMENT_ID_MAX];
} ngx_http_engagement_position_t;


/* configuration */
char *ngx_http_engagement_resume_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_http_engagement_resume_conf_t *ngx_http_engagement_resume_use(
    ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_resume_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_resume_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);

/* the request path */
ngx_int_t ngx_http_engagement_resume_put(
    ngx_http_engagement_resume_conf_t *rc, ngx_str_t *user,
    ngx_str_t *content, int64_t position, int64_t duration, int64_t now);
ngx_int_t ngx_http_engagement_resume_get(
    ngx_http_engagement_resume_conf_t *rc, ngx_str_t *user,
    ngx_str_t *content, ngx_http_engagement_position_t *out);
ngx_uint_t ngx_http_engagement_resume_forget(
    ngx_http_engagement_resume_conf_t *rc, ngx_str_t *user);
ngx_http_engagement_resume_stats_t *ngx_http_engagement_resume_stats(
    ngx_http_engagement_resume_conf_t *rc);

/* the flush (sink/redis/resume_flush.c) */
ngx_uint_t ngx_http_engagement_resume_due(
    ngx_http_engagement_resume_conf_t *rc, ngx_msec_t period);
ngx_uint_t ngx_http_engagement_resume_collect(
    ngx_http_engagement_resume_conf_t *rc,
    ngx_http_engagement_position_t *items, ngx_uint_t max);
void ngx_http_engagement_resume_done(ngx_http_engagement_resume_conf_t *rc,
    ngx_http_engagement_position_t *it);


#define ngx_http_engagement_resume_inc(rc, f)                                 \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_resume_stats(rc)->f, 1)


#endif /* _NGX_HTTP_ENGAGEMENT_RESUME_H_INCLUDED_ */
