
/*
 * The salt zone: a tiny shared memory zone that holds the random salt
 * identities (viewer, session, client) are hashed with by dedupe and the
 * durable writer, rotated in place every engagement_salt_rotate.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"


#define NGX_HTTP_ENGAGEMENT_SALT_MAGIC  0x45475331   /* "EGS1" */

/* the zone holds one small struct; a few pages for the slab pool */
#define NGX_HTTP_ENGAGEMENT_SALT_ZONE_PAGES      8


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    uint64_t                      period;      /* 0: not started */
    uint64_t                      cur[2];
    uint64_t                      prev[2];
    time_t                        prev_end;    /* when prev stopped */
    ngx_uint_t                    has_prev;
    time_t                        rotate;      /* period's unit */
} ngx_http_engagement_salt_shctx_t;


/*
 * A worker's copy of the salt zone within one period: within a period the
 * current salt never changes and the previous one only goes, so requests
 * read the copy, without the zone lock.
 */
typedef struct {
    ngx_http_engagement_salt_shctx_t  *sh;     /* of which zone */
    time_t                        rotate;
    uint64_t                      period;      /* 0: none yet */
    uint64_t                      cur[2];
    uint64_t                      prev[2];
    time_t                        prev_end;
    ngx_uint_t                    has_prev;
} ngx_http_engagement_salt_cache_t;


static ngx_http_engagement_salt_cache_t  ngx_http_engagement_salt_cache;


/* what the salt zone keeps, for its layout */
static const size_t  ngx_http_engagement_salt_shape[] = {
    sizeof(ngx_http_engagement_salt_shctx_t),
    offsetof(ngx_http_engagement_salt_shctx_t, period),
    offsetof(ngx_http_engagement_salt_shctx_t, cur),
    offsetof(ngx_http_engagement_salt_shctx_t, prev),
    offsetof(ngx_http_engagement_salt_shctx_t, prev_end),
    offsetof(ngx_http_engagement_salt_shctx_t, has_prev),
    offsetof(ngx_http_engagement_salt_shctx_t, rotate)
};


static ngx_int_t ngx_http_engagement_salt_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


static ngx_str_t  ngx_http_engagement_salt_zone_name =
    ngx_string(NGX_HTTP_ENGAGEMENT_SALT_ZONE);


/* the one salt zone of the configuration, declared by its first user */
ngx_shm_zone_t *
ngx_http_engagement_salt_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *zone;

    zone = ngx_shared_memory_add(cf, &ngx_http_engagement_salt_zone_name,
                                 NGX_HTTP_ENGAGEMENT_SALT_ZONE_PAGES
                                 * ngx_pagesize,
                                 &ngx_http_engagement_module);
    if (zone == NULL) {
        return NULL;
    }

    /* another zone of the module (e.g. the writer's) took the name */
    if (zone->init && zone->init != ngx_http_engagement_salt_init_zone) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone name \"%V\" is reserved for the module's "
                           "identity salt; give the zone another name",
                           &ngx_http_engagement_salt_zone_name);
        return NULL;
    }

    zone->init = ngx_http_engagement_salt_init_zone;

    return zone;
}


static ngx_int_t
ngx_http_engagement_salt_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint32_t                           layout;
    ngx_slab_pool_t                   *shpool;
    ngx_http_engagement_salt_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* a reload keeps the salts: dedupe within the window keeps working */
    sh = data ? data : (shm_zone->shm.exists ? shpool->data : NULL);

    layout = ngx_http_engagement_layout_of(ngx_http_engagement_salt_shape);

    if (sh) {
        if (sh->magic != NGX_HTTP_ENGAGEMENT_SALT_MAGIC
            || sh->layout != layout)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "zone \"%V\" was written by another version of "
                          "the module (layout %08xD, this module uses "
                          "%08xD): stop nginx and start it again",
                          &shm_zone->shm.name, sh->layout, layout);
            return NGX_ERROR;
        }

        shm_zone->data = sh;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_salt_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_ENGAGEMENT_SALT_MAGIC;
    sh->layout = layout;

    /* in the master, at configuration time: no syscall on requests */
    ngx_http_engagement_random_key(sh->cur);

    shpool->data = sh;
    shm_zone->data = sh;

    return NGX_OK;
}


/*
 * Brings a worker's copy of the salts to the period: the first request of
 * a new period ratchets the salt forward, under the zone lock. The new
 * salt is a keyed hash of the old one, nginx's random() and the time, so
 * the old salt cannot be worked out from the new one, and no syscall is
 * needed. Periods are aligned on multiples of engagement_salt_rotate
 * since the epoch (midnight UTC for 24h).
 */

