
/*
 * The durable writer: every accepted event becomes one NDJSON line in a
 * queue kept in its own shared memory zone; a timer in every worker claims
 * a batch under the zone lock and POSTs it over HTTP/1.1 to the upstream
 * (ClickHouse's HTTP interface is the reference sink) on a keep-alive
 * connection of its own. The lines leave shared memory only when the
 * upstream answered 2xx or the batch is safely in the spool (_spool.c);
 * a claim whose worker died is taken back after a while. Each batch
 * carries an id (X-Engagement-Batch) that a replay keeps.
 */


#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "sink/writer/ngx_http_engagement_writer.h"

#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif


#define NGX_HTTP_ENGAGEMENT_WRITER_HEAD    4096

enum {
    NGX_HTTP_ENGAGEMENT_W_HEAD = 0,
    NGX_HTTP_ENGAGEMENT_W_LENGTH,
    NGX_HTTP_ENGAGEMENT_W_CHUNKED,
    NGX_HTTP_ENGAGEMENT_W_CLOSE
};

enum {
    NGX_HTTP_ENGAGEMENT_C_SIZE = 0,
    NGX_HTTP_ENGAGEMENT_C_EXT,
    NGX_HTTP_ENGAGEMENT_C_SIZE_LF,
    NGX_HTTP_ENGAGEMENT_C_DATA,
    NGX_HTTP_ENGAGEMENT_C_DATA_CR,
    NGX_HTTP_ENGAGEMENT_C_DATA_LF,
    NGX_HTTP_ENGAGEMENT_C_TRAILER,
    NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE,
    NGX_HTTP_ENGAGEMENT_C_TRAILER_LF,
    NGX_HTTP_ENGAGEMENT_C_DONE
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
    ngx_uint_t                   stopping;
    ngx_uint_t                   spooling;    /* a batch on its way to disk */
    ngx_uint_t                   checking;    /* asking the sink about one */
    u_char                       ans[32];     /* the answer's first bytes */
    size_t                       ans_n;
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
    ngx_uint_t                   nevents;
    u_char                      *file_body;
    size_t                       file_len;
    u_char                       path[NGX_MAX_PATH];
    u_char                       id[NGX_HTTP_ENGAGEMENT_BATCH_ID_LEN];
    size_t                       id_len;

    ngx_uint_t                   state;
    ngx_uint_t                   cstate;
    ngx_uint_t                   status;
    ngx_uint_t                   close;
    off_t                        rest;
    u_char                      *body_start;
    size_t                       body_n;
    size_t                       head_n;
    u_char                       head[NGX_HTTP_ENGAGEMENT_WRITER_HEAD];
} ngx_http_engagement_writer_t;


/* a batch written to the spool in a thread: what the thread needs */
typedef struct {
    ngx_http_engagement_writer_t  *w;
    u_char                        *body;
    size_t                         len;
    u_char                        *dir;
    ngx_log_t                     *log;
    ngx_int_t                      rc;
    ngx_atomic_t                   done;        /* set last by the thread */
    u_char                         tmp[NGX_MAX_PATH];
    u_char                         path[NGX_MAX_PATH];
} ngx_http_engagement_spool_job_t;


static ngx_http_engagement_writer_t  ngx_http_engagement_writer;
static ngx_str_t                     ngx_http_engagement_writer_empty =
    ngx_null_string;


static ngx_int_t ngx_http_engagement_writer_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_engagement_writer_tick(ngx_event_t *ev);
static ngx_int_t ngx_http_engagement_writer_claim(
    ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_confirm(
    ngx_http_engagement_writer_conf_t *wcf, uint64_t batch);
static void ngx_http_engagement_writer_release(
    ngx_http_engagement_writer_conf_t *wcf, uint64_t batch);
static void ngx_http_engagement_writer_send(ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_connect(ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_write(ngx_event_t *wev);
static void ngx_http_engagement_writer_read(ngx_event_t *rev);
static void ngx_http_engagement_writer_idle(ngx_event_t *rev);
static void ngx_http_engagement_writer_dummy(ngx_event_t *ev);
static ngx_int_t ngx_http_engagement_writer_parse_head(
    ngx_http_engagement_writer_t *w);
static ngx_int_t ngx_http_engagement_writer_body(
    ngx_http_engagement_writer_t *w, u_char *p, size_t n);
static void ngx_http_engagement_writer_done(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why);
static void ngx_http_engagement_writer_close(ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_spool_queue(
    ngx_http_engagement_writer_t *w, ngx_uint_t force);
static void ngx_http_engagement_writer_send_check(
    ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_checked(
    ngx_http_engagement_writer_t *w, ngx_uint_t ok, const char *why);
static ngx_int_t ngx_http_engagement_writer_spool_batch(
    ngx_http_engagement_writer_t *w, ngx_uint_t force);
static ngx_int_t ngx_http_engagement_writer_spool_finish(
    ngx_http_engagement_writer_t *w, ngx_int_t rc, ngx_uint_t in_thread);
#if (NGX_THREADS)
static void ngx_http_engagement_writer_spool_thread(void *data,
    ngx_log_t *log);
static void ngx_http_engagement_writer_spooled(ngx_event_t *ev);
#endif


/*
 * engagement_writer http://host[:port]/path?query [zone=name:size]
 *     [batch=N] [interval=T] [connect_timeout=T] [timeout=T] [retry=T]
 *     [spool=dir] [spool_max=size];
 */

char *
ngx_http_engagement_writer_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    u_char                             *p;
    ssize_t                             size;
    ngx_int_t                           n;
    ngx_str_t                          *value, s;
    ngx_url_t                           u;
    ngx_uint_t                          i;
    ngx_http_engagement_writer_conf_t  *wcf;

    if (emcf->writer) {
        return "is duplicate";
    }

    value = cf->args->elts;

    wcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_writer_conf_t));
    if (wcf == NULL) {
        return NGX_CONF_ERROR;
    }

    wcf->batch = 1000;
    wcf->interval = 1000;
    wcf->connect_timeout = 1000;
    wcf->timeout = 5000;
    wcf->retry = 1000;
    wcf->spool_max = 256 * 1024 * 1024;
    wcf->zone_size = 16 * 1024 * 1024;
    ngx_str_set(&wcf->zone_name, "engagement_writer");
    ngx_str_set(&wcf->spool, "engagement_spool");
#if (NGX_THREADS)
    ngx_str_set(&wcf->thread_pool, "default");
#endif

    if (value[1].len <= 7
        || ngx_strncasecmp(value[1].data, (u_char *) "http://", 7) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer \"%V\": an http:// URL is "
                           "expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = value[1].data + 7;
    u.url.len = value[1].len - 7;
    u.default_port = 80;
    u.uri_part = 1;

    /* resolved here, once: no blocking lookup ever runs in a worker */
    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer \"%V\": %s", &value[1],
                           u.err ? u.err : "host not found");
        return NGX_CONF_ERROR;
    }

    wcf->url = value[1];
    wcf->addr = u.addrs[0];

    if (u.port != 80) {
        wcf->host.data = ngx_pnalloc(cf->pool, u.host.len + 1 + NGX_INT_T_LEN);
        if (wcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }
        wcf->host.len = ngx_sprintf(wcf->host.data, "%V:%d", &u.host, u.port)
                        - wcf->host.data;

    } else {
        wcf->host = u.host;
    }

    if (u.uri.len) {
        wcf->uri = u.uri;

    } else {
        ngx_str_set(&wcf->uri, "/");
    }

    for (i = 0; i < wcf->uri.len; i++) {
        if (wcf->uri.data[i] <= ' ' || wcf->uri.data[i] >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_writer \"%V\": the path must be "
                               "URL-encoded (use %%20 for spaces)",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            s.data = value[i].data + 5;
            p = ngx_strlchr(s.data, value[i].data + value[i].len, ':');
            if (p == NULL || p == s.data) {
                goto invalid;
            }
            wcf->zone_name.data = s.data;
            wcf->zone_name.len = p - s.data;
            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;
            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size < 64 * 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_writer: the zone size must "
                                   "be at least 64k in \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            wcf->zone_size = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "batch=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n == NGX_ERROR || n == 0 || n > 100000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_writer: batch must be "
                                   "between 1 and 100000 in \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
            wcf->batch = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "spool=", 6) == 0
            && value[i].len > 6)
        {
            wcf->spool.data = value[i].data + 6;
            wcf->spool.len = value[i].len - 6;
            continue;
        }

        if (ngx_strncmp(value[i].data, "thread_pool=", 12) == 0
            && value[i].len > 12)
        {
            wcf->thread_pool.data = value[i].data + 12;
            wcf->thread_pool.len = value[i].len - 12;

            if (wcf->thread_pool.len == 3
                && ngx_strncmp(wcf->thread_pool.data, "off", 3) == 0)
            {
                wcf->thread_pool.len = 0;
            }

#if !(NGX_THREADS)
            if (wcf->thread_pool.len) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_writer: \"%V\" needs an nginx "
                                   "built --with-threads", &value[i]);
                return NGX_CONF_ERROR;
            }
#endif
            continue;
        }

        if (ngx_strncmp(value[i].data, "check=", 6) == 0) {
            wcf->check.data = value[i].data + 6;
            wcf->check.len = value[i].len - 6;

            if (wcf->check.len == 0 || wcf->check.data[0] != '/') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_writer: check must be a "
                                   "path (and query) on the same upstream, "
                                   "starting with \"/\", in \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            for (n = 0; n < (ngx_int_t) wcf->check.len; n++) {
                if (wcf->check.data[n] <= ' ' || wcf->check.data[n] >= 0x7f) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "engagement_writer: check must be "
                                       "URL-encoded in \"%V\"", &value[i]);
                    return NGX_CONF_ERROR;
                }
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "spool_max=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;
            wcf->spool_max = ngx_parse_offset(&s);
            if (wcf->spool_max == NGX_ERROR || wcf->spool_max < 4096) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_writer: spool_max must be "
                                   "at least 4k in \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        p = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
        if (p == NULL) {
            goto invalid;
        }

        s.data = p + 1;
        s.len = value[i].data + value[i].len - s.data;
        n = ngx_parse_time(&s, 0);

        if (n == NGX_ERROR || n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_writer: a positive time is "
                               "expected in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s.data = value[i].data;
        s.len = p - value[i].data;

        if (s.len == 8 && ngx_strncmp(s.data, "interval", 8) == 0) {
            wcf->interval = n;

        } else if (s.len == 15
                   && ngx_strncmp(s.data, "connect_timeout", 15) == 0)
        {
            wcf->connect_timeout = n;

        } else if (s.len == 7 && ngx_strncmp(s.data, "timeout", 7) == 0) {
            wcf->timeout = n;

        } else if (s.len == 5 && ngx_strncmp(s.data, "retry", 5) == 0) {
            wcf->retry = n;

        } else {
            goto invalid;
        }
    }

    if (ngx_conf_full_name(cf->cycle, &wcf->spool, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (wcf->spool.len > NGX_MAX_PATH - 400) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: the spool path is too long");
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    /* the pool spool writes run in, made if nginx.conf has no such pool */
    if (wcf->thread_pool.len
        && ngx_thread_pool_add(cf, &wcf->thread_pool) == NULL)
    {
        return NGX_CONF_ERROR;
    }
#endif

    wcf->shm_zone = ngx_shared_memory_add(cf, &wcf->zone_name,
                                          wcf->zone_size,
                                          &ngx_http_engagement_module);
    if (wcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (wcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: zone \"%V\" is already used",
                           &wcf->zone_name);
        return NGX_CONF_ERROR;
    }

    wcf->cycle = cf->cycle;
    wcf->shm_zone->init = ngx_http_engagement_writer_init_zone;
    wcf->shm_zone->data = wcf;
    wcf->edge = emcf->edge_id;   /* set again by writer_init_conf */

    emcf->writer = wcf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of engagement_writer",
                       &value[i]);
    return NGX_CONF_ERROR;
}


