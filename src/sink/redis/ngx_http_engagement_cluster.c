
/*
 * Redis Cluster (engagement_redis cluster host:port ...): the slot map
 * read with CLUSTER SLOTS from a seed or any connected master, one
 * hiredis connection per master per worker on nginx's event loop (the
 * adapter of redis_adapter.c), each with its own state, timeouts and
 * reconnect backoff as redis.c's single connection, and the scripts
 * loaded on each (SCRIPT LOAD; a NOSCRIPT is answered by sending the
 * same call as EVAL with the script's text, and the scripts are loaded
 * again on that node). Every command goes to the master of its first
 * key's slot (CRC16 of the key's hash tag): the callers' keys are
 * hash-tagged so that all keys of one command share a slot. A MOVED
 * answer records the slot's new master, resends the command there and
 * has the map read again; an ASK answer sends ASKING and the command to
 * the named node, once. A slot whose master is not connected declines
 * the command (NGX_DECLINED), as the single connection does when down:
 * the flush keeps its claims and sends them again as the same batch.
 * While a slot has no ready master (a failover), the map is read again
 * every NGX_HTTP_ENGAGEMENT_CLUSTER_FAST ms, so a promoted replica is
 * used within that long of the cluster's own promotion.
 *
 * wait=N: a write script's answer is passed on only after WAIT N
 * (wait_timeout) says N replicas have it; else the caller sees no answer
 * and resends the same batch, which the script applies at most once. A
 * write acknowledged to the flush then survives the loss of its master.
 */


#include "store/ngx_http_engagement_store.h"
#include "sink/redis/ngx_http_engagement_cluster_int.h"
ngx_http_engagement_redis_conf_t        *ngx_http_engagement_crcf;
ngx_log_t                                *ngx_http_engagement_clog;
ngx_http_engagement_cnode_t              ngx_http_engagement_cnodes[
    NGX_HTTP_ENGAGEMENT_CLUSTER_NODES];
u_char                                   ngx_http_engagement_cmap[
    NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS];
ngx_uint_t                               ngx_http_engagement_cmapped;
ngx_uint_t                               ngx_http_engagement_crefreshing;
ngx_uint_t                               ngx_http_engagement_cwanted;
ngx_uint_t                               ngx_http_engagement_cseed;
ngx_uint_t                               ngx_http_engagement_cstopping;
ngx_msec_t                               ngx_http_engagement_cdown_at;
ngx_msec_t                               ngx_http_engagement_crefreshed;
ngx_event_t                              ngx_http_engagement_crefresh_ev;
char                                     ngx_http_engagement_csha[
    NGX_HTTP_ENGAGEMENT_SCRIPTS][NGX_HTTP_ENGAGEMENT_CLUSTER_SHA + 1];
ngx_uint_t                               ngx_http_engagement_cshas;


/* an outage of a node is reported once; its further failures at info */
static ngx_uint_t
ngx_http_engagement_clevel(ngx_http_engagement_cnode_t *n)
{
    return n->failing ? NGX_LOG_INFO : NGX_LOG_ERR;
}


/* the scripts that write: their answer waits for WAIT with wait=N */
static ngx_uint_t
ngx_http_engagement_cluster_writes(ngx_int_t script)
{
    switch (script) {
    case NGX_HTTP_ENGAGEMENT_SCRIPT_READ:
    case NGX_HTTP_ENGAGEMENT_SCRIPT_STATE:
    case NGX_HTTP_ENGAGEMENT_SCRIPT_HISTORY:
    case NGX_HTTP_ENGAGEMENT_SCRIPT_TREND_TOP:
    case NGX_HTTP_ENGAGEMENT_SCRIPT_TREND_COUNTS:
        return 0;
    default:
        return script >= 0;
    }
}


/* a copy of an answer, kept while WAIT is asked (hiredis frees its own) */

