
/*
 * Creator milestones in cluster mode (engagement_redis cluster ...): the
 * second step. The content's script (flush or reaction, one hash slot)
 * decides the crossing as in single-node mode (the mark ms:<metric> in
 * the content's totals hash) but, instead of writing keys of other slots,
 * records the notification in its slot's pending hash eng:ms:out:{<the
 * slot's tag>} (field: the id <contentId>:<metric>:<threshold>, value: a
 * JSON of what the stream, the PUBLISH and the webhook need). Here a
 * worker moves each pending notification on, each step idempotent:
 *
 *   1. the stream's slot (the script MS_FWD, KEYS {eng:milestones}:s:<id>,
 *      eng:milestones): a guard SET NX (7 days), then the PUBLISH within
 *      the channel's rate ({eng:milestones}:n:<channel>:<minute>) and the
 *      XADD; a guard found set does nothing;
 *   2. with engagement_milestone_webhook, the outbox's slot (MS_FWD,
 *      KEYS eng:{ms}:s:<id>, eng:{ms}:wh, eng:{ms}:due): a guard, then
 *      HSETNX and ZADD as the single-node script does;
 *   3. HDEL of the id from the pending hash, only after 1 and 2 answered.
 *
 * A worker lost between the steps leaves the id pending: it is moved
 * again, and the guards make the repeat harmless (exactly once, as long
 * as an id does not stay pending for longer than the guards' 7 days).
 *
 * Which slots to look at: a slot is marked when a flush part or reaction
 * of it has answered (flush.c, reaction.c call touch), and every
 * NGX_HTTP_ENGAGEMENT_MSFWD_TICK ms the marked slots' pending hashes are
 * read (HGETALL). Worker 0 also sweeps all 16384 slots, 32 a tick (a full
 * pass in about two minutes), for what a lost worker left behind.
 */


#include "ngx_http_engagement_module.h"
#include "sink/redis/ngx_http_engagement_redis.h"


#define NGX_HTTP_ENGAGEMENT_MSFWD_TICK      250
#define NGX_HTTP_ENGAGEMENT_MSFWD_PER_TICK  512
#define NGX_HTTP_ENGAGEMENT_MSFWD_SWEEP     32
#define NGX_HTTP_ENGAGEMENT_MSFWD_GUARD     "604800"


typedef struct {
    ngx_uint_t                    slot;
    ngx_uint_t                    stage;       /* 0 stream, 1 hook, 2 HDEL */
    ngx_str_t                     id;
    ngx_str_t                     json;        /* both bytes follow */
} ngx_http_engagement_msfwd_t;


static ngx_uint_t                 ngx_http_engagement_msfwd_on;
static ngx_uint_t                 ngx_http_engagement_msfwd_hook;
static ngx_uint_t                 ngx_http_engagement_msfwd_sweep;
static ngx_uint_t                 ngx_http_engagement_msfwd_marked;
static u_char                     ngx_http_engagement_msfwd_touched[
                                      NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS / 8];
static uint32_t                   ngx_http_engagement_msfwd_busy[
                                      NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS];
static ngx_event_t                ngx_http_engagement_msfwd_ev;


static void ngx_http_engagement_msfwd_step(ngx_http_engagement_msfwd_t *f);


/* the pending hash of the slot of key: eng:ms:out:{<tag>} (at most 17) */

u_char *
ngx_http_engagement_milestone_outkey(u_char *p, ngx_uint_t slot)
{
    ngx_str_t  *tag;

    tag = ngx_http_engagement_cluster_tag(slot);

    p = ngx_cpymem(p, "eng:ms:out:{", sizeof("eng:ms:out:{") - 1);
    p = ngx_cpymem(p, tag->data, tag->len);
    *p++ = '}';

    return p;
}


ngx_uint_t
ngx_http_engagement_milestone_pending(void)
{
    return ngx_http_engagement_msfwd_on;
}


void
ngx_http_engagement_milestone_touch(ngx_uint_t slot)
{
    if (!ngx_http_engagement_msfwd_on
        || slot >= NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS)
    {
        return;
    }

    ngx_http_engagement_msfwd_touched[slot / 8] |= (u_char) (1 << (slot % 8));
    ngx_http_engagement_msfwd_marked = 1;
}


