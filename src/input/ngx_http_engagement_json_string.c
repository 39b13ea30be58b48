
/*
 * The JSON parser's slow paths (see json.c): an error's detail, UTF-8
 * checked byte by byte, escapes decoded. A body of plain strings and
 * integers never calls here.
 */


#include "input/ngx_http_engagement_json_int.h"


static u_char *
ngx_http_engagement_detail_str(u_char *p, u_char *last, const u_char *s,
    size_t len)
{
    len = ngx_min(len, (size_t) (last - p));

    return ngx_cpymem(p, s, len);
}


static u_char *
ngx_http_engagement_detail_num(u_char *p, u_char *last, uint64_t n)
{
    u_char   tmp[24], *t;

    t = tmp + sizeof(tmp);

    do {
        *--t = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_http_engagement_detail_str(p, last, t, tmp + sizeof(tmp) - t);
}


/*
 * Records a syntax error: "<what>[ "<quote>"] at offset N". The detail is
 * built by hand (no format string), so the fuzz target runs it as is.
 */

ngx_int_t
ngx_http_engagement_json_fail_at(ngx_http_engagement_json_t *j,
    const char *what, u_char *at, const u_char *quote, size_t qlen,
    ngx_uint_t quoted)
{
    u_char                       *p, *last;
    ngx_http_engagement_error_t  *err;

    err = j->err;
    p = err->detail;
    last = err->detail + sizeof(err->detail);

    p = ngx_http_engagement_detail_str(p, last, (u_char *) what,
                                       ngx_strlen(what));

    if (quote && !quoted) {
        p = ngx_http_engagement_detail_str(p, last, (u_char *) " ", 1);
        p = ngx_http_engagement_detail_str(p, last, quote, qlen);

    } else if (quote) {
        p = ngx_http_engagement_detail_str(p, last, (u_char *) " \"", 2);
        p = ngx_http_engagement_detail_str(p, last, quote,
                          ngx_min(qlen, NGX_HTTP_ENGAGEMENT_JSON_QUOTE_MAX));
        if (qlen > NGX_HTTP_ENGAGEMENT_JSON_QUOTE_MAX) {
            p = ngx_http_engagement_detail_str(p, last, (u_char *) "...", 3);
        }
        p = ngx_http_engagement_detail_str(p, last, (u_char *) "\"", 1);
    }

    p = ngx_http_engagement_detail_str(p, last, (u_char *) " at offset ",
                                       sizeof(" at offset ") - 1);
    p = ngx_http_engagement_detail_num(p, last, at - j->start);

    err->detail_len = p - err->detail;
    err->message = "body is not valid JSON";
    err->field = NULL;

    return NGX_ERROR;
}


ngx_int_t
ngx_http_engagement_json_fail(ngx_http_engagement_json_t *j, const char *what,
    u_char *at)
{
    return ngx_http_engagement_json_fail_at(j, what, at, NULL, 0, 0);
}


/* an unexpected byte: the byte itself if printable, else its hex value */
ngx_int_t
ngx_http_engagement_json_unexpected(ngx_http_engagement_json_t *j,
    const char *expected)
{
    u_char  c, b[9];

    if (j->p == j->end) {
        return ngx_http_engagement_json_fail(j, "unexpected end of the body",
                                             j->p);
    }

    c = *j->p;

    if (c > 0x20 && c < 0x7f && c != '"' && c != '\\') {
        b[0] = c;
        return ngx_http_engagement_json_fail_at(j, expected, j->p, b, 1, 1);
    }

    /* "... byte 0xNN", unquoted */
    ngx_memcpy(b, "byte 0x", 7);
    b[7] = "0123456789abcdef"[c >> 4];
    b[8] = "0123456789abcdef"[c & 0xf];

    return ngx_http_engagement_json_fail_at(j, expected, j->p, b, 9, 0);
}


/*
 * RFC 3629, section 4: by lead byte, the length of a sequence and the
 * range of its second byte (the others are 0x80-0xbf). The narrow ranges
 * refuse overlong forms, surrogates and code points above U+10FFFF.
 */

typedef struct {
    u_char                          first;
    u_char                          last;
    u_char                          len;
    u_char                          lo;
    u_char                          hi;
} ngx_http_engagement_utf8_lead_t;


static const ngx_http_engagement_utf8_lead_t  ngx_http_engagement_utf8[] = {
    { 0xc2, 0xdf, 2, 0x80, 0xbf },
    { 0xe0, 0xe0, 3, 0xa0, 0xbf },
    { 0xe1, 0xec, 3, 0x80, 0xbf },
    { 0xed, 0xed, 3, 0x80, 0x9f },
    { 0xee, 0xef, 3, 0x80, 0xbf },
    { 0xf0, 0xf0, 4, 0x90, 0xbf },
    { 0xf1, 0xf3, 4, 0x80, 0xbf },
    { 0xf4, 0xf4, 4, 0x80, 0x8f }
};


/* the length of a valid UTF-8 sequence of two to four bytes at p, or 0 */
static ngx_uint_t
ngx_http_engagement_utf8_len(const u_char *p, const u_char *end)
{
    ngx_uint_t                              i;
    const ngx_http_engagement_utf8_lead_t  *u;

    for (u = ngx_http_engagement_utf8;
         u < ngx_http_engagement_utf8 + sizeof(ngx_http_engagement_utf8)
                                        / sizeof(ngx_http_engagement_utf8[0]);
         u++)
    {
        if (p[0] < u->first || p[0] > u->last) {
            continue;
        }

        if ((size_t) (end - p) < u->len || p[1] < u->lo || p[1] > u->hi) {
            return 0;
        }

        for (i = 2; i < u->len; i++) {
            if (p[i] < 0x80 || p[i] > 0xbf) {
                return 0;
            }
        }

        return u->len;
    }

    return 0;
}


static ngx_int_t
ngx_http_engagement_json_hex4(const u_char *p, uint32_t *cp)
{
    u_char      c;
    uint32_t    v;
    ngx_uint_t  i;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');

        } else {
            c |= 0x20;

            if (c >= 'a' && c <= 'f') {
                v = v * 16 + (c - 'a' + 10);

            } else {
                return NGX_ERROR;
            }
        }
    }

    *cp = v;

    return NGX_OK;
}


