
/*
 * Series to Redis: every NGX_HTTP_ENGAGEMENT_SERIES_FLUSH ms one worker
 * of the edge (whichever asks first once the period has passed) takes a
 * round of rows from the series zone (at most
 * NGX_HTTP_ENGAGEMENT_SERIES_ROUND), expands them here, in a pool of its
 * own, into the bucket fields of every scope (content, channel, category,
 * all: see README, "Series"): the totals, likes, unlikes and clicks in
 * the bucket's hash, each breakdown in a hash of its own per bucket,
 * dimension and metric (<bucket>:<dim>:<metric>, e.g. <bucket>:country:
 * views, fields the values, e.g. US), adds up equal (key, hash, field)
 * triples, and sends them in one call of the series script under the
 * round's batch key: the script sets the key if absent and only then
 * adds the fields to the minute, hour and day buckets, so a round is
 * applied once whatever the resends. No answer (Redis down, a timeout):
 * the same worker sends the round again after a backoff; a worker that
 * stopped answering (killed, reloaded away) has its round taken over by another after a while, sent
 * from the rows themselves: the same counts under the same key. A round
 * that is full is followed by the next at once. In cluster mode the
 * round is one call per hash slot of its keys, each under its own batch
 * key in that slot (eng:sb:{<the slot's tag>}:<stream>:<seq>); the round
 * is answered when all are, and sent again whole if any failed.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_series.h"
#include "sink/redis/ngx_http_engagement_redis.h"


/* how often one worker of the edge starts a round (ms) */
#define NGX_HTTP_ENGAGEMENT_SERIES_FLUSH   1000

/* how often a worker looks whether a round is due (ms) */
#define NGX_HTTP_ENGAGEMENT_SERIES_CHECK   250

/* during the final rounds, how often to look whether one is answered */
#define NGX_HTTP_ENGAGEMENT_SERIES_POLL    20

/* a round whose sender is silent this much beyond two timeouts is taken */
#define NGX_HTTP_ENGAGEMENT_SERIES_SLACK   1000

/* TTLs: the batch key a day; buckets as the content's (flush.c) */
#define NGX_HTTP_ENGAGEMENT_SERIES_TTL_BATCH   "86400"
#define NGX_HTTP_ENGAGEMENT_SERIES_TTL_MINUTE  "691200"
#define NGX_HTTP_ENGAGEMENT_SERIES_TTL_HOUR    "34560000"
#define NGX_HTTP_ENGAGEMENT_SERIES_TTL_DAY     "95040000"

/* the fields of one row in one scope, at most */
#define NGX_HTTP_ENGAGEMENT_SERIES_FIELDS  (3 * 5 + 4)

/* the scopes */
#define NGX_HTTP_ENGAGEMENT_SCOPE_CONTENT  0
#define NGX_HTTP_ENGAGEMENT_SCOPE_CHANNEL  1
#define NGX_HTTP_ENGAGEMENT_SCOPE_CATEGORY 2
#define NGX_HTTP_ENGAGEMENT_SCOPE_ALL      3
#define NGX_HTTP_ENGAGEMENT_SCOPES         4

/* a field is written in some scopes only */
#define NGX_HTTP_ENGAGEMENT_FIELD_TOTAL    1   /* not the content's */
#define NGX_HTTP_ENGAGEMENT_FIELD_BY_CAT   2   /* channel and all only */
#define NGX_HTTP_ENGAGEMENT_FIELD_CONTENT  4   /* the content's only */


/* one bucket field's delta, before equal ones are added up */
typedef struct {
    ngx_str_t                     key;         /* the scope, e.g. eng:{all} */
    uint32_t                      minute;
    uint32_t                      group;       /* of its (key, minute, dim) */
    ngx_str_t                     dim;         /* "" (the bucket's hash) or
                                                  ":country:views", ... */
    ngx_str_t                     field;
    uint64_t                      delta;
} ngx_http_engagement_series_field_t;


/* an open-addressing index of the fields (or groups) seen: their number */
typedef struct {
    uint32_t                     *slot;        /* index + 1; 0: empty */
    ngx_uint_t                    mask;
} ngx_http_engagement_series_index_t;


/* a field of a row, the scopes it goes to */
typedef struct {
    ngx_str_t                     dim;         /* the hash: see field_t */
    ngx_str_t                     name;
    uint32_t                      delta;
    ngx_uint_t                    only;
} ngx_http_engagement_series_rfield_t;


static ngx_event_t                          ngx_http_engagement_series_ev;
static ngx_http_engagement_series_row_t    *ngx_http_engagement_series_rows;
static ngx_http_engagement_series_round_t   ngx_http_engagement_series_round;
static ngx_uint_t                           ngx_http_engagement_series_busy;
static ngx_msec_t                           ngx_http_engagement_series_retry;
static ngx_msec_t                           ngx_http_engagement_series_backoff;
static ngx_msec_t                           ngx_http_engagement_series_reclaim;
static ngx_http_engagement_redis_conf_t    *ngx_http_engagement_series_rcf;
static ngx_msec_t                           ngx_http_engagement_series_deadline;
static ngx_msec_t                           ngx_http_engagement_series_exit_at;
static ngx_uint_t                           ngx_http_engagement_series_exit_sent;
static ngx_uint_t                           ngx_http_engagement_series_last_full;
static ngx_uint_t                           ngx_http_engagement_series_answered;
static ngx_uint_t                           ngx_http_engagement_series_on;
/* engagement_milestone_webhook: a content's channel is recorded */
static ngx_uint_t                           ngx_http_engagement_series_channel;


