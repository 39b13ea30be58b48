
/*
 * The series zone: counts by minute and dimension until Redis has them.
 *
 * One row per (content, minute, channel, category, source, device,
 * country, interaction name), holding what the events of that tuple
 * counted (views, engaged, replays, likes, unlikes, clicks). Rows live in
 * one fixed table, made whole when the zone is made (bounded memory, no
 * allocation on the request path), keyed by the keyed hash of the tuple
 * with the tuple kept to tell collisions apart. A row lives in the less
 * full of two buckets of 16 entries its hash names; the hashes have an
 * array of their own, so a lookup reads two cache lines of them, not
 * the rows. An event costs one lookup or insertion under the zone's lock.
 *
 * A row's counts are pending until a round takes them: they move to the
 * row's in-flight counts, marked with the round's number, and new events
 * add to the pending ones meanwhile. One round at a time is in flight
 * per zone; it is sent (sink/redis/series_flush.c) under the batch key
 * eng:sb:<stream>:<round>, which Redis applies at most once, and it is
 * confirmed only when Redis answered. A round whose sender has not
 * answered for a while (a worker killed, an answer lost) is taken over
 * by another worker and sent again from the rows themselves: the same
 * rows, the same counts, the same batch key. A confirmed row whose
 * minute is past and that has nothing pending is free again.
 *
 * When neither bucket has a free entry, the event is left out of the
 * series (counted, logged at a limited rate); the event itself is counted
 * as ever: series are never a reason to refuse a view.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_series.h"


#define NGX_HTTP_ENGAGEMENT_SERIES_MAGIC   0x45475331   /* "EGS1" */

/* entries of a bucket */
#define NGX_HTTP_ENGAGEMENT_SERIES_BUCKET  16

/* entries looked at under one holding of the lock in a scan */
#define NGX_HTTP_ENGAGEMENT_SERIES_SCAN    4096


typedef struct {
    uint64_t                      round;       /* in flight in it; 0: none */
    uint32_t                      minute;      /* unix minutes */
    uint32_t                      since;       /* unix s: pending since */
    uint32_t                      pending[NGX_HTTP_ENGAGEMENT_SERIES_METRICS];
    uint32_t                      inflight[NGX_HTTP_ENGAGEMENT_SERIES_METRICS];
    u_char                        len[NGX_HTTP_ENGAGEMENT_SERIES_PARTS];
    u_char                        key[NGX_HTTP_ENGAGEMENT_SERIES_KEY];
} ngx_http_engagement_series_entry_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    uint64_t                      key[2];
    uint64_t                      stream;      /* batch keys' prefix */
    uint64_t                      seq;         /* the last round's number */
    uint64_t                      round;       /* in flight; 0: none */
    ngx_pid_t                     owner;       /* its sender */
    uint64_t                      sent_at;     /* monotonic ms */
    ngx_uint_t                    nentries;
    uint64_t                     *hashes;      /* 0: free */
    ngx_http_engagement_series_entry_t  *entries;
    ngx_uint_t                    next;        /* where a round's scan
                                                  starts */
    /* when a scan may find rows due (none is made otherwise) */
    uint32_t                      scan_minute; /* the last whole scan's */
    uint32_t                      first_since; /* the oldest pending row
                                                  not seen due; 0: none */
    ngx_uint_t                    more;        /* a round was full */
    ngx_atomic_t                  flush_at;    /* the next turn's time */
    ngx_http_engagement_series_stats_t   stats;
} ngx_http_engagement_series_sh_t;


/* a tuple packed outside the lock */
typedef struct {
    uint64_t                      hash;
    uint32_t                      minute;
    size_t                        size;
    u_char                        len[NGX_HTTP_ENGAGEMENT_SERIES_PARTS];
    u_char                        key[NGX_HTTP_ENGAGEMENT_SERIES_KEY];
} ngx_http_engagement_series_tuple_t;