static void
ngx_http_engagement_salt_fetch(ngx_http_engagement_guard_conf_t *gc,
    uint64_t period, ngx_http_engagement_salt_cache_t *c)
{
    uint64_t                           in[4];
    ngx_slab_pool_t                   *shpool;
    ngx_http_engagement_salt_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) gc->salt_zone->shm.addr;
    sh = gc->salt_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    /*
     * The salt only goes forward: a zone ahead of this worker's clock (its
     * cached time lags behind another worker's that rotated, or the clock
     * stepped back) hands out its salts as they are. Turning it back would
     * rotate it twice, and leave workers with copies of different salts
     * for a whole period. A new engagement_salt_rotate starts a new one.
     */
    if (sh->period < period || sh->rotate != gc->salt_rotate) {

        if (sh->period) {
            /* period p covers [(p - 1) * rotate, p * rotate) */
            sh->has_prev = 1;
            sh->prev_end = (time_t) sh->period * gc->salt_rotate;
            sh->prev[0] = sh->cur[0];
            sh->prev[1] = sh->cur[1];

            in[0] = period;
            in[1] = (uint64_t) ngx_random();
            in[2] = (uint64_t) ngx_current_msec;

            in[3] = 0;
            sh->cur[0] = ngx_http_engagement_siphash(sh->prev, (u_char *) in,
                                                     sizeof(in));
            in[3] = 1;
            sh->cur[1] = ngx_http_engagement_siphash(sh->prev, (u_char *) in,
                                                     sizeof(in));
        }

        sh->period = period;
        sh->rotate = gc->salt_rotate;
    }

    c->sh = sh;
    c->rotate = gc->salt_rotate;

    /* a worker behind the zone fetches again until its time catches up */
    c->period = sh->period;
    c->cur[0] = sh->cur[0];
    c->cur[1] = sh->cur[1];
    c->prev[0] = sh->prev[0];
    c->prev[1] = sh->prev[1];
    c->prev_end = sh->prev_end;
    c->has_prev = sh->has_prev;

    ngx_shmtx_unlock(&shpool->mutex);
}


/* the previous salt is gone: from the worker's copy and from the zone */

static void
ngx_http_engagement_salt_wipe(ngx_http_engagement_guard_conf_t *gc,
    ngx_http_engagement_salt_cache_t *c)
{
    ngx_slab_pool_t                   *shpool;
    ngx_http_engagement_salt_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) gc->salt_zone->shm.addr;
    sh = c->sh;

    ngx_shmtx_lock(&shpool->mutex);

    if (sh->period == c->period && sh->has_prev) {
        sh->has_prev = 0;
        ngx_memzero(sh->prev, sizeof(sh->prev));
    }

    ngx_shmtx_unlock(&shpool->mutex);

    c->has_prev = 0;
    ngx_memzero(c->prev, sizeof(c->prev));
}


/*
 * Global dedupe (engagement_dedupe_scope global): every edge works out
 * the same salts from the shared secret's key and the period, so that an
 * identity has one hash on every edge. The previous period's salt is
 * handed out for one dedupe window after the period ends, as a random
 * one's is. Nothing is kept: the salts of any period can be made again.
 */

static void
ngx_http_engagement_salt_shared(ngx_http_engagement_guard_conf_t *gc,
    ngx_msec_t window, uint64_t period, time_t now,
    ngx_http_engagement_salt_t *salt)
{
    uint64_t  in[3];
    time_t    start;

    in[0] = period;
    in[1] = (uint64_t) gc->salt_rotate;

    in[2] = 0;
    salt->cur[0] = ngx_http_engagement_siphash(gc->salt_shared,
                                               (u_char *) in, sizeof(in));
    in[2] = 1;
    salt->cur[1] = ngx_http_engagement_siphash(gc->salt_shared,
                                               (u_char *) in, sizeof(in));

    /* period p covers [(p - 1) * rotate, p * rotate) */
    start = (time_t) (period - 1) * gc->salt_rotate;

    salt->has_prev = (period > 1
                      && (ngx_msec_t) (now - start) * 1000 < window);

    if (salt->has_prev) {
        in[0] = period - 1;

        in[2] = 0;
        salt->prev[0] = ngx_http_engagement_siphash(gc->salt_shared,
                                                    (u_char *) in,
                                                    sizeof(in));
        in[2] = 1;
        salt->prev[1] = ngx_http_engagement_siphash(gc->salt_shared,
                                                    (u_char *) in,
                                                    sizeof(in));
    }
}


/*
 * The salts for now, from the worker's copy: the zone is locked only
 * when the period changes (or the copy is of another zone or rotation).
 * The previous salt is handed out for one dedupe window (the caller's)
 * after the end of its period (the marks made with it live no longer),
 * and wiped after the longest window of any location.
 */

void
ngx_http_engagement_salt_get(ngx_http_engagement_guard_conf_t *gc,
    ngx_msec_t window, ngx_http_engagement_salt_t *salt)
{
    time_t                             now;
    uint64_t                           period;
    ngx_msec_t                         past;
    ngx_http_engagement_salt_cache_t  *c;

    c = &ngx_http_engagement_salt_cache;

    now = ngx_time();
    period = (uint64_t) (now / gc->salt_rotate) + 1;

    if (gc->salt_shared) {
        ngx_http_engagement_salt_shared(gc, window, period, now, salt);
        return;
    }

    if (c->period != period || c->sh != gc->salt_zone->data
        || c->rotate != gc->salt_rotate)
    {
        ngx_http_engagement_salt_fetch(gc, period, c);
    }

    salt->cur[0] = c->cur[0];
    salt->cur[1] = c->cur[1];

    /* a worker whose time lags behind the rotation is still in the grace */
    past = (now > c->prev_end) ? (ngx_msec_t) (now - c->prev_end) * 1000 : 0;

    if (c->has_prev && past >= *gc->salt_grace) {
        /* past the longest window of any location: the old salt is gone */
        ngx_http_engagement_salt_wipe(gc, c);
    }

    /* this location's marks made with it live no longer than its window */
    salt->has_prev = c->has_prev && past < window;

    if (salt->has_prev) {
        salt->prev[0] = c->prev[0];
        salt->prev[1] = c->prev[1];
    }
}
