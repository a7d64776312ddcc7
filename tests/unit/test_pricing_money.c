/*
 * test_pricing_money.c - int64 micro-unit money: checked arithmetic, the
 * half-even rounding step, exact decimal text. Vectors are hand-checked.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "money.h"

static int64_t div_round(__int128 num, __int128 den)
{
    int64_t out = 0x5a5a;
    cr_assert_eq(money_div_round(num, den, &out), MONEY_OK, "%lld/%lld", (long long)num,
                 (long long)den);
    return out;
}

/* Ties go to the even neighbour: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4;
 * anything off the tie rounds to nearest. (num/den in micro-units.) */
Test(money, half_even_ties)
{
    cr_assert_eq(div_round(5, 2), 2);   /* 2.5 */
    cr_assert_eq(div_round(7, 2), 4);   /* 3.5 */
    cr_assert_eq(div_round(1, 2), 0);   /* 0.5 */
    cr_assert_eq(div_round(3, 2), 2);   /* 1.5 */
    cr_assert_eq(div_round(-5, 2), -2); /* -2.5 */
    cr_assert_eq(div_round(-7, 2), -4); /* -3.5 */
    cr_assert_eq(div_round(-1, 2), 0);  /* -0.5 */
    cr_assert_eq(div_round(5, -2), -2); /* sign on the denominator */
    cr_assert_eq(div_round(-7, -2), 4);
    cr_assert_eq(div_round(2501, 1000), 3); /* 2.501 */
    cr_assert_eq(div_round(2499, 1000), 2); /* 2.499 */
    cr_assert_eq(div_round(-2501, 1000), -3);
    cr_assert_eq(div_round(10, 5), 2); /* exact */
    cr_assert_eq(div_round(0, 7), 0);
}

/* 3 x 1/3 style: 1.000000 x 1/3 = 0.333333(3) -> 333333; x 2/3 -> 666667. */
Test(money, mul_ratio)
{
    int64_t out;
    cr_assert_eq(money_mul_ratio(1000000, 1, 3, &out), MONEY_OK);
    cr_assert_eq(out, 333333);
    cr_assert_eq(money_mul_ratio(1000000, 2, 3, &out), MONEY_OK);
    cr_assert_eq(out, 666667);
    /* 12.345678 x 150% = 18.518517 exactly */
    cr_assert_eq(money_mul_ratio(12345678, 1500000, 1000000, &out), MONEY_OK);
    cr_assert_eq(out, 18518517);
    /* 0.000005 x 50% = 0.0000025 -> tie -> 0.000002 */
    cr_assert_eq(money_mul_ratio(5, 500000, 1000000, &out), MONEY_OK);
    cr_assert_eq(out, 2);
    /* 0.000007 x 50% = 0.0000035 -> tie -> 0.000004 */
    cr_assert_eq(money_mul_ratio(7, 500000, 1000000, &out), MONEY_OK);
    cr_assert_eq(out, 4);
    /* INT64_MAX x 1/1 fits; x 2/1 does not */
    cr_assert_eq(money_mul_ratio(INT64_MAX, 1, 1, &out), MONEY_OK);
    cr_assert_eq(out, INT64_MAX);
    out = 42;
    cr_assert_eq(money_mul_ratio(INT64_MAX, 2, 1, &out), MONEY_ERR_OVERFLOW);
    cr_assert_eq(out, 42, "output untouched on error");
    cr_assert_eq(money_mul_ratio(1, 1, 0, &out), MONEY_ERR_INVALID);
    /* INT64_MIN x -1 overflows; INT64_MIN x 1/2 is exact */
    cr_assert_eq(money_mul_ratio(INT64_MIN, -1, 1, &out), MONEY_ERR_OVERFLOW);
    cr_assert_eq(money_mul_ratio(INT64_MIN, 1, 2, &out), MONEY_OK);
    cr_assert_eq(out, INT64_MIN / 2);
}

Test(money, checked_add_sub_mul)
{
    int64_t out = 7;
    cr_assert_eq(money_add_i64(INT64_MAX, 1, &out), MONEY_ERR_OVERFLOW);
    cr_assert_eq(out, 7);
    cr_assert_eq(money_sub_i64(INT64_MIN, 1, &out), MONEY_ERR_OVERFLOW);
    cr_assert_eq(money_add_i64(INT64_MAX, INT64_MIN, &out), MONEY_OK);
    cr_assert_eq(out, -1);
    cr_assert_eq(money_sub_i64(0, INT64_MIN, &out), MONEY_ERR_OVERFLOW);
    cr_assert_eq(money_sub_i64(-5, 7, &out), MONEY_OK);
    cr_assert_eq(out, -12);
    cr_assert_eq(money_mul_i64(INT64_C(4611686018427387904), 2, &out), MONEY_ERR_OVERFLOW);
    cr_assert_eq(money_mul_i64(-1500000, 3, &out), MONEY_OK);
    cr_assert_eq(out, -4500000);
}

