
/*
 * Variables for access logs: $engagement_outcome (counted, not_counted,
 * invalid, refused, unavailable, read), $engagement_reason (why, when
 * there is a why) and $engagement_content_id, so that a log line can be
 * reconciled with the counts; $engagement_viewer_id and
 * $engagement_session_id expose the parsed event (keys of rate limits).
 * A configuration that uses none of them (by name: in a log format, a
 * map, a limit's key) has nothing kept for them on any request.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "http/ngx_http_engagement_http.h"


/* what the variables show; an empty string is not found */
typedef struct {
    ngx_str_t     outcome;
    ngx_str_t     reason;
    ngx_str_t     content_id;
    ngx_str_t     viewer_id;
    ngx_str_t     session_id;
} ngx_http_engagement_ctx_t;


static ngx_int_t ngx_http_engagement_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* a variable showing a field of the context */
#define ngx_http_engagement_var(name, field)                                  \
    { ngx_string(name), NULL, ngx_http_engagement_variable,                   \
      offsetof(ngx_http_engagement_ctx_t, field), NGX_HTTP_VAR_NOCACHEABLE, 0 }


static ngx_http_variable_t  ngx_http_engagement_vars[] = {
    ngx_http_engagement_var("engagement_outcome", outcome),
    ngx_http_engagement_var("engagement_reason", reason),
    ngx_http_engagement_var("engagement_content_id", content_id),
    ngx_http_engagement_var("engagement_viewer_id", viewer_id),
    ngx_http_engagement_var("engagement_session_id", session_id),
    ngx_http_null_variable
};


ngx_int_t
ngx_http_engagement_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    if (ngx_http_engagement_guard_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    for (v = ngx_http_engagement_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* at postconfiguration: whether the variable called name is indexed */

static ngx_uint_t
ngx_http_engagement_variable_indexed(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_http_variable_t        *var;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    var = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        if (var[i].name.len == name->len
            && ngx_strncmp(var[i].name.data, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * At postconfiguration, when every use of a variable has indexed it:
 * whether one of ours is among them.
 */

ngx_uint_t
ngx_http_engagement_variables_used(ngx_conf_t *cf)
{
    ngx_http_variable_t  *v;

    for (v = ngx_http_engagement_vars; v->name.len; v++) {
        if (ngx_http_engagement_variable_indexed(cf, &v->name)) {
            return 1;
        }
    }

    return 0;
}


/*
 * Whether the configuration reads the request body through a variable
 * ($request_body, $request_body_file): then a view event's body is read
 * the usual way, into r->request_body, even when it came with the header.
 */

ngx_uint_t
ngx_http_engagement_body_vars_used(ngx_conf_t *cf)
{
    static ngx_str_t  body = ngx_string("request_body");
    static ngx_str_t  file = ngx_string("request_body_file");

    return ngx_http_engagement_variable_indexed(cf, &body)
           || ngx_http_engagement_variable_indexed(cf, &file);
}


/*
 * The request's context, made at first use; NULL when no variable of ours
 * is used. Strings given here must live as long as the request (static or
 * pool).
 */

static ngx_http_engagement_ctx_t *
ngx_http_engagement_ctx(ngx_http_request_t *r)
{
    ngx_http_engagement_ctx_t        *ctx;
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);

    if (!emcf->vars_used) {
        return NULL;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_engagement_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_engagement_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_engagement_module);
    }

    return ctx;
}


/* the parsed event's ids, once it parsed; NULL leaves one unset */

void
ngx_http_engagement_ctx_ids(ngx_http_request_t *r, ngx_str_t *content_id,
    ngx_str_t *viewer_id, ngx_str_t *session_id)
{
    ngx_http_engagement_ctx_t  *ctx;

    ctx = ngx_http_engagement_ctx(r);
    if (ctx == NULL) {
        return;
    }

    if (content_id) {
        ctx->content_id = *content_id;
    }

    if (viewer_id) {
        ctx->viewer_id = *viewer_id;
    }

    if (session_id) {
        ctx->session_id = *session_id;
    }
}


void
ngx_http_engagement_ctx_outcome(ngx_http_request_t *r, const char *outcome,
    const char *reason, ngx_str_t *content_id)
{
    ngx_http_engagement_ctx_t  *ctx;

    ctx = ngx_http_engagement_ctx(r);
    if (ctx == NULL) {
        return;
    }

    ctx->outcome.data = (u_char *) outcome;
    ctx->outcome.len = ngx_strlen(outcome);

    if (reason) {
        ctx->reason.data = (u_char *) reason;
        ctx->reason.len = ngx_strlen(reason);

    } else {
        ngx_str_null(&ctx->reason);
    }

    if (content_id) {
        ctx->content_id = *content_id;
    }
}


/* data: the offset of the field shown in the context */

static ngx_int_t
ngx_http_engagement_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_engagement_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_engagement_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
