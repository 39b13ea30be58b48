
/*
 * The dimensions zone: the categories this edge passes on, and the
 * figures of dimensions and interactions (ngx_http_engagement_dims.h).
 *
 * The category bound: the first engagement_dimension_limit distinct
 * values seen take the table's places; a value that finds no place is
 * passed on as "other". A place whose value was not seen for
 * NGX_HTTP_ENGAGEMENT_CATEGORY_IDLE is given to the next new value, so a
 * burst of junk values holds the table only as long as it is sent again,
 * and a catalogue that changes is followed within the hour. The table is
 * shared by the edge's workers: a value is itself or "other" on every
 * worker alike, and the edge passes on at most limit values (plus the
 * turnover of idle places) whatever its number of workers.
 *
 * The channel bound is the same, with a table sized for thousands of
 * creators: a channel is looked for only in the PROBE places from its
 * hash's (hash % n), so a lookup under the lock is a few places whatever
 * the table's size. A channel admitted takes a free, else an idle place
 * of that window; a window with neither folds the channel into "other"
 * (a full table folds, and a crowded window may fold a little before the
 * table is full).
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_dims.h"


#define NGX_HTTP_ENGAGEMENT_DIMS_MAGIC   0x656e6764   /* "engd" */


static ngx_int_t ngx_http_engagement_dims_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/* what a reload must find the same to keep the zone's figures */
static uint32_t
ngx_http_engagement_dims_fingerprint(ngx_http_engagement_dims_conf_t *dc)
{
    uint32_t    crc;
    ngx_str_t  *names;
    ngx_uint_t  i, n;

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, (u_char *) &dc->category_max,
                     sizeof(dc->category_max));
    ngx_crc32_update(&crc, (u_char *) &dc->channel_max,
                     sizeof(dc->channel_max));

    n = dc->interactions ? dc->interactions->nelts : 0;
    names = dc->interactions ? dc->interactions->elts : NULL;

    for (i = 0; i < n; i++) {
        ngx_crc32_update(&crc, names[i].data, names[i].len);
        ngx_crc32_update(&crc, (u_char *) " ", 1);
    }

    ngx_crc32_final(crc);

    return crc;
}


ngx_int_t
ngx_http_engagement_dims_zone(ngx_conf_t *cf,
    ngx_http_engagement_dims_conf_t *dc)
{
    size_t                             size;
    ngx_str_t                          name;
    ngx_uint_t                         i;
    ngx_http_engagement_zone_t       **zp;
    ngx_http_engagement_main_conf_t   *emcf;

    if (dc->zone) {
        return NGX_OK;
    }

    ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_DIMS_ZONE);

    /* every counters and dedupe zone is declared by now (merge time) */
    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (zp[i]->name.len == name.len
            && ngx_strncmp(zp[i]->name.data, name.data, name.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "zone name \"%V\" is reserved for the "
                               "module's dimensions zone; give the zone "
                               "another name", &name);
            return NGX_ERROR;
        }
    }

    /* the table, the header, and the slab allocator's own pages */
    size = sizeof(ngx_http_engagement_dims_sh_t)
           + (dc->category_max + dc->channel_max)
             * sizeof(ngx_http_engagement_category_t);
    size = ngx_align(size, ngx_pagesize) + 8 * ngx_pagesize;

    dc->zone = ngx_http_engagement_zone_shm(cf, &name, size,
                                            ngx_http_engagement_dims_init_zone,
                                            dc);

    return dc->zone ? NGX_OK : NGX_ERROR;
}


/* the values a table allocated for its current counts has room for */

static ngx_uint_t
ngx_http_engagement_dims_room(ngx_http_engagement_dims_sh_t *sh)
{
    size_t  head, size;

    head = offsetof(ngx_http_engagement_dims_sh_t, categories);
    size = ngx_align(sizeof(ngx_http_engagement_dims_sh_t)
                     + (sh->ncategories + sh->nchannels)
                       * sizeof(ngx_http_engagement_category_t),
                     ngx_pagesize);

    return (size - head) / sizeof(ngx_http_engagement_category_t);
}


