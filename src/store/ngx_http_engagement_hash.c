
/*
 * Keyed hashing for the module: SipHash (Aumasson and Bernstein) over
 * identifiers, with a random key kept in each zone, so that nobody outside
 * can aim collisions at dedupe keys: SipHash-2-4, and SipHash-1-3 for keys
 * that never leave the node; and a plain word hash for the counters' tree,
 * where a collision is harmless.
 */


#include "store/ngx_http_engagement_store.h"


#define ngx_http_engagement_rotl(x, b)  (((x) << (b)) | ((x) >> (64 - (b))))

#define ngx_http_engagement_sipround(v0, v1, v2, v3)                          \
    v0 += v1; v1 = ngx_http_engagement_rotl(v1, 13); v1 ^= v0;                \
    v0 = ngx_http_engagement_rotl(v0, 32);                                    \
    v2 += v3; v3 = ngx_http_engagement_rotl(v3, 16); v3 ^= v2;                \
    v0 += v3; v3 = ngx_http_engagement_rotl(v3, 21); v3 ^= v0;                \
    v2 += v1; v1 = ngx_http_engagement_rotl(v1, 17); v1 ^= v2;                \
    v2 = ngx_http_engagement_rotl(v2, 32)


static ngx_inline uint64_t
ngx_http_engagement_load64(const u_char *p)
{
#if (NGX_HAVE_LITTLE_ENDIAN && NGX_HAVE_NONALIGNED)
    uint64_t  m;

    /* one load: SipHash reads its input as little-endian words */
    ngx_memcpy(&m, p, sizeof(uint64_t));

    return m;
#else
    return (uint64_t) p[0]
           | (uint64_t) p[1] << 8
           | (uint64_t) p[2] << 16
           | (uint64_t) p[3] << 24
           | (uint64_t) p[4] << 32
           | (uint64_t) p[5] << 40
           | (uint64_t) p[6] << 48
           | (uint64_t) p[7] << 56;
#endif
}


/* the last len % 8 bytes of the input (left of them, at in), as a word */

static ngx_inline uint64_t
ngx_http_engagement_tail(const u_char *in, size_t left, size_t len)
{
    size_t    i;
    uint64_t  t;

#if (NGX_HAVE_LITTLE_ENDIAN && NGX_HAVE_NONALIGNED)
    uint16_t  h;
    uint32_t  w;

    if (len >= 8) {
        /* the input's last word, less the bytes before the tail */
        return ngx_http_engagement_load64(in + left - 8) >> (64 - 8 * left);
    }

    /* a short input: four, two and one bytes, never past its end */
    t = 0;
    i = 0;

    if (left & 4) {
        ngx_memcpy(&w, in, 4);
        t = w;
        i = 4;
    }

    if (left & 2) {
        ngx_memcpy(&h, in + i, 2);
        t |= (uint64_t) h << (8 * i);
        i += 2;
    }

    if (left & 1) {
        t |= (uint64_t) in[i] << (8 * i);
    }

    return t;
#else

    t = 0;

    for (i = 0; i < left; i++) {
        t |= ((uint64_t) in[i]) << (8 * i);
    }

    return t;
#endif
}


/*
 * SipHash-c-d: c rounds per word of input, d to finish; c is 1 or 2, d
 * 3 or 4, constants where it is inlined, so the rounds are written out
 * (a loop of them cost its counter and branches on every call)
 */

#if (defined __GNUC__)
/* each caller gets its own copy, c and d folded: a shared one costs more */
__attribute__((always_inline))
#endif
static ngx_inline uint64_t
ngx_http_engagement_sip(const uint64_t key[2], const u_char *in, size_t len,
    ngx_uint_t c, ngx_uint_t d)
{
    size_t          left;
    uint64_t        v0, v1, v2, v3, m, b;
    const u_char   *end;

    v0 = 0x736f6d6570736575ULL ^ key[0];
    v1 = 0x646f72616e646f6dULL ^ key[1];
    v2 = 0x6c7967656e657261ULL ^ key[0];
    v3 = 0x7465646279746573ULL ^ key[1];

    end = in + (len & ~(size_t) 7);
    left = len & 7;
    b = ((uint64_t) len) << 56;

    for ( /* void */ ; in != end; in += 8) {
        m = ngx_http_engagement_load64(in);
        v3 ^= m;

        ngx_http_engagement_sipround(v0, v1, v2, v3);

        if (c == 2) {
            ngx_http_engagement_sipround(v0, v1, v2, v3);
        }

        v0 ^= m;
    }

    if (left) {
        b |= ngx_http_engagement_tail(in, left, len);
    }

    v3 ^= b;

    ngx_http_engagement_sipround(v0, v1, v2, v3);

    if (c == 2) {
        ngx_http_engagement_sipround(v0, v1, v2, v3);
    }

    v0 ^= b;

    v2 ^= 0xff;

    ngx_http_engagement_sipround(v0, v1, v2, v3);
    ngx_http_engagement_sipround(v0, v1, v2, v3);
    ngx_http_engagement_sipround(v0, v1, v2, v3);

    if (d == 4) {
        ngx_http_engagement_sipround(v0, v1, v2, v3);
    }

    return v0 ^ v1 ^ v2 ^ v3;
}


