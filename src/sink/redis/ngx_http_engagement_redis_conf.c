
/*
 * The engagement_redis directive:
 *   engagement_redis host:port [db=N] [password=secret]
 *                    [connect_timeout=1s] [timeout=1s] [backoff=100ms:5s]
 *                    [buckets=60s] [uniques=10s];
 *   engagement_redis cluster host:port [host:port ...] [password=...]
 *                    [wait=N] [wait_timeout=100ms] [the timeouts above];
 * The host is resolved here, once: no blocking lookup ever runs in a
 * worker. The optional parameters are a table of name=value setters. In
 * the cluster form every host:port is a seed (any node of the cluster,
 * the slot map is read from it); db= is refused (a cluster has db 0
 * only); wait=N makes every write wait for N replicas (see cluster.c).
 */


#include "sink/redis/ngx_http_engagement_redis.h"


#define NGX_HTTP_ENGAGEMENT_REDIS_PORT     6379
#define NGX_HTTP_ENGAGEMENT_REDIS_DB_MAX   1000

/* buckets= and uniques=: their defaults and bound (ms) */
#define NGX_HTTP_ENGAGEMENT_REDIS_BUCKETS       60000
#define NGX_HTTP_ENGAGEMENT_REDIS_UNIQUES       10000
#define NGX_HTTP_ENGAGEMENT_REDIS_INTERVAL_MAX  3600000

/* wait=: replicas a cluster write waits for, at most */
#define NGX_HTTP_ENGAGEMENT_REDIS_WAIT_MAX      16


/* a parameter's value (after "name="): NGX_OK or NGX_ERROR */
typedef ngx_int_t (*ngx_http_engagement_redis_set_pt)(
    ngx_http_engagement_redis_conf_t *rcf, ngx_str_t *value, size_t offset);


typedef struct {
    ngx_str_t                          name;    /* with its "=" */
    ngx_http_engagement_redis_set_pt   set;
    size_t                             offset;
} ngx_http_engagement_redis_param_t;


static ngx_int_t ngx_http_engagement_redis_set_db(
    ngx_http_engagement_redis_conf_t *rcf, ngx_str_t *value, size_t offset);
static ngx_int_t ngx_http_engagement_redis_set_str(
    ngx_http_engagement_redis_conf_t *rcf, ngx_str_t *value, size_t offset);
static ngx_int_t ngx_http_engagement_redis_set_msec(
    ngx_http_engagement_redis_conf_t *rcf, ngx_str_t *value, size_t offset);
static ngx_int_t ngx_http_engagement_redis_set_interval(
    ngx_http_engagement_redis_conf_t *rcf, ngx_str_t *value, size_t offset);
static ngx_int_t ngx_http_engagement_redis_set_backoff(
    ngx_http_engagement_redis_conf_t *rcf, ngx_str_t *value, size_t offset);
static ngx_int_t ngx_http_engagement_redis_set_wait(
    ngx_http_engagement_redis_conf_t *rcf, ngx_str_t *value, size_t offset);


#define ngx_http_engagement_rc(f)                                             \
    offsetof(ngx_http_engagement_redis_conf_t, f)

static ngx_http_engagement_redis_param_t  ngx_http_engagement_redis_params[]
    = {
    { ngx_string("db="), ngx_http_engagement_redis_set_db, 0 },
    { ngx_string("password="), ngx_http_engagement_redis_set_str,
      ngx_http_engagement_rc(password) },
    { ngx_string("connect_timeout="), ngx_http_engagement_redis_set_msec,
      ngx_http_engagement_rc(connect_timeout) },
    { ngx_string("timeout="), ngx_http_engagement_redis_set_msec,
      ngx_http_engagement_rc(timeout) },
    { ngx_string("backoff="), ngx_http_engagement_redis_set_backoff, 0 },
    { ngx_string("buckets="), ngx_http_engagement_redis_set_interval,
      ngx_http_engagement_rc(buckets) },
    { ngx_string("uniques="), ngx_http_engagement_redis_set_interval,
      ngx_http_engagement_rc(uniques) },
    { ngx_string("wait="), ngx_http_engagement_redis_set_wait, 0 },
    { ngx_string("wait_timeout="), ngx_http_engagement_redis_set_msec,
      ngx_http_engagement_rc(wait_timeout) },
    { ngx_null_string, NULL, 0 }
};


