
/*
 * ngx_http_engagement_module: the main and location configuration
 * (create, defaults, merge and its checks, the engagement endpoint
 * directive; the directive table is in ngx_http_engagement_directives.c)
 * and the module's lifecycle (init module and process, exit process and
 * master). Each concern's own directives and request
 * work live in its folder: http/, input/, protect/, policy/, store/,
 * sink/.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "policy/ngx_http_engagement_global.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "sink/writer/ngx_http_engagement_webhook.h"
#include "http/ngx_http_engagement_http.h"
#include "store/ngx_http_engagement_live.h"
#include "store/ngx_http_engagement_resume.h"
#include "store/ngx_http_engagement_series.h"
#include "store/ngx_http_engagement_trend.h"


/* main configuration: defaults and bounds */
#define NGX_HTTP_ENGAGEMENT_FLUSH_INTERVAL     1000     /* ms */
#define NGX_HTTP_ENGAGEMENT_FLUSH_DEADLINE     3000     /* ms */
#define NGX_HTTP_ENGAGEMENT_CACHE_TTL          2000     /* ms */
#define NGX_HTTP_ENGAGEMENT_FLUSH_BATCH        1000
#define NGX_HTTP_ENGAGEMENT_FLUSH_BATCH_MAX    100000
#define NGX_HTTP_ENGAGEMENT_HEALTH_GRACE       30000    /* ms */
#define NGX_HTTP_ENGAGEMENT_STATE_FILE         "logs/engagement.state"

/* location configuration: defaults and bounds */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_WINDOW      (30 * 60 * 1000)
#define NGX_HTTP_ENGAGEMENT_ENGAGED_AFTER      (30 * 1000)
#define NGX_HTTP_ENGAGEMENT_BODY_SIZE          (8 * 1024)
#define NGX_HTTP_ENGAGEMENT_BODY_SIZE_MAX_MB   1
#define NGX_HTTP_ENGAGEMENT_BATCH_MAX          100
#define NGX_HTTP_ENGAGEMENT_BATCH_MAX_MAX      1000


/* the endpoints "engagement <name>" makes */
typedef struct {
    ngx_str_t                        name;
    ngx_http_engagement_endpoint_e   endpoint;
    ngx_http_handler_pt              handler;
} ngx_http_engagement_endpoint_t;


/* the parameters of "engagement <name>": a name=value into the conf */
typedef struct {
    ngx_str_t                        prefix;
    size_t                           offset;     /* of an ngx_str_t */
    ngx_uint_t                       view_only;
} ngx_http_engagement_endpoint_param_t;


ngx_http_engagement_counters_shctx_t  *ngx_http_engagement_global_sh;


static void *ngx_http_engagement_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_engagement_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_engagement_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_engagement_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_engagement_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_engagement_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_engagement_init_process(ngx_cycle_t *cycle);
static void ngx_http_engagement_exit_process(ngx_cycle_t *cycle);
static void ngx_http_engagement_exit_master(ngx_cycle_t *cycle);


static ngx_http_engagement_endpoint_t  ngx_http_engagement_endpoints[] = {
    { ngx_string("view"), NGX_HTTP_ENGAGEMENT_VIEW,
      ngx_http_engagement_handler },
    { ngx_string("summary"), NGX_HTTP_ENGAGEMENT_SUMMARY,
      ngx_http_engagement_handler },
    { ngx_string("status"), NGX_HTTP_ENGAGEMENT_STATUS,
      ngx_http_engagement_status_handler },
    { ngx_string("health"), NGX_HTTP_ENGAGEMENT_HEALTH,
      ngx_http_engagement_health_handler },
    { ngx_string("like"), NGX_HTTP_ENGAGEMENT_LIKE,
      ngx_http_engagement_handler },
    { ngx_string("state"), NGX_HTTP_ENGAGEMENT_STATE,
      ngx_http_engagement_handler },
    { ngx_string("heartbeat"), NGX_HTTP_ENGAGEMENT_HEARTBEAT,
      ngx_http_engagement_heartbeat_handler },
    { ngx_string("live"), NGX_HTTP_ENGAGEMENT_LIVE,
      ngx_http_engagement_live_handler },
    { ngx_string("resume"), NGX_HTTP_ENGAGEMENT_RESUME,
      ngx_http_engagement_resume_handler },
    { ngx_string("history"), NGX_HTTP_ENGAGEMENT_HISTORY,
      ngx_http_engagement_history_handler },
    { ngx_string("analytics"), NGX_HTTP_ENGAGEMENT_ANALYTICS,
      ngx_http_engagement_analytics_handler },
    { ngx_string("trending"), NGX_HTTP_ENGAGEMENT_TRENDING,
      ngx_http_engagement_trending_handler },
    { ngx_string("event"), NGX_HTTP_ENGAGEMENT_EVENT,
      ngx_http_engagement_interaction_handler },
    { ngx_null_string, NGX_HTTP_ENGAGEMENT_NONE, NULL }
};


