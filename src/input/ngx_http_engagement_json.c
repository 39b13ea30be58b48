
/*
 * The JSON parser of the bodies clients send: one pass, strict RFC 8259
 * (UTF-8 checked, \\u escapes and surrogate pairs decoded, integers
 * range-checked, every object's keys checked for duplicates, nesting
 * bounded). It keeps only the values of the top-level keys its caller
 * asks for (input/ngx_http_engagement_json.h). Strings without escapes
 * point into the body; the others are decoded into the request pool, so a
 * parse makes no malloc and can leak nothing. It replaced jansson, which
 * cost about 18,000 instructions per view event (docs/benchmarks.md);
 * fuzz/fuzz_event.c checks it against jansson.
 */


#include "input/ngx_http_engagement_json_int.h"

#include <errno.h>
#include <stdlib.h>


/* deeper nesting is refused: no field of ours is nested at all */
#define NGX_HTTP_ENGAGEMENT_JSON_DEPTH      64

/* integers of up to this many digits fit in 63 bits, unchecked */
#define NGX_HTTP_ENGAGEMENT_JSON_SAFE       18


static ngx_int_t ngx_http_engagement_json_value(ngx_http_engagement_json_t *j,
    ngx_uint_t depth, ngx_http_engagement_jv_t *v);


