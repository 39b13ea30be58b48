
/*
 * The trending zone's configuration: engagement_trending_zone,
 * engagement_trending_bucket, engagement_trending_like_weight and
 * engagement_trending_cache, the checks after the http block and the
 * zone's declaration. The zone's making and use are in trend.c.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_trend.h"


static ngx_http_engagement_trend_conf_t *
ngx_http_engagement_trend_conf_get(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t   *emcf;
    ngx_http_engagement_trend_conf_t  *tc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->trend) {
        return emcf->trend;
    }

    tc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_trend_conf_t));
    if (tc == NULL) {
        return NULL;
    }

    tc->size = NGX_CONF_UNSET;
    tc->k = NGX_CONF_UNSET_UINT;
    tc->categories = NGX_CONF_UNSET_UINT;
    tc->category_k = NGX_CONF_UNSET_UINT;
    tc->bucket = NGX_CONF_UNSET;
    tc->like_weight = NGX_CONF_UNSET_UINT;
    tc->cache = NGX_CONF_UNSET_MSEC;

    emcf->trend = tc;

    return tc;
}


/* k=, categories=, category_k=: a number in [lo, hi] */
static ngx_int_t
ngx_http_engagement_trend_param(ngx_conf_t *cf, ngx_str_t *value,
    const char *name, ngx_uint_t lo, ngx_uint_t hi, ngx_uint_t *to)
{
    size_t     n;
    ngx_int_t  v;

    n = ngx_strlen(name);

    if (value->len <= n || ngx_strncmp(value->data, name, n) != 0) {
        return NGX_DECLINED;
    }

    v = ngx_atoi(value->data + n, value->len - n);

    if (v == NGX_ERROR || (ngx_uint_t) v < lo || (ngx_uint_t) v > hi) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" of \"engagement_trending_zone\": "
                           "%s from %ui to %ui", value, name, lo, hi);
        return NGX_ERROR;
    }

    *to = (ngx_uint_t) v;

    return NGX_OK;
}


/* engagement_trending_zone name:size [k=N] [categories=N] [category_k=N] */