static void
ngx_http_engagement_msfwd_done(ngx_http_engagement_msfwd_t *f,
    ngx_uint_t again)
{
    ngx_http_engagement_msfwd_busy[f->slot]--;

    if (again) {
        ngx_http_engagement_milestone_touch(f->slot);
    }

    ngx_free(f);
}


static void
ngx_http_engagement_msfwd_reply(redisReply *reply, void *data)
{
    ngx_http_engagement_msfwd_t  *f = data;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "engagement milestone: moving \"%V\" failed: %s; "
                      "it stays pending", &f->id,
                      reply ? reply->str : "no answer");
        ngx_http_engagement_msfwd_done(f, 1);
        return;
    }

    if (f->stage == 2) {
        ngx_http_engagement_msfwd_done(f, 0);
        return;
    }

    f->stage = (f->stage == 0 && ngx_http_engagement_msfwd_hook) ? 1 : 2;

    ngx_http_engagement_msfwd_step(f);
}


static void
ngx_http_engagement_msfwd_step(ngx_http_engagement_msfwd_t *f)
{
    u_char       k1[NGX_HTTP_ENGAGEMENT_ID_MAX * 2 + 64];
    u_char      *p;
    ngx_int_t    rc;
    const char  *argv[8];
    size_t       lens[8];

    if (f->stage == 2) {
        p = ngx_http_engagement_milestone_outkey(k1, f->slot);
        argv[0] = "HDEL";
        lens[0] = 4;
        argv[1] = (const char *) k1;
        lens[1] = p - k1;
        argv[2] = (const char *) f->id.data;
        lens[2] = f->id.len;

        rc = ngx_http_engagement_redis_send(ngx_http_engagement_msfwd_reply,
                                            f, 3, argv, lens);

    } else {
        p = ngx_sprintf(k1, f->stage ? "eng:{ms}:s:%V"
                                     : "{eng:milestones}:s:%V", &f->id);
        argv[0] = f->stage ? "3" : "2";
        lens[0] = 1;
        argv[1] = (const char *) k1;
        lens[1] = p - k1;
        argv[2] = f->stage ? "eng:{ms}:wh" : "eng:milestones";
        lens[2] = ngx_strlen(argv[2]);
        argv[3] = "eng:{ms}:due";
        lens[3] = sizeof("eng:{ms}:due") - 1;
        rc = f->stage ? 4 : 3;
        argv[rc] = f->stage ? "h" : "s";
        lens[rc++] = 1;
        argv[rc] = NGX_HTTP_ENGAGEMENT_MSFWD_GUARD;
        lens[rc++] = sizeof(NGX_HTTP_ENGAGEMENT_MSFWD_GUARD) - 1;
        argv[rc] = (const char *) f->json.data;
        lens[rc++] = f->json.len;
        argv[rc] = (const char *) f->id.data;
        lens[rc++] = f->id.len;

        rc = ngx_http_engagement_redis_eval(NGX_HTTP_ENGAGEMENT_SCRIPT_MS_FWD,
                                            ngx_http_engagement_msfwd_reply,
                                            f, rc, argv, lens);
    }

    if (rc != NGX_OK) {
        /* the master is not ready: the slot is looked at again */
        ngx_http_engagement_msfwd_done(f, 1);
    }
}


/* a slot's pending hash: each notification is moved on */

