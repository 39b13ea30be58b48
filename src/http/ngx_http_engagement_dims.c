
/*
 * The dimensions of an event (channel, category, source, device,
 * country): the directives that give them from the configuration
 * (engagement_dimension, engagement_dimension_limit), and the resolve
 * step a view or an interaction goes through right after its body is
 * parsed, before the rate limits and the policy:
 *
 *   - "source" and "device" in the body must be of their closed sets
 *     (input/ngx_http_engagement_dimension.c), else a 400 names the field;
 *   - a value the configuration gives (a complex value, e.g. a map on
 *     $engagement_content_id) wins over the body's when it is non-empty
 *     and valid (the id rule; the closed sets; two letters for a country,
 *     which only the configuration gives); an invalid one is ignored;
 *   - a device neither the configuration nor the body gives is read from
 *     the User-Agent;
 *   - a category, or a channel, the edge's table has no place for
 *     becomes "other" (store/ngx_http_engagement_dims.c).
 *
 * Also the figures of the dimensions in the status answer.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_dims.h"
#include "http/ngx_http_engagement_http.h"


static ngx_str_t  ngx_http_engagement_dim_names[] = {
    ngx_string("country"),
    ngx_string("channel"),
    ngx_string("category"),
    ngx_string("device"),
    ngx_string("source")
};


static ngx_str_t  ngx_http_engagement_category_other = ngx_string("other");


/*
 * A worker's memo of the User-Agents it classified: the class by a 64-bit
 * hash of the string (a request's own User-Agent is mostly one the worker
 * saw before: the memo costs about a tenth of a classification). Two
 * strings with one hash would share a class: a client could get no more
 * than it gets by sending "device" itself.
 */
#define NGX_HTTP_ENGAGEMENT_UA_MEMO  1024      /* a power of two */

static uint64_t  ngx_http_engagement_ua_memo_key[NGX_HTTP_ENGAGEMENT_UA_MEMO];
static u_char    ngx_http_engagement_ua_memo_class[NGX_HTTP_ENGAGEMENT_UA_MEMO];


/* a fast hash of a string, 8 bytes a step; never 0 (0: an empty place) */
static uint64_t
ngx_http_engagement_ua_hash(const u_char *p, size_t len)
{
    size_t    i;
    uint64_t  h, w;

    h = (uint64_t) len * 0x9e3779b97f4a7c15ULL;

    for (i = 0; i + 8 <= len; i += 8) {
        ngx_memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }

    if (i < len) {
        w = 0;
        ngx_memcpy(&w, p + i, len - i);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
    }

    return h | 1;
}


static ngx_http_engagement_device_e
ngx_http_engagement_ua_device(ngx_http_request_t *r)
{
    size_t                        len;
    u_char                       *ua;
    uint64_t                      h;
    ngx_uint_t                    slot;
    ngx_http_engagement_device_e  d;

    if (r->headers_in.user_agent == NULL) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_OTHER;
    }

    ua = r->headers_in.user_agent->value.data;
    len = r->headers_in.user_agent->value.len;

    /* the classifier reads no further */
    if (len > NGX_HTTP_ENGAGEMENT_UA_SCAN) {
        len = NGX_HTTP_ENGAGEMENT_UA_SCAN;
    }

    h = ngx_http_engagement_ua_hash(ua, len);
    slot = (ngx_uint_t) (h >> 40) & (NGX_HTTP_ENGAGEMENT_UA_MEMO - 1);

    if (ngx_http_engagement_ua_memo_key[slot] == h) {
        return ngx_http_engagement_ua_memo_class[slot];
    }

    d = ngx_http_engagement_device_classify(ua, len);

    ngx_http_engagement_ua_memo_key[slot] = h;
    ngx_http_engagement_ua_memo_class[slot] = (u_char) d;

    return d;
}


