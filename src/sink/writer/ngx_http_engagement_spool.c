
/*
 * The writer's spool: batches the upstream did not take, one file each in
 * the spool directory, named "<ms since the epoch>_<batch id>.ndjson" so
 * that a name sort is oldest first. A file is written as
 * ".tmp_<pid>_<name>", fsynced and renamed, so a half-written batch is
 * never replayed. A worker replaying a file claims it by renaming it to
 * "<name>.<pid>.sending" (only one rename can win); a failed replay
 * renames it back. The writer's pid in both names tells a file in work
 * from one a crash left: a new queue zone (a start, or a reload that
 * changed the zone) removes and renames back only those of dead
 * processes; the old workers of a reload finish theirs.
 */


#include "sink/writer/ngx_http_engagement_writer_int.h"


#define NGX_HTTP_ENGAGEMENT_SPOOL_SUFFIX   ".ndjson"
#define NGX_HTTP_ENGAGEMENT_SPOOL_SENDING  ".sending"
#define NGX_HTTP_ENGAGEMENT_SPOOL_TMP      ".tmp_"
/* a file name's "<13 digits of ms>_" before the batch id */
#define NGX_HTTP_ENGAGEMENT_SPOOL_MS_LEN   13
/* room a claimed name (".<pid>.sending") needs beside the directory */
#define NGX_HTTP_ENGAGEMENT_SPOOL_ROOM     (NGX_INT_T_LEN + 16)


static ngx_int_t ngx_http_engagement_spool_dir(
    ngx_http_engagement_writer_conf_t *wcf, ngx_log_t *log);
static off_t ngx_http_engagement_spool_take_stock(
    ngx_http_engagement_writer_conf_t *wcf, u_char *name, size_t len,
    ngx_log_t *log);
static ngx_pid_t ngx_http_engagement_spool_owner(u_char *name, size_t len,
    size_t *base, size_t *base_len);
static ngx_int_t ngx_http_engagement_spool_first(
    ngx_http_engagement_writer_conf_t *wcf, ngx_uint_t sending, u_char *best,
    size_t *best_len);
static void ngx_http_engagement_spool_sub(ngx_atomic_t *v,
    ngx_atomic_uint_t n);
static ngx_int_t ngx_http_engagement_spool_read(u_char *path, u_char **body,
    size_t *len, ngx_log_t *log);


static ngx_int_t
ngx_http_engagement_spool_is(u_char *name, size_t len, const char *suffix)
{
    size_t  n;

    n = ngx_strlen(suffix);

    return len > n + NGX_HTTP_ENGAGEMENT_SPOOL_MS_LEN + 1 && name[0] != '.'
           && ngx_strncmp(name + len - n, suffix, n) == 0;
}


/*
 * At start (a new queue zone): count what the spool holds, put back files
 * a crashed replay left claimed, and remove half-written ones.
 */

ngx_int_t
ngx_http_engagement_spool_init(ngx_http_engagement_writer_conf_t *wcf,
    ngx_log_t *log)
{
    off_t        size, bytes;
    ngx_dir_t    dir;
    ngx_uint_t   files;

    if (ngx_http_engagement_spool_dir(wcf, log) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_open_dir(&wcf->spool, &dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "engagement_writer: could not open the spool "
                      "directory \"%V\"", &wcf->spool);
        return NGX_ERROR;
    }

    files = 0;
    bytes = 0;

    while (ngx_read_dir(&dir) == NGX_OK) {
        size = ngx_http_engagement_spool_take_stock(wcf, ngx_de_name(&dir),
                                                    ngx_de_namelen(&dir),
                                                    log);
        if (size >= 0) {
            files++;
            bytes += size;
        }
    }

    ngx_close_dir(&dir);

    wcf->sh->spool_files = files;
    wcf->sh->spool_bytes = (ngx_atomic_uint_t) bytes;

    if (files) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "engagement_writer: %ui spooled batches (%O bytes) "
                      "in \"%V\" will be replayed", files, bytes,
                      &wcf->spool);
    }

    return NGX_OK;
}


/* the spool directory, made if need be and given to the workers' user */

