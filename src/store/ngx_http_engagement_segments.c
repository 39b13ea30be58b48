
/*
 * The segments zone: what nginx served to each (session, content) pair
 * from an engagement_segments location.
 *
 * One fixed open-addressing table, made whole when the zone is made
 * (bounded memory, no allocation on the request path), keyed by the keyed
 * hash of (session, content). An entry holds the media time credited,
 * the 32-bit hashes of the segments credited (at most
 * NGX_HTTP_ENGAGEMENT_SEGMENTS_SET), the policy levels already decided,
 * and when the session last fetched a segment. An entry idle for longer
 * than the location's idle= time is free for another pair. When no entry
 * is free within a few probes, the segment is not credited and the
 * caller counts it (defined and visible, never a guess).
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_segments.h"


#define NGX_HTTP_ENGAGEMENT_SEGMENTS_MAGIC   0x45475331   /* "EGS1" */

/* entries looked at for the pair's or a free one */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_PROBES  16


typedef struct {
    uint64_t                      hash;        /* the pair's; 0: never used */
    uint64_t                      last;        /* monotonic ms */
    uint32_t                      served;      /* ms credited */
    uint16_t                      nsegs;
    uint16_t                      done;        /* levels decided */
    uint32_t                      segs[NGX_HTTP_ENGAGEMENT_SEGMENTS_SET];
} ngx_http_engagement_segments_entry_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    uint64_t                      key[2];
    ngx_uint_t                    nentries;
    ngx_http_engagement_segments_entry_t  *entries;
    ngx_http_engagement_segments_stats_t   stats;
} ngx_http_engagement_segments_sh_t;


static const size_t  ngx_http_engagement_segments_shape[] = {
    sizeof(ngx_http_engagement_segments_sh_t),
    offsetof(ngx_http_engagement_segments_sh_t, entries),
    offsetof(ngx_http_engagement_segments_sh_t, stats),
    sizeof(ngx_http_engagement_segments_entry_t),
    offsetof(ngx_http_engagement_segments_entry_t, segs),
    sizeof(ngx_http_engagement_segments_stats_t)
};


/* the table, cut from what the slab pool has free; NGX_ERROR: no room */

static ngx_int_t
ngx_http_engagement_segments_table(ngx_http_engagement_segments_sh_t *sh,
    ngx_slab_pool_t *shpool, size_t size)
{
    sh->entries = ngx_http_engagement_zone_table(shpool, size,
                                                 sizeof(ngx_http_engagement_segments_entry_t), 1,
                                                 &sh->nentries);

    return sh->entries ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_engagement_segments_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint32_t                               layout;
    ngx_slab_pool_t                       *shpool;
    ngx_http_engagement_segments_sh_t     *sh;
    ngx_http_engagement_segments_conf_t   *sc;

    sc = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sc->shpool = shpool;

    layout = ngx_http_engagement_layout_of(ngx_http_engagement_segments_shape);

    if (data || shm_zone->shm.exists) {
        /* read from the zone itself, never through the old cycle's data */
        sh = shpool->data;

        if (sh == NULL
            || sh->magic != NGX_HTTP_ENGAGEMENT_SEGMENTS_MAGIC
            || sh->layout != layout)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "segments zone \"%V\" was written by another kind "
                          "of zone or an incompatible module version: stop "
                          "and start nginx to recreate it",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        sc->sh = sh;

        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_segments_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_engagement_segments_table(sh, shpool, shm_zone->shm.size)
        != NGX_OK)
    {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "segments zone \"%V\" is too small",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "segments zone \"%V\": room for %ui sessions",
                  &shm_zone->shm.name, sh->nentries);

    sh->magic = NGX_HTTP_ENGAGEMENT_SEGMENTS_MAGIC;
    sh->layout = layout;
    ngx_http_engagement_random_key(sh->key);

    shpool->data = sh;
    sc->sh = sh;

    ngx_http_engagement_zone_log_ctx(shpool, "segments", &shm_zone->shm.name);

    return NGX_OK;
}


/* the pair's key, outside the lock; 0 is "never used" */

