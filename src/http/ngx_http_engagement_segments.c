
/*
 * Views verified from what nginx served: engagement_segments in a
 * location that serves HLS or DASH media (playlists, .ts and .m4s
 * segments) or byte ranges of MP4 files. In the log phase, a segment
 * served whole (200, or 206 for a range) to a session with a valid view
 * token is credited to (session, content) in the segments zone, once per
 * segment URL; when the media time credited reaches the location's
 * policy (engagement_view_after, engagement_engaged_after), a view event
 * goes through the very policy a beacon does (deduplicated on the same
 * identity, with a durable writer line), and a live zone, where there is
 * one, sees the session as a heartbeat would. The directive, its checks,
 * the handler and the status figures.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_live.h"
#include "store/ngx_http_engagement_segments.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


#define NGX_HTTP_ENGAGEMENT_SEGMENTS_IDLE     (10 * 60 * 1000)   /* ms */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_SESSION  "$arg_es"
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_TOKEN    "$arg_et"


/* what a URI is, by its extension */
typedef enum {
    NGX_HTTP_ENGAGEMENT_MEDIA_OTHER = 0,     /* not ours: nothing counted */
    NGX_HTTP_ENGAGEMENT_MEDIA_PLAYLIST,      /* .m3u8, .mpd */
    NGX_HTTP_ENGAGEMENT_MEDIA_SEGMENT,       /* .ts, .m4s, ...: 200 or 206 */
    NGX_HTTP_ENGAGEMENT_MEDIA_RANGED         /* .mp4, ...: 206 only */
} ngx_http_engagement_media_e;


/* a location's engagement_segments */
typedef struct {
    ngx_http_complex_value_t     *content;
    ngx_http_complex_value_t     *session;
    ngx_http_complex_value_t     *token;
    ngx_msec_t                    duration;
    ngx_msec_t                    idle;
    size_t                        bitrate;     /* bits/s of MP4 files */
    ngx_str_t                     zone;        /* counters zone= */
    ngx_str_t                     dedupe;      /* dedupe zone= */
} ngx_http_engagement_segments_loc_t;


typedef struct {
    ngx_str_t                     ext;
    ngx_http_engagement_media_e   kind;
} ngx_http_engagement_media_ext_t;


static ngx_http_engagement_media_ext_t  ngx_http_engagement_media_exts[] = {
    { ngx_string("m3u8"), NGX_HTTP_ENGAGEMENT_MEDIA_PLAYLIST },
    { ngx_string("mpd"), NGX_HTTP_ENGAGEMENT_MEDIA_PLAYLIST },
    { ngx_string("ts"), NGX_HTTP_ENGAGEMENT_MEDIA_SEGMENT },
    { ngx_string("m4s"), NGX_HTTP_ENGAGEMENT_MEDIA_SEGMENT },
    { ngx_string("aac"), NGX_HTTP_ENGAGEMENT_MEDIA_SEGMENT },
    { ngx_string("cmfv"), NGX_HTTP_ENGAGEMENT_MEDIA_SEGMENT },
    { ngx_string("cmfa"), NGX_HTTP_ENGAGEMENT_MEDIA_SEGMENT },
    { ngx_string("mp4"), NGX_HTTP_ENGAGEMENT_MEDIA_RANGED },
    { ngx_string("m4v"), NGX_HTTP_ENGAGEMENT_MEDIA_RANGED },
    { ngx_string("m4a"), NGX_HTTP_ENGAGEMENT_MEDIA_RANGED },
    { ngx_string("mov"), NGX_HTTP_ENGAGEMENT_MEDIA_RANGED },
    { ngx_null_string, NGX_HTTP_ENGAGEMENT_MEDIA_OTHER }
};


/* at most one "segments zone is full" line per worker this often */
static ngx_msec_t  ngx_http_engagement_segments_full_log;


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


/* the kind of media a URI names, by the extension of its last part */

