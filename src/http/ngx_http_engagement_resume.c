
/*
 * The resume and history endpoints: a user's last position on a content
 * (GET ?contentId=&userId=), the user's watch history (GET ?userId=&
 * limit=) and its deletion (DELETE ?userId=). Redis holds them
 * (sink/redis/resume_flush.c writes what heartbeats left in the resume
 * zone); a request waits for Redis without blocking the worker and the
 * wait outlives an aborted request. A position still pending in the
 * resume zone and newer than Redis's is the one answered. Redis
 * unavailable: 503, never a guess.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_resume.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "http/ngx_http_engagement_http.h"
#include "protect/ngx_http_engagement_protect.h"


#define NGX_HTTP_ENGAGEMENT_RESUME_KEY_LEN                                    \
    (sizeof("eng:{u:}:history") + NGX_HTTP_ENGAGEMENT_ID_MAX)

/* one position as JSON: the item of a history, the body of a resume */
#define NGX_HTTP_ENGAGEMENT_POSITION_JSON_LEN                                 \
    (sizeof("{\"contentId\":\"\",\"userId\":\"\",\"positionMs\":,"            \
            "\"durationMs\":,\"updatedAt\":},\n")                             \
     + 2 * NGX_HTTP_ENGAGEMENT_ID_MAX + 3 * NGX_INT64_LEN)


typedef enum {
    NGX_HTTP_ENGAGEMENT_ASK_RESUME = 0,
    NGX_HTTP_ENGAGEMENT_ASK_HISTORY,
    NGX_HTTP_ENGAGEMENT_ASK_FORGET
} ngx_http_engagement_ask_e;


/* a request waiting for Redis; outlives the request if it is aborted */
typedef struct {
    ngx_http_request_t              *request;     /* NULL: nobody waits */
    ngx_pool_cleanup_t              *cleanup;     /* in the request's pool */
    ngx_uint_t                       ask;         /* _ask_e */
    ngx_uint_t                       pending;     /* pos: the zone's */
    ngx_uint_t                       forgotten;   /* pending ones dropped */
    ngx_http_engagement_position_t   pos;         /* ids, the zone's */
} ngx_http_engagement_ask_t;


static void
ngx_http_engagement_ask_cleanup(void *data)
{
    ngx_http_engagement_ask_t  *ask = data;

    ask->request = NULL;
}


static ngx_http_engagement_resume_conf_t *
ngx_http_engagement_resume_rc(ngx_http_request_t *r)
{
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);

    return emcf->resume;
}


/*
 * A position's value in Redis, "<positionMs>:<durationMs>:<unix ms>"
 * (the duration may be empty): NGX_ERROR if it is not one.
 */

static ngx_int_t
ngx_http_engagement_position_parse(u_char *p, size_t len,
    ngx_http_engagement_position_t *pos)
{
    u_char      *end;
    int64_t      v[3];
    ngx_uint_t   i, digits;

    end = p + len;

    for (i = 0; i < 3; i++) {
        v[i] = 0;
        digits = 0;

        while (p < end && *p >= '0' && *p <= '9' && digits < 16) {
            v[i] = v[i] * 10 + (*p++ - '0');
            digits++;
        }

        if (i < 2) {
            if (p == end || *p != ':' || (digits == 0 && i == 0)) {
                return NGX_ERROR;
            }

            p++;
        }

        if (i == 1 && digits == 0) {
            v[1] = -1;
        }
    }

    if (p != end || digits == 0) {
        return NGX_ERROR;
    }

    pos->position = v[0];
    pos->duration = v[1];
    pos->updated = v[2];

    return NGX_OK;
}


/* ,"positionMs":..,"durationMs":..,"updatedAt":..} (null: unknown) */

