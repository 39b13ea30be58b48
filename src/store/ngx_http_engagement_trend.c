
/*
 * The trending zone: a ring of time buckets, each a space-saving sketch
 * of the contents counted on this edge in that bucket (k entries), and
 * one smaller sketch per category (category_k entries, for the first
 * `categories` categories seen in the bucket). A view adds 1 to its
 * content's entry, a like engagement_trending_like_weight; a content not
 * in a full sketch takes the entry of the smallest count c and starts at
 * c + weight, with c kept as its possible overestimate (Metwally et al.,
 * "Efficient computation of frequent and top-k elements in data streams",
 * 2005): a count is never below the true one and at most N/k above it,
 * N the bucket's weight. The flush (sink/redis/trend_flush.c) takes a
 * bucket once it has closed, and frees its slot when Redis has all of it;
 * until then the slot is kept (Redis down: the ring fills, the oldest
 * bucket is dropped and counted). The zone's making and its taking over
 * at a reload are here too; the directives are in trend_conf.c.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_trend.h"


typedef struct {
    uint32_t                      n;           /* entries in use */
    uint32_t                      k;
    uint64_t                      total;       /* weight added */
} ngx_http_engagement_trend_sketch_t;


/* a slot of the ring: a bucket's sketches follow it */
typedef struct {
    int64_t                       bucket;      /* -1: free */
    uint64_t                      sending;     /* monotonic ms: in flight
                                                  until then */
    uint64_t                      todo;        /* scopes still to send */
    uint32_t                      taken;       /* closed: no more adds */
    uint32_t                      ncats;
} ngx_http_engagement_trend_slot_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    ngx_uint_t                    k;
    ngx_uint_t                    cats;
    ngx_uint_t                    cat_k;
    time_t                        bucket;      /* its length, s */
    ngx_uint_t                    nslots;
    size_t                        slot_size;
    uint64_t                      stream;      /* random, at the making */
    uint64_t                      key[2];
    ngx_atomic_t                  flush_at;
    ngx_uint_t                    cur;         /* the newest bucket's slot */
    int64_t                       newest;      /* the newest bucket made */
    u_char                       *slots;
    ngx_http_engagement_trend_stats_t  stats;
} ngx_http_engagement_trend_sh_t;


/* a sketch's arrays, as found in a slot */
typedef struct {
    ngx_http_engagement_trend_sketch_t  *head;
    uint64_t                            *hash;
    uint32_t                            *count;
    uint32_t                            *err;
    u_char                              *ids;      /* k of ID_MAX + 1 */
} ngx_http_engagement_trend_arrays_t;


#define NGX_HTTP_ENGAGEMENT_TREND_IDW   (NGX_HTTP_ENGAGEMENT_ID_MAX + 1)


static const size_t  ngx_http_engagement_trend_shape[] = {
    sizeof(ngx_http_engagement_trend_sh_t),
    offsetof(ngx_http_engagement_trend_sh_t, slots),
    offsetof(ngx_http_engagement_trend_sh_t, newest),
    offsetof(ngx_http_engagement_trend_sh_t, stats),
    sizeof(ngx_http_engagement_trend_slot_t),
    sizeof(ngx_http_engagement_trend_sketch_t),
    sizeof(ngx_http_engagement_trend_stats_t),
    NGX_HTTP_ENGAGEMENT_ID_MAX
};


/* the configuration of the running cycle, for the view path */
static ngx_http_engagement_trend_conf_t  *ngx_http_engagement_trend_running;


static size_t
ngx_http_engagement_trend_sketch_size(ngx_uint_t k)
{
    return ngx_align(sizeof(ngx_http_engagement_trend_sketch_t)
                     + k * (sizeof(uint64_t) + 2 * sizeof(uint32_t)
                            + NGX_HTTP_ENGAGEMENT_TREND_IDW), 8);
}


