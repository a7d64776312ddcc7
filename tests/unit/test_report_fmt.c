/*
 * Unit: report cells (billing/report_fmt.c) against hand-written expectations:
 * exact decimals at every scale, device-hours rounded half to even at the
 * micro-hour, RFC 4180 quoting, JSON string escaping, and buffers too small.
 */
#include "money.h"
#include "report_fmt.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

static const char *dec(int64_t v, int scale)
{
    static char buf[REPORT_DECIMAL_MAX];
    cr_assert_geq(report_fmt_decimal(v, scale, buf, sizeof buf), 0);
    return buf;
}

static const char *hours(int64_t ms)
{
    static char buf[REPORT_DECIMAL_MAX];
    cr_assert_geq(report_fmt_hours(ms, buf, sizeof buf), 0);
    return buf;
}

Test(report_fmt, decimals_are_exact)
{
    cr_assert_str_eq(dec(0, 6), "0.000000");
    cr_assert_str_eq(dec(1, 6), "0.000001");
    cr_assert_str_eq(dec(-1, 6), "-0.000001");
    cr_assert_str_eq(dec(240000, 6), "0.240000");
    cr_assert_str_eq(dec(-80000, 6), "-0.080000");
    cr_assert_str_eq(dec(100000000, 6), "100.000000");
    cr_assert_str_eq(dec(94983, 3), "94.983");
    cr_assert_str_eq(dec(5, 3), "0.005");
    cr_assert_str_eq(dec(12, 0), "12");
    cr_assert_str_eq(dec(INT64_MAX, 6), "9223372036854.775807");
    cr_assert_str_eq(dec(INT64_MIN, 6), "-9223372036854.775808");
    cr_assert_str_eq(dec(INT64_MIN, 18), "-9.223372036854775808");
}

Test(report_fmt, money_scale_matches_money_format)
{
    static const int64_t v[] = {0,         1,        -1, 999999, 1000000, -1234567, 42424242424242,
                                INT64_MAX, INT64_MIN};
    char a[REPORT_DECIMAL_MAX], b[MONEY_FMT_MAX];

    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cr_assert_geq(report_fmt_decimal(v[i], 6, a, sizeof a), 0);
        cr_assert_geq(money_format(v[i], b, sizeof b), 0);
        cr_assert_str_eq(a, b, "%lld", (long long)v[i]);
    }
}

Test(report_fmt, device_hours_half_even)
{
    cr_assert_str_eq(hours(3600000), "1.000000");
    cr_assert_str_eq(hours(240000), "0.066667"); /* 0.0666666… */
    cr_assert_str_eq(hours(1800), "0.000500");   /* exact */
    cr_assert_str_eq(hours(9), "0.000002");      /* 2.5 micro-hours: to even, 2 */
    cr_assert_str_eq(hours(27), "0.000008");     /* 7.5 micro-hours: to even, 8 */
    cr_assert_str_eq(hours(1), "0.000000");      /* 0.2777… */
    cr_assert_str_eq(hours(2), "0.000001");      /* 0.5555… */
    cr_assert_str_eq(hours(-240000), "-0.066667");
    cr_assert_str_eq(hours(-9), "-0.000002");
    cr_assert_str_eq(hours(INT64_MAX), "2562047788015.215502"); /* 2562047788015.2155022… */
}

Test(report_fmt, small_buffers_fail_whole)
{
    char buf[8];
    cr_assert_eq(report_fmt_decimal(100000000, 6, buf, sizeof buf), -1);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(report_fmt_decimal(1, 6, buf, sizeof buf), -1, "0.000001 + NUL needs 9 bytes");
    cr_assert_eq(report_fmt_decimal(1, 19, buf, sizeof buf), -1, "scale out of range");
    cr_assert_eq(report_csv_field("abcdefgh", 8, buf, sizeof buf), -1);
    cr_assert_eq(report_csv_field("a,b,c,d", 7, buf, sizeof buf), -1, "quoted needs 10");
    cr_assert_eq(report_json_string("abcdef", 6, buf, sizeof buf), -1);
}

Test(report_fmt, csv_quotes_only_when_needed)
{
    char buf[64];
    cr_assert_eq(report_csv_field("acc_01ABC", 9, buf, sizeof buf), 9);
    cr_assert_str_eq(buf, "acc_01ABC");
    report_csv_field("eu-west-1, zone a", 17, buf, sizeof buf);
    cr_assert_str_eq(buf, "\"eu-west-1, zone a\"");
    report_csv_field("say \"hi\"", 8, buf, sizeof buf);
    cr_assert_str_eq(buf, "\"say \"\"hi\"\"\"");
    report_csv_field("two\r\nlines", 10, buf, sizeof buf);
    cr_assert_str_eq(buf, "\"two\r\nlines\"");
    report_csv_field(" pad", 4, buf, sizeof buf);
    cr_assert_str_eq(buf, "\" pad\"");
    cr_assert_eq(report_csv_field("", 0, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(report_csv_needs_quotes("a;b", 3), 0);
}

Test(report_fmt, json_strings_escape_controls)
{
    char buf[64];
    report_json_string("plain", 5, buf, sizeof buf);
    cr_assert_str_eq(buf, "\"plain\"");
    report_json_string("a\"b\\c", 5, buf, sizeof buf);
    cr_assert_str_eq(buf, "\"a\\\"b\\\\c\"");
    report_json_string("t\tn\n\x01", 5, buf, sizeof buf);
    cr_assert_str_eq(buf, "\"t\\u0009n\\u000a\\u0001\"");
    report_json_string("\xc3\xa9", 2, buf, sizeof buf); /* UTF-8 passes through */
    cr_assert_str_eq(buf, "\"\xc3\xa9\"");
}

static const char *when(int64_t ms)
{
    static char buf[32];
    cr_assert_eq(report_fmt_time_ms(ms, buf, sizeof buf), 24, "%lld", (long long)ms);
    return buf;
}

Test(report_fmt, times_by_hand)
{
    char buf[32];
    cr_assert_str_eq(when(0), "1970-01-01T00:00:00.000Z");
    cr_assert_str_eq(when(-1), "1969-12-31T23:59:59.999Z");
    cr_assert_str_eq(when(951782400000), "2000-02-29T00:00:00.000Z"); /* a leap day */
    cr_assert_str_eq(when(1709251199999), "2024-02-29T23:59:59.999Z");
    cr_assert_str_eq(when(1764331200123), "2025-11-28T12:00:00.123Z");
    cr_assert_str_eq(when(INT64_C(-62167219200000)), "0000-01-01T00:00:00.000Z");
    cr_assert_str_eq(when(INT64_C(253402300799999)), "9999-12-31T23:59:59.999Z");
    cr_assert_eq(report_fmt_time_ms(INT64_C(253402300800000), buf, sizeof buf), -1);
    cr_assert_eq(report_fmt_time_ms(0, buf, 24), -1, "24 characters and a NUL");
}
