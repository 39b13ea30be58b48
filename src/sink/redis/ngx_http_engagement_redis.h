
/*
 * sink/redis/: the Redis side of the module. The per-worker connection
 * (redis.c, hiredis on nginx's event loop through redis_adapter.c), the
 * engagement_redis directive (redis_conf.c), the flush of the counters
 * zone's deltas (flush.c), the Lua scripts (redis_scripts.c) and the
 * reading of their replies (redis_reply.c); in cluster mode
 * (engagement_redis cluster ...) a connection per master, routing by
 * hash slot and the slot map (cluster.c, cluster_map.c, what cluster
 * mode refuses: cluster_conf.c). It takes the deltas only
 * through store/'s flush queue, and knows nothing of requests.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_REDIS_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_REDIS_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


/*
 * TTLs (s): a batch key lives a day (a round resent later than that, from
 * a state file of a longer stop, is not recognised); buckets: minutes ~8
 * days, hours ~400 days, days ~3 years.
 */
#define NGX_HTTP_ENGAGEMENT_TTL_BATCH   "86400"
#define NGX_HTTP_ENGAGEMENT_TTL_MINUTE  "691200"
#define NGX_HTTP_ENGAGEMENT_TTL_HOUR    "34560000"
#define NGX_HTTP_ENGAGEMENT_TTL_DAY     "95040000"
/* a day's HyperLogLog of viewers: about 3 months (92 days) */
#define NGX_HTTP_ENGAGEMENT_TTL_UV_DAY  "7948800"


/* creator milestones (milestone.c): thresholds as their text */
typedef struct {
    ngx_array_t                  *views;       /* ngx_str_t, increasing */
    ngx_array_t                  *likes;
    ngx_str_t                     channel;     /* PUBLISH's */
    ngx_uint_t                    rate;        /* PUBLISHes a minute */
    ngx_str_t                     rate_text;
    ngx_uint_t                    published;   /* the directive was seen */
} ngx_http_engagement_milestone_conf_t;

/* thresholds per metric; milestone_args() gives at most 5 more */
#define NGX_HTTP_ENGAGEMENT_MILESTONE_MAX   32
#define NGX_HTTP_ENGAGEMENT_MILESTONE_ARGS  (NGX_HTTP_ENGAGEMENT_MILESTONE_MAX + 5)

/* the text milestone_args() makes: a count, a minute, a unix time */
#define NGX_HTTP_ENGAGEMENT_MILESTONE_BUF   (3 * NGX_INT64_LEN + 16)


typedef enum {
    NGX_HTTP_ENGAGEMENT_REDIS_IDLE = 0,
    NGX_HTTP_ENGAGEMENT_REDIS_CONNECTING,
    NGX_HTTP_ENGAGEMENT_REDIS_AUTHENTICATING,
    NGX_HTTP_ENGAGEMENT_REDIS_READY,
    NGX_HTTP_ENGAGEMENT_REDIS_FAILED
} ngx_http_engagement_redis_state_e;


/* one address of engagement_redis, resolved at configuration time */
typedef struct {
    ngx_str_t                     url;          /* as configured */
    u_char                        ip[NGX_SOCKADDR_STRLEN + 1];
    int                           port;
} ngx_http_engagement_redis_addr_t;


struct ngx_http_engagement_redis_conf_s {
    ngx_str_t                     url;          /* as configured */
    u_char                        ip[NGX_SOCKADDR_STRLEN + 1];
    int                           port;
    ngx_uint_t                    cluster;      /* engagement_redis cluster */
    ngx_array_t                  *seeds;        /* redis_addr_t, cluster */
    ngx_uint_t                    wait;         /* WAIT n after a write */
    ngx_msec_t                    wait_timeout;
    ngx_msec_t                    refresh;      /* slot map refresh, ms */
    ngx_str_t                     password;
    ngx_uint_t                    db;
    ngx_msec_t                    connect_timeout;
    ngx_msec_t                    timeout;
    ngx_msec_t                    backoff_min;
    ngx_msec_t                    backoff_max;
    ngx_msec_t                    buckets;      /* bucket write interval */
    ngx_msec_t                    uniques;      /* viewer write interval */
};


/* the scripts, in their order in ngx_http_engagement_redis_scripts[] */
typedef enum {
    NGX_HTTP_ENGAGEMENT_SCRIPT_FLUSH = 0,
    NGX_HTTP_ENGAGEMENT_SCRIPT_READ,
    NGX_HTTP_ENGAGEMENT_SCRIPT_REACT,
    NGX_HTTP_ENGAGEMENT_SCRIPT_STATE,
    NGX_HTTP_ENGAGEMENT_SCRIPT_LIVE,
    NGX_HTTP_ENGAGEMENT_SCRIPT_RESUME,
    NGX_HTTP_ENGAGEMENT_SCRIPT_HISTORY,
    NGX_HTTP_ENGAGEMENT_SCRIPT_FORGET,
    NGX_HTTP_ENGAGEMENT_SCRIPT_SERIES,
    NGX_HTTP_ENGAGEMENT_SCRIPT_TREND,
    NGX_HTTP_ENGAGEMENT_SCRIPT_TREND_TOP,
    NGX_HTTP_ENGAGEMENT_SCRIPT_TREND_COUNTS,
    NGX_HTTP_ENGAGEMENT_SCRIPT_UV_DAY,
    NGX_HTTP_ENGAGEMENT_SCRIPT_MS_FWD,
    NGX_HTTP_ENGAGEMENT_SCRIPT_GLOBAL,
    NGX_HTTP_ENGAGEMENT_SCRIPTS
} ngx_http_engagement_script_e;


