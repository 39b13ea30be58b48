
/*
 * The per-worker Redis connection: one explicit state machine
 * (idle -> connecting -> authenticating -> ready, or failed -> backoff ->
 * connecting), connect and command timeouts on nginx timers (hiredis 0.14
 * has no timer hook), the scripts loaded once per connection and called by
 * SHA, and every transition logged once and counted. In cluster mode
 * (engagement_redis cluster ...) the calls below go to cluster.c instead,
 * which keeps a connection of this kind per master.
 */


#include "store/ngx_http_engagement_store.h"
#include "sink/redis/ngx_http_engagement_redis.h"


/* a script's SHA1, in hex, as SCRIPT LOAD answers it */
#define NGX_HTTP_ENGAGEMENT_SHA_LEN  40


typedef struct {
    ngx_http_engagement_redis_cb_pt   cb;
    void                             *data;
} ngx_http_engagement_redis_call_t;


static void ngx_http_engagement_redis_connect(void);
static void ngx_http_engagement_redis_fail(const char *why);
static void ngx_http_engagement_redis_schedule(void);
static void ngx_http_engagement_redis_load_scripts(void);


static ngx_http_engagement_redis_conf_t   *ngx_http_engagement_rcf;
static redisAsyncContext                  *ngx_http_engagement_ac;
static ngx_http_engagement_redis_state_e   ngx_http_engagement_rstate;
static ngx_event_t                         ngx_http_engagement_reconnect_ev;
static ngx_event_t                         ngx_http_engagement_timeout_ev;
static ngx_msec_t                          ngx_http_engagement_backoff;
static ngx_uint_t                          ngx_http_engagement_outstanding;
static ngx_uint_t                          ngx_http_engagement_stopping;
static ngx_uint_t                          ngx_http_engagement_failing;
static ngx_msec_t                          ngx_http_engagement_down_at;
static ngx_uint_t                          ngx_http_engagement_scripts;
static char                                ngx_http_engagement_sha[
    NGX_HTTP_ENGAGEMENT_SCRIPTS][NGX_HTTP_ENGAGEMENT_SHA_LEN + 1];
static ngx_log_t                          *ngx_http_engagement_rlog;
static ngx_uint_t                          ngx_http_engagement_clustered;


#define ngx_http_engagement_rstat(f)                                          \
    if (ngx_http_engagement_global_sh) {                                      \
        ngx_http_engagement_inc(ngx_http_engagement_global_sh, f);            \
    }


/* an outage is reported once; its further failures only at info level */
static ngx_uint_t
ngx_http_engagement_level(void)
{
    return ngx_http_engagement_failing ? NGX_LOG_INFO : NGX_LOG_ERR;
}


static void
ngx_http_engagement_redis_set_state(ngx_http_engagement_redis_state_e s)
{
    ngx_http_engagement_stats_t  *st;

    if (s != NGX_HTTP_ENGAGEMENT_REDIS_READY
        && ngx_http_engagement_down_at == 0)
    {
        ngx_http_engagement_down_at = ngx_current_msec ? ngx_current_msec : 1;

    } else if (s == NGX_HTTP_ENGAGEMENT_REDIS_READY) {
        ngx_http_engagement_down_at = 0;
    }

    ngx_http_engagement_rstate = s;

    if (ngx_http_engagement_global_sh) {
        st = ngx_http_engagement_slot(ngx_http_engagement_global_sh);
        st->redis_ready = (s == NGX_HTTP_ENGAGEMENT_REDIS_READY);
    }
}


/* how long this worker has been without a usable connection, 0 if ready */

ngx_msec_t
ngx_http_engagement_redis_down_for(void)
{
    if (ngx_http_engagement_clustered) {
        return ngx_http_engagement_cluster_down_for();
    }

    if (ngx_http_engagement_down_at == 0) {
        return 0;
    }

    return ngx_current_msec - ngx_http_engagement_down_at + 1;
}


