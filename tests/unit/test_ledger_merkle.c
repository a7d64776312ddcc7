/* Unit tests for billing/merkle.c: hand-built trees of 1..5 leaves, inclusion
 * proofs for every leaf of trees of 1..9 leaves, signed checkpoints, proofs of
 * one transaction against a checkpoint, and the consistency check between an
 * older and a newer checkpoint (forks, missing rows, rollbacks). */
#include "chain.h"
#include "ledger_txn.h"
#include "merkle.h"
#include "sign.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void init(void)
{
    cr_assert(sodium_init() >= 0);
}

TestSuite(ledger_merkle, .init = init);
TestSuite(ledger_checkpoint, .init = init);

#define T0 INT64_C(1700000000000000)

static void H(const unsigned char *p, size_t n, ledger_hash out)
{
    crypto_generichash(out, LEDGER_HASH_BYTES, p, n, NULL, 0);
}

/* leaf/node written out from the spec, independent of merkle.c. */
static void spec_node(const ledger_hash l, const ledger_hash r, ledger_hash out)
{
    unsigned char b[65];

    b[0] = 1;
    memcpy(b + 1, l, 32);
    memcpy(b + 33, r, 32);
    H(b, sizeof b, out);
}

/* Leaves 0..n-1: heads (i, i*10, hash = 32 bytes of i). */
static void make_heads(ledger_head *heads, unsigned char *leaves, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        heads[i].partition = i;
        heads[i].seq = (uint64_t)i * 10;
        memset(heads[i].hash, (int)i, 32);
        ledger_merkle_leaf(&heads[i], leaves + 32 * i);
    }
}

