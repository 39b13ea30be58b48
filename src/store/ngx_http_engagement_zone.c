
/*
 * Shared memory zones in general: the header every zone of the module
 * starts with (magic, layout, size, rbtree, LRU, hash key), its creation
 * and its checks when a reload hands a zone over, the LRU helpers, the
 * rate-limited "zone is full" line, and the directives that declare the
 * counters and dedupe zones (engagement_zone, engagement_dedupe_zone).
 * Kinds of zone (counters, dedupe, rate limit) describe themselves with an
 * ngx_http_engagement_zone_kind_t; their nodes are their own business.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_live.h"
#include "store/ngx_http_engagement_resume.h"
#include "store/ngx_http_engagement_series.h"
#include "policy/ngx_http_engagement_policy.h"


/*
 * nginx hands a zone over to the new cycle only when name, tag and size
 * match; a size change makes a new, empty zone while the old one still
 * exists. The kind says whether that loses what must not be lost (refused)
 * or only what may be rebuilt (with a warning, or quietly).
 */

ngx_int_t
ngx_http_engagement_zone_resized(ngx_shm_zone_t *shm_zone,
    const ngx_http_engagement_zone_kind_t *kind)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *oz;

    if (kind->resize == NGX_HTTP_ENGAGEMENT_RESIZE_QUIET
        || ngx_cycle == NULL || ngx_cycle->shared_memory.part.elts == NULL)
    {
        return NGX_OK;
    }

    /* ngx_cycle is still the old cycle while the new one creates zones */
    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    oz = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }
            part = part->next;
            oz = part->elts;
            i = 0;
        }

        if (oz[i].tag == shm_zone->tag
            && oz[i].shm.size != shm_zone->shm.size
            && oz[i].shm.name.len == shm_zone->shm.name.len
            && ngx_strncmp(oz[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) == 0)
        {
            break;
        }
    }

    if (kind->resize == NGX_HTTP_ENGAGEMENT_RESIZE_WARN) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "%s \"%V\" changed size on reload (%uz to %uz bytes) "
                      "and starts empty: repeats of events seen before may "
                      "count again within their window", kind->directive,
                      &shm_zone->shm.name, oz[i].shm.size,
                      shm_zone->shm.size);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "%s \"%V\" cannot change size on reload (%uz to %uz "
                  "bytes): its counts would be lost; keep the old size, or "
                  "stop and start nginx", kind->directive,
                  &shm_zone->shm.name, oz[i].shm.size, shm_zone->shm.size);

    return NGX_ERROR;
}


#if (NGX_HTTP_ENGAGEMENT_TEST_LAYOUT)
ngx_uint_t  ngx_http_engagement_test_generation;
#endif


/*
 * The layout of a shape: FNV-1a over its numbers, seeded with the manual
 * NGX_HTTP_ENGAGEMENT_LAYOUT, so any change of a size or an offset the
 * shape lists gives another layout.
 */

uint32_t
ngx_http_engagement_layout(const size_t *shape, ngx_uint_t n)
{
    uint32_t    h;
    uint64_t    v;
    ngx_uint_t  i, k;

    h = 2166136261u ^ NGX_HTTP_ENGAGEMENT_LAYOUT;

#if (NGX_HTTP_ENGAGEMENT_TEST_LAYOUT)
    h ^= (uint32_t) ngx_http_engagement_test_generation << 16;
#endif

    for (i = 0; i < n; i++) {
        v = shape[i];

        for (k = 0; k < sizeof(uint64_t); k++) {
            h = (h ^ (u_char) (v >> (8 * k))) * 16777619u;
        }
    }

    return h;
}


/*
 * A zone kept over a reload: its header must carry this kind's magic and
 * layout, or the reload is refused rather than have the new workers
 * misread it.
 */

static ngx_http_engagement_shctx_head_t *
ngx_http_engagement_zone_adopt(ngx_shm_zone_t *shm_zone,
    const ngx_http_engagement_zone_kind_t *kind)
{
    uint32_t                           layout;
    ngx_slab_pool_t                   *shpool;
    ngx_http_engagement_shctx_head_t  *head;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    head = shpool->data;
    layout = ngx_http_engagement_layout(kind->shape, kind->nshape);

    if (head == NULL
        || head->magic != kind->magic
        || head->layout != layout
        || head->shctx_size != kind->size)
    {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "%s \"%V\" was written by another kind of zone or an "
                      "incompatible module version (layout %08xD, this "
                      "module uses %08xD); stop and start nginx to recreate "
                      "it", kind->directive, &shm_zone->shm.name,
                      head ? head->layout : 0, layout);
        return NULL;
    }

    /* the old cycle's module may be unloaded: repoint the callback */
    head->rbtree.insert = kind->insert;

    return head;
}