char *
ngx_http_engagement_trend_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_int_t                          rc;
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_engagement_trend_conf_t  *tc;

    tc = ngx_http_engagement_trend_conf_get(cf);
    if (tc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (tc->declared) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_engagement_zone_parse(cf, &value[1], "zone",
                                       "engagement_trending:4m", &tc->name,
                                       &tc->size)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        rc = ngx_http_engagement_trend_param(cf, &value[i], "k=", 8,
                                             NGX_HTTP_ENGAGEMENT_TREND_K_MAX,
                                             &tc->k);
        if (rc == NGX_DECLINED) {
            rc = ngx_http_engagement_trend_param(cf, &value[i],
                                        "categories=", 0,
                                        NGX_HTTP_ENGAGEMENT_TREND_CATS_MAX,
                                        &tc->categories);
        }

        if (rc == NGX_DECLINED) {
            rc = ngx_http_engagement_trend_param(cf, &value[i],
                                        "category_k=", 1,
                                        NGX_HTTP_ENGAGEMENT_TREND_K_MAX,
                                        &tc->category_k);
        }

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of \"%V\": "
                               "k=, categories= or category_k=",
                               &value[i], &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (rc != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    tc->declared = 1;

    return NGX_CONF_OK;
}


/* engagement_trending_bucket 1m (1s to 1m: shorter for tests) */

char *
ngx_http_engagement_trend_bucket_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    time_t                             t;
    ngx_str_t                         *value;
    ngx_http_engagement_trend_conf_t  *tc;

    tc = ngx_http_engagement_trend_conf_get(cf);
    if (tc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (tc->bucket != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t < 1 || t > 60) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\" of \"%V\": from 1s to 1m "
                           "(the default; shorter buckets are for tests)",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    tc->bucket = t;

    return NGX_CONF_OK;
}


/* engagement_trending_like_weight N (0 to 1000 views) */

char *
ngx_http_engagement_trend_like_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_int_t                          n;
    ngx_str_t                         *value;
    ngx_http_engagement_trend_conf_t  *tc;

    tc = ngx_http_engagement_trend_conf_get(cf);
    if (tc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (tc->like_weight != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n > 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" of \"%V\": a number of "
                           "views from 0 to 1000, e.g. 5", &value[1],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    tc->like_weight = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


/* engagement_trending_cache 1s (0 to 1m) */

char *
ngx_http_engagement_trend_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_msec_t                         t;
    ngx_str_t                         *value;
    ngx_http_engagement_trend_conf_t  *tc;

    tc = ngx_http_engagement_trend_conf_get(cf);
    if (tc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (tc->cache != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;
    t = ngx_parse_time(&value[1], 0);

    if (t == (ngx_msec_t) NGX_ERROR || t > 60000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid time \"%V\" of \"%V\": from 0 (off) to "
                           "1m, e.g. 1s", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    tc->cache = t;

    return NGX_CONF_OK;
}


/* a location with "engagement trending": the zone is made (postconf) */

ngx_http_engagement_trend_conf_t *
ngx_http_engagement_trend_use(ngx_conf_t *cf)
{
    ngx_http_engagement_trend_conf_t  *tc;

    tc = ngx_http_engagement_trend_conf_get(cf);
    if (tc == NULL) {
        return NULL;
    }

    if (tc->name.len == 0) {
        ngx_str_set(&tc->name, NGX_HTTP_ENGAGEMENT_TREND_ZONE);
    }

    return tc;
}


/*
 * After the http block: a trending zone (declared, or for a location with
 * "engagement trending") needs a Redis; its defaults; the zone made.
 */

ngx_int_t
ngx_http_engagement_trend_postconf(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t   *emcf;
    ngx_http_engagement_trend_conf_t  *tc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    tc = emcf->trend;

    if (tc == NULL) {
        return NGX_OK;
    }

    if (!tc->declared && tc->name.len == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "engagement_trending_bucket, "
                           "engagement_trending_like_weight and "
                           "engagement_trending_cache are ignored: no "
                           "\"engagement_trending_zone\" and no location "
                           "has \"engagement trending\"");
        emcf->trend = NULL;
        return NGX_OK;
    }

    if (emcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_trending_zone\" and \"engagement "
                           "trending\" need \"engagement_redis\": trending "
                           "sketches are merged in Redis");
        return NGX_ERROR;
    }

    if (tc->size == NGX_CONF_UNSET) {
        tc->size = NGX_HTTP_ENGAGEMENT_TREND_ZSIZE;
    }

    ngx_conf_init_uint_value(tc->k, NGX_HTTP_ENGAGEMENT_TREND_K);
    ngx_conf_init_uint_value(tc->categories, NGX_HTTP_ENGAGEMENT_TREND_CATS);
    ngx_conf_init_uint_value(tc->category_k, NGX_HTTP_ENGAGEMENT_TREND_CAT_K);
    ngx_conf_init_value(tc->bucket, NGX_HTTP_ENGAGEMENT_TREND_BUCKET);
    ngx_conf_init_uint_value(tc->like_weight, NGX_HTTP_ENGAGEMENT_TREND_LIKE);
    ngx_conf_init_msec_value(tc->cache, 1000);

    if (tc->shm_zone) {
        return NGX_OK;
    }

    tc->shm_zone = ngx_http_engagement_zone_shm(cf, &tc->name, tc->size,
                                          ngx_http_engagement_trend_init_zone,
                                          tc);

    return tc->shm_zone ? NGX_OK : NGX_ERROR;
}


ngx_http_engagement_trend_conf_t *
ngx_http_engagement_trend_conf(void)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_engagement_module);
    if (emcf == NULL || emcf->trend == NULL) {
        return NULL;
    }

    return ((ngx_http_engagement_trend_conf_t *) emcf->trend)->sh
           ? emcf->trend : NULL;
}
