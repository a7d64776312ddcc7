/*
 * quote_proof.h - batch signatures for quotes: one Ed25519 signature over the
 * Merkle root of a batch of quote documents, and each quote's proof that it is
 * in the batch. Anyone holding the service's public key verifies a quote
 * offline: document -> leaf -> audit path -> root -> signature.
 *
 *   leaf(doc)  = BLAKE2b-256(0x00 || "tally-quote-leaf-v1\n" || canonical JSON)
 *   node(l, r) = BLAKE2b-256(0x01 || l || r)           (merkle.h)
 *   root       = RFC 9162 Merkle Tree Hash of the batch's leaves, in batch order
 *   signature  = Ed25519("tally-quote-batch-v1" || root)   (32-byte root, raw)
 *
 * A batch of one has root = leaf and an empty path. The tree, its proofs and
 * their verification are the ledger's (billing/merkle.c); this file only fixes
 * the quote leaf and the signature's domain. Pure: no I/O, no clock.
 * Invariant: a quote verifies only if its exact canonical bytes are a leaf of
 * a tree whose root the named key signed.
 */
#ifndef TALLY_QUOTE_PROOF_H
#define TALLY_QUOTE_PROOF_H

#include "merkle.h"

#define QUOTE_LEAF_DOMAIN "tally-quote-leaf-v1\n"
#define QUOTE_BATCH_SIG_DOMAIN "tally-quote-batch-v1"
/* The label clients see in signature.signed. */
#define QUOTE_BATCH_SIGNED_LABEL "tally-quote-batch-v1 || Merkle root"

/* quote_proof_leaf - the leaf hash of one canonical quote document. */
void quote_proof_leaf(const char *doc, size_t len, ledger_hash out);

/* quote_proof_seal - root of leaves[0..n) (n x 32 bytes, n >= 1), every
 * leaf's audit path into proofs[0..n), and sig = the batch signature by sk.
 * LEDGER_E_BAD_PARTITION_COUNT (n out of range) or LEDGER_E_NOMEM. */
ledger_err quote_proof_seal(const unsigned char *leaves, size_t n,
                            const unsigned char sk[LEDGER_SK_BYTES], ledger_hash root,
                            unsigned char sig[LEDGER_SIG_BYTES], ledger_merkle_proof *proofs,
                            ledger_error *err);

/* quote_proof_verify - does doc (its canonical bytes) verify with proof p,
 * the batch root and signature, under public key pk? LEDGER_OK, or
 * LEDGER_E_BAD_PROOF / LEDGER_E_ROOT_MISMATCH (document or path changed) or
 * LEDGER_E_BAD_SIGNATURE (root or signature changed, or another key). */
ledger_err quote_proof_verify(const char *doc, size_t len, const ledger_merkle_proof *p,
                              const ledger_hash root, const unsigned char sig[LEDGER_SIG_BYTES],
                              const unsigned char pk[LEDGER_PK_BYTES], ledger_error *err);

#endif