/* the edge id is known once the http block is parsed */

void
ngx_http_engagement_writer_init_conf(ngx_http_engagement_main_conf_t *emcf)
{
    if (emcf->writer) {
        emcf->writer->edge = emcf->edge_id;
    }
}


static ngx_int_t
ngx_http_engagement_writer_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_engagement_writer_conf_t  *owcf = data;

    ngx_time_t                         *tp;
    ngx_slab_pool_t                    *shpool;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    wcf->shpool = shpool;

    if (owcf || shm_zone->shm.exists) {
        sh = owcf ? owcf->sh : shpool->data;

        if (sh == NULL || sh->magic != NGX_HTTP_ENGAGEMENT_WRITER_MAGIC
            || sh->layout != NGX_HTTP_ENGAGEMENT_LAYOUT)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "engagement_writer zone \"%V\" was written by an "
                          "incompatible module version; stop and start "
                          "nginx to recreate it", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        wcf->sh = sh;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_writer_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_ENGAGEMENT_WRITER_MAGIC;
    sh->layout = NGX_HTTP_ENGAGEMENT_LAYOUT;
    ngx_queue_init(&sh->pending);
    ngx_queue_init(&sh->inflight);

    tp = ngx_timeofday();
    sh->created_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    shpool->data = sh;
    shpool->log_nomem = 0;
    wcf->sh = sh;

    if (ngx_test_config) {
        return NGX_OK;
    }

    /* a new zone is a start: take stock of the spool left by the last run */
    return ngx_http_engagement_spool_init(wcf, shm_zone->shm.log);
}


/* the fields of one line; ids are validated: no JSON escaping needed */
typedef struct {
    const char                   *type;
    ngx_str_t                    *content_id;
    ngx_str_t                    *viewer_id;
    ngx_str_t                    *session_id;
    ngx_str_t                    *request_id;
    ngx_str_t                    *device;
    ngx_str_t                    *source;
    ngx_str_t                    *channel_id;
    ngx_str_t                    *category;
    ngx_str_t                    *reaction;
    time_t                        ts;
    int64_t                       duration_ms;
} ngx_http_engagement_wline_t;


static ngx_int_t
ngx_http_engagement_writer_line(ngx_http_request_t *r,
    ngx_http_engagement_wline_t *l, void **res)
{
    u_char                             *p;
    size_t                              len;
    uint64_t                            vh, seq;
    ngx_msec_t                          now;
    ngx_http_engagement_wevent_t       *e;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_salt_t          salt;
    ngx_http_engagement_loc_conf_t     *elcf;
    ngx_http_engagement_main_conf_t    *emcf;
    ngx_http_engagement_writer_conf_t  *wcf;

    *res = NULL;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);
    wcf = emcf->writer;

    if (wcf == NULL || wcf->sh == NULL || !ngx_http_engagement_writer.on) {
        return NGX_DECLINED;
    }

    sh = wcf->sh;

    if (sh->spool_blocked || (off_t) sh->spool_bytes >= wcf->spool_max) {
        (void) ngx_atomic_fetch_add(&sh->refused_spool_full, 1);

        now = ngx_current_msec;
        if (now - sh->last_full_log > 1000) {
            sh->last_full_log = now;
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "engagement_writer: the spool holds %uA bytes and "
                          "takes no more: events refused with 503",
                          sh->spool_bytes);
        }

        return NGX_BUSY;
    }

    len = sizeof("{\"event_id\":\"\",\"type\":\"heartbeat\","
                 "\"content_id\":\"\",\"viewer_id\":\"\","
                 "\"session_id\":\"\",\"ts\":,\"received_at\":,"
                 "\"duration_ms\":,\"country\":\"\",\"device\":\"\","
                 "\"source\":\"\",\"channel_id\":\"\",\"category\":\"\","
                 "\"reaction\":\"\",\"edge\":\"\"")
          + wcf->edge.len + 16 + NGX_INT64_LEN * 3
          + ngx_max(l->request_id->len,
                    wcf->edge.len + 2 * NGX_INT64_LEN + 2)
          + l->content_id->len + l->session_id->len + l->device->len
          + l->source->len + l->channel_id->len + l->category->len
          + ngx_min(l->reaction->len, NGX_HTTP_ENGAGEMENT_REACTION_LEN)
          + NGX_HTTP_ENGAGEMENT_WRITER_TAIL;

    /*
     * The viewer (a like's user) as a hash with the identity salt, the one
     * dedupe uses: it rotates every engagement_salt_rotate, so rows of one
     * viewer link up within a salt period and one edge, never longer.
     */
    vh = 0;
    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    if (l->viewer_id->len && elcf->guard.salt_zone) {
        ngx_http_engagement_salt_get(&elcf->guard, elcf->dedupe_window,
                                     &salt);
        vh = ngx_http_engagement_siphash(salt.cur, l->viewer_id->data,
                                         l->viewer_id->len);
    }

    ngx_shmtx_lock(&wcf->shpool->mutex);
    e = ngx_slab_alloc_locked(wcf->shpool,
                              offsetof(ngx_http_engagement_wevent_t, data)
                              + len);
    ngx_shmtx_unlock(&wcf->shpool->mutex);

    if (e == NULL) {
        (void) ngx_atomic_fetch_add(&sh->refused_queue_full, 1);

        now = ngx_current_msec;
        if (now - sh->last_full_log > 1000) {
            sh->last_full_log = now;
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "engagement_writer: zone \"%V\" is full (%uA "
                          "events queued): events refused with 503",
                          &wcf->zone_name, sh->queued);
        }

        return NGX_BUSY;
    }

    e->size = len;
    e->batch = 0;
    e->claimed = 0;

    p = ngx_cpymem(e->data, "{\"event_id\":\"",
                   sizeof("{\"event_id\":\"") - 1);

    if (l->request_id->len) {
        p = ngx_cpymem(p, l->request_id->data, l->request_id->len);

    } else {
        /* edge, zone birth and a counter: unique across workers, restarts */
        seq = ngx_atomic_fetch_add(&sh->event_seq, 1);
        p = ngx_sprintf(p, "%V.%uL.%uL", &wcf->edge, sh->created_ms, seq);
    }

    p = ngx_sprintf(p, "\",\"type\":\"%s\",\"content_id\":\"%V\","
                    "\"viewer_id\":\"", l->type, l->content_id);

    if (l->viewer_id->len) {
        p = ngx_sprintf(p, "%016uxL", vh);
    }

    p = ngx_sprintf(p, "\",\"session_id\":\"%V\",\"ts\":%T,"
                    "\"received_at\":%T,\"duration_ms\":%L,"
                    "\"country\":\"\",\"device\":\"%V\",\"source\":\"%V\","
                    "\"channel_id\":\"%V\",\"category\":\"%V\","
                    "\"reaction\":\"%*s\",\"edge\":\"%V\"",
                    l->session_id, l->ts, ngx_time(), l->duration_ms,
                    l->device, l->source, l->channel_id, l->category,
                    ngx_min(l->reaction->len, NGX_HTTP_ENGAGEMENT_REACTION_LEN),
                    l->reaction->data, &wcf->edge);

    e->len = p - e->data;
    *res = e;

    return NGX_OK;
}


