
/*
 * ngx_http_engagement_module: the configuration every part reads (main
 * and location), the lifecycle, and the small number writers shared by
 * the request and flush paths. Each folder of src/ has a header of its
 * own with what the other folders may use.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_MODULE_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "input/ngx_http_engagement_input.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_ENGAGEMENT_VERSION        "0.1.0"

/*
 * A zone's layout is a fingerprint made by the compiler's numbers: the
 * sizes of the structures the zone keeps and the offsets of their fields
 * (each kind of zone lists its own "shape"), mixed with this number,
 * bumped by hand only when a field keeps its place but changes meaning.
 * A reload that finds a zone written with another layout is refused.
 */
#ifndef NGX_HTTP_ENGAGEMENT_LAYOUT
#define NGX_HTTP_ENGAGEMENT_LAYOUT         8
#endif

/*
 * For the tests only (build.sh layout): a build with
 * -DNGX_HTTP_ENGAGEMENT_TEST_LAYOUT counts each reading of the
 * configuration as another layout, so every zone a reload finds was
 * written with a layout other than its own. (A reload cannot load another
 * build of the module: nginx reuses a zone only for the same module copy,
 * whose symbols a new copy's resolve to.)
 */
#if (NGX_HTTP_ENGAGEMENT_TEST_LAYOUT)
extern ngx_uint_t  ngx_http_engagement_test_generation;
#endif

#define ngx_http_engagement_layout_of(shape)                                  \
    ngx_http_engagement_layout(shape, sizeof(shape) / sizeof(size_t))


#define NGX_HTTP_ENGAGEMENT_DEFAULT_ZONE   "engagement"
#define NGX_HTTP_ENGAGEMENT_DEFAULT_DEDUPE "engagement_dedupe"
/* the salt zone's name, which no zone directive may take */
#define NGX_HTTP_ENGAGEMENT_SALT_ZONE      "engagement_salt"
#define NGX_HTTP_ENGAGEMENT_DEFAULT_ZSIZE  (8 * 1024 * 1024)
#define NGX_HTTP_ENGAGEMENT_DEFAULT_DSIZE  (16 * 1024 * 1024)

/* engagement_limit rules per location */
#define NGX_HTTP_ENGAGEMENT_LIMITS         8


/* engagement_opt_out: what an opted-out view becomes */
typedef enum {
    NGX_HTTP_ENGAGEMENT_OPT_OUT_OFF = 0,    /* counted as any other */
    NGX_HTTP_ENGAGEMENT_OPT_OUT_ANONYMOUS,  /* counted, no identity kept */
    NGX_HTTP_ENGAGEMENT_OPT_OUT_DROP        /* not counted */
} ngx_http_engagement_opt_out_e;


/* engagement_answer: what a view event's answer carries */
typedef enum {
    NGX_HTTP_ENGAGEMENT_ANSWER_FULL = 0,    /* the outcome, ids, totals */
    NGX_HTTP_ENGAGEMENT_ANSWER_MINIMAL,     /* counted, or why not */
    NGX_HTTP_ENGAGEMENT_ANSWER_NONE         /* 204, no body (beacons) */
} ngx_http_engagement_answer_e;


typedef enum {
    NGX_HTTP_ENGAGEMENT_NONE = 0,
    NGX_HTTP_ENGAGEMENT_VIEW,
    NGX_HTTP_ENGAGEMENT_SUMMARY,
    NGX_HTTP_ENGAGEMENT_STATUS,
    NGX_HTTP_ENGAGEMENT_HEALTH,
    NGX_HTTP_ENGAGEMENT_LIKE,
    NGX_HTTP_ENGAGEMENT_STATE,
    NGX_HTTP_ENGAGEMENT_HEARTBEAT,
    NGX_HTTP_ENGAGEMENT_LIVE,
    NGX_HTTP_ENGAGEMENT_RESUME,
    NGX_HTTP_ENGAGEMENT_HISTORY,
    NGX_HTTP_ENGAGEMENT_TRENDING,
    NGX_HTTP_ENGAGEMENT_EVENT,           /* interactions (clicks) */
    NGX_HTTP_ENGAGEMENT_ANALYTICS
} ngx_http_engagement_endpoint_e;


/* engagement_dimension: the values the configuration may give */
typedef enum {
    NGX_HTTP_ENGAGEMENT_DIM_COUNTRY = 0,
    NGX_HTTP_ENGAGEMENT_DIM_CHANNEL,
    NGX_HTTP_ENGAGEMENT_DIM_CATEGORY,
    NGX_HTTP_ENGAGEMENT_DIM_DEVICE,
    NGX_HTTP_ENGAGEMENT_DIM_SOURCE,
    NGX_HTTP_ENGAGEMENT_DIMS
} ngx_http_engagement_dim_e;


