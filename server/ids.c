/*
 * ids.c - ULID-layout identifiers with a type prefix.
 * Invariant: the body is exactly 26 upper-case Crockford base32 characters, the
 * first 10 of which encode the creation time, so lexical order is time order.
 */
#include "ids.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int ids_format(char *out, size_t outlen, const char *prefix, uint64_t unix_ms,
               const unsigned char rnd[10])
{
    size_t plen = strlen(prefix);
    unsigned char raw[16];
    char *p;
    int bit;

    if (plen == 0 || plen > 20 || outlen < plen + 1 + ID_BODY_LEN + 1)
        return -1;
    for (int i = 0; i < 6; i++)
        raw[i] = (unsigned char)(unix_ms >> (40 - 8 * i));
    memcpy(raw + 6, rnd, 10);
    memcpy(out, prefix, plen);
    out[plen] = '_';
    p = out + plen + 1;
    /* 128 bits -> 26 characters of 5 bits; the first character carries 3 bits. */
    bit = -2;
    for (int c = 0; c < ID_BODY_LEN; c++, bit += 5) {
        unsigned v = 0;
        for (int b = 0; b < 5; b++) {
            int pos = bit + b;
            v <<= 1;
            if (pos >= 0)
                v |= (raw[pos / 8] >> (7 - pos % 8)) & 1u;
        }
        p[c] = b32[v];
    }
    p[ID_BODY_LEN] = '\0';
    return 0;
}

int ids_new(char *out, size_t outlen, const char *prefix)
{
    struct timespec ts;
    unsigned char rnd[10];

    clock_gettime(CLOCK_REALTIME, &ts);
    randombytes_buf(rnd, sizeof rnd);
    return ids_format(out, outlen, prefix,
                      (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u, rnd);
}

/* xoshiro128-style state per thread, seeded once with randombytes. */
static __thread uint64_t fast_state[2];

static uint64_t fast_next(void)
{
    uint64_t s1 = fast_state[0];
    const uint64_t s0 = fast_state[1];

    if (!(fast_state[0] | fast_state[1])) {
        randombytes_buf(fast_state, sizeof fast_state);
        fast_state[0] |= 1;
        s1 = fast_state[0];
    }
    fast_state[0] = s0;
    s1 ^= s1 << 23;
    fast_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return fast_state[1] + s0; /* xorshift128+ */
}

int ids_new_fast(char *out, size_t outlen, const char *prefix)
{
    struct timespec ts;
    unsigned char rnd[10];
    uint64_t a = fast_next(), b = fast_next();

    clock_gettime(CLOCK_REALTIME, &ts);
    memcpy(rnd, &a, 8);
    memcpy(rnd + 8, &b, 2);
    return ids_format(out, outlen, prefix,
                      (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u, rnd);
}

int ids_valid(const char *s, const char *prefix)
{
    size_t plen = strlen(prefix);

    if (!s || strncmp(s, prefix, plen) != 0 || s[plen] != '_')
        return 0;
    s += plen + 1;
    if (strlen(s) != ID_BODY_LEN || s[0] > '7')
        return 0;
    for (int i = 0; i < ID_BODY_LEN; i++)
        if (!strchr(b32, s[i]) || s[i] == '\0')
            return 0;
    return 1;
}