static u_char *
ngx_http_engagement_position_json(u_char *p,
    ngx_http_engagement_position_t *pos)
{
    p = ngx_cpymem(p, ",\"positionMs\":", sizeof(",\"positionMs\":") - 1);
    p = ngx_http_engagement_put_uint(p, pos->updated ? pos->position : 0);
    p = ngx_cpymem(p, ",\"durationMs\":", sizeof(",\"durationMs\":") - 1);

    if (pos->updated && pos->duration >= 0) {
        p = ngx_http_engagement_put_uint(p, pos->duration);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, ",\"updatedAt\":", sizeof(",\"updatedAt\":") - 1);

    if (pos->updated) {
        p = ngx_http_engagement_put_uint(p, pos->updated);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    *p++ = '}';

    return p;
}


/* a Redis refusal (a key of another type): logged, answered 503 */

static ngx_int_t
ngx_http_engagement_ask_failed(ngx_http_request_t *r,
    ngx_http_engagement_ask_t *ask, redisReply *reply)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "engagement redis: %s of user \"%*s\" failed: %*s",
                      ask->ask == NGX_HTTP_ENGAGEMENT_ASK_RESUME
                      ? "resume read"
                      : (ask->ask == NGX_HTTP_ENGAGEMENT_ASK_HISTORY
                         ? "history read" : "history delete"),
                      (size_t) ask->pos.ulen, ask->pos.user,
                      (size_t) reply->len, reply->str);
    }

    ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);

    return ngx_http_engagement_unavailable(r,
               ask->ask == NGX_HTTP_ENGAGEMENT_ASK_FORGET
               ? "Redis could not delete the history; retry later"
               : "Redis could not answer; retry later");
}


static ngx_int_t
ngx_http_engagement_resume_answer(ngx_http_request_t *r,
    ngx_http_engagement_ask_t *ask, redisReply *reply)
{
    u_char                          *p, *body;
    int64_t                          duration;
    ngx_http_engagement_position_t   pos;

    if (reply == NULL
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL))
    {
        return ngx_http_engagement_ask_failed(r, ask, reply);
    }

    pos.updated = 0;
    pos.duration = -1;

    if (reply->type == REDIS_REPLY_STRING
        && ngx_http_engagement_position_parse((u_char *) reply->str,
                                              reply->len, &pos)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "engagement redis: resume position of user \"%*s\" "
                      "on \"%*s\" is not one: \"%*s\"",
                      (size_t) ask->pos.ulen, ask->pos.user,
                      (size_t) ask->pos.clen, ask->pos.content,
                      ngx_min((size_t) reply->len, 64), reply->str);
        pos.updated = 0;
    }

    /* a position still on its way to Redis and newer than Redis's (the
     * duration Redis knows kept, as the resume script will) */
    if (ask->pending && ask->pos.updated > pos.updated) {
        duration = pos.updated ? pos.duration : -1;
        pos = ask->pos;

        if (pos.duration < 0) {
            pos.duration = duration;
        }
    }

    body = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_POSITION_JSON_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"contentId\":\"%*s\",\"userId\":\"%*s\"",
                    (size_t) ask->pos.clen, ask->pos.content,
                    (size_t) ask->pos.ulen, ask->pos.user);
    p = ngx_http_engagement_position_json(p, &pos);
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


/* {"userId":..,"items":[{"contentId":..,"positionMs":..,...},...]} */

static ngx_int_t
ngx_http_engagement_history_answer(ngx_http_request_t *r,
    ngx_http_engagement_ask_t *ask, redisReply *reply)
{
    u_char                          *p, *body;
    size_t                           i;
    ngx_uint_t                       first;
    redisReply                      *id, *val;
    ngx_http_engagement_position_t   pos;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements % 2)
    {
        return ngx_http_engagement_ask_failed(r, ask, reply);
    }

    body = ngx_pnalloc(r->pool, sizeof("{\"userId\":\"\",\"items\":[]}\n")
                                + NGX_HTTP_ENGAGEMENT_ID_MAX
                                + reply->elements / 2
                                  * NGX_HTTP_ENGAGEMENT_POSITION_JSON_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"userId\":\"%*s\",\"items\":[",
                    (size_t) ask->pos.ulen, ask->pos.user);
    first = 1;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        id = reply->element[i];
        val = reply->element[i + 1];

        /* what the module did not write is not answered */
        if (id->type != REDIS_REPLY_STRING
            || !ngx_http_engagement_id_valid((u_char *) id->str, id->len)
            || val->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (ngx_http_engagement_position_parse((u_char *) val->str,
                                               val->len, &pos)
            != NGX_OK)
        {
            pos.updated = 0;
        }

        if (!first) {
            *p++ = ',';
        }

        first = 0;

        p = ngx_cpymem(p, "{\"contentId\":\"",
                       sizeof("{\"contentId\":\"") - 1);
        p = ngx_cpymem(p, id->str, id->len);
        *p++ = '"';
        p = ngx_http_engagement_position_json(p, &pos);
    }

    p = ngx_cpymem(p, "]}\n", 3);

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