static ngx_int_t
ngx_http_engagement_spool_dir(ngx_http_engagement_writer_conf_t *wcf,
    ngx_log_t *log)
{
    ngx_core_conf_t  *ccf;

    if (ngx_create_dir(wcf->spool.data, 0700) == NGX_FILE_ERROR
        && ngx_errno != NGX_EEXIST)
    {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "engagement_writer: could not create the spool "
                      "directory \"%V\"", &wcf->spool);
        return NGX_ERROR;
    }

    /* the workers write there: give it to their user, as nginx does */
    ccf = (ngx_core_conf_t *) ngx_get_conf(wcf->cycle->conf_ctx,
                                           ngx_core_module);

    if (geteuid() == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && chown((const char *) wcf->spool.data, ccf->user, ccf->group) == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "engagement_writer: chown(\"%V\") failed", &wcf->spool);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * One entry of the spool at start: a half-written file is removed, a
 * claimed one renamed back; the size of a batch to replay, or -1.
 */

static off_t
ngx_http_engagement_spool_take_stock(ngx_http_engagement_writer_conf_t *wcf,
    u_char *name, size_t len, ngx_log_t *log)
{
    u_char           from[NGX_MAX_PATH], to[NGX_MAX_PATH];
    size_t           base, base_len;
    ngx_pid_t        pid;
    ngx_file_info_t  fi;

    (void) ngx_sprintf(from, "%V/%*s%Z", &wcf->spool, len, name);

    pid = ngx_http_engagement_spool_owner(name, len, &base, &base_len);

    if (pid > 0 && ngx_http_engagement_writer_alive(pid)) {
        /* an old worker of a reload writes or replays it: its own work */
        return -1;
    }

    if (pid != NGX_INVALID_PID && name[0] == '.') {
        /* half-written by a process that is gone */
        (void) ngx_delete_file(from);
        return -1;
    }

    if (pid != NGX_INVALID_PID) {
        /* claimed by a replay that did not end */
        (void) ngx_sprintf(to, "%V/%*s%Z", &wcf->spool, base_len,
                           name + base);

        if (ngx_rename_file(from, to) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          "engagement_writer: could not rename \"%s\"",
                          from);
            return -1;
        }

        ngx_memcpy(from, to, ngx_strlen(to) + 1);

    } else if (!ngx_http_engagement_spool_is(name, len,
                                             NGX_HTTP_ENGAGEMENT_SPOOL_SUFFIX))
    {
        return -1;
    }

    if (ngx_file_info(from, &fi) == NGX_FILE_ERROR) {
        return -1;
    }

    return ngx_file_size(&fi);
}


/*
 * A name in work: ".tmp_<pid>_<name>" or "<name>[.<pid>].sending" (a
 * claim by an earlier version has no pid). Its writer's pid (0: not
 * known) and where its batch's name is in it; NGX_INVALID_PID for any
 * other name.
 */

static ngx_pid_t
ngx_http_engagement_spool_owner(u_char *name, size_t len, size_t *base,
    size_t *base_len)
{
    u_char     *p, *end;
    ngx_int_t   pid;

    if (len > sizeof(NGX_HTTP_ENGAGEMENT_SPOOL_TMP) - 1
        && ngx_strncmp(name, NGX_HTTP_ENGAGEMENT_SPOOL_TMP,
                       sizeof(NGX_HTTP_ENGAGEMENT_SPOOL_TMP) - 1) == 0)
    {
        p = name + sizeof(NGX_HTTP_ENGAGEMENT_SPOOL_TMP) - 1;
        end = ngx_strlchr(p, name + len, '_');

        if (end == NULL) {
            *base = 0;
            *base_len = 0;
            return 0;
        }

        pid = ngx_atoi(p, end - p);
        *base = end + 1 - name;
        *base_len = name + len - (end + 1);

        /* an earlier version's ".tmp_<ms>_...": no pid */
        return (pid > 0 && pid <= NGX_MAX_INT32_VALUE) ? (ngx_pid_t) pid : 0;
    }

    if (!ngx_http_engagement_spool_is(name, len,
                                      NGX_HTTP_ENGAGEMENT_SPOOL_SENDING))
    {
        return NGX_INVALID_PID;
    }

    *base = 0;
    *base_len = len - (sizeof(NGX_HTTP_ENGAGEMENT_SPOOL_SENDING) - 1);

    /* the pid between the batch's name and ".sending" */
    end = name + *base_len;

    for (p = end; p > name && p[-1] != '.'; p--) { /* void */ }

    pid = (p > name) ? ngx_atoi(p, end - p) : NGX_ERROR;

    if (pid <= 0 || pid > NGX_MAX_INT32_VALUE) {
        return 0;
    }

    *base_len = p - 1 - name;

    return (ngx_pid_t) pid;
}


