
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
#include "policy/ngx_http_engagement_global.h"


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

/* "<kind>:<identity>\0<content id>", as hashed into an entry's key */
#define NGX_HTTP_ENGAGEMENT_IDENT_MAX                                         \
    (2 + ngx_max(NGX_HTTP_ENGAGEMENT_ID_MAX, NGX_HTTP_ENGAGEMENT_NET_LEN)     \
     + 1 + NGX_HTTP_ENGAGEMENT_ID_MAX)


/* an event's hashes and marks, worked out before any zone lock */
typedef struct {
    uint64_t                       chash;      /* its counter entry */
    uint64_t                       rhash;      /* its request id */
    uint64_t                       keys[2];    /* current, previous salt */
    ngx_uint_t                     nkeys;
    ngx_uint_t                     kinds;      /* the marks it would set */
    uint64_t                       uv;         /* the viewer, for Redis */
    ngx_http_engagement_dedupe_set_t  set;     /* the marks set, pending */
    void                         **global;     /* global dedupe: the line */
    ngx_http_engagement_global_conf_t  *gc;
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
 * The client's truncated address (IPv4 /24, IPv6 /48) and the salted hash
 * of its user agent: the identity when no id may be used. Returns the end.
 */

static u_char *
ngx_http_engagement_identity_client(ngx_http_request_t *r, uint64_t *salt,
    u_char *net)
{
    uint64_t              h;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        *net++ = 4;
        net = ngx_cpymem(net, &sin->sin_addr, 3);
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            *net++ = 4;
            net = ngx_cpymem(net, &sin6->sin6_addr.s6_addr[12], 3);

        } else {
            *net++ = 6;
            net = ngx_cpymem(net, sin6->sin6_addr.s6_addr, 6);
        }

        break;
#endif

    default:
        *net++ = 0;
        break;
    }

    if (r->headers_in.user_agent) {
        h = ngx_http_engagement_siphash(salt,
                                        r->headers_in.user_agent->value.data,
                                        r->headers_in.user_agent->value.len);
    } else {
        h = 0;
    }

    return ngx_cpymem(net, &h, sizeof(uint64_t));
}


/*
 * The identity an event is deduplicated on, as "<kind>:<identity>":
 * "v:<viewer>", "s:<session>", "a:<session>" (opted out: anonymous, never
 * the viewer) or "c:<client>" (see above). It is only ever hashed with
 * the rotating salt, so that no raw id or address appears in any key or
 * leaves the node. Returns the end.
 */

static u_char *
ngx_http_engagement_identity(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    uint64_t *salt, u_char *buf)
{
    ngx_str_t  *src;

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
        buf[1] = ':';
        return ngx_http_engagement_identity_client(r, salt, buf + 2);

    default: /* NGX_HTTP_ENGAGEMENT_KEY_ANONYMOUS: the session alone */
        buf[0] = 'a';
        src = &ev->session_id;
        break;
    }

    buf[1] = ':';

    return ngx_http_engagement_cpy_short(buf + 2, src->data, src->len);
}


/*
 * The key of the event's entry for one salt: one hash, with the salt, of
 * its identity and content; *uv (when asked) gets the identity's own.
 */

static uint64_t
ngx_http_engagement_policy_key(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    uint64_t *salt, uint64_t *uv)
{
    u_char  *p, buf[NGX_HTTP_ENGAGEMENT_IDENT_MAX];

    p = ngx_http_engagement_identity(r, elcf, ev, salt, buf);

    if (uv) {
        *uv = ngx_http_engagement_siphash(salt, buf, p - buf) | 1;
    }

    *p++ = '\0';
    p = ngx_http_engagement_cpy_short(p, ev->content_id.data,
                                      ev->content_id.len);

    /* the key stays in the zone: the cheaper hash */
    return ngx_http_engagement_siphash13(salt, buf, p - buf);
}


/* the kinds of mark an event would set: none, one or two */

static ngx_uint_t
ngx_http_engagement_policy_kinds(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev)
{
    int64_t  duration;

    duration = (ev->duration_ms < 0) ? 0 : ev->duration_ms;

    if (ev->replay) {
        return NGX_HTTP_ENGAGEMENT_MARK_REPLAY;
    }

    if ((ngx_msec_t) duration < elcf->view_after) {
        return 0;
    }

    if ((ngx_msec_t) duration < elcf->engaged_after) {
        return NGX_HTTP_ENGAGEMENT_MARK_VIEW;
    }

    return NGX_HTTP_ENGAGEMENT_MARK_VIEW | NGX_HTTP_ENGAGEMENT_MARK_ENGAGED;
}


/* the hashes of the event's counter entry, request id and marks */

