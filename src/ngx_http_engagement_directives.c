
/*
 * The module's directive table: every directive, in the order the README
 * lists them by concern. Their handlers live with their concern (the
 * location and main configuration ones in ngx_http_engagement_module.c).
 */


#include "ngx_http_engagement_module.h"
#include "input/ngx_http_engagement_input.h"
#include "store/ngx_http_engagement_store.h"
#include "protect/ngx_http_engagement_protect.h"
#include "policy/ngx_http_engagement_policy.h"
#include "policy/ngx_http_engagement_global.h"
#include "sink/redis/ngx_http_engagement_redis.h"
#include "sink/writer/ngx_http_engagement_writer.h"
#include "sink/writer/ngx_http_engagement_webhook.h"
#include "http/ngx_http_engagement_http.h"
#include "store/ngx_http_engagement_live.h"
#include "store/ngx_http_engagement_resume.h"
#include "store/ngx_http_engagement_series.h"
#include "store/ngx_http_engagement_trend.h"


/* the longest list of an enum directive's choices, as its error says it */
#define NGX_HTTP_ENGAGEMENT_ENUM_TEXT  128


static ngx_conf_enum_t  ngx_http_engagement_dedupe_keys[] = {
    { ngx_string("viewer"), NGX_HTTP_ENGAGEMENT_KEY_VIEWER },
    { ngx_string("session"), NGX_HTTP_ENGAGEMENT_KEY_SESSION },
    { ngx_string("client"), NGX_HTTP_ENGAGEMENT_KEY_CLIENT },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_engagement_answers[] = {
    { ngx_string("full"), NGX_HTTP_ENGAGEMENT_ANSWER_FULL },
    { ngx_string("minimal"), NGX_HTTP_ENGAGEMENT_ANSWER_MINIMAL },
    { ngx_string("none"), NGX_HTTP_ENGAGEMENT_ANSWER_NONE },
    { ngx_null_string, 0 }
};


ngx_command_t  ngx_http_engagement_commands[] = {

    { ngx_string("engagement_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_dedupe_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      1,
      NULL },

    { ngx_string("engagement_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_reactions"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_reactions_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_flush_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, flush_interval),
      NULL },

    { ngx_string("engagement_flush_deadline"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, exit_deadline),
      NULL },

    { ngx_string("engagement_flush_batch"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, flush_batch),
      NULL },

    { ngx_string("engagement_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, cache_ttl),
      NULL },

    { ngx_string("engagement_health_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, health_grace),
      NULL },

    { ngx_string("engagement_dedupe_scope"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_global_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_edge_id"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, edge_id),
      NULL },

    { ngx_string("engagement_state_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_main_conf_t, state_file),
      NULL },

    { ngx_string("engagement_writer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_writer_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_engagement_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_dedupe_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_conf_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, dedupe_key),
      &ngx_http_engagement_dedupe_keys },

    { ngx_string("engagement_dedupe_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, dedupe_window),
      NULL },

    { ngx_string("engagement_view_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, view_after),
      NULL },

    { ngx_string("engagement_engaged_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, engaged_after),
      NULL },

    { ngx_string("engagement_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("engagement_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_limit_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_limit_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_ts_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_engagement_ts_window_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_batch_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, batch_max),
      NULL },

    { ngx_string("engagement_heartbeat_record"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, heartbeat_record),
      NULL },

    { ngx_string("engagement_answer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_conf_set_enum,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_engagement_loc_conf_t, answer),
      &ngx_http_engagement_answers },

    { ngx_string("engagement_live_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_live_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_heartbeat_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_live_msec_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_live_conf_t, interval),
      NULL },

    { ngx_string("engagement_live_push"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_live_msec_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_engagement_live_conf_t, push),
      NULL },

    { ngx_string("engagement_live_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_live_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_resume_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_resume_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_series_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_series_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_milestone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_engagement_milestone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_milestone_publish"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_engagement_milestone_publish,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_milestone_webhook"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_webhook_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_dimension"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_engagement_dimension_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_dimension_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_engagement_dimension_limit_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_trending_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_trend_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_trending_bucket"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_trend_bucket_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_trending_like_weight"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_trend_like_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_trending_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_engagement_trend_cache_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("engagement_interaction"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_engagement_interaction_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    NGX_HTTP_ENGAGEMENT_GUARD_COMMANDS
    NGX_HTTP_ENGAGEMENT_SEGMENTS_COMMANDS

      ngx_null_command
};
