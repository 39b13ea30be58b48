
/*
 * ngx_http_engagement_module: directives, configuration and the zones they
 * declare. Endpoint logic lives in the _handler, _policy and _status files.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


ngx_http_engagement_counters_shctx_t  *ngx_http_engagement_global_sh;

/* flush latency histogram bounds, in milliseconds (the last is +Inf) */
ngx_uint_t  ngx_http_engagement_hist_bounds[NGX_HTTP_ENGAGEMENT_HIST] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 0
};


static void *ngx_http_engagement_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_engagement_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_engagement_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_engagement_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_engagement_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_engagement_reactions_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_engagement_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_engagement_init_process(ngx_cycle_t *cycle);
static void ngx_http_engagement_exit_process(ngx_cycle_t *cycle);
static void ngx_http_engagement_exit_master(ngx_cycle_t *cycle);
static char *ngx_http_engagement_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_conf_enum_t  ngx_http_engagement_dedupe_keys[] = {
    { ngx_string("viewer"), NGX_HTTP_ENGAGEMENT_KEY_VIEWER },
    { ngx_string("session"), NGX_HTTP_ENGAGEMENT_KEY_SESSION },
    { ngx_string("client"), NGX_HTTP_ENGAGEMENT_KEY_CLIENT },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_engagement_commands[] = {

    { ngx_string("engagement_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_dedupe_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      1,
      NULL },

    { ngx_string("engagement_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_reactions"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_reactions_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_flush_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, flush_interval),
      NULL },

    { ngx_string("engagement_flush_deadline"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, exit_deadline),
      NULL },

    { ngx_string("engagement_flush_batch"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, flush_batch),
      NULL },

    { ngx_string("engagement_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, cache_ttl),
      NULL },

    { ngx_string("engagement_health_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, health_grace),
      NULL },

    { ngx_string("engagement_edge_id"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, edge_id),
      NULL },

    { ngx_string("engagement_state_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, state_file),
      NULL },

    { ngx_string("engagement_writer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_writer_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_engagement_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_dedupe_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, dedupe_key),
      &ngx_http_engagement_dedupe_keys },

    { ngx_string("engagement_dedupe_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, dedupe_window),
      NULL },

    { ngx_string("engagement_view_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, view_after),
      NULL },

    { ngx_string("engagement_engaged_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, engaged_after),
      NULL },

    { ngx_string("engagement_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("engagement_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_limit_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_limit_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_ts_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_engagement_ts_window_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_batch_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, batch_max),
      NULL },

    NGX_HTTP_ENGAGEMENT_GUARD_COMMANDS

      ngx_null_command
};


static ngx_http_module_t  ngx_http_engagement_module_ctx = {
    ngx_http_engagement_add_variables,     /* preconfiguration */
    ngx_http_engagement_postconfiguration, /* postconfiguration */

    ngx_http_engagement_create_main_conf,  /* create main configuration */
    ngx_http_engagement_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_engagement_create_loc_conf,   /* create location configuration */
    ngx_http_engagement_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_engagement_module = {
    NGX_MODULE_V1,
    &ngx_http_engagement_module_ctx,       /* module context */
    ngx_http_engagement_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_engagement_init_module,       /* init module */
    ngx_http_engagement_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_engagement_exit_process,      /* exit process */
    ngx_http_engagement_exit_master,       /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_engagement_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_main_conf_t));
    if (emcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&emcf->zones, cf->pool, 4,
                       sizeof(ngx_http_engagement_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    emcf->flush_interval = NGX_CONF_UNSET_MSEC;
    emcf->exit_deadline = NGX_CONF_UNSET_MSEC;
    emcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    emcf->flush_batch = NGX_CONF_UNSET_UINT;
    emcf->health_grace = NGX_CONF_UNSET_MSEC;

    /* a reload starts from a clean slate in every process */
    ngx_http_engagement_global_sh = NULL;

    return emcf;
}


static char *
ngx_http_engagement_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ngx_str_t   *s;
    ngx_uint_t   i;

    ngx_conf_init_msec_value(emcf->flush_interval, 1000);
    ngx_conf_init_msec_value(emcf->exit_deadline, 3000);
    ngx_conf_init_msec_value(emcf->cache_ttl, 2000);
    ngx_conf_init_uint_value(emcf->flush_batch, 1000);
    ngx_conf_init_msec_value(emcf->health_grace, 30000);

    if (emcf->flush_interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_flush_interval\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (emcf->flush_batch == 0 || emcf->flush_batch > 100000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_flush_batch\" must be between 1 "
                           "and 100000");
        return NGX_CONF_ERROR;
    }

    if (emcf->edge_id.len == 0) {
        emcf->edge_id = cf->cycle->hostname;
    }

    if (emcf->edge_id.len == 0
        || !ngx_http_engagement_id_valid(emcf->edge_id.data,
                                         emcf->edge_id.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_edge_id\" \"%V\" must be 1-128 "
                           "bytes of [A-Za-z0-9._:-]%s", &emcf->edge_id,
                           emcf->edge_id.len ? "" : " (set it: the host "
                           "name is unusable)");
        return NGX_CONF_ERROR;
    }

    ngx_http_engagement_writer_init_conf(emcf);

    if (emcf->state_file.len == 0) {
        ngx_str_set(&emcf->state_file, "logs/engagement.state");
    }

    if (emcf->reactions == NULL) {
        static ngx_str_t  defaults[] = {
            ngx_string("like"), ngx_string("love"), ngx_string("laugh"),
            ngx_string("wow"), ngx_string("sad"), ngx_string("angry")
        };

        emcf->reactions = ngx_array_create(cf->pool, 6, sizeof(ngx_str_t));
        if (emcf->reactions == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < 6; i++) {
            s = ngx_array_push(emcf->reactions);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }
            *s = defaults[i];
        }
    }

    /* full path, zero-terminated */
    if (ngx_conf_full_name(cf->cycle, &emcf->state_file, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_engagement_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_loc_conf_t));
    if (elcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     elcf->endpoint = NGX_HTTP_ENGAGEMENT_NONE;
     *     elcf->counters = NULL;
     *     elcf->dedupe = NULL;
     *     elcf->counters_name = { 0, NULL };
     *     elcf->dedupe_name = { 0, NULL };
     */

    elcf->dedupe_key = NGX_CONF_UNSET_UINT;
    elcf->dedupe_window = NGX_CONF_UNSET_MSEC;
    elcf->view_after = NGX_CONF_UNSET_MSEC;
    elcf->engaged_after = NGX_CONF_UNSET_MSEC;
    elcf->max_body_size = NGX_CONF_UNSET_SIZE;
    elcf->batch_max = NGX_CONF_UNSET_UINT;
    elcf->limits = NGX_CONF_UNSET_PTR;
    elcf->ts_back = NGX_CONF_UNSET_MSEC;
    elcf->ts_ahead = NGX_CONF_UNSET_MSEC;

    ngx_http_engagement_guard_create(&elcf->guard);

    return elcf;
}


static char *
ngx_http_engagement_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_engagement_loc_conf_t *prev = parent;
    ngx_http_engagement_loc_conf_t *conf = child;

    ngx_str_t                         name;
    ngx_http_engagement_main_conf_t  *emcf;

    ngx_conf_merge_uint_value(conf->dedupe_key, prev->dedupe_key,
                              NGX_HTTP_ENGAGEMENT_KEY_VIEWER);
    ngx_conf_merge_msec_value(conf->dedupe_window, prev->dedupe_window,
                              30 * 60 * 1000);
    ngx_conf_merge_msec_value(conf->view_after, prev->view_after, 0);
    ngx_conf_merge_msec_value(conf->engaged_after, prev->engaged_after,
                              30 * 1000);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              8 * 1024);
    ngx_conf_merge_uint_value(conf->batch_max, prev->batch_max, 100);
    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);
    ngx_conf_merge_msec_value(conf->ts_back, prev->ts_back,
                              24 * 60 * 60 * 1000);
    ngx_conf_merge_msec_value(conf->ts_ahead, prev->ts_ahead, 5 * 60 * 1000);

    if (ngx_http_engagement_guard_merge(cf, &prev->guard, &conf->guard,
                                        conf->endpoint
                                        == NGX_HTTP_ENGAGEMENT_VIEW,
                                        conf->endpoint
                                        == NGX_HTTP_ENGAGEMENT_VIEW
                                        || conf->endpoint
                                           == NGX_HTTP_ENGAGEMENT_LIKE)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint == NGX_HTTP_ENGAGEMENT_NONE
        || conf->endpoint == NGX_HTTP_ENGAGEMENT_STATUS
        || conf->endpoint == NGX_HTTP_ENGAGEMENT_HEALTH)
    {
        return NGX_CONF_OK;
    }

    if (conf->dedupe_window == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_dedupe_window\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (conf->engaged_after < conf->view_after) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_engaged_after\" (%M ms) must not be "
                           "shorter than \"engagement_view_after\" (%M ms)",
                           conf->engaged_after, conf->view_after);
        return NGX_CONF_ERROR;
    }

    if (conf->max_body_size == 0 || conf->max_body_size > 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_max_body_size\" must be between "
                           "1 and 1m");
        return NGX_CONF_ERROR;
    }

    if (conf->batch_max == 0 || conf->batch_max > 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_batch_max\" must be between "
                           "1 and 1000");
        return NGX_CONF_ERROR;
    }

    /*
     * Zones are resolved here, after the whole http block is read, so an
     * engagement_zone may come after the locations that use it; a location
     * that names none gets the default zones, declared on first use.
     */

    if (conf->counters_name.len) {
        name = conf->counters_name;
        conf->counters = ngx_http_engagement_zone_get(cf, &name, 0, 0, 0);

    } else {
        ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_DEFAULT_ZONE);
        conf->counters = ngx_http_engagement_zone_get(cf, &name,
                             NGX_HTTP_ENGAGEMENT_DEFAULT_ZSIZE, 0, 0);
    }

    if (conf->counters == NULL) {
        return NGX_CONF_ERROR;
    }

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if ((conf->endpoint == NGX_HTTP_ENGAGEMENT_LIKE
         || conf->endpoint == NGX_HTTP_ENGAGEMENT_STATE)
        && emcf->redis == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement like\" and \"engagement state\" "
                           "need \"engagement_redis\": Redis is the source "
                           "of truth for reactions");
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint != NGX_HTTP_ENGAGEMENT_VIEW) {
        return NGX_CONF_OK;
    }

    if (conf->dedupe_name.len) {
        name = conf->dedupe_name;
        conf->dedupe = ngx_http_engagement_zone_get(cf, &name, 0, 1, 0);

    } else {
        ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_DEFAULT_DEDUPE);
        conf->dedupe = ngx_http_engagement_zone_get(cf, &name,
                           NGX_HTTP_ENGAGEMENT_DEFAULT_DSIZE, 1, 0);
    }

    if (conf->dedupe == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_engagement_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                        i;
    ngx_http_engagement_zone_t      **zp;
    ngx_http_engagement_main_conf_t  *emcf;


    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    /* every zone is known now, the default ones included */
    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        zp[i]->redis = (emcf->redis != NULL);
        zp[i]->state_file = emcf->state_file;
        zp[i]->nreactions = emcf->redis ? emcf->reactions->nelts : 0;
        zp[i]->cache_ttl = emcf->cache_ttl;
    }

    return ngx_http_engagement_limit_postconf(cf);
}


