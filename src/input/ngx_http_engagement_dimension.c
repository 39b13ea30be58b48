
/*
 * The dimensions of an event that are closed sets or a fixed form: the
 * device class (given by the client, or read from its User-Agent), the
 * traffic source, and the country's form. Pure functions of their input:
 * the configuration's values, the category's bound and the request are
 * http/ngx_http_engagement_dims.c's.
 *
 * The User-Agent classifier reads the first NGX_HTTP_ENGAGEMENT_UA_SCAN
 * bytes once, and notes the words that begin with one of a few needles
 * (any case; a word begins at the start or after a byte that is not a
 * letter or a digit). The first class whose rule holds wins:
 *
 *   console  playstation, xbox, nintendo
 *   tv       smart-tv, smarttv, hbbtv, appletv, googletv, android tv,
 *            crkey (Chromecast), roku, bravia, web0s, netcast, aftb, aftm,
 *            afts, aftt (Fire TV); or tizen with a word tv
 *   tablet   ipad, tablet, kindle, silk/, playbook
 *   mobile   iphone, ipod, windows phone, blackberry, opera mini,
 *            iemobile, mobile
 *   tablet   android (without mobile: Android's own convention)
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


/*
 * What a word of a User-Agent says. The words are the needles below: a
 * needle matches where a word of the User-Agent begins with it (any case),
 * a word beginning at the start or after a byte other than a letter or a
 * digit ("(iPhone;", " Mobile/", "Linux/SmartTV", " AFTMM "). Matching at
 * word starts only keeps the scan short and avoids matches inside other
 * words ("drafts" is no Fire TV).
 */
#define NGX_HTTP_ENGAGEMENT_UA_CONSOLE   0x001
#define NGX_HTTP_ENGAGEMENT_UA_TV        0x002
#define NGX_HTTP_ENGAGEMENT_UA_TABLET    0x004
#define NGX_HTTP_ENGAGEMENT_UA_PHONE     0x008
#define NGX_HTTP_ENGAGEMENT_UA_TIZEN     0x010
#define NGX_HTTP_ENGAGEMENT_UA_TVWORD    0x020
#define NGX_HTTP_ENGAGEMENT_UA_MOBILE    0x040
#define NGX_HTTP_ENGAGEMENT_UA_ANDROID   0x080
#define NGX_HTTP_ENGAGEMENT_UA_DESKTOP   0x100


typedef struct {
    const char                    *needle;     /* lower case */
    size_t                         len;
    ngx_uint_t                     flag;
} ngx_http_engagement_ua_word_t;


#define ngx_http_engagement_ua_word(s, f)                                     \
    { s, sizeof(s) - 1, NGX_HTTP_ENGAGEMENT_UA_ ## f }


/* sorted by first letter: the scan looks only at those of a word's */
static const ngx_http_engagement_ua_word_t  ngx_http_engagement_ua_words[] = {
    ngx_http_engagement_ua_word("aftb", TV),
    ngx_http_engagement_ua_word("aftm", TV),
    ngx_http_engagement_ua_word("afts", TV),
    ngx_http_engagement_ua_word("aftt", TV),
    ngx_http_engagement_ua_word("android tv", TV),
    ngx_http_engagement_ua_word("android", ANDROID),
    ngx_http_engagement_ua_word("appletv", TV),
    ngx_http_engagement_ua_word("blackberry", PHONE),
    ngx_http_engagement_ua_word("bravia", TV),
    ngx_http_engagement_ua_word("crkey", TV),
    ngx_http_engagement_ua_word("cros", DESKTOP),
    ngx_http_engagement_ua_word("googletv", TV),
    ngx_http_engagement_ua_word("hbbtv", TV),
    ngx_http_engagement_ua_word("iemobile", PHONE),
    ngx_http_engagement_ua_word("ipad", TABLET),
    ngx_http_engagement_ua_word("iphone", PHONE),
    ngx_http_engagement_ua_word("ipod", PHONE),
    ngx_http_engagement_ua_word("kindle", TABLET),
    ngx_http_engagement_ua_word("linux", DESKTOP),
    ngx_http_engagement_ua_word("macintosh", DESKTOP),
    ngx_http_engagement_ua_word("mobile", MOBILE),
    ngx_http_engagement_ua_word("netcast", TV),
    ngx_http_engagement_ua_word("nintendo", CONSOLE),
    ngx_http_engagement_ua_word("opera mini", PHONE),
    ngx_http_engagement_ua_word("playbook", TABLET),
    ngx_http_engagement_ua_word("playstation", CONSOLE),
    ngx_http_engagement_ua_word("roku", TV),
    ngx_http_engagement_ua_word("silk/", TABLET),
    ngx_http_engagement_ua_word("smart-tv", TV),
    ngx_http_engagement_ua_word("smarttv", TV),
    ngx_http_engagement_ua_word("tablet", TABLET),
    ngx_http_engagement_ua_word("tizen", TIZEN),
    ngx_http_engagement_ua_word("tv", TVWORD),
    ngx_http_engagement_ua_word("web0s", TV),
    ngx_http_engagement_ua_word("windows nt", DESKTOP),
    ngx_http_engagement_ua_word("windows phone", PHONE),
    ngx_http_engagement_ua_word("x11", DESKTOP),
    ngx_http_engagement_ua_word("xbox", CONSOLE)
};

#define NGX_HTTP_ENGAGEMENT_UA_WORDS                                          \
    (sizeof(ngx_http_engagement_ua_words)                                     \
     / sizeof(ngx_http_engagement_ua_word_t))


/*
 * By a byte of the User-Agent: 0 for a byte that is not a letter or a
 * digit (a word ends there); else 1 + the index of the first word that
 * begins with that letter (any case), or NGX_HTTP_ENGAGEMENT_UA_NONE.
 * Made at the first call from the sorted words.
 */
#define NGX_HTTP_ENGAGEMENT_UA_NONE  0xff

static u_char      ngx_http_engagement_ua_first[256];
static ngx_uint_t  ngx_http_engagement_ua_ready;


static void
ngx_http_engagement_ua_init(void)
{
    ngx_uint_t  c, i;

    for (c = 0; c < 256; c++) {
        ngx_http_engagement_ua_first[c] =
            ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
             || (c >= 'A' && c <= 'Z'))
            ? NGX_HTTP_ENGAGEMENT_UA_NONE : 0;
    }

    for (i = NGX_HTTP_ENGAGEMENT_UA_WORDS; i--; /* void */) {
        c = (u_char) ngx_http_engagement_ua_words[i].needle[0];

        ngx_http_engagement_ua_first[c] = (u_char) (i + 1);
        ngx_http_engagement_ua_first[c & ~0x20] = (u_char) (i + 1);
    }

    ngx_http_engagement_ua_ready = 1;
}


