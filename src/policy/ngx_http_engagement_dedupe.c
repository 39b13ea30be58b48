
/*
 * The dedupe zone: "seen within the window" marks for (content, identity)
 * and for request ids, in one table of fixed 32-byte entries allocated
 * whole when the zone is made (no allocation per mark). An entry is keyed
 * by a 64-bit keyed hash and holds every kind of mark of its key (view,
 * engaged, replay). The table is cut into buckets of
 * NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET entries; a key has two, chosen by
 * either half of it, and goes to the one with fewer live entries (two
 * choices keep the buckets even: the first eviction comes at ~70 % of the
 * table, against ~20 % for one run of 8 slots). A new key takes the first
 * never-used or lapsed slot there, else evicts the entry of the two
 * buckets whose marks lapse first (the oldest; counted): a full table
 * never refuses a mark, and a lookup reads 16 entries at most.
 *
 * Slots are never emptied once used (lapsed ones are reused) and a bucket
 * fills from its start, so a lookup leaves a bucket at its first
 * never-used slot.
 *
 * An event's marks are taken as a set, under the zone lock from
 * ngx_http_engagement_dedupe_begin() to ngx_http_engagement_dedupe_end():
 * a mark set is pending until committed, and end() restores every entry
 * the set changed and did not commit. Nobody else sees a pending mark
 * while its owner lives (the owner holds the lock); one found later was
 * left by a worker killed before its event was counted, and counts as
 * not seen.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"


/* the entries of a bucket (256 bytes: four cache lines) */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET  8

/* tries at allocating the table, one page smaller each */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_TRIES   4


typedef ngx_http_engagement_dedupe_entry_t  ngx_http_engagement_dentry_t;


/* the number of kinds in a set of kinds (three bits) */
static const u_char  ngx_http_engagement_dedupe_nkinds[8] = {
    0, 1, 1, 2, 1, 2, 2, 3
};


_Static_assert(NGX_HTTP_ENGAGEMENT_MARK_KINDS == 3,
               "nkinds counts three bits");


/* a bucket of the table, by 32 bits of a key scaled to the buckets */
#define ngx_http_engagement_dedupe_bucket(sh, h32)                            \
    ((ngx_http_engagement_dentry_t *) (sh)->table                             \
     + ((uint64_t) (h32) * (sh)->buckets >> 32)                               \
       * NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET)


/* the kinds of an entry whose marks are live now, committed ones only */

static ngx_uint_t
ngx_http_engagement_dedupe_live(ngx_http_engagement_dentry_t *e,
    ngx_msec_t now)
{
    ngx_uint_t      k, live;
    ngx_msec_int_t  age;

    age = (ngx_msec_int_t) (now - e->base);
    live = 0;

    for (k = 0; k < NGX_HTTP_ENGAGEMENT_MARK_KINDS; k++) {
        if (e->expire[k] && (ngx_msec_int_t) e->expire[k] > age) {
            live |= (ngx_uint_t) 1 << k;
        }
    }

    return live & ~e->pending;
}


/* ms until the last mark of an entry lapses, pending ones too; <= 0: none */

static ngx_msec_int_t
ngx_http_engagement_dedupe_left(ngx_http_engagement_dentry_t *e,
    ngx_msec_t now)
{
    uint32_t    last;
    ngx_uint_t  k;

    last = 0;

    for (k = 0; k < NGX_HTTP_ENGAGEMENT_MARK_KINDS; k++) {
        last = ngx_max(last, e->expire[k]);
    }

    if (last == 0) {
        return 0;
    }

    return (ngx_msec_int_t) last - (ngx_msec_int_t) (now - e->base);
}


/*
 * When both buckets of a new key are full: the entry whose marks lapse
 * first, never one of this set's.
 */

