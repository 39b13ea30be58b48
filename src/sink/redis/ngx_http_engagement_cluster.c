
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
#include "sink/redis/ngx_http_engagement_redis.h"


#define NGX_HTTP_ENGAGEMENT_CLUSTER_SHA      40
#define NGX_HTTP_ENGAGEMENT_CLUSTER_NODES    64
#define NGX_HTTP_ENGAGEMENT_CLUSTER_NONE     0xff
#define NGX_HTTP_ENGAGEMENT_CLUSTER_REDIRECTS 5

/* the map is read again this often while a slot lacks a master (ms) */
#define NGX_HTTP_ENGAGEMENT_CLUSTER_FAST     250
/* and this often otherwise */
#define NGX_HTTP_ENGAGEMENT_CLUSTER_SLOW     10000


typedef struct {
    u_char                            ip[NGX_SOCKADDR_STRLEN + 1];
    int                               port;
    u_char                            name[NGX_SOCKADDR_STRLEN + 8];
    size_t                            name_len;
    redisAsyncContext                *ac;
    ngx_http_engagement_redis_state_e state;
    ngx_uint_t                        loaded;      /* scripts answered */
    ngx_uint_t                        outstanding;
    ngx_uint_t                        failing;
    ngx_uint_t                        used;        /* in the map, or a seed */
    ngx_msec_t                        backoff;
    ngx_event_t                       timeout_ev;
    ngx_event_t                       reconnect_ev;
} ngx_http_engagement_cnode_t;


/* one command of a caller, kept whole for a redirect */
typedef struct {
    ngx_http_engagement_redis_cb_pt   cb;
    void                             *data;
    ngx_int_t                         script;      /* -1: a plain command */
    ngx_uint_t                        redirects;
    ngx_uint_t                        evaled;      /* sent as EVAL */
    ngx_uint_t                        wait;        /* WAIT after the answer */
    redisReply                       *held;        /* the answer, in WAIT */
    u_char                           *cmd;
    size_t                            len;
    size_t                            rest;        /* after EVALSHA <sha> */
} ngx_http_engagement_ccall_t;


static void ngx_http_engagement_cnode_connect(ngx_http_engagement_cnode_t *n);
static void ngx_http_engagement_cnode_fail(ngx_http_engagement_cnode_t *n,
    const char *why);
static void ngx_http_engagement_cluster_refresh(void);
static void ngx_http_engagement_cluster_update(void);


static ngx_http_engagement_redis_conf_t  *ngx_http_engagement_crcf;
static ngx_log_t                         *ngx_http_engagement_clog;
static ngx_http_engagement_cnode_t        ngx_http_engagement_cnodes[
    NGX_HTTP_ENGAGEMENT_CLUSTER_NODES];
static u_char                             ngx_http_engagement_cmap[
    NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS];
static ngx_uint_t                         ngx_http_engagement_cmapped;
static ngx_uint_t                         ngx_http_engagement_crefreshing;
static ngx_uint_t                         ngx_http_engagement_cwanted;
static ngx_uint_t                         ngx_http_engagement_cseed;
static ngx_uint_t                         ngx_http_engagement_cstopping;
static ngx_msec_t                         ngx_http_engagement_cdown_at;
static ngx_msec_t                         ngx_http_engagement_crefreshed;
static ngx_event_t                        ngx_http_engagement_crefresh_ev;
static char                               ngx_http_engagement_csha[
    NGX_HTTP_ENGAGEMENT_SCRIPTS][NGX_HTTP_ENGAGEMENT_CLUSTER_SHA + 1];
static ngx_uint_t                         ngx_http_engagement_cshas;
static uint16_t                           ngx_http_engagement_crc_table[256];
static ngx_str_t                         *ngx_http_engagement_ctags;


#define ngx_http_engagement_cstat(f)                                          \
    if (ngx_http_engagement_global_sh) {                                      \
        ngx_http_engagement_inc(ngx_http_engagement_global_sh, f);            \
    }


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


/* CRC16-CCITT (XMODEM), as Redis Cluster's key slot */

static void
ngx_http_engagement_cluster_crc_init(void)
{
    ngx_uint_t  i, j;
    uint16_t    crc;

    for (i = 0; i < 256; i++) {
        crc = (uint16_t) (i << 8);

        for (j = 0; j < 8; j++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }

        ngx_http_engagement_crc_table[i] = crc;
    }
}


static uint16_t
ngx_http_engagement_cluster_crc16(const u_char *p, size_t len)
{
    uint16_t  crc = 0;

    while (len--) {
        crc = (uint16_t) (crc << 8)
              ^ ngx_http_engagement_crc_table[((crc >> 8) ^ *p++) & 0xff];
    }

    return crc;
}


