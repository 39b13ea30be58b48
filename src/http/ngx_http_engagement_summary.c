
/*
 * The summary endpoint: the totals of one content id or of a batch, from
 * shared memory when it can answer; otherwise read from Redis without
 * blocking the worker (the request waits for the reply), and cached.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "http/ngx_http_engagement_http.h"
#include "store/ngx_http_engagement_live.h"


/* the read script's arguments: key count, 2 keys, the reaction types */
#define NGX_HTTP_ENGAGEMENT_READ_ARGS                                         \
    (3 + NGX_HTTP_ENGAGEMENT_REACTIONS_MAX)

/* its longest key */
#define NGX_HTTP_ENGAGEMENT_READ_KEY_LEN                                      \
    (sizeof("eng:{c:}:uv") + NGX_HTTP_ENGAGEMENT_ID_MAX)

/* one item of an answer at its longest */
#define NGX_HTTP_ENGAGEMENT_ITEM_LEN                                          \
    (sizeof("{\"contentId\":\"\",\"views\":,\"engagedViews\":,"             \
            "\"replays\":,\"uniqueViewers\":,\"pending\":},") - 1          \
     + NGX_HTTP_ENGAGEMENT_ID_MAX + 5 * NGX_INT64_LEN                         \
     + NGX_HTTP_ENGAGEMENT_REACTIONS_LEN                                      \
     + sizeof(",\"live\":,\"peak\":") + 2 * NGX_INT64_LEN)


/* an id asked for, and what it shows */
typedef struct {
    ngx_str_t                      id;
    uint64_t                       hash;
    ngx_http_engagement_view_t     view;
    ngx_uint_t                     failed;
} ngx_http_engagement_item_t;


/* what a summary answers, in the request's pool */
typedef struct {
    ngx_http_engagement_item_t    *items;
    ngx_uint_t                     n;
    ngx_uint_t                     batch;       /* {"items":[...]} */
} ngx_http_engagement_summary_t;


/* a summary waiting for Redis; outlives the request if it is aborted */
typedef struct {
    ngx_http_request_t            *request;     /* NULL: nobody waits */
    ngx_pool_cleanup_t            *cleanup;     /* in the request's pool */
    ngx_http_engagement_zone_t    *zone;
    ngx_http_engagement_summary_t *summary;
    ngx_uint_t                     outstanding;
} ngx_http_engagement_read_t;


/* one Redis read, of one id */
typedef struct {
    ngx_http_engagement_read_t    *read;
    ngx_http_engagement_item_t    *item;
    u_char                         id[NGX_HTTP_ENGAGEMENT_ID_MAX];
    size_t                         id_len;
    uint64_t                       hash;
} ngx_http_engagement_read_call_t;


/*
 * The content id of a summary request: the rest of the URI after a prefix
 * location's name ("/engagement/summary/abc" -> "abc"), or its last path
 * segment in other locations. An empty rest means the batch form.
 */

