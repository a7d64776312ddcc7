/* Unit tests for billing/canon.c and billing/ledger_txn.c: the canonical-bytes
 * test vector (the same one docs/ledger-format.md walks through), round trips,
 * decoder rejections and transaction validation (double entry per currency). */
#include "canon.h"
#include "chain.h"
#include "ledger_txn.h"
#include "sign.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void init(void)
{
    cr_assert(sodium_init() >= 0);
}

TestSuite(ledger_canon, .init = init);
TestSuite(ledger_validate, .init = init);

/* The documented example: see docs/ledger-format.md, "Worked example". */
static const char VECTOR_HEX[] =
    "01" /* version */
    "0000001e"
    "74786e5f30314856365a34414358384e3251334d35524737544239574b44" /* id */
    "00000001"                                                     /* partition 1 */
    "0000000000000001"                                             /* seq 1 */
    "01"                                                           /* kind deposit */
    "00000006"
    "746f702d7570" /* memo "top-up" */
    "00"           /* order_id absent */
    "00"           /* usage_id absent */
    "01"
    "00000005"
    "696e765f37" /* invoice_id inv_7 */
    "00"         /* reverses_id absent */
    "01"
    "00000002"
    "6b31"             /* idempotency key k1 */
    "00060a24181e4000" /* effective_us */
    "00060a24181e4001" /* inserted_us */
    "00000013"
    "736b5f39643234653265656166323763326130" /* kid */
    "00000002"                               /* 2 entries */
    "0000000a"
    "6c61635f77616c6c6574"
    "555344"
    "fffffffffe8287c0" /* lac_wallet USD -25 */
    "00000008"
    "6c61635f63617368"
    "555344"
    "00000000017d7840"; /* lac_cash USD +25 */

static const char GENESIS1_HEX[] =
    "14dd01703df57dca51e7b6abbc5a000678b6a007bf6bdb89c07853f75f3c10ad";
static const char HASH_HEX[] = "1220ff5b76b3f7f9dd7fe0b993c7e14a53fb69a6edab419aaba2b473929ee9a4";
static const char SIG_HEX[] = "8dbb7f2c33cb901dbe6b23fcd149232089c49cf4c546afebe8bc69931c68e648"
                              "45a4434690fd60221be9b996b88c057671a35ee464d5c8be249cc542c6aef806";

static void test_signer(ledger_signer *s, unsigned char pk[32])
{
    unsigned char seed[32], sk[64];

    for (int i = 0; i < 32; i++)
        seed[i] = (unsigned char)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    ledger_signer_init(s, sk);
    sodium_memzero(sk, sizeof sk);
}

static void example(ledger_txn *t)
{
    ledger_error e;

    ledger_txn_init(t);
    strcpy(t->id, "txn_01HV6Z4ACX8N2Q3M5RG7TB9WKD");
    t->partition = 1;
    t->seq = 1;
    t->kind = LEDGER_KIND_DEPOSIT;
    strcpy(t->memo, "top-up");
    strcpy(t->invoice_id, "inv_7");
    strcpy(t->idempotency_key, "k1");
    t->effective_us = 1700000000000000;
    t->inserted_us = 1700000000000001;
    cr_assert_eq(ledger_txn_add_entry(t, "lac_wallet", "USD", -25000000, &e), LEDGER_OK);
    cr_assert_eq(ledger_txn_add_entry(t, "lac_cash", "USD", 25000000, &e), LEDGER_OK);
}

static char *to_hex(const unsigned char *p, size_t n)
{
    char *s = malloc(n * 2 + 1);

    cr_assert_not_null(s);
    sodium_bin2hex(s, n * 2 + 1, p, n);
    return s;
}

static void encode(const ledger_txn *t, ledger_buf *b)
{
    ledger_error e;
    ledger_err rc = ledger_canon_encode(t, b, &e);

    cr_assert_eq(rc, LEDGER_OK, "%s: %s", ledger_err_name(rc), e.message);
}