/*
 * The request path. reserve: before the event is counted, room for its
 * line is taken in the queue (NGX_BUSY: the queue or the spool is full,
 * and the event must be refused, not counted). commit: the outcome is
 * known, the line is queued. cancel: the event had no effect.
 */

ngx_int_t
ngx_http_engagement_writer_reserve(ngx_http_request_t *r,
    ngx_http_engagement_event_t *ev, void **res)
{
    ngx_http_engagement_wline_t  l;

    l.type = "view";
    l.content_id = &ev->content_id;
    l.viewer_id = &ev->viewer_id;
    l.session_id = &ev->session_id;
    l.request_id = &ev->request_id;
    l.device = &ev->device;
    l.source = &ev->source;
    l.channel_id = &ev->channel_id;
    l.category = &ev->category;
    l.reaction = &ngx_http_engagement_writer_empty;
    l.ts = ev->ts >= 0 ? (time_t) (ev->ts / 1000) : ngx_time();
    l.duration_ms = ev->duration_ms > 0 ? ev->duration_ms : 0;

    return ngx_http_engagement_writer_line(r, &l, res);
}


/* a like (no reaction named), a reaction change, or an unlike (DELETE) */

ngx_int_t
ngx_http_engagement_writer_reserve_reaction(ngx_http_request_t *r,
    ngx_http_engagement_reaction_t *re, ngx_str_t *state, void **res)
{
    ngx_str_t                    *e;
    ngx_http_engagement_wline_t   l;

    e = &ngx_http_engagement_writer_empty;

    l.type = r->method == NGX_HTTP_DELETE ? "unlike"
             : re->reaction.len ? "react" : "like";
    l.content_id = &re->content_id;
    l.viewer_id = &re->user_id;
    l.session_id = e;
    l.request_id = &re->request_id;
    l.device = e;
    l.source = e;
    l.channel_id = e;
    l.category = e;
    l.reaction = state->len ? state : e;
    l.ts = ngx_time();
    l.duration_ms = 0;

    return ngx_http_engagement_writer_line(r, &l, res);
}


void
ngx_http_engagement_writer_commit(void *res, ngx_uint_t counted,
    const char *reason)
{
    ngx_http_engagement_writer_commit_reaction(res, counted, reason, NULL);
}


/* a reaction's line also says which reaction the user had before */

void
ngx_http_engagement_writer_commit_reaction(void *res, ngx_uint_t counted,
    const char *reason, ngx_str_t *previous)
{
    u_char                             *p;
    size_t                              n;
    ngx_http_engagement_wevent_t       *e = res;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = ngx_http_engagement_writer.wcf;

    if (e == NULL || wcf == NULL) {
        return;
    }

    n = reason ? ngx_min(ngx_strlen(reason), 32) : 0;

    p = e->data + e->len;

    if (previous) {
        p = ngx_sprintf(p, ",\"previous_reaction\":\"%*s\"",
                        ngx_min(previous->len,
                                NGX_HTTP_ENGAGEMENT_REACTION_LEN),
                        previous->data);
    }

    p = ngx_sprintf(p, ",\"counted\":%s,\"reason\":\"%*s\"}\n",
                    counted ? "true" : "false", n, reason ? reason : "");
    e->len = p - e->data;

    ngx_shmtx_lock(&wcf->shpool->mutex);
    ngx_queue_insert_tail(&wcf->sh->pending, &e->link);
    wcf->sh->queued++;
    ngx_shmtx_unlock(&wcf->shpool->mutex);

    (void) ngx_atomic_fetch_add(&wcf->sh->accepted, 1);
}


void
ngx_http_engagement_writer_cancel(void *res)
{
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = ngx_http_engagement_writer.wcf;

    if (res == NULL || wcf == NULL) {
        return;
    }

    ngx_slab_free(wcf->shpool, res);
}


/* the worker side */

ngx_int_t
ngx_http_engagement_writer_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_writer_t  *w;

    w = &ngx_http_engagement_writer;
    ngx_memzero(w, sizeof(ngx_http_engagement_writer_t));

    if (emcf->writer == NULL || emcf->writer->sh == NULL) {
        return NGX_OK;
    }

    w->wcf = emcf->writer;
    w->on = 1;

    w->tick.handler = ngx_http_engagement_writer_tick;
    w->tick.data = w;
    w->tick.log = cycle->log;
    w->tick.cancelable = 1;

#if (NGX_THREADS)
    if (w->wcf->thread_pool.len) {
        w->tp = ngx_thread_pool_get(cycle, &w->wcf->thread_pool);

        if (w->tp) {
            /* one task, reused: one batch goes to disk at a time */
            w->task = ngx_thread_task_alloc(cycle->pool,
                                    sizeof(ngx_http_engagement_spool_job_t));
            if (w->task == NULL) {
                return NGX_ERROR;
            }

            w->task->handler = ngx_http_engagement_writer_spool_thread;
            w->task->event.handler = ngx_http_engagement_writer_spooled;
            w->task->event.data = w;
            w->task->event.log = cycle->log;
        }
    }
#endif

    ngx_add_timer(&w->tick, w->wcf->interval / 2 + ngx_worker * 37 % 200);

    return NGX_OK;
}


/*
 * At a worker's exit (a stop or a reload): a batch still in flight and
 * everything still queued go to the spool, beyond its cap if need be.
 */

void
ngx_http_engagement_writer_stop(ngx_cycle_t *cycle)
{
    ngx_http_engagement_writer_t  *w;

    w = &ngx_http_engagement_writer;

    if (!w->on) {
        return;
    }

    if (w->tick.timer_set) {
        ngx_del_timer(&w->tick);
    }

    w->stopping = 1;

#if (NGX_THREADS)
    if (w->spooling) {
        ngx_http_engagement_spool_job_t  *job;
        ngx_uint_t                        ms;

        /*
         * A batch on its way to disk: nginx's thread pools have finished
         * their tasks by now (they exit before this module), but the
         * completion event will not run any more; finish it here.
         */
        job = w->task->ctx;

        for (ms = 0; !job->done && ms < 10000; ms++) {
            ngx_msleep(1);
        }

        w->spooling = 0;
        w->busy = 0;

        if (job->done) {
            ngx_memory_barrier();
            (void) ngx_http_engagement_writer_spool_finish(w, job->rc, 1);

        } else {
            /* still writing: its events stay queued, and go again below */
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "engagement_writer: a spool write did not end "
                          "in 10 s; its batch is spooled again");
            ngx_http_engagement_writer_release(w->wcf, w->batch);
            w->batch = 0;
        }
    }