static ngx_http_engagement_dentry_t *
ngx_http_engagement_dedupe_victim(ngx_http_engagement_dentry_t *b0,
    ngx_http_engagement_dentry_t *b1,
    ngx_http_engagement_dedupe_set_t *set)
{
    ngx_uint_t                     i, j;
    ngx_msec_int_t                 left, least;
    ngx_http_engagement_dentry_t  *e, *victim;

    victim = NULL;
    least = 0;

    for (i = 0; i < 2 * NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET; i++) {
        e = (i < NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET ? b0 : b1)
            + i % NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET;

        for (j = 0; j < set->n; j++) {
            if (set->entries[j] == e) {
                break;
            }
        }

        if (j < set->n) {
            continue;
        }

        left = ngx_http_engagement_dedupe_left(e, set->now);

        if (victim == NULL || left < least) {
            victim = e;
            least = left;
        }
    }

    return victim;
}


/*
 * The entry of a key: its own, else the slot it may take: a never-used or
 * lapsed one of the bucket with fewer live entries (two choices keep the
 * buckets even), else a victim. NULL: none.
 */

static ngx_http_engagement_dentry_t *
ngx_http_engagement_dedupe_find(ngx_http_engagement_dedupe_shctx_t *sh,
    ngx_http_engagement_dedupe_set_t *set, uint64_t key)
{
    ngx_uint_t                     i, j, live, least;
    ngx_http_engagement_dentry_t  *e, *free, *take, *b0, *b1;

    /* two pointers, not an array: no stack guard on every mark */
    b0 = ngx_http_engagement_dedupe_bucket(sh, key >> 32);

    if (b0->key == 0) {
        /*
         * A first bucket never used: a key goes to the second only when
         * the first has more live entries, so it is in neither.
         */
        return b0;
    }

    b1 = ngx_http_engagement_dedupe_bucket(sh, (uint32_t) key);
    take = NULL;
    least = NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET;

    for (j = 0; j < 2; j++) {
        free = NULL;
        live = 0;

        for (i = 0, e = j ? b1 : b0;
             i < NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET;
             i++, e++)
        {
            if (e->key == key) {
                return e;
            }

            if (e->key == 0) {
                /* the rest of the bucket is unused too */
                free = free ? free : e;
                break;
            }

            if (ngx_http_engagement_dedupe_left(e, set->now) > 0) {
                live++;

            } else if (free == NULL) {
                free = e;
            }
        }

        if (free && live < least) {
            take = free;
            least = live;
        }
    }

    return take ? take : ngx_http_engagement_dedupe_victim(b0, b1, set);
}


/* a slot taken for a new key, with what it held counted */

static void
ngx_http_engagement_dedupe_take(ngx_http_engagement_dedupe_shctx_t *sh,
    ngx_http_engagement_dentry_t *e, uint64_t key, ngx_msec_t now)
{
    if (e->key == 0) {
        sh->head.entries++;
        sh->head.full = 0;

    } else if (ngx_http_engagement_dedupe_left(e, now) <= 0) {
        sh->expired++;
        sh->head.full = 0;

    } else {
        /* a live mark is lost: a repeat may count again; said so */
        sh->evictions++;
        sh->head.full = 1;
    }

    /*
     * The old key's marks go first, then the key: a worker killed in
     * between leaves no mark of one key under the other, and never a key
     * 0 (a never-used slot) in the middle of a bucket.
     */
    ngx_memzero(e->expire, sizeof(e->expire));
    e->pending = 0;
    ngx_memory_barrier();

    e->key = key;
    e->base = now;
}


/* marks kinds pending in an entry, from now on for window ms */

