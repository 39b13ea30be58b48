
/*
 * The guard of the view path: configuration of tokens, bots, opt-out and
 * the identity salt; the $engagement_token variable that mints tokens;
 * and the checks a parsed event passes before the view policy (token,
 * then bot, then opt-out). The salt itself lives in salt.c.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "http/ngx_http_engagement_http.h"


#define NGX_HTTP_ENGAGEMENT_TOKEN_TTL_DEFAULT    3600     /* seconds */
#define NGX_HTTP_ENGAGEMENT_SALT_ROTATE_DEFAULT  86400    /* a day */

/* where a client may send its token instead of the body's "token" */
#define NGX_HTTP_ENGAGEMENT_TOKEN_HEADER         "X-Engagement-Token"

/* Global Privacy Control: "1" opts the viewer out */
#define NGX_HTTP_ENGAGEMENT_GPC_HEADER           "Sec-GPC"


static ngx_int_t ngx_http_engagement_token_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void ngx_http_engagement_guard_key_cleanup(void *data);
static ngx_http_engagement_token_key_t *ngx_http_engagement_guard_key_make(
    ngx_conf_t *cf, ngx_str_t *secret);


ngx_conf_enum_t  ngx_http_engagement_opt_out_modes[] = {
    { ngx_string("off"), NGX_HTTP_ENGAGEMENT_OPT_OUT_OFF },
    { ngx_string("anonymous"), NGX_HTTP_ENGAGEMENT_OPT_OUT_ANONYMOUS },
    { ngx_string("drop"), NGX_HTTP_ENGAGEMENT_OPT_OUT_DROP },
    { ngx_null_string, 0 }
};


static const char  *ngx_http_engagement_token_reasons[] = {
    "ok", "missing", "malformed", "expired", "wrong_content", "bad_signature"
};

/* $engagement_reason of a refused token, for access logs */
static const char  *ngx_http_engagement_token_log[] = {
    "token_ok", "token_missing", "token_malformed", "token_expired",
    "token_wrong_content", "token_bad_signature"
};

static const char  *ngx_http_engagement_token_messages[] = {
    "",
    "a view token is required: send it in the token field or in "
    "X-Engagement-Token",
    "the view token is not a token",
    "the view token has expired: reload the page for a new one",
    "the view token was issued for other content",
    "the view token's signature does not match"
};


static ngx_str_t  ngx_http_engagement_token_var =
    ngx_string("engagement_token");


void
ngx_http_engagement_guard_create(ngx_http_engagement_guard_conf_t *gc)
{
    /*
     * set by ngx_pcalloc() with the location configuration:
     *
     *     gc->token_secret = { 0, NULL };
     *     gc->token_content = NULL;
     *     gc->token_session = NULL;
     *     gc->bot = NULL;
     *     gc->salt_zone = NULL;
     */

    gc->token_ttl = NGX_CONF_UNSET;
    gc->require_token = NGX_CONF_UNSET;
    gc->bot_agents = NGX_CONF_UNSET;
    gc->opt_out = NGX_CONF_UNSET_UINT;
    gc->salt_rotate = NGX_CONF_UNSET;
}


