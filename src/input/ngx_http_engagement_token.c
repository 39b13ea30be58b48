
/*
 * Signed view tokens: the format, minting and verification, with
 * HMAC-SHA256 from OpenSSL. A token is
 *
 *     1.<expires>.<tag>.<mac>
 *
 * <expires>: unix seconds; <tag>: 8 base64url characters, the first 6
 * bytes of HMAC(secret, "c\n" content id), so that a token used for other
 * content can be told from a forged one; <mac>: 43 base64url characters,
 * HMAC(secret, "1.<expires>.<tag>\n" content id "\n" session id). Every
 * character is in [A-Za-z0-9._-], so a token is safe in URLs, HTML and
 * JSON without escaping. This file uses no request or pool machinery, so
 * the fuzzer can compile it on its own.
 *
 * HMAC (RFC 2104) is computed here over OpenSSL's SHA-256 digest, with
 * the padded key's inner and outer states hashed once at configuration
 * time: a request copies them instead of fetching and keying a MAC (a
 * tenth of the cost of OpenSSL's one-shot HMAC()).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "input/ngx_http_engagement_input.h"


/* HMAC-SHA256 (RFC 2104): SHA-256's block and digest sizes, the pads */
#define NGX_HTTP_ENGAGEMENT_HMAC_BLOCK        64
#define NGX_HTTP_ENGAGEMENT_HMAC_LEN          32
#define NGX_HTTP_ENGAGEMENT_HMAC_IPAD         0x36
#define NGX_HTTP_ENGAGEMENT_HMAC_OPAD         0x5c

#define NGX_HTTP_ENGAGEMENT_TOKEN_TAG_BYTES   6    /* of the content's HMAC */
#define NGX_HTTP_ENGAGEMENT_TOKEN_TAG         8    /* base64url of 6 bytes */
#define NGX_HTTP_ENGAGEMENT_TOKEN_MAC         43   /* base64url of 32 bytes */
#define NGX_HTTP_ENGAGEMENT_TOKEN_EXP         12   /* digits: to year 33658 */
#define NGX_HTTP_ENGAGEMENT_TOKEN_EXPIRES_MAX 999999999999LL

/* the longest "1.<expires>.<tag>" the MAC is computed over */
#define NGX_HTTP_ENGAGEMENT_TOKEN_SIGNED_MAX  64

/* what the MAC is computed over: the signed part, content and session */
#define NGX_HTTP_ENGAGEMENT_TOKEN_IN                                          \
    (NGX_HTTP_ENGAGEMENT_TOKEN_SIGNED_MAX + 2 * NGX_HTTP_ENGAGEMENT_ID_MAX + 2)


static const u_char  ngx_http_engagement_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


static ngx_inline ngx_uint_t
ngx_http_engagement_b64url_char(u_char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_';
}


/* base64url without padding; returns the end of what was written */

static u_char *
ngx_http_engagement_b64url_encode(u_char *dst, const u_char *src, size_t len)
{
    uint32_t  v;

    while (len >= 3) {
        v = (uint32_t) src[0] << 16 | (uint32_t) src[1] << 8 | src[2];
        *dst++ = ngx_http_engagement_b64url[(v >> 18) & 0x3f];
        *dst++ = ngx_http_engagement_b64url[(v >> 12) & 0x3f];
        *dst++ = ngx_http_engagement_b64url[(v >> 6) & 0x3f];
        *dst++ = ngx_http_engagement_b64url[v & 0x3f];
        src += 3;
        len -= 3;
    }

    if (len == 2) {
        v = (uint32_t) src[0] << 16 | (uint32_t) src[1] << 8;
        *dst++ = ngx_http_engagement_b64url[(v >> 18) & 0x3f];
        *dst++ = ngx_http_engagement_b64url[(v >> 12) & 0x3f];
        *dst++ = ngx_http_engagement_b64url[(v >> 6) & 0x3f];

    } else if (len == 1) {
        v = (uint32_t) src[0] << 16;
        *dst++ = ngx_http_engagement_b64url[(v >> 18) & 0x3f];
        *dst++ = ngx_http_engagement_b64url[(v >> 12) & 0x3f];
    }

    return dst;
}


