
/*
 * The analytics query string: GET /engagement/analytics?contentId=|
 * channelId=|category=|scope=all &from= &to= &step= &by= &metric=
 * &format=. Every parameter is checked here, with the bounds (points per
 * series, each step's retention in Redis); a refusal names the parameter.
 * A pure function of the query and the time: no allocation, no zones, no
 * sockets (fuzz/fuzz_analytics.c runs it as is).
 */


#include "input/ngx_http_engagement_query.h"


/* a decoded value's room; longer values are refused */
#define NGX_HTTP_ENGAGEMENT_AQ_VALUE_MAX                                      \
    (NGX_HTTP_ENGAGEMENT_AQ_METRICS_MAX                                       \
     * (NGX_HTTP_ENGAGEMENT_AQ_METRIC_LEN + 1))

/* from= and to= as unix seconds: the years 2000 to 2199 */
#define NGX_HTTP_ENGAGEMENT_AQ_TIME_MIN    946684800
#define NGX_HTTP_ENGAGEMENT_AQ_TIME_MAX    7258118400LL

/* how far ahead of now to= may be (s) */
#define NGX_HTTP_ENGAGEMENT_AQ_AHEAD       86400

/* the range when from= (and to=) are not given (s) */
#define NGX_HTTP_ENGAGEMENT_AQ_DEFAULT_SPAN 86400


/* the parameters, in their order in the values table */
typedef enum {
    NGX_HTTP_ENGAGEMENT_AQ_P_CONTENT = 0,
    NGX_HTTP_ENGAGEMENT_AQ_P_CHANNEL,
    NGX_HTTP_ENGAGEMENT_AQ_P_CATEGORY,
    NGX_HTTP_ENGAGEMENT_AQ_P_SCOPE,
    NGX_HTTP_ENGAGEMENT_AQ_P_FROM,
    NGX_HTTP_ENGAGEMENT_AQ_P_TO,
    NGX_HTTP_ENGAGEMENT_AQ_P_STEP,
    NGX_HTTP_ENGAGEMENT_AQ_P_BY,
    NGX_HTTP_ENGAGEMENT_AQ_P_METRIC,
    NGX_HTTP_ENGAGEMENT_AQ_P_FORMAT,
    NGX_HTTP_ENGAGEMENT_AQ_PARAMS
} ngx_http_engagement_aq_param_e;


static const char  *ngx_http_engagement_aq_names[] = {
    "contentId", "channelId", "category", "scope", "from", "to", "step",
    "by", "metric", "format"
};


/* one parameter's decoded value; len (size_t) -1: not given */
typedef struct {
    size_t        len;
    ngx_uint_t    order;                 /* its place in the query */
    u_char        data[NGX_HTTP_ENGAGEMENT_AQ_VALUE_MAX];
} ngx_http_engagement_aq_value_t;


const char  *ngx_http_engagement_aq_steps[] = { "minute", "hour", "day" };
const char  *ngx_http_engagement_aq_scopes[] = {
    "content", "channel", "category", "all"
};
const char  *ngx_http_engagement_aq_dims[] = {
    "", "country", "device", "source", "category"
};

static const ngx_uint_t  ngx_http_engagement_aq_secs[] = { 60, 3600, 86400 };

static const time_t  ngx_http_engagement_aq_keep[] = {
    NGX_HTTP_ENGAGEMENT_AQ_KEEP_MINUTE,
    NGX_HTTP_ENGAGEMENT_AQ_KEEP_HOUR,
    NGX_HTTP_ENGAGEMENT_AQ_KEEP_DAY
};

/* where each step's older data lives: the ClickHouse rollups
 * (conf-examples/clickhouse/schema.sql, docs/analytics-sql.md) */