static ngx_http_engagement_media_e
ngx_http_engagement_segments_kind(ngx_str_t *uri)
{
    u_char                           *p, *end, *dot;
    ngx_http_engagement_media_ext_t  *me;

    end = uri->data + uri->len;
    dot = NULL;

    for (p = end; p > uri->data; p--) {
        if (p[-1] == '/') {
            break;
        }

        if (p[-1] == '.') {
            dot = p;
            break;
        }
    }

    if (dot == NULL) {
        return NGX_HTTP_ENGAGEMENT_MEDIA_OTHER;
    }

    for (me = ngx_http_engagement_media_exts; me->ext.len; me++) {
        if ((size_t) (end - dot) == me->ext.len
            && ngx_strncasecmp(dot, me->ext.data, me->ext.len) == 0)
        {
            return me->kind;
        }
    }

    return NGX_HTTP_ENGAGEMENT_MEDIA_OTHER;
}


/* whether the response was served: 200 or 206, its whole body sent */

static ngx_uint_t
ngx_http_engagement_segments_served(ngx_http_request_t *r,
    ngx_http_engagement_media_e kind, size_t bitrate)
{
    off_t       sent;
    ngx_uint_t  status;

    status = r->headers_out.status;

    if (r->method != NGX_HTTP_GET || r->header_only) {
        return 0;
    }

    if (status == NGX_HTTP_PARTIAL_CONTENT) {
        if (r->headers_in.range == NULL) {
            return 0;
        }

        /* a range of a file: one range (not multipart), a bit rate to
         * tell its media time */
        if (kind == NGX_HTTP_ENGAGEMENT_MEDIA_RANGED
            && (r->headers_out.content_range == NULL || bitrate == 0))
        {
            return 0;
        }

    } else if (status != NGX_HTTP_OK
               || kind == NGX_HTTP_ENGAGEMENT_MEDIA_RANGED)
    {
        /* a whole MP4 file is no measure of what was watched */
        return 0;
    }

    /* a client that left before the end was not served the segment */
    if (r->connection->error) {
        return 0;
    }

    sent = r->connection->sent - r->header_size;

    if (r->headers_out.content_length_n >= 0
        && sent < r->headers_out.content_length_n)
    {
        return 0;
    }

    return 1;
}


/* the token of the request, checked with the secret and the previous */

static ngx_http_engagement_token_rc_e
ngx_http_engagement_segments_token(ngx_http_engagement_guard_conf_t *gc,
    ngx_str_t *token, ngx_str_t *content, ngx_str_t *session)
{
    ngx_http_engagement_token_rc_e  rc, prc;

    rc = ngx_http_engagement_token_verify(gc->token_key, token->data,
                                          token->len, content, session,
                                          ngx_time());

    if ((rc == NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT
         || rc == NGX_HTTP_ENGAGEMENT_TOKEN_BAD_SIGNATURE)
        && gc->token_key_prev)
    {
        prc = ngx_http_engagement_token_verify(gc->token_key_prev,
                                               token->data, token->len,
                                               content, session, ngx_time());

        if (prc != NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT) {
            rc = prc;
        }
    }

    return rc;
}


/*
 * The session reached a level of the policy: a view event of the media
 * time served, through the view path's own steps (a durable writer line,
 * the policy, the figures). NGX_OK: decided (counted or a duplicate);
 * NGX_BUSY: no room (a zone, the writer): the next segment asks again.
 */

