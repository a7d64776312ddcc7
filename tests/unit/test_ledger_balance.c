/* Unit tests for billing/balance.c: the sign convention, credit limits,
 * overflow, all-or-nothing application, the hold state machine, the
 * transaction builders and a randomised run that checks the ledger invariants
 * (balances = sums of entries, per-currency zero sum, no overdraft). */
#include "balance.h"
#include "ledger_txn.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void init(void)
{
    cr_assert(sodium_init() >= 0);
}

TestSuite(ledger_balance, .init = init);
TestSuite(ledger_hold, .init = init);

#define T0 INT64_C(1700000000000000)

enum { CASH, WALLET, HOLDS, PAYABLE, REVENUE, NACC };

static ledger_account accts[NACC];

static void setup_accounts(int64_t wallet_limit)
{
    ledger_error e;

    cr_assert_eq(
        ledger_account_init(&accts[CASH], "lac_cash", "USD", LEDGER_NORMAL_DEBIT, 0, true, &e),
        LEDGER_OK);
    cr_assert_eq(ledger_account_init(&accts[WALLET], "lac_wallet", "USD", LEDGER_NORMAL_CREDIT,
                                     wallet_limit, false, &e),
                 LEDGER_OK);
    cr_assert_eq(
        ledger_account_init(&accts[HOLDS], "lac_holds", "USD", LEDGER_NORMAL_CREDIT, 0, false, &e),
        LEDGER_OK);
    cr_assert_eq(ledger_account_init(&accts[PAYABLE], "lac_payable", "USD", LEDGER_NORMAL_CREDIT, 0,
                                     true, &e),
                 LEDGER_OK);
    cr_assert_eq(ledger_account_init(&accts[REVENUE], "lac_revenue", "USD", LEDGER_NORMAL_CREDIT, 0,
                                     true, &e),
                 LEDGER_OK);
}

static void base_txn(ledger_txn *t, int n)
{
    ledger_txn_init(t);
    snprintf(t->id, sizeof t->id, "txn_%d", n);
    t->seq = 1;
    t->effective_us = t->inserted_us = T0 + n;
}

static ledger_err apply(ledger_txn *t, ledger_posting *post, ledger_error *e)
{
    return ledger_apply_txn(accts, NACC, t, 0, post, e);
}

/* Σ debit-normal balances == Σ credit-normal balances (one currency here). */
static void assert_books_balance(void)
{
    int64_t debit = 0, credit = 0;

    for (int i = 0; i < NACC; i++) {
        if (accts[i].normal == LEDGER_NORMAL_DEBIT)
            debit += accts[i].balance;
        else
            credit += accts[i].balance;
    }
    cr_assert_eq(debit, credit, "debit-normal %lld vs credit-normal %lld", (long long)debit,
                 (long long)credit);
}

Test(ledger_balance, deposit_sign_convention)
{
    ledger_txn t;
    ledger_posting post[2];
    ledger_error e;

    setup_accounts(0);
    base_txn(&t, 1);
    cr_assert_eq(ledger_build_deposit(&t, "lac_wallet", "lac_cash", "USD", 5000000, &e), LEDGER_OK);
    cr_assert_eq(t.kind, LEDGER_KIND_DEPOSIT);
    cr_assert_str_eq(t.entries[0].account, "lac_wallet", "the owner's account comes first");
    cr_assert_lt(t.entries[0].amount, 0, "the wallet is credited");
    cr_assert_gt(t.entries[1].amount, 0, "external cash is debited");
    cr_assert_eq(apply(&t, post, &e), LEDGER_OK, "%s", e.message);
    cr_assert_eq(accts[WALLET].balance, 5000000, "the tenant owns what they deposited");
    cr_assert_eq(accts[CASH].balance, 5000000);
    cr_assert_eq(post[0].account, WALLET);
    cr_assert_eq(post[0].before, 0);
    cr_assert_eq(post[0].after, 5000000);
    cr_assert_eq(post[0].version, 1);
    cr_assert_eq(accts[WALLET].version, 1);
    assert_books_balance();
}