static const size_t  ngx_http_engagement_series_shape[] = {
    sizeof(ngx_http_engagement_series_sh_t),
    offsetof(ngx_http_engagement_series_sh_t, hashes),
    offsetof(ngx_http_engagement_series_sh_t, stats),
    sizeof(ngx_http_engagement_series_entry_t),
    sizeof(ngx_http_engagement_series_stats_t),
    NGX_HTTP_ENGAGEMENT_SERIES_BUCKET,
    NGX_HTTP_ENGAGEMENT_SERIES_KEY
};


/* a size changed on reload would lose the counts not yet sent: refused */
static const ngx_http_engagement_zone_kind_t
    ngx_http_engagement_series_kind =
{
    "engagement_series_zone", NGX_HTTP_ENGAGEMENT_SERIES_MAGIC, 0, NULL,
    NGX_HTTP_ENGAGEMENT_RESIZE_REFUSE, NULL, 0
};


/* this worker's zone (the cycle's), NULL: none */
static ngx_http_engagement_series_conf_t  *ngx_http_engagement_series_cur;


static ngx_http_engagement_series_conf_t *
ngx_http_engagement_series_conf_get(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t    *emcf;
    ngx_http_engagement_series_conf_t  *sc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->series) {
        return emcf->series;
    }

    sc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_series_conf_t));
    if (sc == NULL) {
        return NULL;
    }

    sc->size = NGX_CONF_UNSET;
    emcf->series = sc;

    return sc;
}


/* engagement_series_zone size | off; */

char *
ngx_http_engagement_series_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t                          *value;
    ngx_http_engagement_series_conf_t  *sc;

    sc = ngx_http_engagement_series_conf_get(cf);
    if (sc == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        if (sc->size != NGX_CONF_UNSET) {
            return "is duplicate";
        }

        sc->size = 0;
        return NGX_CONF_OK;
    }

    return ngx_http_engagement_zone_size(cf, cmd, &sc->size);
}


/*
 * A location whose events go to the series (views, likes, interaction
 * events) with a Redis to send them to: the series zone, declared once,
 * unless engagement_series_zone is off. NULL: an error; the conf with
 * shm_zone NULL: off.
 */

ngx_http_engagement_series_conf_t *
ngx_http_engagement_series_use(ngx_conf_t *cf)
{
    ngx_str_t                           name;
    ngx_http_engagement_series_conf_t  *sc;

    sc = ngx_http_engagement_series_conf_get(cf);
    if (sc == NULL) {
        return NULL;
    }

    if (sc->shm_zone || sc->size == 0) {
        return sc;
    }

    if (sc->size == NGX_CONF_UNSET) {
        sc->size = NGX_HTTP_ENGAGEMENT_SERIES_ZSIZE;
    }

    ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_SERIES_ZONE);

    sc->shm_zone = ngx_http_engagement_zone_shm(cf, &name, sc->size,
                                        ngx_http_engagement_series_init_zone,
                                        sc);
    if (sc->shm_zone == NULL) {
        return NULL;
    }

    return sc;
}


/* after the http block: a zone size with nothing to use it is said */

ngx_int_t
ngx_http_engagement_series_postconf(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t    *emcf;
    ngx_http_engagement_series_conf_t  *sc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    sc = emcf->series;

    if (sc && sc->shm_zone == NULL && sc->size > 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "engagement_series_zone is ignored: series are "
                           "kept only with \"engagement_redis\" and a "
                           "location with \"engagement view\" or "
                           "\"engagement like\"");
    }

    return NGX_OK;
}


/* the tables, cut from what the slab pool has free; NGX_ERROR: no room */

static ngx_int_t
ngx_http_engagement_series_table(ngx_http_engagement_series_sh_t *sh,
    ngx_slab_pool_t *shpool, size_t size)
{
    size_t  es, n;

    es = sizeof(ngx_http_engagement_series_entry_t) + sizeof(uint64_t);

    /* whole buckets; the slab pool keeps a part: try smaller until both
     * fit */
    for (n = size * 7 / 8 / es; n >= NGX_HTTP_ENGAGEMENT_SERIES_BUCKET;
         n = n * 9 / 10)
    {
        n -= n % NGX_HTTP_ENGAGEMENT_SERIES_BUCKET;

        sh->hashes = ngx_slab_calloc_locked(shpool, n * sizeof(uint64_t));
        if (sh->hashes == NULL) {
            continue;
        }

        sh->entries = ngx_slab_calloc_locked(shpool,
                          n * sizeof(ngx_http_engagement_series_entry_t));
        if (sh->entries) {
            sh->nentries = n;
            return NGX_OK;
        }

        ngx_slab_free_locked(shpool, sh->hashes);
    }

    return NGX_ERROR;
}


