
/*
 * The dimensions of an event that are closed sets or a fixed form: the
 * device class (given by the client, or read from its User-Agent), the
 * traffic source, and the country's form. Pure functions of their input:
 * the configuration's values, the category's bound and the request are
 * http/ngx_http_engagement_dims.c's.
 *
 * The User-Agent classifier looks for a few substrings, case-insensitively,
 * in the first NGX_HTTP_ENGAGEMENT_UA_SCAN bytes, in this order (the first
 * rule that matches wins):
 *
 *   console  playstation, xbox, nintendo
 *   tv       smart-tv, smarttv, hbbtv, appletv, googletv, android tv,
 *            crkey (Chromecast), roku, bravia, web0s, netcast, aftb, aftm,
 *            afts, aftt (Fire TV), tizen ... tv
 *   tablet   ipad, tablet, kindle, silk/, playbook; android without mobile
 *   mobile   iphone, ipod, android, mobile, windows phone, blackberry,
 *            opera mini, iemobile
 *   desktop  windows nt, macintosh, x11, cros, linux
 *   other    anything else, an empty or missing User-Agent included
 *
 * Consoles come first because their browsers also say "Windows NT" (Xbox)
 * or "Mobile"; TVs before tablets and phones because Android TV and Fire
 * TV say "Android". An iPad that asks for desktop sites (iPadOS 13+ Safari
 * sends a Macintosh User-Agent) is a desktop: a client that knows better
 * sends "device" in the body. Bots are not a device class: the guard
 * refuses them before any of this.
 */


#include "input/ngx_http_engagement_input.h"


/* by ngx_http_engagement_device_e */
const ngx_str_t  ngx_http_engagement_devices[] = {
    ngx_string("mobile"),
    ngx_string("tablet"),
    ngx_string("desktop"),
    ngx_string("tv"),
    ngx_string("console"),
    ngx_string("other")
};


/* where a view came from in the product; "other" for the rest */
const ngx_str_t  ngx_http_engagement_sources[] = {
    ngx_string("feed"),
    ngx_string("home"),
    ngx_string("search"),
    ngx_string("profile"),
    ngx_string("notification"),
    ngx_string("external"),
    ngx_string("direct"),
    ngx_string("embed"),
    ngx_string("related"),
    ngx_string("other"),
    ngx_null_string
};


typedef struct {
    const char                    *needle;     /* lower case */
    size_t                         len;
    ngx_http_engagement_device_e   device;
} ngx_http_engagement_ua_rule_t;