static const char  *ngx_http_engagement_series_metric[] = {
    "views", "engaged", "replays"
};


static void
ngx_http_engagement_series_arm(ngx_msec_t t)
{
    if (ngx_http_engagement_series_ev.timer_set) {
        /* a sooner deadline within 300 ms of the old one is ignored */
        ngx_del_timer(&ngx_http_engagement_series_ev);
    }

    ngx_add_timer(&ngx_http_engagement_series_ev, t);
}


/* a, b and c joined, in the pool; NULL data: no memory */

static ngx_str_t
ngx_http_engagement_series_str(ngx_pool_t *pool, const char *a, size_t alen,
    u_char *b, size_t blen, const char *c, size_t clen)
{
    u_char     *p;
    ngx_str_t   s;

    s.len = alen + blen + clen;
    s.data = ngx_pnalloc(pool, s.len);

    if (s.data) {
        p = ngx_cpymem(s.data, a, alen);
        p = ngx_cpymem(p, b, blen);
        ngx_memcpy(p, c, clen);
    }

    return s;
}


/*
 * A row's fields: per counted metric its total and its breakdowns by
 * country, device, source (and category, for the channel and all
 * scopes), each breakdown's value in its dimension and metric's hash;
 * likes, unlikes, the interaction's clicks. Returns how many; 0 with no
 * memory.
 */

static ngx_uint_t
ngx_http_engagement_series_row_fields(ngx_pool_t *pool,
    ngx_http_engagement_series_row_t *row, u_char **part,
    ngx_http_engagement_series_rfield_t *f, ngx_uint_t *nomem)
{
    size_t       mlen, vlen;
    u_char      *v;
    ngx_uint_t   m, d, n;

    /* the breakdown hashes' suffixes after the bucket, [dim][metric] */
    static ngx_str_t    dims[4][3] = {
        { ngx_string(":country:views"), ngx_string(":country:engaged"),
          ngx_string(":country:replays") },
        { ngx_string(":device:views"), ngx_string(":device:engaged"),
          ngx_string(":device:replays") },
        { ngx_string(":source:views"), ngx_string(":source:engaged"),
          ngx_string(":source:replays") },
        { ngx_string(":category:views"), ngx_string(":category:engaged"),
          ngx_string(":category:replays") }
    };
    static ngx_uint_t   dpart[] = { NGX_HTTP_ENGAGEMENT_SERIES_COUNTRY,
                                    NGX_HTTP_ENGAGEMENT_SERIES_DEVICE,
                                    NGX_HTTP_ENGAGEMENT_SERIES_SOURCE,
                                    NGX_HTTP_ENGAGEMENT_SERIES_CATEGORY };

    n = 0;

    for (m = 0; m < 3; m++) {
        if (row->counts[m] == 0) {
            continue;
        }

        mlen = ngx_strlen(ngx_http_engagement_series_metric[m]);

        ngx_str_null(&f[n].dim);
        f[n].name.data = (u_char *) ngx_http_engagement_series_metric[m];
        f[n].name.len = mlen;
        f[n].delta = row->counts[m];
        f[n++].only = NGX_HTTP_ENGAGEMENT_FIELD_TOTAL;

        for (d = 0; d < 4; d++) {
            v = part[dpart[d]];
            vlen = row->len[dpart[d]];

            if (vlen == 0) {
                v = (u_char *) "unknown";
                vlen = sizeof("unknown") - 1;
            }

            /*
             * in the hash of the dimension and metric, the value; it
             * points into the round's row, kept until the round is sent
             */
            f[n].dim = dims[d][m];
            f[n].name.data = v;
            f[n].name.len = vlen;
            f[n].delta = row->counts[m];
            f[n++].only = (d == 3) ? NGX_HTTP_ENGAGEMENT_FIELD_BY_CAT : 0;
        }
    }

    if (row->len[NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL]
        && ngx_http_engagement_series_channel)
    {
        /*
         * the content's channel, rows counted in <bucket>:channel: the
         * milestone script (redis_scripts.c) names the day's in a webhook
         * notification and rate-limits per channel
         */
        ngx_str_set(&f[n].dim, ":channel");
        f[n].name.data = part[NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL];
        f[n].name.len = row->len[NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL];
        f[n].delta = 1;
        f[n++].only = NGX_HTTP_ENGAGEMENT_FIELD_CONTENT;
    }

    if (row->counts[NGX_HTTP_ENGAGEMENT_SERIES_LIKES]) {
        ngx_str_null(&f[n].dim);
        ngx_str_set(&f[n].name, "likes");
        f[n].delta = row->counts[NGX_HTTP_ENGAGEMENT_SERIES_LIKES];
        f[n++].only = 0;
    }

    if (row->counts[NGX_HTTP_ENGAGEMENT_SERIES_UNLIKES]) {
        ngx_str_null(&f[n].dim);
        ngx_str_set(&f[n].name, "unlikes");
        f[n].delta = row->counts[NGX_HTTP_ENGAGEMENT_SERIES_UNLIKES];
        f[n++].only = 0;
    }

    if (row->counts[NGX_HTTP_ENGAGEMENT_SERIES_CLICKS]) {
        v = part[NGX_HTTP_ENGAGEMENT_SERIES_NAME];
        vlen = row->len[NGX_HTTP_ENGAGEMENT_SERIES_NAME];

        if (vlen == 0) {
            v = (u_char *) "unknown";
            vlen = sizeof("unknown") - 1;
        }

        ngx_str_null(&f[n].dim);
        f[n].name = ngx_http_engagement_series_str(pool, "click:",
                                                   sizeof("click:") - 1,
                                                   v, vlen, "", 0);
        if (f[n].name.data == NULL) {
            *nomem = 1;
            return 0;
        }

        f[n].delta = row->counts[NGX_HTTP_ENGAGEMENT_SERIES_CLICKS];
        f[n++].only = 0;
    }

    return n;
}


