
/*
 * Cross-edge dedupe: engagement_dedupe_scope global. An edge deduplicates
 * as ever in its own dedupe zone; a view that zone lets count is not
 * counted yet but queued here, in the global zone, with its dedupe keys
 * (hashed with salts every edge derives from the shared secret). A round
 * of queued views goes to Redis (sink/redis/global_flush.c), whose script
 * marks each (content, identity) for the dedupe window and answers, per
 * view, the marks that were fresh across all edges; what was fresh is
 * then counted as the request path counts it (the counters zone, the
 * series, trending, the durable writer's line it reserved), the rest is
 * filed as a duplicate. Redis keeps each round's answers a day, by view
 * id, so a round sent again (no answer; its worker killed) is answered
 * the same, and a view is counted once.
 *
 * An entry belongs to its round's worker (seq, pid) from take to resolve:
 * the zone lock covers list moves and state changes only. A round of a
 * worker that died is taken over and sent again as it was.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_series.h"
#include "store/ngx_http_engagement_trend.h"
#include "policy/ngx_http_engagement_policy.h"
#include "policy/ngx_http_engagement_global.h"
#include "sink/writer/ngx_http_engagement_writer.h"


#define NGX_HTTP_ENGAGEMENT_GLOBAL_MAGIC   0x45474731   /* "EGG1" */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_SIZE    (4 * 1024 * 1024)
#define NGX_HTTP_ENGAGEMENT_GLOBAL_MIN     (64 * 1024)
#define NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH   256
#define NGX_HTTP_ENGAGEMENT_GLOBAL_EVERY   100
/* the secret file's bytes: at least, at most */
#define NGX_HTTP_ENGAGEMENT_SECRET_MIN     16
#define NGX_HTTP_ENGAGEMENT_SECRET_MAX     4096


static ngx_int_t ngx_http_engagement_global_init_zone(
    ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_engagement_global_secret(ngx_conf_t *cf,
    ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_main_conf_t *emcf);
static void ngx_http_engagement_global_finish(
    ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_entry_t *e);


static ngx_str_t  ngx_http_engagement_global_name =
    ngx_string("engagement_global");

static const size_t  ngx_http_engagement_global_shape[] = {
    sizeof(ngx_http_engagement_global_sh_t),
    sizeof(ngx_http_engagement_global_entry_t),
    offsetof(ngx_http_engagement_global_entry_t, data),
    offsetof(ngx_http_engagement_global_entry_t, state)
};


/* the running cycle's configuration of it: set by the directive's zone */
static ngx_http_engagement_global_conf_t  *ngx_http_engagement_global_cur;

/*
 * When this worker last looked through the whole queue for rounds to send
 * again (its own failed one, a dead worker's) and views decided but not
 * counted; and whether its last round failed. The look is made when a
 * round failed, and else at most every NGX_HTTP_ENGAGEMENT_GLOBAL_RESCAN
 * ms: a look per round costed a pass over every waiting view each time.
 */
#define NGX_HTTP_ENGAGEMENT_GLOBAL_RESCAN  500

static ngx_msec_t                           ngx_http_engagement_global_looked;
static ngx_uint_t                           ngx_http_engagement_global_stale;


/*
 * engagement_dedupe_scope edge | global secret=<file> [size=4m]
 * [batch=256] [interval=100ms]
 */

char *
ngx_http_engagement_global_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ssize_t                             size;
    ngx_int_t                           n;
    ngx_str_t                          *value, s;
    ngx_uint_t                          i;
    ngx_msec_t                          ms;
    ngx_http_engagement_global_conf_t  *gc;

    value = cf->args->elts;

    if (emcf->global || emcf->salt_shared) {
        return "is duplicate";
    }

    if (ngx_strcmp(value[1].data, "edge") == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"engagement_dedupe_scope edge\" takes no "
                               "parameters");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "global") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_dedupe_scope\" is \"edge\" or "
                           "\"global\", not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    gc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_global_conf_t));
    if (gc == NULL) {
        return NGX_CONF_ERROR;
    }

    gc->size = NGX_HTTP_ENGAGEMENT_GLOBAL_SIZE;
    gc->batch = NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH;
    gc->interval = NGX_HTTP_ENGAGEMENT_GLOBAL_EVERY;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "secret=", 7) == 0) {
            gc->secret_file.data = value[i].data + 7;
            gc->secret_file.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;
            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size < NGX_HTTP_ENGAGEMENT_GLOBAL_MIN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"engagement_dedupe_scope\": invalid "
                                   "\"%V\": at least 64k", &value[i]);
                return NGX_CONF_ERROR;
            }

            gc->size = (size_t) size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "batch=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n < 1 || n > NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"engagement_dedupe_scope\": invalid "
                                   "\"%V\": 1 to %d",
                                   &value[i],
                                   NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH_MAX);
                return NGX_CONF_ERROR;
            }

            gc->batch = (ngx_uint_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;
            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms < 10 || ms > 10000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"engagement_dedupe_scope\": invalid "
                                   "\"%V\": 10ms to 10s", &value[i]);
                return NGX_CONF_ERROR;
            }

            gc->interval = ms;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_dedupe_scope\": unknown parameter "
                           "\"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (gc->secret_file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_dedupe_scope global\" needs "
                           "secret=<file>: the same file of random bytes on "
                           "every edge, that identities are hashed with");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_global_secret(cf, gc, emcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    gc->shm_zone = ngx_shared_memory_add(cf,
                                         &ngx_http_engagement_global_name,
                                         gc->size,
                                         &ngx_http_engagement_module);
    if (gc->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (gc->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is the module's own",
                           &ngx_http_engagement_global_name);
        return NGX_CONF_ERROR;
    }

    gc->shm_zone->init = ngx_http_engagement_global_init_zone;
    gc->shm_zone->data = gc;

    emcf->global = gc;

    return NGX_CONF_OK;
}