static ngx_int_t
ngx_http_engagement_segments_count(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_segments_conf_t *sc, ngx_str_t *content,
    ngx_str_t *session, ngx_msec_t served)
{
    void                           *wev;
    ngx_int_t                       rc;
    ngx_http_engagement_event_t     ev;
    ngx_http_engagement_outcome_t   out;

    ngx_memzero(&ev, sizeof(ngx_http_engagement_event_t));

    ev.content_id = *content;
    ev.session_id = *session;
    ev.duration_ms = (int64_t) served;
    ev.ts = -1;

    wev = NULL;

    if (ngx_http_engagement_writer_enabled()
        && ngx_http_engagement_record_view(r, &ev, &wev) == NGX_BUSY)
    {
        return NGX_BUSY;
    }

    rc = ngx_http_engagement_policy_apply(r, elcf, &ev, &out);

    if (wev == NULL) {
        /* no durable writer */

    } else if (rc != NGX_OK) {
        ngx_http_engagement_writer_cancel(wev);

    } else {
        ngx_http_engagement_writer_commit(wev,
                              ngx_http_engagement_record_metrics(&out),
                              ngx_http_engagement_reason_name(out.reason));
    }

    if (rc != NGX_OK) {
        return NGX_BUSY;
    }

    if (out.view) {
        ngx_http_engagement_stat(elcf, counted_views);
        ngx_http_engagement_segments_inc(sc, views);
    }

    if (out.engaged) {
        ngx_http_engagement_stat(elcf, counted_engaged);
        ngx_http_engagement_segments_inc(sc, engaged);
    }

    if (!out.counted) {
        ngx_http_engagement_stat_at(elcf,
                                ngx_http_engagement_reasons[out.reason].stat);
        ngx_http_engagement_segments_inc(sc, duplicates);
    }

    return NGX_OK;
}


/* a session fetching segments is a live viewer, as a heartbeat makes one */

static void
ngx_http_engagement_segments_live(ngx_http_engagement_segments_conf_t *sc,
    ngx_str_t *content, ngx_str_t *session)
{
    ngx_http_engagement_live_t        live;
    ngx_http_engagement_live_conf_t  *lc;

    lc = ngx_http_engagement_live_conf();

    if (lc == NULL || lc->sh == NULL) {
        return;
    }

    if (ngx_http_engagement_live_beat(lc, content, session, &live)
        == NGX_BUSY)
    {
        ngx_http_engagement_segments_inc(sc, live_full);
        return;
    }

    ngx_http_engagement_segments_inc(sc, live);
}


/*
 * A byte range of an MP4 file (206, one range): the file is cut in
 * NGX_HTTP_ENGAGEMENT_SEGMENTS_CHUNKS chunks; the chunks the range holds
 * whole (the last one of the file also when the range ends the file) are
 * credited once each, at the media time bitrate= gives their bytes.
 * NGX_ERROR: the Content-Range sent is not one this reads.
 */

