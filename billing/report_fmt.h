/*
 * report_fmt.h - the cells of finance reports as text: RFC 4180 CSV fields,
 * exact decimals from scaled integers, device-hours from milliseconds, and
 * JSON string escaping.
 *
 * Every function writes into a caller buffer of cap bytes and returns the
 * length written (without the NUL), or -1 when the buffer is too small (the
 * buffer then holds ""). Decimals are exact: an integer count of 10^-scale
 * units prints as "[-]I.F" with exactly scale fraction digits; nothing passes
 * through a float. Pure: no I/O, no allocation.
 */
#ifndef TALLY_BILLING_REPORT_FMT_H
#define TALLY_BILLING_REPORT_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Longest decimal: 19 digits, sign, point, NUL. */
#define REPORT_DECIMAL_MAX 24

/* report_fmt_decimal - v units of 10^-scale (0 <= scale <= 18) as "[-]I.FFF".
 * Money is scale 6 (the same text as money_format), milli-CU scale 3. */
int report_fmt_decimal(int64_t v, int scale, char *buf, size_t cap);

/* report_fmt_hours - milliseconds as hours with six decimals, rounded half to
 * even at the micro-hour ("1.000000" for 3 600 000 ms). */
int report_fmt_hours(int64_t ms, char *buf, size_t cap);

/* report_fmt_time_ms - unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC,
 * proleptic Gregorian; years 0000-9999, else -1). */
int report_fmt_time_ms(int64_t ms, char *buf, size_t cap);

/* report_csv_needs_quotes - 1 when s must be quoted in CSV (comma, quote, CR, LF,
 * or a leading/trailing space), else 0. */
int report_csv_needs_quotes(const char *s, size_t len);

/* report_csv_field - one CSV field: s as is, or quoted with inner quotes doubled. */
int report_csv_field(const char *s, size_t len, char *buf, size_t cap);

/* report_json_string - s (UTF-8) as a JSON string literal with its quotes;
 * control characters, quote and backslash escaped. */
int report_json_string(const char *s, size_t len, char *buf, size_t cap);

#endif