/* redis_scripts.c: the Lua source of each script */
extern const char  *ngx_http_engagement_redis_scripts[];


/* a reply callback: reply is NULL when the command failed or timed out */
typedef void (*ngx_http_engagement_redis_cb_pt)(redisReply *reply,
    void *data);


/* redis_adapter.c */
ngx_int_t ngx_http_engagement_redis_attach(redisAsyncContext *ac,
    ngx_log_t *log);

/* redis_conf.c */
char *ngx_http_engagement_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* redis.c: the connection (or, in cluster mode, cluster.c's) */
ngx_int_t ngx_http_engagement_redis_start(ngx_cycle_t *cycle,
    ngx_http_engagement_redis_conf_t *rcf);
void ngx_http_engagement_redis_stop(void);
ngx_uint_t ngx_http_engagement_redis_ready(void);
ngx_msec_t ngx_http_engagement_redis_down_for(void);
ngx_int_t ngx_http_engagement_redis_send(ngx_http_engagement_redis_cb_pt cb,
    void *data, int argc, const char **argv, const size_t *argvlen);
ngx_int_t ngx_http_engagement_redis_eval(ngx_uint_t script,
    ngx_http_engagement_redis_cb_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen);
u_char *ngx_http_engagement_redis_format_cmd(int npre, const char **pre,
    const size_t *prelen, int argc, const char **argv, const size_t *argvlen,
    size_t *size);

/* cluster.c: Redis Cluster (engagement_redis cluster ...) */
#define NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS  16384

ngx_int_t ngx_http_engagement_cluster_start(ngx_cycle_t *cycle,
    ngx_http_engagement_redis_conf_t *rcf);
void ngx_http_engagement_cluster_stop(void);
ngx_uint_t ngx_http_engagement_cluster_ready(void);
ngx_msec_t ngx_http_engagement_cluster_down_for(void);
ngx_int_t ngx_http_engagement_cluster_send(ngx_int_t script,
    ngx_http_engagement_redis_cb_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen);
ngx_uint_t ngx_http_engagement_cluster_slot(const u_char *key, size_t len);
ngx_str_t *ngx_http_engagement_cluster_tag(ngx_uint_t slot);
ngx_uint_t ngx_http_engagement_redis_clustered(void);

/* cluster_conf.c: what cluster mode refuses at nginx -t */
ngx_int_t ngx_http_engagement_cluster_check(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf);

/* redis_reply.c */
ngx_int_t ngx_http_engagement_reply_totals(redisReply *reply,
    ngx_http_engagement_counts_t *totals, uint64_t *uniques,
    ngx_int_t *applied, uint64_t *reactions, ngx_uint_t nreactions);

/* flush.c */
ngx_int_t ngx_http_engagement_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
void ngx_http_engagement_flush_stop(void);

/* live_share.c */
ngx_int_t ngx_http_engagement_live_share_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);

/* resume_flush.c */
ngx_int_t ngx_http_engagement_resume_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);

/* series_flush.c */
ngx_int_t ngx_http_engagement_series_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
ngx_uint_t ngx_http_engagement_series_flush_done(void);
ngx_uint_t ngx_http_engagement_series_cluster_safe(void);



/* global_flush.c: global dedupe's rounds */
ngx_int_t ngx_http_engagement_global_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
ngx_uint_t ngx_http_engagement_global_flush_done(void);

/* milestone_fwd.c: milestones in cluster mode, the second step */
u_char *ngx_http_engagement_milestone_outkey(u_char *p, ngx_uint_t slot);
ngx_uint_t ngx_http_engagement_milestone_pending(void);
void ngx_http_engagement_milestone_touch(ngx_uint_t slot);
ngx_int_t ngx_http_engagement_milestone_fwd_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
void ngx_http_engagement_milestone_fwd_stop(void);

/* milestone.c */
char *ngx_http_engagement_milestone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_milestone_publish(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_engagement_milestone_check(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf);
ngx_uint_t ngx_http_engagement_milestone_argc(
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t metric);
ngx_uint_t ngx_http_engagement_milestone_args(
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t metric,
    const char **argv, size_t *lens, u_char *buf);


#endif /* _NGX_HTTP_ENGAGEMENT_REDIS_H_INCLUDED_ */
