
/*
 * protect/: what stands between a client and the counters. Rate limits
 * (limit.c), late events (window.c), signed view tokens, bot detection,
 * opt-out (guard.c, bot.c) and the rotating identity salt (salt.c). The
 * guard's configuration lives inside the module's location configuration;
 * its directives are listed by NGX_HTTP_ENGAGEMENT_GUARD_COMMANDS in the
 * module's command table.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_PROTECT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_PROTECT_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif




/* the salts an identity is hashed with, as copied out of the salt zone */
typedef struct {
    uint64_t                      cur[2];
    uint64_t                      prev[2];
    ngx_uint_t                    has_prev;    /* within the grace window */
} ngx_http_engagement_salt_t;


/* guard.c: NGX_DECLINED, or the answer sent for the event */
ngx_int_t ngx_http_engagement_guard_check(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev);
ngx_int_t ngx_http_engagement_guard_like_token(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_str_t *token,
    ngx_str_t *content_id, ngx_str_t *user_id);

/* user.c: engagement_user_id, NGX_DECLINED or the answer sent */
ngx_int_t ngx_http_engagement_user_bind(ngx_http_request_t *r, ngx_str_t *id,
    const char *field, ngx_uint_t fill);
char *ngx_http_engagement_user_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* limit.c (the request path, status) and limit_conf.c: rate limits */
char *ngx_http_engagement_limit_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_engagement_limit_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_limit_run(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);
size_t ngx_http_engagement_limit_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_limit_status(ngx_http_request_t *r, u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json, ngx_uint_t first);

/* a location's rate limits: NGX_DECLINED (none refuses) or the answer */
static ngx_inline ngx_int_t
ngx_http_engagement_limit_check(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    /* most locations have none: no call */
    return (elcf->limits == NULL) ? NGX_DECLINED
                                  : ngx_http_engagement_limit_run(r, elcf);
}

/* window.c: late events; engagement_ts_window's defaults, in ms */
#define NGX_HTTP_ENGAGEMENT_TS_BACK_DEFAULT    (24 * 60 * 60 * 1000)
#define NGX_HTTP_ENGAGEMENT_TS_AHEAD_DEFAULT   (5 * 60 * 1000)

char *ngx_http_engagement_ts_window_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_http_engagement_reason_e ngx_http_engagement_ts_check(
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev);

/* bot.c: the built-in user agent list */
ngx_int_t ngx_http_engagement_bot_init(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_bot_agent(u_char *ua, size_t len);

/* guard.c: configuration, the request-path checks */
void ngx_http_engagement_guard_create(ngx_http_engagement_guard_conf_t *gc);
char *ngx_http_engagement_guard_merge(ngx_conf_t *cf,
    ngx_http_engagement_guard_conf_t *prev,
    ngx_http_engagement_guard_conf_t *conf, ngx_uint_t view,
    ngx_uint_t salted);
ngx_int_t ngx_http_engagement_guard_add_variables(ngx_conf_t *cf);
char *ngx_http_engagement_guard_bind(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_engagement_guard_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

extern ngx_conf_enum_t  ngx_http_engagement_opt_out_modes[];

/* salt.c: the salt zone */
ngx_shm_zone_t *ngx_http_engagement_salt_zone(ngx_conf_t *cf);
void ngx_http_engagement_salt_get(ngx_http_engagement_guard_conf_t *gc,
    ngx_msec_t window, ngx_http_engagement_salt_t *salt);


#define NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(f)                                   \
    offsetof(ngx_http_engagement_loc_conf_t, guard)                           \
    + offsetof(ngx_http_engagement_guard_conf_t, f)


#define NGX_HTTP_ENGAGEMENT_GUARD_COMMANDS                                    \
                                                                              \
    { ngx_string("engagement_token_secret"),                                  \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12, \
      ngx_http_engagement_guard_secret,                                       \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(token_secret),                         \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_token_bind"),                                    \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,  \
      ngx_http_engagement_guard_bind,                                         \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      0,                                                                      \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_token_ttl"),                                     \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,  \
      ngx_conf_set_sec_slot,                                                  \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(token_ttl),                            \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_require_token"),                                 \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,   \
      ngx_conf_set_flag_slot,                                                 \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(require_token),                        \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_bot_agents"),                                    \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,   \
      ngx_conf_set_flag_slot,                                                 \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(bot_agents),                           \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_bot"),                                           \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,  \
      ngx_http_set_complex_value_slot,                                        \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(bot),                                  \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_user_id"),                                       \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,  \
      ngx_http_engagement_user_directive,                                     \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(user),                                 \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_opt_out"),                                       \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,  \
      ngx_http_engagement_conf_set_enum,                                      \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(opt_out),                              \
      &ngx_http_engagement_opt_out_modes },                                   \
                                                                              \
    { ngx_string("engagement_salt_rotate"),                                   \
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,                                      \
      ngx_conf_set_sec_slot,                                                  \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      NGX_HTTP_ENGAGEMENT_GUARD_OFFSET(salt_rotate),                          \
      NULL },


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_PROTECT_H_INCLUDED_ */