typedef enum {
    NGX_HTTP_ENGAGEMENT_KEY_VIEWER = 0,
    NGX_HTTP_ENGAGEMENT_KEY_SESSION,
    NGX_HTTP_ENGAGEMENT_KEY_CLIENT
} ngx_http_engagement_key_e;


/*
 * Why a valid view event counted nothing: decided by protect/ (the ts
 * window) and policy/, named by policy/'s reason table.
 */
typedef enum {
    NGX_HTTP_ENGAGEMENT_REASON_NONE = 0,       /* it counted */
    NGX_HTTP_ENGAGEMENT_REASON_DUPLICATE,
    NGX_HTTP_ENGAGEMENT_REASON_DUPLICATE_REQUEST,
    NGX_HTTP_ENGAGEMENT_REASON_BELOW_POLICY,
    NGX_HTTP_ENGAGEMENT_REASON_TOO_OLD,        /* ts before the window */
    NGX_HTTP_ENGAGEMENT_REASON_IN_FUTURE,      /* ts after the window */
    NGX_HTTP_ENGAGEMENT_REASONS
} ngx_http_engagement_reason_e;


typedef struct ngx_http_engagement_redis_conf_s
    ngx_http_engagement_redis_conf_t;
typedef struct ngx_http_engagement_writer_conf_s
    ngx_http_engagement_writer_conf_t;
typedef struct ngx_http_engagement_zone_s  ngx_http_engagement_zone_t;


/* engagement_token_*, engagement_bot*, engagement_opt_out, _salt_rotate */
typedef struct {
    ngx_str_t                     token_secret;
    ngx_http_engagement_token_key_t  *token_key;
    ngx_http_engagement_token_key_t  *token_key_prev;  /* also accepted */
    ngx_http_complex_value_t     *token_content;
    ngx_http_complex_value_t     *token_session;
    time_t                        token_ttl;
    ngx_flag_t                    require_token;
    ngx_flag_t                    bot_agents;
    ngx_http_complex_value_t     *bot;
    ngx_http_complex_value_t     *user;        /* engagement_user_id */
    ngx_uint_t                    opt_out;     /* _opt_out_e */
    time_t                        salt_rotate;
    ngx_shm_zone_t               *salt_zone;
    ngx_msec_t                   *salt_grace;  /* the main conf's */
    uint64_t                     *salt_shared; /* the main conf's secret key
                                                  (global dedupe), or NULL */
} ngx_http_engagement_guard_conf_t;


typedef struct {
    ngx_array_t                   zones;       /* ngx_http_engagement_zone_t* */
    ngx_uint_t                    used;        /* a location uses the module */
    ngx_http_engagement_redis_conf_t  *redis;
    ngx_msec_t                    flush_interval;
    ngx_msec_t                    exit_deadline;
    ngx_msec_t                    cache_ttl;
    ngx_uint_t                    flush_batch;
    ngx_msec_t                    health_grace;
    ngx_array_t                  *reactions;   /* ngx_str_t: the types */
    ngx_str_t                     edge_id;
    ngx_str_t                     state_file;
    void                         *limit;       /* limit.c: zones, rules */
    void                         *live;        /* live.c: heartbeats */
    void                         *resume;      /* resume.c: positions */
    void                         *series;      /* series.c: by dimension */
    void                         *trend;       /* trend.c: trending */
    void                         *milestone;   /* milestone.c */
    void                         *webhook;     /* webhook.c */
    void                         *segments;    /* segments.c: the zone */
    ngx_http_engagement_writer_conf_t  *writer;
    ngx_msec_t                    salt_grace;  /* the longest dedupe window:
                                                  a rotated salt lives on */
    ngx_uint_t                    vars_used;   /* $engagement_* are used */
    ngx_uint_t                    body_vars;   /* $request_body* used */
    void                         *dims;        /* http/dims.c: the category
                                                  bound, interactions */
    void                         *global;      /* policy/global.c:
                                                  engagement_dedupe_scope */
    uint64_t                      salt_key[2]; /* global: the salts' key */
    ngx_uint_t                    salt_shared; /* global: salts from it */
} ngx_http_engagement_main_conf_t;


typedef struct {
    ngx_http_engagement_endpoint_e  endpoint;
    ngx_http_engagement_zone_t     *counters;
    ngx_http_engagement_zone_t     *dedupe;
    ngx_str_t                       counters_name;
    ngx_str_t                       dedupe_name;
    ngx_uint_t                      dedupe_key;
    ngx_msec_t                      dedupe_window;
    ngx_msec_t                      view_after;
    ngx_msec_t                      engaged_after;
    size_t                          max_body_size;
    ngx_uint_t                      batch_max;
    ngx_array_t                    *limits;        /* engagement_limit */
    ngx_msec_t                      ts_back;       /* engagement_ts_window */
    ngx_msec_t                      ts_ahead;
    ngx_uint_t                      answer;        /* _answer_e */
    ngx_flag_t                      heartbeat_record; /* to the writer */
    ngx_http_engagement_guard_conf_t  guard;
    void                           *segments;      /* engagement_segments */
    /* engagement_dimension, by ngx_http_engagement_dim_e (NULL: unset) */
    ngx_http_complex_value_t       *dims[NGX_HTTP_ENGAGEMENT_DIMS];
} ngx_http_engagement_loc_conf_t;


