
/*
 * The engagement_writer directive (its parameters by a table), the edge
 * id the lines carry, and the queue zone's creation or reuse. The
 * upstream's host is resolved here, once: no blocking lookup ever runs in
 * a worker.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


/* the least queue zone and spool cap (in k), the most events a batch holds */
#define NGX_HTTP_ENGAGEMENT_WRITER_ZONE_MIN_K   64
#define NGX_HTTP_ENGAGEMENT_WRITER_SPOOL_MIN_K  4
#define NGX_HTTP_ENGAGEMENT_WRITER_BATCH_MAX    100000
/* the spool path leaves this much of NGX_MAX_PATH to its file names */
#define NGX_HTTP_ENGAGEMENT_WRITER_NAME_ROOM    400


/* how a parameter's value is read */
typedef enum {
    NGX_HTTP_ENGAGEMENT_WP_ZONE = 0,   /* name:size, the size a size_t */
    NGX_HTTP_ENGAGEMENT_WP_NUMBER,     /* ngx_uint_t */
    NGX_HTTP_ENGAGEMENT_WP_OFFSET,     /* off_t, a size */
    NGX_HTTP_ENGAGEMENT_WP_MSEC,       /* ngx_msec_t, a time */
    NGX_HTTP_ENGAGEMENT_WP_PATH,       /* ngx_str_t, not empty */
    NGX_HTTP_ENGAGEMENT_WP_POOL,       /* ngx_str_t, a thread pool or off */
    NGX_HTTP_ENGAGEMENT_WP_CHECK,      /* ngx_str_t, /path?query */
    NGX_HTTP_ENGAGEMENT_WP_NAME        /* ngx_str_t, [A-Za-z0-9_.-]{1,64} */
} ngx_http_engagement_writer_value_e;


typedef struct {
    ngx_str_t                             name;    /* with its '=' */
    ngx_http_engagement_writer_value_e    type;
    size_t                                offset;  /* in the writer's conf */
    off_t                                 min;     /* a number's range */
    off_t                                 max;
    const char                           *error;   /* when out of range */
} ngx_http_engagement_writer_param_t;


static ngx_http_engagement_writer_conf_t *ngx_http_engagement_writer_create(
    ngx_conf_t *cf);
static ngx_int_t ngx_http_engagement_writer_param(ngx_conf_t *cf,
    ngx_http_engagement_writer_conf_t *wcf, ngx_str_t *arg);
static void ngx_http_engagement_writer_store(
    ngx_http_engagement_writer_value_e type, void *field, off_t n);
static ngx_int_t ngx_http_engagement_writer_set_pool(ngx_conf_t *cf,
    ngx_str_t *arg, ngx_str_t *v, ngx_str_t *pool);
static ngx_int_t ngx_http_engagement_writer_set_check(ngx_conf_t *cf,
    ngx_str_t *arg, ngx_str_t *v, ngx_str_t *check);
static ngx_uint_t ngx_http_engagement_writer_url_safe(ngx_str_t *s);
static char *ngx_http_engagement_writer_add_zone(ngx_conf_t *cf,
    ngx_http_engagement_writer_conf_t *wcf);
static ngx_int_t ngx_http_engagement_writer_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


#define ngx_http_engagement_writer_param_entry(name, type, field, min, max,  \
                                               error)                         \
    { ngx_string(name), NGX_HTTP_ENGAGEMENT_WP_##type,                        \
      offsetof(ngx_http_engagement_writer_conf_t, field), min, max, error }

#define ngx_http_engagement_writer_time(name, field)                          \
    ngx_http_engagement_writer_param_entry(name, MSEC, field, 1,              \
        NGX_MAX_INT_T_VALUE, "a positive time is expected")