static ngx_int_t
ngx_http_engagement_segments_range(ngx_http_request_t *r,
    ngx_http_engagement_segments_conf_t *sc,
    ngx_http_engagement_segments_loc_t *sl, uint64_t key,
    ngx_http_engagement_segments_credit_t *cr)
{
    off_t        v[3], cb;
    u_char      *p, *end;
    ngx_uint_t   i, first, last;
    ngx_msec_t   chunk_ms;

    p = r->headers_out.content_range->value.data;
    end = p + r->headers_out.content_range->value.len;

    if (end - p < 6 || ngx_strncmp(p, "bytes ", 6) != 0) {
        return NGX_ERROR;
    }

    p += 6;

    /* <first>-<last>/<length>, as the range filter writes it */
    for (i = 0; i < 3; i++) {
        if (p == end || *p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        for (v[i] = 0; p < end && *p >= '0' && *p <= '9'; p++) {
            if (v[i] >= NGX_MAX_OFF_T_VALUE / 10 - 10) {
                return NGX_ERROR;
            }

            v[i] = v[i] * 10 + (*p - '0');
        }

        if (i < 2 && (p == end || *p++ != (i == 0 ? '-' : '/'))) {
            return NGX_ERROR;
        }
    }

    if (p != end || v[0] > v[1] || v[1] >= v[2]) {
        return NGX_ERROR;
    }

    cb = (v[2] + NGX_HTTP_ENGAGEMENT_SEGMENTS_CHUNKS - 1)
         / NGX_HTTP_ENGAGEMENT_SEGMENTS_CHUNKS;

    first = (ngx_uint_t) ((v[0] + cb - 1) / cb);

    if (v[1] + 1 == v[2]) {
        last = (ngx_uint_t) ((v[2] - 1) / cb);

    } else if ((v[1] + 1) / cb == 0) {
        return NGX_DECLINED;

    } else {
        last = (ngx_uint_t) ((v[1] + 1) / cb - 1);
    }

    if (first > last) {
        /* no whole chunk: nothing new */
        return NGX_DECLINED;
    }

    chunk_ms = (ngx_msec_t) ((uint64_t) cb * 8000 / sl->bitrate);

    return ngx_http_engagement_segments_cover(sc, key, first, last, chunk_ms,
                                              sl->idle, cr);
}


/* credits the segment, then asks the policy when a level is reached */

static void
ngx_http_engagement_segments_credit_one(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_segments_conf_t *sc,
    ngx_http_engagement_segments_loc_t *sl,
    ngx_http_engagement_media_e kind, ngx_str_t *content, ngx_str_t *session)
{
    uint32_t                                seg;
    uint64_t                                key;
    ngx_int_t                               rc;
    ngx_uint_t                              want, reached;
    ngx_http_engagement_segments_credit_t   cr;

    key = ngx_http_engagement_segments_key(sc, session, content);

    if (kind == NGX_HTTP_ENGAGEMENT_MEDIA_RANGED) {
        rc = ngx_http_engagement_segments_range(r, sc, sl, key, &cr);

    } else {
        /* a segment is its URI: a range of it credits the segment once,
         * so that many small ranges of one segment earn no more than it */
        seg = ngx_http_engagement_segments_seg(sc, &r->uri, NULL);

        rc = ngx_http_engagement_segments_credit(sc, key, seg, sl->duration,
                                                 sl->idle, &cr);
    }

    if (rc == NGX_ERROR) {
        /* a range that was not "bytes <first>-<last>/<length>" */
        ngx_http_engagement_segments_inc(sc, not_served);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_engagement_segments_inc(sc, replayed);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_engagement_segments_inc(sc, full);

        if (ngx_http_engagement_zone_log_due(
                                    &ngx_http_engagement_segments_full_log))
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "segments zone \"" NGX_HTTP_ENGAGEMENT_SEGMENTS_ZONE
                          "\" is full: segments are not credited "
                          "(engagement_segments_zone sets its size)");
        }

        return;
    }

    ngx_http_engagement_segments_inc(sc, credited);
    (void) ngx_atomic_fetch_add(
                       &ngx_http_engagement_segments_stats(sc)->credited_ms,
                       cr.added);

    if (cr.fresh) {
        ngx_http_engagement_segments_inc(sc, sessions);
    }

    reached = 0;

    if (cr.served >= elcf->view_after) {
        reached |= NGX_HTTP_ENGAGEMENT_SEGMENTS_VIEW;
    }

    if (cr.served >= elcf->engaged_after) {
        reached |= NGX_HTTP_ENGAGEMENT_SEGMENTS_ENGAGED;
    }

    want = reached & ~cr.done;

    if (want == 0) {
        return;
    }

    if (ngx_http_engagement_segments_count(r, elcf, sc, content, session,
                                           cr.served)
        != NGX_OK)
    {
        ngx_http_engagement_segments_inc(sc, unavailable);
        return;
    }

    ngx_http_engagement_segments_decided(sc, key, reached);
}


/* the log phase: every request of every location comes by */

