
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
 * one, sees the session as a heartbeat would. The log handler and the
 * status figures; the directives are in ngx_http_engagement_segments_conf.c.
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
#include "http/ngx_http_engagement_segments_int.h"


/* what a URI is, by its extension */
typedef enum {
    NGX_HTTP_ENGAGEMENT_MEDIA_OTHER = 0,     /* not ours: nothing counted */
    NGX_HTTP_ENGAGEMENT_MEDIA_PLAYLIST,      /* .m3u8, .mpd */
    NGX_HTTP_ENGAGEMENT_MEDIA_SEGMENT,       /* .ts, .m4s, ...: 200 or 206 */
    NGX_HTTP_ENGAGEMENT_MEDIA_RANGED         /* .mp4, ...: 206 only */
} ngx_http_engagement_media_e;


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


/* whether the request says Sec-GPC: 1 (the guard's opt-out signal) */

static ngx_uint_t
ngx_http_engagement_segments_gpc(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == sizeof("Sec-GPC") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Sec-GPC",
                                   sizeof("Sec-GPC") - 1) == 0
                && h[i].value.len == 1 && h[i].value.data[0] == '1')
            {
                return 1;
            }
        }
    }

    return 0;
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
    ngx_str_t *session, ngx_msec_t served, ngx_uint_t anonymous)
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
    ev.anonymous = anonymous;

    wev = NULL;

    if (ngx_http_engagement_writer_enabled()
        && ngx_http_engagement_record_view(r, &ev, &wev) == NGX_BUSY)
    {
        return NGX_BUSY;
    }

    rc = ngx_http_engagement_policy_apply(r, elcf, &ev, NULL, &out);

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
    ngx_http_engagement_media_e kind, ngx_str_t *content, ngx_str_t *session,
    ngx_uint_t anonymous)
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
                                           cr.served, anonymous)
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
    ngx_uint_t                            anonymous;
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

    /* an opted-out viewer (Sec-GPC) as engagement_opt_out says: not
     * credited (drop), or counted without an identity but its session's
     * (anonymous: as its beacons are, so both still deduplicate) */
    anonymous = 0;

    if (elcf->guard.opt_out != NGX_HTTP_ENGAGEMENT_OPT_OUT_OFF
        && ngx_http_engagement_segments_gpc(r))
    {
        if (elcf->guard.opt_out == NGX_HTTP_ENGAGEMENT_OPT_OUT_DROP) {
            ngx_http_engagement_segments_inc(sc, opted_out);
            return NGX_OK;
        }

        anonymous = 1;
        ngx_http_engagement_segments_inc(sc, anonymous);
    }

    ngx_http_engagement_segments_live(sc, &content, &session);

    ngx_http_engagement_segments_credit_one(r, elcf, sc, sl, kind, &content,
                                            &session, anonymous);

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
      "status, HEAD, a client gone before the end, a whole MP4 file, an "
      "MP4 range without bitrate= or not one range), playlist (credits "
      "nothing)",
      ngx_http_engagement_segments_field(segments) },
    { "requests_total", "notServed", "not_served", NULL, NULL,
      ngx_http_engagement_segments_field(not_served) },
    { "requests_total", "playlists", "playlist", NULL, NULL,
      ngx_http_engagement_segments_field(playlists) },
    { "segments_total", "credited", "credited", "counter",
      "Served segments with a valid token by outcome: credited (new to the "
      "session), replayed (credited before: nothing), full (no room in the "
      "segments zone: nothing), bot (a crawler's user agent: nothing), "
      "opted_out (Sec-GPC under engagement_opt_out drop: nothing)",
      ngx_http_engagement_segments_field(credited) },
    { "segments_total", "replayed", "replayed", NULL, NULL,
      ngx_http_engagement_segments_field(replayed) },
    { "segments_total", "full", "full", NULL, NULL,
      ngx_http_engagement_segments_field(full) },
    { "segments_total", "bots", "bot", NULL, NULL,
      ngx_http_engagement_segments_field(bots) },
    { "segments_total", "optedOut", "opted_out", NULL, NULL,
      ngx_http_engagement_segments_field(opted_out) },
    { "anonymous_total", "anonymous", NULL, "counter",
      "Served segments of opted-out viewers (Sec-GPC) credited without an "
      "identity but the session (engagement_opt_out anonymous)",
      ngx_http_engagement_segments_field(anonymous) },
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


/* a row of its own: in seconds, with decimals */
#define NGX_HTTP_ENGAGEMENT_SEGMENTS_SECONDS                                  \
    "# HELP nginx_engagement_segments_credited_seconds_total Media time "     \
    "credited to sessions\n"                                                 \
    "# TYPE nginx_engagement_segments_credited_seconds_total counter\n"       \
    "nginx_engagement_segments_credited_seconds_total "


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
                                             ngx_http_engagement_segments_rows)
           + sizeof(NGX_HTTP_ENGAGEMENT_SEGMENTS_SECONDS) + NGX_ATOMIC_T_LEN;
}


u_char *
ngx_http_engagement_segments_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_atomic_uint_t                     ms;
    ngx_http_engagement_segments_conf_t  *sc;

    sc = emcf->segments;

    if (sc == NULL || sc->sh == NULL) {
        return p;
    }

    p = ngx_http_engagement_stat_rows(p, "segments",
                                      ngx_http_engagement_segments_rows,
                                      ngx_http_engagement_segments_stats(sc),
                                      json, (size_t) -1, 0);

    /* the media time, kept in ms, shown in seconds with its ms */
    ms = ngx_http_engagement_segments_stats(sc)->credited_ms;

    if (json) {
        /* inside the group's object */
        p--;
        return ngx_sprintf(p, ",\"creditedSeconds\":%uA.%03uA}",
                           ms / 1000, ms % 1000);
    }

    return ngx_sprintf(p, NGX_HTTP_ENGAGEMENT_SEGMENTS_SECONDS "%uA.%03uA\n",
                       ms / 1000, ms % 1000);
}
