
/*
 * The configuration of rate limits: engagement_limit_zone declares a zone
 * (one of store/'s generic zones), engagement_limit adds a rule to a
 * location (its parameters are a table of setters), and after the http
 * block every rule finds its zone.
 */


#include "ngx_http_engagement_module.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "protect/ngx_http_engagement_limit.h"


#define NGX_HTTP_ENGAGEMENT_LIMIT_MAGIC    0x45474c31   /* "EGL1" */
#define NGX_HTTP_ENGAGEMENT_LIMIT_MAX      100000       /* rate and burst */


/* what a limit zone keeps, for its layout */
static const size_t  ngx_http_engagement_limit_shape[] = {
    NGX_HTTP_ENGAGEMENT_HEAD_SHAPE,
    sizeof(ngx_http_engagement_limit_shctx_t),
    sizeof(ngx_http_engagement_limit_node_t),
    offsetof(ngx_http_engagement_limit_node_t, queue),
    offsetof(ngx_http_engagement_limit_node_t, excess),
    offsetof(ngx_http_engagement_limit_node_t, last)
};


static const ngx_http_engagement_zone_kind_t  ngx_http_engagement_limit_kind
    = {
    "engagement_limit_zone",
    NGX_HTTP_ENGAGEMENT_LIMIT_MAGIC,
    sizeof(ngx_http_engagement_limit_shctx_t),
    ngx_http_engagement_hnode_insert,
    NGX_HTTP_ENGAGEMENT_RESIZE_QUIET,      /* buckets refill on their own */
    ngx_http_engagement_limit_shape,
    sizeof(ngx_http_engagement_limit_shape) / sizeof(size_t)
};


static ngx_int_t
ngx_http_engagement_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_engagement_limit_zone_t  *z;

    z = shm_zone->data;
    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    z->sh = (ngx_http_engagement_limit_shctx_t *)
            ngx_http_engagement_zone_attach(shm_zone, data,
                                            &ngx_http_engagement_limit_kind);

    return (z->sh != NULL) ? NGX_OK : NGX_ERROR;
}


static ngx_http_engagement_limit_conf_t *
ngx_http_engagement_limit_conf(ngx_conf_t *cf)
{
    ngx_http_engagement_limit_conf_t  *lcf;
    ngx_http_engagement_main_conf_t   *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->limit) {
        return emcf->limit;
    }

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_limit_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&lcf->zones, cf->pool, 2, sizeof(void *)) != NGX_OK
        || ngx_array_init(&lcf->rules, cf->pool, 4, sizeof(void *))
           != NGX_OK)
    {
        return NULL;
    }

    emcf->limit = lcf;

    return lcf;
}


static ngx_http_engagement_limit_zone_t *
ngx_http_engagement_limit_zone_find(ngx_http_engagement_limit_conf_t *lcf,
    ngx_str_t *name)
{
    ngx_uint_t                           i;
    ngx_http_engagement_limit_zone_t   **zp;

    zp = lcf->zones.elts;

    for (i = 0; i < lcf->zones.nelts; i++) {
        if (zp[i]->name.len == name->len
            && ngx_strncmp(zp[i]->name.data, name->data, name->len) == 0)
        {
            return zp[i];
        }
    }

    return NULL;
}


/* engagement_limit_zone name:size; */

