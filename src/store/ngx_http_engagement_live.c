
/*
 * The live zone: live concurrent viewers from heartbeats.
 *
 * Time is cut in slots of half a heartbeat interval. A session is live
 * while the last slot it was seen in is one of the current four (the
 * current slot and the three before): a session that heartbeats every
 * interval stays live, one that stops drops out between 1.5 and 2
 * intervals after its last heartbeat. Each content keeps, for those four
 * slots, how many sessions were last seen in each; a heartbeat moves its
 * session from its last slot to the current one, so a content's live
 * count is the sum of its four slots, found without a scan and with no
 * timer sweeping the sessions. A repeated heartbeat in the same slot
 * changes nothing (heartbeats are idempotent).
 *
 * Two fixed tables, made whole when the zone is made (bounded memory, no
 * allocation on the request path): sessions by the keyed hash of their
 * id (the id itself is not kept), and contents by the hash of their id,
 * with the id kept to tell collisions apart. An entry lives in one of
 * two buckets its hash names (the less full when it came). An entry
 * whose slots all lapsed is free for reuse. When neither bucket has a
 * free entry, the heartbeat is refused (the caller answers 503) rather
 * than a live session evicted.
 *
 * With Redis (engagement_live_redis), other edges' live viewers are added
 * to this edge's: one worker at a time, every 2 s, sends each content's
 * count here and reads the others' back (sink/redis/live_share.c); the
 * answer is kept in the content's entry for 6.5 s. Which
 * contents: those live here, those whose count was read here lately (a
 * summary, the live endpoint, a live stream), and those whose count was
 * sent and must now be taken back. A content read here with no viewers
 * here takes an entry in a small table of its own (the watch table),
 * which evicts its oldest when full: reads of many contents cannot take
 * the room of heartbeats.
 *
 * The zone's layout is in live_int.h; its directives and making in
 * live_conf.c.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_live.h"
#include "store/ngx_http_engagement_live_int.h"


/*
 * The current slot: half intervals of the monotonic clock (the same for
 * every process of the host; ngx_current_msec is wall-clock in nginx
 * 1.22 and each worker's copy lags by its own amount).
 */

static uint32_t
ngx_http_engagement_live_slot(ngx_http_engagement_live_sh_t *sh)
{
    return (uint32_t) (ngx_http_engagement_monotonic_ms()
                       / (sh->interval / 2));
}


/*
 * Under the lock: the slot to use, never before one already used (a
 * process that read the clock earlier must not write into the past).
 */

static ngx_inline uint32_t
ngx_http_engagement_live_now(ngx_http_engagement_live_sh_t *sh, uint32_t k)
{
    if ((int32_t) (k - sh->now_slot) > 0) {
        sh->now_slot = k;
    }

    return sh->now_slot;
}


static ngx_inline uint32_t
ngx_http_engagement_live_minute(void)
{
    return (uint32_t) (ngx_time() / 60);
}


static ngx_inline ngx_uint_t
ngx_http_engagement_live_lapsed(uint32_t slot, uint32_t k)
{
    /* a slot after k (another process's clock ran ahead) is live */
    return (int32_t) (k - slot) >= NGX_HTTP_ENGAGEMENT_LIVE_SLOTS;
}


static ngx_inline ngx_uint_t
ngx_http_engagement_live_wanted(ngx_http_engagement_live_content_t *c,
    uint32_t k)
{
    return (c->flags & NGX_HTTP_ENGAGEMENT_LIVE_WANTED)
           && !ngx_http_engagement_live_lapsed(c->wanted_slot, k);
}


/*
 * Other edges' live viewers, as Redis said lately: an answer comes every
 * turn (2 s) while Redis answers, and is kept three turns and a look
 * (whatever the heartbeat interval, so that a short interval does not
 * drop it between turns, nor a long one keep it while Redis is gone).
 */

#define NGX_HTTP_ENGAGEMENT_LIVE_REMOTE_KEEP                                  \
    (3 * NGX_HTTP_ENGAGEMENT_LIVE_SHARE + 500)

static ngx_inline ngx_uint_t
ngx_http_engagement_live_remote(ngx_http_engagement_live_content_t *c)
{
    if ((c->flags & NGX_HTTP_ENGAGEMENT_LIVE_REMOTE)
        && ngx_http_engagement_monotonic_ms() - c->remote_at
           <= NGX_HTTP_ENGAGEMENT_LIVE_REMOTE_KEEP)
    {
        return c->remote;
    }

    return 0;
}


