
/*
 * Events: the identifier rule, and the view and reaction events a client
 * sends as JSON bodies. Each kind of event is a table of fields (its JSON
 * key, the rule its value obeys, where it goes in the event); the JSON
 * itself is checked by ngx_http_engagement_json.c, which hands back the
 * values of the table's keys. A refusal names the field and why.
 */


#include "input/ngx_http_engagement_json.h"


typedef enum {
    NGX_HTTP_ENGAGEMENT_FIELD_ID = 0,     /* an identifier, see id_valid() */
    NGX_HTTP_ENGAGEMENT_FIELD_DURATION,   /* milliseconds watched */
    NGX_HTTP_ENGAGEMENT_FIELD_TS,         /* milliseconds since the epoch */
    NGX_HTTP_ENGAGEMENT_FIELD_BOOL,
    NGX_HTTP_ENGAGEMENT_FIELD_STRING      /* any string, bounded length */
} ngx_http_engagement_field_type_e;


typedef struct {
    ngx_str_t                          name;
    ngx_http_engagement_field_type_e   type;
    ngx_uint_t                         required;
    size_t                             offset;
} ngx_http_engagement_field_t;


/* the fields of one kind of event, and their JSON keys (made at first use) */
typedef struct {
    ngx_http_engagement_field_t       *fields;
    ngx_uint_t                         nfields;
    ngx_http_engagement_json_key_t     keys[NGX_HTTP_ENGAGEMENT_JSON_FIELDS];
    ngx_http_engagement_json_keyset_t  keyset;
    uint32_t                           required;  /* a bit per field */
    ngx_uint_t                         ready;
} ngx_http_engagement_form_t;


#define ngx_http_engagement_field(key, type, required, event, member)         \
    { ngx_string(key), NGX_HTTP_ENGAGEMENT_FIELD_ ## type, required,          \
      offsetof(event, member) }

#define ngx_http_engagement_view_field(key, type, required, member)           \
    ngx_http_engagement_field(key, type, required,                            \
                              ngx_http_engagement_event_t, member)

#define ngx_http_engagement_reaction_field(key, type, required, member)       \
    ngx_http_engagement_field(key, type, required,                            \
                              ngx_http_engagement_reaction_t, member)

#define ngx_http_engagement_interaction_field(key, type, required, member)    \
    ngx_http_engagement_field(key, type, required,                            \
                              ngx_http_engagement_interaction_t, member)


static ngx_http_engagement_field_t  ngx_http_engagement_view_fields[] = {
    ngx_http_engagement_view_field("contentId", ID, 1, content_id),
    ngx_http_engagement_view_field("sessionId", ID, 1, session_id),
    ngx_http_engagement_view_field("viewerId", ID, 0, viewer_id),
    ngx_http_engagement_view_field("requestId", ID, 0, request_id),
    ngx_http_engagement_view_field("channelId", ID, 0, channel_id),
    ngx_http_engagement_view_field("category", ID, 0, category),
    ngx_http_engagement_view_field("source", ID, 0, source),
    ngx_http_engagement_view_field("device", ID, 0, device),
    ngx_http_engagement_view_field("durationMs", DURATION, 0, duration_ms),
    ngx_http_engagement_view_field("ts", TS, 0, ts),
    ngx_http_engagement_view_field("replay", BOOL, 0, replay),

    /* checked by the guard, which tells malformed from missing */
    ngx_http_engagement_view_field("token", STRING, 0, token),

    ngx_http_engagement_view_field("optOut", BOOL, 0, opt_out)
};


static ngx_http_engagement_field_t  ngx_http_engagement_reaction_fields[] = {
    ngx_http_engagement_reaction_field("contentId", ID, 1, content_id),
    ngx_http_engagement_reaction_field("userId", ID, 1, user_id),
    ngx_http_engagement_reaction_field("reaction", ID, 0, reaction),
    ngx_http_engagement_reaction_field("requestId", ID, 0, request_id),
    ngx_http_engagement_reaction_field("token", STRING, 0, token)
};