static void
ngx_http_engagement_dedupe_set(ngx_http_engagement_dentry_t *e,
    ngx_uint_t kinds, ngx_msec_t now, ngx_msec_t window)
{
    uint32_t        w;
    ngx_uint_t      k;
    ngx_msec_int_t  age;

    /*
     * Pending before any expiry is written: a worker killed from here on
     * leaves marks that nobody sees, never a live mark of an event that
     * was not counted.
     */
    e->pending |= kinds;
    ngx_memory_barrier();

    w = (uint32_t) ngx_min(window, NGX_HTTP_ENGAGEMENT_DEDUPE_WINDOW_MAX);

    /* another worker's clock may be a few ms ahead: the later counts */
    age = (ngx_msec_int_t) (now - e->base);
    age = ngx_max(age, 0);

    /*
     * The new marks count from the entry's base, so that the other kinds'
     * offsets are left alone (a worker killed while moving them to another
     * base would leave them shorter or longer). Only when the offset would
     * outgrow 31 bits (an entry marked again and again for ~24.8 days) do
     * the offsets move to now.
     */
    if (age > (ngx_msec_int_t) (NGX_HTTP_ENGAGEMENT_DEDUPE_WINDOW_MAX - w)) {
        for (k = 0; k < NGX_HTTP_ENGAGEMENT_MARK_KINDS; k++) {
            e->expire[k] = ((ngx_msec_int_t) e->expire[k] > age)
                           ? (uint32_t) (e->expire[k] - age) : 0;
        }

        e->base = now;
        age = 0;
    }

    /* one store per kind marked, on one line (t/173 stops a worker there) */
    for ( /* void */ ; kinds; kinds &= kinds - 1) {
        k = __builtin_ctzl(kinds);
        e->expire[k] = (uint32_t) (age + w);
    }
}


/* the set's marks are checked and set under the zone lock, until end() */

void
ngx_http_engagement_dedupe_begin(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set)
{
    set->n = 0;
    set->now = ngx_current_msec;

    ngx_shmtx_lock(&z->shpool->mutex);
}


/*
 * The marks of kinds under one key: *fresh gets the kinds not seen within
 * their window, which are set, pending; the others are left as they are.
 * NGX_ERROR: the set is full, or no slot (only this set's in the window).
 */

ngx_int_t
ngx_http_engagement_dedupe_mark(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set, uint64_t key, ngx_uint_t kinds,
    ngx_msec_t window, ngx_uint_t *fresh)
{
    ngx_uint_t                           i, seen, f;
    ngx_http_engagement_dentry_t        *e;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;

    /* 0 marks a never-used slot */
    key += (key == 0);

    e = (set->n < NGX_HTTP_ENGAGEMENT_DEDUPE_SET)
        ? ngx_http_engagement_dedupe_find(sh, set, key) : NULL;

    if (e == NULL) {
        sh->alloc_failures++;
        return NGX_ERROR;
    }

    f = kinds;

    if (e->key == key) {
        seen = ngx_http_engagement_dedupe_live(e, set->now) & kinds;
        f &= ~seen;
        sh->hits += ngx_http_engagement_dedupe_nkinds[seen];

        if (f == 0) {
            *fresh = 0;
            return NGX_OK;
        }
    }

    i = set->n++;
    set->entries[i] = e;
    set->saved[i] = *e;
    set->kinds[i] = (uint32_t) f;

    if (e->key != key) {
        ngx_http_engagement_dedupe_take(sh, e, key, set->now);
    }

    ngx_http_engagement_dedupe_set(e, f, set->now, window);

    *fresh = f;
    sh->inserts += ngx_http_engagement_dedupe_nkinds[f];

    return NGX_OK;
}


/* the set's pending marks are seen from now on; the lock is still held */

void
ngx_http_engagement_dedupe_commit(ngx_http_engagement_dedupe_set_t *set)
{
    ngx_uint_t  i;

    for (i = 0; i < set->n; i++) {
        set->entries[i]->pending &= ~set->kinds[i];
    }

    set->n = 0;
}


/*
 * Entries with marks still pending are restored, newest first, so that
 * the retry of an event that was not counted is not a repeat; then the
 * lock is released. No other worker has seen them: the lock was held
 * throughout.
 */