/* whether two fields go to one hash: the same scope, minute and dim */

static ngx_inline ngx_uint_t
ngx_http_engagement_series_same(ngx_http_engagement_series_field_t *a,
    ngx_http_engagement_series_field_t *b)
{
    /* dim.data is NULL for the bucket's own hash: not given to memcmp */
    return a->minute == b->minute
           && a->key.len == b->key.len
           && a->dim.len == b->dim.len
           && ngx_memcmp(a->key.data, b->key.data, a->key.len) == 0
           && (a->dim.len == 0
               || ngx_memcmp(a->dim.data, b->dim.data, a->dim.len) == 0);
}


static ngx_int_t
ngx_http_engagement_series_index(ngx_pool_t *pool,
    ngx_http_engagement_series_index_t *ix, ngx_uint_t n)
{
    ngx_uint_t  size;

    for (size = 16; size < 2 * n; size *= 2) { /* void */ }

    ix->slot = ngx_pcalloc(pool, size * sizeof(uint32_t));
    ix->mask = size - 1;

    return ix->slot ? NGX_OK : NGX_ERROR;
}


/*
 * Equal (key, minute, dim, field) deltas added up, and the fields put in
 * groups of one (key, minute, dim), each group's fields together, groups in
 * the order they came: *out, *nout. Two indexes of hashes, no sort: a
 * round's fields are many (up to some 37,000), a sort's comparisons
 * were most of a round's cost.
 */

