/*
 * auth.c - bearer parsing and the API-key cache (open addressing, one mutex).
 * Invariant: an entry is served only before its expiry; a full table is
 * cleared rather than grown, so memory stays bounded.
 */
#include "auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct auth_entry {
    char key_hash[APIKEY_HASH_HEX_LEN + 1];
    auth_identity id;
    long long expires_ms;
};

struct auth_cache {
    pthread_mutex_t mu;
    int ttl_ms;
    size_t capacity, used;
    struct auth_entry *slots;
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *auth_bearer_token(const char *h)
{
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

auth_cache *auth_cache_new(int ttl_ms, size_t capacity)
{
    auth_cache *ac = calloc(1, sizeof *ac);

    if (!ac)
        return NULL;
    ac->ttl_ms = ttl_ms;
    ac->capacity = capacity < 16 ? 16 : capacity;
    ac->slots = calloc(ac->capacity, sizeof *ac->slots);
    if (!ac->slots) {
        free(ac);
        return NULL;
    }
    pthread_mutex_init(&ac->mu, NULL);
    return ac;
}

void auth_cache_free(auth_cache *ac)
{
    if (!ac)
        return;
    pthread_mutex_destroy(&ac->mu);
    free(ac->slots);
    free(ac);
}

/* The hash is already uniformly random hex: its first 16 digits make a fine index. */
static size_t slot_of(const auth_cache *ac, const char *key_hash)
{
    unsigned long long v;
    char head[17];

    memcpy(head, key_hash, 16);
    head[16] = '\0';
    v = strtoull(head, NULL, 16);
    return (size_t)(v % ac->capacity);
}

int auth_cache_get(auth_cache *ac, const char *key_hash, auth_identity *out)
{
    int hit = 0;

    if (!ac || ac->ttl_ms <= 0)
        return 0;
    pthread_mutex_lock(&ac->mu);
    for (size_t i = slot_of(ac, key_hash), n = 0; n < ac->capacity;
         n++, i = (i + 1) % ac->capacity) {
        struct auth_entry *e = &ac->slots[i];
        if (!e->key_hash[0])
            break;
        if (!strcmp(e->key_hash, key_hash)) {
            if (e->expires_ms > mono_ms()) {
                *out = e->id;
                hit = 1;
            }
            break;
        }
    }
    pthread_mutex_unlock(&ac->mu);
    return hit;
}

void auth_cache_put(auth_cache *ac, const char *key_hash, const auth_identity *id)
{
    if (!ac || ac->ttl_ms <= 0)
        return;
    pthread_mutex_lock(&ac->mu);
    if (ac->used * 2 >= ac->capacity) {
        memset(ac->slots, 0, ac->capacity * sizeof *ac->slots);
        ac->used = 0;
    }
    for (size_t i = slot_of(ac, key_hash);; i = (i + 1) % ac->capacity) {
        struct auth_entry *e = &ac->slots[i];
        if (!e->key_hash[0] || !strcmp(e->key_hash, key_hash)) {
            if (!e->key_hash[0])
                ac->used++;
            memcpy(e->key_hash, key_hash, sizeof e->key_hash);
            e->id = *id;
            e->expires_ms = mono_ms() + ac->ttl_ms;
            break;
        }
    }
    pthread_mutex_unlock(&ac->mu);
}

void auth_cache_clear(auth_cache *ac)
{
    if (!ac)
        return;
    pthread_mutex_lock(&ac->mu);
    memset(ac->slots, 0, ac->capacity * sizeof *ac->slots);
    ac->used = 0;
    pthread_mutex_unlock(&ac->mu);
}
