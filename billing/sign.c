/*
 * sign.c - Ed25519 over domain-tagged hashes, the public key ring with
 * validity windows, and sealing a transaction (hash + signature).
 *
 * Invariant: a sealed transaction's sig verifies under the ring key named by
 * its kid only when its inserted_us falls inside that key's window.
 */
#include "sign.h"

#include "chain.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Signed message: domain (ASCII, no NUL) ‖ 32-byte hash. Domains are short. */
#define MSG_MAX 64

static size_t build_msg(const char *domain, const unsigned char hash[LEDGER_HASH_BYTES],
                        unsigned char msg[MSG_MAX + LEDGER_HASH_BYTES])
{
    size_t d = strnlen(domain, MSG_MAX);

    memcpy(msg, domain, d);
    memcpy(msg + d, hash, LEDGER_HASH_BYTES);
    return d + LEDGER_HASH_BYTES;
}

void ledger_key_id(const unsigned char pk[LEDGER_PK_BYTES], char out[LEDGER_KID_MAX + 1])
{
    unsigned char h[32];
    char hex[17];

    crypto_generichash(h, sizeof h, pk, LEDGER_PK_BYTES, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, 8);
    snprintf(out, LEDGER_KID_MAX + 1, "sk_%s", hex);
}

void ledger_signer_init(ledger_signer *s, const unsigned char sk[LEDGER_SK_BYTES])
{
    unsigned char pk[LEDGER_PK_BYTES];

    memcpy(s->sk, sk, LEDGER_SK_BYTES);
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    ledger_key_id(pk, s->kid);
}

void ledger_keyring_init(ledger_keyring *r)
{
    memset(r, 0, sizeof *r);
}

ledger_err ledger_keyring_add(ledger_keyring *r, const unsigned char pk[LEDGER_PK_BYTES],
                              int64_t valid_from_us, int64_t valid_until_us, ledger_error *err)
{
    ledger_key k;

    if (r->n >= LEDGER_KEYRING_MAX)
        return ledger_error_set(err, LEDGER_E_KEYRING_FULL, -1, "keys",
                                "the key ring holds at most %d keys", LEDGER_KEYRING_MAX);
    if (valid_from_us < 0 || valid_until_us < 0 ||
        (valid_until_us != LEDGER_KEY_OPEN && valid_until_us <= valid_from_us))
        return ledger_error_set(err, LEDGER_E_BAD_TIME, -1, "valid_until",
                                "a key's validity window must be non-empty");
    ledger_key_id(pk, k.kid);
    if (ledger_keyring_find(r, k.kid))
        return ledger_error_set(err, LEDGER_E_BAD_KID, -1, "kid", "key %s is already in the ring",
                                k.kid);
    memcpy(k.pk, pk, LEDGER_PK_BYTES);
    k.valid_from_us = valid_from_us;
    k.valid_until_us = valid_until_us;
    r->keys[r->n++] = k;
    return LEDGER_OK;
}

const ledger_key *ledger_keyring_find(const ledger_keyring *r, const char *kid)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->keys[i].kid, kid) == 0)
            return &r->keys[i];
    return NULL;
}

void ledger_sign_hash(const char *domain, const unsigned char hash[LEDGER_HASH_BYTES],
                      const unsigned char sk[LEDGER_SK_BYTES], unsigned char sig[LEDGER_SIG_BYTES])
{
    unsigned char msg[MSG_MAX + LEDGER_HASH_BYTES];
    size_t n = build_msg(domain, hash, msg);

    crypto_sign_detached(sig, NULL, msg, n, sk);
}

bool ledger_verify_hash(const char *domain, const unsigned char hash[LEDGER_HASH_BYTES],
                        const unsigned char sig[LEDGER_SIG_BYTES],
                        const unsigned char pk[LEDGER_PK_BYTES])
{
    unsigned char msg[MSG_MAX + LEDGER_HASH_BYTES];
    size_t n = build_msg(domain, hash, msg);

    return crypto_sign_verify_detached(sig, msg, n, pk) == 0;
}

ledger_err ledger_ring_verify(const ledger_keyring *r, const char *kid, int64_t at_us,
                              const char *domain, const unsigned char hash[LEDGER_HASH_BYTES],
                              const unsigned char sig[LEDGER_SIG_BYTES], ledger_error *err)
{
    const ledger_key *k = ledger_keyring_find(r, kid);

    if (!k)
        return ledger_error_set(err, LEDGER_E_UNKNOWN_KEY, -1, "kid",
                                "signed by key %s, which is not in the key ring", kid);
    if (at_us < k->valid_from_us ||
        (k->valid_until_us != LEDGER_KEY_OPEN && at_us >= k->valid_until_us))
        return ledger_error_set(err, LEDGER_E_KEY_NOT_VALID, -1, "kid",
                                "key %s is valid from %lld to %lld, not at %lld", kid,
                                (long long)k->valid_from_us, (long long)k->valid_until_us,
                                (long long)at_us);
    if (!ledger_verify_hash(domain, hash, sig, k->pk))
        return ledger_error_set(err, LEDGER_E_BAD_SIGNATURE, -1, "sig",
                                "the signature does not verify under key %s", kid);
    return LEDGER_OK;
}

ledger_err ledger_txn_seal(ledger_txn *t, const unsigned char prev[LEDGER_HASH_BYTES],
                           const ledger_signer *s, ledger_buf *scratch, ledger_error *err)
{
    ledger_err rc;

    memset(t->hash, 0, sizeof t->hash);
    memset(t->sig, 0, sizeof t->sig);
    memcpy(t->kid, s->kid, sizeof t->kid);
    memmove(t->prev_hash, prev, LEDGER_HASH_BYTES);
    rc = ledger_txn_validate(t, err);
    if (rc != LEDGER_OK)
        return rc;
    rc = ledger_txn_compute_hash(t, t->prev_hash, scratch, t->hash, err);
    if (rc != LEDGER_OK)
        return rc;
    ledger_sign_hash(LEDGER_TXN_SIG_DOMAIN, t->hash, s->sk, t->sig);
    return LEDGER_OK;
}

ledger_err ledger_txn_verify_sig(const ledger_txn *t, const ledger_keyring *r, ledger_error *err)
{
    return ledger_ring_verify(r, t->kid, t->inserted_us, LEDGER_TXN_SIG_DOMAIN, t->hash, t->sig,
                              err);
}