char *
ngx_http_engagement_limit_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ssize_t                             size;
    ngx_str_t                          *value, name;
    ngx_http_engagement_limit_conf_t   *lcf;
    ngx_http_engagement_limit_zone_t   *z, **zp;

    value = cf->args->elts;

    if (ngx_http_engagement_zone_parse(cf, &value[1], "engagement_limit_zone",
                                       "per_ip:10m", &name, &size)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    lcf = ngx_http_engagement_limit_conf(cf);
    if (lcf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_limit_zone_find(lcf, &name) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit_zone \"%V\" is already "
                           "declared", &name);
        return NGX_CONF_ERROR;
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_limit_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    z->name = name;
    z->max_idle = 1000;         /* ms, until the rules are known */
    z->shm_zone = ngx_http_engagement_zone_shm(cf, &name, size,
                      ngx_http_engagement_limit_init_zone, z);
    if (z->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zp = ngx_array_push(&lcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = z;

    return NGX_CONF_OK;
}


/*
 * The parameters of engagement_limit. A setter answers NGX_OK, NGX_ERROR
 * when it said what is wrong, or NGX_DECLINED for "invalid parameter".
 * A name that ends in "=" takes a value; the others stand alone.
 */

typedef ngx_int_t (*ngx_http_engagement_limit_set_pt)(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule, ngx_str_t *arg, ngx_str_t *v);


typedef struct {
    ngx_str_t                          name;
    ngx_http_engagement_limit_set_pt   set;
} ngx_http_engagement_limit_param_t;


static ngx_int_t
ngx_http_engagement_limit_set_zone(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule, ngx_str_t *arg, ngx_str_t *v)
{
    if (v->len == 0) {
        return NGX_DECLINED;
    }

    rule->zone_name = *v;

    return NGX_OK;
}


static ngx_int_t
ngx_http_engagement_limit_set_key(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule, ngx_str_t *arg, ngx_str_t *v)
{
    ngx_http_compile_complex_value_t  ccv;

    if (v->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: empty \"key=\"");
        return NGX_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = v;
    ccv.complex_value = &rule->key;

    return ngx_http_compile_complex_value(&ccv);
}


/* rate=Nr/s or rate=Nr/m */

static ngx_int_t
ngx_http_engagement_limit_set_rate(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule, ngx_str_t *arg, ngx_str_t *v)
{
    u_char     *unit;
    ngx_int_t   n;

    n = NGX_ERROR;
    unit = v->data + v->len - (sizeof("r/s") - 1);

    if (v->len > sizeof("r/s") - 1) {
        n = ngx_atoi(v->data, unit - v->data);
    }

    if (n != NGX_ERROR && ngx_strncmp(unit, "r/s", 3) == 0) {
        rule->period = 1000;

    } else if (n != NGX_ERROR && ngx_strncmp(unit, "r/m", 3) == 0) {
        rule->period = 60000;

    } else {
        n = NGX_ERROR;
    }

    if (n == NGX_ERROR || n == 0 || n > NGX_HTTP_ENGAGEMENT_LIMIT_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: invalid rate \"%V\": expected "
                           "rate=Nr/s or rate=Nr/m, N from 1 to %d", arg,
                           NGX_HTTP_ENGAGEMENT_LIMIT_MAX);
        return NGX_ERROR;
    }

    rule->rate = (ngx_uint_t) n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_engagement_limit_set_burst(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule, ngx_str_t *arg, ngx_str_t *v)
{
    ngx_int_t  n;

    n = ngx_atoi(v->data, v->len);

    if (n == NGX_ERROR || n > NGX_HTTP_ENGAGEMENT_LIMIT_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: invalid burst \"%V\": a number "
                           "from 0 to %d", arg,
                           NGX_HTTP_ENGAGEMENT_LIMIT_MAX);
        return NGX_ERROR;
    }

    rule->burst = (ngx_uint_t) n * NGX_HTTP_ENGAGEMENT_LIMIT_ONE;

    return NGX_OK;
}


static ngx_int_t
ngx_http_engagement_limit_set_dry_run(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule, ngx_str_t *arg, ngx_str_t *v)
{
    rule->dry_run = 1;

    return NGX_OK;
}


static ngx_http_engagement_limit_param_t  ngx_http_engagement_limit_params[]
    = {
    { ngx_string("zone="), ngx_http_engagement_limit_set_zone },
    { ngx_string("key="), ngx_http_engagement_limit_set_key },
    { ngx_string("rate="), ngx_http_engagement_limit_set_rate },
    { ngx_string("burst="), ngx_http_engagement_limit_set_burst },
    { ngx_string("dry_run"), ngx_http_engagement_limit_set_dry_run },
    { ngx_null_string, NULL }
};


static ngx_int_t
ngx_http_engagement_limit_param(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule, ngx_str_t *arg)
{
    size_t                              len;
    ngx_str_t                           v;
    ngx_http_engagement_limit_param_t  *pm;

    for (pm = ngx_http_engagement_limit_params; pm->set; pm++) {
        len = pm->name.len;

        if (arg->len < len || ngx_strncmp(arg->data, pm->name.data, len) != 0
            || (pm->name.data[len - 1] != '=' && arg->len != len))
        {
            continue;
        }

        v.data = arg->data + len;
        v.len = arg->len - len;

        return pm->set(cf, rule, arg, &v);
    }

    return NGX_DECLINED;
}


/* what a rule must have, and a bucket that drains within 32-bit times */

static ngx_int_t
ngx_http_engagement_limit_rule_check(ngx_conf_t *cf,
    ngx_http_engagement_limit_rule_t *rule)
{
    const char  *missing;

    missing = NULL;

    if (rule->zone_name.len == 0) {
        missing = "\"zone=\" is required";

    } else if (rule->key.value.len == 0) {
        missing = "\"key=\" is required, e.g. key=$binary_remote_addr";

    } else if (rule->rate == 0) {
        missing = "\"rate=\" is required, e.g. rate=10r/s";
    }

    if (missing) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "engagement_limit: %s",
                           missing);
        return NGX_ERROR;
    }

    /* bucket times are 32-bit milliseconds: a bucket must drain sooner */
    if ((uint64_t) (rule->burst + NGX_HTTP_ENGAGEMENT_LIMIT_ONE)
        * rule->period / rule->rate
        > NGX_MAX_INT32_VALUE)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_limit: burst=%ui at this rate would "
                           "take over 24 days to drain; use a higher rate or "
                           "a smaller burst",
                           rule->burst / NGX_HTTP_ENGAGEMENT_LIMIT_ONE);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The rule joins its location's list and the module's (whose rules find
 * their zones once the http block is read, so any order works).
 */

