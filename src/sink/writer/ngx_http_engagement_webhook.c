
/*
 * Creator milestones' webhook: the delivery (the directive
 * engagement_milestone_webhook is webhook_conf.c's).
 *
 * The outbox is in Redis, written by the milestone script in the same
 * call that decides the threshold (NGX_HTTP_ENGAGEMENT_MILESTONE_LUA in
 * redis_scripts.c): the JSON in the hash eng:{ms}:wh under its id
 * <contentId>:<metric>:<threshold>, the id in the sorted set eng:{ms}:due
 * scored by when it is due (unix s). A notification is so created once
 * across edges and resends, and is as durable as Redis: it survives a
 * reload, a restart and the webhook being down (this is the webhook's
 * spool; the writer's disk spool holds event batches for ClickHouse).
 * In cluster mode the milestone script records the notification in its
 * content's slot and sink/redis/milestone_fwd.c writes the outbox, once
 * per id (a guard key), in a second call.
 *
 * Worker 0 of each edge delivers: every NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL
 * ms the claim script (below, one hash tag: one Redis Cluster slot) takes
 * at most batch= due ids, in order, and per channel counts them against
 * rate= a minute (the key eng:{ms}:r:<channel>:<minute>; a notification
 * without a channel counts against its content): one over the rate is
 * due again at the next minute, delayed and never dropped. The others are
 * leased (due again after the lease, longer than their POSTs can take)
 * and POSTed one after the other, each on a connection of its own, with
 * the id in the headers Idempotency-Key and X-Engagement-Notification.
 * A 2xx answer: the id leaves the outbox (ZREM, HDEL). No answer, a
 * transport error, 408, 429 or 5xx: due again after a backoff (1 s,
 * doubling to 60 s; reset by a success). Another 4xx: the receiver
 * refuses it for good: logged, and it leaves the outbox (it stays in the
 * stream eng:milestones). An acknowledgement Redis does not take is kept
 * and sent again at each poll; at a reload the flush keeps the Redis
 * connection until the batch's outcomes are in (webhook_idle). Only a
 * POST whose acknowledgement is lost with the worker (killed, or past
 * engagement_flush_deadline) is sent again, after its lease: receivers
 * deduplicate on the id.
 *
 * The HTTP answer is read by the durable writer's parser (writer_http.c):
 * chunked, length or close-delimited bodies, in pieces of any size.
 */


#include "ngx_http_engagement_module.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer_http.h"
#include "sink/writer/ngx_http_engagement_webhook.h"


#define NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL      500
#define NGX_HTTP_ENGAGEMENT_WEBHOOK_BACKOFF   1000
#define NGX_HTTP_ENGAGEMENT_WEBHOOK_BACKOFF_MAX  60000
#define NGX_HTTP_ENGAGEMENT_WEBHOOK_POOL      1024




/*
 * An outbox update in flight (ack: a delivered or refused notification
 * leaves the outbox; later: due again), and the acknowledgements that
 * Redis did not take (no connection, a timeout), kept and sent again at
 * each poll: a delivered notification is not POSTed again because its
 * ZREM was lost, as long as this worker lives.
 */
typedef struct ngx_http_engagement_webhook_ack_s
    ngx_http_engagement_webhook_ack_t;

struct ngx_http_engagement_webhook_ack_s {
    ngx_http_engagement_webhook_ack_t  *next;    /* in the pending list */
    ngx_uint_t                    gen;         /* the batch's */
    ngx_uint_t                    kind;
    ngx_uint_t                    out;         /* a pending one: resent */
    ngx_str_t                     id;          /* its bytes follow */
};

#define NGX_HTTP_ENGAGEMENT_WEBHOOK_LATER    0
#define NGX_HTTP_ENGAGEMENT_WEBHOOK_ACK      1
#define NGX_HTTP_ENGAGEMENT_WEBHOOK_PENDING  2

/* acknowledgements kept at most */
#define NGX_HTTP_ENGAGEMENT_WEBHOOK_PENDING_MAX  1024


