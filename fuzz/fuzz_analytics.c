
/*
 * libFuzzer target for the analytics query string
 * (src/input/ngx_http_engagement_query.c), compiled as is: it allocates
 * nothing and calls no nginx function.
 *
 * Each input is a query string, parsed at a fixed time and at a time the
 * input's first bytes give. A refusal must name a parameter with a
 * message and a status of 400 or 422; an accepted query must obey the
 * documented bounds (one scope with a valid id, a step and its aligned
 * range within Redis's retention and 1500 points, 1-8 distinct valid
 * metrics, breakdowns only of views/engaged/replays, by=category only for
 * a channel or everything). Besides, a time the input gives is written as
 * ISO 8601 and as unix seconds: both must parse to the same range, and
 * its bucket name must be libc's strftime of it.
 */

#include "input/ngx_http_engagement_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define NOW_FIXED  1796605274     /* 2026-12-07T01:01:14Z */


static const time_t  keep[] = { 691200, 34560000, 95040000 };
static const ngx_uint_t  secs[] = { 60, 3600, 86400 };


static int
chars_ok(const u_char *p, size_t len, int colon)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_'
              || p[i] == '-' || (colon && p[i] == ':')))
        {
            return 0;
        }
    }

    return 1;
}


static int
metric_ok(const u_char *m, size_t len)
{
    static const char  *plain[] = {
        "views", "engaged", "replays", "likes", "unlikes", "peak",
        "uniques", NULL
    };
    int  i;

    for (i = 0; plain[i]; i++) {
        if (len == strlen(plain[i]) && memcmp(m, plain[i], len) == 0) {
            return 1;
        }
    }

    return len > 6 && len <= 6 + NGX_HTTP_ENGAGEMENT_AQ_NAME_MAX
           && memcmp(m, "click:", 6) == 0 && chars_ok(m + 6, len - 6, 1);
}


static int
breakdown_ok(const u_char *m, size_t len)
{
    return (len == 5 && memcmp(m, "views", 5) == 0)
           || (len == 7 && memcmp(m, "engaged", 7) == 0)
           || (len == 7 && memcmp(m, "replays", 7) == 0);
}


static void
check(const uint8_t *data, size_t size, time_t now)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i, j;
    ngx_http_engagement_aq_t        q;
    ngx_http_engagement_aq_error_t  err;

    memset(&err, 0, sizeof(err));

    rc = ngx_http_engagement_aq_parse(data, size, now, &q, &err);

    if (rc != NGX_OK) {
        if (rc != NGX_ERROR || (err.status != 400 && err.status != 422)
            || err.error == NULL || err.field == NULL
            || strlen(err.field) == 0 || err.message == NULL
            || strlen(err.message) == 0)
        {
            abort();
        }

        return;
    }

    if (q.scope > NGX_HTTP_ENGAGEMENT_AQ_ALL) {
        abort();
    }

    if (q.scope == NGX_HTTP_ENGAGEMENT_AQ_ALL
        ? q.id_len != 0
        : (q.id_len == 0 || q.id_len > NGX_HTTP_ENGAGEMENT_AQ_ID_MAX
           || !chars_ok(q.id, q.id_len, 1)))
    {
        abort();
    }

    if (q.step > NGX_HTTP_ENGAGEMENT_AQ_DAY || q.step_secs != secs[q.step]
        || q.from % (time_t) q.step_secs != 0 || q.from >= q.to
        || q.points == 0 || q.points > NGX_HTTP_ENGAGEMENT_AQ_POINTS_MAX
        || q.from + (time_t) ((q.points - 1) * q.step_secs) >= q.to
        || q.from + (time_t) (q.points * q.step_secs) < q.to
        || q.from < now - keep[q.step] || q.to > now + 86400)
    {
        abort();
    }

    if (q.by > NGX_HTTP_ENGAGEMENT_AQ_BY_CATEGORY
        || (q.by == NGX_HTTP_ENGAGEMENT_AQ_BY_CATEGORY
            && q.scope != NGX_HTTP_ENGAGEMENT_AQ_CHANNEL
            && q.scope != NGX_HTTP_ENGAGEMENT_AQ_ALL)
        || q.csv > 1)
    {
        abort();
    }

    if (q.nmetrics == 0 || q.nmetrics > NGX_HTTP_ENGAGEMENT_AQ_METRICS_MAX) {
        abort();
    }

    for (i = 0; i < q.nmetrics; i++) {
        if (!metric_ok(q.metric[i], q.metric_len[i])
            || (q.by && !breakdown_ok(q.metric[i], q.metric_len[i])))
        {
            abort();
        }

        for (j = 0; j < i; j++) {
            if (q.metric_len[i] == q.metric_len[j]
                && memcmp(q.metric[i], q.metric[j], q.metric_len[i]) == 0)
            {
                abort();
            }
        }

        /* uniques: alone, a content's, per day, no breakdown */
        if (q.metric_len[i] == 7 && memcmp(q.metric[i], "uniques", 7) == 0
            && (!q.uniques || q.nmetrics != 1
                || q.scope != NGX_HTTP_ENGAGEMENT_AQ_CONTENT
                || q.step != NGX_HTTP_ENGAGEMENT_AQ_DAY || q.by))
        {
            abort();
        }
    }
}


/* a time as ISO 8601 and as unix seconds: the same range; its buckets */

static void
round_trip(time_t t)
{
    char                            query[128], want[16];
    u_char                          got[16], *end;
    struct tm                       tm;
    ngx_uint_t                      s;
    ngx_http_engagement_aq_t        a, b;
    ngx_http_engagement_aq_error_t  err;

    static const char  *fmt[] = { "%Y%m%d%H%M", "%Y%m%d%H", "%Y%m%d" };

    gmtime_r(&t, &tm);

    snprintf(query, sizeof(query),
             "contentId=x&step=minute&from=%04d-%02d-%02dT%02d:%02d:%02dZ"
             "&to=%lld", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (long long) t + 60);

    if (ngx_http_engagement_aq_parse((u_char *) query, strlen(query), t, &a,
                                     &err)
        != NGX_OK)
    {
        abort();
    }

    snprintf(query, sizeof(query),
             "contentId=x&step=minute&from=%lld&to=%lld", (long long) t,
             (long long) t + 60);

    if (ngx_http_engagement_aq_parse((u_char *) query, strlen(query), t, &b,
                                     &err)
        != NGX_OK
        || a.from != b.from || a.to != b.to || a.points != b.points
        || a.from != t - t % 60)
    {
        abort();
    }

    for (s = 0; s <= NGX_HTTP_ENGAGEMENT_AQ_DAY; s++) {
        strftime(want, sizeof(want), fmt[s], &tm);
        end = ngx_http_engagement_aq_bucket(got, t, s);

        if ((size_t) (end - got) != strlen(want)
            || memcmp(got, want, end - got) != 0)
        {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t   *copy;
    uint64_t   v;
    size_t     i;
    time_t     t;

    /* an exact-size copy, so reading past the end is caught */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);

    check(copy, size, NOW_FIXED);

    /* a time in 2000-2199 from the first bytes */
    v = 0;

    for (i = 0; i < size && i < 8; i++) {
        v = (v << 8) | data[i];
    }

    t = (time_t) (946684800 + v % (7258118400ULL - 946684800 - 86400));

    check(copy, size, t);
    round_trip(t);

    free(copy);

    return 0;
}