/* SipHash-2-4: for hashes that leave the node or stand for an identity */

uint64_t
ngx_http_engagement_siphash(const uint64_t key[2], const u_char *in,
    size_t len)
{
    return ngx_http_engagement_sip(key, in, len, 2, 4);
}


/*
 * SipHash-1-3, about half the rounds: for keys of a zone's own table,
 * which stay in the node, where the secret key only has to keep anyone
 * from aiming collisions.
 */

uint64_t
ngx_http_engagement_siphash13(const uint64_t key[2], const u_char *in,
    size_t len)
{
    return ngx_http_engagement_sip(key, in, len, 1, 3);
}


/*
 * The counters' tree key of a content id: the tree orders entries by this
 * hash, then by the id itself, so two ids of one hash cost a comparison
 * of the ids, never a wrong entry or an unbalanced tree; no secrecy is
 * needed, a few multiplications do (the zone's key only seeds it). It
 * never leaves the zone; a state file is hashed again when loaded.
 */

uint64_t
ngx_http_engagement_idhash(const uint64_t key[2], const u_char *in,
    size_t len)
{
    size_t         left;
    uint64_t       h;
    const u_char  *end;

    h = key[0] ^ ((uint64_t) len * 0x9e3779b97f4a7c15ULL);
    end = in + (len & ~(size_t) 7);
    left = len & 7;

    for ( /* void */ ; in != end; in += 8) {
        h = (h ^ ngx_http_engagement_load64(in)) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }

    if (left) {
        h = (h ^ ngx_http_engagement_tail(in, left, len))
            * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }

    h = (h ^ key[1]) * 0xc4ceb9fe1a85ec53ULL;

    return h ^ (h >> 29);
}


/*
 * Called when a zone is created (in the master, at configuration time),
 * so the read from /dev/urandom never happens on the request path.
 */

void
ngx_http_engagement_random_key(uint64_t key[2])
{
    ssize_t    n;
    ngx_fd_t   fd;

    n = 0;
    fd = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd != NGX_INVALID_FILE) {
        n = read(fd, key, 2 * sizeof(uint64_t));
        ngx_close_file(fd);
    }

    if (n != 2 * sizeof(uint64_t)) {
        key[0] = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_time();
        key[1] = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_pid;
    }
}


/*
 * Nodes of the zones keyed by a 64-bit hash (dedupe marks, rate limit
 * buckets) start with ngx_http_engagement_hnode_t: one rbtree insert and
 * one lookup serve them all.
 */

static ngx_inline uint64_t
ngx_http_engagement_hnode_hash(ngx_rbtree_node_t *node)
{
#if (NGX_PTR_SIZE == 4)
    return ((uint64_t) ((ngx_http_engagement_hnode_t *) node)->hash_hi << 32)
           | (uint32_t) node->key;
#else
    return (uint64_t) node->key;
#endif
}


void
ngx_http_engagement_hnode_set(ngx_http_engagement_hnode_t *hn, uint64_t hash)
{
    hn->node.key = (ngx_rbtree_key_t) hash;
#if (NGX_PTR_SIZE == 4)
    hn->hash_hi = (uint32_t) (hash >> 32);
#endif
}


/*
 * An rbtree insert for any node of ours: less says whether a node goes
 * before another, so each kind of node brings its order.
 */

void
ngx_http_engagement_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel,
    ngx_http_engagement_less_pt less)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {
        p = less(node, temp) ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_uint_t
ngx_http_engagement_hnode_less(ngx_rbtree_node_t *a, ngx_rbtree_node_t *b)
{
    return ngx_http_engagement_hnode_hash(a)
           < ngx_http_engagement_hnode_hash(b);
}


void
ngx_http_engagement_hnode_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_http_engagement_rbtree_insert(temp, node, sentinel,
                                      ngx_http_engagement_hnode_less);
}


ngx_http_engagement_hnode_t *
ngx_http_engagement_hnode_lookup(ngx_rbtree_t *tree, uint64_t hash)
{
    uint64_t            h;
    ngx_rbtree_node_t  *node, *sentinel;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {
        h = ngx_http_engagement_hnode_hash(node);

        if (hash == h) {
            return (ngx_http_engagement_hnode_t *) node;
        }

        node = (hash < h) ? node->left : node->right;
    }

    return NULL;
}