/* one worker's delivery */
typedef struct {
    ngx_http_engagement_webhook_conf_t  *conf;
    ngx_log_t                    *log;
    ngx_event_t                   poll;        /* cancelable */
    ngx_event_t                   guard;       /* not: holds the worker
                                                  while a claim is out */
    ngx_pool_t                   *pool;        /* the claimed batch's */
    ngx_str_t                    *ids;
    ngx_str_t                    *bodies;
    ngx_uint_t                    n;
    ngx_uint_t                    i;           /* the one being sent */
    ngx_uint_t                    busy;        /* a claim is out */
    ngx_uint_t                    gen;         /* the batch's number */
    ngx_uint_t                    acks;        /* acknowledgements out */
    ngx_uint_t                    failed;      /* the batch's rest: retry */
    ngx_msec_t                    backoff;
    ngx_msec_t                    next;        /* no claim before */
    ngx_http_engagement_webhook_ack_t  *pending;
    ngx_uint_t                    npending;
    ngx_connection_t             *c;
    ngx_pool_t                   *cpool;
    u_char                       *req;
    size_t                        req_len;
    size_t                        sent;
    ngx_http_engagement_writer_answer_t  answer;
} ngx_http_engagement_webhook_t;


static void ngx_http_engagement_webhook_poll(ngx_event_t *ev);
static void ngx_http_engagement_webhook_claimed(redisReply *reply,
    void *data);
static void ngx_http_engagement_webhook_post(void);
static void ngx_http_engagement_webhook_update(ngx_uint_t kind,
    time_t secs);
static void ngx_http_engagement_webhook_resend(void);
static ngx_uint_t ngx_http_engagement_webhook_pending_has(u_char *id,
    size_t len);
static void ngx_http_engagement_webhook_handler(ngx_event_t *ev);
static void ngx_http_engagement_webhook_done(ngx_uint_t status,
    const char *error);
static void ngx_http_engagement_webhook_acked(redisReply *reply,
    void *data);
static void ngx_http_engagement_webhook_end(void);
static void ngx_http_engagement_webhook_guard(ngx_event_t *ev);


static ngx_http_engagement_webhook_t  ngx_http_engagement_wh;


/*
 * The claim: KEYS the due set and the bodies' hash; ARGV now (unix s),
 * how many at most, the lease (s), the rate a channel a minute (0: none).
 * The answer: id, body pairs.
 */
static const char  ngx_http_engagement_webhook_claim_lua[] =
    "local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local lease, rate = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,"
    " 'LIMIT', 0, 4 * max)\n"
    "local out, minute = {}, math.floor(now / 60)\n"
    "for _, id in ipairs(due) do\n"
    "  if #out >= 2 * max then break end\n"
    "  local body = redis.call('HGET', KEYS[2], id)\n"
    "  if not body then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "  else\n"
    "    local ok = true\n"
    "    if rate > 0 then\n"
    "      local d, t = pcall(cjson.decode, body)\n"
    "      local ch = 'c:' .. id\n"
    "      if d and type(t) == 'table' then\n"
    "        if type(t.channelId) == 'string' then ch = t.channelId\n"
    "        elseif type(t.contentId) == 'string' then\n"
    "          ch = 'c:' .. t.contentId end\n"
    "      end\n"
    "      local rk = 'eng:{ms}:r:' .. ch .. ':' .. minute\n"
    "      if (tonumber(redis.call('GET', rk)) or 0) >= rate then\n"
    "        ok = false\n"
    "        redis.call('ZADD', KEYS[1], (minute + 1) * 60, id)\n"
    "      else\n"
    "        redis.call('INCR', rk)\n"
    "        redis.call('EXPIRE', rk, 180)\n"
    "      end\n"
    "    end\n"
    "    if ok then\n"
    "      redis.call('ZADD', KEYS[1], now + lease, id)\n"
    "      out[#out + 1] = id\n"
    "      out[#out + 1] = body\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* delivered (or refused for good): KEYS as the claim's, ARGV the id */
static const char  ngx_http_engagement_webhook_ack_lua[] =
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "return redis.call('HDEL', KEYS[2], ARGV[1])\n";

/* due again at ARGV[2] (unix s), if still in the outbox */
static const char  ngx_http_engagement_webhook_retry_lua[] =
    "return redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])\n";


/* a worker: worker 0 of each edge delivers */

ngx_int_t
ngx_http_engagement_webhook_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    ngx_memzero(w, sizeof(ngx_http_engagement_webhook_t));

    if (emcf->webhook == NULL || emcf->redis == NULL || ngx_worker != 0) {
        return NGX_OK;
    }

    w->conf = emcf->webhook;
    w->log = cycle->log;
    w->backoff = NGX_HTTP_ENGAGEMENT_WEBHOOK_BACKOFF;

    w->poll.handler = ngx_http_engagement_webhook_poll;
    w->poll.log = cycle->log;
    w->poll.data = w;
    w->poll.cancelable = 1;

    w->guard.handler = ngx_http_engagement_webhook_guard;
    w->guard.log = cycle->log;
    w->guard.data = w;

    ngx_add_timer(&w->poll, NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);

    return NGX_OK;
}