static const char  *ngx_http_engagement_aq_beyond[] = {
    "is older than Redis keeps minute buckets (8 days): use step=hour or "
    "step=day, or query ClickHouse: eng.views_minute (contents), "
    "eng.channel_minute (channels, categories)",
    "is older than Redis keeps hour buckets (400 days): use step=day, or "
    "query ClickHouse: eng.views_hour, eng.channel_hour, eng.reactions_hour, "
    "eng.interactions_hour",
    "is older than Redis keeps day buckets (1100 days): query ClickHouse: "
    "eng.views_day, eng.channel_day, eng.reactions_day, eng.interactions_day"
};


static const u_char  ngx_http_engagement_aq_id_chars[256] = {
    ['-'] = 1, ['.'] = 1, [':'] = 1, ['_'] = 1,
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1
};



static ngx_int_t
ngx_http_engagement_aq_fail(ngx_http_engagement_aq_error_t *err,
    ngx_uint_t status, const char *error, const char *field,
    const char *message)
{
    err->status = status;
    err->error = error;
    err->field = field;
    err->message = message;

    return NGX_ERROR;
}


#define ngx_http_engagement_aq_invalid(err, field, message)                   \
    ngx_http_engagement_aq_fail(err, 400, "invalid_parameter", field, message)


static ngx_int_t
ngx_http_engagement_aq_chars(const u_char *table, const u_char *p, size_t len,
    size_t max)
{
    size_t  i;

    if (len == 0 || len > max) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!table[p[i]]) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_engagement_aq_is(ngx_http_engagement_aq_value_t *v, const char *s)
{
    size_t  n;

    n = ngx_strlen(s);

    return v->len == n && ngx_memcmp(v->data, s, n) == 0;
}