static ngx_int_t
ngx_http_engagement_redis_set_db(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *value, size_t offset)
{
    ngx_int_t  n;

    n = ngx_atoi(value->data, value->len);
    if (n == NGX_ERROR || n > NGX_HTTP_ENGAGEMENT_REDIS_DB_MAX) {
        return NGX_ERROR;
    }

    rcf->db = n;

    return NGX_OK;
}


/* wait=N: 0 to NGX_HTTP_ENGAGEMENT_REDIS_WAIT_MAX replicas */

static ngx_int_t
ngx_http_engagement_redis_set_wait(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *value, size_t offset)
{
    ngx_int_t  n;

    n = ngx_atoi(value->data, value->len);
    if (n == NGX_ERROR || n > NGX_HTTP_ENGAGEMENT_REDIS_WAIT_MAX) {
        return NGX_ERROR;
    }

    rcf->wait = n;

    return NGX_OK;
}


/* a string that must not be empty */

static ngx_int_t
ngx_http_engagement_redis_set_str(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *value, size_t offset)
{
    if (value->len == 0) {
        return NGX_ERROR;
    }

    *(ngx_str_t *) ((u_char *) rcf + offset) = *value;

    return NGX_OK;
}


/* a time from min to max ms */

static ngx_int_t
ngx_http_engagement_redis_time(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *value, size_t offset, ngx_int_t min, ngx_int_t max)
{
    ngx_int_t  n;

    n = ngx_parse_time(value, 0);
    if (n == NGX_ERROR || n < min || n > max) {
        return NGX_ERROR;
    }

    *(ngx_msec_t *) ((u_char *) rcf + offset) = (ngx_msec_t) n;

    return NGX_OK;
}


/* a positive time */

static ngx_int_t
ngx_http_engagement_redis_set_msec(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *value, size_t offset)
{
    return ngx_http_engagement_redis_time(rcf, value, offset, 1,
                                          NGX_MAX_INT_T_VALUE);
}


/*
 * How long bucket deltas or viewer hashes may wait in shared memory
 * before a flush writes them: 0 (with every flush) to an hour.
 */

static ngx_int_t
ngx_http_engagement_redis_set_interval(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *value, size_t offset)
{
    return ngx_http_engagement_redis_time(rcf, value, offset, 0,
               NGX_HTTP_ENGAGEMENT_REDIS_INTERVAL_MAX);
}


/* backoff=min:max, both positive, max not below min */

static ngx_int_t
ngx_http_engagement_redis_set_backoff(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *value, size_t offset)
{
    u_char     *p;
    ngx_str_t   s;

    p = ngx_strlchr(value->data, value->data + value->len, ':');
    if (p == NULL) {
        return NGX_ERROR;
    }

    s.data = value->data;
    s.len = p - value->data;

    if (ngx_http_engagement_redis_set_msec(rcf, &s,
            ngx_http_engagement_rc(backoff_min))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    if (ngx_http_engagement_redis_set_msec(rcf, &s,
            ngx_http_engagement_rc(backoff_max))
        != NGX_OK
        || rcf->backoff_max < rcf->backoff_min)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* host:port, resolved now to a numeric TCP address */

static ngx_int_t
ngx_http_engagement_redis_address(ngx_conf_t *cf,
    ngx_http_engagement_redis_addr_t *rcf, ngx_str_t *url)
{
    u_char     *p;
    ngx_url_t   u;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = *url;
    u.default_port = NGX_HTTP_ENGAGEMENT_REDIS_PORT;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_redis \"%V\": %s", &u.url,
                           u.err ? u.err : "host not found");
        return NGX_ERROR;
    }

    if (u.addrs[0].sockaddr->sa_family != AF_INET
#if (NGX_HAVE_INET6)
        && u.addrs[0].sockaddr->sa_family != AF_INET6
#endif
       )
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_redis \"%V\": a TCP address is "
                           "expected", &u.url);
        return NGX_ERROR;
    }

    p = rcf->ip;
    p += ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                       NGX_SOCKADDR_STRLEN, 0);
    *p = '\0';

    /* ngx_sock_ntop brackets IPv6 only with a port; none here */
    rcf->port = u.port;
    rcf->url = *url;

    return NGX_OK;
}


