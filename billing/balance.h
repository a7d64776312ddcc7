/*
 * balance.h - balance arithmetic, credit limits and holds, as pure state
 * transitions on small structs.
 *
 * Sign convention. An entry's amount is positive for a DEBIT and negative for a
 * CREDIT (ledger_txn.h). Each ledger account has a normal side and reports its
 * balance in owner-facing terms:
 *   debit-normal  (assets: external cash/bank clearing)  balance =  Σ amounts
 *   credit-normal (liabilities and revenue: tenant wallet, tenant holds,
 *                  provider payable, platform revenue)    balance = −Σ amounts
 * So a tenant wallet's balance is what the platform owes the tenant (what the
 * tenant owns): a deposit CREDITS the wallet (amount < 0) and DEBITS external
 * cash (amount > 0), and both balances go up.
 *
 * Limits. A checked account's balance may not end below −credit_limit
 * (credit_limit >= 0, default 0: no overdraft). Only entries that LOWER the
 * balance are refused; an entry that raises it is always accepted, even while
 * the account sits below its limit. "Unchecked" accounts (external cash,
 * platform revenue, provider payable: only credited by design, or a mirror of
 * the outside world) take no limit check, so the service needs no balance lock
 * on them.
 *
 * Holds (escrow model). Placing a hold is a real transaction that moves the
 * amount from the tenant's wallet to the tenant's holds account (same
 * currency); a capture moves captured money from the holds account to the
 * payees (provider payable, platform revenue); void, expiry and the unused rest
 * of a final capture move it back to the wallet. So for a tenant:
 *   pending   = holds account balance
 *   posted    = wallet balance + holds account balance
 *   available = posted − pending = wallet balance  (>= −credit_limit)
 * and every figure is a sum of entries. struct ledger_hold tracks one hold's
 * life (amount, captured, released, status); the sum of the remaining amounts
 * of open holds equals the holds account balance.
 */
#ifndef TALLY_LEDGER_BALANCE_H
#define TALLY_LEDGER_BALANCE_H

#include "ledger_txn.h"

#include <stdbool.h>

typedef enum ledger_normal {
    LEDGER_NORMAL_DEBIT = 1,
    LEDGER_NORMAL_CREDIT = 2,
} ledger_normal;

typedef struct ledger_account {
    char id[LEDGER_ID_MAX + 1];
    char currency[LEDGER_CURRENCY_LEN + 1];
    ledger_normal normal;
    int64_t balance;      /* owner-facing, see above */
    int64_t credit_limit; /* >= 0 */
    bool unchecked;       /* no limit check (hot or external accounts) */
    uint64_t version;     /* number of entries applied */
} ledger_account;

/* What one entry did to its account (stored beside the entry). */
typedef struct ledger_posting {
    size_t account; /* index into the accounts array */
    int64_t before, after;
    uint64_t version; /* the account's version after this entry */
} ledger_posting;

/* Flags for ledger_apply_txn. */
#define LEDGER_APPLY_NO_LIMITS 1u /* recomputing history: skip limit checks */

/* ledger_account_init - a zero balance, version 0. LEDGER_E_BAD_ACCOUNT,
 * LEDGER_E_BAD_CURRENCY or LEDGER_E_BAD_LIMIT (negative) on bad input. */
ledger_err ledger_account_init(ledger_account *a, const char *id, const char *currency,
                               ledger_normal normal, int64_t credit_limit, bool unchecked,
                               ledger_error *err);

/* ledger_entry_delta - the change an entry amount makes to a balance of the
 * given normal side (amount must not be INT64_MIN; callers validate first). */
int64_t ledger_entry_delta(ledger_normal normal, int64_t amount);

/* ledger_account_apply - apply one entry to a (matching id and currency)
 * account. LEDGER_E_CURRENCY_MISMATCH, LEDGER_E_UNKNOWN_ACCOUNT (id differs),
 * LEDGER_E_AMOUNT_RANGE, LEDGER_E_OVERFLOW, LEDGER_E_INSUFFICIENT_FUNDS. The
 * account is unchanged on failure. out (may be NULL) gets before/after/version;
 * out->account is left to the caller. */
ledger_err ledger_account_apply(ledger_account *a, const ledger_entry *e, unsigned flags,
                                ledger_posting *out, ledger_error *err);

/* ledger_apply_txn - apply every entry of t to accts[0..n) all-or-nothing.
 * Validates t first; each entry must match an account by id and currency
 * (LEDGER_E_UNKNOWN_ACCOUNT / LEDGER_E_CURRENCY_MISMATCH otherwise).
 * postings (may be NULL) receives t->n_entries records. On failure nothing in
 * accts changes and err->index names the entry. */
ledger_err ledger_apply_txn(ledger_account *accts, size_t n, const ledger_txn *t, unsigned flags,
                            ledger_posting *postings, ledger_error *err);