/*
 * The salts' key from the secret file: every edge with the same file
 * hashes an identity the same way. Read at nginx -t and at each reload.
 */

static ngx_int_t
ngx_http_engagement_global_secret(ngx_conf_t *cf,
    ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_main_conf_t *emcf)
{
    ssize_t         n;
    ngx_fd_t        fd;
    ngx_str_t       name;
    u_char          buf[NGX_HTTP_ENGAGEMENT_SECRET_MAX + 1];

    /* fixed keys: the secret is what varies */
    static const uint64_t  k0[2] = { 0x656e676167656d65ULL,
                                     0x6e742d676c6f6231ULL };
    static const uint64_t  k1[2] = { 0x7365637265742d6bULL,
                                     0x65792d73616c7432ULL };

    name = gc->secret_file;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"engagement_dedupe_scope\": the secret file "
                           "\"%V\" cannot be opened", &name);
        return NGX_ERROR;
    }

    n = read(fd, buf, sizeof(buf));

    (void) ngx_close_file(fd);

    if (n < NGX_HTTP_ENGAGEMENT_SECRET_MIN
        || n > NGX_HTTP_ENGAGEMENT_SECRET_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_dedupe_scope\": the secret file "
                           "\"%V\" must hold %d to %d bytes (e.g. made with "
                           "\"head -c 32 /dev/urandom\"), it has %z",
                           &name, NGX_HTTP_ENGAGEMENT_SECRET_MIN,
                           NGX_HTTP_ENGAGEMENT_SECRET_MAX, n);
        return NGX_ERROR;
    }

    emcf->salt_key[0] = ngx_http_engagement_siphash(k0, buf, (size_t) n);
    emcf->salt_key[1] = ngx_http_engagement_siphash(k1, buf, (size_t) n);
    emcf->salt_shared = 1;

    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}


/* after the http block: global dedupe needs Redis to decide */

ngx_int_t
ngx_http_engagement_global_postconf(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->global && emcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_dedupe_scope global\" needs "
                           "\"engagement_redis\": the edges decide "
                           "duplicates there");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_http_engagement_global_conf_t *
ngx_http_engagement_global_conf(void)
{
    return ngx_http_engagement_global_cur;
}