static ngx_int_t
ngx_http_engagement_redis_param(ngx_http_engagement_redis_conf_t *rcf,
    ngx_str_t *arg)
{
    ngx_str_t                           v;
    ngx_http_engagement_redis_param_t  *pm;

    for (pm = ngx_http_engagement_redis_params; pm->set; pm++) {

        if (arg->len < pm->name.len
            || ngx_strncmp(arg->data, pm->name.data, pm->name.len) != 0)
        {
            continue;
        }

        v.data = arg->data + pm->name.len;
        v.len = arg->len - pm->name.len;

        return pm->set(rcf, &v, pm->offset);
    }

    return NGX_ERROR;
}


/*
 * engagement_redis cluster seed [seed ...] [parameters]: the seeds are
 * the arguments without "=", at least one; db= is refused.
 */

static char *
ngx_http_engagement_redis_cluster(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf,
    ngx_http_engagement_redis_conf_t *rcf)
{
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_engagement_redis_addr_t  *seed;

    value = cf->args->elts;

    rcf->cluster = 1;
    rcf->seeds = ngx_array_create(cf->pool, 4,
                                  sizeof(ngx_http_engagement_redis_addr_t));
    if (rcf->seeds == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            == NULL)
        {
            seed = ngx_array_push(rcf->seeds);
            if (seed == NULL) {
                return NGX_CONF_ERROR;
            }

            if (ngx_http_engagement_redis_address(cf, seed, &value[i])
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "engagement_redis cluster: \"%V\" is not "
                               "allowed: a Redis Cluster has database 0 only",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_engagement_redis_param(rcf, &value[i]) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of engagement_redis",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (rcf->seeds->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_redis cluster needs at least one "
                           "host:port of a cluster node");
        return NGX_CONF_ERROR;
    }

    seed = rcf->seeds->elts;
    ngx_memcpy(rcf->ip, seed[0].ip, sizeof(rcf->ip));
    rcf->port = seed[0].port;
    rcf->url = seed[0].url;

    emcf->redis = rcf;

    return NGX_CONF_OK;
}


char *
ngx_http_engagement_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_engagement_redis_addr_t   addr;
    ngx_http_engagement_redis_conf_t  *rcf;

    if (emcf->redis) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->connect_timeout = 1000;
    rcf->timeout = 1000;
    rcf->backoff_min = 100;
    rcf->backoff_max = 5000;
    rcf->buckets = NGX_HTTP_ENGAGEMENT_REDIS_BUCKETS;
    rcf->uniques = NGX_HTTP_ENGAGEMENT_REDIS_UNIQUES;

    rcf->wait_timeout = 100;

    if (value[1].len == 7
        && ngx_strncmp(value[1].data, "cluster", 7) == 0)
    {
        return ngx_http_engagement_redis_cluster(cf, emcf, rcf);
    }

    if (ngx_http_engagement_redis_address(cf, &addr, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(rcf->ip, addr.ip, sizeof(rcf->ip));
    rcf->port = addr.port;
    rcf->url = addr.url;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "wait", 4) == 0
            || ngx_http_engagement_redis_param(rcf, &value[i]) != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of engagement_redis",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    emcf->redis = rcf;

    return NGX_CONF_OK;
}