static void
ngx_http_engagement_webhook_arm(ngx_msec_t ms)
{
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (w->poll.timer_set) {
        ngx_del_timer(&w->poll);
    }

    ngx_add_timer(&w->poll, ms);
}


/* the keys and the first arguments of the three scripts */

static ngx_int_t
ngx_http_engagement_webhook_eval(const char *script,
    ngx_http_engagement_redis_cb_pt cb, const char **args, size_t *lens,
    int nargs, void *data)
{
    int          i;
    const char  *argv[10];
    size_t       argl[10];

    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "2";
    argv[3] = "eng:{ms}:due";
    argv[4] = "eng:{ms}:wh";

    for (i = 0; i < 5; i++) {
        argl[i] = ngx_strlen(argv[i]);
    }

    for (i = 0; i < nargs; i++) {
        argv[5 + i] = args[i];
        argl[5 + i] = lens[i];
    }

    return ngx_http_engagement_redis_send(cb, data, 5 + nargs, argv, argl);
}


static void
ngx_http_engagement_webhook_poll(ngx_event_t *ev)
{
    u_char                          now[NGX_TIME_T_LEN], max[NGX_INT_T_LEN],
                                    lease[NGX_INT_T_LEN],
                                    rate[NGX_INT_T_LEN];
    size_t                          lens[4];
    const char                     *args[4];
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (w->busy || (ngx_msec_int_t) (w->next - ngx_current_msec) > 0
        || !ngx_http_engagement_redis_ready())
    {
        ngx_http_engagement_webhook_arm(NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);
        return;
    }

    ngx_http_engagement_webhook_resend();

    args[0] = (char *) now;
    lens[0] = ngx_sprintf(now, "%T", ngx_time()) - now;
    args[1] = (char *) max;
    lens[1] = ngx_sprintf(max, "%ui", w->conf->batch) - max;
    /* longer than the batch's POSTs can take, one after the other */
    args[2] = (char *) lease;
    lens[2] = ngx_sprintf(lease, "%ui",
                          (w->conf->batch
                           * (w->conf->timeout + w->conf->connect_timeout))
                          / 1000 + 10)
              - lease;
    args[3] = (char *) rate;
    lens[3] = ngx_sprintf(rate, "%ui", w->conf->rate) - rate;

    if (ngx_http_engagement_webhook_eval(
            ngx_http_engagement_webhook_claim_lua,
            ngx_http_engagement_webhook_claimed, args, lens, 4, NULL)
        != NGX_OK)
    {
        ngx_http_engagement_webhook_arm(NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);
        return;
    }

    w->busy = 1;
}