static size_t
ngx_http_engagement_trend_slot_size(ngx_uint_t k, ngx_uint_t cats,
    ngx_uint_t cat_k)
{
    return sizeof(ngx_http_engagement_trend_slot_t)
           + ngx_http_engagement_trend_sketch_size(k)
           + ngx_align(cats * NGX_HTTP_ENGAGEMENT_TREND_IDW, 8)
           + cats * ngx_http_engagement_trend_sketch_size(cat_k);
}


static ngx_http_engagement_trend_slot_t *
ngx_http_engagement_trend_slot(ngx_http_engagement_trend_sh_t *sh,
    ngx_uint_t i)
{
    return (ngx_http_engagement_trend_slot_t *) (sh->slots
                                                 + i * sh->slot_size);
}


/* the category names of a slot: cats of ID_MAX + 1 (length first) */
static u_char *
ngx_http_engagement_trend_cat_names(ngx_http_engagement_trend_sh_t *sh,
    ngx_http_engagement_trend_slot_t *s)
{
    return (u_char *) (s + 1) + ngx_http_engagement_trend_sketch_size(sh->k);
}


/* sketch 0: the global one; 1 + c: category c's */
static void
ngx_http_engagement_trend_arrays(ngx_http_engagement_trend_sh_t *sh,
    ngx_http_engagement_trend_slot_t *s, ngx_uint_t which,
    ngx_http_engagement_trend_arrays_t *a)
{
    u_char      *p;
    ngx_uint_t   k;

    if (which == 0) {
        p = (u_char *) (s + 1);
        k = sh->k;

    } else {
        p = ngx_http_engagement_trend_cat_names(sh, s)
            + ngx_align(sh->cats * NGX_HTTP_ENGAGEMENT_TREND_IDW, 8)
            + (which - 1) * ngx_http_engagement_trend_sketch_size(sh->cat_k);
        k = sh->cat_k;
    }

    a->head = (ngx_http_engagement_trend_sketch_t *) p;
    p += sizeof(ngx_http_engagement_trend_sketch_t);
    a->hash = (uint64_t *) p;
    p += k * sizeof(uint64_t);
    a->count = (uint32_t *) p;
    p += k * sizeof(uint32_t);
    a->err = (uint32_t *) p;
    p += k * sizeof(uint32_t);
    a->ids = p;
}


static void
ngx_http_engagement_trend_slot_reset(ngx_http_engagement_trend_sh_t *sh,
    ngx_http_engagement_trend_slot_t *s, int64_t bucket)
{
    ngx_uint_t                          c;
    ngx_http_engagement_trend_arrays_t  a;

    s->bucket = bucket;
    s->sending = 0;
    s->todo = 0;
    s->taken = 0;
    s->ncats = 0;

    for (c = 0; c <= sh->cats; c++) {
        ngx_http_engagement_trend_arrays(sh, s, c, &a);
        a.head->n = 0;
        a.head->k = (c == 0) ? sh->k : sh->cat_k;
        a.head->total = 0;
    }
}


/* one content's weight into a sketch (under the lock) */
static void
ngx_http_engagement_trend_sketch_add(ngx_http_engagement_trend_sh_t *sh,
    ngx_http_engagement_trend_slot_t *s, ngx_uint_t which, uint64_t hash,
    ngx_str_t *id, uint32_t weight)
{
    u_char                              *e;
    uint32_t                             min;
    ngx_uint_t                           i, n, m;
    ngx_http_engagement_trend_arrays_t   a;

    ngx_http_engagement_trend_arrays(sh, s, which, &a);

    n = a.head->n;
    a.head->total += weight;

    for (i = 0; i < n; i++) {
        if (a.hash[i] != hash) {
            continue;
        }

        e = a.ids + i * NGX_HTTP_ENGAGEMENT_TREND_IDW;

        if (e[0] == id->len
            && ngx_http_engagement_same(e + 1, id->data, id->len))
        {
            a.count[i] += weight;
            return;
        }
    }

    if (n < a.head->k) {
        m = n;
        a.head->n = n + 1;
        a.count[m] = weight;
        a.err[m] = 0;

    } else {
        /* space-saving: the smallest count gives its entry away */
        m = 0;
        min = a.count[0];

        for (i = 1; i < n; i++) {
            if (a.count[i] < min) {
                min = a.count[i];
                m = i;
            }
        }

        a.err[m] = min;
        a.count[m] = min + weight;
        (void) ngx_atomic_fetch_add(&sh->stats.evictions, 1);
    }

    a.hash[m] = hash;
    e = a.ids + m * NGX_HTTP_ENGAGEMENT_TREND_IDW;
    e[0] = (u_char) id->len;
    ngx_memcpy(e + 1, id->data, id->len);
}


