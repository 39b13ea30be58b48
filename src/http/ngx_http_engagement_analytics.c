
/*
 * The analytics endpoint: GET /engagement/analytics answers a time series
 * of a content, a channel, a category or the whole deployment, per
 * minute, hour or day, optionally broken down by a dimension, as JSON or
 * CSV. It reads the bucket hashes the flushes write to Redis
 * (eng:{c:<id>}:m:<YYYYMMDDHHMM>, :h:, :d:; {ch:}, {cat:}, {all}): per
 * bucket an HMGET of the metrics and, for a breakdown by=<dim>, per
 * asked metric an HGETALL of the bucket's hash of that dimension and
 * metric (<bucket>:<dim>:<metric>, fields the values), pipelined on
 * the worker's connection; the request waits without blocking the
 * worker and the wait outlives an aborted request. The query is parsed
 * by input/ngx_http_engagement_query.c. A bucket not in Redis counts
 * zero; Redis unavailable: 503, never a guess.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "input/ngx_http_engagement_query.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "http/ngx_http_engagement_http.h"


/* distinct values of a breakdown kept; further ones are added to "other" */
#define NGX_HTTP_ENGAGEMENT_AN_VALUES      256
/* the value table's hash slots (a power of 2, twice the values) */
#define NGX_HTTP_ENGAGEMENT_AN_SLOTS       512

/*
 * a bucket's key, or its hash of a dimension and metric:
 * eng:{cat:<id>}:m:YYYYMMDDHHMM:<dim>:<metric>
 */
#define NGX_HTTP_ENGAGEMENT_AN_KEY_LEN                                        \
    (sizeof("eng:{cat:}:m:YYYYMMDDHHMM:category:")                           \
     + NGX_HTTP_ENGAGEMENT_AQ_ID_MAX + NGX_HTTP_ENGAGEMENT_AQ_METRIC_LEN)

/* HMGET, the key, the metrics */
#define NGX_HTTP_ENGAGEMENT_AN_ARGS  (2 + NGX_HTTP_ENGAGEMENT_AQ_METRICS_MAX)

/* one point's figures as JSON, beyond the metrics' names */
#define NGX_HTTP_ENGAGEMENT_AN_POINT_LEN   (sizeof("{\"t\":},") + NGX_INT64_LEN)
#define NGX_HTTP_ENGAGEMENT_AN_METRIC_LEN  (sizeof(",\"\":") + NGX_INT64_LEN)


/* a value of the breakdown (a country, a device, ...) and its figures */
typedef struct {
    int64_t                          *counts;     /* points x metrics */
    int64_t                           sum;        /* of the first metric */
    size_t                            len;
    u_char                            name[NGX_HTTP_ENGAGEMENT_AQ_ID_MAX];
} ngx_http_engagement_an_value_t;


typedef struct ngx_http_engagement_an_s  ngx_http_engagement_an_t;


/* a command's reply: where it goes */
typedef struct {
    ngx_http_engagement_an_t         *an;
    ngx_uint_t                        bucket;
    ngx_uint_t                        all;        /* HGETALL, else HMGET */
    ngx_uint_t                        metric;     /* HGETALL's: its index */
    ngx_uint_t                        pf;         /* PFCOUNT: 1 of a day,
                                                     2 of the whole range */
} ngx_http_engagement_an_call_t;


/* a request waiting for Redis; outlives the request if it is aborted */
struct ngx_http_engagement_an_s {
    ngx_http_request_t               *request;    /* NULL: nobody waits */
    ngx_pool_cleanup_t               *cleanup;    /* in the request's pool */
    ngx_log_t                        *log;
    ngx_uint_t                        sent;       /* commands sent */
    ngx_uint_t                        got;        /* answers received */
    ngx_uint_t                        failed;     /* one not answered */
    ngx_uint_t                        garbled;    /* a count not a number */
    ngx_uint_t                        truncated;  /* values beyond the max */
    int64_t                          *totals;     /* points x metrics */
    int64_t                           uniques;    /* of the whole range */
    ngx_uint_t                        nvalues;
    ngx_http_engagement_an_value_t   *values;     /* NGX_HTTP_..._AN_VALUES */
    ngx_http_engagement_an_call_t    *calls;      /* one per command */
    ngx_uint_t                        ncalls;
    uint16_t                          slots[NGX_HTTP_ENGAGEMENT_AN_SLOTS];
    size_t                            prefix_len; /* the key's, before
                                                     the bucket */
    u_char                            key[NGX_HTTP_ENGAGEMENT_AN_KEY_LEN];
    ngx_http_engagement_aq_t          q;
};