static redisReply *
ngx_http_engagement_cluster_copy(redisReply *r)
{
    size_t       i;
    redisReply  *c;

    c = calloc(1, sizeof(redisReply));
    if (c == NULL) {
        return NULL;
    }

    c->type = r->type;
    c->integer = r->integer;

    if (r->str) {
        c->str = malloc(r->len + 1);
        if (c->str == NULL) {
            freeReplyObject(c);
            return NULL;
        }

        ngx_memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->elements) {
        c->element = calloc(r->elements, sizeof(redisReply *));
        if (c->element == NULL) {
            freeReplyObject(c);
            return NULL;
        }

        c->elements = r->elements;

        for (i = 0; i < r->elements; i++) {
            c->element[i] = ngx_http_engagement_cluster_copy(r->element[i]);
            if (c->element[i] == NULL) {
                freeReplyObject(c);
                return NULL;
            }
        }
    }

    return c;
}


static void
ngx_http_engagement_ccall_free(ngx_http_engagement_ccall_t *call)
{
    if (call->held) {
        freeReplyObject(call->held);
    }

    ngx_free(call->cmd);
    ngx_free(call);
}


/* a command on a node's connection, counted for its timeout */

static ngx_int_t
ngx_http_engagement_cnode_send(ngx_http_engagement_cnode_t *n,
    redisCallbackFn *fn, void *priv, const u_char *cmd, size_t len)
{
    if (n->ac == NULL || ngx_http_engagement_cstopping) {
        return NGX_DECLINED;
    }

    if (redisAsyncFormattedCommand(n->ac, fn, priv, (const char *) cmd, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    if (n->outstanding++ == 0) {
        ngx_add_timer(&n->timeout_ev,
                      n->state == NGX_HTTP_ENGAGEMENT_REDIS_READY
                      ? ngx_http_engagement_crcf->timeout
                        + ngx_http_engagement_crcf->wait_timeout
                      : ngx_http_engagement_crcf->connect_timeout);
    }

    return NGX_OK;
}


/* a plain command of this file (argv form) on a node */

ngx_int_t
ngx_http_engagement_cnode_cmd(ngx_http_engagement_cnode_t *n,
    redisCallbackFn *fn, void *priv, int argc, const char **argv,
    const size_t *lens)
{
    u_char  *cmd;
    size_t   len;

    cmd = ngx_http_engagement_redis_format_cmd(0, NULL, NULL, argc, argv,
                                               lens, &len);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_engagement_cnode_send(n, fn, priv, cmd, len);
}


/* an answer came: the node's timeout follows the commands left */

ngx_http_engagement_cnode_t *
ngx_http_engagement_cnode_replied(redisAsyncContext *ac)
{
    ngx_http_engagement_cnode_t  *n;

    n = ac->data;

    if (ac != n->ac) {
        /* a context being freed: its node's new connection is not its */
        return n;
    }

    if (n->outstanding) {
        n->outstanding--;
    }

    if (n->timeout_ev.timer_set) {
        ngx_del_timer(&n->timeout_ev);
    }

    if (n->outstanding && n->ac) {
        ngx_add_timer(&n->timeout_ev,
                      n->state == NGX_HTTP_ENGAGEMENT_REDIS_READY
                      ? ngx_http_engagement_crcf->timeout
                        + ngx_http_engagement_crcf->wait_timeout
                      : ngx_http_engagement_crcf->connect_timeout);
    }

    return n;
}


static void ngx_http_engagement_cluster_on_reply(redisAsyncContext *ac,
    void *r, void *privdata);


/* a caller's command to a node (with ASKING first after an ASK) */

static ngx_int_t
ngx_http_engagement_ccall_send(ngx_http_engagement_cnode_t *n,
    ngx_http_engagement_ccall_t *call, ngx_uint_t asking)
{
    ngx_int_t  rc;

    if (asking) {
        rc = ngx_http_engagement_cnode_send(n,
                 ngx_http_engagement_cluster_on_reply, NULL,
                 (const u_char *) "*1\r\n$6\r\nASKING\r\n", 16);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return ngx_http_engagement_cnode_send(n,
               ngx_http_engagement_cluster_on_reply, call, call->cmd,
               call->len);
}


/* "MOVED <slot> <ip>:<port>" or "ASK ...": the slot and its node */

static ngx_http_engagement_cnode_t *
ngx_http_engagement_cluster_redirect(redisReply *reply, ngx_uint_t *slot,
    ngx_uint_t *ask)
{
    u_char     *p, *last, *sp, *colon;
    ngx_int_t   s, port;

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        *ask = 0;
        p += 6;

    } else if (reply->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        *ask = 1;
        p += 4;

    } else {
        return NULL;
    }

    sp = ngx_strlchr(p, last, ' ');
    if (sp == NULL) {
        return NULL;
    }

    s = ngx_atoi(p, sp - p);
    if (s == NGX_ERROR || s >= NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS) {
        return NULL;
    }

    p = sp + 1;

    for (colon = NULL, sp = p; sp < last; sp++) {
        if (*sp == ':') {
            colon = sp;
        }
    }

    if (colon == NULL || colon == p) {
        return NULL;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);
    if (port == NGX_ERROR || port == 0 || port > 65535) {
        return NULL;
    }

    *slot = s;

    return ngx_http_engagement_cnode_get(p, colon - p, (int) port);
}


/* NOSCRIPT: the same call as EVAL with the script's text */

static ngx_int_t
ngx_http_engagement_ccall_eval(ngx_http_engagement_ccall_t *call)
{
    u_char      *cmd, *p, *e;
    size_t       len, blen, head;
    const char  *body;

    body = ngx_http_engagement_redis_scripts[call->script];
    blen = ngx_strlen(body);

    e = ngx_strlchr(call->cmd, call->cmd + call->len, LF);
    if (e == NULL) {
        return NGX_ERROR;
    }

    head = e + 1 - call->cmd;
    len = head + sizeof("$4\r\nEVAL\r\n") - 1 + 1 + NGX_SIZE_T_LEN + 2
          + blen + 2 + (call->len - call->rest);

    cmd = ngx_alloc(len, ngx_http_engagement_clog);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(cmd, call->cmd, head);
    p = ngx_cpymem(p, "$4\r\nEVAL\r\n", sizeof("$4\r\nEVAL\r\n") - 1);
    p = ngx_sprintf(p, "$%uz\r\n", blen);
    p = ngx_cpymem(p, body, blen);
    *p++ = CR; *p++ = LF;
    p = ngx_cpymem(p, call->cmd + call->rest, call->len - call->rest);

    ngx_free(call->cmd);
    call->cmd = cmd;
    call->len = p - cmd;
    call->evaled = 1;

    return NGX_OK;
}


static void
ngx_http_engagement_cnode_load(ngx_http_engagement_cnode_t *n);


static void
ngx_http_engagement_cluster_on_wait(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_engagement_cnode_t  *n;
    ngx_http_engagement_ccall_t  *call = privdata;

    n = ngx_http_engagement_cnode_replied(ac);

    if (reply && reply->type == REDIS_REPLY_INTEGER
        && reply->integer >= (long long) ngx_http_engagement_crcf->wait)
    {
        call->cb(call->held, call->data);

    } else {
        ngx_log_error(NGX_LOG_WARN, ngx_http_engagement_clog, 0,
                      "engagement redis cluster: a write on %*s reached "
                      "%i replicas of %ui in %M ms; it will be sent again",
                      n->name_len, n->name,
                      (reply && reply->type == REDIS_REPLY_INTEGER)
                      ? (ngx_int_t) reply->integer : (ngx_int_t) -1,
                      ngx_http_engagement_crcf->wait,
                      ngx_http_engagement_crcf->wait_timeout);
        call->cb(NULL, call->data);
    }

    ngx_http_engagement_ccall_free(call);
}


static void
ngx_http_engagement_cluster_on_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    u_char                        wait[64];
    ngx_uint_t                    slot, ask;
    redisReply                   *reply = r;
    ngx_http_engagement_cnode_t  *n, *to;
    ngx_http_engagement_ccall_t  *call = privdata;

    n = ngx_http_engagement_cnode_replied(ac);

    if (call == NULL) {
        return;     /* ASKING's answer */
    }

    if (reply && reply->type == REDIS_REPLY_ERROR) {

        to = ngx_http_engagement_cluster_redirect(reply, &slot, &ask);

        if (to && call->redirects++ < NGX_HTTP_ENGAGEMENT_CLUSTER_REDIRECTS) {
            ngx_log_error(NGX_LOG_INFO, ngx_http_engagement_clog, 0,
                          "engagement redis cluster: %s from %*s",
                          reply->str, n->name_len, n->name);

            if (!ask) {
                ngx_http_engagement_cmap[slot] =
                                      (u_char) (to - ngx_http_engagement_cnodes);
                to->used = 1;
                ngx_http_engagement_cwanted = 1;
            }

            if (to->state == NGX_HTTP_ENGAGEMENT_REDIS_READY
                && ngx_http_engagement_ccall_send(to, call, ask) == NGX_OK)
            {
                return;
            }

            if (to->ac == NULL && !to->reconnect_ev.timer_set) {
                to->used = 1;
                ngx_http_engagement_cnode_connect(to);
            }

            call->cb(NULL, call->data);
            ngx_http_engagement_ccall_free(call);
            return;
        }

        if (ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
            && call->script >= 0 && !call->evaled)
        {
            ngx_log_error(NGX_LOG_INFO, ngx_http_engagement_clog, 0,
                          "engagement redis cluster: NOSCRIPT from %*s: "
                          "sent as EVAL, the scripts loaded again",
                          n->name_len, n->name);

            ngx_http_engagement_cnode_load(n);

            if (ngx_http_engagement_ccall_eval(call) == NGX_OK
                && ngx_http_engagement_ccall_send(n, call, 0) == NGX_OK)
            {
                return;
            }
        }

        ngx_http_engagement_cstat(redis_errors);

        if (ngx_strncmp(reply->str, "CLUSTERDOWN", 11) == 0
            || ngx_strncmp(reply->str, "TRYAGAIN", 8) == 0)
        {
            ngx_http_engagement_cwanted = 1;
        }
    }

    if (reply && reply->type != REDIS_REPLY_ERROR && call->wait
        && ngx_http_engagement_crcf->wait)
    {
        call->held = ngx_http_engagement_cluster_copy(reply);

        if (call->held) {
            const char  *argv[3];
            size_t       lens[3];
            u_char      *t;

            argv[0] = "WAIT";
            lens[0] = 4;
            argv[1] = (const char *) wait;
            t = ngx_sprintf(wait, "%ui", ngx_http_engagement_crcf->wait);
            lens[1] = t - wait;
            argv[2] = (const char *) t;
            lens[2] = ngx_sprintf(t, "%M",
                                  ngx_http_engagement_crcf->wait_timeout)
                      - t;

            if (ngx_http_engagement_cnode_cmd(n,
                    ngx_http_engagement_cluster_on_wait, call, 3, argv, lens)
                == NGX_OK)
            {
                return;
            }
        }

        reply = NULL;   /* not known to be on a replica: sent again */
    }

    call->cb(reply, call->data);
    ngx_http_engagement_ccall_free(call);
}


/*
 * A caller's command: to the master of its first key's slot (argv[1]
 * for a plain command, the first of KEYS for a script or a plain EVAL
 * such as the webhook's). NGX_DECLINED:
 * that master is not connected now (the map is read again).
 */

ngx_int_t
ngx_http_engagement_cluster_send(ngx_int_t script,
    ngx_http_engagement_redis_cb_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    u_char                       *cmd;
    size_t                        len;
    ngx_int_t                     nkeys, rc;
    ngx_uint_t                    slot, i;
    const char                   *pre[2];
    ngx_http_engagement_cnode_t  *n;
    ngx_http_engagement_ccall_t  *call;

    static size_t  prelen[2] = { sizeof("EVALSHA") - 1,
                                 NGX_HTTP_ENGAGEMENT_CLUSTER_SHA };

    if (ngx_http_engagement_cstopping || !ngx_http_engagement_cmapped) {
        return NGX_DECLINED;
    }

    slot = 0;

    if (script >= 0) {
        nkeys = ngx_atoi((u_char *) argv[0], argvlen[0]);
        if (nkeys > 0 && argc > 1) {
            slot = ngx_http_engagement_cluster_slot((u_char *) argv[1],
                                                    argvlen[1]);
        }

    } else if (argc > 3 && argvlen[0] == 4
               && ngx_strncasecmp((u_char *) argv[0], (u_char *) "EVAL", 4)
                  == 0)
    {
        /* a plain EVAL (the webhook's scripts): by its first key */
        nkeys = ngx_atoi((u_char *) argv[2], argvlen[2]);
        if (nkeys > 0) {
            slot = ngx_http_engagement_cluster_slot((u_char *) argv[3],
                                                    argvlen[3]);
        }

    } else if (argc > 1) {
        slot = ngx_http_engagement_cluster_slot((u_char *) argv[1],
                                                argvlen[1]);
    }

    i = ngx_http_engagement_cmap[slot];

    if (i == NGX_HTTP_ENGAGEMENT_CLUSTER_NONE
        || ngx_http_engagement_cnodes[i].state
           != NGX_HTTP_ENGAGEMENT_REDIS_READY
        || (script >= 0 && !ngx_http_engagement_cshas))
    {
        ngx_http_engagement_cwanted = 1;
        return NGX_DECLINED;
    }

    n = &ngx_http_engagement_cnodes[i];

    pre[0] = "EVALSHA";
    pre[1] = (script >= 0) ? ngx_http_engagement_csha[script] : NULL;

    cmd = ngx_http_engagement_redis_format_cmd(script >= 0 ? 2 : 0, pre,
                                               prelen, argc, argv, argvlen,
                                               &len);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    call = ngx_alloc(sizeof(ngx_http_engagement_ccall_t),
                     ngx_http_engagement_clog);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->cmd = ngx_alloc(len, ngx_http_engagement_clog);
    if (call->cmd == NULL) {
        ngx_free(call);
        return NGX_ERROR;
    }

    ngx_memcpy(call->cmd, cmd, len);
    call->len = len;
    call->cb = cb;
    call->data = data;
    call->script = script;
    call->redirects = 0;
    call->evaled = 0;
    call->held = NULL;
    call->wait = ngx_http_engagement_cluster_writes(script);
    call->rest = 0;

    if (script >= 0) {
        /* *N CRLF, $7 CRLF EVALSHA CRLF, $40 CRLF <sha> CRLF */
        cmd = ngx_strlchr(call->cmd, call->cmd + len, LF);
        call->rest = cmd + 1 - call->cmd
                     + sizeof("$7\r\nEVALSHA\r\n$40\r\n") - 1
                     + NGX_HTTP_ENGAGEMENT_CLUSTER_SHA + 2;
    }

    rc = ngx_http_engagement_ccall_send(n, call, 0);

    if (rc != NGX_OK) {
        ngx_http_engagement_ccall_free(call);
    }

    return rc;
}


/* the connection's setup: scripts loaded, the node is ready */

static void
ngx_http_engagement_cluster_on_script(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_uint_t                    i = (ngx_uint_t) (uintptr_t) privdata;
    ngx_http_engagement_cnode_t  *n;

    n = ngx_http_engagement_cnode_replied(ac);

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_STRING
        || reply->len != NGX_HTTP_ENGAGEMENT_CLUSTER_SHA)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_http_engagement_clog, 0,
                      "engagement redis cluster: SCRIPT LOAD on %*s failed: "
                      "%s", n->name_len, n->name,
                      reply->type == REDIS_REPLY_ERROR ? reply->str
                                                       : "unexpected reply");
        ngx_http_engagement_cnode_fail(n, NULL);
        return;
    }

    ngx_memcpy(ngx_http_engagement_csha[i], reply->str,
               NGX_HTTP_ENGAGEMENT_CLUSTER_SHA);

    if (i == NGX_HTTP_ENGAGEMENT_SCRIPTS - 1) {
        ngx_http_engagement_cshas = 1;
    }

    if (++n->loaded < NGX_HTTP_ENGAGEMENT_SCRIPTS
        || n->state == NGX_HTTP_ENGAGEMENT_REDIS_READY)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_http_engagement_clog, 0,
                  "engagement redis cluster: connected to %*s",
                  n->name_len, n->name);

    n->state = NGX_HTTP_ENGAGEMENT_REDIS_READY;
    n->backoff = 0;
    n->failing = 0;
    ngx_http_engagement_cstat(redis_connects);

    ngx_http_engagement_cluster_update();

    if (!ngx_http_engagement_cmapped || ngx_http_engagement_cwanted) {
        ngx_http_engagement_cluster_refresh();
    }
}