extern ngx_module_t  ngx_http_engagement_module;


/* ngx_conf_set_enum_slot whose error lists the choices */
/* directives.c: the directive table; its handlers in module.c */
extern ngx_command_t  ngx_http_engagement_commands[];
char *ngx_http_engagement_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_engagement_reactions_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_conf_set_enum(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* store/zone.c: the layout fingerprint of a zone's shape */
uint32_t ngx_http_engagement_layout(const size_t *shape, ngx_uint_t n);


/*
 * Copies and comparisons of ids (most are a few bytes) inline, by words
 * that may overlap; a libc call cost more than the bytes. Longer copies
 * go to ngx_cpymem().
 */

static ngx_inline u_char *
ngx_http_engagement_cpy_short(u_char *dst, const u_char *src, size_t n)
{
    uint16_t  h0, h1;
    uint32_t  w0, w1;
    uint64_t  q0, q1;

    if (n > 16) {
        return ngx_cpymem(dst, src, n);
    }

    if (n >= 8) {
        ngx_memcpy(&q0, src, 8);
        ngx_memcpy(&q1, src + n - 8, 8);
        ngx_memcpy(dst, &q0, 8);
        ngx_memcpy(dst + n - 8, &q1, 8);

    } else if (n >= 4) {
        ngx_memcpy(&w0, src, 4);
        ngx_memcpy(&w1, src + n - 4, 4);
        ngx_memcpy(dst, &w0, 4);
        ngx_memcpy(dst + n - 4, &w1, 4);

    } else if (n >= 2) {
        ngx_memcpy(&h0, src, 2);
        ngx_memcpy(&h1, src + n - 2, 2);
        ngx_memcpy(dst, &h0, 2);
        ngx_memcpy(dst + n - 2, &h1, 2);

    } else if (n) {
        *dst = *src;
    }

    return dst + n;
}


/* whether the n bytes at a and at b are the same */
static ngx_inline ngx_uint_t
ngx_http_engagement_same(const u_char *a, const u_char *b, size_t n)
{
    uint32_t  x0, x1, y0, y1;
    uint64_t  x, y;

    if (n >= 8) {
        for ( /* void */ ; n > 8; a += 8, b += 8, n -= 8) {
            ngx_memcpy(&x, a, 8);
            ngx_memcpy(&y, b, 8);

            if (x != y) {
                return 0;
            }
        }

        ngx_memcpy(&x, a + n - 8, 8);
        ngx_memcpy(&y, b + n - 8, 8);

        return (x == y);
    }

    if (n >= 4) {
        ngx_memcpy(&x0, a, 4);
        ngx_memcpy(&x1, a + n - 4, 4);
        ngx_memcpy(&y0, b, 4);
        ngx_memcpy(&y1, b + n - 4, 4);

        return (x0 == y0) & (x1 == y1);
    }

    while (n--) {
        if (*a++ != *b++) {
            return 0;
        }
    }

    return 1;
}


/*
 * Number writers for the request and flush paths, where ngx_sprintf's
 * format parsing was a tenth of the module's own instructions.
 */

static ngx_inline u_char *
ngx_http_engagement_put_uint(u_char *p, uint64_t n)
{
    u_char    *end;
    uint64_t   m;

    if (n < 10) {
        /* the common 0 of an answer's totals, and other single digits */
        *p = (u_char) ('0' + n);
        return p + 1;
    }

    /* the digits counted first, then written in place: no copy */
    for (end = p + 1, m = n; m >= 10; m /= 10) {
        end++;
    }

    p = end;

    do {
        *--p = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return end;
}


/* n as exactly width digits, with leading zeros (width <= 20) */
static ngx_inline u_char *
ngx_http_engagement_put_digits(u_char *p, uint64_t n, ngx_uint_t width)
{
    u_char  *q;

    for (q = p + width; q > p; n /= 10) {
        *--q = (u_char) ('0' + n % 10);
    }

    return p + width;
}


/* 16 lowercase hex digits */
static ngx_inline u_char *
ngx_http_engagement_put_hex64(u_char *p, uint64_t h)
{
    ngx_uint_t  i;

    for (i = 16; i; i--) {
        p[i - 1] = "0123456789abcdef"[h & 0xf];
        h >>= 4;
    }

    return p + 16;
}


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_MODULE_H_INCLUDED_ */
