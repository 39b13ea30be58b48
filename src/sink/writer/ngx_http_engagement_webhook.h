
/*
 * Creator milestones' webhook (webhook.c): the directive
 * engagement_milestone_webhook, its check after the http block, and a
 * worker's delivery of the outbox the milestone script fills in Redis.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_WEBHOOK_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_WEBHOOK_H_INCLUDED_


#include "ngx_http_engagement_module.h"


char *ngx_http_engagement_webhook_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_engagement_webhook_check(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf);
ngx_int_t ngx_http_engagement_webhook_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
void ngx_http_engagement_webhook_stop(void);
ngx_uint_t ngx_http_engagement_webhook_idle(void);


#endif /* _NGX_HTTP_ENGAGEMENT_WEBHOOK_H_INCLUDED_ */
