
/*
 * The live zone's configuration: engagement_live_zone,
 * engagement_heartbeat_interval, engagement_live_push and
 * engagement_live_redis, the checks after the http block, and making (or
 * taking over at a reload) the zone and its tables. The zone's use is in
 * live.c.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_live.h"
#include "store/ngx_http_engagement_live_int.h"


static const size_t  ngx_http_engagement_live_shape[] = {
    sizeof(ngx_http_engagement_live_sh_t),
    offsetof(ngx_http_engagement_live_sh_t, sessions),
    offsetof(ngx_http_engagement_live_sh_t, stats),
    sizeof(ngx_http_engagement_live_session_t),
    sizeof(ngx_http_engagement_live_content_t),
    sizeof(ngx_http_engagement_live_stats_t),
    NGX_HTTP_ENGAGEMENT_LIVE_SLOTS,
    NGX_HTTP_ENGAGEMENT_LIVE_BUCKET,       /* how entries are placed */
    NGX_MAX_PROCESSES
};


static ngx_http_engagement_live_conf_t *
ngx_http_engagement_live_conf_get(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t  *emcf;
    ngx_http_engagement_live_conf_t  *lc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->live) {
        return emcf->live;
    }

    lc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_live_conf_t));
    if (lc == NULL) {
        return NULL;
    }

    lc->size = NGX_CONF_UNSET;
    lc->interval = NGX_CONF_UNSET_MSEC;
    lc->push = NGX_CONF_UNSET_MSEC;
    lc->share = NGX_CONF_UNSET;

    emcf->live = lc;

    return lc;
}


/* engagement_live_zone size; */

char *
ngx_http_engagement_live_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_live_conf_t  *lc;

    lc = ngx_http_engagement_live_conf_get(cf);
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_engagement_zone_size(cf, cmd, &lc->size);
}


/* engagement_heartbeat_interval and engagement_live_push: a time */

char *
ngx_http_engagement_live_msec_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_msec_t                       *mp;
    ngx_str_t                        *value;
    ngx_http_engagement_live_conf_t  *lc;

    lc = ngx_http_engagement_live_conf_get(cf);
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    mp = (ngx_msec_t *) ((u_char *) lc + cmd->offset);

    if (*mp != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;
    *mp = ngx_parse_time(&value[1], 0);

    if (cmd->offset == offsetof(ngx_http_engagement_live_conf_t, push)) {
        /* streams wait for the push: a reload, a ping, a change no longer */
        if (*mp == (ngx_msec_t) NGX_ERROR || *mp < 100
            || *mp > NGX_HTTP_ENGAGEMENT_LIVE_PUSH_MAX)
        {
            *mp = 0;
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time \"%V\" of \"%V\": between "
                               "100ms and 10s, e.g. 1s", &value[1],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (*mp == (ngx_msec_t) NGX_ERROR || *mp < 100 || *mp > 3600000) {
        *mp = 0;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\" of \"%V\": between 100ms "
                           "and 1h, e.g. 10s", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A location with "engagement heartbeat" or "engagement live": the live
 * zone, declared once (its directives are read by now: locations are
 * merged after the whole http block).
 */

ngx_http_engagement_live_conf_t *
ngx_http_engagement_live_use(ngx_conf_t *cf)
{
    ngx_str_t                         name;
    ngx_http_engagement_live_conf_t  *lc;

    lc = ngx_http_engagement_live_conf_get(cf);
    if (lc == NULL) {
        return NULL;
    }

    if (lc->shm_zone) {
        return lc;
    }

    if (lc->size == NGX_CONF_UNSET) {
        lc->size = NGX_HTTP_ENGAGEMENT_LIVE_ZSIZE;
    }

    ngx_conf_init_msec_value(lc->interval, NGX_HTTP_ENGAGEMENT_LIVE_INTERVAL);
    ngx_conf_init_msec_value(lc->push, NGX_HTTP_ENGAGEMENT_LIVE_PUSH);

    ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_LIVE_ZONE);

    lc->shm_zone = ngx_http_engagement_zone_shm(cf, &name, lc->size,
                                            ngx_http_engagement_live_init_zone,
                                            lc);
    if (lc->shm_zone == NULL) {
        return NULL;
    }

    return lc;
}


/* engagement_live_redis on|off */

char *
ngx_http_engagement_live_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t                        *value;
    ngx_http_engagement_live_conf_t  *lc;

    lc = ngx_http_engagement_live_conf_get(cf);
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (lc->share != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        lc->share = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        lc->share = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" of \"%V\": on or off",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * After the http block: live directives with no location to use them are
 * said at nginx -t; live counts are shared through Redis when there is a
 * Redis (engagement_live_redis off: not), and asking for it without one
 * is an error.
 */

ngx_int_t
ngx_http_engagement_live_postconf(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t  *emcf;
    ngx_http_engagement_live_conf_t  *lc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    lc = emcf->live;

    if (lc == NULL) {
        return NGX_OK;
    }

    if (lc->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "engagement_live_zone, "
                           "engagement_heartbeat_interval, "
                           "engagement_live_push and engagement_live_redis "
                           "are ignored: no location has \"engagement "
                           "heartbeat\" or \"engagement live\"");
        lc->share = 0;
        return NGX_OK;
    }

    if (lc->share == 1 && emcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_live_redis on\" needs "
                           "\"engagement_redis\": live counts are shared "
                           "through it");
        return NGX_ERROR;
    }

    if (lc->share == NGX_CONF_UNSET) {
        lc->share = (emcf->redis != NULL);
    }

    return NGX_OK;
}


/* the live configuration of the running cycle, NULL: none */

ngx_http_engagement_live_conf_t *
ngx_http_engagement_live_conf(void)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_engagement_module);
    if (emcf == NULL || emcf->live == NULL) {
        return NULL;
    }

    return ((ngx_http_engagement_live_conf_t *) emcf->live)->shm_zone
           ? emcf->live : NULL;
}