static ngx_int_t
ngx_http_engagement_forget_answer(ngx_http_request_t *r,
    ngx_http_engagement_ask_t *ask, redisReply *reply)
{
    u_char  *p, *body;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        return ngx_http_engagement_ask_failed(r, ask, reply);
    }

    body = ngx_pnalloc(r->pool,
                       sizeof("{\"userId\":\"\",\"deleted\":true,"
                              "\"keysDeleted\":,\"pendingDropped\":}\n")
                       + NGX_HTTP_ENGAGEMENT_ID_MAX + 2 * NGX_INT64_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"userId\":\"%*s\",\"deleted\":true,"
                    "\"keysDeleted\":%L,\"pendingDropped\":%ui}\n",
                    (size_t) ask->pos.ulen, ask->pos.user,
                    (int64_t) reply->integer, ask->forgotten);

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}


static void
ngx_http_engagement_ask_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_ask_t  *ask = data;

    ngx_int_t            rv;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ask->request;

    if (r) {
        /* the request may outlive ask (lingering close, keep-alive) */
        ask->cleanup->handler = NULL;
        c = r->connection;

        switch (ask->ask) {

        case NGX_HTTP_ENGAGEMENT_ASK_RESUME:
            rv = ngx_http_engagement_resume_answer(r, ask, reply);
            break;

        case NGX_HTTP_ENGAGEMENT_ASK_HISTORY:
            rv = ngx_http_engagement_history_answer(r, ask, reply);
            break;

        default:
            rv = ngx_http_engagement_forget_answer(r, ask, reply);
            break;
        }

        ngx_http_finalize_request(r, rv);
        ngx_http_run_posted_requests(c);
    }

    ngx_free(ask);
}


/*
 * Sends one command or script for r: argv[0] is the command (HGET) or,
 * with script set, the keys count; the request then waits (NGX_DONE).
 */

static ngx_int_t
ngx_http_engagement_ask_send(ngx_http_request_t *r,
    ngx_http_engagement_ask_t *ask, ngx_int_t script, int argc,
    const char **argv, size_t *lens)
{
    ngx_int_t            rv;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(ask);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (script >= 0) {
        rv = ngx_http_engagement_redis_eval(script,
                                            ngx_http_engagement_ask_reply,
                                            ask, argc, argv, lens);

    } else {
        rv = ngx_http_engagement_redis_send(ngx_http_engagement_ask_reply,
                                            ask, argc, argv, lens);
    }

    if (rv != NGX_OK) {
        ngx_free(ask);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; retry later");
    }

    cln->handler = ngx_http_engagement_ask_cleanup;
    cln->data = ask;
    ask->cleanup = cln;

    r->main->count++;

    return NGX_DONE;
}


/* an id argument: NGX_OK, or the 400 sent (rv) */