static ngx_int_t
ngx_http_engagement_series_sum(ngx_pool_t *pool,
    ngx_http_engagement_series_field_t *f, ngx_uint_t n,
    ngx_http_engagement_series_field_t **out, ngx_uint_t *nout)
{
    uint32_t                             h, *at, ngroups;
    ngx_uint_t                           i, k, u, j, *first, *count;
    ngx_http_engagement_series_field_t  *g, *sorted;
    ngx_http_engagement_series_index_t   gix, fix;

    if (ngx_http_engagement_series_index(pool, &gix, n) != NGX_OK
        || ngx_http_engagement_series_index(pool, &fix, n) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the groups: g[k] is the first field of group k's (key, minute, dim) */
    g = ngx_palloc(pool, n * sizeof(ngx_http_engagement_series_field_t));
    if (g == NULL) {
        return NGX_ERROR;
    }

    ngroups = 0;
    u = 0;

    for (i = 0; i < n; i++) {
        h = ngx_murmur_hash2(f[i].key.data, f[i].key.len)
            ^ (f[i].minute * 0x9e3779b1)
            ^ (f[i].dim.len ? ngx_murmur_hash2(f[i].dim.data, f[i].dim.len)
                            : 0);

        for (j = h & gix.mask; /* void */ ; j = (j + 1) & gix.mask) {
            at = &gix.slot[j];

            if (*at == 0) {
                g[ngroups] = f[i];
                *at = ++ngroups;
                break;
            }

            k = *at - 1;

            if (ngx_http_engagement_series_same(&g[k], &f[i])) {
                break;
            }
        }

        f[i].group = *at - 1;

        /* the field within its group; added to an equal one before it */
        h = ngx_murmur_hash2(f[i].field.data, f[i].field.len)
            ^ (f[i].group * 0x85ebca6b);

        for (j = h & fix.mask; /* void */ ; j = (j + 1) & fix.mask) {
            at = &fix.slot[j];

            if (*at == 0) {
                /* in place: u <= i */
                f[u] = f[i];
                *at = ++u;
                break;
            }

            k = *at - 1;

            if (f[k].group == f[i].group && f[k].field.len == f[i].field.len
                && ngx_memcmp(f[k].field.data, f[i].field.data,
                              f[i].field.len)
                   == 0)
            {
                f[k].delta += f[i].delta;
                break;
            }
        }
    }

    /* each group's fields together: counted, then placed */
    first = ngx_pcalloc(pool, (ngroups + 1) * sizeof(ngx_uint_t));
    count = ngx_pcalloc(pool, (ngroups + 1) * sizeof(ngx_uint_t));
    sorted = ngx_palloc(pool, (u + 1)
                              * sizeof(ngx_http_engagement_series_field_t));

    if (first == NULL || count == NULL || sorted == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < u; i++) {
        count[f[i].group]++;
    }

    for (k = 1; k < ngroups; k++) {
        first[k] = first[k - 1] + count[k - 1];
    }

    for (i = 0; i < u; i++) {
        sorted[first[f[i].group]++] = f[i];
    }

    *out = sorted;
    *nout = u;

    return NGX_OK;
}


/*
 * The round's rows expanded into bucket fields of every scope, added up
 * and grouped: *out, *nout. NGX_ERROR: no memory.
 */

static ngx_int_t
ngx_http_engagement_series_expand(ngx_pool_t *pool,
    ngx_http_engagement_series_row_t *rows, ngx_uint_t nrows,
    ngx_http_engagement_series_field_t **out, ngx_uint_t *nout)
{
    u_char                              *part[NGX_HTTP_ENGAGEMENT_SERIES_PARTS];
    ngx_str_t                            scope[NGX_HTTP_ENGAGEMENT_SCOPES];
    ngx_uint_t                           i, k, s, n, nf, nomem;
    ngx_http_engagement_series_row_t    *row;
    ngx_http_engagement_series_field_t  *fields;
    ngx_http_engagement_series_rfield_t  rf[NGX_HTTP_ENGAGEMENT_SERIES_FIELDS];

    fields = ngx_palloc(pool, nrows * NGX_HTTP_ENGAGEMENT_SCOPES
                              * NGX_HTTP_ENGAGEMENT_SERIES_FIELDS
                              * sizeof(ngx_http_engagement_series_field_t));
    if (fields == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    nomem = 0;

    for (i = 0; i < nrows; i++) {
        row = &rows[i];

        part[0] = row->key;

        for (k = 1; k < NGX_HTTP_ENGAGEMENT_SERIES_PARTS; k++) {
            part[k] = part[k - 1] + row->len[k - 1];
        }

        nf = ngx_http_engagement_series_row_fields(pool, row, part, rf,
                                                   &nomem);
        if (nomem) {
            return NGX_ERROR;
        }

        /* a scope without its id (no channel, no category) is not kept */
        ngx_str_null(&scope[NGX_HTTP_ENGAGEMENT_SCOPE_CHANNEL]);
        ngx_str_null(&scope[NGX_HTTP_ENGAGEMENT_SCOPE_CATEGORY]);
        ngx_str_set(&scope[NGX_HTTP_ENGAGEMENT_SCOPE_ALL], "eng:{all}");

        scope[NGX_HTTP_ENGAGEMENT_SCOPE_CONTENT] =
            ngx_http_engagement_series_str(pool, "eng:{c:", 7,
                                  part[NGX_HTTP_ENGAGEMENT_SERIES_CONTENT],
                                  row->len[NGX_HTTP_ENGAGEMENT_SERIES_CONTENT],
                                  "}", 1);

        if (row->len[NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL]) {
            scope[NGX_HTTP_ENGAGEMENT_SCOPE_CHANNEL] =
                ngx_http_engagement_series_str(pool, "eng:{ch:", 8,
                                  part[NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL],
                                  row->len[NGX_HTTP_ENGAGEMENT_SERIES_CHANNEL],
                                  "}", 1);
            nomem |= (scope[NGX_HTTP_ENGAGEMENT_SCOPE_CHANNEL].data == NULL);
        }

        if (row->len[NGX_HTTP_ENGAGEMENT_SERIES_CATEGORY]) {
            scope[NGX_HTTP_ENGAGEMENT_SCOPE_CATEGORY] =
                ngx_http_engagement_series_str(pool, "eng:{cat:", 9,
                                  part[NGX_HTTP_ENGAGEMENT_SERIES_CATEGORY],
                                  row->len[NGX_HTTP_ENGAGEMENT_SERIES_CATEGORY],
                                  "}", 1);
            nomem |= (scope[NGX_HTTP_ENGAGEMENT_SCOPE_CATEGORY].data == NULL);
        }

        if (nomem || scope[NGX_HTTP_ENGAGEMENT_SCOPE_CONTENT].data == NULL) {
            return NGX_ERROR;
        }

        for (s = 0; s < NGX_HTTP_ENGAGEMENT_SCOPES; s++) {
            if (scope[s].len == 0) {
                continue;
            }

            for (k = 0; k < nf; k++) {
                /* the content's totals are flush.c's */
                if ((rf[k].only & NGX_HTTP_ENGAGEMENT_FIELD_TOTAL)
                    && s == NGX_HTTP_ENGAGEMENT_SCOPE_CONTENT)
                {
                    continue;
                }

                if ((rf[k].only & NGX_HTTP_ENGAGEMENT_FIELD_CONTENT)
                    && s != NGX_HTTP_ENGAGEMENT_SCOPE_CONTENT)
                {
                    continue;
                }

                if ((rf[k].only & NGX_HTTP_ENGAGEMENT_FIELD_BY_CAT)
                    && s != NGX_HTTP_ENGAGEMENT_SCOPE_CHANNEL
                    && s != NGX_HTTP_ENGAGEMENT_SCOPE_ALL)
                {
                    continue;
                }

                fields[n].key = scope[s];
                fields[n].dim = rf[k].dim;
                fields[n].minute = row->minute;
                fields[n].field = rf[k].name;
                fields[n].delta = rf[k].delta;
                n++;
            }
        }
    }

    return ngx_http_engagement_series_sum(pool, fields, n, out, nout);
}


static void
ngx_http_engagement_series_fail(void)
{
    ngx_http_engagement_series_conf_t  *sc;

    sc = ngx_http_engagement_series_current();

    if (sc) {
        ngx_http_engagement_series_inc(sc, errors, 1);
    }

    /* the round stays this worker's: sent again after a backoff */
    ngx_http_engagement_series_retry = ngx_current_msec
                                       + ngx_http_engagement_series_backoff;
    ngx_http_engagement_series_backoff = ngx_min(
                                     2 * ngx_http_engagement_series_backoff,
                                     ngx_http_engagement_series_rcf
                                         ->backoff_max);
}


/* the script's answer: [applied (1) or found applied before (0), refused] */

static void
ngx_http_engagement_series_reply(redisReply *reply, void *data)
{
    ngx_uint_t                           full;
    ngx_http_engagement_series_conf_t   *sc;
    ngx_http_engagement_series_round_t  *round;

    ngx_http_engagement_series_busy = 0;
    sc = ngx_http_engagement_series_current();
    round = &ngx_http_engagement_series_round;

    if (sc == NULL || round->seq != (uint64_t) (uintptr_t) data) {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement redis: series script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        ngx_http_engagement_series_fail();
        return;
    }

    if (reply->element[0]->integer == 0) {
        ngx_http_engagement_series_inc(sc, repeats, 1);
    }

    if (reply->element[1]->integer > 0) {
        ngx_http_engagement_series_inc(sc, refused,
                                       reply->element[1]->integer);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "engagement redis: %L series fields refused by Redis "
                      "(a bucket key of another type?)",
                      (int64_t) reply->element[1]->integer);
    }

    full = (round->n == NGX_HTTP_ENGAGEMENT_SERIES_ROUND);
    ngx_http_engagement_series_last_full = full;
    ngx_http_engagement_series_answered = 1;

    ngx_http_engagement_series_confirm(sc, round,
                                       ngx_http_engagement_series_rows);

    ngx_http_engagement_series_backoff =
                                   ngx_http_engagement_series_rcf->backoff_min;
    ngx_http_engagement_series_retry = 0;

    if (full && !ngx_exiting && ngx_http_engagement_series_ev.timer_set) {
        /* a backlog drains round after round */
        (void) ngx_http_engagement_series_due(sc, 0);
        ngx_http_engagement_series_arm(1);
    }
}


/*
 * One script call of fields f[0..nf) (sorted as expand makes them) under
 * the round's batch key; in cluster mode (tag set) the fields of one hash
 * slot, under eng:sb:{<the slot's tag>}:<stream>:<seq>.
 */

static ngx_int_t
ngx_http_engagement_series_call(ngx_pool_t *pool,
    ngx_http_engagement_series_round_t *round,
    ngx_http_engagement_series_field_t *f, ngx_uint_t nf, ngx_str_t *tag,
    ngx_http_engagement_redis_cb_pt cb)
{
    u_char                               *p, *nums;
    size_t                               *lens;
    ngx_tm_t                              tm;
    ngx_uint_t                            i, j, g, ngroups, argc, nkeys;
    const char                          **argv;

    ngroups = 0;

    for (i = 0; i < nf; i++) {
        if (i == 0 || !ngx_http_engagement_series_same(&f[i], &f[i - 1])) {
            ngroups++;
        }
    }

    argc = 2 + ngroups + 4 + 3 * ngroups + 2 * nf;

    argv = ngx_palloc(pool, argc * sizeof(char *));
    lens = ngx_palloc(pool, argc * sizeof(size_t));
    nums = ngx_pnalloc(pool, (sizeof("eng:sb:{}::") + 4 + 16 + NGX_INT64_LEN)
                             + (ngroups + 1) * (12 + NGX_INT64_LEN)
                             + nf * NGX_INT64_LEN);
    if (argv == NULL || lens == NULL || nums == NULL) {
        return NGX_ERROR;
    }

    nkeys = 1 + ngroups;
    p = nums;

#define ngx_http_engagement_series_arg(s, l)                                  \
    argv[j] = (const char *) (s); lens[j] = (l); j++

    j = 0;

    argv[j] = (const char *) p;
    p = ngx_http_engagement_put_uint(p, nkeys);
    lens[j] = p - (u_char *) argv[j];
    j++;

    /* KEYS[1]: the round's batch key, of this zone's stream */
    argv[j] = (const char *) p;
    p = ngx_cpymem(p, "eng:sb:", sizeof("eng:sb:") - 1);

    if (tag) {
        *p++ = '{';
        p = ngx_cpymem(p, tag->data, tag->len);
        *p++ = '}';
        *p++ = ':';
    }

    p = ngx_http_engagement_put_hex64(p, round->stream);
    *p++ = ':';
    p = ngx_http_engagement_put_uint(p, round->seq);
    lens[j] = p - (u_char *) argv[j];
    j++;

    /* KEYS[2..]: each group's scope key */
    for (i = 0; i < nf; i++) {
        if (i == 0 || !ngx_http_engagement_series_same(&f[i], &f[i - 1])) {
            ngx_http_engagement_series_arg(f[i].key.data, f[i].key.len);
        }
    }

    ngx_http_engagement_series_arg(NGX_HTTP_ENGAGEMENT_SERIES_TTL_BATCH,
                            sizeof(NGX_HTTP_ENGAGEMENT_SERIES_TTL_BATCH) - 1);
    ngx_http_engagement_series_arg(NGX_HTTP_ENGAGEMENT_SERIES_TTL_MINUTE,
                            sizeof(NGX_HTTP_ENGAGEMENT_SERIES_TTL_MINUTE) - 1);
    ngx_http_engagement_series_arg(NGX_HTTP_ENGAGEMENT_SERIES_TTL_HOUR,
                            sizeof(NGX_HTTP_ENGAGEMENT_SERIES_TTL_HOUR) - 1);
    ngx_http_engagement_series_arg(NGX_HTTP_ENGAGEMENT_SERIES_TTL_DAY,
                            sizeof(NGX_HTTP_ENGAGEMENT_SERIES_TTL_DAY) - 1);

    /*
     * per group: its minute (YYYYMMDDHHMM), its hash's suffix after the
     * bucket ("" or ":country:views", ...), how many fields, the fields
     */
    for (i = 0; i < nf; i = g) {
        for (g = i + 1; g < nf; g++) {
            if (!ngx_http_engagement_series_same(&f[g], &f[i])) {
                break;
            }
        }

        ngx_gmtime((time_t) f[i].minute * 60, &tm);

        argv[j] = (const char *) p;
        p = ngx_http_engagement_put_digits(p, tm.ngx_tm_year, 4);
        p = ngx_http_engagement_put_digits(p, tm.ngx_tm_mon, 2);
        p = ngx_http_engagement_put_digits(p, tm.ngx_tm_mday, 2);
        p = ngx_http_engagement_put_digits(p, tm.ngx_tm_hour, 2);
        p = ngx_http_engagement_put_digits(p, tm.ngx_tm_min, 2);
        lens[j] = p - (u_char *) argv[j];
        j++;

        argv[j] = f[i].dim.len ? (const char *) f[i].dim.data : "";
        lens[j] = f[i].dim.len;
        j++;

        argv[j] = (const char *) p;
        p = ngx_http_engagement_put_uint(p, g - i);
        lens[j] = p - (u_char *) argv[j];
        j++;

        for ( /* void */ ; i < g; i++) {
            ngx_http_engagement_series_arg(f[i].field.data, f[i].field.len);

            argv[j] = (const char *) p;
            p = ngx_http_engagement_put_uint(p, f[i].delta);
            lens[j] = p - (u_char *) argv[j];
            j++;
        }
    }

#undef ngx_http_engagement_series_arg

    return ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_SERIES,
                                          cb, (void *) (uintptr_t) round->seq,
                                          (int) j, argv, lens);
}