static void
ngx_http_engagement_cnode_load(ngx_http_engagement_cnode_t *n)
{
    size_t       lens[3];
    ngx_uint_t   i;
    const char  *argv[3];

    argv[0] = "SCRIPT";
    lens[0] = 6;
    argv[1] = "LOAD";
    lens[1] = 4;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_SCRIPTS; i++) {
        argv[2] = ngx_http_engagement_redis_scripts[i];
        lens[2] = ngx_strlen(argv[2]);

        (void) ngx_http_engagement_cnode_cmd(n,
                   ngx_http_engagement_cluster_on_script,
                   (void *) (uintptr_t) i, 3, argv, lens);
    }
}


static void
ngx_http_engagement_cluster_on_auth(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_http_engagement_cnode_t  *n;

    n = ngx_http_engagement_cnode_replied(ac);

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_engagement_clog, 0,
                      "engagement redis cluster: AUTH on %*s failed: %s",
                      n->name_len, n->name, reply->str);
        ngx_http_engagement_cnode_fail(n, NULL);
    }
}


static void
ngx_http_engagement_cnode_schedule(ngx_http_engagement_cnode_t *n)
{
    ngx_msec_t  delay;

    if (ngx_http_engagement_cstopping || !n->used
        || n->reconnect_ev.timer_set)
    {
        return;
    }

    n->backoff = n->backoff ? ngx_min(n->backoff * 2,
                                      ngx_http_engagement_crcf->backoff_max)
                            : ngx_http_engagement_crcf->backoff_min;

    delay = n->backoff * 3 / 4
            + (ngx_msec_t) ngx_random() % (n->backoff / 2 + 1);

    ngx_add_timer(&n->reconnect_ev, delay);
}


