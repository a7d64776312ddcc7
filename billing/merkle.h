/*
 * merkle.h - checkpoints: a signed Merkle root over every partition head, with
 * inclusion proofs and the consistency check between two checkpoints.
 *
 * The tree is RFC 6962 / RFC 9162's Merkle Tree Hash with BLAKE2b-256:
 *   leaf(head) = BLAKE2b-256(0x00 ‖ u32 BE partition ‖ u64 BE seq ‖ head hash)
 *   node(l, r) = BLAKE2b-256(0x01 ‖ l ‖ r)
 *   MTH of n > 1 leaves = node(MTH(first k), MTH(rest)), k = largest power of
 *   two < n; MTH of one leaf is the leaf itself.
 * That is the same tree as pairing leaves bottom-up and promoting an odd last
 * node unchanged to the next level. Leaves are the partition heads in partition
 * order 0..N-1; every partition is present (an empty one as (p, 0, genesis(p))).
 *
 * Checkpoint digest = BLAKE2b-256(checkpoint canonical bytes):
 *   u8 0x01 ‖ u64 number ‖ i64 time_us ‖ u32 partitions ‖ root[32] ‖
 *   prev_digest[32] ‖ str kid
 * and its signature is Ed25519 over "tally-checkpoint-v1" ‖ digest.
 * prev_digest is the digest of checkpoint number-1 (32 zero bytes for number 1),
 * so checkpoints form their own chain.
 */
#ifndef TALLY_LEDGER_MERKLE_H
#define TALLY_LEDGER_MERKLE_H

#include "chain.h"
#include "ledger_txn.h"
#include "sign.h"

#define LEDGER_CKPT_SIG_DOMAIN "tally-checkpoint-v1"
#define LEDGER_CKPT_VERSION 0x01
#define LEDGER_MERKLE_MAX_PATH 32

typedef unsigned char ledger_hash[LEDGER_HASH_BYTES];

/* An inclusion proof (audit path) for leaf `index` in a tree of `size` leaves.
 * path[0] is the sibling nearest the leaf. */
typedef struct ledger_merkle_proof {
    uint32_t index;
    uint32_t size;
    size_t n_path;
    ledger_hash path[LEDGER_MERKLE_MAX_PATH];
} ledger_merkle_proof;

typedef struct ledger_checkpoint {
    uint64_t number; /* 1, 2, 3, … */
    int64_t time_us;
    uint32_t partitions;
    ledger_hash root;
    ledger_hash prev_digest; /* digest of checkpoint number-1; zeros for number 1 */
    char kid[LEDGER_KID_MAX + 1];
    unsigned char sig[LEDGER_SIG_BYTES];
} ledger_checkpoint;

/* Transactions of one partition, in seq order (borrowed). */
typedef struct ledger_segment {
    const ledger_txn *txns;
    size_t n;
} ledger_segment;

void ledger_merkle_leaf(const ledger_head *h, ledger_hash out);
void ledger_merkle_node(const ledger_hash left, const ledger_hash right, ledger_hash out);

/* ledger_merkle_root - MTH of the n leaf hashes packed in leaves (n × 32 bytes), n >= 1
 * (LEDGER_E_BAD_PARTITION_COUNT for 0). No allocation; recursion depth is log2(n). */
ledger_err ledger_merkle_root(const unsigned char *leaves, size_t n, ledger_hash root,
                              ledger_error *err);
/* ledger_merkle_prove - audit path for leaves[index]. */
ledger_err ledger_merkle_prove(const unsigned char *leaves, size_t n, size_t index,
                               ledger_merkle_proof *out, ledger_error *err);
/* ledger_merkle_verify - RFC 9162 2.1.3.2: does leaf at proof->index lead to
 * root? LEDGER_E_BAD_PROOF (malformed: index >= size, wrong path length) or
 * LEDGER_E_ROOT_MISMATCH. */
ledger_err ledger_merkle_verify(const ledger_hash leaf, const ledger_merkle_proof *p,
                                const ledger_hash root, ledger_error *err);