#endif

    if (w->busy) {
        ngx_http_engagement_writer_done(w, 0, "the worker is exiting");
    }

    ngx_http_engagement_writer_close(w);
    ngx_http_engagement_writer_spool_queue(w, 1);

    if (w->req) {
        ngx_free(w->req);
        w->req = NULL;
    }

    w->on = 0;
}


static void
ngx_http_engagement_writer_tick(ngx_event_t *ev)
{
    ngx_int_t                           rc;
    ngx_http_engagement_writer_t       *w;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    w = ev->data;
    wcf = w->wcf;
    sh = wcf->sh;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        /* writer_stop spools what is left */
        return;
    }

    if (w->busy) {
        goto next;
    }

    if ((ngx_msec_int_t) (sh->down_until - ngx_current_msec) > 0) {
        /* the upstream failed lately: full batches go to disk meanwhile */
        if (sh->queued >= wcf->batch) {
            ngx_http_engagement_writer_spool_queue(w, 0);
        }

        goto next;
    }

    if (sh->spool_files) {
        rc = ngx_http_engagement_spool_claim(wcf, w->path, w->id, &w->id_len,
                                             &w->file_body, &w->file_len,
                                             ev->log);
        if (rc == NGX_OK) {
            w->batch = 0;
            w->nevents = 0;

            if (wcf->check.len) {
                /* was it delivered before its answer got lost? */
                ngx_http_engagement_writer_send_check(w);

            } else {
                ngx_http_engagement_writer_send(w);
            }

            goto next;
        }
    }

    /* with claims outstanding, claim() also takes back a dead worker's */
    if ((sh->queued || sh->inflight_n)
        && ngx_http_engagement_writer_claim(w) == NGX_OK)
    {
        ngx_http_engagement_writer_send(w);
    }

next:

    if (!ev->timer_set) {
        ngx_add_timer(ev, wcf->interval);
    }
}


/* the request buffer holds at least need bytes (its contents are lost) */

static ngx_int_t
ngx_http_engagement_writer_room(ngx_http_engagement_writer_t *w, size_t need)
{
    if (w->req_size >= need) {
        return NGX_OK;
    }

    if (w->req) {
        ngx_free(w->req);
    }

    w->req_size = ngx_max(need, NGX_HTTP_ENGAGEMENT_WRITER_HEAD * 2);
    w->req = ngx_alloc(w->req_size, ngx_cycle->log);

    if (w->req == NULL) {
        w->req_size = 0;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* after a complete answer: the connection is parked, or closed */

static void
ngx_http_engagement_writer_park(ngx_http_engagement_writer_t *w)
{
    ngx_connection_t  *c;

    c = w->c;

    if (w->close || c == NULL) {
        ngx_http_engagement_writer_close(w);
        return;
    }

    c->idle = 1;
    c->read->handler = ngx_http_engagement_writer_idle;
    c->write->handler = ngx_http_engagement_writer_dummy;
}


/* the batch id: edge, zone birth, sequence; a replay keeps it */

static ngx_int_t
ngx_http_engagement_writer_claim(ngx_http_engagement_writer_t *w)
{
    u_char                             *p;
    size_t                              need, room, extra;
    ngx_msec_t                          now, stale;
    ngx_queue_t                        *q;
    ngx_uint_t                          n;
    uint64_t                            batch;
    ngx_http_engagement_wevent_t       *e;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;
    sh = wcf->sh;

    /* the buffer: the head, then as many lines as fit a batch */
    need = NGX_HTTP_ENGAGEMENT_WRITER_HEAD
           + ngx_min(ngx_min(sh->queued + sh->inflight_n, wcf->batch)
                     * NGX_HTTP_ENGAGEMENT_WRITER_LINE_MAX,
                     NGX_HTTP_ENGAGEMENT_WRITER_BUF_MAX);

    if (ngx_http_engagement_writer_room(w, need) != NGX_OK) {
        return NGX_ERROR;
    }

    p = w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD;
    room = w->req_size - NGX_HTTP_ENGAGEMENT_WRITER_HEAD;
    now = ngx_current_msec;

    /* a claim older than any send can take is an orphan of a dead worker */
    stale = wcf->connect_timeout + 2 * wcf->timeout + wcf->interval + 5000;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    while (!ngx_queue_empty(&sh->inflight)) {
        q = ngx_queue_head(&sh->inflight);
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (now - e->claimed < stale) {
            break;
        }

        ngx_queue_remove(q);
        e->batch = 0;
        ngx_queue_insert_tail(&sh->pending, q);
        sh->inflight_n--;
        sh->queued++;
        sh->reclaimed++;
    }

    batch = ++sh->batch_seq;
    n = 0;

    w->id_len = ngx_sprintf(w->id, "%V.%uL.b%uL", &wcf->edge, sh->created_ms,
                            batch)
                - w->id;

    /* with checks, every line names its batch: ,"batch_id":"..." */
    extra = wcf->check.len ? sizeof(",\"batch_id\":\"\"") - 1 + w->id_len : 0;

    while (n < wcf->batch && !ngx_queue_empty(&sh->pending)) {
        q = ngx_queue_head(&sh->pending);
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (e->len + extra > room) {
            break;
        }

        if (extra && e->len >= 2) {
            /* the line ends with "}\n" */
            p = ngx_cpymem(p, e->data, e->len - 2);
            p = ngx_cpymem(p, ",\"batch_id\":\"",
                           sizeof(",\"batch_id\":\"") - 1);
            p = ngx_cpymem(p, w->id, w->id_len);
            *p++ = '"'; *p++ = '}'; *p++ = '\n';

        } else {
            p = ngx_cpymem(p, e->data, e->len);
        }

        room -= e->len + extra;

        ngx_queue_remove(q);
        e->batch = batch;
        e->claimed = now;
        ngx_queue_insert_tail(&sh->inflight, q);
        n++;
    }

    sh->queued -= n;
    sh->inflight_n += n;

    ngx_shmtx_unlock(&wcf->shpool->mutex);

    if (n == 0) {
        return NGX_DECLINED;
    }

    w->batch = batch;
    w->nevents = n;
    w->file_len = p - (w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD);

    return NGX_OK;
}


static ngx_queue_t *
ngx_http_engagement_writer_find(ngx_http_engagement_writer_sh_t *sh,
    uint64_t batch)
{
    ngx_queue_t                   *q;
    ngx_http_engagement_wevent_t  *e;

    for (q = ngx_queue_head(&sh->inflight);
         q != ngx_queue_sentinel(&sh->inflight);
         q = ngx_queue_next(q))
    {
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (e->batch == batch) {
            return q;
        }
    }

    return NULL;
}


/* the batch is delivered or spooled: its lines leave shared memory */

static void
ngx_http_engagement_writer_confirm(ngx_http_engagement_writer_conf_t *wcf,
    uint64_t batch)
{
    ngx_queue_t                      *q, *next;
    ngx_http_engagement_wevent_t     *e;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = wcf->sh;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    /* a claim's lines are adjacent: they were appended together */
    for (q = ngx_http_engagement_writer_find(sh, batch);
         q && q != ngx_queue_sentinel(&sh->inflight);
         q = next)
    {
        next = ngx_queue_next(q);
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (e->batch != batch) {
            break;
        }

        ngx_queue_remove(q);
        sh->inflight_n--;
        ngx_slab_free_locked(wcf->shpool, e);
    }

    ngx_shmtx_unlock(&wcf->shpool->mutex);
}


/* the batch could not be sent nor spooled: back to the queue's head */

static void
ngx_http_engagement_writer_release(ngx_http_engagement_writer_conf_t *wcf,
    uint64_t batch)
{
    ngx_queue_t                      *q, *next, *at;
    ngx_http_engagement_wevent_t     *e;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = wcf->sh;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    at = ngx_queue_sentinel(&sh->pending);

    for (q = ngx_http_engagement_writer_find(sh, batch);
         q && q != ngx_queue_sentinel(&sh->inflight);
         q = next)
    {
        next = ngx_queue_next(q);
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (e->batch != batch) {
            break;
        }

        ngx_queue_remove(q);
        e->batch = 0;
        ngx_queue_insert_after(at, q);
        at = q;
        sh->inflight_n--;
        sh->queued++;
    }

    ngx_shmtx_unlock(&wcf->shpool->mutex);
}


/* batches straight from the queue to the spool (upstream down, or exit) */

static void
ngx_http_engagement_writer_spool_queue(ngx_http_engagement_writer_t *w,
    ngx_uint_t force)
{
    ngx_int_t                           rc;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    while (wcf->sh->queued && !w->spooling
           && ngx_http_engagement_writer_claim(w) == NGX_OK)
    {
        rc = ngx_http_engagement_writer_spool_batch(w, force);

        if (rc == NGX_OK) {
            continue;
        }

        if (rc == NGX_AGAIN) {
            /* in a thread; its end goes on with the next batch */
            return;
        }

        if (force) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "engagement_writer: %uA queued events could not "
                          "be spooled at exit and are lost",
                          wcf->sh->queued);
        }

        break;
    }
}


