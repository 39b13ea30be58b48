
/*
 * store/: the shared memory zones. The generic zone header, its checks on
 * reload, its rbtree/LRU and the zone directives (zone.c, hash.c), the
 * counters of each content (counters.c) with their flush queue of pending
 * and in-flight deltas (queue.c) and the state file that carries them
 * across a stop (state.c). Nothing here knows of requests or sockets;
 * every function that takes a zone lock returns with it released.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_STORE_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_STORE_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_ENGAGEMENT_COUNTERS_MAGIC 0x45474331   /* "EGC1" */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_MAGIC   0x45474431   /* "EGD1" */

/* the smallest zone: the slab pool's own header takes a few pages */
#define NGX_HTTP_ENGAGEMENT_ZONE_MIN_PAGES 8

/* at most one "zone is full" line per worker this often, in ms */
#define NGX_HTTP_ENGAGEMENT_FULL_LOG_EVERY 5000


#define NGX_HTTP_ENGAGEMENT_SLOTS          32
#define NGX_HTTP_ENGAGEMENT_HIST           10

/* figures kept in the counters zone, updated with atomics, no lock */
typedef struct {
    ngx_atomic_t                  received;
    ngx_atomic_t                  counted_views;
    ngx_atomic_t                  counted_engaged;
    ngx_atomic_t                  counted_replays;
    ngx_atomic_t                  not_counted_duplicate;
    ngx_atomic_t                  not_counted_duplicate_request;
    ngx_atomic_t                  not_counted_below_policy;
    ngx_atomic_t                  invalid;
    ngx_atomic_t                  too_large;
    ngx_atomic_t                  bad_method;
    ngx_atomic_t                  bad_content_type;
    ngx_atomic_t                  unavailable;
    ngx_atomic_t                  summary_requests;
    ngx_atomic_t                  alloc_failures;
    ngx_atomic_t                  flushes;           /* flush rounds sent */
    ngx_atomic_t                  flush_ok;          /* content commands */
    ngx_atomic_t                  flush_failed;
    ngx_atomic_t                  flush_repeats;     /* already applied */
    ngx_atomic_t                  flush_latency_ms;  /* sum */
    ngx_atomic_t                  reads_ok;
    ngx_atomic_t                  reads_failed;
    ngx_atomic_t                  read_unavailable;
    ngx_atomic_t                  redis_connects;
    ngx_atomic_t                  redis_disconnects;
    ngx_atomic_t                  redis_errors;
    ngx_atomic_t                  redis_timeouts;
    ngx_atomic_t                  restored;          /* from the state file */
    ngx_atomic_t                  evicted_clean;     /* cache entries */
    ngx_atomic_t                  flush_rounds;      /* latency samples */
    ngx_atomic_t                  reactions_changed;
    ngx_atomic_t                  reactions_unchanged;
    ngx_atomic_t                  reactions_duplicate;
    ngx_atomic_t                  reactions_failed;
    ngx_atomic_t                  reactions_invalid;
    ngx_atomic_t                  rate_limited;      /* views, 429 */
    ngx_atomic_t                  reactions_limited; /* likes, 429 */
    ngx_atomic_t                  late_too_old;      /* ts out of window */
    ngx_atomic_t                  late_in_future;
    ngx_atomic_t                  flush_hist[NGX_HTTP_ENGAGEMENT_HIST];
    ngx_atomic_t                  redis_ready;       /* this slot's worker */
    /* guard.c: tokens by reason, bots, opted out (dropped, anonymous) */
    ngx_atomic_t  token_refused[NGX_HTTP_ENGAGEMENT_TOKEN_REASONS];
    ngx_atomic_t                  not_counted_bot;
    ngx_atomic_t                  not_counted_opted_out;
    ngx_atomic_t                  anonymous;
    ngx_atomic_t                  uv_dropped;  /* viewers left out */
    ngx_atomic_t                  flush_calls;       /* round commands */
    ngx_atomic_t                  flush_contents;    /* contents sent */
    ngx_atomic_t                  flush_buckets;     /* bucket writes */
    ngx_atomic_t                  flush_uniques;     /* viewer writes */
} ngx_http_engagement_stats_t;


