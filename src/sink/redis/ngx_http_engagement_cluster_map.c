
/*
 * The slot map of Redis Cluster: a key's slot (CRC16 of its hash tag),
 * a tag per slot for keys that must live in a given slot (the flush's
 * batch keys), CLUSTER SLOTS read from a ready node or a seed, again
 * every NGX_HTTP_ENGAGEMENT_CLUSTER_FAST ms while a slot lacks a ready
 * master and every NGX_HTTP_ENGAGEMENT_CLUSTER_SLOW ms otherwise, and
 * the state /status shows. The connections are cluster.c's.
 */


#include "store/ngx_http_engagement_store.h"
#include "sink/redis/ngx_http_engagement_cluster_int.h"


static uint16_t                          ngx_http_engagement_crc_table[256];
static ngx_str_t                        *ngx_http_engagement_ctags;
static ngx_uint_t                         ngx_http_engagement_cslots_failing;


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

/* the node's state as seen by /status and the health check */

void
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

ngx_http_engagement_cnode_t *
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
    ngx_uint_t                    i, j, s, e, masters, changed, level;
    redisReply                   *reply = r, *rng, *m;
    ngx_http_engagement_cnode_t  *n, *from;

    from = ngx_http_engagement_cnode_replied(ac);
    ngx_http_engagement_crefreshing = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply) {
            /* once at the error level, then at each retry at info */
            level = ngx_http_engagement_cslots_failing ? NGX_LOG_INFO
                                                       : NGX_LOG_ERR;
            ngx_log_error(level, ngx_http_engagement_clog, 0,
                          "engagement redis cluster: CLUSTER SLOTS on %*s "
                          "failed: %s%s", from->name_len, from->name,
                          reply->type == REDIS_REPLY_ERROR ? reply->str
                          : "unexpected reply",
                          ngx_http_engagement_cslots_failing ? ""
                          : "; is it a node of a Redis Cluster?");
            ngx_http_engagement_cslots_failing = 1;
        }

        ngx_http_engagement_cwanted = 1;
        return;
    }

    ngx_http_engagement_cslots_failing = 0;

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

void
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
        i = (k + ngx_http_engagement_cseed)
            % NGX_HTTP_ENGAGEMENT_CLUSTER_NODES;
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


void
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
ngx_http_engagement_cluster_map_init(ngx_log_t *log)
{
    ngx_http_engagement_cluster_crc_init();

    return ngx_http_engagement_cluster_tags(log);
}
