
/*
 * The resume zone: each user's last position per content, from the
 * heartbeats that carry a userId, until Redis has it.
 *
 * One fixed open-addressing table, made whole when the zone is made
 * (bounded memory, no allocation on the request path), keyed by the
 * keyed hash of (userId, contentId), with both ids kept to tell
 * collisions apart. A heartbeat writes the position into its entry (the
 * latest wins) and marks it dirty; one worker of the edge at a time sends
 * the dirty entries to Redis (sink/redis/resume_flush.c) and an entry is
 * clean again only when Redis confirmed the very position it holds. A
 * clean entry is free for another pair; a deleted one (a user's history
 * deleted) is too, and is skipped by lookups. When no entry is free
 * within a few probes, the position is dropped and counted (the heartbeat
 * is still answered as usual): positions are a convenience, never a
 * reason to refuse a heartbeat.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_resume.h"


#define NGX_HTTP_ENGAGEMENT_RESUME_MAGIC   0x45475231   /* "EGR1" */

/* entries looked at for the pair's or a free one */
#define NGX_HTTP_ENGAGEMENT_RESUME_PROBES  16

/* entries looked at under one holding of the lock in a scan */
#define NGX_HTTP_ENGAGEMENT_RESUME_SCAN    4096

/* an entry's flags */
#define NGX_HTTP_ENGAGEMENT_RESUME_DIRTY   1   /* not confirmed by Redis */
#define NGX_HTTP_ENGAGEMENT_RESUME_GONE    2   /* deleted: free, skipped */


typedef struct {
    uint64_t                      hash;        /* the pair's; 0: never used */
    uint64_t                      uhash;       /* the user's */
    uint32_t                      flags;
    ngx_http_engagement_position_t  pos;
} ngx_http_engagement_resume_entry_t;


typedef struct {
    uint32_t                      magic;
    uint32_t                      layout;
    uint64_t                      key[2];
    ngx_uint_t                    nentries;
    ngx_http_engagement_resume_entry_t  *entries;
    ngx_uint_t                    next;        /* where the next turn
                                                  starts */
    ngx_atomic_t                  flush_at;    /* the next turn's time */
    ngx_http_engagement_resume_stats_t   stats;
} ngx_http_engagement_resume_sh_t;


static const size_t  ngx_http_engagement_resume_shape[] = {
    sizeof(ngx_http_engagement_resume_sh_t),
    offsetof(ngx_http_engagement_resume_sh_t, entries),
    offsetof(ngx_http_engagement_resume_sh_t, stats),
    sizeof(ngx_http_engagement_resume_entry_t),
    sizeof(ngx_http_engagement_position_t),
    sizeof(ngx_http_engagement_resume_stats_t)
};


static ngx_http_engagement_resume_conf_t *
ngx_http_engagement_resume_conf_get(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t    *emcf;
    ngx_http_engagement_resume_conf_t  *rc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->resume) {
        return emcf->resume;
    }

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_resume_conf_t));
    if (rc == NULL) {
        return NULL;
    }

    rc->size = NGX_CONF_UNSET;
    emcf->resume = rc;

    return rc;
}


/* engagement_resume_zone size; */

char *
ngx_http_engagement_resume_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_resume_conf_t  *rc;

    rc = ngx_http_engagement_resume_conf_get(cf);
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_engagement_zone_size(cf, cmd, &rc->size);
}


/*
 * A location that keeps positions (a heartbeat with Redis) or reads them
 * (resume, history): the resume zone, declared once. The caller has
 * checked that there is a Redis.
 */

ngx_http_engagement_resume_conf_t *
ngx_http_engagement_resume_use(ngx_conf_t *cf)
{
    ngx_str_t                           name;
    ngx_http_engagement_resume_conf_t  *rc;

    rc = ngx_http_engagement_resume_conf_get(cf);
    if (rc == NULL) {
        return NULL;
    }

    if (rc->shm_zone) {
        return rc;
    }

    if (rc->size == NGX_CONF_UNSET) {
        rc->size = NGX_HTTP_ENGAGEMENT_RESUME_ZSIZE;
    }

    ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_RESUME_ZONE);

    rc->shm_zone = ngx_http_engagement_zone_shm(cf, &name, rc->size,
                                        ngx_http_engagement_resume_init_zone,
                                        rc);
    if (rc->shm_zone == NULL) {
        return NULL;
    }

    return rc;
}


/* after the http block: a zone size with nothing to use it is said */

