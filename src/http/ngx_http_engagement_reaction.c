
/*
 * Likes and reactions: one active reaction per (user, content), kept in
 * Redis, the source of truth. Each request runs one script in Redis that
 * moves the user's state and the counts together, atomically, while the
 * request waits without blocking the worker; the answer carries the new
 * counts of every type and the user's state. Redis unavailable: 503,
 * never a guess.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_series.h"
#include "protect/ngx_http_engagement_protect.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "http/ngx_http_engagement_http.h"


/*
 * the script's keys and arguments: count, 3 keys (4 in cluster mode with
 * milestones: the slot's pending ones, milestone_fwd.c), user, state,
 * flag, types
 */
#define NGX_HTTP_ENGAGEMENT_REACT_ARGS                                        \
    (8 + NGX_HTTP_ENGAGEMENT_MILESTONE_ARGS + NGX_HTTP_ENGAGEMENT_REACTIONS_MAX)

/* the longest key a reaction script takes */
#define NGX_HTTP_ENGAGEMENT_REACT_KEY_LEN                                     \
    (sizeof("eng:{c:}:reactions:rq:") + 2 * NGX_HTTP_ENGAGEMENT_ID_MAX)

/* the answer at its longest */
#define NGX_HTTP_ENGAGEMENT_REACT_ANSWER_LEN                                  \
    (sizeof("{\"contentId\":\"\",\"userId\":\"\",\"reaction\":\"\","          \
            "\"previous\":\"\",\"changed\":false,"                            \
            "\"reason\":\"duplicate_request\"}\n")                            \
     + 2 * NGX_HTTP_ENGAGEMENT_ID_MAX + 2 * NGX_HTTP_ENGAGEMENT_REACTION_LEN  \
     + NGX_HTTP_ENGAGEMENT_REACTIONS_LEN)


/* a request waiting for Redis; outlives the request if it is aborted */
typedef struct {
    ngx_http_request_t            *request;     /* NULL: nobody waits */
    ngx_pool_cleanup_t            *cleanup;     /* in the request's pool */
    ngx_http_engagement_zone_t    *zone;
    uint64_t                       hash;
    ngx_uint_t                     state;       /* a state read, no change */
    void                          *wres;        /* the writer's line */
    u_char                         content_id[NGX_HTTP_ENGAGEMENT_ID_MAX];
    size_t                         content_id_len;
    u_char                         user_id[NGX_HTTP_ENGAGEMENT_ID_MAX];
    size_t                         user_id_len;
    ngx_int_t                      slot;        /* cluster milestones' */
} ngx_http_engagement_react_t;


/* one script call's keys and arguments */
typedef struct {
    ngx_uint_t                     argc;
    const char                    *argv[NGX_HTTP_ENGAGEMENT_REACT_ARGS];
    size_t                         lens[NGX_HTTP_ENGAGEMENT_REACT_ARGS];
    u_char                         text[NGX_HTTP_ENGAGEMENT_MILESTONE_BUF];
} ngx_http_engagement_react_args_t;


static void ngx_http_engagement_reaction_body(ngx_http_request_t *r);


const ngx_http_engagement_body_spec_t  ngx_http_engagement_reaction_spec = {
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_BODY_REACTION,
    NGX_HTTP_POST|NGX_HTTP_DELETE, "POST, DELETE",
    "react with POST, take a reaction back with DELETE",
    ngx_http_engagement_reaction_body,
    NULL,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    NGX_HTTP_ENGAGEMENT_NO_STAT,
    ngx_http_engagement_stat_field(reactions_invalid),
    ngx_http_engagement_stat_field(reactions_invalid)
};


static void
ngx_http_engagement_react_cleanup(void *data)
{
    ngx_http_engagement_react_t  *rc = data;

    rc->request = NULL;
}


/* "like" or null: a state string of the script's answer as JSON */

static u_char *
ngx_http_engagement_state_json(u_char *p, redisReply *s)
{
    if (s->len == 0) {
        return ngx_cpymem(p, "null", 4);
    }

    return ngx_sprintf(p, "\"%*s\"", (size_t) s->len, s->str);
}


/* [applied, duplicate, previous, current, count...]: n counts */