/*
 * The claimed batch (w->req, w->batch) goes to the spool: in a thread of
 * the writer's pool when there is one (NGX_AGAIN: w->spooling until it is
 * done, and nothing else is sent meanwhile), else here. NGX_DECLINED: the
 * spool is at its cap, the batch stays queued.
 */

static ngx_int_t
ngx_http_engagement_writer_spool_batch(ngx_http_engagement_writer_t *w,
    ngx_uint_t force)
{
    u_char                             *tmp, *path, *body;
    u_char                              ltmp[NGX_MAX_PATH];
    u_char                              lpath[NGX_MAX_PATH];
    ngx_int_t                           rc;
    ngx_http_engagement_writer_conf_t  *wcf;
#if (NGX_THREADS)
    ngx_http_engagement_spool_job_t    *job;
#endif

    wcf = w->wcf;
    body = w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD;
    tmp = ltmp;
    path = lpath;

#if (NGX_THREADS)
    job = NULL;

    if (w->task && !force && !ngx_exiting && !w->stopping) {
        job = w->task->ctx;
        tmp = job->tmp;
        path = job->path;
    }
#endif

    rc = ngx_http_engagement_spool_prepare(wcf, w->id, w->id_len,
                                           w->file_len, force, tmp, path);
    if (rc == NGX_DECLINED) {
        wcf->sh->spool_blocked = 1;
        (void) ngx_atomic_fetch_add(&wcf->sh->spool_full, 1);
        ngx_http_engagement_writer_release(wcf, w->batch);
        w->batch = 0;
        return NGX_DECLINED;
    }

#if (NGX_THREADS)
    if (job) {
        job->w = w;
        job->body = body;
        job->len = w->file_len;
        job->dir = wcf->spool.data;
        job->log = ngx_cycle->log;
        job->rc = NGX_ERROR;
        job->done = 0;

        if (ngx_thread_task_post(w->tp, w->task) == NGX_OK) {
            w->spooling = 1;
            w->busy = 1;
            return NGX_AGAIN;
        }

        /* the pool's queue is full: write it here */
    }
#endif

    rc = ngx_http_engagement_spool_store(tmp, path, wcf->spool.data, body,
                                         w->file_len, ngx_cycle->log);

    return ngx_http_engagement_writer_spool_finish(w, rc, 0);
}


/* the batch is on disk (confirmed: it leaves the queue) or not (released) */

static ngx_int_t
ngx_http_engagement_writer_spool_finish(ngx_http_engagement_writer_t *w,
    ngx_int_t rc, ngx_uint_t in_thread)
{
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    ngx_http_engagement_spool_commit(wcf, w->file_len, rc);

    if (rc == NGX_OK) {
        (void) ngx_atomic_fetch_add(&wcf->sh->batches_spooled, 1);
        ngx_http_engagement_writer_confirm(wcf, w->batch);

        if (in_thread) {
            (void) ngx_atomic_fetch_add(&wcf->sh->spool_in_thread, 1);
        }

    } else {
        (void) ngx_atomic_fetch_add(&wcf->sh->spool_errors, 1);
        ngx_http_engagement_writer_release(wcf, w->batch);
    }

    w->batch = 0;

    return rc;
}


#if (NGX_THREADS)

/* in a thread: the disk work only */

static void
ngx_http_engagement_writer_spool_thread(void *data, ngx_log_t *log)
{
    ngx_http_engagement_spool_job_t  *job = data;

    job->rc = ngx_http_engagement_spool_store(job->tmp, job->path, job->dir,
                                              job->body, job->len, job->log);
    ngx_memory_barrier();
    job->done = 1;
}


/* back in the worker */

static void
ngx_http_engagement_writer_spooled(ngx_event_t *ev)
{
    ngx_http_engagement_writer_t     *w = ev->data;
    ngx_http_engagement_spool_job_t  *job;

    if (!w->spooling) {
        /* finished by writer_stop already */
        return;
    }

    job = w->task->ctx;

    w->spooling = 0;
    w->busy = 0;

    (void) ngx_http_engagement_writer_spool_finish(w, job->rc, 1);

    /* more to write or send: the next tick soon */
    if (w->on && !ngx_exiting && !w->stopping && w->tick.timer_set
        && (w->wcf->sh->queued >= w->wcf->batch || w->wcf->sh->spool_files))
    {
        ngx_del_timer(&w->tick);
        ngx_add_timer(&w->tick, 1);
    }
}

#endif


static void
ngx_http_engagement_writer_send(ngx_http_engagement_writer_t *w)
{
    u_char                             *p, *body;
    size_t                              head;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    body = w->file_body ? w->file_body
                        : w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD;

    p = w->head;
    p = ngx_sprintf(p, "POST %V HTTP/1.1\r\n"
                    "Host: %V\r\n"
                    "User-Agent: nginx-engagement/"
                    NGX_HTTP_ENGAGEMENT_VERSION "\r\n"
                    "Content-Type: application/x-ndjson\r\n"
                    "Content-Length: %uz\r\n"
                    "X-Engagement-Batch: %*s\r\n"
                    "Connection: keep-alive\r\n\r\n",
                    &wcf->uri, &wcf->host, w->file_len, w->id_len, w->id);
    head = p - w->head;

    if (w->file_body) {
        /* a spooled batch: head and body into one buffer */
        if (ngx_http_engagement_writer_room(w, head + w->file_len)
            != NGX_OK)
        {
            w->busy = 1;
            ngx_http_engagement_writer_done(w, 0, "out of memory");
            return;
        }

        ngx_memcpy(w->req, w->head, head);
        ngx_memcpy(w->req + head, body, w->file_len);
        ngx_free(w->file_body);
        w->file_body = NULL;
        w->head_len = 0;

    } else {
        /* the lines sit right after the reserved head room */
        w->head_len = NGX_HTTP_ENGAGEMENT_WRITER_HEAD - head;
        ngx_memcpy(w->req + w->head_len, w->head, head);
    }

    w->req_len = head + w->file_len;
    w->sent = 0;
    w->busy = 1;
    w->retried = 0;

    ngx_http_engagement_writer_connect(w);
}


/*
 * Before a spooled batch is sent again, the sink is asked whether it has
 * it: a batch whose answer was lost (a timeout, a cut connection) may have
 * been stored. The check POSTs the batch id, quoted ('<id>'), to the check
 * path of the same upstream and expects the number of rows it holds with
 * that batch_id. ClickHouse appends the body to the query in the URL.
 */

static void
ngx_http_engagement_writer_send_check(ngx_http_engagement_writer_t *w)
{
    u_char                             *p;
    size_t                              need;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    need = wcf->check.len + wcf->host.len + w->id_len + 256;

    if (ngx_http_engagement_writer_room(w, need) != NGX_OK) {
        w->busy = 1;
        w->checking = 1;
        ngx_http_engagement_writer_done(w, 0, "out of memory");
        return;
    }

    p = ngx_sprintf(w->req, "POST %V HTTP/1.1\r\n"
                    "Host: %V\r\n"
                    "User-Agent: nginx-engagement/"
                    NGX_HTTP_ENGAGEMENT_VERSION "\r\n"
                    "Content-Type: text/plain\r\n"
                    "Content-Length: %uz\r\n"
                    "Connection: keep-alive\r\n\r\n"
                    "'%*s'",
                    &wcf->check, &wcf->host, w->id_len + 2, w->id_len, w->id);

    w->req_len = p - w->req;
    w->head_len = 0;
    w->sent = 0;
    w->busy = 1;
    w->retried = 0;
    w->checking = 1;

    ngx_http_engagement_writer_connect(w);
}