static ngx_int_t
ngx_http_engagement_limit_rule_add(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *elcf,
    ngx_http_engagement_limit_rule_t *rule)
{
    ngx_http_engagement_limit_conf_t   *lcf;
    ngx_http_engagement_limit_rule_t  **loc, **all;

    if (elcf->limits == NGX_CONF_UNSET_PTR) {
        elcf->limits = ngx_array_create(cf->pool, 2, sizeof(void *));
        if (elcf->limits == NULL) {
            return NGX_ERROR;
        }
    }

    if (elcf->limits->nelts == NGX_HTTP_ENGAGEMENT_LIMITS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "at most %d engagement_limit rules per location",
                           NGX_HTTP_ENGAGEMENT_LIMITS);
        return NGX_ERROR;
    }

    rule->file = cf->conf_file->file.name.data;
    rule->line = cf->conf_file->line;

    lcf = ngx_http_engagement_limit_conf(cf);
    if (lcf == NULL) {
        return NGX_ERROR;
    }

    loc = ngx_array_push(elcf->limits);
    all = ngx_array_push(&lcf->rules);

    if (loc == NULL || all == NULL) {
        return NGX_ERROR;
    }

    *loc = rule;
    *all = rule;

    return NGX_OK;
}


/* engagement_limit zone=name key=$var rate=Nr/s|Nr/m [burst=N] [dry_run]; */

char *
ngx_http_engagement_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_int_t                          rc;
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_engagement_limit_rule_t  *rule;

    value = cf->args->elts;

    rule = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_limit_rule_t));
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        rc = ngx_http_engagement_limit_param(cf, rule, &value[i]);

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_limit: invalid parameter \"%V\"",
                               &value[i]);
        }

        if (rc != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_engagement_limit_rule_check(cf, rule) != NGX_OK
        || ngx_http_engagement_limit_rule_add(cf, elcf, rule) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * After the http block: each rule finds its zone, and each zone learns how
 * long a bucket may sit idle before it is empty for every rule that uses
 * it (the full burst plus one request, leaked at the slowest rate).
 */

ngx_int_t
ngx_http_engagement_limit_postconf(ngx_conf_t *cf)
{
    ngx_msec_t                           idle;
    ngx_uint_t                           i;
    ngx_http_engagement_limit_conf_t    *lcf;
    ngx_http_engagement_limit_rule_t   **rp, *rule;
    ngx_http_engagement_main_conf_t     *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);
    lcf = emcf->limit;

    if (lcf == NULL) {
        return NGX_OK;
    }

    rp = lcf->rules.elts;

    for (i = 0; i < lcf->rules.nelts; i++) {
        rule = rp[i];
        rule->zone = ngx_http_engagement_limit_zone_find(lcf,
                                                         &rule->zone_name);

        if (rule->zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "engagement_limit: unknown engagement_limit_zone "
                          "\"%V\" in %s:%ui", &rule->zone_name, rule->file,
                          rule->line);
            return NGX_ERROR;
        }

        /* in 64 bits: burst times a minute's period overflows 32 */
        idle = (ngx_msec_t) ((uint64_t) (rule->burst
                                         + NGX_HTTP_ENGAGEMENT_LIMIT_ONE)
                             * rule->period
                             / (NGX_HTTP_ENGAGEMENT_LIMIT_ONE * rule->rate))
               + 1;

        if (idle > rule->zone->max_idle) {
            rule->zone->max_idle = idle;
        }
    }

    return NGX_OK;
}