static void
ngx_http_engagement_redis_on_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                        *reply = r;
    ngx_http_engagement_redis_call_t  *call = privdata;

    if (ngx_http_engagement_outstanding) {
        ngx_http_engagement_outstanding--;
    }

    if (ngx_http_engagement_outstanding == 0) {
        if (ngx_http_engagement_timeout_ev.timer_set) {
            ngx_del_timer(&ngx_http_engagement_timeout_ev);
        }

    } else if (ngx_http_engagement_ac) {
        /*
         * progress: the next reply gets a full timeout of its own (deleted
         * first: ngx_add_timer keeps a set timer that is within 300 ms)
         */
        if (ngx_http_engagement_timeout_ev.timer_set) {
            ngx_del_timer(&ngx_http_engagement_timeout_ev);
        }

        ngx_add_timer(&ngx_http_engagement_timeout_ev,
                      ngx_http_engagement_rstate
                      == NGX_HTTP_ENGAGEMENT_REDIS_READY
                      ? ngx_http_engagement_rcf->timeout
                      : ngx_http_engagement_rcf->connect_timeout);
    }

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_engagement_rstat(redis_errors);

        if (ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            ngx_http_engagement_scripts = 0;
        }
    }

    call->cb(reply, call->data);
    ngx_free(call);
}


static u_char                             *ngx_http_engagement_cmd;
static size_t                              ngx_http_engagement_cmd_size;


/* the smallest command buffer: most commands fit it */
#define NGX_HTTP_ENGAGEMENT_CMD_MIN  4096


/*
 * The arguments of a command: pre (EVALSHA and its SHA, or none) then
 * argv; one of them by index.
 */
typedef struct {
    int                                npre;
    const char                       **pre;
    const size_t                      *prelen;
    int                                argc;
    const char                       **argv;
    const size_t                      *argvlen;
} ngx_http_engagement_redis_args_t;


static ngx_inline const char *
ngx_http_engagement_redis_arg(ngx_http_engagement_redis_args_t *a, int i,
    size_t *len)
{
    if (i < a->npre) {
        *len = a->prelen[i];
        return a->pre[i];
    }

    *len = a->argvlen[i - a->npre];
    return a->argv[i - a->npre];
}


/*
 * The command in RESP, in the worker's buffer, grown as needed: hiredis
 * copies it into its output buffer. NULL: no memory.
 */

static u_char *ngx_http_engagement_redis_format(
    ngx_http_engagement_redis_args_t *a, size_t *size);


/* the formatting, for cluster.c: the text is valid until the next call */

u_char *
ngx_http_engagement_redis_format_cmd(int npre, const char **pre,
    const size_t *prelen, int argc, const char **argv, const size_t *argvlen,
    size_t *size)
{
    ngx_http_engagement_redis_args_t  a;

    a.npre = npre;
    a.pre = pre;
    a.prelen = prelen;
    a.argc = argc;
    a.argv = argv;
    a.argvlen = argvlen;

    return ngx_http_engagement_redis_format(&a, size);
}


ngx_uint_t
ngx_http_engagement_redis_clustered(void)
{
    return ngx_http_engagement_clustered;
}


static u_char *
ngx_http_engagement_redis_format(ngx_http_engagement_redis_args_t *a,
    size_t *size)
{
    int          i, n;
    u_char      *cmd, *p;
    size_t       len, alen;
    const char  *arg;

    n = a->npre + a->argc;
    len = 1 + NGX_SIZE_T_LEN + 2;

    for (i = 0; i < n; i++) {
        (void) ngx_http_engagement_redis_arg(a, i, &alen);
        len += 1 + NGX_SIZE_T_LEN + 2 + alen + 2;
    }

    if (len > ngx_http_engagement_cmd_size) {
        len = ngx_max(len, NGX_HTTP_ENGAGEMENT_CMD_MIN);

        cmd = ngx_alloc(len, ngx_http_engagement_rlog);
        if (cmd == NULL) {
            return NULL;
        }

        if (ngx_http_engagement_cmd) {
            ngx_free(ngx_http_engagement_cmd);
        }

        ngx_http_engagement_cmd = cmd;
        ngx_http_engagement_cmd_size = len;
    }

    cmd = ngx_http_engagement_cmd;
    p = cmd;

    *p++ = '*';
    p = ngx_http_engagement_put_uint(p, n);
    *p++ = CR; *p++ = LF;

    for (i = 0; i < n; i++) {
        arg = ngx_http_engagement_redis_arg(a, i, &alen);

        *p++ = '$';
        p = ngx_http_engagement_put_uint(p, alen);
        *p++ = CR; *p++ = LF;
        p = ngx_cpymem(p, arg, alen);
        *p++ = CR; *p++ = LF;
    }

    *size = p - cmd;

    return cmd;
}