/* the check's answer (done() handed it over) */

static void
ngx_http_engagement_writer_checked(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why)
{
    u_char                             *p, *end;
    size_t                              lines;
    ngx_int_t                           rows;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;
    sh = wcf->sh;

    if (!ok) {
        /* no answer: the upstream is still down, the batch waits */
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: the check of batch %*s at %V "
                      "failed: %s", w->id_len, w->id, &wcf->url, why);

        ngx_http_engagement_writer_close(w);
        sh->down_until = ngx_current_msec + wcf->retry;
        (void) ngx_atomic_fetch_add(&sh->replay_failed, 1);
        ngx_http_engagement_spool_release(w->path, ngx_cycle->log);
        ngx_free(w->file_body);
        w->file_body = NULL;
        return;
    }

    /* an answer: the connection is kept as after a batch */
    ngx_http_engagement_writer_park(w);

    rows = NGX_ERROR;

    if (w->status >= 200 && w->status < 300) {
        p = w->ans;
        end = w->ans + w->ans_n;

        while (end > p && (end[-1] == '\n' || end[-1] == '\r'
                           || end[-1] == ' '))
        {
            end--;
        }

        rows = ngx_atoi(p, end - p);
    }

    if (rows == NGX_ERROR) {
        /* a check that does not work must not hold the spool back */
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: the check of batch %*s answered "
                      "%ui \"%*s\", not a number of rows; the batch is sent "
                      "again unchecked", w->id_len, w->id, w->status,
                      w->ans_n, w->ans);
        ngx_http_engagement_writer_send(w);
        return;
    }

    lines = 0;

    for (p = w->file_body; p < w->file_body + w->file_len; p++) {
        lines += (*p == '\n');
    }

    if ((size_t) rows < lines) {
        /* not there (or not all of it: the sink drops what repeats) */
        ngx_http_engagement_writer_send(w);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "engagement_writer: batch %*s is in the sink already "
                  "(%i rows): not sent again", w->id_len, w->id, rows);

    sh->down_until = ngx_current_msec;
    ngx_http_engagement_spool_done(wcf, w->path, w->file_len, ngx_cycle->log);
    (void) ngx_atomic_fetch_add(&sh->batches_delivered, 1);
    ngx_free(w->file_body);
    w->file_body = NULL;

    if (!ngx_exiting && w->tick.timer_set && sh->spool_files) {
        ngx_del_timer(&w->tick);
        ngx_add_timer(&w->tick, 1);
    }
}


static void
ngx_http_engagement_writer_connect(ngx_http_engagement_writer_t *w)
{
    ngx_int_t                           rc;
    ngx_connection_t                   *c;
    ngx_peer_connection_t               pc;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    w->state = NGX_HTTP_ENGAGEMENT_W_HEAD;
    w->head_n = 0;
    w->status = 0;
    w->close = 0;
    w->sent = 0;
    w->ans_n = 0;

    if (w->c) {
        /* a parked keep-alive connection */
        c = w->c;
        c->idle = 0;
        w->reused = 1;
        c->read->handler = ngx_http_engagement_writer_read;
        c->write->handler = ngx_http_engagement_writer_write;
        ngx_add_timer(c->write, wcf->timeout);
        ngx_http_engagement_writer_write(c->write);
        return;
    }

    w->reused = 0;
    (void) ngx_atomic_fetch_add(&wcf->sh->connects, 1);

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));
    pc.sockaddr = wcf->addr.sockaddr;
    pc.socklen = wcf->addr.socklen;
    pc.name = &wcf->addr.name;
    pc.get = ngx_event_get_peer;
    pc.log = ngx_cycle->log;
    pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }
        ngx_http_engagement_writer_done(w, 0, "connect failed");
        return;
    }

    c = pc.connection;
    w->c = c;

    w->pool = ngx_create_pool(512, ngx_cycle->log);
    if (w->pool == NULL) {
        ngx_http_engagement_writer_done(w, 0, "out of memory");
        return;
    }

    c->pool = w->pool;
    c->data = w;
    c->log = ngx_cycle->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_engagement_writer_read;
    c->write->handler = ngx_http_engagement_writer_write;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, wcf->connect_timeout);
        return;
    }

    ngx_add_timer(c->write, wcf->timeout);
    ngx_http_engagement_writer_write(c->write);
}


static void
ngx_http_engagement_writer_write(ngx_event_t *wev)
{
    ssize_t                        n;
    ngx_connection_t              *c;
    ngx_http_engagement_writer_t  *w;

    c = wev->data;
    w = &ngx_http_engagement_writer;

    if (wev->timedout) {
        ngx_http_engagement_writer_done(w, 0, w->sent ? "send timed out"
                                                      : "connect timed out");
        return;
    }

    while (w->sent < w->req_len) {
        n = c->send(c, w->req + w->head_len + w->sent, w->req_len - w->sent);

        if (n == NGX_AGAIN) {
            if (!wev->timer_set) {
                ngx_add_timer(wev, w->wcf->timeout);
            }

            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_engagement_writer_done(w, 0, "event error");
            }

            return;
        }

        if (n <= 0) {
            ngx_http_engagement_writer_done(w, 0, "send failed");
            return;
        }

        w->sent += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    wev->handler = ngx_http_engagement_writer_dummy;

    if (!c->read->timer_set) {
        ngx_add_timer(c->read, w->wcf->timeout);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_engagement_writer_done(w, 0, "event error");
        return;
    }

    if (c->read->ready) {
        ngx_http_engagement_writer_read(c->read);
    }
}


static void
ngx_http_engagement_writer_dummy(ngx_event_t *ev)
{
}


static void
ngx_http_engagement_writer_read(ngx_event_t *rev)
{
    u_char                         buf[8192], *p;
    size_t                         size;
    ssize_t                        n;
    ngx_int_t                      rc;
    ngx_connection_t              *c;
    ngx_http_engagement_writer_t  *w;

    c = rev->data;
    w = &ngx_http_engagement_writer;

    if (rev->timedout) {
        ngx_http_engagement_writer_done(w, 0, "the upstream timed out");
        return;
    }

    if (w->sent < w->req_len) {
        /* an early answer or a close while sending: read it below */
        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }
    }

    for ( ;; ) {
        if (w->state == NGX_HTTP_ENGAGEMENT_W_HEAD) {
            p = w->head + w->head_n;
            size = sizeof(w->head) - w->head_n;

            if (size == 0) {
                ngx_http_engagement_writer_done(w, 0,
                                                "response head too long");
                return;
            }

        } else {
            p = buf;
            size = sizeof(buf);
        }

        n = c->recv(c, p, size);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_engagement_writer_done(w, 0, "event error");
            }
            return;
        }

        if (n == 0) {
            if (w->state == NGX_HTTP_ENGAGEMENT_W_CLOSE) {
                w->close = 1;
                ngx_http_engagement_writer_done(w, 1, NULL);
                return;
            }

            ngx_http_engagement_writer_done(w, 0,
                                       "the upstream closed the connection "
                                       "before a complete response");
            return;
        }

        if (n < 0) {
            ngx_http_engagement_writer_done(w, 0, "recv failed");
            return;
        }

        if (w->state == NGX_HTTP_ENGAGEMENT_W_HEAD) {
            w->head_n += n;

            rc = ngx_http_engagement_writer_parse_head(w);

            if (rc == NGX_AGAIN) {
                continue;
            }

            if (rc == NGX_ERROR) {
                ngx_http_engagement_writer_done(w, 0, "bad response head");
                return;
            }

            rc = ngx_http_engagement_writer_body(w, w->body_start,
                                                 w->body_n);

        } else {
            rc = ngx_http_engagement_writer_body(w, buf, n);
        }

        if (rc == NGX_ERROR) {
            ngx_http_engagement_writer_done(w, 0, "bad response body");
            return;
        }

        if (rc == NGX_OK) {
            ngx_http_engagement_writer_done(w, 1, NULL);
            return;
        }
    }
}