static ngx_int_t
ngx_http_engagement_react_valid(redisReply *reply, ngx_uint_t n)
{
    ngx_uint_t  i;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 4 + n
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[2]->type != REDIS_REPLY_STRING
        || reply->element[3]->type != REDIS_REPLY_STRING
        || reply->element[2]->len > NGX_HTTP_ENGAGEMENT_REACTION_LEN
        || reply->element[3]->len > NGX_HTTP_ENGAGEMENT_REACTION_LEN)
    {
        return NGX_DECLINED;
    }

    for (i = 0; i < n; i++) {
        if (reply->element[4 + i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* ,"previous":..,"changed":..: what a change did, counted and logged */

static u_char *
ngx_http_engagement_react_change(ngx_http_request_t *r, u_char *p,
    redisReply *reply)
{
    ngx_int_t                        applied, dup;
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    applied = (ngx_int_t) reply->element[0]->integer;
    dup = (ngx_int_t) reply->element[1]->integer;

    p = ngx_cpymem(p, ",\"previous\":", sizeof(",\"previous\":") - 1);
    p = ngx_http_engagement_state_json(p, reply->element[2]);
    p = ngx_sprintf(p, ",\"changed\":%s", applied ? "true" : "false");

    if (dup) {
        p = ngx_cpymem(p, ",\"reason\":\"duplicate_request\"",
                       sizeof(",\"reason\":\"duplicate_request\"") - 1);
        ngx_http_engagement_stat(elcf, reactions_duplicate);
        ngx_http_engagement_set_outcome(r, "not_counted",
                                        "duplicate_request", NULL);

    } else if (applied) {
        ngx_http_engagement_stat(elcf, reactions_changed);
        ngx_http_engagement_set_outcome(r, "counted", NULL, NULL);

    } else {
        ngx_http_engagement_stat(elcf, reactions_unchanged);
        ngx_http_engagement_set_outcome(r, "not_counted", "unchanged", NULL);
    }

    return p;
}


static ngx_int_t
ngx_http_engagement_react_answer(ngx_http_request_t *r,
    ngx_http_engagement_react_t *rc, redisReply *reply)
{
    u_char                          *p, *body;
    ngx_int_t                        valid;
    ngx_uint_t                       i, n;
    ngx_str_t                        id;
    uint64_t                         counts[NGX_HTTP_ENGAGEMENT_REACTIONS_MAX];
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);
    n = rc->zone->nreactions;

    valid = ngx_http_engagement_react_valid(reply, n);

    if (valid == NGX_DECLINED) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "engagement redis: reaction script failed: %s",
                          reply->str);
        }

        ngx_http_engagement_stat(elcf, reactions_failed);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis", NULL);

        return ngx_http_engagement_unavailable(r,
                   "Redis could not apply the reaction; nothing changed "
                   "unless a retry with the same requestId says so");
    }

    if (valid != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        counts[i] = reply->element[4 + i]->integer > 0
                    ? (uint64_t) reply->element[4 + i]->integer : 0;
    }

    id.data = rc->content_id;
    id.len = rc->content_id_len;

    /* the answer refreshes this edge's cached counts */
    ngx_http_engagement_counters_reactions(rc->zone, &id, rc->hash, counts);

    body = ngx_pnalloc(r->pool, NGX_HTTP_ENGAGEMENT_REACT_ANSWER_LEN);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"contentId\":\"%*s\",\"userId\":\"%*s\","
                    "\"reaction\":", rc->content_id_len, rc->content_id,
                    rc->user_id_len, rc->user_id);
    p = ngx_http_engagement_state_json(p, reply->element[3]);

    if (!rc->state) {
        p = ngx_http_engagement_react_change(r, p, reply);
    }

    p = ngx_http_engagement_reactions_json(p, counts, n);
    *p++ = '}';
    *p++ = '\n';

    return ngx_http_engagement_send_json(r, NGX_HTTP_OK, body, p - body);
}
static void
ngx_http_engagement_react_series(ngx_http_engagement_react_t *rc,
    size_t had, size_t has)
{
    ngx_str_t  id;

    id.data = rc->content_id;
    id.len = rc->content_id_len;

    (void) ngx_http_engagement_series_reaction(&id, had, has,
                                               ngx_cycle->log);
}