char *
ngx_http_engagement_guard_merge(ngx_conf_t *cf,
    ngx_http_engagement_guard_conf_t *prev,
    ngx_http_engagement_guard_conf_t *conf, ngx_uint_t view,
    ngx_uint_t salted)
{
    ngx_http_engagement_main_conf_t  *emcf;

    if (conf->token_secret.data == NULL) {
        conf->token_secret = prev->token_secret;
        conf->token_key = prev->token_key;
        conf->token_key_prev = prev->token_key_prev;
    }

    if (conf->token_content == NULL) {
        conf->token_content = prev->token_content;
        conf->token_session = prev->token_session;
    }

    ngx_conf_merge_sec_value(conf->token_ttl, prev->token_ttl,
                             NGX_HTTP_ENGAGEMENT_TOKEN_TTL_DEFAULT);
    ngx_conf_merge_value(conf->require_token, prev->require_token, 0);
    ngx_conf_merge_value(conf->bot_agents, prev->bot_agents, 1);

    if (conf->bot == NULL) {
        conf->bot = prev->bot;
    }

    if (conf->user == NULL) {
        conf->user = prev->user;
    }

    ngx_conf_merge_uint_value(conf->opt_out, prev->opt_out,
                              NGX_HTTP_ENGAGEMENT_OPT_OUT_ANONYMOUS);
    ngx_conf_merge_sec_value(conf->salt_rotate, prev->salt_rotate,
                             NGX_HTTP_ENGAGEMENT_SALT_ROTATE_DEFAULT);

    if (conf->token_ttl <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_token_ttl\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (conf->salt_rotate <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_salt_rotate\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (!salted) {
        return NGX_CONF_OK;
    }

    if (view && conf->require_token && conf->token_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_require_token\" needs "
                           "\"engagement_token_secret\"");
        return NGX_CONF_ERROR;
    }

    /* views and likes hash identities (dedupe, the durable writer) */
    conf->salt_zone = ngx_http_engagement_salt_zone(cf);
    if (conf->salt_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    conf->salt_grace = &emcf->salt_grace;
    conf->salt_shared = emcf->salt_shared ? emcf->salt_key : NULL;

    return NGX_CONF_OK;
}


static ngx_http_engagement_token_key_t *
ngx_http_engagement_guard_key_make(ngx_conf_t *cf, ngx_str_t *secret)
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_engagement_token_key_t  *key;

    if (secret->len < NGX_HTTP_ENGAGEMENT_TOKEN_SECRET_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_token_secret\" must be at least %d "
                           "bytes long", NGX_HTTP_ENGAGEMENT_TOKEN_SECRET_MIN);
        return NULL;
    }

    /* the HMAC key states live as long as this configuration */
    cln = ngx_pool_cleanup_add(cf->pool,
                               sizeof(ngx_http_engagement_token_key_t));
    if (cln == NULL) {
        return NULL;
    }

    key = cln->data;

    if (ngx_http_engagement_token_key(key, secret) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement_token_secret\": OpenSSL could not "
                           "make an HMAC-SHA256 key");
        return NULL;
    }

    cln->handler = ngx_http_engagement_guard_key_cleanup;

    return key;
}


/* engagement_token_secret current [previous]; */