/* The figures GET /v1/ledger/accounts/{id}/balance reports for a tenant. */
typedef struct ledger_owner_balance {
    int64_t posted, pending, available;
} ledger_owner_balance;

/* ledger_owner_balance_of - posted/pending/available from a wallet and its holds
 * account (same currency, both credit-normal). LEDGER_E_CURRENCY_MISMATCH or
 * LEDGER_E_OVERFLOW. */
ledger_err ledger_owner_balance_of(const ledger_account *wallet, const ledger_account *holds,
                                   ledger_owner_balance *out, ledger_error *err);

/* ---- holds ---------------------------------------------------------------- */

typedef enum ledger_hold_status {
    LEDGER_HOLD_OPEN = 1,
    LEDGER_HOLD_CAPTURED = 2, /* final capture done; any rest released */
    LEDGER_HOLD_VOIDED = 3,
    LEDGER_HOLD_EXPIRED = 4,
} ledger_hold_status;

typedef struct ledger_hold {
    char currency[LEDGER_CURRENCY_LEN + 1];
    int64_t amount;   /* reserved when placed, > 0 */
    int64_t captured; /* sum of captures */
    int64_t released; /* returned to the wallet */
    int64_t expires_us;
    ledger_hold_status status;
} ledger_hold;

/* ledger_hold_remaining - amount − captured − released (what is still held). */
int64_t ledger_hold_remaining(const ledger_hold *h);

/* ledger_hold_place - a new open hold. LEDGER_E_BAD_AMOUNT (<= 0),
 * LEDGER_E_BAD_CURRENCY, LEDGER_E_BAD_TIME. The caller also posts
 * ledger_build_hold's transaction, which checks the wallet's funds. */
ledger_err ledger_hold_place(ledger_hold *h, const char *currency, int64_t amount,
                             int64_t expires_us, ledger_error *err);

/* ledger_hold_capture - capture amount (0 < amount <= remaining) at now_us
 * (< expires_us). final (or capturing the whole remainder) closes the hold and
 * releases the rest: *released_out (may be NULL) gets the amount to move back
 * to the wallet by this operation (0 for a non-final partial capture).
 * LEDGER_E_HOLD_CLOSED, LEDGER_E_HOLD_EXPIRED, LEDGER_E_BAD_AMOUNT,
 * LEDGER_E_CAPTURE_EXCEEDS_HOLD. Unchanged on failure. */
ledger_err ledger_hold_capture(ledger_hold *h, int64_t amount, bool final, int64_t now_us,
                               int64_t *released_out, ledger_error *err);

/* ledger_hold_void - release everything remaining (LEDGER_E_HOLD_CLOSED if not open). */
ledger_err ledger_hold_void(ledger_hold *h, int64_t *released_out, ledger_error *err);

/* ledger_hold_expire - at now_us >= expires_us release everything remaining
 * (LEDGER_E_HOLD_NOT_EXPIRED before that, LEDGER_E_HOLD_CLOSED if not open). */
ledger_err ledger_hold_expire(ledger_hold *h, int64_t now_us, int64_t *released_out,
                              ledger_error *err);

/* ---- transaction builders ------------------------------------------------- */
/* Each sets t's kind and entries (replacing any) and leaves id, times, memo,
 * references, partition and seq to the caller. The first entry is the owner's
 * account (it decides the partition, chain.h). Amounts must be > 0
 * (LEDGER_E_BAD_AMOUNT). */

/* deposit: credit wallet, debit external cash. */
ledger_err ledger_build_deposit(ledger_txn *t, const char *wallet, const char *cash,
                                const char *currency, int64_t amount, ledger_error *err);
/* hold: debit wallet, credit holds account. */
ledger_err ledger_build_hold(ledger_txn *t, const char *wallet, const char *holds,
                             const char *currency, int64_t amount, ledger_error *err);
/* release / expiry (kind LEDGER_KIND_RELEASE or LEDGER_KIND_EXPIRY): debit
 * holds, credit wallet. */
ledger_err ledger_build_release(ledger_txn *t, ledger_kind kind, const char *holds,
                                const char *wallet, const char *currency, int64_t amount,
                                ledger_error *err);

/* One payee of a capture. */
typedef struct ledger_payee {
    const char *account;
    int64_t amount; /* > 0 */
} ledger_payee;

/* capture: debit holds by the payees' total, credit each payee; when release
 * > 0 also credit the wallet with the unused rest (a final capture). */
ledger_err ledger_build_capture(ledger_txn *t, const char *holds, const char *currency,
                                const ledger_payee *payees, size_t n_payees, const char *wallet,
                                int64_t release, ledger_error *err);

/* reversal: the entries of orig negated, same order and accounts; kind
 * reversal; reverses_id = orig->id. Reversing a reversal is refused
 * (LEDGER_E_BAD_REFERENCE): post a new transaction instead. */
ledger_err ledger_build_reversal(ledger_txn *t, const ledger_txn *orig, ledger_error *err);

#endif