static ngx_http_engagement_shctx_head_t *
ngx_http_engagement_zone_create(ngx_shm_zone_t *shm_zone,
    const ngx_http_engagement_zone_kind_t *kind)
{
    size_t                             len;
    ngx_slab_pool_t                   *shpool;
    ngx_http_engagement_shctx_head_t  *head;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    head = ngx_slab_calloc(shpool, kind->size);
    if (head == NULL) {
        return NULL;
    }

    head->magic = kind->magic;
    head->layout = ngx_http_engagement_layout(kind->shape, kind->nshape);
    head->shctx_size = kind->size;
    head->created = ngx_time();

    ngx_rbtree_init(&head->rbtree, &head->sentinel, kind->insert);
    ngx_queue_init(&head->lru);
    ngx_http_engagement_random_key(head->hash_key);

    shpool->data = head;

    len = sizeof(" in  \"\"") + ngx_strlen(kind->directive)
          + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NULL;
    }

    ngx_sprintf(shpool->log_ctx, " in %s \"%V\"%Z", kind->directive,
                &shm_zone->shm.name);

    /* a full zone is reported by the module, at a limited rate */
    shpool->log_nomem = 0;

    return head;
}


/*
 * Creates a zone's header, or adopts the one a reload hands over (data is
 * the old cycle's zone). The caller's *_shctx_t starts with the header.
 */

ngx_http_engagement_shctx_head_t *
ngx_http_engagement_zone_attach(ngx_shm_zone_t *shm_zone, void *data,
    const ngx_http_engagement_zone_kind_t *kind)
{
    if (data || shm_zone->shm.exists) {
        return ngx_http_engagement_zone_adopt(shm_zone, kind);
    }

    if (ngx_http_engagement_zone_resized(shm_zone, kind) != NGX_OK) {
        return NULL;
    }

    return ngx_http_engagement_zone_create(shm_zone, kind);
}


/* the init of a zone kept in an ngx_http_engagement_zone_t (dedupe.c) */

ngx_int_t
ngx_http_engagement_zone_init(ngx_shm_zone_t *shm_zone, void *data,
    const ngx_http_engagement_zone_kind_t *kind)
{
    ngx_http_engagement_zone_t  *z;

    z = shm_zone->data;

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    z->sh = ngx_http_engagement_zone_attach(shm_zone, data, kind);

    return (z->sh != NULL) ? NGX_OK : NGX_ERROR;
}


/*
 * The LRU helpers, called with the zone locked. A node starts with its
 * ngx_rbtree_node_t, at the start of its slab allocation.
 */

void
ngx_http_engagement_zone_link(ngx_http_engagement_shctx_head_t *head,
    ngx_rbtree_node_t *node, ngx_queue_t *lru)
{
    ngx_rbtree_insert(&head->rbtree, node);
    ngx_queue_insert_head(&head->lru, lru);
    head->entries++;
}


void
ngx_http_engagement_zone_unlink(ngx_slab_pool_t *shpool,
    ngx_http_engagement_shctx_head_t *head, ngx_rbtree_node_t *node,
    ngx_queue_t *lru)
{
    ngx_queue_remove(lru);
    ngx_rbtree_delete(&head->rbtree, node);
    ngx_slab_free_locked(shpool, node);
    head->entries--;
}


void
ngx_http_engagement_zone_touch(ngx_http_engagement_shctx_head_t *head,
    ngx_queue_t *lru)
{
    ngx_queue_remove(lru);
    ngx_queue_insert_head(&head->lru, lru);
}


/*
 * Whether a "zone is full" line is due: at most one per worker and zone
 * every NGX_HTTP_ENGAGEMENT_FULL_LOG_EVERY ms, since a full zone is a flood.
 */

ngx_uint_t
ngx_http_engagement_zone_log_due(ngx_msec_t *last)
{
    if (*last != 0
        && ngx_current_msec - *last < NGX_HTTP_ENGAGEMENT_FULL_LOG_EVERY)
    {
        return 0;
    }

    *last = ngx_current_msec;

    return 1;
}


void
ngx_http_engagement_zone_log_full(ngx_http_engagement_zone_t *z,
    ngx_log_t *log)
{
    if (!ngx_http_engagement_zone_log_due(&z->last_full_log)) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "engagement zone \"%V\" is full (%uz bytes); events that "
                  "need new entries are refused with 503 until it has room",
                  &z->name, z->shm_zone->shm.size);
}