static ngx_http_engagement_writer_param_t  ngx_http_engagement_writer_params[]
    = {
    ngx_http_engagement_writer_param_entry("zone=", ZONE, zone_size,
        NGX_HTTP_ENGAGEMENT_WRITER_ZONE_MIN_K * 1024, NGX_MAX_OFF_T_VALUE,
        "the zone size must be at least "
        ngx_value(NGX_HTTP_ENGAGEMENT_WRITER_ZONE_MIN_K) "k"),
    ngx_http_engagement_writer_param_entry("batch=", NUMBER, batch, 1,
        NGX_HTTP_ENGAGEMENT_WRITER_BATCH_MAX,
        "batch must be between 1 and "
        ngx_value(NGX_HTTP_ENGAGEMENT_WRITER_BATCH_MAX)),
    ngx_http_engagement_writer_param_entry("spool=", PATH, spool, 0, 0,
        NULL),
    ngx_http_engagement_writer_param_entry("thread_pool=", POOL,
        thread_pool, 0, 0, NULL),
    ngx_http_engagement_writer_param_entry("check=", CHECK, check, 0, 0,
        NULL),
    ngx_http_engagement_writer_param_entry("id_param=", NAME, id_param, 0,
        0, NULL),
    ngx_http_engagement_writer_param_entry("spool_max=", OFFSET, spool_max,
        NGX_HTTP_ENGAGEMENT_WRITER_SPOOL_MIN_K * 1024, NGX_MAX_OFF_T_VALUE,
        "spool_max must be at least "
        ngx_value(NGX_HTTP_ENGAGEMENT_WRITER_SPOOL_MIN_K) "k"),
    ngx_http_engagement_writer_time("interval=", interval),
    ngx_http_engagement_writer_time("connect_timeout=", connect_timeout),
    ngx_http_engagement_writer_time("timeout=", timeout),
    ngx_http_engagement_writer_time("retry=", retry),
    { ngx_null_string, 0, 0, 0, 0, NULL }
};

#undef ngx_http_engagement_writer_time
#undef ngx_http_engagement_writer_param_entry


/*
 * engagement_writer http://host[:port]/path?query [zone=name:size]
 *     [batch=N] [interval=T] [connect_timeout=T] [timeout=T] [retry=T]
 *     [spool=dir] [spool_max=size] [thread_pool=name|off] [check=/path]
 *     [id_param=name];
 */

char *
ngx_http_engagement_writer_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_main_conf_t *emcf = conf;

    ngx_int_t                           rc;
    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_engagement_writer_conf_t  *wcf;

    if (emcf->writer) {
        return "is duplicate";
    }

    value = cf->args->elts;

    wcf = ngx_http_engagement_writer_create(cf);
    if (wcf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_http_url(cf, "engagement_writer", &value[1],
                                     &wcf->addr, &wcf->host, &wcf->uri)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    wcf->url = value[1];

    for (i = 2; i < cf->args->nelts; i++) {
        rc = ngx_http_engagement_writer_param(cf, wcf, &value[i]);

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of engagement_writer",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    /* a batch's request head (the URL, the batch id in it and in its
     * header, the fixed lines) is made in a buffer of WRITER_HEAD bytes */
    if (wcf->uri.len + wcf->host.len + wcf->id_param.len
        + 2 * NGX_HTTP_ENGAGEMENT_BATCH_ID_LEN + 256
        > NGX_HTTP_ENGAGEMENT_WRITER_HEAD)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: the URL is too long (a "
                           "request head must fit in %uz bytes)",
                           (size_t) NGX_HTTP_ENGAGEMENT_WRITER_HEAD);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_writer_add_zone(cf, wcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    wcf->edge = emcf->edge_id;   /* set again by writer_init_conf */
    emcf->writer = wcf;

    return NGX_CONF_OK;
}


/* a configuration with the defaults the README documents */

static ngx_http_engagement_writer_conf_t *
ngx_http_engagement_writer_create(ngx_conf_t *cf)
{
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_writer_conf_t));
    if (wcf == NULL) {
        return NULL;
    }

    wcf->batch = 1000;
    wcf->interval = 1000;
    wcf->connect_timeout = 1000;
    wcf->timeout = 5000;
    wcf->retry = 1000;
    wcf->spool_max = 256 * 1024 * 1024;
    wcf->zone_size = 16 * 1024 * 1024;
    ngx_str_set(&wcf->zone_name, "engagement_writer");
    ngx_str_set(&wcf->spool, "engagement_spool");
