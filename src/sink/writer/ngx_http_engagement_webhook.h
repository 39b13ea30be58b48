
/*
 * Creator milestones' webhook: the directive engagement_milestone_webhook
 * and its check after the http block (webhook_conf.c), and a worker's
 * delivery of the outbox the milestone script fills in Redis (webhook.c).
 */


#ifndef _NGX_HTTP_ENGAGEMENT_WEBHOOK_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_WEBHOOK_H_INCLUDED_


#include "ngx_http_engagement_module.h"


/* engagement_milestone_webhook (webhook_conf.c) */
typedef struct {
    ngx_str_t                     url;
    ngx_addr_t                    addr;
    ngx_str_t                     host;        /* the Host header */
    ngx_str_t                     uri;
    ngx_msec_t                    timeout;
    ngx_msec_t                    connect_timeout;
    ngx_uint_t                    rate;        /* a channel's a minute */
    ngx_uint_t                    batch;       /* claimed at once */
} ngx_http_engagement_webhook_conf_t;


char *ngx_http_engagement_webhook_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_engagement_webhook_check(ngx_conf_t *cf,
    ngx_http_engagement_main_conf_t *emcf);
ngx_int_t ngx_http_engagement_webhook_start(ngx_cycle_t *cycle,
    ngx_http_engagement_main_conf_t *emcf);
void ngx_http_engagement_webhook_stop(void);
ngx_uint_t ngx_http_engagement_webhook_idle(void);


#endif /* _NGX_HTTP_ENGAGEMENT_WEBHOOK_H_INCLUDED_ */
