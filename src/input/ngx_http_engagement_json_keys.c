
/*
 * The keys of JSON objects: the wanted top-level keys, found by their
 * length and first byte (input/ngx_http_engagement_json.h), and the set
 * of an object's other keys that finds a duplicate (a few compared one by
 * one, more in an open hash table in the pool).
 */


#include "input/ngx_http_engagement_json.h"


static uint32_t
ngx_http_engagement_json_hash(const u_char *p, size_t len)
{
    uint32_t  h;

    /* FNV-1a; the body limit bounds how many keys can collide */
    for (h = 2166136261u; len; len--) {
        h = (h ^ *p++) * 16777619u;
    }

    return h;
}


/*
 * Moves an object's keys to a pool array twice as large (the first time,
 * from "few"), and indexes them in an open hash table of twice that.
 */

static ngx_int_t
ngx_http_engagement_json_keys_grow(ngx_pool_t *pool,
    ngx_http_engagement_jkeys_t *ks)
{
    uint32_t                    *slots;
    ngx_uint_t                   i, k, cap, nslots;
    ngx_http_engagement_jkey_t  *all;

    cap = ks->all ? ks->cap * 2 : 4 * NGX_HTTP_ENGAGEMENT_JSON_KEYS_FEW;

    all = ngx_palloc(pool, cap * sizeof(ngx_http_engagement_jkey_t));
    nslots = 2 * cap;
    slots = ngx_pcalloc(pool, nslots * sizeof(uint32_t));

    if (all == NULL || slots == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(all, ks->all ? ks->all : ks->few,
               ks->n * sizeof(ngx_http_engagement_jkey_t));

    ks->all = all;
    ks->cap = cap;
    ks->slots = slots;
    ks->nslots = nslots;

    for (i = 0; i < ks->n; i++) {
        for (k = all[i].hash & (nslots - 1); slots[k];
             k = (k + 1) & (nslots - 1))
        {
            /* void */
        }

        slots[k] = (uint32_t) i + 1;
    }

    return NGX_OK;
}


/* adds a key of one object; NGX_DECLINED if the object has it already */
ngx_int_t
ngx_http_engagement_json_key_add(ngx_pool_t *pool,
    ngx_http_engagement_jkeys_t *ks, ngx_str_t *key)
{
    uint32_t                     h;
    ngx_uint_t                   i, k, mask;
    ngx_http_engagement_jkey_t  *e;

    h = ngx_http_engagement_json_hash(key->data, key->len);

    if (ks->all == NULL) {
        for (i = 0; i < ks->n; i++) {
            e = &ks->few[i];
            if (e->hash == h && e->len == key->len
                && ngx_memcmp(e->data, key->data, key->len) == 0)
            {
                return NGX_DECLINED;
            }
        }

        if (ks->n < NGX_HTTP_ENGAGEMENT_JSON_KEYS_FEW) {
            e = &ks->few[ks->n++];
            e->data = key->data;
            e->len = key->len;
            e->hash = h;
            return NGX_OK;
        }
    }

    /* many keys: all of them in an array, indexed by an open hash table */

    if ((ks->all == NULL || ks->n == ks->cap)
        && ngx_http_engagement_json_keys_grow(pool, ks) != NGX_OK)
    {
        return NGX_ERROR;
    }

    mask = ks->nslots - 1;

    for (k = h & mask; ks->slots[k]; k = (k + 1) & mask) {
        e = &ks->all[ks->slots[k] - 1];

        if (e->hash == h && e->len == key->len
            && ngx_memcmp(e->data, key->data, key->len) == 0)
        {
            return NGX_DECLINED;
        }
    }

    e = &ks->all[ks->n];
    e->data = key->data;
    e->len = key->len;
    e->hash = h;
    ks->slots[k] = (uint32_t) ++ks->n;

    return NGX_OK;
}


/*
 * A key's name as is_key() compares it: little-endian words of its first
 * and last 8 bytes, or of all of it (the rest zero) when shorter.
 */

static void
ngx_http_engagement_json_key_words(ngx_http_engagement_json_key_t *k)
{
    size_t   i, len;
    u_char  *p;

    p = k->name.data;
    len = k->name.len;
    k->head = 0;
    k->tail = 0;

    for (i = 0; i < ngx_min(len, 8); i++) {
        k->head |= (uint64_t) p[i] << (8 * i);
    }

    if (len >= 8) {
        for (i = 0; i < 8; i++) {
            k->tail |= (uint64_t) p[len - 8 + i] << (8 * i);
        }
    }
}


void
ngx_http_engagement_json_keyset_init(ngx_http_engagement_json_keyset_t *ks,
    ngx_http_engagement_json_key_t *keys, ngx_uint_t nkeys)
{
    u_char                           c;
    ngx_uint_t                       i;
    ngx_http_engagement_json_key_t  *k;

    ngx_memzero(ks, sizeof(ngx_http_engagement_json_keyset_t));

    ks->keys = keys;
    ks->nkeys = nkeys;

    /* a chain in the keys' order (the callers' likeliest first) */
    for (i = nkeys; i-- > 0; /* void */) {
        k = &keys[i];
        ngx_http_engagement_json_key_words(k);

        c = k->name.data[0];
        ks->next[i] = ks->first[c];
        ks->first[c] = (u_char) (i + 1);
    }
}


/* the index of a wanted top-level key, by its first byte, then length */
ngx_int_t
ngx_http_engagement_json_wanted(ngx_http_engagement_json_keyset_t *ks,
    ngx_str_t *key)
{
    ngx_uint_t                       i;
    ngx_http_engagement_json_key_t  *k;

    if (key->len == 0) {
        return NGX_DECLINED;
    }

    for (i = ks->first[key->data[0]]; i; i = ks->next[i - 1]) {
        k = &ks->keys[i - 1];

        if (k->name.len == key->len
            && ngx_http_engagement_json_same(k->name.data, key->data,
                                             key->len))
        {
            return i - 1;
        }
    }

    return NGX_DECLINED;
}


/* whether every byte of s is one of chars, and s is 1 to max bytes */
ngx_uint_t
ngx_http_engagement_json_fits(ngx_str_t *s, const u_char *chars, size_t max)
{
    size_t  i;

    if (s->len == 0 || s->len > max) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        if (!chars[s->data[i]]) {
            return 0;
        }
    }

    return 1;
}