static void
ngx_http_engagement_cluster_on_connect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_engagement_cnode_t  *n;

    n = ac->data;

    if (status == REDIS_OK) {
        n->state = NGX_HTTP_ENGAGEMENT_REDIS_AUTHENTICATING;
        return;
    }

    /* hiredis frees the context after this callback */
    if (n->ac == ac) {
        n->ac = NULL;
    }

    n->outstanding = 0;

    if (n->timeout_ev.timer_set) {
        ngx_del_timer(&n->timeout_ev);
    }

    ngx_log_error(ngx_http_engagement_clevel(n),
                  ngx_http_engagement_clog, 0,
                  "engagement redis cluster: connect to %*s failed: %s%s",
                  n->name_len, n->name,
                  ac->errstr ? ac->errstr : "unknown error",
                  n->failing ? "" : "; retrying with backoff");

    n->failing = 1;
    n->state = NGX_HTTP_ENGAGEMENT_REDIS_FAILED;
    ngx_http_engagement_cwanted = 1;
    ngx_http_engagement_cluster_update();
    ngx_http_engagement_cnode_schedule(n);
}


static void
ngx_http_engagement_cluster_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_engagement_cnode_t  *n;

    n = ac->data;

    if (n->ac != ac) {
        return;     /* freed here: cnode_fail() has done the rest */
    }

    n->ac = NULL;
    n->outstanding = 0;
    n->loaded = 0;

    if (n->timeout_ev.timer_set) {
        ngx_del_timer(&n->timeout_ev);
    }

    if (ngx_http_engagement_cstopping) {
        return;
    }

    if (n->state == NGX_HTTP_ENGAGEMENT_REDIS_READY) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_engagement_clog, 0,
                      "engagement redis cluster: connection to %*s lost: %s",
                      n->name_len, n->name,
                      (status == REDIS_OK) ? "closed"
                      : (ac->errstr ? ac->errstr : "error"));
        ngx_http_engagement_cstat(redis_disconnects);
    }

    n->failing = 1;
    n->state = NGX_HTTP_ENGAGEMENT_REDIS_FAILED;
    ngx_http_engagement_cwanted = 1;
    ngx_http_engagement_cluster_update();
    ngx_http_engagement_cnode_schedule(n);
}


