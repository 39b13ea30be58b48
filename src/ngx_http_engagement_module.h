
/*
 * ngx_http_engagement_module: shared types and the interfaces between the
 * module's files (configuration, event parsing, policy, zones, handlers).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_MODULE_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_engagement_guard.h"


#define NGX_HTTP_ENGAGEMENT_VERSION        "0.1.0"

/*
 * Bumped whenever a structure kept in a shared memory zone changes; a
 * reload that finds a zone written with another layout is refused.
 */
#ifndef NGX_HTTP_ENGAGEMENT_LAYOUT
#define NGX_HTTP_ENGAGEMENT_LAYOUT         3
#endif

#define NGX_HTTP_ENGAGEMENT_COUNTERS_MAGIC 0x45474331   /* "EGC1" */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_MAGIC   0x45474431   /* "EGD1" */

#define NGX_HTTP_ENGAGEMENT_ID_MAX         128
/* an id with a short type prefix, as hashed into dedupe keys */
#define NGX_HTTP_ENGAGEMENT_KEY_MAX        (NGX_HTTP_ENGAGEMENT_ID_MAX + 8)

#define NGX_HTTP_ENGAGEMENT_DEFAULT_ZONE   "engagement"
#define NGX_HTTP_ENGAGEMENT_DEFAULT_DEDUPE "engagement_dedupe"
#define NGX_HTTP_ENGAGEMENT_DEFAULT_ZSIZE  (8 * 1024 * 1024)
#define NGX_HTTP_ENGAGEMENT_DEFAULT_DSIZE  (16 * 1024 * 1024)

/* engagement_limit rules per location */
#define NGX_HTTP_ENGAGEMENT_LIMITS         8

/* the longest watch a single event may report: 7 days */
#define NGX_HTTP_ENGAGEMENT_DURATION_MAX   604800000LL


typedef enum {
    NGX_HTTP_ENGAGEMENT_NONE = 0,
    NGX_HTTP_ENGAGEMENT_VIEW,
    NGX_HTTP_ENGAGEMENT_SUMMARY,
    NGX_HTTP_ENGAGEMENT_STATUS,
    NGX_HTTP_ENGAGEMENT_HEALTH,
    NGX_HTTP_ENGAGEMENT_LIKE,
    NGX_HTTP_ENGAGEMENT_STATE
} ngx_http_engagement_endpoint_e;


typedef enum {
    NGX_HTTP_ENGAGEMENT_KEY_VIEWER = 0,
    NGX_HTTP_ENGAGEMENT_KEY_SESSION,
    NGX_HTTP_ENGAGEMENT_KEY_CLIENT
} ngx_http_engagement_key_e;


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


typedef struct {
    ngx_http_engagement_shctx_head_t  head;
    ngx_queue_t                       dirty;      /* pending, not in flight */
    ngx_queue_t                       inflight;   /* claimed by a flusher */
    uint64_t                          seq;        /* last flush sequence */
    ngx_atomic_t                      pending_nodes;
    ngx_atomic_t                      inflight_nodes;
    ngx_http_engagement_stats_t       stats[NGX_HTTP_ENGAGEMENT_SLOTS];
} ngx_http_engagement_counters_shctx_t;


typedef struct {
    ngx_http_engagement_shctx_head_t  head;
    ngx_atomic_t                  inserts;
    ngx_atomic_t                  hits;
    ngx_atomic_t                  expired;
    ngx_atomic_t                  evictions;
    ngx_atomic_t                  alloc_failures;
} ngx_http_engagement_dedupe_shctx_t;


/* one zone of either kind, as seen by one process */
typedef struct {
    ngx_str_t                     name;
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    void                         *sh;          /* the *_shctx_t */
    ngx_uint_t                    dedupe;      /* 1: a dedupe zone */
    ngx_uint_t                    redis;       /* counts are flushed */
    ngx_uint_t                    nreactions;  /* reaction types (Redis) */
    ngx_str_t                     state_file;  /* full path, 0-terminated */
    ngx_msec_t                    last_full_log;
} ngx_http_engagement_zone_t;