static ngx_uint_t
ngx_http_engagement_writer_header_is(u_char *p, u_char *end, const char *name)
{
    size_t  n;

    n = ngx_strlen(name);

    return (size_t) (end - p) > n && p[n] == ':'
           && ngx_strncasecmp(p, (u_char *) name, n) == 0;
}


static ngx_uint_t
ngx_http_engagement_writer_has(u_char *p, u_char *end, const char *word)
{
    size_t  n;

    n = ngx_strlen(word);

    for ( /* void */ ; (size_t) (end - p) >= n; p++) {
        if (ngx_strncasecmp(p, (u_char *) word, n) == 0) {
            return 1;
        }
    }

    return 0;
}


/* NGX_OK: the head is complete and parsed, NGX_AGAIN: more is needed */

static ngx_int_t
ngx_http_engagement_writer_parse_head(ngx_http_engagement_writer_t *w)
{
    u_char      *p, *end, *eol, *v;
    ngx_int_t    n;
    ngx_uint_t   chunked;
    off_t        length;

    end = ngx_strnstr(w->head, "\r\n\r\n", w->head_n);

    if (end == NULL) {
        /* ngx_strnstr stops at a zero byte: look no further than that */
        return w->head_n < sizeof(w->head) ? NGX_AGAIN : NGX_ERROR;
    }

    w->body_start = end + 4;
    w->body_n = w->head + w->head_n - w->body_start;

    p = w->head;

    if (end - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return NGX_ERROR;
    }

    w->close = (p[7] == '0');

    n = ngx_atoi(p + 9, 3);
    if (n < 100 || n > 599) {
        return NGX_ERROR;
    }

    w->status = n;
    chunked = 0;
    length = -1;

    p = ngx_strnstr(p, "\r\n", end - p + 2);

    while (p && p < end) {
        p += 2;
        eol = ngx_strnstr(p, "\r\n", end - p + 2);
        if (eol == NULL) {
            break;
        }

        if (ngx_http_engagement_writer_header_is(p, eol, "Content-Length")) {
            v = p + sizeof("Content-Length:") - 1;
            while (v < eol && *v == ' ') {
                v++;
            }
            length = ngx_atoof(v, eol - v);
            if (length == NGX_ERROR) {
                return NGX_ERROR;
            }

        } else if (ngx_http_engagement_writer_header_is(p, eol,
                                                        "Transfer-Encoding"))
        {
            chunked = ngx_http_engagement_writer_has(p, eol, "chunked");

        } else if (ngx_http_engagement_writer_header_is(p, eol,
                                                        "Connection"))
        {
            if (ngx_http_engagement_writer_has(p, eol, "close")) {
                w->close = 1;
            }

            if (ngx_http_engagement_writer_has(p, eol, "keep-alive")) {
                w->close = 0;
            }
        }

        p = eol;
    }

    if (w->status == 204 || w->status == 304) {
        w->state = NGX_HTTP_ENGAGEMENT_W_LENGTH;
        w->rest = 0;

    } else if (chunked) {
        w->state = NGX_HTTP_ENGAGEMENT_W_CHUNKED;
        w->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE;
        w->rest = 0;

    } else if (length >= 0) {
        w->state = NGX_HTTP_ENGAGEMENT_W_LENGTH;
        w->rest = length;

    } else {
        w->state = NGX_HTTP_ENGAGEMENT_W_CLOSE;
        w->close = 1;
    }

    return NGX_OK;
}


/* NGX_OK: the body is complete, NGX_AGAIN: more is needed */

/* the first bytes of an answer's body: what a check answers */
static void
ngx_http_engagement_writer_keep(ngx_http_engagement_writer_t *w, u_char *p,
    size_t n)
{
    n = ngx_min(n, sizeof(w->ans) - w->ans_n);
    w->ans_n = ngx_cpymem(w->ans + w->ans_n, p, n) - w->ans;
}


static ngx_int_t
ngx_http_engagement_writer_body(ngx_http_engagement_writer_t *w, u_char *p,
    size_t n)
{
    u_char   ch, *end;
    size_t   take;
    ngx_int_t  d;

    end = p + n;

    switch (w->state) {

    case NGX_HTTP_ENGAGEMENT_W_LENGTH:
        ngx_http_engagement_writer_keep(w, p, ngx_min((off_t) n, w->rest));
        if ((off_t) n > w->rest) {
            /* more than the upstream announced: do not reuse the link */
            w->close = 1;
            w->rest = 0;

        } else {
            w->rest -= n;
        }

        return w->rest == 0 ? NGX_OK : NGX_AGAIN;

    case NGX_HTTP_ENGAGEMENT_W_CLOSE:
        ngx_http_engagement_writer_keep(w, p, n);
        return NGX_AGAIN;

    default:
        break;
    }

    while (p < end) {
        ch = *p;

        switch (w->cstate) {

        case NGX_HTTP_ENGAGEMENT_C_SIZE:
            if (ch == ';' || ch == ' ' || ch == '\t') {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_EXT;
                break;
            }

            if (ch == '\r') {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE_LF;
                break;
            }

            if (ch == '\n') {
                goto size_done;
            }

            d = ngx_hextoi(&ch, 1);
            if (d == NGX_ERROR || w->rest > ((off_t) 1 << 40)) {
                return NGX_ERROR;
            }

            w->rest = w->rest * 16 + d;
            break;

        case NGX_HTTP_ENGAGEMENT_C_EXT:
            if (ch == '\n') {
                goto size_done;
            }
            break;

        case NGX_HTTP_ENGAGEMENT_C_SIZE_LF:
            if (ch != '\n') {
                return NGX_ERROR;
            }

        size_done:

            w->cstate = w->rest ? NGX_HTTP_ENGAGEMENT_C_DATA
                                : NGX_HTTP_ENGAGEMENT_C_TRAILER;
            break;

        case NGX_HTTP_ENGAGEMENT_C_DATA:
            take = ngx_min((off_t) (end - p), w->rest);
            ngx_http_engagement_writer_keep(w, p, take);
            w->rest -= take;
            p += take;

            if (w->rest == 0) {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_DATA_CR;
            }

            continue;

        case NGX_HTTP_ENGAGEMENT_C_DATA_CR:
            if (ch == '\r') {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_DATA_LF;
                break;
            }

            if (ch != '\n') {
                return NGX_ERROR;
            }

            w->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE;
            break;

        case NGX_HTTP_ENGAGEMENT_C_DATA_LF:
            if (ch != '\n') {
                return NGX_ERROR;
            }

            w->cstate = NGX_HTTP_ENGAGEMENT_C_SIZE;
            break;

        case NGX_HTTP_ENGAGEMENT_C_TRAILER:
            if (ch == '\r') {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER_LF;

            } else if (ch == '\n') {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_DONE;

            } else {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE;
            }
            break;

        case NGX_HTTP_ENGAGEMENT_C_TRAILER_LINE:
            if (ch == '\n') {
                w->cstate = NGX_HTTP_ENGAGEMENT_C_TRAILER;
            }
            break;

        case NGX_HTTP_ENGAGEMENT_C_TRAILER_LF:
            if (ch != '\n') {
                return NGX_ERROR;
            }

            w->cstate = NGX_HTTP_ENGAGEMENT_C_DONE;
            break;

        default:
            /* bytes after the last chunk: do not reuse the link */
            w->close = 1;
            return NGX_OK;
        }

        p++;

        if (w->cstate == NGX_HTTP_ENGAGEMENT_C_DONE) {
            if (p < end) {
                w->close = 1;
            }
            return NGX_OK;
        }
    }

    return NGX_AGAIN;
}


/*
 * The end of a send. ok: a complete response arrived (its status decides).
 * Otherwise, or on a non-2xx status, a batch from the queue goes to the
 * spool and a spooled one is put back for a later replay.
 */