/*
 * Figures are kept per worker slot (nginx's worker number), so workers
 * never contend for a cache line on the request path; the status
 * endpoint sums the slots. Atomic adds, since a worker of the old and the
 * new generation share a slot for a moment during a reload.
 */
#define ngx_http_engagement_slot(sh)                                          \
    (&(sh)->stats[ngx_worker % NGX_HTTP_ENGAGEMENT_SLOTS])
#define ngx_http_engagement_inc(sh, f)                                        \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_slot(sh)->f, 1)
#define ngx_http_engagement_add(sh, f, n)                                     \
    (void) ngx_atomic_fetch_add(&ngx_http_engagement_slot(sh)->f, n)


/* what both kinds of zone keep first: identity, index, secret */
typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    size_t                        shctx_size;
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   lru;
    uint64_t                      hash_key[2];
    ngx_atomic_t                  entries;
    time_t                        created;
    ngx_atomic_t                  full;        /* the last allocation failed */
} ngx_http_engagement_shctx_head_t;


/* the head's part of every shape (see NGX_HTTP_ENGAGEMENT_LAYOUT) */
#define NGX_HTTP_ENGAGEMENT_HEAD_SHAPE                                        \
    sizeof(ngx_http_engagement_shctx_head_t),                                 \
    offsetof(ngx_http_engagement_shctx_head_t, rbtree),                       \
    offsetof(ngx_http_engagement_shctx_head_t, sentinel),                     \
    offsetof(ngx_http_engagement_shctx_head_t, lru),                          \
    offsetof(ngx_http_engagement_shctx_head_t, hash_key),                     \
    offsetof(ngx_http_engagement_shctx_head_t, entries),                      \
    offsetof(ngx_http_engagement_shctx_head_t, full),                         \
    sizeof(ngx_rbtree_node_t), sizeof(ngx_queue_t)


typedef struct {
    ngx_http_engagement_shctx_head_t  head;
    ngx_queue_t                       dirty;      /* pending, not in flight */
    ngx_queue_t                       inflight;   /* claimed by a flusher */
    ngx_queue_t                       slow;       /* only buckets or
                                                     viewers wait */
    uint64_t                          seq;        /* last round sequence */
    uint64_t                          stream;     /* this zone's start */
    ngx_atomic_t                      pending_nodes;
    ngx_atomic_t                      inflight_nodes;
    ngx_atomic_t                      slow_nodes;
    /*
     * Generations of flushing workers (under the lock): a reload that
     * keeps the zone and flushes it counts a new configuration; the
     * newest generation that started and how many of its workers live.
     */
    ngx_uint_t                        cycle_gen;
    ngx_uint_t                        running_gen;
    ngx_uint_t                        gen_live;
    ngx_http_engagement_stats_t       stats[NGX_HTTP_ENGAGEMENT_SLOTS];
} ngx_http_engagement_counters_shctx_t;


/*
 * A dedupe zone: its marks in one open-addressing table of fixed entries
 * (policy/dedupe.c), allocated whole when the zone is made; head.rbtree
 * and head.lru stay empty. head.entries counts the slots in use.
 */
typedef struct {
    ngx_http_engagement_shctx_head_t  head;
    ngx_atomic_t                  inserts;     /* marks set */
    ngx_atomic_t                  hits;        /* marks found live */
    ngx_atomic_t                  expired;     /* lapsed entries reused */
    ngx_atomic_t                  evictions;   /* live entries reused */
    ngx_atomic_t                  alloc_failures;
    void                         *table;       /* the entries */
    ngx_uint_t                    buckets;     /* of 8 entries */
} ngx_http_engagement_dedupe_shctx_t;


