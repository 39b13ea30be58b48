
/*
 * policy/global.c: cross-edge dedupe (engagement_dedupe_scope global).
 * A view an edge would count waits in the global zone, a shared memory
 * queue, for Redis to decide whether another edge counted it already;
 * sink/redis/global_flush.c sends the claims and hands the answers back,
 * and the view is then counted (counters, series, trending, the durable
 * writer's line) or filed as a duplicate. The request path reaches the
 * queue only, never Redis.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_GLOBAL_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_GLOBAL_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"


/* claims in one Redis call at most */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH_MAX  512


/* an entry's state in the queue */
typedef enum {
    NGX_HTTP_ENGAGEMENT_GLOBAL_QUEUED = 0,   /* waits for a round */
    NGX_HTTP_ENGAGEMENT_GLOBAL_SENT,         /* in a round (seq, pid) */
    NGX_HTTP_ENGAGEMENT_GLOBAL_DECIDED,      /* answered; not counted yet */
    NGX_HTTP_ENGAGEMENT_GLOBAL_COUNTED       /* counted; the rest to do */
} ngx_http_engagement_global_state_e;


/* the figures of the zone, for the status endpoint */
typedef struct {
    ngx_atomic_t                  queued;      /* entries now */
    ngx_atomic_t                  claims;      /* views that waited */
    ngx_atomic_t                  counted;     /* decided fresh */
    ngx_atomic_t                  duplicates;  /* another edge had it */
    ngx_atomic_t                  rounds;
    ngx_atomic_t                  resent;      /* rounds sent again */
    ngx_atomic_t                  errors;      /* rounds not answered */
    ngx_atomic_t                  full;        /* views refused: no room */
    ngx_atomic_t                  lost_lines;  /* writer zone gone */
} ngx_http_engagement_global_stats_t;


/* one view that waits, in the zone */
typedef struct {
    ngx_queue_t                   link;
    uint64_t                      id;          /* unique in the zone */
    uint64_t                      seq;         /* its round's, once sent */
    uint64_t                      keys[2];     /* its dedupe keys */
    uint64_t                      uv;          /* the viewer, for the HLL */
    uint64_t                      wbirth;      /* the writer zone's birth */
    void                         *wev;         /* its reserved line */
    void                         *zone_sh;     /* its counters zone */
    ngx_pid_t                     pid;         /* its round's worker */
    uint32_t                      window;      /* dedupe window, s */
    uint32_t                      slot;        /* its group + 1 (0: not yet) */
    u_char                        nkeys;
    u_char                        kinds;       /* MARK_* it would count */
    u_char                        fresh;       /* MARK_* Redis let count */
    u_char                        state;       /* _global_state_e */
    u_short                       len[6];      /* the strings in data */
    u_char                        data[1];
} ngx_http_engagement_global_entry_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    uint64_t                      birth;       /* random: ids are unique */
    uint64_t                      next_id;
    uint64_t                      next_seq;
    ngx_queue_t                   queue;
    ngx_http_engagement_global_stats_t  stats;
} ngx_http_engagement_global_sh_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    ngx_http_engagement_global_sh_t  *sh;
    size_t                        size;
    ngx_uint_t                    batch;       /* claims per Redis call */
    ngx_msec_t                    interval;    /* how often rounds start */
    ngx_str_t                     secret_file;
} ngx_http_engagement_global_conf_t;


/* a view that would count on this edge, for the queue */
typedef struct {
    ngx_str_t                    *strs[6];     /* content, channel,
                                                  category, source, device,
                                                  country */
    uint64_t                      keys[2];
    ngx_uint_t                    nkeys;
    ngx_uint_t                    kinds;
    uint64_t                      uv;
    ngx_msec_t                    window;
    void                         *wev;
    void                         *zone_sh;
} ngx_http_engagement_global_in_t;


/* a round as the sink sends it: entries it owns until resolved */
typedef struct {
    uint64_t                      seq;
    uint64_t                      birth;
    ngx_uint_t                    slot;
    ngx_uint_t                    resend;      /* sent before */
    ngx_uint_t                    n;
    ngx_http_engagement_global_entry_t
                                 *e[NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH_MAX];
} ngx_http_engagement_global_round_t;


/* the group of a content (its marks' keys share a slot), for rounds in
 * cluster mode */
typedef ngx_uint_t (*ngx_http_engagement_global_slot_pt)(const u_char *id,
    size_t len);


char *ngx_http_engagement_global_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_engagement_global_postconf(ngx_conf_t *cf);
ngx_http_engagement_global_conf_t *ngx_http_engagement_global_conf(void);

/* the request path, with the dedupe zone locked: NGX_BUSY: no room */
ngx_int_t ngx_http_engagement_global_enqueue(
    ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_in_t *in);

/* the sink: a round to send (0: none), its answer, its failure */
ngx_uint_t ngx_http_engagement_global_take(
    ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_round_t *round,
    ngx_http_engagement_global_slot_pt slot_of);
void ngx_http_engagement_global_resolve(
    ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_round_t *round, const u_char *fresh);
void ngx_http_engagement_global_failed(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_round_t *round);
ngx_uint_t ngx_http_engagement_global_idle(
    ngx_http_engagement_global_conf_t *gc);


#endif /* _NGX_HTTP_ENGAGEMENT_GLOBAL_H_INCLUDED_ */
