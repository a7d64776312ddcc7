/*
 * ids.h - public identifiers: a type prefix and a time-ordered random body.
 *
 * An id is PREFIX "_" followed by 26 Crockford base32 characters encoding
 * 48 bits of milliseconds since the Unix epoch and 80 random bits (the ULID
 * layout). Ids of one type therefore sort by creation time, which is what
 * cursor pagination (`after=ID`) relies on.
 */
#ifndef TALLY_IDS_H
#define TALLY_IDS_H

#include <stddef.h>
#include <stdint.h>

#define ID_BODY_LEN 26
#define ID_MAX_LEN 48 /* prefix (<= 20) + '_' + body + NUL */

/* ids_format - write PREFIX_BODY for the given time and 10 random bytes. Pure. */
int ids_format(char *out, size_t outlen, const char *prefix, uint64_t unix_ms,
               const unsigned char rnd[10]);
/* ids_new - a fresh id using the clock and libsodium's randombytes. Returns 0 or -1. */
int ids_new(char *out, size_t outlen, const char *prefix);
/* ids_new_fast - an id whose random part comes from a per-thread generator
 * seeded from libsodium: unique, not secret (for request ids). */
int ids_new_fast(char *out, size_t outlen, const char *prefix);
/* ids_valid - 1 when s is PREFIX_ followed by 26 valid base32 characters. */
int ids_valid(const char *s, const char *prefix);

#endif