typedef struct {
    uint64_t                      views;
    uint64_t                      engaged;
    uint64_t                      replays;
} ngx_http_engagement_counts_t;


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
    ngx_uint_t                    refresh;    /* caller should re-read */
    ngx_uint_t                    nreactions; /* 0: none shown */
    uint64_t                      reactions[NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];
} ngx_http_engagement_view_t;


/* one content's deltas claimed for a flush */
typedef struct {
    void                         *node;
    ngx_http_engagement_zone_t   *zone;
    uint64_t                      seq;
    ngx_http_engagement_counts_t  delta;
    time_t                        since;
    uint64_t                     *uv;
    ngx_uint_t                    uv_n;
    u_char                        id[NGX_HTTP_ENGAGEMENT_ID_MAX];
    size_t                        id_len;
} ngx_http_engagement_claim_t;


typedef struct ngx_http_engagement_redis_conf_s
    ngx_http_engagement_redis_conf_t;
typedef struct ngx_http_engagement_writer_conf_s
    ngx_http_engagement_writer_conf_t;


typedef struct {
    ngx_array_t                   zones;       /* ngx_http_engagement_zone_t* */
    ngx_uint_t                    used;        /* a location uses the module */
    ngx_http_engagement_redis_conf_t  *redis;
    ngx_msec_t                    flush_interval;
    ngx_msec_t                    exit_deadline;
    ngx_msec_t                    cache_ttl;
    ngx_uint_t                    flush_batch;
    ngx_msec_t                    health_grace;
    ngx_array_t                  *reactions;   /* ngx_str_t: the types */
    ngx_str_t                     edge_id;
    ngx_str_t                     state_file;
    void                         *limit;       /* limit.c: zones, rules */
    ngx_http_engagement_writer_conf_t  *writer;
} ngx_http_engagement_main_conf_t;


typedef struct {
    ngx_http_engagement_endpoint_e  endpoint;
    ngx_http_engagement_zone_t     *counters;
    ngx_http_engagement_zone_t     *dedupe;
    ngx_str_t                       counters_name;
    ngx_str_t                       dedupe_name;
    ngx_uint_t                      dedupe_key;
    ngx_msec_t                      dedupe_window;
    ngx_msec_t                      view_after;
    ngx_msec_t                      engaged_after;
    size_t                          max_body_size;
    ngx_uint_t                      batch_max;
    ngx_array_t                    *limits;        /* engagement_limit */
    ngx_msec_t                      ts_back;       /* engagement_ts_window */
    ngx_msec_t                      ts_ahead;
    ngx_http_engagement_guard_conf_t  guard;
} ngx_http_engagement_loc_conf_t;


/* a view event after parsing and validation */
typedef struct {
    ngx_str_t                     content_id;
    ngx_str_t                     session_id;
    ngx_str_t                     viewer_id;
    ngx_str_t                     request_id;
    ngx_str_t                     channel_id;
    ngx_str_t                     category;
    ngx_str_t                     source;
    ngx_str_t                     device;
    int64_t                       duration_ms;     /* -1: absent */
    int64_t                       ts;              /* -1: absent */
    ngx_uint_t                    replay;
    ngx_str_t                     token;           /* empty: absent */
    ngx_uint_t                    opt_out;         /* "optOut": true */
    ngx_uint_t                    anonymous;       /* set by the guard */
} ngx_http_engagement_event_t;


/* a like, reaction change or unlike after parsing */
typedef struct {
    ngx_str_t                     content_id;
    ngx_str_t                     user_id;
    ngx_str_t                     reaction;        /* empty: like, or none */
    ngx_str_t                     request_id;
    ngx_str_t                     token;           /* empty: absent */
} ngx_http_engagement_reaction_t;


/* why an event was refused as malformed: the field and a message */
typedef struct {
    const char                   *field;       /* NULL: the body itself */
    const char                   *message;
    u_char                        detail[160];
    size_t                        detail_len;
} ngx_http_engagement_error_t;


typedef struct {
    ngx_uint_t                    counted;     /* 1: at least one metric */
    ngx_uint_t                    view;
    ngx_uint_t                    engaged;
    ngx_uint_t                    replay;
    const char                   *reason;      /* when not counted */
    ngx_http_engagement_view_t    shown;
} ngx_http_engagement_outcome_t;


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