static void
ngx_http_engagement_msfwd_read(redisReply *reply, void *data)
{
    ngx_uint_t                    slot = (ngx_uint_t) (uintptr_t) data;
    ngx_uint_t                    i;
    redisReply                   *id, *json;
    ngx_http_engagement_msfwd_t  *f;

    ngx_http_engagement_msfwd_busy[slot]--;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_engagement_milestone_touch(slot);
        return;
    }

    for (i = 0; i + 1 < reply->elements; i += 2) {
        id = reply->element[i];
        json = reply->element[i + 1];

        if (id->type != REDIS_REPLY_STRING || json->type != REDIS_REPLY_STRING
            || id->len > 2 * NGX_HTTP_ENGAGEMENT_ID_MAX + 32)
        {
            continue;
        }

        f = ngx_alloc(sizeof(ngx_http_engagement_msfwd_t) + id->len
                      + json->len, ngx_cycle->log);
        if (f == NULL) {
            ngx_http_engagement_milestone_touch(slot);
            return;
        }

        f->slot = slot;
        f->stage = 0;
        f->id.data = (u_char *) (f + 1);
        f->id.len = id->len;
        ngx_memcpy(f->id.data, id->str, id->len);
        f->json.data = f->id.data + id->len;
        f->json.len = json->len;
        ngx_memcpy(f->json.data, json->str, json->len);

        ngx_http_engagement_msfwd_busy[slot]++;
        ngx_http_engagement_msfwd_step(f);
    }
}


static void
ngx_http_engagement_msfwd_tick(ngx_event_t *ev)
{
    u_char       key[32], *p;
    size_t       lens[2];
    ngx_uint_t   slot, sent, i, any;
    const char  *argv[2];

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (ngx_worker == 0) {
        for (i = 0; i < NGX_HTTP_ENGAGEMENT_MSFWD_SWEEP; i++) {
            ngx_http_engagement_milestone_touch(
                ngx_http_engagement_msfwd_sweep++
                % NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS);
        }
    }

    sent = 0;
    any = 0;

    for (slot = 0; ngx_http_engagement_msfwd_marked
                   && slot < NGX_HTTP_ENGAGEMENT_CLUSTER_SLOTS; slot++)
    {
        if (ngx_http_engagement_msfwd_touched[slot / 8] == 0) {
            slot |= 7;      /* a clear byte: its 8 slots skipped */
            continue;
        }

        if (!(ngx_http_engagement_msfwd_touched[slot / 8] & (1 << (slot % 8))))
        {
            continue;
        }

        if (ngx_http_engagement_msfwd_busy[slot]
            || sent >= NGX_HTTP_ENGAGEMENT_MSFWD_PER_TICK)
        {
            any = 1;
            continue;
        }

        ngx_http_engagement_msfwd_touched[slot / 8] &=
                                               (u_char) ~(1 << (slot % 8));

        p = ngx_http_engagement_milestone_outkey(key, slot);
        argv[0] = "HGETALL";
        lens[0] = 7;
        argv[1] = (const char *) key;
        lens[1] = p - key;

        ngx_http_engagement_msfwd_busy[slot]++;

        if (ngx_http_engagement_redis_send(ngx_http_engagement_msfwd_read,
                                           (void *) (uintptr_t) slot, 2,
                                           argv, lens)
            != NGX_OK)
        {
            ngx_http_engagement_msfwd_busy[slot]--;
            ngx_http_engagement_msfwd_touched[slot / 8] |=
                                                  (u_char) (1 << (slot % 8));
            any = 1;
            continue;
        }

        sent++;
    }

    ngx_http_engagement_msfwd_marked = any;

    ngx_add_timer(ev, NGX_HTTP_ENGAGEMENT_MSFWD_TICK);
}


ngx_int_t
ngx_http_engagement_milestone_fwd_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf)
{
    ngx_event_t  *ev = &ngx_http_engagement_msfwd_ev;

    if (emcf->milestone == NULL || emcf->redis == NULL
        || !emcf->redis->cluster)
    {
        return NGX_OK;
    }

    ngx_http_engagement_msfwd_on = 1;
    ngx_http_engagement_msfwd_hook = (emcf->webhook != NULL);
    ngx_http_engagement_msfwd_sweep = 0;

    ev->handler = ngx_http_engagement_msfwd_tick;
    ev->log = cycle->log;
    ev->data = emcf;
    ev->cancelable = 1;

    ngx_add_timer(ev, NGX_HTTP_ENGAGEMENT_MSFWD_TICK);

    return NGX_OK;
}


void
ngx_http_engagement_milestone_fwd_stop(void)
{
    if (ngx_http_engagement_msfwd_ev.timer_set) {
        ngx_del_timer(&ngx_http_engagement_msfwd_ev);
    }
}