Test(ledger_merkle, leaf_encoding)
{
    ledger_head h = {.partition = 0x01020304u, .seq = 0x05060708090a0b0cull};
    unsigned char b[45];
    ledger_hash want, got;

    memset(h.hash, 0xee, 32);
    b[0] = 0x00;
    memcpy(b + 1, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c", 12);
    memset(b + 13, 0xee, 32);
    H(b, sizeof b, want);
    ledger_merkle_leaf(&h, got);
    cr_assert_eq(memcmp(got, want, 32), 0);
}

Test(ledger_merkle, hand_built_trees)
{
    ledger_head heads[5];
    unsigned char L[5 * 32];
    ledger_hash n01, n23, n0123, want, got;
    ledger_error e;

    make_heads(heads, L, 5);
    spec_node(L, L + 32, n01);
    spec_node(L + 64, L + 96, n23);
    spec_node(n01, n23, n0123);

    cr_assert_eq(ledger_merkle_root(L, 1, got, &e), LEDGER_OK);
    cr_assert_eq(memcmp(got, L, 32), 0, "one leaf: the root is the leaf");

    ledger_merkle_root(L, 2, got, &e);
    cr_assert_eq(memcmp(got, n01, 32), 0);

    ledger_merkle_root(L, 3, got, &e);
    spec_node(n01, L + 64, want);
    cr_assert_eq(memcmp(got, want, 32), 0, "three leaves: the third is promoted");

    ledger_merkle_root(L, 4, got, &e);
    cr_assert_eq(memcmp(got, n0123, 32), 0);

    ledger_merkle_root(L, 5, got, &e);
    spec_node(n0123, L + 128, want);
    cr_assert_eq(memcmp(got, want, 32), 0, "five leaves: node(MTH(0..3), leaf 4)");

    cr_assert_eq(ledger_heads_root(heads, 5, got, &e), LEDGER_OK);
    cr_assert_eq(memcmp(got, want, 32), 0);
    cr_assert_eq(ledger_merkle_root(L, 0, got, &e), LEDGER_E_BAD_PARTITION_COUNT);
}

Test(ledger_merkle, hand_built_proofs)
{
    ledger_head heads[5];
    unsigned char L[5 * 32];
    ledger_hash n01, n23, n0123, root;
    ledger_merkle_proof p;
    ledger_error e;

    make_heads(heads, L, 5);
    spec_node(L, L + 32, n01);
    spec_node(L + 64, L + 96, n23);
    spec_node(n01, n23, n0123);
    ledger_merkle_root(L, 5, root, &e);

    cr_assert_eq(ledger_merkle_prove(L, 5, 4, &p, &e), LEDGER_OK);
    cr_assert_eq(p.n_path, 1);
    cr_assert_eq(memcmp(p.path[0], n0123, 32), 0);

    cr_assert_eq(ledger_merkle_prove(L, 5, 2, &p, &e), LEDGER_OK);
    cr_assert_eq(p.n_path, 3);
    cr_assert_eq(memcmp(p.path[0], L + 96, 32), 0);
    cr_assert_eq(memcmp(p.path[1], n01, 32), 0);
    cr_assert_eq(memcmp(p.path[2], L + 128, 32), 0);
    cr_assert_eq(ledger_merkle_verify(L + 64, &p, root, &e), LEDGER_OK);

    cr_assert_eq(ledger_merkle_prove(L, 3, 0, &p, &e), LEDGER_OK);
    cr_assert_eq(p.n_path, 2);
    cr_assert_eq(memcmp(p.path[0], L + 32, 32), 0);
    cr_assert_eq(memcmp(p.path[1], L + 64, 32), 0);

    cr_assert_eq(ledger_merkle_prove(L, 1, 0, &p, &e), LEDGER_OK);
    cr_assert_eq(p.n_path, 0);
    cr_assert_eq(ledger_merkle_verify(L, &p, L, &e), LEDGER_OK);
    cr_assert_eq(ledger_merkle_prove(L, 5, 5, &p, &e), LEDGER_E_BAD_PROOF);
}

Test(ledger_merkle, every_leaf_of_trees_1_to_9)
{
    ledger_head heads[9];
    unsigned char L[9 * 32];
    ledger_error e;

    make_heads(heads, L, 9);
    for (uint32_t n = 1; n <= 9; n++) {
        ledger_hash root;

        cr_assert_eq(ledger_merkle_root(L, n, root, &e), LEDGER_OK);
        for (uint32_t i = 0; i < n; i++) {
            ledger_merkle_proof p, q;

            cr_assert_eq(ledger_heads_prove(heads, n, i, &p, &e), LEDGER_OK);
            cr_assert_eq(ledger_merkle_verify(L + 32 * i, &p, root, &e), LEDGER_OK, "n=%u i=%u: %s",
                         n, i, e.message);
            /* the wrong leaf */
            cr_assert_neq(ledger_merkle_verify(L + 32 * ((i + 1) % 9), &p, root, &e), LEDGER_OK);
            /* any changed path element */
            for (size_t k = 0; k < p.n_path; k++) {
                q = p;
                q.path[k][0] ^= 1;
                cr_assert_eq(ledger_merkle_verify(L + 32 * i, &q, root, &e),
                             LEDGER_E_ROOT_MISMATCH);
            }
            /* claimed at another index or in another tree size */
            if (n > 1) {
                q = p;
                q.index = (i + 1) % n;
                cr_assert_neq(ledger_merkle_verify(L + 32 * i, &q, root, &e), LEDGER_OK,
                              "n=%u i=%u", n, i);
            }
            /* a path one element too short or too long */
            if (p.n_path > 0) {
                q = p;
                q.n_path--;
                cr_assert_neq(ledger_merkle_verify(L + 32 * i, &q, root, &e), LEDGER_OK);
            }
            q = p;
            memset(q.path[q.n_path], 0, 32);
            q.n_path++;
            cr_assert_eq(ledger_merkle_verify(L + 32 * i, &q, root, &e), LEDGER_E_BAD_PROOF);
            q = p;
            q.index = n;
            cr_assert_eq(ledger_merkle_verify(L + 32 * i, &q, root, &e), LEDGER_E_BAD_PROOF);
        }
    }
}

Test(ledger_merkle, heads_must_be_in_partition_order)
{
    ledger_head heads[3];
    unsigned char L[3 * 32];
    ledger_hash root;
    ledger_error e;

    make_heads(heads, L, 3);
    heads[2].partition = 7;
    cr_assert_eq(ledger_heads_root(heads, 3, root, &e), LEDGER_E_WRONG_PARTITION);
    cr_assert_eq(e.index, 2);
}

/* The documented example: 8 partitions, all empty except partition 1 holding
 * the example deposit (docs/ledger-format.md). */
Test(ledger_merkle, documented_root)
{
    ledger_head heads[8];
    ledger_hash root;
    ledger_error e;
    char hex[65];

    for (uint32_t p = 0; p < 8; p++)
        ledger_head_genesis(&heads[p], p);
    heads[1].seq = 1;
    sodium_hex2bin(heads[1].hash, 32,
                   "1220ff5b76b3f7f9dd7fe0b993c7e14a53fb69a6edab419aaba2b473929ee9a4", 64, NULL,
                   NULL, NULL);
    cr_assert_eq(ledger_heads_root(heads, 8, root, &e), LEDGER_OK);
    sodium_bin2hex(hex, sizeof hex, root, 32);
    cr_assert_str_eq(hex, "99d4e3cba96d019b099662241e6defab4861708669f2065efa8179881aab5ec1");
}

/* The documented checkpoint: number 1 over that tree, signed by the example key
 * (seed 00 01 … 1f). */
Test(ledger_checkpoint, documented_vector)
{
    ledger_head heads[8];
    ledger_checkpoint c;
    ledger_signer s;
    ledger_keyring r;
    ledger_buf b;
    ledger_hash zero = {0}, dg;
    unsigned char seed[32], pk[32], sk[64];
    ledger_error e;
    char hex[2 * 108 + 1];

    for (int i = 0; i < 32; i++)
        seed[i] = (unsigned char)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    ledger_signer_init(&s, sk);
    for (uint32_t p = 0; p < 8; p++)
        ledger_head_genesis(&heads[p], p);
    heads[1].seq = 1;
    sodium_hex2bin(heads[1].hash, 32,
                   "1220ff5b76b3f7f9dd7fe0b993c7e14a53fb69a6edab419aaba2b473929ee9a4", 64, NULL,
                   NULL, NULL);
    cr_assert_eq(ledger_checkpoint_make(&c, 1, INT64_C(1700000000000002), heads, 8, zero, &s, &e),
                 LEDGER_OK);
    ledger_buf_init(&b);
    cr_assert_eq(ledger_checkpoint_encode(&c, &b, &e), LEDGER_OK);
    cr_assert_eq(b.len, 108);
    sodium_bin2hex(hex, sizeof hex, b.data, b.len);
    cr_assert_str_eq(hex, "01"
                          "0000000000000001"
                          "00060a24181e4002"
                          "00000008"
                          "99d4e3cba96d019b099662241e6defab4861708669f2065efa8179881aab5ec1"
                          "0000000000000000000000000000000000000000000000000000000000000000"
                          "00000013736b5f39643234653265656166323763326130");
    ledger_buf_free(&b);
    cr_assert_eq(ledger_checkpoint_digest(&c, dg, &e), LEDGER_OK);
    sodium_bin2hex(hex, sizeof hex, dg, 32);
    cr_assert_str_eq(hex, "b852e2f69277f163fa898d2e771fc13a170c05873e045b8919ca3687d423b867");
    sodium_bin2hex(hex, sizeof hex, c.sig, 64);
    cr_assert_str_eq(hex, "a206a00722f053b930d733829b417d13e01f6bb796cdfe35fb595ba20f3dd37a"
                          "850e6b74a1a19f65dafb92d4c7b4a111b0f300b21e159b30bcbc8131ce139308");
    ledger_keyring_init(&r);
    ledger_keyring_add(&r, pk, 0, LEDGER_KEY_OPEN, &e);
    cr_assert_eq(ledger_checkpoint_verify(&c, &r, &e), LEDGER_OK);
    sodium_memzero(sk, sizeof sk);
}

/* ---- checkpoints over real chains ----------------------------------------- */

#define NP 4
#define PER 10
#define OLD_AT 6 /* the old checkpoint covers seq 1..6 of each partition */

static ledger_signer signer;
static ledger_keyring ring;
static ledger_txn txns[NP][PER];

static void setup_chains(void)
{
    unsigned char seed[32], pk[32], sk[64];
    ledger_error e;

    memset(seed, 0x42, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    ledger_signer_init(&signer, sk);
    ledger_keyring_init(&ring);
    cr_assert_eq(ledger_keyring_add(&ring, pk, 0, LEDGER_KEY_OPEN, &e), LEDGER_OK);
    for (uint32_t p = 0; p < NP; p++) {
        ledger_head h;

        ledger_head_genesis(&h, p);
        for (int i = 0; i < PER; i++) {
            ledger_txn *t = &txns[p][i];

            ledger_txn_init(t);
            snprintf(t->id, sizeof t->id, "txn_p%u_%d", p, i);
            t->kind = LEDGER_KIND_ADJUSTMENT;
            t->partition = p;
            t->seq = h.seq + 1;
            t->effective_us = t->inserted_us = T0 + i;
            ledger_txn_add_entry(t, "lac_a", "USD", 5 + i, &e);
            ledger_txn_add_entry(t, "lac_b", "USD", -(5 + i), &e);
            cr_assert_eq(ledger_txn_seal(t, h.hash, &signer, NULL, &e), LEDGER_OK, "%s", e.message);
            h.seq = t->seq;
            memcpy(h.hash, t->hash, 32);
        }
    }
}

/* Heads after the first `upto` transactions of every partition. */
static void heads_at(ledger_head *heads, uint32_t np, int upto)
{
    for (uint32_t p = 0; p < np; p++) {
        if (upto == 0) {
            ledger_head_genesis(&heads[p], p);
            continue;
        }
        heads[p].partition = p;
        heads[p].seq = txns[p][upto - 1].seq;
        memcpy(heads[p].hash, txns[p][upto - 1].hash, 32);
    }
}

static void make_ckpt(ledger_checkpoint *c, uint64_t number, const ledger_head *heads, uint32_t np,
                      const ledger_hash prev)
{
    ledger_error e;

    cr_assert_eq(
        ledger_checkpoint_make(c, number, T0 + 100 * (int64_t)number, heads, np, prev, &signer, &e),
        LEDGER_OK, "%s", e.message);
}

Test(ledger_checkpoint, sign_and_verify)
{
    ledger_head heads[NP];
    ledger_checkpoint c, d;
    ledger_hash zero = {0}, dg;
    ledger_error e;

    setup_chains();
    heads_at(heads, NP, PER);
    make_ckpt(&c, 1, heads, NP, zero);
    cr_assert_eq(c.partitions, NP);
    cr_assert_str_eq(c.kid, signer.kid);
    cr_assert_eq(ledger_checkpoint_verify(&c, &ring, &e), LEDGER_OK, "%s", e.message);
    d = c;
    d.root[0] ^= 1;
    cr_assert_eq(ledger_checkpoint_verify(&d, &ring, &e), LEDGER_E_BAD_SIGNATURE);
    d = c;
    d.number = 2;
    cr_assert_eq(ledger_checkpoint_verify(&d, &ring, &e), LEDGER_E_BAD_SIGNATURE);
    /* checkpoints chain: the next one names this one's digest */
    cr_assert_eq(ledger_checkpoint_digest(&c, dg, &e), LEDGER_OK);
    make_ckpt(&d, 2, heads, NP, dg);
    cr_assert_eq(memcmp(d.prev_digest, dg, 32), 0);
    cr_assert_eq(ledger_checkpoint_make(&d, 0, T0, heads, NP, zero, &signer, &e),
                 LEDGER_E_BAD_SEQUENCE);
}

Test(ledger_checkpoint, one_transaction_against_a_checkpoint)
{
    ledger_head heads[NP];
    ledger_checkpoint c;
    ledger_merkle_proof p;
    ledger_hash zero = {0};
    ledger_txn copy[PER];
    ledger_error e;

    setup_chains();
    heads_at(heads, NP, PER);
    make_ckpt(&c, 1, heads, NP, zero);
    cr_assert_eq(ledger_heads_prove(heads, NP, 2, &p, &e), LEDGER_OK);
    /* txn seq 4 of partition 2, then every later one up to the head */
    cr_assert_eq(ledger_txn_proof_verify(&txns[2][3], PER - 3, &p, &c, &ring, &e), LEDGER_OK, "%s",
                 e.message);
    /* the head itself */
    cr_assert_eq(ledger_txn_proof_verify(&txns[2][PER - 1], 1, &p, &c, &ring, &e), LEDGER_OK);
    /* stopping short of the head does not reach the root */
    cr_assert_eq(ledger_txn_proof_verify(&txns[2][3], PER - 4, &p, &c, &ring, &e),
                 LEDGER_E_ROOT_MISMATCH);
    /* an edited later transaction is named */
    memcpy(copy, txns[2], sizeof copy);
    copy[6].entries[0].amount++;
    cr_assert_eq(ledger_txn_proof_verify(&copy[3], PER - 3, &p, &c, &ring, &e),
                 LEDGER_E_HASH_MISMATCH);
    cr_assert_eq(e.index, 3);
    /* the proof of another partition */
    cr_assert_eq(ledger_txn_proof_verify(&txns[1][3], PER - 3, &p, &c, &ring, &e),
                 LEDGER_E_BAD_PROOF);
    cr_assert_eq(ledger_txn_proof_verify(&txns[2][3], 0, &p, &c, &ring, &e), LEDGER_E_BAD_PROOF);
}

static void segments(ledger_segment *segs, uint32_t np, int from, int to)
{
    for (uint32_t p = 0; p < np; p++) {
        segs[p].txns = &txns[p][from];
        segs[p].n = (size_t)(to - from);
    }
}

Test(ledger_checkpoint, consistency_between_checkpoints)
{
    ledger_head old_h[NP], new_h[NP];
    ledger_checkpoint oc, nc;
    ledger_segment segs[NP];
    ledger_consistency_at at;
    ledger_hash zero = {0}, dg;
    ledger_error e;

    setup_chains();
    heads_at(old_h, NP, OLD_AT);
    heads_at(new_h, NP, PER);
    make_ckpt(&oc, 1, old_h, NP, zero);
    ledger_checkpoint_digest(&oc, dg, NULL);
    make_ckpt(&nc, 2, new_h, NP, dg);
    segments(segs, NP, OLD_AT, PER);
    cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, &ring, &at, &e), LEDGER_OK,
                 "%s", e.message);

    /* nothing new at all is fine as well */
    {
        ledger_checkpoint nc2;
        ledger_segment none[NP];

        make_ckpt(&nc2, 2, old_h, NP, dg);
        segments(none, NP, OLD_AT, OLD_AT);
        cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc2, old_h, none, &ring, &at, &e),
                     LEDGER_OK, "%s", e.message);
    }
    /* a missing transaction at the end of partition 3 */
    segs[3].n--;
    cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, &ring, &at, &e),
                 LEDGER_E_HEAD_MISMATCH);
    cr_assert_eq(at.partition, 3);
    segs[3].n++;
    /* a gap in the middle of partition 1 */
    {
        ledger_txn gap[PER - OLD_AT - 1];

        memcpy(gap, &txns[1][OLD_AT], sizeof gap[0]);
        memcpy(gap + 1, &txns[1][OLD_AT + 2], (PER - OLD_AT - 2) * sizeof gap[0]);
        segs[1].txns = gap;
        segs[1].n = PER - OLD_AT - 1;
        cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, &ring, &at, &e),
                     LEDGER_E_SEQUENCE_GAP);
        cr_assert_eq(at.partition, 1);
        cr_assert_eq(at.index, 1);
        segments(segs, NP, OLD_AT, PER);
    }
    /* the old heads do not match the old checkpoint */
    old_h[0].hash[0] ^= 1;
    cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, &ring, &at, &e),
                 LEDGER_E_ROOT_MISMATCH);
    old_h[0].hash[0] ^= 1;
    /* consecutive checkpoints must link by digest */
    {
        ledger_checkpoint bad;

        make_ckpt(&bad, 2, new_h, NP, zero);
        cr_assert_eq(ledger_consistency_verify(&oc, old_h, &bad, new_h, segs, &ring, &at, &e),
                     LEDGER_E_CHECKPOINT_LINK);
    }
    /* rollback: the "newer" checkpoint is older */
    cr_assert_eq(ledger_consistency_verify(&nc, new_h, &oc, old_h, segs, &ring, &at, &e),
                 LEDGER_E_ROLLBACK);
}

