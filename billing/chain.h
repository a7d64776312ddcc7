/*
 * chain.h - the partitioned hash chain.
 *
 * The ledger is split into N partitions (1 <= N <= LEDGER_PARTITIONS_MAX). Each
 * partition is a chain: its transactions carry seq 1, 2, 3, … with no gaps, and
 *
 *     hash(txn) = BLAKE2b-256(prev_hash ‖ canonical bytes(txn))
 *
 * where prev_hash is the hash of the previous transaction of the partition, or
 * for seq 1 the partition's genesis value
 *
 *     genesis(p) = BLAKE2b-256("tally-ledger-genesis" ‖ u32 BE p)
 *
 * (20 ASCII bytes, no NUL). A partition's head is (partition, seq, hash) of its
 * last transaction, or (p, 0, genesis(p)) while it is empty.
 *
 * Partition choice: a transaction belongs to the partition of its FIRST entry's
 * account (its anchor): the first 8 bytes of BLAKE2b-256(account id) read as a
 * big-endian u64, modulo N. Builders put the owner's account (tenant wallet,
 * provider payable) first so that one owner's transactions share a chain and
 * hot platform accounts never decide the partition.
 */
#ifndef TALLY_LEDGER_CHAIN_H
#define TALLY_LEDGER_CHAIN_H

#include "canon.h"
#include "ledger_txn.h"
#include "sign.h"

#define LEDGER_GENESIS_TAG "tally-ledger-genesis"
#define LEDGER_PARTITIONS_MAX 65536u

typedef struct ledger_head {
    uint32_t partition;
    uint64_t seq; /* 0 while the partition is empty */
    unsigned char hash[LEDGER_HASH_BYTES];
} ledger_head;

/* ledger_genesis - the prev_hash of seq 1 in partition p. */
void ledger_genesis(uint32_t partition, unsigned char out[LEDGER_HASH_BYTES]);
/* ledger_head_genesis - the head of an empty partition. */
void ledger_head_genesis(ledger_head *h, uint32_t partition);

/* ledger_partition_of - partition of an account id among n (1..MAX) partitions. */
uint32_t ledger_partition_of(const char *account, uint32_t n_partitions);
/* ledger_txn_partition - partition of a transaction (its first entry's
 * account). LEDGER_E_TOO_FEW_ENTRIES without entries, LEDGER_E_BAD_PARTITION_COUNT
 * when n is 0 or above LEDGER_PARTITIONS_MAX. */
ledger_err ledger_txn_partition(const ledger_txn *t, uint32_t n_partitions, uint32_t *out,
                                ledger_error *err);

/* ledger_txn_compute_hash - BLAKE2b-256(prev ‖ canonical bytes(t)) into out.
 * scratch may be NULL. Does not read t->prev_hash or t->hash. */
ledger_err ledger_txn_compute_hash(const ledger_txn *t, const unsigned char prev[LEDGER_HASH_BYTES],
                                   ledger_buf *scratch, unsigned char out[LEDGER_HASH_BYTES],
                                   ledger_error *err);

/* A verifier walking one partition in seq order. Start from genesis or from a
 * trusted head (e.g. one covered by a verified checkpoint). */
typedef struct ledger_chain_cursor {
    uint32_t partition;
    uint64_t seq;                          /* seq of the last accepted txn (0: none) */
    unsigned char hash[LEDGER_HASH_BYTES]; /* hash of the last accepted txn */
    ledger_buf scratch;                    /* owned; ledger_chain_cursor_free */
} ledger_chain_cursor;

void ledger_chain_cursor_genesis(ledger_chain_cursor *c, uint32_t partition);
void ledger_chain_cursor_from(ledger_chain_cursor *c, const ledger_head *head);
void ledger_chain_cursor_head(const ledger_chain_cursor *c, ledger_head *out);
void ledger_chain_cursor_free(ledger_chain_cursor *c);

/* ledger_chain_step - accept t as the next transaction of c's partition, or say
 * why not. Checks, in this order, and reports the first failure:
 *   LEDGER_E_WRONG_PARTITION  t->partition differs from the cursor's;
 *   LEDGER_E_SEQUENCE_GAP     t->seq is not the cursor's seq + 1;
 *   LEDGER_E_PREV_LINK        t->prev_hash is not the previous hash;
 *   LEDGER_E_HASH_MISMATCH    t->hash is not BLAKE2b-256(prev ‖ canonical(t))
 *                             (content edited after sealing);
 *   signature errors          (ledger_txn_verify_sig), skipped when ring is NULL;
 *   validation errors         (ledger_txn_validate): a well-signed but invalid txn.
 * On success the cursor advances to t. On failure it does not move. */
ledger_err ledger_chain_step(ledger_chain_cursor *c, const ledger_txn *t,
                             const ledger_keyring *ring, ledger_error *err);

/* ledger_chain_verify - run ledger_chain_step over txns[0..n). On failure
 * returns the code, *bad_index is the index of the first bad transaction and
 * err describes it (err->index is that index as well). */
ledger_err ledger_chain_verify(ledger_chain_cursor *c, const ledger_txn *txns, size_t n,
                               const ledger_keyring *ring, size_t *bad_index, ledger_error *err);

#endif