extern ngx_module_t  ngx_http_engagement_module;


/* hash.c */
uint64_t ngx_http_engagement_siphash(const uint64_t key[2], const u_char *in,
    size_t len);
void ngx_http_engagement_hnode_set(ngx_http_engagement_hnode_t *hn,
    uint64_t hash);
void ngx_http_engagement_hnode_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
ngx_http_engagement_hnode_t *ngx_http_engagement_hnode_lookup(
    ngx_rbtree_t *tree, uint64_t hash);
void ngx_http_engagement_random_key(uint64_t key[2]);

/* event.c */
ngx_int_t ngx_http_engagement_id_valid(const u_char *p, size_t len);
ngx_int_t ngx_http_engagement_event_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_error_t *err);
ngx_int_t ngx_http_engagement_reaction_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_reaction_t *re,
    ngx_http_engagement_error_t *err);

/* the first counters zone: where process-wide figures (Redis) are kept */
extern ngx_http_engagement_counters_shctx_t  *ngx_http_engagement_global_sh;

extern ngx_uint_t  ngx_http_engagement_hist_bounds[NGX_HTTP_ENGAGEMENT_HIST];

/* shm.c: zones in general, and the counters zone */
ngx_int_t ngx_http_engagement_zone_init(ngx_shm_zone_t *shm_zone, void *data,
    uint32_t magic, size_t size, ngx_rbtree_insert_pt insert,
    const char *directive);
ngx_int_t ngx_http_engagement_counters_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_int_t ngx_http_engagement_counters_ensure(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash);
ngx_int_t ngx_http_engagement_counters_add(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *delta,
    uint64_t uv, ngx_http_engagement_view_t *result);
void ngx_http_engagement_counters_get(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_view_t *result);
void ngx_http_engagement_counters_cache(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, ngx_http_engagement_counts_t *totals,
    uint64_t uniques, uint64_t *reactions,
    ngx_http_engagement_view_t *result);
void ngx_http_engagement_counters_reactions(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash, uint64_t *reactions);
ngx_uint_t ngx_http_engagement_counters_claim(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_claim_t *claims, ngx_uint_t max, ngx_msec_t reclaim);
void ngx_http_engagement_counters_confirm(ngx_http_engagement_claim_t *cl,
    ngx_http_engagement_counts_t *totals, uint64_t uniques,
    uint64_t *reactions);
void ngx_http_engagement_counters_release(ngx_http_engagement_claim_t *cl);
time_t ngx_http_engagement_counters_oldest(ngx_http_engagement_zone_t *z);
ngx_int_t ngx_http_engagement_state_save(ngx_cycle_t *cycle,
    ngx_http_engagement_zone_t *z, ngx_fd_t fd);
ngx_int_t ngx_http_engagement_state_restore(ngx_http_engagement_zone_t *z,
    u_char *p, u_char *end, ngx_log_t *log);
uint64_t ngx_http_engagement_counters_hash(ngx_http_engagement_zone_t *z,
    ngx_str_t *id);
void ngx_http_engagement_zone_log_full(ngx_http_engagement_zone_t *z,
    ngx_log_t *log);

/* dedupe.c */
ngx_int_t ngx_http_engagement_dedupe_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_int_t ngx_http_engagement_dedupe_check_set(ngx_http_engagement_zone_t *z,
    uint64_t *hashes, ngx_uint_t n, ngx_msec_t window, ngx_uint_t *fresh);
void ngx_http_engagement_dedupe_remove(ngx_http_engagement_zone_t *z,
    uint64_t hash);
uint64_t ngx_http_engagement_dedupe_hash(ngx_http_engagement_zone_t *z,
    u_char kind, ngx_str_t *a, ngx_str_t *b);

/* policy.c */
ngx_int_t ngx_http_engagement_policy_apply(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_outcome_t *out);

/* guard.c: NGX_DECLINED, or the answer sent for the event */
ngx_int_t ngx_http_engagement_guard_check(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev);
ngx_int_t ngx_http_engagement_guard_like_token(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_str_t *token,
    ngx_str_t *content_id, ngx_str_t *user_id);