Test(ledger_canon, documented_vector)
{
    ledger_txn t;
    ledger_signer s;
    unsigned char pk[32], g[32];
    ledger_buf b;
    ledger_error e;
    char *hex;

    test_signer(&s, pk);
    cr_assert_str_eq(s.kid, "sk_9d24e2eeaf27c2a0");
    example(&t);
    cr_assert_eq(ledger_partition_of("lac_wallet", 8), 1u, "the example sits in its own partition");
    ledger_genesis(1, g);
    hex = to_hex(g, 32);
    cr_assert_str_eq(hex, GENESIS1_HEX);
    free(hex);
    cr_assert_eq(ledger_txn_seal(&t, g, &s, NULL, &e), LEDGER_OK, "%s", e.message);

    ledger_buf_init(&b);
    encode(&t, &b);
    cr_assert_eq(b.len, 169);
    hex = to_hex(b.data, b.len);
    cr_assert_str_eq(hex, VECTOR_HEX);
    free(hex);
    hex = to_hex(t.hash, 32);
    cr_assert_str_eq(hex, HASH_HEX);
    free(hex);
    hex = to_hex(t.sig, 64);
    cr_assert_str_eq(hex, SIG_HEX, "Ed25519 is deterministic");
    free(hex);
    ledger_buf_free(&b);
}

Test(ledger_canon, round_trip)
{
    ledger_txn t, u;
    ledger_buf b, b2;
    ledger_error e;

    example(&t);
    strcpy(t.kid, "sk_0011223344556677");
    strcpy(t.order_id, "ord_1");
    strcpy(t.usage_id, "use_1");
    t.kind = LEDGER_KIND_REVERSAL;
    strcpy(t.reverses_id, "txn_0");
    strcpy(t.memo, "r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac");
    t.partition = 0xFFFFFFFFu;
    t.seq = UINT64_MAX;
    ledger_txn_add_entry(&t, "lac_eur_a", "EUR", -7, &e);
    ledger_txn_add_entry(&t, "lac_eur_b", "EUR", 7, &e);
    cr_assert_eq(ledger_txn_validate(&t, &e), LEDGER_OK, "%s", e.message);
    ledger_buf_init(&b);
    ledger_buf_init(&b2);
    encode(&t, &b);
    cr_assert_eq(ledger_canon_decode(b.data, b.len, &u, &e), LEDGER_OK, "%s", e.message);
    cr_assert_str_eq(u.id, t.id);
    cr_assert_eq(u.partition, t.partition);
    cr_assert_eq(u.seq, t.seq);
    cr_assert_eq(u.kind, t.kind);
    cr_assert_str_eq(u.memo, t.memo);
    cr_assert_str_eq(u.order_id, "ord_1");
    cr_assert_str_eq(u.usage_id, "use_1");
    cr_assert_str_eq(u.invoice_id, "inv_7");
    cr_assert_str_eq(u.reverses_id, "txn_0");
    cr_assert_str_eq(u.idempotency_key, "k1");
    cr_assert_str_eq(u.kid, t.kid);
    cr_assert_eq(u.effective_us, t.effective_us);
    cr_assert_eq(u.inserted_us, t.inserted_us);
    cr_assert_eq(u.n_entries, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(u.entries[i].account, t.entries[i].account);
        cr_assert_str_eq(u.entries[i].currency, t.entries[i].currency);
        cr_assert_eq(u.entries[i].amount, t.entries[i].amount);
    }
    encode(&u, &b2);
    cr_assert_eq(b.len, b2.len);
    cr_assert_eq(memcmp(b.data, b2.data, b.len), 0, "decode then encode is the identity");
    ledger_buf_free(&b);
    ledger_buf_free(&b2);
}

