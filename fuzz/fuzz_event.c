
/*
 * libFuzzer target for the JSON parser of view and reaction bodies
 * (src/input/ngx_http_engagement_json.c and the events over it,
 * src/input/ngx_http_engagement_event.c), compiled as is; the nginx pool
 * functions it calls are provided here (an allocation list standing in for
 * the request pool, freed after each input).
 *
 * Every input is parsed as a view, as a reaction and as a heartbeat, and
 * checked twice:
 *   - on its own: a parsed event obeys the documented rules (ids, ranges),
 *     a refusal carries a message;
 *   - against jansson (the parser the module used before), reading the
 *     same fields with the same rules: both accept with equal values, or
 *     both refuse, naming the same field. Two differences are allowed,
 *     where ours refuses and jansson accepts: nesting deeper than 64
 *     levels (jansson's limit is 2048), and a raw NUL byte right after a
 *     number, which jansson 2.14 skips ({"a":5<NUL>} parses as {"a":5}).
 */

#include "input/ngx_http_engagement_input.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void   **allocs;
static size_t   nallocs, cap;


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    (void) pool;

    if (nallocs == cap) {
        cap = cap ? cap * 2 : 256;
        allocs = realloc(allocs, cap * sizeof(void *));
        if (allocs == NULL) {
            abort();
        }
    }

    p = malloc(size ? size : 1);
    if (p == NULL) {
        abort();
    }

    allocs[nallocs++] = p;

    return p;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_palloc(pool, size);
    memset(p, 0, size);

    return p;
}


/* -- the reference: jansson, the same fields and rules ------------------- */

enum { F_ID, F_DURATION, F_TS, F_BOOL, F_STRING, F_POSITION, F_STATE };

typedef struct {
    const char  *name;
    int          type;
    int          required;
    size_t       offset;
} field_t;

static field_t  view_fields[] = {
    { "contentId", F_ID, 1, offsetof(ngx_http_engagement_event_t, content_id) },
    { "sessionId", F_ID, 1, offsetof(ngx_http_engagement_event_t, session_id) },
    { "viewerId", F_ID, 0, offsetof(ngx_http_engagement_event_t, viewer_id) },
    { "requestId", F_ID, 0, offsetof(ngx_http_engagement_event_t, request_id) },
    { "channelId", F_ID, 0, offsetof(ngx_http_engagement_event_t, channel_id) },
    { "category", F_ID, 0, offsetof(ngx_http_engagement_event_t, category) },
    { "source", F_ID, 0, offsetof(ngx_http_engagement_event_t, source) },
    { "device", F_ID, 0, offsetof(ngx_http_engagement_event_t, device) },
    { "durationMs", F_DURATION, 0,
      offsetof(ngx_http_engagement_event_t, duration_ms) },
    { "ts", F_TS, 0, offsetof(ngx_http_engagement_event_t, ts) },
    { "replay", F_BOOL, 0, offsetof(ngx_http_engagement_event_t, replay) },
    { "token", F_STRING, 0, offsetof(ngx_http_engagement_event_t, token) },
    { "optOut", F_BOOL, 0, offsetof(ngx_http_engagement_event_t, opt_out) },
    { NULL, 0, 0, 0 }
};

static field_t  reaction_fields[] = {
    { "contentId", F_ID, 1,
      offsetof(ngx_http_engagement_reaction_t, content_id) },
    { "userId", F_ID, 1, offsetof(ngx_http_engagement_reaction_t, user_id) },
    { "reaction", F_ID, 0,
      offsetof(ngx_http_engagement_reaction_t, reaction) },
    { "requestId", F_ID, 0,
      offsetof(ngx_http_engagement_reaction_t, request_id) },
    { "token", F_STRING, 0, offsetof(ngx_http_engagement_reaction_t, token) },
    { NULL, 0, 0, 0 }
};


/* in the order the heartbeat's parser checks them: the ids first */
static field_t  heartbeat_fields[] = {
    { "contentId", F_ID, 1,
      offsetof(ngx_http_engagement_heartbeat_t, ev.content_id) },
    { "sessionId", F_ID, 1,
      offsetof(ngx_http_engagement_heartbeat_t, ev.session_id) },
    { "viewerId", F_ID, 0,
      offsetof(ngx_http_engagement_heartbeat_t, ev.viewer_id) },
    { "userId", F_ID, 0,
      offsetof(ngx_http_engagement_heartbeat_t, user_id) },
    { "positionMs", F_POSITION, 0,
      offsetof(ngx_http_engagement_heartbeat_t, position_ms) },
    { "durationMs", F_POSITION, 0,
      offsetof(ngx_http_engagement_heartbeat_t, duration_ms) },
    { "state", F_STATE, 0, offsetof(ngx_http_engagement_heartbeat_t, state) },
    { "token", F_STRING, 0,
      offsetof(ngx_http_engagement_heartbeat_t, ev.token) },
    { "optOut", F_BOOL, 0,
      offsetof(ngx_http_engagement_heartbeat_t, ev.opt_out) },
    { NULL, 0, 0, 0 }
};

