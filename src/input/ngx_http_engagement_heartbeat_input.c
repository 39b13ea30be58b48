
/*
 * A heartbeat's body: {"contentId","sessionId","positionMs","state"}, and
 * the fields the guard and the rate limits read of a view event
 * (viewerId, token, optOut); for the resume position, the user's id
 * ("userId", as a reaction's) and the media's length ("durationMs").
 * The JSON is checked by ngx_http_engagement_json.c, which hands back the
 * values of these keys; each is then checked by its rule here. Unknown
 * keys are ignored. A refusal names the field and why.
 */


#include "input/ngx_http_engagement_json.h"


/* the largest position: 2^53 - 1 ms, the largest exact integer in JSON */
#define NGX_HTTP_ENGAGEMENT_POSITION_MAX   9007199254740991LL


enum {
    NGX_HTTP_ENGAGEMENT_HB_CONTENT = 0,
    NGX_HTTP_ENGAGEMENT_HB_SESSION,
    NGX_HTTP_ENGAGEMENT_HB_POSITION,
    NGX_HTTP_ENGAGEMENT_HB_STATE,
    NGX_HTTP_ENGAGEMENT_HB_VIEWER,
    NGX_HTTP_ENGAGEMENT_HB_TOKEN,
    NGX_HTTP_ENGAGEMENT_HB_OPT_OUT,
    NGX_HTTP_ENGAGEMENT_HB_USER,
    NGX_HTTP_ENGAGEMENT_HB_DURATION,
    NGX_HTTP_ENGAGEMENT_HB_KEYS
};


static ngx_str_t
    ngx_http_engagement_hb_names[NGX_HTTP_ENGAGEMENT_HB_KEYS] =
{
    ngx_string("contentId"),
    ngx_string("sessionId"),
    ngx_string("positionMs"),
    ngx_string("state"),
    ngx_string("viewerId"),
    ngx_string("token"),
    ngx_string("optOut"),
    ngx_string("userId"),
    ngx_string("durationMs")
};


/*
 * The keys, named at the first parse: no chars, so the parser hands every
 * value back in vals (and stores nothing itself)
 */
static ngx_http_engagement_json_key_t
    ngx_http_engagement_hb_keys[NGX_HTTP_ENGAGEMENT_HB_KEYS];


static ngx_str_t  ngx_http_engagement_play_states[] = {
    ngx_string("playing"),      /* NGX_HTTP_ENGAGEMENT_PLAYING */
    ngx_string("paused"),
    ngx_string("buffering"),
    ngx_string("ended")
};


static ngx_http_engagement_json_keyset_t  ngx_http_engagement_hb_keyset;
static ngx_uint_t                         ngx_http_engagement_hb_ready;


static ngx_int_t
ngx_http_engagement_hb_error(ngx_http_engagement_error_t *err,
    ngx_uint_t key, const char *message)
{
    err->field = (const char *) ngx_http_engagement_hb_names[key].data;
    err->message = message;
    err->detail_len = 0;

    return NGX_ERROR;
}


/* an identifier: absent is an error when required */
static ngx_int_t
ngx_http_engagement_hb_id(ngx_http_engagement_jv_t *vals, uint32_t found,
    ngx_uint_t key, ngx_uint_t required, ngx_str_t *dst,
    ngx_http_engagement_error_t *err)
{
    ngx_http_engagement_jv_t  *v;

    if (!(found & (1u << key))) {
        return required
               ? ngx_http_engagement_hb_error(err, key, "is required")
               : NGX_OK;
    }

    v = &vals[key];

    if (v->type != NGX_HTTP_ENGAGEMENT_JV_STRING) {
        return ngx_http_engagement_hb_error(err, key,
                   "must be a string of " NGX_HTTP_ENGAGEMENT_ID_RULE);
    }

    if (!ngx_http_engagement_id_valid(v->str.data, v->str.len)) {
        return ngx_http_engagement_hb_error(err, key,
                   "must be " NGX_HTTP_ENGAGEMENT_ID_RULE);
    }

    *dst = v->str;

    return NGX_OK;
}


/* a time in ms (positionMs, durationMs): absent leaves *dst as it is */
static ngx_int_t
ngx_http_engagement_hb_ms(ngx_http_engagement_jv_t *vals, uint32_t found,
    ngx_uint_t key, int64_t *dst, ngx_http_engagement_error_t *err)
{
    ngx_http_engagement_jv_t  *v;

    if (!(found & (1u << key))) {
        return NGX_OK;
    }

    v = &vals[key];

    if (v->type != NGX_HTTP_ENGAGEMENT_JV_INTEGER) {
        return ngx_http_engagement_hb_error(err, key,
                   "must be an integer number of milliseconds");
    }

    if (v->num < 0 || v->num > NGX_HTTP_ENGAGEMENT_POSITION_MAX) {
        return ngx_http_engagement_hb_error(err, key,
                   "must be between 0 and 9007199254740991");
    }

    *dst = v->num;

    return NGX_OK;
}


