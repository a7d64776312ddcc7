/*
 * report_fmt.c - text cells of finance reports (see report_fmt.h).
 * Invariant: every output is exact and bounded by cap; on overflow of the
 * buffer the output is "" and the result -1, never a partial cell.
 */
#include "report_fmt.h"

#include <string.h>

static int fail(char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    return -1;
}

int report_fmt_decimal(int64_t v, int scale, char *buf, size_t cap)
{
    char digits[24];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0, len, pos = 0;

    if (scale < 0 || scale > 18)
        return fail(buf, cap);
    do { /* least significant first */
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n <= (size_t)scale) /* at least one integer digit */
        digits[n++] = '0';
    len = (v < 0) + n + (scale > 0);
    if (len + 1 > cap)
        return fail(buf, cap);
    if (v < 0)
        buf[pos++] = '-';
    for (size_t i = n; i-- > 0;) {
        buf[pos++] = digits[i];
        if (i == (size_t)scale && scale > 0)
            buf[pos++] = '.';
    }
    buf[pos] = '\0';
    return (int)pos;
}

int report_fmt_hours(int64_t ms, char *buf, size_t cap)
{
    /* micro-hours = ms * 10^6 / 3 600 000 = ms * 5 / 18, half to even. */
    int neg = ms < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    uint64_t q = u / 18 * 5, r = u % 18 * 5; /* no overflow: u / 18 * 5 < 2^63 */
    int64_t micro;

    q += r / 18;
    r %= 18;
    if (r > 9 || (r == 9 && (q & 1)))
        q++;
    micro = neg ? -(int64_t)q : (int64_t)q;
    return report_fmt_decimal(micro, 6, buf, cap);
}

static char *put_digits(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

int report_fmt_time_ms(int64_t ms, char *buf, size_t cap)
{
    int64_t days, msod, z, era, doe, yoe, y, doy, mp, d, m;
    char *p = buf;

    if (cap < 25 || ms < INT64_C(-62167219200000) || ms > INT64_C(253402300799999))
        return fail(buf, cap); /* 0000-01-01 .. 9999-12-31 */
    days = ms / 86400000 - (ms % 86400000 < 0);
    msod = ms - days * 86400000;
    /* civil_from_days (H. Hinnant): day 0 = 1970-01-01, eras of 400 years */
    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = yoe + era * 400 + (m <= 2);
    p = put_digits(p, y, 4);
    *p++ = '-';
    p = put_digits(p, m, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, msod / 3600000, 2);
    *p++ = ':';
    p = put_digits(p, msod / 60000 % 60, 2);
    *p++ = ':';
    p = put_digits(p, msod / 1000 % 60, 2);
    *p++ = '.';
    p = put_digits(p, msod % 1000, 3);
    *p++ = 'Z';
    *p = '\0';
    return (int)(p - buf);
}

int report_csv_needs_quotes(const char *s, size_t len)
{
    if (len && (s[0] == ' ' || s[len - 1] == ' '))
        return 1;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            return 1;
    return 0;
}

int report_csv_field(const char *s, size_t len, char *buf, size_t cap)
{
    size_t pos = 0;

    if (!report_csv_needs_quotes(s, len)) {
        if (len + 1 > cap)
            return fail(buf, cap);
        memcpy(buf, s, len);
        buf[len] = '\0';
        return (int)len;
    }
    if (cap < 3)
        return fail(buf, cap);
    buf[pos++] = '"';
    for (size_t i = 0; i < len; i++) {
        size_t need = s[i] == '"' ? 2 : 1;
        if (pos + need + 2 > cap) /* room for the closing quote and NUL */
            return fail(buf, cap);
        if (s[i] == '"')
            buf[pos++] = '"';
        buf[pos++] = s[i];
    }
    buf[pos++] = '"';
    buf[pos] = '\0';
    return (int)pos;
}

int report_json_string(const char *s, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t pos = 0;

    if (cap < 3)
        return fail(buf, cap);
    buf[pos++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[7];
        size_t n = 0;

        if (ch == '"' || ch == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)ch;
        } else if (ch < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        } else {
            esc[n++] = (char)ch;
        }
        if (pos + n + 2 > cap)
            return fail(buf, cap);
        memcpy(buf + pos, esc, n);
        pos += n;
    }
    buf[pos++] = '"';
    buf[pos] = '\0';
    return (int)pos;
}