/*
 * A reload keeps the zone (same size) and what waits in it: entries hold
 * nothing of a cycle but the counters zone's and the writer zone's
 * addresses, checked against the running cycle's when they are counted.
 */

static ngx_int_t
ngx_http_engagement_global_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_engagement_global_conf_t  *gc = shm_zone->data;

    uint32_t                          layout;
    ngx_slab_pool_t                  *shpool;
    ngx_http_engagement_global_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    gc->shpool = shpool;
    ngx_http_engagement_global_cur = gc;

    layout = ngx_http_engagement_layout(ngx_http_engagement_global_shape,
                 sizeof(ngx_http_engagement_global_shape) / sizeof(size_t));

    if (data || shm_zone->shm.exists) {
        sh = shpool->data;

        if (sh && sh->magic == NGX_HTTP_ENGAGEMENT_GLOBAL_MAGIC
            && sh->layout == layout)
        {
            gc->sh = sh;
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "zone \"%V\" was made by another version of the "
                      "module: restart nginx to make it anew",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_global_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_ENGAGEMENT_GLOBAL_MAGIC;
    sh->layout = layout;
    sh->birth = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_random()
                ^ ((uint64_t) ngx_time() << 16) ^ (uint64_t) ngx_pid;
    sh->next_id = 1;
    sh->next_seq = 1;
    ngx_queue_init(&sh->queue);

    shpool->data = sh;
    gc->sh = sh;

    return NGX_OK;
}


/*
 * A view this edge would count waits for Redis; called with the dedupe
 * zone locked (the one nested lock of it: dedupe, then global), so that
 * the view is queued and its marks committed together.
 */

ngx_int_t
ngx_http_engagement_global_enqueue(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_in_t *in)
{
    u_char                              *p;
    size_t                               len;
    ngx_uint_t                           i;
    ngx_http_engagement_global_sh_t     *sh;
    ngx_http_engagement_global_entry_t  *e;

    sh = gc->sh;
    len = 0;

    for (i = 0; i < 6; i++) {
        len += in->strs[i]->len;
    }

    ngx_shmtx_lock(&gc->shpool->mutex);

    e = ngx_slab_alloc_locked(gc->shpool,
                    offsetof(ngx_http_engagement_global_entry_t, data) + len);

    if (e == NULL) {
        ngx_shmtx_unlock(&gc->shpool->mutex);
        (void) ngx_atomic_fetch_add(&sh->stats.full, 1);
        return NGX_BUSY;
    }

    e->id = sh->next_id++;
    e->seq = 0;
    e->keys[0] = in->keys[0];
    e->keys[1] = in->nkeys > 1 ? in->keys[1] : 0;
    e->nkeys = (u_char) in->nkeys;
    e->uv = in->uv;
    e->wev = in->wev;
    e->wbirth = in->wev ? ngx_http_engagement_writer_birth() : 0;
    e->zone_sh = in->zone_sh;
    e->pid = 0;
    e->window = (uint32_t) ngx_max((in->window + 999) / 1000, 1);
    e->slot = 0;
    e->kinds = (u_char) in->kinds;
    e->fresh = 0;
    e->state = NGX_HTTP_ENGAGEMENT_GLOBAL_QUEUED;

    p = e->data;

    for (i = 0; i < 6; i++) {
        e->len[i] = (u_short) in->strs[i]->len;

        if (in->strs[i]->len) {
            p = ngx_cpymem(p, in->strs[i]->data, in->strs[i]->len);
        }
    }

    ngx_queue_insert_tail(&sh->queue, &e->link);

    ngx_shmtx_unlock(&gc->shpool->mutex);

    (void) ngx_atomic_fetch_add(&sh->stats.queued, 1);
    (void) ngx_atomic_fetch_add(&sh->stats.claims, 1);

    return NGX_OK;
}


/* whether the worker pid is gone (its round is to be taken over) */

static ngx_uint_t
ngx_http_engagement_global_dead(ngx_pid_t pid, ngx_pid_t *alive,
    ngx_pid_t *dead)
{
    if (pid == *alive) {
        return 0;
    }

    if (pid == *dead) {
        return 1;
    }

    if (kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
        *dead = pid;
        return 1;
    }

    *alive = pid;
    return 0;
}


/*
 * A round for this worker, under the zone lock: first a round of its own
 * or of a dead worker that was sent without an answer (all of its entries,
 * the same seq: Redis answers it as before); else views decided but not
 * yet counted (no room in the counters zone then), counted here; else the
 * oldest queued views, of one group (one slot) in cluster mode. Returns
 * the entries to send (0: none).
 */

ngx_uint_t
ngx_http_engagement_global_take(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_round_t *round,
    ngx_http_engagement_global_slot_pt slot_of)
{
    uint64_t                             seq;
    ngx_pid_t                            alive, dead;
    ngx_uint_t                           n, nlocal, slot, scanned, look;
    ngx_queue_t                         *q;
    ngx_http_engagement_global_sh_t     *sh;
    ngx_http_engagement_global_entry_t  *e, *local[64];

    sh = gc->sh;

    if (ngx_queue_empty(&sh->queue)) {
        return 0;
    }

    alive = ngx_pid;
    dead = 0;
    seq = 0;
    n = 0;
    nlocal = 0;

    look = ngx_http_engagement_global_stale
           || ngx_http_engagement_global_looked == 0
           || ngx_current_msec - ngx_http_engagement_global_looked
              >= NGX_HTTP_ENGAGEMENT_GLOBAL_RESCAN;

    if (look) {
        ngx_http_engagement_global_looked = ngx_current_msec;
        ngx_http_engagement_global_stale = 0;
    }

    ngx_shmtx_lock(&gc->shpool->mutex);

    /* a round sent before: this worker's, or a dead one's */
    for (q = look ? ngx_queue_head(&sh->queue) : ngx_queue_sentinel(&sh->queue);
         q != ngx_queue_sentinel(&sh->queue);
         q = ngx_queue_next(q))
    {
        e = ngx_queue_data(q, ngx_http_engagement_global_entry_t, link);

        if (e->state == NGX_HTTP_ENGAGEMENT_GLOBAL_QUEUED) {
            continue;
        }

        if (e->pid != ngx_pid
            && !ngx_http_engagement_global_dead(e->pid, &alive, &dead))
        {
            continue;
        }

        if (e->state == NGX_HTTP_ENGAGEMENT_GLOBAL_SENT) {
            if (seq == 0) {
                seq = e->seq;
            }

            if (e->seq == seq && n < NGX_HTTP_ENGAGEMENT_GLOBAL_BATCH_MAX) {
                e->pid = ngx_pid;
                round->e[n++] = e;
            }

            continue;
        }

        /* decided, or counted with the rest left undone */
        if (nlocal < sizeof(local) / sizeof(local[0])) {
            e->pid = ngx_pid;
            local[nlocal++] = e;
        }
    }

    if (n) {
        ngx_shmtx_unlock(&gc->shpool->mutex);

        round->seq = seq;
        round->birth = sh->birth;
        round->slot = round->e[0]->slot ? round->e[0]->slot - 1 : 0;
        round->resend = 1;
        round->n = n;

        (void) ngx_atomic_fetch_add(&sh->stats.resent, 1);

        goto local;
    }

    /* new views: the oldest, of the first one's group */
    seq = sh->next_seq++;
    slot = 0;
    scanned = 0;

    for (q = ngx_queue_head(&sh->queue);
         q != ngx_queue_sentinel(&sh->queue) && n < gc->batch
         && scanned < 8 * gc->batch;
         q = ngx_queue_next(q))
    {
        e = ngx_queue_data(q, ngx_http_engagement_global_entry_t, link);

        if (e->state != NGX_HTTP_ENGAGEMENT_GLOBAL_QUEUED) {
            continue;
        }

        scanned++;

        if (slot_of) {
            /* the group, worked out once: kept + 1 (0: not yet) */
            if (e->slot == 0) {
                e->slot = (uint32_t) slot_of(e->data, e->len[0]) + 1;
            }

            if (n == 0) {
                slot = e->slot;

            } else if (e->slot != slot) {
                continue;
            }
        }

        e->state = NGX_HTTP_ENGAGEMENT_GLOBAL_SENT;
        e->seq = seq;
        e->pid = ngx_pid;
        round->e[n++] = e;
    }

    ngx_shmtx_unlock(&gc->shpool->mutex);

    round->seq = seq;
    round->birth = sh->birth;
    round->slot = slot ? slot - 1 : 0;
    round->resend = 0;
    round->n = n;

local:

    /* decided before: counted now, without Redis */
    while (nlocal) {
        ngx_http_engagement_global_finish(gc, local[--nlocal]);
    }

    return n;
}


/* the counters zone of the running cycle an entry counts in; NULL: gone */

static ngx_http_engagement_zone_t *
ngx_http_engagement_global_zone(void *zone_sh)
{
    ngx_uint_t                        i;
    ngx_http_engagement_zone_t      **zp;
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_engagement_module);
    if (emcf == NULL) {
        return NULL;
    }

    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (!zp[i]->dedupe && zp[i]->sh == zone_sh) {
            return zp[i];
        }
    }

    return NULL;
}