/* handler.c */
ngx_int_t ngx_http_engagement_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);
ngx_int_t ngx_http_engagement_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_engagement_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *message);
u_char *ngx_http_engagement_json_escape(u_char *dst, u_char *end,
    u_char *src, size_t len);
u_char *ngx_http_engagement_reactions_json(u_char *p, uint64_t *counts,
    ngx_uint_t n);
ngx_int_t ngx_http_engagement_body_get(ngx_http_request_t *r, size_t max,
    u_char **data, size_t *len);
ngx_int_t ngx_http_engagement_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message);
ngx_int_t ngx_http_engagement_method_not_allowed(ngx_http_request_t *r,
    const char *allow, const char *message);
ngx_int_t ngx_http_engagement_json_content_type(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_send_error_detail(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *message, u_char *detail, size_t detail_len);
ngx_int_t ngx_http_engagement_unavailable(ngx_http_request_t *r,
    const char *message);

/* flush.c */
ngx_int_t ngx_http_engagement_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
void ngx_http_engagement_flush_stop(void);

/* writer.c: the durable writer (events to an HTTP sink, spool) */
char *ngx_http_engagement_writer_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_engagement_writer_init_conf(
    ngx_http_engagement_main_conf_t *emcf);
ngx_int_t ngx_http_engagement_writer_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
void ngx_http_engagement_writer_stop(ngx_cycle_t *cycle);
ngx_int_t ngx_http_engagement_writer_reserve(ngx_http_request_t *r,
    ngx_http_engagement_event_t *ev, void **res);
ngx_int_t ngx_http_engagement_writer_reserve_reaction(ngx_http_request_t *r,
    ngx_http_engagement_reaction_t *re, ngx_str_t *state, void **res);
void ngx_http_engagement_writer_commit(void *res, ngx_uint_t counted,
    const char *reason);
void ngx_http_engagement_writer_commit_reaction(void *res,
    ngx_uint_t counted, const char *reason, ngx_str_t *previous);
void ngx_http_engagement_writer_cancel(void *res);
size_t ngx_http_engagement_writer_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_writer_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);

/* reaction.c */
ngx_int_t ngx_http_engagement_reaction_handler(ngx_http_request_t *r);

/* limit.c: rate limits */
char *ngx_http_engagement_limit_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_engagement_limit_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_limit_check(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);
size_t ngx_http_engagement_limit_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_limit_status(ngx_http_request_t *r, u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json, ngx_uint_t first);

/* window.c: late events */
char *ngx_http_engagement_ts_window_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
const char *ngx_http_engagement_ts_check(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev);

/* status.c */
ngx_int_t ngx_http_engagement_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_health_handler(ngx_http_request_t *r);

/* variables.c: what the access log can say about a request */
ngx_int_t ngx_http_engagement_add_variables(ngx_conf_t *cf);
void ngx_http_engagement_set_outcome(ngx_http_request_t *r,
    const char *outcome, const char *reason, ngx_str_t *content_id);
void ngx_http_engagement_set_ids(ngx_http_request_t *r,
    ngx_str_t *content_id, ngx_str_t *viewer_id, ngx_str_t *session_id);



/*
 * Number writers for the request and flush paths, where ngx_sprintf's
 * format parsing was a tenth of the module's own instructions.
 */

static ngx_inline u_char *
ngx_http_engagement_put_uint(u_char *p, uint64_t n)
{
    u_char   tmp[NGX_INT64_LEN], *t;

    t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, t, tmp + sizeof(tmp) - t);
}


/* n as exactly width digits, with leading zeros (width <= 20) */
static ngx_inline u_char *
ngx_http_engagement_put_digits(u_char *p, uint64_t n, ngx_uint_t width)
{
    u_char  *q;

    for (q = p + width; q > p; n /= 10) {
        *--q = (u_char) ('0' + n % 10);
    }

    return p + width;
}


/* 16 lowercase hex digits */
static ngx_inline u_char *
ngx_http_engagement_put_hex64(u_char *p, uint64_t h)
{
    ngx_uint_t  i;

    for (i = 16; i; i--) {
        p[i - 1] = "0123456789abcdef"[h & 0xf];
        h >>= 4;
    }

    return p + 16;
}


#endif /* _NGX_HTTP_ENGAGEMENT_MODULE_H_INCLUDED_ */