Test(money, currency_tagged)
{
    money a, b, r;
    cr_assert_eq(money_make(1500000, "USD", &a), MONEY_OK);
    cr_assert_eq(money_make(2500000, "USD", &b), MONEY_OK);
    cr_assert_eq(money_add(a, b, &r), MONEY_OK);
    cr_assert_eq(r.micros, 4000000);
    cr_assert_str_eq(r.currency, "USD");
    cr_assert_eq(money_sub(a, b, &r), MONEY_OK);
    cr_assert_eq(r.micros, -1000000);
    cr_assert_eq(money_make(1, "EUR", &b), MONEY_OK);
    cr_assert_eq(money_add(a, b, &r), MONEY_ERR_CURRENCY);
    cr_assert_eq(money_make(1, "usd", &b), MONEY_ERR_CURRENCY);
    cr_assert_eq(money_make(1, "USDT", &b), MONEY_ERR_CURRENCY);
    cr_assert_eq(money_make(1, "US", &b), MONEY_ERR_CURRENCY);
    cr_assert_eq(money_make(1, NULL, &b), MONEY_ERR_CURRENCY);
}

static const char *fmt(int64_t v, char *buf)
{
    cr_assert_gt(money_format(v, buf, MONEY_FMT_MAX), 0);
    return buf;
}

Test(money, format_exact)
{
    char b[MONEY_FMT_MAX];
    cr_assert_str_eq(fmt(12345678, b), "12.345678");
    cr_assert_str_eq(fmt(0, b), "0.000000");
    cr_assert_str_eq(fmt(1, b), "0.000001");
    cr_assert_str_eq(fmt(-1, b), "-0.000001");
    cr_assert_str_eq(fmt(-1500000, b), "-1.500000");
    cr_assert_str_eq(fmt(INT64_MAX, b), "9223372036854.775807");
    cr_assert_str_eq(fmt(INT64_MIN, b), "-9223372036854.775808");
    char small[9];
    cr_assert_eq(money_format(12345678, small, sizeof small), -1, "needs 10 bytes");
    cr_assert_str_eq(small, "");
    cr_assert_eq(money_format(12345678, small, 10 - 1), -1);
    char exact[10];
    cr_assert_eq(money_format(12345678, exact, sizeof exact), 9);
}

static int64_t parse_ok(const char *s)
{
    int64_t v = 0;
    cr_assert_eq(money_parse(s, &v), MONEY_OK, "%s", s);
    return v;
}

Test(money, parse_exact)
{
    cr_assert_eq(parse_ok("12.345678"), 12345678);
    cr_assert_eq(parse_ok("12"), 12000000);
    cr_assert_eq(parse_ok("0.5"), 500000);
    cr_assert_eq(parse_ok("-0.000001"), -1);
    cr_assert_eq(parse_ok("0"), 0);
    cr_assert_eq(parse_ok("-0"), 0);
    cr_assert_eq(parse_ok("9223372036854.775807"), INT64_MAX);
    cr_assert_eq(parse_ok("-9223372036854.775808"), INT64_MIN);
    cr_assert_eq(parse_ok("1.10"), 1100000);
}

Test(money, parse_rejects)
{
    int64_t v = 99;
    cr_assert_eq(money_parse("1.1234567", &v), MONEY_ERR_PRECISION);
    cr_assert_eq(money_parse("0.0000001", &v), MONEY_ERR_PRECISION);
    cr_assert_eq(money_parse("9223372036854.775808", &v), MONEY_ERR_OVERFLOW);
    cr_assert_eq(money_parse("-9223372036854.775809", &v), MONEY_ERR_OVERFLOW);
    cr_assert_eq(money_parse("99999999999999999999999", &v), MONEY_ERR_OVERFLOW);
    const char *bad[] = {"",   "-",   ".5",  "1.",    "+1",  "01",   "1e3",       " 1",
                         "1 ", "1,5", "abc", "1.2.3", "--1", "0x10", "1.1234567x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(money_parse(bad[i], &v), MONEY_ERR_INVALID, "\"%s\"", bad[i]);
    cr_assert_eq(money_parse(NULL, &v), MONEY_ERR_INVALID);
    cr_assert_eq(v, 99, "output untouched on error");
}

/* format and parse are inverse over a spread of values incl. the limits. */
Test(money, round_trip)
{
    int64_t vals[] = {0,
                      1,
                      -1,
                      999999,
                      1000000,
                      -1000001,
                      123456789012345,
                      INT64_MAX,
                      INT64_MIN,
                      INT64_MAX - 1,
                      INT64_MIN + 1};
    char b[MONEY_FMT_MAX];
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        cr_assert_eq(parse_ok(fmt(vals[i], b)), vals[i]);
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 2000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        int64_t v = (int64_t)s;
        cr_assert_eq(parse_ok(fmt(v, b)), v);
    }
}
