
/*
 * Creator milestones' webhook: the directive
 *   engagement_milestone_webhook http://host[:port]/path [timeout=5s]
 *       [connect_timeout=2s] [rate=10|off] [batch=8];
 * and its check after the http block. The delivery is webhook.c's.
 */


#include "ngx_http_engagement_module.h"
#include "sink/writer/ngx_http_engagement_webhook.h"


static char *ngx_http_engagement_webhook_url(ngx_conf_t *cf,
    ngx_http_engagement_webhook_conf_t *wh, ngx_str_t *url);


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

    if (ngx_http_engagement_webhook_url(cf, wh, &value[1]) != NGX_CONF_OK) {
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


/* http:// only (the client has no TLS), resolved now */

static char *
ngx_http_engagement_webhook_url(ngx_conf_t *cf,
    ngx_http_engagement_webhook_conf_t *wh, ngx_str_t *url)
{
    size_t     i;
    ngx_url_t  u;

    if (url->len >= 8
        && ngx_strncasecmp(url->data, (u_char *) "https://", 8) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone_webhook \"%V\": https is "
                           "not supported (the client has no TLS); use "
                           "http://, e.g. to a local TLS proxy", url);
        return NGX_CONF_ERROR;
    }

    if (url->len <= 7
        || ngx_strncasecmp(url->data, (u_char *) "http://", 7) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone_webhook \"%V\": an "
                           "http:// URL is expected", url);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = url->data + 7;
    u.url.len = url->len - 7;
    u.default_port = 80;
    u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_milestone_webhook \"%V\": %s", url,
                           u.err ? u.err : "host not found");
        return NGX_CONF_ERROR;
    }

    wh->url = *url;
    wh->addr = u.addrs[0];
    wh->host = u.host;

    if (u.port != 80) {
        wh->host.data = ngx_pnalloc(cf->pool, u.host.len + 1 + NGX_INT_T_LEN);
        if (wh->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        wh->host.len = ngx_sprintf(wh->host.data, "%V:%d", &u.host, u.port)
                       - wh->host.data;
    }

    if (u.uri.len) {
        wh->uri = u.uri;

    } else {
        ngx_str_set(&wh->uri, "/");
    }

    for (i = 0; i < wh->uri.len; i++) {
        if (wh->uri.data[i] <= ' ' || wh->uri.data[i] >= 0x7f
            || wh->uri.data[i] == '#')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_milestone_webhook \"%V\": the "
                               "path must be URL-encoded, without a "
                               "fragment", url);
            return NGX_CONF_ERROR;
        }
    }

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
