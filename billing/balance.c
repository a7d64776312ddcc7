/*
 * balance.c - applying entries to account balances, owner-facing balances,
 * the hold state machine and the builders of the common transactions.
 *
 * Invariants: a balance is always −Σ amounts (credit-normal) or Σ amounts
 * (debit-normal) of the entries applied, computed without overflow; a checked
 * account never ends an entry that lowered it below −credit_limit; a hold
 * always has captured + released <= amount, and is open exactly while
 * captured + released < amount and it was neither voided nor expired.
 */
#include "balance.h"

#include <stdio.h>
#include <string.h>

ledger_err ledger_account_init(ledger_account *a, const char *id, const char *currency,
                               ledger_normal normal, int64_t credit_limit, bool unchecked,
                               ledger_error *err)
{
    memset(a, 0, sizeof *a);
    if (!ledger_valid_id(id))
        return ledger_error_set(err, LEDGER_E_BAD_ACCOUNT, -1, "id", "bad account id");
    if (!ledger_valid_currency(currency))
        return ledger_error_set(err, LEDGER_E_BAD_CURRENCY, -1, "currency",
                                "currency must be three upper-case letters");
    if (normal != LEDGER_NORMAL_DEBIT && normal != LEDGER_NORMAL_CREDIT)
        return ledger_error_set(err, LEDGER_E_BAD_ACCOUNT, -1, "normal",
                                "normal side must be debit or credit");
    if (credit_limit < 0)
        return ledger_error_set(err, LEDGER_E_BAD_LIMIT, -1, "credit_limit",
                                "credit limit must be zero or positive");
    snprintf(a->id, sizeof a->id, "%s", id);
    memcpy(a->currency, currency, sizeof a->currency);
    a->normal = normal;
    a->credit_limit = credit_limit;
    a->unchecked = unchecked;
    return LEDGER_OK;
}

int64_t ledger_entry_delta(ledger_normal normal, int64_t amount)
{
    return normal == LEDGER_NORMAL_DEBIT ? amount : -amount;
}

ledger_err ledger_account_apply(ledger_account *a, const ledger_entry *e, unsigned flags,
                                ledger_posting *out, ledger_error *err)
{
    int64_t delta, after;

    if (strcmp(a->id, e->account) != 0)
        return ledger_error_set(err, LEDGER_E_UNKNOWN_ACCOUNT, -1, "account",
                                "entry is for %s, not %s", e->account, a->id);
    if (strcmp(a->currency, e->currency) != 0)
        return ledger_error_set(err, LEDGER_E_CURRENCY_MISMATCH, -1, "currency",
                                "account %s holds %s, the entry is in %s", a->id, a->currency,
                                e->currency);
    if (e->amount == INT64_MIN || e->amount == 0)
        return ledger_error_set(err, e->amount ? LEDGER_E_AMOUNT_RANGE : LEDGER_E_ZERO_AMOUNT, -1,
                                "amount", "entry amount %lld is not allowed", (long long)e->amount);
    delta = ledger_entry_delta(a->normal, e->amount);
    if (__builtin_add_overflow(a->balance, delta, &after))
        return ledger_error_set(err, LEDGER_E_OVERFLOW, -1, "amount",
                                "balance of %s would overflow", a->id);
    if (delta < 0 && !a->unchecked && !(flags & LEDGER_APPLY_NO_LIMITS) && after < -a->credit_limit)
        return ledger_error_set(err, LEDGER_E_INSUFFICIENT_FUNDS, -1, "amount",
                                "%s has %lld %s available (credit limit %lld), %lld needed", a->id,
                                (long long)a->balance, a->currency, (long long)a->credit_limit,
                                (long long)-delta);
    if (out) {
        out->before = a->balance;
        out->after = after;
        out->version = a->version + 1;
    }
    a->balance = after;
    a->version++;
    return LEDGER_OK;
}

ledger_err ledger_apply_txn(ledger_account *accts, size_t n, const ledger_txn *t, unsigned flags,
                            ledger_posting *postings, ledger_error *err)
{
    /* Work on copies of the touched accounts; commit only when every entry fits. */
    ledger_account work[LEDGER_MAX_ENTRIES];
    size_t idx[LEDGER_MAX_ENTRIES];
    ledger_posting post[LEDGER_MAX_ENTRIES];
    ledger_err rc = ledger_txn_validate(t, err);

    if (rc != LEDGER_OK)
        return rc;
    for (size_t i = 0; i < t->n_entries; i++) {
        const ledger_entry *e = &t->entries[i];
        size_t k, found = n;
        char field[40];

        for (k = 0; k < n; k++) {
            if (strcmp(accts[k].id, e->account) == 0) {
                found = k;
                if (strcmp(accts[k].currency, e->currency) == 0)
                    break;
            }
        }
        snprintf(field, sizeof field, "entries[%zu].account", i);
        if (found == n)
            return ledger_error_set(err, LEDGER_E_UNKNOWN_ACCOUNT, (long)i, field,
                                    "no ledger account %s", e->account);
        if (k == n)
            return ledger_error_set(err, LEDGER_E_CURRENCY_MISMATCH, (long)i, field,
                                    "account %s holds %s, entry %zu is in %s", e->account,
                                    accts[found].currency, i, e->currency);
        idx[i] = k;
        work[i] = accts[k]; /* (account, currency) pairs are distinct: no aliasing */
        rc = ledger_account_apply(&work[i], e, flags, &post[i], err);
        if (rc != LEDGER_OK) {
            if (err) {
                err->index = (long)i;
                snprintf(err->field, sizeof err->field, "entries[%zu].amount", i);
            }
            return rc;
        }
        post[i].account = k;
    }
    for (size_t i = 0; i < t->n_entries; i++) {
        accts[idx[i]] = work[i];
        if (postings)
            postings[i] = post[i];
    }
    return LEDGER_OK;
}