static ngx_int_t
ngx_http_engagement_aq_hex(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* a value percent-decoded into v: NGX_ERROR if malformed, NGX_DECLINED if
 * too long */

static ngx_int_t
ngx_http_engagement_aq_decode(const u_char *p, const u_char *end,
    ngx_http_engagement_aq_value_t *v)
{
    ngx_int_t  hi, lo;

    v->len = 0;

    while (p < end) {
        if (v->len == NGX_HTTP_ENGAGEMENT_AQ_VALUE_MAX) {
            return NGX_DECLINED;
        }

        if (*p == '%') {
            if (end - p < 3) {
                return NGX_ERROR;
            }

            hi = ngx_http_engagement_aq_hex(p[1]);
            lo = ngx_http_engagement_aq_hex(p[2]);

            if (hi < 0 || lo < 0) {
                return NGX_ERROR;
            }

            v->data[v->len++] = (u_char) (hi * 16 + lo);
            p += 3;
            continue;
        }

        v->data[v->len++] = (*p == '+') ? ' ' : *p;
        p++;
    }

    return NGX_OK;
}


/* days since 1970-01-01 of a date of the proleptic Gregorian calendar */

static int64_t
ngx_http_engagement_aq_days(int64_t y, ngx_uint_t m, ngx_uint_t d)
{
    int64_t                  leaps, days;
    ngx_uint_t               leap;
    static const ngx_uint_t  before[] = {
        0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334
    };

    leap = (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));

    /* leap years in [1970, y) */
    leaps = ((y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400)
            - (1969 / 4 - 1969 / 100 + 1969 / 400);

    days = 365 * (y - 1970) + leaps + before[m - 1] + (leap && m > 2) + d - 1;

    return days;
}


static ngx_uint_t
ngx_http_engagement_aq_mdays(int64_t y, ngx_uint_t m)
{
    static const ngx_uint_t  mdays[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
        return 29;
    }

    return mdays[m - 1];
}


/* n digits at p: the number, or -1 */

static int64_t
ngx_http_engagement_aq_num(const u_char *p, ngx_uint_t n)
{
    int64_t     v;
    ngx_uint_t  i;

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    return v;
}


/*
 * from= and to=: unix seconds, or ISO 8601 in UTC: 2026-12-07,
 * 2026-12-07T10:00Z or 2026-12-07T10:00:30Z. NGX_ERROR if not one, or
 * outside the years 2000-2199.
 */

static ngx_int_t
ngx_http_engagement_aq_time(ngx_http_engagement_aq_value_t *v, time_t *t)
{
    u_char   *p;
    int64_t   y, mo, d, h, mi, s;

    p = v->data;

    if (v->len >= 1 && v->len <= 11
        && ngx_http_engagement_aq_num(p, v->len) >= 0)
    {
        y = ngx_http_engagement_aq_num(p, v->len);

        if (y < NGX_HTTP_ENGAGEMENT_AQ_TIME_MIN
            || y >= NGX_HTTP_ENGAGEMENT_AQ_TIME_MAX)
        {
            return NGX_ERROR;
        }

        *t = (time_t) y;
        return NGX_OK;
    }

    if (v->len != 10 && v->len != 17 && v->len != 20) {
        return NGX_ERROR;
    }

    if (p[4] != '-' || p[7] != '-') {
        return NGX_ERROR;
    }

    y = ngx_http_engagement_aq_num(p, 4);
    mo = ngx_http_engagement_aq_num(p + 5, 2);
    d = ngx_http_engagement_aq_num(p + 8, 2);
    h = 0;
    mi = 0;
    s = 0;

    if (v->len > 10) {
        if (p[10] != 'T' || p[13] != ':' || p[v->len - 1] != 'Z') {
            return NGX_ERROR;
        }

        h = ngx_http_engagement_aq_num(p + 11, 2);
        mi = ngx_http_engagement_aq_num(p + 14, 2);

        if (v->len == 20) {
            if (p[16] != ':') {
                return NGX_ERROR;
            }

            s = ngx_http_engagement_aq_num(p + 17, 2);
        }
    }

    if (y < 2000 || y > 2199 || mo < 1 || mo > 12 || d < 1
        || d > (int64_t) ngx_http_engagement_aq_mdays(y, (ngx_uint_t) mo)
        || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59)
    {
        return NGX_ERROR;
    }

    *t = (time_t) (ngx_http_engagement_aq_days(y, (ngx_uint_t) mo,
                                               (ngx_uint_t) d) * 86400
                   + h * 3600 + mi * 60 + s);

    return NGX_OK;
}


u_char *
ngx_http_engagement_aq_bucket(u_char *p, time_t t, ngx_uint_t step)
{
    int64_t     days, y, rest;
    ngx_uint_t  m, i, n, v[5];

    days = (int64_t) t / 86400;
    rest = (int64_t) t % 86400;

    /* the year: an estimate, then moved to the one that holds the day */
    y = 1970 + days / 366;

    while (ngx_http_engagement_aq_days(y + 1, 1, 1) <= days) {
        y++;
    }

    days -= ngx_http_engagement_aq_days(y, 1, 1);

    for (m = 1; m < 12; m++) {
        if (days < (int64_t) ngx_http_engagement_aq_mdays(y, m)) {
            break;
        }

        days -= ngx_http_engagement_aq_mdays(y, m);
    }

    v[0] = m;
    v[1] = (ngx_uint_t) days + 1;
    v[2] = (ngx_uint_t) (rest / 3600);
    v[3] = (ngx_uint_t) (rest % 3600 / 60);

    /* YYYY, then MM DD [HH [MM]] */
    for (i = 4; i > 0; i--) {
        p[i - 1] = (u_char) ('0' + y % 10);
        y /= 10;
    }

    p += 4;
    n = (step == NGX_HTTP_ENGAGEMENT_AQ_MINUTE) ? 4
        : (step == NGX_HTTP_ENGAGEMENT_AQ_HOUR) ? 3 : 2;

    for (i = 0; i < n; i++) {
        *p++ = (u_char) ('0' + v[i] / 10);
        *p++ = (u_char) ('0' + v[i] % 10);
    }

    return p;
}


/* metric=: one or a comma list; with by=, only those with breakdowns */

static ngx_int_t
ngx_http_engagement_aq_metrics(ngx_http_engagement_aq_value_t *v,
    ngx_http_engagement_aq_t *q, ngx_http_engagement_aq_error_t *err)
{
    u_char      *p, *end, *comma;
    size_t       n;
    ngx_uint_t   i, plain;

    static const char  *plains[] = {
        "views", "engaged", "replays", "likes", "unlikes", "peak", NULL
    };

    q->uniques = 0;

    if (v->len == (size_t) -1) {
        q->nmetrics = 1;
        q->metric_len[0] = 5;
        ngx_memcpy(q->metric[0], "views", 5);
        return NGX_OK;
    }

    p = v->data;
    end = p + v->len;
    q->nmetrics = 0;

    for ( ;; ) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        n = comma - p;
        plain = 0;

        for (i = 0; plains[i]; i++) {
            if (n == ngx_strlen(plains[i])
                && ngx_memcmp(p, plains[i], n) == 0)
            {
                plain = 1;
                break;
            }
        }

        if (!plain && n == 7 && ngx_memcmp(p, "uniques", 7) == 0) {
            /* a content's distinct viewers per day: checked with the rest */
            q->uniques = 1;

        } else if (!plain) {
            if (n <= 6 || ngx_memcmp(p, "click:", 6) != 0
                || !ngx_http_engagement_aq_chars(
                        ngx_http_engagement_aq_id_chars, p + 6, n - 6,
                        NGX_HTTP_ENGAGEMENT_AQ_NAME_MAX))
            {
                return ngx_http_engagement_aq_invalid(err, "metric",
                           "must be views, engaged, replays, likes, unlikes, "
                           "peak, uniques or click:<name> (1-64 bytes of "
                           "[A-Za-z0-9._:-]), or a comma list of them");
            }
        }

        if (q->by != NGX_HTTP_ENGAGEMENT_AQ_BY_NONE
            && !(n == 5 && ngx_memcmp(p, "views", 5) == 0)
            && !(n == 7 && ngx_memcmp(p, "engaged", 7) == 0)
            && !(n == 7 && ngx_memcmp(p, "replays", 7) == 0))
        {
            return ngx_http_engagement_aq_invalid(err, "metric",
                       "with by=, only views, engaged and replays: they are "
                       "the metrics broken down by dimension");
        }

        for (i = 0; i < q->nmetrics; i++) {
            if (q->metric_len[i] == n && ngx_memcmp(q->metric[i], p, n) == 0)
            {
                return ngx_http_engagement_aq_invalid(err, "metric",
                           "names a metric twice");
            }
        }

        if (q->nmetrics == NGX_HTTP_ENGAGEMENT_AQ_METRICS_MAX) {
            return ngx_http_engagement_aq_invalid(err, "metric",
                       "names more than 8 metrics");
        }

        q->metric_len[q->nmetrics] = n;
        ngx_memcpy(q->metric[q->nmetrics], p, n);
        q->nmetrics++;

        if (comma == end) {
            break;
        }

        p = comma + 1;
    }

    return NGX_OK;
}