/* a key's slot: the hash tag's ({...}, not empty) or the whole key's */

ngx_uint_t
ngx_http_engagement_cluster_slot(const u_char *key, size_t len)
{
    size_t  s, e;

    for (s = 0; s < len && key[s] != '{'; s++) { /* void */ }

    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++) { /* void */ }

        if (e < len && e != s + 1) {
            key += s + 1;
            len = e - s - 1;
        }
    }

    return ngx_http_engagement_cluster_crc16(key, len)
           & (NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS - 1);
}


/*
 * A short text per slot whose CRC16 is that slot: a batch key tagged
 * {<it>} lives in that slot, whatever the order of a round's contents.
 * Strings of [0-9a-z] by length and order, the first one of each slot.
 */

static ngx_int_t
ngx_http_engagement_cluster_tags(ngx_log_t *log)
{
    u_char      *text, *p, s[4];
    ngx_uint_t   i, len, n, left, slot, k, v;

    static const u_char  digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

    if (ngx_http_engagement_ctags) {
        return NGX_OK;
    }

    ngx_http_engagement_ctags = ngx_calloc(NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS
                                           * (sizeof(ngx_str_t) + 4), log);
    if (ngx_http_engagement_ctags == NULL) {
        return NGX_ERROR;
    }

    text = (u_char *) &ngx_http_engagement_ctags[
                                           NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS];
    left = NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS;

    for (len = 1, n = 36; len <= 4 && left; len++, n *= 36) {
        for (i = 0; i < n && left; i++) {
            for (k = 0, v = i; k < len; k++, v /= 36) {
                s[len - 1 - k] = digits[v % 36];
            }

            slot = ngx_http_engagement_cluster_crc16(s, len)
                   & (NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS - 1);

            if (ngx_http_engagement_ctags[slot].len) {
                continue;
            }

            p = text + slot * 4;
            ngx_memcpy(p, s, len);
            ngx_http_engagement_ctags[slot].data = p;
            ngx_http_engagement_ctags[slot].len = len;
            left--;
        }
    }

    return left ? NGX_ERROR : NGX_OK;
}


ngx_str_t *
ngx_http_engagement_cluster_tag(ngx_uint_t slot)
{
    return &ngx_http_engagement_ctags[slot];
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


/* the node's state as seen by /status and the health check */

static void
ngx_http_engagement_cluster_update(void)
{
    ngx_uint_t                    i, ok;
    ngx_http_engagement_stats_t  *st;

    ok = ngx_http_engagement_cmapped;

    for (i = 0; ok && i < NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS; i++) {
        if (ngx_http_engagement_cmap[i] == NGX_HTTP_ENGAGEMENT_CLUSTER_NONE
            || ngx_http_engagement_cnodes[ngx_http_engagement_cmap[i]].state
               != NGX_HTTP_ENGAGEMENT_REDIS_READY)
        {
            ok = 0;
        }
    }

    if (!ok && ngx_http_engagement_cdown_at == 0) {
        ngx_http_engagement_cdown_at = ngx_current_msec ? ngx_current_msec : 1;

    } else if (ok) {
        ngx_http_engagement_cdown_at = 0;
    }

    if (ngx_http_engagement_global_sh) {
        st = ngx_http_engagement_slot(ngx_http_engagement_global_sh);
        st->redis_ready = ok;
    }
}


ngx_msec_t
ngx_http_engagement_cluster_down_for(void)
{
    if (ngx_http_engagement_cdown_at == 0) {
        return 0;
    }

    return ngx_current_msec - ngx_http_engagement_cdown_at + 1;
}


/* a map is known and some master is ready: the flush may start a round */

ngx_uint_t
ngx_http_engagement_cluster_ready(void)
{
    ngx_uint_t  i;

    if (!ngx_http_engagement_cmapped) {
        return 0;
    }

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_CLUSTER_NODES; i++) {
        if (ngx_http_engagement_cnodes[i].used
            && ngx_http_engagement_cnodes[i].state
               == NGX_HTTP_ENGAGEMENT_REDIS_READY)
        {
            return 1;
        }
    }

    return 0;
}


/* the node of ip:port, made (not connected) if new; NULL: table full */

