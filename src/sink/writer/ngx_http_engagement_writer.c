
/*
 * The durable writer's sender in each worker. A timer claims a batch of
 * queued lines (writer_queue.c) or a spooled batch (spool.c) and POSTs it
 * to the upstream (writer_client.c) on a keep-alive connection of its
 * own; one batch is in flight at a time. The lines leave shared memory
 * only when the upstream answered 2xx or the batch is safely in the spool
 * (writer_spool.c). Each batch carries an id (X-Engagement-Batch) that
 * it keeps for good once it may have reached the sink (a send without an
 * answer): spooled, or taken back from the queue zone (a dead worker's
 * claim, a batch the spool could not take). With check=, the sink is
 * asked before such a batch is sent again. At the worker's exit what is
 * left goes to the spool.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


/* the first ticks of the workers spread over this many ms */
#define NGX_HTTP_ENGAGEMENT_WRITER_JITTER  200
/* room for a check request's head beside its path, host and batch id */
#define NGX_HTTP_ENGAGEMENT_WRITER_CHECK_HEAD  256


static void ngx_http_engagement_writer_join(ngx_http_engagement_writer_t *w);
static ngx_uint_t ngx_http_engagement_writer_leave(
    ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_tick(ngx_event_t *ev);
static void ngx_http_engagement_writer_go(ngx_http_engagement_writer_t *w);
static u_char *ngx_http_engagement_writer_head(u_char *p, ngx_str_t *uri);
static u_char *ngx_http_engagement_writer_head_lines(u_char *p,
    ngx_http_engagement_writer_conf_t *wcf, const char *type, size_t len);
static void ngx_http_engagement_writer_request(
    ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_send_check(
    ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_checked(
    ngx_http_engagement_writer_t *w, ngx_uint_t ok, const char *why);
static ngx_int_t ngx_http_engagement_writer_check_rows(
    ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_in_sink(
    ngx_http_engagement_writer_t *w, ngx_int_t rows);
static void ngx_http_engagement_writer_up(ngx_http_engagement_writer_sh_t *sh);
static void ngx_http_engagement_writer_delivered(
    ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_failed(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why);
static void ngx_http_engagement_writer_later(ngx_http_engagement_writer_t *w);
static void ngx_http_engagement_writer_free_file(
    ngx_http_engagement_writer_t *w);


ngx_http_engagement_writer_t  ngx_http_engagement_writer;


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

    ngx_http_engagement_writer_join(w);

    w->tick.handler = ngx_http_engagement_writer_tick;
    w->tick.data = w;
    w->tick.log = cycle->log;
    w->tick.cancelable = 1;

    if (ngx_http_engagement_writer_spool_start(w, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the workers' first ticks apart, by a step prime to the spread */
    ngx_add_timer(&w->tick, w->wcf->interval / 2
                            + ngx_worker * 37
                              % NGX_HTTP_ENGAGEMENT_WRITER_JITTER);

    return NGX_OK;
}


/*
 * At a worker's exit (a stop or a reload): a batch still in flight goes
 * to the spool, beyond its cap if need be, and so does everything still
 * queued, unless workers of a newer configuration share the queue zone
 * (a reload that kept it): those send it, and a reload costs the old
 * workers only their own batches.
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

    ngx_http_engagement_writer_spool_wait(w, cycle->log);

    if (w->busy) {
        ngx_http_engagement_writer_done(w, 0, "the worker is exiting");
    }

    ngx_http_engagement_writer_close(w);

    if (!ngx_http_engagement_writer_leave(w)) {
        ngx_http_engagement_writer_spool_queue(w, 1);
    }

    if (w->req) {
        ngx_free(w->req);
        w->req = NULL;
    }

    w->on = 0;
}


/* a worker's start: its generation is the zone's configuration count */

static void
ngx_http_engagement_writer_join(ngx_http_engagement_writer_t *w)
{
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;
    sh = wcf->sh;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    w->gen = sh->cycle_gen;

    if (w->gen > sh->running_gen) {
        sh->running_gen = w->gen;
        sh->gen_live = 0;
    }

    if (w->gen == sh->running_gen) {
        sh->gen_live++;
    }

    ngx_shmtx_unlock(&wcf->shpool->mutex);
}


/*
 * A worker's exit: 1 when live workers of a newer generation share the
 * queue (the queue is theirs to send), 0 when this is a stop. A worker
 * killed is still counted, but the master starts another in its place.
 */

static ngx_uint_t
ngx_http_engagement_writer_leave(ngx_http_engagement_writer_t *w)
{
    ngx_uint_t                          newer;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;
    sh = wcf->sh;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    if (w->gen == sh->running_gen && sh->gen_live) {
        sh->gen_live--;
    }

    newer = (sh->running_gen > w->gen && sh->gen_live);

    ngx_shmtx_unlock(&wcf->shpool->mutex);

    return newer;
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

    /*
     * the spool is looked at even when it counts no file: a reload that
     * made a new queue zone did not count the files its old workers were
     * writing or replaying, and those come back to the spool later
     */
    rc = ngx_http_engagement_spool_claim(wcf, w->path, w->id, &w->id_len,
                                         &w->file_body, &w->file_len,
                                         ev->log);
    if (rc == NGX_OK) {
        w->batch = 0;
        w->nevents = 0;
        w->exposed = 1;
        ngx_http_engagement_writer_go(w);
        goto next;
    }

    /*
     * with claims outstanding, claim() also takes back a batch released
     * after a send, or a dead worker's
     */
    if ((sh->queued || sh->inflight_n)
        && ngx_http_engagement_writer_claim(w) == NGX_OK)
    {
        ngx_http_engagement_writer_go(w);
    }

next:

    if (!ev->timer_set) {
        ngx_add_timer(ev, wcf->interval);
    }
}


/* a batch that may be in the sink already is checked first (check=) */

static void
ngx_http_engagement_writer_go(ngx_http_engagement_writer_t *w)
{
    if (w->exposed && w->wcf->check.len) {
        /* was it delivered before its answer got lost? */
        ngx_http_engagement_writer_send_check(w);

    } else {
        ngx_http_engagement_writer_send(w);
    }
}


/* more is waiting: the next tick comes at once */

void
ngx_http_engagement_writer_soon(ngx_http_engagement_writer_t *w,
    ngx_uint_t more)
{
    if (more && !ngx_exiting && w->tick.timer_set) {
        ngx_del_timer(&w->tick);
        ngx_add_timer(&w->tick, 1);
    }
}


/* the request buffer holds at least need bytes (its contents are lost) */

ngx_int_t
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


/* a POST's request line */

static u_char *
ngx_http_engagement_writer_head(u_char *p, ngx_str_t *uri)
{
    return ngx_sprintf(p, "POST %V HTTP/1.1\r\n", uri);
}


/* a POST's lines after the request line, up to its Content-Length */

static u_char *
ngx_http_engagement_writer_head_lines(u_char *p,
    ngx_http_engagement_writer_conf_t *wcf, const char *type, size_t len)
{
    return ngx_sprintf(p, "Host: %V\r\n"
                       "User-Agent: nginx-engagement/"
                       NGX_HTTP_ENGAGEMENT_VERSION "\r\n"
                       "Content-Type: %s\r\n"
                       "Content-Length: %uz\r\n",
                       &wcf->host, type, len);
}


/* the batch in w->req (claimed) or w->file_body (spooled) to the upstream */

void
ngx_http_engagement_writer_send(ngx_http_engagement_writer_t *w)
{
    u_char                             *p;
    size_t                              head;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    if (wcf->id_param.len) {
        /*
         * The batch id in the URL too (id_param=; for ClickHouse,
         * query_id): a batch sent again while the sink still runs its
         * first send (whose answer timed out) is refused by the sink
         * rather than stored twice, and checked again later.
         */
        p = ngx_sprintf(w->head, "POST %V%c%V=%*s HTTP/1.1\r\n", &wcf->uri,
                        ngx_strlchr(wcf->uri.data,
                                    wcf->uri.data + wcf->uri.len, '?')
                        ? '&' : '?',
                        &wcf->id_param, w->id_len, w->id);

    } else {
        p = ngx_http_engagement_writer_head(w->head, &wcf->uri);
    }

    p = ngx_http_engagement_writer_head_lines(p, wcf, "application/x-ndjson",
                                              w->file_len);
    p = ngx_sprintf(p, "X-Engagement-Batch: %*s\r\n"
                    "Connection: keep-alive\r\n\r\n", w->id_len, w->id);
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
        ngx_memcpy(w->req + head, w->file_body, w->file_len);
        ngx_http_engagement_writer_free_file(w);
        w->head_len = 0;

    } else {
        /* the lines sit right after the reserved head room */
        w->head_len = NGX_HTTP_ENGAGEMENT_WRITER_HEAD - head;
        ngx_memcpy(w->req + w->head_len, w->head, head);
    }

    w->req_len = head + w->file_len;

    ngx_http_engagement_writer_request(w);
}


static void
ngx_http_engagement_writer_request(ngx_http_engagement_writer_t *w)
{
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
 * A batch from the queue zone keeps its lines after the head room of
 * w->req: the check is written in that room.
 */

static void
ngx_http_engagement_writer_send_check(ngx_http_engagement_writer_t *w)
{
    u_char                             *p;
    size_t                              need;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    need = wcf->check.len + wcf->host.len + w->id_len
           + NGX_HTTP_ENGAGEMENT_WRITER_CHECK_HEAD;

    if (w->batch && need > NGX_HTTP_ENGAGEMENT_WRITER_HEAD) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: the check of batch %*s does not "
                      "fit in %uz bytes; the batch is sent again unchecked",
                      w->id_len, w->id,
                      (size_t) NGX_HTTP_ENGAGEMENT_WRITER_HEAD);
        ngx_http_engagement_writer_send(w);
        return;
    }

    w->checking = 1;

    if (ngx_http_engagement_writer_room(w, need) != NGX_OK) {
        w->busy = 1;
        ngx_http_engagement_writer_done(w, 0, "out of memory");
        return;
    }

    p = ngx_http_engagement_writer_head(w->req, &wcf->check);
    p = ngx_http_engagement_writer_head_lines(p, wcf, "text/plain",
                                              w->id_len + 2);
    p = ngx_sprintf(p, "Connection: keep-alive\r\n\r\n'%*s'",
                    w->id_len, w->id);

    w->req_len = p - w->req;
    w->head_len = 0;

    ngx_http_engagement_writer_request(w);
}


/* the check's answer (done() handed it over) */

static void
ngx_http_engagement_writer_checked(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why)
{
    u_char     *p;
    size_t      lines;
    ngx_int_t   rows;

    if (!ok) {
        /* no answer: the upstream is still down, the batch waits */
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: the check of batch %*s at %V "
                      "failed: %s", w->id_len, w->id, &w->wcf->url, why);

        ngx_http_engagement_writer_later(w);
        return;
    }

    /* an answer: the connection is kept as after a batch */
    ngx_http_engagement_writer_park(w);

    rows = ngx_http_engagement_writer_check_rows(w);

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

    /* a batch from the queue zone counts its lines, a spooled one not */
    lines = w->nevents;

    if (w->batch == 0) {
        for (p = w->file_body; p < w->file_body + w->file_len; p++) {
            lines += (*p == '\n');
        }
    }

    if ((size_t) rows < lines) {
        /* not there (or not all of it: the sink drops what repeats) */
        ngx_http_engagement_writer_send(w);
        return;
    }

    ngx_http_engagement_writer_in_sink(w, rows);
}


/* the sink holds the batch: it leaves the queue zone, or the spool */

static void
ngx_http_engagement_writer_in_sink(ngx_http_engagement_writer_t *w,
    ngx_int_t rows)
{
    ngx_http_engagement_writer_sh_t  *sh;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "engagement_writer: batch %*s is in the sink already "
                  "(%i rows): not sent again", w->id_len, w->id, rows);

    sh = w->wcf->sh;
    ngx_http_engagement_writer_up(sh);

    if (w->batch) {
        ngx_http_engagement_writer_confirm(w->wcf, w->batch);
        w->batch = 0;

    } else {
        ngx_http_engagement_spool_done(w->wcf, w->path, w->file_len,
                                       ngx_cycle->log);
        ngx_http_engagement_writer_free_file(w);
    }

    (void) ngx_atomic_fetch_add(&sh->batches_delivered, 1);

    ngx_http_engagement_writer_soon(w, sh->queued >= w->wcf->batch
                                       || sh->inflight_n || sh->spool_files);
}


/* the upstream answered: it is up, and the spool may take batches again */

static void
ngx_http_engagement_writer_up(ngx_http_engagement_writer_sh_t *sh)
{
    sh->down_until = ngx_current_msec;
    sh->down_since = 0;
    sh->spool_blocked = 0;
}


/* the rows a check's 2xx answer counts, NGX_ERROR: not a count */

static ngx_int_t
ngx_http_engagement_writer_check_rows(ngx_http_engagement_writer_t *w)
{
    u_char  *end;

    if (!ngx_http_engagement_writer_2xx(w)) {
        return NGX_ERROR;
    }

    end = w->ans + w->ans_n;

    while (end > w->ans && (end[-1] == '\n' || end[-1] == '\r'
                            || end[-1] == ' '))
    {
        end--;
    }

    return ngx_atoi(w->ans, end - w->ans);
}


static void
ngx_http_engagement_writer_free_file(ngx_http_engagement_writer_t *w)
{
    if (w->file_body) {
        ngx_free(w->file_body);
        w->file_body = NULL;
    }
}


/*
 * The end of a send. ok: a complete response arrived (its status decides).
 * Otherwise, or on a non-2xx status, a batch from the queue goes to the
 * spool and a spooled one is put back for a later replay.
 */

void
ngx_http_engagement_writer_done(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why)
{
    ngx_connection_t  *c;

    c = w->c;

    if (!w->busy) {
        return;
    }

    if (w->sent && !w->checking) {
        /* bytes of the batch went out: the sink may have it */
        w->exposed = 1;
    }

    if (c) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }
    }

    if (!ok && w->reused && w->head_n == 0 && !w->retried && !w->timedout
        && !ngx_exiting && !w->stopping)
    {
        /*
         * The upstream had closed the parked connection (a reset or an
         * end of stream before any answer): once more, on a new one. Not
         * after a timeout: the upstream may be storing the batch still,
         * so the batch goes the way of any failure (the spool, and the
         * check before it is sent again).
         */
        w->retried = 1;
        ngx_http_engagement_writer_close(w);
        ngx_http_engagement_writer_connect(w);
        return;
    }

    w->busy = 0;

    if (ok && w->sent < w->req_len) {
        /* an answer before the whole batch was sent: never a success */
        w->close = 1;

        if (ngx_http_engagement_writer_2xx(w)) {
            ok = 0;
            why = "the upstream answered before the batch was sent";
        }
    }

    if (w->checking) {
        w->checking = 0;
        ngx_http_engagement_writer_checked(w, ok, why);
        return;
    }

    if (ok && ngx_http_engagement_writer_2xx(w)) {
        ngx_http_engagement_writer_delivered(w);
        return;
    }

    ngx_http_engagement_writer_failed(w, ok, why);
}


