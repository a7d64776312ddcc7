/*
 * timefmt.h - ISO-8601 UTC timestamps <-> unix milliseconds, exactly.
 * Accepted: "YYYY-MM-DDTHH:MM:SS[.fff…]Z" (fractions beyond milliseconds are
 * refused rather than rounded). Produced: "YYYY-MM-DDTHH:MM:SS.mmmZ".
 */
#ifndef TALLY_TIMEFMT_H
#define TALLY_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

int timefmt_parse(const char *s, int64_t *unix_ms); /* 0 or -1 */
void timefmt_format(int64_t unix_ms, char *out, size_t len);
int64_t timefmt_now_ms(void);
/* The same at microsecond precision ("…SS[.ffffff]Z" in, "…SS.ffffffZ" out). */
int timefmt_parse_us(const char *s, int64_t *unix_us);
void timefmt_format_us(int64_t unix_us, char *out, size_t len);
/* timefmt_period - "YYYY-MM" of the UTC month containing unix_ms. */
void timefmt_period(int64_t unix_ms, char out[8]);

#endif