/* the category's sketch in a slot (1 + c), 0: none has room */
static ngx_uint_t
ngx_http_engagement_trend_category(ngx_http_engagement_trend_sh_t *sh,
    ngx_http_engagement_trend_slot_t *s, ngx_str_t *category)
{
    u_char      *names, *e;
    ngx_uint_t   c;

    names = ngx_http_engagement_trend_cat_names(sh, s);

    for (c = 0; c < s->ncats; c++) {
        e = names + c * NGX_HTTP_ENGAGEMENT_TREND_IDW;

        if (e[0] == category->len
            && ngx_http_engagement_same(e + 1, category->data,
                                        category->len))
        {
            return c + 1;
        }
    }

    if (s->ncats >= sh->cats) {
        return 0;
    }

    e = names + s->ncats * NGX_HTTP_ENGAGEMENT_TREND_IDW;
    e[0] = (u_char) category->len;
    ngx_memcpy(e + 1, category->data, category->len);

    return ++s->ncats;
}


/*
 * The slot of a bucket to add to (under the lock): the newest's, or a
 * new one (the free slot, else the oldest bucket's, dropped); NULL: the
 * bucket was taken by the flush already (a worker whose clock lags).
 */
static ngx_http_engagement_trend_slot_t *
ngx_http_engagement_trend_slot_for(ngx_http_engagement_trend_sh_t *sh,
    int64_t bucket)
{
    ngx_uint_t                         i, oldest;
    ngx_http_engagement_trend_slot_t  *s, *o;

    s = ngx_http_engagement_trend_slot(sh, sh->cur);

    if (s->bucket == bucket) {
        return s->taken ? NULL : s;
    }

    if (bucket <= sh->newest) {
        /* made already: found if still open, never made again */
        for (i = 0; i < sh->nslots; i++) {
            s = ngx_http_engagement_trend_slot(sh, i);

            if (s->bucket == bucket) {
                return s->taken ? NULL : s;
            }
        }

        return NULL;
    }

    oldest = sh->nslots;
    o = NULL;

    for (i = 0; i < sh->nslots; i++) {
        s = ngx_http_engagement_trend_slot(sh, i);

        if (s->bucket < 0) {
            oldest = i;
            o = s;
            break;
        }

        if (o == NULL || s->bucket < o->bucket) {
            o = s;
            oldest = i;
        }
    }

    if (o->bucket >= 0) {
        /* Redis has been away the whole ring long: the oldest goes */
        (void) ngx_atomic_fetch_add(&sh->stats.buckets_dropped, 1);
    }

    ngx_http_engagement_trend_slot_reset(sh, o, bucket);
    sh->cur = oldest;
    sh->newest = bucket;

    return o;
}


