
/*
 * Private to store/: the counters zone's node, shared by the counters
 * (counters.c), their flush queue (queue.c) and the state file (state.c).
 * Other folders see contents only through store.h.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_COUNTERS_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_COUNTERS_H_INCLUDED_


#include "store/ngx_http_engagement_store.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


/*
 * A content's entry. Without Redis, counts are the totals. With Redis,
 * counts are the totals Redis last answered (all known when confirmed_at
 * is set), pending the local deltas not yet claimed, inflight those
 * claimed by a flusher in the round (stream, seq); pending and inflight
 * are never both sent at once, so each delta is applied by exactly one
 * round. pending holds the deltas of the minute pending_since, later
 * those of a later minute (later_since), which become pending when
 * pending goes in flight.
 * Time buckets are written less often than totals: the deltas of one
 * minute (acc_since) whose totals are sent wait in acc, and go to Redis
 * as filing (of the minute filing_since) with a round, once the minute is
 * over or acc is older than the bucket interval. Viewer hashes wait in uv
 * (since uv_since) for the uniques interval, then go as uv_inflight.
 * An entry is in at most one of the flush queues (where): dirty (totals
 * pending), inflight, or slow (only buckets or viewers wait, looked at
 * every so often from slow_at).
 */
typedef struct {
    ngx_rbtree_node_t              node;      /* key: the hash */
    ngx_queue_t                    queue;     /* LRU */
    ngx_queue_t                    flush;     /* dirty, inflight or slow */
    ngx_http_engagement_counts_t   counts;
    ngx_http_engagement_counts_t   pending;
    ngx_http_engagement_counts_t   later;     /* pending, a later minute */
    ngx_http_engagement_counts_t   inflight;
    ngx_http_engagement_counts_t   acc;       /* buckets not yet written */
    ngx_http_engagement_counts_t   filing;    /* buckets in flight */
    uint64_t                       seq;       /* 0: nothing in flight */
    uint64_t                       stream;    /* of the round in flight */
    uint64_t                      *uv;        /* pending viewer hashes */
    uint64_t                      *uv_inflight;
    uint64_t                      *reactions; /* counts per type, or NULL */
    uint64_t                       uniques;
    uint32_t                       uv_n;
    uint32_t                       uv_cap;
    uint32_t                       uv_inflight_n;
    ngx_pid_t                      claimed_by;  /* 0: free to re-claim */
    /* times kept in 32 bits (milliseconds modulo 2^32, seconds) for size */
    uint32_t                       claimed_at;
    uint32_t                       confirmed_at;  /* 0: totals unknown */
    uint32_t                       reading_at;
    uint32_t                       pending_since;
    uint32_t                       later_since;
    uint32_t                       inflight_since;
    uint32_t                       acc_since;     /* seconds */
    uint32_t                       filing_since;  /* seconds */
    uint32_t                       uv_since;      /* ms */
    uint32_t                       slow_at;       /* ms */
#if (NGX_PTR_SIZE == 4)
    uint64_t                       hash;
#endif
    u_char                         where;     /* NGX_HTTP_ENGAGEMENT_Q_* */
    u_char                         stale;     /* uniques changed since
                                                 they were counted */
    u_char                         legacy;    /* in flight: a batch of an
                                                 earlier version (state
                                                 file), marked in :fl */
    u_char                         len;
    u_char                         data[1];
} ngx_http_engagement_counter_node_t;


/*
 * The most viewer hashes a content keeps for one flush (512 KB): enough
 * for a hot content's viewers between two flushes, bounded while Redis is
 * down. Viewers beyond it, or beyond the zone's room, are left out of the
 * unique count (counted in /status as dropped); their views still count.
 * It also bounds a flush command's size.
 */
#ifndef NGX_HTTP_ENGAGEMENT_UV_MAX
#define NGX_HTTP_ENGAGEMENT_UV_MAX     65536
#endif


#define ngx_http_engagement_counts_add(a, b)                                  \
    (a)->views += (b)->views;                                                 \
    (a)->engaged += (b)->engaged;                                             \
    (a)->replays += (b)->replays

/* the flush queue an entry is in */
#define NGX_HTTP_ENGAGEMENT_Q_NONE       0
#define NGX_HTTP_ENGAGEMENT_Q_DIRTY      1
#define NGX_HTTP_ENGAGEMENT_Q_INFLIGHT   2
#define NGX_HTTP_ENGAGEMENT_Q_SLOW       3

/* nothing waits to be sent: the entry is only a cache of Redis */
#define ngx_http_engagement_cn_clean(cn)                                      \
    (!ngx_http_engagement_nonzero(&(cn)->pending) && (cn)->uv_n == 0          \
     && !ngx_http_engagement_nonzero(&(cn)->acc))

#if (NGX_PTR_SIZE == 4)
#define ngx_http_engagement_cn_hash(cn)  ((cn)->hash)
#else
/* on 64-bit platforms the rbtree key is the whole hash */
#define ngx_http_engagement_cn_hash(cn)  ((uint64_t) (cn)->node.key)
#endif

/* a millisecond stamp in 32 bits; 0 is kept for "never" */
#define ngx_http_engagement_now32()                                           \
    ((uint32_t) ngx_current_msec ? (uint32_t) ngx_current_msec : 1)
/*
 * The age of a stamp; one taken by another worker whose cached time runs
 * ahead of this one's reads as 0, not as 49 days (which took a claim over
 * while its flusher was still waiting for Redis's answer).
 */
#define ngx_http_engagement_age32(t)                                          \
    ((ngx_msec_t) ngx_max((int32_t) ((uint32_t) ngx_current_msec - (t)), 0))


/* counters.c and queue.c; all called with the zone locked */
ngx_http_engagement_counter_node_t *ngx_http_engagement_counters_lookup(
    ngx_http_engagement_counters_shctx_t *sh, ngx_str_t *id, uint64_t hash);
ngx_http_engagement_counter_node_t *ngx_http_engagement_counters_create(
    ngx_http_engagement_zone_t *z, ngx_str_t *id, uint64_t hash);
void *ngx_http_engagement_counters_alloc(ngx_http_engagement_zone_t *z,
    size_t size, ngx_http_engagement_counter_node_t *keep);
ngx_int_t ngx_http_engagement_counters_uv_add(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn, uint64_t uv);
void ngx_http_engagement_counters_dirty(
    ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn);
void ngx_http_engagement_counters_queue(
    ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn);
void ngx_http_engagement_counters_set_reactions(
    ngx_http_engagement_zone_t *z, ngx_http_engagement_counter_node_t *cn,
    uint64_t *reactions);


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_COUNTERS_H_INCLUDED_ */