Test(ledger_canon, negative_times_and_extreme_amounts_round_trip)
{
    ledger_txn t, u;
    ledger_buf b;
    ledger_error e;

    example(&t);
    t.effective_us = -1; /* invalid for the ledger, but the encoding must carry it */
    t.entries[0].amount = INT64_MAX;
    t.entries[1].amount = -INT64_MAX;
    ledger_buf_init(&b);
    encode(&t, &b);
    cr_assert_eq(ledger_canon_decode(b.data, b.len, &u, &e), LEDGER_OK);
    cr_assert_eq(u.effective_us, -1);
    cr_assert_eq(u.entries[0].amount, INT64_MAX);
    cr_assert_eq(u.entries[1].amount, -INT64_MAX);
    ledger_buf_free(&b);
}

Test(ledger_canon, every_truncation_is_rejected)
{
    ledger_txn t, u;
    ledger_buf b;
    ledger_error e;

    example(&t);
    ledger_buf_init(&b);
    encode(&t, &b);
    for (size_t n = 0; n < b.len; n++) {
        ledger_err rc = ledger_canon_decode(b.data, n, &u, &e);
        cr_assert_eq(rc, LEDGER_E_TRUNCATED, "prefix of %zu bytes: %s", n, ledger_err_name(rc));
    }
    ledger_buf_free(&b);
}

Test(ledger_canon, trailing_bytes_and_bad_version)
{
    ledger_txn t, u;
    ledger_buf b;
    ledger_error e;

    example(&t);
    ledger_buf_init(&b);
    encode(&t, &b);
    ledger_buf_u8(&b, 0);
    cr_assert_eq(ledger_canon_decode(b.data, b.len, &u, &e), LEDGER_E_TRAILING_BYTES);
    cr_assert_str_eq(ledger_err_name(e.code), "trailing_bytes");
    b.len--;
    b.data[0] = 0x02;
    cr_assert_eq(ledger_canon_decode(b.data, b.len, &u, &e), LEDGER_E_BAD_VERSION);
    b.data[0] = 0x00;
    cr_assert_eq(ledger_canon_decode(b.data, b.len, &u, &e), LEDGER_E_BAD_VERSION);
    ledger_buf_free(&b);
}

/* Offsets inside the example's bytes (entry count: counted from the end). */
#define OFF_ORDER_PRESENCE (1 + 4 + 30 + 4 + 8 + 1 + 4 + 6)
#define OFF_INVOICE_LEN (OFF_ORDER_PRESENCE + 3)
#define OFF_ENTRY_COUNT (b.len - 4 - (4 + 10 + 3 + 8) - (4 + 8 + 3 + 8))

Test(ledger_canon, noncanonical_inputs_are_rejected)
{
    ledger_txn t, u;
    ledger_buf b;
    ledger_error e;
    unsigned char *copy;

    example(&t);
    ledger_buf_init(&b);
    encode(&t, &b);
    copy = malloc(b.len + 16);
    cr_assert_not_null(copy);

    cr_assert_eq(b.data[OFF_ORDER_PRESENCE], 0x00);
    memcpy(copy, b.data, b.len);
    copy[OFF_ORDER_PRESENCE] = 0x02;
    cr_assert_eq(ledger_canon_decode(copy, b.len, &u, &e), LEDGER_E_NONCANONICAL);
    cr_assert_str_eq(e.field, "order_id");

    /* present but empty: 01 00000000 instead of 00 */
    memcpy(copy, b.data, OFF_ORDER_PRESENCE);
    memcpy(copy + OFF_ORDER_PRESENCE, "\x01\x00\x00\x00\x00", 5);
    memcpy(copy + OFF_ORDER_PRESENCE + 5, b.data + OFF_ORDER_PRESENCE + 1,
           b.len - OFF_ORDER_PRESENCE - 1);
    cr_assert_eq(ledger_canon_decode(copy, b.len + 4, &u, &e), LEDGER_E_NONCANONICAL);
    cr_assert_str_eq(e.field, "order_id");

    /* a NUL inside a string */
    memcpy(copy, b.data, b.len);
    cr_assert_eq(copy[OFF_INVOICE_LEN + 3], 5);
    copy[OFF_INVOICE_LEN + 4 + 2] = 0;
    cr_assert_eq(ledger_canon_decode(copy, b.len, &u, &e), LEDGER_E_NONCANONICAL);

    /* an over-long string length */
    memcpy(copy, b.data, b.len);
    copy[OFF_INVOICE_LEN] = 0x7f;
    cr_assert_eq(ledger_canon_decode(copy, b.len, &u, &e), LEDGER_E_NONCANONICAL);

    /* too many entries */
    memcpy(copy, b.data, b.len);
    cr_assert_eq(copy[OFF_ENTRY_COUNT + 3], 2);
    copy[OFF_ENTRY_COUNT + 3] = LEDGER_MAX_ENTRIES + 1;
    cr_assert_eq(ledger_canon_decode(copy, b.len, &u, &e), LEDGER_E_TOO_MANY_ENTRIES);

    /* a lower-case currency */
    memcpy(copy, b.data, b.len);
    copy[OFF_ENTRY_COUNT + 4 + 4 + 10] = 'u';
    cr_assert_eq(ledger_canon_decode(copy, b.len, &u, &e), LEDGER_E_NONCANONICAL);
    free(copy);
    ledger_buf_free(&b);
}