Test(ledger_balance, no_overdraft_without_a_credit_limit)
{
    ledger_txn t;
    ledger_error e;

    setup_accounts(0);
    base_txn(&t, 1);
    ledger_build_deposit(&t, "lac_wallet", "lac_cash", "USD", 100, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK);
    base_txn(&t, 2);
    ledger_build_hold(&t, "lac_wallet", "lac_holds", "USD", 101, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_E_INSUFFICIENT_FUNDS);
    cr_assert_eq(e.index, 0);
    cr_assert_str_eq(e.field, "entries[0].amount");
    cr_assert_str_eq(ledger_err_name(e.code), "insufficient_funds");
    cr_assert_eq(accts[WALLET].balance, 100, "nothing changed");
    cr_assert_eq(accts[HOLDS].balance, 0, "nothing changed");
    cr_assert_eq(accts[WALLET].version, 1);
    base_txn(&t, 3);
    ledger_build_hold(&t, "lac_wallet", "lac_holds", "USD", 100, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK, "exactly the balance is fine");
    cr_assert_eq(accts[WALLET].balance, 0);
}

Test(ledger_balance, credit_limit)
{
    ledger_txn t;
    ledger_error e;

    setup_accounts(250);
    base_txn(&t, 1);
    ledger_build_hold(&t, "lac_wallet", "lac_holds", "USD", 250, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK, "down to -credit_limit");
    cr_assert_eq(accts[WALLET].balance, -250);
    base_txn(&t, 2);
    ledger_build_hold(&t, "lac_wallet", "lac_holds", "USD", 1, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_E_INSUFFICIENT_FUNDS);
    /* The limit is lowered; the account is now below it but may still be
     * credited, and may not be debited further. */
    accts[WALLET].credit_limit = 0;
    base_txn(&t, 3);
    ledger_build_deposit(&t, "lac_wallet", "lac_cash", "USD", 50, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK, "raising a balance is always allowed");
    cr_assert_eq(accts[WALLET].balance, -200);
    cr_assert_eq(ledger_account_init(&accts[0], "x", "USD", LEDGER_NORMAL_DEBIT, -1, false, &e),
                 LEDGER_E_BAD_LIMIT);
}

Test(ledger_balance, unchecked_accounts_may_go_negative)
{
    ledger_txn t;
    ledger_error e;

    setup_accounts(0);
    /* A payout from the provider payable to external cash before any deposit:
     * cash (unchecked, an asset mirror) goes below zero. */
    base_txn(&t, 1);
    t.kind = LEDGER_KIND_ADJUSTMENT;
    ledger_txn_add_entry(&t, "lac_revenue", "USD", -10, &e);
    ledger_txn_add_entry(&t, "lac_cash", "USD", 10, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK, "%s", e.message);
    cr_assert_eq(accts[REVENUE].balance, 10);
    cr_assert_eq(accts[CASH].balance, 10);
    base_txn(&t, 2);
    t.kind = LEDGER_KIND_PAYOUT;
    ledger_txn_add_entry(&t, "lac_payable", "USD", 500, &e);
    ledger_txn_add_entry(&t, "lac_cash", "USD", -500, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK, "%s", e.message);
    cr_assert_eq(accts[CASH].balance, -490);
    cr_assert_eq(accts[PAYABLE].balance, -500);
    assert_books_balance();
}

Test(ledger_balance, overflow_is_refused_atomically)
{
    ledger_txn t;
    ledger_error e;

    setup_accounts(0);
    accts[WALLET].balance = INT64_MAX - 5;
    accts[CASH].balance = 0;
    base_txn(&t, 1);
    ledger_build_deposit(&t, "lac_wallet", "lac_cash", "USD", 10, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_E_OVERFLOW);
    cr_assert_eq(accts[WALLET].balance, INT64_MAX - 5);
    cr_assert_eq(accts[CASH].balance, 0);
    /* the same from below, with NO_LIMITS so only the overflow can stop it */
    accts[WALLET].balance = INT64_MIN + 5;
    base_txn(&t, 2);
    ledger_build_hold(&t, "lac_wallet", "lac_holds", "USD", 10, &e);
    cr_assert_eq(ledger_apply_txn(accts, NACC, &t, LEDGER_APPLY_NO_LIMITS, NULL, &e),
                 LEDGER_E_OVERFLOW);
    cr_assert_eq(accts[HOLDS].balance, 0);
}