static const char  *states[] = { "playing", "paused", "buffering", "ended" };
#define NSTATES  ((json_int_t) (sizeof(states) / sizeof(states[0])))


/* 0: accepted; 1: refused, the body; 2: refused, the field in *bad */
static int
reference(const uint8_t *data, size_t size, field_t *fields, void *out,
    const char **bad)
{
    int           rc;
    json_t       *root, *v;
    field_t      *f;
    ngx_str_t    *s;
    json_int_t    n;
    json_error_t  jerr;

    *bad = NULL;

    if (size == 0) {
        return 1;
    }

    root = json_loadb((const char *) data, size,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        return 1;
    }

    rc = 0;

    if (!json_is_object(root)) {
        rc = 1;
        goto done;
    }

    for (f = fields; f->name; f++) {
        v = json_object_get(root, f->name);

        if (v == NULL) {
            if (f->required) {
                goto bad_field;
            }
            continue;
        }

        switch (f->type) {

        case F_ID:
        case F_STRING:
            if (!json_is_string(v)) {
                goto bad_field;
            }

            s = (ngx_str_t *) ((u_char *) out + f->offset);
            s->len = json_string_length(v);
            s->data = ngx_palloc(NULL, s->len);
            memcpy(s->data, json_string_value(v), s->len);

            if (f->type == F_ID
                ? !ngx_http_engagement_id_valid(s->data, s->len)
                : s->len > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX)
            {
                goto bad_field;
            }
            break;

        case F_DURATION:
        case F_TS:
            if (!json_is_integer(v)) {
                goto bad_field;
            }

            n = json_integer_value(v);

            if (f->type == F_DURATION
                ? n < 0 || n > NGX_HTTP_ENGAGEMENT_DURATION_MAX
                : n < NGX_HTTP_ENGAGEMENT_TS_MIN
                  || n > NGX_HTTP_ENGAGEMENT_TS_MAX)
            {
                goto bad_field;
            }

            *(int64_t *) ((u_char *) out + f->offset) = n;
            break;

        case F_POSITION:
            if (!json_is_integer(v)) {
                goto bad_field;
            }

            n = json_integer_value(v);

            if (n < 0 || n > 9007199254740991LL) {
                goto bad_field;
            }

            *(int64_t *) ((u_char *) out + f->offset) = n;
            break;

        case F_STATE:
            if (!json_is_string(v)) {
                goto bad_field;
            }

            for (n = 0; n < NSTATES; n++) {
                if (json_string_length(v) == strlen(states[n])
                    && memcmp(json_string_value(v), states[n],
                              json_string_length(v)) == 0)
                {
                    break;
                }
            }

            if (n == NSTATES) {
                goto bad_field;
            }

            *(ngx_uint_t *) ((u_char *) out + f->offset) = n;
            break;

        case F_BOOL:
            if (!json_is_boolean(v)) {
                goto bad_field;
            }

            *(ngx_uint_t *) ((u_char *) out + f->offset) = json_is_true(v);
            break;
        }
    }

    goto done;

bad_field:

    *bad = f->name;
    rc = 2;

done:

    json_decref(root);

    return rc;
}


/* -- the checks ---------------------------------------------------------- */

static void
check_id(ngx_str_t *s, int required)
{
    if (s->len == 0) {
        if (required) {
            abort();
        }
        return;
    }

    if (!ngx_http_engagement_id_valid(s->data, s->len)) {
        abort();
    }
}


static void
same_str(const char *what, ngx_str_t *a, ngx_str_t *b)
{
    if (a->len != b->len || (a->len && memcmp(a->data, b->data, a->len))) {
        fprintf(stderr, "%s differs from jansson's: \"%.*s\" vs \"%.*s\"\n",
                what, (int) a->len, a->data, (int) b->len, b->data);
        abort();
    }
}


static void
differ(const char *what, ngx_int_t rc, ngx_http_engagement_error_t *err,
    int ref, const char *bad)
{
    fprintf(stderr, "%s: ours %s (%s%s%s%.*s), jansson %s%s\n", what,
            rc == NGX_OK ? "accepts" : "refuses",
            err->field ? err->field : "", err->field ? ": " : "",
            rc == NGX_OK ? "" : err->message, (int) err->detail_len,
            err->detail, ref == 0 ? "accepts" : "refuses ",
            bad ? bad : (ref ? "the body" : ""));
    abort();
}


