
/*
 * Edge protection on the view path: signed view tokens, bot detection,
 * opt-out (Sec-GPC and the event's own flag) and the rotating identity
 * salt. The configuration lives inside the module's location
 * configuration; the directives are listed by
 * NGX_HTTP_ENGAGEMENT_GUARD_COMMANDS in the module's command table.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_GUARD_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_GUARD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_ENGAGEMENT_OPT_OUT_OFF        0
#define NGX_HTTP_ENGAGEMENT_OPT_OUT_ANONYMOUS  1
#define NGX_HTTP_ENGAGEMENT_OPT_OUT_DROP       2

#define NGX_HTTP_ENGAGEMENT_TOKEN_SECRET_MIN   16
#define NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX      128


/* why a token was refused; 0 is a good token */
typedef enum {
    NGX_HTTP_ENGAGEMENT_TOKEN_OK = 0,
    NGX_HTTP_ENGAGEMENT_TOKEN_MISSING,
    NGX_HTTP_ENGAGEMENT_TOKEN_MALFORMED,
    NGX_HTTP_ENGAGEMENT_TOKEN_EXPIRED,
    NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT,
    NGX_HTTP_ENGAGEMENT_TOKEN_BAD_SIGNATURE,
    NGX_HTTP_ENGAGEMENT_TOKEN_REASONS
} ngx_http_engagement_token_rc_e;


/* a token split into its parts (pointers into the token string) */
typedef struct {
    int64_t                       expires;     /* unix seconds */
    u_char                       *signed_part; /* "1.<exp>.<tag>" */
    size_t                        signed_len;
    u_char                       *tag;         /* content tag, base64url */
    u_char                       *mac;         /* HMAC, base64url */
} ngx_http_engagement_token_t;


/* the secret's HMAC states (EVP_MD_CTX *), made at configuration time */
typedef struct {
    void                         *inner;
    void                         *outer;
} ngx_http_engagement_token_key_t;


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
    ngx_uint_t                    opt_out;
    time_t                        salt_rotate;
    ngx_shm_zone_t               *salt_zone;
} ngx_http_engagement_guard_conf_t;


/* the salts an identity is hashed with, as copied out of the salt zone */
typedef struct {
    uint64_t                      cur[2];
    uint64_t                      prev[2];
    ngx_uint_t                    has_prev;    /* within the grace window */
} ngx_http_engagement_salt_t;


/* token.c: the token format, free of nginx's request machinery */
ngx_int_t ngx_http_engagement_token_parse(u_char *p, size_t len,
    ngx_http_engagement_token_t *tok);
ngx_int_t ngx_http_engagement_token_key(ngx_http_engagement_token_key_t *key,
    ngx_str_t *secret);
void ngx_http_engagement_token_key_free(ngx_http_engagement_token_key_t *key);
size_t ngx_http_engagement_token_mint(u_char *buf,
    ngx_http_engagement_token_key_t *key, int64_t expires, ngx_str_t *content,
    ngx_str_t *session);
ngx_http_engagement_token_rc_e ngx_http_engagement_token_verify(
    ngx_http_engagement_token_key_t *key, u_char *p, size_t len,
    ngx_str_t *content, ngx_str_t *session, int64_t now);

/* bot.c: the built-in user agent list */
ngx_int_t ngx_http_engagement_bot_init(ngx_conf_t *cf);
ngx_int_t ngx_http_engagement_bot_agent(u_char *ua, size_t len);

/* guard.c: configuration, the request-path checks, the salt zone */
void ngx_http_engagement_guard_create(ngx_http_engagement_guard_conf_t *gc);
char *ngx_http_engagement_guard_merge(ngx_conf_t *cf,
    ngx_http_engagement_guard_conf_t *prev,
    ngx_http_engagement_guard_conf_t *conf, ngx_uint_t view,
    ngx_uint_t salted);
ngx_int_t ngx_http_engagement_guard_add_variables(ngx_conf_t *cf);
void ngx_http_engagement_salt_get(ngx_http_engagement_guard_conf_t *gc,
    ngx_msec_t window, ngx_http_engagement_salt_t *salt);
char *ngx_http_engagement_guard_bind(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_engagement_guard_bot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_engagement_guard_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

extern ngx_conf_enum_t  ngx_http_engagement_opt_out_modes[];


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
      ngx_http_engagement_guard_bot,                                          \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      0,                                                                      \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_opt_out"),                                       \
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,  \
      ngx_conf_set_enum_slot,                                                 \
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


#endif /* _NGX_HTTP_ENGAGEMENT_GUARD_H_INCLUDED_ */