static ngx_int_t
ngx_http_engagement_segments_log(ngx_http_request_t *r)
{
    ngx_str_t                             content, session, token;
    ngx_http_engagement_media_e           kind;
    ngx_http_engagement_token_rc_e        trc;
    ngx_http_engagement_loc_conf_t       *elcf;
    ngx_http_engagement_main_conf_t      *emcf;
    ngx_http_engagement_segments_loc_t   *sl;
    ngx_http_engagement_segments_conf_t  *sc;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);
    sl = elcf->segments;

    if (sl == NULL || sl == NGX_CONF_UNSET_PTR) {
        return NGX_OK;
    }

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);
    sc = emcf->segments;

    if (sc == NULL || sc->sh == NULL) {
        return NGX_OK;
    }

    kind = ngx_http_engagement_segments_kind(&r->uri);

    if (kind == NGX_HTTP_ENGAGEMENT_MEDIA_OTHER) {
        return NGX_OK;
    }

    if (kind == NGX_HTTP_ENGAGEMENT_MEDIA_PLAYLIST) {
        ngx_http_engagement_segments_inc(sc, playlists);
        return NGX_OK;
    }

    if (!ngx_http_engagement_segments_served(r, kind, sl->bitrate)) {
        ngx_http_engagement_segments_inc(sc, not_served);
        return NGX_OK;
    }

    ngx_http_engagement_segments_inc(sc, segments);

    if (ngx_http_complex_value(r, sl->token, &token) != NGX_OK
        || ngx_http_complex_value(r, sl->content, &content) != NGX_OK
        || ngx_http_complex_value(r, sl->session, &session) != NGX_OK)
    {
        return NGX_OK;
    }

    if (token.len == 0) {
        ngx_http_engagement_segments_inc(sc,
                                  refused[NGX_HTTP_ENGAGEMENT_TOKEN_MISSING]);
        return NGX_OK;
    }

    if (!ngx_http_engagement_id_valid(content.data, content.len)
        || !ngx_http_engagement_id_valid(session.data, session.len))
    {
        ngx_http_engagement_segments_inc(sc, invalid);
        return NGX_OK;
    }

    trc = ngx_http_engagement_segments_token(&elcf->guard, &token, &content,
                                             &session);

    if (trc != NGX_HTTP_ENGAGEMENT_TOKEN_OK) {
        ngx_http_engagement_segments_inc(sc, refused[trc]);
        return NGX_OK;
    }

    if (elcf->guard.bot_agents && r->headers_in.user_agent
        && ngx_http_engagement_bot_agent(r->headers_in.user_agent->value.data,
                                         r->headers_in.user_agent->value.len))
    {
        ngx_http_engagement_segments_inc(sc, bots);
        return NGX_OK;
    }

    ngx_http_engagement_segments_live(sc, &content, &session);

    ngx_http_engagement_segments_credit_one(r, elcf, sc, sl, kind, &content,
                                            &session);

    return NGX_OK;
}


/* after the http block: the log handler, where a location uses it */

ngx_int_t
ngx_http_engagement_segments_postconf(ngx_conf_t *cf)
{
    ngx_http_handler_pt                  *h;
    ngx_http_core_main_conf_t            *cmcf;
    ngx_http_engagement_main_conf_t      *emcf;
    ngx_http_engagement_segments_conf_t  *sc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    sc = emcf->segments;

    if (sc == NULL) {
        return NGX_OK;
    }

    if (sc->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "engagement_segments_zone is ignored: no location "
                           "has \"engagement_segments on\"");
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_engagement_segments_log;

    return NGX_OK;
}


/* the segments zone's figures in the status answer */

#define ngx_http_engagement_segments_field(f)                                 \
    offsetof(ngx_http_engagement_segments_stats_t, f)

#define ngx_http_engagement_segments_refused(rc)                              \
    (ngx_http_engagement_segments_field(refused)                              \
     + (rc) * sizeof(ngx_atomic_t))