/* one zone of either kind, as seen by one process */
struct ngx_http_engagement_zone_s {
    ngx_str_t                     name;
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    void                         *sh;          /* the *_shctx_t */
    ngx_uint_t                    dedupe;      /* 1: a dedupe zone */
    ngx_uint_t                    redis;       /* counts are flushed */
    ngx_uint_t                    nreactions;  /* reaction types (Redis) */
    ngx_str_t                     state_file;  /* full path, 0-terminated */
    ngx_msec_t                    cache_ttl;   /* Redis totals kept this
                                                  long before a re-read */
    ngx_msec_t                    last_full_log;
    ngx_uint_t                    gen;         /* this worker's generation */
    ngx_uint_t                    left;        /* exiting, left it */
};


/* what a reload that changes a zone's size does to it */
typedef enum {
    NGX_HTTP_ENGAGEMENT_RESIZE_REFUSE = 0,  /* the counts would be lost */
    NGX_HTTP_ENGAGEMENT_RESIZE_WARN,        /* starts empty, with a warning */
    NGX_HTTP_ENGAGEMENT_RESIZE_QUIET        /* starts empty */
} ngx_http_engagement_resize_e;


/* one kind of zone, as the generic zone code creates and checks it */
typedef struct {
    const char                   *directive;   /* names it in messages */
    uint32_t                      magic;
    size_t                        size;        /* its whole *_shctx_t */
    ngx_rbtree_insert_pt          insert;
    ngx_http_engagement_resize_e  resize;
    const size_t                 *shape;       /* sizes and offsets kept */
    ngx_uint_t                    nshape;
} ngx_http_engagement_zone_kind_t;


typedef struct {
    uint64_t                      views;
    uint64_t                      engaged;
    uint64_t                      replays;
} ngx_http_engagement_counts_t;


#define ngx_http_engagement_nonzero(c)                                        \
    ((c)->views || (c)->engaged || (c)->replays)


#define NGX_HTTP_ENGAGEMENT_REACTIONS_MAX  16
#define NGX_HTTP_ENGAGEMENT_REACTION_LEN   32
/* ,"likes":n,"reactions":{...} at its longest */
#define NGX_HTTP_ENGAGEMENT_REACTIONS_LEN                                     \
    (sizeof(",\"likes\":,\"reactions\":{}") + NGX_INT64_LEN                   \
     + NGX_HTTP_ENGAGEMENT_REACTIONS_MAX                                      \
       * (NGX_HTTP_ENGAGEMENT_REACTION_LEN + 4 + NGX_INT64_LEN))


/* what a summary shows of one content */
typedef struct {
    ngx_http_engagement_counts_t  counts;     /* totals incl. local deltas */
    uint64_t                      uniques;
    uint64_t                      pending;    /* local deltas not in Redis */
    ngx_uint_t                    known;      /* Redis totals are known */
    ngx_uint_t                    stale;      /* uniques to be re-read */
    ngx_uint_t                    refresh;    /* caller should re-read */
    ngx_uint_t                    nreactions; /* 0: none shown */
    uint64_t                      reactions[NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];
} ngx_http_engagement_view_t;


/*
 * One content's part of a flush round: its totals' deltas, and, when
 * they are due, one minute's bucket deltas (bucket, of the minute
 * bucket_since) and the viewer hashes. A round is a group of claims of
 * one zone under one batch (stream, seq), applied by Redis at most once;
 * a resend sends the same group.
 */
typedef struct {
    void                         *node;
    ngx_http_engagement_zone_t   *zone;
    uint64_t                      stream;
    uint64_t                      seq;
    ngx_http_engagement_counts_t  delta;
    ngx_http_engagement_counts_t  bucket;
    time_t                        since;
    time_t                        bucket_since;
    uint64_t                     *uv;
    ngx_uint_t                    uv_n;
    ngx_uint_t                    full;        /* totals to be read whole */
    ngx_uint_t                    legacy;      /* an earlier version's batch */
    u_char                        id[NGX_HTTP_ENGAGEMENT_ID_MAX];
    size_t                        id_len;
} ngx_http_engagement_claim_t;


