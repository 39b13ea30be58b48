
/*
 * Event input: the identifier rule and the parsing and validation of a
 * view event's JSON body with jansson. jansson allocates from the request
 * pool (the module sets its allocator), so a parse costs no malloc/free
 * and can leak nothing.
 */


#include "ngx_http_engagement_module.h"

#include <jansson.h>


typedef enum {
    NGX_HTTP_ENGAGEMENT_FIELD_ID = 0,
    NGX_HTTP_ENGAGEMENT_FIELD_DURATION,
    NGX_HTTP_ENGAGEMENT_FIELD_TS,
    NGX_HTTP_ENGAGEMENT_FIELD_BOOL,
    NGX_HTTP_ENGAGEMENT_FIELD_STRING
} ngx_http_engagement_field_type_e;


typedef struct {
    const char                        *name;
    ngx_http_engagement_field_type_e   type;
    ngx_uint_t                         required;
    size_t                             offset;
} ngx_http_engagement_field_t;


static ngx_http_engagement_field_t  ngx_http_engagement_view_fields[] = {

    { "contentId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 1,
      offsetof(ngx_http_engagement_event_t, content_id) },

    { "sessionId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 1,
      offsetof(ngx_http_engagement_event_t, session_id) },

    { "viewerId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_event_t, viewer_id) },

    { "requestId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_event_t, request_id) },

    { "channelId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_event_t, channel_id) },

    { "category", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_event_t, category) },

    { "source", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_event_t, source) },

    { "device", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_event_t, device) },

    { "durationMs", NGX_HTTP_ENGAGEMENT_FIELD_DURATION, 0,
      offsetof(ngx_http_engagement_event_t, duration_ms) },

    { "ts", NGX_HTTP_ENGAGEMENT_FIELD_TS, 0,
      offsetof(ngx_http_engagement_event_t, ts) },

    { "replay", NGX_HTTP_ENGAGEMENT_FIELD_BOOL, 0,
      offsetof(ngx_http_engagement_event_t, replay) },

    /* checked by the guard, which tells malformed from missing */
    { "token", NGX_HTTP_ENGAGEMENT_FIELD_STRING, 0,
      offsetof(ngx_http_engagement_event_t, token) },

    { "optOut", NGX_HTTP_ENGAGEMENT_FIELD_BOOL, 0,
      offsetof(ngx_http_engagement_event_t, opt_out) },

    { NULL, 0, 0, 0 }
};


static ngx_http_engagement_field_t  ngx_http_engagement_reaction_fields[] = {

    { "contentId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 1,
      offsetof(ngx_http_engagement_reaction_t, content_id) },

    { "userId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 1,
      offsetof(ngx_http_engagement_reaction_t, user_id) },

    { "reaction", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_reaction_t, reaction) },

    { "requestId", NGX_HTTP_ENGAGEMENT_FIELD_ID, 0,
      offsetof(ngx_http_engagement_reaction_t, request_id) },

    { "token", NGX_HTTP_ENGAGEMENT_FIELD_STRING, 0,
      offsetof(ngx_http_engagement_reaction_t, token) },

    { NULL, 0, 0, 0 }
};


