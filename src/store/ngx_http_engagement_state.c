
/*
 * The state file: what Redis has not confirmed when nginx stops, one line
 * per content, written by the master after the workers' final flush and
 * read back when the zone is created at the next start. A zone's lines
 * follow a line "zone <name> <last sequence> 2"; a content's line is
 *   c <id> <batch> <in-flight v e r since> <pending v e r since>
 *     <buckets in flight v e r since> <buckets unwritten v e r since>
 *     <nin> <np> <nin + np viewer hashes, hex>
 * where the batch is "<seq>:<stream, 16 hex digits>" while deltas are in
 * flight, else 0. In-flight deltas keep their batch (the round they were
 * sent in), so if Redis had applied the round before the stop, the resend
 * is recognised and not counted again. The lines of a zone line without
 * the 2 (an earlier version) have no bucket fields; their deltas are
 * filed under their minute.
 */


#include "store/ngx_http_engagement_store.h"
#include "store/ngx_http_engagement_counters.h"


/* a larger state file is not read back: it was not written by us */
#define NGX_HTTP_ENGAGEMENT_STATE_FILE_MAX  (256 * 1024 * 1024)

/* the save's buffer, and the room a line's fixed part and a hash need */
#define NGX_HTTP_ENGAGEMENT_STATE_BUF       65536
#define NGX_HTTP_ENGAGEMENT_STATE_LINE      512
#define NGX_HTTP_ENGAGEMENT_STATE_HASH      32

/* the version of the lines a zone line announces: 2, with buckets */
#define NGX_HTTP_ENGAGEMENT_STATE_VERSION   2

/* viewer hashes a line may carry, in flight and pending each */
#define NGX_HTTP_ENGAGEMENT_STATE_UV_MAX    1000000


/* the numbers of a content's line, in their order */
enum {
    NGX_HTTP_ENGAGEMENT_STATE_SEQ = 0,
    NGX_HTTP_ENGAGEMENT_STATE_IN_VIEWS,
    NGX_HTTP_ENGAGEMENT_STATE_IN_ENGAGED,
    NGX_HTTP_ENGAGEMENT_STATE_IN_REPLAYS,
    NGX_HTTP_ENGAGEMENT_STATE_IN_SINCE,
    NGX_HTTP_ENGAGEMENT_STATE_VIEWS,
    NGX_HTTP_ENGAGEMENT_STATE_ENGAGED,
    NGX_HTTP_ENGAGEMENT_STATE_REPLAYS,
    NGX_HTTP_ENGAGEMENT_STATE_SINCE,
    NGX_HTTP_ENGAGEMENT_STATE_FILING,     /* 4 numbers: v e r since */
    NGX_HTTP_ENGAGEMENT_STATE_ACC = NGX_HTTP_ENGAGEMENT_STATE_FILING + 4,
    NGX_HTTP_ENGAGEMENT_STATE_UV_IN = NGX_HTTP_ENGAGEMENT_STATE_ACC + 4,
    NGX_HTTP_ENGAGEMENT_STATE_UV,
    NGX_HTTP_ENGAGEMENT_STATE_NUMBERS
};


/* a content's line, checked whole before the zone is touched */
typedef struct {
    ngx_str_t                     id;
    uint64_t                      stream;      /* 0: none in the file */
    uint64_t                      v[NGX_HTTP_ENGAGEMENT_STATE_NUMBERS];
    u_char                       *hashes;      /* the first viewer hash */
    u_char                       *eol;
} ngx_http_engagement_state_line_t;


static u_char *
ngx_http_engagement_state_flush(ngx_fd_t fd, u_char *buf, u_char *p,
    ngx_int_t *rc)
{
    if (p > buf && ngx_write_fd(fd, buf, p - buf) != (ssize_t) (p - buf)) {
        *rc = NGX_ERROR;
    }

    return buf;
}


/*
 * One content's line, without its viewer hashes. Pending deltas of a
 * later minute are saved with those of pending's minute, under it; the
 * buckets in flight and those not yet written, each under its minute.
 */