/*
 * Cluster mode: the parts of the round (one call per hash slot) answer
 * here; the last one answers the round as one script would have: failed
 * if any part failed (the round is sent again whole: a part applied
 * already meets its batch key), else applied unless every part was a
 * resend, with the refused fields of all parts.
 */

static ngx_uint_t   ngx_http_engagement_series_parts;
static ngx_uint_t   ngx_http_engagement_series_part_failed;
static ngx_uint_t   ngx_http_engagement_series_part_applied;
static long long    ngx_http_engagement_series_part_refused;
static uint64_t     ngx_http_engagement_series_part_seq;


static void
ngx_http_engagement_series_part_reply(redisReply *reply, void *data)
{
    redisReply   r[3], *e[2];

    if ((uint64_t) (uintptr_t) data != ngx_http_engagement_series_part_seq
        || ngx_http_engagement_series_parts == 0)
    {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "engagement redis: series script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        ngx_http_engagement_series_part_failed = 1;

    } else {
        ngx_http_engagement_series_part_applied |=
                                          (reply->element[0]->integer != 0);
        ngx_http_engagement_series_part_refused += reply->element[1]->integer;
    }

    if (--ngx_http_engagement_series_parts) {
        return;
    }

    if (ngx_http_engagement_series_part_failed) {
        ngx_http_engagement_series_reply(NULL, data);
        return;
    }

    ngx_memzero(r, sizeof(r));
    r[0].type = REDIS_REPLY_ARRAY;
    r[0].elements = 2;
    r[0].element = e;
    e[0] = &r[1];
    e[1] = &r[2];
    r[1].type = REDIS_REPLY_INTEGER;
    r[1].integer = ngx_http_engagement_series_part_applied;
    r[2].type = REDIS_REPLY_INTEGER;
    r[2].integer = ngx_http_engagement_series_part_refused;

    ngx_http_engagement_series_reply(&r[0], data);
}


