/*
 * money.c - checked int64 micro-unit arithmetic, the half-even rounding step,
 * and exact decimal text for amounts.
 *
 * Invariant: every function either stores a result that is mathematically
 * exact (or, for money_div_round / money_mul_ratio, the exact quotient rounded
 * half-to-even) or returns an error and leaves *out untouched.
 */
#include "money.h"

#include <string.h>

typedef __int128 i128;

const char *money_status_message(money_status s)
{
    switch (s) {
    case MONEY_OK:
        return "ok";
    case MONEY_ERR_INVALID:
        return "invalid amount";
    case MONEY_ERR_OVERFLOW:
        return "amount does not fit 64-bit micro-units";
    case MONEY_ERR_PRECISION:
        return "more than 6 fraction digits";
    case MONEY_ERR_CURRENCY:
        return "currency code missing, malformed or mismatched";
    }
    return "unknown error";
}

int money_currency_valid(const char *code)
{
    if (!code)
        return 0;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z')
            return 0;
    return code[3] == '\0';
}

money_status money_add_i64(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (!out)
        return MONEY_ERR_INVALID;
    if (__builtin_add_overflow(a, b, &r))
        return MONEY_ERR_OVERFLOW;
    *out = r;
    return MONEY_OK;
}

money_status money_sub_i64(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (!out)
        return MONEY_ERR_INVALID;
    if (__builtin_sub_overflow(a, b, &r))
        return MONEY_ERR_OVERFLOW;
    *out = r;
    return MONEY_OK;
}

money_status money_mul_i64(int64_t a, int64_t k, int64_t *out)
{
    int64_t r;
    if (!out)
        return MONEY_ERR_INVALID;
    if (__builtin_mul_overflow(a, k, &r))
        return MONEY_ERR_OVERFLOW;
    *out = r;
    return MONEY_OK;
}

money_status money_div_round(i128 num, i128 den, int64_t *out)
{
    if (!out || den == 0)
        return MONEY_ERR_INVALID;
    if (den < 0) {
        /* Both negations are safe for every value the pricing code builds
         * (|num|, |den| < 2^126); reject the one unrepresentable case. */
        if (num == -num && num != 0)
            return MONEY_ERR_OVERFLOW;
        num = -num;
        den = -den;
    }
    i128 q = num / den; /* truncates toward zero */
    i128 r = num % den; /* same sign as num */
    i128 ar = r < 0 ? -r : r;
    i128 rest = den - ar; /* distance to the next multiple, away from zero */
    if (ar > rest || (ar == rest && (q & 1) != 0))
        q += num < 0 ? -1 : 1;
    if (q > INT64_MAX || q < INT64_MIN)
        return MONEY_ERR_OVERFLOW;
    *out = (int64_t)q;
    return MONEY_OK;
}

money_status money_mul_ratio(int64_t a, int64_t num, int64_t den, int64_t *out)
{
    /* |a x num| < 2^126: exact in 128 bits. */
    return money_div_round((i128)a * num, den, out);
}

money_status money_make(int64_t micros, const char *currency, money *out)
{
    if (!out)
        return MONEY_ERR_INVALID;
    if (!money_currency_valid(currency))
        return MONEY_ERR_CURRENCY;
    out->micros = micros;
    memcpy(out->currency, currency, 4);
    return MONEY_OK;
}

static money_status combine(money a, money b, int subtract, money *out)
{
    int64_t r;
    money_status st;
    if (!out)
        return MONEY_ERR_INVALID;
    if (!money_currency_valid(a.currency) || memcmp(a.currency, b.currency, 4) != 0)
        return MONEY_ERR_CURRENCY;
    st = subtract ? money_sub_i64(a.micros, b.micros, &r) : money_add_i64(a.micros, b.micros, &r);
    if (st != MONEY_OK)
        return st;
    out->micros = r;
    memcpy(out->currency, a.currency, 4);
    return MONEY_OK;
}

money_status money_add(money a, money b, money *out)
{
    return combine(a, b, 0, out);
}

money_status money_sub(money a, money b, money *out)
{
    return combine(a, b, 1, out);
}

int money_format(int64_t micros, char *buf, size_t cap)
{
    char tmp[MONEY_FMT_MAX];
    size_t n = 0;
    /* Work on the magnitude as unsigned so INT64_MIN is fine. */
    uint64_t mag = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    uint64_t ip = mag / (uint64_t)MONEY_MICRO, fp = mag % (uint64_t)MONEY_MICRO;
    char digits[24];
    size_t nd = 0;

    if (!buf || cap == 0)
        return -1;
    do {
        digits[nd++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    if (micros < 0)
        tmp[n++] = '-';
    while (nd)
        tmp[n++] = digits[--nd];
    tmp[n++] = '.';
    for (int i = MONEY_FRAC_DIGITS - 1; i >= 0; i--) {
        tmp[n + (size_t)i] = (char)('0' + fp % 10);
        fp /= 10;
    }
    n += MONEY_FRAC_DIGITS;
    if (n + 1 > cap) {
        buf[0] = '\0';
        return -1;
    }
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return (int)n;
}

money_status money_parse(const char *text, int64_t *out)
{
    const char *p = text;
    int neg = 0;
    uint64_t ip = 0, fp = 0;
    int nfrac = 0;

    if (!text || !out)
        return MONEY_ERR_INVALID;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9')
        return MONEY_ERR_INVALID;
    if (*p == '0' && p[1] >= '0' && p[1] <= '9')
        return MONEY_ERR_INVALID; /* leading zero */
    for (; *p >= '0' && *p <= '9'; p++) {
        ip = ip * 10 + (uint64_t)(*p - '0');
        /* 2^63 / 10^6 = 9 223 372 036 854.775808: the integer part is at most
         * 9 223 372 036 854, checked per digit so ip never wraps. */
        if (ip > UINT64_C(9223372036854))
            return MONEY_ERR_OVERFLOW;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return MONEY_ERR_INVALID;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (nfrac == MONEY_FRAC_DIGITS) {
                /* Keep scanning so "1.1234567x" is INVALID, not PRECISION. */
                const char *q = p;
                while (*q >= '0' && *q <= '9')
                    q++;
                return *q ? MONEY_ERR_INVALID : MONEY_ERR_PRECISION;
            }
            fp = fp * 10 + (uint64_t)(*p - '0');
            nfrac++;
        }
    }
    if (*p != '\0')
        return MONEY_ERR_INVALID;
    for (; nfrac < MONEY_FRAC_DIGITS; nfrac++)
        fp *= 10;
    /* ip <= 9.3e12 here, so ip x 10^6 + fp < 9.3e18 fits in uint64. */
    uint64_t mag = ip * (uint64_t)MONEY_MICRO + fp;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return MONEY_ERR_OVERFLOW;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return MONEY_ERR_OVERFLOW;
        *out = (int64_t)mag;
    }
    return MONEY_OK;
}