ngx_int_t
ngx_http_engagement_token_key(ngx_http_engagement_token_key_t *key,
    ngx_str_t *secret)
{
    u_char        k[NGX_HTTP_ENGAGEMENT_HMAC_BLOCK];
    u_char        pad[NGX_HTTP_ENGAGEMENT_HMAC_BLOCK];
    ngx_uint_t    i;
    unsigned int  n;
    EVP_MD_CTX   *ctx[2];

    ngx_memzero(k, sizeof(k));

    if (secret->len > sizeof(k)) {
        /* longer keys are hashed first, as RFC 2104 says */
        if (EVP_Digest(secret->data, secret->len, k, &n, EVP_sha256(), NULL)
            != 1)
        {
            return NGX_ERROR;
        }

    } else {
        ngx_memcpy(k, secret->data, secret->len);
    }

    key->inner = NULL;
    key->outer = NULL;

    for (i = 0; i < 2; i++) {
        ctx[i] = EVP_MD_CTX_new();

        if (ctx[i] == NULL) {
            goto failed;
        }

        if (i == 0) {
            key->inner = ctx[i];

        } else {
            key->outer = ctx[i];
        }

        for (n = 0; n < sizeof(pad); n++) {
            pad[n] = k[n] ^ (i == 0 ? NGX_HTTP_ENGAGEMENT_HMAC_IPAD
                                    : NGX_HTTP_ENGAGEMENT_HMAC_OPAD);
        }

        if (EVP_DigestInit_ex(ctx[i], EVP_sha256(), NULL) != 1
            || EVP_DigestUpdate(ctx[i], pad, sizeof(pad)) != 1)
        {
            goto failed;
        }
    }

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));

    return NGX_OK;

failed:

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    ngx_http_engagement_token_key_free(key);

    return NGX_ERROR;
}


void
ngx_http_engagement_token_key_free(ngx_http_engagement_token_key_t *key)
{
    /* EVP_MD_CTX_free() takes NULL */
    EVP_MD_CTX_free(key->inner);
    EVP_MD_CTX_free(key->outer);

    key->inner = NULL;
    key->outer = NULL;
}


static ngx_int_t
ngx_http_engagement_token_hmac(ngx_http_engagement_token_key_t *key,
    u_char *in, size_t len, u_char *md)
{
    ngx_int_t     rc;
    unsigned int  n;
    EVP_MD_CTX   *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_MD_CTX_copy_ex(ctx, key->inner) == 1
        && EVP_DigestUpdate(ctx, in, len) == 1
        && EVP_DigestFinal_ex(ctx, md, &n) == 1
        && n == NGX_HTTP_ENGAGEMENT_HMAC_LEN
        && EVP_MD_CTX_copy_ex(ctx, key->outer) == 1
        && EVP_DigestUpdate(ctx, md, NGX_HTTP_ENGAGEMENT_HMAC_LEN) == 1
        && EVP_DigestFinal_ex(ctx, md, &n) == 1
        && n == NGX_HTTP_ENGAGEMENT_HMAC_LEN)
    {
        rc = NGX_OK;
    }

    EVP_MD_CTX_free(ctx);

    return rc;
}


/* the content tag: 8 characters written at dst */