static ngx_http_engagement_cnode_t *
ngx_http_engagement_cnode_get(const u_char *ip, size_t iplen, int port)
{
    ngx_uint_t                    i;
    ngx_http_engagement_cnode_t  *n, *free;

    free = NULL;

    if (iplen > NGX_SOCKADDR_STRLEN) {
        return NULL;
    }

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_CLUSTER_NODES; i++) {
        n = &ngx_http_engagement_cnodes[i];

        if (n->name_len == 0) {
            if (free == NULL) {
                free = n;
            }
            continue;
        }

        if (n->port == port && ngx_strlen(n->ip) == iplen
            && ngx_strncmp(n->ip, ip, iplen) == 0)
        {
            return n;
        }
    }

    if (free == NULL) {
        /* a node neither mapped nor connected gives its place */
        for (i = 0; i < NGX_HTTP_ENGAGEMENT_CLUSTER_NODES; i++) {
            n = &ngx_http_engagement_cnodes[i];

            if (!n->used && n->ac == NULL && !n->reconnect_ev.timer_set) {
                free = n;
                break;
            }
        }

        if (free == NULL) {
            return NULL;
        }
    }

    n = free;
    ngx_memcpy(n->ip, ip, iplen);
    n->ip[iplen] = '\0';
    n->port = port;
    n->name_len = ngx_sprintf(n->name, "%s:%d", n->ip, port) - n->name;
    n->ac = NULL;
    n->state = NGX_HTTP_ENGAGEMENT_REDIS_IDLE;
    n->loaded = 0;
    n->outstanding = 0;
    n->failing = 0;
    n->used = 0;
    n->backoff = 0;

    return n;
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

static ngx_int_t
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

static ngx_http_engagement_cnode_t *
ngx_http_engagement_cnode_replied(redisAsyncContext *ac)
{
    ngx_http_engagement_cnode_t  *n;

    n = ac->data;

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
                      "%xi replicas of %ui in %M ms; it will be sent again",
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
                ngx_http_engagement_cmap[slot] = to - ngx_http_engagement_cnodes;
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
            lens[2] = ngx_sprintf(t, "%M", ngx_http_engagement_crcf->wait_timeout)
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
 * for a plain command, the first of KEYS for a script). NGX_DECLINED:
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

static void
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


static void
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


/*
 * CLUSTER SLOTS: [start, end, [ip, port, id, ...], replicas...] per
 * range. The map is replaced whole; masters not connected are; nodes no
 * longer in it stop reconnecting, and their connections are closed.
 */

static void
ngx_http_engagement_cluster_on_slots(redisAsyncContext *ac, void *r,
    void *privdata)
{
    u_char                        map[NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS];
    u_char                       *ip;
    size_t                        iplen;
    ngx_uint_t                    i, j, s, e, masters, changed;
    redisReply                   *reply = r, *rng, *m;
    ngx_http_engagement_cnode_t  *n, *from;

    from = ngx_http_engagement_cnode_replied(ac);
    ngx_http_engagement_crefreshing = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, ngx_http_engagement_clog, 0,
                          "engagement redis cluster: CLUSTER SLOTS on %*s "
                          "failed: %s", from->name_len, from->name,
                          reply->type == REDIS_REPLY_ERROR ? reply->str
                          : "unexpected reply");
        }

        ngx_http_engagement_cwanted = 1;
        return;
    }

    ngx_memset(map, NGX_HTTP_ENGAGEMENT_CLUSTER_NONE, sizeof(map));

    for (i = 0; i < reply->elements; i++) {
        rng = reply->element[i];

        if (rng->type != REDIS_REPLY_ARRAY || rng->elements < 3
            || rng->element[0]->type != REDIS_REPLY_INTEGER
            || rng->element[1]->type != REDIS_REPLY_INTEGER
            || rng->element[2]->type != REDIS_REPLY_ARRAY
            || rng->element[2]->elements < 2
            || rng->element[2]->element[0]->type != REDIS_REPLY_STRING
            || rng->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        {
            continue;
        }

        s = (ngx_uint_t) rng->element[0]->integer;
        e = (ngx_uint_t) rng->element[1]->integer;
        m = rng->element[2];

        if (s > e || e >= NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS) {
            continue;
        }

        ip = (u_char *) m->element[0]->str;
        iplen = m->element[0]->len;

        if (iplen == 0) {
            /* the node does not know its own address: the one asked */
            ip = from->ip;
            iplen = ngx_strlen(from->ip);
        }

        n = ngx_http_engagement_cnode_get(ip, iplen,
                                          (int) m->element[1]->integer);
        if (n == NULL) {
            continue;
        }

        for (j = s; j <= e; j++) {
            map[j] = (u_char) (n - ngx_http_engagement_cnodes);
        }
    }

    changed = ngx_memcmp(map, ngx_http_engagement_cmap, sizeof(map)) != 0;
    ngx_memcpy(ngx_http_engagement_cmap, map, sizeof(map));
    ngx_http_engagement_cmapped = 1;
    ngx_http_engagement_cwanted = 0;
    ngx_http_engagement_crefreshed = ngx_current_msec;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_CLUSTER_NODES; i++) {
        ngx_http_engagement_cnodes[i].used = 0;
    }

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS; i++) {
        if (map[i] != NGX_HTTP_ENGAGEMENT_CLUSTER_NONE) {
            ngx_http_engagement_cnodes[map[i]].used = 1;
        } else {
            ngx_http_engagement_cwanted = 1;
        }
    }

    masters = 0;

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_CLUSTER_NODES; i++) {
        n = &ngx_http_engagement_cnodes[i];

        if (n->name_len == 0) {
            continue;
        }

        if (n->used) {
            masters++;

            if (n->ac == NULL && !n->reconnect_ev.timer_set) {
                ngx_http_engagement_cnode_connect(n);
            }

            if (n->state != NGX_HTTP_ENGAGEMENT_REDIS_READY) {
                ngx_http_engagement_cwanted = 1;
            }

            continue;
        }

        /* no longer a master here: no more reconnects */
        if (n->reconnect_ev.timer_set) {
            ngx_del_timer(&n->reconnect_ev);
        }

        if (n->ac && n != from) {
            ngx_http_engagement_cnode_fail(n, NULL);

            if (n->reconnect_ev.timer_set) {
                ngx_del_timer(&n->reconnect_ev);
            }

            n->state = NGX_HTTP_ENGAGEMENT_REDIS_IDLE;
        }
    }

    if (changed) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_engagement_clog, 0,
                      "engagement redis cluster: slot map from %*s: "
                      "%ui masters", from->name_len, from->name, masters);
    }

    ngx_http_engagement_cluster_update();
}


