
/*
 * The built-in list of user agents that are not people watching: search
 * and social crawlers, SEO and AI crawlers, headless and automated
 * browsers, and HTTP libraries of scripting languages. Matching is by
 * case-insensitive substring. The list is indexed by first byte once, at
 * configuration time, so a request costs one pass over its User-Agent.
 *
 * Not in the list, on purpose: curl (operators' own smoke tests and
 * health checks use it, and so does the quick start; add it with
 * "engagement_bot" and a map if wanted), mobile HTTP stacks such as
 * okhttp, CFNetwork and Dalvik (native players use them), and requests
 * without a User-Agent (many embedded players send none).
 */


#include "protect/ngx_http_engagement_protect.h"


static ngx_str_t  ngx_http_engagement_bot_names[] = {

    /* search engines */
    ngx_string("googlebot"),
    ngx_string("google-inspectiontool"),
    ngx_string("adsbot-google"),
    ngx_string("mediapartners-google"),
    ngx_string("bingbot"),
    ngx_string("bingpreview"),
    ngx_string("slurp"),
    ngx_string("duckduckbot"),
    ngx_string("baiduspider"),
    ngx_string("yandexbot"),
    ngx_string("yandex.com/bots"),
    ngx_string("sogou"),
    ngx_string("exabot"),
    ngx_string("seznambot"),
    ngx_string("applebot"),
    ngx_string("petalbot"),

    /* link previews and social */
    ngx_string("facebookexternalhit"),
    ngx_string("facebot"),
    ngx_string("twitterbot"),
    ngx_string("linkedinbot"),
    ngx_string("slackbot"),
    ngx_string("discordbot"),
    ngx_string("telegrambot"),
    ngx_string("pinterestbot"),
    ngx_string("redditbot"),
    ngx_string("embedly"),

    /* SEO, archives, AI */
    ngx_string("ahrefsbot"),
    ngx_string("semrushbot"),
    ngx_string("mj12bot"),
    ngx_string("dotbot"),
    ngx_string("rogerbot"),
    ngx_string("bytespider"),
    ngx_string("gptbot"),
    ngx_string("chatgpt-user"),
    ngx_string("ccbot"),
    ngx_string("claudebot"),
    ngx_string("anthropic-ai"),
    ngx_string("amazonbot"),
    ngx_string("ia_archiver"),
    ngx_string("archive.org_bot"),

    /* headless and automated browsers, monitors */
    ngx_string("headless"),         /* HeadlessChrome, Headless... */
    ngx_string("phantomjs"),
    ngx_string("puppeteer"),
    ngx_string("playwright"),
    ngx_string("selenium"),
    ngx_string("webdriver"),
    ngx_string("slimerjs"),
    ngx_string("chrome-lighthouse"),
    ngx_string("pingdom"),
    ngx_string("uptimerobot"),

    /* scripting HTTP libraries and fetchers */
    ngx_string("python-requests"),
    ngx_string("python-urllib"),
    ngx_string("python-httpx"),
    ngx_string("aiohttp"),
    ngx_string("scrapy"),
    ngx_string("go-http-client"),
    ngx_string("libwww-perl"),
    ngx_string("wget"),
    ngx_string("httpclient"),
    ngx_string("node-fetch"),
    ngx_string("axios/"),

    /* generic words crawlers put in their names */
    ngx_string("crawler"),
    ngx_string("spider")
};


#define NGX_HTTP_ENGAGEMENT_BOTS                                              \
    (sizeof(ngx_http_engagement_bot_names) / sizeof(ngx_str_t))


/* for each lower-case first byte, the bit set of names starting with it */
static uint64_t  ngx_http_engagement_bot_first[256];

/* a name's index is its bit in a uint64_t */
_Static_assert(NGX_HTTP_ENGAGEMENT_BOTS <= 8 * sizeof(uint64_t),
               "too many built-in bot names");


ngx_int_t
ngx_http_engagement_bot_init(ngx_conf_t *cf)
{
    ngx_uint_t   i;
    ngx_str_t   *s;

    ngx_memzero(ngx_http_engagement_bot_first,
                sizeof(ngx_http_engagement_bot_first));

    for (i = 0; i < NGX_HTTP_ENGAGEMENT_BOTS; i++) {
        s = &ngx_http_engagement_bot_names[i];
        ngx_http_engagement_bot_first[s->data[0]] |= (uint64_t) 1 << i;
    }

    return NGX_OK;
}


/* 1: the user agent names a bot of the built-in list */

ngx_int_t
ngx_http_engagement_bot_agent(u_char *ua, size_t len)
{
    size_t       i, j;
    u_char       c;
    uint64_t     set;
    ngx_uint_t   k;
    ngx_str_t   *s;

    for (i = 0; i < len; i++) {

        c = ngx_tolower(ua[i]);
        set = ngx_http_engagement_bot_first[c];

        while (set) {
            k = __builtin_ctzll(set);
            set &= set - 1;

            s = &ngx_http_engagement_bot_names[k];

            if (s->len > len - i) {
                continue;
            }

            for (j = 1; j < s->len; j++) {
                if (ngx_tolower(ua[i + j]) != s->data[j]) {
                    break;
                }
            }

            if (j == s->len) {
                return 1;
            }
        }
    }

    return 0;
}