static ngx_int_t
ngx_http_engagement_ask_id(ngx_http_request_t *r, const char *name,
    ngx_str_t *id, ngx_int_t *rv)
{
    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), id) != NGX_OK
        || !ngx_http_engagement_id_valid(id->data, id->len))
    {
        ngx_http_engagement_set_outcome(r, "invalid", name, NULL);
        *rv = ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                  "invalid_field", name,
                  "is required: " NGX_HTTP_ENGAGEMENT_ID_RULE);
        return NGX_ERROR;
    }

    /* engagement_user_id: a user reads and deletes only their own */
    if (ngx_strcmp(name, "userId") == 0) {
        *rv = ngx_http_engagement_user_bind(r, id, name, 0);

        if (*rv != NGX_DECLINED) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a waiting request's state, with the user's id (and content's) */

static ngx_http_engagement_ask_t *
ngx_http_engagement_ask_new(ngx_http_request_t *r, ngx_uint_t kind,
    ngx_str_t *user, ngx_str_t *content)
{
    ngx_http_engagement_ask_t  *ask;

    ask = ngx_calloc(sizeof(ngx_http_engagement_ask_t), r->connection->log);
    if (ask == NULL) {
        return NULL;
    }

    ask->request = r;
    ask->ask = kind;
    ask->pos.ulen = (u_char) user->len;
    ngx_memcpy(ask->pos.user, user->data, user->len);

    if (content) {
        ask->pos.clen = (u_char) content->len;
        ngx_memcpy(ask->pos.content, content->data, content->len);
    }

    return ask;
}


/* Redis connected: NGX_OK, or the 503 sent (rv) */

static ngx_int_t
ngx_http_engagement_ask_ready(ngx_http_request_t *r, ngx_int_t *rv)
{
    if (ngx_http_engagement_redis_ready()) {
        return NGX_OK;
    }

    ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);

    *rv = ngx_http_engagement_unavailable(r,
              "Redis is unavailable; retry later");

    return NGX_ERROR;
}


/* GET /engagement/resume?contentId=&userId= */

ngx_int_t
ngx_http_engagement_resume_handler(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_int_t                   rv;
    ngx_str_t                   content, user;
    const char                 *argv[3];
    size_t                      lens[3];
    ngx_http_engagement_ask_t  *ask;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD",
                   "a resume position is read with GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ngx_http_engagement_ask_id(r, "contentId", &content, &rv) != NGX_OK
        || ngx_http_engagement_ask_id(r, "userId", &user, &rv) != NGX_OK)
    {
        return rv;
    }

    if (ngx_http_engagement_ask_ready(r, &rv) != NGX_OK) {
        return rv;
    }

    ask = ngx_http_engagement_ask_new(r, NGX_HTTP_ENGAGEMENT_ASK_RESUME,
                                      &user, &content);
    if (ask == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a position not yet in Redis: compared with Redis's when it answers */
    ask->pending = (ngx_http_engagement_resume_get(
                        ngx_http_engagement_resume_rc(r), &user, &content,
                        &ask->pos)
                    == NGX_OK);

    p = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_RESUME_KEY_LEN);
    if (p == NULL) {
        ngx_free(ask);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "HGET";
    lens[0] = 4;
    argv[1] = (const char *) p;
    lens[1] = ngx_sprintf(p, "eng:{u:%V}:resume", &user) - p;
    argv[2] = (const char *) content.data;
    lens[2] = content.len;

    ngx_http_engagement_set_outcome(r, "read", NULL, &content);

    return ngx_http_engagement_ask_send(r, ask, -1, 3, argv, lens);
}


/* limit=: 1..100, default 20; NGX_ERROR: the 400 sent (rv) */

static ngx_int_t
ngx_http_engagement_history_limit(ngx_http_request_t *r, ngx_uint_t *limit,
    ngx_int_t *rv)
{
    ngx_int_t  n;
    ngx_str_t  v;

    *limit = NGX_HTTP_ENGAGEMENT_HISTORY_LIMIT;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) != NGX_OK) {
        return NGX_OK;
    }

    n = (v.len && v.len <= 3) ? ngx_atoi(v.data, v.len) : NGX_ERROR;

    if (n < 1 || n > NGX_HTTP_ENGAGEMENT_HISTORY_MAX) {
        ngx_http_engagement_set_outcome(r, "invalid", "limit", NULL);
        *rv = ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                  "invalid_field", "limit",
                  "must be an integer from 1 to "
                  ngx_value(NGX_HTTP_ENGAGEMENT_HISTORY_MAX));
        return NGX_ERROR;
    }

    *limit = (ngx_uint_t) n;

    return NGX_OK;
}


/*
 * GET /engagement/history?userId=&limit=: the most recent first;
 * DELETE /engagement/history?userId=: the user's positions and history
 * deleted, here and in Redis
 */