#if (NGX_THREADS)
    ngx_str_set(&wcf->thread_pool, "default");
#endif

    return wcf;
}


static ngx_http_engagement_writer_param_t *
ngx_http_engagement_writer_param_find(ngx_str_t *arg)
{
    ngx_http_engagement_writer_param_t  *pm;

    for (pm = ngx_http_engagement_writer_params; pm->name.len; pm++) {
        if (arg->len >= pm->name.len
            && ngx_strncmp(arg->data, pm->name.data, pm->name.len) == 0)
        {
            return pm;
        }
    }

    return NULL;
}


/*
 * One "name=value" parameter by the table: NGX_OK, NGX_ERROR (logged),
 * NGX_DECLINED (not a parameter, or not a value it takes).
 */

static ngx_int_t
ngx_http_engagement_writer_param(ngx_conf_t *cf,
    ngx_http_engagement_writer_conf_t *wcf, ngx_str_t *arg)
{
    u_char                              *p;
    off_t                                n;
    void                                *field;
    ngx_str_t                            v;
    ngx_http_engagement_writer_param_t  *pm;

    pm = ngx_http_engagement_writer_param_find(arg);
    if (pm == NULL) {
        return NGX_DECLINED;
    }

    v.data = arg->data + pm->name.len;
    v.len = arg->len - pm->name.len;
    field = (char *) wcf + pm->offset;

    switch (pm->type) {

    case NGX_HTTP_ENGAGEMENT_WP_ZONE:
        p = ngx_strlchr(v.data, v.data + v.len, ':');
        if (p == NULL || p == v.data) {
            return NGX_DECLINED;
        }

        wcf->zone_name.data = v.data;
        wcf->zone_name.len = p - v.data;

        v.len = v.data + v.len - (p + 1);
        v.data = p + 1;
        n = ngx_parse_size(&v);
        break;

    case NGX_HTTP_ENGAGEMENT_WP_NUMBER:
        n = ngx_atoi(v.data, v.len);
        break;

    case NGX_HTTP_ENGAGEMENT_WP_OFFSET:
        n = ngx_parse_offset(&v);
        break;

    case NGX_HTTP_ENGAGEMENT_WP_MSEC:
        n = ngx_parse_time(&v, 0);
        break;

    case NGX_HTTP_ENGAGEMENT_WP_POOL:
        return ngx_http_engagement_writer_set_pool(cf, arg, &v, field);

    case NGX_HTTP_ENGAGEMENT_WP_CHECK:
        return ngx_http_engagement_writer_set_check(cf, arg, &v, field);

    case NGX_HTTP_ENGAGEMENT_WP_NAME:
        if (v.len == 0 || v.len > 64) {
            return NGX_DECLINED;
        }

        for (p = v.data; p < v.data + v.len; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                  || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.'
                  || *p == '-'))
            {
                return NGX_DECLINED;
            }
        }

        *(ngx_str_t *) field = v;
        return NGX_OK;

    default: /* NGX_HTTP_ENGAGEMENT_WP_PATH */
        if (v.len == 0) {
            return NGX_DECLINED;
        }

        *(ngx_str_t *) field = v;
        return NGX_OK;
    }

    if (n == NGX_ERROR || n < pm->min || n > pm->max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: %s in \"%V\"", pm->error, arg);
        return NGX_ERROR;
    }

    ngx_http_engagement_writer_store(pm->type, field, n);

    return NGX_OK;
}


/* a number into its setting, by the setting's type */

static void
ngx_http_engagement_writer_store(ngx_http_engagement_writer_value_e type,
    void *field, off_t n)
{
    switch (type) {

    case NGX_HTTP_ENGAGEMENT_WP_ZONE:
        *(size_t *) field = (size_t) n;
        break;

    case NGX_HTTP_ENGAGEMENT_WP_NUMBER:
        *(ngx_uint_t *) field = (ngx_uint_t) n;
        break;

    case NGX_HTTP_ENGAGEMENT_WP_OFFSET:
        *(off_t *) field = n;
        break;

    default: /* NGX_HTTP_ENGAGEMENT_WP_MSEC */
        *(ngx_msec_t *) field = (ngx_msec_t) n;
        break;
    }
}