/*
 * The length of the escape at p (its backslash, with a byte after it): 2,
 * 6 for \uXXXX, 12 for a surrogate pair; 0 when it is refused (the error
 * set).
 */

static size_t
ngx_http_engagement_json_escape_len(ngx_http_engagement_json_t *j, u_char *p)
{
    uint32_t  cp, lo;

    switch (p[1]) {

    case '"': case '\\': case '/': case 'b': case 'f':
    case 'n': case 'r': case 't':
        return 2;

    case 'u':
        break;

    default:
        j->p = p + 1;
        (void) ngx_http_engagement_json_unexpected(j, "invalid escape:");
        return 0;
    }

    if (j->end - p < 6 || ngx_http_engagement_json_hex4(p + 2, &cp) != NGX_OK)
    {
        (void) ngx_http_engagement_json_fail(j, "invalid \\u escape", p);
        return 0;
    }

    if (cp == 0) {
        (void) ngx_http_engagement_json_fail(j,
                   "\\u0000 (NUL) is not allowed in a string", p);
        return 0;
    }

    if (cp >= 0xdc00 && cp <= 0xdfff) {
        (void) ngx_http_engagement_json_fail(j,
                   "invalid Unicode: a low surrogate without a high one", p);
        return 0;
    }

    if (cp < 0xd800 || cp > 0xdbff) {
        return 6;
    }

    if (j->end - p < 12 || p[6] != '\\' || p[7] != 'u'
        || ngx_http_engagement_json_hex4(p + 8, &lo) != NGX_OK
        || lo < 0xdc00 || lo > 0xdfff)
    {
        (void) ngx_http_engagement_json_fail(j,
                   "invalid Unicode: a high surrogate without a low one", p);
        return 0;
    }

    return 12;
}


/*
 * Checks the string whose body starts at begin: the address of its closing
 * quote, or NULL (the error set); *esc is its first backslash, or NULL.
 */