ngx_int_t
ngx_http_engagement_history_handler(ngx_http_request_t *r)
{
    u_char                     *p, *keys;
    ngx_int_t                   rv, script;
    ngx_str_t                   user;
    ngx_uint_t                  limit, forget;
    const char                 *argv[6];
    size_t                      lens[6];
    ngx_http_engagement_ask_t  *ask;
    u_char                      num[NGX_INT64_LEN];
    u_char                      ttl[NGX_INT64_LEN];
    struct timeval              tv;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE))) {
        return ngx_http_engagement_method_not_allowed(r, "GET, HEAD, DELETE",
                   "a history is read with GET, deleted with DELETE");
    }

    forget = (r->method == NGX_HTTP_DELETE);

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    if (ngx_http_engagement_ask_id(r, "userId", &user, &rv) != NGX_OK) {
        return rv;
    }

    limit = 0;

    if (!forget
        && ngx_http_engagement_history_limit(r, &limit, &rv) != NGX_OK)
    {
        return rv;
    }

    if (ngx_http_engagement_ask_ready(r, &rv) != NGX_OK) {
        return rv;
    }

    ask = ngx_http_engagement_ask_new(r, forget
                                         ? NGX_HTTP_ENGAGEMENT_ASK_FORGET
                                         : NGX_HTTP_ENGAGEMENT_ASK_HISTORY,
                                      &user, NULL);
    if (ask == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    keys = ngx_pnalloc(r->pool, 3 * NGX_HTTP_ENGAGEMENT_RESUME_KEY_LEN);
    if (keys == NULL) {
        ngx_free(ask);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = keys;
    argv[1] = (const char *) p;
    p = ngx_sprintf(p, "eng:{u:%V}:resume", &user);
    lens[1] = p - (u_char *) argv[1];
    argv[2] = (const char *) p;
    p = ngx_sprintf(p, "eng:{u:%V}:history", &user);
    lens[2] = p - (u_char *) argv[2];

    if (!forget) {
        argv[0] = "2";
        lens[0] = 1;
        argv[3] = (const char *) num;
        lens[3] = ngx_sprintf(num, "%ui", limit) - num;
        script = NGX_HTTP_ENGAGEMENT_SCRIPT_HISTORY;

        ngx_http_engagement_set_outcome(r, "read", NULL, NULL);

        return ngx_http_engagement_ask_send(r, ask, script, 4, argv, lens);
    }

    /* here first: a pending position must not reach Redis after this */
    ask->forgotten = ngx_http_engagement_resume_forget(
                                   ngx_http_engagement_resume_rc(r), &user);

    argv[0] = "3";
    lens[0] = 1;
    argv[3] = (const char *) p;
    p = ngx_sprintf(p, "eng:{u:%V}:cleared", &user);
    lens[3] = p - (u_char *) argv[3];

    ngx_gettimeofday(&tv);
    argv[4] = (const char *) num;
    lens[4] = ngx_sprintf(num, "%L", (int64_t) tv.tv_sec * 1000
                                     + tv.tv_usec / 1000)
              - num;
    argv[5] = (const char *) ttl;
    lens[5] = ngx_sprintf(ttl, "%L", (int64_t) NGX_HTTP_ENGAGEMENT_RESUME_TTL)
              - ttl;

    ngx_http_engagement_set_outcome(r, "deleted", NULL, NULL);

    return ngx_http_engagement_ask_send(r, ask,
                                        NGX_HTTP_ENGAGEMENT_SCRIPT_FORGET, 6,
                                        argv, lens);
}


/* the resume zone's figures in the status answer */

#define ngx_http_engagement_resume_field(f)                                   \
    offsetof(ngx_http_engagement_resume_stats_t, f)

static ngx_http_engagement_stat_row_t  ngx_http_engagement_resume_rows[] = {
    { "positions_buffered_total", "buffered", NULL, "counter",
      "Resume positions from heartbeats taken into the resume zone",
      ngx_http_engagement_resume_field(buffered) },
    { "positions_flushed_total", "flushed", NULL, "counter",
      "Resume positions sent to Redis and confirmed",
      ngx_http_engagement_resume_field(flushed) },
    { "positions_dropped_total", "dropped", NULL, "counter",
      "Resume positions dropped: no room in the resume zone",
      ngx_http_engagement_resume_field(dropped) },
    { "positions_errors_total", "errors", NULL, "counter",
      "Resume positions sent and not confirmed (no answer, an error): "
      "sent again",
      ngx_http_engagement_resume_field(errors) },
    { "positions_refused_total", "refused", NULL, "counter",
      "Resume positions Redis refused for good (a key of another type): "
      "dropped",
      ngx_http_engagement_resume_field(refused) },
    { "positions_pending", "pending", NULL, "gauge",
      "Resume positions in the resume zone not yet confirmed by Redis",
      ngx_http_engagement_resume_field(pending) },
    { NULL, NULL, NULL, NULL, NULL, 0 }
};


size_t
ngx_http_engagement_resume_status_len(ngx_http_engagement_main_conf_t *emcf)
{
    if (emcf->resume == NULL
        || ((ngx_http_engagement_resume_conf_t *) emcf->resume)->sh == NULL)
    {
        return 0;
    }

    return ngx_http_engagement_stat_rows_len("resume",
                                             ngx_http_engagement_resume_rows);
}


u_char *
ngx_http_engagement_resume_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json)
{
    ngx_http_engagement_resume_conf_t  *rc;

    rc = emcf->resume;

    if (rc == NULL || rc->sh == NULL) {
        return p;
    }

    return ngx_http_engagement_stat_rows(p, "resume",
                                         ngx_http_engagement_resume_rows,
                                         ngx_http_engagement_resume_stats(rc),
                                         json, (size_t) -1, 0);
}