/* the entry leaves the zone */

static void
ngx_http_engagement_global_free(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_entry_t *e)
{
    ngx_shmtx_lock(&gc->shpool->mutex);
    ngx_queue_remove(&e->link);
    ngx_slab_free_locked(gc->shpool, e);
    ngx_shmtx_unlock(&gc->shpool->mutex);

    (void) ngx_atomic_fetch_add(&gc->sh->stats.queued, -1);
}


/* the writer's line of the view, with what it counted; NULL reason: counted */

static void
ngx_http_engagement_global_line(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_entry_t *e, ngx_uint_t metrics,
    const char *reason)
{
    if (e->wev == NULL) {
        return;
    }

    if (e->wbirth != ngx_http_engagement_writer_birth()) {
        /* the writer zone was made anew (a reload resized it) */
        (void) ngx_atomic_fetch_add(&gc->sh->stats.lost_lines, 1);
        e->wev = NULL;
        return;
    }

    ngx_http_engagement_writer_restamp(e->wev, ngx_time());
    ngx_http_engagement_writer_commit(e->wev, metrics, reason);
    e->wev = NULL;
}


/*
 * A view Redis let count: in the counters zone first (its state changes
 * under that lock), then in the series, trending and the writer's line,
 * then it leaves the zone. No room in the counters zone: it stays decided
 * and the next take tries again.
 */