static void
ngx_http_engagement_webhook_claimed(redisReply *reply, void *data)
{
    ngx_uint_t                      i;
    redisReply                     *e;
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements % 2)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, w->log, 0,
                          "engagement webhook: the claim failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        w->busy = 0;
        ngx_http_engagement_webhook_arm(NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);
        return;
    }

    if (reply->elements == 0) {
        w->busy = 0;
        ngx_http_engagement_webhook_arm(NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);
        return;
    }

    w->pool = ngx_create_pool(NGX_HTTP_ENGAGEMENT_WEBHOOK_POOL, w->log);
    if (w->pool == NULL) {
        goto failed;
    }

    w->ids = ngx_pcalloc(w->pool, reply->elements / 2 * sizeof(ngx_str_t));
    w->bodies = ngx_pcalloc(w->pool,
                            reply->elements / 2 * sizeof(ngx_str_t));

    if (w->ids == NULL || w->bodies == NULL) {
        goto failed;
    }

    w->n = 0;

    for (i = 0; i < reply->elements; i += 2) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING
            || reply->element[i + 1]->type != REDIS_REPLY_STRING)
        {
            goto failed;
        }

        if (ngx_http_engagement_webhook_pending_has((u_char *) e->str,
                                                    e->len))
        {
            /* delivered: its acknowledgement is on its way */
            continue;
        }

        w->ids[w->n].len = e->len;
        w->ids[w->n].data = ngx_pnalloc(w->pool, e->len + 1);
        w->bodies[w->n].len = reply->element[i + 1]->len;
        w->bodies[w->n].data = ngx_pnalloc(w->pool, w->bodies[w->n].len + 1);

        if (w->ids[w->n].data == NULL || w->bodies[w->n].data == NULL) {
            goto failed;
        }

        ngx_memcpy(w->ids[w->n].data, e->str, e->len);
        ngx_memcpy(w->bodies[w->n].data, reply->element[i + 1]->str,
                   w->bodies[w->n].len);
        w->n++;
    }

    if (w->n == 0) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
        w->busy = 0;
        ngx_http_engagement_webhook_arm(NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);
        return;
    }

    /* the worker stays until the batch is out and acknowledged */
    ngx_add_timer(&w->guard, (w->conf->batch
                              * (w->conf->timeout + w->conf->connect_timeout))
                             + 5000);

    w->i = 0;
    w->failed = 0;
    w->acks = 0;
    w->gen++;

    if (ngx_exiting) {
        /* claimed as the worker began to stop: due again at once */
        for ( /* void */ ; w->i < w->n; w->i++) {
            ngx_http_engagement_webhook_update(
                NGX_HTTP_ENGAGEMENT_WEBHOOK_LATER, 0);
        }

        if (w->acks == 0) {
            ngx_http_engagement_webhook_end();
        }

        return;
    }

    ngx_http_engagement_webhook_post();

    return;

failed:

    /* leased: due again after the lease */
    if (w->pool) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
    }

    w->busy = 0;
    ngx_http_engagement_webhook_arm(NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);
}


/* the request of notification i, on a connection of its own */

static void
ngx_http_engagement_webhook_post(void)
{
    u_char                              *p;
    size_t                               len, k;
    ngx_int_t                            rc;
    ngx_str_t                           *id, *body;
    ngx_connection_t                    *c;
    ngx_peer_connection_t                pc;
    ngx_http_engagement_webhook_t       *w = &ngx_http_engagement_wh;
    ngx_http_engagement_webhook_conf_t  *wh = w->conf;

    id = &w->ids[w->i];
    body = &w->bodies[w->i];

    w->cpool = ngx_create_pool(NGX_HTTP_ENGAGEMENT_WEBHOOK_POOL, w->log);
    if (w->cpool == NULL) {
        ngx_http_engagement_webhook_done(0, "out of memory");
        return;
    }

    len = sizeof("POST  HTTP/1.1\r\nHost: \r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: \r\nIdempotency-Key: \r\n"
                 "X-Engagement-Notification: \r\n"
                 "User-Agent: nginx-engagement\r\n"
                 "Connection: close\r\n\r\n")
          + wh->uri.len + wh->host.len + NGX_SIZE_T_LEN + 2 * id->len
          + body->len;

    w->req = ngx_pnalloc(w->cpool, len);
    if (w->req == NULL) {
        ngx_http_engagement_webhook_done(0, "out of memory");
        return;
    }

    p = ngx_sprintf(w->req, "POST %V HTTP/1.1\r\nHost: %V\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: %uz\r\nIdempotency-Key: ",
                    &wh->uri, &wh->host, body->len);

    /* the id in a header: anything but a visible ASCII byte becomes _ */
    for (k = 0; k < 2; k++) {
        u_char  *s = p;

        p = ngx_cpymem(p, id->data, id->len);

        for ( /* void */ ; s < p; s++) {
            if (*s <= ' ' || *s >= 0x7f) {
                *s = '_';
            }
        }

        p = ngx_cpymem(p, k ? "\r\n" : "\r\nX-Engagement-Notification: ",
                       k ? 2 : sizeof("\r\nX-Engagement-Notification: ") - 1);
    }

    p = ngx_cpymem(p, "User-Agent: nginx-engagement\r\n"
                   "Connection: close\r\n\r\n",
                   sizeof("User-Agent: nginx-engagement\r\n"
                          "Connection: close\r\n\r\n") - 1);
    p = ngx_cpymem(p, body->data, body->len);

    w->req_len = p - w->req;
    w->sent = 0;
    ngx_http_engagement_writer_http_init(&w->answer);

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));
    pc.sockaddr = wh->addr.sockaddr;
    pc.socklen = wh->addr.socklen;
    pc.name = &wh->addr.name;
    pc.get = ngx_event_get_peer;
    pc.log = w->log;
    pc.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }

        ngx_http_engagement_webhook_done(0, "connect failed");
        return;
    }

    c = pc.connection;
    w->c = c;
    c->pool = w->cpool;
    c->data = w;
    c->log = w->log;
    c->read->log = w->log;
    c->write->log = w->log;
    c->read->handler = ngx_http_engagement_webhook_handler;
    c->write->handler = ngx_http_engagement_webhook_handler;

    ngx_add_timer(c->read, wh->timeout + wh->connect_timeout);

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, wh->connect_timeout);
        return;
    }

    ngx_http_engagement_webhook_handler(c->write);
}