static ngx_int_t
ngx_http_engagement_dims_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                            size;
    ngx_uint_t                        n;
    uint32_t                          fp;
    ngx_slab_pool_t                  *shpool;
    ngx_http_engagement_dims_sh_t    *sh;
    ngx_http_engagement_dims_conf_t  *dc;

    dc = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    dc->shpool = shpool;

    fp = ngx_http_engagement_dims_fingerprint(dc);

    if (data || shm_zone->shm.exists) {
        sh = shpool->data;

        if (sh == NULL || sh->magic != NGX_HTTP_ENGAGEMENT_DIMS_MAGIC) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "dimensions zone \"%V\" was written by another "
                          "kind of zone: stop and start nginx to recreate it",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        dc->sh = sh;

        if (sh->fingerprint != fp) {
            /*
             * Another limit or other interactions in a zone of the same
             * size: the figures and the table start again, with the new
             * limits. The table was allocated in whole pages and the zone's
             * size is its page-rounded size, so a same-sized zone has room
             * for the new table; running old workers read the counts from
             * here and stay within the same pages.
             */
            n = ngx_http_engagement_dims_room(sh);

            if (dc->category_max + dc->channel_max > n) {
                ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                              "dimensions zone \"%V\" has room for %ui "
                              "values, not %ui: stop and start nginx to "
                              "apply the new engagement_dimension_limit",
                              &shm_zone->shm.name, n,
                              dc->category_max + dc->channel_max);
                return NGX_ERROR;
            }

            ngx_shmtx_lock(&shpool->mutex);
            ngx_memzero(&sh->stats, sizeof(sh->stats));
            ngx_memzero(sh->categories,
                        n * sizeof(ngx_http_engagement_category_t));
            sh->ncategories = dc->category_max;
            sh->nchannels = dc->channel_max;
            sh->fingerprint = fp;
            ngx_shmtx_unlock(&shpool->mutex);
        }

        return NGX_OK;
    }

    size = sizeof(ngx_http_engagement_dims_sh_t)
           + (dc->category_max + dc->channel_max)
             * sizeof(ngx_http_engagement_category_t);

    /* whole pages, so that a reload to another limit within the same
     * page-rounded zone size finds room (ngx_http_engagement_dims_room) */
    sh = ngx_slab_calloc(shpool, ngx_align(size, ngx_pagesize));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_ENGAGEMENT_DIMS_MAGIC;
    sh->fingerprint = fp;
    sh->ncategories = dc->category_max;
    sh->nchannels = dc->channel_max;

    shpool->data = sh;
    dc->sh = sh;

    return NGX_OK;
}


/*
 * A value's place in a table of dimension values: looked for in the
 * window of w places from k (wrapping at n), kept fresh when found, else
 * given the first free place of the window or one idle for the idle time.
 * 1: admitted; 0: no place (the caller folds it into "other").
 */

static ngx_uint_t
ngx_http_engagement_dims_admit(ngx_http_engagement_dims_conf_t *dc,
    ngx_http_engagement_category_t *t, ngx_uint_t n, ngx_uint_t windowed,
    ngx_atomic_t *values, ngx_str_t *v, time_t now)
{
    uint32_t                         hash;
    ngx_uint_t                       i, k, w, admitted;
    ngx_http_engagement_category_t  *c, *free, *idle;

    if (v->len == 0 || v->len > NGX_HTTP_ENGAGEMENT_ID_MAX || n == 0) {
        return 0;
    }

    /* hashed outside the lock; 0 marks a free place */
    hash = ngx_crc32_short(v->data, v->len) | 1;

    /* the whole table, or a window from the hash's place (the hash is
     * odd: its low bit says nothing) */
    w = windowed ? ngx_min(n, NGX_HTTP_ENGAGEMENT_CHANNEL_PROBE) : n;
    k = windowed ? (hash >> 1) % n : 0;

    free = NULL;
    idle = NULL;
    admitted = 0;

    ngx_shmtx_lock(&dc->shpool->mutex);

    for (i = 0; i < w; i++, k = (k + 1 == n) ? 0 : k + 1) {
        c = &t[k];

        if (c->hash == 0) {
            if (free == NULL) {
                free = c;
            }

            continue;
        }

        if (c->hash == hash && c->len == v->len
            && ngx_memcmp(c->data, v->data, v->len) == 0)
        {
            c->last = now;
            admitted = 1;
            break;
        }

        if (idle == NULL
            && now - c->last >= dc->category_idle)
        {
            idle = c;
        }
    }

    if (!admitted && (free || idle)) {
        c = free ? free : idle;

        if (free) {
            (void) ngx_atomic_fetch_add(values, 1);
        }

        c->hash = hash;
        c->len = (uint32_t) v->len;
        c->last = now;
        ngx_memcpy(c->data, v->data, v->len);
        admitted = 1;
    }

    ngx_shmtx_unlock(&dc->shpool->mutex);

    return admitted;
}


/* categories: the first N (a scan of a small table) */

ngx_uint_t
ngx_http_engagement_category_admit(ngx_http_engagement_dims_conf_t *dc,
    ngx_str_t *v, time_t now)
{
    return ngx_http_engagement_dims_admit(dc, dc->sh->categories,
                                          dc->sh->ncategories, 0,
                                          &dc->sh->stats.category_values,
                                          v, now);
}


/* channels: many more, a window of places from the value's hash */

ngx_uint_t
ngx_http_engagement_channel_admit(ngx_http_engagement_dims_conf_t *dc,
    ngx_str_t *v, time_t now)
{
    return ngx_http_engagement_dims_admit(dc,
                                          ngx_http_engagement_dims_channels(
                                              dc->sh),
                                          dc->sh->nchannels, 1,
                                          &dc->sh->stats.channel_values,
                                          v, now);
}