uint64_t
ngx_http_engagement_segments_key(ngx_http_engagement_segments_conf_t *sc,
    ngx_str_t *session, ngx_str_t *content)
{
    u_char                             *p;
    uint64_t                            h;
    ngx_http_engagement_segments_sh_t  *sh;
    u_char                              buf[2 * NGX_HTTP_ENGAGEMENT_ID_MAX
                                            + 1];

    sh = sc->sh;

    /* ids are validated: at most NGX_HTTP_ENGAGEMENT_ID_MAX bytes each */
    p = ngx_cpymem(buf, session->data, session->len);
    *p++ = '\0';
    p = ngx_cpymem(p, content->data, content->len);

    h = ngx_http_engagement_siphash(sh->key, buf, p - buf);

    return h ? h : 1;
}


/*
 * A segment's 32-bit hash: its URI, and for a byte range the Range asked
 * for. Two segments of one session that share a hash (about one chance
 * in 2^27 for 32 of them) credit once: an error toward counting less.
 */

uint32_t
ngx_http_engagement_segments_seg(ngx_http_engagement_segments_conf_t *sc,
    ngx_str_t *uri, ngx_str_t *range)
{
    uint64_t                            h;
    ngx_http_engagement_segments_sh_t  *sh;

    sh = sc->sh;

    h = ngx_http_engagement_siphash(sh->key, uri->data, uri->len);

    if (range && range->len) {
        h ^= ngx_http_engagement_siphash(sh->key, range->data, range->len)
             * 0x9e3779b97f4a7c15ULL;
    }

    h = (h >> 32) ^ (h & 0xffffffff);

    return h ? (uint32_t) h : 1;
}


/*
 * Under the lock: the pair's live entry, or a free one (never used, or
 * idle for longer than idle ms), or NULL. *found says which.
 */

static ngx_http_engagement_segments_entry_t *
ngx_http_engagement_segments_find(ngx_http_engagement_segments_sh_t *sh,
    uint64_t key, uint64_t now, ngx_msec_t idle, ngx_uint_t *found)
{
    ngx_uint_t                             i, n;
    ngx_http_engagement_segments_entry_t  *e, *free;

    free = NULL;
    *found = 0;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_SEGMENTS_PROBES; i++) {
        n = (ngx_uint_t) ((key + i) % sh->nentries);
        e = &sh->entries[n];

        if (e->hash == 0 || now - e->last > idle) {
            /* free: a lapsed entry of this very pair starts over too */
            if (free == NULL) {
                free = e;
            }

            continue;
        }

        if (e->hash == key) {
            *found = 1;
            return e;
        }
    }

    return free;
}


/*
 * Credits one segment of add ms to the pair. NGX_OK: credited (out says
 * the new total); NGX_DECLINED: the session was credited this segment
 * before (nothing added; still seen now); NGX_ABORT: its set of segments
 * is full before it was engaged (not credited); NGX_BUSY: no room for a
 * new pair.
 */

ngx_int_t
ngx_http_engagement_segments_credit(ngx_http_engagement_segments_conf_t *sc,
    uint64_t key, uint32_t seg, ngx_msec_t add, ngx_msec_t idle,
    ngx_http_engagement_segments_credit_t *out)
{
    uint64_t                               now, served;
    ngx_int_t                              rc;
    ngx_uint_t                             i, found;
    ngx_http_engagement_segments_sh_t     *sh;
    ngx_http_engagement_segments_entry_t  *e;

    sh = sc->sh;
    now = ngx_http_engagement_monotonic_ms();

    out->fresh = 0;
    out->added = 0;

    ngx_shmtx_lock(&sc->shpool->mutex);

    e = ngx_http_engagement_segments_find(sh, key, now, idle, &found);

    if (e == NULL) {
        ngx_shmtx_unlock(&sc->shpool->mutex);
        return NGX_BUSY;
    }

    if (!found) {
        ngx_memzero(e, sizeof(ngx_http_engagement_segments_entry_t));
        e->hash = key;
        out->fresh = 1;
    }

    e->last = now;
    rc = NGX_OK;

    if (e->done & NGX_HTTP_ENGAGEMENT_SEGMENTS_RANGES) {
        /* the session is credited by the ranges of the file */
        rc = NGX_DECLINED;
        goto done;
    }

    for (i = 0; i < e->nsegs; i++) {
        if (e->segs[i] == seg) {
            rc = NGX_DECLINED;
            goto done;
        }
    }

    if (e->nsegs < NGX_HTTP_ENGAGEMENT_SEGMENTS_SET) {
        e->segs[e->nsegs++] = seg;

    } else if (e->done != (NGX_HTTP_ENGAGEMENT_SEGMENTS_VIEW
                           |NGX_HTTP_ENGAGEMENT_SEGMENTS_ENGAGED))
    {
        /* a replay could not be told apart any more: credit nothing */
        rc = NGX_ABORT;
        goto done;
    }

    served = (uint64_t) e->served + add;
    e->served = (uint32_t) ngx_min(served, NGX_HTTP_ENGAGEMENT_DURATION_MAX);
    out->added = add;

done:

    out->served = e->served;
    out->done = e->done;

    ngx_shmtx_unlock(&sc->shpool->mutex);

    return rc;
}


