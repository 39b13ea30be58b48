
/*
 * Creator milestones: the directives
 *   engagement_milestone views|likes <n> [<n> ...];
 *   engagement_milestone_publish <channel> [rate=<n>];
 * and the arguments the flush and reaction scripts take for them. Which
 * threshold a content crosses is decided in Redis, inside the script that
 * applies the count (the flush round's, under its batch key, or the
 * reaction's), so exactly once across edges and resends: see
 * NGX_HTTP_ENGAGEMENT_MILESTONE_LUA in redis_scripts.c.
 */


#include "ngx_http_engagement_module.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_webhook.h"


/* thresholds per metric, and the default channel and rate */
#define NGX_HTTP_ENGAGEMENT_MILESTONE_CHANNEL  "eng:milestones"
#define NGX_HTTP_ENGAGEMENT_MILESTONE_RATE     60


static ngx_str_t  ngx_http_engagement_milestone_metrics[] = {
    ngx_string("views"),
    ngx_string("likes")
};


static ngx_http_engagement_milestone_conf_t *
ngx_http_engagement_milestone_get(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_milestone_conf_t  *mc;

    if (emcf->milestone) {
        return emcf->milestone;
    }

    mc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_milestone_conf_t));
    if (mc == NULL) {
        return NULL;
    }

    ngx_str_set(&mc->channel, NGX_HTTP_ENGAGEMENT_MILESTONE_CHANNEL);
    mc->rate = NGX_HTTP_ENGAGEMENT_MILESTONE_RATE;
    mc->rate_text.data = (u_char *) "60";
    mc->rate_text.len = 2;

    emcf->milestone = mc;

    return mc;
}


char *
ngx_http_engagement_milestone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    int64_t                                last;
    ngx_str_t                             *value, *t;
    ngx_int_t                              n;
    ngx_uint_t                             i, metric;
    ngx_array_t                          **list;
    ngx_http_engagement_milestone_conf_t  *mc;

    value = cf->args->elts;

    for (metric = 0; metric < 2; metric++) {
        if (value[1].len == ngx_http_engagement_milestone_metrics[metric].len
            && ngx_strncmp(value[1].data,
                           ngx_http_engagement_milestone_metrics[metric].data,
                           value[1].len) == 0)
        {
            break;
        }
    }

    if (metric == 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone: unknown metric \"%V\" "
                           "(views or likes)", &value[1]);
        return NGX_CONF_ERROR;
    }

    mc = ngx_http_engagement_milestone_get(cf, emcf);
    if (mc == NULL) {
        return NGX_CONF_ERROR;
    }

    list = metric ? &mc->likes : &mc->views;

    if (*list) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone %V is duplicate", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts - 2 > NGX_HTTP_ENGAGEMENT_MILESTONE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone: at most %d thresholds "
                           "per metric", NGX_HTTP_ENGAGEMENT_MILESTONE_MAX);
        return NGX_CONF_ERROR;
    }

    *list = ngx_array_create(cf->pool, cf->args->nelts - 2,
                             sizeof(ngx_str_t));
    if (*list == NULL) {
        return NGX_CONF_ERROR;
    }

    last = 0;

    for (i = 2; i < cf->args->nelts; i++) {
        n = ngx_atoi(value[i].data, value[i].len);

        if (n == NGX_ERROR || n == 0 || value[i].len > 15) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_milestone: invalid threshold "
                               "\"%V\" (a whole number from 1 to "
                               "999999999999999)", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (n <= last) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_milestone: thresholds must "
                               "increase (\"%V\" after %L)", &value[i], last);
            return NGX_CONF_ERROR;
        }

        last = n;

        t = ngx_array_push(*list);
        if (t == NULL) {
            return NGX_CONF_ERROR;
        }

        *t = value[i];
    }

    return NGX_CONF_OK;
}