/* the end of the whitespace at p */
static ngx_inline u_char *
ngx_http_engagement_json_skip(u_char *p, u_char *end)
{
    /* most tokens follow one another with no whitespace */
    if (p < end && *p > ' ') {
        return p;
    }

    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


static ngx_inline void
ngx_http_engagement_json_ws(ngx_http_engagement_json_t *j)
{
    j->p = ngx_http_engagement_json_skip(j->p, j->end);
}


/*
 * A string at j->p (its opening quote). Checks it and leaves its value in
 * s: pointing into the body when it has no escapes, else decoded into the
 * pool. Decoded values never contain NUL (\u0000 is refused). Inline: the
 * common string, plain bytes alone, costs no call.
 */

static ngx_inline ngx_int_t
ngx_http_engagement_json_string(ngx_http_engagement_json_t *j, ngx_str_t *s)
{
    u_char  *begin, *end;

    begin = j->p + 1;
    end = ngx_http_engagement_json_plain_run(begin, j->end);

    if (end == j->end || *end != '"') {
        return ngx_http_engagement_json_string_rest(j, begin, end, s);
    }

    j->p = end + 1;
    s->data = begin;
    s->len = end - begin;

    return NGX_OK;
}


/*
 * One or more digits at p: the end of the run, or NULL (the error set, the
 * byte found named after "expected").
 */

static u_char *
ngx_http_engagement_json_digits(ngx_http_engagement_json_t *j, u_char *p,
    const char *expected)
{
    if (p == j->end || *p < '0' || *p > '9') {
        j->p = p;
        (void) ngx_http_engagement_json_unexpected(j, expected);
        return NULL;
    }

    while (p < j->end && *p >= '0' && *p <= '9') {
        p++;
    }

    return p;
}


/* the end of the number at j->p, its grammar checked; NULL on an error */
static u_char *
ngx_http_engagement_json_number_end(ngx_http_engagement_json_t *j,
    ngx_uint_t *real)
{
    u_char  *p, *q;

    p = j->p + (*j->p == '-');

    q = ngx_http_engagement_json_digits(j, p, "a digit expected, found");
    if (q == NULL) {
        return NULL;
    }

    if (*p == '0' && q - p > 1) {
        (void) ngx_http_engagement_json_fail(j, "a number with a leading zero",
                                             j->p);
        return NULL;
    }

    p = q;
    *real = 0;

    if (p < j->end && *p == '.') {
        *real = 1;
        p = ngx_http_engagement_json_digits(j, p + 1,
                                         "a digit expected after '.', found");
        if (p == NULL) {
            return NULL;
        }
    }

    if (p < j->end && (*p == 'e' || *p == 'E')) {
        *real = 1;
        p++;

        if (p < j->end && (*p == '+' || *p == '-')) {
            p++;
        }

        p = ngx_http_engagement_json_digits(j, p,
                                   "a digit expected in the exponent, found");
    }

    return p;
}


/* a real (begin to j->p): only checked to be finite as a double */
static ngx_int_t
ngx_http_engagement_json_real(ngx_http_engagement_json_t *j, u_char *begin)
{
    u_char  *copy;
    double   d;

    /* strtod wants a terminated copy; reals are rare in our bodies */
    copy = ngx_pnalloc(j->pool, j->p - begin + 1);
    if (copy == NULL) {
        return ngx_http_engagement_json_fail(j, "out of memory", begin);
    }

    *ngx_cpymem(copy, begin, j->p - begin) = '\0';

    errno = 0;
    d = strtod((char *) copy, NULL);

    if (errno == ERANGE && (d > 1.0 || d < -1.0)) {
        return ngx_http_engagement_json_fail(j, "number out of range", begin);
    }

    return NGX_OK;
}


/*
 * The common number at p, in one pass: an integer of 1 to
 * NGX_HTTP_ENGAGEMENT_JSON_SAFE digits (it fits), no leading zero, no
 * fraction nor exponent. Its end, its value in *num; NULL for any other,
 * left to the full path.
 */

static ngx_inline u_char *
ngx_http_engagement_json_int_end(u_char *p, u_char *end, int64_t *num)
{
    u_char      *digits, d;
    uint64_t     n;
    ngx_uint_t   neg;

    neg = (*p == '-');
    digits = p + neg;
    n = 0;

    /* a longer run wraps n harmlessly: it is declined below */
    for (p = digits; p < end && (d = (u_char) (*p - '0')) <= 9; p++) {
        n = n * 10 + d;
    }

    if ((size_t) (p - digits) - 1 >= NGX_HTTP_ENGAGEMENT_JSON_SAFE
        || (*digits == '0' && p - digits > 1)
        || (p < end && (*p == '.' || (*p | 0x20) == 'e')))
    {
        return NULL;
    }

    *num = neg ? - (int64_t) n : (int64_t) n;

    return p;
}


/* the common integer at j->p (see int_end); NGX_DECLINED: any other */
static ngx_inline ngx_int_t
ngx_http_engagement_json_integer(ngx_http_engagement_json_t *j,
    ngx_http_engagement_jv_t *v)
{
    u_char   *p;
    int64_t   n;

    p = ngx_http_engagement_json_int_end(j->p, j->end, &n);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    j->p = p;

    if (v) {
        v->type = NGX_HTTP_ENGAGEMENT_JV_INTEGER;
        v->num = n;
    }

    return NGX_OK;
}


/*
 * A number other than the common integer: integers must fit in 64 bits;
 * other numbers (a fraction or an exponent) are reals and must be finite
 * as doubles.
 */

static ngx_int_t
ngx_http_engagement_json_number_full(ngx_http_engagement_json_t *j,
    ngx_http_engagement_jv_t *v)
{
    u_char      *p, *begin;
    uint64_t     n, max;
    ngx_uint_t   neg, real;

    begin = j->p;
    neg = (*begin == '-');

    p = ngx_http_engagement_json_number_end(j, &real);
    if (p == NULL) {
        return NGX_ERROR;
    }

    j->p = p;

    if (real) {
        if (ngx_http_engagement_json_real(j, begin) != NGX_OK) {
            return NGX_ERROR;
        }

        if (v) {
            v->type = NGX_HTTP_ENGAGEMENT_JV_REAL;
        }

        return NGX_OK;
    }

    max = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    n = 0;

    for (p = begin + neg; p < j->p; p++) {
        if (n > (max - (*p - '0')) / 10) {
            return ngx_http_engagement_json_fail(j, "integer out of range",
                                                 begin);
        }

        n = n * 10 + (*p - '0');
    }

    if (v) {
        v->type = NGX_HTTP_ENGAGEMENT_JV_INTEGER;
        v->num = neg ? (int64_t) (0 - n) : (int64_t) n;
    }

    return NGX_OK;
}


/* a number: the common integer inline, any other by the full path */
static ngx_inline ngx_int_t
ngx_http_engagement_json_number(ngx_http_engagement_json_t *j,
    ngx_http_engagement_jv_t *v)
{
    if (ngx_http_engagement_json_integer(j, v) == NGX_OK) {
        return NGX_OK;
    }

    return ngx_http_engagement_json_number_full(j, v);
}


static ngx_int_t
ngx_http_engagement_json_literal(ngx_http_engagement_json_t *j,
    const char *word, size_t len)
{
    if ((size_t) (j->end - j->p) < len
        || ngx_memcmp(j->p, word, len) != 0)
    {
        return ngx_http_engagement_json_unexpected(j,
                   "a JSON value expected, found");
    }

    j->p += len;

    return NGX_OK;
}


/*
 * A container's frame: open() steps over '{' or '[' and answers NGX_OK if
 * the container is empty, NGX_AGAIN if a member follows; next() follows a
 * member: NGX_AGAIN after a ',', NGX_OK at the closing byte.
 */

static ngx_inline ngx_int_t
ngx_http_engagement_json_open(ngx_http_engagement_json_t *j, u_char close)
{
    j->p++;
    ngx_http_engagement_json_ws(j);

    if (j->p < j->end && *j->p == close) {
        j->p++;
        return NGX_OK;
    }

    return NGX_AGAIN;
}


static ngx_inline ngx_int_t
ngx_http_engagement_json_next(ngx_http_engagement_json_t *j, u_char close)
{
    ngx_http_engagement_json_ws(j);

    if (j->p < j->end && *j->p == ',') {
        j->p++;
        ngx_http_engagement_json_ws(j);
        return NGX_AGAIN;
    }

    if (j->p < j->end && *j->p == close) {
        j->p++;
        return NGX_OK;
    }

    return ngx_http_engagement_json_unexpected(j, close == '}'
                                               ? "',' or '}' expected, found"
                                               : "',' or ']' expected, found");
}


/* the start of a key at j->p: NGX_OK, or the error set */
static ngx_int_t
ngx_http_engagement_json_key_start(ngx_http_engagement_json_t *j,
    ngx_uint_t members)
{
    if (j->p == j->end || *j->p != '"') {
        return ngx_http_engagement_json_unexpected(j,
                   members ? "a key (a string) expected, found"
                           : "a key (a string) or '}' expected, found");
    }

    return NGX_OK;
}


/*
 * A key just added to an object's keys (added: what key_add or the
 * wanted keys' bits said): NGX_OK, or the error set.
 */

static ngx_int_t
ngx_http_engagement_json_key_added(ngx_http_engagement_json_t *j,
    ngx_int_t added, u_char *kat, ngx_str_t *key)
{
    if (added == NGX_DECLINED) {
        return ngx_http_engagement_json_fail_at(j, "duplicate key", kat,
                                                key->data, key->len, 1);
    }

    if (added != NGX_OK) {
        return ngx_http_engagement_json_fail(j, "out of memory", kat);
    }

    return NGX_OK;
}


/* an object nested in the top-level one: its keys go to its own key set */
static ngx_int_t
ngx_http_engagement_json_object(ngx_http_engagement_json_t *j,
    ngx_uint_t depth)
{
    u_char                       *kat;
    ngx_int_t                     rc;
    ngx_str_t                     key;
    ngx_uint_t                    members;
    ngx_http_engagement_jkeys_t   seen;

    seen.all = NULL;
    seen.n = 0;
    members = 0;

    for (rc = ngx_http_engagement_json_open(j, '}');
         rc == NGX_AGAIN;
         rc = ngx_http_engagement_json_next(j, '}'))
    {
        if (ngx_http_engagement_json_key_start(j, members) != NGX_OK) {
            return NGX_ERROR;
        }

        kat = j->p;
        members++;

        if (ngx_http_engagement_json_string(j, &key) != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_engagement_json_key_added(j,
                ngx_http_engagement_json_key_add(j->pool, &seen, &key),
                kat, &key)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_engagement_json_ws(j);

        if (j->p == j->end || *j->p != ':') {
            return ngx_http_engagement_json_unexpected(j,
                       "':' expected after a key, found");
        }

        j->p++;
        ngx_http_engagement_json_ws(j);

        if (ngx_http_engagement_json_value(j, depth, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return rc;
}


/*
 * The value of wanted key k at p, kept in v: its end, or NULL (the error
 * set). A string whose key has chars is scanned for those bytes alone,
 * which checks it in the same pass: if it fits, it is stored in out and
 * *stored set; one that has other bytes (an escape, a byte not allowed)
 * is scanned again as any string, then checked whole. The common integer
 * is read here too; any other value goes to the general functions.
 */

static ngx_inline u_char *
ngx_http_engagement_json_member(ngx_http_engagement_json_t *j, u_char *p,
    ngx_http_engagement_json_key_t *k, ngx_http_engagement_jv_t *v,
    uint32_t *stored, uint32_t bit)
{
    u_char        *q, *end, *last;
    size_t         len;
    int64_t        n;
    ngx_str_t     *s;
    const u_char  *chars;

    end = j->end;
    chars = k->chars;

    if (p == end) {
        /* void */

    } else if (*p == '"' && chars) {
        /*
         * Four bytes a step while four are left (p is 5 bytes or more
         * into the body: end - 4 is inside it), then one; a step that
         * stopped short of the end has a byte not allowed in its four,
         * where the single steps stop without looking for the end.
         */
        last = end - 4;

        for (q = p + 1;
             q <= last
             && (chars[q[0]] & chars[q[1]] & chars[q[2]] & chars[q[3]]);
             q += 4)
        {
            /* void */
        }

        if (q <= last) {
            while (chars[*q]) {
                q++;
            }

        } else {
            while (q < end && chars[*q]) {
                q++;
            }
        }

        if (q < end && *q == '"') {
            len = q - (p + 1);

            if (len - 1 < k->max) {
                /* 1 to max bytes: fits */
                s = (ngx_str_t *) (j->out + k->offset);
                s->data = p + 1;
                s->len = len;
                *stored |= bit;
                return q + 1;
            }

            v->type = NGX_HTTP_ENGAGEMENT_JV_STRING;
            v->str.data = p + 1;
            v->str.len = len;
            v->fits = 0;
            return q + 1;
        }

        j->p = p;

        if (ngx_http_engagement_json_string(j, &v->str) != NGX_OK) {
            return NULL;
        }

        v->type = NGX_HTTP_ENGAGEMENT_JV_STRING;
        v->fits = ngx_http_engagement_json_fits(&v->str, chars, k->max);

        return j->p;

    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
        v->fits = 0;
        q = ngx_http_engagement_json_int_end(p, end, &n);

        if (q) {
            v->type = NGX_HTTP_ENGAGEMENT_JV_INTEGER;
            v->num = n;
            return q;
        }

        j->p = p;

        return (ngx_http_engagement_json_number_full(j, v) == NGX_OK)
               ? j->p : NULL;
    }

    v->fits = 0;
    j->p = p;

    return (ngx_http_engagement_json_value(j, 1, v) == NGX_OK) ? j->p : NULL;
}


/*
 * The top-level object (depth 1), on local pointers: a wanted key
 * written plainly is found by its first byte and length with no scan and
 * marked in a bit (a second one is a duplicate); any other key is
 * scanned as a string, then looked up among the wanted ones, and the
 * keys not wanted go to the object's own key set. The general functions
 * take over at j->p wherever the body is not the common case.
 */

static ngx_int_t
ngx_http_engagement_json_top(ngx_http_engagement_json_t *j)
{
    u_char                             *p, *end, *kat;
    uint32_t                            found, stored;
    ngx_int_t                           i, added;
    ngx_str_t                           key;
    ngx_uint_t                          members;
    ngx_http_engagement_jv_t           *vals;
    ngx_http_engagement_jkeys_t         seen;
    ngx_http_engagement_json_key_t     *keys;
    ngx_http_engagement_json_keyset_t  *ks;

    seen.all = NULL;
    seen.n = 0;
    members = 0;
    found = 0;
    stored = 0;
    end = j->end;
    ks = j->ks;
    keys = ks->keys;
    vals = j->vals;

    p = ngx_http_engagement_json_skip(j->p + 1, end);

    if (p < end && *p == '}') {
        j->p = p + 1;
        return NGX_OK;
    }

    /* whitespace is looked for only where the expected byte is not */
    for ( ;; ) {
        if (p == end || *p != '"') {
            p = ngx_http_engagement_json_skip(p, end);

            if (p == end || *p != '"') {
                j->p = p;
                return ngx_http_engagement_json_key_start(j, members);
            }
        }

        kat = p;
        members++;

        i = ngx_http_engagement_json_key_known(ks, p + 1, end, &key);

        if (i != NGX_DECLINED) {
            p = key.data + key.len + 1;

        } else {
            j->p = p;

            if (ngx_http_engagement_json_string(j, &key) != NGX_OK) {
                return NGX_ERROR;
            }

            p = j->p;
            i = ngx_http_engagement_json_wanted(ks, &key);
        }

        if (i != NGX_DECLINED) {
            if (found & (1u << i)) {
                return ngx_http_engagement_json_key_added(j, NGX_DECLINED,
                                                          kat, &key);
            }

            found |= 1u << i;

        } else {
            added = ngx_http_engagement_json_key_add(j->pool, &seen, &key);

            if (added != NGX_OK) {
                return ngx_http_engagement_json_key_added(j, added, kat,
                                                          &key);
            }
        }

        if (p == end || *p != ':') {
            p = ngx_http_engagement_json_skip(p, end);

            if (p == end || *p != ':') {
                j->p = p;
                return ngx_http_engagement_json_unexpected(j,
                           "':' expected after a key, found");
            }
        }

        p = ngx_http_engagement_json_skip(p + 1, end);

        if (i != NGX_DECLINED) {
            p = ngx_http_engagement_json_member(j, p, &keys[i], &vals[i],
                                                &stored, (uint32_t) 1 << i);

        } else {
            j->p = p;
            p = (ngx_http_engagement_json_value(j, 1, NULL) == NGX_OK)
                ? j->p : NULL;
        }

        if (p == NULL) {
            return NGX_ERROR;
        }

        if (p < end && *p == ',') {
            p++;
            continue;
        }

        p = ngx_http_engagement_json_skip(p, end);

        if (p < end && *p == ',') {
            p++;
            continue;
        }

        if (p < end && *p == '}') {
            j->p = p + 1;
            j->found = found;
            j->stored = stored;
            return NGX_OK;
        }

        j->p = p;

        return ngx_http_engagement_json_unexpected(j,
                   "',' or '}' expected, found");
    }
}


static ngx_int_t
ngx_http_engagement_json_array(ngx_http_engagement_json_t *j,
    ngx_uint_t depth)
{
    ngx_int_t  rc;

    for (rc = ngx_http_engagement_json_open(j, ']');
         rc == NGX_AGAIN;
         rc = ngx_http_engagement_json_next(j, ']'))
    {
        if (ngx_http_engagement_json_value(j, depth, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return rc;
}


/* one value at j->p, inside depth containers; kept in v if v is set */
static ngx_int_t
ngx_http_engagement_json_value(ngx_http_engagement_json_t *j,
    ngx_uint_t depth, ngx_http_engagement_jv_t *v)
{
    ngx_int_t                      rc;
    ngx_str_t                      s;
    ngx_http_engagement_jv_type_e  type;

    if (j->p == j->end) {
        return ngx_http_engagement_json_unexpected(j, NULL);
    }

    switch (*j->p) {

    case '"':
        if (ngx_http_engagement_json_string(j, &s) != NGX_OK) {
            return NGX_ERROR;
        }

        if (v) {
            v->type = NGX_HTTP_ENGAGEMENT_JV_STRING;
            v->str = s;
        }

        return NGX_OK;

    case '{':
    case '[':
        if (depth == NGX_HTTP_ENGAGEMENT_JSON_DEPTH) {
            return ngx_http_engagement_json_fail(j,
                       "nesting deeper than "
                       ngx_value(NGX_HTTP_ENGAGEMENT_JSON_DEPTH) " levels",
                       j->p);
        }

        if (*j->p == '{') {
            type = NGX_HTTP_ENGAGEMENT_JV_OBJECT;
            rc = ngx_http_engagement_json_object(j, depth + 1);

        } else {
            type = NGX_HTTP_ENGAGEMENT_JV_ARRAY;
            rc = ngx_http_engagement_json_array(j, depth + 1);
        }

        break;

    case 't':
        type = NGX_HTTP_ENGAGEMENT_JV_TRUE;
        rc = ngx_http_engagement_json_literal(j, "true", 4);
        break;

    case 'f':
        type = NGX_HTTP_ENGAGEMENT_JV_FALSE;
        rc = ngx_http_engagement_json_literal(j, "false", 5);
        break;

    case 'n':
        type = NGX_HTTP_ENGAGEMENT_JV_NULL;
        rc = ngx_http_engagement_json_literal(j, "null", 4);
        break;

    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return ngx_http_engagement_json_number(j, v);

    default:
        return ngx_http_engagement_json_unexpected(j,
                   "a JSON value expected, found");
    }

    if (rc == NGX_OK && v) {
        v->type = type;
    }

    return rc;
}


/*
 * Checks the whole body, which must be one JSON object, and leaves in
 * vals[i] the value of its top-level key ks->keys[i], bit i of *found set
 * (vals[i] is left as it was when the object lacks the key); a value
 * stored in out instead (see ngx_http_engagement_json_key_t) has bit i of
 * *stored set too. Other keys are checked and skipped. On an error, out
 * may hold some values: the caller drops it.
 */

ngx_int_t
ngx_http_engagement_json_parse(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_http_engagement_json_keyset_t *ks, ngx_http_engagement_jv_t *vals,
    void *out, uint32_t *found, uint32_t *stored,
    ngx_http_engagement_error_t *err)
{
    ngx_uint_t                  object;
    ngx_http_engagement_json_t  j;

    err->field = NULL;
    err->detail_len = 0;

    if (len == 0) {
        err->message = "empty body: a JSON object is expected";
        return NGX_ERROR;
    }

    *found = 0;
    *stored = 0;

    j.start = buf;
    j.p = buf;
    j.end = buf + len;
    j.pool = pool;
    j.ks = ks;
    j.vals = vals;
    j.out = out;
    j.found = 0;
    j.stored = 0;
    j.err = err;

    ngx_http_engagement_json_ws(&j);

    object = 0;

    /* a top-level object is at depth 1: its keys are the wanted ones */
    if (j.p < j.end && *j.p == '{') {
        if (ngx_http_engagement_json_top(&j) != NGX_OK) {
            return NGX_ERROR;
        }

        object = 1;

    } else if (ngx_http_engagement_json_value(&j, 0, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_engagement_json_ws(&j);

    if (j.p != j.end) {
        return ngx_http_engagement_json_unexpected(&j,
                   "the body goes on after the JSON value:");
    }

    if (!object) {
        err->message = "body must be a JSON object";
        return NGX_ERROR;
    }

    *found = j.found;
    *stored = j.stored;

    return NGX_OK;
}
