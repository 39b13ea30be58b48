
/*
 * policy/: whether an accepted event counts. The watch-time policy
 * (policy.c) and the dedupe marks of views and request ids (dedupe.c).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_POLICY_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_POLICY_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"


/* an id with a short type prefix, as hashed into dedupe keys */
#define NGX_HTTP_ENGAGEMENT_KEY_MAX        (NGX_HTTP_ENGAGEMENT_ID_MAX + 8)

/* the most marks one check takes: a view and an engaged view, two salts */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH   4

/* the most marks one event takes: its request id, then a batch */
#define NGX_HTTP_ENGAGEMENT_DEDUPE_SET    (NGX_HTTP_ENGAGEMENT_DEDUPE_BATCH + 1)


/* a reason as answers, $engagement_reason and the writer name it */
typedef struct {
    ngx_str_t                     name;
    size_t                        stat;        /* its not-counted figure */
} ngx_http_engagement_reason_t;


/* an event's marks set so far, pending, with what to restore */
typedef struct {
    void                         *nodes[NGX_HTTP_ENGAGEMENT_DEDUPE_SET];
    ngx_msec_t                    old_expire[NGX_HTTP_ENGAGEMENT_DEDUPE_SET];
    u_char                        old_state[NGX_HTTP_ENGAGEMENT_DEDUPE_SET];
    u_char                        created[NGX_HTTP_ENGAGEMENT_DEDUPE_SET];
    ngx_uint_t                    n;
    ngx_msec_t                    now;
} ngx_http_engagement_dedupe_set_t;


typedef struct {
    ngx_uint_t                    counted;     /* 1: at least one metric */
    ngx_uint_t                    view;
    ngx_uint_t                    engaged;
    ngx_uint_t                    replay;
    ngx_http_engagement_reason_e  reason;      /* when not counted */
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
    ngx_http_engagement_dedupe_set_t *set, uint64_t hash, ngx_msec_t window,
    ngx_uint_t *fresh);
void ngx_http_engagement_dedupe_commit(ngx_http_engagement_dedupe_set_t *set);
void ngx_http_engagement_dedupe_end(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_dedupe_set_t *set);
uint64_t ngx_http_engagement_dedupe_hash(ngx_http_engagement_zone_t *z,
    u_char kind, ngx_str_t *a, ngx_str_t *b);

/* policy.c */
ngx_int_t ngx_http_engagement_policy_apply(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_outcome_t *out);


#endif /* _NGX_HTTP_ENGAGEMENT_POLICY_H_INCLUDED_ */
