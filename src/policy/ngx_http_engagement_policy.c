
/*
 * The view policy: which identity an event is deduplicated on, when a
 * watch becomes a view or an engaged view, replays, idempotent request
 * ids, and the order of zone operations that keeps a refused event from
 * leaving marks behind (so that its retry still counts).
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"


#define NGX_HTTP_ENGAGEMENT_MARK_REQUEST  'r'
#define NGX_HTTP_ENGAGEMENT_MARK_VIEW     'V'
#define NGX_HTTP_ENGAGEMENT_MARK_ENGAGED  'E'
#define NGX_HTTP_ENGAGEMENT_MARK_REPLAY   'P'

/*
 * With Redis, a count that found no room tries again this many times, in
 * as many critical sections of the counters zone: each may evict a few
 * cached entries (store/ bounds that), and other workers get in between.
 */
#define NGX_HTTP_ENGAGEMENT_ADD_TRIES     4

/* an opted-out event's identity, whatever engagement_dedupe_key says */
#define NGX_HTTP_ENGAGEMENT_KEY_ANONYMOUS (NGX_HTTP_ENGAGEMENT_KEY_CLIENT + 1)


/* what the client identity hashes: family, address prefix, agent's hash */
#define NGX_HTTP_ENGAGEMENT_NET_LEN       (1 + 16 + sizeof(uint64_t))


/* an event's hashes and marks, worked out before any zone lock */
typedef struct {
    uint64_t                       chash;      /* its counter entry */
    uint64_t                       rhash;      /* its request id */
    uint64_t                       hashes[NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH];
    ngx_uint_t                     marked[NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH];
    ngx_uint_t                     n;          /* marks of the current salt */
    ngx_uint_t                     m;          /* with the previous salt's */
    ngx_http_engagement_dedupe_set_t  set;     /* the marks set, pending */
    ngx_str_t                      ident;
    u_char                         ibuf[NGX_HTTP_ENGAGEMENT_KEY_MAX];
    u_char                         pbuf[NGX_HTTP_ENGAGEMENT_KEY_MAX];
} ngx_http_engagement_marks_t;


const ngx_http_engagement_reason_t
    ngx_http_engagement_reasons[NGX_HTTP_ENGAGEMENT_REASONS] =
{
    { ngx_null_string, 0 },
    { ngx_string("duplicate"),
      offsetof(ngx_http_engagement_stats_t, not_counted_duplicate) },
    { ngx_string("duplicate_request"),
      offsetof(ngx_http_engagement_stats_t, not_counted_duplicate_request) },
    { ngx_string("below_policy"),
      offsetof(ngx_http_engagement_stats_t, not_counted_below_policy) },
    { ngx_string("too_old"),
      offsetof(ngx_http_engagement_stats_t, late_too_old) },
    { ngx_string("in_future"),
      offsetof(ngx_http_engagement_stats_t, late_in_future) }
};


/*
 * The client's truncated address (IPv4 /24, IPv6 /48) and user agent,
 * hashed with the salt: the identity when no id may be used.
 */

static uint64_t
ngx_http_engagement_identity_client(ngx_http_request_t *r, uint64_t *salt)
{
    size_t                n;
    uint64_t              h;
    u_char                net[NGX_HTTP_ENGAGEMENT_NET_LEN];
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

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
        h = ngx_http_engagement_siphash(salt,
                                        r->headers_in.user_agent->value.data,
                                        r->headers_in.user_agent->value.len);
    } else {
        h = 0;
    }

    ngx_memcpy(net + n, &h, sizeof(uint64_t));
    n += sizeof(uint64_t);

    return ngx_http_engagement_siphash(salt, net, n);
}


/*
 * The identity an event is deduplicated on, as "<kind>:<hex>": a hash,
 * with the rotating salt, of "v:<viewer>", "s:<session>", "a:<session>"
 * (opted out: anonymous, never the viewer) or, for "c", of the client
 * (see above), so that no raw id or address appears in any key or
 * leaves the node.
 */

static void
ngx_http_engagement_identity(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    uint64_t *salt, ngx_str_t *id, u_char *buf)
{
    u_char     *p;
    uint64_t    h;
    ngx_str_t  *src;

    src = NULL;

    switch (ev->anonymous ? NGX_HTTP_ENGAGEMENT_KEY_ANONYMOUS
                          : elcf->dedupe_key)
    {

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

    case NGX_HTTP_ENGAGEMENT_KEY_CLIENT:
        buf[0] = 'c';
        break;

    default: /* NGX_HTTP_ENGAGEMENT_KEY_ANONYMOUS: the session alone */
        buf[0] = 'a';
        src = &ev->session_id;
        break;
    }

    buf[1] = ':';

    if (src) {
        p = ngx_cpymem(buf + 2, src->data, src->len);
        h = ngx_http_engagement_siphash(salt, buf, p - buf);

    } else {
        h = ngx_http_engagement_identity_client(r, salt);
    }

    p = ngx_http_engagement_put_hex64(buf + 2, h);
    id->data = buf;
    id->len = p - buf;
}