/*
 * Credits the chunks first to last (of NGX_HTTP_ENGAGEMENT_SEGMENTS_CHUNKS,
 * chunk_ms each) of the pair's file that were not served to it before.
 * NGX_OK: some were new; NGX_DECLINED: none (or the pair is credited by
 * segments); NGX_BUSY: no room for a new pair.
 */

ngx_int_t
ngx_http_engagement_segments_cover(ngx_http_engagement_segments_conf_t *sc,
    uint64_t key, ngx_uint_t first, ngx_uint_t last, ngx_msec_t chunk_ms,
    ngx_msec_t idle, ngx_http_engagement_segments_credit_t *out)
{
    uint32_t                              *bits;
    uint64_t                               now, served;
    ngx_uint_t                             i, n, found;
    ngx_http_engagement_segments_sh_t     *sh;
    ngx_http_engagement_segments_entry_t  *e;

    sh = sc->sh;
    now = ngx_http_engagement_monotonic_ms();

    out->fresh = 0;
    out->added = 0;

    ngx_shmtx_lock(&sc->shpool->mutex);

    e = ngx_http_engagement_segments_find(sh, key, now, idle, &found);

    if (e == NULL) {
        ngx_shmtx_unlock(&sc->shpool->mutex);
        return NGX_BUSY;
    }

    if (!found) {
        ngx_memzero(e, sizeof(ngx_http_engagement_segments_entry_t));
        e->hash = key;
        e->done = NGX_HTTP_ENGAGEMENT_SEGMENTS_RANGES;
        out->fresh = 1;
    }

    e->last = now;
    n = 0;

    /* the segments' set is the file's bitmap here */
    if (e->done & NGX_HTTP_ENGAGEMENT_SEGMENTS_RANGES) {
        bits = e->segs;

        for (i = first; i <= last && i < NGX_HTTP_ENGAGEMENT_SEGMENTS_CHUNKS;
             i++)
        {
            if (!(bits[i / 32] & ((uint32_t) 1 << (i % 32)))) {
                bits[i / 32] |= (uint32_t) 1 << (i % 32);
                n++;
            }
        }
    }

    if (n) {
        served = (uint64_t) e->served + n * chunk_ms;
        e->served = (uint32_t) ngx_min(served,
                                       NGX_HTTP_ENGAGEMENT_DURATION_MAX);
        out->added = n * chunk_ms;
    }

    out->served = e->served;
    out->done = e->done;

    ngx_shmtx_unlock(&sc->shpool->mutex);

    return n ? NGX_OK : NGX_DECLINED;
}

/* the policy decided these levels for the pair: they are not asked again */

void
ngx_http_engagement_segments_decided(ngx_http_engagement_segments_conf_t *sc,
    uint64_t key, ngx_uint_t levels)
{
    uint64_t                               now;
    ngx_uint_t                             found;
    ngx_http_engagement_segments_sh_t     *sh;
    ngx_http_engagement_segments_entry_t  *e;

    sh = sc->sh;
    now = ngx_http_engagement_monotonic_ms();

    ngx_shmtx_lock(&sc->shpool->mutex);

    /* idle (ngx_msec_t) -1: any entry of the pair still there */
    e = ngx_http_engagement_segments_find(sh, key, now, (ngx_msec_t) -1,
                                          &found);
    if (e && found) {
        e->done |= (uint16_t) levels;
    }

    ngx_shmtx_unlock(&sc->shpool->mutex);
}


ngx_http_engagement_segments_stats_t *
ngx_http_engagement_segments_stats(ngx_http_engagement_segments_conf_t *sc)
{
    return &((ngx_http_engagement_segments_sh_t *) sc->sh)->stats;
}
