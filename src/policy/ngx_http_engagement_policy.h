
/*
 * policy/: whether an accepted event counts. The watch-time policy
 * (policy.c) and the dedupe marks of views and request ids (dedupe.c).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_POLICY_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_POLICY_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


/*
 * The kinds of mark an entry of the dedupe table holds, as bits: the
 * entry of a (content, identity) holds its view, engaged and replay
 * marks; the entry of a request id uses the first.
 */
#define NGX_HTTP_ENGAGEMENT_MARK_VIEW      0x01
#define NGX_HTTP_ENGAGEMENT_MARK_ENGAGED   0x02
#define NGX_HTTP_ENGAGEMENT_MARK_REPLAY    0x04
#define NGX_HTTP_ENGAGEMENT_MARK_REQUEST   0x01
#define NGX_HTTP_ENGAGEMENT_MARK_KINDS     3

/* the most entries one event marks: its request id, two salts' */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_SET     3

/* the longest window a mark keeps (~24.8 days): its offset is 31 bits */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_WINDOW_MAX  0x7fffffff


/*
 * An entry of the dedupe table, 32 bytes: a key and, per kind, when its
 * mark lapses, in ms after base (0: no mark). A pending kind was marked
 * by an event not yet committed: live for nobody.
 */
typedef struct {
    uint64_t                      key;         /* 0: never used */
    ngx_msec_t                    base;        /* what the offsets count from */
    uint32_t                      expire[NGX_HTTP_ENGAGEMENT_MARK_KINDS];
    uint32_t                      pending;
} ngx_http_engagement_dedupe_entry_t;


/* an event's entries marked so far, pending, with what to restore */
typedef struct {
    ngx_http_engagement_dedupe_entry_t
                                 *entries[NGX_HTTP_ENGAGEMENT_DEDUPE_SET];
    ngx_http_engagement_dedupe_entry_t
                                  saved[NGX_HTTP_ENGAGEMENT_DEDUPE_SET];
    uint32_t                      kinds[NGX_HTTP_ENGAGEMENT_DEDUPE_SET];
    ngx_uint_t                    n;
    ngx_msec_t                    now;
} ngx_http_engagement_dedupe_set_t;


/* a reason as answers, $engagement_reason and the writer name it */
typedef struct {
    ngx_str_t                     name;
    size_t                        stat;        /* its not-counted figure */
} ngx_http_engagement_reason_t;


typedef struct {
    ngx_uint_t                    counted;     /* 1: at least one metric */
    ngx_uint_t                    view;
    ngx_uint_t                    engaged;
    ngx_uint_t                    replay;
    ngx_http_engagement_reason_e  reason;      /* when not counted */
    ngx_uint_t                    pending;     /* global dedupe decides */
    ngx_http_engagement_view_t    shown;
} ngx_http_engagement_outcome_t;


extern const ngx_http_engagement_reason_t
    ngx_http_engagement_reasons[NGX_HTTP_ENGAGEMENT_REASONS];

/* a reason as the writer and $engagement_reason take it; NONE: NULL */
#define ngx_http_engagement_reason_name(reason)                               \
    ((const char *) ngx_http_engagement_reasons[reason].name.data)


/* dedupe.c */
ngx_int_t ngx_http_engagement_dedupe_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
void ngx_http_engagement_dedupe_begin(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set);
ngx_int_t ngx_http_engagement_dedupe_mark(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set, uint64_t key, ngx_uint_t kinds,
    ngx_msec_t window, ngx_uint_t *fresh);
void ngx_http_engagement_dedupe_commit(ngx_http_engagement_dedupe_set_t *set);
void ngx_http_engagement_dedupe_end(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set);
uint64_t ngx_http_engagement_dedupe_hash(ngx_http_engagement_zone_t *z,
    ngx_str_t *id);

/* policy.c */
/*
 * defer: NULL, count now; else the event may wait for global dedupe
 * (engagement_dedupe_scope global), its writer line *defer (or NULL)
 * going with it: out->pending, and the line is no longer the caller's.
 */
ngx_int_t ngx_http_engagement_policy_apply(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    void **defer, ngx_http_engagement_outcome_t *out);


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_POLICY_H_INCLUDED_ */