static void ngx_http_engagement_an_reply(redisReply *reply, void *data);


static void
ngx_http_engagement_an_free(ngx_http_engagement_an_t *an)
{
    ngx_uint_t  i;

    if (an->values) {
        for (i = 0; i < an->nvalues; i++) {
            if (an->values[i].counts) {
                ngx_free(an->values[i].counts);
            }
        }

        ngx_free(an->values);
    }

    if (an->totals) {
        ngx_free(an->totals);
    }

    if (an->calls) {
        ngx_free(an->calls);
    }

    ngx_free(an);
}


static void
ngx_http_engagement_an_cleanup(void *data)
{
    ngx_http_engagement_an_t  *an = data;

    an->request = NULL;
}


/* a count as Redis keeps it (HINCRBY's decimal); garbled ones count 0 */

static int64_t
ngx_http_engagement_an_count(ngx_http_engagement_an_t *an, redisReply *v)
{
    u_char      c;
    size_t      i, neg;
    int64_t     n;

    if (v->type == REDIS_REPLY_NIL) {
        return 0;
    }

    if (v->type == REDIS_REPLY_INTEGER) {
        return v->integer;
    }

    neg = (v->type == REDIS_REPLY_STRING && v->len && v->str[0] == '-');

    /* at most 18 digits: no overflow */
    if (v->type != REDIS_REPLY_STRING || v->len == neg || v->len > 18 + neg) {
        an->garbled++;
        return 0;
    }

    n = 0;

    for (i = neg; i < v->len; i++) {
        c = (u_char) v->str[i];

        if (c < '0' || c > '9') {
            an->garbled++;
            return 0;
        }

        n = n * 10 + (c - '0');
    }

    return neg ? -n : n;
}


/* the figures of a breakdown's value, made at its first field */

static ngx_http_engagement_an_value_t *
ngx_http_engagement_an_value(ngx_http_engagement_an_t *an, u_char *name,
    size_t len)
{
    uint32_t                         h;
    size_t                           i;
    ngx_uint_t                       slot;
    ngx_http_engagement_an_value_t  *v;

    /* FNV-1a */
    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ name[i]) * 16777619u;
    }

    for (slot = h & (NGX_HTTP_ENGAGEMENT_AN_SLOTS - 1);
         an->slots[slot];
         slot = (slot + 1) & (NGX_HTTP_ENGAGEMENT_AN_SLOTS - 1))
    {
        v = &an->values[an->slots[slot] - 1];

        if (v->len == len && ngx_memcmp(v->name, name, len) == 0) {
            return v;
        }
    }

    if (an->nvalues >= NGX_HTTP_ENGAGEMENT_AN_VALUES - 1
        && !(len == 5 && ngx_memcmp(name, "other", 5) == 0))
    {
        /* the last place is for "other": what does not fit goes there */
        an->truncated = 1;
        return ngx_http_engagement_an_value(an, (u_char *) "other", 5);
    }

    v = &an->values[an->nvalues];
    v->counts = ngx_calloc(an->q.points * an->q.nmetrics * sizeof(int64_t),
                           an->log);
    if (v->counts == NULL) {
        return NULL;
    }

    v->len = len;
    ngx_memcpy(v->name, name, len);
    an->nvalues++;
    an->slots[slot] = (uint16_t) an->nvalues;

    return v;
}


/*
 * HGETALL of bucket i's hash of the dimension and metric m: fields the
 * values, e.g. US
 */

static ngx_int_t
ngx_http_engagement_an_fields(ngx_http_engagement_an_t *an, ngx_uint_t i,
    ngx_uint_t m, redisReply *reply)
{
    size_t                           k;
    redisReply                      *field;
    ngx_http_engagement_an_value_t  *v;

    for (k = 0; k + 1 < reply->elements; k += 2) {
        field = reply->element[k];

        /* what the module did not write is not answered */
        if (field->type != REDIS_REPLY_STRING
            || !ngx_http_engagement_id_valid((u_char *) field->str,
                                             field->len))
        {
            continue;
        }

        v = ngx_http_engagement_an_value(an, (u_char *) field->str,
                                         field->len);
        if (v == NULL) {
            return NGX_ERROR;
        }

        v->counts[i * an->q.nmetrics + m] +=
            ngx_http_engagement_an_count(an, reply->element[k + 1]);
    }

    return NGX_OK;
}