static ngx_http_engagement_stat_row_t  ngx_http_engagement_segments_rows[] = {
    { "requests_total", "segments", "served", "counter",
      "Media requests of engagement_segments locations by outcome: served "
      "(200/206, whole: the token is checked next), not_served (another "
      "status, HEAD, a client gone before the end, a whole MP4 file), "
      "playlist (credits nothing)",
      ngx_http_engagement_segments_field(segments) },
    { "requests_total", "notServed", "not_served", NULL, NULL,
      ngx_http_engagement_segments_field(not_served) },
    { "requests_total", "playlists", "playlist", NULL, NULL,
      ngx_http_engagement_segments_field(playlists) },
    { "segments_total", "credited", "credited", "counter",
      "Served segments with a valid token by outcome: credited (new to the "
      "session), replayed (credited before: nothing), full (no room in the "
      "segments zone: nothing), bot (a crawler's user agent: nothing)",
      ngx_http_engagement_segments_field(credited) },
    { "segments_total", "replayed", "replayed", NULL, NULL,
      ngx_http_engagement_segments_field(replayed) },
    { "segments_total", "full", "full", NULL, NULL,
      ngx_http_engagement_segments_field(full) },
    { "segments_total", "bots", "bot", NULL, NULL,
      ngx_http_engagement_segments_field(bots) },
    { "credited_ms_total", "creditedMs", NULL, "counter",
      "Media time credited to sessions, in milliseconds",
      ngx_http_engagement_segments_field(credited_ms) },
    { "sessions_total", "sessions", NULL, "counter",
      "Sessions (session, content pairs) that began to be credited",
      ngx_http_engagement_segments_field(sessions) },
    { "refused_total", "tokenMissing", "missing", "counter",
      "Served segments credited nothing for their view token: missing, "
      "malformed, expired, wrong_content, bad_signature, or invalid (the "
      "content or session is not a valid id)",
      ngx_http_engagement_segments_refused(
          NGX_HTTP_ENGAGEMENT_TOKEN_MISSING) },
    { "refused_total", "tokenMalformed", "malformed", NULL, NULL,
      ngx_http_engagement_segments_refused(
          NGX_HTTP_ENGAGEMENT_TOKEN_MALFORMED) },
    { "refused_total", "tokenExpired", "expired", NULL, NULL,
      ngx_http_engagement_segments_refused(
          NGX_HTTP_ENGAGEMENT_TOKEN_EXPIRED) },
    { "refused_total", "tokenWrongContent", "wrong_content", NULL, NULL,
      ngx_http_engagement_segments_refused(
          NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT) },
    { "refused_total", "tokenBadSignature", "bad_signature", NULL, NULL,
      ngx_http_engagement_segments_refused(
          NGX_HTTP_ENGAGEMENT_TOKEN_BAD_SIGNATURE) },
    { "refused_total", "invalidIds", "invalid", NULL, NULL,
      ngx_http_engagement_segments_field(invalid) },
    { "views_total", "views", "view", "counter",
      "Policy decisions from served segments: view and engaged (counted), "
      "duplicate (the session's view was counted already, by a beacon or "
      "segments), unavailable (no room in a zone or the durable writer: "
      "asked again at the next segment)",
      ngx_http_engagement_segments_field(views) },
    { "views_total", "engaged", "engaged", NULL, NULL,
      ngx_http_engagement_segments_field(engaged) },
    { "views_total", "duplicates", "duplicate", NULL, NULL,
      ngx_http_engagement_segments_field(duplicates) },
    { "views_total", "unavailable", "unavailable", NULL, NULL,
      ngx_http_engagement_segments_field(unavailable) },
    { "live_total", "live", "seen", "counter",
      "Served segments that kept their session live in the live zone "
      "(seen), or found no room there (full)",
      ngx_http_engagement_segments_field(live) },
    { "live_total", "liveFull", "full", NULL, NULL,
      ngx_http_engagement_segments_field(live_full) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


size_t
ngx_http_engagement_segments_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    if (emcf->segments == NULL
        || ((ngx_http_engagement_segments_conf_t *) emcf->segments)->sh
           == NULL)
    {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("segments",
                                             ngx_http_engagement_segments_rows);
}


u_char *
ngx_http_engagement_segments_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_http_engagement_segments_conf_t  *sc;

    sc = emcf->segments;

    if (sc == NULL || sc->sh == NULL) {
        return p;
    }

    return ngx_http_engagement_stat_rows(p, "segments",
                                       ngx_http_engagement_segments_rows,
                                       ngx_http_engagement_segments_stats(sc),
                                       json, (size_t) -1, 0);
}