static ngx_int_t
ngx_http_engagement_token_tag(ngx_http_engagement_token_key_t *key,
    ngx_str_t *content, u_char *dst)
{
    u_char  md[NGX_HTTP_ENGAGEMENT_HMAC_LEN];
    u_char  in[2 + NGX_HTTP_ENGAGEMENT_ID_MAX];

    if (content->len > NGX_HTTP_ENGAGEMENT_ID_MAX) {
        return NGX_ERROR;
    }

    in[0] = 'c';
    in[1] = '\n';
    ngx_memcpy(in + 2, content->data, content->len);

    if (ngx_http_engagement_token_hmac(key, in, 2 + content->len, md)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    (void) ngx_http_engagement_b64url_encode(dst, md,
                                         NGX_HTTP_ENGAGEMENT_TOKEN_TAG_BYTES);

    return NGX_OK;
}


/* the MAC over the signed part, the content and the session: 43 chars */

static ngx_int_t
ngx_http_engagement_token_mac(ngx_http_engagement_token_key_t *key,
    u_char *part, size_t plen, ngx_str_t *content, ngx_str_t *session,
    u_char *dst)
{
    u_char  *p, md[NGX_HTTP_ENGAGEMENT_HMAC_LEN];
    u_char   in[NGX_HTTP_ENGAGEMENT_TOKEN_IN];

    if (plen > NGX_HTTP_ENGAGEMENT_TOKEN_SIGNED_MAX
        || content->len > NGX_HTTP_ENGAGEMENT_ID_MAX
        || session->len > NGX_HTTP_ENGAGEMENT_ID_MAX)
    {
        return NGX_ERROR;
    }

    p = ngx_cpymem(in, part, plen);
    *p++ = '\n';
    p = ngx_cpymem(p, content->data, content->len);
    *p++ = '\n';
    p = ngx_cpymem(p, session->data, session->len);

    if (ngx_http_engagement_token_hmac(key, in, p - in, md) != NGX_OK) {
        return NGX_ERROR;
    }

    (void) ngx_http_engagement_b64url_encode(dst, md,
                                             NGX_HTTP_ENGAGEMENT_HMAC_LEN);

    return NGX_OK;
}


/*
 * Writes a token for (content, session) valid until expires into buf,
 * which has room for NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX bytes; returns its
 * length, 0 on failure.
 */

size_t
ngx_http_engagement_token_mint(u_char *buf,
    ngx_http_engagement_token_key_t *key, int64_t expires, ngx_str_t *content,
    ngx_str_t *session)
{
    u_char    *p, digits[NGX_HTTP_ENGAGEMENT_TOKEN_EXP];
    size_t     n;
    uint64_t   e;

    if (expires <= 0 || expires > NGX_HTTP_ENGAGEMENT_TOKEN_EXPIRES_MAX) {
        return 0;
    }

    p = buf;
    *p++ = '1';
    *p++ = '.';

    n = 0;

    for (e = (uint64_t) expires; e; e /= 10) {
        digits[n++] = (u_char) ('0' + e % 10);
    }

    while (n) {
        *p++ = digits[--n];
    }

    *p++ = '.';

    if (ngx_http_engagement_token_tag(key, content, p) != NGX_OK) {
        return 0;
    }

    p += NGX_HTTP_ENGAGEMENT_TOKEN_TAG;

    n = p - buf;
    *p++ = '.';

    if (ngx_http_engagement_token_mac(key, buf, n, content, session, p)
        != NGX_OK)
    {
        return 0;
    }

    p += NGX_HTTP_ENGAGEMENT_TOKEN_MAC;

    return p - buf;
}


/* NGX_OK: *tok points into p; NGX_ERROR: not a token of this format */

ngx_int_t
ngx_http_engagement_token_parse(u_char *p, size_t len,
    ngx_http_engagement_token_t *tok)
{
    u_char   *end, *start;
    int64_t   e;

    if (len < 2 || len > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX
        || p[0] != '1' || p[1] != '.')
    {
        return NGX_ERROR;
    }

    start = p;
    end = p + len;
    p += 2;

    e = 0;
    tok->expires = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        if (p - (start + 2) == NGX_HTTP_ENGAGEMENT_TOKEN_EXP) {
            return NGX_ERROR;
        }

        e = e * 10 + (*p++ - '0');
    }

    if (p == start + 2 || p == end || *p != '.') {
        return NGX_ERROR;
    }

    p++;

    if (end - p != NGX_HTTP_ENGAGEMENT_TOKEN_TAG + 1
                   + NGX_HTTP_ENGAGEMENT_TOKEN_MAC)
    {
        return NGX_ERROR;
    }

    tok->tag = p;

    for ( /* void */ ; p < tok->tag + NGX_HTTP_ENGAGEMENT_TOKEN_TAG; p++) {
        if (!ngx_http_engagement_b64url_char(*p)) {
            return NGX_ERROR;
        }
    }

    tok->signed_part = start;
    tok->signed_len = p - start;

    if (*p++ != '.') {
        return NGX_ERROR;
    }

    tok->mac = p;

    for ( /* void */ ; p < end; p++) {
        if (!ngx_http_engagement_b64url_char(*p)) {
            return NGX_ERROR;
        }
    }

    tok->expires = e;

    return NGX_OK;
}


/*
 * The checks run in this order: format, content tag, signature, expiry;
 * an expired token is only called expired once its signature is good,
 * so that a forged expiry is a bad signature. Comparisons take the same
 * time whatever the bytes (CRYPTO_memcmp).
 */

ngx_http_engagement_token_rc_e
ngx_http_engagement_token_verify(ngx_http_engagement_token_key_t *key,
    u_char *p, size_t len, ngx_str_t *content, ngx_str_t *session,
    int64_t now)
{
    u_char                        tag[NGX_HTTP_ENGAGEMENT_TOKEN_TAG];
    u_char                        mac[NGX_HTTP_ENGAGEMENT_TOKEN_MAC + 1];
    ngx_http_engagement_token_t   tok;

    if (len == 0) {
        return NGX_HTTP_ENGAGEMENT_TOKEN_MISSING;
    }

    if (ngx_http_engagement_token_parse(p, len, &tok) != NGX_OK) {
        return NGX_HTTP_ENGAGEMENT_TOKEN_MALFORMED;
    }

    if (ngx_http_engagement_token_tag(key, content, tag) != NGX_OK) {
        return NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT;
    }

    if (CRYPTO_memcmp(tag, tok.tag, NGX_HTTP_ENGAGEMENT_TOKEN_TAG) != 0) {
        return NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT;
    }

    if (ngx_http_engagement_token_mac(key, tok.signed_part,
                                      tok.signed_len, content, session, mac)
        != NGX_OK)
    {
        return NGX_HTTP_ENGAGEMENT_TOKEN_BAD_SIGNATURE;
    }

    if (CRYPTO_memcmp(mac, tok.mac, NGX_HTTP_ENGAGEMENT_TOKEN_MAC) != 0) {
        return NGX_HTTP_ENGAGEMENT_TOKEN_BAD_SIGNATURE;
    }

    if (tok.expires <= now) {
        return NGX_HTTP_ENGAGEMENT_TOKEN_EXPIRED;
    }

    return NGX_HTTP_ENGAGEMENT_TOKEN_OK;
}