/*
 * "name:size" of a zone directive; what names the zone in messages (e.g.
 * "zone", "engagement_limit_zone"), example shows a valid value.
 */

ngx_int_t
ngx_http_engagement_zone_parse(ngx_conf_t *cf, ngx_str_t *value,
    const char *what, const char *example, ngx_str_t *name, ssize_t *size)
{
    u_char     *p;
    ngx_str_t   s;

    p = (u_char *) ngx_strchr(value->data, ':');

    if (p == NULL || p == value->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s \"%V\": expected name:size, e.g. %s",
                           what, value, example);
        return NGX_ERROR;
    }

    name->data = value->data;
    name->len = p - value->data;

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    *size = ngx_parse_size(&s);

    if (*size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s size \"%V\"", what, value);
        return NGX_ERROR;
    }

    if (*size < (ssize_t) (NGX_HTTP_ENGAGEMENT_ZONE_MIN_PAGES * ngx_pagesize))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s \"%V\" is too small: at least %uzk", what,
                           value,
                           NGX_HTTP_ENGAGEMENT_ZONE_MIN_PAGES * ngx_pagesize
                           / 1024);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The size of a zone of a fixed name (engagement_live_zone,
 * engagement_resume_zone): given once, at least 32 pages.
 */

char *
ngx_http_engagement_zone_size(ngx_conf_t *cf, ngx_command_t *cmd,
    ssize_t *size)
{
    ssize_t     n;
    ngx_str_t  *value;

    if (*size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    n = ngx_parse_size(&value[1]);

    if (n == NGX_ERROR || n < (ssize_t) (32 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" of \"%V\": at least %uzk, "
                           "e.g. 4m", &value[1], &cmd->name,
                           32 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    *size = n;

    return NGX_CONF_OK;
}


/*
 * The monotonic clock in ms: the same for every process of the host (nginx
 * 1.22's ngx_current_msec is wall-clock, and each worker's copy lags by
 * its own amount).
 */

uint64_t
ngx_http_engagement_monotonic_ms(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) {
        return ngx_current_msec;
    }

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/*
 * A turn that one worker of the host takes at a time (sending live counts
 * or positions to Redis): due once *at (monotonic ms, in a zone) has
 * passed, taken by the first worker to ask, and the next is due a period
 * later, whoever takes it.
 */

ngx_uint_t
ngx_http_engagement_turn_due(ngx_atomic_t *at, ngx_msec_t period)
{
    uint64_t           now;
    ngx_atomic_uint_t  was;

    now = ngx_http_engagement_monotonic_ms();
    was = *at;

    if (was > now) {
        return 0;
    }

    return ngx_atomic_cmp_set(at, was, now + period);
}


/*
 * Adds a zone of the module. The module's own address is the tag: nginx
 * hands a zone to the next cycle only for the same tag, name and size,
 * and the layout version in the zone's header guards against the rest.
 */

ngx_shm_zone_t *
ngx_http_engagement_zone_shm(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    ngx_shm_zone_init_pt init, void *data)
{
    ngx_shm_zone_t  *shm_zone;

    if (name->len == sizeof(NGX_HTTP_ENGAGEMENT_SALT_ZONE) - 1
        && ngx_strncmp(name->data, NGX_HTTP_ENGAGEMENT_SALT_ZONE,
                       name->len) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone name \"%V\" is reserved for the module's "
                           "identity salt; give the zone another name", name);
        return NULL;
    }

    /* the live zone's own name: no other zone of the module may take it */
    if (init != ngx_http_engagement_live_init_zone
        && name->len == sizeof(NGX_HTTP_ENGAGEMENT_LIVE_ZONE) - 1
        && ngx_strncmp(name->data, NGX_HTTP_ENGAGEMENT_LIVE_ZONE,
                       name->len) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone name \"%V\" is reserved for the module's "
                           "live zone; give the zone another name", name);
        return NULL;
    }

    /* and the resume zone's */
    if (init != ngx_http_engagement_resume_init_zone
        && name->len == sizeof(NGX_HTTP_ENGAGEMENT_RESUME_ZONE) - 1
        && ngx_strncmp(name->data, NGX_HTTP_ENGAGEMENT_RESUME_ZONE,
                       name->len) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone name \"%V\" is reserved for the module's "
                           "resume zone; give the zone another name", name);
        return NULL;
    }

    /* and the series zone's */
    if (init != ngx_http_engagement_series_init_zone
        && name->len == sizeof(NGX_HTTP_ENGAGEMENT_SERIES_ZONE) - 1
        && ngx_strncmp(name->data, NGX_HTTP_ENGAGEMENT_SERIES_ZONE,
                       name->len) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone name \"%V\" is reserved for the module's "
                           "series zone; give the zone another name", name);
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size,
                                     &ngx_http_engagement_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"%V\" is already in use",
                           name);
        return NULL;
    }

    shm_zone->data = data;
    shm_zone->init = init;

    return shm_zone;
}