ngx_int_t
ngx_http_engagement_series_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint32_t                            layout;
    uint64_t                            stream[2];
    ngx_slab_pool_t                    *shpool;
    ngx_http_engagement_series_sh_t    *sh;
    ngx_http_engagement_series_conf_t  *sc;

    sc = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sc->shpool = shpool;

    layout = ngx_http_engagement_layout_of(ngx_http_engagement_series_shape);

    if (data || shm_zone->shm.exists) {
        /* read from the zone itself, never through the old cycle's data */
        sh = shpool->data;

        if (sh == NULL
            || sh->magic != NGX_HTTP_ENGAGEMENT_SERIES_MAGIC
            || sh->layout != layout)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "series zone \"%V\" was written by another kind "
                          "of zone or an incompatible module version: stop "
                          "and start nginx to recreate it",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        sc->sh = sh;

        return NGX_OK;
    }

    if (ngx_http_engagement_zone_resized(shm_zone,
                                         &ngx_http_engagement_series_kind)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_series_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_engagement_series_table(sh, shpool, shm_zone->shm.size)
        != NGX_OK)
    {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "series zone \"%V\" is too small",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "series zone \"%V\": room for %ui rows",
                  &shm_zone->shm.name, sh->nentries);

    sh->magic = NGX_HTTP_ENGAGEMENT_SERIES_MAGIC;
    sh->layout = layout;
    sh->stats.capacity = sh->nentries;
    ngx_http_engagement_random_key(sh->key);

    /* a zone made anew sends under batch keys no earlier one used */
    ngx_http_engagement_random_key(stream);
    sh->stream = stream[0] ? stream[0] : 1;

    shpool->data = sh;
    sc->sh = sh;

    ngx_http_engagement_zone_log_ctx(shpool, "series", &shm_zone->shm.name);

    return NGX_OK;
}


/* a worker's zone: the one of the configuration it runs */

void
ngx_http_engagement_series_worker_start(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_series_conf_t  *sc;

    sc = emcf->series;

    ngx_http_engagement_series_cur = (sc && sc->shm_zone && sc->sh) ? sc
                                                                    : NULL;
}


ngx_http_engagement_series_conf_t *
ngx_http_engagement_series_current(void)
{
    return ngx_http_engagement_series_cur;
}


ngx_http_engagement_series_stats_t *
ngx_http_engagement_series_stats(ngx_http_engagement_series_conf_t *sc)
{
    return &((ngx_http_engagement_series_sh_t *) sc->sh)->stats;
}


/* the tuple packed, its parts' lengths and its hash: outside the lock */