/* the tables, cut from what the slab pool has free; NGX_ERROR: no room */

static ngx_int_t
ngx_http_engagement_live_tables(ngx_http_engagement_live_sh_t *sh,
    ngx_slab_pool_t *shpool, size_t size)
{
    size_t      unit, units, ss, cs, nw;

    ss = sizeof(ngx_http_engagement_live_session_t);
    cs = sizeof(ngx_http_engagement_live_content_t);
    unit = NGX_HTTP_ENGAGEMENT_LIVE_RATIO * ss + cs
           + cs / NGX_HTTP_ENGAGEMENT_LIVE_WATCH;

    /* the slab pool keeps a part for itself; try smaller until it fits */
    for (units = size * 7 / 8 / unit; units >= NGX_HTTP_ENGAGEMENT_LIVE_BUCKET;
         units = units * 9 / 10)
    {
        /* whole buckets */
        units -= units % NGX_HTTP_ENGAGEMENT_LIVE_BUCKET;

        sh->sessions = ngx_slab_calloc_locked(shpool,
                               units * NGX_HTTP_ENGAGEMENT_LIVE_RATIO * ss);
        if (sh->sessions == NULL) {
            continue;
        }

        sh->contents = ngx_slab_calloc_locked(shpool, units * cs);
        if (sh->contents == NULL) {
            ngx_slab_free_locked(shpool, sh->sessions);
            continue;
        }

        nw = ngx_max(units / NGX_HTTP_ENGAGEMENT_LIVE_WATCH, 16);

        sh->watch = ngx_slab_calloc_locked(shpool, nw * cs);
        if (sh->watch == NULL) {
            ngx_slab_free_locked(shpool, sh->contents);
            ngx_slab_free_locked(shpool, sh->sessions);
            continue;
        }

        sh->nsessions = units * NGX_HTTP_ENGAGEMENT_LIVE_RATIO;
        sh->ncontents = units;
        sh->nwatch = nw;

        return NGX_OK;
    }

    return NGX_ERROR;
}


/*
 * The header a reload hands over (or an existing zone has): read from the
 * zone itself, never through the old cycle's data, whose type is not
 * ours to trust (a zone of another kind of the module, same name and size,
 * is handed over too). NULL: not a live zone of this build.
 */

static ngx_http_engagement_live_sh_t *
ngx_http_engagement_live_adopt(ngx_shm_zone_t *shm_zone, uint32_t layout)
{
    ngx_slab_pool_t                *shpool;
    ngx_http_engagement_live_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    sh = shpool->data;

    /* magic and layout are the first two words of every module zone */
    if (sh == NULL
        || sh->magic != NGX_HTTP_ENGAGEMENT_LIVE_MAGIC
        || sh->layout != layout)
    {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "live zone \"%V\" was written by another kind of "
                      "zone or an incompatible module version: stop and "
                      "start nginx to recreate it", &shm_zone->shm.name);
        return NULL;
    }

    return sh;
}


ngx_int_t
ngx_http_engagement_live_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    uint32_t                          layout;
    ngx_slab_pool_t                  *shpool;
    ngx_http_engagement_live_sh_t    *sh;
    ngx_http_engagement_live_conf_t  *lc;

    lc = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    lc->shpool = shpool;

    layout = ngx_http_engagement_layout_of(ngx_http_engagement_live_shape);

    if (data || shm_zone->shm.exists) {
        sh = ngx_http_engagement_live_adopt(shm_zone, layout);
        if (sh == NULL) {
            return NGX_ERROR;
        }

        lc->sh = sh;

        if (sh->interval != lc->interval) {
            /* the slots are cut differently: the sessions start again */
            ngx_shmtx_lock(&shpool->mutex);
            ngx_memzero(sh->sessions,
                        sh->nsessions
                        * sizeof(ngx_http_engagement_live_session_t));
            ngx_memzero(sh->contents,
                        sh->ncontents
                        * sizeof(ngx_http_engagement_live_content_t));
            ngx_memzero(sh->watch,
                        sh->nwatch
                        * sizeof(ngx_http_engagement_live_content_t));
            sh->interval = lc->interval;
            sh->now_slot = 0;
            sh->seq++;
            ngx_shmtx_unlock(&shpool->mutex);
        }

        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_live_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_engagement_live_tables(sh, shpool, shm_zone->shm.size)
        != NGX_OK)
    {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "live zone \"%V\" is too small",
                      &shm_zone->shm.name);
        return NGX_ERROR;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "live zone \"%V\": room for %ui sessions, %ui contents",
                  &shm_zone->shm.name, sh->nsessions, sh->ncontents);

    sh->magic = NGX_HTTP_ENGAGEMENT_LIVE_MAGIC;
    sh->layout = layout;
    sh->interval = lc->interval;
    ngx_http_engagement_random_key(sh->key);

    shpool->data = sh;
    lc->sh = sh;

    ngx_http_engagement_zone_log_ctx(shpool, "live", &shm_zone->shm.name);

    return NGX_OK;
}
