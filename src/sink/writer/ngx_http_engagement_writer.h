
/*
 * sink/writer/: the durable writer. Every accepted event becomes one
 * NDJSON line in a queue zone of its own; each worker sends batches of
 * them over HTTP/1.1 to an upstream (ClickHouse's HTTP interface is the
 * reference sink) and keeps what the upstream does not take in an on-disk
 * spool. This header is what the other folders use: the directive and the
 * lifecycle (module.c), the event record and reserve/commit/cancel (the
 * endpoints), the status figures (status.c). The writer takes a plain
 * record and never sees a request: the request side that fills the
 * record lives in http/ngx_http_engagement_record.c.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_WRITER_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_WRITER_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


/* what an event was: the line's "type" */
typedef enum {
    NGX_HTTP_ENGAGEMENT_RECORD_VIEW = 0,
    NGX_HTTP_ENGAGEMENT_RECORD_LIKE,
    NGX_HTTP_ENGAGEMENT_RECORD_REACT,
    NGX_HTTP_ENGAGEMENT_RECORD_UNLIKE,
    NGX_HTTP_ENGAGEMENT_RECORD_CLICK,   /* an interaction: "name" too */
    NGX_HTTP_ENGAGEMENT_RECORD_HEARTBEAT /* "name": the player's state */
} ngx_http_engagement_record_type_e;


/*
 * What a view counted, as a view's commit takes it (0: nothing): the
 * line's "views", "engaged" and "replays", the fields of Redis's totals
 * and buckets, so that the sink's rollups sum to the same figures.
 */
#define NGX_HTTP_ENGAGEMENT_RECORD_VIEWS     0x01
#define NGX_HTTP_ENGAGEMENT_RECORD_ENGAGED   0x02
#define NGX_HTTP_ENGAGEMENT_RECORD_REPLAYS   0x04

/* the metrics of a policy outcome (any struct with view, engaged, replay) */
#define ngx_http_engagement_record_metrics(out)                               \
    (((out)->view ? NGX_HTTP_ENGAGEMENT_RECORD_VIEWS : 0)                     \
     | ((out)->engaged ? NGX_HTTP_ENGAGEMENT_RECORD_ENGAGED : 0)              \
     | ((out)->replay ? NGX_HTTP_ENGAGEMENT_RECORD_REPLAYS : 0))


/*
 * One accepted event as the writer takes it. The strings are validated
 * ids or configured names (no JSON escaping needed) and need to live only
 * until writer_reserve returns: the line is formatted there.
 */
typedef struct {
    ngx_http_engagement_record_type_e  type;
    ngx_str_t                     event_id;    /* empty: the writer makes one */
    ngx_str_t                     content_id;
    ngx_str_t                     session_id;
    ngx_uint_t                    has_viewer;
    uint64_t                      viewer;      /* the id, hashed and salted */
    time_t                        ts;
    time_t                        received;
    int64_t                       duration_ms;
    ngx_str_t                     country;
    ngx_str_t                     device;
    ngx_str_t                     source;
    ngx_str_t                     channel_id;
    ngx_str_t                     category;
    ngx_str_t                     reaction;
    ngx_str_t                     name;        /* a click's interaction,
                                                  a heartbeat's state */
    int64_t                       position_ms; /* -1: none */
} ngx_http_engagement_record_t;


/* writer_conf.c: engagement_writer, and the edge id once it is known */
/* writer_conf.c: an http:// upstream URL of the writer or the webhook */
char *ngx_http_engagement_http_url(ngx_conf_t *cf, const char *name,
    ngx_str_t *url, ngx_addr_t *addr, ngx_str_t *host, ngx_str_t *uri);

char *ngx_http_engagement_writer_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_engagement_writer_init_conf(
    ngx_http_engagement_main_conf_t *emcf);

/* writer.c: a worker's sender, from its start to its exit */
ngx_int_t ngx_http_engagement_writer_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
void ngx_http_engagement_writer_stop(ngx_cycle_t *cycle);

/*
 * writer_queue.c: the request path. enabled: the writer runs in this
 * worker. reserve: before the event is counted, its line is made and room
 * for it taken in the queue (NGX_BUSY: the queue or the spool is full,
 * and the event must be refused, not counted; NGX_DECLINED: no writer).
 * commit: the outcome is known, the line is queued with what the view
 * counted (NGX_HTTP_ENGAGEMENT_RECORD_VIEWS...; 0: not counted); a
 * reaction's line says whether it counted and names the reaction the user
 * had before. cancel: the event had no effect.
 */
ngx_uint_t ngx_http_engagement_writer_enabled(void);
ngx_int_t ngx_http_engagement_writer_reserve(
    ngx_http_engagement_record_t *rec, ngx_log_t *log, void **res);
void ngx_http_engagement_writer_commit(void *res, ngx_uint_t metrics,
    const char *reason);
void ngx_http_engagement_writer_commit_reaction(void *res,
    ngx_uint_t counted, const char *reason, ngx_str_t *previous);
void ngx_http_engagement_writer_cancel(void *res);
/* a line kept for a later commit: its zone's birth, its time restamped */
uint64_t ngx_http_engagement_writer_birth(void);
void ngx_http_engagement_writer_restamp(void *res, time_t t);

/* what the health check needs of the writer (on: a writer runs) */
typedef struct {
    ngx_uint_t                    on;
    ngx_uint_t                    down;        /* its sends fail */
    ngx_msec_t                    down_ms;     /* since the first failure */
    ngx_uint_t                    spooled;     /* batches in the spool */
    ngx_uint_t                    full;        /* events refused: spool full */
} ngx_http_engagement_writer_health_t;


/* writer_status.c: the writer's figures for the status endpoint */
void ngx_http_engagement_writer_health(ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_writer_health_t *wh);
size_t ngx_http_engagement_writer_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_writer_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);


#endif /* _NGX_HTTP_ENGAGEMENT_WRITER_H_INCLUDED_ */