/* Deterministic pseudo-random numbers (splitmix64), so a failure reproduces. */
static uint64_t rng_state = 0x7a11e7c0ffeeull;

static uint32_t rnd(uint32_t bound)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return bound ? (uint32_t)(z % bound) : 0;
}

Test(ledger_canon, random_bytes_never_crash)
{
    unsigned char junk[512];
    ledger_txn u;
    ledger_buf b;

    ledger_buf_init(&b);
    for (int i = 0; i < 2000; i++) {
        size_t n = rnd(sizeof junk);

        for (size_t k = 0; k < n; k++)
            junk[k] = (unsigned char)rnd(256);
        if (n)
            junk[0] = 0x01;
        if (ledger_canon_decode(junk, n, &u, NULL) == LEDGER_OK) {
            cr_assert_eq(ledger_canon_encode(&u, &b, NULL), LEDGER_OK);
            cr_assert_eq(b.len, n);
            cr_assert_eq(memcmp(b.data, junk, n), 0);
        }
    }
    /* Mutations of a valid encoding: whatever still decodes re-encodes to the
     * very same bytes (one representation per transaction). */
    {
        ledger_txn t;
        ledger_buf orig, again;
        int decoded = 0;

        example(&t);
        ledger_buf_init(&orig);
        ledger_buf_init(&again);
        encode(&t, &orig);
        for (int i = 0; i < 5000; i++) {
            memcpy(junk, orig.data, orig.len);
            for (int k = 0; k < 1 + (int)rnd(3); k++)
                junk[rnd((uint32_t)orig.len)] ^= (unsigned char)(1 + rnd(255));
            if (ledger_canon_decode(junk, orig.len, &u, NULL) != LEDGER_OK)
                continue;
            decoded++;
            cr_assert_eq(ledger_canon_encode(&u, &again, NULL), LEDGER_OK);
            cr_assert_eq(again.len, orig.len);
            cr_assert_eq(memcmp(again.data, junk, orig.len), 0);
        }
        cr_assert_gt(decoded, 100, "most single-field mutations still decode");
        ledger_buf_free(&orig);
        ledger_buf_free(&again);
    }
    ledger_buf_free(&b);
}