/*
 * A batch goes to the spool in three steps, so that the middle one (the
 * only one that touches the disk) can run in a thread:
 *   prepare: the cap is checked and the batch's bytes counted at once, so
 *     that concurrent writes see them; the file names are made.
 *     NGX_DECLINED: the spool is at its cap (force: written anyway, at a
 *     stop, where the alternative is to lose the batch).
 *   store: write, fsync, rename, fsync of the directory. Only the paths,
 *     the body and the log: safe in a thread.
 *   commit: the file is counted, or the bytes given back.
 */

ngx_int_t
ngx_http_engagement_spool_prepare(ngx_http_engagement_writer_conf_t *wcf,
    u_char *id, size_t id_len, size_t len, ngx_uint_t force, u_char *tmp,
    u_char *path)
{
    ngx_time_t  *tp;

    if (!force
        && (off_t) (wcf->sh->spool_bytes + len) > wcf->spool_max)
    {
        return NGX_DECLINED;
    }

    (void) ngx_atomic_fetch_add(&wcf->sh->spool_bytes, len);

    tp = ngx_timeofday();

    (void) ngx_sprintf(path, "%V/"
                       "%0" ngx_value(NGX_HTTP_ENGAGEMENT_SPOOL_MS_LEN) "M_%*s"
                       NGX_HTTP_ENGAGEMENT_SPOOL_SUFFIX "%Z", &wcf->spool,
                       (ngx_msec_t) tp->sec * 1000 + tp->msec, id_len, id);
    (void) ngx_sprintf(tmp, "%V/" NGX_HTTP_ENGAGEMENT_SPOOL_TMP "%P_%s%Z",
                       &wcf->spool, ngx_pid, path + wcf->spool.len + 1);

    return NGX_OK;
}


ngx_int_t
ngx_http_engagement_spool_store(u_char *tmp, u_char *path, u_char *dir,
    u_char *body, size_t len, ngx_log_t *log)
{
    ssize_t   n;
    ngx_fd_t  fd;

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "engagement_writer: could not create \"%s\"", tmp);
        return NGX_ERROR;
    }

    n = ngx_write_fd(fd, body, len);

    if (n != (ssize_t) len || fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "engagement_writer: could not write \"%s\"", tmp);
        ngx_close_file(fd);
        (void) ngx_delete_file(tmp);
        return NGX_ERROR;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR
        || ngx_rename_file(tmp, path) == NGX_FILE_ERROR)
    {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "engagement_writer: could not rename \"%s\"", tmp);
        (void) ngx_delete_file(tmp);
        return NGX_ERROR;
    }

    /* the directory entry too: a batch must survive a power cut */
    fd = ngx_open_file(dir, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd != NGX_INVALID_FILE) {
        (void) fsync(fd);
        ngx_close_file(fd);
    }

    return NGX_OK;
}


void
ngx_http_engagement_spool_commit(ngx_http_engagement_writer_conf_t *wcf,
    size_t len, ngx_int_t rc)
{
    if (rc == NGX_OK) {
        (void) ngx_atomic_fetch_add(&wcf->sh->spool_files, 1);

    } else {
        ngx_http_engagement_spool_sub(&wcf->sh->spool_bytes, len);
    }
}


/*
 * Claims the oldest spooled batch: NGX_OK with its claimed path, batch id
 * and contents (ngx_alloc'ed), NGX_DONE when there is none to claim now.
 */