static ngx_http_engagement_zone_t *
ngx_http_engagement_first_counters(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_uint_t                    i;
    ngx_http_engagement_zone_t  **zp;

    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (!zp[i]->dedupe) {
            return zp[i];
        }
    }

    return NULL;
}


/* the zones are restored by now: keep the state file only as a backup */

static ngx_int_t
ngx_http_engagement_init_module(ngx_cycle_t *cycle)
{
    u_char                           *to;
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_engagement_module);

    if (emcf == NULL || emcf->redis == NULL || ngx_test_config
        || ngx_process == NGX_PROCESS_SIGNALLER)
    {
        return NGX_OK;
    }

    if (ngx_file_info(emcf->state_file.data, &(ngx_file_info_t) { 0 })
        == NGX_FILE_ERROR)
    {
        return NGX_OK;
    }

    to = ngx_pnalloc(cycle->pool, emcf->state_file.len
                                  + sizeof(".restored"));
    if (to == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_sprintf(to, "%V.restored%Z", &emcf->state_file);

    if (ngx_rename_file(emcf->state_file.data, to) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "engagement: could not rename the state file \"%V\"; "
                      "it would be restored twice", &emcf->state_file);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_engagement_init_process(ngx_cycle_t *cycle)
{
    ngx_http_engagement_zone_t       *z;
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_engagement_module);

    if (emcf == NULL || ngx_process != NGX_PROCESS_WORKER) {
        return NGX_OK;
    }

    z = ngx_http_engagement_first_counters(emcf);

    if (z) {
        ngx_http_engagement_global_sh = z->sh;
    }

    if (ngx_http_engagement_writer_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (emcf->redis == NULL || z == NULL) {
        return NGX_OK;
    }

    return ngx_http_engagement_flush_start(cycle, emcf);
}


static void
ngx_http_engagement_exit_process(ngx_cycle_t *cycle)
{
    /* closes the Redis connection: nginx checks for open sockets next */
    ngx_http_engagement_flush_stop();
    ngx_http_engagement_writer_stop(cycle);
}


/*
 * The master outlives its workers: what their final flush could not send
 * is still in shared memory, and is written to the state file here.
 */

static void
ngx_http_engagement_exit_master(ngx_cycle_t *cycle)
{
    u_char                           *tmp;
    ngx_fd_t                          fd;
    ngx_uint_t                        i, any;
    ngx_http_engagement_zone_t      **zp;
    ngx_http_engagement_main_conf_t  *emcf;
    ngx_http_engagement_counters_shctx_t  *sh;

    emcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_engagement_module);

    if (emcf == NULL || emcf->redis == NULL) {
        return;
    }

    zp = emcf->zones.elts;
    any = 0;

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (zp[i]->dedupe || zp[i]->sh == NULL) {
            continue;
        }

        sh = zp[i]->sh;
        any |= (sh->pending_nodes || sh->inflight_nodes);
    }

    if (!any) {
        return;
    }

    tmp = ngx_alloc(emcf->state_file.len + sizeof(".tmp"), cycle->log);
    if (tmp == NULL) {
        return;
    }

    (void) ngx_sprintf(tmp, "%V.tmp%Z", &emcf->state_file);

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "engagement: could not write the state file \"%s\": "
                      "unflushed counts are lost", tmp);
        ngx_free(tmp);
        return;
    }

    for (i = 0; i < emcf->zones.nelts; i++) {
        if (zp[i]->dedupe || zp[i]->sh == NULL) {
            continue;
        }

        if (ngx_http_engagement_state_save(cycle, zp[i], fd) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "engagement: could not write the state file "
                          "\"%s\"", tmp);
        }
    }

    if (fsync(fd) == -1
        || ngx_close_file(fd) == NGX_FILE_ERROR
        || ngx_rename_file(tmp, emcf->state_file.data) == NGX_FILE_ERROR)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "engagement: could not save the state file \"%V\"",
                      &emcf->state_file);
    }

    ngx_free(tmp);
}