static ngx_int_t
ngx_http_engagement_summary_id(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char                    *p, *start, *end;
    ngx_int_t                  rc;
    ngx_http_core_loc_conf_t  *clcf;

    rc = ngx_http_engagement_uri_rest(r, id);

    if (rc != NGX_DECLINED) {
        return rc == NGX_OK ? NGX_OK : NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    start = r->uri.data;
    end = r->uri.data + r->uri.len;

    if (clcf->exact_match) {
        p = end;

    } else {
        for (p = end; p > start && p[-1] != '/'; p--) { /* void */ }
    }

    id->data = p;
    id->len = end - p;

    return NGX_OK;
}


static u_char *
ngx_http_engagement_summary_item(u_char *p, ngx_http_engagement_zone_t *z,
    ngx_str_t *id, ngx_http_engagement_view_t *v)
{
    ngx_http_engagement_live_t        live;
    ngx_http_engagement_live_conf_t  *lc;

    p = ngx_sprintf(p, "{\"contentId\":\"%V\",\"views\":%uL,"
                    "\"engagedViews\":%uL,\"replays\":%uL",
                    id, v->counts.views, v->counts.engaged,
                    v->counts.replays);

    if (z->redis) {
        p = ngx_sprintf(p, ",\"uniqueViewers\":%uL,\"pending\":%uL",
                        v->uniques, v->pending);
    }

    if (v->nreactions) {
        p = ngx_http_engagement_reactions_json(p, v->reactions,
                                               v->nreactions);
    }

    /* live viewers, where heartbeats are taken */
    lc = ngx_http_engagement_live_conf();

    if (lc) {
        ngx_http_engagement_live_get(lc, id, &live);
        p = ngx_sprintf(p, ",\"live\":%ui,\"peak\":%ui", live.live,
                        live.peak);
    }

    *p++ = '}';

    return p;
}


static ngx_int_t
ngx_http_engagement_summary_send(ngx_http_request_t *r,
    ngx_http_engagement_zone_t *z, ngx_http_engagement_summary_t *sm)
{
    u_char                      *p, *body;
    ngx_uint_t                   i, n;
    ngx_http_engagement_item_t  *items;

    items = sm->items;
    n = sm->n;

    for (i = 0; i < n; i++) {
        if (items[i].failed) {
            return ngx_http_engagement_unavailable(r,
                       "Redis could not be read; retry later");
        }
    }

    body = ngx_pnalloc(r->pool, sizeof("{\"items\":[]}\n")
                                + n * NGX_HTTP_ENGAGEMENT_ITEM_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body;

    if (sm->batch) {
        p = ngx_cpymem(p, "{\"items\":[", sizeof("{\"items\":[") - 1);
    }

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_engagement_summary_item(p, z, &items[i].id,
                                             &items[i].view);
    }

    if (sm->batch) {
        *p++ = ']';
        *p++ = '}';
    }

    *p++ = '\n';

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


static void
ngx_http_engagement_read_done(ngx_http_engagement_read_t *rd)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = rd->request;

    if (r) {
        /* the request may outlive rd (lingering close, keep-alive) */
        rd->cleanup->handler = NULL;

        c = r->connection;
        rc = ngx_http_engagement_summary_send(r, rd->zone, rd->summary);
        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
    }

    ngx_free(rd);
}


static void
ngx_http_engagement_read_cleanup(void *data)
{
    ngx_http_engagement_read_t  *rd = data;

    /* the request is going away before Redis answered */
    rd->request = NULL;
    rd->summary = NULL;
}


static void
ngx_http_engagement_read_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_read_call_t  *call = data;

    ngx_str_t                              id;
    ngx_int_t                              applied;
    uint64_t                               uniques;
    ngx_http_engagement_read_t            *rd;
    ngx_http_engagement_counts_t           totals;
    ngx_http_engagement_view_t             view;
    ngx_http_engagement_counters_shctx_t  *sh;
    uint64_t        reactions[NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];

    rd = call->read;
    sh = rd->zone->sh;

    id.data = call->id;
    id.len = call->id_len;

    if (ngx_http_engagement_reply_totals(reply, &totals, &uniques, &applied,
                                         reactions, rd->zone->nreactions)
        == NGX_OK)
    {
        ngx_http_engagement_counters_cache(rd->zone, &id, call->hash,
                                           &totals, uniques, reactions,
                                           &view);
        ngx_http_engagement_inc(sh, reads_ok);

        if (rd->request && call->item) {
            call->item->view = view;
        }

    } else {
        ngx_http_engagement_inc(sh, reads_failed);

        if (rd->request && call->item) {
            /* a stale unique count is still an answer */
            call->item->failed = !call->item->view.known;
        }
    }

    ngx_free(call);

    if (--rd->outstanding == 0) {
        ngx_http_engagement_read_done(rd);
    }
}


/*
 * Reads one content's totals from Redis: for the waiting request rd, or,
 * with rd->request NULL, only to refresh the cache in the background.
 */

static ngx_int_t
ngx_http_engagement_read_send(ngx_http_engagement_read_t *rd,
    ngx_http_engagement_item_t *item, ngx_str_t *id, uint64_t hash)
{
    u_char                           *p;
    ngx_uint_t                        i, argc;
    ngx_str_t                        *types;
    size_t                            lens[NGX_HTTP_ENGAGEMENT_READ_ARGS];
    const char                       *argv[NGX_HTTP_ENGAGEMENT_READ_ARGS];
    u_char                            keys[2][NGX_HTTP_ENGAGEMENT_READ_KEY_LEN];
    ngx_http_engagement_read_call_t  *call;
    ngx_http_engagement_main_conf_t  *emcf;

    call = ngx_alloc(sizeof(ngx_http_engagement_read_call_t),
                     ngx_cycle->log);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->read = rd;
    call->item = item;
    call->hash = hash;
    call->id_len = id->len;
    ngx_memcpy(call->id, id->data, id->len);

    argv[0] = "2";
    lens[0] = 1;
    p = ngx_sprintf(keys[0], "eng:{c:%V}", id);
    argv[1] = (const char *) keys[0];
    lens[1] = p - keys[0];
    p = ngx_sprintf(keys[1], "eng:{c:%V}:uv", id);
    argv[2] = (const char *) keys[1];
    lens[2] = p - keys[1];
    argc = 3;

    /* the reaction counts come along */
    emcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_engagement_module);
    types = emcf->reactions ? emcf->reactions->elts : NULL;

    for (i = 0; i < rd->zone->nreactions; i++) {
        argv[argc] = (const char *) types[i].data;
        lens[argc++] = types[i].len;
    }

    if (ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_READ,
                                       ngx_http_engagement_read_reply, call,
                                       (int) argc, argv, lens)
        != NGX_OK)
    {
        ngx_free(call);
        return NGX_ERROR;
    }

    rd->outstanding++;

    return NGX_OK;
}


