/*
 * merkle.c - RFC 6962-style Merkle tree over partition heads, signed
 * checkpoints, inclusion proofs and the checkpoint-to-checkpoint consistency
 * check.
 *
 * Invariant: a proof verifies against a root only if the leaf is at that index
 * of the very tree the root was computed from (domain-separated leaf/node
 * hashes rule out second-preimage tricks between levels).
 */
#include "merkle.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define LEAF(leaves, i) ((leaves) + (size_t)(i)*LEDGER_HASH_BYTES)

void ledger_merkle_leaf(const ledger_head *h, ledger_hash out)
{
    unsigned char b[1 + 4 + 8 + LEDGER_HASH_BYTES];

    b[0] = 0x00;
    for (int i = 0; i < 4; i++)
        b[1 + i] = (unsigned char)(h->partition >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        b[5 + i] = (unsigned char)(h->seq >> (56 - 8 * i));
    memcpy(b + 13, h->hash, LEDGER_HASH_BYTES);
    crypto_generichash(out, LEDGER_HASH_BYTES, b, sizeof b, NULL, 0);
}

void ledger_merkle_node(const ledger_hash left, const ledger_hash right, ledger_hash out)
{
    unsigned char b[1 + 2 * LEDGER_HASH_BYTES];

    b[0] = 0x01;
    memcpy(b + 1, left, LEDGER_HASH_BYTES);
    memcpy(b + 1 + LEDGER_HASH_BYTES, right, LEDGER_HASH_BYTES);
    crypto_generichash(out, LEDGER_HASH_BYTES, b, sizeof b, NULL, 0);
}

/* Largest power of two strictly below n (n >= 2). */
static size_t split_point(size_t n)
{
    size_t k = 1;

    while (k * 2 < n)
        k *= 2;
    return k;
}

/* MTH(leaves[0..n)), n >= 1. */
static void mth(const unsigned char *leaves, size_t n, ledger_hash out)
{
    ledger_hash l, r;
    size_t k;

    if (n == 1) {
        memcpy(out, leaves, LEDGER_HASH_BYTES);
        return;
    }
    k = split_point(n);
    mth(leaves, k, l);
    mth(LEAF(leaves, k), n - k, r);
    ledger_merkle_node(l, r, out);
}

ledger_err ledger_merkle_root(const unsigned char *leaves, size_t n, ledger_hash root,
                              ledger_error *err)
{
    if (n == 0 || n > LEDGER_PARTITIONS_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_PARTITION_COUNT, -1, "partitions",
                                "a tree has 1..%u leaves", LEDGER_PARTITIONS_MAX);
    mth(leaves, n, root);
    return LEDGER_OK;
}

/* PATH(m, D[0..n)) of RFC 6962 2.1.1, appending to p. */
static void path(const unsigned char *leaves, size_t n, size_t m, ledger_merkle_proof *p)
{
    size_t k;

    if (n <= 1)
        return;
    k = split_point(n);
    if (m < k) {
        path(leaves, k, m, p);
        mth(LEAF(leaves, k), n - k, p->path[p->n_path++]);
    } else {
        path(LEAF(leaves, k), n - k, m - k, p);
        mth(leaves, k, p->path[p->n_path++]);
    }
}

ledger_err ledger_merkle_prove(const unsigned char *leaves, size_t n, size_t index,
                               ledger_merkle_proof *out, ledger_error *err)
{
    if (n == 0 || n > LEDGER_PARTITIONS_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_PARTITION_COUNT, -1, "partitions",
                                "a tree has 1..%u leaves", LEDGER_PARTITIONS_MAX);
    if (index >= n)
        return ledger_error_set(err, LEDGER_E_BAD_PROOF, -1, "index",
                                "leaf %zu is outside a tree of %zu leaves", index, n);
    memset(out, 0, sizeof *out);
    out->index = (uint32_t)index;
    out->size = (uint32_t)n;
    path(leaves, n, index, out);
    return LEDGER_OK;
}

ledger_err ledger_merkle_verify(const ledger_hash leaf, const ledger_merkle_proof *p,
                                const ledger_hash root, ledger_error *err)
{
    uint64_t fn, sn;
    ledger_hash r;

    if (p->size == 0 || p->index >= p->size || p->n_path > LEDGER_MERKLE_MAX_PATH)
        return ledger_error_set(err, LEDGER_E_BAD_PROOF, -1, "proof",
                                "index %u is outside a tree of %u leaves", p->index, p->size);
    fn = p->index;
    sn = (uint64_t)p->size - 1;
    memcpy(r, leaf, LEDGER_HASH_BYTES);
    for (size_t i = 0; i < p->n_path; i++) {
        if (sn == 0)
            return ledger_error_set(err, LEDGER_E_BAD_PROOF, -1, "proof",
                                    "the audit path is longer than the tree is deep");
        if ((fn & 1) || fn == sn) {
            ledger_merkle_node(p->path[i], r, r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            ledger_merkle_node(r, p->path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return ledger_error_set(err, LEDGER_E_BAD_PROOF, -1, "proof",
                                "the audit path is shorter than the tree is deep");
    if (sodium_memcmp(r, root, LEDGER_HASH_BYTES) != 0)
        return ledger_error_set(err, LEDGER_E_ROOT_MISMATCH, -1, "root",
                                "the proof leads to a different root");
    return LEDGER_OK;
}

/* One level up in place: pair cur[0..m) into cur[0..(m+1)/2), promoting an
 * odd last node. Returns the new width. */
static size_t level_up(unsigned char *cur, size_t m)
{
    for (size_t j = 0; j + 1 < m; j += 2)
        ledger_merkle_node(LEAF(cur, j), LEAF(cur, j + 1), LEAF(cur, j / 2));
    if (m & 1)
        memmove(LEAF(cur, m / 2), LEAF(cur, m - 1), LEDGER_HASH_BYTES);
    return (m + 1) / 2;
}

ledger_err ledger_merkle_prove_all(const unsigned char *leaves, size_t n, ledger_hash root,
                                   ledger_merkle_proof *out, ledger_error *err)
{
    unsigned char *cur;
    size_t m = n;

    if (n == 0 || n > LEDGER_PARTITIONS_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_PARTITION_COUNT, -1, "partitions",
                                "a tree has 1..%u leaves", LEDGER_PARTITIONS_MAX);
    cur = malloc(n * LEDGER_HASH_BYTES);
    if (!cur)
        return ledger_error_set(err, LEDGER_E_NOMEM, -1, "", "out of memory");
    memcpy(cur, leaves, n * LEDGER_HASH_BYTES);
    for (size_t i = 0; i < n; i++) {
        out[i].index = (uint32_t)i;
        out[i].size = (uint32_t)n;
        out[i].n_path = 0;
    }
    for (unsigned level = 0; m > 1; level++) {
        for (size_t i = 0; i < n; i++) {
            size_t sib = (i >> level) ^ 1;
            if (sib < m)
                memcpy(out[i].path[out[i].n_path++], LEAF(cur, sib), LEDGER_HASH_BYTES);
        }
        m = level_up(cur, m);
    }
    memcpy(root, cur, LEDGER_HASH_BYTES);
    free(cur);
    return LEDGER_OK;
}

/* Leaves of heads[0..n) into a fresh array (caller frees). */
static ledger_err heads_leaves(const ledger_head *heads, uint32_t n, unsigned char **out,
                               ledger_error *err)
{
    unsigned char *leaves;

    *out = NULL;
    if (n == 0 || n > LEDGER_PARTITIONS_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_PARTITION_COUNT, -1, "partitions",
                                "partition count must be 1..%u", LEDGER_PARTITIONS_MAX);
    leaves = malloc((size_t)n * LEDGER_HASH_BYTES);
    if (!leaves)
        return ledger_error_set(err, LEDGER_E_NOMEM, -1, "", "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        if (heads[i].partition != i) {
            free(leaves);
            return ledger_error_set(err, LEDGER_E_WRONG_PARTITION, (long)i, "heads",
                                    "head %u names partition %u; heads must be in partition "
                                    "order",
                                    i, heads[i].partition);
        }
        ledger_merkle_leaf(&heads[i], LEAF(leaves, i));
    }
    *out = leaves;
    return LEDGER_OK;
}

ledger_err ledger_heads_root(const ledger_head *heads, uint32_t n, ledger_hash root,
                             ledger_error *err)
{
    unsigned char *leaves;
    ledger_err rc = heads_leaves(heads, n, &leaves, err);

    if (rc == LEDGER_OK)
        rc = ledger_merkle_root(leaves, n, root, err);
    free(leaves);
    return rc;
}

ledger_err ledger_heads_prove(const ledger_head *heads, uint32_t n, uint32_t partition,
                              ledger_merkle_proof *out, ledger_error *err)
{
    unsigned char *leaves;
    ledger_err rc = heads_leaves(heads, n, &leaves, err);

    if (rc == LEDGER_OK)
        rc = ledger_merkle_prove(leaves, n, partition, out, err);
    free(leaves);
    return rc;
}

ledger_err ledger_checkpoint_encode(const ledger_checkpoint *c, ledger_buf *out, ledger_error *err)
{
    size_t kl = strnlen(c->kid, sizeof c->kid);

    out->len = 0;
    if (kl == sizeof c->kid)
        return ledger_error_set(err, LEDGER_E_BAD_KID, -1, "kid", "key id is not terminated");
    if (ledger_buf_u8(out, LEDGER_CKPT_VERSION) || ledger_buf_u64(out, c->number) ||
        ledger_buf_i64(out, c->time_us) || ledger_buf_u32(out, c->partitions) ||
        ledger_buf_put(out, c->root, LEDGER_HASH_BYTES) ||
        ledger_buf_put(out, c->prev_digest, LEDGER_HASH_BYTES) || ledger_buf_str(out, c->kid, kl)) {
        out->len = 0;
        return ledger_error_set(err, LEDGER_E_NOMEM, -1, "", "out of memory");
    }
    return LEDGER_OK;
}

ledger_err ledger_checkpoint_digest(const ledger_checkpoint *c, ledger_hash out, ledger_error *err)
{
    ledger_buf b;
    ledger_err rc;

    ledger_buf_init(&b);
    rc = ledger_checkpoint_encode(c, &b, err);
    if (rc == LEDGER_OK)
        crypto_generichash(out, LEDGER_HASH_BYTES, b.data, b.len, NULL, 0);
    ledger_buf_free(&b);
    return rc;
}

ledger_err ledger_checkpoint_make(ledger_checkpoint *c, uint64_t number, int64_t time_us,
                                  const ledger_head *heads, uint32_t n,
                                  const ledger_hash prev_digest, const ledger_signer *s,
                                  ledger_error *err)
{
    ledger_hash digest;
    ledger_err rc;

    memset(c, 0, sizeof *c);
    if (number == 0)
        return ledger_error_set(err, LEDGER_E_BAD_SEQUENCE, -1, "number",
                                "checkpoint numbers start at 1");
    if (time_us < 0 || time_us > LEDGER_TIME_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_TIME, -1, "time", "time out of range");
    rc = ledger_heads_root(heads, n, c->root, err);
    if (rc != LEDGER_OK)
        return rc;
    c->number = number;
    c->time_us = time_us;
    c->partitions = n;
    memcpy(c->prev_digest, prev_digest, LEDGER_HASH_BYTES);
    memcpy(c->kid, s->kid, sizeof c->kid);
    rc = ledger_checkpoint_digest(c, digest, err);
    if (rc != LEDGER_OK)
        return rc;
    ledger_sign_hash(LEDGER_CKPT_SIG_DOMAIN, digest, s->sk, c->sig);
    return LEDGER_OK;
}

ledger_err ledger_checkpoint_verify(const ledger_checkpoint *c, const ledger_keyring *r,
                                    ledger_error *err)
{
    ledger_hash digest;
    ledger_err rc = ledger_checkpoint_digest(c, digest, err);

    if (rc != LEDGER_OK)
        return rc;
    return ledger_ring_verify(r, c->kid, c->time_us, LEDGER_CKPT_SIG_DOMAIN, digest, c->sig, err);
}

ledger_err ledger_txn_proof_verify(const ledger_txn *txns, size_t n,
                                   const ledger_merkle_proof *proof, const ledger_checkpoint *c,
                                   const ledger_keyring *ring, ledger_error *err)
{
    ledger_chain_cursor cur;
    ledger_head start, head;
    ledger_hash leaf;
    ledger_err rc;

    if (ring && (rc = ledger_checkpoint_verify(c, ring, err)) != LEDGER_OK)
        return rc;
    if (n == 0)
        return ledger_error_set(err, LEDGER_E_BAD_PROOF, -1, "transactions",
                                "a proof starts with the transaction it proves");
    if (proof->index != txns[0].partition || proof->size != c->partitions)
        return ledger_error_set(err, LEDGER_E_BAD_PROOF, -1, "proof",
                                "the proof is for leaf %u of %u, expected partition %u of %u",
                                proof->index, proof->size, txns[0].partition, c->partitions);
    /* Start just before txns[0]; its prev_hash is covered by its own hash. */
    start.partition = txns[0].partition;
    start.seq = txns[0].seq - 1;
    memcpy(start.hash, txns[0].prev_hash, LEDGER_HASH_BYTES);
    ledger_chain_cursor_from(&cur, &start);
    rc = ledger_chain_verify(&cur, txns, n, ring, NULL, err);
    ledger_chain_cursor_head(&cur, &head);
    ledger_chain_cursor_free(&cur);
    if (rc != LEDGER_OK)
        return rc;
    ledger_merkle_leaf(&head, leaf);
    return ledger_merkle_verify(leaf, proof, c->root, err);
}

static ledger_err at_fail(ledger_consistency_at *at, long partition, long index, ledger_err rc)
{
    if (at) {
        at->partition = partition;
        at->index = index;
    }
    return rc;
}

ledger_err ledger_consistency_verify(const ledger_checkpoint *old_c, const ledger_head *old_heads,
                                     const ledger_checkpoint *new_c, const ledger_head *new_heads,
                                     const ledger_segment *segs, const ledger_keyring *ring,
                                     ledger_consistency_at *at, ledger_error *err)
{
    ledger_hash root;
    ledger_err rc;

    at_fail(at, -1, -1, LEDGER_OK);
    if (ring) {
        if ((rc = ledger_checkpoint_verify(old_c, ring, err)) != LEDGER_OK ||
            (rc = ledger_checkpoint_verify(new_c, ring, err)) != LEDGER_OK)
            return rc;
    }
    if (new_c->number <= old_c->number || new_c->time_us < old_c->time_us)
        return ledger_error_set(
            err, LEDGER_E_ROLLBACK, -1, "number", "checkpoint %llu does not follow checkpoint %llu",
            (unsigned long long)new_c->number, (unsigned long long)old_c->number);
    if (new_c->number == old_c->number + 1) {
        if ((rc = ledger_checkpoint_digest(old_c, root, err)) != LEDGER_OK)
            return rc;
        if (sodium_memcmp(root, new_c->prev_digest, LEDGER_HASH_BYTES) != 0)
            return ledger_error_set(err, LEDGER_E_CHECKPOINT_LINK, -1, "prev_digest",
                                    "checkpoint %llu does not name checkpoint %llu's digest",
                                    (unsigned long long)new_c->number,
                                    (unsigned long long)old_c->number);
    }
    if (new_c->partitions < old_c->partitions)
        return ledger_error_set(err, LEDGER_E_BAD_PARTITION_COUNT, -1, "partitions",
                                "partition count went down from %u to %u", old_c->partitions,
                                new_c->partitions);
    if ((rc = ledger_heads_root(old_heads, old_c->partitions, root, err)) != LEDGER_OK)
        return rc;
    if (sodium_memcmp(root, old_c->root, LEDGER_HASH_BYTES) != 0)
        return ledger_error_set(err, LEDGER_E_ROOT_MISMATCH, -1, "old_heads",
                                "the old heads do not give checkpoint %llu's root",
                                (unsigned long long)old_c->number);
    if ((rc = ledger_heads_root(new_heads, new_c->partitions, root, err)) != LEDGER_OK)
        return rc;
    if (sodium_memcmp(root, new_c->root, LEDGER_HASH_BYTES) != 0)
        return ledger_error_set(err, LEDGER_E_ROOT_MISMATCH, -1, "new_heads",
                                "the new heads do not give checkpoint %llu's root",
                                (unsigned long long)new_c->number);
    for (uint32_t p = 0; p < new_c->partitions; p++) {
        ledger_chain_cursor cur;
        ledger_head reached;
        size_t bad = 0;

        if (p < old_c->partitions)
            ledger_chain_cursor_from(&cur, &old_heads[p]);
        else
            ledger_chain_cursor_genesis(&cur, p);
        if (new_heads[p].seq < cur.seq) {
            ledger_chain_cursor_free(&cur);
            return at_fail(at, p, -1,
                           ledger_error_set(err, LEDGER_E_ROLLBACK, p, "new_heads",
                                            "partition %u went back from seq %llu to %llu", p,
                                            (unsigned long long)cur.seq,
                                            (unsigned long long)new_heads[p].seq));
        }
        rc = ledger_chain_verify(&cur, segs[p].txns, segs[p].n, ring, &bad, err);
        ledger_chain_cursor_head(&cur, &reached);
        ledger_chain_cursor_free(&cur);
        if (rc != LEDGER_OK)
            return at_fail(at, p, (long)bad, rc);
        if (reached.seq != new_heads[p].seq ||
            sodium_memcmp(reached.hash, new_heads[p].hash, LEDGER_HASH_BYTES) != 0)
            return at_fail(at, p, -1,
                           ledger_error_set(err, LEDGER_E_HEAD_MISMATCH, p, "new_heads",
                                            "partition %u: the transactions lead to seq %llu, "
                                            "the new checkpoint's head is seq %llu with another "
                                            "hash (fork or missing transactions)",
                                            p, (unsigned long long)reached.seq,
                                            (unsigned long long)new_heads[p].seq));
    }
    return LEDGER_OK;
}