Test(ledger_canon, encoder_refuses_unrepresentable)
{
    ledger_txn t;
    ledger_buf b;
    ledger_error e;

    ledger_buf_init(&b);
    example(&t);
    t.n_entries = LEDGER_MAX_ENTRIES + 1;
    cr_assert_eq(ledger_canon_encode(&t, &b, &e), LEDGER_E_TOO_MANY_ENTRIES);
    example(&t);
    memset(t.memo, 'a', sizeof t.memo); /* not terminated */
    cr_assert_eq(ledger_canon_encode(&t, &b, &e), LEDGER_E_NONCANONICAL);
    cr_assert_str_eq(e.field, "memo");
    cr_assert_eq(b.len, 0);
    example(&t);
    t.kind = (ledger_kind)300;
    cr_assert_eq(ledger_canon_encode(&t, &b, &e), LEDGER_E_BAD_KIND);
    ledger_buf_free(&b);
}

/* ---- validation -------------------------------------------------------- */

static ledger_err validate(const ledger_txn *t, ledger_error *e)
{
    return ledger_txn_validate(t, e);
}

Test(ledger_validate, example_is_valid)
{
    ledger_txn t;
    ledger_error e;

    example(&t);
    cr_assert_eq(validate(&t, &e), LEDGER_OK, "%s", e.message);
}

Test(ledger_validate, zero_sum_is_per_currency)
{
    ledger_txn t;
    ledger_error e;

    example(&t);
    /* USD balances; EUR entries balance on their own: a valid FX-style txn. */
    ledger_txn_add_entry(&t, "lac_eur_wallet", "EUR", -10, &e);
    ledger_txn_add_entry(&t, "lac_eur_cash", "EUR", 10, &e);
    cr_assert_eq(validate(&t, &e), LEDGER_OK, "%s", e.message);

    /* Totals over all currencies are zero, but neither currency balances. */
    example(&t);
    t.entries[0].amount = -15;
    t.entries[1].amount = 10;
    ledger_txn_add_entry(&t, "lac_eur_wallet", "EUR", 15, &e);
    ledger_txn_add_entry(&t, "lac_eur_cash", "EUR", -10, &e);
    cr_assert_eq(validate(&t, &e), LEDGER_E_UNBALANCED);
    cr_assert(strstr(e.message, "USD") != NULL, "%s", e.message);
    cr_assert_str_eq(ledger_err_name(e.code), "unbalanced");
}

Test(ledger_validate, overflow_is_detected_not_wrapped)
{
    ledger_txn t;
    ledger_error e;

    /* +MAX +MAX -MAX -MAX sums to 0 with wrapping arithmetic, but the debits
     * alone do not fit in 64 bits. */
    example(&t);
    t.n_entries = 0;
    ledger_txn_add_entry(&t, "a", "USD", INT64_MAX, &e);
    ledger_txn_add_entry(&t, "b", "USD", INT64_MAX, &e);
    ledger_txn_add_entry(&t, "c", "USD", -INT64_MAX, &e);
    ledger_txn_add_entry(&t, "d", "USD", -INT64_MAX, &e);
    cr_assert_eq(validate(&t, &e), LEDGER_E_OVERFLOW);
    cr_assert_eq(e.index, 1);
    cr_assert_str_eq(e.field, "entries[1].amount");

    example(&t);
    t.entries[0].amount = INT64_MIN;
    cr_assert_eq(validate(&t, &e), LEDGER_E_AMOUNT_RANGE);

    example(&t);
    t.entries[0].amount = -INT64_MAX;
    t.entries[1].amount = INT64_MAX;
    cr_assert_eq(validate(&t, &e), LEDGER_OK, "the extremes themselves are fine");
}