/*
 * Sends one command: the RESP text is built here and handed to hiredis as
 * formatted (hiredis's own argv formatting costs some 5,000 instructions
 * per flush command in sdscatfmt and sdscatlen). pre and argv are the
 * arguments, pre first (EVALSHA and its SHA, or none).
 */

static ngx_int_t
ngx_http_engagement_redis_format_send(ngx_http_engagement_redis_cb_pt cb,
    void *data, int npre, const char **pre, const size_t *prelen, int argc,
    const char **argv, const size_t *argvlen)
{
    u_char                            *cmd;
    size_t                             len;
    ngx_http_engagement_redis_args_t   a;
    ngx_http_engagement_redis_call_t  *call;

    if (ngx_http_engagement_ac == NULL || ngx_http_engagement_stopping) {
        return NGX_DECLINED;
    }

    a.npre = npre;
    a.pre = pre;
    a.prelen = prelen;
    a.argc = argc;
    a.argv = argv;
    a.argvlen = argvlen;

    cmd = ngx_http_engagement_redis_format(&a, &len);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    call = ngx_alloc(sizeof(ngx_http_engagement_redis_call_t),
                     ngx_http_engagement_rlog);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->cb = cb;
    call->data = data;

    if (redisAsyncFormattedCommand(ngx_http_engagement_ac,
                                   ngx_http_engagement_redis_on_reply, call,
                                   (const char *) cmd, len)
        != REDIS_OK)
    {
        ngx_free(call);
        return NGX_ERROR;
    }

    if (ngx_http_engagement_outstanding++ == 0) {
        ngx_add_timer(&ngx_http_engagement_timeout_ev,
                      ngx_http_engagement_rstate
                      == NGX_HTTP_ENGAGEMENT_REDIS_READY
                      ? ngx_http_engagement_rcf->timeout
                      : ngx_http_engagement_rcf->connect_timeout);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_engagement_redis_send(ngx_http_engagement_redis_cb_pt cb,
    void *data, int argc, const char **argv, const size_t *argvlen)
{
    if (ngx_http_engagement_clustered) {
        return ngx_http_engagement_cluster_send(-1, cb, data, argc, argv,
                                                argvlen);
    }

    return ngx_http_engagement_redis_format_send(cb, data, 0, NULL, NULL,
                                                 argc, argv, argvlen);
}


ngx_int_t
ngx_http_engagement_redis_eval(ngx_uint_t script,
    ngx_http_engagement_redis_cb_pt cb, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    const char    *pre[2];

    static size_t  prelen[2] = { sizeof("EVALSHA") - 1,
                                 NGX_HTTP_ENGAGEMENT_SHA_LEN };

    if (ngx_http_engagement_clustered) {
        return ngx_http_engagement_cluster_send(script, cb, data, argc, argv,
                                                argvlen);
    }

    if (ngx_http_engagement_rstate != NGX_HTTP_ENGAGEMENT_REDIS_READY) {
        return NGX_DECLINED;
    }

    if (!ngx_http_engagement_scripts) {
        /* a NOSCRIPT (Redis restarted or flushed its scripts): reload */
        ngx_http_engagement_redis_load_scripts();
        return NGX_DECLINED;
    }

    pre[0] = "EVALSHA";
    pre[1] = ngx_http_engagement_sha[script];

    return ngx_http_engagement_redis_format_send(cb, data, 2, pre, prelen,
                                                 argc, argv, argvlen);
}


ngx_uint_t
ngx_http_engagement_redis_ready(void)
{
    if (ngx_http_engagement_clustered) {
        return ngx_http_engagement_cluster_ready();
    }

    return ngx_http_engagement_rstate == NGX_HTTP_ENGAGEMENT_REDIS_READY
           && ngx_http_engagement_scripts;
}


static void
ngx_http_engagement_redis_on_setup(redisReply *reply, void *data)
{
    const char  *what = data;

    if (reply == NULL) {
        return;     /* the connection is gone; fail() has said why */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_engagement_rlog, 0,
                      "engagement redis: %s failed: %s", what, reply->str);
        ngx_http_engagement_redis_fail(NULL);
    }
}


static void
ngx_http_engagement_redis_on_script(redisReply *reply, void *data)
{
    ngx_uint_t  n = (ngx_uint_t) (uintptr_t) data;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, ngx_http_engagement_rlog, 0,
                          "engagement redis: SCRIPT LOAD failed: %s",
                          reply->str);
            ngx_http_engagement_redis_fail(NULL);
        }
        return;
    }

    if (reply->type != REDIS_REPLY_STRING
        || reply->len != NGX_HTTP_ENGAGEMENT_SHA_LEN)
    {
        ngx_http_engagement_redis_fail("unexpected SCRIPT LOAD reply");
        return;
    }

    ngx_memcpy(ngx_http_engagement_sha[n], reply->str,
               NGX_HTTP_ENGAGEMENT_SHA_LEN);
    ngx_http_engagement_sha[n][NGX_HTTP_ENGAGEMENT_SHA_LEN] = '\0';

    /* the last one loaded: the connection is ready */
    if (n != NGX_HTTP_ENGAGEMENT_SCRIPTS - 1) {
        return;
    }

    ngx_http_engagement_scripts = 1;

    if (ngx_http_engagement_rstate != NGX_HTTP_ENGAGEMENT_REDIS_READY) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_http_engagement_rlog, 0,
                      "engagement redis: connected to %V",
                      &ngx_http_engagement_rcf->url);
        ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_READY);
        ngx_http_engagement_backoff = 0;
        ngx_http_engagement_failing = 0;
        ngx_http_engagement_rstat(redis_connects);
    }
}