static void
ngx_http_engagement_react_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_react_t  *rc = data;

    ngx_int_t            rv;
    ngx_str_t            prev;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = rc->request;

    if (reply && rc->slot >= 0) {
        /* a like may have crossed a milestone: moved on (cluster mode) */
        ngx_http_engagement_milestone_touch(rc->slot);
    }

    /* the durable writer learns the outcome even if the client has gone */
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 3
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        /* the old state, as the script saw it ('' is none) */
        prev.len = 0;
        prev.data = (u_char *) "";

        if (reply->element[2]->type == REDIS_REPLY_STRING) {
            prev.len = reply->element[2]->len;
            prev.data = (u_char *) reply->element[2]->str;
        }

        ngx_http_engagement_writer_commit_reaction(rc->wres,
            reply->element[0]->integer != 0,
            reply->element[1]->integer ? "duplicate_request"
            : (reply->element[0]->integer ? NULL : "unchanged"), &prev);
        ngx_http_engagement_trending_reaction(rc->content_id,
                                   rc->content_id_len, rc->state, reply);

        /* a like where there was none, or one removed: the series */
        if (!rc->state && reply->element[0]->integer
            && !reply->element[1]->integer && reply->elements >= 4
            && reply->element[3]->type == REDIS_REPLY_STRING)
        {
            ngx_http_engagement_react_series(rc, prev.len,
                                             reply->element[3]->len);
        }

    } else {
        ngx_http_engagement_writer_cancel(rc->wres);
    }

    if (r) {
        /* the request may outlive rc (lingering close, keep-alive) */
        rc->cleanup->handler = NULL;

        c = r->connection;
        rv = ngx_http_engagement_react_answer(r, rc, reply);
        ngx_http_finalize_request(r, rv);
        ngx_http_run_posted_requests(c);
    }

    ngx_free(rc);
}



/* the script's keys and arguments, in the request's pool */

static ngx_int_t
ngx_http_engagement_react_args(ngx_http_request_t *r, ngx_uint_t script,
    ngx_http_engagement_reaction_t *re, ngx_str_t *state,
    ngx_http_engagement_react_args_t *a)
{
    u_char                           *p, *keys;
    ngx_str_t                        *types;
    ngx_uint_t                        i;
    ngx_http_engagement_main_conf_t  *emcf;

    keys = ngx_pnalloc(r->pool, 4 * NGX_HTTP_ENGAGEMENT_REACT_KEY_LEN);
    if (keys == NULL) {
        return NGX_ERROR;
    }

    /* every key of one content shares its hash tag, so one slot */
    a->argc = 0;
    a->argv[a->argc] = (script == NGX_HTTP_ENGAGEMENT_SCRIPT_REACT) ? "3" : "2";
    a->lens[a->argc++] = 1;

    p = ngx_sprintf(keys, "eng:{c:%V}", &re->content_id);
    a->argv[a->argc] = (const char *) keys;
    a->lens[a->argc++] = p - keys;

    keys = p;
    p = ngx_sprintf(keys, "eng:{c:%V}:reactions", &re->content_id);
    a->argv[a->argc] = (const char *) keys;
    a->lens[a->argc++] = p - keys;

    if (script == NGX_HTTP_ENGAGEMENT_SCRIPT_REACT) {
        keys = p;
        p = ngx_sprintf(keys, "eng:{c:%V}:rq:%V", &re->content_id,
                        re->request_id.len ? &re->request_id
                                           : &re->content_id);
        a->argv[a->argc] = (const char *) keys;
        a->lens[a->argc++] = p - keys;

        if (ngx_http_engagement_milestone_pending()) {
            /* KEYS[4]: where a crossed threshold waits (cluster mode) */
            a->argv[0] = "4";
            keys = p;
            p = ngx_http_engagement_milestone_outkey(keys,
                    ngx_http_engagement_cluster_slot(
                        (u_char *) a->argv[1], a->lens[1]));
            a->argv[a->argc] = (const char *) keys;
            a->lens[a->argc++] = p - keys;
        }
    }

    a->argv[a->argc] = (const char *) re->user_id.data;
    a->lens[a->argc++] = re->user_id.len;

    if (script == NGX_HTTP_ENGAGEMENT_SCRIPT_REACT) {
        a->argv[a->argc] = state->len ? (const char *) state->data : "";
        a->lens[a->argc++] = state->len;
        a->argv[a->argc] = re->request_id.len ? "1" : "0";
        a->lens[a->argc++] = 1;
    }

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);

    if (script == NGX_HTTP_ENGAGEMENT_SCRIPT_REACT) {
        /* the likes' milestones, decided by the script */
        a->argc += ngx_http_engagement_milestone_args(emcf, 1,
                                                      &a->argv[a->argc],
                                                      &a->lens[a->argc],
                                                      a->text);
    }
    types = emcf->reactions->elts;

    for (i = 0; i < emcf->reactions->nelts; i++) {
        a->argv[a->argc] = (const char *) types[i].data;
        a->lens[a->argc++] = types[i].len;
    }

    return NGX_OK;
}