static ngx_int_t
ngx_http_engagement_hb_state(ngx_http_engagement_jv_t *v,
    ngx_http_engagement_heartbeat_t *hb, ngx_http_engagement_error_t *err)
{
    ngx_uint_t  i;

    if (v->type == NGX_HTTP_ENGAGEMENT_JV_STRING) {
        for (i = 0; i < sizeof(ngx_http_engagement_play_states)
                        / sizeof(ngx_str_t); i++)
        {
            if (v->str.len == ngx_http_engagement_play_states[i].len
                && ngx_strncmp(v->str.data,
                               ngx_http_engagement_play_states[i].data,
                               v->str.len) == 0)
            {
                hb->state = i;
                return NGX_OK;
            }
        }
    }

    return ngx_http_engagement_hb_error(err, NGX_HTTP_ENGAGEMENT_HB_STATE,
               "must be one of playing, paused, buffering, ended");
}


ngx_int_t
ngx_http_engagement_heartbeat_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_heartbeat_t *hb,
    ngx_http_engagement_error_t *err)
{
    uint32_t                   found, stored;
    ngx_uint_t                 i;
    ngx_http_engagement_jv_t  *v;
    ngx_http_engagement_jv_t   vals[NGX_HTTP_ENGAGEMENT_JSON_FIELDS];

    ngx_memzero(hb, sizeof(ngx_http_engagement_heartbeat_t));
    hb->ev.duration_ms = -1;
    hb->ev.ts = -1;
    hb->position_ms = -1;
    hb->duration_ms = -1;
    hb->state = NGX_HTTP_ENGAGEMENT_PLAYING;

    if (!ngx_http_engagement_hb_ready) {
        for (i = 0; i < NGX_HTTP_ENGAGEMENT_HB_KEYS; i++) {
            ngx_http_engagement_hb_keys[i].name =
                ngx_http_engagement_hb_names[i];
        }

        ngx_http_engagement_json_keyset_init(&ngx_http_engagement_hb_keyset,
                                             ngx_http_engagement_hb_keys,
                                             NGX_HTTP_ENGAGEMENT_HB_KEYS);
        ngx_http_engagement_hb_ready = 1;
    }

    if (ngx_http_engagement_json_parse(pool, buf, len,
                                       &ngx_http_engagement_hb_keyset, vals,
                                       NULL, &found, &stored, err)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* in the order a client would fix them: the ids first */

    if (ngx_http_engagement_hb_id(vals, found, NGX_HTTP_ENGAGEMENT_HB_CONTENT,
                                  1, &hb->ev.content_id, err)
        != NGX_OK
        || ngx_http_engagement_hb_id(vals, found,
                                     NGX_HTTP_ENGAGEMENT_HB_SESSION, 1,
                                     &hb->ev.session_id, err)
           != NGX_OK
        || ngx_http_engagement_hb_id(vals, found,
                                     NGX_HTTP_ENGAGEMENT_HB_VIEWER, 0,
                                     &hb->ev.viewer_id, err)
           != NGX_OK
        || ngx_http_engagement_hb_id(vals, found,
                                     NGX_HTTP_ENGAGEMENT_HB_USER, 0,
                                     &hb->user_id, err)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_hb_ms(vals, found,
                                  NGX_HTTP_ENGAGEMENT_HB_POSITION,
                                  &hb->position_ms, err)
        != NGX_OK
        || ngx_http_engagement_hb_ms(vals, found,
                                     NGX_HTTP_ENGAGEMENT_HB_DURATION,
                                     &hb->duration_ms, err)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if ((found & (1u << NGX_HTTP_ENGAGEMENT_HB_STATE))
        && ngx_http_engagement_hb_state(&vals[NGX_HTTP_ENGAGEMENT_HB_STATE],
                                        hb, err)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (found & (1u << NGX_HTTP_ENGAGEMENT_HB_TOKEN)) {
        v = &vals[NGX_HTTP_ENGAGEMENT_HB_TOKEN];

        if (v->type != NGX_HTTP_ENGAGEMENT_JV_STRING
            || v->str.len > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX)
        {
            return ngx_http_engagement_hb_error(err,
                       NGX_HTTP_ENGAGEMENT_HB_TOKEN,
                       "must be a string of at most "
                       ngx_value(NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX) " bytes");
        }

        hb->ev.token = v->str;
    }

    if (found & (1u << NGX_HTTP_ENGAGEMENT_HB_OPT_OUT)) {
        v = &vals[NGX_HTTP_ENGAGEMENT_HB_OPT_OUT];

        if (v->type != NGX_HTTP_ENGAGEMENT_JV_TRUE
            && v->type != NGX_HTTP_ENGAGEMENT_JV_FALSE)
        {
            return ngx_http_engagement_hb_error(err,
                       NGX_HTTP_ENGAGEMENT_HB_OPT_OUT,
                       "must be true or false");
        }

        hb->ev.opt_out = (v->type == NGX_HTTP_ENGAGEMENT_JV_TRUE);
    }

    return NGX_OK;
}
