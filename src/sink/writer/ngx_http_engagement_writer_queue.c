
/*
 * The durable writer's queue in its shared memory zone. The request path
 * reserves a line (room taken, the record formatted), then commits it to
 * the pending list or cancels it. A worker's sender claims a batch of
 * pending lines into its buffer, moving them to the in-flight list under
 * the batch's number and its worker's pid; the batch is then confirmed
 * (delivered or spooled: the lines leave the zone) or released. A batch
 * that may have reached the sink (a send without an answer, a dead
 * worker's claim) keeps its number for good: released, it stays in the
 * in-flight list with no claimer (pid 0), and the next claim takes it
 * back whole, as the same batch, to be checked before it is sent again
 * (writer.c). A batch never sent goes back to the head of the queue.
 * A claim is taken back only when its worker is dead, never for its age:
 * a live worker's send may be slow (a thread's fsync, a stalled process),
 * and a claim taken back from it would be sent twice. The zone lock
 * covers list moves only: the lines of a claim are the claimer's until it
 * ends the claim, and are copied after the unlock.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


static ngx_uint_t ngx_http_engagement_writer_log_now(
    ngx_http_engagement_writer_sh_t *sh);
static void ngx_http_engagement_writer_queue_line(void *res,
    ngx_uint_t counted, ngx_uint_t metrics, const char *reason,
    ngx_str_t *previous);
static ngx_int_t ngx_http_engagement_writer_adopt_locked(
    ngx_http_engagement_writer_t *w, ngx_queue_t **first, ngx_uint_t *n,
    size_t *need);
static void ngx_http_engagement_writer_batch_id(
    ngx_http_engagement_writer_t *w, uint64_t batch);
static size_t ngx_http_engagement_writer_extra(
    ngx_http_engagement_writer_t *w);
static ngx_queue_t *ngx_http_engagement_writer_take_locked(
    ngx_http_engagement_writer_t *w, uint64_t batch, ngx_uint_t *n);
static u_char *ngx_http_engagement_writer_copy(ngx_http_engagement_writer_t *w,
    ngx_queue_t *q, ngx_uint_t n);
static void ngx_http_engagement_writer_unclaim(
    ngx_http_engagement_writer_conf_t *wcf, uint64_t batch, ngx_queue_t *to);


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
    e->pid = 0;
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
ngx_http_engagement_writer_commit(void *res, ngx_uint_t metrics,
    const char *reason)
{
    ngx_http_engagement_writer_queue_line(res, metrics != 0, metrics, reason,
                                          NULL);
}


void
ngx_http_engagement_writer_commit_reaction(void *res, ngx_uint_t counted,
    const char *reason, ngx_str_t *previous)
{
    ngx_http_engagement_writer_queue_line(res, counted, 0, reason, previous);
}


/* the reserved line ends with its outcome and joins the pending queue */

static void
ngx_http_engagement_writer_queue_line(void *res, ngx_uint_t counted,
    ngx_uint_t metrics, const char *reason, ngx_str_t *previous)
{
    ngx_http_engagement_wevent_t       *e = res;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = ngx_http_engagement_writer.wcf;

    if (e == NULL || wcf == NULL) {
        return;
    }

    e->len = ngx_http_engagement_writer_line_end(e->data + e->len, counted,
                                                 metrics, reason, previous)
             - e->data;

    ngx_shmtx_lock(&wcf->shpool->mutex);
    ngx_queue_insert_tail(&wcf->sh->pending, &e->link);
    wcf->sh->queued++;
    ngx_shmtx_unlock(&wcf->shpool->mutex);

    (void) ngx_atomic_fetch_add(&wcf->sh->accepted, 1);
}


/*
 * The queue zone's birth, which a line reserved now is tied to: a line
 * kept for a later commit (a view whose count waits for Redis) is
 * committed only if the zone is still the one it was reserved in.
 */

uint64_t
ngx_http_engagement_writer_birth(void)
{
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = ngx_http_engagement_writer.wcf;

    if (!ngx_http_engagement_writer.on || wcf == NULL || wcf->sh == NULL) {
        return 0;
    }

    return wcf->sh->created_ms;
}


/*
 * A reserved line's received_at becomes t: a view decided later is filed
 * under the time it counted, as Redis's buckets are. The number keeps its
 * width (ten digits until 2286); another width leaves it as it was.
 */