/* the scope: exactly one of contentId=, channelId=, category=, scope=all */

static ngx_int_t
ngx_http_engagement_aq_scope(ngx_http_engagement_aq_value_t *vals,
    ngx_http_engagement_aq_t *q, ngx_http_engagement_aq_error_t *err)
{
    ngx_uint_t                       i, given, second;
    ngx_http_engagement_aq_value_t  *v, *first;

    given = 0;
    first = NULL;
    second = NGX_HTTP_ENGAGEMENT_AQ_PARAMS;

    for (i = NGX_HTTP_ENGAGEMENT_AQ_P_CONTENT;
         i <= NGX_HTTP_ENGAGEMENT_AQ_P_SCOPE; i++)
    {
        v = &vals[i];

        if (v->len == (size_t) -1) {
            continue;
        }

        given++;

        if (first == NULL || v->order < first->order) {
            if (first) {
                second = first - vals;
            }

            first = v;

        } else if (second == NGX_HTTP_ENGAGEMENT_AQ_PARAMS
                   || v->order < vals[second].order)
        {
            second = i;
        }
    }

    if (given == 0) {
        return ngx_http_engagement_aq_invalid(err, "contentId",
                   "one of contentId, channelId, category or scope=all "
                   "is required");
    }

    if (given > 1) {
        /* the later one conflicts with the first */
        return ngx_http_engagement_aq_invalid(err,
                   ngx_http_engagement_aq_names[second],
                   "conflicts with another scope: give exactly one of "
                   "contentId, channelId, category or scope=all");
    }

    i = first - vals;

    if (i == NGX_HTTP_ENGAGEMENT_AQ_P_SCOPE) {
        if (!ngx_http_engagement_aq_is(first, "all")) {
            return ngx_http_engagement_aq_invalid(err, "scope",
                       "must be all (or give contentId, channelId or "
                       "category instead)");
        }

        q->scope = NGX_HTTP_ENGAGEMENT_AQ_ALL;
        q->id_len = 0;
        return NGX_OK;
    }

    if (!ngx_http_engagement_aq_chars(ngx_http_engagement_aq_id_chars,
                                      first->data, first->len,
                                      NGX_HTTP_ENGAGEMENT_AQ_ID_MAX))
    {
        return ngx_http_engagement_aq_invalid(err,
                   ngx_http_engagement_aq_names[i],
                   "must be 1-128 bytes of [A-Za-z0-9._:-]");
    }

    q->scope = (i == NGX_HTTP_ENGAGEMENT_AQ_P_CONTENT)
               ? NGX_HTTP_ENGAGEMENT_AQ_CONTENT
               : (i == NGX_HTTP_ENGAGEMENT_AQ_P_CHANNEL)
                 ? NGX_HTTP_ENGAGEMENT_AQ_CHANNEL
                 : NGX_HTTP_ENGAGEMENT_AQ_CATEGORY;
    q->id_len = first->len;
    ngx_memcpy(q->id, first->data, first->len);

    return NGX_OK;
}