/* compares the outcomes; 1 if both accepted */
static int
compare(const char *what, ngx_int_t rc, ngx_http_engagement_error_t *err,
    int ref, const char *bad, const uint8_t *data, size_t size)
{
    if (rc != NGX_OK) {
        if (err->message == NULL || err->detail_len > sizeof(err->detail)) {
            abort();
        }

        /* the one allowed difference: our nesting limit */
        if (err->field == NULL && err->detail_len >= 7
            && memcmp(err->detail, "nesting", 7) == 0)
        {
            return 0;
        }

        if (err->field == NULL && memchr(data, 0, size) != NULL) {
            return 0;
        }

        if (ref == 0) {
            differ(what, rc, err, ref, bad);
        }

        if ((err->field == NULL) != (bad == NULL)
            || (bad && strcmp(err->field, bad) != 0))
        {
            differ(what, rc, err, ref, bad);
        }

        return 0;
    }

    if (ref != 0) {
        differ(what, rc, err, ref, bad);
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             ref;
    size_t                          i;
    u_char                         *copy;
    ngx_int_t                       rc;
    const char                     *bad;
    ngx_http_engagement_event_t     ev, rev;
    ngx_http_engagement_reaction_t  re, rre;
    ngx_http_engagement_heartbeat_t hb, rhb;
    ngx_http_engagement_error_t     err;
    static ngx_pool_t              *pool = (ngx_pool_t *) 1;

    /* an exact-size copy, so reading past the end is caught */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);

    /* as a view */

    rc = ngx_http_engagement_event_parse(pool, copy, size, &ev, &err);

    memset(&rev, 0, sizeof(rev));
    rev.duration_ms = -1;
    rev.ts = -1;
    ref = reference(data, size, view_fields, &rev, &bad);

    if (compare("view", rc, &err, ref, bad, data, size)) {
        check_id(&ev.content_id, 1);
        check_id(&ev.session_id, 1);
        check_id(&ev.viewer_id, 0);
        check_id(&ev.request_id, 0);
        check_id(&ev.channel_id, 0);
        check_id(&ev.category, 0);
        check_id(&ev.source, 0);
        check_id(&ev.device, 0);

        if (ev.duration_ms < -1
            || ev.duration_ms > NGX_HTTP_ENGAGEMENT_DURATION_MAX)
        {
            abort();
        }

        if (ev.replay > 1 || ev.opt_out > 1 || ev.anonymous) {
            abort();
        }

        if (ev.token.len > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX
            || (ev.token.len && ev.token.data == NULL))
        {
            abort();
        }

        same_str("contentId", &ev.content_id, &rev.content_id);
        same_str("sessionId", &ev.session_id, &rev.session_id);
        same_str("viewerId", &ev.viewer_id, &rev.viewer_id);
        same_str("requestId", &ev.request_id, &rev.request_id);
        same_str("channelId", &ev.channel_id, &rev.channel_id);
        same_str("category", &ev.category, &rev.category);
        same_str("source", &ev.source, &rev.source);
        same_str("device", &ev.device, &rev.device);
        same_str("token", &ev.token, &rev.token);

        if (ev.duration_ms != rev.duration_ms || ev.ts != rev.ts
            || ev.replay != rev.replay || ev.opt_out != rev.opt_out)
        {
            fprintf(stderr, "a number or flag differs from jansson's\n");
            abort();
        }
    }

    /* as a reaction */

    rc = ngx_http_engagement_reaction_parse(pool, copy, size, &re, &err);

    memset(&rre, 0, sizeof(rre));
    ref = reference(data, size, reaction_fields, &rre, &bad);

    if (compare("reaction", rc, &err, ref, bad, data, size)) {
        check_id(&re.content_id, 1);
        check_id(&re.user_id, 1);
        check_id(&re.reaction, 0);
        check_id(&re.request_id, 0);

        same_str("contentId", &re.content_id, &rre.content_id);
        same_str("userId", &re.user_id, &rre.user_id);
        same_str("reaction", &re.reaction, &rre.reaction);
        same_str("requestId", &re.request_id, &rre.request_id);
        same_str("token", &re.token, &rre.token);
    }

    /* as a heartbeat */

    rc = ngx_http_engagement_heartbeat_parse(pool, copy, size, &hb, &err);

    memset(&rhb, 0, sizeof(rhb));
    rhb.position_ms = -1;
    rhb.duration_ms = -1;
    ref = reference(data, size, heartbeat_fields, &rhb, &bad);

    if (compare("heartbeat", rc, &err, ref, bad, data, size)) {
        check_id(&hb.ev.content_id, 1);
        check_id(&hb.ev.session_id, 1);
        check_id(&hb.ev.viewer_id, 0);
        check_id(&hb.user_id, 0);

        if (hb.position_ms < -1 || hb.position_ms > 9007199254740991LL
            || hb.duration_ms < -1 || hb.duration_ms > 9007199254740991LL
            || hb.state > NGX_HTTP_ENGAGEMENT_ENDED || hb.ev.opt_out > 1
            || hb.ev.token.len > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX)
        {
            abort();
        }

        same_str("contentId", &hb.ev.content_id, &rhb.ev.content_id);
        same_str("sessionId", &hb.ev.session_id, &rhb.ev.session_id);
        same_str("viewerId", &hb.ev.viewer_id, &rhb.ev.viewer_id);
        same_str("userId", &hb.user_id, &rhb.user_id);
        same_str("token", &hb.ev.token, &rhb.ev.token);

        if (hb.position_ms != rhb.position_ms
            || hb.duration_ms != rhb.duration_ms || hb.state != rhb.state
            || hb.ev.opt_out != rhb.ev.opt_out)
        {
            fprintf(stderr, "a heartbeat's number or flag differs from"
                    " jansson's\n");
            abort();
        }
    }

    for (i = 0; i < nallocs; i++) {
        free(allocs[i]);
    }

    nallocs = 0;
    free(copy);

    return 0;
}
