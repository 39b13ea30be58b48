
/*
 * input/ inside: the JSON parser as the events use it. A body is checked
 * whole (strict RFC 8259) and the values of the top-level keys a caller
 * asks for are handed back (found: a bit per key, in the keys' order);
 * everything else is only checked. Not for use
 * outside input/: the other folders get events, not JSON.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_JSON_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_JSON_H_INCLUDED_


#include "input/ngx_http_engagement_input.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


/* the most top-level keys one parse hands back */
#define NGX_HTTP_ENGAGEMENT_JSON_FIELDS     16


typedef enum {
    NGX_HTTP_ENGAGEMENT_JV_ABSENT = 0,
    NGX_HTTP_ENGAGEMENT_JV_STRING,
    NGX_HTTP_ENGAGEMENT_JV_INTEGER,
    NGX_HTTP_ENGAGEMENT_JV_REAL,
    NGX_HTTP_ENGAGEMENT_JV_TRUE,
    NGX_HTTP_ENGAGEMENT_JV_FALSE,
    NGX_HTTP_ENGAGEMENT_JV_NULL,
    NGX_HTTP_ENGAGEMENT_JV_OBJECT,
    NGX_HTTP_ENGAGEMENT_JV_ARRAY
} ngx_http_engagement_jv_type_e;


/* the value of one wanted key: a string, an integer, or only its type */
typedef struct {
    ngx_http_engagement_jv_type_e   type;
    ngx_str_t                       str;
    int64_t                         num;
    ngx_uint_t                      fits;     /* a string of the key's chars */
} ngx_http_engagement_jv_t;


/*
 * A top-level key whose value is wanted. With chars (256 entries, 1: the
 * byte is allowed; never '"', '\\', a control byte or a byte above 0x7f),
 * a string value is checked while it is scanned: "fits" says that it is
 * 1 to max bytes, each of them allowed. A value written plainly that fits
 * is not handed back in vals: it is stored as an ngx_str_t at offset in
 * the caller's out, its bit set in *stored too.
 */
typedef struct {
    ngx_str_t                       name;
    const u_char                   *chars;
    size_t                          max;
    size_t                          offset;
    /* made by keyset_init: the name's first and last 8 bytes as words */
    uint64_t                        head;
    uint64_t                        tail;
} ngx_http_engagement_json_key_t;


#if (NGX_HAVE_LITTLE_ENDIAN && NGX_PTR_SIZE == 8 && defined __GNUC__)
#define NGX_HTTP_ENGAGEMENT_JSON_WORDS  1
#define NGX_HTTP_ENGAGEMENT_JSON_ONES   0x0101010101010101ULL
#define NGX_HTTP_ENGAGEMENT_JSON_HIGHS  0x8080808080808080ULL
#endif


/*
 * The wanted keys by first byte, then length (made once, by
 * keyset_init). Their names are plain ASCII: no '"', no '\\'.
 */
typedef struct {
    ngx_http_engagement_json_key_t *keys;
    ngx_uint_t                      nkeys;
    /* index + 1 of the first key of a first byte, and of the next one */
    u_char                          first[256];
    u_char                          next[NGX_HTTP_ENGAGEMENT_JSON_FIELDS];
} ngx_http_engagement_json_keyset_t;


/* keys of one object kept for the duplicate check before hashing them */
#define NGX_HTTP_ENGAGEMENT_JSON_KEYS_FEW   8

/* one key of an object, for the duplicate check */
typedef struct {
    u_char                         *data;
    size_t                          len;
    uint32_t                        hash;
} ngx_http_engagement_jkey_t;


/* the keys of the object being parsed at one level */
typedef struct {
    ngx_http_engagement_jkey_t      few[NGX_HTTP_ENGAGEMENT_JSON_KEYS_FEW];
    ngx_http_engagement_jkey_t     *all;      /* after "few": all the keys */
    ngx_uint_t                      n;
    ngx_uint_t                      cap;
    uint32_t                       *slots;    /* index + 1; 0: empty */
    ngx_uint_t                      nslots;
} ngx_http_engagement_jkeys_t;