/* an interaction: the view event's ids, dimensions and guard fields */
static ngx_http_engagement_field_t  ngx_http_engagement_interaction_fields[] = {
    ngx_http_engagement_interaction_field("contentId", ID, 1, ev.content_id),
    ngx_http_engagement_interaction_field("name", ID, 1, name),
    ngx_http_engagement_interaction_field("type", ID, 0, type),
    ngx_http_engagement_interaction_field("positionMs", DURATION, 0,
                                          position_ms),
    ngx_http_engagement_interaction_field("sessionId", ID, 0, ev.session_id),
    ngx_http_engagement_interaction_field("viewerId", ID, 0, ev.viewer_id),
    ngx_http_engagement_interaction_field("requestId", ID, 0, ev.request_id),
    ngx_http_engagement_interaction_field("channelId", ID, 0, ev.channel_id),
    ngx_http_engagement_interaction_field("category", ID, 0, ev.category),
    ngx_http_engagement_interaction_field("source", ID, 0, ev.source),
    ngx_http_engagement_interaction_field("device", ID, 0, ev.device),
    ngx_http_engagement_interaction_field("ts", TS, 0, ev.ts),
    ngx_http_engagement_interaction_field("token", STRING, 0, ev.token),
    ngx_http_engagement_interaction_field("optOut", BOOL, 0, ev.opt_out)
};


#define ngx_http_engagement_nfields(fields)                                   \
    (sizeof(fields) / sizeof(fields[0]))

_Static_assert(ngx_http_engagement_nfields(ngx_http_engagement_view_fields)
               <= NGX_HTTP_ENGAGEMENT_JSON_FIELDS, "too many view fields");
_Static_assert(ngx_http_engagement_nfields(ngx_http_engagement_reaction_fields)
               <= NGX_HTTP_ENGAGEMENT_JSON_FIELDS, "too many reaction fields");
_Static_assert(
    ngx_http_engagement_nfields(ngx_http_engagement_interaction_fields)
    <= NGX_HTTP_ENGAGEMENT_JSON_FIELDS, "too many interaction fields");


static ngx_http_engagement_form_t  ngx_http_engagement_view_form = {
    ngx_http_engagement_view_fields,
    ngx_http_engagement_nfields(ngx_http_engagement_view_fields),
    { { ngx_null_string, NULL, 0, 0, 0, 0 } }, { NULL, 0, { 0 }, { 0 } }, 0, 0
};


static ngx_http_engagement_form_t  ngx_http_engagement_reaction_form = {
    ngx_http_engagement_reaction_fields,
    ngx_http_engagement_nfields(ngx_http_engagement_reaction_fields),
    { { ngx_null_string, NULL, 0, 0, 0, 0 } }, { NULL, 0, { 0 }, { 0 } }, 0, 0
};


static ngx_http_engagement_form_t  ngx_http_engagement_interaction_form = {
    ngx_http_engagement_interaction_fields,
    ngx_http_engagement_nfields(ngx_http_engagement_interaction_fields),
    { { ngx_null_string, NULL, 0, 0, 0, 0 } }, { NULL, 0, { 0 }, { 0 } }, 0, 0
};


/* 1 for the bytes allowed in identifiers: [A-Za-z0-9._:-] */
static const u_char  ngx_http_engagement_id_chars[256] = {
    ['-'] = 1, ['.'] = 1, [':'] = 1, ['_'] = 1,
    ['0' ... '9'] = 1,
    ['A' ... 'Z'] = 1,
    ['a' ... 'z'] = 1
};


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
    ngx_http_engagement_field_t *f, const char *message)
{
    err->field = (const char *) f->name.data;
    err->message = message;
    err->detail_len = 0;

    return NGX_ERROR;
}


