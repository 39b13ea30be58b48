
/*
 * libFuzzer target for the view event parser (src/ngx_http_engagement_event.c):
 * any byte string must either parse into an event whose fields obey the
 * documented rules, or be refused with a message; never crash or leak.
 * The parser is compiled as is; the two nginx core functions it calls are
 * provided here (an allocation list standing in for the request pool).
 */

#include "ngx_http_engagement_module.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>


static void   **allocs;
static size_t   nallocs, cap;


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    (void) pool;

    if (nallocs == cap) {
        cap = cap ? cap * 2 : 256;
        allocs = realloc(allocs, cap * sizeof(void *));
        if (allocs == NULL) {
            abort();
        }
    }

    p = malloc(size ? size : 1);
    allocs[nallocs++] = p;

    return p;
}


/* the parser only formats "%s ... %d ... %d", the same in nginx and libc */
u_char *
ngx_snprintf(u_char *buf, size_t max, const char *fmt, ...)
{
    int      n;
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf((char *) buf, max, fmt, args);
    va_end(args);

    if (n < 0) {
        n = 0;
    }

    return buf + ((size_t) n < max ? (size_t) n : max ? max - 1 : 0);
}


static void
check_id(ngx_str_t *s, int required)
{
    if (s->len == 0) {
        if (required) {
            abort();
        }
        return;
    }

    if (!ngx_http_engagement_id_valid(s->data, s->len)) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                        i;
    u_char                       *copy;
    ngx_int_t                     rc;
    ngx_http_engagement_event_t   ev;
    ngx_http_engagement_error_t   err;
    static int                    init;
    static ngx_pool_t            *pool = (ngx_pool_t *) 1;

    if (!init) {
        ngx_http_engagement_json_init();
        init = 1;
    }

    /* an exact-size copy, so reading past the end is caught */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);

    rc = ngx_http_engagement_event_parse(pool, copy, size, &ev, &err);

    if (rc == NGX_OK) {
        check_id(&ev.content_id, 1);
        check_id(&ev.session_id, 1);
        check_id(&ev.viewer_id, 0);
        check_id(&ev.request_id, 0);
        check_id(&ev.channel_id, 0);
        check_id(&ev.category, 0);
        check_id(&ev.source, 0);
        check_id(&ev.device, 0);

        if (ev.duration_ms < -1 || ev.duration_ms > 604800000LL) {
            abort();
        }

        if (ev.replay > 1 || ev.opt_out > 1 || ev.anonymous) {
            abort();
        }

        /* any string, checked later by the guard, but bounded here */
        if (ev.token.len > NGX_HTTP_ENGAGEMENT_TOKEN_LEN_MAX
            || (ev.token.len && ev.token.data == NULL))
        {
            abort();
        }

    } else if (err.message == NULL || err.detail_len > sizeof(err.detail)) {
        abort();
    }

    for (i = 0; i < nallocs; i++) {
        free(allocs[i]);
    }

    nallocs = 0;
    free(copy);

    return 0;
}