/* drops a node's connection; its pending callbacks get no answer */

void
ngx_http_engagement_cnode_fail(ngx_http_engagement_cnode_t *n,
    const char *why)
{
    redisAsyncContext  *ac;

    if (why) {
        ngx_log_error(ngx_http_engagement_clevel(n),
                      ngx_http_engagement_clog, 0,
                      "engagement redis cluster: %s on %*s; reconnecting",
                      why, n->name_len, n->name);
    }

    if (n->state == NGX_HTTP_ENGAGEMENT_REDIS_READY) {
        ngx_http_engagement_cstat(redis_disconnects);
    }

    n->failing = 1;
    n->state = NGX_HTTP_ENGAGEMENT_REDIS_FAILED;
    n->loaded = 0;

    ac = n->ac;
    n->ac = NULL;

    if (n->timeout_ev.timer_set) {
        ngx_del_timer(&n->timeout_ev);
    }

    if (ac) {
        redisAsyncFree(ac);
    }

    n->outstanding = 0;
    ngx_http_engagement_cwanted = 1;
    ngx_http_engagement_cluster_update();
    ngx_http_engagement_cnode_schedule(n);
}


static void
ngx_http_engagement_cnode_timeout(ngx_event_t *ev)
{
    ngx_http_engagement_cnode_t  *n = ev->data;

    ngx_http_engagement_cstat(redis_timeouts);

    ngx_http_engagement_cnode_fail(n,
        n->state == NGX_HTTP_ENGAGEMENT_REDIS_READY
        ? "command timed out" : "connect timed out");
}