static void
ngx_http_engagement_global_finish(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_entry_t *e)
{
    u_char                               *p;
    uint64_t                              hash;
    ngx_int_t                             rc;
    ngx_uint_t                            metrics;
    ngx_http_engagement_zone_t           *z;
    ngx_http_engagement_view_t            shown;
    ngx_http_engagement_event_t           ev;
    ngx_http_engagement_counts_t          delta;
    ngx_http_engagement_counters_shctx_t *csh;

    if (e->fresh == 0) {
        ngx_http_engagement_global_line(gc, e, 0, "duplicate");
        (void) ngx_atomic_fetch_add(&gc->sh->stats.duplicates, 1);
        ngx_http_engagement_global_free(gc, e);
        return;
    }

    ngx_memzero(&ev, sizeof(ngx_http_engagement_event_t));

    p = e->data;
    ev.content_id.data = p;
    ev.content_id.len = e->len[0];
    p += e->len[0];
    ev.channel_id.data = p;
    ev.channel_id.len = e->len[1];
    p += e->len[1];
    ev.category.data = p;
    ev.category.len = e->len[2];
    p += e->len[2];
    ev.source.data = p;
    ev.source.len = e->len[3];
    p += e->len[3];
    ev.device.data = p;
    ev.device.len = e->len[4];
    p += e->len[4];
    ev.country.data = p;
    ev.country.len = e->len[5];

    delta.views = (e->fresh & NGX_HTTP_ENGAGEMENT_MARK_VIEW) != 0;
    delta.engaged = (e->fresh & NGX_HTTP_ENGAGEMENT_MARK_ENGAGED) != 0;
    delta.replays = (e->fresh & NGX_HTTP_ENGAGEMENT_MARK_REPLAY) != 0;

    if (e->state != NGX_HTTP_ENGAGEMENT_GLOBAL_COUNTED) {
        z = ngx_http_engagement_global_zone(e->zone_sh);

        if (z == NULL) {
            /* a reload removed its zone: counted nowhere, said */
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement_dedupe_scope: the counters zone of "
                          "a view of \"%V\" is gone: not counted",
                          &ev.content_id);
            ngx_http_engagement_global_line(gc, e, 0, "zone_gone");
            ngx_http_engagement_global_free(gc, e);
            return;
        }

        hash = ngx_http_engagement_counters_hash(z, &ev.content_id);

        ngx_shmtx_lock(&z->shpool->mutex);

        rc = ngx_http_engagement_counters_add_locked(z, &ev.content_id, hash,
                                             &delta, delta.views ? e->uv : 0,
                                             &shown);
        if (rc == NGX_OK) {
            e->state = NGX_HTTP_ENGAGEMENT_GLOBAL_COUNTED;

        } else {
            e->state = NGX_HTTP_ENGAGEMENT_GLOBAL_DECIDED;
        }

        ngx_shmtx_unlock(&z->shpool->mutex);

        if (rc != NGX_OK) {
            ngx_http_engagement_zone_log_full(z, ngx_cycle->log);
            return;
        }

        csh = z->sh;

        if (delta.views) {
            ngx_http_engagement_inc(csh, counted_views);
        }

        if (delta.engaged) {
            ngx_http_engagement_inc(csh, counted_engaged);
        }

        if (delta.replays) {
            ngx_http_engagement_inc(csh, counted_replays);
        }
    }

    (void) ngx_http_engagement_series_view(&ev, delta.views, delta.engaged,
                                           delta.replays, ngx_cycle->log);

    if (delta.views) {
        ngx_http_engagement_trend_view(&ev.content_id, &ev.category);
    }

    metrics = (delta.views ? NGX_HTTP_ENGAGEMENT_RECORD_VIEWS : 0)
              | (delta.engaged ? NGX_HTTP_ENGAGEMENT_RECORD_ENGAGED : 0)
              | (delta.replays ? NGX_HTTP_ENGAGEMENT_RECORD_REPLAYS : 0);

    ngx_http_engagement_global_line(gc, e, metrics, NULL);

    (void) ngx_atomic_fetch_add(&gc->sh->stats.counted, 1);

    ngx_http_engagement_global_free(gc, e);
}