/* what the reply needs to answer r: copied, since r may go first */

static ngx_http_engagement_react_t *
ngx_http_engagement_react_new(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_uint_t script,
    ngx_http_engagement_reaction_t *re, void *wres)
{
    ngx_http_engagement_react_t  *rc;

    rc = ngx_calloc(sizeof(ngx_http_engagement_react_t), r->connection->log);
    if (rc == NULL) {
        return NULL;
    }

    rc->wres = wres;
    rc->slot = -1;

    if (script == NGX_HTTP_ENGAGEMENT_SCRIPT_REACT
        && ngx_http_engagement_milestone_pending())
    {
        u_char  key[NGX_HTTP_ENGAGEMENT_ID_MAX + 16], *p;

        p = ngx_sprintf(key, "eng:{c:%V}", &re->content_id);
        rc->slot = ngx_http_engagement_cluster_slot(key, p - key);
    }

    rc->request = r;
    rc->zone = elcf->counters;
    rc->state = (script == NGX_HTTP_ENGAGEMENT_SCRIPT_STATE);
    rc->hash = ngx_http_engagement_counters_hash(elcf->counters,
                                                 &re->content_id);
    rc->content_id_len = re->content_id.len;
    ngx_memcpy(rc->content_id, re->content_id.data, re->content_id.len);
    rc->user_id_len = re->user_id.len;
    ngx_memcpy(rc->user_id, re->user_id.data, re->user_id.len);

    return rc;
}


/* sends one script call for r; the request then waits (NGX_DONE) */

static ngx_int_t
ngx_http_engagement_react_send(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_uint_t script,
    ngx_http_engagement_reaction_t *re, ngx_str_t *state)
{
    void                              *wres;
    ngx_pool_cleanup_t                *cln;
    ngx_http_engagement_react_t       *rc;
    ngx_http_engagement_react_args_t   args;

    if (!ngx_http_engagement_redis_ready()) {
        ngx_http_engagement_stat(elcf, reactions_failed);
        ngx_http_engagement_set_outcome(r, "unavailable", "redis",
                                        &re->content_id);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; nothing changed, retry later");
    }

    wres = NULL;

    if (script == NGX_HTTP_ENGAGEMENT_SCRIPT_REACT
        && ngx_http_engagement_record_reaction(r, re, state, &wres)
           == NGX_BUSY)
    {
        return ngx_http_engagement_unavailable_writer(r, &re->content_id);
    }

    if (ngx_http_engagement_react_args(r, script, re, state, &args)
        != NGX_OK)
    {
        ngx_http_engagement_writer_cancel(wres);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_engagement_react_new(r, elcf, script, re, wres);
    if (rc == NULL) {
        ngx_http_engagement_writer_cancel(wres);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_engagement_writer_cancel(wres);
        ngx_free(rc);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_engagement_redis_eval(script,
                                       ngx_http_engagement_react_reply, rc,
                                       (int) args.argc, args.argv, args.lens)
        != NGX_OK)
    {
        ngx_http_engagement_writer_cancel(wres);
        ngx_free(rc);
        ngx_http_engagement_stat(elcf, reactions_failed);
        return ngx_http_engagement_unavailable(r,
                   "Redis is unavailable; nothing changed, retry later");
    }

    cln->handler = ngx_http_engagement_react_cleanup;
    cln->data = rc;
    rc->cleanup = cln;

    r->main->count++;

    return NGX_DONE;
}


/*
 * The state a POST asks for: a like, unless another configured reaction
 * is named. NGX_DECLINED with *state set, or the 400 sent.
 */

static ngx_int_t
ngx_http_engagement_reaction_state(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_reaction_t *re,
    ngx_str_t *state)
{
    ngx_str_t                        *types;
    ngx_uint_t                        i;
    ngx_http_engagement_main_conf_t  *emcf;

    emcf = ngx_http_get_module_main_conf(r, ngx_http_engagement_module);
    types = emcf->reactions->elts;

    if (re->reaction.len == 0) {
        *state = types[0];
        return NGX_DECLINED;
    }

    for (i = 0; i < emcf->reactions->nelts; i++) {
        if (types[i].len == re->reaction.len
            && ngx_strncmp(types[i].data, re->reaction.data,
                           re->reaction.len) == 0)
        {
            *state = types[i];
            return NGX_DECLINED;
        }
    }

    ngx_http_engagement_stat(elcf, reactions_invalid);
    ngx_http_engagement_set_outcome(r, "invalid", "reaction",
                                    &re->content_id);

    return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
               "invalid_field", "reaction",
               "is not one of the types in engagement_reactions");
}