/*
 * Reads the map again: from a ready node (masters first), else through
 * the next seed, connected for it (its readiness asks again).
 */

static void
ngx_http_engagement_cluster_refresh(void)
{
    ngx_uint_t                         i, k, nseeds;
    ngx_http_engagement_cnode_t       *n, *any;
    ngx_http_engagement_redis_addr_t  *seed;

    const char    *argv[2] = { "CLUSTER", "SLOTS" };
    static size_t  lens[2] = { 7, 5 };

    if (ngx_http_engagement_crefreshing || ngx_http_engagement_cstopping) {
        return;
    }

    any = NULL;

    for (k = 0; k < NGX_HTTP_ENGAGEMENT_CLUSTER_NODES; k++) {
        i = (k + ngx_http_engagement_cseed) % NGX_HTTP_ENGAGEMENT_CLUSTER_NODES;
        n = &ngx_http_engagement_cnodes[i];

        if (n->state != NGX_HTTP_ENGAGEMENT_REDIS_READY || n->ac == NULL) {
            continue;
        }

        if (n->used) {
            any = n;
            break;
        }

        if (any == NULL) {
            any = n;
        }
    }

    ngx_http_engagement_cseed++;

    if (any) {
        if (ngx_http_engagement_cnode_cmd(any,
                ngx_http_engagement_cluster_on_slots, NULL, 2, argv, lens)
            == NGX_OK)
        {
            ngx_http_engagement_crefreshing = 1;
        }

        return;
    }

    /* no node ready: the next seed is connected, and asked when ready */
    seed = ngx_http_engagement_crcf->seeds->elts;
    nseeds = ngx_http_engagement_crcf->seeds->nelts;

    for (k = 0; k < nseeds; k++) {
        i = (ngx_http_engagement_cseed + k) % nseeds;

        n = ngx_http_engagement_cnode_get(seed[i].ip,
                                          ngx_strlen(seed[i].ip),
                                          seed[i].port);
        if (n == NULL) {
            continue;
        }

        if (n->ac == NULL && !n->reconnect_ev.timer_set) {
            n->used = 1;
            ngx_http_engagement_cnode_connect(n);
            return;
        }
    }

    ngx_http_engagement_cwanted = 1;
}


static void
ngx_http_engagement_cluster_refresh_handler(ngx_event_t *ev)
{
    if (ngx_http_engagement_cstopping) {
        return;
    }

    if (ngx_http_engagement_cwanted || !ngx_http_engagement_cmapped
        || ngx_current_msec - ngx_http_engagement_crefreshed
           >= NGX_HTTP_ENGAGEMENT_CLUSTER_SLOW)
    {
        ngx_http_engagement_cluster_refresh();
    }

    ngx_add_timer(ev, NGX_HTTP_ENGAGEMENT_CLUSTER_FAST);
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

    ngx_http_engagement_cluster_crc_init();

    if (ngx_http_engagement_cluster_tags(cycle->log) != NGX_OK) {
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
