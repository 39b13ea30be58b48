
/*
 * A claimed batch on its way to the spool (spool.c has the directory):
 * while the upstream is down, after a failed send, and at the worker's
 * exit. The disk work (write, fsync, rename) runs in a thread of the
 * writer's pool when there is one, one batch at a time, so that a slow
 * disk does not stall the worker; at an exit the worker writes itself.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


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


static ngx_int_t ngx_http_engagement_writer_spool_finish(
    ngx_http_engagement_writer_t *w, ngx_int_t rc, ngx_uint_t in_thread);
#if (NGX_THREADS)
static void ngx_http_engagement_writer_spool_thread(void *data,
    ngx_log_t *log);
static void ngx_http_engagement_writer_spooled(ngx_event_t *ev);
#endif


/* at a worker's start: the task its batches go to disk in */

ngx_int_t
ngx_http_engagement_writer_spool_start(ngx_http_engagement_writer_t *w,
    ngx_cycle_t *cycle)
{
#if (NGX_THREADS)
    if (w->wcf->thread_pool.len == 0) {
        return NGX_OK;
    }

    w->tp = ngx_thread_pool_get(cycle, &w->wcf->thread_pool);

    if (w->tp == NULL) {
        return NGX_OK;
    }

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
#endif

    return NGX_OK;
}


/*
 * At a worker's exit, a batch on its way to disk: nginx's thread pools
 * have finished their tasks by now (they exit before this module), but
 * the completion event will not run any more; it is finished here.
 */

void
ngx_http_engagement_writer_spool_wait(ngx_http_engagement_writer_t *w,
    ngx_log_t *log)
{
#if (NGX_THREADS)
    ngx_uint_t                        ms;
    ngx_http_engagement_spool_job_t  *job;

    if (!w->spooling) {
        return;
    }

    job = w->task->ctx;

    for (ms = 0; !job->done && ms < NGX_HTTP_ENGAGEMENT_WRITER_STOP_WAIT; ms++)
    {
        ngx_msleep(1);
    }

    w->spooling = 0;
    w->busy = 0;

    if (job->done) {
        ngx_memory_barrier();
        (void) ngx_http_engagement_writer_spool_finish(w, job->rc, 1);
        return;
    }

    /* still writing: its events stay queued, and go again at the exit */
    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "engagement_writer: a spool write did not end in %ui s; "
                  "its batch is spooled again",
                  (ngx_uint_t) NGX_HTTP_ENGAGEMENT_WRITER_STOP_WAIT / 1000);
    ngx_http_engagement_writer_release(w);
#endif
}


/* batches straight from the queue to the spool (upstream down, or exit) */

void
ngx_http_engagement_writer_spool_queue(ngx_http_engagement_writer_t *w,
    ngx_uint_t force)
{
    ngx_int_t                           rc;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = w->wcf;

    /* in flight: batches released with no claimer, or a dead worker's */
    while ((wcf->sh->queued || wcf->sh->inflight_n) && !w->spooling
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

ngx_int_t
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
        ngx_http_engagement_writer_release(w);
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
        ngx_http_engagement_writer_release(w);
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
    ngx_http_engagement_writer_t       *w = ev->data;
    ngx_http_engagement_spool_job_t    *job;
    ngx_http_engagement_writer_conf_t  *wcf;

    if (!w->spooling) {
        /* finished by writer_stop already */
        return;
    }

    job = w->task->ctx;
    wcf = w->wcf;

    w->spooling = 0;
    w->busy = 0;

    if (ngx_http_engagement_writer_spool_finish(w, job->rc, 1) != NGX_OK) {
        /*
         * The disk refused it (full, an I/O error): the batch stays
         * queued, and the next attempt waits retry=, as after a failed
         * send, instead of taking the next batch at once (each attempt
         * writes up to the free space, deletes it and logs an alert)
         */
        if (w->on && !w->stopping && !ngx_exiting) {
            if (w->tick.timer_set) {
                ngx_del_timer(&w->tick);
            }

            ngx_add_timer(&w->tick, wcf->retry);
        }

        return;
    }

    /* more to write or send: the next tick soon */
    ngx_http_engagement_writer_soon(w, w->on && !w->stopping
                                       && (wcf->sh->queued >= wcf->batch
                                           || wcf->sh->spool_files));
}

#endif