/* thread_pool=name, or off: the worker writes the spool itself */

static ngx_int_t
ngx_http_engagement_writer_set_pool(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_str_t *v, ngx_str_t *pool)
{
    if (v->len == 0) {
        return NGX_DECLINED;
    }

    *pool = *v;

    if (pool->len == 3 && ngx_strncmp(pool->data, "off", 3) == 0) {
        pool->len = 0;
    }

#if !(NGX_THREADS)
    if (pool->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: \"%V\" needs an nginx built "
                           "--with-threads", arg);
        return NGX_ERROR;
    }
#endif

    return NGX_OK;
}


/* check=/path?query on the same upstream */

static ngx_int_t
ngx_http_engagement_writer_set_check(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_str_t *v, ngx_str_t *check)
{
    if (v->len == 0 || v->data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: check must be a path (and "
                           "query) on the same upstream, starting with "
                           "\"/\", in \"%V\"", arg);
        return NGX_ERROR;
    }

    if (!ngx_http_engagement_writer_url_safe(v)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: check must be URL-encoded "
                           "in \"%V\"", arg);
        return NGX_ERROR;
    }

    *check = *v;

    return NGX_OK;
}


/*
 * An upstream URL of one of our HTTP clients (the writer, the milestone
 * webhook): http:// only, resolved now; its address, the Host header and
 * the path (with the query) as it goes into the request line. The errors
 * name the directive.
 */

char *
ngx_http_engagement_http_url(ngx_conf_t *cf, const char *name,
    ngx_str_t *url, ngx_addr_t *addr, ngx_str_t *host, ngx_str_t *uri)
{
    size_t     i;
    ngx_url_t  u;

    if (url->len >= 8
        && ngx_strncasecmp(url->data, (u_char *) "https://", 8) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s \"%V\": https is not supported (the client "
                           "has no TLS); use http://, e.g. to a local TLS "
                           "proxy", name, url);
        return NGX_CONF_ERROR;
    }

    if (url->len <= 7
        || ngx_strncasecmp(url->data, (u_char *) "http://", 7) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s \"%V\": an http:// URL is expected", name, url);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = url->data + 7;
    u.url.len = url->len - 7;
    u.default_port = 80;
    u.uri_part = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s \"%V\": %s", name, url,
                           u.err ? u.err : "host not found");
        return NGX_CONF_ERROR;
    }

    *addr = u.addrs[0];
    *host = u.host;

    if (u.port != 80) {
        host->data = ngx_pnalloc(cf->pool, u.host.len + 1 + NGX_INT_T_LEN);
        if (host->data == NULL) {
            return NGX_CONF_ERROR;
        }

        host->len = ngx_sprintf(host->data, "%V:%d", &u.host, u.port)
                    - host->data;
    }

    if (u.uri.len) {
        *uri = u.uri;

    } else {
        ngx_str_set(uri, "/");
    }

    for (i = 0; i < uri->len; i++) {
        if (uri->data[i] <= ' ' || uri->data[i] >= 0x7f
            || uri->data[i] == '#')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s \"%V\": the path must be URL-encoded, "
                               "without a fragment (%%20 for a space)",
                               name, url);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* a path and query that go into a request line as they are */

static ngx_uint_t
ngx_http_engagement_writer_url_safe(ngx_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] <= ' ' || s->data[i] >= 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* the spool's full path, its thread pool, and the queue zone */

