
/*
 * The durable writer's queue in its shared memory zone. The request path
 * reserves a line (room taken, the record formatted), then commits it to
 * the pending list or cancels it. A worker's sender claims a batch of
 * pending lines into its buffer, moving them to the in-flight list under
 * the batch's number; the batch is then confirmed (delivered or spooled:
 * the lines leave the zone) or released (back to the head of the queue).
 * A claim older than any send can take is taken back: its worker died.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


/* a claim older than any send can take, beyond the timeouts: in ms */
#define NGX_HTTP_ENGAGEMENT_WRITER_STALE_EXTRA  5000


static ngx_uint_t ngx_http_engagement_writer_log_now(
    ngx_http_engagement_writer_sh_t *sh);
static void ngx_http_engagement_writer_reclaim_locked(
    ngx_http_engagement_writer_conf_t *wcf, ngx_msec_t now);
static ngx_uint_t ngx_http_engagement_writer_take_locked(
    ngx_http_engagement_writer_t *w, uint64_t batch, ngx_msec_t now,
    u_char **end);
static void ngx_http_engagement_writer_unclaim(
    ngx_http_engagement_writer_conf_t *wcf, uint64_t batch,
    ngx_uint_t requeue);


ngx_uint_t
ngx_http_engagement_writer_enabled(void)
{
    return ngx_http_engagement_writer.on;
}


ngx_int_t
ngx_http_engagement_writer_reserve(ngx_http_engagement_record_t *rec,
    ngx_log_t *log, void **res)
{
    size_t                              len;
    ngx_http_engagement_wevent_t       *e;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    *res = NULL;

    if (!ngx_http_engagement_writer.on) {
        return NGX_DECLINED;
    }

    wcf = ngx_http_engagement_writer.wcf;
    sh = wcf->sh;

    if (sh->spool_blocked || (off_t) sh->spool_bytes >= wcf->spool_max) {
        (void) ngx_atomic_fetch_add(&sh->refused_spool_full, 1);

        if (ngx_http_engagement_writer_log_now(sh)) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "engagement_writer: the spool holds %uA bytes and "
                          "takes no more: events refused with 503",
                          sh->spool_bytes);
        }

        return NGX_BUSY;
    }

    len = ngx_http_engagement_writer_line_len(wcf, rec);

    ngx_shmtx_lock(&wcf->shpool->mutex);
    e = ngx_slab_alloc_locked(wcf->shpool,
                              offsetof(ngx_http_engagement_wevent_t, data)
                              + len);
    ngx_shmtx_unlock(&wcf->shpool->mutex);

    if (e == NULL) {
        (void) ngx_atomic_fetch_add(&sh->refused_queue_full, 1);

        if (ngx_http_engagement_writer_log_now(sh)) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "engagement_writer: zone \"%V\" is full (%uA "
                          "events queued): events refused with 503",
                          &wcf->zone_name, sh->queued);
        }

        return NGX_BUSY;
    }

    e->size = len;
    e->batch = 0;
    e->claimed = 0;
    e->len = ngx_http_engagement_writer_line(e->data, wcf, rec) - e->data;

    *res = e;

    return NGX_OK;
}


/* "the queue or the spool is full" is logged once a while, not per event */

static ngx_uint_t
ngx_http_engagement_writer_log_now(ngx_http_engagement_writer_sh_t *sh)
{
    ngx_msec_t  now;

    now = ngx_current_msec;

    if (now - sh->last_full_log <= NGX_HTTP_ENGAGEMENT_WRITER_LOG_EVERY) {
        return 0;
    }

    sh->last_full_log = now;

    return 1;
}


void
ngx_http_engagement_writer_commit(void *res, ngx_uint_t counted,
    const char *reason)
{
    ngx_http_engagement_writer_commit_reaction(res, counted, reason, NULL);
}