ngx_int_t
ngx_http_engagement_resume_postconf(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t    *emcf;
    ngx_http_engagement_resume_conf_t  *rc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    rc = emcf->resume;

    if (rc && rc->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "engagement_resume_zone is ignored: positions "
                           "are kept only with \"engagement_redis\" and a "
                           "location with \"engagement heartbeat\", "
                           "\"engagement resume\" or \"engagement history\"");
    }

    return NGX_OK;
}


/* the table, cut from what the slab pool has free; NGX_ERROR: no room */

static ngx_int_t
ngx_http_engagement_resume_table(ngx_http_engagement_resume_sh_t *sh,
    ngx_slab_pool_t *shpool, size_t size)
{
    sh->entries = ngx_http_engagement_zone_table(shpool, size,
                                                 sizeof(ngx_http_engagement_resume_entry_t), 1,
                                                 &sh->nentries);

    return sh->entries ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_engagement_resume_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint32_t                            layout;
    ngx_slab_pool_t                    *shpool;
    ngx_http_engagement_resume_sh_t    *sh;
    ngx_http_engagement_resume_conf_t  *rc;

    rc = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    rc->shpool = shpool;

    layout = ngx_http_engagement_layout_of(ngx_http_engagement_resume_shape);

    if (data || shm_zone->shm.exists) {
        /* read from the zone itself, never through the old cycle's data */
        sh = shpool->data;

        if (sh == NULL
            || sh->magic != NGX_HTTP_ENGAGEMENT_RESUME_MAGIC
            || sh->layout != layout)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "resume zone \"%V\" was written by another kind "
                          "of zone or an incompatible module version: stop "
                          "and start nginx to recreate it",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        rc->sh = sh;

        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_resume_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_engagement_resume_table(sh, shpool, shm_zone->shm.size)
        != NGX_OK)
    {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "resume zone \"%V\" is too small",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "resume zone \"%V\": room for %ui positions",
                  &shm_zone->shm.name, sh->nentries);

    sh->magic = NGX_HTTP_ENGAGEMENT_RESUME_MAGIC;
    sh->layout = layout;
    ngx_http_engagement_random_key(sh->key);

    shpool->data = sh;
    rc->sh = sh;

    ngx_http_engagement_zone_log_ctx(shpool, "resume", &shm_zone->shm.name);

    return NGX_OK;
}


/* the user's hash, and the pair's from it: outside the lock */

static ngx_inline uint64_t
ngx_http_engagement_resume_uhash(ngx_http_engagement_resume_sh_t *sh,
    ngx_str_t *user)
{
    return ngx_http_engagement_idhash(sh->key, user->data, user->len);
}


static ngx_inline uint64_t
ngx_http_engagement_resume_phash(ngx_http_engagement_resume_sh_t *sh,
    uint64_t uh, ngx_str_t *content)
{
    uint64_t  h;

    h = ngx_http_engagement_idhash(sh->key, content->data, content->len)
        ^ (uh * 0x9e3779b97f4a7c15ULL);

    /* 0 is "never used" */
    return h ? h : 1;
}


static ngx_inline ngx_uint_t
ngx_http_engagement_resume_user_is(ngx_http_engagement_resume_entry_t *e,
    uint64_t uh, ngx_str_t *user)
{
    return e->uhash == uh && e->pos.ulen == user->len
           && ngx_memcmp(e->pos.user, user->data, user->len) == 0;
}


static ngx_inline ngx_uint_t
ngx_http_engagement_resume_is(ngx_http_engagement_resume_entry_t *e,
    uint64_t h, uint64_t uh, ngx_str_t *user, const u_char *content,
    size_t clen)
{
    return e->hash == h && !(e->flags & NGX_HTTP_ENGAGEMENT_RESUME_GONE)
           && e->pos.clen == clen
           && ngx_memcmp(e->pos.content, content, clen) == 0
           && ngx_http_engagement_resume_user_is(e, uh, user);
}


/*
 * Under the lock: the pair's entry (*found 1), or a free one to take, or
 * NULL: none within the probes.
 */

static ngx_http_engagement_resume_entry_t *
ngx_http_engagement_resume_find(ngx_http_engagement_resume_sh_t *sh,
    uint64_t h, uint64_t uh, ngx_str_t *user, const u_char *content,
    size_t clen, ngx_uint_t *found)
{
    ngx_uint_t                           i, n;
    ngx_http_engagement_resume_entry_t  *e, *free;

    free = NULL;
    *found = 0;

    for (n = 0; n < NGX_HTTP_ENGAGEMENT_RESUME_PROBES; n++) {
        i = (h + n) % sh->nentries;
        e = &sh->entries[i];

        if (e->hash == 0) {
            /* never used: the pair is not further on */
            return free ? free : e;
        }

        if (ngx_http_engagement_resume_is(e, h, uh, user, content, clen)) {
            *found = 1;
            return e;
        }

        if (free == NULL && !(e->flags & NGX_HTTP_ENGAGEMENT_RESUME_DIRTY)) {
            free = e;
        }
    }

    return free;
}