static ngx_uint_t
ngx_http_engagement_live_count(ngx_http_engagement_live_content_t *c,
    uint32_t k)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_LIVE_SLOTS; i++) {
        if (!ngx_http_engagement_live_lapsed(c->ring[i].slot, k)) {
            n += c->ring[i].count;
        }
    }

    return n;
}


static void
ngx_http_engagement_live_ring_add(ngx_http_engagement_live_content_t *c,
    uint32_t k)
{
    ngx_http_engagement_live_ring_t  *rs;

    rs = &c->ring[k % NGX_HTTP_ENGAGEMENT_LIVE_SLOTS];

    if (rs->slot != k) {
        rs->slot = k;
        rs->count = 0;
    }

    rs->count++;
}


static void
ngx_http_engagement_live_ring_remove(ngx_http_engagement_live_content_t *c,
    uint32_t slot)
{
    ngx_http_engagement_live_ring_t  *rs;

    rs = &c->ring[slot % NGX_HTTP_ENGAGEMENT_LIVE_SLOTS];

    if (rs->slot == slot && rs->count) {
        rs->count--;
    }
}


static ngx_uint_t
ngx_http_engagement_live_content_is(ngx_http_engagement_live_content_t *c,
    uint64_t hash, ngx_str_t *id)
{
    return c->hash == hash && c->len == id->len
           && ngx_memcmp(c->data, id->data, id->len) == 0;
}


/*
 * The two buckets an entry of a table of n entries may be in: the index
 * of each one's first entry (the same twice in a table of one bucket).
 */

static ngx_inline void
ngx_http_engagement_live_buckets(uint64_t hash, ngx_uint_t n, ngx_uint_t *b)
{
    ngx_uint_t  nb;

    nb = n / NGX_HTTP_ENGAGEMENT_LIVE_BUCKET;

    b[0] = (ngx_uint_t) (hash % nb);
    b[1] = (ngx_uint_t) (((hash >> 32) * 0x9e3779b97f4a7c15ULL >> 32) % nb);

    if (b[1] == b[0] && nb > 1) {
        b[1] = (b[0] + 1) % nb;
    }

    b[0] *= NGX_HTTP_ENGAGEMENT_LIVE_BUCKET;
    b[1] *= NGX_HTTP_ENGAGEMENT_LIVE_BUCKET;
}


/*
 * A content's entry (made if need be, when make): its index, or -1. A
 * new one takes a free entry of the less full of its two buckets. In a
 * bucket, entries are taken in order and never emptied (a free one is
 * reused in place): past a never used entry there is no other.
 */

static ngx_int_t
ngx_http_engagement_live_content(ngx_http_engagement_live_sh_t *sh,
    uint64_t hash, ngx_str_t *id, uint32_t k, uint32_t minute,
    ngx_uint_t make)
{
    ngx_int_t                            free, bfree;
    ngx_uint_t                           i, j, n, used, least;
    ngx_uint_t                           b[2];
    ngx_http_engagement_live_content_t  *c;

    ngx_http_engagement_live_buckets(hash, sh->ncontents, b);

    free = -1;
    least = NGX_HTTP_ENGAGEMENT_LIVE_BUCKET + 1;

    for (j = 0; j < 2; j++) {
        if (j == 1 && b[1] == b[0]) {
            break;
        }

        bfree = -1;
        used = 0;

        for (n = 0; n < NGX_HTTP_ENGAGEMENT_LIVE_BUCKET; n++) {
            i = b[j] + n;
            c = &sh->contents[i];

            if (ngx_http_engagement_live_content_is(c, hash, id)) {
                return i;
            }

            if (c->hash == 0) {
                if (bfree == -1) {
                    bfree = i;
                }

                break;
            }

            if (c->peak_minute != minute
                && ngx_http_engagement_live_count(c, k) == 0
                && !ngx_http_engagement_live_wanted(c, k))
            {
                if (bfree == -1) {
                    bfree = i;
                }

            } else {
                used++;
            }
        }

        if (bfree != -1 && used < least) {
            free = bfree;
            least = used;
        }
    }

    if (!make || free == -1) {
        return -1;
    }

    c = &sh->contents[free];
    ngx_memzero(c, sizeof(ngx_http_engagement_live_content_t));
    c->hash = hash;
    c->len = (u_char) id->len;
    ngx_memcpy(c->data, id->data, id->len);
    c->peak_minute = minute;

    return free;
}