void
ngx_http_engagement_refresh(ngx_http_engagement_zone_t *z, ngx_str_t *id,
    uint64_t hash)
{
    ngx_http_engagement_read_t  *rd;

    rd = ngx_calloc(sizeof(ngx_http_engagement_read_t), ngx_cycle->log);
    if (rd == NULL) {
        return;
    }

    rd->zone = z;

    if (ngx_http_engagement_read_send(rd, NULL, id, hash) != NGX_OK) {
        ngx_free(rd);
    }
}


/*
 * Sends a read for every item shared memory did not know; the request
 * waits for the replies (NGX_DONE), or is answered now if none was sent.
 */

static ngx_int_t
ngx_http_engagement_summary_wait(ngx_http_request_t *r,
    ngx_http_engagement_zone_t *z, ngx_http_engagement_summary_t *sm)
{
    ngx_uint_t                   i;
    ngx_pool_cleanup_t          *cln;
    ngx_http_engagement_item_t  *item;
    ngx_http_engagement_read_t  *rd;

    rd = ngx_calloc(sizeof(ngx_http_engagement_read_t), r->connection->log);
    if (rd == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(rd);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rd->request = r;
    rd->zone = z;
    rd->summary = sm;
    rd->outstanding = 1;     /* held while sending */

    cln->handler = ngx_http_engagement_read_cleanup;
    cln->data = rd;
    rd->cleanup = cln;

    for (i = 0; i < sm->n; i++) {
        item = &sm->items[i];

        if ((!item->view.known || item->view.stale)
            && ngx_http_engagement_read_send(rd, item, &item->id, item->hash)
               != NGX_OK)
        {
            item->failed = 1;
        }
    }

    if (--rd->outstanding == 0) {
        /* nothing could be sent: answer now */
        cln->handler = NULL;
        ngx_free(rd);
        return ngx_http_engagement_summary_send(r, z, sm);
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * Answers from shared memory when it can (local counts, or Redis totals
 * cached by the flush or an earlier read, plus pending local deltas); for
 * content it has never seen with Redis on, it reads Redis without blocking
 * the worker, and the request waits for the reply.
 */

static ngx_int_t
ngx_http_engagement_summary_answer(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_summary_t *sm)
{
    ngx_uint_t                   i, missing;
    ngx_http_engagement_zone_t  *z;
    ngx_http_engagement_item_t  *item;

    z = elcf->counters;
    missing = 0;

    for (i = 0; i < sm->n; i++) {
        item = &sm->items[i];
        item->hash = ngx_http_engagement_counters_hash(z, &item->id);
        ngx_http_engagement_counters_get(z, &item->id, item->hash,
                                         &item->view);

        /* viewers sent since the unique count was read: read it now */
        if (!item->view.known
            || (item->view.stale && ngx_http_engagement_redis_ready()))
        {
            missing++;

        } else if (item->view.refresh && ngx_http_engagement_redis_ready()) {
            /* stale while revalidating: this answer does not wait */
            ngx_http_engagement_refresh(z, &item->id, item->hash);
        }
    }

    if (missing == 0) {
        return ngx_http_engagement_summary_send(r, z, sm);
    }

    if (!ngx_http_engagement_redis_ready()) {
        ngx_http_engagement_stat(elcf, read_unavailable);

        for (i = 0; i < sm->n; i++) {
            sm->items[i].failed = !sm->items[i].view.known;
        }

        return ngx_http_engagement_summary_send(r, z, sm);
    }

    return ngx_http_engagement_summary_wait(r, z, sm);
}


/* room for n items of an answer */

static ngx_http_engagement_summary_t *
ngx_http_engagement_summary_new(ngx_http_request_t *r, ngx_uint_t n,
    ngx_uint_t batch)
{
    ngx_http_engagement_summary_t  *sm;

    sm = ngx_pcalloc(r->pool, sizeof(ngx_http_engagement_summary_t));
    if (sm == NULL) {
        return NULL;
    }

    sm->items = ngx_pcalloc(r->pool, n * sizeof(ngx_http_engagement_item_t));
    if (sm->items == NULL) {
        return NULL;
    }

    sm->batch = batch;

    return sm;
}


/* /<location>/<contentId>: one id */

static ngx_int_t
ngx_http_engagement_summary_one(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_str_t *id)
{
    ngx_http_engagement_summary_t  *sm;

    if (!ngx_http_engagement_id_valid(id->data, id->len)) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "contentId",
                   "must be " NGX_HTTP_ENGAGEMENT_ID_RULE);
    }

    sm = ngx_http_engagement_summary_new(r, 1, 0);
    if (sm == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sm->items[sm->n++].id = *id;

    return ngx_http_engagement_summary_answer(r, elcf, sm);
}


/* every "%" in s starts a percent-escape: two hex digits follow it */

static ngx_uint_t
ngx_http_engagement_summary_escapes(ngx_str_t *s)
{
    u_char  *p, *end;

    end = s->data + s->len;

    for (p = s->data; p < end; p++) {
        if (*p != '%') {
            continue;
        }

        if (end - p < 3 || !isxdigit(p[1]) || !isxdigit(p[2])) {
            return 0;
        }

        p += 2;
    }

    return 1;
}


/* ?ids=a,b: a batch, answered as {"items":[...]} */

static ngx_int_t
ngx_http_engagement_summary_batch(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    u_char                         *p, *q, *end, *dst;
    ngx_str_t                       id, ids;
    ngx_uint_t                      n;
    ngx_http_engagement_summary_t  *sm;

    if (ngx_http_arg(r, (u_char *) "ids", 3, &ids) != NGX_OK || ids.len == 0) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "ids",
                   "is required: a comma-separated list of content ids");
    }

    /*
     * ids may arrive percent-encoded, commas included; a "%" that does not
     * start an escape is refused, as ngx_unescape_uri would drop it and
     * answer for another id than the one asked for
     */
    if (!ngx_http_engagement_summary_escapes(&ids)) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "ids",
                   "each id must be " NGX_HTTP_ENGAGEMENT_ID_RULE
                   "; a % must start a percent-escape");
    }

    dst = ngx_pnalloc(r->pool, ids.len);
    if (dst == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = dst;
    ngx_unescape_uri(&p, &ids.data, ids.len, NGX_UNESCAPE_URI);
    ids.data = dst;
    ids.len = p - dst;
    end = ids.data + ids.len;

    n = 1;
    for (p = ids.data; p < end; p++) {
        if (*p == ',') {
            n++;
        }
    }

    if (n > elcf->batch_max) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "ids",
                   "lists more ids than engagement_batch_max allows");
    }

    sm = ngx_http_engagement_summary_new(r, n, 1);
    if (sm == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (q = ids.data; q <= end; q++) {
        id.data = q;

        while (q < end && *q != ',') {
            q++;
        }

        id.len = q - id.data;

        if (!ngx_http_engagement_id_valid(id.data, id.len)) {
            return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "invalid_field", "ids",
                       "each id must be " NGX_HTTP_ENGAGEMENT_ID_RULE);
        }

        sm->items[sm->n++].id = id;
    }

    return ngx_http_engagement_summary_answer(r, elcf, sm);
}


ngx_int_t
ngx_http_engagement_summary_read(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    ngx_str_t  id;

    ngx_http_engagement_stat(elcf, summary_requests);
    ngx_http_engagement_set_outcome(r, "read", NULL, NULL);

    if (ngx_http_engagement_summary_id(r, &id) != NGX_OK) {
        return ngx_http_engagement_send_error(r, NGX_HTTP_NOT_FOUND,
                   "not_found", NULL,
                   "use /<location>/<contentId> or /<location>?ids=a,b");
    }

    if (id.len) {
        return ngx_http_engagement_summary_one(r, elcf, &id);
    }

    return ngx_http_engagement_summary_batch(r, elcf);
}
