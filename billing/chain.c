/*
 * chain.c - the partitioned hash chain: genesis values, partition choice,
 * transaction hashes and the verifier that walks a partition in order.
 *
 * Invariant checked by ledger_chain_step: after k accepted transactions the
 * cursor holds (partition, k, hash of txn k), every accepted txn had seq = its
 * position, prev_hash = its predecessor's hash and a hash that recomputes.
 */
#include "chain.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

void ledger_genesis(uint32_t partition, unsigned char out[LEDGER_HASH_BYTES])
{
    crypto_generichash_state st;
    unsigned char p[4] = {(unsigned char)(partition >> 24), (unsigned char)(partition >> 16),
                          (unsigned char)(partition >> 8), (unsigned char)partition};

    crypto_generichash_init(&st, NULL, 0, LEDGER_HASH_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)LEDGER_GENESIS_TAG,
                              sizeof LEDGER_GENESIS_TAG - 1);
    crypto_generichash_update(&st, p, sizeof p);
    crypto_generichash_final(&st, out, LEDGER_HASH_BYTES);
}

void ledger_head_genesis(ledger_head *h, uint32_t partition)
{
    h->partition = partition;
    h->seq = 0;
    ledger_genesis(partition, h->hash);
}

uint32_t ledger_partition_of(const char *account, uint32_t n_partitions)
{
    unsigned char h[LEDGER_HASH_BYTES];
    uint64_t v = 0;

    if (n_partitions <= 1)
        return 0;
    crypto_generichash(h, sizeof h, (const unsigned char *)account, strlen(account), NULL, 0);
    for (int i = 0; i < 8; i++)
        v = (v << 8) | h[i];
    return (uint32_t)(v % n_partitions);
}

ledger_err ledger_txn_partition(const ledger_txn *t, uint32_t n_partitions, uint32_t *out,
                                ledger_error *err)
{
    if (n_partitions == 0 || n_partitions > LEDGER_PARTITIONS_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_PARTITION_COUNT, -1, "partitions",
                                "partition count must be 1..%u", LEDGER_PARTITIONS_MAX);
    if (t->n_entries == 0)
        return ledger_error_set(err, LEDGER_E_TOO_FEW_ENTRIES, -1, "entries",
                                "the partition is chosen by the first entry's account");
    *out = ledger_partition_of(t->entries[0].account, n_partitions);
    return LEDGER_OK;
}

ledger_err ledger_txn_compute_hash(const ledger_txn *t, const unsigned char prev[LEDGER_HASH_BYTES],
                                   ledger_buf *scratch, unsigned char out[LEDGER_HASH_BYTES],
                                   ledger_error *err)
{
    ledger_buf local = {NULL, 0, 0};
    ledger_buf *b = scratch ? scratch : &local;
    crypto_generichash_state st;
    ledger_err rc;

    rc = ledger_canon_encode(t, b, err);
    if (rc == LEDGER_OK) {
        crypto_generichash_init(&st, NULL, 0, LEDGER_HASH_BYTES);
        crypto_generichash_update(&st, prev, LEDGER_HASH_BYTES);
        crypto_generichash_update(&st, b->data, b->len);
        crypto_generichash_final(&st, out, LEDGER_HASH_BYTES);
    }
    ledger_buf_free(&local);
    return rc;
}

void ledger_chain_cursor_genesis(ledger_chain_cursor *c, uint32_t partition)
{
    ledger_head h;

    ledger_head_genesis(&h, partition);
    ledger_chain_cursor_from(c, &h);
}

void ledger_chain_cursor_from(ledger_chain_cursor *c, const ledger_head *head)
{
    c->partition = head->partition;
    c->seq = head->seq;
    memcpy(c->hash, head->hash, LEDGER_HASH_BYTES);
    ledger_buf_init(&c->scratch);
}

void ledger_chain_cursor_head(const ledger_chain_cursor *c, ledger_head *out)
{
    out->partition = c->partition;
    out->seq = c->seq;
    memcpy(out->hash, c->hash, LEDGER_HASH_BYTES);
}

void ledger_chain_cursor_free(ledger_chain_cursor *c)
{
    ledger_buf_free(&c->scratch);
}

/* First 8 bytes of a hash in hex, for messages. */
static void short_hex(const unsigned char h[LEDGER_HASH_BYTES], char out[17])
{
    sodium_bin2hex(out, 17, h, 8);
}

ledger_err ledger_chain_step(ledger_chain_cursor *c, const ledger_txn *t,
                             const ledger_keyring *ring, ledger_error *err)
{
    unsigned char h[LEDGER_HASH_BYTES];
    char a[17], b[17];
    ledger_err rc;

    if (t->partition != c->partition)
        return ledger_error_set(err, LEDGER_E_WRONG_PARTITION, -1, "partition",
                                "%s is in partition %u, expected %u", t->id, t->partition,
                                c->partition);
    if (c->seq == UINT64_MAX || t->seq != c->seq + 1)
        return ledger_error_set(
            err, LEDGER_E_SEQUENCE_GAP, -1, "seq", "%s has seq %llu, expected %llu in partition %u",
            t->id, (unsigned long long)t->seq, (unsigned long long)c->seq + 1, c->partition);
    if (sodium_memcmp(t->prev_hash, c->hash, LEDGER_HASH_BYTES) != 0) {
        short_hex(t->prev_hash, a);
        short_hex(c->hash, b);
        return ledger_error_set(err, LEDGER_E_PREV_LINK, -1, "prev_hash",
                                "%s (partition %u, seq %llu) links to %s…, the previous hash "
                                "is %s…",
                                t->id, t->partition, (unsigned long long)t->seq, a, b);
    }
    rc = ledger_txn_compute_hash(t, c->hash, &c->scratch, h, err);
    if (rc != LEDGER_OK)
        return rc;
    if (sodium_memcmp(h, t->hash, LEDGER_HASH_BYTES) != 0) {
        short_hex(t->hash, a);
        short_hex(h, b);
        return ledger_error_set(err, LEDGER_E_HASH_MISMATCH, -1, "hash",
                                "%s (partition %u, seq %llu): stored hash %s…, recomputed %s… "
                                "(the transaction was changed after it was sealed)",
                                t->id, t->partition, (unsigned long long)t->seq, a, b);
    }
    if (ring) {
        rc = ledger_txn_verify_sig(t, ring, err);
        if (rc != LEDGER_OK)
            return rc;
    }
    rc = ledger_txn_validate(t, err);
    if (rc != LEDGER_OK)
        return rc;
    c->seq = t->seq;
    memcpy(c->hash, h, LEDGER_HASH_BYTES);
    return LEDGER_OK;
}

ledger_err ledger_chain_verify(ledger_chain_cursor *c, const ledger_txn *txns, size_t n,
                               const ledger_keyring *ring, size_t *bad_index, ledger_error *err)
{
    for (size_t i = 0; i < n; i++) {
        ledger_err rc = ledger_chain_step(c, &txns[i], ring, err);

        if (rc != LEDGER_OK) {
            if (bad_index)
                *bad_index = i;
            if (err)
                err->index = (long)i;
            return rc;
        }
    }
    return LEDGER_OK;
}