static char *
ngx_http_engagement_writer_add_zone(ngx_conf_t *cf,
    ngx_http_engagement_writer_conf_t *wcf)
{
    if (ngx_conf_full_name(cf->cycle, &wcf->spool, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (wcf->spool.len > NGX_MAX_PATH - NGX_HTTP_ENGAGEMENT_WRITER_NAME_ROOM) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: the spool path is too long");
        return NGX_CONF_ERROR;
    }

#if (NGX_THREADS)
    /* the pool spool writes run in, made if nginx.conf has no such pool */
    if (wcf->thread_pool.len
        && ngx_thread_pool_add(cf, &wcf->thread_pool) == NULL)
    {
        return NGX_CONF_ERROR;
    }
#endif

    wcf->shm_zone = ngx_shared_memory_add(cf, &wcf->zone_name,
                                          wcf->zone_size,
                                          &ngx_http_engagement_module);
    if (wcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (wcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "engagement_writer: zone \"%V\" is already used",
                           &wcf->zone_name);
        return NGX_CONF_ERROR;
    }

    wcf->cycle = cf->cycle;
    wcf->shm_zone->init = ngx_http_engagement_writer_init_zone;
    wcf->shm_zone->data = wcf;

    return NGX_CONF_OK;
}


/* the edge id is known once the http block is parsed */

void
ngx_http_engagement_writer_init_conf(ngx_http_engagement_main_conf_t *emcf)
{
    if (emcf->writer) {
        emcf->writer->edge = emcf->edge_id;
    }
}


/* what the writer's queue zone keeps, for its layout */
static const size_t  ngx_http_engagement_writer_shape[] = {
    sizeof(ngx_http_engagement_writer_sh_t),
    offsetof(ngx_http_engagement_writer_sh_t, pending),
    offsetof(ngx_http_engagement_writer_sh_t, inflight),
    offsetof(ngx_http_engagement_writer_sh_t, batch_seq),
    offsetof(ngx_http_engagement_writer_sh_t, created_ms),
    offsetof(ngx_http_engagement_writer_sh_t, event_seq),
    offsetof(ngx_http_engagement_writer_sh_t, down_until),
    offsetof(ngx_http_engagement_writer_sh_t, last_full_log),
    offsetof(ngx_http_engagement_writer_sh_t, cycle_gen),
    sizeof(ngx_http_engagement_wevent_t),
    offsetof(ngx_http_engagement_wevent_t, link),
    offsetof(ngx_http_engagement_wevent_t, batch),
    offsetof(ngx_http_engagement_wevent_t, pid),
    offsetof(ngx_http_engagement_wevent_t, len),
    offsetof(ngx_http_engagement_wevent_t, size),
    offsetof(ngx_http_engagement_wevent_t, data)
};


static ngx_int_t
ngx_http_engagement_writer_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_engagement_writer_conf_t  *owcf = data;

    uint32_t                            layout;
    ngx_time_t                         *tp;
    ngx_slab_pool_t                    *shpool;
    ngx_http_engagement_writer_sh_t    *sh;
    ngx_http_engagement_writer_conf_t  *wcf;

    wcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    wcf->shpool = shpool;
    layout = ngx_http_engagement_layout_of(ngx_http_engagement_writer_shape);

    if (owcf || shm_zone->shm.exists) {
        sh = owcf ? owcf->sh : shpool->data;

        if (sh == NULL || sh->magic != NGX_HTTP_ENGAGEMENT_WRITER_MAGIC
            || sh->layout != layout)
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "engagement_writer zone \"%V\" was written by an "
                          "incompatible module version (layout %08xD, this "
                          "module uses %08xD); stop and start nginx to "
                          "recreate it", &shm_zone->shm.name,
                          sh ? sh->layout : 0, layout);
            return NGX_ERROR;
        }

        wcf->sh = sh;

        /* a reload: this configuration's workers are a new generation */
        sh->cycle_gen++;

        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_engagement_writer_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_HTTP_ENGAGEMENT_WRITER_MAGIC;
    sh->layout = layout;
    sh->cycle_gen = 1;
    ngx_queue_init(&sh->pending);
    ngx_queue_init(&sh->inflight);

    tp = ngx_timeofday();
    sh->created_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    shpool->data = sh;
    shpool->log_nomem = 0;
    wcf->sh = sh;

    if (ngx_test_config) {
        return NGX_OK;
    }

    /* a new zone is a start: take stock of the spool left by the last run */
    return ngx_http_engagement_spool_init(wcf, shm_zone->shm.log);
}
