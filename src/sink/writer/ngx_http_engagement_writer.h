
/*
 * The durable writer's pieces shared by _writer.c (queue, HTTP client,
 * directive, status figures) and _spool.c (batches on disk).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_WRITER_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_WRITER_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


#define NGX_HTTP_ENGAGEMENT_WRITER_MAGIC   0x45475731   /* "EGW1" */

/* room a reserved line keeps for ,"counted":..,"reason":".."}\n */
#define NGX_HTTP_ENGAGEMENT_WRITER_TAIL    128
/* a line's longest: seven ids, the edge id, numbers, the tail */
#define NGX_HTTP_ENGAGEMENT_WRITER_LINE_MAX  2048
/* a claim buffer's largest: a batch ends early when its lines fill it */
#define NGX_HTTP_ENGAGEMENT_WRITER_BUF_MAX   (16 * 1024 * 1024)
#define NGX_HTTP_ENGAGEMENT_BATCH_ID_LEN   (NGX_HTTP_ENGAGEMENT_ID_MAX + 48)


/* one event line in the queue zone */
typedef struct {
    ngx_queue_t                   link;
    uint64_t                      batch;       /* 0: pending */
    ngx_msec_t                    claimed;
    uint32_t                      len;
    uint32_t                      size;        /* room in data */
    u_char                        data[1];
} ngx_http_engagement_wevent_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    ngx_queue_t                   pending;
    ngx_queue_t                   inflight;
    uint64_t                      batch_seq;
    uint64_t                      created_ms;  /* makes ids unique */
    ngx_atomic_t                  event_seq;
    ngx_atomic_t                  queued;      /* pending, in events */
    ngx_atomic_t                  inflight_n;
    ngx_atomic_t                  spool_bytes;
    ngx_atomic_t                  spool_files;
    ngx_atomic_t                  down_until;  /* ngx_current_msec */
    ngx_atomic_t                  spool_blocked; /* a batch was declined */
    ngx_atomic_t                  accepted;
    ngx_atomic_t                  batches_sent;
    ngx_atomic_t                  events_sent;
    ngx_atomic_t                  batches_failed;
    ngx_atomic_t                  batches_spooled;
    ngx_atomic_t                  batches_replayed;
    ngx_atomic_t                  batches_delivered; /* found by a check */
    ngx_atomic_t                  replay_failed;
    ngx_atomic_t                  refused_queue_full;
    ngx_atomic_t                  refused_spool_full;
    ngx_atomic_t                  spool_full;  /* batches kept queued */
    ngx_atomic_t                  spool_errors;
    ngx_atomic_t                  spool_in_thread; /* of batches_spooled */
    ngx_atomic_t                  reclaimed;   /* orphaned claims */
    ngx_atomic_t                  connects;
    ngx_msec_t                    last_full_log;
} ngx_http_engagement_writer_sh_t;


struct ngx_http_engagement_writer_conf_s {
    ngx_str_t                     url;
    ngx_str_t                     host;        /* the Host header */
    ngx_str_t                     uri;         /* path and query */
    ngx_addr_t                    addr;
    ngx_str_t                     zone_name;
    size_t                        zone_size;
    ngx_uint_t                    batch;
    ngx_msec_t                    interval;
    ngx_msec_t                    connect_timeout;
    ngx_msec_t                    timeout;
    ngx_msec_t                    retry;
    ngx_str_t                     spool;       /* full path, 0-terminated */
    off_t                         spool_max;
    ngx_str_t                     edge;
    ngx_str_t                     thread_pool; /* empty: spool in the worker */
    ngx_str_t                     check;       /* empty: replays unchecked */
    ngx_cycle_t                  *cycle;       /* the one configured */
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    ngx_http_engagement_writer_sh_t  *sh;
};


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

/* spool.c */
ngx_int_t ngx_http_engagement_spool_init(ngx_http_engagement_writer_conf_t *wcf,
    ngx_log_t *log);
ngx_int_t ngx_http_engagement_spool_prepare(
    ngx_http_engagement_writer_conf_t *wcf, u_char *id, size_t id_len,
    size_t len, ngx_uint_t force, u_char *tmp, u_char *path);
ngx_int_t ngx_http_engagement_spool_store(u_char *tmp, u_char *path,
    u_char *dir, u_char *body, size_t len, ngx_log_t *log);
void ngx_http_engagement_spool_commit(ngx_http_engagement_writer_conf_t *wcf,
    size_t len, ngx_int_t rc);
ngx_int_t ngx_http_engagement_spool_claim(
    ngx_http_engagement_writer_conf_t *wcf, u_char *path, u_char *id,
    size_t *id_len, u_char **body, size_t *len, ngx_log_t *log);
void ngx_http_engagement_spool_done(ngx_http_engagement_writer_conf_t *wcf,
    u_char *path, size_t len, ngx_log_t *log);
void ngx_http_engagement_spool_release(u_char *path, ngx_log_t *log);
time_t ngx_http_engagement_spool_oldest(
    ngx_http_engagement_writer_conf_t *wcf);


#endif /* _NGX_HTTP_ENGAGEMENT_WRITER_H_INCLUDED_ */