static void
ngx_http_engagement_series_pack(ngx_http_engagement_series_sh_t *sh,
    ngx_http_engagement_series_add_t *a,
    ngx_http_engagement_series_tuple_t *t)
{
    u_char      *p;
    size_t       room;
    ngx_str_t   *part[NGX_HTTP_ENGAGEMENT_SERIES_PARTS];
    ngx_uint_t   i;

    part[NGX_HTTP_ENGAGEMENT_SERIES_CONTENT] = &a->content_id;
    part[NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL] = &a->channel_id;
    part[NGX_HTTP_ENGAGEMENT_SERIES_CATEGORY] = &a->category;
    part[NGX_HTTP_ENGAGEMENT_SERIES_SOURCE] = &a->source;
    part[NGX_HTTP_ENGAGEMENT_SERIES_DEVICE] = &a->device;
    part[NGX_HTTP_ENGAGEMENT_SERIES_COUNTRY] = &a->country;
    part[NGX_HTTP_ENGAGEMENT_SERIES_NAME] = &a->name;

    t->minute = (uint32_t) (a->when / 60);
    p = t->key;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_SERIES_PARTS; i++) {
        room = (i >= NGX_HTTP_ENGAGEMENT_SERIES_SOURCE
                && i <= NGX_HTTP_ENGAGEMENT_SERIES_COUNTRY)
               ? NGX_HTTP_ENGAGEMENT_SERIES_SHORT
               : NGX_HTTP_ENGAGEMENT_ID_MAX;

        if (part[i]->len == 0) {
            /* unknown (its data may be NULL) */
            t->len[i] = 0;

        } else if (part[i]->len <= room) {
            t->len[i] = (u_char) part[i]->len;
            p = ngx_cpymem(p, part[i]->data, part[i]->len);

        } else {
            /* longer than any value the dimensions allow: "other" */
            t->len[i] = sizeof("other") - 1;
            p = ngx_cpymem(p, "other", sizeof("other") - 1);
        }
    }

    t->size = p - t->key;

    /* the lengths and the minute are part of the identity */
    _Static_assert(NGX_HTTP_ENGAGEMENT_SERIES_PARTS + sizeof(uint32_t) <= 16,
                   "a series key's trailer does not fit its room");

    ngx_memcpy(p, t->len, NGX_HTTP_ENGAGEMENT_SERIES_PARTS);
    ngx_memcpy(p + NGX_HTTP_ENGAGEMENT_SERIES_PARTS, &t->minute,
               sizeof(uint32_t));

    t->hash = ngx_http_engagement_idhash(sh->key, t->key,
                                         t->size
                                         + NGX_HTTP_ENGAGEMENT_SERIES_PARTS
                                         + sizeof(uint32_t));
    if (t->hash == 0) {
        t->hash = 1;    /* 0 is "free" */
    }
}


static ngx_inline ngx_uint_t
ngx_http_engagement_series_clean(ngx_http_engagement_series_entry_t *e)
{
    ngx_uint_t  i;

    if (e->round) {
        return 0;
    }

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_SERIES_METRICS; i++) {
        if (e->pending[i]) {
            return 0;
        }
    }

    return 1;
}


/* the two buckets a hash names: the index of each one's first entry */

static ngx_inline void
ngx_http_engagement_series_buckets(uint64_t hash, ngx_uint_t n, ngx_uint_t *b)
{
    ngx_uint_t  nb;

    nb = n / NGX_HTTP_ENGAGEMENT_SERIES_BUCKET;

    b[0] = (ngx_uint_t) (hash % nb);
    b[1] = (ngx_uint_t) (((hash >> 32) * 0x9e3779b97f4a7c15ULL >> 32) % nb);

    if (b[1] == b[0] && nb > 1) {
        b[1] = (b[0] + 1) % nb;
    }

    b[0] *= NGX_HTTP_ENGAGEMENT_SERIES_BUCKET;
    b[1] *= NGX_HTTP_ENGAGEMENT_SERIES_BUCKET;
}


/*
 * Under the lock: the tuple's row, made if need be in a free entry of the
 * less full of its two buckets (a free one: never used, or clean and of a
 * past minute); NULL: both are full.
 */