ledger_err ledger_owner_balance_of(const ledger_account *wallet, const ledger_account *holds,
                                   ledger_owner_balance *out, ledger_error *err)
{
    if (strcmp(wallet->currency, holds->currency) != 0)
        return ledger_error_set(err, LEDGER_E_CURRENCY_MISMATCH, -1, "currency",
                                "wallet holds %s, holds account %s", wallet->currency,
                                holds->currency);
    if (__builtin_add_overflow(wallet->balance, holds->balance, &out->posted))
        return ledger_error_set(err, LEDGER_E_OVERFLOW, -1, "balance", "posted balance overflows");
    out->pending = holds->balance;
    out->available = wallet->balance;
    return LEDGER_OK;
}

/* ---- holds ---------------------------------------------------------------- */

int64_t ledger_hold_remaining(const ledger_hold *h)
{
    return h->amount - h->captured - h->released;
}

ledger_err ledger_hold_place(ledger_hold *h, const char *currency, int64_t amount,
                             int64_t expires_us, ledger_error *err)
{
    if (amount <= 0)
        return ledger_error_set(err, LEDGER_E_BAD_AMOUNT, -1, "amount",
                                "a hold amount must be positive");
    if (!ledger_valid_currency(currency))
        return ledger_error_set(err, LEDGER_E_BAD_CURRENCY, -1, "currency",
                                "currency must be three upper-case letters");
    if (expires_us < 0 || expires_us > LEDGER_TIME_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_TIME, -1, "expires_at", "expiry out of range");
    memset(h, 0, sizeof *h);
    memcpy(h->currency, currency, sizeof h->currency);
    h->amount = amount;
    h->expires_us = expires_us;
    h->status = LEDGER_HOLD_OPEN;
    return LEDGER_OK;
}

static ledger_err not_open(const ledger_hold *h, ledger_error *err)
{
    static const char *names[] = {"", "open", "captured", "voided", "expired"};
    int s = (int)h->status;

    return ledger_error_set(err, LEDGER_E_HOLD_CLOSED, -1, "hold", "the hold is %s",
                            s >= 1 && s <= 4 ? names[s] : "in an unknown state");
}

ledger_err ledger_hold_capture(ledger_hold *h, int64_t amount, bool final, int64_t now_us,
                               int64_t *released_out, ledger_error *err)
{
    int64_t rest = ledger_hold_remaining(h);

    if (h->status != LEDGER_HOLD_OPEN)
        return not_open(h, err);
    if (now_us >= h->expires_us)
        return ledger_error_set(err, LEDGER_E_HOLD_EXPIRED, -1, "hold",
                                "the hold expired; it can only be released");
    if (amount <= 0)
        return ledger_error_set(err, LEDGER_E_BAD_AMOUNT, -1, "amount",
                                "a capture amount must be positive");
    if (amount > rest)
        return ledger_error_set(err, LEDGER_E_CAPTURE_EXCEEDS_HOLD, -1, "amount",
                                "capture of %lld exceeds the %lld %s remaining on the hold",
                                (long long)amount, (long long)rest, h->currency);
    h->captured += amount;
    rest -= amount;
    if (released_out)
        *released_out = 0;
    if (final || rest == 0) {
        h->released += rest;
        h->status = LEDGER_HOLD_CAPTURED;
        if (released_out)
            *released_out = rest;
    }
    return LEDGER_OK;
}

static void release_all(ledger_hold *h, ledger_hold_status st, int64_t *released_out)
{
    int64_t rest = ledger_hold_remaining(h);

    h->released += rest;
    h->status = st;
    if (released_out)
        *released_out = rest;
}

ledger_err ledger_hold_void(ledger_hold *h, int64_t *released_out, ledger_error *err)
{
    if (h->status != LEDGER_HOLD_OPEN)
        return not_open(h, err);
    release_all(h, LEDGER_HOLD_VOIDED, released_out);
    return LEDGER_OK;
}

ledger_err ledger_hold_expire(ledger_hold *h, int64_t now_us, int64_t *released_out,
                              ledger_error *err)
{
    if (h->status != LEDGER_HOLD_OPEN)
        return not_open(h, err);
    if (now_us < h->expires_us)
        return ledger_error_set(err, LEDGER_E_HOLD_NOT_EXPIRED, -1, "hold",
                                "the hold expires at %lld, it is %lld", (long long)h->expires_us,
                                (long long)now_us);
    release_all(h, LEDGER_HOLD_EXPIRED, released_out);
    return LEDGER_OK;
}