/*
 * The start of every node keyed by a 64-bit hash (dedupe marks, rate limit
 * buckets): the node types begin with these fields, in this order.
 */
typedef struct {
    ngx_rbtree_node_t             node;        /* key: the hash (its low
                                                  half on 32-bit ones) */
    ngx_queue_t                   queue;       /* LRU */
#if (NGX_PTR_SIZE == 4)
    uint32_t                      hash_hi;
#endif
} ngx_http_engagement_hnode_t;


/* hash.c */
typedef ngx_uint_t (*ngx_http_engagement_less_pt)(ngx_rbtree_node_t *a,
    ngx_rbtree_node_t *b);

void ngx_http_engagement_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel,
    ngx_http_engagement_less_pt less);
uint64_t ngx_http_engagement_siphash(const uint64_t key[2], const u_char *in,
    size_t len);
uint64_t ngx_http_engagement_siphash13(const uint64_t key[2], const u_char *in,
    size_t len);
uint64_t ngx_http_engagement_idhash(const uint64_t key[2], const u_char *in,
    size_t len);
void ngx_http_engagement_hnode_set(ngx_http_engagement_hnode_t *hn,
    uint64_t hash);
void ngx_http_engagement_hnode_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
ngx_http_engagement_hnode_t *ngx_http_engagement_hnode_lookup(
    ngx_rbtree_t *tree, uint64_t hash);
void ngx_http_engagement_random_key(uint64_t key[2]);

/* the first counters zone: where process-wide figures (Redis) are kept */
extern ngx_http_engagement_counters_shctx_t  *ngx_http_engagement_global_sh;

extern ngx_uint_t  ngx_http_engagement_hist_bounds[NGX_HTTP_ENGAGEMENT_HIST];

/* zone.c: zones in general, their directives */
void *ngx_http_engagement_zone_table(ngx_slab_pool_t *shpool, size_t size,
    size_t unit, ngx_uint_t min, ngx_uint_t *n);
void ngx_http_engagement_zone_log_ctx(ngx_slab_pool_t *shpool,
    const char *kind, ngx_str_t *name);
ngx_int_t ngx_http_engagement_zone_resized(ngx_shm_zone_t *shm_zone,
    const ngx_http_engagement_zone_kind_t *kind);
ngx_http_engagement_shctx_head_t *ngx_http_engagement_zone_attach(
    ngx_shm_zone_t *shm_zone, void *data,
    const ngx_http_engagement_zone_kind_t *kind);
ngx_int_t ngx_http_engagement_zone_init(ngx_shm_zone_t *shm_zone, void *data,
    const ngx_http_engagement_zone_kind_t *kind);
void ngx_http_engagement_zone_link(ngx_http_engagement_shctx_head_t *head,
    ngx_rbtree_node_t *node, ngx_queue_t *lru);
void ngx_http_engagement_zone_unlink(ngx_slab_pool_t *shpool,
    ngx_http_engagement_shctx_head_t *head, ngx_rbtree_node_t *node,
    ngx_queue_t *lru);
void ngx_http_engagement_zone_touch(ngx_http_engagement_shctx_head_t *head,
    ngx_queue_t *lru);
ngx_uint_t ngx_http_engagement_zone_log_due(ngx_msec_t *last);
void ngx_http_engagement_zone_log_full(ngx_http_engagement_zone_t *z,
    ngx_log_t *log);
ngx_int_t ngx_http_engagement_zone_parse(ngx_conf_t *cf, ngx_str_t *value,
    const char *what, const char *example, ngx_str_t *name, ssize_t *size);