static ngx_http_engagement_series_entry_t *
ngx_http_engagement_series_row(ngx_http_engagement_series_sh_t *sh,
    ngx_http_engagement_series_tuple_t *t, uint32_t now)
{
    ngx_int_t                            free, bfree;
    ngx_uint_t                           i, j, n, used, least;
    ngx_uint_t                           b[2];
    ngx_http_engagement_series_entry_t  *e;

    ngx_http_engagement_series_buckets(t->hash, sh->nentries, b);

    for (j = 0; j < 2; j++) {
        for (n = 0; n < NGX_HTTP_ENGAGEMENT_SERIES_BUCKET; n++) {
            i = b[j] + n;

            if (sh->hashes[i] != t->hash) {
                continue;
            }

            e = &sh->entries[i];

            if (e->minute == t->minute
                && ngx_memcmp(e->len, t->len, NGX_HTTP_ENGAGEMENT_SERIES_PARTS)
                   == 0
                && ngx_memcmp(e->key, t->key, t->size) == 0)
            {
                return e;
            }
        }
    }

    free = -1;
    least = NGX_HTTP_ENGAGEMENT_SERIES_BUCKET + 1;

    for (j = 0; j < 2; j++) {
        if (j == 1 && b[1] == b[0]) {
            break;
        }

        bfree = -1;
        used = 0;

        for (n = 0; n < NGX_HTTP_ENGAGEMENT_SERIES_BUCKET; n++) {
            i = b[j] + n;

            if (sh->hashes[i] == 0) {
                if (bfree == -1) {
                    bfree = i;
                }

                continue;
            }

            e = &sh->entries[i];

            if (e->minute < now && ngx_http_engagement_series_clean(e)) {
                /* sent, and its minute is over: reused in place */
                if (bfree == -1) {
                    bfree = i;
                }

                continue;
            }

            used++;
        }

        if (bfree != -1 && used < least) {
            free = bfree;
            least = used;
        }
    }

    if (free == -1) {
        return NULL;
    }

    if (sh->hashes[free] == 0) {
        (void) ngx_atomic_fetch_add(&sh->stats.rows, 1);
    }

    sh->hashes[free] = t->hash;

    e = &sh->entries[free];
    ngx_memzero(e, offsetof(ngx_http_engagement_series_entry_t, key));
    e->minute = t->minute;
    ngx_memcpy(e->len, t->len, NGX_HTTP_ENGAGEMENT_SERIES_PARTS);
    ngx_memcpy(e->key, t->key, t->size);

    return e;
}


ngx_int_t
ngx_http_engagement_series_add(ngx_http_engagement_series_add_t *a,
    ngx_log_t *log)
{
    uint32_t                             now;
    ngx_http_engagement_series_sh_t     *sh;
    ngx_http_engagement_series_conf_t   *sc;
    ngx_http_engagement_series_entry_t  *e;
    ngx_http_engagement_series_tuple_t   t;

    sc = ngx_http_engagement_series_cur;

    if (sc == NULL) {
        return NGX_DECLINED;
    }

    sh = sc->sh;
    now = (uint32_t) (ngx_time() / 60);

    ngx_http_engagement_series_pack(sh, a, &t);

    ngx_shmtx_lock(&sc->shpool->mutex);

    e = ngx_http_engagement_series_row(sh, &t, now);

    if (e == NULL) {
        ngx_shmtx_unlock(&sc->shpool->mutex);

        (void) ngx_atomic_fetch_add(&sh->stats.dropped, 1);

        if (ngx_http_engagement_zone_log_due(&sc->last_full_log)) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "engagement series zone \"%V\" is full "
                          "(%uz bytes, %ui rows): events are counted but "
                          "left out of the series until it has room",
                          &sc->shm_zone->shm.name, sc->shm_zone->shm.size,
                          sh->nentries);
        }

        return NGX_BUSY;
    }

    if (ngx_http_engagement_series_clean(e)) {
        (void) ngx_atomic_fetch_add(&sh->stats.pending, 1);
    }

    if (e->since == 0) {
        e->since = (uint32_t) ngx_time();

        if (sh->first_since == 0) {
            sh->first_since = e->since;
        }
    }

    e->pending[NGX_HTTP_ENGAGEMENT_SERIES_VIEWS] += a->views;
    e->pending[NGX_HTTP_ENGAGEMENT_SERIES_ENGAGED] += a->engaged;
    e->pending[NGX_HTTP_ENGAGEMENT_SERIES_REPLAYS] += a->replays;
    e->pending[NGX_HTTP_ENGAGEMENT_SERIES_LIKES] += a->likes;
    e->pending[NGX_HTTP_ENGAGEMENT_SERIES_UNLIKES] += a->unlikes;
    e->pending[NGX_HTTP_ENGAGEMENT_SERIES_CLICKS] += a->clicks;

    ngx_shmtx_unlock(&sc->shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->stats.added, 1);

    return NGX_OK;
}


/* a counted view event: what it counted, with its dimensions */

