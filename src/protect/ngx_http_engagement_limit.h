
/*
 * Private to limit.c and limit_conf.c: the rate limit zone, its header in
 * shared memory, and the rules of the engagement_limit directive.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_LIMIT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_LIMIT_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


/* one request, in the milli-requests excess is kept in */
#define NGX_HTTP_ENGAGEMENT_LIMIT_ONE      1000


/* the zone's header: the generic one first, then this kind's figures */
/*
 * One bucket: 64 bytes on 64-bit platforms (the slab's 64-byte class);
 * starts as an ngx_http_engagement_hnode_t.
 */
typedef struct {
    ngx_rbtree_node_t             node;        /* key: the hash (its low
                                                  half on 32-bit ones) */
    ngx_queue_t                   queue;
#if (NGX_PTR_SIZE == 4)
    uint32_t                      hash_hi;
#endif
    uint32_t                      excess;      /* milli-requests */
    uint32_t                      last;        /* ngx_current_msec, low 32 */
} ngx_http_engagement_limit_node_t;


typedef struct {
    ngx_http_engagement_shctx_head_t  head;
    ngx_atomic_t                  passed;
    ngx_atomic_t                  limited;
    ngx_atomic_t                  dry_run;     /* would have been limited */
    ngx_atomic_t                  expired;
    ngx_atomic_t                  evictions;   /* live buckets dropped */
    ngx_atomic_t                  alloc_failures;
} ngx_http_engagement_limit_shctx_t;


typedef struct {
    ngx_str_t                     name;
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    ngx_http_engagement_limit_shctx_t  *sh;
    ngx_msec_t                    max_idle;    /* a bucket idle this long
                                                  is empty for every rule */
    ngx_msec_t                    last_full_log;
} ngx_http_engagement_limit_zone_t;


typedef struct {
    ngx_str_t                     zone_name;
    ngx_http_engagement_limit_zone_t  *zone;
    ngx_http_complex_value_t      key;
    ngx_uint_t                    rate;        /* requests per period */
    ngx_msec_t                    period;      /* 1000 or 60000 */
    ngx_uint_t                    burst;       /* milli-requests */
    ngx_uint_t                    dry_run;
    u_char                       *file;        /* where it was written */
    ngx_uint_t                    line;
} ngx_http_engagement_limit_rule_t;


typedef struct {
    ngx_array_t                   zones;       /* limit_zone_t * */
    ngx_array_t                   rules;       /* limit_rule_t *, all */
} ngx_http_engagement_limit_conf_t;


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_LIMIT_H_INCLUDED_ */