/* a 2xx: the batch leaves the queue, or its spool file goes */

static void
ngx_http_engagement_writer_delivered(ngx_http_engagement_writer_t *w)
{
    ngx_http_engagement_writer_sh_t  *sh;

    sh = w->wcf->sh;

    ngx_http_engagement_writer_up(sh);

    if (w->batch) {
        ngx_http_engagement_writer_confirm(w->wcf, w->batch);
        (void) ngx_atomic_fetch_add(&sh->batches_sent, 1);
        (void) ngx_atomic_fetch_add(&sh->events_sent, w->nevents);

    } else {
        ngx_http_engagement_spool_done(w->wcf, w->path, w->file_len,
                                       ngx_cycle->log);
        (void) ngx_atomic_fetch_add(&sh->batches_replayed, 1);
    }

    /* park the connection until the next batch */
    ngx_http_engagement_writer_park(w);

    ngx_http_engagement_writer_soon(w, sh->queued >= w->wcf->batch
                                       || sh->spool_files);

    w->batch = 0;
}


/* no answer, or a refusal */

static void
ngx_http_engagement_writer_failed(ngx_http_engagement_writer_t *w,
    ngx_uint_t ok, const char *why)
{
    size_t  n;

    if (ok) {
        n = ngx_min(w->body_n, NGX_HTTP_ENGAGEMENT_WRITER_ANSWER_LOG);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: %V answered %ui to batch %*s: "
                      "\"%*s\"", &w->wcf->url, w->status, w->id_len, w->id,
                      n, w->body_start);

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement_writer: batch %*s to %V failed: %s",
                      w->id_len, w->id, &w->wcf->url, why);
    }

    ngx_http_engagement_writer_later(w);
}


/*
 * After a failure the upstream rests for retry=: a spooled batch waits
 * for a later replay, a queued one goes to the spool.
 */

static void
ngx_http_engagement_writer_later(ngx_http_engagement_writer_t *w)
{
    ngx_http_engagement_writer_sh_t  *sh;

    sh = w->wcf->sh;

    ngx_http_engagement_writer_close(w);
    sh->down_until = ngx_current_msec + w->wcf->retry;

    /* the outage's start, for the health check (0 means up) */
    (void) ngx_atomic_cmp_set(&sh->down_since, 0,
                              ngx_max(ngx_current_msec, 1));

    if (w->batch == 0) {
        (void) ngx_atomic_fetch_add(&sh->replay_failed, 1);
        ngx_http_engagement_spool_release(w->path, ngx_cycle->log);

        /* a check's batch, or one that could not be copied for its send */
        ngx_http_engagement_writer_free_file(w);
        return;
    }

    (void) ngx_atomic_fetch_add(&sh->batches_failed, 1);

    (void) ngx_http_engagement_writer_spool_batch(w,
                                                  ngx_exiting || w->stopping);
}