Test(ledger_balance, unknown_account_and_currency_mismatch)
{
    ledger_txn t;
    ledger_error e;
    ledger_entry en = {"lac_wallet", "EUR", 5};
    ledger_owner_balance ob;

    setup_accounts(0);
    base_txn(&t, 1);
    ledger_build_deposit(&t, "lac_nobody", "lac_cash", "USD", 10, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_E_UNKNOWN_ACCOUNT);
    cr_assert_str_eq(e.field, "entries[0].account");
    base_txn(&t, 2);
    ledger_build_deposit(&t, "lac_wallet", "lac_cash", "EUR", 10, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_E_CURRENCY_MISMATCH);
    cr_assert_eq(ledger_account_apply(&accts[WALLET], &en, 0, NULL, &e),
                 LEDGER_E_CURRENCY_MISMATCH);
    base_txn(&t, 3);
    ledger_build_deposit(&t, "lac_wallet", "lac_cash", "USD", 10, &e);
    t.entries[1].amount = 11;
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_E_UNBALANCED, "apply validates first");
    strcpy(accts[HOLDS].currency, "EUR");
    cr_assert_eq(ledger_owner_balance_of(&accts[WALLET], &accts[HOLDS], &ob, &e),
                 LEDGER_E_CURRENCY_MISMATCH);
}

Test(ledger_balance, builders_refuse_bad_amounts)
{
    ledger_txn t;
    ledger_error e;
    ledger_payee none[1] = {{"lac_payable", 0}};

    base_txn(&t, 1);
    cr_assert_eq(ledger_build_deposit(&t, "a", "b", "USD", 0, &e), LEDGER_E_BAD_AMOUNT);
    cr_assert_eq(ledger_build_hold(&t, "a", "b", "USD", -5, &e), LEDGER_E_BAD_AMOUNT);
    cr_assert_eq(ledger_build_release(&t, LEDGER_KIND_FEE, "a", "b", "USD", 5, &e),
                 LEDGER_E_BAD_KIND);
    cr_assert_eq(ledger_build_capture(&t, "h", "USD", none, 1, "w", 0, &e), LEDGER_E_BAD_AMOUNT);
    cr_assert_eq(ledger_build_capture(&t, "h", "USD", none, 0, "w", 0, &e),
                 LEDGER_E_TOO_MANY_ENTRIES);
    cr_assert_eq(ledger_build_deposit(&t, "a", "b", "usd", 5, &e), LEDGER_E_BAD_CURRENCY);
}

/* The whole life of an order: deposit, hold, partial capture split between
 * provider and platform, final capture releasing the rest. */