#define ngx_http_engagement_ua_rule(s, d)                                     \
    { s, sizeof(s) - 1, NGX_HTTP_ENGAGEMENT_DEVICE_ ## d }


static const ngx_http_engagement_ua_rule_t  ngx_http_engagement_ua_rules[] = {
    ngx_http_engagement_ua_rule("playstation", CONSOLE),
    ngx_http_engagement_ua_rule("xbox", CONSOLE),
    ngx_http_engagement_ua_rule("nintendo", CONSOLE),

    ngx_http_engagement_ua_rule("smart-tv", TV),
    ngx_http_engagement_ua_rule("smarttv", TV),
    ngx_http_engagement_ua_rule("hbbtv", TV),
    ngx_http_engagement_ua_rule("appletv", TV),
    ngx_http_engagement_ua_rule("googletv", TV),
    ngx_http_engagement_ua_rule("android tv", TV),
    ngx_http_engagement_ua_rule("crkey", TV),
    ngx_http_engagement_ua_rule("roku", TV),
    ngx_http_engagement_ua_rule("bravia", TV),
    ngx_http_engagement_ua_rule("web0s", TV),
    ngx_http_engagement_ua_rule("netcast", TV),
    ngx_http_engagement_ua_rule("aftb", TV),
    ngx_http_engagement_ua_rule("aftm", TV),
    ngx_http_engagement_ua_rule("afts", TV),
    ngx_http_engagement_ua_rule("aftt", TV),

    ngx_http_engagement_ua_rule("ipad", TABLET),
    ngx_http_engagement_ua_rule("tablet", TABLET),
    ngx_http_engagement_ua_rule("kindle", TABLET),
    ngx_http_engagement_ua_rule("silk/", TABLET),
    ngx_http_engagement_ua_rule("playbook", TABLET),

    ngx_http_engagement_ua_rule("iphone", MOBILE),
    ngx_http_engagement_ua_rule("ipod", MOBILE),
    ngx_http_engagement_ua_rule("windows phone", MOBILE),
    ngx_http_engagement_ua_rule("blackberry", MOBILE),
    ngx_http_engagement_ua_rule("opera mini", MOBILE),
    ngx_http_engagement_ua_rule("iemobile", MOBILE),

    { NULL, 0, NGX_HTTP_ENGAGEMENT_DEVICE_OTHER }
};


static const ngx_http_engagement_ua_rule_t  ngx_http_engagement_ua_desktop[] = {
    ngx_http_engagement_ua_rule("windows nt", DESKTOP),
    ngx_http_engagement_ua_rule("macintosh", DESKTOP),
    ngx_http_engagement_ua_rule("x11", DESKTOP),
    ngx_http_engagement_ua_rule("cros", DESKTOP),
    ngx_http_engagement_ua_rule("linux", DESKTOP),

    { NULL, 0, NGX_HTTP_ENGAGEMENT_DEVICE_OTHER }
};


/* whether the lower-case needle is in the lower-cased text */
static ngx_uint_t
ngx_http_engagement_ua_has(const u_char *text, size_t len, const char *needle,
    size_t n)
{
    const u_char  *p, *last;

    if (n > len) {
        return 0;
    }

    last = text + len - n;

    for (p = text; p <= last; p++) {
        p = memchr(p, (u_char) needle[0], last - p + 1);

        if (p == NULL) {
            return 0;
        }

        if (ngx_memcmp(p, needle, n) == 0) {
            return 1;
        }
    }

    return 0;
}


static const ngx_http_engagement_ua_rule_t *
ngx_http_engagement_ua_match(const u_char *text, size_t len,
    const ngx_http_engagement_ua_rule_t *rule)
{
    for ( /* void */ ; rule->needle; rule++) {
        if (ngx_http_engagement_ua_has(text, len, rule->needle, rule->len)) {
            return rule;
        }
    }

    return NULL;
}


ngx_http_engagement_device_e
ngx_http_engagement_device_classify(const u_char *ua, size_t len)
{
    size_t                                i;
    ngx_uint_t                            android;
    const ngx_http_engagement_ua_rule_t  *rule;
    u_char                                low[NGX_HTTP_ENGAGEMENT_UA_SCAN];

    if (len > NGX_HTTP_ENGAGEMENT_UA_SCAN) {
        len = NGX_HTTP_ENGAGEMENT_UA_SCAN;
    }

    for (i = 0; i < len; i++) {
        low[i] = ngx_tolower(ua[i]);
    }

    rule = ngx_http_engagement_ua_match(low, len, ngx_http_engagement_ua_rules);

    if (rule) {
        return rule->device;
    }

    /* "tizen" alone is also watches and phones; with "tv" a Samsung TV */
    if (ngx_http_engagement_ua_has(low, len, "tizen", 5)
        && ngx_http_engagement_ua_has(low, len, "tv", 2))
    {
        return NGX_HTTP_ENGAGEMENT_DEVICE_TV;
    }

    android = ngx_http_engagement_ua_has(low, len, "android", 7);

    if (ngx_http_engagement_ua_has(low, len, "mobile", 6)) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_MOBILE;
    }

    if (android) {
        /* Android's own rule: a phone's browser says "Mobile" */
        return NGX_HTTP_ENGAGEMENT_DEVICE_TABLET;
    }

    rule = ngx_http_engagement_ua_match(low, len,
                                        ngx_http_engagement_ua_desktop);

    return rule ? rule->device : NGX_HTTP_ENGAGEMENT_DEVICE_OTHER;
}


/* the value of the set equal to p (any case), or NULL */
static const ngx_str_t *
ngx_http_engagement_set_find(const ngx_str_t *set, ngx_uint_t n,
    const u_char *p, size_t len)
{
    size_t      j;
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (set[i].len != len) {
            continue;
        }

        /* the sets are lower case */
        for (j = 0; j < len && set[i].data[j] == ngx_tolower(p[j]); j++) {
            /* void */
        }

        if (j == len) {
            return &set[i];
        }
    }

    return NULL;
}


const ngx_str_t *
ngx_http_engagement_device_find(const u_char *p, size_t len)
{
    return ngx_http_engagement_set_find(ngx_http_engagement_devices,
                                        NGX_HTTP_ENGAGEMENT_DEVICES, p, len);
}


const ngx_str_t *
ngx_http_engagement_source_find(const u_char *p, size_t len)
{
    return ngx_http_engagement_set_find(ngx_http_engagement_sources,
               sizeof(ngx_http_engagement_sources) / sizeof(ngx_str_t) - 1,
               p, len);
}


ngx_int_t
ngx_http_engagement_country_form(u_char *dst, const u_char *p, size_t len)
{
    u_char      c;
    ngx_uint_t  i;

    if (len != 2) {
        return NGX_ERROR;
    }

    for (i = 0; i < 2; i++) {
        c = p[i] & ~0x20;         /* upper case, for letters */

        if (c < 'A' || c > 'Z') {
            return NGX_ERROR;
        }

        dst[i] = c;
    }

    return NGX_OK;
}
