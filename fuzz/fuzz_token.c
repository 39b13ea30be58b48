
/*
 * libFuzzer target for the view token format
 * (src/input/ngx_http_engagement_token.c).
 * The input is "<token>\n<content id>\n<session id>[\n<now>]": verification
 * must never crash, must accept only what parses, and anything it accepts
 * must be exactly the token minted for that content, session and expiry.
 * The parts that are valid ids are also minted and verified as a round
 * trip, and one byte of that token is changed, which must be refused.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "input/ngx_http_engagement_input.h"

#include <stdlib.h>
#include <string.h>


static u_char  secret_data[] = "fuzz-secret-0123456789abcdef";


static int
id_ok(const u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 128) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_'
              || p[i] == ':' || p[i] == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static u_char *
copy_part(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t  *nl;
    u_char         *c;

    nl = memchr(*p, '\n', end - *p);
    if (nl == NULL) {
        nl = end;
    }

    *len = nl - *p;

    /* an exact-size copy, so reading past the end is caught */
    c = malloc(*len ? *len : 1);
    memcpy(c, *p, *len);

    *p = (nl == end) ? end : nl + 1;

    return c;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                          *tok, *cd, *sd, *nd, buf[128], again[128];
    size_t                           tlen, clen, slen, nlen, n, i;
    int64_t                          now;
    ngx_str_t                        secret, content, session;
    static ngx_http_engagement_token_key_t  key, *k;
    const uint8_t                   *p, *end;
    ngx_http_engagement_token_t      t;
    ngx_http_engagement_token_rc_e   rc;

    if (k == NULL) {
        secret.data = secret_data;
        secret.len = sizeof(secret_data) - 1;

        if (ngx_http_engagement_token_key(&key, &secret) != NGX_OK) {
            abort();
        }

        k = &key;
    }

    p = data;
    end = data + size;

    tok = copy_part(&p, end, &tlen);
    cd = copy_part(&p, end, &clen);
    sd = copy_part(&p, end, &slen);
    nd = copy_part(&p, end, &nlen);

    now = 1700000000;

    for (i = 0; i < nlen && i < 11 && nd[i] >= '0' && nd[i] <= '9'; i++) {
        now = (i == 0 ? 0 : now * 10) + (nd[i] - '0');
    }

    content.data = cd;
    content.len = clen;
    session.data = sd;
    session.len = slen;

    if (ngx_http_engagement_token_parse(tok, tlen, &t) == NGX_OK) {
        if (t.signed_part != tok || t.tag < tok || t.mac < t.tag
            || t.mac + 43 != tok + tlen || t.expires < 0)
        {
            abort();
        }
    }

    if (id_ok(cd, clen) && id_ok(sd, slen)) {

        rc = ngx_http_engagement_token_verify(k, tok, tlen, &content,
                                              &session, now);

        if (rc > NGX_HTTP_ENGAGEMENT_TOKEN_BAD_SIGNATURE) {
            abort();
        }

        if (rc == NGX_HTTP_ENGAGEMENT_TOKEN_OK
            || rc == NGX_HTTP_ENGAGEMENT_TOKEN_EXPIRED)
        {
            /* a token that verifies is the one we would mint */
            if (ngx_http_engagement_token_parse(tok, tlen, &t) != NGX_OK) {
                abort();
            }

            n = ngx_http_engagement_token_mint(again, k, t.expires,
                                               &content, &session);
            if (n != tlen || memcmp(again, tok, n) != 0) {
                abort();
            }

            if ((rc == NGX_HTTP_ENGAGEMENT_TOKEN_OK) != (t.expires > now)) {
                abort();
            }
        }

        /* the round trip, then one changed byte */
        n = ngx_http_engagement_token_mint(buf, k, now + 60, &content,
                                           &session);
        if (n == 0 || n > sizeof(buf)) {
            abort();
        }

        if (ngx_http_engagement_token_verify(k, buf, n, &content,
                                             &session, now)
            != NGX_HTTP_ENGAGEMENT_TOKEN_OK)
        {
            abort();
        }

        if (size) {
            i = data[0] % n;
            buf[i] ^= (u_char) (data[size - 1] | 1);

            if (ngx_http_engagement_token_verify(k, buf, n, &content,
                                                 &session, now)
                == NGX_HTTP_ENGAGEMENT_TOKEN_OK)
            {
                abort();
            }
        }

    } else {
        /* ids that are not ids never make a token */
        if (clen <= 128 && slen <= 128
            && ngx_http_engagement_token_verify(k, tok, tlen, &content,
                                                &session, now)
               == NGX_HTTP_ENGAGEMENT_TOKEN_OK
            && !(id_ok(cd, clen) && id_ok(sd, slen)))
        {
            /* possible only with a forged MAC: report it */
            abort();
        }
    }

    free(tok);
    free(cd);
    free(sd);
    free(nd);

    return 0;
}