Test(ledger_checkpoint, a_fork_is_caught)
{
    ledger_head old_h[NP], new_h[NP], h;
    ledger_checkpoint oc, nc;
    ledger_segment segs[NP];
    ledger_txn fork[PER];
    ledger_consistency_at at;
    ledger_hash zero = {0}, dg;
    ledger_error e;

    setup_chains();
    heads_at(old_h, NP, OLD_AT);
    make_ckpt(&oc, 1, old_h, NP, zero);
    /* The server rewrites partition 1 from seq 3 on, signs it all with its real
     * key and publishes a new checkpoint over the rewritten head. */
    memcpy(fork, txns[1], sizeof fork);
    h.partition = 1;
    h.seq = fork[1].seq;
    memcpy(h.hash, fork[1].hash, 32);
    for (int i = 2; i < PER; i++) {
        if (i == 2) {
            fork[i].entries[0].amount += 1000;
            fork[i].entries[1].amount -= 1000;
        }
        cr_assert_eq(ledger_txn_seal(&fork[i], h.hash, &signer, NULL, &e), LEDGER_OK);
        h.seq = fork[i].seq;
        memcpy(h.hash, fork[i].hash, 32);
    }
    heads_at(new_h, NP, PER);
    new_h[1] = h;
    ledger_checkpoint_digest(&oc, dg, NULL);
    make_ckpt(&nc, 2, new_h, NP, dg);
    segments(segs, NP, OLD_AT, PER);
    /* Shown the forked branch, the verifier finds its first row does not
     * continue the head it already holds. */
    segs[1].txns = &fork[OLD_AT];
    cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, &ring, &at, &e),
                 LEDGER_E_PREV_LINK);
    cr_assert_eq(at.partition, 1);
    cr_assert_eq(at.index, 0);
    /* Shown the original rows, they do not lead to the new head. */
    segs[1].txns = &txns[1][OLD_AT];
    cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, &ring, &at, &e),
                 LEDGER_E_HEAD_MISMATCH);
    cr_assert_eq(at.partition, 1);
}

Test(ledger_checkpoint, partitions_may_grow)
{
    ledger_head old_h[NP], new_h[NP];
    ledger_checkpoint oc, nc;
    ledger_segment segs[NP];
    ledger_consistency_at at;
    ledger_hash zero = {0};
    ledger_error e;

    setup_chains();
    heads_at(old_h, NP - 1, OLD_AT);
    make_ckpt(&oc, 1, old_h, NP - 1, zero);
    heads_at(new_h, NP, PER);
    make_ckpt(&nc, 5, new_h, NP, zero); /* not consecutive: no digest link to check */
    segments(segs, NP, OLD_AT, PER);
    segs[NP - 1].txns = txns[NP - 1]; /* the new partition from its genesis */
    segs[NP - 1].n = PER;
    cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, &ring, &at, &e), LEDGER_OK,
                 "%s", e.message);
    /* but never shrink */
    nc.partitions = NP - 2;
    cr_assert_eq(ledger_consistency_verify(&oc, old_h, &nc, new_h, segs, NULL, &at, &e),
                 LEDGER_E_BAD_PARTITION_COUNT);
}
