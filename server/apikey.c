/*
 * apikey.c - generate and hash API keys with libsodium.
 * Invariant: plaintext keys never leave this module except to be shown once.
 */
#include "apikey.h"

#include <sodium.h>
#include <string.h>

void apikey_generate(char out[APIKEY_TEXT_LEN + 1])
{
    unsigned char raw[32];

    randombytes_buf(raw, sizeof raw);
    memcpy(out, APIKEY_PREFIX, 4);
    sodium_bin2base64(out + 4, APIKEY_TEXT_LEN + 1 - 4, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

int apikey_well_formed(const char *s)
{
    if (!s || strlen(s) != APIKEY_TEXT_LEN || strncmp(s, APIKEY_PREFIX, 4) != 0)
        return 0;
    for (const char *p = s + 4; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

void apikey_hash(const unsigned char secret[APIKEY_SECRET_LEN], const char *key,
                 char out[APIKEY_HASH_HEX_LEN + 1])
{
    unsigned char h[32];

    crypto_generichash(h, sizeof h, (const unsigned char *)key, strlen(key), secret,
                       APIKEY_SECRET_LEN);
    sodium_bin2hex(out, APIKEY_HASH_HEX_LEN + 1, h, sizeof h);
}