char *
ngx_http_engagement_guard_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_str_t  *value;

    if (elcf->guard.token_secret.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    elcf->guard.token_secret = value[1];
    elcf->guard.token_key = ngx_http_engagement_guard_key_make(cf, &value[1]);

    if (elcf->guard.token_key == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        elcf->guard.token_key_prev =
            ngx_http_engagement_guard_key_make(cf, &value[2]);

        if (elcf->guard.token_key_prev == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static void
ngx_http_engagement_guard_key_cleanup(void *data)
{
    ngx_http_engagement_token_key_free(data);
}


static char *
ngx_http_engagement_guard_cv(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_complex_value_t **cvp)
{
    ngx_http_compile_complex_value_t   ccv;

    *cvp = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (*cvp == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = *cvp;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_engagement_guard_bind(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_str_t  *value;

    if (elcf->guard.token_content) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_engagement_guard_cv(cf, &value[1],
                                     &elcf->guard.token_content)
        != NGX_CONF_OK
        || ngx_http_engagement_guard_cv(cf, &value[2],
                                        &elcf->guard.token_session)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_engagement_guard_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    if (ngx_http_engagement_bot_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    var = ngx_http_add_variable(cf, &ngx_http_engagement_token_var,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_engagement_token_variable;

    return NGX_OK;
}


/*
 * $engagement_token: a token for the content and session that
 * engagement_token_bind names, valid for engagement_token_ttl; empty when
 * there is no secret, no binding, or either value is not a valid id.
 */

static ngx_int_t
ngx_http_engagement_token_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                            *buf;
    size_t                             len;
    ngx_str_t                          content, session;
    ngx_http_engagement_loc_conf_t    *elcf;
    ngx_http_engagement_guard_conf_t  *gc;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);
    gc = &elcf->guard;

    v->not_found = 1;

    if (gc->token_key == NULL || gc->token_content == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, gc->token_content, &content) != NGX_OK
        || ngx_http_complex_value(r, gc->token_session, &session) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!ngx_http_engagement_id_valid(content.data, content.len)
        || !ngx_http_engagement_id_valid(session.data, session.len))
    {
        return NGX_OK;
    }

    buf = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    len = ngx_http_engagement_token_mint(buf, gc->token_key,
                                         ngx_time() + gc->token_ttl,
                                         &content, &session);
    if (len == 0) {
        return NGX_OK;
    }

    v->data = buf;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* a view the guard does not count, for a reason: logged and answered */
static ngx_int_t
ngx_http_engagement_guard_answer(ngx_http_request_t *r, const char *reason,
    ngx_str_t *content_id)
{
    u_char  *body, *p;
    size_t   len;

    ngx_http_engagement_set_outcome(r, "not_counted", reason, content_id);

    len = sizeof("{\"counted\":false,\"reason\":\"\",\"contentId\":\"\"}\n")
          + ngx_strlen(reason) + content_id->len;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* content ids are validated: nothing to escape */
    p = ngx_sprintf(body, "{\"counted\":false,\"reason\":\"%s\","
                    "\"contentId\":\"%V\"}\n", reason, content_id);

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


static ngx_int_t
ngx_http_engagement_token_refused(ngx_http_request_t *r,
    ngx_http_engagement_token_rc_e rc, ngx_str_t *content_id)
{
    u_char  *body, *p;
    size_t   len;

    len = sizeof("{\"error\":\"invalid_token\",\"reason\":\"\","
                 "\"message\":\"\"}\n")
          + ngx_strlen(ngx_http_engagement_token_reasons[rc])
          + ngx_strlen(ngx_http_engagement_token_messages[rc]);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":\"invalid_token\",\"reason\":\"%s\","
                    "\"message\":\"%s\"}\n",
                    ngx_http_engagement_token_reasons[rc],
                    ngx_http_engagement_token_messages[rc]);

    ngx_http_engagement_set_outcome(r, "refused",
                                    ngx_http_engagement_token_log[rc],
                                    content_id);

    return ngx_http_engagement_send_json(r, NGX_HTTP_FORBIDDEN, body,
                                         p - body);
}


/* checks a token with the secret, and during a change with the previous */

static ngx_http_engagement_token_rc_e
ngx_http_engagement_token_keys(ngx_http_engagement_guard_conf_t *gc,
    ngx_str_t *token, ngx_str_t *content_id, ngx_str_t *subject)
{
    ngx_http_engagement_token_rc_e  rc, prc;

    rc = ngx_http_engagement_token_verify(gc->token_key, token->data,
                                          token->len, content_id, subject,
                                          ngx_time());

    if ((rc == NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT
         || rc == NGX_HTTP_ENGAGEMENT_TOKEN_BAD_SIGNATURE)
        && gc->token_key_prev)
    {
        prc = ngx_http_engagement_token_verify(gc->token_key_prev,
                                               token->data, token->len,
                                               content_id, subject,
                                               ngx_time());

        /* the answer of the secret that got further */
        if (prc != NGX_HTTP_ENGAGEMENT_TOKEN_WRONG_CONTENT) {
            rc = prc;
        }
    }

    return rc;
}


/*
 * One pass over the request headers: when token is set, the
 * X-Engagement-Token header if *token is still empty (the body's field
 * comes first), and, when gpc is set, whether Sec-GPC is "1". None when
 * neither is wanted.
 */

static void
ngx_http_engagement_guard_headers(ngx_http_request_t *r, ngx_str_t *token,
    ngx_uint_t *gpc)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (token != NULL && token->len) {
        /* the body's token comes first: the header is not looked for */
        token = NULL;
    }

    if (token == NULL && gpc == NULL) {
        return;
    }

    /*
     * A header of neither length is passed over on that alone, in a loop
     * of its own per part of the list (most requests have one part)
     */
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {

            if (h[i].key.len == sizeof(NGX_HTTP_ENGAGEMENT_GPC_HEADER) - 1) {
                if (gpc
                    && ngx_strncasecmp(h[i].key.data,
                                (u_char *) NGX_HTTP_ENGAGEMENT_GPC_HEADER,
                                h[i].key.len) == 0
                    && h[i].value.len == 1 && h[i].value.data[0] == '1')
                {
                    *gpc = 1;
                }

            } else if (h[i].key.len
                       == sizeof(NGX_HTTP_ENGAGEMENT_TOKEN_HEADER) - 1
                       && token
                       && token->len == 0
                       && ngx_strncasecmp(h[i].key.data,
                                (u_char *) NGX_HTTP_ENGAGEMENT_TOKEN_HEADER,
                                h[i].key.len) == 0)
            {
                *token = h[i].value;
            }
        }
    }
}


/*
 * A like or unlike where tokens are required: the token binds the content
 * and the user (minted with engagement_token_bind <content> <user>). It
 * comes in the body's "token" or the X-Engagement-Token header.
 * NGX_DECLINED: valid; anything else: the refusal sent.
 */

ngx_int_t
ngx_http_engagement_guard_like_token(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_str_t *token,
    ngx_str_t *content_id, ngx_str_t *user_id)
{
    ngx_str_t                        t;
    ngx_http_engagement_token_rc_e   rc;

    if (!elcf->guard.require_token) {
        return NGX_DECLINED;
    }

    t = *token;

    ngx_http_engagement_guard_headers(r, &t, NULL);

    rc = ngx_http_engagement_token_keys(&elcf->guard, &t, content_id,
                                        user_id);

    if (rc == NGX_HTTP_ENGAGEMENT_TOKEN_OK) {
        return NGX_DECLINED;
    }

    ngx_http_engagement_inc(
        ((ngx_http_engagement_counters_shctx_t *) elcf->counters->sh),
        token_refused[rc]);

    return ngx_http_engagement_token_refused(r, rc, content_id);
}


/* 1 if the request comes from a bot, by its User-Agent or engagement_bot */
static ngx_int_t
ngx_http_engagement_guard_is_bot(ngx_http_request_t *r,
    ngx_http_engagement_guard_conf_t *gc)
{
    ngx_str_t  bot;

    if (gc->bot_agents && r->headers_in.user_agent
        && ngx_http_engagement_bot_agent(r->headers_in.user_agent->value.data,
                                         r->headers_in.user_agent->value.len))
    {
        return 1;
    }

    if (gc->bot) {
        if (ngx_http_complex_value(r, gc->bot, &bot) != NGX_OK) {
            return NGX_ERROR;
        }

        if (bot.len && !(bot.len == 1 && bot.data[0] == '0')) {
            return 1;
        }
    }

    return 0;
}


/*
 * Runs after parsing and before the view policy. NGX_DECLINED: go on
 * (ev->anonymous may have been set); anything else: the answer was sent
 * or failed, and is what the caller returns.
 */

ngx_int_t
ngx_http_engagement_guard_check(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev)
{
    ngx_int_t                              bot;
    ngx_str_t                              token;
    ngx_str_t                             *want_token;
    ngx_uint_t                             gpc, *want_gpc;
    ngx_http_engagement_guard_conf_t      *gc;
    ngx_http_engagement_token_rc_e         rc;
    ngx_http_engagement_counters_shctx_t  *sh;

    gc = &elcf->guard;
    sh = elcf->counters->sh;

    token = ev->token;
    gpc = 0;

    /* the headers only the features in use need */
    want_token = gc->require_token ? &token : NULL;
    want_gpc = (gc->opt_out != NGX_HTTP_ENGAGEMENT_OPT_OUT_OFF) ? &gpc : NULL;

    ngx_http_engagement_guard_headers(r, want_token, want_gpc);

    if (gc->require_token) {
        rc = ngx_http_engagement_token_keys(gc, &token, &ev->content_id,
                                            &ev->session_id);

        if (rc != NGX_HTTP_ENGAGEMENT_TOKEN_OK) {
            ngx_http_engagement_inc(sh, token_refused[rc]);
            return ngx_http_engagement_token_refused(r, rc, &ev->content_id);
        }
    }

    bot = ngx_http_engagement_guard_is_bot(r, gc);

    if (bot == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (bot) {
        ngx_http_engagement_inc(sh, not_counted_bot);
        return ngx_http_engagement_guard_answer(r, "bot", &ev->content_id);
    }

    if ((gpc || ev->opt_out)
        && gc->opt_out != NGX_HTTP_ENGAGEMENT_OPT_OUT_OFF)
    {
        if (gc->opt_out == NGX_HTTP_ENGAGEMENT_OPT_OUT_DROP) {
            ngx_http_engagement_inc(sh, not_counted_opted_out);
            return ngx_http_engagement_guard_answer(r, "opted_out",
                                                    &ev->content_id);
        }

        ngx_http_engagement_inc(sh, anonymous);
        ev->anonymous = 1;
    }

    return NGX_DECLINED;
}