static void
ngx_http_engagement_redis_load_scripts(void)
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
        lens[2] = ngx_strlen(ngx_http_engagement_redis_scripts[i]);

        (void) ngx_http_engagement_redis_send(
                   ngx_http_engagement_redis_on_script, (void *) (uintptr_t) i,
                   3, argv, lens);
    }
}


static void
ngx_http_engagement_redis_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        if (ngx_http_engagement_ac == ac) {
            ngx_http_engagement_ac = NULL;
        }

        ngx_http_engagement_outstanding = 0;

        if (ngx_http_engagement_timeout_ev.timer_set) {
            ngx_del_timer(&ngx_http_engagement_timeout_ev);
        }

        /* logged once per outage, not at every retry */
        ngx_log_error(ngx_http_engagement_level(),
                      ngx_http_engagement_rlog, 0,
                      "engagement redis: connect to %V failed: %s%s",
                      &ngx_http_engagement_rcf->url,
                      ac->errstr ? ac->errstr : "unknown error",
                      ngx_http_engagement_failing ? ""
                      : "; retrying with backoff");
        ngx_http_engagement_failing = 1;

        ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_FAILED);
        ngx_http_engagement_redis_schedule();
        return;
    }

    ngx_http_engagement_redis_set_state(
        NGX_HTTP_ENGAGEMENT_REDIS_AUTHENTICATING);
}