static void
ngx_http_engagement_policy_hash(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_marks_t *mk)
{
    uint64_t                    *uv;
    ngx_http_engagement_salt_t   salt;

    mk->chash = ngx_http_engagement_counters_hash(elcf->counters,
                                                  &ev->content_id);
    mk->rhash = 0;

    if (ev->request_id.len) {
        mk->rhash = ngx_http_engagement_dedupe_hash(elcf->dedupe,
                                                    &ev->request_id);
    }

    mk->kinds = ngx_http_engagement_policy_kinds(elcf, ev);
    mk->nkeys = 0;
    mk->uv = 0;

    if (mk->kinds == 0) {
        return;
    }

    /* the viewer's salted hash feeds the unique-viewer count in Redis */
    uv = (elcf->counters->redis && !ev->anonymous
          && (mk->kinds & NGX_HTTP_ENGAGEMENT_MARK_VIEW))
         ? &mk->uv : NULL;

    ngx_http_engagement_salt_get(&elcf->guard, elcf->dedupe_window, &salt);

    mk->keys[mk->nkeys++] = ngx_http_engagement_policy_key(r, elcf, ev,
                                                           salt.cur, uv);

    /*
     * In the first window after a salt rotation, a mark made under the
     * previous salt still makes a repeat: both are checked (and set).
     */
    if (salt.has_prev) {
        mk->keys[mk->nkeys++] = ngx_http_engagement_policy_key(r, elcf, ev,
                                                               salt.prev,
                                                               NULL);
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
    uv = delta->views ? mk->uv : 0;

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
 * Global dedupe: what this edge lets count waits in the global zone for
 * Redis to say whether another edge counted it; the marks are committed
 * with it, under the dedupe lock. NGX_OK: queued (out->pending).
 */

static ngx_int_t
ngx_http_engagement_policy_defer(ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_event_t *ev, ngx_http_engagement_marks_t *mk,
    ngx_uint_t fresh, ngx_http_engagement_outcome_t *out,
    ngx_http_engagement_zone_t **full)
{
    ngx_http_engagement_global_in_t  in;

    in.strs[0] = &ev->content_id;
    in.strs[1] = &ev->channel_id;
    in.strs[2] = &ev->category;
    in.strs[3] = &ev->source;
    in.strs[4] = &ev->device;
    in.strs[5] = &ev->country;
    in.keys[0] = mk->keys[0];
    in.keys[1] = mk->keys[1];
    in.nkeys = mk->nkeys;
    in.kinds = fresh;
    in.uv = mk->uv;
    in.window = elcf->dedupe_window;
    in.wev = *mk->global;
    in.zone_sh = elcf->counters->sh;

    if (ngx_http_engagement_global_enqueue(mk->gc, &in) != NGX_OK) {
        *full = NULL;
        return NGX_BUSY;
    }

    ngx_http_engagement_dedupe_commit(&mk->set);

    out->pending = 1;
    out->view = 0;
    out->engaged = 0;
    out->replay = 0;

    return NGX_OK;
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
    ngx_uint_t                     i, fresh, marked;
    ngx_http_engagement_counts_t   delta;

    /* a kind counts when it is fresh under every salt's key */
    fresh = mk->kinds;

    for (i = 0; i < mk->nkeys; i++) {
        if (ngx_http_engagement_dedupe_mark(elcf->dedupe, &mk->set,
                                            mk->keys[i], mk->kinds,
                                            elcf->dedupe_window, &marked)
            != NGX_OK)
        {
            *full = elcf->dedupe;
            return NGX_BUSY;
        }

        fresh &= marked;
    }

    delta.replays = (fresh & NGX_HTTP_ENGAGEMENT_MARK_REPLAY) != 0;
    delta.views = (fresh & NGX_HTTP_ENGAGEMENT_MARK_VIEW) != 0;
    delta.engaged = (fresh & NGX_HTTP_ENGAGEMENT_MARK_ENGAGED) != 0;

    out->replay = delta.replays;
    out->view = delta.views;
    out->engaged = delta.engaged;

    if (delta.views == 0 && delta.engaged == 0 && delta.replays == 0) {
        /* what was marked (the request id, a previous salt's mark) stays */
        ngx_http_engagement_dedupe_commit(&mk->set);
        return NGX_DECLINED;
    }

    if (mk->global) {
        return ngx_http_engagement_policy_defer(elcf, ev, mk, fresh, out,
                                                full);
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
                                            NGX_HTTP_ENGAGEMENT_MARK_REQUEST,
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

    if (mk->kinds == 0) {
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
    void **defer, ngx_http_engagement_outcome_t *out)
{
    ngx_int_t                     rc;
    ngx_http_engagement_zone_t   *full;
    ngx_http_engagement_marks_t   mk;

    /* store/ fills out->shown, all but the reactions it has none of */
    out->counted = 0;
    out->view = 0;
    out->engaged = 0;
    out->replay = 0;
    out->reason = NGX_HTTP_ENGAGEMENT_REASON_NONE;
    out->pending = 0;
    out->shown.known = 0;
    out->shown.nreactions = 0;

    /* hashing and formatting happen before any lock is taken */
    ngx_http_engagement_policy_hash(r, elcf, ev, &mk);

    /* global dedupe: a caller that can wait for it (views) defers */
    mk.gc = defer ? ngx_http_engagement_global_conf() : NULL;
    mk.global = (mk.gc && mk.gc->sh && elcf->counters->redis) ? defer : NULL;

    full = NULL;

    ngx_http_engagement_dedupe_begin(elcf->dedupe, &mk.set);
    rc = ngx_http_engagement_policy_decide(elcf, ev, &mk, out, &full);
    ngx_http_engagement_dedupe_end(elcf->dedupe, &mk.set);

    if (rc == NGX_BUSY) {
        if (full) {
            ngx_http_engagement_zone_log_full(full, r->connection->log);

        } else {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "engagement_dedupe_scope: zone \"engagement_global"
                          "\" is full: a view refused with 503");
        }

        return NGX_BUSY;
    }

    if (rc == NGX_OK && out->pending) {
        return NGX_OK;
    }

    if (rc == NGX_OK) {
        out->counted = 1;
        return NGX_OK;
    }

    /* the totals of an event not counted: only the full answer shows them */
    if (elcf->answer == NGX_HTTP_ENGAGEMENT_ANSWER_FULL) {
        ngx_http_engagement_counters_get(elcf->counters, &ev->content_id,
                                         mk.chash, &out->shown);
    }

    return NGX_OK;
}
