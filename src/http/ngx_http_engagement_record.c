
/*
 * The request side of the durable writer: a view, a reaction or an
 * interaction becomes the writer's plain event record
 * (sink/writer/ngx_http_engagement_writer.h) and is reserved in its queue. The request's method and configuration
 * are read here, and the viewer's (a like's user's) id is hashed here with
 * the identity salt, so that the writer never sees a request nor takes
 * the salt zone's lock.
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "sink/writer/ngx_http_engagement_writer.h"


static void ngx_http_engagement_record_init(
    ngx_http_engagement_record_t *rec);
static void ngx_http_engagement_record_viewer(ngx_http_request_t *r,
    ngx_str_t *id, ngx_http_engagement_record_t *rec);


static ngx_str_t  ngx_http_engagement_record_empty = ngx_string("");


ngx_int_t
ngx_http_engagement_record_view(ngx_http_request_t *r,
    ngx_http_engagement_event_t *ev, void **res)
{
    ngx_http_engagement_record_t  rec;

    *res = NULL;

    if (!ngx_http_engagement_writer_enabled()) {
        return NGX_DECLINED;
    }

    ngx_http_engagement_record_init(&rec);

    rec.type = NGX_HTTP_ENGAGEMENT_RECORD_VIEW;
    rec.event_id = ev->request_id;
    rec.content_id = ev->content_id;
    rec.session_id = ev->session_id;
    rec.device = ev->device;
    rec.source = ev->source;
    rec.channel_id = ev->channel_id;
    rec.category = ev->category;
    rec.country = ev->country;

    /* the client's time when it sent one (milliseconds), else now */
    if (ev->ts >= 0) {
        rec.ts = (time_t) (ev->ts / 1000);
    }

    rec.duration_ms = ev->duration_ms > 0 ? ev->duration_ms : 0;

    ngx_http_engagement_record_viewer(r, &ev->viewer_id, &rec);

    return ngx_http_engagement_writer_reserve(&rec, r->connection->log, res);
}


/* an interaction (a click): its name and position, its dimensions */

ngx_int_t
ngx_http_engagement_record_interaction(ngx_http_request_t *r,
    ngx_http_engagement_interaction_t *it, void **res)
{
    ngx_http_engagement_record_t   rec;
    ngx_http_engagement_event_t   *ev;

    *res = NULL;

    if (!ngx_http_engagement_writer_enabled()) {
        return NGX_DECLINED;
    }

    ev = &it->ev;

    ngx_http_engagement_record_init(&rec);

    rec.type = NGX_HTTP_ENGAGEMENT_RECORD_CLICK;
    rec.event_id = ev->request_id;
    rec.content_id = ev->content_id;
    rec.session_id = ev->session_id;
    rec.device = ev->device;
    rec.source = ev->source;
    rec.channel_id = ev->channel_id;
    rec.category = ev->category;
    rec.country = ev->country;
    rec.name = it->name;
    rec.position_ms = it->position_ms;

    if (ev->ts >= 0) {
        rec.ts = (time_t) (ev->ts / 1000);
    }

    ngx_http_engagement_record_viewer(r, &ev->viewer_id, &rec);

    return ngx_http_engagement_writer_reserve(&rec, r->connection->log, res);
}


/* a heartbeat: the player's state (in "name"), position and duration */

ngx_int_t
ngx_http_engagement_record_heartbeat(ngx_http_request_t *r,
    ngx_http_engagement_heartbeat_t *hb, void **res)
{
    ngx_http_engagement_record_t  rec;

    static ngx_str_t  states[] = {
        ngx_string("playing"), ngx_string("paused"),
        ngx_string("buffering"), ngx_string("ended")
    };

    *res = NULL;

    if (!ngx_http_engagement_writer_enabled()) {
        return NGX_DECLINED;
    }

    ngx_http_engagement_record_init(&rec);

    rec.type = NGX_HTTP_ENGAGEMENT_RECORD_HEARTBEAT;
    rec.event_id = hb->ev.request_id;
    rec.content_id = hb->ev.content_id;
    rec.session_id = hb->ev.session_id;
    rec.name = states[hb->state < 4 ? hb->state : 0];
    rec.position_ms = hb->position_ms;
    rec.duration_ms = hb->duration_ms > 0 ? hb->duration_ms : 0;

    if (!hb->ev.anonymous) {
        /* an opted-out viewer's id goes nowhere, as a view's */
        ngx_http_engagement_record_viewer(r, &hb->ev.viewer_id, &rec);
    }

    return ngx_http_engagement_writer_reserve(&rec, r->connection->log, res);
}


/* a like (no reaction named), a reaction change, or an unlike (DELETE) */

ngx_int_t
ngx_http_engagement_record_reaction(ngx_http_request_t *r,
    ngx_http_engagement_reaction_t *re, ngx_str_t *state, void **res)
{
    ngx_http_engagement_record_t  rec;

    *res = NULL;

    if (!ngx_http_engagement_writer_enabled()) {
        return NGX_DECLINED;
    }

    ngx_http_engagement_record_init(&rec);

    if (r->method == NGX_HTTP_DELETE) {
        rec.type = NGX_HTTP_ENGAGEMENT_RECORD_UNLIKE;

    } else if (re->reaction.len) {
        rec.type = NGX_HTTP_ENGAGEMENT_RECORD_REACT;

    } else {
        rec.type = NGX_HTTP_ENGAGEMENT_RECORD_LIKE;
    }

    rec.event_id = re->request_id;
    rec.content_id = re->content_id;

    if (state->len) {
        rec.reaction = *state;
    }

    ngx_http_engagement_record_viewer(r, &re->user_id, &rec);

    return ngx_http_engagement_writer_reserve(&rec, r->connection->log, res);
}


/* a record of nothing, received now */

static void
ngx_http_engagement_record_init(ngx_http_engagement_record_t *rec)
{
    ngx_str_t  *e;

    e = &ngx_http_engagement_record_empty;

    rec->type = NGX_HTTP_ENGAGEMENT_RECORD_VIEW;
    rec->event_id = *e;
    rec->content_id = *e;
    rec->session_id = *e;
    rec->has_viewer = 0;
    rec->viewer = 0;
    rec->received = ngx_time();
    rec->ts = rec->received;
    rec->duration_ms = 0;
    rec->country = *e;
    rec->device = *e;
    rec->source = *e;
    rec->channel_id = *e;
    rec->category = *e;
    rec->reaction = *e;
    rec->name = *e;
    rec->position_ms = -1;
}


/*
 * The viewer (a like's user) as a hash with the identity salt, the one
 * dedupe uses: it rotates every engagement_salt_rotate, so rows of one
 * viewer link up within a salt period and one edge, never longer.
 * Without a salt zone the line says only that there was a viewer.
 */

static void
ngx_http_engagement_record_viewer(ngx_http_request_t *r, ngx_str_t *id,
    ngx_http_engagement_record_t *rec)
{
    ngx_http_engagement_salt_t       salt;
    ngx_http_engagement_loc_conf_t  *elcf;

    if (id->len == 0) {
        return;
    }

    rec->has_viewer = 1;

    elcf = ngx_http_get_module_loc_conf(r, ngx_http_engagement_module);

    if (elcf->guard.salt_zone) {
        ngx_http_engagement_salt_get(&elcf->guard, elcf->dedupe_window,
                                     &salt);
        rec->viewer = ngx_http_engagement_siphash(salt.cur, id->data,
                                                  id->len);
    }
}