/* 1 for the bytes allowed in identifiers: [A-Za-z0-9._:-] */
static const u_char  ngx_http_engagement_id_chars[256] = {
    ['-'] = 1, ['.'] = 1, [':'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1
};


static ngx_pool_t  *ngx_http_engagement_json_pool;


static void *
ngx_http_engagement_json_alloc(size_t size)
{
    if (ngx_http_engagement_json_pool == NULL) {
        return NULL;
    }

    return ngx_palloc(ngx_http_engagement_json_pool, size);
}


static void
ngx_http_engagement_json_free(void *p)
{
    /* the request pool frees everything at once */
}


void
ngx_http_engagement_json_init(void)
{
    json_set_alloc_funcs(ngx_http_engagement_json_alloc,
                         ngx_http_engagement_json_free);

    /* seeds jansson's hash now, not on the first request of a worker */
    json_object_seed(0);
}


ngx_int_t
ngx_http_engagement_id_valid(const u_char *p, size_t len)
{
    const u_char  *end;

    if (len == 0 || len > NGX_HTTP_ENGAGEMENT_ID_MAX) {
        return 0;
    }

    for (end = p + len; p < end; p++) {
        if (!ngx_http_engagement_id_chars[*p]) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_engagement_field_error(ngx_http_engagement_error_t *err,
    const char *field, const char *message)
{
    err->field = field;
    err->message = message;
    err->detail_len = 0;

    return NGX_ERROR;
}


/*
 * Parses a JSON object into the struct at out, field by field as the
 * table says; unknown fields are ignored, so clients may send more.
 */

static ngx_int_t
ngx_http_engagement_parse_fields(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_http_engagement_field_t *fields, void *out,
    ngx_http_engagement_error_t *err)
{
    u_char                       *p;
    json_t                       *root, *v;
    ngx_int_t                     rc;
    ngx_str_t                    *s;
    json_int_t                    n;
    json_error_t                  jerr;
    ngx_http_engagement_field_t  *f;

    err->field = NULL;
    err->detail_len = 0;

    if (len == 0) {
        err->message = "empty body: a JSON object is expected";
        return NGX_ERROR;
    }

    ngx_http_engagement_json_pool = pool;

    /* JSON_DECODE_ANY: a scalar body gets "must be a JSON object" */
    root = json_loadb((const char *) buf, len,
                      JSON_REJECT_DUPLICATES|JSON_DECODE_ANY, &jerr);

    if (root == NULL) {
        ngx_http_engagement_json_pool = NULL;

        err->message = "body is not valid JSON";
        p = ngx_snprintf(err->detail, sizeof(err->detail),
                         "%s at line %d column %d", jerr.text, jerr.line,
                         jerr.column);
        err->detail_len = p - err->detail;

        return NGX_ERROR;
    }

    rc = NGX_OK;

    if (!json_is_object(root)) {
        err->message = "body must be a JSON object";
        rc = NGX_ERROR;
        goto done;
    }

    for (f = fields; f->name; f++) {

        v = json_object_get(root, f->name);

        if (v == NULL) {
            if (f->required) {
                rc = ngx_http_engagement_field_error(err, f->name,
                                                     "is required");
                goto done;
            }

            continue;
        }

        switch (f->type) {

        case NGX_HTTP_ENGAGEMENT_FIELD_ID:

            if (!json_is_string(v)) {
                rc = ngx_http_engagement_field_error(err, f->name,
                         "must be a string of 1-128 bytes of "
                         "[A-Za-z0-9._:-]");
                goto done;
            }

            s = (ngx_str_t *) ((u_char *) out + f->offset);
            s->data = (u_char *) json_string_value(v);
            s->len = json_string_length(v);

            if (!ngx_http_engagement_id_valid(s->data, s->len)) {
                rc = ngx_http_engagement_field_error(err, f->name,
                         "must be 1-128 bytes of [A-Za-z0-9._:-]");
                goto done;
            }

            /* the strings live in the request pool with the JSON tree */
            break;

        case NGX_HTTP_ENGAGEMENT_FIELD_DURATION:

            if (!json_is_integer(v)) {
                rc = ngx_http_engagement_field_error(err, f->name,
                         "must be an integer number of milliseconds");
                goto done;
            }

            n = json_integer_value(v);

            if (n < 0 || n > NGX_HTTP_ENGAGEMENT_DURATION_MAX) {
                rc = ngx_http_engagement_field_error(err, f->name,
                         "must be between 0 and 604800000 (7 days)");
                goto done;
            }

            *(int64_t *) ((u_char *) out + f->offset) = n;
            break;

        case NGX_HTTP_ENGAGEMENT_FIELD_TS:

            /* milliseconds since the epoch, between 2000 and 2200 */
            if (!json_is_integer(v)) {
                rc = ngx_http_engagement_field_error(err, f->name,
                         "must be an integer: milliseconds since the epoch");
                goto done;
            }

            n = json_integer_value(v);

            if (n < 946684800000LL || n > 7258118400000LL) {
                rc = ngx_http_engagement_field_error(err, f->name,
                         "must be milliseconds since the epoch "
                         "(years 2000-2200)");
                goto done;
            }

            *(int64_t *) ((u_char *) out + f->offset) = n;
            break;

        case NGX_HTTP_ENGAGEMENT_FIELD_BOOL:

            if (!json_is_boolean(v)) {
                rc = ngx_http_engagement_field_error(err, f->name,
                                                     "must be true or false");
                goto done;
            }

            *(ngx_uint_t *) ((u_char *) out + f->offset) =
                json_is_true(v) ? 1 : 0;
            break;

        case NGX_HTTP_ENGAGEMENT_FIELD_STRING:

            if (!json_is_string(v)
                || json_string_length(v) > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX)
            {
                rc = ngx_http_engagement_field_error(err, f->name,
                         "must be a string of at most 128 bytes");
                goto done;
            }

            s = (ngx_str_t *) ((u_char *) out + f->offset);
            s->data = (u_char *) json_string_value(v);
            s->len = json_string_length(v);
            break;
        }
    }

done:

    /* frees nothing (pool allocator), but keeps jansson's refcounts sane */
    json_decref(root);
    ngx_http_engagement_json_pool = NULL;

    return rc;
}


ngx_int_t
ngx_http_engagement_event_parse(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_http_engagement_event_t *ev, ngx_http_engagement_error_t *err)
{
    ngx_memzero(ev, sizeof(ngx_http_engagement_event_t));
    ev->duration_ms = -1;
    ev->ts = -1;

    return ngx_http_engagement_parse_fields(pool, buf, len,
                                            ngx_http_engagement_view_fields,
                                            ev, err);
}


ngx_int_t
ngx_http_engagement_reaction_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_reaction_t *re,
    ngx_http_engagement_error_t *err)
{
    ngx_memzero(re, sizeof(ngx_http_engagement_reaction_t));

    return ngx_http_engagement_parse_fields(pool, buf, len,
                                        ngx_http_engagement_reaction_fields,
                                        re, err);
}