/* the dedupe marks an event would set for one identity: 0, 1 or 2 */

static ngx_uint_t
ngx_http_engagement_marks(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev, ngx_str_t *ident, uint64_t *hashes)
{
    int64_t                      duration;
    ngx_uint_t                   n;
    ngx_http_engagement_zone_t  *dz;

    dz = elcf->dedupe;
    duration = (ev->duration_ms < 0) ? 0 : ev->duration_ms;
    n = 0;

    if (ev->replay) {
        hashes[n++] = ngx_http_engagement_dedupe_hash(dz,
                          NGX_HTTP_ENGAGEMENT_MARK_REPLAY, &ev->content_id,
                          ident);

    } else if ((ngx_msec_t) duration >= elcf->view_after) {
        hashes[n++] = ngx_http_engagement_dedupe_hash(dz,
                          NGX_HTTP_ENGAGEMENT_MARK_VIEW, &ev->content_id,
                          ident);

        if ((ngx_msec_t) duration >= elcf->engaged_after) {
            hashes[n++] = ngx_http_engagement_dedupe_hash(dz,
                              NGX_HTTP_ENGAGEMENT_MARK_ENGAGED,
                              &ev->content_id, ident);
        }
    }

    return n;
}


/* the hashes of the event's entry, identity and marks */

static void
ngx_http_engagement_policy_hash(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_marks_t *mk)
{
    ngx_str_t                   pident;
    ngx_http_engagement_salt_t  salt;

    mk->chash = ngx_http_engagement_counters_hash(elcf->counters,
                                                  &ev->content_id);
    mk->rhash = 0;

    if (ev->request_id.len) {
        mk->rhash = ngx_http_engagement_dedupe_hash(elcf->dedupe,
                        NGX_HTTP_ENGAGEMENT_MARK_REQUEST, &ev->request_id,
                        NULL);
    }

    ngx_http_engagement_salt_get(&elcf->guard, elcf->dedupe_window, &salt);
    ngx_http_engagement_identity(r, elcf, ev, salt.cur, &mk->ident, mk->ibuf);

    mk->n = ngx_http_engagement_marks(elcf, ev, &mk->ident, mk->hashes);
    mk->m = mk->n;

    /*
     * In the first window after a salt rotation, a mark made under the
     * previous salt still makes a repeat: both are checked (and set).
     */
    if (salt.has_prev && mk->n) {
        ngx_http_engagement_identity(r, elcf, ev, salt.prev, &pident,
                                     mk->pbuf);
        mk->m += ngx_http_engagement_marks(elcf, ev, &pident,
                                           mk->hashes + mk->n);
    }
}


/*
 * Adds what the event's fresh marks let count, and commits the marks
 * while the counters zone is locked too: with the dedupe lock held from
 * the first mark to here, an event is counted and marked together or not
 * at all, whenever its worker is killed. The one nested lock: always
 * dedupe, then counters. NGX_ERROR: no room in the counters zone.
 */

static ngx_int_t
ngx_http_engagement_policy_add(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev, ngx_http_engagement_marks_t *mk,
    ngx_http_engagement_counts_t *delta, ngx_http_engagement_outcome_t *out)
{
    uint64_t                     uv;
    ngx_int_t                    rc;
    ngx_uint_t                   n;
    ngx_http_engagement_zone_t  *cz;

    cz = elcf->counters;

    /* the viewer's salted hash feeds the unique-viewer count in Redis */
    uv = 0;

    if (cz->redis && delta->views && !ev->anonymous) {
        uv = ngx_http_engagement_counters_hash(cz, &mk->ident) | 1;
    }

    for (n = 1; /* void */; n++) {
        ngx_shmtx_lock(&cz->shpool->mutex);

        rc = ngx_http_engagement_counters_add_locked(cz, &ev->content_id,
                                                     mk->chash, delta, uv,
                                                     &out->shown);
        if (rc == NGX_OK) {
            ngx_http_engagement_dedupe_commit(&mk->set);
        }

        ngx_shmtx_unlock(&cz->shpool->mutex);

        if (rc == NGX_OK || !cz->redis || n == NGX_HTTP_ENGAGEMENT_ADD_TRIES) {
            return rc;
        }
    }
}