static ngx_inline u_char *
ngx_http_engagement_an_put_int(u_char *p, int64_t n)
{
    if (n < 0) {
        *p++ = '-';
        return ngx_http_engagement_put_uint(p, (uint64_t) -n);
    }

    return ngx_http_engagement_put_uint(p, (uint64_t) n);
}


/*
 * The points of one series as JSON: [{"t":..,"views":..},...]; written
 * without ngx_sprintf (a 90-day breakdown by country is ~16,000 points)
 */

static u_char *
ngx_http_engagement_an_points(u_char *p, ngx_http_engagement_an_t *an,
    int64_t *counts)
{
    time_t      t;
    ngx_uint_t  i, m, nm;

    nm = an->q.nmetrics;
    t = an->q.from;
    *p++ = '[';

    for (i = 0; i < an->q.points; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"t\":", sizeof("{\"t\":") - 1);
        p = ngx_http_engagement_put_uint(p, (uint64_t) t);
        t += an->q.step_secs;

        for (m = 0; m < nm; m++) {
            *p++ = ',';
            *p++ = '"';
            p = ngx_cpymem(p, an->q.metric[m], an->q.metric_len[m]);
            *p++ = '"';
            *p++ = ':';
            p = ngx_http_engagement_an_put_int(p, counts[i * nm + m]);
        }

        *p++ = '}';
    }

    *p++ = ']';

    return p;
}


/* breakdown values: the largest first (the first metric), then by name */

static ngx_int_t
ngx_http_engagement_an_cmp(const void *one, const void *two)
{
    ngx_int_t                        rc;
    ngx_http_engagement_an_value_t  *a, *b;

    a = *(ngx_http_engagement_an_value_t **) one;
    b = *(ngx_http_engagement_an_value_t **) two;

    if (a->sum != b->sum) {
        return (a->sum > b->sum) ? -1 : 1;
    }

    rc = ngx_memn2cmp(a->name, b->name, a->len, b->len);

    return rc;
}


static ngx_http_engagement_an_value_t **
ngx_http_engagement_an_sorted(ngx_http_request_t *r,
    ngx_http_engagement_an_t *an)
{
    ngx_uint_t                        i, k, nm;
    ngx_http_engagement_an_value_t  **order;

    order = ngx_palloc(r->pool, (an->nvalues + 1) * sizeof(void *));
    if (order == NULL) {
        return NULL;
    }

    nm = an->q.nmetrics;

    for (i = 0; i < an->nvalues; i++) {
        order[i] = &an->values[i];
        order[i]->sum = 0;

        for (k = 0; k < an->q.points; k++) {
            order[i]->sum += order[i]->counts[k * nm];
        }
    }

    if (an->nvalues > 1) {
        ngx_sort(order, an->nvalues, sizeof(void *),
                 ngx_http_engagement_an_cmp);
    }

    return order;
}


static size_t
ngx_http_engagement_an_point_len(ngx_http_engagement_an_t *an)
{
    size_t      len;
    ngx_uint_t  m;

    len = NGX_HTTP_ENGAGEMENT_AN_POINT_LEN;

    for (m = 0; m < an->q.nmetrics; m++) {
        len += NGX_HTTP_ENGAGEMENT_AN_METRIC_LEN + an->q.metric_len[m];
    }

    return len;
}


/*
 * {"scope":"content","id":"v1","step":"minute","from":..,"to":..,
 *  "metric":["views"],"total":{"views":..},"points":[...]
 *  [,"by":"country","truncated":false,"series":{"US":[...],...}]}
 */