static ngx_http_engagement_endpoint_param_t
    ngx_http_engagement_endpoint_params[] =
{
    { ngx_string("zone="),
      offsetof(ngx_http_engagement_loc_conf_t, counters_name), 0 },
    { ngx_string("dedupe="),
      offsetof(ngx_http_engagement_loc_conf_t, dedupe_name), 1 },
    { ngx_null_string, 0, 0 }
};


/* the longest list of an enum directive's choices, as its error says it */
#define NGX_HTTP_ENGAGEMENT_ENUM_TEXT  128


/* what a POST without a "reaction" field means comes first */
static ngx_str_t  ngx_http_engagement_default_reactions[] = {
    ngx_string("like"), ngx_string("love"), ngx_string("laugh"),
    ngx_string("wow"), ngx_string("sad"), ngx_string("angry")
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

#if (NGX_HTTP_ENGAGEMENT_TEST_LAYOUT)
    ngx_http_engagement_test_generation++;
#endif

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


/* no engagement_reactions: the default types */
static ngx_int_t
ngx_http_engagement_reactions_default(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_str_t   *s;
    ngx_uint_t   n;

    n = sizeof(ngx_http_engagement_default_reactions) / sizeof(ngx_str_t);

    emcf->reactions = ngx_array_create(cf->pool, n, sizeof(ngx_str_t));
    if (emcf->reactions == NULL) {
        return NGX_ERROR;
    }

    s = ngx_array_push_n(emcf->reactions, n);
    if (s == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s, ngx_http_engagement_default_reactions,
               n * sizeof(ngx_str_t));

    return NGX_OK;
}


static char *
ngx_http_engagement_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ngx_conf_init_msec_value(emcf->flush_interval,
                             NGX_HTTP_ENGAGEMENT_FLUSH_INTERVAL);
    ngx_conf_init_msec_value(emcf->exit_deadline,
                             NGX_HTTP_ENGAGEMENT_FLUSH_DEADLINE);
    ngx_conf_init_msec_value(emcf->cache_ttl, NGX_HTTP_ENGAGEMENT_CACHE_TTL);
    ngx_conf_init_uint_value(emcf->flush_batch,
                             NGX_HTTP_ENGAGEMENT_FLUSH_BATCH);
    ngx_conf_init_msec_value(emcf->health_grace,
                             NGX_HTTP_ENGAGEMENT_HEALTH_GRACE);

    if (emcf->flush_interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_flush_interval\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (emcf->flush_batch == 0
        || emcf->flush_batch > NGX_HTTP_ENGAGEMENT_FLUSH_BATCH_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_flush_batch\" must be between 1 "
                           "and %d", NGX_HTTP_ENGAGEMENT_FLUSH_BATCH_MAX);
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
                           "\"engagement_edge_id\" \"%V\" must be 1-%d "
                           "bytes of [A-Za-z0-9._:-]%s", &emcf->edge_id,
                           NGX_HTTP_ENGAGEMENT_ID_MAX,
                           emcf->edge_id.len ? "" : " (set it: the host "
                           "name is unusable)");
        return NGX_CONF_ERROR;
    }

    ngx_http_engagement_writer_init_conf(emcf);

    if (emcf->state_file.len == 0) {
        ngx_str_set(&emcf->state_file, NGX_HTTP_ENGAGEMENT_STATE_FILE);
    }

    if (emcf->reactions == NULL
        && ngx_http_engagement_reactions_default(cf, emcf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
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
    elcf->answer = NGX_CONF_UNSET_UINT;
    elcf->heartbeat_record = NGX_CONF_UNSET;
    elcf->segments = NGX_CONF_UNSET_PTR;

    ngx_http_engagement_guard_create(&elcf->guard);

    return elcf;
}


/* the bounds of a location's values, checked where events are taken */
static char *
ngx_http_engagement_loc_check(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *conf)
{
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

    if (conf->max_body_size == 0
        || conf->max_body_size
           > (size_t) NGX_HTTP_ENGAGEMENT_BODY_SIZE_MAX_MB * 1024 * 1024)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_max_body_size\" must be between "
                           "1 and %dm", NGX_HTTP_ENGAGEMENT_BODY_SIZE_MAX_MB);
        return NGX_CONF_ERROR;
    }

    if (conf->batch_max == 0
        || conf->batch_max > NGX_HTTP_ENGAGEMENT_BATCH_MAX_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_batch_max\" must be between "
                           "1 and %d", NGX_HTTP_ENGAGEMENT_BATCH_MAX_MAX);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The zone a location names, or the default one, declared on first use.
 * Zones are resolved at merge time, after the whole http block is read,
 * so an engagement_zone may come after the locations that use it.
 */