ngx_int_t
ngx_http_engagement_series_view(ngx_http_engagement_event_t *ev,
    ngx_uint_t view, ngx_uint_t engaged, ngx_uint_t replay, ngx_log_t *log)
{
    ngx_http_engagement_series_add_t  a;

    if (ngx_http_engagement_series_cur == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(&a, sizeof(ngx_http_engagement_series_add_t));

    a.content_id = ev->content_id;
    a.channel_id = ev->channel_id;
    a.category = ev->category;
    a.source = ev->source;
    a.device = ev->device;
    a.country = ev->country;

    /* the minute it is counted in, as the content's own buckets */
    a.when = ngx_time();
    a.views = view ? 1 : 0;
    a.engaged = engaged ? 1 : 0;
    a.replays = replay ? 1 : 0;

    return ngx_http_engagement_series_add(&a, log);
}


/*
 * A reaction's change applied by Redis: had and has, whether the user had
 * a reaction before and has one now. A like (or reaction) where there was
 * none counts in likes, one removed in unlikes; a change of type is
 * neither.
 */

ngx_int_t
ngx_http_engagement_series_reaction(ngx_str_t *content_id, ngx_uint_t had,
    ngx_uint_t has, ngx_log_t *log)
{
    ngx_http_engagement_series_add_t  a;

    if (ngx_http_engagement_series_cur == NULL || (had != 0) == (has != 0)) {
        return NGX_DECLINED;
    }

    ngx_memzero(&a, sizeof(ngx_http_engagement_series_add_t));

    a.content_id = *content_id;
    a.when = ngx_time();
    a.likes = has ? 1 : 0;
    a.unlikes = had ? 1 : 0;

    return ngx_http_engagement_series_add(&a, log);
}


/* whether this worker is the one to start a round now */

ngx_uint_t
ngx_http_engagement_series_due(ngx_http_engagement_series_conf_t *sc,
    ngx_msec_t period)
{
    ngx_http_engagement_series_sh_t  *sh;

    sh = sc->sh;

    if (period == 0) {
        /* the next turn at once: a backlog drains round after round */
        sh->flush_at = 0;
        return 0;
    }

    return ngx_http_engagement_turn_due(&sh->flush_at, period);
}


static void
ngx_http_engagement_series_copy(ngx_http_engagement_series_sh_t *sh,
    ngx_uint_t i, ngx_http_engagement_series_row_t *row)
{
    size_t                               size;
    ngx_uint_t                           k;
    ngx_http_engagement_series_entry_t  *e;

    e = &sh->entries[i];

    row->index = i;
    row->minute = e->minute;
    ngx_memcpy(row->counts, e->inflight, sizeof(row->counts));
    ngx_memcpy(row->len, e->len, NGX_HTTP_ENGAGEMENT_SERIES_PARTS);

    size = 0;

    for (k = 0; k < NGX_HTTP_ENGAGEMENT_SERIES_PARTS; k++) {
        size += e->len[k];
    }

    ngx_memcpy(row->key, e->key, size);
}


/*
 * A new round's rows, from where the last scan stopped: each row with
 * pending counts moves them in flight under the round's number; clean
 * rows of a past minute are freed on the way. The lock is let go every
 * so many entries; a worker that lost the round meanwhile (taken over)
 * stops.
 */

static ngx_uint_t
ngx_http_engagement_series_build(ngx_http_engagement_series_conf_t *sc,
    uint64_t seq, ngx_msec_t after, ngx_http_engagement_series_row_t *rows)
{
    time_t                               t;
    uint32_t                             now, oldest;
    ngx_uint_t                           i, w, n, k, scanned, total, any;
    ngx_http_engagement_series_sh_t     *sh;
    ngx_http_engagement_series_entry_t  *e;

    sh = sc->sh;
    total = sh->nentries;
    t = ngx_time();
    now = (uint32_t) (t / 60);
    n = 0;
    scanned = 0;
    oldest = 0;

    ngx_shmtx_lock(&sc->shpool->mutex);

    /* what this scan leaves pending it says at its end; later events
     * say theirs meanwhile */
    sh->first_since = 0;
    sh->more = 0;

    ngx_shmtx_unlock(&sc->shpool->mutex);

    while (scanned < total && n < NGX_HTTP_ENGAGEMENT_SERIES_ROUND) {
        ngx_shmtx_lock(&sc->shpool->mutex);

        if (sh->round != seq || sh->owner != ngx_pid) {
            ngx_shmtx_unlock(&sc->shpool->mutex);
            break;
        }

        i = sh->next % total;

        for (w = 0; w < NGX_HTTP_ENGAGEMENT_SERIES_SCAN && scanned < total
                    && n < NGX_HTTP_ENGAGEMENT_SERIES_ROUND; w++, scanned++)
        {
            if (sh->hashes[i]) {
                e = &sh->entries[i];

                any = 0;

                /* due: its minute is over, or it waited after ms */
                if (e->round == 0
                    && (e->minute < now
                        || (ngx_msec_t) (t - e->since) * 1000 >= after))
                {
                    for (k = 0; k < NGX_HTTP_ENGAGEMENT_SERIES_METRICS; k++) {
                        any |= e->pending[k];
                    }
                }

                if (any) {
                    ngx_memcpy(e->inflight, e->pending, sizeof(e->pending));
                    ngx_memzero(e->pending, sizeof(e->pending));
                    e->since = 0;
                    e->round = seq;
                    ngx_http_engagement_series_copy(sh, i, &rows[n++]);

                } else if (e->minute < now
                           && ngx_http_engagement_series_clean(e))
                {
                    sh->hashes[i] = 0;
                    (void) ngx_atomic_fetch_add(&sh->stats.rows, -1);

                } else if (e->round == 0 && e->since
                           && (oldest == 0 || e->since < oldest))
                {
                    /* pending, not due yet */
                    oldest = e->since;
                }
            }

            i = (i + 1) % total;
        }

        sh->next = i;

        ngx_shmtx_unlock(&sc->shpool->mutex);
    }

    ngx_shmtx_lock(&sc->shpool->mutex);

    if (scanned < total) {
        /* the round is full (or lost): the rest at the next turn */
        sh->more = 1;

    } else {
        sh->scan_minute = now;
    }

    if (oldest && (sh->first_since == 0 || oldest < sh->first_since)) {
        sh->first_since = oldest;
    }

    ngx_shmtx_unlock(&sc->shpool->mutex);

    return n;
}


/* under the lock: whether a scan may find rows due now */

static ngx_uint_t
ngx_http_engagement_series_scan_due(ngx_http_engagement_series_sh_t *sh,
    ngx_msec_t after)
{
    time_t  t;

    t = ngx_time();

    return sh->more || sh->scan_minute != (uint32_t) (t / 60)
           || (sh->first_since
               && (ngx_msec_t) (t - sh->first_since) * 1000 >= after);
}


/* the rows of a round in flight, from the rows themselves: a resend */

static ngx_uint_t
ngx_http_engagement_series_rescan(ngx_http_engagement_series_conf_t *sc,
    uint64_t seq, ngx_http_engagement_series_row_t *rows)
{
    ngx_uint_t                        i, w, n;
    ngx_http_engagement_series_sh_t  *sh;

    sh = sc->sh;
    n = 0;
    i = 0;

    while (i < sh->nentries) {
        ngx_shmtx_lock(&sc->shpool->mutex);

        for (w = 0; w < NGX_HTTP_ENGAGEMENT_SERIES_SCAN && i < sh->nentries;
             w++, i++)
        {
            if (sh->hashes[i] && sh->entries[i].round == seq
                && n < NGX_HTTP_ENGAGEMENT_SERIES_ROUND)
            {
                ngx_http_engagement_series_copy(sh, i, &rows[n++]);
            }
        }

        ngx_shmtx_unlock(&sc->shpool->mutex);
    }

    return n;
}


/*
 * The round this worker is to send now, in *round and rows: its own
 * round again (after a failed send), one whose sender has been silent
 * for reclaim ms (taken over), or, when may_start, a new one of the rows
 * due: those of a minute that is over, and those pending for after ms
 * (a minute's counts of a tuple are sent once, as the content's own
 * buckets are, unless buckets= of engagement_redis says sooner).
 * NGX_DECLINED: nothing to send now.
 */

ngx_int_t
ngx_http_engagement_series_take(ngx_http_engagement_series_conf_t *sc,
    ngx_uint_t may_start, ngx_msec_t reclaim, ngx_msec_t after,
    ngx_http_engagement_series_round_t *round,
    ngx_http_engagement_series_row_t *rows)
{
    uint64_t                          now, seq;
    ngx_uint_t                        resend;
    ngx_http_engagement_series_sh_t  *sh;

    sh = sc->sh;
    now = ngx_http_engagement_monotonic_ms();

    ngx_shmtx_lock(&sc->shpool->mutex);

    if (sh->round) {
        if (!(sh->owner == ngx_pid && round->seq == sh->round)
            && now - sh->sent_at < reclaim)
        {
            /* another worker's, and it is not silent for long */
            ngx_shmtx_unlock(&sc->shpool->mutex);
            return NGX_DECLINED;
        }

        resend = 1;

    } else {
        if (!may_start || sh->stats.pending == 0
            || (may_start != NGX_HTTP_ENGAGEMENT_SERIES_ALL
                && !ngx_http_engagement_series_scan_due(sh, after)))
        {
            ngx_shmtx_unlock(&sc->shpool->mutex);
            return NGX_DECLINED;
        }

        sh->round = ++sh->seq;
        resend = 0;
    }

    seq = sh->round;
    sh->owner = ngx_pid;
    sh->sent_at = now;

    ngx_shmtx_unlock(&sc->shpool->mutex);

    round->stream = sh->stream;
    round->seq = seq;
    round->resend = resend;

    if (resend) {
        round->n = ngx_http_engagement_series_rescan(sc, seq, rows);
        (void) ngx_atomic_fetch_add(&sh->stats.resent, 1);

    } else {
        round->n = ngx_http_engagement_series_build(sc, seq, after, rows);
    }

    if (round->n) {
        return NGX_OK;
    }

    /* nothing in it (all sent meanwhile, or nothing pending): no round */
    ngx_shmtx_lock(&sc->shpool->mutex);

    if (sh->round == seq && sh->owner == ngx_pid) {
        sh->round = 0;
    }

    ngx_shmtx_unlock(&sc->shpool->mutex);

    round->seq = 0;

    return NGX_DECLINED;
}


/*
 * Redis answered the round (applied now or before): its rows' in-flight
 * counts are done; a row with nothing pending is clean, and free when its
 * minute is past. A round confirmed already (by a worker that took it
 * over) changes nothing.
 */

void
ngx_http_engagement_series_confirm(ngx_http_engagement_series_conf_t *sc,
    ngx_http_engagement_series_round_t *round,
    ngx_http_engagement_series_row_t *rows)
{
    uint32_t                             now;
    ngx_uint_t                           i, sent;
    ngx_http_engagement_series_sh_t     *sh;
    ngx_http_engagement_series_entry_t  *e;

    sh = sc->sh;
    now = (uint32_t) (ngx_time() / 60);
    sent = 0;

    ngx_shmtx_lock(&sc->shpool->mutex);

    if (sh->round == round->seq) {
        for (i = 0; i < round->n; i++) {
            e = &sh->entries[rows[i].index];

            if (sh->hashes[rows[i].index] == 0 || e->round != round->seq) {
                continue;
            }

            ngx_memzero(e->inflight, sizeof(e->inflight));
            e->round = 0;
            sent++;

            if (!ngx_http_engagement_series_clean(e)) {
                /* events came meanwhile: a scan is to see them */
                if (e->since
                    && (sh->first_since == 0 || e->since < sh->first_since))
                {
                    sh->first_since = e->since;
                }

                if (e->minute < now) {
                    sh->more = 1;
                }

                continue;
            }

            (void) ngx_atomic_fetch_add(&sh->stats.pending, -1);

            if (e->minute < now) {
                sh->hashes[rows[i].index] = 0;
                (void) ngx_atomic_fetch_add(&sh->stats.rows, -1);
            }
        }

        sh->round = 0;
    }

    ngx_shmtx_unlock(&sc->shpool->mutex);

    if (sent) {
        (void) ngx_atomic_fetch_add(&sh->stats.rounds, 1);
        (void) ngx_atomic_fetch_add(&sh->stats.rows_sent, sent);
    }

    round->seq = 0;
}