/* inline: called for every key of the body, from json.c */

/*
 * The same bytes: of 8 or more, a word at a time, the last word ending at
 * the last byte (it may overlap the one before); of fewer, byte by byte.
 */

static ngx_inline ngx_uint_t
ngx_http_engagement_json_same(const u_char *a, const u_char *b, size_t len)
{
    uint64_t  x, y;

    if (len >= 8) {
        for ( /* void */ ; len > 8; a += 8, b += 8, len -= 8) {
            ngx_memcpy(&x, a, 8);
            ngx_memcpy(&y, b, 8);

            if (x != y) {
                return 0;
            }
        }

        ngx_memcpy(&x, a + len - 8, 8);
        ngx_memcpy(&y, b + len - 8, 8);

        return (x == y);
    }

    while (len--) {
        if (*a++ != *b++) {
            return 0;
        }
    }

    return 1;
}


/*
 * Whether the len bytes at p (end - p > len) are key k's name: with
 * words, its first and last 8 bytes (they may overlap), or its bytes
 * under a mask when it is shorter and 8 bytes can be read.
 */

static ngx_inline ngx_uint_t
ngx_http_engagement_json_is_key(ngx_http_engagement_json_key_t *k,
    const u_char *p, const u_char *end, size_t len)
{
#if (NGX_HTTP_ENGAGEMENT_JSON_WORDS)
    uint64_t  x, y;

    if (len >= 8) {
        ngx_memcpy(&x, p, 8);
        ngx_memcpy(&y, p + len - 8, 8);

        return (x == k->head) & (y == k->tail);
    }

    if (end - p >= 8) {
        ngx_memcpy(&x, p, 8);

        return ((x ^ k->head) & ((1ULL << (8 * len)) - 1)) == 0;
    }
#endif

    return ngx_http_engagement_json_same(k->name.data, p, len);
}


/*
 * A wanted key written plainly at p (just past its opening quote, end
 * the body's end): its index, key set to it, found without a scan (its
 * closing quote, then its name, compared). NGX_DECLINED for any other
 * key, which the caller scans as any string.
 */

static ngx_inline ngx_int_t
ngx_http_engagement_json_key_known(ngx_http_engagement_json_keyset_t *ks,
    u_char *p, u_char *end, ngx_str_t *key)
{
    size_t                           len;
    ngx_uint_t                       i;
    ngx_http_engagement_json_key_t  *k;

    if (p == end) {
        return NGX_DECLINED;
    }

    for (i = ks->first[*p]; i; i = ks->next[i - 1]) {
        k = &ks->keys[i - 1];
        len = k->name.len;

        if ((size_t) (end - p) > len && p[len] == '"'
            && ngx_http_engagement_json_is_key(k, p, end, len))
        {
            key->data = p;
            key->len = len;
            return i - 1;
        }
    }

    return NGX_DECLINED;
}


/* json_keys.c */
void ngx_http_engagement_json_keyset_init(
    ngx_http_engagement_json_keyset_t *ks,
    ngx_http_engagement_json_key_t *keys, ngx_uint_t nkeys);
ngx_int_t ngx_http_engagement_json_wanted(
    ngx_http_engagement_json_keyset_t *ks, ngx_str_t *key);
ngx_uint_t ngx_http_engagement_json_fits(ngx_str_t *s, const u_char *chars,
    size_t max);
ngx_int_t ngx_http_engagement_json_key_add(ngx_pool_t *pool,
    ngx_http_engagement_jkeys_t *ks, ngx_str_t *key);

/* json.c */
ngx_int_t ngx_http_engagement_json_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_json_keyset_t *ks,
    ngx_http_engagement_jv_t *vals, void *out, uint32_t *found,
    uint32_t *stored, ngx_http_engagement_error_t *err);


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_JSON_H_INCLUDED_ */