static ngx_http_engagement_zone_t *
ngx_http_engagement_loc_zone(ngx_conf_t *cf, ngx_str_t *named,
    char *default_name, size_t default_size, ngx_uint_t dedupe)
{
    ngx_str_t  name;

    if (named->len) {
        name = *named;
        return ngx_http_engagement_zone_get(cf, &name, 0, dedupe, 0);
    }

    name.data = (u_char *) default_name;
    name.len = ngx_strlen(default_name);

    return ngx_http_engagement_zone_get(cf, &name, default_size, dedupe, 0);
}


/* the zones an endpoint that takes events or answers summaries uses */
static char *
ngx_http_engagement_loc_zones(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *conf)
{
    ngx_http_engagement_main_conf_t  *emcf;

    conf->counters = ngx_http_engagement_loc_zone(cf, &conf->counters_name,
                                          NGX_HTTP_ENGAGEMENT_DEFAULT_ZONE,
                                          NGX_HTTP_ENGAGEMENT_DEFAULT_ZSIZE, 0);
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

    conf->dedupe = ngx_http_engagement_loc_zone(cf, &conf->dedupe_name,
                                        NGX_HTTP_ENGAGEMENT_DEFAULT_DEDUPE,
                                        NGX_HTTP_ENGAGEMENT_DEFAULT_DSIZE, 1);
    if (conf->dedupe == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Resume positions: kept from heartbeats when there is a Redis to send
 * them to; read and deleted by resume and history, which need one.
 */

static char *
ngx_http_engagement_loc_resume(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *conf)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (conf->endpoint == NGX_HTTP_ENGAGEMENT_RESUME
        || conf->endpoint == NGX_HTTP_ENGAGEMENT_HISTORY)
    {
        if (emcf->redis == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"engagement resume\" and \"engagement "
                               "history\" need \"engagement_redis\": "
                               "positions and histories are kept in Redis");
            return NGX_CONF_ERROR;
        }

    } else if (conf->endpoint != NGX_HTTP_ENGAGEMENT_HEARTBEAT
               || emcf->redis == NULL)
    {
        return NGX_CONF_OK;
    }

    if (ngx_http_engagement_resume_use(cf) == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_engagement_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_engagement_loc_conf_t *prev = parent;
    ngx_http_engagement_loc_conf_t *conf = child;

    ngx_uint_t                        view;
    ngx_http_engagement_main_conf_t  *emcf;

    ngx_conf_merge_uint_value(conf->dedupe_key, prev->dedupe_key,
                              NGX_HTTP_ENGAGEMENT_KEY_VIEWER);
    ngx_conf_merge_msec_value(conf->dedupe_window, prev->dedupe_window,
                              NGX_HTTP_ENGAGEMENT_DEDUPE_WINDOW);

    /* a rotated salt is kept as long as any location's marks made with it */
    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    emcf->salt_grace = ngx_max(emcf->salt_grace, conf->dedupe_window);
    ngx_conf_merge_msec_value(conf->view_after, prev->view_after, 0);
    ngx_conf_merge_msec_value(conf->engaged_after, prev->engaged_after,
                              NGX_HTTP_ENGAGEMENT_ENGAGED_AFTER);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              NGX_HTTP_ENGAGEMENT_BODY_SIZE);
    ngx_conf_merge_uint_value(conf->batch_max, prev->batch_max,
                              NGX_HTTP_ENGAGEMENT_BATCH_MAX);
    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);
    ngx_conf_merge_msec_value(conf->ts_back, prev->ts_back,
                              NGX_HTTP_ENGAGEMENT_TS_BACK_DEFAULT);
    ngx_conf_merge_msec_value(conf->ts_ahead, prev->ts_ahead,
                              NGX_HTTP_ENGAGEMENT_TS_AHEAD_DEFAULT);
    ngx_conf_merge_uint_value(conf->answer, prev->answer,
                              NGX_HTTP_ENGAGEMENT_ANSWER_FULL);
    ngx_conf_merge_value(conf->heartbeat_record, prev->heartbeat_record, 0);

    /* views and likes hash identities: they need the salt; heartbeats
     * are guarded as views are */
    view = (conf->endpoint == NGX_HTTP_ENGAGEMENT_VIEW
            || conf->endpoint == NGX_HTTP_ENGAGEMENT_HEARTBEAT
            || conf->endpoint == NGX_HTTP_ENGAGEMENT_EVENT);

    if (ngx_http_engagement_guard_merge(cf, &prev->guard, &conf->guard, view,
                                        view || conf->endpoint
                                                == NGX_HTTP_ENGAGEMENT_LIKE)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_segments_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_dims_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint == NGX_HTTP_ENGAGEMENT_NONE
        || conf->endpoint == NGX_HTTP_ENGAGEMENT_STATUS
        || conf->endpoint == NGX_HTTP_ENGAGEMENT_HEALTH)
    {
        return NGX_CONF_OK;
    }

    /* analytics read Redis only: no zone */
    if (conf->endpoint == NGX_HTTP_ENGAGEMENT_ANALYTICS) {
        return ngx_http_engagement_analytics_check(cf);
    }

    if (ngx_http_engagement_loc_check(cf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if ((conf->endpoint == NGX_HTTP_ENGAGEMENT_HEARTBEAT
         || conf->endpoint == NGX_HTTP_ENGAGEMENT_LIVE)
        && ngx_http_engagement_live_use(cf) == NULL)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_loc_resume(cf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    /* views, likes and clicks go to the series by dimension, with a Redis */
    if ((conf->endpoint == NGX_HTTP_ENGAGEMENT_VIEW
         || conf->endpoint == NGX_HTTP_ENGAGEMENT_LIKE
         || conf->endpoint == NGX_HTTP_ENGAGEMENT_EVENT)
        && emcf->redis
        && ngx_http_engagement_series_use(cf) == NULL)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint == NGX_HTTP_ENGAGEMENT_TRENDING
        && ngx_http_engagement_trend_use(cf) == NULL)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_engagement_loc_zones(cf, conf);
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

    emcf->vars_used = ngx_http_engagement_variables_used(cf);
    emcf->body_vars = ngx_http_engagement_body_vars_used(cf);

    if (ngx_http_engagement_live_postconf(cf) != NGX_OK
        || ngx_http_engagement_resume_postconf(cf) != NGX_OK
        || ngx_http_engagement_series_postconf(cf) != NGX_OK
        || ngx_http_engagement_trend_postconf(cf) != NGX_OK
        || ngx_http_engagement_milestone_check(cf, emcf) != NGX_OK
        || ngx_http_engagement_cluster_check(cf, emcf) != NGX_OK
        || ngx_http_engagement_global_postconf(cf) != NGX_OK
        || ngx_http_engagement_segments_postconf(cf) != NGX_OK)
    {
        return NGX_ERROR;
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
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_engagement_module);

    if (emcf == NULL || emcf->redis == NULL || ngx_test_config
        || ngx_process == NGX_PROCESS_SIGNALLER)
    {
        return NGX_OK;
    }

    return ngx_http_engagement_state_claim(cycle, &emcf->state_file);
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

    ngx_http_engagement_live_worker_start(cycle);
    ngx_http_engagement_series_worker_start(emcf);

    if (ngx_http_engagement_writer_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (emcf->redis == NULL || z == NULL) {
        return NGX_OK;
    }

    if (ngx_http_engagement_flush_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_live_share_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_resume_flush_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_series_flush_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_engagement_trend_worker_start(cycle);

    if (ngx_http_engagement_webhook_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_milestone_fwd_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_global_flush_start(cycle, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_engagement_trend_flush_start(cycle, emcf);
}


static void
ngx_http_engagement_exit_process(ngx_cycle_t *cycle)
{
    /* closes the Redis connection: nginx checks for open sockets next */
    ngx_http_engagement_webhook_stop();
    ngx_http_engagement_milestone_fwd_stop();
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
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_engagement_module);

    if (emcf == NULL || emcf->redis == NULL) {
        return;
    }

    ngx_http_engagement_state_write(cycle, &emcf->zones, &emcf->state_file);
}


/* a zone= or dedupe= parameter of "engagement <name>"; NGX_DECLINED: none */
static ngx_int_t
ngx_http_engagement_endpoint_param(ngx_http_engagement_loc_conf_t *elcf,
    ngx_str_t *value)
{
    ngx_str_t                             *to;
    ngx_http_engagement_endpoint_param_t  *pm;

    for (pm = ngx_http_engagement_endpoint_params; pm->prefix.len; pm++) {

        if (value->len > pm->prefix.len
            && ngx_strncmp(value->data, pm->prefix.data, pm->prefix.len) == 0
            && (!pm->view_only || elcf->endpoint == NGX_HTTP_ENGAGEMENT_VIEW))
        {
            to = (ngx_str_t *) ((u_char *) elcf + pm->offset);
            to->data = value->data + pm->prefix.len;
            to->len = value->len - pm->prefix.len;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* engagement view|summary|like|state|status|health [zone=n] [dedupe=n]; */

char *
ngx_http_engagement_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_str_t                       *value;
    ngx_uint_t                       i;
    ngx_http_core_loc_conf_t        *clcf;
    ngx_http_engagement_endpoint_t  *ep;

    value = cf->args->elts;

    if (elcf->endpoint != NGX_HTTP_ENGAGEMENT_NONE) {
        return "is duplicate";
    }

    for (ep = ngx_http_engagement_endpoints; ep->name.len; ep++) {
        if (ep->name.len == value[1].len
            && ngx_strcmp(value[1].data, ep->name.data) == 0)
        {
            break;
        }
    }

    if (ep->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown engagement endpoint \"%V\": expected "
                           "view, summary, like, state, heartbeat, live, "
                           "resume, history, event, analytics, trending, "
                           "status or health",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    elcf->endpoint = ep->endpoint;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_engagement_endpoint_param(elcf, &value[i]) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" for "
                               "\"engagement %V\"", &value[i], &value[1]);
            return NGX_CONF_ERROR;
        }
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
    clcf->handler = ep->handler;

    return NGX_CONF_OK;
}


/* engagement_reactions like love laugh ...; the first is what a POST
 * without a "reaction" field means */

char *
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


/*
 * An enum directive (cmd->post lists the choices), as
 * ngx_conf_set_enum_slot, but an unknown value is answered with the
 * choices: "must be viewer, session or client".
 */

char *
ngx_http_engagement_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char           *p, *last;
    ngx_uint_t        i, *np;
    ngx_str_t        *value;
    ngx_conf_enum_t  *e;
    u_char            buf[NGX_HTTP_ENGAGEMENT_ENUM_TEXT];

    np = (ngx_uint_t *) ((u_char *) conf + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    e = cmd->post;

    for (i = 0; e[i].name.len; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcasecmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    p = buf;
    last = buf + sizeof(buf);

    for (i = 0; e[i].name.len; i++) {
        p = ngx_slprintf(p, last, "%s%V",
                         i == 0 ? "" : (e[i + 1].name.len ? ", " : " or "),
                         &e[i].name);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" of \"%V\": must be %*s",
                       &value[1], &cmd->name, p - buf, buf);

    return NGX_CONF_ERROR;
}
