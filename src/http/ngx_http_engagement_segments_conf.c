
/*
 * engagement_segments and engagement_segments_zone: the directives, their
 * checks at nginx -t, and what a location with it on needs (its counters
 * and dedupe zones, the identity salt, the segments zone). The request
 * work is in ngx_http_engagement_segments.c.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_segments.h"
#include "protect/ngx_http_engagement_protect.h"
#include "http/ngx_http_engagement_http.h"
#include "http/ngx_http_engagement_segments_int.h"


static ngx_http_engagement_segments_conf_t *
ngx_http_engagement_segments_conf_get(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t      *emcf;
    ngx_http_engagement_segments_conf_t  *sc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->segments) {
        return emcf->segments;
    }

    sc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_segments_conf_t));
    if (sc == NULL) {
        return NULL;
    }

    sc->size = NGX_CONF_UNSET;
    emcf->segments = sc;

    return sc;
}


/* engagement_segments_zone size; */

char *
ngx_http_engagement_segments_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_http_engagement_segments_conf_t  *sc;

    sc = ngx_http_engagement_segments_conf_get(cf);
    if (sc == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_engagement_zone_size(cf, cmd, &sc->size);
}


static char *
ngx_http_engagement_segments_cv(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_complex_value_t **cvp)
{
    ngx_http_compile_complex_value_t  ccv;

    *cvp = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (*cvp == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = *cvp;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a time= parameter: positive, in nginx's time syntax */

static char *
ngx_http_engagement_segments_time(ngx_conf_t *cf, ngx_str_t *value,
    size_t skip, ngx_msec_t *to)
{
    ngx_str_t   s;
    ngx_int_t   ms;

    s.data = value->data + skip;
    s.len = value->len - skip;

    ms = ngx_parse_time(&s, 0);

    if (ms == NGX_ERROR || ms <= 0
        || ms > NGX_HTTP_ENGAGEMENT_DURATION_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" of \"engagement_segments\": must "
                           "be a positive time such as 4s or 1500ms, at "
                           "most 7d", value);
        return NGX_CONF_ERROR;
    }

    *to = (ngx_msec_t) ms;

    return NGX_CONF_OK;
}


/* one name=value parameter of "engagement_segments on" */

static char *
ngx_http_engagement_segments_param(ngx_conf_t *cf,
    ngx_http_engagement_segments_loc_t *sl, ngx_str_t *v)
{
    ssize_t    n;
    ngx_str_t  s;

#define ngx_http_engagement_segments_is(name)                                 \
    (v->len > sizeof(name) - 1                                                \
     && ngx_strncmp(v->data, name, sizeof(name) - 1) == 0)

#define ngx_http_engagement_segments_rest(name)                               \
    s.data = v->data + sizeof(name) - 1; s.len = v->len - (sizeof(name) - 1)

    if (ngx_http_engagement_segments_is("content=")) {
        ngx_http_engagement_segments_rest("content=");
        return ngx_http_engagement_segments_cv(cf, &s, &sl->content);
    }

    if (ngx_http_engagement_segments_is("session=")) {
        ngx_http_engagement_segments_rest("session=");
        return ngx_http_engagement_segments_cv(cf, &s, &sl->session);
    }

    if (ngx_http_engagement_segments_is("token=")) {
        ngx_http_engagement_segments_rest("token=");
        return ngx_http_engagement_segments_cv(cf, &s, &sl->token);
    }

    if (ngx_http_engagement_segments_is("duration=")) {
        return ngx_http_engagement_segments_time(cf, v,
                                                 sizeof("duration=") - 1,
                                                 &sl->duration);
    }

    if (ngx_http_engagement_segments_is("idle=")) {
        return ngx_http_engagement_segments_time(cf, v, sizeof("idle=") - 1,
                                                 &sl->idle);
    }

    if (ngx_http_engagement_segments_is("bitrate=")) {
        ngx_http_engagement_segments_rest("bitrate=");
        n = ngx_parse_size(&s);

        if (n == NGX_ERROR || n < 1024) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\" of \"engagement_segments\": "
                               "must be the MP4 files' bits per second, at "
                               "least 1k, e.g. bitrate=800k", v);
            return NGX_CONF_ERROR;
        }

        sl->bitrate = (size_t) n;
        return NGX_CONF_OK;
    }

    if (ngx_http_engagement_segments_is("zone=")) {
        ngx_http_engagement_segments_rest("zone=");
        sl->zone = s;
        return NGX_CONF_OK;
    }

    if (ngx_http_engagement_segments_is("dedupe=")) {
        ngx_http_engagement_segments_rest("dedupe=");
        sl->dedupe = s;
        return NGX_CONF_OK;
    }

#undef ngx_http_engagement_segments_is
#undef ngx_http_engagement_segments_rest

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of \"engagement_segments\": "
                       "expected content=, session=, token=, duration=, "
                       "bitrate=, idle=, zone= or dedupe=", v);

    return NGX_CONF_ERROR;
}


/*
 * engagement_segments on content=<id> duration=<time> [session=<value>]
 *     [token=<value>] [idle=<time>] [zone=<name>] [dedupe=<name>];
 * engagement_segments off;
 */

