
/*
 * The JSON parser's own declarations, shared by its two files: json.c
 * (the grammar, numbers and the top-level object: the request path) and
 * json_string.c (what only unusual bodies reach: errors and their detail,
 * UTF-8 checks, escapes).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_JSON_INT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_JSON_INT_H_INCLUDED_


#include "input/ngx_http_engagement_json.h"


#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


/* the longest part of a key quoted in an error's detail */
#define NGX_HTTP_ENGAGEMENT_JSON_QUOTE_MAX  40


typedef struct {
    u_char                         *start;
    u_char                         *p;
    u_char                         *end;
    ngx_pool_t                     *pool;

    /*
     * the wanted top-level keys, their values, a bit for each found, the
     * values that fit stored in out (a bit for each)
     */
    ngx_http_engagement_json_keyset_t  *ks;
    ngx_http_engagement_jv_t       *vals;
    u_char                         *out;
    uint32_t                        found;
    uint32_t                        stored;

    /* the error: what and where (detail written once, at the first) */
    const char                     *what;
    u_char                         *at;
    ngx_http_engagement_error_t    *err;
} ngx_http_engagement_json_t;


/* 1 for the bytes a string holds as they are: 0x20-0x7f but '"' and '\\' */
static const u_char  ngx_http_engagement_json_plain[256] = {
    [0x20 ... '"' - 1] = 1,
    ['"' + 1 ... '\\' - 1] = 1,
    ['\\' + 1 ... 0x7f] = 1

    /* 0x80-0xff: 0, UTF-8 is checked byte by byte */
};


/*
 * The end of a run of plain bytes at p, 8 bytes at a time where words
 * allow: in each word, the high bit of a byte is set by '"', '\\', a byte
 * below 0x20 or one above 0x7f (a borrow can mark a byte falsely, but only
 * above a byte marked rightly, so the lowest mark is the first such byte).
 */

static ngx_inline u_char *
ngx_http_engagement_json_plain_run(u_char *p, u_char *end)
{
#if (NGX_HTTP_ENGAGEMENT_JSON_WORDS)
    uint64_t  w, q, b, hit;

    while (end - p >= 8) {
        ngx_memcpy(&w, p, 8);

        q = w ^ (NGX_HTTP_ENGAGEMENT_JSON_ONES * '"');
        b = w ^ (NGX_HTTP_ENGAGEMENT_JSON_ONES * '\\');

        hit = ((q - NGX_HTTP_ENGAGEMENT_JSON_ONES) & ~q)
              | ((b - NGX_HTTP_ENGAGEMENT_JSON_ONES) & ~b)
              | ((w - NGX_HTTP_ENGAGEMENT_JSON_ONES * 0x20) & ~w)
              | w;

        hit &= NGX_HTTP_ENGAGEMENT_JSON_HIGHS;

        if (hit) {
            return p + (__builtin_ctzll(hit) >> 3);
        }

        p += 8;
    }
#endif

    while (p < end && ngx_http_engagement_json_plain[*p]) {
        p++;
    }

    return p;
}


ngx_int_t ngx_http_engagement_json_fail_at(ngx_http_engagement_json_t *j,
    const char *what, u_char *at, const u_char *quote, size_t qlen,
    ngx_uint_t quoted);
ngx_int_t ngx_http_engagement_json_fail(ngx_http_engagement_json_t *j,
    const char *what, u_char *at);
ngx_int_t ngx_http_engagement_json_unexpected(ngx_http_engagement_json_t *j,
    const char *expected);
ngx_int_t ngx_http_engagement_json_string_rest(ngx_http_engagement_json_t *j,
    u_char *begin, u_char *p, ngx_str_t *s);


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_JSON_INT_H_INCLUDED_ */