static void
ngx_http_engagement_webhook_handler(ngx_event_t *ev)
{
    u_char                          buf[4096];
    ssize_t                         n;
    ngx_int_t                       rc;
    ngx_connection_t               *c;
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    c = ev->data;

    if (ev->timedout) {
        ngx_http_engagement_webhook_done(0, ev->write && w->sent == 0
                                            ? "connect timed out"
                                            : "timed out");
        return;
    }

    if (ev->write) {
        if (w->sent < w->req_len) {
            n = c->send(c, w->req + w->sent, w->req_len - w->sent);

            if (n == NGX_ERROR) {
                ngx_http_engagement_webhook_done(0, "send failed");
                return;
            }

            if (n > 0) {
                w->sent += n;
            }
        }

        if (w->sent < w->req_len) {
            if (!c->write->timer_set) {
                ngx_add_timer(c->write, w->conf->timeout);
            }

            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_engagement_webhook_done(0, "event error");
            }

            return;
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            ngx_http_engagement_webhook_done(0, "event error");
            return;
        }

        if (!c->read->ready) {
            return;
        }
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_engagement_webhook_done(0, "event error");
            }
            return;
        }

        if (n < 0) {
            ngx_http_engagement_webhook_done(0, "recv failed");
            return;
        }

        rc = (n == 0) ? ngx_http_engagement_writer_http_eof(&w->answer)
                      : ngx_http_engagement_writer_http_parse(&w->answer,
                                                              buf, n);

        if (rc == NGX_AGAIN && n > 0) {
            continue;
        }

        if (rc == NGX_OK) {
            ngx_http_engagement_webhook_done(w->answer.status, NULL);

        } else {
            ngx_http_engagement_webhook_done(0, w->answer.error
                                                ? w->answer.error
                                                : "a bad answer");
        }

        return;
    }
}


/* a kept acknowledgement: sent again at the next polls */

static void
ngx_http_engagement_webhook_keep(ngx_http_engagement_webhook_ack_t *r)
{
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    if (w->npending >= NGX_HTTP_ENGAGEMENT_WEBHOOK_PENDING_MAX) {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "engagement webhook: %V delivered, but Redis did "
                      "not take it out of the outbox: it may be sent "
                      "again after its lease", &r->id);
        ngx_free(r);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, w->log, 0,
                  "engagement webhook: %V delivered, but Redis did not "
                  "take it out of the outbox yet: tried again at each "
                  "poll", &r->id);

    r->kind = NGX_HTTP_ENGAGEMENT_WEBHOOK_PENDING;
    r->out = 0;
    r->next = w->pending;
    w->pending = r;
    w->npending++;
}


