/*
 * money.h - money as int64 micro-units of one currency, and nothing else.
 *
 * Representation: an amount is an int64_t count of micro-units (10^-6 of the
 * currency's major unit: 1 USD = 1 000 000). A `money` value pairs it with an
 * ISO 4217 alphabetic code ("USD"). Every operation is checked: a result that
 * does not fit int64 is MONEY_ERR_OVERFLOW, never a wrap, and outputs are left
 * untouched on every error.
 *
 * Rounding: the only rounding rule in pricing is half-to-even at the
 * micro-unit, implemented once here (money_div_round / money_mul_ratio) and
 * used by the rating engine exactly once per line-item amount (see
 * docs/pricing.md). Decimal text is exact: formatting always prints six
 * fraction digits and parsing rejects anything it cannot represent exactly.
 *
 * Pure: no I/O, no allocation, no global state.
 */
#ifndef TALLY_PRICING_MONEY_H
#define TALLY_PRICING_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define MONEY_MICRO INT64_C(1000000) /* micro-units per major unit */
#define MONEY_FRAC_DIGITS 6
/* Longest formatted amount: "-9223372036854.775808" + NUL. */
#define MONEY_FMT_MAX 24

typedef enum {
    MONEY_OK = 0,
    MONEY_ERR_INVALID,   /* NULL argument, malformed text, zero denominator */
    MONEY_ERR_OVERFLOW,  /* result does not fit int64 micro-units */
    MONEY_ERR_PRECISION, /* more than six fraction digits */
    MONEY_ERR_CURRENCY   /* malformed code, or currencies differ */
} money_status;

typedef struct {
    int64_t micros;
    char currency[4]; /* three upper-case ASCII letters + NUL */
} money;

const char *money_status_message(money_status s);

/* 1 when code is three upper-case ASCII letters (the ISO 4217 shape). */
int money_currency_valid(const char *code);

/* ---- raw micro-unit arithmetic (int64) ---------------------------------- */

money_status money_add_i64(int64_t a, int64_t b, int64_t *out);
money_status money_sub_i64(int64_t a, int64_t b, int64_t *out);
/* a x k (k an integer factor, e.g. a count). */
money_status money_mul_i64(int64_t a, int64_t k, int64_t *out);

/* round_half_even(num / den) for 128-bit num and den != 0, into int64.
 * This is THE rounding step of the pricing code. */
money_status money_div_round(__int128 num, __int128 den, int64_t *out);

/* round_half_even(a x num / den): multiply by a rational, one rounding. */
money_status money_mul_ratio(int64_t a, int64_t num, int64_t den, int64_t *out);

/* ---- currency-tagged values --------------------------------------------- */

/* Build a money value; MONEY_ERR_CURRENCY for a malformed code. */
money_status money_make(int64_t micros, const char *currency, money *out);
/* a + b and a - b; MONEY_ERR_CURRENCY when the currencies differ. */
money_status money_add(money a, money b, money *out);
money_status money_sub(money a, money b, money *out);

/* ---- exact decimal text -------------------------------------------------- */

/* Format micro-units as "[-]I.FFFFFF" (always six fraction digits) into buf
 * of cap bytes (MONEY_FMT_MAX suffices). Returns the length, or -1 when buf is
 * too small (buf then holds ""). */
int money_format(int64_t micros, char *buf, size_t cap);

/* Parse "[-]DIGITS[.FRACTION]" exactly: no sign '+', no leading zeros (except
 * a lone "0"), no exponent, no spaces, 1..6 fraction digits when a '.' is
 * present. MONEY_ERR_PRECISION for 7+ fraction digits, MONEY_ERR_OVERFLOW
 * beyond int64 micro-units, MONEY_ERR_INVALID otherwise. */
money_status money_parse(const char *text, int64_t *out);

#endif