/* the buckets of a step from 'from' (its bucket's start) below 'to' */

static uint64_t
ngx_http_engagement_aq_count(time_t from, time_t to, ngx_uint_t secs)
{
    time_t  start;

    start = from - from % (time_t) secs;

    return (uint64_t) (to - start + (time_t) secs - 1) / secs;
}


/* from=, to=, step=: the range and its buckets, within the bounds */

static ngx_int_t
ngx_http_engagement_aq_range(ngx_http_engagement_aq_value_t *vals,
    time_t now, ngx_http_engagement_aq_t *q,
    ngx_http_engagement_aq_error_t *err)
{
    time_t                           from, to, start;
    ngx_uint_t                       s;
    ngx_http_engagement_aq_value_t  *v;

    v = &vals[NGX_HTTP_ENGAGEMENT_AQ_P_STEP];
    s = NGX_HTTP_ENGAGEMENT_AQ_DAY + 1;

    if (v->len != (size_t) -1) {
        for (s = 0; s <= NGX_HTTP_ENGAGEMENT_AQ_DAY; s++) {
            if (ngx_http_engagement_aq_is(v, ngx_http_engagement_aq_steps[s]))
            {
                break;
            }
        }

        if (s > NGX_HTTP_ENGAGEMENT_AQ_DAY) {
            return ngx_http_engagement_aq_invalid(err, "step",
                       "must be minute, hour or day");
        }
    }

    to = now;
    v = &vals[NGX_HTTP_ENGAGEMENT_AQ_P_TO];

    if (v->len != (size_t) -1) {
        if (ngx_http_engagement_aq_time(v, &to) != NGX_OK) {
            return ngx_http_engagement_aq_invalid(err, "to",
                       "must be unix seconds or an ISO 8601 UTC time "
                       "(2026-12-07, 2026-12-07T10:00Z, "
                       "2026-12-07T10:00:30Z), in the years 2000-2199");
        }

        if (to > now + NGX_HTTP_ENGAGEMENT_AQ_AHEAD) {
            return ngx_http_engagement_aq_invalid(err, "to",
                       "is more than a day ahead of now");
        }
    }

    from = to - NGX_HTTP_ENGAGEMENT_AQ_DEFAULT_SPAN;
    v = &vals[NGX_HTTP_ENGAGEMENT_AQ_P_FROM];

    if (v->len != (size_t) -1
        && ngx_http_engagement_aq_time(v, &from) != NGX_OK)
    {
        return ngx_http_engagement_aq_invalid(err, "from",
                   "must be unix seconds or an ISO 8601 UTC time "
                   "(2026-12-07, 2026-12-07T10:00Z, 2026-12-07T10:00:30Z), "
                   "in the years 2000-2199");
    }

    if (from >= to) {
        if (vals[NGX_HTTP_ENGAGEMENT_AQ_P_TO].len != (size_t) -1) {
            return ngx_http_engagement_aq_invalid(err, "to",
                       "must be later than from");
        }

        return ngx_http_engagement_aq_invalid(err, "from",
                   "must be earlier than to (default: now)");
    }

    if (s > NGX_HTTP_ENGAGEMENT_AQ_DAY) {
        /* the finest step Redis still keeps for 'from', in 1500 points */
        for (s = 0; s < NGX_HTTP_ENGAGEMENT_AQ_DAY; s++) {
            start = from - from % (time_t) ngx_http_engagement_aq_secs[s];

            if (start >= now - ngx_http_engagement_aq_keep[s]
                && ngx_http_engagement_aq_count(from, to,
                                                ngx_http_engagement_aq_secs[s])
                   <= NGX_HTTP_ENGAGEMENT_AQ_POINTS_MAX)
            {
                break;
            }
        }
    }

    start = from - from % (time_t) ngx_http_engagement_aq_secs[s];

    if (start < now - ngx_http_engagement_aq_keep[s]) {
        return ngx_http_engagement_aq_fail(err, 422, "beyond_retention",
                   "from", ngx_http_engagement_aq_beyond[s]);
    }

    if (ngx_http_engagement_aq_count(from, to, ngx_http_engagement_aq_secs[s])
        > NGX_HTTP_ENGAGEMENT_AQ_POINTS_MAX)
    {
        return ngx_http_engagement_aq_invalid(err, "step",
                   "gives more than 1500 points per series: shorten "
                   "from..to or use a larger step");
    }

    q->step = s;
    q->step_secs = ngx_http_engagement_aq_secs[s];
    q->from = start;
    q->to = to;
    q->points = (ngx_uint_t) ngx_http_engagement_aq_count(from, to,
                                                          q->step_secs);

    return NGX_OK;
}