/*
 * A heartbeat's position for (user, content) at now (unix ms): NGX_OK,
 * or NGX_BUSY: no room, the position is dropped (counted).
 */

ngx_int_t
ngx_http_engagement_resume_put(ngx_http_engagement_resume_conf_t *rc,
    ngx_str_t *user, ngx_str_t *content, int64_t position, int64_t duration,
    int64_t now)
{
    uint64_t                             h, uh;
    ngx_uint_t                           found;
    ngx_http_engagement_resume_sh_t     *sh;
    ngx_http_engagement_resume_entry_t  *e;

    sh = rc->sh;
    uh = ngx_http_engagement_resume_uhash(sh, user);
    h = ngx_http_engagement_resume_phash(sh, uh, content);

    ngx_shmtx_lock(&rc->shpool->mutex);

    e = ngx_http_engagement_resume_find(sh, h, uh, user, content->data,
                                        content->len, &found);
    if (e == NULL) {
        ngx_shmtx_unlock(&rc->shpool->mutex);
        ngx_http_engagement_resume_inc(rc, dropped);
        return NGX_BUSY;
    }

    if (!found) {
        e->hash = h;
        e->uhash = uh;
        e->flags = 0;
        e->pos.duration = -1;
        e->pos.updated = 0;
        e->pos.ulen = (u_char) user->len;
        ngx_memcpy(e->pos.user, user->data, user->len);
        e->pos.clen = (u_char) content->len;
        ngx_memcpy(e->pos.content, content->data, content->len);
    }

    /* the latest to take the lock wins; its stamp never goes back (a
     * worker's clock read a little earlier than another's) */
    e->pos.position = position;
    e->pos.updated = ngx_max(now, e->pos.updated);

    /* a heartbeat without the duration keeps the one known */
    if (duration >= 0) {
        e->pos.duration = duration;
    }

    if (!(e->flags & NGX_HTTP_ENGAGEMENT_RESUME_DIRTY)) {
        e->flags |= NGX_HTTP_ENGAGEMENT_RESUME_DIRTY;
        (void) ngx_atomic_fetch_add(&sh->stats.pending, 1);
    }

    ngx_shmtx_unlock(&rc->shpool->mutex);

    ngx_http_engagement_resume_inc(rc, buffered);

    return NGX_OK;
}


/*
 * The pair's position still pending here (not confirmed by Redis);
 * NGX_DECLINED: none. A confirmed one is Redis's to answer: Redis may
 * have dropped it since (a DELETE on another edge, the TTL).
 */

ngx_int_t
ngx_http_engagement_resume_get(ngx_http_engagement_resume_conf_t *rc,
    ngx_str_t *user, ngx_str_t *content, ngx_http_engagement_position_t *out)
{
    uint64_t                             h, uh;
    ngx_int_t                            rv;
    ngx_uint_t                           found;
    ngx_http_engagement_resume_sh_t     *sh;
    ngx_http_engagement_resume_entry_t  *e;

    sh = rc->sh;
    uh = ngx_http_engagement_resume_uhash(sh, user);
    h = ngx_http_engagement_resume_phash(sh, uh, content);

    rv = NGX_DECLINED;

    ngx_shmtx_lock(&rc->shpool->mutex);

    e = ngx_http_engagement_resume_find(sh, h, uh, user, content->data,
                                        content->len, &found);
    if (e && found && (e->flags & NGX_HTTP_ENGAGEMENT_RESUME_DIRTY)) {
        *out = e->pos;
        rv = NGX_OK;
    }

    ngx_shmtx_unlock(&rc->shpool->mutex);

    return rv;
}


/*
 * A user's history deleted: every position of the user kept here is
 * forgotten (pending ones are never sent). The whole table is looked at,
 * the lock let go every so many entries. Returns the pending ones
 * forgotten.
 */