void
ngx_http_engagement_writer_restamp(void *res, time_t t)
{
    u_char                        *p, *last, *d;
    u_char                         num[NGX_TIME_T_LEN + 1];
    size_t                         n;
    ngx_http_engagement_wevent_t  *e = res;

    static const char  name[] = "\"received_at\":";

    if (e == NULL) {
        return;
    }

    last = e->data + e->len;
    p = ngx_strlcasestrn(e->data, last, (u_char *) name, sizeof(name) - 2);

    if (p == NULL) {
        return;
    }

    p += sizeof(name) - 1;

    for (d = p; d < last && *d >= '0' && *d <= '9'; d++) { /* void */ }

    n = ngx_sprintf(num, "%T", t) - num;

    if ((size_t) (d - p) == n) {
        ngx_memcpy(p, num, n);
    }
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
 * A batch into w->req after its head room: NGX_OK with w->batch,
 * w->nevents, w->file_len, the batch id (edge, zone birth, sequence; a
 * replay keeps it) and w->exposed (the batch may be in the sink already:
 * it is checked before it is sent); NGX_DECLINED when nothing is pending.
 * A batch with no claimer at the head of the in-flight list comes first.
 */

ngx_int_t
ngx_http_engagement_writer_claim(ngx_http_engagement_writer_t *w)
{
    size_t                              need;
    uint64_t                            batch;
    ngx_int_t                           rc;
    ngx_uint_t                          n;
    ngx_queue_t                        *first;
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

    for ( ;; ) {
        if (ngx_http_engagement_writer_room(w, need) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_shmtx_lock(&wcf->shpool->mutex);

        rc = ngx_http_engagement_writer_adopt_locked(w, &first, &n, &need);

        if (rc != NGX_AGAIN) {
            break;
        }

        /* the batch taken back is larger than the buffer */
        ngx_shmtx_unlock(&wcf->shpool->mutex);
    }

    if (rc == NGX_OK) {
        e = ngx_queue_data(first, ngx_http_engagement_wevent_t, link);
        batch = e->batch;

    } else {
        batch = ++sh->batch_seq;
        ngx_http_engagement_writer_batch_id(w, batch);
        first = ngx_http_engagement_writer_take_locked(w, batch, &n);
    }

    ngx_shmtx_unlock(&wcf->shpool->mutex);

    if (n == 0) {
        return NGX_DECLINED;
    }

    w->batch = batch;
    w->nevents = n;
    w->exposed = (rc == NGX_OK);
    w->file_len = ngx_http_engagement_writer_copy(w, first, n)
                  - (w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD);

    return NGX_OK;
}


/*
 * A claimer (a spool file's writer) is alive while its pid is: a zombie
 * too, until it is reaped.
 */

ngx_uint_t
ngx_http_engagement_writer_alive(ngx_pid_t pid)
{
    return pid == ngx_pid || kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH;
}


/*
 * The batch at the head of the in-flight list, when it has no claimer (a
 * batch released after a send) or its worker is dead, becomes this
 * worker's claim, whole and under its own number: it may be in the sink.
 * NGX_OK: *first, *n and w->id; NGX_DECLINED: the head is a live worker's
 * claim, or nothing is in flight (such batches behind a live claim wait
 * until it ends); NGX_AGAIN: the buffer must hold *need bytes first.
 */

static ngx_int_t
ngx_http_engagement_writer_adopt_locked(ngx_http_engagement_writer_t *w,
    ngx_queue_t **first, ngx_uint_t *n, size_t *need)
{
    size_t                            len, extra;
    uint64_t                          batch;
    ngx_pid_t                         pid;
    ngx_uint_t                        i;
    ngx_queue_t                      *q;
    ngx_http_engagement_wevent_t     *e;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = w->wcf->sh;

    if (ngx_queue_empty(&sh->inflight)) {
        return NGX_DECLINED;
    }

    q = ngx_queue_head(&sh->inflight);
    e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);
    pid = e->pid;

    if (pid && ngx_http_engagement_writer_alive(pid)) {
        return NGX_DECLINED;
    }

    batch = e->batch;
    ngx_http_engagement_writer_batch_id(w, batch);
    extra = ngx_http_engagement_writer_extra(w);

    /* a claim's lines are adjacent: they were appended together */
    len = 0;

    for (i = 0; q != ngx_queue_sentinel(&sh->inflight); i++) {
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (e->batch != batch) {
            break;
        }

        len += e->len + extra;
        q = ngx_queue_next(q);
    }

    if (len > w->req_size - NGX_HTTP_ENGAGEMENT_WRITER_HEAD) {
        *need = NGX_HTTP_ENGAGEMENT_WRITER_HEAD + len;
        return NGX_AGAIN;
    }

    if (pid) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "engagement_writer: batch %uL of worker %P, which "
                      "died, is taken back to be sent again", batch, pid);
        sh->reclaimed += i;
    }

    *first = ngx_queue_head(&sh->inflight);
    *n = i;

    /* to the tail, in their order, under this worker's pid */
    while (i--) {
        q = ngx_queue_head(&sh->inflight);
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);
        e->pid = ngx_pid;
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&sh->inflight, q);
    }

    return NGX_OK;
}


/* a batch's id: the edge, the zone's birth, the batch's number */