void
ngx_http_engagement_trend_add(ngx_str_t *id, ngx_str_t *category,
    ngx_uint_t weight)
{
    int64_t                             bucket;
    uint64_t                            hash;
    ngx_uint_t                          c;
    ngx_http_engagement_trend_sh_t     *sh;
    ngx_http_engagement_trend_conf_t   *tc;
    ngx_http_engagement_trend_slot_t   *s;

    tc = ngx_http_engagement_trend_running;

    if (tc == NULL || weight == 0 || id->len == 0
        || id->len > NGX_HTTP_ENGAGEMENT_ID_MAX)
    {
        return;
    }

    sh = tc->sh;
    bucket = ngx_time() / sh->bucket;
    hash = ngx_http_engagement_idhash(sh->key, id->data, id->len);

    ngx_shmtx_lock(&tc->shpool->mutex);

    s = ngx_http_engagement_trend_slot_for(sh, bucket);

    if (s == NULL) {
        ngx_shmtx_unlock(&tc->shpool->mutex);
        ngx_http_engagement_trend_inc(tc, late);
        return;
    }

    ngx_http_engagement_trend_sketch_add(sh, s, 0, hash, id, weight);

    c = 0;

    if (category && category->len
        && category->len <= NGX_HTTP_ENGAGEMENT_ID_MAX
        && sh->cats)
    {
        c = ngx_http_engagement_trend_category(sh, s, category);

        if (c) {
            ngx_http_engagement_trend_sketch_add(sh, s, c, hash, id, weight);
        }
    }

    ngx_shmtx_unlock(&tc->shpool->mutex);

    if (category && category->len && c == 0 && sh->cats) {
        ngx_http_engagement_trend_inc(tc, no_category);
    }

    ngx_http_engagement_trend_inc(tc, added);
    ngx_http_engagement_trend_addn(tc, weight, weight);
}


void
ngx_http_engagement_trend_view(ngx_str_t *id, ngx_str_t *category)
{
    ngx_http_engagement_trend_add(id, category, 1);
}


void
ngx_http_engagement_trend_like(u_char *id, size_t len)
{
    ngx_str_t  s;

    if (ngx_http_engagement_trend_running == NULL) {
        return;
    }

    s.data = id;
    s.len = len;

    ngx_http_engagement_trend_add(&s, NULL,
                          ngx_http_engagement_trend_running->like_weight);
}



ngx_http_engagement_trend_stats_t *
ngx_http_engagement_trend_stats(ngx_http_engagement_trend_conf_t *tc)
{
    return &((ngx_http_engagement_trend_sh_t *) tc->sh)->stats;
}


void
ngx_http_engagement_trend_gauges(ngx_http_engagement_trend_conf_t *tc)
{
    ngx_uint_t                          i, c, items, held;
    ngx_http_engagement_trend_sh_t     *sh;
    ngx_http_engagement_trend_slot_t   *s;
    ngx_http_engagement_trend_arrays_t  a;

    sh = tc->sh;
    items = 0;
    held = 0;

    ngx_shmtx_lock(&tc->shpool->mutex);

    for (i = 0; i < sh->nslots; i++) {
        s = ngx_http_engagement_trend_slot(sh, i);

        if (s->bucket < 0) {
            continue;
        }

        held++;

        for (c = 0; c <= s->ncats; c++) {
            ngx_http_engagement_trend_arrays(sh, s, c, &a);
            items += a.head->n;
        }
    }

    ngx_shmtx_unlock(&tc->shpool->mutex);

    sh->stats.items = items;
    sh->stats.pending = held;
}


ngx_msec_t
ngx_http_engagement_trend_grace(ngx_http_engagement_trend_conf_t *tc)
{
    ngx_msec_t  g;

    /* a twentieth of the bucket, 1 s to 5 s: workers' clocks differ a bit */
    g = (ngx_msec_t) tc->bucket * 1000 / 20;

    return ngx_min(ngx_max(g, 1000), 5000);
}


/* the minute YYYYMMDDHHMM that names a bucket: its start, or b * 60 s */
u_char *
ngx_http_engagement_trend_minute(u_char *p, int64_t bucket, time_t length)
{
    ngx_tm_t  tm;

    ngx_gmtime((time_t) bucket * (length < 60 ? 60 : length), &tm);

    p = ngx_http_engagement_put_digits(p, tm.ngx_tm_year, 4);
    p = ngx_http_engagement_put_digits(p, tm.ngx_tm_mon, 2);
    p = ngx_http_engagement_put_digits(p, tm.ngx_tm_mday, 2);
    p = ngx_http_engagement_put_digits(p, tm.ngx_tm_hour, 2);
    p = ngx_http_engagement_put_digits(p, tm.ngx_tm_min, 2);

    return p;
}