Test(ledger_balance, order_flow)
{
    ledger_txn t;
    ledger_error e;
    ledger_hold h;
    ledger_owner_balance ob;
    int64_t released;
    ledger_payee pay[2] = {{"lac_payable", 0}, {"lac_revenue", 0}};

    setup_accounts(0);
    base_txn(&t, 1);
    ledger_build_deposit(&t, "lac_wallet", "lac_cash", "USD", 1000, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK);

    cr_assert_eq(ledger_hold_place(&h, "USD", 300, T0 + 1000, &e), LEDGER_OK);
    base_txn(&t, 2);
    ledger_build_hold(&t, "lac_wallet", "lac_holds", "USD", h.amount, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK);
    cr_assert_eq(ledger_owner_balance_of(&accts[WALLET], &accts[HOLDS], &ob, &e), LEDGER_OK);
    cr_assert_eq(ob.posted, 1000);
    cr_assert_eq(ob.pending, 300);
    cr_assert_eq(ob.available, 700);
    cr_assert_eq(ob.available, ob.posted - ob.pending);

    /* usage 1: 120 captured, 108 to the provider, 12 to the platform */
    cr_assert_eq(ledger_hold_capture(&h, 120, false, T0 + 10, &released, &e), LEDGER_OK);
    cr_assert_eq(released, 0);
    pay[0].amount = 108;
    pay[1].amount = 12;
    base_txn(&t, 3);
    ledger_build_capture(&t, "lac_holds", "USD", pay, 2, "lac_wallet", released, &e);
    cr_assert_eq(t.n_entries, 3);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK, "%s", e.message);
    cr_assert_eq(ledger_hold_remaining(&h), 180);
    cr_assert_eq(accts[HOLDS].balance, ledger_hold_remaining(&h));

    /* too much */
    cr_assert_eq(ledger_hold_capture(&h, 181, false, T0 + 11, &released, &e),
                 LEDGER_E_CAPTURE_EXCEEDS_HOLD);
    cr_assert_eq(ledger_hold_remaining(&h), 180, "unchanged on failure");

    /* usage 2, final: 80 captured, 100 released */
    cr_assert_eq(ledger_hold_capture(&h, 80, true, T0 + 12, &released, &e), LEDGER_OK);
    cr_assert_eq(released, 100);
    cr_assert_eq(h.status, LEDGER_HOLD_CAPTURED);
    pay[0].amount = 72;
    pay[1].amount = 8;
    base_txn(&t, 4);
    ledger_build_capture(&t, "lac_holds", "USD", pay, 2, "lac_wallet", released, &e);
    cr_assert_eq(t.n_entries, 4);
    cr_assert_eq(t.entries[0].amount, 180);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK, "%s", e.message);

    cr_assert_eq(accts[WALLET].balance, 800);
    cr_assert_eq(accts[HOLDS].balance, 0);
    cr_assert_eq(accts[PAYABLE].balance, 180);
    cr_assert_eq(accts[REVENUE].balance, 20);
    cr_assert_eq(accts[CASH].balance, 1000);
    assert_books_balance();
    cr_assert_eq(ledger_hold_capture(&h, 1, false, T0 + 13, &released, &e), LEDGER_E_HOLD_CLOSED);
}

Test(ledger_balance, reversal_restores_balances)
{
    ledger_txn t, r, rr;
    ledger_error e;

    setup_accounts(0);
    base_txn(&t, 1);
    ledger_build_deposit(&t, "lac_wallet", "lac_cash", "USD", 700, &e);
    cr_assert_eq(apply(&t, NULL, &e), LEDGER_OK);
    base_txn(&r, 2);
    cr_assert_eq(ledger_build_reversal(&r, &t, &e), LEDGER_OK);
    cr_assert_eq(r.kind, LEDGER_KIND_REVERSAL);
    cr_assert_str_eq(r.reverses_id, "txn_1");
    cr_assert_eq(r.entries[0].amount, 700);
    cr_assert_eq(apply(&r, NULL, &e), LEDGER_OK, "%s", e.message);
    cr_assert_eq(accts[WALLET].balance, 0);
    cr_assert_eq(accts[CASH].balance, 0);
    cr_assert_eq(accts[WALLET].version, 2, "history is kept: two entries, not zero");
    base_txn(&rr, 3);
    cr_assert_eq(ledger_build_reversal(&rr, &r, &e), LEDGER_E_BAD_REFERENCE);
}

/* ---- holds ---------------------------------------------------------------- */