static void
ngx_http_engagement_redis_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    if (ngx_http_engagement_ac == ac) {
        ngx_http_engagement_ac = NULL;
    }

    ngx_http_engagement_outstanding = 0;
    ngx_http_engagement_scripts = 0;

    if (ngx_http_engagement_timeout_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_timeout_ev);
    }

    if (ngx_http_engagement_stopping) {
        return;
    }

    if (ngx_http_engagement_rstate == NGX_HTTP_ENGAGEMENT_REDIS_READY) {
        ngx_http_engagement_failing = 1;
        ngx_log_error(NGX_LOG_ERR, ngx_http_engagement_rlog, 0,
                      "engagement redis: connection to %V lost: %s",
                      &ngx_http_engagement_rcf->url,
                      (status == REDIS_OK) ? "closed"
                      : (ac->errstr ? ac->errstr : "error"));
        ngx_http_engagement_rstat(redis_disconnects);

    } else if (status != REDIS_OK) {
        /*
         * The setup failed on the peer's answer: a peer that is not Redis
         * (an HTTP server on the port) says so here, once per outage at
         * the error level, then at each retry at info.
         */
        ngx_log_error(ngx_http_engagement_level(),
                      ngx_http_engagement_rlog, 0,
                      "engagement redis: setting up the connection to %V "
                      "failed: %s%s", &ngx_http_engagement_rcf->url,
                      ac->errstr ? ac->errstr : "error",
                      ngx_http_engagement_failing ? ""
                      : "; is it a Redis server? retrying with backoff");
        ngx_http_engagement_failing = 1;
    }

    ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_FAILED);
    ngx_http_engagement_redis_schedule();
}


/* drops the connection; pending callbacks are called with no reply */

static void
ngx_http_engagement_redis_fail(const char *why)
{
    redisAsyncContext  *ac;

    if (why) {
        ngx_log_error(ngx_http_engagement_level(),
                      ngx_http_engagement_rlog, 0,
                      "engagement redis: %s; reconnecting to %V", why,
                      &ngx_http_engagement_rcf->url);
    }

    ngx_http_engagement_failing = 1;

    if (ngx_http_engagement_rstate == NGX_HTTP_ENGAGEMENT_REDIS_READY) {
        ngx_http_engagement_rstat(redis_disconnects);
    }

    ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_FAILED);
    ngx_http_engagement_scripts = 0;

    ac = ngx_http_engagement_ac;
    ngx_http_engagement_ac = NULL;

    if (ngx_http_engagement_timeout_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_timeout_ev);
    }

    if (ac) {
        redisAsyncFree(ac);
    }

    ngx_http_engagement_outstanding = 0;
    ngx_http_engagement_redis_schedule();
}


static void
ngx_http_engagement_redis_timeout_handler(ngx_event_t *ev)
{
    ngx_http_engagement_rstat(redis_timeouts);

    ngx_http_engagement_redis_fail(
        ngx_http_engagement_rstate == NGX_HTTP_ENGAGEMENT_REDIS_READY
        ? "command timed out" : "connect timed out");
}


static void
ngx_http_engagement_redis_schedule(void)
{
    ngx_msec_t  delay;

    if (ngx_http_engagement_stopping
        || ngx_http_engagement_reconnect_ev.timer_set)
    {
        return;
    }

    if (ngx_http_engagement_backoff == 0) {
        ngx_http_engagement_backoff = ngx_http_engagement_rcf->backoff_min;

    } else {
        ngx_http_engagement_backoff = ngx_min(ngx_http_engagement_backoff * 2,
                                       ngx_http_engagement_rcf->backoff_max);
    }

    /* jitter: 75% to 125% of the backoff, so workers do not move as one */
    delay = ngx_http_engagement_backoff * 3 / 4
            + (ngx_msec_t) ngx_random() % (ngx_http_engagement_backoff / 2 + 1);

    ngx_add_timer(&ngx_http_engagement_reconnect_ev, delay);
}


static void
ngx_http_engagement_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_engagement_redis_connect();
}


