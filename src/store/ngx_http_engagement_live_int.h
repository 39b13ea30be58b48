
/*
 * store/: the live zone's layout, shared by live.c (heartbeats, counts,
 * sharing with Redis) and live_conf.c (directives, making the zone).
 * Nothing outside the live zone's files includes it.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_LIVE_INT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_LIVE_INT_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_live.h"


#define NGX_HTTP_ENGAGEMENT_LIVE_MAGIC   0x45474c31   /* "EGL1" */

/* slots a session stays live in (the current one included), and a ring */
#define NGX_HTTP_ENGAGEMENT_LIVE_SLOTS   4

/* the watch table's entries looked at for a content */
#define NGX_HTTP_ENGAGEMENT_LIVE_PROBES  16

/*
 * The sessions and contents tables are cut in buckets of this many
 * entries; an entry goes to the less full of two buckets chosen by its
 * hash, and a heartbeat is refused only when both are full. Two choices
 * fill the tables to about 85% before the first refusal, where one
 * window of 16 after the hash refused at 40-60% (the larger the table,
 * the earlier).
 */
#define NGX_HTTP_ENGAGEMENT_LIVE_BUCKET  16

/* sessions per content entry the zone is cut for */
#define NGX_HTTP_ENGAGEMENT_LIVE_RATIO   4

/* content entries per watch table entry */
#define NGX_HTTP_ENGAGEMENT_LIVE_WATCH   8

/* a content entry's flags */
#define NGX_HTTP_ENGAGEMENT_LIVE_REMOTE  1   /* remote is Redis's answer */
#define NGX_HTTP_ENGAGEMENT_LIVE_WANTED  2   /* read in wanted_slot */


typedef struct {
    uint64_t                      hash;        /* 0: never used */
    uint64_t                      content;     /* its content's hash */
    uint32_t                      cidx;        /* its content's entry */
    uint32_t                      slot;        /* last seen in */
} ngx_http_engagement_live_session_t;


typedef struct {
    uint32_t                      slot;
    uint32_t                      count;       /* sessions last seen then */
} ngx_http_engagement_live_ring_t;


typedef struct {
    uint64_t                      hash;        /* 0: never used */
    ngx_http_engagement_live_ring_t
                                  ring[NGX_HTTP_ENGAGEMENT_LIVE_SLOTS];
    uint32_t                      peak_minute;
    uint32_t                      peak;
    uint32_t                      remote;      /* other edges' live */
    uint64_t                      remote_at;   /* when Redis said it (ms) */
    uint32_t                      wanted_slot; /* when it was last read */
    uint32_t                      shared;      /* the count sent, 0: none */
    uint32_t                      flags;
    u_char                        len;
    u_char                        data[NGX_HTTP_ENGAGEMENT_ID_MAX];
} ngx_http_engagement_live_content_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    uint64_t                      key[2];
    ngx_msec_t                    interval;
    uint32_t                      now_slot;    /* the latest slot used */
    ngx_uint_t                    nsessions;
    ngx_uint_t                    ncontents;
    ngx_http_engagement_live_session_t  *sessions;
    ngx_http_engagement_live_content_t  *contents;
    ngx_uint_t                    nwatch;
    ngx_http_engagement_live_content_t  *watch;  /* read, not live here */
    ngx_uint_t                    share_next;  /* where the next turn
                                                  starts */
    ngx_atomic_t                  share_at;    /* the next turn's time */
    ngx_atomic_t                  seq;         /* bumped on every change */
    ngx_http_engagement_live_stats_t     stats;
    /* open streams by worker slot: a killed worker's are dropped when its
     * slot is taken again (a respawn takes the same) */
    ngx_atomic_t                  subscribers[NGX_MAX_PROCESSES];
} ngx_http_engagement_live_sh_t;


#endif /* _NGX_HTTP_ENGAGEMENT_LIVE_INT_H_INCLUDED_ */