/* engagement view|summary|status [zone=name] [dedupe=name]; */

static char *
ngx_http_engagement_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    if (elcf->endpoint != NGX_HTTP_ENGAGEMENT_NONE) {
        return "is duplicate";
    }

    if (ngx_strcmp(value[1].data, "view") == 0) {
        elcf->endpoint = NGX_HTTP_ENGAGEMENT_VIEW;

    } else if (ngx_strcmp(value[1].data, "summary") == 0) {
        elcf->endpoint = NGX_HTTP_ENGAGEMENT_SUMMARY;

    } else if (ngx_strcmp(value[1].data, "status") == 0) {
        elcf->endpoint = NGX_HTTP_ENGAGEMENT_STATUS;

    } else if (ngx_strcmp(value[1].data, "health") == 0) {
        elcf->endpoint = NGX_HTTP_ENGAGEMENT_HEALTH;

    } else if (ngx_strcmp(value[1].data, "like") == 0) {
        elcf->endpoint = NGX_HTTP_ENGAGEMENT_LIKE;

    } else if (ngx_strcmp(value[1].data, "state") == 0) {
        elcf->endpoint = NGX_HTTP_ENGAGEMENT_STATE;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown engagement endpoint \"%V\": expected "
                           "view, summary, like, state, status or health",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0
            && value[i].len > 5)
        {
            elcf->counters_name.data = value[i].data + 5;
            elcf->counters_name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "dedupe=", 7) == 0
            && value[i].len > 7
            && elcf->endpoint == NGX_HTTP_ENGAGEMENT_VIEW)
        {
            elcf->dedupe_name.data = value[i].data + 7;
            elcf->dedupe_name.len = value[i].len - 7;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" for \"engagement %V\"",
                           &value[i], &value[1]);
        return NGX_CONF_ERROR;
    }

    if ((elcf->endpoint == NGX_HTTP_ENGAGEMENT_STATUS
         || elcf->endpoint == NGX_HTTP_ENGAGEMENT_HEALTH)
        && cf->args->nelts > 2)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement %V\" takes no parameters",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    switch (elcf->endpoint) {

    case NGX_HTTP_ENGAGEMENT_STATUS:
        clcf->handler = ngx_http_engagement_status_handler;
        break;

    case NGX_HTTP_ENGAGEMENT_HEALTH:
        clcf->handler = ngx_http_engagement_health_handler;
        break;

    case NGX_HTTP_ENGAGEMENT_LIKE:
    case NGX_HTTP_ENGAGEMENT_STATE:
        clcf->handler = ngx_http_engagement_reaction_handler;
        break;

    default:
        clcf->handler = ngx_http_engagement_handler;
    }

    return NGX_CONF_OK;
}