/* an integer field within [min, max], stored at dst */
static ngx_int_t
ngx_http_engagement_field_int(ngx_http_engagement_field_t *f,
    ngx_http_engagement_jv_t *v, int64_t min, int64_t max,
    const char *not_integer, const char *out_of_range, u_char *dst,
    ngx_http_engagement_error_t *err)
{
    if (v->type != NGX_HTTP_ENGAGEMENT_JV_INTEGER) {
        return ngx_http_engagement_field_error(err, f, not_integer);
    }

    if (v->num < min || v->num > max) {
        return ngx_http_engagement_field_error(err, f, out_of_range);
    }

    *(int64_t *) dst = v->num;

    return NGX_OK;
}


/* checks one present value by its field's rule and stores it in out */
static ngx_int_t
ngx_http_engagement_field_set(ngx_http_engagement_field_t *f,
    ngx_http_engagement_jv_t *v, void *out, ngx_http_engagement_error_t *err)
{
    u_char  *dst;

    dst = (u_char *) out + f->offset;

    switch (f->type) {

    case NGX_HTTP_ENGAGEMENT_FIELD_ID:

        if (v->type != NGX_HTTP_ENGAGEMENT_JV_STRING) {
            return ngx_http_engagement_field_error(err, f,
                       "must be a string of " NGX_HTTP_ENGAGEMENT_ID_RULE);
        }

        /* checked by the parser while it scanned the string */
        if (!v->fits) {
            return ngx_http_engagement_field_error(err, f,
                       "must be " NGX_HTTP_ENGAGEMENT_ID_RULE);
        }

        *(ngx_str_t *) dst = v->str;
        return NGX_OK;

    case NGX_HTTP_ENGAGEMENT_FIELD_DURATION:

        return ngx_http_engagement_field_int(f, v, 0,
                   NGX_HTTP_ENGAGEMENT_DURATION_MAX,
                   "must be an integer number of milliseconds",
                   "must be between 0 and "
                   ngx_value(NGX_HTTP_ENGAGEMENT_DURATION_MAX) " (7 days)",
                   dst, err);

    case NGX_HTTP_ENGAGEMENT_FIELD_TS:

        return ngx_http_engagement_field_int(f, v, NGX_HTTP_ENGAGEMENT_TS_MIN,
                   NGX_HTTP_ENGAGEMENT_TS_MAX,
                   "must be an integer: milliseconds since the epoch",
                   "must be milliseconds since the epoch (years 2000-2200)",
                   dst, err);

    case NGX_HTTP_ENGAGEMENT_FIELD_BOOL:

        if (v->type != NGX_HTTP_ENGAGEMENT_JV_TRUE
            && v->type != NGX_HTTP_ENGAGEMENT_JV_FALSE)
        {
            return ngx_http_engagement_field_error(err, f,
                                                   "must be true or false");
        }

        *(ngx_uint_t *) dst = (v->type == NGX_HTTP_ENGAGEMENT_JV_TRUE);
        return NGX_OK;

    default: /* NGX_HTTP_ENGAGEMENT_FIELD_STRING */

        if (v->type != NGX_HTTP_ENGAGEMENT_JV_STRING
            || v->str.len > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX)
        {
            return ngx_http_engagement_field_error(err, f,
                       "must be a string of at most "
                       ngx_value(NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX) " bytes");
        }

        *(ngx_str_t *) dst = v->str;
        return NGX_OK;
    }
}


/*
 * Parses a JSON object into the event at out, field by field as the form
 * says; unknown fields are ignored, so clients may send more. The whole
 * body is checked first, then the fields in the table's order.
 */

