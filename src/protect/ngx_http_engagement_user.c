
/*
 * engagement_user_id: the user a request is authenticated as (the
 * operator's authentication sets it: $remote_user after auth_basic, a
 * header or variable from auth_request, a JWT claim), bound to the user
 * id an event or a read names. Without it, a request's userId/viewerId
 * is whatever the client sends.
 */


#include "ngx_http_engagement_module.h"
#include "protect/ngx_http_engagement_protect.h"
#include "http/ngx_http_engagement_http.h"


/* "engagement_user_id off": set, so not inherited, and binding nothing */
static ngx_http_complex_value_t  ngx_http_engagement_user_off;


/* engagement_user_id <complex value> | off */

char *
ngx_http_engagement_user_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char                              *p = conf;

    ngx_str_t                         *value;
    ngx_http_complex_value_t         **cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = (ngx_http_complex_value_t **) (p + cmd->offset);

    if (*cv != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *cv = &ngx_http_engagement_user_off;
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        return "needs a value (a variable your authentication sets) or off";
    }

    *cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (*cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = *cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The id the request names (*id, empty when it names none) against the
 * authenticated user: NGX_DECLINED to go on (*id set to the user when it
 * was empty and fill is set), else the answer sent: 401 when the request
 * names a user but is not authenticated, 403 when it names another user.
 */

ngx_int_t
ngx_http_engagement_user_bind(ngx_http_request_t *r, ngx_str_t *id,
    const char *field, ngx_uint_t fill)
{
    ngx_str_t                        v;
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    if (elcf->guard.user == NULL
        || elcf->guard.user == &ngx_http_engagement_user_off)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_complex_value(r, elcf->guard.user, &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v.len && !ngx_http_engagement_id_valid(v.data, v.len)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "engagement_user_id is \"%V\", not a valid id "
                      "(" NGX_HTTP_ENGAGEMENT_ID_RULE "): the request is "
                      "taken as not authenticated", &v);
        v.len = 0;
    }

    if (v.len == 0) {
        if (id->len == 0) {
            return NGX_DECLINED;     /* anonymous, as it says */
        }

        ngx_http_engagement_set_outcome(r, "refused", field, NULL);
        return ngx_http_engagement_send_error(r, NGX_HTTP_UNAUTHORIZED,
                   "unauthenticated", field,
                   "names a user, but the request is not authenticated");
    }

    if (id->len == 0) {
        if (fill) {
            *id = v;
        }

        return NGX_DECLINED;
    }

    if (id->len != v.len || ngx_memcmp(id->data, v.data, v.len) != 0) {
        ngx_http_engagement_set_outcome(r, "refused", field, NULL);
        return ngx_http_engagement_send_error(r, NGX_HTTP_FORBIDDEN,
                   "forbidden", field,
                   "is not the user the request is authenticated as");
    }

    return NGX_DECLINED;
}
