
/*
 * store/: the segments zone. Per (session, content) pair, the media time
 * nginx served to the session from an engagement_segments location, the
 * segments already credited (so a replayed URL earns nothing twice) and
 * which of the policy's levels (view, engaged) were already decided.
 * Nothing here knows of requests or sockets; every function that takes
 * the zone's lock returns with it released.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_SEGMENTS_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_SEGMENTS_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_ENGAGEMENT_SEGMENTS_ZONE   "engagement_segments"
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_ZSIZE  (4 * 1024 * 1024)

/* the segments one session's entry remembers until it is engaged */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_SET    32

/* an entry's levels already decided (the policy's marks) */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_VIEW     0x01
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_ENGAGED  0x02

/* an entry that keeps the byte ranges of one file (MP4), not segments */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_RANGES   0x04

/* the chunks a file is cut in for its ranges: the set's bits */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_CHUNKS                                   \
    (NGX_HTTP_ENGAGEMENT_SEGMENTS_SET * 32)


/* the segments zone's figures, atomics (no lock) */
typedef struct {
    ngx_atomic_t                  segments;        /* media, 200/206 */
    ngx_atomic_t                  credited;        /* new to the session */
    ngx_atomic_t                  replayed;        /* credited before */
    ngx_atomic_t                  credited_ms;     /* media time credited */
    ngx_atomic_t                  playlists;       /* credit nothing */
    ngx_atomic_t                  not_served;      /* media, not 200/206 */
    ngx_atomic_t                  refused[NGX_HTTP_ENGAGEMENT_TOKEN_REASONS];
    ngx_atomic_t                  invalid;         /* content or session */
    ngx_atomic_t                  bots;            /* a crawler's agent */
    ngx_atomic_t                  opted_out;       /* Sec-GPC, drop */
    ngx_atomic_t                  anonymous;       /* Sec-GPC, anonymous */
    ngx_atomic_t                  sessions;        /* entries made */
    ngx_atomic_t                  views;           /* counted */
    ngx_atomic_t                  engaged;         /* counted */
    ngx_atomic_t                  duplicates;      /* already counted */
    ngx_atomic_t                  full;            /* no room: not credited */
    ngx_atomic_t                  unavailable;     /* policy zone, writer */
    ngx_atomic_t                  live;            /* live zone fed */
    ngx_atomic_t                  live_full;       /* the live zone's room */
} ngx_http_engagement_segments_stats_t;


/* the main conf's "segments" */
typedef struct {
    ngx_shm_zone_t               *shm_zone;    /* NULL: no location uses it */
    ssize_t                       size;
    ngx_slab_pool_t              *shpool;
    void                         *sh;          /* the zone's header */
    ngx_uint_t                    handler;     /* the log handler is set */
} ngx_http_engagement_segments_conf_t;


/* what crediting one segment did */
typedef struct {
    ngx_msec_t                    served;      /* the session's total, ms */
    ngx_msec_t                    added;       /* by this segment or range */
    ngx_uint_t                    done;        /* levels decided before */
    ngx_uint_t                    fresh;       /* a new entry */
} ngx_http_engagement_segments_credit_t;


ngx_int_t ngx_http_engagement_segments_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
uint64_t ngx_http_engagement_segments_key(
    ngx_http_engagement_segments_conf_t *sc, ngx_str_t *session,
    ngx_str_t *content);
uint32_t ngx_http_engagement_segments_seg(
    ngx_http_engagement_segments_conf_t *sc, ngx_str_t *uri,
    ngx_str_t *range);
ngx_int_t ngx_http_engagement_segments_credit(
    ngx_http_engagement_segments_conf_t *sc, uint64_t key, uint32_t seg,
    ngx_msec_t add, ngx_msec_t idle, ngx_http_engagement_segments_credit_t *out);
ngx_int_t ngx_http_engagement_segments_cover(
    ngx_http_engagement_segments_conf_t *sc, uint64_t key, ngx_uint_t first,
    ngx_uint_t last, ngx_msec_t chunk_ms, ngx_msec_t idle,
    ngx_http_engagement_segments_credit_t *out);
void ngx_http_engagement_segments_decided(
    ngx_http_engagement_segments_conf_t *sc, uint64_t key, ngx_uint_t levels);
ngx_http_engagement_segments_stats_t *ngx_http_engagement_segments_stats(
    ngx_http_engagement_segments_conf_t *sc);


#define ngx_http_engagement_segments_inc(sc, f)                               \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_segments_stats(sc)->f, 1)


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_SEGMENTS_H_INCLUDED_ */