char *
ngx_http_engagement_milestone_publish(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ngx_int_t                              n;
    ngx_str_t                             *value;
    ngx_uint_t                             i;
    ngx_http_engagement_milestone_conf_t  *mc;

    value = cf->args->elts;

    mc = ngx_http_engagement_milestone_get(cf, emcf);
    if (mc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mc->published) {
        return "is duplicate";
    }

    mc->published = 1;

    if (value[1].len == 0 || value[1].len > 128) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone_publish: the channel "
                           "name must be 1 to 128 bytes");
        return NGX_CONF_ERROR;
    }

    mc->channel = value[1];

    for (i = 2; i < cf->args->nelts; i++) {
        if (value[i].len > 5 && ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n == NGX_ERROR || n == 0 || n > 1000000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_milestone_publish: invalid "
                                   "\"%V\" (rate=1 to 1000000 a minute)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            mc->rate = n;
            mc->rate_text.data = value[i].data + 5;
            mc->rate_text.len = value[i].len - 5;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone_publish: invalid "
                           "parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* after the http block: milestones are decided in Redis */

ngx_int_t
ngx_http_engagement_milestone_check(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_milestone_conf_t  *mc = emcf->milestone;

    if (ngx_http_engagement_webhook_check(cf, emcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (mc == NULL) {
        return NGX_OK;
    }

    if (emcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "engagement_milestone and "
                      "engagement_milestone_publish need engagement_redis: "
                      "milestones are decided in Redis");
        return NGX_ERROR;
    }

    if (mc->likes) {
        ngx_uint_t   i;
        ngx_str_t   *types;

        types = emcf->reactions ? emcf->reactions->elts : NULL;

        for (i = 0; types && i < emcf->reactions->nelts; i++) {
            if (types[i].len == 4 && ngx_strncmp(types[i].data, "like", 4) == 0)
            {
                break;
            }
        }

        if (types == NULL || i == emcf->reactions->nelts) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "engagement_milestone likes counts the reaction "
                          "\"like\", which engagement_reactions does not "
                          "name");
            return NGX_ERROR;
        }
    }

    if (mc->views == NULL && mc->likes == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "engagement_milestone_publish without "
                      "engagement_milestone: no threshold to publish");
        return NGX_ERROR;
    }

    if (emcf->webhook) {
        /* "<rate> 1": the script also fills the webhook's outbox */
        u_char  *p;

        p = ngx_pnalloc(cf->pool, mc->rate_text.len + 2);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, mc->rate_text.data, mc->rate_text.len);
        p[mc->rate_text.len] = ' ';
        p[mc->rate_text.len + 1] = '1';
        mc->rate_text.data = p;
        mc->rate_text.len += 2;
    }

    return NGX_OK;
}


/* how many script arguments a metric's milestones take (0: views) */

ngx_uint_t
ngx_http_engagement_milestone_argc(ngx_http_engagement_main_conf_t *emcf,
    ngx_uint_t metric)
{
    ngx_array_t                           *list;
    ngx_http_engagement_milestone_conf_t  *mc = emcf->milestone;

    list = (mc == NULL) ? NULL : (metric ? mc->likes : mc->views);

    return list ? 1 + list->nelts + 4 : 1;
}


/*
 * The metric's milestone arguments: their number of thresholds, the
 * thresholds, then the channel, the rate a minute, this edge's minute
 * (YYYYMMDDHHMM, the rate's key) and unix time; buf holds the text made
 * here (NGX_HTTP_ENGAGEMENT_MILESTONE_BUF bytes). Returns the count.
 */

ngx_uint_t
ngx_http_engagement_milestone_args(ngx_http_engagement_main_conf_t *emcf,
    ngx_uint_t metric, const char **argv, size_t *lens, u_char *buf)
{
    u_char                                *p;
    ngx_tm_t                               tm;
    ngx_str_t                             *t;
    ngx_uint_t                             i, n;
    ngx_array_t                           *list;
    ngx_http_engagement_milestone_conf_t  *mc = emcf->milestone;

    list = (mc == NULL) ? NULL : (metric ? mc->likes : mc->views);

    if (list == NULL) {
        argv[0] = "0";
        lens[0] = 1;
        return 1;
    }

    p = buf;
    argv[0] = (const char *) p;
    p = ngx_sprintf(p, "%ui", list->nelts);
    lens[0] = p - buf;
    n = 1;

    t = list->elts;

    for (i = 0; i < list->nelts; i++) {
        argv[n] = (const char *) t[i].data;
        lens[n++] = t[i].len;
    }

    argv[n] = (const char *) mc->channel.data;
    lens[n++] = mc->channel.len;
    argv[n] = (const char *) mc->rate_text.data;
    lens[n++] = mc->rate_text.len;

    ngx_gmtime(ngx_time(), &tm);
    argv[n] = (const char *) p;
    lens[n++] = ngx_sprintf(p, "%04d%02d%02d%02d%02d", tm.ngx_tm_year,
                            tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                            tm.ngx_tm_min)
                - p;
    p += lens[n - 1];

    argv[n] = (const char *) p;
    lens[n++] = ngx_sprintf(p, "%T", ngx_time()) - p;

    return n;
}