ngx_http_engagement_dims_conf_t *
ngx_http_engagement_dims_conf_get(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t  *emcf;
    ngx_http_engagement_dims_conf_t  *dc;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->dims) {
        return emcf->dims;
    }

    dc = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_dims_conf_t));
    if (dc == NULL) {
        return NULL;
    }

    dc->category_max = NGX_CONF_UNSET_UINT;
    dc->category_idle = NGX_CONF_UNSET;
    dc->channel_max = NGX_CONF_UNSET_UINT;

    emcf->dims = dc;

    return dc;
}


/* engagement_dimension country|channel|category|device|source <value>; */

char *
ngx_http_engagement_dimension_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_engagement_loc_conf_t *elcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_DIMS; i++) {
        if (ngx_http_engagement_dim_names[i].len == value[1].len
            && ngx_strncmp(ngx_http_engagement_dim_names[i].data,
                           value[1].data, value[1].len) == 0)
        {
            break;
        }
    }

    if (i == NGX_HTTP_ENGAGEMENT_DIMS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown dimension \"%V\" in \"%V\": expected "
                           "country, channel, category, device or source",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (elcf->dims[i]) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V %V\" is duplicate", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    if (value[2].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty value of \"%V %V\"", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    elcf->dims[i] = cv;

    return NGX_CONF_OK;
}


/* engagement_dimension_limit <categories> [idle=<time>] [channels=<n>]; */

char *
ngx_http_engagement_dimension_limit_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_int_t                         n;
    ngx_str_t                        *value, s;
    ngx_uint_t                        i;
    ngx_http_engagement_dims_conf_t  *dc;

    dc = ngx_http_engagement_dims_conf_get(cf);
    if (dc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (dc->category_max != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n < 1 || n > NGX_HTTP_ENGAGEMENT_CATEGORY_MAX_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" of \"%V\": the number of "
                           "categories must be between 1 and %d",
                           &value[1], &cmd->name,
                           NGX_HTTP_ENGAGEMENT_CATEGORY_MAX_MAX);
        return NGX_CONF_ERROR;
    }

    dc->category_max = (ngx_uint_t) n;

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len > 5
            && ngx_strncmp(value[i].data, "idle=", 5) == 0
            && dc->category_idle == NGX_CONF_UNSET)
        {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            dc->category_idle = ngx_parse_time(&s, 1);

            if (dc->category_idle == (time_t) NGX_ERROR
                || dc->category_idle < 1)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid idle time \"%V\" of \"%V\": a "
                                   "positive time in seconds or more, e.g. 1h",
                                   &s, &cmd->name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len > 9
            && ngx_strncmp(value[i].data, "channels=", 9) == 0
            && dc->channel_max == NGX_CONF_UNSET_UINT)
        {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);

            if (n < 1 || n > NGX_HTTP_ENGAGEMENT_CHANNEL_MAX_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" of \"%V\": the "
                                   "number of channels must be between 1 "
                                   "and %d", &value[i], &cmd->name,
                                   NGX_HTTP_ENGAGEMENT_CHANNEL_MAX_MAX);
                return NGX_CONF_ERROR;
            }

            dc->channel_max = (ngx_uint_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" of \"%V\": expected "
                           "idle=<time> or channels=<number>, each once",
                           &value[i], &cmd->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * At merge: the values a location inherits; a location taking views or
 * interactions makes sure the dimensions zone exists.
 */

char *
ngx_http_engagement_dims_merge(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *prev, ngx_http_engagement_loc_conf_t *conf)
{
    ngx_uint_t                        i;
    ngx_http_engagement_dims_conf_t  *dc;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_DIMS; i++) {
        if (conf->dims[i] == NULL) {
            conf->dims[i] = prev->dims[i];
        }
    }

    if (conf->endpoint != NGX_HTTP_ENGAGEMENT_VIEW
        && conf->endpoint != NGX_HTTP_ENGAGEMENT_EVENT)
    {
        return NGX_CONF_OK;
    }

    dc = ngx_http_engagement_dims_conf_get(cf);
    if (dc == NULL) {
        return NGX_CONF_ERROR;
    }

    if (conf->endpoint == NGX_HTTP_ENGAGEMENT_EVENT
        && (dc->interactions == NULL || dc->interactions->nelts == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement event\" needs the interactions "
                           "it takes declared: \"engagement_interaction "
                           "<name> ...;\" in the http block");
        return NGX_CONF_ERROR;
    }

    if (dc->zone) {
        return NGX_CONF_OK;
    }

    ngx_conf_init_uint_value(dc->category_max,
                             NGX_HTTP_ENGAGEMENT_CATEGORY_MAX);
    ngx_conf_init_value(dc->category_idle, NGX_HTTP_ENGAGEMENT_CATEGORY_IDLE);
    ngx_conf_init_uint_value(dc->channel_max, NGX_HTTP_ENGAGEMENT_CHANNEL_MAX);

    if (ngx_http_engagement_dims_zone(cf, dc) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a configured value, evaluated; an empty string when it is not set */

static ngx_int_t
ngx_http_engagement_dim_value(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_uint_t dim, ngx_str_t *v)
{
    v->len = 0;
    v->data = NULL;

    if (elcf->dims[dim] == NULL) {
        return NGX_OK;
    }

    return ngx_http_complex_value(r, elcf->dims[dim], v);
}


/* a source or device of the body: of the closed set, or *field is set */

static ngx_int_t
ngx_http_engagement_dims_body(ngx_http_engagement_event_t *ev,
    const char **field)
{
    const ngx_str_t  *s;

    if (ev->source.len) {
        s = ngx_http_engagement_source_find(ev->source.data, ev->source.len);

        if (s == NULL) {
            *field = "source";
            return NGX_DECLINED;
        }

        ev->source = *s;
    }

    if (ev->device.len) {
        s = ngx_http_engagement_device_find(ev->device.data, ev->device.len);

        if (s == NULL) {
            *field = "device";
            return NGX_DECLINED;
        }

        ev->device = *s;
    }

    return NGX_OK;
}


/* the configuration's values over the body's, where they are valid */

static ngx_int_t
ngx_http_engagement_dims_config(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    ngx_http_engagement_dims_conf_t *dc)
{
    u_char           *cc;
    ngx_str_t         v;
    const ngx_str_t  *s;

    if (ngx_http_engagement_dim_value(r, elcf, NGX_HTTP_ENGAGEMENT_DIM_CHANNEL,
                                      &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (v.len && ngx_http_engagement_id_valid(v.data, v.len)) {
        ev->channel_id = v;
    }

    if (ngx_http_engagement_dim_value(r, elcf,
                                      NGX_HTTP_ENGAGEMENT_DIM_CATEGORY, &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (v.len && ngx_http_engagement_id_valid(v.data, v.len)) {
        ev->category = v;
    }

    if (ngx_http_engagement_dim_value(r, elcf, NGX_HTTP_ENGAGEMENT_DIM_SOURCE,
                                      &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    s = v.len ? ngx_http_engagement_source_find(v.data, v.len) : NULL;

    if (s) {
        ev->source = *s;
    }

    if (ngx_http_engagement_dim_value(r, elcf, NGX_HTTP_ENGAGEMENT_DIM_DEVICE,
                                      &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    s = v.len ? ngx_http_engagement_device_find(v.data, v.len) : NULL;

    if (s) {
        ev->device = *s;
    }

    if (elcf->dims[NGX_HTTP_ENGAGEMENT_DIM_COUNTRY] == NULL) {
        return NGX_OK;
    }

    if (ngx_http_engagement_dim_value(r, elcf, NGX_HTTP_ENGAGEMENT_DIM_COUNTRY,
                                      &v)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cc = ngx_pnalloc(r->pool, 2);
    if (cc == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_country_form(cc, v.data, v.len) == NGX_OK) {
        ev->country.data = cc;
        ev->country.len = 2;

    } else if (dc && dc->sh) {
        ngx_http_engagement_dims_inc(dc, country_missing);
    }

    return NGX_OK;
}


/*
 * The event's dimensions, resolved: NGX_OK; NGX_DECLINED: a field of the
 * body is not of its closed set (*field names it, for a 400); NGX_ERROR.
 */

ngx_int_t
ngx_http_engagement_dims_resolve(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    const char **field)
{
    ngx_http_engagement_device_e      d;
    ngx_http_engagement_main_conf_t  *emcf;
    ngx_http_engagement_dims_conf_t  *dc;

    if (ngx_http_engagement_dims_body(ev, field) != NGX_OK) {
        return NGX_DECLINED;
    }

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);
    dc = emcf->dims;

    /* a map on $engagement_content_id reads the event's id */
    ngx_http_engagement_set_ids(r, &ev->content_id, &ev->viewer_id,
                                &ev->session_id);

    if (ngx_http_engagement_dims_config(r, elcf, ev, dc) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ev->device.len == 0) {
        d = ngx_http_engagement_ua_device(r);
        ev->device = ngx_http_engagement_devices[d];

        if (dc && dc->sh) {
            ngx_http_engagement_dims_inc(dc, device_agent);
        }
    }

    if (ev->category.len && dc && dc->sh
        && !ngx_http_engagement_category_admit(dc, &ev->category,
                                               ngx_time()))
    {
        ev->category = ngx_http_engagement_category_other;
        ngx_http_engagement_dims_inc(dc, category_folded);
    }

    if (ev->channel_id.len && dc && dc->sh
        && !ngx_http_engagement_channel_admit(dc, &ev->channel_id,
                                              ngx_time()))
    {
        ev->channel_id = ngx_http_engagement_category_other;
        ngx_http_engagement_dims_inc(dc, channel_folded);
    }

    return NGX_OK;
}


/* the 400 of a field resolve() refused */

ngx_int_t
ngx_http_engagement_dims_refuse(ngx_http_request_t *r, const char *field)
{
    ngx_http_engagement_set_outcome(r, "invalid", field, NULL);

    return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
               "invalid_field", field,
               field[0] == 's'
               ? "must be one of " NGX_HTTP_ENGAGEMENT_SOURCE_LIST
               : "must be one of " NGX_HTTP_ENGAGEMENT_DEVICE_LIST);
}


/* the dimensions' figures in the status answer */

#define ngx_http_engagement_dims_field(f)                                     \
    offsetof(ngx_http_engagement_dims_stats_t, f)

static ngx_http_engagement_stat_row_t  ngx_http_engagement_dims_rows[] = {
    { "category_values", "categoryValues", NULL, "gauge",
      "Distinct categories in the edge's table (engagement_dimension_limit)",
      ngx_http_engagement_dims_field(category_values) },
    { "category_folded_total", "categoryFolded", NULL, "counter",
      "Events whose category found no place in the table: passed on as "
      "\"other\"",
      ngx_http_engagement_dims_field(category_folded) },
    { "device_from_agent_total", "deviceFromAgent", NULL, "counter",
      "Events whose device class was read from the User-Agent",
      ngx_http_engagement_dims_field(device_agent) },
    { "country_missing_total", "countryMissing", NULL, "counter",
      "Events where engagement_dimension country gave no two-letter code",
      ngx_http_engagement_dims_field(country_missing) },
    { "channel_values", "channelValues", NULL, "gauge",
      "Distinct channels in the edge's table (engagement_dimension_limit "
      "channels=)",
      ngx_http_engagement_dims_field(channel_values) },
    { "channel_folded_total", "channelFolded", NULL, "counter",
      "Events whose channel found no place in the table: passed on as "
      "\"other\"",
      ngx_http_engagement_dims_field(channel_folded) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


size_t
ngx_http_engagement_dims_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_dims_conf_t  *dc;

    dc = emcf->dims;

    if (dc == NULL || dc->sh == NULL) {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("dimension",
                                             ngx_http_engagement_dims_rows);
}


u_char *
ngx_http_engagement_dims_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_http_engagement_dims_conf_t  *dc;

    dc = emcf->dims;

    if (dc == NULL || dc->sh == NULL) {
        return p;
    }

    return ngx_http_engagement_stat_rows(p, "dimension",
                                         ngx_http_engagement_dims_rows,
                                         &dc->sh->stats, json,
                                         (size_t) -1, 0);
}