Test(ledger_hold, void_and_expire)
{
    ledger_hold h;
    ledger_error e;
    int64_t rel = -1;

    cr_assert_eq(ledger_hold_place(&h, "USD", 0, T0, &e), LEDGER_E_BAD_AMOUNT);
    cr_assert_eq(ledger_hold_place(&h, "USD", -3, T0, &e), LEDGER_E_BAD_AMOUNT);
    cr_assert_eq(ledger_hold_place(&h, "US", 3, T0, &e), LEDGER_E_BAD_CURRENCY);

    cr_assert_eq(ledger_hold_place(&h, "USD", 500, T0 + 100, &e), LEDGER_OK);
    cr_assert_eq(ledger_hold_capture(&h, 0, false, T0, &rel, &e), LEDGER_E_BAD_AMOUNT);
    cr_assert_eq(ledger_hold_capture(&h, -1, false, T0, &rel, &e), LEDGER_E_BAD_AMOUNT);
    cr_assert_eq(ledger_hold_capture(&h, 200, false, T0, &rel, &e), LEDGER_OK);
    cr_assert_eq(ledger_hold_void(&h, &rel, &e), LEDGER_OK);
    cr_assert_eq(rel, 300);
    cr_assert_eq(h.status, LEDGER_HOLD_VOIDED);
    cr_assert_eq(ledger_hold_remaining(&h), 0);
    cr_assert_eq(ledger_hold_void(&h, &rel, &e), LEDGER_E_HOLD_CLOSED);
    cr_assert(strstr(e.message, "voided") != NULL);

    cr_assert_eq(ledger_hold_place(&h, "USD", 500, T0 + 100, &e), LEDGER_OK);
    cr_assert_eq(ledger_hold_expire(&h, T0 + 99, &rel, &e), LEDGER_E_HOLD_NOT_EXPIRED);
    cr_assert_eq(ledger_hold_capture(&h, 10, false, T0 + 100, &rel, &e), LEDGER_E_HOLD_EXPIRED,
                 "no capture at or after the expiry");
    cr_assert_eq(ledger_hold_expire(&h, T0 + 100, &rel, &e), LEDGER_OK);
    cr_assert_eq(rel, 500);
    cr_assert_eq(h.status, LEDGER_HOLD_EXPIRED);
    cr_assert_eq(ledger_hold_expire(&h, T0 + 200, &rel, &e), LEDGER_E_HOLD_CLOSED);

    /* capturing the exact remainder closes the hold without a release */
    cr_assert_eq(ledger_hold_place(&h, "USD", 50, T0 + 100, &e), LEDGER_OK);
    cr_assert_eq(ledger_hold_capture(&h, 50, false, T0, &rel, &e), LEDGER_OK);
    cr_assert_eq(rel, 0);
    cr_assert_eq(h.status, LEDGER_HOLD_CAPTURED);
}

/* Random operations against the pure model; after each one every ledger
 * invariant must hold, and recomputing balances from the accepted
 * transactions (no limit checks) must give the same figures. */
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

#define RUN_OPS 3000
#define NT 4 /* tenants */

static ledger_txn accepted[RUN_OPS];

