
/*
 * store/: the series zone. Counts by minute and dimension (content,
 * channel, category, source, device, country, interaction name), kept in
 * shared memory until Redis has them; sink/redis/series_flush.c expands
 * each row into the bucket fields of every scope (content, channel,
 * category, all) and sends a round of rows at a time, exactly once.
 * Nothing here knows of requests or sockets; every function that takes
 * the zone's lock returns with it released.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_SERIES_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_SERIES_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


#define NGX_HTTP_ENGAGEMENT_SERIES_ZONE     "engagement_series"
#define NGX_HTTP_ENGAGEMENT_SERIES_ZSIZE    (16 * 1024 * 1024)

/* the room of a short dimension (source, device, country) in a row */
#define NGX_HTTP_ENGAGEMENT_SERIES_SHORT    32

/*
 * A row's key at its longest: content, channel, category, name, shorts,
 * and the lengths and minute written after it while it is looked up (16)
 */
#define NGX_HTTP_ENGAGEMENT_SERIES_KEY                                        \
    (4 * NGX_HTTP_ENGAGEMENT_ID_MAX + 3 * NGX_HTTP_ENGAGEMENT_SERIES_SHORT    \
     + 16)

/* rows in one round sent to Redis */
#define NGX_HTTP_ENGAGEMENT_SERIES_ROUND    512

/* take()'s may_start: every pending row, due or not (a final round) */
#define NGX_HTTP_ENGAGEMENT_SERIES_ALL      2

/* the parts of a row's key, in order */
enum {
    NGX_HTTP_ENGAGEMENT_SERIES_CONTENT = 0,
    NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL,
    NGX_HTTP_ENGAGEMENT_SERIES_CATEGORY,
    NGX_HTTP_ENGAGEMENT_SERIES_SOURCE,
    NGX_HTTP_ENGAGEMENT_SERIES_DEVICE,
    NGX_HTTP_ENGAGEMENT_SERIES_COUNTRY,
    NGX_HTTP_ENGAGEMENT_SERIES_NAME,
    NGX_HTTP_ENGAGEMENT_SERIES_PARTS
};

/* what a row counts, in order */
enum {
    NGX_HTTP_ENGAGEMENT_SERIES_VIEWS = 0,
    NGX_HTTP_ENGAGEMENT_SERIES_ENGAGED,
    NGX_HTTP_ENGAGEMENT_SERIES_REPLAYS,
    NGX_HTTP_ENGAGEMENT_SERIES_LIKES,
    NGX_HTTP_ENGAGEMENT_SERIES_UNLIKES,
    NGX_HTTP_ENGAGEMENT_SERIES_CLICKS,
    NGX_HTTP_ENGAGEMENT_SERIES_METRICS
};


/* one event's contribution: the content, its dimensions, what it counts */
typedef struct {
    ngx_str_t                     content_id;
    ngx_str_t                     channel_id, category, source, device,
                                  country;       /* may be empty */
    ngx_str_t                     name;          /* an interaction's name,
                                                    else empty */
    time_t                        when;          /* unix s: its minute */
    uint32_t                      views, engaged, replays, likes, unlikes,
                                  clicks;
} ngx_http_engagement_series_add_t;


/* the series zone's figures, atomics (no lock) */
typedef struct {
    ngx_atomic_t                  added;       /* events taken in rows */
    ngx_atomic_t                  dropped;     /* no room: not in series */
    ngx_atomic_t                  rows;        /* gauge: rows in use */
    ngx_atomic_t                  pending;     /* gauge: rows not in Redis */
    ngx_atomic_t                  rounds;      /* rounds confirmed */
    ngx_atomic_t                  rows_sent;   /* rows confirmed */
    ngx_atomic_t                  fields;      /* bucket fields written */
    ngx_atomic_t                  resent;      /* rounds sent again */
    ngx_atomic_t                  repeats;     /* found applied already */
    ngx_atomic_t                  errors;      /* sends not confirmed */
    ngx_atomic_t                  refused;     /* fields Redis refused */
    ngx_atomic_t                  capacity;    /* the rows it can hold */
} ngx_http_engagement_series_stats_t;


/* series.c's configuration: the main conf's "series" */
typedef struct {
    ngx_shm_zone_t               *shm_zone;    /* NULL: no series */
    ssize_t                       size;        /* 0: off */
    ngx_slab_pool_t              *shpool;
    void                         *sh;          /* the zone's header */
    ngx_msec_t                    last_full_log;
} ngx_http_engagement_series_conf_t;


/* a row of a round, as the flush copies it out of the zone */
typedef struct {
    ngx_uint_t                    index;       /* in the zone's table */
    uint32_t                      minute;      /* unix minutes */
    uint32_t                      counts[NGX_HTTP_ENGAGEMENT_SERIES_METRICS];
    u_char                        len[NGX_HTTP_ENGAGEMENT_SERIES_PARTS];
    u_char                        key[NGX_HTTP_ENGAGEMENT_SERIES_KEY];
} ngx_http_engagement_series_row_t;


/* a round as one worker holds it */
typedef struct {
    uint64_t                      stream;      /* the zone's, random */
    uint64_t                      seq;         /* 0: none */
    ngx_uint_t                    resend;      /* sent before */
    ngx_uint_t                    n;
} ngx_http_engagement_series_round_t;


/* configuration */
char *ngx_http_engagement_series_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_http_engagement_series_conf_t *ngx_http_engagement_series_use(
    ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_series_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_series_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
void ngx_http_engagement_series_worker_start(
    ngx_http_engagement_main_conf_t *emcf);

/*
 * The request path. NGX_OK; NGX_DECLINED: no series zone configured;
 * NGX_BUSY: zone full (counted in status as dropped, logged at a limited
 * rate; the event itself stays counted).
 */
ngx_int_t ngx_http_engagement_series_add(ngx_http_engagement_series_add_t *a,
    ngx_log_t *log);
ngx_int_t ngx_http_engagement_series_view(ngx_http_engagement_event_t *ev,
    ngx_uint_t view, ngx_uint_t engaged, ngx_uint_t replay, ngx_log_t *log);
ngx_int_t ngx_http_engagement_series_reaction(ngx_str_t *content_id,
    ngx_uint_t had, ngx_uint_t has, ngx_log_t *log);

ngx_http_engagement_series_conf_t *ngx_http_engagement_series_current(void);
ngx_http_engagement_series_stats_t *ngx_http_engagement_series_stats(
    ngx_http_engagement_series_conf_t *sc);

/* the flush (sink/redis/series_flush.c) */
ngx_uint_t ngx_http_engagement_series_due(
    ngx_http_engagement_series_conf_t *sc, ngx_msec_t period);
ngx_int_t ngx_http_engagement_series_take(
    ngx_http_engagement_series_conf_t *sc, ngx_uint_t may_start,
    ngx_msec_t reclaim, ngx_msec_t after,
    ngx_http_engagement_series_round_t *round,
    ngx_http_engagement_series_row_t *rows);
void ngx_http_engagement_series_confirm(
    ngx_http_engagement_series_conf_t *sc,
    ngx_http_engagement_series_round_t *round,
    ngx_http_engagement_series_row_t *rows);


#define ngx_http_engagement_series_inc(sc, f, n)                              \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_series_stats(sc)->f, n)


#endif /* _NGX_HTTP_ENGAGEMENT_SERIES_H_INCLUDED_ */
