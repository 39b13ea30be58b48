
/*
 * What cluster mode (engagement_redis cluster ...) refuses at nginx -t:
 * the features whose Redis calls are not yet cluster-safe, each named
 * with what to do. Every other call has its keys in one hash slot: a
 * content's ({c:<id>}), a user's ({u:<id>}), a trending scope's ({tr},
 * {tr:cat:<c>}); the counters and series rounds are split per slot. A
 * command whose keys span slots would be refused by the cluster
 * (CROSSSLOT) at run time; refusing the configuration says so before
 * any count is sent. Milestones are cluster-safe: the content's script
 * records a crossing in its own slot and milestone_fwd.c moves it on.
 * See docs/cluster.md.
 */


#include "sink/redis/ngx_http_engagement_redis.h"
#include "store/ngx_http_engagement_series.h"


ngx_int_t
ngx_http_engagement_cluster_check(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_series_conf_t  *sc;

    if (emcf->redis == NULL || !emcf->redis->cluster) {
        return NGX_OK;
    }

    sc = emcf->series;

    if (sc && sc->shm_zone && !ngx_http_engagement_series_cluster_safe()) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "series by dimension are not supported with "
                      "\"engagement_redis cluster\" yet: a series round "
                      "writes content, channel, category and \"all\" keys "
                      "in one script call; set \"engagement_series_zone "
                      "off;\" (see docs/cluster.md)");
        return NGX_ERROR;
    }

    return NGX_OK;
}
