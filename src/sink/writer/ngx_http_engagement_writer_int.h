
/*
 * The durable writer's own pieces, shared by its files and by no one
 * else: the queue zone's layout, the configuration, this worker's sender
 * and the calls between the files.
 *   writer_conf.c    the directive, the queue zone's creation
 *   writer_line.c    an NDJSON line from a record
 *   writer_queue.c   reserve/commit/cancel; a batch's claim and its end
 *   writer.c         a worker's sender: start, tick, send, check, stop
 *   writer_client.c  the HTTP/1.1 client: connect, send, read the answer
 *   writer_http.c    the answer's parser (writer_http.h: nginx's core only)
 *   writer_spool.c   a claimed batch to the spool, in a thread or here
 *   spool.c          the spool directory: files, names, replay claims
 *   writer_status.c  the status figures
 */


#ifndef _NGX_HTTP_ENGAGEMENT_WRITER_INT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_WRITER_INT_H_INCLUDED_


#include "store/ngx_http_engagement_store.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "sink/writer/ngx_http_engagement_writer_http.h"

#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif


/* "EGW3": an in-flight line with no claimer (pid 0) is a released batch */
#define NGX_HTTP_ENGAGEMENT_WRITER_MAGIC   0x45475733

/*
 * room a reserved line keeps for its outcome: ,"previous_reaction":"..",
 * "counted":..,"views":..,"engaged":..,"replays":..,"reason":".."}\n
 */
#define NGX_HTTP_ENGAGEMENT_WRITER_TAIL    192
/* the longest reason a line carries (the tail has room for it) */
#define NGX_HTTP_ENGAGEMENT_WRITER_REASON_MAX  32
/* a line's longest: seven ids, the edge id, numbers, the tail */
#define NGX_HTTP_ENGAGEMENT_WRITER_LINE_MAX  2048
/* a claim buffer's largest: a batch ends early when its lines fill it */
#define NGX_HTTP_ENGAGEMENT_WRITER_BUF_MAX   (16 * 1024 * 1024)
#define NGX_HTTP_ENGAGEMENT_BATCH_ID_LEN   (NGX_HTTP_ENGAGEMENT_ID_MAX + 48)
/* a request's head room before the lines */
#define NGX_HTTP_ENGAGEMENT_WRITER_HEAD    4096
/* the bytes of a refusing answer's body that go to the log */
#define NGX_HTTP_ENGAGEMENT_WRITER_ANSWER_LOG  200
/* at most one "queue or spool full" warning in this many ms */
#define NGX_HTTP_ENGAGEMENT_WRITER_LOG_EVERY   1000
/* how long a stop waits for a spool write in a thread, in ms */
#define NGX_HTTP_ENGAGEMENT_WRITER_STOP_WAIT   10000
/* the hex digits of a hashed viewer id */
#define NGX_HTTP_ENGAGEMENT_WRITER_VIEWER_LEN  16

/* the upstream took the request */
#define ngx_http_engagement_writer_2xx(w)                                     \
    ((w)->status >= 200 && (w)->status < 300)


/* one event line in the queue zone */
typedef struct {
    ngx_queue_t                   link;
    uint64_t                      batch;       /* 0: pending */
    ngx_pid_t                     pid;         /* the claimer, 0: none */
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
    ngx_atomic_t                  down_since;  /* the first failure, or 0 */
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
    ngx_uint_t                    cycle_gen;   /* configurations using it */
    ngx_uint_t                    running_gen; /* the newest with workers */
    ngx_uint_t                    gen_live;    /* and their workers */
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
    ngx_str_t                     id_param;    /* the batch id in the URL */
    ngx_cycle_t                  *cycle;       /* the one configured */
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    ngx_http_engagement_writer_sh_t  *sh;
};


