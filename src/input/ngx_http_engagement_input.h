
/*
 * input/: what a client sends, parsed and checked. The JSON parser, the
 * view and reaction events, and the view token format. Pure functions of
 * their input: nothing here knows of zones, sockets or requests.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_INPUT_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_INPUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


#define NGX_HTTP_ENGAGEMENT_ID_MAX         128
/* what a content, session, viewer or user id may be, as refusals say */
#define NGX_HTTP_ENGAGEMENT_ID_RULE                                           \
    "1-" ngx_value(NGX_HTTP_ENGAGEMENT_ID_MAX) " bytes of [A-Za-z0-9._:-]"

/* the longest watch a single event may report: 7 days (written plain: the
 * error message prints it) */
#define NGX_HTTP_ENGAGEMENT_DURATION_MAX   604800000

/* a client's "ts": milliseconds in the years 2000-2200 */
#define NGX_HTTP_ENGAGEMENT_TS_MIN         946684800000LL
#define NGX_HTTP_ENGAGEMENT_TS_MAX         7258118400000LL

/* room for a refusal's detail: the syntax error and where */
#define NGX_HTTP_ENGAGEMENT_ERROR_DETAIL   160

#define NGX_HTTP_ENGAGEMENT_TOKEN_SECRET_MIN   16
#define NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX      128


/* a view event after parsing and validation */
typedef struct {
    ngx_str_t                     content_id;
    ngx_str_t                     session_id;
    ngx_str_t                     viewer_id;
    ngx_str_t                     request_id;
    ngx_str_t                     channel_id;
    ngx_str_t                     category;
    ngx_str_t                     source;
    ngx_str_t                     device;
    ngx_str_t                     country;         /* from the config */
    int64_t                       duration_ms;     /* -1: absent */
    int64_t                       ts;              /* -1: absent */
    ngx_uint_t                    replay;
    ngx_str_t                     token;           /* empty: absent */
    ngx_uint_t                    opt_out;         /* "optOut": true */
    ngx_uint_t                    anonymous;       /* set by the guard */
} ngx_http_engagement_event_t;


/* a like, reaction change or unlike after parsing */
typedef struct {
    ngx_str_t                     content_id;
    ngx_str_t                     user_id;
    ngx_str_t                     reaction;        /* empty: like, or none */
    ngx_str_t                     request_id;
    ngx_str_t                     token;           /* empty: absent */
} ngx_http_engagement_reaction_t;


/* a heartbeat's player state */
typedef enum {
    NGX_HTTP_ENGAGEMENT_PLAYING = 0,
    NGX_HTTP_ENGAGEMENT_PAUSED,
    NGX_HTTP_ENGAGEMENT_BUFFERING,
    NGX_HTTP_ENGAGEMENT_ENDED          /* the session leaves: not live */
} ngx_http_engagement_play_state_e;


/*
 * A heartbeat after parsing: the view event's fields the guard and the
 * rate limits read (ids, token, optOut), the position and player state
 */
typedef struct {
    ngx_http_engagement_event_t   ev;
    int64_t                       position_ms;     /* -1: absent */
    int64_t                       duration_ms;     /* -1: absent */
    ngx_str_t                     user_id;         /* empty: absent */
    ngx_uint_t                    state;           /* _play_state_e */
} ngx_http_engagement_heartbeat_t;


/* an interaction (POST .../event): a view event's fields (ids, the
 * dimensions, the guard's), what happened and where in the media */
typedef struct {
    ngx_http_engagement_event_t   ev;
    ngx_str_t                     type;            /* empty: "click" */
    ngx_str_t                     name;
    int64_t                       position_ms;     /* -1: absent */
} ngx_http_engagement_interaction_t;


/*
 * dimension.c: the closed sets of the event's dimensions and the
 * User-Agent's device class. Pure functions of their input.
 */
typedef enum {
    NGX_HTTP_ENGAGEMENT_DEVICE_MOBILE = 0,
    NGX_HTTP_ENGAGEMENT_DEVICE_TABLET,
    NGX_HTTP_ENGAGEMENT_DEVICE_DESKTOP,
    NGX_HTTP_ENGAGEMENT_DEVICE_TV,
    NGX_HTTP_ENGAGEMENT_DEVICE_CONSOLE,
    NGX_HTTP_ENGAGEMENT_DEVICE_OTHER,
    NGX_HTTP_ENGAGEMENT_DEVICES
} ngx_http_engagement_device_e;

#define NGX_HTTP_ENGAGEMENT_DEVICE_LIST                                       \
    "mobile, tablet, desktop, tv, console or other"
#define NGX_HTTP_ENGAGEMENT_SOURCE_LIST                                       \
    "feed, home, search, profile, notification, external, direct, embed, "    \
    "related or other"

/* the bytes of a User-Agent the classifier reads (the rest is ignored) */
#define NGX_HTTP_ENGAGEMENT_UA_SCAN        512

extern const ngx_str_t  ngx_http_engagement_devices[];
extern const ngx_str_t  ngx_http_engagement_sources[];

/* the canonical (static) value of p in the closed set, or NULL */
const ngx_str_t *ngx_http_engagement_device_find(const u_char *p, size_t len);
const ngx_str_t *ngx_http_engagement_source_find(const u_char *p, size_t len);
ngx_http_engagement_device_e ngx_http_engagement_device_classify(
    const u_char *ua, size_t len);
/* two letters A-Z (any case) into dst, upper-cased: NGX_OK, else NGX_ERROR */
ngx_int_t ngx_http_engagement_country_form(u_char *dst, const u_char *p,
    size_t len);


/* why an event was refused as malformed: the field and a message */
typedef struct {
    const char                   *field;       /* NULL: the body itself */
    const char                   *message;
    u_char                        detail[NGX_HTTP_ENGAGEMENT_ERROR_DETAIL];
    size_t                        detail_len;
} ngx_http_engagement_error_t;


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


/* event.c: the identifier rule and the events (JSON by json.c) */
ngx_int_t ngx_http_engagement_id_valid(const u_char *p, size_t len);
ngx_int_t ngx_http_engagement_event_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_error_t *err);
ngx_int_t ngx_http_engagement_reaction_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_reaction_t *re,
    ngx_http_engagement_error_t *err);
ngx_int_t ngx_http_engagement_interaction_parse(ngx_pool_t *pool,
    u_char *buf, size_t len, ngx_http_engagement_interaction_t *it,
    ngx_http_engagement_error_t *err);

/* heartbeat_input.c: a heartbeat's body */
ngx_int_t ngx_http_engagement_heartbeat_parse(ngx_pool_t *pool, u_char *buf,
    size_t len, ngx_http_engagement_heartbeat_t *hb,
    ngx_http_engagement_error_t *err);

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


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_INPUT_H_INCLUDED_ */