ngx_int_t
ngx_http_engagement_aq_parse(const u_char *args, size_t len, time_t now,
    ngx_http_engagement_aq_t *q, ngx_http_engagement_aq_error_t *err)
{
    size_t                           n;
    ngx_int_t                        rc;
    ngx_uint_t                       i, order;
    const u_char                    *p, *end, *amp, *eq;
    ngx_http_engagement_aq_value_t  *v;
    ngx_http_engagement_aq_value_t   vals[NGX_HTTP_ENGAGEMENT_AQ_PARAMS];

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_AQ_PARAMS; i++) {
        vals[i].len = (size_t) -1;
    }

    ngx_memzero(q, sizeof(ngx_http_engagement_aq_t));

    p = args;
    end = args + len;
    order = 0;

    while (p < end) {
        amp = ngx_strlchr((u_char *) p, (u_char *) end, '&');
        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            p++;
            continue;
        }

        eq = ngx_strlchr((u_char *) p, (u_char *) amp, '=');
        n = (eq ? eq : amp) - p;

        for (i = 0; i < NGX_HTTP_ENGAGEMENT_AQ_PARAMS; i++) {
            if (n == ngx_strlen(ngx_http_engagement_aq_names[i])
                && ngx_memcmp(p, ngx_http_engagement_aq_names[i], n) == 0)
            {
                break;
            }
        }

        if (i == NGX_HTTP_ENGAGEMENT_AQ_PARAMS) {
            /* a leading underscore: a client's cache buster, ignored */
            if (*p != '_') {
                /* a name that is empty: the whole part names it */
                if (n == 0) {
                    n = amp - p;
                }

                n = ngx_min(n, sizeof(q->unknown) - 1);

                /* printable, so that the name is a C string that shows */
                for (i = 0; i < n; i++) {
                    q->unknown[i] = (p[i] > 0x20 && p[i] < 0x7f) ? p[i] : '?';
                }

                q->unknown[n] = '\0';

                return ngx_http_engagement_aq_invalid(err,
                           (const char *) q->unknown,
                           "is not a parameter of the analytics endpoint: "
                           "contentId, channelId, category, scope, from, "
                           "to, step, by, metric, format");
            }

            p = amp + 1;
            continue;
        }

        v = &vals[i];

        if (v->len != (size_t) -1) {
            return ngx_http_engagement_aq_invalid(err,
                       ngx_http_engagement_aq_names[i], "is given twice");
        }

        rc = eq ? ngx_http_engagement_aq_decode(eq + 1, amp, v) : NGX_ERROR;

        if (rc != NGX_OK || v->len == 0) {
            return ngx_http_engagement_aq_invalid(err,
                       ngx_http_engagement_aq_names[i],
                       (rc == NGX_DECLINED)
                       ? "is too long" : "is empty or badly percent-encoded");
        }

        v->order = order++;
        p = amp + 1;
    }

    if (ngx_http_engagement_aq_scope(vals, q, err) != NGX_OK) {
        return NGX_ERROR;
    }

    v = &vals[NGX_HTTP_ENGAGEMENT_AQ_P_FORMAT];

    if (v->len != (size_t) -1) {
        if (ngx_http_engagement_aq_is(v, "csv")) {
            q->csv = 1;

        } else if (!ngx_http_engagement_aq_is(v, "json")) {
            return ngx_http_engagement_aq_invalid(err, "format",
                       "must be json or csv");
        }
    }

    v = &vals[NGX_HTTP_ENGAGEMENT_AQ_P_BY];

    if (v->len != (size_t) -1) {
        for (i = NGX_HTTP_ENGAGEMENT_AQ_BY_COUNTRY;
             i <= NGX_HTTP_ENGAGEMENT_AQ_BY_CATEGORY; i++)
        {
            if (ngx_http_engagement_aq_is(v, ngx_http_engagement_aq_dims[i])) {
                break;
            }
        }

        if (i > NGX_HTTP_ENGAGEMENT_AQ_BY_CATEGORY) {
            return ngx_http_engagement_aq_invalid(err, "by",
                       "must be country, device, source or category");
        }

        if (i == NGX_HTTP_ENGAGEMENT_AQ_BY_CATEGORY
            && q->scope != NGX_HTTP_ENGAGEMENT_AQ_CHANNEL
            && q->scope != NGX_HTTP_ENGAGEMENT_AQ_ALL)
        {
            return ngx_http_engagement_aq_invalid(err, "by",
                       "by=category needs channelId or scope=all: a content "
                       "or a category has a single category");
        }

        q->by = i;
    }

    if (ngx_http_engagement_aq_metrics(&vals[NGX_HTTP_ENGAGEMENT_AQ_P_METRIC],
                                       q, err)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_aq_range(vals, now, q, err) != NGX_OK) {
        return NGX_ERROR;
    }

    if (q->uniques
        && (q->nmetrics != 1 || q->scope != NGX_HTTP_ENGAGEMENT_AQ_CONTENT
            || q->step != NGX_HTTP_ENGAGEMENT_AQ_DAY
            || q->by != NGX_HTTP_ENGAGEMENT_AQ_BY_NONE))
    {
        return ngx_http_engagement_aq_invalid(err, "metric",
                   "uniques (distinct viewers) are kept per content and "
                   "day: alone, with contentId= and step=day, without by=");
    }

    return NGX_OK;
}
