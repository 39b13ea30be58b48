
/*
 * http/: the endpoints. The view, summary, reaction, state, status and
 * health handlers, the helpers every answer goes through, and the
 * variables the access log can use.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_HTTP_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_HTTP_H_INCLUDED_


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"


/* the module's own symbols: called within the .so directly, not via the PLT */
#if (defined __GNUC__)
#pragma GCC visibility push(hidden)
#endif


/* a figure of the location's counters zone, by field or by its offset */
#define ngx_http_engagement_stat(elcf, field)                                 \
    ngx_http_engagement_inc(                                                  \
        ((ngx_http_engagement_counters_shctx_t *) (elcf)->counters->sh), field)

#define ngx_http_engagement_stat_at(elcf, offset)                             \
    (void) ngx_atomic_fetch_add((ngx_atomic_t *) ((u_char *)                  \
        ngx_http_engagement_slot((ngx_http_engagement_counters_shctx_t *)     \
                                 (elcf)->counters->sh) + (offset)), 1)

/* a figure offset that is counted nowhere */
#define NGX_HTTP_ENGAGEMENT_NO_STAT  ((size_t) -1)

#define ngx_http_engagement_stat_field(f)                                     \
    offsetof(ngx_http_engagement_stats_t, f)


/* the JSON bodies an endpoint can take */
#define NGX_HTTP_ENGAGEMENT_BODY_EVENT     0   /* a view event */
#define NGX_HTTP_ENGAGEMENT_BODY_REACTION  1   /* a like or reaction */
#define NGX_HTTP_ENGAGEMENT_BODY_HEARTBEAT 2   /* a heartbeat */
#define NGX_HTTP_ENGAGEMENT_BODY_INTERACTION 3 /* an interaction (click) */


/*
 * What an endpoint answers (a GET endpoint once the method is checked, a
 * view event once its body is in)
 */
typedef ngx_int_t (*ngx_http_engagement_read_pt)(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);


/*
 * An endpoint that takes a JSON body: the methods it accepts, what its
 * body is, and the figures its refusals count in
 * (NGX_HTTP_ENGAGEMENT_NO_STAT: none).
 */
typedef struct {
    size_t                            received;       /* every request */
    ngx_uint_t                        body;
    ngx_uint_t                        methods;
    const char                       *allow;          /* the Allow header */
    const char                       *method_message;
    ngx_http_client_body_handler_pt   handler;        /* the body is in */
    ngx_http_engagement_read_pt       process;        /* the body came with
                                                         the header (NULL:
                                                         read it always) */
    size_t                            bad_method;
    size_t                            bad_content_type;
    size_t                            too_large;      /* by Content-Length */
    size_t                            too_large_read; /* found when read */
    size_t                            invalid;
} ngx_http_engagement_body_spec_t;


/* response.c: dispatch, answers, body reading */
ngx_int_t ngx_http_engagement_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len);
ngx_int_t ngx_http_engagement_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
ngx_int_t ngx_http_engagement_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *message);
ngx_int_t ngx_http_engagement_send_error_detail(ngx_http_request_t *r,
    ngx_uint_t status, const char *error, const char *field,
    const char *message, u_char *detail, size_t detail_len);
ngx_int_t ngx_http_engagement_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *error, const char *message);
ngx_int_t ngx_http_engagement_uri_rest(ngx_http_request_t *r,
    ngx_str_t *rest);
ngx_int_t ngx_http_engagement_method_not_allowed(ngx_http_request_t *r,
    const char *allow, const char *message);
ngx_int_t ngx_http_engagement_read_only(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, const char *message,
    ngx_http_engagement_read_pt handler);
ngx_int_t ngx_http_engagement_retry_after(ngx_http_request_t *r,
    ngx_uint_t seconds);
ngx_int_t ngx_http_engagement_unavailable(ngx_http_request_t *r,
    const char *message);
ngx_int_t ngx_http_engagement_unavailable_writer(ngx_http_request_t *r,
    ngx_str_t *content_id);