ngx_int_t
ngx_http_engagement_spool_claim(ngx_http_engagement_writer_conf_t *wcf,
    u_char *path, u_char *id, size_t *id_len, u_char **body, size_t *len,
    ngx_log_t *log)
{
    u_char  best[NGX_MAX_PATH], from[NGX_MAX_PATH], *p;
    size_t  n, best_len;

    if (ngx_http_engagement_spool_first(wcf, 0, best, &best_len) != NGX_OK) {
        return NGX_DONE;
    }

    (void) ngx_sprintf(from, "%V/%*s%Z", &wcf->spool, best_len, best);
    (void) ngx_sprintf(path, "%V/%*s.%P" NGX_HTTP_ENGAGEMENT_SPOOL_SENDING
                       "%Z", &wcf->spool, best_len, best, ngx_pid);

    if (ngx_rename_file(from, path) == NGX_FILE_ERROR) {
        /* another worker has claimed it */
        return NGX_DONE;
    }

    /* the id: between the first '_' and the suffix */
    p = ngx_strlchr(best, best + best_len, '_');
    if (p == NULL) {
        p = best;
    }

    n = best + best_len - sizeof(NGX_HTTP_ENGAGEMENT_SPOOL_SUFFIX) + 1
        - (p + 1);
    n = ngx_min(n, NGX_HTTP_ENGAGEMENT_BATCH_ID_LEN);
    ngx_memcpy(id, p + 1, n);
    *id_len = n;

    if (ngx_http_engagement_spool_read(path, body, len, log) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "engagement_writer: could not read \"%s\"", path);
        ngx_http_engagement_spool_release(path, log);
        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * The batch file whose name sorts first, which is the oldest: NGX_OK with
 * its name in best, NGX_DECLINED when there is none. sending: files a
 * replay has claimed count too.
 */

static ngx_int_t
ngx_http_engagement_spool_first(ngx_http_engagement_writer_conf_t *wcf,
    ngx_uint_t sending, u_char *best, size_t *best_len)
{
    u_char     *name;
    size_t      n;
    ngx_dir_t   dir;

    if (ngx_open_dir(&wcf->spool, &dir) == NGX_ERROR) {
        return NGX_DECLINED;
    }

    *best_len = 0;

    while (ngx_read_dir(&dir) == NGX_OK) {
        name = ngx_de_name(&dir);
        n = ngx_de_namelen(&dir);

        if (n >= NGX_MAX_PATH - wcf->spool.len - NGX_HTTP_ENGAGEMENT_SPOOL_ROOM
            || !(ngx_http_engagement_spool_is(name, n,
                                          NGX_HTTP_ENGAGEMENT_SPOOL_SUFFIX)
                 || (sending
                     && ngx_http_engagement_spool_is(name, n,
                                          NGX_HTTP_ENGAGEMENT_SPOOL_SENDING))))
        {
            continue;
        }

        if (*best_len == 0 || ngx_memn2cmp(name, best, n, *best_len) < 0) {
            ngx_memcpy(best, name, n);
            *best_len = n;
        }
    }

    ngx_close_dir(&dir);

    return *best_len ? NGX_OK : NGX_DECLINED;
}


/* a claimed file's contents into memory of its own */

static ngx_int_t
ngx_http_engagement_spool_read(u_char *path, u_char **body, size_t *len,
    ngx_log_t *log)
{
    ssize_t          got;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    *len = (size_t) ngx_file_size(&fi);

    *body = ngx_alloc(*len + 1, log);
    if (*body == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    got = ngx_read_fd(fd, *body, *len);
    ngx_close_file(fd);

    if (got != (ssize_t) *len) {
        ngx_free(*body);
        *body = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_engagement_spool_done(ngx_http_engagement_writer_conf_t *wcf,
    u_char *path, size_t len, ngx_log_t *log)
{
    if (ngx_delete_file(path) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "engagement_writer: could not delete \"%s\"; it "
                      "will be sent again", path);
        return;
    }

    /* a file of a reload's old workers was not counted: never below 0 */
    ngx_http_engagement_spool_sub(&wcf->sh->spool_bytes, len);
    ngx_http_engagement_spool_sub(&wcf->sh->spool_files, 1);
}


static void
ngx_http_engagement_spool_sub(ngx_atomic_t *v, ngx_atomic_uint_t n)
{
    ngx_atomic_uint_t  old;

    do {
        old = *v;
    } while (!ngx_atomic_cmp_set(v, old, old > n ? old - n : 0));
}


/* a claimed file that could not be sent goes back under its old name */

void
ngx_http_engagement_spool_release(u_char *path, ngx_log_t *log)
{
    u_char  to[NGX_MAX_PATH];
    size_t  len;

    /* "<name>.<pid>.sending" back to "<name>" */
    len = ngx_strlen(path) - (sizeof(NGX_HTTP_ENGAGEMENT_SPOOL_SENDING) - 1);

    while (len && path[len - 1] != '.') {
        len--;
    }

    (void) ngx_sprintf(to, "%*s%Z", len ? len - 1 : 0, path);

    if (ngx_rename_file(path, to) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "engagement_writer: could not rename \"%s\" back; "
                      "the next start replays it", path);
    }
}


/* the time the oldest spooled batch was written, 0: none */

time_t
ngx_http_engagement_spool_oldest(ngx_http_engagement_writer_conf_t *wcf)
{
    u_char     best[NGX_MAX_PATH];
    size_t     best_len;
    ngx_int_t  ms;

    if (wcf->sh->spool_files == 0
        || ngx_http_engagement_spool_first(wcf, 1, best, &best_len) != NGX_OK)
    {
        return 0;
    }

    /* the name starts with the milliseconds it was written at */
    ms = ngx_atoi(best, NGX_HTTP_ENGAGEMENT_SPOOL_MS_LEN);

    return ms == NGX_ERROR ? 0 : (time_t) (ms / 1000);
}