static void
ngx_http_engagement_cnode_reconnect(ngx_event_t *ev)
{
    ngx_http_engagement_cnode_t  *n = ev->data;

    if (n->used) {
        ngx_http_engagement_cnode_connect(n);
    }
}


void
ngx_http_engagement_cnode_connect(ngx_http_engagement_cnode_t *n)
{
    size_t              lens[2];
    const char         *argv[2];
    redisAsyncContext  *ac;

    if (ngx_http_engagement_cstopping || n->ac) {
        return;
    }

    if (n->reconnect_ev.timer_set) {
        ngx_del_timer(&n->reconnect_ev);
    }

    n->reconnect_ev.handler = ngx_http_engagement_cnode_reconnect;
    n->reconnect_ev.data = n;
    n->reconnect_ev.log = ngx_http_engagement_clog;
    n->reconnect_ev.cancelable = 1;
    n->timeout_ev.handler = ngx_http_engagement_cnode_timeout;
    n->timeout_ev.data = n;
    n->timeout_ev.log = ngx_http_engagement_clog;
    n->timeout_ev.cancelable = 1;

    n->state = NGX_HTTP_ENGAGEMENT_REDIS_CONNECTING;
    n->loaded = 0;
    n->outstanding = 0;

    /* a numeric address: from the configuration or the cluster's map */
    ac = redisAsyncConnect((char *) n->ip, n->port);

    if (ac == NULL || ac->err
        || ngx_http_engagement_redis_attach(ac, ngx_http_engagement_clog)
           != NGX_OK)
    {
        ngx_log_error(ngx_http_engagement_clevel(n),
                      ngx_http_engagement_clog, 0,
                      "engagement redis cluster: connect to %*s failed: %s",
                      n->name_len, n->name,
                      ac ? (ac->err ? ac->errstr : "no connection")
                         : "out of memory");
        n->failing = 1;

        if (ac) {
            redisAsyncFree(ac);
        }

        n->state = NGX_HTTP_ENGAGEMENT_REDIS_FAILED;
        ngx_http_engagement_cnode_schedule(n);
        return;
    }

    ac->data = n;
    redisAsyncSetConnectCallback(ac, ngx_http_engagement_cluster_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_engagement_cluster_on_disconnect);
    n->ac = ac;

    if (ngx_http_engagement_crcf->password.len) {
        argv[0] = "AUTH";
        lens[0] = 4;
        argv[1] = (char *) ngx_http_engagement_crcf->password.data;
        lens[1] = ngx_http_engagement_crcf->password.len;
        (void) ngx_http_engagement_cnode_cmd(n,
                   ngx_http_engagement_cluster_on_auth, NULL, 2, argv, lens);
    }

    ngx_http_engagement_cnode_load(n);
}