char *
ngx_http_engagement_segments_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_str_t                            *value, s;
    ngx_uint_t                            i;
    ngx_http_engagement_segments_loc_t   *sl;

    if (elcf->segments != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"engagement_segments off\" takes no "
                               "parameters");
            return NGX_CONF_ERROR;
        }

        elcf->segments = NULL;
        return NGX_CONF_OK;
    }

    if (value[1].len != 2 || ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" of \"engagement_segments\": "
                           "must be on or off", &value[1]);
        return NGX_CONF_ERROR;
    }

    sl = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_segments_loc_t));
    if (sl == NULL) {
        return NGX_CONF_ERROR;
    }

    sl->idle = NGX_HTTP_ENGAGEMENT_SEGMENTS_IDLE;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_http_engagement_segments_param(cf, sl, &value[i])
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (sl->content == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_segments on\" needs content=: the "
                           "content id of the media the location serves, "
                           "e.g. content=$1 from the location's regex");
        return NGX_CONF_ERROR;
    }

    if (sl->duration == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_segments on\" needs duration=: the "
                           "media time one segment (or byte range) is "
                           "credited, e.g. duration=4s (ffmpeg's hls_time)");
        return NGX_CONF_ERROR;
    }

    if (sl->session == NULL) {
        ngx_str_set(&s, NGX_HTTP_ENGAGEMENT_SEGMENTS_SESSION);

        if (ngx_http_engagement_segments_cv(cf, &s, &sl->session)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (sl->token == NULL) {
        ngx_str_set(&s, NGX_HTTP_ENGAGEMENT_SEGMENTS_TOKEN);

        if (ngx_http_engagement_segments_cv(cf, &s, &sl->token)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    elcf->segments = sl;

    return NGX_CONF_OK;
}


/* whether another shared memory zone has the segments zone's name */

static ngx_uint_t
ngx_http_engagement_segments_name_taken(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    for (part = &cf->cycle->shared_memory.part; part; part = part->next) {
        zone = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (zone[i].shm.name.len == name->len
                && ngx_strncmp(zone[i].shm.name.data, name->data, name->len)
                   == 0)
            {
                return 1;
            }
        }
    }

    return 0;
}


/* the zones of a location with engagement_segments on */

static char *
ngx_http_engagement_segments_zones(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *conf,
    ngx_http_engagement_segments_loc_t *sl)
{
    ngx_str_t                             name;
    ngx_http_engagement_main_conf_t      *emcf;
    ngx_http_engagement_segments_conf_t  *sc;

    if (sl->zone.len) {
        conf->counters = ngx_http_engagement_zone_get(cf, &sl->zone, 0, 0, 0);

    } else {
        ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_DEFAULT_ZONE);
        conf->counters = ngx_http_engagement_zone_get(cf, &name,
                                        NGX_HTTP_ENGAGEMENT_DEFAULT_ZSIZE,
                                        0, 0);
    }

    if (conf->counters == NULL) {
        return NGX_CONF_ERROR;
    }

    if (sl->dedupe.len) {
        conf->dedupe = ngx_http_engagement_zone_get(cf, &sl->dedupe, 0, 1, 0);

    } else {
        ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_DEFAULT_DEDUPE);
        conf->dedupe = ngx_http_engagement_zone_get(cf, &name,
                                        NGX_HTTP_ENGAGEMENT_DEFAULT_DSIZE,
                                        1, 0);
    }

    if (conf->dedupe == NULL) {
        return NGX_CONF_ERROR;
    }

    /* identities are hashed with the rotating salt, as a view's are */
    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (conf->guard.salt_zone == NULL) {
        conf->guard.salt_zone = ngx_http_engagement_salt_zone(cf);
        if (conf->guard.salt_zone == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->guard.salt_grace = &emcf->salt_grace;
        conf->guard.salt_shared = emcf->salt_shared ? emcf->salt_key : NULL;
    }

    sc = ngx_http_engagement_segments_conf_get(cf);
    if (sc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (sc->shm_zone == NULL) {
        if (sc->size == NGX_CONF_UNSET) {
            sc->size = NGX_HTTP_ENGAGEMENT_SEGMENTS_ZSIZE;
        }

        ngx_str_set(&name, NGX_HTTP_ENGAGEMENT_SEGMENTS_ZONE);

        if (ngx_http_engagement_segments_name_taken(cf, &name)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "zone name \"%V\" is reserved for the "
                               "module's segments zone; give the zone "
                               "another name", &name);
            return NGX_CONF_ERROR;
        }

        sc->shm_zone = ngx_http_engagement_zone_shm(cf, &name, sc->size,
                                    ngx_http_engagement_segments_init_zone,
                                    sc);
        if (sc->shm_zone == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * Called from the module's merge for every location: inherits the
 * directive, and checks and prepares a location that has it on.
 */

char *
ngx_http_engagement_segments_merge(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *prev, ngx_http_engagement_loc_conf_t *conf)
{
    ngx_msec_t                           need;
    ngx_http_engagement_segments_loc_t  *sl;

    ngx_conf_merge_ptr_value(conf->segments, prev->segments, NULL);

    sl = conf->segments;

    if (sl == NULL) {
        return NGX_CONF_OK;
    }

    if (conf->endpoint != NGX_HTTP_ENGAGEMENT_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_segments\" is for a location that "
                           "serves media, not an \"engagement\" endpoint");
        return NGX_CONF_ERROR;
    }

    if (conf->guard.token_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_segments\" needs "
                           "\"engagement_token_secret\": a segment is "
                           "credited only to a session with a valid view "
                           "token");
        return NGX_CONF_ERROR;
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

    /* every segment up to the engaged level is remembered, to tell a
     * replay: the set must hold them */
    need = (conf->engaged_after + sl->duration - 1) / sl->duration;

    if (need > NGX_HTTP_ENGAGEMENT_SEGMENTS_SET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_segments\": "
                           "\"engagement_engaged_after\" (%M ms) takes %M "
                           "segments of duration=%Mms, more than the %d a "
                           "session remembers; raise duration= or lower "
                           "\"engagement_engaged_after\"",
                           conf->engaged_after, need, sl->duration,
                           NGX_HTTP_ENGAGEMENT_SEGMENTS_SET);
        return NGX_CONF_ERROR;
    }

    return ngx_http_engagement_segments_zones(cf, conf, sl);
}