/*
 * A session's entry, or a free one to take (*found 0) in the less full
 * of its two buckets, or NULL: both are full.
 */

static ngx_http_engagement_live_session_t *
ngx_http_engagement_live_session(ngx_http_engagement_live_sh_t *sh,
    uint64_t hash, uint32_t k, ngx_uint_t *found)
{
    ngx_uint_t                           i, j, n, used, least;
    ngx_uint_t                           b[2];
    ngx_http_engagement_live_session_t  *s, *free, *bfree;

    ngx_http_engagement_live_buckets(hash, sh->nsessions, b);

    free = NULL;
    least = NGX_HTTP_ENGAGEMENT_LIVE_BUCKET + 1;
    *found = 0;

    for (j = 0; j < 2; j++) {
        if (j == 1 && b[1] == b[0]) {
            break;
        }

        bfree = NULL;
        used = 0;

        for (n = 0; n < NGX_HTTP_ENGAGEMENT_LIVE_BUCKET; n++) {
            i = b[j] + n;
            s = &sh->sessions[i];

            if (s->hash == hash) {
                *found = 1;
                return s;
            }

            if (s->hash == 0) {
                if (bfree == NULL) {
                    bfree = s;
                }

                break;
            }

            if (ngx_http_engagement_live_lapsed(s->slot, k)) {
                if (bfree == NULL) {
                    bfree = s;
                }

            } else {
                used++;
            }
        }

        if (bfree && used < least) {
            free = bfree;
            least = used;
        }
    }

    return free;
}


static void
ngx_http_engagement_live_peak(ngx_http_engagement_live_content_t *c,
    uint32_t k, uint32_t minute, ngx_http_engagement_live_t *out)
{
    out->live = ngx_http_engagement_live_count(c, k)
                + ngx_http_engagement_live_remote(c);

    if (c->peak_minute != minute) {
        c->peak_minute = minute;
        c->peak = 0;
    }

    if (out->live > c->peak) {
        c->peak = (uint32_t) out->live;
    }

    out->peak = c->peak;
}


static ngx_inline uint64_t
ngx_http_engagement_live_hash(ngx_http_engagement_live_sh_t *sh,
    ngx_str_t *id, ngx_uint_t which)
{
    uint64_t  h;

    h = ngx_http_engagement_idhash(sh->key, id->data, id->len);

    /* sessions and contents are in tables of their own; 0 is "empty" */
    h ^= which;

    return h ? h : 1;
}


/*
 * A heartbeat of a session on a content: the session is seen now (moved
 * to the current slot, or to another content). NGX_OK with the content's
 * live count and peak; NGX_BUSY: no room in the zone.
 */

ngx_int_t
ngx_http_engagement_live_beat(ngx_http_engagement_live_conf_t *lc,
    ngx_str_t *content_id, ngx_str_t *session_id,
    ngx_http_engagement_live_t *out)
{
    uint32_t                             k, minute;
    uint64_t                             ch, sh_hash;
    ngx_int_t                            ci;
    ngx_uint_t                           found;
    ngx_http_engagement_live_sh_t       *sh;
    ngx_http_engagement_live_session_t  *s;
    ngx_http_engagement_live_content_t  *c, *old;

    sh = lc->sh;

    /* hashed outside the lock */
    ch = ngx_http_engagement_live_hash(sh, content_id, 0);
    sh_hash = ngx_http_engagement_live_hash(sh, session_id, 1);
    k = ngx_http_engagement_live_slot(sh);
    minute = ngx_http_engagement_live_minute();

    ngx_shmtx_lock(&lc->shpool->mutex);

    k = ngx_http_engagement_live_now(sh, k);

    s = ngx_http_engagement_live_session(sh, sh_hash, k, &found);

    if (s == NULL) {
        ngx_shmtx_unlock(&lc->shpool->mutex);
        return NGX_BUSY;
    }

    if (found && s->content == ch
        && ngx_http_engagement_live_content_is(&sh->contents[s->cidx], ch,
                                               content_id))
    {
        c = &sh->contents[s->cidx];

        if (s->slot != k) {
            ngx_http_engagement_live_ring_remove(c, s->slot);
            ngx_http_engagement_live_ring_add(c, k);
            s->slot = k;
            sh->seq++;
        }

        ngx_http_engagement_live_peak(c, k, minute, out);
        ngx_shmtx_unlock(&lc->shpool->mutex);

        return NGX_OK;
    }

    /* a new session, or one that moved to another content */

    ci = ngx_http_engagement_live_content(sh, ch, content_id, k, minute, 1);

    if (ci == -1) {
        ngx_shmtx_unlock(&lc->shpool->mutex);
        return NGX_BUSY;
    }

    if (found) {
        old = &sh->contents[s->cidx];

        if (old->hash == s->content) {
            ngx_http_engagement_live_ring_remove(old, s->slot);
        }
    }

    c = &sh->contents[ci];

    s->hash = sh_hash;
    s->content = ch;
    s->cidx = (uint32_t) ci;
    s->slot = k;

    ngx_http_engagement_live_ring_add(c, k);
    sh->seq++;

    ngx_http_engagement_live_peak(c, k, minute, out);

    ngx_shmtx_unlock(&lc->shpool->mutex);

    return NGX_OK;
}