void
ngx_http_engagement_writer_commit_reaction(void *res, ngx_uint_t counted,
    const char *reason, ngx_str_t *previous)
{
    ngx_http_engagement_wevent_t       *e = res;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = ngx_http_engagement_writer.wcf;

    if (e == NULL || wcf == NULL) {
        return;
    }

    e->len = ngx_http_engagement_writer_line_end(e->data + e->len, counted,
                                                 reason, previous)
             - e->data;

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


/*
 * A batch of pending lines into w->req after its head room: NGX_OK with
 * w->batch, w->nevents, w->file_len and the batch id (edge, zone birth,
 * sequence; a replay keeps it), NGX_DECLINED when nothing is pending.
 */

ngx_int_t
ngx_http_engagement_writer_claim(ngx_http_engagement_writer_t *w)
{
    u_char                             *end;
    size_t                              need;
    uint64_t                            batch;
    ngx_msec_t                          now;
    ngx_uint_t                          n;
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

    now = ngx_current_msec;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    ngx_http_engagement_writer_reclaim_locked(wcf, now);

    batch = ++sh->batch_seq;

    w->id_len = ngx_sprintf(w->id, "%V.%uL.b%uL", &wcf->edge, sh->created_ms,
                            batch)
                - w->id;

    n = ngx_http_engagement_writer_take_locked(w, batch, now, &end);

    ngx_shmtx_unlock(&wcf->shpool->mutex);

    if (n == 0) {
        return NGX_DECLINED;
    }

    w->batch = batch;
    w->nevents = n;
    w->file_len = end - (w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD);

    return NGX_OK;
}


/* claims of a dead worker go back to the queue */

static void
ngx_http_engagement_writer_reclaim_locked(
    ngx_http_engagement_writer_conf_t *wcf, ngx_msec_t now)
{
    ngx_msec_t                        stale;
    ngx_queue_t                      *q;
    ngx_http_engagement_wevent_t     *e;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = wcf->sh;

    stale = wcf->connect_timeout + 2 * wcf->timeout + wcf->interval
            + NGX_HTTP_ENGAGEMENT_WRITER_STALE_EXTRA;

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
}


/* pending lines into the buffer, in flight under batch: how many */

static ngx_uint_t
ngx_http_engagement_writer_take_locked(ngx_http_engagement_writer_t *w,
    uint64_t batch, ngx_msec_t now, u_char **end)
{
    u_char                             *p, *id;
    size_t                              room, extra;
    ngx_uint_t                          n;
    ngx_queue_t                        *q;
    ngx_http_engagement_wevent_t       *e;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;
    sh = wcf->sh;

    p = w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD;
    room = w->req_size - NGX_HTTP_ENGAGEMENT_WRITER_HEAD;

    /* with checks, every line names its batch */
    id = wcf->check.len ? w->id : NULL;
    extra = id ? ngx_http_engagement_writer_line_batch_len(w->id_len) : 0;

    for (n = 0; n < wcf->batch && !ngx_queue_empty(&sh->pending); n++) {
        q = ngx_queue_head(&sh->pending);
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (e->len + extra > room) {
            break;
        }

        p = ngx_http_engagement_writer_line_batch(p, e, id, w->id_len);
        room -= e->len + extra;

        ngx_queue_remove(q);
        e->batch = batch;
        e->claimed = now;
        ngx_queue_insert_tail(&sh->inflight, q);
    }

    sh->queued -= n;
    sh->inflight_n += n;

    *end = p;

    return n;
}


/* the batch is delivered or spooled: its lines leave shared memory */

void
ngx_http_engagement_writer_confirm(ngx_http_engagement_writer_conf_t *wcf,
    uint64_t batch)
{
    ngx_http_engagement_writer_unclaim(wcf, batch, 0);
}


/* the batch could not be sent nor spooled: back to the queue's head */

void
ngx_http_engagement_writer_release(ngx_http_engagement_writer_conf_t *wcf,
    uint64_t batch)
{
    ngx_http_engagement_writer_unclaim(wcf, batch, 1);
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


/* the lines of a claim leave the in-flight list: freed, or requeued */

static void
ngx_http_engagement_writer_unclaim(ngx_http_engagement_writer_conf_t *wcf,
    uint64_t batch, ngx_uint_t requeue)
{
    ngx_queue_t                      *q, *next, *at;
    ngx_http_engagement_wevent_t     *e;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = wcf->sh;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    at = ngx_queue_sentinel(&sh->pending);

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

        if (!requeue) {
            ngx_slab_free_locked(wcf->shpool, e);
            continue;
        }

        /* in their order, ahead of what was queued meanwhile */
        e->batch = 0;
        ngx_queue_insert_after(at, q);
        at = q;
        sh->queued++;
    }

    ngx_shmtx_unlock(&wcf->shpool->mutex);
}