ngx_shm_zone_t *ngx_http_engagement_zone_shm(ngx_conf_t *cf, ngx_str_t *name,
    size_t size, ngx_shm_zone_init_pt init, void *data);
char *ngx_http_engagement_zone_size(ngx_conf_t *cf, ngx_command_t *cmd,
    ssize_t *size);
uint64_t ngx_http_engagement_monotonic_ms(void);
ngx_uint_t ngx_http_engagement_turn_due(ngx_atomic_t *at, ngx_msec_t period);
ngx_http_engagement_zone_t *ngx_http_engagement_zone_get(ngx_conf_t *cf,
    ngx_str_t *name, size_t size, ngx_uint_t dedupe, ngx_uint_t declare);
char *ngx_http_engagement_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* counters.c: the counters zone */
ngx_int_t ngx_http_engagement_counters_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
uint64_t ngx_http_engagement_counters_hash(ngx_http_engagement_zone_t *z,
    ngx_str_t *id);
ngx_int_t ngx_http_engagement_counters_add_locked(
    ngx_http_engagement_zone_t *z, ngx_str_t *id, uint64_t hash,
    ngx_http_engagement_counts_t *delta, uint64_t uv,
    ngx_http_engagement_view_t *result);
void ngx_http_engagement_counters_get(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_view_t *result);
void ngx_http_engagement_counters_cache(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *totals,
    uint64_t uniques, uint64_t *reactions,
    ngx_http_engagement_view_t *result);
void ngx_http_engagement_counters_reactions(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, uint64_t *reactions);

/* how a flusher claims: its limits and intervals */
typedef struct {
    ngx_uint_t                    max;         /* new contents per round */
    ngx_uint_t                    cap;         /* room in the claims array */
    ngx_uint_t                    need;        /* out: room a resend needs */
    ngx_uint_t                    resend;      /* out: a round resent */
    ngx_uint_t                    uv_left;     /* viewer hashes left */
    ngx_msec_t                    reclaim;     /* a silent claim is taken */
    ngx_msec_t                    buckets;     /* bucket write interval */
    ngx_msec_t                    uniques;     /* viewer write interval */
    ngx_uint_t                    force;       /* all is due (final flush) */
} ngx_http_engagement_claim_conf_t;


/* a round's answer for one content: the totals it knows, -1 unknown */
typedef struct {
    int64_t                       totals[3];
    uint64_t                     *reactions;   /* NULL: none answered */
    char                         *error;       /* refused by Redis */
} ngx_http_engagement_answer_t;


/* queue.c: the flush queue of the counters zone */
ngx_uint_t ngx_http_engagement_counters_claim(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_t *claims, ngx_http_engagement_claim_conf_t *cc);
void ngx_http_engagement_counters_confirm(ngx_http_engagement_claim_t *cl,
    ngx_http_engagement_answer_t *a);
void ngx_http_engagement_counters_release(ngx_http_engagement_claim_t *cl,
    ngx_uint_t renumber);
time_t ngx_http_engagement_counters_oldest(ngx_http_engagement_zone_t *z);
void ngx_http_engagement_counters_join(ngx_http_engagement_zone_t *z);
ngx_uint_t ngx_http_engagement_counters_leave(ngx_http_engagement_zone_t *z);

/* state.c: the state file */
void ngx_http_engagement_state_load(ngx_http_engagement_zone_t *z,
    ngx_log_t *log);
ngx_int_t ngx_http_engagement_state_save(ngx_cycle_t *cycle,
    ngx_http_engagement_zone_t *z, ngx_fd_t fd);
ngx_int_t ngx_http_engagement_state_claim(ngx_cycle_t *cycle,
    ngx_str_t *state_file);
void ngx_http_engagement_state_write(ngx_cycle_t *cycle, ngx_array_t *zones,
    ngx_str_t *state_file);


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_STORE_H_INCLUDED_ */