/*
 * Sets the event's marks and adds what they let count; called with the
 * dedupe zone locked. NGX_OK: counted; NGX_DECLINED: every mark was a
 * repeat; NGX_BUSY: *full had no room, and end() takes the marks back.
 */

static ngx_int_t
ngx_http_engagement_policy_count(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev, ngx_http_engagement_marks_t *mk,
    ngx_http_engagement_outcome_t *out, ngx_http_engagement_zone_t **full)
{
    ngx_uint_t                     i, fresh[2];
    ngx_http_engagement_counts_t   delta;

    for (i = 0; i < mk->m; i++) {
        if (ngx_http_engagement_dedupe_mark(elcf->dedupe, &mk->set,
                                            mk->hashes[i],
                                            elcf->dedupe_window,
                                            &mk->marked[i])
            != NGX_OK)
        {
            *full = elcf->dedupe;
            return NGX_BUSY;
        }
    }

    fresh[0] = 0;
    fresh[1] = 0;

    for (i = 0; i < mk->n; i++) {
        fresh[i] = mk->marked[i] && (mk->m == mk->n || mk->marked[mk->n + i]);
    }

    ngx_memzero(&delta, sizeof(ngx_http_engagement_counts_t));

    if (ev->replay) {
        delta.replays = fresh[0];
        out->replay = fresh[0];

    } else {
        delta.views = fresh[0];
        out->view = fresh[0];

        if (mk->n == 2) {
            delta.engaged = fresh[1];
            out->engaged = fresh[1];
        }
    }

    if (delta.views == 0 && delta.engaged == 0 && delta.replays == 0) {
        /* what was marked (the request id, a previous salt's mark) stays */
        ngx_http_engagement_dedupe_commit(&mk->set);
        return NGX_DECLINED;
    }

    if (ngx_http_engagement_policy_add(elcf, ev, mk, &delta, out) != NGX_OK) {
        *full = elcf->counters;
        return NGX_BUSY;
    }

    return NGX_OK;
}


/*
 * The request id first, then the policy, under the dedupe lock; an event
 * that counts nothing makes no counter entry. NGX_OK, NGX_DECLINED (not
 * counted: out->reason), NGX_BUSY (*full had no room; nothing was
 * counted or marked).
 */

static ngx_int_t
ngx_http_engagement_policy_decide(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev, ngx_http_engagement_marks_t *mk,
    ngx_http_engagement_outcome_t *out, ngx_http_engagement_zone_t **full)
{
    ngx_int_t   rc;
    ngx_uint_t  fresh;

    if (ev->request_id.len) {
        if (ngx_http_engagement_dedupe_mark(elcf->dedupe, &mk->set, mk->rhash,
                                            elcf->dedupe_window, &fresh)
            != NGX_OK)
        {
            *full = elcf->dedupe;
            return NGX_BUSY;
        }

        if (!fresh) {
            out->reason = NGX_HTTP_ENGAGEMENT_REASON_DUPLICATE_REQUEST;
            return NGX_DECLINED;
        }
    }

    if (mk->n == 0) {
        ngx_http_engagement_dedupe_commit(&mk->set);
        out->reason = NGX_HTTP_ENGAGEMENT_REASON_BELOW_POLICY;
        return NGX_DECLINED;
    }

    rc = ngx_http_engagement_policy_count(elcf, ev, mk, out, full);

    if (rc == NGX_DECLINED) {
        out->reason = NGX_HTTP_ENGAGEMENT_REASON_DUPLICATE;
    }

    return rc;
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
    ngx_int_t                     rc;
    ngx_http_engagement_zone_t   *full;
    ngx_http_engagement_marks_t   mk;

    ngx_memzero(out, sizeof(ngx_http_engagement_outcome_t));

    /* hashing and formatting happen before any lock is taken */
    ngx_http_engagement_policy_hash(r, elcf, ev, &mk);

    full = NULL;

    ngx_http_engagement_dedupe_begin(elcf->dedupe, &mk.set);
    rc = ngx_http_engagement_policy_decide(elcf, ev, &mk, out, &full);
    ngx_http_engagement_dedupe_end(elcf->dedupe, &mk.set);

    if (rc == NGX_BUSY) {
        ngx_http_engagement_zone_log_full(full, r->connection->log);
        return NGX_BUSY;
    }

    if (rc == NGX_OK) {
        out->counted = 1;
        return NGX_OK;
    }

    ngx_http_engagement_counters_get(elcf->counters, &ev->content_id,
                                     mk.chash, &out->shown);

    return NGX_OK;
}
