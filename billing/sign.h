/*
 * sign.h - Ed25519 signatures over ledger hashes, and the key ring that keeps
 * old signatures verifiable after the service key rotates.
 *
 * A transaction's signature is Ed25519 (libsodium crypto_sign_detached) over
 * the 44-byte message  "tally-txn-v1" ‖ hash  (12 ASCII bytes, no NUL, then the
 * 32-byte chain hash). Because the hash covers prev_hash and the canonical
 * bytes, and the canonical bytes include the key id, the signature commits to
 * the whole history of the partition and to the key that made it.
 *
 * A key id is "sk_" + hex of the first 8 bytes of BLAKE2b-256(public key), the
 * same rule as server/keyfile.h. Each ring key has a validity window
 * [valid_from_us, valid_until_us) (valid_until_us == LEDGER_KEY_OPEN: no end); a
 * transaction verifies only under a key whose window contains its inserted_us.
 */
#ifndef TALLY_LEDGER_SIGN_H
#define TALLY_LEDGER_SIGN_H

#include "canon.h"
#include "ledger_txn.h"

#include <stdbool.h>

#define LEDGER_TXN_SIG_DOMAIN "tally-txn-v1"
#define LEDGER_KEYRING_MAX 16
#define LEDGER_KEY_OPEN 0 /* valid_until_us value meaning "still valid" */
#define LEDGER_PK_BYTES 32
#define LEDGER_SK_BYTES 64

typedef struct ledger_key {
    char kid[LEDGER_KID_MAX + 1];
    unsigned char pk[LEDGER_PK_BYTES];
    int64_t valid_from_us;  /* inclusive */
    int64_t valid_until_us; /* exclusive; LEDGER_KEY_OPEN = no end */
} ledger_key;

/* Public keys only; safe to copy and to publish (GET /v1/ledger/keys). */
typedef struct ledger_keyring {
    size_t n;
    ledger_key keys[LEDGER_KEYRING_MAX];
} ledger_keyring;

/* The signing half: a libsodium Ed25519 secret key (seed ‖ public key) and its
 * kid. The caller keeps it in locked memory and wipes it (sodium_memzero). */
typedef struct ledger_signer {
    char kid[LEDGER_KID_MAX + 1];
    unsigned char sk[LEDGER_SK_BYTES];
} ledger_signer;

/* ledger_key_id - "sk_" + 16 hex digits for a public key. */
void ledger_key_id(const unsigned char pk[LEDGER_PK_BYTES], char out[LEDGER_KID_MAX + 1]);

/* ledger_signer_init - copy sk (64 bytes, libsodium layout) and derive the kid
 * from its public half. */
void ledger_signer_init(ledger_signer *s, const unsigned char sk[LEDGER_SK_BYTES]);

void ledger_keyring_init(ledger_keyring *r);
/* ledger_keyring_add - add a public key valid in [from, until). Fails with
 * LEDGER_E_KEYRING_FULL, LEDGER_E_BAD_KID (same key twice) or LEDGER_E_BAD_TIME
 * (until <= from, or a negative time). */
ledger_err ledger_keyring_add(ledger_keyring *r, const unsigned char pk[LEDGER_PK_BYTES],
                              int64_t valid_from_us, int64_t valid_until_us, ledger_error *err);
/* ledger_keyring_find - the key with this kid, or NULL. Borrowed pointer. */
const ledger_key *ledger_keyring_find(const ledger_keyring *r, const char *kid);

/* ledger_sign_hash / ledger_verify_hash - the raw primitive with a domain tag
 * (LEDGER_TXN_SIG_DOMAIN for transactions; merkle.h uses its own). */
void ledger_sign_hash(const char *domain, const unsigned char hash[LEDGER_HASH_BYTES],
                      const unsigned char sk[LEDGER_SK_BYTES], unsigned char sig[LEDGER_SIG_BYTES]);
bool ledger_verify_hash(const char *domain, const unsigned char hash[LEDGER_HASH_BYTES],
                        const unsigned char sig[LEDGER_SIG_BYTES],
                        const unsigned char pk[LEDGER_PK_BYTES]);

/* ledger_ring_verify - find kid in the ring, check that at_us is inside its
 * window, and verify sig over domain ‖ hash. LEDGER_E_UNKNOWN_KEY,
 * LEDGER_E_KEY_NOT_VALID or LEDGER_E_BAD_SIGNATURE on failure. */
ledger_err ledger_ring_verify(const ledger_keyring *r, const char *kid, int64_t at_us,
                              const char *domain, const unsigned char hash[LEDGER_HASH_BYTES],
                              const unsigned char sig[LEDGER_SIG_BYTES], ledger_error *err);

/* ledger_txn_seal - make t ready to store: set t->kid from the signer and
 * t->prev_hash from prev, validate (ledger_txn_validate), compute t->hash
 * (chain.h) and t->sig. scratch may be NULL (a temporary buffer is used);
 * passing one reused buffer avoids an allocation per transaction. On failure t's
 * hash and sig are zeroed. */
ledger_err ledger_txn_seal(ledger_txn *t, const unsigned char prev[LEDGER_HASH_BYTES],
                           const ledger_signer *s, ledger_buf *scratch, ledger_error *err);

/* ledger_txn_verify_sig - verify t->sig over t->hash with the ring key named
 * by t->kid, valid at t->inserted_us. It trusts t->hash: recompute the hash with
 * ledger_txn_compute_hash (or use ledger_chain_step, which does both). */
ledger_err ledger_txn_verify_sig(const ledger_txn *t, const ledger_keyring *r, ledger_error *err);

#endif
