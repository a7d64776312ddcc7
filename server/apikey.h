/*
 * apikey.h - API key material: generation, parsing and keyed hashing.
 *
 * A key is "tly_" followed by 32 random bytes in unpadded base64url (43 chars).
 * It is shown to its owner once; the database stores only
 * BLAKE2b-256(key_hash_secret, key) in hex, so a leaked table does not leak keys
 * and cannot be brute-forced without the service's secret.
 */
#ifndef TALLY_APIKEY_H
#define TALLY_APIKEY_H

#include <stddef.h>

#define APIKEY_PREFIX "tly_"
#define APIKEY_TEXT_LEN (4 + 43)
#define APIKEY_HASH_HEX_LEN 64
#define APIKEY_SECRET_LEN 32

/* apikey_generate - a fresh key into out (>= APIKEY_TEXT_LEN + 1 bytes). */
void apikey_generate(char out[APIKEY_TEXT_LEN + 1]);
/* apikey_well_formed - 1 when s has the shape of a key (cheap check before any lookup). */
int apikey_well_formed(const char *s);
/* apikey_hash - hex keyed hash of key under secret into out (65 bytes). */
void apikey_hash(const unsigned char secret[APIKEY_SECRET_LEN], const char *key,
                 char out[APIKEY_HASH_HEX_LEN + 1]);

#endif