static ngx_uint_t
ngx_http_engagement_webhook_pending_has(u_char *id, size_t len)
{
    ngx_http_engagement_webhook_ack_t  *r;

    for (r = ngx_http_engagement_wh.pending; r; r = r->next) {
        if (r->id.len == len && ngx_memcmp(r->id.data, id, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * Notification i in the outbox: ACK, it leaves it (delivered or refused
 * for good); LATER, due again in secs (if still there).
 */

static void
ngx_http_engagement_webhook_update(ngx_uint_t kind, time_t secs)
{
    u_char                              at[NGX_TIME_T_LEN];
    size_t                              lens[2];
    ngx_str_t                          *id;
    const char                         *args[2];
    ngx_http_engagement_webhook_t      *w = &ngx_http_engagement_wh;
    ngx_http_engagement_webhook_ack_t  *r;

    id = &w->ids[w->i];

    r = ngx_alloc(sizeof(ngx_http_engagement_webhook_ack_t) + id->len,
                  w->log);
    if (r == NULL) {
        return;
    }

    r->next = NULL;
    r->gen = w->gen;
    r->kind = kind;
    r->out = 0;
    r->id.data = (u_char *) (r + 1);
    r->id.len = id->len;
    ngx_memcpy(r->id.data, id->data, id->len);

    args[0] = (char *) r->id.data;
    lens[0] = r->id.len;
    args[1] = (char *) at;
    lens[1] = ngx_sprintf(at, "%T", ngx_time() + secs) - at;

    if (ngx_http_engagement_webhook_eval(
            kind == NGX_HTTP_ENGAGEMENT_WEBHOOK_ACK
            ? ngx_http_engagement_webhook_ack_lua
            : ngx_http_engagement_webhook_retry_lua,
            ngx_http_engagement_webhook_acked, args, lens,
            kind == NGX_HTTP_ENGAGEMENT_WEBHOOK_ACK ? 1 : 2, r)
        == NGX_OK)
    {
        w->acks++;
        return;
    }

    if (kind == NGX_HTTP_ENGAGEMENT_WEBHOOK_ACK) {
        ngx_http_engagement_webhook_keep(r);
        return;
    }

    /* not due again at once: it is, after its lease */
    ngx_free(r);
}


/* the kept acknowledgements, sent again */

static void
ngx_http_engagement_webhook_resend(void)
{
    size_t                              lens[1];
    const char                         *args[1];
    ngx_http_engagement_webhook_t      *w = &ngx_http_engagement_wh;
    ngx_http_engagement_webhook_ack_t  *r;

    for (r = w->pending; r; r = r->next) {
        if (r->out) {
            continue;
        }

        args[0] = (char *) r->id.data;
        lens[0] = r->id.len;

        if (ngx_http_engagement_webhook_eval(
                ngx_http_engagement_webhook_ack_lua,
                ngx_http_engagement_webhook_acked, args, lens, 1, r)
            != NGX_OK)
        {
            return;
        }

        r->out = 1;
    }
}


/*
 * The end of notification i's POST (status 0: no answer): acknowledged,
 * refused for good, or due again later; then the next one. The rest of
 * a batch is due again after the backoff when one fails (they would
 * fail too), at once when the worker is stopping.
 */

static void
ngx_http_engagement_webhook_done(ngx_uint_t status, const char *error)
{
    ngx_str_t                      *id;
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    if (w->c) {
        ngx_close_connection(w->c);
        w->c = NULL;
    }

    if (w->cpool) {
        ngx_destroy_pool(w->cpool);
        w->cpool = NULL;
    }

    id = &w->ids[w->i];

    if (status >= 200 && status < 300) {
        w->backoff = NGX_HTTP_ENGAGEMENT_WEBHOOK_BACKOFF;

        ngx_log_error(NGX_LOG_INFO, w->log, 0,
                      "engagement webhook: %V delivered (%ui)", id, status);

        ngx_http_engagement_webhook_update(NGX_HTTP_ENGAGEMENT_WEBHOOK_ACK, 0);

    } else if (status >= 400 && status < 500 && status != 408
               && status != 429)
    {
        ngx_log_error(NGX_LOG_ERR, w->log, 0,
                      "engagement webhook: %V refused by %V (%ui): "
                      "dropped from the outbox (it stays in the stream "
                      "eng:milestones)", id, &w->conf->url, status);

        ngx_http_engagement_webhook_update(NGX_HTTP_ENGAGEMENT_WEBHOOK_ACK, 0);

    } else {
        ngx_log_error(NGX_LOG_WARN, w->log, 0,
                      "engagement webhook: POST of %V to %V failed: "
                      "%s (%ui); retried in %M ms", id, &w->conf->url,
                      error ? error : "status", status, w->backoff);

        w->failed = 1;
        ngx_http_engagement_webhook_update(NGX_HTTP_ENGAGEMENT_WEBHOOK_LATER,
                                           w->backoff / 1000);
    }

    w->i++;

    if (w->i < w->n && !w->failed && !ngx_exiting) {
        ngx_http_engagement_webhook_post();
        return;
    }

    for ( /* void */ ; w->i < w->n; w->i++) {
        ngx_http_engagement_webhook_update(NGX_HTTP_ENGAGEMENT_WEBHOOK_LATER,
                                           w->failed ? w->backoff / 1000 : 0);
    }

    if (w->failed) {
        w->next = ngx_current_msec + w->backoff;
        w->backoff = ngx_min(2 * w->backoff,
                             NGX_HTTP_ENGAGEMENT_WEBHOOK_BACKOFF_MAX);
    }

    if (w->acks == 0) {
        ngx_http_engagement_webhook_end();
    }
}


static void
ngx_http_engagement_webhook_acked(redisReply *reply, void *data)
{
    ngx_uint_t                          batch, failed;
    ngx_http_engagement_webhook_t      *w = &ngx_http_engagement_wh;
    ngx_http_engagement_webhook_ack_t  *r = data, **pr;

    failed = (reply == NULL || reply->type == REDIS_REPLY_ERROR);

    if (r->kind == NGX_HTTP_ENGAGEMENT_WEBHOOK_PENDING) {
        r->out = 0;

        if (w->conf == NULL) {
            /* the worker stopped: the list is gone */
            ngx_free(r);
            return;
        }

        if (!failed) {
            ngx_log_error(NGX_LOG_INFO, w->log, 0,
                          "engagement webhook: %V acknowledged again%s",
                          &r->id, (reply->type == REDIS_REPLY_INTEGER
                                   && reply->integer == 1)
                                  ? ": out of the outbox now"
                                  : " (it was out already)");

            for (pr = &w->pending; *pr; pr = &(*pr)->next) {
                if (*pr == r) {
                    *pr = r->next;
                    w->npending--;
                    ngx_free(r);
                    break;
                }
            }
        }

        return;
    }

    batch = (r->gen == w->gen && w->busy);

    if (failed && r->kind == NGX_HTTP_ENGAGEMENT_WEBHOOK_ACK
        && w->conf != NULL)
    {
        ngx_http_engagement_webhook_keep(r);

    } else {
        if (failed) {
            ngx_log_error(NGX_LOG_WARN, w->log, 0,
                          "engagement webhook: %V not made due again "
                          "(%s): it is after its lease", &r->id,
                          reply ? reply->str : "no answer");
        }

        ngx_free(r);
    }

    if (!batch) {
        /* of a batch the guard ended */
        return;
    }

    if (w->acks) {
        w->acks--;
    }

    if (w->acks == 0 && w->i >= w->n) {
        ngx_http_engagement_webhook_end();
    }
}


/* the batch is out and its outcomes in Redis: the next claim */

static void
ngx_http_engagement_webhook_end(void)
{
    ngx_uint_t                      full;
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    full = (w->n == w->conf->batch && !w->failed);

    if (w->guard.timer_set) {
        ngx_del_timer(&w->guard);
    }

    if (w->pool) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
    }

    w->n = 0;
    w->i = 0;
    w->busy = 0;

    ngx_http_engagement_webhook_arm(full ? 1
                                    : NGX_HTTP_ENGAGEMENT_WEBHOOK_POLL);
}


/* a batch that took longer than it can: let the worker go on */

static void
ngx_http_engagement_webhook_guard(ngx_event_t *ev)
{
    ngx_http_engagement_webhook_t  *w = &ngx_http_engagement_wh;

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "engagement webhook: a batch did not end in time; what "
                  "is not acknowledged is due again after its lease");

    if (w->c == NULL && w->busy) {
        w->i = w->n;
        ngx_http_engagement_webhook_end();
    }
}


/*
 * A stopping worker's flush keeps the Redis connection until this says
 * the batch is out and its outcomes are in Redis (or the flush's
 * deadline passes): a reload does not lose an acknowledgement.
 */

ngx_uint_t
ngx_http_engagement_webhook_idle(void)
{
    return !ngx_http_engagement_wh.busy;
}


/* the worker exits: an open POST is closed, its notification leased */

void
ngx_http_engagement_webhook_stop(void)
{
    ngx_http_engagement_webhook_t      *w = &ngx_http_engagement_wh;
    ngx_http_engagement_webhook_ack_t  *r;

    if (w->c) {
        ngx_close_connection(w->c);
        w->c = NULL;
    }

    if (w->cpool) {
        ngx_destroy_pool(w->cpool);
        w->cpool = NULL;
    }

    if (w->pool) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
    }

    if (w->guard.timer_set) {
        ngx_del_timer(&w->guard);
    }

    if (w->poll.timer_set) {
        ngx_del_timer(&w->poll);
    }

    /* those out are freed by their callbacks, at the connection's close */
    while (w->pending) {
        r = w->pending;
        w->pending = r->next;

        if (!r->out) {
            ngx_free(r);
        }
    }

    w->npending = 0;
    w->conf = NULL;
}