/* engagement_reactions like love laugh ...; the first is what a POST
 * without a "reaction" field means */

static char *
ngx_http_engagement_reactions_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ngx_str_t   *value, *s, *t;
    ngx_uint_t   i, j;

    if (emcf->reactions) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts - 1 > NGX_HTTP_ENGAGEMENT_REACTIONS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "at most %d reaction types",
                           NGX_HTTP_ENGAGEMENT_REACTIONS_MAX);
        return NGX_CONF_ERROR;
    }

    emcf->reactions = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                       sizeof(ngx_str_t));
    if (emcf->reactions == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len > NGX_HTTP_ENGAGEMENT_REACTION_LEN
            || !ngx_http_engagement_id_valid(value[i].data, value[i].len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid reaction type \"%V\": 1-%d bytes "
                               "of [A-Za-z0-9._:-]", &value[i],
                               NGX_HTTP_ENGAGEMENT_REACTION_LEN);
            return NGX_CONF_ERROR;
        }

        t = emcf->reactions->elts;

        for (j = 0; j < emcf->reactions->nelts; j++) {
            if (t[j].len == value[i].len
                && ngx_strncmp(t[j].data, value[i].data, t[j].len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "reaction type \"%V\" is listed twice",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        s = ngx_array_push(emcf->reactions);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}