/* this worker's side: one connection, one batch in flight at a time */
typedef struct {
    ngx_http_engagement_writer_conf_t  *wcf;
    ngx_event_t                  tick;
    ngx_connection_t            *c;
    ngx_pool_t                  *pool;
    ngx_uint_t                   on;
    ngx_uint_t                   busy;
    ngx_uint_t                   reused;
    ngx_uint_t                   retried;
    ngx_uint_t                   timedout;    /* the send ended by a timer */
    ngx_uint_t                   stopping;
    ngx_uint_t                   gen;         /* the zone's cycle_gen */
    ngx_uint_t                   spooling;    /* a batch on its way to disk */
    ngx_uint_t                   checking;    /* asking the sink about one */
#if (NGX_THREADS)
    ngx_thread_pool_t           *tp;
    ngx_thread_task_t           *task;
#endif

    u_char                      *req;
    size_t                       req_size;
    size_t                       req_len;
    size_t                       head_len;
    size_t                       sent;
    uint64_t                     batch;       /* 0: a spooled batch */
    ngx_uint_t                   exposed;     /* it may be in the sink */
    ngx_uint_t                   nevents;
    u_char                      *file_body;
    size_t                       file_len;
    u_char                       path[NGX_MAX_PATH];
    u_char                       id[NGX_HTTP_ENGAGEMENT_BATCH_ID_LEN];
    size_t                       id_len;

    /* the answer as writer_client.c read it so far (the parser's outcome) */
    ngx_uint_t                   status;
    ngx_uint_t                   close;       /* the link is not reused */
    u_char                      *body_start;  /* the body's first bytes */
    size_t                       body_n;
    size_t                       head_n;      /* 0: nothing came */
    u_char                       ans[NGX_HTTP_ENGAGEMENT_WRITER_ANSWER];
    size_t                       ans_n;
    ngx_http_engagement_writer_answer_t  answer;
    /* writer.c writes a request's head here first */
    u_char                       head[NGX_HTTP_ENGAGEMENT_WRITER_HEAD];
} ngx_http_engagement_writer_t;


/* writer.c: this worker's sender */
extern ngx_http_engagement_writer_t  ngx_http_engagement_writer;

void ngx_http_engagement_writer_send(ngx_http_engagement_writer_t *w);
void ngx_http_engagement_writer_done(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why);
ngx_int_t ngx_http_engagement_writer_room(ngx_http_engagement_writer_t *w,
    size_t need);
void ngx_http_engagement_writer_soon(ngx_http_engagement_writer_t *w,
    ngx_uint_t more);

/* writer_line.c */
size_t ngx_http_engagement_writer_line_len(
    ngx_http_engagement_writer_conf_t *wcf,
    ngx_http_engagement_record_t *rec);
u_char *ngx_http_engagement_writer_line(u_char *p,
    ngx_http_engagement_writer_conf_t *wcf,
    ngx_http_engagement_record_t *rec);
u_char *ngx_http_engagement_writer_line_end(u_char *p, ngx_uint_t counted,
    ngx_uint_t metrics, const char *reason, ngx_str_t *previous);
size_t ngx_http_engagement_writer_line_batch_len(size_t id_len);
u_char *ngx_http_engagement_writer_line_batch(u_char *p,
    ngx_http_engagement_wevent_t *e, u_char *id, size_t id_len);

/* writer_queue.c: a batch's claim (the lines in w->req) and its end */
ngx_uint_t ngx_http_engagement_writer_alive(ngx_pid_t pid);
ngx_int_t ngx_http_engagement_writer_claim(ngx_http_engagement_writer_t *w);
void ngx_http_engagement_writer_confirm(
    ngx_http_engagement_writer_conf_t *wcf, uint64_t batch);
void ngx_http_engagement_writer_release(ngx_http_engagement_writer_t *w);

/* writer_client.c: one request on the worker's connection */
void ngx_http_engagement_writer_connect(ngx_http_engagement_writer_t *w);
void ngx_http_engagement_writer_park(ngx_http_engagement_writer_t *w);
void ngx_http_engagement_writer_close(ngx_http_engagement_writer_t *w);

/* writer_spool.c: claimed batches to the spool */
ngx_int_t ngx_http_engagement_writer_spool_start(
    ngx_http_engagement_writer_t *w, ngx_cycle_t *cycle);
void ngx_http_engagement_writer_spool_wait(ngx_http_engagement_writer_t *w,
    ngx_log_t *log);
void ngx_http_engagement_writer_spool_queue(ngx_http_engagement_writer_t *w,
    ngx_uint_t force);
ngx_int_t ngx_http_engagement_writer_spool_batch(
    ngx_http_engagement_writer_t *w, ngx_uint_t force);

/* spool.c: the spool directory */
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


#endif /* _NGX_HTTP_ENGAGEMENT_WRITER_INT_H_INCLUDED_ */