static u_char *
ngx_http_engagement_state_line(u_char *p,
    ngx_http_engagement_counter_node_t *cn)
{
    ngx_http_engagement_counts_t  pending;

    pending = cn->pending;
    ngx_http_engagement_counts_add(&pending, &cn->later);

    p = ngx_sprintf(p, "c %*s %uL", (size_t) cn->len, cn->data, cn->seq);

    if (cn->seq) {
        p = ngx_sprintf(p, ":%016uxL", cn->stream);
    }

    p = ngx_sprintf(p, " %uL %uL %uL %uD %uL %uL %uL %uD",
                    cn->inflight.views, cn->inflight.engaged,
                    cn->inflight.replays, cn->inflight_since,
                    pending.views, pending.engaged,
                    pending.replays, cn->pending_since);

    p = ngx_sprintf(p, " %uL %uL %uL %uD %uL %uL %uL %uD",
                    cn->filing.views, cn->filing.engaged,
                    cn->filing.replays, cn->filing_since,
                    cn->acc.views, cn->acc.engaged,
                    cn->acc.replays, cn->acc_since);

    return ngx_sprintf(p, " %uD %uD", cn->seq ? cn->uv_inflight_n : 0,
                       cn->uv_n);
}


static u_char *
ngx_http_engagement_state_hashes(ngx_fd_t fd, u_char *buf, u_char *p,
    uint64_t *uv, uint32_t n, ngx_int_t *rc)
{
    uint32_t  i;

    for (i = 0; i < n; i++) {
        if (buf + NGX_HTTP_ENGAGEMENT_STATE_BUF - p
            < NGX_HTTP_ENGAGEMENT_STATE_HASH)
        {
            p = ngx_http_engagement_state_flush(fd, buf, p, rc);
        }

        p = ngx_sprintf(p, " %016uxL", uv[i]);
    }

    return p;
}


/* called in the master, after the workers are gone: nobody holds a lock */

ngx_int_t
ngx_http_engagement_state_save(ngx_cycle_t *cycle,
    ngx_http_engagement_zone_t *z, ngx_fd_t fd)
{
    u_char                                *buf, *p;
    ngx_int_t                              rc, n;
    ngx_queue_t                           *q;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    rc = NGX_OK;
    n = 0;

    buf = ngx_alloc(NGX_HTTP_ENGAGEMENT_STATE_BUF, cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(buf, "zone %V %uL %d\n", &z->name, sh->seq,
                    NGX_HTTP_ENGAGEMENT_STATE_VERSION);

    for (q = ngx_queue_head(&sh->head.lru);
         q != ngx_queue_sentinel(&sh->head.lru);
         q = ngx_queue_next(q))
    {
        cn = ngx_queue_data(q, ngx_http_engagement_counter_node_t, queue);

        if (cn->seq == 0 && ngx_http_engagement_cn_clean(cn)) {
            continue;
        }

        if (buf + NGX_HTTP_ENGAGEMENT_STATE_BUF - p
            < NGX_HTTP_ENGAGEMENT_STATE_LINE)
        {
            p = ngx_http_engagement_state_flush(fd, buf, p, &rc);
        }

        p = ngx_http_engagement_state_line(p, cn);

        if (cn->seq) {
            p = ngx_http_engagement_state_hashes(fd, buf, p, cn->uv_inflight,
                                                 cn->uv_inflight_n, &rc);
        }

        p = ngx_http_engagement_state_hashes(fd, buf, p, cn->uv, cn->uv_n,
                                             &rc);
        *p++ = '\n';
        n++;
    }

    p = ngx_http_engagement_state_flush(fd, buf, p, &rc);
    ngx_free(buf);

    if (rc == NGX_OK && n) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "engagement: saved %i unflushed entries of zone "
                      "\"%V\"", n, &z->name);
    }

    return rc;
}


static u_char *
ngx_http_engagement_state_token(u_char **pp, u_char *end, size_t *len)
{
    u_char  *p, *start;

    p = *pp;

    while (p < end && *p == ' ') {
        p++;
    }

    start = p;

    while (p < end && *p != ' ' && *p != '\n') {
        p++;
    }

    *len = p - start;
    *pp = p;

    return *len ? start : NULL;
}


