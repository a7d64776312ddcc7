/* Unit tests for billing/chain.c and billing/sign.c: partitioned hash chains,
 * tamper detection that names the first bad transaction, and Ed25519
 * signatures under a rotating key ring. */
#include "canon.h"
#include "chain.h"
#include "ledger_txn.h"
#include "sign.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void init(void)
{
    cr_assert(sodium_init() >= 0);
}

TestSuite(ledger_chain, .init = init);
TestSuite(ledger_sign, .init = init);

#define T0 INT64_C(1700000000000000)
#define NPART 4
#define PER_PART 12

static void make_signer(ledger_signer *s, unsigned char pk[32], unsigned char seed_byte)
{
    unsigned char seed[32], sk[64];

    memset(seed, seed_byte, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    ledger_signer_init(s, sk);
    sodium_memzero(sk, sizeof sk);
}

/* A deposit-like transaction anchored on account `anchor`. */
static void make_txn(ledger_txn *t, const char *anchor, int n, int64_t when)
{
    ledger_error e;

    ledger_txn_init(t);
    snprintf(t->id, sizeof t->id, "txn_%026d", n);
    t->kind = LEDGER_KIND_DEPOSIT;
    snprintf(t->memo, sizeof t->memo, "deposit %d", n);
    snprintf(t->idempotency_key, sizeof t->idempotency_key, "idem-%d", n);
    t->effective_us = when;
    t->inserted_us = when;
    cr_assert_eq(ledger_txn_add_entry(t, anchor, "USD", -(1000 + n), &e), LEDGER_OK);
    cr_assert_eq(ledger_txn_add_entry(t, "lac_cash", "USD", 1000 + n, &e), LEDGER_OK);
}

/* Append t to the chain whose head is *h: set partition/seq, seal, advance. */
static void append(ledger_head *h, ledger_txn *t, const ledger_signer *s)
{
    ledger_error e;
    ledger_err rc;

    t->partition = h->partition;
    t->seq = h->seq + 1;
    rc = ledger_txn_seal(t, h->hash, s, NULL, &e);
    cr_assert_eq(rc, LEDGER_OK, "%s: %s", ledger_err_name(rc), e.message);
    h->seq = t->seq;
    memcpy(h->hash, t->hash, 32);
}

/* NPART chains of PER_PART transactions each, accounts routed by partition. */
static ledger_txn chains[NPART][PER_PART];
static ledger_head heads[NPART];
static ledger_keyring ring;
static ledger_signer signer;

static void build_chains(void)
{
    unsigned char pk[32];
    int filled[NPART] = {0}, n = 0;
    ledger_error e;

    make_signer(&signer, pk, 7);
    ledger_keyring_init(&ring);
    cr_assert_eq(ledger_keyring_add(&ring, pk, 0, LEDGER_KEY_OPEN, &e), LEDGER_OK);
    for (uint32_t p = 0; p < NPART; p++)
        ledger_head_genesis(&heads[p], p);
    /* Route accounts acc_0, acc_1, … by the partition rule until all are full. */
    for (int a = 0; n < NPART * PER_PART; a++) {
        char acct[32];
        uint32_t p;
        ledger_txn *t;

        snprintf(acct, sizeof acct, "lac_tenant_%d", a);
        p = ledger_partition_of(acct, NPART);
        if (filled[p] == PER_PART)
            continue;
        t = &chains[p][filled[p]++];
        make_txn(t, acct, n, T0 + n);
        cr_assert_eq(ledger_txn_partition(t, NPART, &t->partition, &e), LEDGER_OK);
        cr_assert_eq(t->partition, p);
        append(&heads[p], t, &signer);
        n++;
    }
}

static ledger_err verify_part(uint32_t p, const ledger_txn *txns, size_t n, size_t *bad,
                              ledger_error *e)
{
    ledger_chain_cursor c;
    ledger_err rc;

    ledger_chain_cursor_genesis(&c, p);
    rc = ledger_chain_verify(&c, txns, n, &ring, bad, e);
    ledger_chain_cursor_free(&c);
    return rc;
}

Test(ledger_chain, genesis_values)
{
    unsigned char g[32];
    char hex[65];

    ledger_genesis(0, g);
    sodium_bin2hex(hex, sizeof hex, g, 32);
    cr_assert_str_eq(hex, "eee37d842ca70e8d66f7014568da2c1aad2e7345a303805affbe5d0ecb971d49");
    ledger_genesis(1, g);
    sodium_bin2hex(hex, sizeof hex, g, 32);
    cr_assert_str_eq(hex, "14dd01703df57dca51e7b6abbc5a000678b6a007bf6bdb89c07853f75f3c10ad");
}

Test(ledger_chain, intact_chains_verify)
{
    ledger_error e;
    size_t bad = 99;

    build_chains();
    for (uint32_t p = 0; p < NPART; p++) {
        ledger_chain_cursor c;
        ledger_head h;

        ledger_chain_cursor_genesis(&c, p);
        cr_assert_eq(ledger_chain_verify(&c, chains[p], PER_PART, &ring, &bad, &e), LEDGER_OK,
                     "partition %u: %s", p, e.message);
        ledger_chain_cursor_head(&c, &h);
        cr_assert_eq(h.seq, PER_PART);
        cr_assert_eq(memcmp(h.hash, heads[p].hash, 32), 0);
        ledger_chain_cursor_free(&c);
    }
}

Test(ledger_chain, resume_from_a_trusted_head)
{
    ledger_chain_cursor c;
    ledger_head mid;
    ledger_error e;

    build_chains();
    ledger_chain_cursor_genesis(&c, 2);
    cr_assert_eq(ledger_chain_verify(&c, chains[2], 5, &ring, NULL, &e), LEDGER_OK);
    ledger_chain_cursor_head(&c, &mid);
    ledger_chain_cursor_free(&c);
    ledger_chain_cursor_from(&c, &mid);
    cr_assert_eq(ledger_chain_verify(&c, chains[2] + 5, PER_PART - 5, &ring, NULL, &e), LEDGER_OK,
                 "%s", e.message);
    ledger_chain_cursor_free(&c);
}

Test(ledger_chain, edited_amount_is_named)
{
    ledger_txn copy[PER_PART];
    ledger_error e;
    size_t bad = 0;

    build_chains();
    memcpy(copy, chains[1], sizeof copy);
    /* Flip one byte of one amount, as a superuser editing a row would. */
    copy[5].entries[1].amount ^= INT64_C(0x100);
    cr_assert_eq(verify_part(1, copy, PER_PART, &bad, &e), LEDGER_E_HASH_MISMATCH);
    cr_assert_eq(bad, 5);
    cr_assert_eq(e.index, 5);
    cr_assert(strstr(e.message, copy[5].id) != NULL, "%s", e.message);
    cr_assert_str_eq(ledger_err_name(e.code), "hash_mismatch");
}

Test(ledger_chain, flipped_byte_in_stored_bytes_is_named)
{
    ledger_txn copy[PER_PART];
    ledger_buf b;
    ledger_error e;
    size_t bad = 0;

    build_chains();
    memcpy(copy, chains[3], sizeof copy);
    ledger_buf_init(&b);
    cr_assert_eq(ledger_canon_encode(&copy[7], &b, &e), LEDGER_OK);
    /* The last 8 bytes are the last entry's amount; flip its lowest byte. */
    b.data[b.len - 1] ^= 0x01;
    {
        unsigned char prev[32], hash[32], sig[64];

        memcpy(prev, copy[7].prev_hash, 32);
        memcpy(hash, copy[7].hash, 32);
        memcpy(sig, copy[7].sig, 64);
        cr_assert_eq(ledger_canon_decode(b.data, b.len, &copy[7], &e), LEDGER_OK);
        memcpy(copy[7].prev_hash, prev, 32);
        memcpy(copy[7].hash, hash, 32);
        memcpy(copy[7].sig, sig, 64);
    }
    cr_assert_eq(verify_part(3, copy, PER_PART, &bad, &e), LEDGER_E_HASH_MISMATCH);
    cr_assert_eq(bad, 7);
    ledger_buf_free(&b);
}

Test(ledger_chain, rehashed_row_fails_its_signature_or_the_next_link)
{
    ledger_txn copy[PER_PART];
    ledger_error e;
    size_t bad = 0;
    ledger_chain_cursor c;

    build_chains();
    memcpy(copy, chains[0], sizeof copy);
    copy[4].entries[0].amount -= 1;
    copy[4].entries[1].amount += 1;
    /* The attacker recomputes the hash but cannot sign. */
    cr_assert_eq(ledger_txn_compute_hash(&copy[4], copy[4].prev_hash, NULL, copy[4].hash, &e),
                 LEDGER_OK);
    cr_assert_eq(verify_part(0, copy, PER_PART, &bad, &e), LEDGER_E_BAD_SIGNATURE);
    cr_assert_eq(bad, 4);
    /* Without signatures, the next row's link gives it away. */
    ledger_chain_cursor_genesis(&c, 0);
    cr_assert_eq(ledger_chain_verify(&c, copy, PER_PART, NULL, &bad, &e), LEDGER_E_PREV_LINK);
    cr_assert_eq(bad, 5);
    ledger_chain_cursor_free(&c);
}

Test(ledger_chain, deleted_and_reordered_rows)
{
    ledger_txn copy[PER_PART];
    ledger_error e;
    size_t bad = 0;

    build_chains();
    /* delete row 3 */
    memcpy(copy, chains[2], 3 * sizeof copy[0]);
    memcpy(copy + 3, chains[2] + 4, (PER_PART - 4) * sizeof copy[0]);
    cr_assert_eq(verify_part(2, copy, PER_PART - 1, &bad, &e), LEDGER_E_SEQUENCE_GAP);
    cr_assert_eq(bad, 3);
    /* swap rows 8 and 9 */
    memcpy(copy, chains[2], sizeof copy);
    copy[8] = chains[2][9];
    copy[9] = chains[2][8];
    cr_assert_eq(verify_part(2, copy, PER_PART, &bad, &e), LEDGER_E_SEQUENCE_GAP);
    cr_assert_eq(bad, 8);
    /* renumber to hide the gap: the link breaks instead */
    memcpy(copy, chains[2], 3 * sizeof copy[0]);
    memcpy(copy + 3, chains[2] + 4, (PER_PART - 4) * sizeof copy[0]);
    for (int i = 3; i < PER_PART - 1; i++)
        copy[i].seq--;
    cr_assert_eq(verify_part(2, copy, PER_PART - 1, &bad, &e), LEDGER_E_PREV_LINK);
    cr_assert_eq(bad, 3);
    /* a row from another partition */
    memcpy(copy, chains[2], sizeof copy);
    copy[6] = chains[1][6];
    cr_assert_eq(verify_part(2, copy, PER_PART, &bad, &e), LEDGER_E_WRONG_PARTITION);
    cr_assert_eq(bad, 6);
}

Test(ledger_chain, signed_but_invalid_is_reported)
{
    ledger_txn t;
    ledger_chain_cursor c;
    ledger_error e;
    unsigned char pk[32];
    ledger_signer s;

    build_chains();
    make_signer(&s, pk, 7);
    make_txn(&t, "lac_x", 1, T0);
    t.entries[1].amount += 1; /* unbalanced */
    t.partition = 0;
    t.seq = 1;
    memcpy(t.kid, s.kid, sizeof t.kid);
    ledger_genesis(0, t.prev_hash);
    cr_assert_eq(ledger_txn_seal(&t, t.prev_hash, &s, NULL, &e), LEDGER_E_UNBALANCED,
                 "seal refuses an invalid transaction");
    cr_assert_eq(ledger_txn_compute_hash(&t, t.prev_hash, NULL, t.hash, &e), LEDGER_OK);
    ledger_sign_hash(LEDGER_TXN_SIG_DOMAIN, t.hash, s.sk, t.sig);
    ledger_chain_cursor_genesis(&c, 0);
    cr_assert_eq(ledger_chain_step(&c, &t, &ring, &e), LEDGER_E_UNBALANCED);
    cr_assert_eq(c.seq, 0, "the cursor does not move on failure");
    ledger_chain_cursor_free(&c);
}

Test(ledger_chain, partition_choice)
{
    int count[8] = {0};
    ledger_txn t;
    ledger_error e;
    uint32_t p;

    for (int i = 0; i < 800; i++) {
        char acct[32];

        snprintf(acct, sizeof acct, "lac_%d", i);
        p = ledger_partition_of(acct, 8);
        cr_assert_lt(p, 8);
        cr_assert_eq(ledger_partition_of(acct, 8), p, "deterministic");
        cr_assert_eq(ledger_partition_of(acct, 1), 0);
        count[p]++;
    }
    for (int i = 0; i < 8; i++)
        cr_assert_gt(count[i], 50, "partition %d got %d of 800", i, count[i]);
    make_txn(&t, "lac_wallet", 1, T0);
    cr_assert_eq(ledger_txn_partition(&t, 8, &p, &e), LEDGER_OK);
    cr_assert_eq(p, 1, "the documented example: lac_wallet is in partition 1 of 8");
    cr_assert_eq(ledger_txn_partition(&t, 0, &p, &e), LEDGER_E_BAD_PARTITION_COUNT);
    cr_assert_eq(ledger_txn_partition(&t, LEDGER_PARTITIONS_MAX + 1, &p, &e),
                 LEDGER_E_BAD_PARTITION_COUNT);
    t.n_entries = 0;
    cr_assert_eq(ledger_txn_partition(&t, 8, &p, &e), LEDGER_E_TOO_FEW_ENTRIES);
}

/* ---- signatures and key rotation ------------------------------------------ */

Test(ledger_sign, key_id_rule)
{
    unsigned char pk[32], h[32];
    char kid[24], expect[24], hex[17];
    ledger_signer s;

    make_signer(&s, pk, 1);
    ledger_key_id(pk, kid);
    crypto_generichash(h, 32, pk, 32, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, 8);
    snprintf(expect, sizeof expect, "sk_%s", hex);
    cr_assert_str_eq(kid, expect);
    cr_assert_str_eq(s.kid, expect, "the signer derives the same kid from its secret key");
    cr_assert_eq(strlen(kid), 19);
}

Test(ledger_sign, rotation_keeps_old_signatures_valid)
{
    unsigned char pka[32], pkb[32];
    ledger_signer a, b;
    ledger_keyring r;
    ledger_head h;
    ledger_txn t[6];
    ledger_chain_cursor c;
    ledger_error e;
    size_t bad;
    const int64_t rotate = T0 + 3;

    make_signer(&a, pka, 0xA1);
    make_signer(&b, pkb, 0xB2);
    ledger_keyring_init(&r);
    cr_assert_eq(ledger_keyring_add(&r, pka, 0, rotate, &e), LEDGER_OK);
    cr_assert_eq(ledger_keyring_add(&r, pkb, rotate, LEDGER_KEY_OPEN, &e), LEDGER_OK);
    cr_assert_not_null(ledger_keyring_find(&r, a.kid));
    cr_assert_str_neq(a.kid, b.kid);

    ledger_head_genesis(&h, 0);
    for (int i = 0; i < 6; i++) {
        make_txn(&t[i], "lac_w", i, T0 + i);
        append(&h, &t[i], T0 + i < rotate ? &a : &b);
    }
    cr_assert_str_eq(t[2].kid, a.kid);
    cr_assert_str_eq(t[3].kid, b.kid);
    ledger_chain_cursor_genesis(&c, 0);
    cr_assert_eq(ledger_chain_verify(&c, t, 6, &r, &bad, &e), LEDGER_OK, "%s", e.message);
    ledger_chain_cursor_free(&c);

    /* The retired key cannot sign after its window. */
    ledger_head_genesis(&h, 0);
    for (int i = 0; i < 6; i++)
        append(&h, &t[i], &a);
    ledger_chain_cursor_genesis(&c, 0);
    cr_assert_eq(ledger_chain_verify(&c, t, 6, &r, &bad, &e), LEDGER_E_KEY_NOT_VALID);
    cr_assert_eq(bad, 3);
    ledger_chain_cursor_free(&c);

    /* A key that is not in the ring. */
    cr_assert_eq(ledger_txn_verify_sig(&t[0], &r, &e), LEDGER_OK);
    {
        ledger_keyring only_b;

        ledger_keyring_init(&only_b);
        ledger_keyring_add(&only_b, pkb, rotate, LEDGER_KEY_OPEN, &e);
        cr_assert_eq(ledger_txn_verify_sig(&t[0], &only_b, &e), LEDGER_E_UNKNOWN_KEY);
        cr_assert(strstr(e.message, a.kid) != NULL);
    }
    /* A signature made by another key under this kid. */
    ledger_sign_hash(LEDGER_TXN_SIG_DOMAIN, t[0].hash, b.sk, t[0].sig);
    cr_assert_eq(ledger_txn_verify_sig(&t[0], &r, &e), LEDGER_E_BAD_SIGNATURE);
}

Test(ledger_sign, domain_separation)
{
    unsigned char pk[32], hash[32], sig[64];
    ledger_signer s;

    make_signer(&s, pk, 3);
    memset(hash, 0x5a, sizeof hash);
    ledger_sign_hash(LEDGER_TXN_SIG_DOMAIN, hash, s.sk, sig);
    cr_assert(ledger_verify_hash(LEDGER_TXN_SIG_DOMAIN, hash, sig, pk));
    cr_assert(!ledger_verify_hash("tally-checkpoint-v1", hash, sig, pk),
              "a transaction signature is not a checkpoint signature");
    hash[31] ^= 1;
    cr_assert(!ledger_verify_hash(LEDGER_TXN_SIG_DOMAIN, hash, sig, pk));
    /* The message is exactly "tally-txn-v1" ‖ hash, with no NUL. */
    {
        unsigned char msg[12 + 32];

        hash[31] ^= 1;
        memcpy(msg, "tally-txn-v1", 12);
        memcpy(msg + 12, hash, 32);
        cr_assert_eq(crypto_sign_verify_detached(sig, msg, sizeof msg, pk), 0);
    }
}

Test(ledger_sign, keyring_rules)
{
    unsigned char pk[32];
    ledger_signer s;
    ledger_keyring r;
    ledger_error e;

    ledger_keyring_init(&r);
    make_signer(&s, pk, 9);
    cr_assert_eq(ledger_keyring_add(&r, pk, 10, 10, &e), LEDGER_E_BAD_TIME);
    cr_assert_eq(ledger_keyring_add(&r, pk, -1, LEDGER_KEY_OPEN, &e), LEDGER_E_BAD_TIME);
    cr_assert_eq(ledger_keyring_add(&r, pk, 10, 20, &e), LEDGER_OK);
    cr_assert_eq(ledger_keyring_add(&r, pk, 30, 40, &e), LEDGER_E_BAD_KID, "no key twice");
    for (int i = 1; i < LEDGER_KEYRING_MAX; i++) {
        make_signer(&s, pk, (unsigned char)(100 + i));
        cr_assert_eq(ledger_keyring_add(&r, pk, 0, LEDGER_KEY_OPEN, &e), LEDGER_OK);
    }
    make_signer(&s, pk, 250);
    cr_assert_eq(ledger_keyring_add(&r, pk, 0, LEDGER_KEY_OPEN, &e), LEDGER_E_KEYRING_FULL);
    cr_assert_null(ledger_keyring_find(&r, "sk_0000000000000000"));
}