ngx_int_t ngx_http_engagement_json_content_type(ngx_http_request_t *r);
u_char *ngx_http_engagement_json_escape(u_char *dst, u_char *end,
    u_char *src, size_t len);
u_char *ngx_http_engagement_reactions_json(u_char *p, uint64_t *counts,
    ngx_uint_t n);
ngx_int_t ngx_http_engagement_body_read(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    const ngx_http_engagement_body_spec_t *spec);
ngx_int_t ngx_http_engagement_body_parse(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf,
    const ngx_http_engagement_body_spec_t *spec, void *parsed);

/* view.c */
extern const ngx_http_engagement_body_spec_t  ngx_http_engagement_view_spec;

/* summary.c */
ngx_int_t ngx_http_engagement_summary_read(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);
/* a read of one content's totals from Redis into the zone, no one waits */
void ngx_http_engagement_refresh(ngx_http_engagement_zone_t *z,
    ngx_str_t *id, uint64_t hash);

/* reaction.c */
extern const ngx_http_engagement_body_spec_t
    ngx_http_engagement_reaction_spec;
ngx_int_t ngx_http_engagement_state_read(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf);

/*
 * record.c: a view or a reaction becomes the writer's plain record (the
 * viewer's id hashed with the rotating salt) and is reserved in the
 * writer; the same return values as ngx_http_engagement_writer_reserve.
 */
ngx_int_t ngx_http_engagement_record_view(ngx_http_request_t *r,
    ngx_http_engagement_event_t *ev, void **res);
ngx_int_t ngx_http_engagement_record_reaction(ngx_http_request_t *r,
    ngx_http_engagement_reaction_t *re, ngx_str_t *state, void **res);
ngx_int_t ngx_http_engagement_record_heartbeat(ngx_http_request_t *r,
    ngx_http_engagement_heartbeat_t *hb, void **res);
ngx_int_t ngx_http_engagement_record_interaction(ngx_http_request_t *r,
    ngx_http_engagement_interaction_t *it, void **res);

/*
 * dims.c: the event's dimensions (engagement_dimension*), resolved after
 * the body is parsed; interaction.c: interaction events (engagement_event,
 * engagement_interaction). Their figures in the status answer.
 */
char *ngx_http_engagement_dimension_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_dimension_limit_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_dims_merge(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *prev,
    ngx_http_engagement_loc_conf_t *conf);
ngx_int_t ngx_http_engagement_dims_resolve(ngx_http_request_t *r,
    ngx_http_engagement_loc_conf_t *elcf, ngx_http_engagement_event_t *ev,
    const char **field);
ngx_int_t ngx_http_engagement_dims_refuse(ngx_http_request_t *r,
    const char *field);
size_t ngx_http_engagement_dims_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_dims_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);
char *ngx_http_engagement_interaction_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_engagement_interaction_handler(ngx_http_request_t *r);
size_t ngx_http_engagement_interaction_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_interaction_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);

/* heartbeat.c and sse.c: heartbeats, live counts, the live stream */
ngx_int_t ngx_http_engagement_heartbeat_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_live_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_sse_start(ngx_http_request_t *r, ngx_str_t *id);
/*
 * A group of figures kept as atomics in a zone (live, resume), one row
 * each, for the status answer: Prometheus text
 * (nginx_engagement_<group>_<name>[{outcome="<label>"}]) or the JSON
 * object "<group>":{...}. A row without help continues the metric of the
 * row before (another label).
 */
typedef struct {
    const char                   *name;
    const char                   *json;
    const char                   *label;      /* outcome="...", or NULL */
    const char                   *type;
    const char                   *help;
    size_t                        offset;     /* in the group's atomics */
} ngx_http_engagement_stat_row_t;

size_t ngx_http_engagement_stat_rows_len(const char *group,
    ngx_http_engagement_stat_row_t *rows);
u_char *ngx_http_engagement_stat_rows(u_char *p, const char *group,
    ngx_http_engagement_stat_row_t *rows, void *base, ngx_uint_t json,
    size_t gauge, ngx_atomic_int_t gauge_value);