/* ledger_merkle_prove_all - the root and every leaf's audit path in one pass:
 * out[i] becomes the proof of leaves[i] (out has n elements), equal to what
 * ledger_merkle_prove gives for each i, at n - 1 node hashes in all instead of
 * about n per proof. Levels are built bottom-up, an odd last node promoted
 * unchanged (the same tree, merkle.h above). Allocates a scratch copy of the
 * leaves (freed before returning): LEDGER_E_NOMEM. */
ledger_err ledger_merkle_prove_all(const unsigned char *leaves, size_t n, ledger_hash root,
                                   ledger_merkle_proof *out, ledger_error *err);

/* ledger_heads_root / ledger_heads_prove - the same over partition heads;
 * heads[i].partition must be i (LEDGER_E_WRONG_PARTITION otherwise). These
 * allocate a temporary leaf array (freed before returning). */
ledger_err ledger_heads_root(const ledger_head *heads, uint32_t n, ledger_hash root,
                             ledger_error *err);
ledger_err ledger_heads_prove(const ledger_head *heads, uint32_t n, uint32_t partition,
                              ledger_merkle_proof *out, ledger_error *err);

/* ledger_checkpoint_make - fill and sign checkpoint `number` over heads[0..n). */
ledger_err ledger_checkpoint_make(ledger_checkpoint *c, uint64_t number, int64_t time_us,
                                  const ledger_head *heads, uint32_t n,
                                  const ledger_hash prev_digest, const ledger_signer *s,
                                  ledger_error *err);
/* ledger_checkpoint_encode - the checkpoint's canonical bytes into out (replaced). */
ledger_err ledger_checkpoint_encode(const ledger_checkpoint *c, ledger_buf *out, ledger_error *err);
ledger_err ledger_checkpoint_digest(const ledger_checkpoint *c, ledger_hash out, ledger_error *err);
/* ledger_checkpoint_verify - signature by a ring key valid at c->time_us. */
ledger_err ledger_checkpoint_verify(const ledger_checkpoint *c, const ledger_keyring *r,
                                    ledger_error *err);

/* ledger_txn_proof_verify - verify one transaction against a checkpoint:
 *   txns[0] is the transaction; txns[1..n) are the later transactions of its
 *   partition up to and including the head the checkpoint covers;
 *   proof is the inclusion proof of that head (index = partition,
 *   size = c->partitions).
 * Checks the checkpoint signature (when ring is non-NULL), every link, hash and
 * signature from txns[0] to the head, and the head's inclusion in c->root.
 * err->index names the first bad transaction for chain errors. */
ledger_err ledger_txn_proof_verify(const ledger_txn *txns, size_t n,
                                   const ledger_merkle_proof *proof, const ledger_checkpoint *c,
                                   const ledger_keyring *ring, ledger_error *err);

/* Where a consistency check failed: partition and index inside its segment
 * (-1 when the failure is about the checkpoints or heads themselves). */
typedef struct ledger_consistency_at {
    long partition;
    long index;
} ledger_consistency_at;

/* ledger_consistency_verify - a verifier holding an older checkpoint and its
 * heads checks a newer one: no fork, no rollback, no missing transaction.
 *   - both checkpoint signatures (when ring is non-NULL);
 *   - when new number = old number + 1, new->prev_digest is old's digest
 *     (LEDGER_E_CHECKPOINT_LINK);
 *   - new number > old number, new time >= old time, and new partitions >= old
 *     (new partitions start from genesis) — LEDGER_E_ROLLBACK / _BAD_PARTITION_COUNT;
 *   - old_heads give old->root, new_heads give new->root (LEDGER_E_ROOT_MISMATCH);
 *   - for every partition p, segs[p] (the txns with seq old_seq+1 .. new_seq)
 *     chain from the old head and end exactly at new_heads[p]
 *     (chain errors, or LEDGER_E_HEAD_MISMATCH / LEDGER_E_ROLLBACK).
 * segs has new->partitions elements. *at (may be NULL) says where it failed. */
ledger_err ledger_consistency_verify(const ledger_checkpoint *old_c, const ledger_head *old_heads,
                                     const ledger_checkpoint *new_c, const ledger_head *new_heads,
                                     const ledger_segment *segs, const ledger_keyring *ring,
                                     ledger_consistency_at *at, ledger_error *err);

#endif