Test(ledger_balance, randomised_invariants)
{
    ledger_account a[2 + 2 * NT], replay[2 + 2 * NT];
    ledger_hold holds[64];
    int hold_owner[64], nholds = 0, nacc = 0, ok = 0, refused = 0;
    ledger_error e;
    char id[32];

    ledger_account_init(&a[nacc++], "lac_cash", "USD", LEDGER_NORMAL_DEBIT, 0, true, &e);
    ledger_account_init(&a[nacc++], "lac_payable", "USD", LEDGER_NORMAL_CREDIT, 0, true, &e);
    for (int i = 0; i < NT; i++) {
        snprintf(id, sizeof id, "lac_w%d", i);
        ledger_account_init(&a[nacc++], id, "USD", LEDGER_NORMAL_CREDIT, i == 0 ? 5000 : 0, false,
                            &e);
        snprintf(id, sizeof id, "lac_h%d", i);
        ledger_account_init(&a[nacc++], id, "USD", LEDGER_NORMAL_CREDIT, 0, false, &e);
    }
    memcpy(replay, a, sizeof a);
    for (int op = 0; op < RUN_OPS && ok < RUN_OPS; op++) {
        int tn = (int)rnd(NT);
        const char *w = a[2 + 2 * tn].id, *hid = a[3 + 2 * tn].id;
        int64_t amt = 1 + (int64_t)rnd(20000);
        ledger_txn *t = &accepted[ok];
        ledger_hold hc;
        int64_t rel = 0;
        int kind = (int)rnd(5), hi = -1;
        ledger_err rc;

        base_txn(t, op);
        if (kind == 1 && nholds == 64)
            kind = 0;
        if (kind == 2 || kind == 3) {
            for (int i = 0; i < nholds; i++)
                if (hold_owner[i] == tn && holds[i].status == LEDGER_HOLD_OPEN)
                    hi = i;
            if (hi < 0)
                continue;
            hc = holds[hi];
        }
        switch (kind) {
        case 0:
            rc = ledger_build_deposit(t, w, "lac_cash", "USD", amt, &e);
            break;
        case 1:
            rc = ledger_build_hold(t, w, hid, "USD", amt, &e);
            break;
        case 2: { /* capture from an open hold of this tenant */
            ledger_payee pay = {"lac_payable", 0};

            pay.amount = 1 + (int64_t)rnd((uint32_t)ledger_hold_remaining(&hc));
            cr_assert_eq(ledger_hold_capture(&hc, pay.amount, rnd(2), T0, &rel, &e), LEDGER_OK);
            rc = ledger_build_capture(t, hid, "USD", &pay, 1, w, rel, &e);
            break;
        }
        case 3: /* void it */
            cr_assert_eq(ledger_hold_void(&hc, &rel, &e), LEDGER_OK);
            rc = ledger_build_release(t, LEDGER_KIND_RELEASE, hid, w, "USD", rel, &e);
            break;
        default: /* payout from the provider payable */
            t->kind = LEDGER_KIND_PAYOUT;
            if ((rc = ledger_txn_add_entry(t, "lac_payable", "USD", amt, &e)) == LEDGER_OK)
                rc = ledger_txn_add_entry(t, "lac_cash", "USD", -amt, &e);
            break;
        }
        cr_assert_eq(rc, LEDGER_OK, "%s", e.message);
        rc = ledger_apply_txn(a, (size_t)nacc, t, 0, NULL, &e);
        if (rc != LEDGER_OK) {
            cr_assert_eq(rc, LEDGER_E_INSUFFICIENT_FUNDS, "%s", e.message);
            cr_assert(kind == 1, "only a hold can be refused (kind %d)", kind);
            refused++;
            continue;
        }
        ok++;
        /* accepted: the hold state follows */
        if (kind == 1) {
            cr_assert_eq(ledger_hold_place(&holds[nholds], "USD", amt, T0 + 1000, &e), LEDGER_OK);
            hold_owner[nholds++] = tn;
        } else if (hi >= 0) {
            holds[hi] = hc;
        }
        /* invariants */
        {
            int64_t debit = 0, credit = 0;

            for (int i = 0; i < nacc; i++) {
                if (a[i].normal == LEDGER_NORMAL_DEBIT)
                    debit += a[i].balance;
                else
                    credit += a[i].balance;
                if (!a[i].unchecked)
                    cr_assert_geq(a[i].balance, -a[i].credit_limit, "%s", a[i].id);
            }
            cr_assert_eq(debit, credit);
            for (int tn2 = 0; tn2 < NT; tn2++) {
                int64_t held = 0;

                for (int i = 0; i < nholds; i++)
                    if (hold_owner[i] == tn2)
                        held += ledger_hold_remaining(&holds[i]);
                cr_assert_eq(a[3 + 2 * tn2].balance, held, "holds account = open holds");
            }
        }
    }
    /* replay every accepted transaction from zero */
    for (int i = 0; i < ok; i++)
        cr_assert_eq(
            ledger_apply_txn(replay, (size_t)nacc, &accepted[i], LEDGER_APPLY_NO_LIMITS, NULL, &e),
            LEDGER_OK, "%s", e.message);
    for (int i = 0; i < nacc; i++) {
        cr_assert_eq(replay[i].balance, a[i].balance, "%s", a[i].id);
        cr_assert_eq(replay[i].version, a[i].version, "%s", a[i].id);
    }
    cr_assert_gt(ok, 500);
    cr_assert_gt(refused, 0, "some operations must hit the no-overdraft rule");
}