void
ngx_http_engagement_dedupe_end(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set)
{
    ngx_uint_t                           i;
    ngx_http_engagement_dentry_t        *e;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;

    for (i = set->n; i--; /* void */) {
        e = set->entries[i];

        if (set->saved[i].key == 0 && e->key != 0) {
            sh->head.entries--;
        }

        *e = set->saved[i];
    }

    set->n = 0;

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/* the key of a request id, keyed with the zone's secret */

uint64_t
ngx_http_engagement_dedupe_hash(ngx_http_engagement_zone_t *z, ngx_str_t *id)
{
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;

    return ngx_http_engagement_siphash13(sh->head.hash_key, id->data,
                                         id->len);
}


/* what a dedupe zone keeps, for its layout */
static const size_t  ngx_http_engagement_dedupe_shape[] = {
    NGX_HTTP_ENGAGEMENT_HEAD_SHAPE,
    sizeof(ngx_http_engagement_dedupe_shctx_t),
    offsetof(ngx_http_engagement_dedupe_shctx_t, table),
    offsetof(ngx_http_engagement_dedupe_shctx_t, buckets),
    sizeof(ngx_http_engagement_dentry_t),
    offsetof(ngx_http_engagement_dentry_t, base),
    offsetof(ngx_http_engagement_dentry_t, expire),
    offsetof(ngx_http_engagement_dentry_t, pending),
    NGX_HTTP_ENGAGEMENT_MARK_KINDS,
    NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET
};


static const ngx_http_engagement_zone_kind_t  ngx_http_engagement_dedupe_kind
    = {
    "engagement_dedupe_zone",
    NGX_HTTP_ENGAGEMENT_DEDUPE_MAGIC,
    sizeof(ngx_http_engagement_dedupe_shctx_t),
    ngx_http_engagement_hnode_insert,
    NGX_HTTP_ENGAGEMENT_RESIZE_WARN,
    ngx_http_engagement_dedupe_shape,
    sizeof(ngx_http_engagement_dedupe_shape) / sizeof(size_t)
};


/*
 * The table of a new zone: the zone's free pages in one allocation (a
 * few tries, one page less each, should they not be contiguous), fresh
 * from mmap(), hence zero: every slot never used.
 */

static ngx_int_t
ngx_http_engagement_dedupe_table(ngx_http_engagement_zone_t *z,
    ngx_log_t *log)
{
    size_t                               size;
    uint64_t                             n;
    ngx_uint_t                           pages, i;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    sh = z->sh;
    pages = z->shpool->pfree;
    size = 0;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_DEDUPE_TRIES && i < pages; i++) {
        size = (pages - i) * ngx_pagesize;
        sh->table = ngx_slab_alloc(z->shpool, size);

        if (sh->table) {
            break;
        }
    }

    n = size / (NGX_HTTP_ENGAGEMENT_DEDUPE_BUCKET
                * sizeof(ngx_http_engagement_dentry_t));

    if (sh->table == NULL || n < 2) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "engagement_dedupe_zone \"%V\" has no room for its "
                      "table", &z->name);
        return NGX_ERROR;
    }

#if (NGX_DEBUG_MALLOC)
    /* the slab pool junks its pages in these builds */
    ngx_memzero(sh->table, size);
#endif

    /* a bucket is chosen by 32 bits of a key, scaled */
    sh->buckets = (ngx_uint_t) ngx_min(n, (uint64_t) 0xffffffff);

    return NGX_OK;
}


ngx_int_t
ngx_http_engagement_dedupe_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_engagement_zone_t          *z;
    ngx_http_engagement_dedupe_shctx_t  *sh;

    z = shm_zone->data;

    if (ngx_http_engagement_zone_init(shm_zone, data,
                                      &ngx_http_engagement_dedupe_kind)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sh = z->sh;

    /* a zone kept over a reload keeps its table and marks */
    if (sh->table) {
        return NGX_OK;
    }

    return ngx_http_engagement_dedupe_table(z, shm_zone->shm.log);
}
