
/*
 * libFuzzer target for the dimensions' pure functions
 * (src/input/ngx_http_engagement_dimension.c), compiled as is: the
 * User-Agent classifier, the closed sets of device and source, and the
 * country's form. Each input is checked:
 *   - the device class is one of the six, the same on a second call, and
 *     the same as a reference written another way (every needle tried at
 *     every word start of the first NGX_HTTP_ENGAGEMENT_UA_SCAN bytes, with
 *     isalnum() and tolower() of the C locale, the rules as the file's
 *     header documents them);
 *   - a device or source found is of its set and equal to the input in
 *     any case; one not found equals no member in any case;
 *   - a country is accepted exactly when it is two ASCII letters, and
 *     written upper-cased.
 */

#include "input/ngx_http_engagement_input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>


static const char  *ref_console[] = { "playstation", "xbox", "nintendo", NULL };
static const char  *ref_tv[] = {
    "smart-tv", "smarttv", "hbbtv", "appletv", "googletv", "android tv",
    "crkey", "roku", "bravia", "web0s", "netcast", "aftb", "aftm", "afts",
    "aftt", NULL
};
static const char  *ref_tablet[] = {
    "ipad", "tablet", "kindle", "silk/", "playbook", NULL
};
static const char  *ref_mobile[] = {
    "iphone", "ipod", "windows phone", "blackberry", "opera mini",
    "iemobile", NULL
};
static const char  *ref_desktop[] = {
    "windows nt", "macintosh", "x11", "cros", "linux", NULL
};


/* whether a word of the first size bytes of s begins with the needle */
static int
ref_word(const uint8_t *s, size_t size, const char *needle)
{
    size_t  i, j, n;

    n = strlen(needle);

    for (i = 0; i + n <= size; i++) {
        if (i > 0 && isalnum(s[i - 1])) {
            continue;
        }

        for (j = 0; j < n; j++) {
            if (tolower(s[i + j]) != needle[j]) {
                break;
            }
        }

        if (j == n) {
            return 1;
        }
    }

    return 0;
}


static int
ref_any(const uint8_t *s, size_t size, const char **needles)
{
    for ( /* void */ ; *needles; needles++) {
        if (ref_word(s, size, *needles)) {
            return 1;
        }
    }

    return 0;
}


static ngx_http_engagement_device_e
ref_classify(const uint8_t *s, size_t size)
{
    if (size > NGX_HTTP_ENGAGEMENT_UA_SCAN) {
        size = NGX_HTTP_ENGAGEMENT_UA_SCAN;
    }

    if (ref_any(s, size, ref_console)) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_CONSOLE;
    }

    if (ref_any(s, size, ref_tv)
        || (ref_word(s, size, "tizen") && ref_word(s, size, "tv")))
    {
        return NGX_HTTP_ENGAGEMENT_DEVICE_TV;
    }

    if (ref_any(s, size, ref_tablet)) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_TABLET;
    }

    if (ref_any(s, size, ref_mobile) || ref_word(s, size, "mobile")) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_MOBILE;
    }

    if (ref_word(s, size, "android")) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_TABLET;
    }

    if (ref_any(s, size, ref_desktop)) {
        return NGX_HTTP_ENGAGEMENT_DEVICE_DESKTOP;
    }

    return NGX_HTTP_ENGAGEMENT_DEVICE_OTHER;
}


static int
same_nocase(const u_char *a, const uint8_t *b, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (a[i] != ((b[i] >= 'A' && b[i] <= 'Z') ? (b[i] | 0x20) : b[i])) {
            return 0;
        }
    }

    return 1;
}


static void
check_set(const char *what, const ngx_str_t *found, const ngx_str_t *set,
    ngx_uint_t n, const uint8_t *data, size_t size)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (found == &set[i]) {
            if (set[i].len != size || !same_nocase(set[i].data, data, size)) {
                fprintf(stderr, "%s: found \"%s\" for another value\n", what,
                        (char *) set[i].data);
                abort();
            }

            return;
        }

        if (found == NULL && set[i].len == size
            && same_nocase(set[i].data, data, size))
        {
            fprintf(stderr, "%s: \"%s\" not found\n", what,
                    (char *) set[i].data);
            abort();
        }
    }

    if (found) {
        fprintf(stderr, "%s: a value outside the set\n", what);
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                        cc[2];
    ngx_int_t                     rc;
    ngx_uint_t                    nsources, letters;
    ngx_http_engagement_device_e  d, d2, ref;

    d = ngx_http_engagement_device_classify(data, size);
    d2 = ngx_http_engagement_device_classify(data, size);
    ref = ref_classify(data, size);

    if (d >= NGX_HTTP_ENGAGEMENT_DEVICES || d != d2 || d != ref) {
        fprintf(stderr, "device class %d, again %d, reference %d\n",
                (int) d, (int) d2, (int) ref);
        abort();
    }

    check_set("device", ngx_http_engagement_device_find(data, size),
              ngx_http_engagement_devices, NGX_HTTP_ENGAGEMENT_DEVICES,
              data, size);

    for (nsources = 0; ngx_http_engagement_sources[nsources].len; nsources++) {
        /* void */
    }

    check_set("source", ngx_http_engagement_source_find(data, size),
              ngx_http_engagement_sources, nsources, data, size);

    rc = ngx_http_engagement_country_form(cc, data, size);

    letters = size == 2
              && ((data[0] | 0x20) >= 'a' && (data[0] | 0x20) <= 'z')
              && ((data[1] | 0x20) >= 'a' && (data[1] | 0x20) <= 'z');

    if ((rc == NGX_OK) != letters
        || (rc == NGX_OK
            && (cc[0] != (data[0] & ~0x20) || cc[1] != (data[1] & ~0x20)
                || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z')))
    {
        fprintf(stderr, "country form: rc %d for %zu bytes\n", (int) rc,
                size);
        abort();
    }

    return 0;
}