size_t ngx_http_engagement_live_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_live_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);

/* resume.c: resume positions and watch history */
ngx_int_t ngx_http_engagement_resume_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_history_handler(ngx_http_request_t *r);
size_t ngx_http_engagement_resume_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_resume_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);

/* analytics.c: time series and breakdowns read from Redis's buckets */
ngx_int_t ngx_http_engagement_analytics_handler(ngx_http_request_t *r);
char *ngx_http_engagement_analytics_check(ngx_conf_t *cf);

/* trending.c: the trending endpoint, the like path's feed, its figures */
ngx_int_t ngx_http_engagement_trending_handler(ngx_http_request_t *r);
void ngx_http_engagement_trending_reaction(u_char *id, size_t len,
    ngx_uint_t state_read, void *reply);
size_t ngx_http_engagement_trending_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_trending_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);

/* segments.c: views verified from the media nginx served */
char *ngx_http_engagement_segments_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_segments_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_engagement_segments_merge(ngx_conf_t *cf,
    ngx_http_engagement_loc_conf_t *prev,
    ngx_http_engagement_loc_conf_t *conf);
ngx_int_t ngx_http_engagement_segments_postconf(ngx_conf_t *cf);
size_t ngx_http_engagement_segments_status_len(
    ngx_http_engagement_main_conf_t *emcf);
u_char *ngx_http_engagement_segments_status(u_char *p,
    ngx_http_engagement_main_conf_t *emcf, ngx_uint_t json);

#define NGX_HTTP_ENGAGEMENT_SEGMENTS_COMMANDS                                 \
                                                                              \
    { ngx_string("engagement_segments"),                                      \
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,                                       \
      ngx_http_engagement_segments_directive,                                 \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      0,                                                                      \
      NULL },                                                                 \
                                                                              \
    { ngx_string("engagement_segments_zone"),                                 \
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,                                      \
      ngx_http_engagement_segments_zone_directive,                            \
      NGX_HTTP_MAIN_CONF_OFFSET,                                              \
      0,                                                                      \
      NULL },

/* status.c */
ngx_int_t ngx_http_engagement_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_engagement_health_handler(ngx_http_request_t *r);

/* variables.c: what the access log can say about a request */
ngx_int_t ngx_http_engagement_add_variables(ngx_conf_t *cf);
ngx_uint_t ngx_http_engagement_variables_used(ngx_conf_t *cf);
ngx_uint_t ngx_http_engagement_body_vars_used(ngx_conf_t *cf);
void ngx_http_engagement_ctx_outcome(ngx_http_request_t *r,
    const char *outcome, const char *reason, ngx_str_t *content_id);
void ngx_http_engagement_ctx_ids(ngx_http_request_t *r,
    ngx_str_t *content_id, ngx_str_t *viewer_id, ngx_str_t *session_id);


/* whether the configuration uses one of our variables */
#define ngx_http_engagement_vars_on(r)                                        \
    (((ngx_http_engagement_main_conf_t *)                                     \
      ngx_http_get_module_main_conf(r, ngx_http_engagement_module))          \
     ->vars_used)


/* the access log's values; no call when no variable of ours is used */

static ngx_inline void
ngx_http_engagement_set_outcome(ngx_http_request_t *r, const char *outcome,
    const char *reason, ngx_str_t *content_id)
{
    if (ngx_http_engagement_vars_on(r)) {
        ngx_http_engagement_ctx_outcome(r, outcome, reason, content_id);
    }
}


static ngx_inline void
ngx_http_engagement_set_ids(ngx_http_request_t *r, ngx_str_t *content_id,
    ngx_str_t *viewer_id, ngx_str_t *session_id)
{
    if (ngx_http_engagement_vars_on(r)) {
        ngx_http_engagement_ctx_ids(r, content_id, viewer_id, session_id);
    }
}


#if (defined __GNUC__)
#pragma GCC visibility pop
#endif


#endif /* _NGX_HTTP_ENGAGEMENT_HTTP_H_INCLUDED_ */
