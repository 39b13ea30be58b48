
/*
 * The view policy: which identity an event is deduplicated on, when a
 * watch becomes a view or an engaged view, replays, idempotent request
 * ids, and the order of zone operations that keeps a refused event from
 * leaving marks behind (so that its retry still counts).
 */


#include "ngx_http_engagement_module.h"


#define NGX_HTTP_ENGAGEMENT_MARK_REQUEST  'r'
#define NGX_HTTP_ENGAGEMENT_MARK_VIEW     'V'
#define NGX_HTTP_ENGAGEMENT_MARK_ENGAGED  'E'
#define NGX_HTTP_ENGAGEMENT_MARK_REPLAY   'P'


/*
 * The identity an event is deduplicated on, as a short string: "v:<viewer>",
 * "s:<session>" or "c:<hex>" for the surrogate of the client's truncated
 * address (IPv4 /24, IPv6 /48) and user agent, hashed with the zone's
 * secret so that neither appears in any key.
 */

static void
ngx_http_engagement_identity(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_str_t *id, u_char *buf)
{
    u_char                              *p;
    size_t                               n;
    uint64_t                             h;
    ngx_str_t                           *src;
    u_char                               net[1 + 16 + 8];
    struct sockaddr_in                  *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6                 *sin6;
#endif
    ngx_http_engagement_dedupe_shctx_t  *sh;

    src = NULL;

    switch (elcf->dedupe_key) {

    case NGX_HTTP_ENGAGEMENT_KEY_VIEWER:
        if (ev->viewer_id.len) {
            buf[0] = 'v';
            src = &ev->viewer_id;
            break;
        }

        /* fall through */

    case NGX_HTTP_ENGAGEMENT_KEY_SESSION:
        buf[0] = 's';
        src = &ev->session_id;
        break;

    default: /* NGX_HTTP_ENGAGEMENT_KEY_CLIENT */
        break;
    }

    if (src) {
        buf[1] = ':';
        p = ngx_cpymem(buf + 2, src->data, src->len);
        id->data = buf;
        id->len = p - buf;
        return;
    }

    sh = elcf->dedupe->sh;
    n = 1;

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        net[0] = 4;
        ngx_memcpy(net + 1, &sin->sin_addr, 3);
        n += 3;
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            net[0] = 4;
            ngx_memcpy(net + 1, &sin6->sin6_addr.s6_addr[12], 3);
            n += 3;

        } else {
            net[0] = 6;
            ngx_memcpy(net + 1, sin6->sin6_addr.s6_addr, 6);
            n += 6;
        }

        break;
#endif

    default:
        net[0] = 0;
        break;
    }

    if (r->headers_in.user_agent) {
        h = ngx_http_engagement_siphash(sh->head.hash_key,
                                        r->headers_in.user_agent->value.data,
                                        r->headers_in.user_agent->value.len);
    } else {
        h = 0;
    }

    ngx_memcpy(net + n, &h, sizeof(uint64_t));
    n += sizeof(uint64_t);

    h = ngx_http_engagement_siphash(sh->head.hash_key, net, n);

    p = ngx_sprintf(buf, "c:%016uxL", h);
    id->data = buf;
    id->len = p - buf;
}


/*
 * NGX_OK: *out says what was counted or why not.
 * NGX_BUSY: a zone had no room; nothing was counted or marked.
 */