static ngx_int_t
ngx_http_engagement_state_number(u_char **pp, u_char *end, uint64_t *v,
    ngx_uint_t hex)
{
    u_char  *t;
    size_t   len;
    off_t    n;

    t = ngx_http_engagement_state_token(pp, end, &len);
    if (t == NULL) {
        return NGX_ERROR;
    }

    if (hex) {
        if (len != 16) {
            return NGX_ERROR;
        }

        /* two halves: ngx_hextoi works on ngx_int_t */
        n = ngx_hextoi(t, 8);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }
        *v = (uint64_t) n << 32;
        n = ngx_hextoi(t + 8, 8);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }
        *v |= (uint64_t) n;
        return NGX_OK;
    }

    n = ngx_atoof(t, len);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *v = (uint64_t) n;
    return NGX_OK;
}


/*
 * A line's batch: "<seq>", or "<seq>:<stream>" with the stream in 16 hex
 * digits (no stream: a file of an earlier version).
 */

static ngx_int_t
ngx_http_engagement_state_batch(u_char **pp, u_char *end, uint64_t *seq,
    uint64_t *stream)
{
    u_char  *t, *colon, *p;
    size_t   len;
    off_t    n;

    t = ngx_http_engagement_state_token(pp, end, &len);
    if (t == NULL) {
        return NGX_ERROR;
    }

    *stream = 0;
    colon = ngx_strlchr(t, t + len, ':');

    if (colon) {
        p = colon + 1;

        if (ngx_http_engagement_state_number(&p, t + len, stream, 1)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        len = colon - t;
    }

    n = ngx_atoof(t, len);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *seq = (uint64_t) n;

    return NGX_OK;
}


/*
 * "zone <name> <seq> [<version>]": whether the lines after it are this
 * zone's, and whether they have bucket fields
 */

static ngx_uint_t
ngx_http_engagement_state_zone(ngx_http_engagement_zone_t *z, u_char *p,
    u_char *eol, ngx_uint_t *buckets)
{
    u_char                                *t;
    size_t                                 len;
    uint64_t                               seq, version;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;

    t = ngx_http_engagement_state_token(&p, eol, &len);

    if (t == NULL || len != z->name.len
        || ngx_strncmp(t, z->name.data, len) != 0)
    {
        return 0;
    }

    if (ngx_http_engagement_state_number(&p, eol, &seq, 0) == NGX_OK
        && seq > sh->seq)
    {
        sh->seq = seq;
    }

    *buckets = (ngx_http_engagement_state_number(&p, eol, &version, 0)
                == NGX_OK
                && version >= NGX_HTTP_ENGAGEMENT_STATE_VERSION);

    return 1;
}


/*
 * Reads a content's line whole, the viewer hashes included: a line that
 * is cut or malformed anywhere is skipped before anything is stored.
 * NGX_DECLINED: a line with nothing to restore (not written by a save;
 * as a clean entry in the flush queue it could be evicted from under it).
 */

static ngx_int_t
ngx_http_engagement_state_parse(u_char *p, u_char *eol,
    ngx_http_engagement_state_line_t *line, ngx_uint_t buckets)
{
    uint64_t    h;
    ngx_uint_t  i, n;

    line->id.data = ngx_http_engagement_state_token(&p, eol, &line->id.len);

    if (line->id.data == NULL
        || !ngx_http_engagement_id_valid(line->id.data, line->id.len))
    {
        return NGX_ERROR;
    }

    if (ngx_http_engagement_state_batch(&p, eol,
                                        &line->v[NGX_HTTP_ENGAGEMENT_STATE_SEQ],
                                        &line->stream)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = NGX_HTTP_ENGAGEMENT_STATE_SEQ + 1;
         i < NGX_HTTP_ENGAGEMENT_STATE_NUMBERS;
         i++)
    {
        if (!buckets && i == NGX_HTTP_ENGAGEMENT_STATE_FILING) {
            /* a line of an earlier version: no bucket fields */
            i = NGX_HTTP_ENGAGEMENT_STATE_UV_IN;
        }

        if (ngx_http_engagement_state_number(&p, eol, &line->v[i], 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (line->v[NGX_HTTP_ENGAGEMENT_STATE_UV_IN]
        > NGX_HTTP_ENGAGEMENT_STATE_UV_MAX
        || line->v[NGX_HTTP_ENGAGEMENT_STATE_UV]
           > NGX_HTTP_ENGAGEMENT_STATE_UV_MAX)
    {
        return NGX_ERROR;
    }

    line->hashes = p;
    line->eol = eol;

    n = line->v[NGX_HTTP_ENGAGEMENT_STATE_UV_IN]
        + line->v[NGX_HTTP_ENGAGEMENT_STATE_UV];

    for (i = 0; i < n; i++) {
        if (ngx_http_engagement_state_number(&p, eol, &h, 1) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (line->v[NGX_HTTP_ENGAGEMENT_STATE_SEQ] == 0
        && line->v[NGX_HTTP_ENGAGEMENT_STATE_VIEWS] == 0
        && line->v[NGX_HTTP_ENGAGEMENT_STATE_ENGAGED] == 0
        && line->v[NGX_HTTP_ENGAGEMENT_STATE_REPLAYS] == 0
        && line->v[NGX_HTTP_ENGAGEMENT_STATE_ACC] == 0
        && line->v[NGX_HTTP_ENGAGEMENT_STATE_ACC + 1] == 0
        && line->v[NGX_HTTP_ENGAGEMENT_STATE_ACC + 2] == 0
        && line->v[NGX_HTTP_ENGAGEMENT_STATE_UV] == 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Stores a checked line; called in the master at zone creation, with no
 * worker yet. The entry is queued before its viewer hashes are stored, so
 * a zone that runs out of room still flushes the counts it holds.
 * NGX_ERROR: the zone is full.
 */

static void
ngx_http_engagement_state_counts(ngx_http_engagement_counts_t *c,
    uint32_t *since, uint64_t *v)
{
    c->views = v[0];
    c->engaged = v[1];
    c->replays = v[2];
    *since = (uint32_t) v[3];
}


/* a restored entry's flush queue; the slow queue looks at it first */

static void
ngx_http_engagement_state_queue(ngx_http_engagement_counters_shctx_t *sh,
    ngx_http_engagement_counter_node_t *cn)
{
    if (cn->seq) {
        /* unowned: the first flush resends its round with its sequence */
        cn->claimed_by = 0;
        ngx_queue_insert_tail(&sh->inflight, &cn->flush);
        cn->where = NGX_HTTP_ENGAGEMENT_Q_INFLIGHT;
        sh->inflight_nodes++;
        return;
    }

    ngx_http_engagement_counters_queue(sh, cn);

    if (cn->where == NGX_HTTP_ENGAGEMENT_Q_NONE) {
        /* only viewer hashes, stored after this */
        ngx_queue_insert_tail(&sh->slow, &cn->flush);
        cn->where = NGX_HTTP_ENGAGEMENT_Q_SLOW;
        sh->slow_nodes++;
    }

    cn->slow_at = 1;
}


static ngx_int_t
ngx_http_engagement_state_apply(ngx_http_engagement_zone_t *z,
    ngx_http_engagement_counter_node_t *cn,
    ngx_http_engagement_state_line_t *line, ngx_uint_t buckets)
{
    u_char                                *p;
    uint64_t                              *v, h;
    ngx_int_t                              rc;
    ngx_uint_t                             i, n;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    v = line->v;

    cn->seq = v[NGX_HTTP_ENGAGEMENT_STATE_SEQ];
    cn->stream = line->stream;
    ngx_http_engagement_state_counts(&cn->inflight, &cn->inflight_since,
                                     &v[NGX_HTTP_ENGAGEMENT_STATE_IN_VIEWS]);
    ngx_http_engagement_state_counts(&cn->pending, &cn->pending_since,
                                     &v[NGX_HTTP_ENGAGEMENT_STATE_VIEWS]);
    ngx_http_engagement_state_counts(&cn->filing, &cn->filing_since,
                                     &v[NGX_HTTP_ENGAGEMENT_STATE_FILING]);
    ngx_http_engagement_state_counts(&cn->acc, &cn->acc_since,
                                     &v[NGX_HTTP_ENGAGEMENT_STATE_ACC]);

    if (cn->seq && !buckets) {
        /*
         * An earlier version's batch: it carried its minute's buckets,
         * and Redis marked it applied in the content's :fl hash
         */
        cn->filing = cn->inflight;
        cn->filing_since = cn->inflight_since;
        cn->legacy = 1;
    }

    ngx_http_engagement_state_queue(sh, cn);

    p = line->hashes;

    /* a batch in flight keeps at most the bound a flush command has */
    n = ngx_min(v[NGX_HTTP_ENGAGEMENT_STATE_UV_IN], NGX_HTTP_ENGAGEMENT_UV_MAX);

    if (n) {
        cn->uv_inflight = ngx_slab_alloc_locked(z->shpool,
                                                n * sizeof(uint64_t));
        if (cn->uv_inflight == NULL) {
            return NGX_ERROR;
        }
    }

    /* the hashes were checked by the parse: no error is left but room */

    for (i = 0; i < v[NGX_HTTP_ENGAGEMENT_STATE_UV_IN]; i++) {
        (void) ngx_http_engagement_state_number(&p, line->eol, &h, 1);

        if (i < n) {
            cn->uv_inflight[cn->uv_inflight_n++] = h;
        }
    }

    for (i = 0; i < v[NGX_HTTP_ENGAGEMENT_STATE_UV]; i++) {
        (void) ngx_http_engagement_state_number(&p, line->eol, &h, 1);

        rc = ngx_http_engagement_counters_uv_add(z, cn, h);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            /* a file of a version without the bound: the rest is left out */
            break;
        }
    }

    return NGX_OK;
}


/*
 * A content's line. NGX_OK: restored; NGX_DECLINED: skipped (malformed,
 * a second line for one content, or nothing to restore); NGX_ERROR: the
 * zone is full.
 */

static ngx_int_t
ngx_http_engagement_state_content(ngx_http_engagement_zone_t *z, u_char *p,
    u_char *eol, ngx_uint_t buckets, ngx_log_t *log)
{
    uint64_t                               h;
    ngx_int_t                              rc;
    ngx_http_engagement_counter_node_t    *cn;
    ngx_http_engagement_counters_shctx_t  *sh;
    ngx_http_engagement_state_line_t       line;

    sh = z->sh;

    ngx_memzero(&line, sizeof(ngx_http_engagement_state_line_t));

    rc = ngx_http_engagement_state_parse(p, eol, &line, buckets);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc == NGX_OK) {
        h = ngx_http_engagement_counters_hash(z, &line.id);

        if (ngx_http_engagement_counters_lookup(sh, &line.id, h) == NULL) {
            cn = ngx_http_engagement_counters_create(z, &line.id, h);

            if (cn == NULL
                || ngx_http_engagement_state_apply(z, cn, &line, buckets)
                   != NGX_OK)
            {
                ngx_log_error(NGX_LOG_ALERT, log, 0,
                              "engagement: zone \"%V\" is too small for its "
                              "state file; the rest is lost", &z->name);
                return NGX_ERROR;
            }

            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "engagement: invalid line in the state file of zone "
                  "\"%V\" skipped", &z->name);

    return NGX_DECLINED;
}


/* restores one zone's lines; called in the master at zone creation */

static ngx_int_t
ngx_http_engagement_state_restore(ngx_http_engagement_zone_t *z, u_char *p,
    u_char *end, ngx_log_t *log)
{
    u_char                                *t, *eol;
    size_t                                 len;
    ngx_int_t                              rc;
    ngx_uint_t                             n, mine, buckets;
    ngx_http_engagement_counters_shctx_t  *sh;

    sh = z->sh;
    mine = 0;
    buckets = 0;
    n = 0;

    for ( /* void */ ; p < end; p = eol + 1) {

        eol = ngx_strlchr(p, end, '\n');
        if (eol == NULL) {
            eol = end;
        }

        t = ngx_http_engagement_state_token(&p, eol, &len);

        if (t != NULL && len == 4 && ngx_strncmp(t, "zone", 4) == 0) {
            mine = ngx_http_engagement_state_zone(z, p, eol, &buckets);
            continue;
        }

        if (t == NULL || !mine || len != 1 || *t != 'c') {
            continue;
        }

        rc = ngx_http_engagement_state_content(z, p, eol, buckets, log);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            n++;
        }
    }

    sh->stats[0].restored += n;

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "engagement: restored %ui unflushed entries of zone "
                      "\"%V\" from the state file", n, &z->name);
    }

    return NGX_OK;
}


/* reads the state file into a new zone; called in the master */

void
ngx_http_engagement_state_load(ngx_http_engagement_zone_t *z,
    ngx_log_t *log)
{
    u_char           *buf;
    size_t            size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_file_info_t   fi;

    fd = ngx_open_file(z->state_file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_HTTP_ENGAGEMENT_STATE_FILE_MAX)
    {
        ngx_close_file(fd);
        return;
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_alloc(size + 1, log);

    if (buf) {
        n = ngx_read_fd(fd, buf, size);

        if (n == (ssize_t) size) {
            (void) ngx_http_engagement_state_restore(z, buf, buf + n, log);
        }

        ngx_free(buf);
    }

    ngx_close_file(fd);
}


/*
 * A state file found at start is renamed before any worker reads it, so
 * that a second start (or a reload) cannot restore the same counts twice.
 */

ngx_int_t
ngx_http_engagement_state_claim(ngx_cycle_t *cycle, ngx_str_t *state_file)
{
    u_char  *to;

    if (ngx_file_info(state_file->data, &(ngx_file_info_t) { 0 })
        == NGX_FILE_ERROR)
    {
        return NGX_OK;
    }

    to = ngx_pnalloc(cycle->pool, state_file->len + sizeof(".restored"));
    if (to == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_sprintf(to, "%V.restored%Z", state_file);

    if (ngx_rename_file(state_file->data, to) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "engagement: could not rename the state file \"%V\"; "
                      "it would be restored twice", state_file);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * At the master's exit, after the workers are gone: every counters zone's
 * unflushed deltas go to the state file (write, fsync, rename).
 */

void
ngx_http_engagement_state_write(ngx_cycle_t *cycle, ngx_array_t *zones,
    ngx_str_t *state_file)
{
    u_char                                *tmp;
    ngx_fd_t                               fd;
    ngx_uint_t                             i, any;
    ngx_http_engagement_zone_t           **zp;
    ngx_http_engagement_counters_shctx_t  *sh;

    zp = zones->elts;
    any = 0;

    for (i = 0; i < zones->nelts; i++) {
        if (zp[i]->dedupe || zp[i]->sh == NULL) {
            continue;
        }

        sh = zp[i]->sh;
        any |= (sh->pending_nodes || sh->inflight_nodes || sh->slow_nodes);
    }

    if (!any) {
        return;
    }

    tmp = ngx_alloc(state_file->len + sizeof(".tmp"), cycle->log);
    if (tmp == NULL) {
        return;
    }

    (void) ngx_sprintf(tmp, "%V.tmp%Z", state_file);

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "engagement: could not write the state file \"%s\": "
                      "unflushed counts are lost", tmp);
        ngx_free(tmp);
        return;
    }

    for (i = 0; i < zones->nelts; i++) {
        if (zp[i]->dedupe || zp[i]->sh == NULL) {
            continue;
        }

        if (ngx_http_engagement_state_save(cycle, zp[i], fd) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "engagement: could not write the state file "
                          "\"%s\"", tmp);
        }
    }

    if (fsync(fd) == -1
        || ngx_close_file(fd) == NGX_FILE_ERROR
        || ngx_rename_file(tmp, state_file->data) == NGX_FILE_ERROR)
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "engagement: could not save the state file \"%V\"",
                      state_file);
    }

    ngx_free(tmp);
}