ngx_http_engagement_device_e
ngx_http_engagement_device_classify(const u_char *ua, size_t len)
{
    u_char                                c;
    size_t                                i, j, k;
    ngx_uint_t                            f, word, first;
    const ngx_http_engagement_ua_word_t  *w;

    if (!ngx_http_engagement_ua_ready) {
        ngx_http_engagement_ua_init();
    }

    if (len > NGX_HTTP_ENGAGEMENT_UA_SCAN) {
        len = NGX_HTTP_ENGAGEMENT_UA_SCAN;
    }

    f = 0;
    word = 0;       /* within a word */

    for (i = 0; i < len; i++) {
        first = ngx_http_engagement_ua_first[ua[i]];

        if (first == 0) {
            word = 0;
            continue;
        }

        if (word) {
            continue;
        }

        word = 1;

        if (first == NGX_HTTP_ENGAGEMENT_UA_NONE) {
            continue;
        }

        /* the words beginning with this letter, in turn */
        c = ngx_tolower(ua[i]);

        for (k = first - 1;
             k < NGX_HTTP_ENGAGEMENT_UA_WORDS
             && (u_char) ngx_http_engagement_ua_words[k].needle[0] == c;
             k++)
        {
            w = &ngx_http_engagement_ua_words[k];

            if (w->len > len - i) {
                continue;
            }

            for (j = 1; j < w->len && ngx_tolower(ua[i + j]) == w->needle[j];
                 j++)
            {
                /* void */
            }

            if (j == w->len) {
                f |= w->flag;
            }
        }
    }

    if (f & NGX_HTTP_ENGAGEMENT_UA_CONSOLE) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_CONSOLE;
    }

    if ((f & NGX_HTTP_ENGAGEMENT_UA_TV)
        || ((f & NGX_HTTP_ENGAGEMENT_UA_TIZEN)
            && (f & NGX_HTTP_ENGAGEMENT_UA_TVWORD)))
    {
        return NGX_HTTP_ENGAGEMENT_DEVICE_TV;
    }

    if (f & NGX_HTTP_ENGAGEMENT_UA_TABLET) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_TABLET;
    }

    if (f & (NGX_HTTP_ENGAGEMENT_UA_PHONE | NGX_HTTP_ENGAGEMENT_UA_MOBILE)) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_MOBILE;
    }

    if (f & NGX_HTTP_ENGAGEMENT_UA_ANDROID) {
        /* Android's own rule: a phone's browser says "Mobile" */
        return NGX_HTTP_ENGAGEMENT_DEVICE_TABLET;
    }

    if (f & NGX_HTTP_ENGAGEMENT_UA_DESKTOP) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_DESKTOP;
    }

    return NGX_HTTP_ENGAGEMENT_DEVICE_OTHER;
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