static ngx_int_t
ngx_http_engagement_form_parse(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_http_engagement_form_t *form, void *out,
    ngx_http_engagement_error_t *err)
{
    uint32_t                      found, stored, todo;
    ngx_uint_t                    i;
    ngx_http_engagement_jv_t      vals[NGX_HTTP_ENGAGEMENT_JSON_FIELDS];
    ngx_http_engagement_field_t  *f;

    if (!form->ready) {
        /* the keys, indexed once per form; ids are checked in the scan */
        for (i = 0; i < form->nfields; i++) {
            f = &form->fields[i];
            form->keys[i].name = f->name;

            if (f->required) {
                form->required |= 1u << i;
            }

            if (f->type == NGX_HTTP_ENGAGEMENT_FIELD_ID) {
                /* an id the parser finds valid, it stores in the event */
                form->keys[i].chars = ngx_http_engagement_id_chars;
                form->keys[i].max = NGX_HTTP_ENGAGEMENT_ID_MAX;
                form->keys[i].offset = f->offset;
            }
        }

        ngx_http_engagement_json_keyset_init(&form->keyset, form->keys,
                                             form->nfields);
        form->ready = 1;
    }

    if (ngx_http_engagement_json_parse(pool, buf, len, &form->keyset, vals,
                                       out, &found, &stored, err)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * The fields found or required, in the table's order, but for the ids
     * the parser stored (checked as it scanned them: they are valid)
     */
    for (todo = (found & ~stored) | (form->required & ~found);
         todo;
         todo &= todo - 1)
    {
        i = __builtin_ctz(todo);
        f = &form->fields[i];

        if (!(found & (1u << i))) {
            /* required: only those are in todo without being found */
            return ngx_http_engagement_field_error(err, f, "is required");
        }

        if (vals[i].fits) {
            /* an id the parser checked as it scanned it (only ids fit) */
            *(ngx_str_t *) ((u_char *) out + f->offset) = vals[i].str;
            continue;
        }

        if (ngx_http_engagement_field_set(f, &vals[i], out, err) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* event_parse() sets every field of an event: one more must be set there */
_Static_assert(sizeof(ngx_http_engagement_event_t)
               == 10 * sizeof(ngx_str_t) + 2 * sizeof(int64_t)
                  + 3 * sizeof(ngx_uint_t),
               "a field of ngx_http_engagement_event_t is not set");


ngx_int_t
ngx_http_engagement_event_parse(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_http_engagement_event_t *ev, ngx_http_engagement_error_t *err)
{
    ngx_str_t  none;

    /*
     * Field by field: plain stores (ngx_memzero of the whole event became
     * a "rep stos" of 23 steps on every view)
     */
    ngx_str_null(&none);

    ev->content_id = none;
    ev->session_id = none;
    ev->viewer_id = none;
    ev->request_id = none;
    ev->channel_id = none;
    ev->category = none;
    ev->source = none;
    ev->device = none;
    ev->country = none;
    ev->duration_ms = -1;
    ev->ts = -1;
    ev->replay = 0;
    ev->token = none;
    ev->opt_out = 0;
    ev->anonymous = 0;

    return ngx_http_engagement_form_parse(pool, buf, len,
                                          &ngx_http_engagement_view_form,
                                          ev, err);
}


ngx_int_t
ngx_http_engagement_reaction_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_reaction_t *re,
    ngx_http_engagement_error_t *err)
{
    ngx_memzero(re, sizeof(ngx_http_engagement_reaction_t));

    return ngx_http_engagement_form_parse(pool, buf, len,
                                          &ngx_http_engagement_reaction_form,
                                          re, err);
}


/* an interaction: its event's fields as a view's, then its own */

ngx_int_t
ngx_http_engagement_interaction_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_interaction_t *it,
    ngx_http_engagement_error_t *err)
{
    ngx_memzero(it, sizeof(ngx_http_engagement_interaction_t));

    it->ev.duration_ms = -1;
    it->ev.ts = -1;
    it->position_ms = -1;

    return ngx_http_engagement_form_parse(pool, buf, len,
                                          &ngx_http_engagement_interaction_form,
                                          it, err);
}