static ngx_int_t
ngx_http_engagement_an_json(ngx_http_request_t *r,
    ngx_http_engagement_an_t *an)
{
    u_char                           *p, *body;
    size_t                            len;
    int64_t                           sum;
    ngx_uint_t                        i, m, nm, peak;
    ngx_http_engagement_aq_t         *q;
    ngx_http_engagement_an_value_t  **order;

    q = &an->q;
    nm = q->nmetrics;
    order = NULL;

    if (q->by) {
        order = ngx_http_engagement_an_sorted(r, an);
        if (order == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    len = sizeof("{\"scope\":\"category\",\"id\":\"\",\"step\":\"minute\","
                 "\"from\":,\"to\":,\"metric\":[],\"total\":{},\"points\":,"
                 "\"by\":\"category\",\"truncated\":false,\"series\":{}}\n")
          + q->id_len + 2 * NGX_INT64_LEN
          + nm * (2 * NGX_HTTP_ENGAGEMENT_AQ_METRIC_LEN
                  + NGX_HTTP_ENGAGEMENT_AN_METRIC_LEN + 4)
          + (an->nvalues + 1)
            * (q->points * ngx_http_engagement_an_point_len(an) + 2
               + sizeof("\"\":,") + NGX_HTTP_ENGAGEMENT_AQ_ID_MAX);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"scope\":\"%s\",\"id\":",
                    ngx_http_engagement_aq_scopes[q->scope]);

    if (q->scope == NGX_HTTP_ENGAGEMENT_AQ_ALL) {
        p = ngx_cpymem(p, "null", 4);

    } else {
        *p++ = '"';
        p = ngx_cpymem(p, q->id, q->id_len);
        *p++ = '"';
    }

    p = ngx_sprintf(p, ",\"step\":\"%s\",\"from\":%T,\"to\":%T,\"metric\":[",
                    ngx_http_engagement_aq_steps[q->step], q->from, q->to);

    for (m = 0; m < nm; m++) {
        p = ngx_sprintf(p, "%s\"%*s\"", m ? "," : "", q->metric_len[m],
                        q->metric[m]);
    }

    p = ngx_cpymem(p, "],\"total\":{", sizeof("],\"total\":{") - 1);

    for (m = 0; m < nm; m++) {
        sum = 0;
        peak = (q->metric_len[m] == 4
                && ngx_memcmp(q->metric[m], "peak", 4) == 0);

        for (i = 0; i < q->points; i++) {
            if (!peak) {
                sum += an->totals[i * nm + m];

            } else if (an->totals[i * nm + m] > sum) {
                /* a peak's total is the highest of its points */
                sum = an->totals[i * nm + m];
            }
        }

        if (q->uniques) {
            /* distinct viewers over the range: the days' union */
            sum = an->uniques;
        }

        p = ngx_sprintf(p, "%s\"%*s\":%L", m ? "," : "", q->metric_len[m],
                        q->metric[m], sum);
    }

    p = ngx_cpymem(p, "},\"points\":", sizeof("},\"points\":") - 1);
    p = ngx_http_engagement_an_points(p, an, an->totals);

    if (q->by) {
        p = ngx_sprintf(p, ",\"by\":\"%s\",\"truncated\":%s,\"series\":{",
                        ngx_http_engagement_aq_dims[q->by],
                        an->truncated ? "true" : "false");

        for (i = 0; i < an->nvalues; i++) {
            p = ngx_sprintf(p, "%s\"%*s\":", i ? "," : "", order[i]->len,
                            order[i]->name);
            p = ngx_http_engagement_an_points(p, an, order[i]->counts);
        }

        *p++ = '}';
    }

    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


/*
 * t,views[,...] then one row per point; with by=, t,<dim>,views[,...]
 * then one row per point and value (the largest values first)
 */

static ngx_int_t
ngx_http_engagement_an_csv(ngx_http_request_t *r,
    ngx_http_engagement_an_t *an)
{
    u_char                           *p, *body;
    size_t                            len;
    int64_t                          *counts;
    ngx_str_t                         type;
    ngx_uint_t                        i, m, v, nm, rows;
    ngx_http_engagement_aq_t         *q;
    ngx_http_engagement_an_value_t  **order;

    ngx_str_set(&type, "text/csv; charset=utf-8");

    q = &an->q;
    nm = q->nmetrics;
    order = NULL;
    rows = 1;

    if (q->by) {
        order = ngx_http_engagement_an_sorted(r, an);
        if (order == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rows = an->nvalues;
    }

    len = sizeof("t,category\n") + nm * (NGX_HTTP_ENGAGEMENT_AQ_METRIC_LEN + 1)
          + q->points * rows
            * (NGX_INT64_LEN + 2 + NGX_HTTP_ENGAGEMENT_AQ_ID_MAX
               + nm * (NGX_INT64_LEN + 1));

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "t", 1);

    if (q->by) {
        p = ngx_sprintf(p, ",%s", ngx_http_engagement_aq_dims[q->by]);
    }

    for (m = 0; m < nm; m++) {
        p = ngx_sprintf(p, ",%*s", q->metric_len[m], q->metric[m]);
    }

    *p++ = '\n';

    for (i = 0; i < q->points; i++) {
        for (v = 0; v < (q->by ? an->nvalues : 1); v++) {
            p = ngx_http_engagement_put_uint(p, (uint64_t) q->from
                                                + i * q->step_secs);

            if (q->by) {
                *p++ = ',';
                p = ngx_cpymem(p, order[v]->name, order[v]->len);
                counts = order[v]->counts;

            } else {
                counts = an->totals;
            }

            for (m = 0; m < nm; m++) {
                *p++ = ',';
                p = ngx_http_engagement_an_put_int(p, counts[i * nm + m]);
            }

            *p++ = '\n';
        }
    }

    ngx_http_engagement_set_outcome(r, "read", NULL, NULL);

    return ngx_http_engagement_send(r, NGX_HTTP_OK, &type, body, p - body);
}


/* a reply's shape: HMGET's counts, or HGETALL's fields and values */

static ngx_int_t
ngx_http_engagement_an_valid(ngx_http_engagement_an_t *an,
    ngx_http_engagement_an_call_t *call, redisReply *reply)
{
    if (call->pf) {
        return reply->type == REDIS_REPLY_INTEGER;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        return 0;
    }

    return call->all ? reply->elements % 2 == 0
                     : reply->elements == an->q.nmetrics;
}


/* the bucket's key, in an->key */

static size_t
ngx_http_engagement_an_key(ngx_http_engagement_an_t *an, ngx_uint_t i)
{
    u_char  *p;

    p = ngx_http_engagement_aq_bucket(an->key + an->prefix_len,
                                      an->q.from
                                      + (time_t) (i * an->q.step_secs),
                                      an->q.step);

    return p - an->key;
}


static void
ngx_http_engagement_an_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_an_call_t  *call = data;

    ngx_int_t                  rv;
    ngx_uint_t                 i, m;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_engagement_an_t  *an;

    an = call->an;
    i = call->bucket;
    an->got++;

    if (reply == NULL) {
        an->failed = 1;

    } else if (!ngx_http_engagement_an_valid(an, call, reply)) {
        /* a key of another type: logged once per request */
        if (!an->failed) {
            ngx_log_error(NGX_LOG_ERR, an->log, 0,
                          "engagement redis: analytics read of %s \"%*s\" "
                          "failed: %*s",
                          ngx_http_engagement_aq_scopes[an->q.scope],
                          an->q.id_len, an->q.id,
                          reply->type == REDIS_REPLY_ERROR
                          ? (size_t) reply->len : sizeof("not an array") - 1,
                          reply->type == REDIS_REPLY_ERROR
                          ? reply->str : "not an array");
        }

        an->failed = 1;

    } else if (an->request && !an->failed) {
        if (call->pf == 1) {
            an->totals[i] = reply->integer;

        } else if (call->pf == 2) {
            an->uniques = reply->integer;

        } else if (!call->all) {
            for (m = 0; m < an->q.nmetrics; m++) {
                an->totals[i * an->q.nmetrics + m] =
                    ngx_http_engagement_an_count(an, reply->element[m]);
            }

        } else if (ngx_http_engagement_an_fields(an, i, call->metric, reply)
                   != NGX_OK)
        {
            an->failed = 1;
        }
    }

    if (an->got < an->sent) {
        return;
    }

    r = an->request;

    if (r) {
        /* the request may outlive an (lingering close, keep-alive) */
        an->cleanup->handler = NULL;
        c = r->connection;

        if (an->garbled) {
            ngx_log_error(NGX_LOG_WARN, c->log, 0,
                          "engagement redis: analytics of %s \"%*s\": %ui "
                          "counts were not numbers, taken as 0",
                          ngx_http_engagement_aq_scopes[an->q.scope],
                          an->q.id_len, an->q.id, an->garbled);
        }

        if (an->failed) {
            ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);
            rv = ngx_http_engagement_unavailable(r,
                     "Redis could not answer; retry later");

        } else if (an->q.csv) {
            rv = ngx_http_engagement_an_csv(r, an);

        } else {
            ngx_http_engagement_set_outcome(r, "read", NULL, NULL);
            rv = ngx_http_engagement_an_json(r, an);
        }

        ngx_http_finalize_request(r, rv);
        ngx_http_run_posted_requests(c);
    }

    ngx_http_engagement_an_free(an);
}


