
/*
 * Late events: a client timestamp ("ts") is accepted within a window
 * around the edge's clock (engagement_ts_window back [ahead], default
 * 24h back, 5m ahead); outside it the event is valid but counts nothing,
 * with the reason too_old or in_future.
 */


#include "protect/ngx_http_engagement_protect.h"


/* "off" on one side: any ts the parser accepts (years 2000-2200) */
#define NGX_HTTP_ENGAGEMENT_TS_ANY  ((ngx_msec_t) NGX_MAX_INT32_VALUE)


/* engagement_ts_window back [ahead] | off; */

char *
ngx_http_engagement_ts_window_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_msec_t   v[2];

    if (elcf->ts_back != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        elcf->ts_back = NGX_HTTP_ENGAGEMENT_TS_ANY;
        elcf->ts_ahead = NGX_HTTP_ENGAGEMENT_TS_ANY;
        return NGX_CONF_OK;
    }

    v[1] = NGX_HTTP_ENGAGEMENT_TS_AHEAD_DEFAULT;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "off") == 0) {
            v[i - 1] = NGX_HTTP_ENGAGEMENT_TS_ANY;
            continue;
        }

        n = ngx_parse_time(&value[i], 0);

        if (n == NGX_ERROR || (ngx_msec_t) n >= NGX_HTTP_ENGAGEMENT_TS_ANY) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_ts_window: invalid time \"%V\": "
                               "expected e.g. 24h or 5m (under 24d), or "
                               "off", &value[i]);
            return NGX_CONF_ERROR;
        }

        v[i - 1] = (ngx_msec_t) n;
    }

    elcf->ts_back = v[0];
    elcf->ts_ahead = v[1];

    return NGX_CONF_OK;
}


/* REASON_NONE: within the window (or no ts); else too old or in future */

ngx_http_engagement_reason_e
ngx_http_engagement_ts_check(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev)
{
    int64_t      now;
    ngx_time_t  *tp;

    if (ev->ts < 0) {
        return NGX_HTTP_ENGAGEMENT_REASON_NONE;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    if (elcf->ts_back != NGX_HTTP_ENGAGEMENT_TS_ANY
        && ev->ts < now - (int64_t) elcf->ts_back)
    {
        return NGX_HTTP_ENGAGEMENT_REASON_TOO_OLD;
    }

    if (elcf->ts_ahead != NGX_HTTP_ENGAGEMENT_TS_ANY
        && ev->ts > now + (int64_t) elcf->ts_ahead)
    {
        return NGX_HTTP_ENGAGEMENT_REASON_IN_FUTURE;
    }

    return NGX_HTTP_ENGAGEMENT_REASON_NONE;
}