Test(ledger_validate, entry_rules)
{
    ledger_txn t;
    ledger_error e;

    example(&t);
    t.n_entries = 1;
    cr_assert_eq(validate(&t, &e), LEDGER_E_TOO_FEW_ENTRIES);

    example(&t);
    t.entries[1].amount = 0;
    cr_assert_eq(validate(&t, &e), LEDGER_E_ZERO_AMOUNT);
    cr_assert_eq(e.index, 1);
    cr_assert_str_eq(e.field, "entries[1].amount");

    example(&t);
    strcpy(t.entries[1].account, "lac_wallet");
    cr_assert_eq(validate(&t, &e), LEDGER_E_DUPLICATE_ACCOUNT);

    example(&t);
    strcpy(t.entries[0].currency, "usd");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_CURRENCY);
    cr_assert_str_eq(e.field, "entries[0].currency");

    example(&t);
    strcpy(t.entries[0].account, "has space");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_ACCOUNT);

    example(&t);
    t.entries[0].account[0] = '\0';
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_ACCOUNT);

    example(&t);
    for (int i = 2; i < LEDGER_MAX_ENTRIES; i++)
        cr_assert_eq(ledger_txn_add_entry(&t, "x", "USD", 1, &e), LEDGER_OK);
    cr_assert_eq(ledger_txn_add_entry(&t, "y", "USD", 1, &e), LEDGER_E_TOO_MANY_ENTRIES);
    cr_assert_eq(ledger_txn_add_entry(&t, "y", "USD", 1, &e), LEDGER_E_TOO_MANY_ENTRIES);
}

Test(ledger_validate, header_rules)
{
    ledger_txn t;
    ledger_error e;

    example(&t);
    t.id[0] = '\0';
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_ID);

    example(&t);
    t.seq = 0;
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_SEQUENCE);

    example(&t);
    t.kind = (ledger_kind)0;
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_KIND);
    t.kind = (ledger_kind)10;
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_KIND);

    example(&t);
    strcpy(t.memo, "bad \xc3");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_MEMO, "truncated UTF-8");
    strcpy(t.memo, "\xc0\xaf");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_MEMO, "overlong UTF-8");
    strcpy(t.memo, "\xed\xa0\x80");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_MEMO, "surrogate");
    strcpy(t.memo, "line\nbreak");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_MEMO, "control character");
    strcpy(t.memo, "\xf0\x9f\x92\xb0 ok");
    cr_assert_eq(validate(&t, &e), LEDGER_OK, "emoji is fine");

    example(&t);
    strcpy(t.idempotency_key, "tab\tkey");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_IDEMPOTENCY_KEY);

    example(&t);
    t.inserted_us = -5;
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_TIME);
    cr_assert_str_eq(e.field, "inserted_us");
    example(&t);
    t.effective_us = LEDGER_TIME_MAX + 1;
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_TIME);

    example(&t);
    strcpy(t.order_id, "ord 1");
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_REFERENCE);
    cr_assert_str_eq(e.field, "order_id");

    example(&t);
    t.kind = LEDGER_KIND_REVERSAL;
    cr_assert_eq(validate(&t, &e), LEDGER_E_MISSING_REFERENCE);
    strcpy(t.reverses_id, t.id);
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_REFERENCE, "cannot reverse itself");
    strcpy(t.reverses_id, "txn_other");
    cr_assert_eq(validate(&t, &e), LEDGER_OK);
    t.kind = LEDGER_KIND_FEE;
    cr_assert_eq(validate(&t, &e), LEDGER_E_BAD_REFERENCE);
}

Test(ledger_validate, names_are_stable)
{
    ledger_kind k;

    for (int c = 0; c < LEDGER_E__COUNT; c++)
        cr_assert_str_neq(ledger_err_name((ledger_err)c), "unknown_error", "code %d", c);
    cr_assert_str_eq(ledger_err_name(LEDGER_E_INSUFFICIENT_FUNDS), "insufficient_funds");
    cr_assert_str_eq(ledger_err_name((ledger_err)999), "unknown_error");
    for (int i = LEDGER_KIND_MIN; i <= LEDGER_KIND_MAX; i++) {
        cr_assert_eq(ledger_kind_parse(ledger_kind_name((ledger_kind)i), &k), 0);
        cr_assert_eq((int)k, i);
    }
    cr_assert_str_eq(ledger_kind_name(LEDGER_KIND_EXPIRY), "expiry");
    cr_assert_eq(ledger_kind_parse("bogus", &k), -1);
    cr_assert_null(ledger_kind_name((ledger_kind)0));
}
