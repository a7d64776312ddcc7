/*
 * auth.h - bearer API keys: parsing the header, the lookup, and a short cache.
 *
 * A key is looked up by its keyed hash. Positive lookups are cached in process
 * memory for TALLY_AUTH_CACHE_MS (default 2 s, 0 disables). A revocation through
 * this process clears its cache at once; other processes behind the same load
 * balancer notice within that interval. The cache is only a cache.
 */
#ifndef TALLY_AUTH_H
#define TALLY_AUTH_H

#include "apikey.h"

#include <stddef.h>

typedef struct auth_cache auth_cache;

typedef struct auth_identity {
    char account_id[48];
    char key_id[48];
    unsigned role;
} auth_identity;

/* auth_bearer_token - the token in "Bearer TOKEN" (case-insensitive scheme), or NULL. */
const char *auth_bearer_token(const char *authorization);

auth_cache *auth_cache_new(int ttl_ms, size_t capacity);
void auth_cache_free(auth_cache *ac);
/* auth_cache_get - 1 and *out on a fresh hit, 0 otherwise. */
int auth_cache_get(auth_cache *ac, const char *key_hash, auth_identity *out);
void auth_cache_put(auth_cache *ac, const char *key_hash, const auth_identity *id);
/* auth_cache_clear - drop everything (after a revocation). */
void auth_cache_clear(auth_cache *ac);

#endif