/*
 * Redis's answer to a round: one digit per view, the marks (MARK_*) that
 * were fresh across the edges. Each view is decided, then counted.
 */

void
ngx_http_engagement_global_resolve(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_round_t *round, const u_char *fresh)
{
    ngx_uint_t                           i;
    ngx_http_engagement_global_entry_t  *e;

    (void) ngx_atomic_fetch_add(&gc->sh->stats.rounds, 1);

    for (i = 0; i < round->n; i++) {
        e = round->e[i];

        ngx_shmtx_lock(&gc->shpool->mutex);
        e->fresh = (u_char) ((fresh[i] - '0') & e->kinds);
        e->state = NGX_HTTP_ENGAGEMENT_GLOBAL_DECIDED;
        ngx_shmtx_unlock(&gc->shpool->mutex);

        ngx_http_engagement_global_finish(gc, e);
    }

    round->n = 0;
}


/* no answer: the round stays sent, and the next take sends it again */

void
ngx_http_engagement_global_failed(ngx_http_engagement_global_conf_t *gc,
    ngx_http_engagement_global_round_t *round)
{
    (void) ngx_atomic_fetch_add(&gc->sh->stats.errors, 1);
    round->n = 0;

    /* the next take looks for it */
    ngx_http_engagement_global_stale = 1;
}


/* nothing waits */

ngx_uint_t
ngx_http_engagement_global_idle(ngx_http_engagement_global_conf_t *gc)
{
    return gc->sh == NULL || ngx_queue_empty(&gc->sh->queue);
}