/*
 * A session leaves a content (its player ended, its page closed): it is
 * live no longer, at once; the content's counts after it. A session not
 * seen, or seen on another content, changes nothing (a repeated "ended"
 * is harmless).
 */

void
ngx_http_engagement_live_leave(ngx_http_engagement_live_conf_t *lc,
    ngx_str_t *content_id, ngx_str_t *session_id,
    ngx_http_engagement_live_t *out)
{
    uint32_t                             k;
    uint64_t                             ch, sh_hash;
    ngx_uint_t                           found;
    ngx_http_engagement_live_sh_t       *sh;
    ngx_http_engagement_live_session_t  *s;
    ngx_http_engagement_live_content_t  *c;

    sh = lc->sh;
    ch = ngx_http_engagement_live_hash(sh, content_id, 0);
    sh_hash = ngx_http_engagement_live_hash(sh, session_id, 1);
    k = ngx_http_engagement_live_slot(sh);

    ngx_shmtx_lock(&lc->shpool->mutex);

    k = ngx_http_engagement_live_now(sh, k);

    s = ngx_http_engagement_live_session(sh, sh_hash, k, &found);

    if (found && s->content == ch
        && !ngx_http_engagement_live_lapsed(s->slot, k)
        && ngx_http_engagement_live_content_is(&sh->contents[s->cidx], ch,
                                               content_id))
    {
        c = &sh->contents[s->cidx];
        ngx_http_engagement_live_ring_remove(c, s->slot);

        /* lapsed: its entry is free for another session */
        s->slot = k - NGX_HTTP_ENGAGEMENT_LIVE_SLOTS;
        sh->seq++;
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);

    ngx_http_engagement_live_get(lc, content_id, out);
}


/*
 * The watch table's entry of a content read here with no entry among the
 * live ones; made if need be (when make) in place of one not read
 * lately, else of the one read longest ago among the probes.
 */

static ngx_http_engagement_live_content_t *
ngx_http_engagement_live_watch(ngx_http_engagement_live_sh_t *sh,
    uint64_t hash, ngx_str_t *id, uint32_t k, ngx_uint_t make)
{
    ngx_uint_t                           i, n;
    ngx_http_engagement_live_content_t  *c, *take, *oldest;

    take = NULL;
    oldest = NULL;

    for (n = 0; n < NGX_HTTP_ENGAGEMENT_LIVE_PROBES; n++) {
        i = (hash + n) % sh->nwatch;
        c = &sh->watch[i];

        if (ngx_http_engagement_live_content_is(c, hash, id)) {
            return c;
        }

        if (c->hash == 0) {
            if (take == NULL) {
                take = c;
            }

            break;
        }

        if (take == NULL && !ngx_http_engagement_live_wanted(c, k)) {
            take = c;
        }

        if (oldest == NULL
            || (int32_t) (oldest->wanted_slot - c->wanted_slot) > 0)
        {
            oldest = c;
        }
    }

    if (!make) {
        return NULL;
    }

    c = take ? take : oldest;

    ngx_memzero(c, sizeof(ngx_http_engagement_live_content_t));
    c->hash = hash;
    c->len = (u_char) id->len;
    ngx_memcpy(c->data, id->data, id->len);

    return c;
}


/*
 * A content's live count (this edge's and, with Redis, the others') and
 * this minute's peak (0 and 0: unknown). With Redis, the content is
 * marked read: its count is asked of Redis for two intervals.
 */