static void
ngx_http_engagement_redis_connect(void)
{
    size_t              lens[2];
    u_char              db[NGX_INT_T_LEN];
    const char         *argv[2];
    redisAsyncContext  *ac;

    if (ngx_http_engagement_stopping || ngx_http_engagement_ac) {
        return;
    }

    ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_CONNECTING);

    /* a numeric address resolved at configuration time: no DNS here */
    ac = redisAsyncConnect((char *) ngx_http_engagement_rcf->ip,
                           ngx_http_engagement_rcf->port);

    if (ac == NULL || ac->err) {
        ngx_log_error(ngx_http_engagement_level(),
                      ngx_http_engagement_rlog, 0,
                      "engagement redis: connect to %V failed: %s",
                      &ngx_http_engagement_rcf->url,
                      ac ? ac->errstr : "out of memory");
        ngx_http_engagement_failing = 1;
        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_FAILED);
        ngx_http_engagement_redis_schedule();
        return;
    }

    if (ngx_http_engagement_redis_attach(ac, ngx_http_engagement_rlog)
        != NGX_OK)
    {
        redisAsyncFree(ac);
        ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_FAILED);
        ngx_http_engagement_redis_schedule();
        return;
    }

    redisAsyncSetConnectCallback(ac, ngx_http_engagement_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_engagement_redis_on_disconnect);

    ngx_http_engagement_ac = ac;
    ngx_http_engagement_outstanding = 0;

    /* hiredis queues these until the socket connects */

    if (ngx_http_engagement_rcf->password.len) {
        argv[0] = "AUTH";
        lens[0] = 4;
        argv[1] = (char *) ngx_http_engagement_rcf->password.data;
        lens[1] = ngx_http_engagement_rcf->password.len;
        (void) ngx_http_engagement_redis_send(
                   ngx_http_engagement_redis_on_setup, "AUTH", 2, argv, lens);
    }

    if (ngx_http_engagement_rcf->db) {
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = (char *) db;
        lens[1] = ngx_sprintf(db, "%ui", ngx_http_engagement_rcf->db) - db;
        (void) ngx_http_engagement_redis_send(
                   ngx_http_engagement_redis_on_setup, "SELECT", 2, argv,
                   lens);
    }

    ngx_http_engagement_redis_load_scripts();
}


/* the connection's timers: cancelable, they never hold a worker at exit */

static void
ngx_http_engagement_redis_timer(ngx_event_t *ev, ngx_event_handler_pt handler,
    ngx_log_t *log)
{
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = handler;
    ev->log = log;
    ev->data = ngx_http_engagement_rcf;
    ev->cancelable = 1;
}


ngx_int_t
ngx_http_engagement_redis_start(ngx_cycle_t *cycle,
    ngx_http_engagement_redis_conf_t *rcf)
{
    ngx_http_engagement_clustered = rcf->cluster;

    if (rcf->cluster) {
        ngx_http_engagement_rlog = cycle->log;
        return ngx_http_engagement_cluster_start(cycle, rcf);
    }

    ngx_http_engagement_rcf = rcf;
    ngx_http_engagement_rlog = cycle->log;
    ngx_http_engagement_ac = NULL;
    ngx_http_engagement_stopping = 0;
    ngx_http_engagement_outstanding = 0;
    ngx_http_engagement_scripts = 0;
    ngx_http_engagement_backoff = 0;
    ngx_http_engagement_failing = 0;
    ngx_http_engagement_down_at = 0;

    ngx_http_engagement_redis_timer(&ngx_http_engagement_reconnect_ev,
        ngx_http_engagement_redis_reconnect_handler, cycle->log);
    ngx_http_engagement_redis_timer(&ngx_http_engagement_timeout_ev,
        ngx_http_engagement_redis_timeout_handler, cycle->log);

    ngx_http_engagement_redis_connect();

    return NGX_OK;
}


void
ngx_http_engagement_redis_stop(void)
{
    redisAsyncContext  *ac;

    if (ngx_http_engagement_clustered) {
        ngx_http_engagement_cluster_stop();
        return;
    }

    ngx_http_engagement_stopping = 1;

    if (ngx_http_engagement_reconnect_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_reconnect_ev);
    }

    if (ngx_http_engagement_timeout_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_timeout_ev);
    }

    ac = ngx_http_engagement_ac;
    ngx_http_engagement_ac = NULL;
    ngx_http_engagement_redis_set_state(NGX_HTTP_ENGAGEMENT_REDIS_IDLE);

    if (ac) {
        redisAsyncFree(ac);
    }
}