static u_char *
ngx_http_engagement_json_string_end(ngx_http_engagement_json_t *j,
    u_char *begin, u_char **esc)
{
    u_char      *p;
    size_t       n;

    *esc = NULL;

    for (p = begin; /* void */; p += n) {

        /* the common case: a run of plain printable ASCII */
        p = ngx_http_engagement_json_plain_run(p, j->end);

        if (p < j->end && *p == '\\' && p + 1 < j->end) {
            if (*esc == NULL) {
                *esc = p;
            }

            n = ngx_http_engagement_json_escape_len(j, p);

        } else if (p < j->end && *p >= 0x80) {
            n = ngx_http_engagement_utf8_len(p, j->end);

            if (n == 0) {
                j->p = p;
                (void) ngx_http_engagement_json_unexpected(j,
                                                           "invalid UTF-8:");
            }

        } else {
            break;
        }

        if (n == 0) {
            return NULL;
        }
    }

    if (p < j->end && *p == '"') {
        return p;
    }

    if (p < j->end && *p < 0x20) {
        j->p = p;
        (void) ngx_http_engagement_json_unexpected(j,
                   "control character in a string:");
        return NULL;
    }

    /* the end of the body, maybe right after a backslash */
    p = (p < j->end) ? p + 1 : p;
    j->p = p;
    (void) ngx_http_engagement_json_fail(j,
               "unexpected end of the body in a string", p);

    return NULL;
}


/* writes code point cp as UTF-8 at d; returns the end */
static u_char *
ngx_http_engagement_json_utf8_put(u_char *d, uint32_t cp)
{
    if (cp < 0x80) {
        *d++ = (u_char) cp;

    } else if (cp < 0x800) {
        *d++ = (u_char) (0xc0 | (cp >> 6));
        *d++ = (u_char) (0x80 | (cp & 0x3f));

    } else if (cp < 0x10000) {
        *d++ = (u_char) (0xe0 | (cp >> 12));
        *d++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
        *d++ = (u_char) (0x80 | (cp & 0x3f));

    } else {
        *d++ = (u_char) (0xf0 | (cp >> 18));
        *d++ = (u_char) (0x80 | ((cp >> 12) & 0x3f));
        *d++ = (u_char) (0x80 | ((cp >> 6) & 0x3f));
        *d++ = (u_char) (0x80 | (cp & 0x3f));
    }

    return d;
}


/*
 * Decodes a checked string (begin up to its closing quote at end, first
 * escape at esc) into the pool; never longer than the escaped form.
 */

static ngx_int_t
ngx_http_engagement_json_unescape(ngx_http_engagement_json_t *j,
    u_char *begin, u_char *esc, u_char *end, ngx_str_t *s)
{
    u_char    *q, *d;
    uint32_t   cp, lo;

    d = ngx_pnalloc(j->pool, end - begin);
    if (d == NULL) {
        return ngx_http_engagement_json_fail(j, "out of memory", begin);
    }

    s->data = d;
    d = ngx_cpymem(d, begin, esc - begin);

    for (q = esc; q < end; /* void */) {

        if (*q != '\\') {
            *d++ = *q++;
            continue;
        }

        switch (q[1]) {
        case 'b': *d++ = '\b'; q += 2; continue;
        case 'f': *d++ = '\f'; q += 2; continue;
        case 'n': *d++ = '\n'; q += 2; continue;
        case 'r': *d++ = '\r'; q += 2; continue;
        case 't': *d++ = '\t'; q += 2; continue;
        case 'u': break;
        default: *d++ = q[1]; q += 2; continue;
        }

        (void) ngx_http_engagement_json_hex4(q + 2, &cp);
        q += 6;

        if (cp >= 0xd800 && cp <= 0xdbff) {
            (void) ngx_http_engagement_json_hex4(q + 2, &lo);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            q += 6;
        }

        d = ngx_http_engagement_json_utf8_put(d, cp);
    }

    s->len = d - s->data;

    return NGX_OK;
}


/* the string at begin past its plain bytes up to p: see json_string() */
ngx_int_t
ngx_http_engagement_json_string_rest(ngx_http_engagement_json_t *j,
    u_char *begin, u_char *p, ngx_str_t *s)
{
    u_char  *end, *esc;

    end = ngx_http_engagement_json_string_end(j, p, &esc);
    if (end == NULL) {
        return NGX_ERROR;
    }

    j->p = end + 1;

    if (esc == NULL) {
        s->data = begin;
        s->len = end - begin;
        return NGX_OK;
    }

    return ngx_http_engagement_json_unescape(j, begin, esc, end, s);
}