ngx_int_t
ngx_http_engagement_policy_apply(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_outcome_t *out)
{
    int64_t                        duration;
    uint64_t                       chash, rhash, uv, hashes[2];
    ngx_str_t                      ident;
    ngx_uint_t                     n, fresh[2];
    ngx_http_engagement_zone_t    *cz, *dz;
    ngx_http_engagement_counts_t   delta;
    u_char                         ibuf[NGX_HTTP_ENGAGEMENT_KEY_MAX];

    ngx_memzero(out, sizeof(ngx_http_engagement_outcome_t));

    cz = elcf->counters;
    dz = elcf->dedupe;

    /* hashing and formatting happen before any lock is taken */

    chash = ngx_http_engagement_counters_hash(cz, &ev->content_id);
    ngx_http_engagement_identity(r, elcf, ev, &ident, ibuf);

    duration = (ev->duration_ms < 0) ? 0 : ev->duration_ms;
    n = 0;

    if (ev->replay) {
        hashes[n++] = ngx_http_engagement_dedupe_hash(dz,
                          NGX_HTTP_ENGAGEMENT_MARK_REPLAY, &ev->content_id,
                          &ident);

    } else if ((ngx_msec_t) duration >= elcf->view_after) {
        hashes[n++] = ngx_http_engagement_dedupe_hash(dz,
                          NGX_HTTP_ENGAGEMENT_MARK_VIEW, &ev->content_id,
                          &ident);

        if ((ngx_msec_t) duration >= elcf->engaged_after) {
            hashes[n++] = ngx_http_engagement_dedupe_hash(dz,
                              NGX_HTTP_ENGAGEMENT_MARK_ENGAGED,
                              &ev->content_id, &ident);
        }
    }

    /* a counter entry first: a full zone must refuse before any mark */
    if (ngx_http_engagement_counters_ensure(cz, &ev->content_id, chash)
        != NGX_OK)
    {
        ngx_http_engagement_zone_log_full(cz, r->connection->log);
        return NGX_BUSY;
    }

    rhash = 0;

    if (ev->request_id.len) {
        rhash = ngx_http_engagement_dedupe_hash(dz,
                    NGX_HTTP_ENGAGEMENT_MARK_REQUEST, &ev->request_id, NULL);

        if (ngx_http_engagement_dedupe_check_set(dz, &rhash, 1,
                                                 elcf->dedupe_window, fresh)
            != NGX_OK)
        {
            ngx_http_engagement_zone_log_full(dz, r->connection->log);
            return NGX_BUSY;
        }

        if (!fresh[0]) {
            out->reason = "duplicate_request";
            goto counts;
        }
    }

    if (n == 0) {
        out->reason = "below_policy";
        goto counts;
    }

    if (ngx_http_engagement_dedupe_check_set(dz, hashes, n,
                                             elcf->dedupe_window, fresh)
        != NGX_OK)
    {
        ngx_http_engagement_zone_log_full(dz, r->connection->log);
        goto busy;
    }

    ngx_memzero(&delta, sizeof(ngx_http_engagement_counts_t));

    if (ev->replay) {
        delta.replays = fresh[0];
        out->replay = fresh[0];

    } else {
        delta.views = fresh[0];
        out->view = fresh[0];

        if (n == 2) {
            delta.engaged = fresh[1];
            out->engaged = fresh[1];
        }
    }

    if (delta.views == 0 && delta.engaged == 0 && delta.replays == 0) {
        out->reason = "duplicate";
        goto counts;
    }

    /* the viewer's salted hash feeds the unique-viewer count in Redis */
    uv = 0;

    if (cz->redis && delta.views) {
        uv = ngx_http_engagement_counters_hash(cz, &ident) | 1;
    }

    if (ngx_http_engagement_counters_add(cz, &ev->content_id, chash, &delta,
                                         uv, &out->shown)
        != NGX_OK)
    {
        /* the entry made above was taken meanwhile: undo the marks */
        while (n--) {
            if (fresh[n]) {
                ngx_http_engagement_dedupe_remove(dz, hashes[n]);
            }
        }

        ngx_http_engagement_zone_log_full(cz, r->connection->log);
        goto busy;
    }

    out->counted = 1;

    return NGX_OK;

busy:

    if (ev->request_id.len) {
        ngx_http_engagement_dedupe_remove(dz, rhash);
    }

    return NGX_BUSY;

counts:

    ngx_http_engagement_counters_get(cz, &ev->content_id, chash,
                                     &out->shown);

    return NGX_OK;
}