static void
ngx_http_engagement_writer_batch_id(ngx_http_engagement_writer_t *w,
    uint64_t batch)
{
    w->id_len = ngx_sprintf(w->id, "%V.%uL.b%uL", &w->wcf->edge,
                            w->wcf->sh->created_ms, batch)
                - w->id;
}


/* with checks, every line names its batch: the bytes that adds to a line */

static size_t
ngx_http_engagement_writer_extra(ngx_http_engagement_writer_t *w)
{
    return w->wcf->check.len
           ? ngx_http_engagement_writer_line_batch_len(w->id_len) : 0;
}


/*
 * Pending lines that fit the buffer move to the in-flight list under
 * batch and this worker's pid: the first of them, and how many in *n.
 * Under the lock only list moves, at most wcf->batch of them; the lines
 * are copied after it (writer_copy).
 */

static ngx_queue_t *
ngx_http_engagement_writer_take_locked(ngx_http_engagement_writer_t *w,
    uint64_t batch, ngx_uint_t *n)
{
    size_t                              room, extra;
    ngx_uint_t                          i;
    ngx_queue_t                        *q, *first;
    ngx_http_engagement_wevent_t       *e;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;
    sh = wcf->sh;

    room = w->req_size - NGX_HTTP_ENGAGEMENT_WRITER_HEAD;
    extra = ngx_http_engagement_writer_extra(w);

    first = NULL;

    for (i = 0; i < wcf->batch && !ngx_queue_empty(&sh->pending); i++) {
        q = ngx_queue_head(&sh->pending);
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);

        if (e->len + extra > room) {
            break;
        }

        room -= e->len + extra;

        ngx_queue_remove(q);
        e->batch = batch;
        e->pid = ngx_pid;
        ngx_queue_insert_tail(&sh->inflight, q);

        if (first == NULL) {
            first = q;
        }
    }

    sh->queued -= i;
    sh->inflight_n += i;

    *n = i;

    return first;
}


/*
 * The n claimed lines from q into the buffer, without the lock: they stay
 * this worker's (nobody takes back a live worker's claim), and only their
 * own links to each other are followed; the end is returned.
 */

static u_char *
ngx_http_engagement_writer_copy(ngx_http_engagement_writer_t *w,
    ngx_queue_t *q, ngx_uint_t n)
{
    u_char                        *p, *id;
    ngx_http_engagement_wevent_t  *e;

    p = w->req + NGX_HTTP_ENGAGEMENT_WRITER_HEAD;
    id = w->wcf->check.len ? w->id : NULL;

    while (n--) {
        e = ngx_queue_data(q, ngx_http_engagement_wevent_t, link);
        p = ngx_http_engagement_writer_line_batch(p, e, id, w->id_len);
        q = ngx_queue_next(q);
    }

    return p;
}


/* the batch is delivered or spooled: its lines leave shared memory */

void
ngx_http_engagement_writer_confirm(ngx_http_engagement_writer_conf_t *wcf,
    uint64_t batch)
{
    ngx_http_engagement_writer_unclaim(wcf, batch, NULL);
}


/*
 * The batch (w->batch) could not be sent nor spooled. If it may be in the
 * sink (w->exposed) it keeps its number and waits with no claimer at the
 * head of the in-flight list, for a claim to take it back and check it;
 * otherwise its lines go back to the head of the queue.
 */

void
ngx_http_engagement_writer_release(ngx_http_engagement_writer_t *w)
{
    ngx_http_engagement_writer_sh_t  *sh;

    sh = w->wcf->sh;

    ngx_http_engagement_writer_unclaim(w->wcf, w->batch,
                                       w->exposed ? &sh->inflight
                                                  : &sh->pending);
    w->batch = 0;
    w->exposed = 0;
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


/*
 * The lines of a claim end it, in their order: freed (to is NULL), at the
 * head of the queue (to is sh->pending, ahead of what was queued
 * meanwhile), or at the head of the in-flight list with no claimer (to is
 * sh->inflight).
 */

static void
ngx_http_engagement_writer_unclaim(ngx_http_engagement_writer_conf_t *wcf,
    uint64_t batch, ngx_queue_t *to)
{
    ngx_queue_t                      *q, *next, *at;
    ngx_http_engagement_wevent_t     *e;
    ngx_http_engagement_writer_sh_t  *sh;

    sh = wcf->sh;

    ngx_shmtx_lock(&wcf->shpool->mutex);

    at = to;

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

        if (to == NULL) {
            sh->inflight_n--;
            ngx_slab_free_locked(wcf->shpool, e);
            continue;
        }

        ngx_queue_insert_after(at, q);
        at = q;
        e->pid = 0;

        if (to == &sh->pending) {
            e->batch = 0;
            sh->inflight_n--;
            sh->queued++;
        }
    }

    ngx_shmtx_unlock(&wcf->shpool->mutex);
}