ngx_int_t
ngx_http_engagement_cluster_start(ngx_cycle_t *cycle,
    ngx_http_engagement_redis_conf_t *rcf)
{
    ngx_http_engagement_crcf = rcf;
    ngx_http_engagement_clog = cycle->log;
    ngx_http_engagement_cstopping = 0;
    ngx_http_engagement_cmapped = 0;
    ngx_http_engagement_crefreshing = 0;
    ngx_http_engagement_cwanted = 1;
    ngx_http_engagement_cseed = 0;
    ngx_http_engagement_cshas = 0;
    ngx_http_engagement_cdown_at = 0;

    ngx_memzero(ngx_http_engagement_cnodes,
                sizeof(ngx_http_engagement_cnodes));
    ngx_memset(ngx_http_engagement_cmap, NGX_HTTP_ENGAGEMENT_CLUSTER_NONE,
               sizeof(ngx_http_engagement_cmap));

    if (ngx_http_engagement_cluster_map_init(cycle->log) != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "engagement redis cluster: no slot tags");
        return NGX_ERROR;
    }

    ngx_http_engagement_cluster_update();

    ngx_memzero(&ngx_http_engagement_crefresh_ev, sizeof(ngx_event_t));
    ngx_http_engagement_crefresh_ev.handler =
        ngx_http_engagement_cluster_refresh_handler;
    ngx_http_engagement_crefresh_ev.log = cycle->log;
    ngx_http_engagement_crefresh_ev.data = rcf;
    ngx_http_engagement_crefresh_ev.cancelable = 1;

    ngx_http_engagement_cluster_refresh();
    ngx_add_timer(&ngx_http_engagement_crefresh_ev,
                  NGX_HTTP_ENGAGEMENT_CLUSTER_FAST);

    return NGX_OK;
}


void
ngx_http_engagement_cluster_stop(void)
{
    ngx_uint_t                    i;
    redisAsyncContext            *ac;
    ngx_http_engagement_cnode_t  *n;

    ngx_http_engagement_cstopping = 1;

    if (ngx_http_engagement_crefresh_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_crefresh_ev);
    }

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_CLUSTER_NODES; i++) {
        n = &ngx_http_engagement_cnodes[i];

        if (n->reconnect_ev.timer_set) {
            ngx_del_timer(&n->reconnect_ev);
        }

        if (n->timeout_ev.timer_set) {
            ngx_del_timer(&n->timeout_ev);
        }

        ac = n->ac;
        n->ac = NULL;
        n->state = NGX_HTTP_ENGAGEMENT_REDIS_IDLE;

        if (ac) {
            redisAsyncFree(ac);
        }
    }

    ngx_http_engagement_cmapped = 0;
    ngx_http_engagement_cluster_update();
}