ngx_uint_t
ngx_http_engagement_resume_forget(ngx_http_engagement_resume_conf_t *rc,
    ngx_str_t *user)
{
    uint64_t                             uh;
    ngx_uint_t                           i, w, n;
    ngx_http_engagement_resume_sh_t     *sh;
    ngx_http_engagement_resume_entry_t  *e;

    sh = rc->sh;
    uh = ngx_http_engagement_resume_uhash(sh, user);

    n = 0;
    i = 0;

    while (i < sh->nentries) {
        ngx_shmtx_lock(&rc->shpool->mutex);

        for (w = 0; w < NGX_HTTP_ENGAGEMENT_RESUME_SCAN && i < sh->nentries;
             w++, i++)
        {
            e = &sh->entries[i];

            if (e->hash == 0 || (e->flags & NGX_HTTP_ENGAGEMENT_RESUME_GONE)
                || !ngx_http_engagement_resume_user_is(e, uh, user))
            {
                continue;
            }

            if (e->flags & NGX_HTTP_ENGAGEMENT_RESUME_DIRTY) {
                (void) ngx_atomic_fetch_add(&sh->stats.pending, -1);
                n++;
            }

            /* the hash stays: lookups of other pairs probe past it */
            e->flags = NGX_HTTP_ENGAGEMENT_RESUME_GONE;
        }

        ngx_shmtx_unlock(&rc->shpool->mutex);
    }

    return n;
}


/* whether this worker is the one to send the positions now */

ngx_uint_t
ngx_http_engagement_resume_due(ngx_http_engagement_resume_conf_t *rc,
    ngx_msec_t period)
{
    return ngx_http_engagement_turn_due(
               &((ngx_http_engagement_resume_sh_t *) rc->sh)->flush_at,
               period);
}


/*
 * The pending positions to send this turn, at most max, from where the
 * last turn stopped; the lock is let go every so many entries.
 */

ngx_uint_t
ngx_http_engagement_resume_collect(ngx_http_engagement_resume_conf_t *rc,
    ngx_http_engagement_position_t *items, ngx_uint_t max)
{
    ngx_uint_t                           i, w, n, scanned, total;
    ngx_http_engagement_resume_sh_t     *sh;
    ngx_http_engagement_resume_entry_t  *e;

    sh = rc->sh;
    total = sh->nentries;
    n = 0;
    scanned = 0;

    while (scanned < total && n < max) {
        ngx_shmtx_lock(&rc->shpool->mutex);

        i = sh->next % total;

        for (w = 0; w < NGX_HTTP_ENGAGEMENT_RESUME_SCAN
                    && scanned < total && n < max; w++, scanned++)
        {
            e = &sh->entries[i];

            if (e->flags & NGX_HTTP_ENGAGEMENT_RESUME_DIRTY) {
                items[n++] = e->pos;
            }

            i = (i + 1) % total;
        }

        sh->next = i;

        ngx_shmtx_unlock(&rc->shpool->mutex);
    }

    return n;
}


/*
 * Redis confirmed a position sent (applied, or older than what it had):
 * the entry is clean if it still holds that very position; a later one
 * stays pending for the next turn.
 */

void
ngx_http_engagement_resume_done(ngx_http_engagement_resume_conf_t *rc,
    ngx_http_engagement_position_t *it)
{
    uint64_t                             h, uh;
    ngx_str_t                            user, content;
    ngx_uint_t                           found;
    ngx_http_engagement_resume_sh_t     *sh;
    ngx_http_engagement_resume_entry_t  *e;

    sh = rc->sh;
    user.data = it->user;
    user.len = it->ulen;
    content.data = it->content;
    content.len = it->clen;

    uh = ngx_http_engagement_resume_uhash(sh, &user);
    h = ngx_http_engagement_resume_phash(sh, uh, &content);

    ngx_shmtx_lock(&rc->shpool->mutex);

    e = ngx_http_engagement_resume_find(sh, h, uh, &user, content.data,
                                        content.len, &found);

    if (e && found && (e->flags & NGX_HTTP_ENGAGEMENT_RESUME_DIRTY)
        && e->pos.updated == it->updated
        && e->pos.position == it->position
        && e->pos.duration == it->duration)
    {
        e->flags &= ~NGX_HTTP_ENGAGEMENT_RESUME_DIRTY;
        (void) ngx_atomic_fetch_add(&sh->stats.pending, -1);
    }

    ngx_shmtx_unlock(&rc->shpool->mutex);
}


ngx_http_engagement_resume_stats_t *
ngx_http_engagement_resume_stats(ngx_http_engagement_resume_conf_t *rc)
{
    return &((ngx_http_engagement_resume_sh_t *) rc->sh)->stats;
}