/* ---- builders ------------------------------------------------------------- */

static ledger_err positive(int64_t amount, const char *field, ledger_error *err)
{
    if (amount <= 0)
        return ledger_error_set(err, LEDGER_E_BAD_AMOUNT, -1, field, "amount must be positive");
    return LEDGER_OK;
}

static ledger_err two_legs(ledger_txn *t, ledger_kind kind, const char *debit, const char *credit,
                           const char *currency, int64_t amount, bool debit_first,
                           ledger_error *err)
{
    ledger_err rc = positive(amount, "amount", err);

    if (rc != LEDGER_OK)
        return rc;
    t->kind = kind;
    t->n_entries = 0;
    if (debit_first) {
        if ((rc = ledger_txn_add_entry(t, debit, currency, amount, err)) == LEDGER_OK)
            rc = ledger_txn_add_entry(t, credit, currency, -amount, err);
    } else {
        if ((rc = ledger_txn_add_entry(t, credit, currency, -amount, err)) == LEDGER_OK)
            rc = ledger_txn_add_entry(t, debit, currency, amount, err);
    }
    return rc;
}

ledger_err ledger_build_deposit(ledger_txn *t, const char *wallet, const char *cash,
                                const char *currency, int64_t amount, ledger_error *err)
{
    return two_legs(t, LEDGER_KIND_DEPOSIT, cash, wallet, currency, amount, false, err);
}

ledger_err ledger_build_hold(ledger_txn *t, const char *wallet, const char *holds,
                             const char *currency, int64_t amount, ledger_error *err)
{
    return two_legs(t, LEDGER_KIND_HOLD, wallet, holds, currency, amount, true, err);
}

ledger_err ledger_build_release(ledger_txn *t, ledger_kind kind, const char *holds,
                                const char *wallet, const char *currency, int64_t amount,
                                ledger_error *err)
{
    if (kind != LEDGER_KIND_RELEASE && kind != LEDGER_KIND_EXPIRY)
        return ledger_error_set(err, LEDGER_E_BAD_KIND, -1, "kind",
                                "a release is of kind release or expiry");
    return two_legs(t, kind, holds, wallet, currency, amount, true, err);
}

ledger_err ledger_build_capture(ledger_txn *t, const char *holds, const char *currency,
                                const ledger_payee *payees, size_t n_payees, const char *wallet,
                                int64_t release, ledger_error *err)
{
    int64_t total = 0;
    ledger_err rc;

    if (n_payees == 0 || n_payees + 2 > LEDGER_MAX_ENTRIES)
        return ledger_error_set(err, LEDGER_E_TOO_MANY_ENTRIES, -1, "payees",
                                "a capture pays 1..%d accounts", LEDGER_MAX_ENTRIES - 2);
    if (release < 0)
        return ledger_error_set(err, LEDGER_E_BAD_AMOUNT, -1, "release",
                                "the released rest cannot be negative");
    for (size_t i = 0; i < n_payees; i++) {
        if ((rc = positive(payees[i].amount, "payees[].amount", err)) != LEDGER_OK)
            return rc;
        if (__builtin_add_overflow(total, payees[i].amount, &total))
            return ledger_error_set(err, LEDGER_E_OVERFLOW, (long)i, "payees[].amount",
                                    "capture total overflows");
    }
    if (__builtin_add_overflow(total, release, &total))
        return ledger_error_set(err, LEDGER_E_OVERFLOW, -1, "release", "capture total overflows");
    t->kind = LEDGER_KIND_CAPTURE;
    t->n_entries = 0;
    if ((rc = ledger_txn_add_entry(t, holds, currency, total, err)) != LEDGER_OK)
        return rc;
    for (size_t i = 0; i < n_payees; i++)
        if ((rc = ledger_txn_add_entry(t, payees[i].account, currency, -payees[i].amount, err)) !=
            LEDGER_OK)
            return rc;
    if (release > 0)
        rc = ledger_txn_add_entry(t, wallet, currency, -release, err);
    return rc;
}

ledger_err ledger_build_reversal(ledger_txn *t, const ledger_txn *orig, ledger_error *err)
{
    if (orig->kind == LEDGER_KIND_REVERSAL)
        return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, "reverses_id",
                                "a reversal cannot itself be reversed; post a new transaction");
    if (orig->n_entries > LEDGER_MAX_ENTRIES || !ledger_valid_id(orig->id))
        return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, "reverses_id",
                                "the original transaction is not valid");
    t->kind = LEDGER_KIND_REVERSAL;
    snprintf(t->reverses_id, sizeof t->reverses_id, "%s", orig->id);
    t->n_entries = orig->n_entries;
    for (size_t i = 0; i < orig->n_entries; i++) {
        if (orig->entries[i].amount == INT64_MIN)
            return ledger_error_set(err, LEDGER_E_AMOUNT_RANGE, (long)i, "entries[].amount",
                                    "amount out of range");
        t->entries[i] = orig->entries[i];
        t->entries[i].amount = -orig->entries[i].amount;
    }
    return LEDGER_OK;
}