int64_t
ngx_http_engagement_trend_now(ngx_http_engagement_trend_conf_t *tc)
{
    return ngx_time() / tc->bucket;
}


ngx_uint_t
ngx_http_engagement_trend_due(ngx_http_engagement_trend_conf_t *tc,
    ngx_msec_t period)
{
    return ngx_http_engagement_turn_due(
               &((ngx_http_engagement_trend_sh_t *) tc->sh)->flush_at,
               period);
}


/* the scopes of a closed bucket that have items */
static uint64_t
ngx_http_engagement_trend_todo(ngx_http_engagement_trend_sh_t *sh,
    ngx_http_engagement_trend_slot_t *s)
{
    uint64_t                            todo;
    ngx_uint_t                          c;
    ngx_http_engagement_trend_arrays_t  a;

    todo = 0;

    for (c = 0; c <= s->ncats; c++) {
        ngx_http_engagement_trend_arrays(sh, s, c, &a);

        if (a.head->n) {
            todo |= (uint64_t) 1 << c;
        }
    }

    return todo;
}


/* a taken bucket's scopes still to send, copied out (under the lock) */
static void
ngx_http_engagement_trend_copy(ngx_http_engagement_trend_sh_t *sh,
    ngx_http_engagement_trend_slot_t *s, ngx_http_engagement_trend_bucket_t *b)
{
    u_char                              *e, *names;
    ngx_uint_t                           c, i;
    ngx_http_engagement_trend_item_t    *it;
    ngx_http_engagement_trend_arrays_t   a;

    b->bucket = s->bucket;
    b->stream = sh->stream;
    b->todo = s->todo;
    b->ncats = s->ncats;
    b->done = 0;
    b->failed = 0;

    names = ngx_http_engagement_trend_cat_names(sh, s);

    for (c = 0; c <= s->ncats; c++) {
        b->nitems[c] = 0;

        if (!(s->todo & ((uint64_t) 1 << c))) {
            continue;
        }

        ngx_http_engagement_trend_arrays(sh, s, c, &a);

        for (i = 0; i < a.head->n; i++) {
            it = &b->items[c][i];
            it->count = a.count[i];
            it->err = a.err[i];
            e = a.ids + i * NGX_HTTP_ENGAGEMENT_TREND_IDW;
            it->len = e[0];
            ngx_memcpy(it->id, e + 1, e[0]);
        }

        b->nitems[c] = a.head->n;

        if (c) {
            ngx_memcpy(b->cats[c - 1], names
                                       + (c - 1)
                                         * NGX_HTTP_ENGAGEMENT_TREND_IDW,
                       NGX_HTTP_ENGAGEMENT_TREND_IDW);
        }
    }
}


/*
 * The oldest closed bucket not in flight, taken (no more adds) and copied
 * into b; in flight for resend ms. Empty buckets and buckets older than
 * the longest window are let go on the way. NGX_DECLINED: none.
 */
