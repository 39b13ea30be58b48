
/*
 * cluster.c and cluster_map.c: the nodes (one connection per master),
 * the slot map and the state they share. Not for other files.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_CLUSTER_INT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_CLUSTER_INT_H_INCLUDED_


#include "sink/redis/ngx_http_engagement_redis.h"


#define NGX_HTTP_ENGAGEMENT_CLUSTER_SHA      40
#define NGX_HTTP_ENGAGEMENT_CLUSTER_NODES    64
#define NGX_HTTP_ENGAGEMENT_CLUSTER_NONE     0xff
#define NGX_HTTP_ENGAGEMENT_CLUSTER_REDIRECTS 5

/* the map is read again this often while a slot lacks a master (ms) */
#define NGX_HTTP_ENGAGEMENT_CLUSTER_FAST     250
/* and this often otherwise */
#define NGX_HTTP_ENGAGEMENT_CLUSTER_SLOW     10000


typedef struct {
    u_char                            ip[NGX_SOCKADDR_STRLEN + 1];
    int                               port;
    u_char                            name[NGX_SOCKADDR_STRLEN + 8];
    size_t                            name_len;
    redisAsyncContext                *ac;
    ngx_http_engagement_redis_state_e state;
    ngx_uint_t                        loaded;      /* scripts answered */
    ngx_uint_t                        outstanding;
    ngx_uint_t                        failing;
    ngx_uint_t                        used;        /* in the map, or a seed */
    ngx_msec_t                        backoff;
    ngx_event_t                       timeout_ev;
    ngx_event_t                       reconnect_ev;
} ngx_http_engagement_cnode_t;


/* one command of a caller, kept whole for a redirect */
typedef struct {
    ngx_http_engagement_redis_cb_pt   cb;
    void                             *data;
    ngx_int_t                         script;      /* -1: a plain command */
    ngx_uint_t                        redirects;
    ngx_uint_t                        evaled;      /* sent as EVAL */
    ngx_uint_t                        wait;        /* WAIT after the answer */
    redisReply                       *held;        /* the answer, in WAIT */
    u_char                           *cmd;
    size_t                            len;
    size_t                            rest;        /* after EVALSHA <sha> */
} ngx_http_engagement_ccall_t;


extern ngx_http_engagement_redis_conf_t        *ngx_http_engagement_crcf;
extern ngx_log_t                         *ngx_http_engagement_clog;
extern ngx_http_engagement_cnode_t              ngx_http_engagement_cnodes[
    NGX_HTTP_ENGAGEMENT_CLUSTER_NODES];
extern u_char                            ngx_http_engagement_cmap[
    NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS];
extern ngx_uint_t                        ngx_http_engagement_cmapped;
extern ngx_uint_t                        ngx_http_engagement_crefreshing;
extern ngx_uint_t                        ngx_http_engagement_cwanted;
extern ngx_uint_t                        ngx_http_engagement_cseed;
extern ngx_uint_t                        ngx_http_engagement_cstopping;
extern ngx_msec_t                        ngx_http_engagement_cdown_at;
extern ngx_msec_t                        ngx_http_engagement_crefreshed;
extern ngx_event_t                       ngx_http_engagement_crefresh_ev;
extern char                              ngx_http_engagement_csha[
    NGX_HTTP_ENGAGEMENT_SCRIPTS][NGX_HTTP_ENGAGEMENT_CLUSTER_SHA + 1];
extern ngx_uint_t                        ngx_http_engagement_cshas;


#define ngx_http_engagement_cstat(f)                                          \
    if (ngx_http_engagement_global_sh) {                                      \
        ngx_http_engagement_inc(ngx_http_engagement_global_sh, f);            \
    }


/* cluster.c */
void ngx_http_engagement_cnode_connect(ngx_http_engagement_cnode_t *n);
void ngx_http_engagement_cnode_fail(ngx_http_engagement_cnode_t *n,
    const char *why);
ngx_int_t ngx_http_engagement_cnode_cmd(ngx_http_engagement_cnode_t *n,
    redisCallbackFn *fn, void *priv, int argc, const char **argv,
    const size_t *lens);
ngx_http_engagement_cnode_t *ngx_http_engagement_cnode_replied(
    redisAsyncContext *ac);

/* cluster_map.c */
ngx_int_t ngx_http_engagement_cluster_map_init(ngx_log_t *log);
void ngx_http_engagement_cluster_refresh(void);
void ngx_http_engagement_cluster_update(void);
void ngx_http_engagement_cluster_refresh_handler(ngx_event_t *ev);
ngx_http_engagement_cnode_t *ngx_http_engagement_cnode_get(const u_char *ip,
    size_t iplen, int port);


#endif /* _NGX_HTTP_ENGAGEMENT_CLUSTER_INT_H_INCLUDED_ */
