/*
 * quote_proof.c - the quote leaf hash, the batch seal and the offline check
 * (see quote_proof.h). The Merkle tree is merkle.c's; the signature primitive
 * is sign.c's.
 */
#include "quote_proof.h"

#include <sodium.h>
#include <string.h>

void quote_proof_leaf(const char *doc, size_t len, ledger_hash out)
{
    static const unsigned char prefix = 0x00;
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, LEDGER_HASH_BYTES);
    crypto_generichash_update(&st, &prefix, 1);
    crypto_generichash_update(&st, (const unsigned char *)QUOTE_LEAF_DOMAIN,
                              strlen(QUOTE_LEAF_DOMAIN));
    crypto_generichash_update(&st, (const unsigned char *)doc, len);
    crypto_generichash_final(&st, out, LEDGER_HASH_BYTES);
}

ledger_err quote_proof_seal(const unsigned char *leaves, size_t n,
                            const unsigned char sk[LEDGER_SK_BYTES], ledger_hash root,
                            unsigned char sig[LEDGER_SIG_BYTES], ledger_merkle_proof *proofs,
                            ledger_error *err)
{
    ledger_err rc = ledger_merkle_prove_all(leaves, n, root, proofs, err);

    if (rc == LEDGER_OK)
        ledger_sign_hash(QUOTE_BATCH_SIG_DOMAIN, root, sk, sig);
    return rc;
}

ledger_err quote_proof_verify(const char *doc, size_t len, const ledger_merkle_proof *p,
                              const ledger_hash root, const unsigned char sig[LEDGER_SIG_BYTES],
                              const unsigned char pk[LEDGER_PK_BYTES], ledger_error *err)
{
    ledger_hash leaf;
    ledger_err rc;

    quote_proof_leaf(doc, len, leaf);
    rc = ledger_merkle_verify(leaf, p, root, err);
    if (rc != LEDGER_OK)
        return rc;
    if (!ledger_verify_hash(QUOTE_BATCH_SIG_DOMAIN, root, sig, pk))
        return ledger_error_set(err, LEDGER_E_BAD_SIGNATURE, -1, "signature",
                                "the batch signature does not verify under this key");
    return LEDGER_OK;
}