ngx_int_t
ngx_http_engagement_trend_take(ngx_http_engagement_trend_conf_t *tc,
    ngx_http_engagement_trend_bucket_t *b, ngx_msec_t resend)
{
    int64_t                            nowb;
    uint64_t                           mono, now;
    ngx_uint_t                         i, pick;
    ngx_time_t                        *tp;
    ngx_http_engagement_trend_sh_t    *sh;
    ngx_http_engagement_trend_slot_t  *s, *best;

    sh = tc->sh;
    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;
    nowb = tp->sec / sh->bucket;
    mono = ngx_http_engagement_monotonic_ms();
    best = NULL;
    pick = 0;

    ngx_shmtx_lock(&tc->shpool->mutex);

    for (i = 0; i < sh->nslots; i++) {
        s = ngx_http_engagement_trend_slot(sh, i);

        if (s->bucket < 0) {
            continue;
        }

        if (s->bucket < nowb - NGX_HTTP_ENGAGEMENT_TREND_KEEP) {
            /* older than any window: of no use any more */
            s->bucket = -1;
            (void) ngx_atomic_fetch_add(&sh->stats.buckets_dropped, 1);
            continue;
        }

        if ((uint64_t) (s->bucket + 1) * sh->bucket * 1000
            + ngx_http_engagement_trend_grace(tc) > now
            || s->sending > mono)
        {
            continue;
        }

        if (!s->taken) {
            s->taken = 1;
            s->todo = ngx_http_engagement_trend_todo(sh, s);
        }

        if (s->todo == 0) {
            s->bucket = -1;
            continue;
        }

        if (best == NULL || s->bucket < best->bucket) {
            best = s;
            pick = i;
        }
    }

    if (best == NULL) {
        ngx_shmtx_unlock(&tc->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_http_engagement_trend_copy(sh, best, b);
    b->slot = pick;
    best->sending = mono + resend;

    ngx_shmtx_unlock(&tc->shpool->mutex);

    return NGX_OK;
}


/* what Redis confirmed of a bucket (done: its scopes); all: it is free */
void
ngx_http_engagement_trend_sent(ngx_http_engagement_trend_conf_t *tc,
    ngx_http_engagement_trend_bucket_t *b, uint64_t done)
{
    ngx_uint_t                          freed;
    ngx_http_engagement_trend_sh_t     *sh;
    ngx_http_engagement_trend_slot_t   *s;

    sh = tc->sh;
    freed = 0;

    ngx_shmtx_lock(&tc->shpool->mutex);

    s = ngx_http_engagement_trend_slot(sh, b->slot);

    if (s->bucket == b->bucket && s->taken && sh->stream == b->stream) {
        s->todo &= ~done;

        if (s->todo == 0) {
            s->bucket = -1;
            freed = 1;

        } else {
            /* the rest goes again at the next turn */
            s->sending = 0;
        }
    }

    ngx_shmtx_unlock(&tc->shpool->mutex);

    if (freed) {
        ngx_http_engagement_trend_inc(tc, buckets_flushed);
    }
}


/* a worker's buffer for one bucket, sized for the zone's sketches */
ngx_http_engagement_trend_bucket_t *
ngx_http_engagement_trend_bucket_new(ngx_http_engagement_trend_conf_t *tc,
    ngx_log_t *log)
{
    u_char                              *p;
    size_t                               size;
    ngx_uint_t                           c, n;
    ngx_http_engagement_trend_sh_t      *sh;
    ngx_http_engagement_trend_bucket_t  *b;

    sh = tc->sh;
    n = 1 + sh->cats;

    size = sizeof(ngx_http_engagement_trend_bucket_t)
           + n * (sizeof(ngx_uint_t) + sizeof(void *))
           + (sh->k + sh->cats * sh->cat_k)
             * sizeof(ngx_http_engagement_trend_item_t)
           + sh->cats * NGX_HTTP_ENGAGEMENT_TREND_IDW + 16;

    p = ngx_alloc(size, log);
    if (p == NULL) {
        return NULL;
    }

    b = (ngx_http_engagement_trend_bucket_t *) p;
    p += sizeof(ngx_http_engagement_trend_bucket_t);
    b->nitems = (ngx_uint_t *) p;
    p += n * sizeof(ngx_uint_t);
    b->items = (ngx_http_engagement_trend_item_t **) p;
    p += n * sizeof(void *);
    p = ngx_align_ptr(p, 8);

    for (c = 0; c < n; c++) {
        b->items[c] = (ngx_http_engagement_trend_item_t *) p;
        p += (c ? sh->cat_k : sh->k)
             * sizeof(ngx_http_engagement_trend_item_t);
    }

    b->cats = (u_char (*)[NGX_HTTP_ENGAGEMENT_ID_MAX + 1]) p;
    b->outstanding = 0;
    b->data = NULL;

    return b;
}


void
ngx_http_engagement_trend_bucket_free(ngx_http_engagement_trend_bucket_t *b)
{
    ngx_free(b);
}


void
ngx_http_engagement_trend_worker_start(ngx_cycle_t *cycle)
{
    ngx_http_engagement_trend_running = ngx_http_engagement_trend_conf();
}


/* the batch keys' part that tells this zone's buckets from another's */
static void
ngx_http_engagement_trend_new_stream(ngx_http_engagement_trend_sh_t *sh)
{
    uint64_t  r[2];

    ngx_http_engagement_random_key(r);
    sh->stream = r[0] ^ r[1];
}


/* the ring, cut from what the slab pool has free; NGX_ERROR: no room */
static ngx_int_t
ngx_http_engagement_trend_tables(ngx_http_engagement_trend_sh_t *sh,
    ngx_slab_pool_t *shpool, size_t size, ngx_log_t *log)
{
    ngx_uint_t  i, n;

    sh->slot_size = ngx_http_engagement_trend_slot_size(sh->k, sh->cats,
                                                        sh->cat_k);

    for (n = size * 7 / 8 / sh->slot_size; n >= 3; n = n * 9 / 10) {
        sh->slots = ngx_slab_alloc_locked(shpool, n * sh->slot_size);

        if (sh->slots) {
            sh->nslots = n;
            sh->cur = 0;
            sh->newest = 0;

            for (i = 0; i < n; i++) {
                ngx_http_engagement_trend_slot(sh, i)->bucket = -1;
            }

            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


ngx_int_t
ngx_http_engagement_trend_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint32_t                           layout;
    ngx_slab_pool_t                   *shpool;
    ngx_http_engagement_trend_sh_t    *sh;
    ngx_http_engagement_trend_conf_t  *tc;

    tc = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    tc->shpool = shpool;

    layout = ngx_http_engagement_layout_of(ngx_http_engagement_trend_shape);

    if (data || shm_zone->shm.exists) {
        sh = shpool->data;

        if (sh == NULL || sh->magic != NGX_HTTP_ENGAGEMENT_TREND_MAGIC
            || sh->layout != layout)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "trending zone \"%V\" was written by another kind "
                          "of zone or an incompatible module version: stop "
                          "and start nginx to recreate it",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        tc->sh = sh;

        if (sh->k == tc->k && sh->cats == tc->categories
            && sh->cat_k == tc->category_k && sh->bucket == tc->bucket)
        {
            return NGX_OK;
        }

        /*
         * Cut differently: refused. The running workers go on with this
         * header and its slots until the reload is over (and for good if
         * it fails elsewhere), so it is never changed under them.
         */
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "trending zone \"%V\": new sketch sizes (k=, "
                      "categories=, category_k=) or a new "
                      "engagement_trending_bucket need a restart: stop and "
                      "start nginx (the reload is refused, the running "
                      "configuration goes on)", &shm_zone->shm.name);
        return NGX_ERROR;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_trend_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->k = tc->k;
    sh->cats = tc->categories;
    sh->cat_k = tc->category_k;
    sh->bucket = tc->bucket;

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_engagement_trend_tables(sh, shpool, shm_zone->shm.size,
                                         shm_zone->shm.log)
        != NGX_OK)
    {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "trending zone \"%V\" is too small: a bucket of "
                      "k=%ui, %ui categories of %ui takes %uz bytes, and "
                      "at least 3 are kept", &shm_zone->shm.name, sh->k,
                      sh->cats, sh->cat_k, sh->slot_size);
        return NGX_ERROR;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "trending zone \"%V\": room for %ui buckets of %T s",
                  &shm_zone->shm.name, sh->nslots, sh->bucket);

    sh->magic = NGX_HTTP_ENGAGEMENT_TREND_MAGIC;
    sh->layout = layout;
    ngx_http_engagement_random_key(sh->key);
    ngx_http_engagement_trend_new_stream(sh);

    shpool->data = sh;
    tc->sh = sh;

    ngx_http_engagement_zone_log_ctx(shpool, "trending", &shm_zone->shm.name);

    return NGX_OK;
}
