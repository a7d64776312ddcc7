/*
 * keyfile.h - the service's secrets on disk.
 *
 * Signing key (Ed25519, used by the ledger to sign transactions): a JSON file
 *   {"alg":"Ed25519","kid":"sk_…","public_key":"<hex 32 bytes>","seed":"<hex 32 bytes>",
 *    "created_at":"…"}
 * The key id is "sk_" + the first 8 bytes of BLAKE2b-256(public key) in hex, so
 * it names the key without revealing anything. API-key hashing secret: 64 hex
 * characters (32 bytes) and a newline. Both are written with mode 0600 and
 * never overwritten.
 */
#ifndef TALLY_KEYFILE_H
#define TALLY_KEYFILE_H

#include "apikey.h"

#include <sodium.h>
#include <stddef.h>

typedef struct signing_key {
    char kid[24];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
} signing_key;

/* keyfile_write_signing - new Ed25519 key to path (0600, fails if it exists). */
int keyfile_write_signing(const char *path, signing_key *out, char *err, size_t errlen);
/* keyfile_write_secret - new random hashing secret to path (0600, fails if it exists). */
int keyfile_write_secret(const char *path, char *err, size_t errlen);
/* keyfile_load_signing - read and check (public key matches seed). */
int keyfile_load_signing(const char *path, signing_key *out, char *err, size_t errlen);
int keyfile_load_secret(const char *path, unsigned char out[APIKEY_SECRET_LEN], char *err,
                        size_t errlen);
/* keyfile_kid - the key id for a public key. Pure. */
void keyfile_kid(const unsigned char pk[crypto_sign_PUBLICKEYBYTES], char out[24]);

#endif
