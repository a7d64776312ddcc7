/*
 * timefmt.c - strict ISO-8601 UTC parsing and formatting.
 * Invariant: format(parse(s)) == s for every s this module produces.
 */
#include "timefmt.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Parse with at most max_digits fraction digits; result in microseconds. */
static int parse_us(const char *s, int max_digits, int64_t *unix_us)
{
    int y, mo, d, h, mi, sec;
    long frac = 0;
    struct tm tm = {0};
    size_t n = s ? strlen(s) : 0;
    const char *p;
    time_t t;

    if (n < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || s[10] != 'T' || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    p = s + 19;
    if (*p == '.') {
        int nd = 0;
        for (p++; isdigit((unsigned char)*p); p++, nd++) {
            if (nd >= max_digits)
                return -1;
            frac = frac * 10 + (*p - '0');
        }
        if (nd == 0)
            return -1;
        for (; nd < 6; nd++)
            frac *= 10;
    }
    if (p[0] != 'Z' || p[1] != '\0')
        return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 59)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
        return -1; /* 31 February and friends */
    *unix_us = (int64_t)t * 1000000 + frac;
    return 0;
}

int timefmt_parse(const char *s, int64_t *unix_ms)
{
    int64_t us;

    if (parse_us(s, 3, &us) != 0)
        return -1;
    *unix_ms = us / 1000;
    return 0;
}

int timefmt_parse_us(const char *s, int64_t *unix_us)
{
    return parse_us(s, 6, unix_us);
}

/* Format with `digits` (3 or 6) fraction digits from a value in 10^-digits seconds. */
static void format_frac(int64_t v, int64_t per_s, int digits, char *out, size_t len)
{
    int64_t secs = v >= 0 ? v / per_s : -((-v + per_s - 1) / per_s);
    time_t t = (time_t)secs;
    struct tm tm;
    char frac[8];
    int64_t f = v - secs * per_s;

    gmtime_r(&t, &tm);
    for (int i = digits - 1; i >= 0; i--, f /= 10)
        frac[i] = (char)('0' + f % 10);
    frac[digits] = '\0';
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%sZ", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, frac);
}

void timefmt_format(int64_t unix_ms, char *out, size_t len)
{
    format_frac(unix_ms, 1000, 3, out, len);
}

void timefmt_format_us(int64_t unix_us, char *out, size_t len)
{
    format_frac(unix_us, 1000000, 6, out, len);
}

int64_t timefmt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void timefmt_period(int64_t unix_ms, char out[8])
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    unsigned y = (unsigned)(tm.tm_year + 1900) % 10000u, m = (unsigned)tm.tm_mon % 12u + 1u;

    out[0] = (char)('0' + y / 1000);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '\0';
}