void
ngx_http_engagement_live_get(ngx_http_engagement_live_conf_t *lc,
    ngx_str_t *content_id, ngx_http_engagement_live_t *out)
{
    uint32_t                             k, minute;
    uint64_t                             ch;
    ngx_int_t                            ci;
    ngx_http_engagement_live_sh_t       *sh;
    ngx_http_engagement_live_content_t  *c;

    sh = lc->sh;
    ch = ngx_http_engagement_live_hash(sh, content_id, 0);
    k = ngx_http_engagement_live_slot(sh);
    minute = ngx_http_engagement_live_minute();

    out->live = 0;
    out->peak = 0;

    ngx_shmtx_lock(&lc->shpool->mutex);

    k = ngx_http_engagement_live_now(sh, k);

    ci = ngx_http_engagement_live_content(sh, ch, content_id, k, minute, 0);

    if (ci != -1) {
        c = &sh->contents[ci];
        out->live = ngx_http_engagement_live_count(c, k);

    } else if (lc->share) {
        c = ngx_http_engagement_live_watch(sh, ch, content_id, k, 1);

    } else {
        c = NULL;
    }

    if (c) {
        out->live += ngx_http_engagement_live_remote(c);
        out->peak = (c->peak_minute == minute)
                    ? ngx_max(c->peak, out->live) : out->live;

        if (lc->share) {
            c->flags |= NGX_HTTP_ENGAGEMENT_LIVE_WANTED;
            c->wanted_slot = k;
        }
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);
}


/* whether this worker is the one to share the counts with Redis now */

ngx_uint_t
ngx_http_engagement_live_share_due(ngx_http_engagement_live_conf_t *lc,
    ngx_msec_t period)
{
    return ngx_http_engagement_turn_due(
               &((ngx_http_engagement_live_sh_t *) lc->sh)->share_at, period);
}


/*
 * The contents to share this turn, at most max, from where the last turn
 * stopped: those with live viewers here or a count sent before (their
 * count, 0 to take it back), and those read lately (-1 for a watched
 * one: only read). The lock is let go every so many entries.
 */

#define NGX_HTTP_ENGAGEMENT_LIVE_SCAN  4096

ngx_uint_t
ngx_http_engagement_live_collect(ngx_http_engagement_live_conf_t *lc,
    ngx_http_engagement_live_item_t *items, ngx_uint_t max)
{
    uint32_t                             k;
    ngx_uint_t                           i, total, scanned, n, local, w;
    ngx_http_engagement_live_sh_t       *sh;
    ngx_http_engagement_live_item_t     *it;
    ngx_http_engagement_live_content_t  *c;

    sh = lc->sh;
    total = sh->ncontents + sh->nwatch;
    n = 0;
    scanned = 0;

    while (scanned < total && n < max) {
        k = ngx_http_engagement_live_slot(sh);

        ngx_shmtx_lock(&lc->shpool->mutex);

        k = ngx_http_engagement_live_now(sh, k);
        i = sh->share_next % total;

        for (w = 0; w < NGX_HTTP_ENGAGEMENT_LIVE_SCAN
                    && scanned < total && n < max; w++, scanned++)
        {
            if (i < sh->ncontents) {
                c = &sh->contents[i];
                local = c->hash ? ngx_http_engagement_live_count(c, k) : 0;

                if (c->hash
                    && (local || c->shared
                        || ngx_http_engagement_live_wanted(c, k)))
                {
                    it = &items[n++];
                    it->live = (ngx_int_t) local;
                    it->watch = 0;
                    it->hash = c->hash;
                    it->len = c->len;
                    ngx_memcpy(it->data, c->data, c->len);
                }

            } else {
                c = &sh->watch[i - sh->ncontents];

                if (c->hash && ngx_http_engagement_live_wanted(c, k)) {
                    it = &items[n++];
                    it->live = -1;
                    it->watch = 1;
                    it->hash = c->hash;
                    it->len = c->len;
                    ngx_memcpy(it->data, c->data, c->len);
                }
            }

            i = (i + 1) % total;
        }

        sh->share_next = i;

        ngx_shmtx_unlock(&lc->shpool->mutex);
    }

    return n;
}


/*
 * Redis's answer for a shared content: the other edges' live viewers
 * (and, for a live one, that its count was sent).
 */

