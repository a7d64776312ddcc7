/* Unit tests for billing/quote_proof.c (and ledger_merkle_prove_all): the quote
 * leaf and the batch signature written out from the spec with libsodium alone,
 * a hand-built batch of three, a batch of one (empty path), tampering with the
 * document, the path, the index, the root and the key, and every proof of
 * trees of 1..70 leaves equal to ledger_merkle_prove's. */
#include "merkle.h"
#include "quote_proof.h"
#include "sign.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static unsigned char pk[32], sk[64], pk2[32], sk2[64];

static void init(void)
{
    unsigned char seed[32];

    cr_assert(sodium_init() >= 0);
    memset(seed, 7, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    memset(seed, 8, sizeof seed);
    crypto_sign_seed_keypair(pk2, sk2, seed);
}

TestSuite(quote_proof, .init = init);

static const char *const docs[3] = {
    "{\"id\":\"quo_01\",\"total_micros\":1}",
    "{\"id\":\"quo_02\",\"total_micros\":22}",
    "{\"id\":\"quo_03\",\"total_micros\":333}",
};

/* leaf = BLAKE2b-256(0x00 || "tally-quote-leaf-v1\n" || doc), from the spec. */
static void spec_leaf(const char *doc, ledger_hash out)
{
    unsigned char b[256];
    size_t n = strlen(doc);

    b[0] = 0x00;
    memcpy(b + 1, "tally-quote-leaf-v1\n", 20);
    memcpy(b + 21, doc, n);
    crypto_generichash(out, 32, b, 21 + n, NULL, 0);
}

static void spec_node(const ledger_hash l, const ledger_hash r, ledger_hash out)
{
    unsigned char b[65];

    b[0] = 0x01;
    memcpy(b + 1, l, 32);
    memcpy(b + 33, r, 32);
    crypto_generichash(out, 32, b, sizeof b, NULL, 0);
}

/* Ed25519("tally-quote-batch-v1" || root) checked with libsodium directly. */
static int spec_sig_ok(const ledger_hash root, const unsigned char sig[64],
                       const unsigned char *key)
{
    unsigned char m[20 + 32];

    memcpy(m, "tally-quote-batch-v1", 20);
    memcpy(m + 20, root, 32);
    return crypto_sign_verify_detached(sig, m, sizeof m, key) == 0;
}

static ledger_err verify(int i, const ledger_merkle_proof *p, const ledger_hash root,
                         const unsigned char sig[64], const unsigned char *key)
{
    return quote_proof_verify(docs[i], strlen(docs[i]), p, root, sig, key, NULL);
}

Test(quote_proof, leaf_matches_the_spec)
{
    ledger_hash a, b;

    for (int i = 0; i < 3; i++) {
        quote_proof_leaf(docs[i], strlen(docs[i]), a);
        spec_leaf(docs[i], b);
        cr_assert_eq(memcmp(a, b, 32), 0, "leaf %d", i);
    }
}

Test(quote_proof, batch_of_three_by_hand)
{
    unsigned char leaves[3 * 32], sig[64];
    ledger_hash root, l01, want;
    ledger_merkle_proof p[3];

    for (int i = 0; i < 3; i++)
        spec_leaf(docs[i], leaves + 32 * i);
    spec_node(leaves, leaves + 32, l01);
    spec_node(l01, leaves + 64, want);
    cr_assert_eq(quote_proof_seal(leaves, 3, sk, root, sig, p, NULL), LEDGER_OK);
    cr_assert_eq(memcmp(root, want, 32), 0, "root = node(node(l0, l1), l2)");
    cr_assert(spec_sig_ok(root, sig, pk), "signature over the domain and the root");
    /* paths: l0 -> [l1, l2]; l1 -> [l0, l2]; l2 -> [node(l0, l1)] */
    cr_assert_eq(p[0].n_path, 2);
    cr_assert_eq(memcmp(p[0].path[0], leaves + 32, 32), 0);
    cr_assert_eq(memcmp(p[0].path[1], leaves + 64, 32), 0);
    cr_assert_eq(p[1].n_path, 2);
    cr_assert_eq(memcmp(p[1].path[0], leaves, 32), 0);
    cr_assert_eq(memcmp(p[1].path[1], leaves + 64, 32), 0);
    cr_assert_eq(p[2].n_path, 1);
    cr_assert_eq(memcmp(p[2].path[0], l01, 32), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(p[i].index, (uint32_t)i);
        cr_assert_eq(p[i].size, 3u);
        cr_assert_eq(verify(i, &p[i], root, sig, pk), LEDGER_OK, "quote %d verifies", i);
    }
}

Test(quote_proof, batch_of_one_has_an_empty_path)
{
    unsigned char leaf[32], sig[64];
    ledger_hash root;
    ledger_merkle_proof p;

    spec_leaf(docs[1], leaf);
    cr_assert_eq(quote_proof_seal(leaf, 1, sk, root, sig, &p, NULL), LEDGER_OK);
    cr_assert_eq(memcmp(root, leaf, 32), 0, "the root of one leaf is the leaf");
    cr_assert_eq(p.n_path, 0);
    cr_assert(spec_sig_ok(root, sig, pk));
    cr_assert_eq(verify(1, &p, root, sig, pk), LEDGER_OK);
    cr_assert_neq(verify(0, &p, root, sig, pk), LEDGER_OK, "another document");
}

Test(quote_proof, tampering_is_detected)
{
    unsigned char leaves[3 * 32], sig[64];
    ledger_hash root;
    ledger_merkle_proof p[3], t;
    char doc[64];

    for (int i = 0; i < 3; i++)
        spec_leaf(docs[i], leaves + 32 * i);
    cr_assert_eq(quote_proof_seal(leaves, 3, sk, root, sig, p, NULL), LEDGER_OK);
    /* one byte of the document */
    snprintf(doc, sizeof doc, "%s", docs[0]);
    doc[strlen(doc) - 2] ^= 1;
    cr_assert_eq(quote_proof_verify(doc, strlen(doc), &p[0], root, sig, pk, NULL),
                 LEDGER_E_ROOT_MISMATCH);
    /* one byte of the path */
    t = p[0];
    t.path[1][5] ^= 0x80;
    cr_assert_eq(verify(0, &t, root, sig, pk), LEDGER_E_ROOT_MISMATCH);
    /* a path one hash short, or a wrong index */
    t = p[0];
    t.n_path = 1;
    cr_assert_eq(verify(0, &t, root, sig, pk), LEDGER_E_BAD_PROOF);
    t = p[0];
    t.index = 1;
    cr_assert_neq(verify(0, &t, root, sig, pk), LEDGER_OK);
    t.index = 3;
    cr_assert_eq(verify(0, &t, root, sig, pk), LEDGER_E_BAD_PROOF);
    /* another document's proof */
    cr_assert_neq(verify(0, &p[1], root, sig, pk), LEDGER_OK);
    /* the root, the signature, the key */
    root[0] ^= 1;
    cr_assert_neq(verify(0, &p[0], root, sig, pk), LEDGER_OK);
    root[0] ^= 1;
    sig[10] ^= 1;
    cr_assert_eq(verify(0, &p[0], root, sig, pk), LEDGER_E_BAD_SIGNATURE);
    sig[10] ^= 1;
    cr_assert_eq(verify(0, &p[0], root, sig, pk2), LEDGER_E_BAD_SIGNATURE);
    cr_assert_eq(verify(0, &p[0], root, sig, pk), LEDGER_OK, "untouched again");
}

Test(quote_proof, a_ledger_signature_is_not_a_batch_signature)
{
    unsigned char leaf[32], sig[64];
    ledger_hash root;
    ledger_merkle_proof p;

    spec_leaf(docs[2], leaf);
    cr_assert_eq(quote_proof_seal(leaf, 1, sk, root, sig, &p, NULL), LEDGER_OK);
    ledger_sign_hash(LEDGER_TXN_SIG_DOMAIN, root, sk, sig); /* same key, other domain */
    cr_assert_eq(verify(2, &p, root, sig, pk), LEDGER_E_BAD_SIGNATURE);
}

Test(quote_proof, prove_all_equals_prove_for_every_leaf)
{
    unsigned char leaves[70 * 32];
    ledger_merkle_proof *all = calloc(70, sizeof *all), one;
    ledger_hash root, root1;

    cr_assert_not_null(all);
    for (int i = 0; i < 70; i++) {
        char d[32];
        snprintf(d, sizeof d, "{\"n\":%d}", i);
        spec_leaf(d, leaves + 32 * i);
    }
    for (size_t n = 1; n <= 70; n++) {
        cr_assert_eq(ledger_merkle_prove_all(leaves, n, root, all, NULL), LEDGER_OK);
        cr_assert_eq(ledger_merkle_root(leaves, n, root1, NULL), LEDGER_OK);
        cr_assert_eq(memcmp(root, root1, 32), 0, "root of %zu", n);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(ledger_merkle_prove(leaves, n, i, &one, NULL), LEDGER_OK);
            cr_assert_eq(all[i].n_path, one.n_path, "n %zu leaf %zu", n, i);
            cr_assert_eq(all[i].index, one.index);
            cr_assert_eq(all[i].size, one.size);
            cr_assert_eq(memcmp(all[i].path, one.path, one.n_path * 32), 0, "n %zu leaf %zu", n, i);
            cr_assert_eq(ledger_merkle_verify(leaves + 32 * i, &all[i], root, NULL), LEDGER_OK);
        }
    }
    cr_assert_eq(ledger_merkle_prove_all(leaves, 0, root, all, NULL), LEDGER_E_BAD_PARTITION_COUNT);
    free(all);
}