static ngx_http_engagement_zone_t *
ngx_http_engagement_zone_declare(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf, ngx_str_t *name, size_t size,
    ngx_uint_t dedupe)
{
    ngx_http_engagement_zone_t  *z, **zp;

    z = ngx_pcalloc(cf->pool, sizeof(ngx_http_engagement_zone_t));
    if (z == NULL) {
        return NULL;
    }

    z->name = *name;
    z->dedupe = dedupe;
    z->shm_zone = ngx_http_engagement_zone_shm(cf, name, size,
                      dedupe ? ngx_http_engagement_dedupe_init_zone
                             : ngx_http_engagement_counters_init_zone,
                      z);
    if (z->shm_zone == NULL) {
        return NULL;
    }

    zp = ngx_array_push(&emcf->zones);
    if (zp == NULL) {
        return NULL;
    }

    *zp = z;

    return z;
}


/*
 * Finds a zone by name, or declares it. size 0 with declare 0: the zone
 * must have been declared by engagement_zone / engagement_dedupe_zone.
 * size > 0 with declare 0: a default zone, declared if still missing.
 */

ngx_http_engagement_zone_t *
ngx_http_engagement_zone_get(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    ngx_uint_t dedupe, ngx_uint_t declare)
{
    ngx_uint_t                        i;
    ngx_http_engagement_zone_t       *z, **zp;
    ngx_http_engagement_main_conf_t  *emcf;

    static const char  *kinds[] = { "engagement_zone",
                                    "engagement_dedupe_zone" };

    emcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_engagement_module);

    zp = emcf->zones.elts;

    for (i = 0; i < emcf->zones.nelts; i++) {
        z = zp[i];

        if (z->name.len != name->len
            || ngx_strncmp(z->name.data, name->data, name->len) != 0)
        {
            continue;
        }

        if (z->dedupe != dedupe) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" is an %s zone, not an %s zone", name,
                               kinds[z->dedupe], kinds[dedupe]);
            return NULL;
        }

        if (declare) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "zone \"%V\" is already declared", name);
            return NULL;
        }

        return z;
    }

    if (size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "unknown %s \"%V\"",
                           kinds[dedupe], name);
        return NULL;
    }

    return ngx_http_engagement_zone_declare(cf, emcf, name, size, dedupe);
}


/* engagement_zone name:size;  engagement_dedupe_zone name:size; */

char *
ngx_http_engagement_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ssize_t     size;
    ngx_str_t  *value, name;

    value = cf->args->elts;

    if (ngx_http_engagement_zone_parse(cf, &value[1], "zone",
                                       "engagement:16m", &name, &size)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_engagement_zone_get(cf, &name, size, cmd->offset, 1)
        == NULL)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A zone's table of n entries of 'unit' bytes, cut (zeroed) from what the
 * slab pool has free, the pool's lock held: as many as 7/8 of the zone
 * would take, fewer (by a tenth at a time) until it fits; NULL when not
 * even 'min' fit.
 */

void *
ngx_http_engagement_zone_table(ngx_slab_pool_t *shpool, size_t size,
    size_t unit, ngx_uint_t min, ngx_uint_t *n)
{
    void    *t;
    size_t   k;

    for (k = size * 7 / 8 / unit; k && k >= min; k = k * 9 / 10) {
        t = ngx_slab_calloc_locked(shpool, k * unit);

        if (t) {
            *n = k;
            return t;
        }
    }

    return NULL;
}


/* what the slab pool's own messages say: " in <kind> zone "<name>"" */

void
ngx_http_engagement_zone_log_ctx(ngx_slab_pool_t *shpool, const char *kind,
    ngx_str_t *name)
{
    shpool->log_ctx = ngx_slab_alloc(shpool, sizeof(" in  zone \"\"")
                                             + ngx_strlen(kind) + name->len);
    if (shpool->log_ctx) {
        ngx_sprintf(shpool->log_ctx, " in %s zone \"%V\"%Z", kind, name);
    }
}