/*
 * metric=uniques: per day a PFCOUNT of the content's HyperLogLog of that
 * day (eng:{c:<id>}:uv:d:<YYYYMMDD>), then one PFCOUNT of them all: the
 * distinct viewers of the whole range (a union, not a sum).
 * NGX_DONE, or the 503 sent.
 */

static ngx_int_t
ngx_http_engagement_an_send_uniques(ngx_http_request_t *r,
    ngx_http_engagement_an_t *an, ngx_pool_cleanup_t *cln)
{
    u_char                         *text, *t;
    size_t                         *lens, klen;
    ngx_uint_t                      n, k, points;
    const char                    **argv;
    const char                     *one[2];
    size_t                          onel[2];
    ngx_http_engagement_an_call_t  *call;

    points = an->q.points;
    one[0] = "PFCOUNT";
    onel[0] = sizeof("PFCOUNT") - 1;

    /* PFCOUNT and every day's key, in one allocation */
    argv = ngx_alloc((points + 1) * (sizeof(char *) + sizeof(size_t))
                     + points * NGX_HTTP_ENGAGEMENT_AN_KEY_LEN, an->log);
    if (argv == NULL) {
        ngx_http_engagement_an_free(an);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lens = (size_t *) (argv + points + 1);
    text = (u_char *) (lens + points + 1);
    argv[0] = "PFCOUNT";
    lens[0] = sizeof("PFCOUNT") - 1;

    for (k = 0, n = 0; n < an->ncalls; n++) {
        call = &an->calls[n];
        call->an = an;
        call->all = 0;
        call->metric = 0;

        if (n < points) {
            call->bucket = n;
            call->pf = 1;
            klen = ngx_http_engagement_an_key(an, n);
            t = text + n * NGX_HTTP_ENGAGEMENT_AN_KEY_LEN;
            ngx_memcpy(t, an->key, klen);
            argv[1 + n] = (const char *) t;
            lens[1 + n] = klen;
            one[1] = (const char *) t;
            onel[1] = klen;

            if (ngx_http_engagement_redis_send(ngx_http_engagement_an_reply,
                                               call, 2, one, onel)
                != NGX_OK)
            {
                break;
            }

        } else {
            call->bucket = 0;
            call->pf = 2;

            if (ngx_http_engagement_redis_send(ngx_http_engagement_an_reply,
                                               call, (int) (1 + points), argv,
                                               lens)
                != NGX_OK)
            {
                break;
            }
        }

        k++;
    }

    ngx_free(argv);

    if (k == 0) {
        ngx_http_engagement_an_free(an);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; retry later");
    }

    an->sent = k;
    an->failed = (k < an->ncalls);

    cln->handler = ngx_http_engagement_an_cleanup;
    cln->data = an;
    an->cleanup = cln;

    r->main->count++;

    return NGX_DONE;
}


/*
 * Per bucket, pipelined: HMGET of the metrics (the totals); with by=,
 * then per metric an HGETALL of the bucket's hash of that dimension and
 * metric (only what is asked: a hash per dimension and metric,
 * bench/analytics/README.md).
 * NGX_DONE, or the 503 sent.
 */

static ngx_int_t
ngx_http_engagement_an_send(ngx_http_request_t *r,
    ngx_http_engagement_an_t *an)
{
    int                             argc;
    size_t                          klen;
    ngx_uint_t                      k, m, n, per;
    const char                     *dim;
    ngx_pool_cleanup_t             *cln;
    ngx_http_engagement_aq_t       *q;
    ngx_http_engagement_an_call_t  *call;
    const char                     *argv[NGX_HTTP_ENGAGEMENT_AN_ARGS];
    size_t                          lens[NGX_HTTP_ENGAGEMENT_AN_ARGS];

    static const char              *tags[] = { "c:", "ch:", "cat:", "all" };
    static const char              *steps[] = { ":m:", ":h:", ":d:" };

    q = &an->q;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_engagement_an_free(an);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    an->prefix_len = ngx_sprintf(an->key, "eng:{%s%*s}%s", tags[q->scope],
                                 q->id_len, q->id,
                                 q->uniques ? ":uv:d:" : steps[q->step])
                     - an->key;

    if (q->uniques) {
        return ngx_http_engagement_an_send_uniques(r, an, cln);
    }

    argv[1] = (const char *) an->key;

    for (m = 0; m < q->nmetrics; m++) {
        argv[2 + m] = (const char *) q->metric[m];
        lens[2 + m] = q->metric_len[m];
    }

    dim = ngx_http_engagement_aq_dims[q->by];

    /* per bucket: its totals, then with by= a hash per metric */
    per = q->by ? 1 + q->nmetrics : 1;

    for (k = 0, n = 0; n < an->ncalls; n++) {
        call = &an->calls[n];
        call->an = an;
        call->bucket = n / per;
        call->all = (n % per != 0);
        call->metric = call->all ? n % per - 1 : 0;
        call->pf = 0;
        klen = ngx_http_engagement_an_key(an, call->bucket);

        if (call->all) {
            /* <bucket>:<dim>:<metric> */
            an->key[klen++] = ':';
            klen = ngx_cpymem(an->key + klen, dim, ngx_strlen(dim)) - an->key;
            an->key[klen++] = ':';
            klen = ngx_cpymem(an->key + klen, q->metric[call->metric],
                              q->metric_len[call->metric])
                   - an->key;

            argv[0] = "HGETALL";
            lens[0] = sizeof("HGETALL") - 1;
            argc = 2;

        } else {
            argv[0] = "HMGET";
            lens[0] = sizeof("HMGET") - 1;
            argc = 2 + (int) q->nmetrics;
        }

        lens[1] = klen;

        if (ngx_http_engagement_redis_send(ngx_http_engagement_an_reply, call,
                                           argc, argv, lens)
            != NGX_OK)
        {
            break;
        }

        k++;
    }

    if (k == 0) {
        ngx_http_engagement_an_free(an);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; retry later");
    }

    /* a send that failed half way: the answers of those sent, then 503 */
    an->sent = k;
    an->failed = (k < an->ncalls);

    cln->handler = ngx_http_engagement_an_cleanup;
    cln->data = an;
    an->cleanup = cln;

    r->main->count++;

    return NGX_DONE;
}


/* GET /engagement/analytics?... */

ngx_int_t
ngx_http_engagement_analytics_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rv;
    ngx_http_engagement_an_t        *an;
    ngx_http_engagement_aq_error_t   err;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD",
                   "analytics are read with GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    an = ngx_calloc(sizeof(ngx_http_engagement_an_t), r->connection->log);
    if (an == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_engagement_aq_parse(r->args.data, r->args.len, ngx_time(),
                                     &an->q, &err)
        != NGX_OK)
    {
        /* an unknown parameter's name is in an: logged under one reason */
        ngx_http_engagement_set_outcome(r, "invalid",
                                        err.field == (char *) an->q.unknown
                                        ? "unknown_parameter" : err.field,
                                        NULL);
        rv = ngx_http_engagement_send_error(r, err.status, err.error,
                                            err.field, err.message);
        ngx_free(an);
        return rv;
    }

    if (!ngx_http_engagement_redis_ready()) {
        ngx_free(an);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; retry later");
    }

    an->request = r;
    an->log = r->connection->log;

    an->totals = ngx_calloc(an->q.points * an->q.nmetrics * sizeof(int64_t),
                            an->log);
    if (an->totals == NULL) {
        ngx_http_engagement_an_free(an);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* with by=, per bucket its totals and a hash per metric; uniques:
     * per day a count, then the count of the whole range */
    an->ncalls = an->q.uniques ? an->q.points + 1
                 : an->q.points * (an->q.by ? 1 + an->q.nmetrics : 1);
    an->calls = ngx_alloc(an->ncalls * sizeof(ngx_http_engagement_an_call_t),
                          an->log);
    if (an->calls == NULL) {
        ngx_http_engagement_an_free(an);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (an->q.by) {
        an->values = ngx_calloc(NGX_HTTP_ENGAGEMENT_AN_VALUES
                                * sizeof(ngx_http_engagement_an_value_t),
                                an->log);
        if (an->values == NULL) {
            ngx_http_engagement_an_free(an);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_engagement_an_send(r, an);
}


/* "engagement analytics;" reads Redis: it needs engagement_redis */

char *
ngx_http_engagement_analytics_check(ngx_conf_t *cf)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    if (emcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"engagement analytics\" needs "
                           "\"engagement_redis\": the time series are read "
                           "from Redis's buckets");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
