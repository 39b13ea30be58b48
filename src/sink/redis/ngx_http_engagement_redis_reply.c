
/*
 * Replies of the Redis scripts as the rest of the module needs them: the
 * totals answered by the flush and the read scripts, read by the flush
 * (to confirm deltas) and by the summary endpoint (to cache totals).
 */


#include "sink/redis/ngx_http_engagement_redis.h"


/* applied, views, engaged, replays, unique viewers */
#define NGX_HTTP_ENGAGEMENT_REPLY_TOTALS  5


/*
 * The answer of the flush and read scripts: applied, views, engaged,
 * replays, unique viewers, then one count per reaction type.
 */

ngx_int_t
ngx_http_engagement_reply_totals(redisReply *reply,
    ngx_http_engagement_counts_t *totals, uint64_t *uniques,
    ngx_int_t *applied, uint64_t *reactions, ngx_uint_t nreactions)
{
    ngx_uint_t   i;
    long long    v[NGX_HTTP_ENGAGEMENT_REPLY_TOTALS], r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != NGX_HTTP_ENGAGEMENT_REPLY_TOTALS + nreactions)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_REPLY_TOTALS; i++) {
        v[i] = reply->element[i]->integer;

        if (v[i] < 0) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < nreactions; i++) {
        r = reply->element[NGX_HTTP_ENGAGEMENT_REPLY_TOTALS + i]->integer;

        /* a count driven below zero by hand reads as zero */
        reactions[i] = (r > 0) ? (uint64_t) r : 0;
    }

    *applied = (ngx_int_t) v[0];
    totals->views = v[1];
    totals->engaged = v[2];
    totals->replays = v[3];
    *uniques = v[4];

    return NGX_OK;
}