typedef struct {
    ngx_uint_t                            slot;
    ngx_uint_t                            k;
} ngx_http_engagement_series_slot_t;


static int ngx_libc_cdecl
ngx_http_engagement_series_slot_cmp(const void *one, const void *two)
{
    const ngx_http_engagement_series_slot_t  *a = one, *b = two;

    if (a->slot != b->slot) {
        return (a->slot < b->slot) ? -1 : 1;
    }

    return (a->k < b->k) ? -1 : (a->k > b->k);
}


/* cluster mode: one call per hash slot of the fields' keys */

static ngx_int_t
ngx_http_engagement_series_slots(ngx_pool_t *pool,
    ngx_http_engagement_series_round_t *round,
    ngx_http_engagement_series_field_t *f, ngx_uint_t nf)
{
    ngx_uint_t                           i, j, k;
    ngx_http_engagement_series_slot_t   *sl;
    ngx_http_engagement_series_field_t  *part;

    sl = ngx_palloc(pool, nf * sizeof(ngx_http_engagement_series_slot_t));
    part = ngx_palloc(pool, nf * sizeof(ngx_http_engagement_series_field_t));
    if (sl == NULL || part == NULL) {
        return NGX_ERROR;
    }

    for (k = 0; k < nf; k++) {
        sl[k].slot = ngx_http_engagement_cluster_slot(f[k].key.data,
                                                      f[k].key.len);
        sl[k].k = k;
    }

    /* by slot, each slot's fields in their order: groups stay together */
    ngx_qsort(sl, nf, sizeof(ngx_http_engagement_series_slot_t),
              ngx_http_engagement_series_slot_cmp);

    ngx_http_engagement_series_parts = 0;
    ngx_http_engagement_series_part_failed = 0;
    ngx_http_engagement_series_part_applied = 0;
    ngx_http_engagement_series_part_refused = 0;
    ngx_http_engagement_series_part_seq = round->seq;

    if (nf == 0) {
        /* nothing to add: the batch key alone, in slot 0 */
        if (ngx_http_engagement_series_call(pool, round, f, 0,
                ngx_http_engagement_cluster_tag(0),
                ngx_http_engagement_series_part_reply)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_engagement_series_parts = 1;
        return NGX_OK;
    }

    for (i = 0; i < nf; i = j) {
        for (j = i; j < nf && sl[j].slot == sl[i].slot; j++) {
            part[j - i] = f[sl[j].k];
        }

        if (ngx_http_engagement_series_call(pool, round, part, j - i,
                ngx_http_engagement_cluster_tag(sl[i].slot),
                ngx_http_engagement_series_part_reply)
            != NGX_OK)
        {
            /* the parts sent answer the round as failed */
            ngx_http_engagement_series_part_failed = 1;
            return ngx_http_engagement_series_parts ? NGX_OK : NGX_ERROR;
        }

        ngx_http_engagement_series_parts++;
    }

    return NGX_OK;
}


/* the round's arguments, built in pool, sent: NGX_OK, or not sent */

static ngx_int_t
ngx_http_engagement_series_send(ngx_pool_t *pool,
    ngx_http_engagement_series_conf_t *sc,
    ngx_http_engagement_series_round_t *round)
{
    ngx_int_t                             rc;
    ngx_uint_t                            nf;
    ngx_http_engagement_series_field_t   *f;

    if (ngx_http_engagement_series_expand(pool,
                                          ngx_http_engagement_series_rows,
                                          round->n, &f, &nf)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_redis_clustered()) {
        rc = ngx_http_engagement_series_slots(pool, round, f, nf);

    } else {
        rc = ngx_http_engagement_series_call(pool, round, f, nf, NULL,
                                             ngx_http_engagement_series_reply);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_engagement_series_inc(sc, fields, nf);

    return NGX_OK;
}


/*
 * A graceful stop or reload: this worker sends one more round of every
 * pending row, due or not (the current minute's too: at a stop the zone
 * goes with the master), and the next while a round was full, within
 * engagement_flush_deadline; a round of another worker in flight, or
 * nothing pending, ends it. The counters flush keeps the connection
 * until this is done. NGX_OK: a round to send in *round.
 */

static ngx_int_t
ngx_http_engagement_series_exiting(ngx_http_engagement_series_conf_t *sc,
    ngx_http_engagement_series_round_t *round)
{
    ngx_int_t  rc;

    if (ngx_http_engagement_series_exit_at == 0) {
        ngx_http_engagement_series_exit_at = ngx_current_msec
                                         + ngx_http_engagement_series_deadline;
    }

    if ((ngx_msec_int_t) (ngx_current_msec
                          - ngx_http_engagement_series_exit_at) >= 0
        || !ngx_http_engagement_redis_ready()
        || (ngx_http_engagement_series_exit_sent
            && !ngx_http_engagement_series_busy
            && ngx_http_engagement_series_answered
            && !ngx_http_engagement_series_last_full))
    {
        /* done: what is left goes with the zone (or the new workers) */
        ngx_http_engagement_series_on = 0;
        return NGX_DONE;
    }

    if (ngx_http_engagement_series_busy
        || (ngx_http_engagement_series_retry
            && (ngx_msec_int_t) (ngx_current_msec
                                 - ngx_http_engagement_series_retry) < 0))
    {
        return NGX_AGAIN;
    }

    rc = ngx_http_engagement_series_take(sc, NGX_HTTP_ENGAGEMENT_SERIES_ALL,
                                         ngx_http_engagement_series_reclaim,
                                         0, round,
                                         ngx_http_engagement_series_rows);
    if (rc != NGX_OK) {
        ngx_http_engagement_series_on = 0;
        return NGX_DONE;
    }

    ngx_http_engagement_series_exit_sent = 1;
    ngx_http_engagement_series_last_full = 0;
    ngx_http_engagement_series_answered = 0;

    return NGX_OK;
}


static void
ngx_http_engagement_series_handler(ngx_event_t *ev)
{
    ngx_int_t                            rc;
    ngx_uint_t                           may_start;
    ngx_pool_t                          *pool;
    ngx_http_engagement_series_conf_t   *sc;
    ngx_http_engagement_series_round_t  *round;

    sc = ev->data;
    round = &ngx_http_engagement_series_round;

    if (ngx_terminate || !ngx_http_engagement_series_on) {
        return;
    }

    if (ngx_exiting) {
        rc = ngx_http_engagement_series_exiting(sc, round);

        if (rc == NGX_DONE) {
            return;
        }

        if (rc == NGX_AGAIN) {
            ngx_http_engagement_series_arm(NGX_HTTP_ENGAGEMENT_SERIES_POLL);
            return;
        }

        goto send;
    }

    if (ngx_http_engagement_series_busy
        || !ngx_http_engagement_redis_ready()
        || (ngx_http_engagement_series_retry
            && (ngx_msec_int_t) (ngx_current_msec
                                 - ngx_http_engagement_series_retry) < 0))
    {
        goto done;
    }

    may_start = ngx_http_engagement_series_stats(sc)->pending
                && ngx_http_engagement_series_due(sc,
                                           NGX_HTTP_ENGAGEMENT_SERIES_FLUSH);

    rc = ngx_http_engagement_series_take(sc, may_start,
                                         ngx_http_engagement_series_reclaim,
                                         ngx_http_engagement_series_rcf
                                             ->buckets,
                                         round,
                                         ngx_http_engagement_series_rows);
    if (rc != NGX_OK) {
        goto done;
    }

send:

    pool = ngx_create_pool(16384, ngx_cycle->log);

    if (pool == NULL
        || ngx_http_engagement_series_send(pool, sc, round) != NGX_OK)
    {
        /* the connection is gone, or no memory: sent again later */
        ngx_http_engagement_series_fail();

    } else {
        ngx_http_engagement_series_busy = 1;
    }

    if (pool) {
        /* hiredis has the command formatted: the arguments may go */
        ngx_destroy_pool(pool);
    }

done:

    ngx_http_engagement_series_arm(ngx_exiting
                                   ? NGX_HTTP_ENGAGEMENT_SERIES_POLL
                                   : NGX_HTTP_ENGAGEMENT_SERIES_CHECK);
}


/* whether the final rounds are over (the counters flush may then close
 * the connection) */

ngx_uint_t
ngx_http_engagement_series_flush_done(void)
{
    return !ngx_http_engagement_series_on;
}


ngx_int_t
ngx_http_engagement_series_flush_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_series_conf_t  *sc;

    sc = ngx_http_engagement_series_current();

    if (sc == NULL || emcf->redis == NULL) {
        return NGX_OK;
    }

    ngx_http_engagement_series_rows = ngx_alloc(
                            NGX_HTTP_ENGAGEMENT_SERIES_ROUND
                            * sizeof(ngx_http_engagement_series_row_t),
                            cycle->log);
    if (ngx_http_engagement_series_rows == NULL) {
        return NGX_ERROR;
    }

    ngx_http_engagement_series_rcf = emcf->redis;
    ngx_http_engagement_series_channel = (emcf->webhook != NULL);
    ngx_http_engagement_series_backoff = emcf->redis->backoff_min;
    ngx_http_engagement_series_retry = 0;
    ngx_http_engagement_series_busy = 0;
    ngx_memzero(&ngx_http_engagement_series_round,
                sizeof(ngx_http_engagement_series_round_t));

    /* a round unanswered this long is another worker's to send */
    ngx_http_engagement_series_reclaim = 2 * emcf->redis->timeout
                                         + NGX_HTTP_ENGAGEMENT_SERIES_SLACK;

    ngx_http_engagement_series_deadline = emcf->exit_deadline;
    ngx_http_engagement_series_exit_at = 0;
    ngx_http_engagement_series_exit_sent = 0;
    ngx_http_engagement_series_last_full = 0;
    ngx_http_engagement_series_on = 1;

    /*
     * Not cancelable: at a graceful stop or reload it fires once more
     * (within NGX_HTTP_ENGAGEMENT_SERIES_CHECK ms) and sends the final
     * rounds, bounded by engagement_flush_deadline.
     */
    ngx_http_engagement_series_ev.handler = ngx_http_engagement_series_handler;
    ngx_http_engagement_series_ev.data = sc;
    ngx_http_engagement_series_ev.log = cycle->log;
    ngx_http_engagement_series_ev.cancelable = 0;

    /* workers look at different times: whoever is free takes the turn */
    ngx_add_timer(&ngx_http_engagement_series_ev,
                  NGX_HTTP_ENGAGEMENT_SERIES_CHECK / 2
                  + ngx_random() % NGX_HTTP_ENGAGEMENT_SERIES_CHECK);

    return NGX_OK;
}


/* series rounds are split per hash slot in cluster mode (series_slots) */

ngx_uint_t
ngx_http_engagement_series_cluster_safe(void)
{
    return 1;
}