void
ngx_http_engagement_live_apply(ngx_http_engagement_live_conf_t *lc,
    ngx_http_engagement_live_item_t *it, ngx_uint_t remote)
{
    uint32_t                             k, minute;
    ngx_int_t                            ci;
    ngx_str_t                            id;
    ngx_uint_t                           live;
    ngx_http_engagement_live_sh_t       *sh;
    ngx_http_engagement_live_content_t  *c;

    sh = lc->sh;
    id.data = it->data;
    id.len = it->len;
    k = ngx_http_engagement_live_slot(sh);
    minute = ngx_http_engagement_live_minute();

    if (remote > NGX_MAX_UINT32_VALUE) {
        remote = NGX_MAX_UINT32_VALUE;
    }

    ngx_shmtx_lock(&lc->shpool->mutex);

    k = ngx_http_engagement_live_now(sh, k);

    if (it->watch) {
        c = ngx_http_engagement_live_watch(sh, it->hash, &id, k, 0);

    } else {
        ci = ngx_http_engagement_live_content(sh, it->hash, &id, k, minute,
                                              0);
        c = (ci == -1) ? NULL : &sh->contents[ci];
    }

    if (c) {
        if (ngx_http_engagement_live_remote(c) != remote) {
            sh->seq++;
        }

        c->remote = (uint32_t) remote;
        c->remote_at = ngx_http_engagement_monotonic_ms();
        c->flags |= NGX_HTTP_ENGAGEMENT_LIVE_REMOTE;

        if (!it->watch) {
            c->shared = (uint32_t) it->live;
        }

        live = ngx_http_engagement_live_count(c, k) + c->remote;

        if (c->peak_minute != minute) {
            c->peak_minute = minute;
            c->peak = 0;
        }

        if (live > c->peak) {
            c->peak = (uint32_t) live;
        }
    }

    ngx_shmtx_unlock(&lc->shpool->mutex);
}


/*
 * What changes whenever a live count may have changed: a heartbeat that
 * moved a session, a new slot (sessions lapse), a new minute (peaks
 * restart). Read without the lock.
 */

uint64_t
ngx_http_engagement_live_version(ngx_http_engagement_live_conf_t *lc)
{
    ngx_http_engagement_live_sh_t  *sh;

    sh = lc->sh;

    return (uint64_t) sh->seq
           ^ ((uint64_t) ngx_http_engagement_live_slot(sh) << 32)
           ^ ((uint64_t) ngx_http_engagement_live_minute() << 48);
}


/* this worker's open streams, up or down by one */

void
ngx_http_engagement_live_subscribed(ngx_http_engagement_live_conf_t *lc,
    ngx_int_t delta)
{
    ngx_http_engagement_live_sh_t  *sh;

    sh = lc->sh;

    if (ngx_process_slot >= 0 && ngx_process_slot < NGX_MAX_PROCESSES) {
        (void) ngx_atomic_fetch_add(&sh->subscribers[ngx_process_slot],
                                    delta);
    }
}


/* a worker starts: what its slot's last holder left open is gone */

void
ngx_http_engagement_live_worker_start(ngx_cycle_t *cycle)
{
    ngx_http_engagement_live_sh_t    *sh;
    ngx_http_engagement_main_conf_t  *emcf;
    ngx_http_engagement_live_conf_t  *lc;

    emcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_engagement_module);
    if (emcf == NULL || emcf->live == NULL) {
        return;
    }

    lc = emcf->live;
    sh = lc->sh;

    if (sh && ngx_process_slot >= 0 && ngx_process_slot < NGX_MAX_PROCESSES)
    {
        if (sh->subscribers[ngx_process_slot]) {
            ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                          "live streams: %A left open in worker slot %i "
                          "by a worker that did not close them",
                          sh->subscribers[ngx_process_slot],
                          ngx_process_slot);
            sh->subscribers[ngx_process_slot] = 0;
        }
    }
}


/* the open streams of all workers */

ngx_atomic_uint_t
ngx_http_engagement_live_subscribers(ngx_http_engagement_live_conf_t *lc)
{
    ngx_int_t                       i;
    ngx_atomic_int_t                v, n;
    ngx_http_engagement_live_sh_t  *sh;

    sh = lc->sh;
    n = 0;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        v = (ngx_atomic_int_t) sh->subscribers[i];
        n += v;
    }

    return n > 0 ? (ngx_atomic_uint_t) n : 0;
}


ngx_http_engagement_live_stats_t *
ngx_http_engagement_live_stats(ngx_http_engagement_live_conf_t *lc)
{
    return &((ngx_http_engagement_live_sh_t *) lc->sh)->stats;
}
