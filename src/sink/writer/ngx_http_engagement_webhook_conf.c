
/*
 * Creator milestones' webhook: the directive
 *   engagement_milestone_webhook http://host[:port]/path [timeout=5s]
 *       [connect_timeout=2s] [rate=10|off] [batch=8];
 * and its check after the http block. The delivery is webhook.c's.
 */


#include "ngx_http_engagement_module.h"
#include "sink/writer/ngx_http_engagement_webhook.h"
#include "sink/writer/ngx_http_engagement_writer.h"




/* the directive */

char *
ngx_http_engagement_webhook_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ngx_int_t                            n;
    ngx_str_t                           *value, s;
    ngx_uint_t                           i;
    ngx_msec_t                           ms;
    ngx_http_engagement_webhook_conf_t  *wh;

    if (emcf->webhook) {
        return "is duplicate";
    }

    value = cf->args->elts;

    wh = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_webhook_conf_t));
    if (wh == NULL) {
        return NGX_CONF_ERROR;
    }

    wh->timeout = 5000;
    wh->connect_timeout = 2000;
    wh->rate = 10;
    wh->batch = 8;

    wh->url = value[1];

    if (ngx_http_engagement_http_url(cf, "engagement_milestone_webhook",
                                     &value[1], &wh->addr, &wh->host,
                                     &wh->uri)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0
            || ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0)
        {
            s = value[i];
            n = (s.data[0] == 't') ? 8 : 16;
            s.data += n;
            s.len -= n;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0 || ms > 60000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_milestone_webhook: invalid "
                                   "\"%V\" (a time from 1ms to 60s)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            if (n == 8) {
                wh->timeout = ms;
            } else {
                wh->connect_timeout = ms;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            if (value[i].len == 8
                && ngx_strncmp(value[i].data + 5, "off", 3) == 0)
            {
                wh->rate = 0;
                continue;
            }

            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n == NGX_ERROR || n == 0 || n > 1000000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_milestone_webhook: invalid "
                                   "\"%V\" (rate=1 to 1000000 a minute per "
                                   "channel, or rate=off)", &value[i]);
                return NGX_CONF_ERROR;
            }

            wh->rate = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "batch=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n == NGX_ERROR || n == 0 || n > 100) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "engagement_milestone_webhook: invalid "
                                   "\"%V\" (batch=1 to 100)", &value[i]);
                return NGX_CONF_ERROR;
            }

            wh->batch = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone_webhook: invalid "
                           "parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    emcf->webhook = wh;

    return NGX_CONF_OK;
}


/* after the http block (milestone_check): needs thresholds and Redis */

ngx_int_t
ngx_http_engagement_webhook_check(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf)
{
    if (emcf->webhook == NULL) {
        return NGX_OK;
    }

    if (emcf->milestone == NULL || emcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "engagement_milestone_webhook needs engagement_redis "
                      "and engagement_milestone thresholds");
        return NGX_ERROR;
    }

    return NGX_OK;
}
