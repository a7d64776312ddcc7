/* Unit tests for server/ids.c, server/apikey.c and the auth cache. */
#include "apikey.h"
#include "auth.h"
#include "ids.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

static void init(void)
{
    cr_assert(sodium_init() >= 0);
}

TestSuite(ids, .init = init);
TestSuite(apikey, .init = init);

Test(ids, known_vector)
{
    /* ULID of time 0 and all-zero randomness is 26 zeros; time 1 ms sets the
     * last bit of the 48-bit time, which lands in character 10 (bits 45..49 of
     * the 130-bit padded string): 0b00001 -> '1'... checked by hand below. */
    unsigned char zero[10] = {0};
    unsigned char ones[10];
    char out[ID_MAX_LEN];
    memset(ones, 0xff, sizeof ones);
    cr_assert_eq(ids_format(out, sizeof out, "acc", 0, zero), 0);
    cr_assert_str_eq(out, "acc_00000000000000000000000000");
    cr_assert_eq(ids_format(out, sizeof out, "acc", 1, zero), 0);
    cr_assert_str_eq(out, "acc_00000000010000000000000000");
    cr_assert_eq(ids_format(out, sizeof out, "key", 0xFFFFFFFFFFFFull, ones), 0);
    cr_assert_str_eq(out, "key_7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
}

Test(ids, time_order_is_lexical_order)
{
    unsigned char r1[10], r2[10];
    char a[ID_MAX_LEN], b[ID_MAX_LEN];
    memset(r1, 0xff, sizeof r1);
    memset(r2, 0x00, sizeof r2);
    ids_format(a, sizeof a, "txn", 1700000000000ull, r1);
    ids_format(b, sizeof b, "txn", 1700000000001ull, r2);
    cr_assert_lt(strcmp(a, b), 0);
}

Test(ids, new_ids_are_valid_and_distinct)
{
    char a[ID_MAX_LEN], b[ID_MAX_LEN];
    cr_assert_eq(ids_new(a, sizeof a, "acc"), 0);
    cr_assert_eq(ids_new(b, sizeof b, "acc"), 0);
    cr_assert(ids_valid(a, "acc"));
    cr_assert_str_neq(a, b);
    cr_assert(!ids_valid(a, "key"));
    cr_assert(!ids_valid("acc_0000000000000000000000000", "acc"), "25 chars");
    cr_assert(!ids_valid("acc_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "acc"), "overflowing first char");
    cr_assert(!ids_valid("acc_0000000000000000000000000I", "acc"), "I is not Crockford");
    cr_assert(!ids_valid("acc_0000000000000000000000000a", "acc"), "lower case");
    cr_assert(!ids_valid(NULL, "acc"));
}

Test(ids, rejects_bad_prefix_or_buffer)
{
    unsigned char z[10] = {0};
    char out[8];
    cr_assert_eq(ids_format(out, sizeof out, "acc", 0, z), -1);
    cr_assert_eq(ids_format(out, sizeof out, "", 0, z), -1);
}

Test(apikey, shape_and_hash)
{
    char k[APIKEY_TEXT_LEN + 1], h1[APIKEY_HASH_HEX_LEN + 1], h2[APIKEY_HASH_HEX_LEN + 1];
    unsigned char s1[APIKEY_SECRET_LEN] = {1}, s2[APIKEY_SECRET_LEN] = {2};
    apikey_generate(k);
    cr_assert_eq(strlen(k), APIKEY_TEXT_LEN);
    cr_assert(apikey_well_formed(k));
    apikey_hash(s1, k, h1);
    apikey_hash(s1, k, h2);
    cr_assert_str_eq(h1, h2, "hash is deterministic");
    apikey_hash(s2, k, h2);
    cr_assert_str_neq(h1, h2, "hash depends on the secret");
    cr_assert_eq(strlen(h1), 64);
}

Test(apikey, known_hash_vector)
{
    /* BLAKE2b-256 keyed with 32 zero bytes over "tly_" + 43 'A': computed with
     * libsodium's crypto_generichash; pinned so a change of algorithm is caught. */
    unsigned char s[APIKEY_SECRET_LEN] = {0};
    char k[APIKEY_TEXT_LEN + 1] = "tly_", h[APIKEY_HASH_HEX_LEN + 1];
    unsigned char expect[32];
    char ehex[65];
    memset(k + 4, 'A', 43);
    k[47] = 0;
    crypto_generichash(expect, 32, (const unsigned char *)k, 47, s, 32);
    sodium_bin2hex(ehex, sizeof ehex, expect, 32);
    apikey_hash(s, k, h);
    cr_assert_str_eq(h, ehex);
}

Test(apikey, malformed_keys)
{
    cr_assert(!apikey_well_formed(NULL));
    cr_assert(!apikey_well_formed("tly_short"));
    cr_assert(!apikey_well_formed("xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    cr_assert(!apikey_well_formed("tly_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!"));
    cr_assert(apikey_well_formed("tly_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_"));
}

Test(auth, bearer_parsing)
{
    cr_assert_str_eq(auth_bearer_token("Bearer abc"), "abc");
    cr_assert_str_eq(auth_bearer_token("bearer   abc"), "abc");
    cr_assert_null(auth_bearer_token("Basic abc"));
    cr_assert_null(auth_bearer_token("Bearer "));
    cr_assert_null(auth_bearer_token(NULL));
}

Test(auth, cache_hits_expires_and_clears)
{
    auth_cache *ac = auth_cache_new(100, 16);
    auth_identity id = {"acc_x", "key_y", 8}, got;
    const char *h = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    cr_assert(!auth_cache_get(ac, h, &got));
    auth_cache_put(ac, h, &id);
    cr_assert(auth_cache_get(ac, h, &got));
    cr_assert_str_eq(got.account_id, "acc_x");
    auth_cache_clear(ac);
    cr_assert(!auth_cache_get(ac, h, &got));
    auth_cache_put(ac, h, &id);
    usleep(150000);
    cr_assert(!auth_cache_get(ac, h, &got), "entry must expire");
    auth_cache_free(ac);
}

Test(auth, cache_disabled_with_zero_ttl)
{
    auth_cache *ac = auth_cache_new(0, 16);
    auth_identity id = {"acc_x", "key_y", 8}, got;
    const char *h = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    auth_cache_put(ac, h, &id);
    cr_assert(!auth_cache_get(ac, h, &got));
    auth_cache_free(ac);
}

Test(auth, cache_stays_bounded)
{
    auth_cache *ac = auth_cache_new(10000, 16);
    auth_identity id = {"acc_x", "key_y", 8}, got;
    char h[65];
    for (int i = 0; i < 1000; i++) {
        snprintf(h, sizeof h, "%016x%048d", i * 2654435761u, 0);
        auth_cache_put(ac, h, &id);
        cr_assert(auth_cache_get(ac, h, &got));
    }
    auth_cache_free(ac);
}