static void
ngx_http_engagement_writer_done(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why)
{
    size_t                              n;
    ngx_connection_t                   *c;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;
    sh = wcf->sh;
    c = w->c;

    if (!w->busy) {
        return;
    }

    if (c) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }
    }

    if (!ok && w->reused && w->head_n == 0 && !w->retried
        && !ngx_exiting && !w->stopping)
    {
        /* the upstream had closed the parked connection: once more */
        w->retried = 1;
        ngx_http_engagement_writer_close(w);
        ngx_http_engagement_writer_connect(w);
        return;
    }

    w->busy = 0;

    if (ok && w->sent < w->req_len) {
        /* an answer before the whole batch was sent: never a success */
        w->close = 1;

        if (w->status >= 200 && w->status < 300) {
            ok = 0;
            why = "the upstream answered before the batch was sent";
        }
    }

    if (w->checking) {
        w->checking = 0;
        ngx_http_engagement_writer_checked(w, ok, why);
        return;
    }

    if (ok && w->status >= 200 && w->status < 300) {
        sh->down_until = ngx_current_msec;
        sh->spool_blocked = 0;

        if (w->batch) {
            ngx_http_engagement_writer_confirm(wcf, w->batch);
            (void) ngx_atomic_fetch_add(&sh->batches_sent, 1);
            (void) ngx_atomic_fetch_add(&sh->events_sent, w->nevents);

        } else {
            ngx_http_engagement_spool_done(wcf, w->path, w->file_len,
                                           ngx_cycle->log);
            (void) ngx_atomic_fetch_add(&sh->batches_replayed, 1);
        }

        /* park the connection until the next batch */
        ngx_http_engagement_writer_park(w);

        /* more waiting: send the next batch soon */
        if (!ngx_exiting && w->tick.timer_set
            && (sh->queued >= wcf->batch || sh->spool_files))
        {
            ngx_del_timer(&w->tick);
            ngx_add_timer(&w->tick, 1);
        }

        w->batch = 0;
        return;
    }

    if (ok) {
        n = ngx_min(w->body_n, 200);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: %V answered %ui to batch %*s: "
                      "\"%*s\"", &wcf->url, w->status, w->id_len, w->id,
                      n, w->body_start);

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: batch %*s to %V failed: %s",
                      w->id_len, w->id, &wcf->url, why);
    }

    ngx_http_engagement_writer_close(w);
    sh->down_until = ngx_current_msec + wcf->retry;

    if (w->batch == 0) {
        (void) ngx_atomic_fetch_add(&sh->replay_failed, 1);
        ngx_http_engagement_spool_release(w->path, ngx_cycle->log);
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->batches_failed, 1);

    (void) ngx_http_engagement_writer_spool_batch(w,
                                                  ngx_exiting || w->stopping);
}


static void
ngx_http_engagement_writer_idle(ngx_event_t *rev)
{
    u_char                         buf[1];
    ngx_connection_t              *c;
    ngx_http_engagement_writer_t  *w;

    c = rev->data;
    w = &ngx_http_engagement_writer;

    if (!c->close && c->recv(c, buf, 1) == NGX_AGAIN) {
        if (ngx_handle_read_event(rev, 0) == NGX_OK) {
            return;
        }
    }

    /* closed by the upstream, unexpected bytes, or a shutdown */
    ngx_http_engagement_writer_close(w);
}


static void
ngx_http_engagement_writer_close(ngx_http_engagement_writer_t *w)
{
    if (w->c) {
        ngx_close_connection(w->c);
        w->c = NULL;
    }

    if (w->pool) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
    }
}


/* status figures */

static u_char *
ngx_http_engagement_writer_row(u_char *p, ngx_uint_t json, ngx_uint_t *first,
    const char *name, const char *type, const char *help, const char *label,
    const char *value, ngx_atomic_uint_t v)
{
    if (json) {
        p = ngx_sprintf(p, "%s\"%s%s%s\":%uA", *first ? "" : ",", name,
                        value ? "_" : "", value ? value : "", v);
        *first = 0;
        return p;
    }

    if (help) {
        p = ngx_sprintf(p, "# HELP nginx_engagement_writer_%s %s\n"
                        "# TYPE nginx_engagement_writer_%s %s\n",
                        name, help, name, type);
    }

    if (label) {
        return ngx_sprintf(p, "nginx_engagement_writer_%s{%s=\"%s\"} %uA\n",
                           name, label, value, v);
    }

    return ngx_sprintf(p, "nginx_engagement_writer_%s %uA\n", name, v);
}


size_t
ngx_http_engagement_writer_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    return emcf->writer ? 6144 : 0;
}


u_char *
ngx_http_engagement_writer_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    time_t                              oldest;
    ngx_uint_t                          first;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = emcf->writer;

    if (wcf == NULL || wcf->sh == NULL) {
        return p;
    }

    sh = wcf->sh;
    oldest = ngx_http_engagement_spool_oldest(wcf);
    oldest = oldest ? ngx_max(ngx_time() - oldest, 0) : 0;
    first = 1;

    if (json) {
        p = ngx_cpymem(p, ",\"writer\":{", sizeof(",\"writer\":{") - 1);
    }

#define ngx_http_engagement_writer_put(name, type, help, label, value, v)    \
    p = ngx_http_engagement_writer_row(p, json, &first, name, type, help,     \
                                       label, value, (ngx_atomic_uint_t) (v))

    ngx_http_engagement_writer_put("up", "gauge",
        "1 unless the last send to the upstream failed lately.", NULL, NULL,
        (ngx_msec_int_t) (sh->down_until - ngx_current_msec) <= 0);
    ngx_http_engagement_writer_put("queued_events", "gauge",
        "Events queued in shared memory, not claimed by a sender.", NULL,
        NULL, sh->queued);
    ngx_http_engagement_writer_put("inflight_events", "gauge",
        "Events in a batch being sent.", NULL, NULL, sh->inflight_n);
    ngx_http_engagement_writer_put("events_total", "counter",
        "Events accepted into the writer's queue.", NULL, NULL,
        sh->accepted);
    ngx_http_engagement_writer_put("events_sent_total", "counter",
        "Events the upstream took straight from the queue.", NULL, NULL,
        sh->events_sent);
    ngx_http_engagement_writer_put("batches_total", "counter",
        "Batches by result: sent, failed (then spooled or requeued), "
        "spooled, replayed from the spool, replay_failed, "
        "already_delivered (a check found it in the sink).", "result", "sent",
        sh->batches_sent);
    ngx_http_engagement_writer_put("batches_total", NULL, NULL, "result",
                                   "failed", sh->batches_failed);
    ngx_http_engagement_writer_put("batches_total", NULL, NULL, "result",
                                   "spooled", sh->batches_spooled);
    ngx_http_engagement_writer_put("batches_total", NULL, NULL, "result",
                                   "replayed", sh->batches_replayed);
    ngx_http_engagement_writer_put("batches_total", NULL, NULL, "result",
                                   "replay_failed", sh->replay_failed);
    ngx_http_engagement_writer_put("batches_total", NULL, NULL, "result",
                                   "already_delivered", sh->batches_delivered);
    ngx_http_engagement_writer_put("refused_total", "counter",
        "Events refused with 503: the queue zone or the spool was full.",
        "reason", "queue_full", sh->refused_queue_full);
    ngx_http_engagement_writer_put("refused_total", NULL, NULL, "reason",
                                   "spool_full", sh->refused_spool_full);
    ngx_http_engagement_writer_put("spool_full_total", "counter",
        "Batches kept in the queue because the spool was at its cap.", NULL,
        NULL, sh->spool_full);
    ngx_http_engagement_writer_put("spool_errors_total", "counter",
        "Spool files that could not be written.", NULL, NULL,
        sh->spool_errors);
    ngx_http_engagement_writer_put("spool_writes_total", "counter",
        "Batches written to the spool, by where: in a thread of the "
        "writer's pool, or in the worker (at a stop, or without a pool).",
        "in", "thread", sh->spool_in_thread);
    ngx_http_engagement_writer_put("spool_writes_total", NULL, NULL, "in",
        "worker", sh->batches_spooled - sh->spool_in_thread);
    ngx_http_engagement_writer_put("reclaimed_total", "counter",
        "Events of a dead worker's claim put back in the queue.", NULL, NULL,
        sh->reclaimed);
    ngx_http_engagement_writer_put("connects_total", "counter",
        "Connections opened to the upstream (the rest were kept alive).",
        NULL, NULL, sh->connects);
    ngx_http_engagement_writer_put("spool_bytes", "gauge",
        "Bytes in the spool directory.", NULL, NULL, sh->spool_bytes);
    ngx_http_engagement_writer_put("spool_files", "gauge",
        "Batches in the spool directory.", NULL, NULL, sh->spool_files);
    ngx_http_engagement_writer_put("oldest_spooled_age_seconds", "gauge",
        "Age of the oldest spooled batch, 0 when the spool is empty.", NULL,
        NULL, oldest);

#undef ngx_http_engagement_writer_put

    if (json) {
        *p++ = '}';
    }

    return p;
}