static ngx_int_t
ngx_http_engagement_reaction_process(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        state;
    ngx_http_engagement_reaction_t   re;
    ngx_http_engagement_loc_conf_t  *elcf;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    rc = ngx_http_engagement_body_parse(r, elcf,
                                        &ngx_http_engagement_reaction_spec,
                                        &re);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* engagement_user_id: a user reacts for nobody else */
    rc = ngx_http_engagement_user_bind(r, &re.user_id, "userId", 0);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* rate limits (a key may use $engagement_viewer_id: the userId) */
    ngx_http_engagement_set_ids(r, &re.content_id, &re.user_id, NULL);

    rc = ngx_http_engagement_limit_check(r, elcf);

    if (rc != NGX_DECLINED) {
        ngx_http_engagement_stat(elcf, reactions_limited);
        return rc;
    }

    /* engagement_require_token: a token bound to the content and the user */
    rc = ngx_http_engagement_guard_like_token(r, elcf, &re.token,
                                              &re.content_id, &re.user_id);

    if (rc != NGX_DECLINED) {
        /* counted in nginx_engagement_token_refused_total by reason */
        return rc;
    }

    ngx_str_null(&state);

    if (r->method == NGX_HTTP_POST) {
        rc = ngx_http_engagement_reaction_state(r, elcf, &re, &state);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    return ngx_http_engagement_react_send(r, elcf,
                                          NGX_HTTP_ENGAGEMENT_SCRIPT_REACT,
                                          &re, &state);
}


static void
ngx_http_engagement_reaction_body(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_engagement_reaction_process(r));
}


/* GET ?contentId=&userId=: the user's reaction and the counts */

ngx_int_t
ngx_http_engagement_state_read(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf)
{
    ngx_int_t                       rc;
    ngx_http_engagement_reaction_t  re;

    ngx_memzero(&re, sizeof(ngx_http_engagement_reaction_t));

    if (ngx_http_arg(r, (u_char *) "contentId", 9, &re.content_id) != NGX_OK
        || !ngx_http_engagement_id_valid(re.content_id.data,
                                         re.content_id.len))
    {
        ngx_http_engagement_set_outcome(r, "invalid", "contentId", NULL);
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "contentId",
                   "is required: " NGX_HTTP_ENGAGEMENT_ID_RULE);
    }

    if (ngx_http_arg(r, (u_char *) "userId", 6, &re.user_id) != NGX_OK
        || !ngx_http_engagement_id_valid(re.user_id.data, re.user_id.len))
    {
        ngx_http_engagement_set_outcome(r, "invalid", "userId", NULL);
        return ngx_http_engagement_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid_field", "userId",
                   "is required: " NGX_HTTP_ENGAGEMENT_ID_RULE);
    }

    rc = ngx_http_engagement_user_bind(r, &re.user_id, "userId", 0);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    ngx_http_engagement_set_outcome(r, "read", NULL, &re.content_id);

    return ngx_http_engagement_react_send(r, elcf,
                                          NGX_HTTP_ENGAGEMENT_SCRIPT_STATE,
                                          &re, NULL);
}
