/*
 * ledger_txn.h - the ledger transaction model and its validation.
 *
 * A ledger transaction (struct ledger_txn) is a set of two or more entries that
 * move money between ledger accounts. Every entry carries its own currency and a
 * signed amount in micro-units (1 USD = 1 000 000): a POSITIVE amount is a DEBIT
 * to the entry's account, a NEGATIVE amount is a CREDIT. The invariant kept by
 * ledger_txn_validate() is balanced bookkeeping: per currency, debits equal credits.
 *
 * The struct owns no heap memory: every string is a fixed, NUL-terminated array
 * and the entries are an inline array, so a transaction can be copied with '='
 * and decoded from canonical bytes without allocating. Optional references are
 * "absent" when their string is empty ("").
 *
 * Integrity fields (prev_hash, hash, kid, sig) are filled by ledger_txn_seal()
 * in sign.h; the canonical bytes (canon.h) cover everything except prev_hash,
 * hash and sig, and the hash covers prev_hash. See docs/ledger-format.md.
 */
#ifndef TALLY_LEDGER_TXN_H
#define TALLY_LEDGER_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (bytes, excluding the terminating NUL). They are part of the format:
 * the decoder rejects anything longer. */
#define LEDGER_ID_MAX 64    /* txn id, account ids, references */
#define LEDGER_MEMO_MAX 256 /* memo: valid UTF-8, no control characters */
#define LEDGER_IDEM_MAX 255 /* idempotency key: printable ASCII */
#define LEDGER_KID_MAX 23   /* key id, e.g. "sk_" + 16 hex digits */
#define LEDGER_MIN_ENTRIES 2
#define LEDGER_MAX_ENTRIES 32
#define LEDGER_CURRENCY_LEN 3 /* ISO-4217-style: three upper-case letters */
#define LEDGER_HASH_BYTES 32  /* BLAKE2b-256 */
#define LEDGER_SIG_BYTES 64   /* Ed25519 */
/* Times are Unix microseconds (UTC) in [0, LEDGER_TIME_MAX] (9999-12-31T23:59:59.999999Z). */
#define LEDGER_TIME_MAX INT64_C(253402300799999999)

/* Transaction kinds. The numbers are written into canonical bytes: never renumber. */
typedef enum ledger_kind {
    LEDGER_KIND_DEPOSIT = 1,
    LEDGER_KIND_HOLD = 2,
    LEDGER_KIND_CAPTURE = 3,
    LEDGER_KIND_RELEASE = 4,
    LEDGER_KIND_PAYOUT = 5,
    LEDGER_KIND_REVERSAL = 6,
    LEDGER_KIND_FEE = 7,
    LEDGER_KIND_ADJUSTMENT = 8,
    LEDGER_KIND_EXPIRY = 9,
} ledger_kind;
#define LEDGER_KIND_MIN 1
#define LEDGER_KIND_MAX 9

/* Error codes shared by every billing module. The names returned by
 * ledger_err_name() are stable and machine-readable (problem+json types map
 * onto them); never renumber or rename. */
typedef enum ledger_err {
    LEDGER_OK = 0,
    /* validation of a transaction */
    LEDGER_E_TOO_FEW_ENTRIES,
    LEDGER_E_TOO_MANY_ENTRIES,
    LEDGER_E_ZERO_AMOUNT,
    LEDGER_E_AMOUNT_RANGE,
    LEDGER_E_UNBALANCED,
    LEDGER_E_OVERFLOW,
    LEDGER_E_BAD_CURRENCY,
    LEDGER_E_BAD_ID,
    LEDGER_E_BAD_ACCOUNT,
    LEDGER_E_DUPLICATE_ACCOUNT,
    LEDGER_E_BAD_KIND,
    LEDGER_E_BAD_MEMO,
    LEDGER_E_BAD_REFERENCE,
    LEDGER_E_BAD_IDEMPOTENCY_KEY,
    LEDGER_E_BAD_TIME,
    LEDGER_E_BAD_KID,
    LEDGER_E_BAD_SEQUENCE,
    LEDGER_E_MISSING_REFERENCE,
    /* canonical bytes */
    LEDGER_E_BAD_VERSION,
    LEDGER_E_TRUNCATED,
    LEDGER_E_TRAILING_BYTES,
    LEDGER_E_NONCANONICAL,
    LEDGER_E_NOMEM,
    /* chain and signatures */
    LEDGER_E_HASH_MISMATCH,
    LEDGER_E_PREV_LINK,
    LEDGER_E_SEQUENCE_GAP,
    LEDGER_E_WRONG_PARTITION,
    LEDGER_E_BAD_SIGNATURE,
    LEDGER_E_UNKNOWN_KEY,
    LEDGER_E_KEY_NOT_VALID,
    LEDGER_E_KEYRING_FULL,
    /* balances and holds */
    LEDGER_E_INSUFFICIENT_FUNDS,
    LEDGER_E_CURRENCY_MISMATCH,
    LEDGER_E_UNKNOWN_ACCOUNT,
    LEDGER_E_BAD_AMOUNT,
    LEDGER_E_CAPTURE_EXCEEDS_HOLD,
    LEDGER_E_HOLD_CLOSED,
    LEDGER_E_HOLD_EXPIRED,
    LEDGER_E_HOLD_NOT_EXPIRED,
    LEDGER_E_BAD_LIMIT,
    /* Merkle checkpoints and proofs */
    LEDGER_E_BAD_PROOF,
    LEDGER_E_ROOT_MISMATCH,
    LEDGER_E_HEAD_MISMATCH,
    LEDGER_E_BAD_PARTITION_COUNT,
    LEDGER_E_ROLLBACK,
    LEDGER_E_CHECKPOINT_LINK,
    LEDGER_E__COUNT
} ledger_err;

/* What went wrong, PostgreSQL-style: a stable code, the offending field
 * ("entries[2].amount", "memo", …, or "" when none), the entry or transaction
 * index it concerns (-1 when none), and a one-line human message. */
typedef struct ledger_error {
    ledger_err code;
    long index;
    char field[40];
    char message[200];
} ledger_error;

typedef struct ledger_entry {
    char account[LEDGER_ID_MAX + 1];
    char currency[LEDGER_CURRENCY_LEN + 1];
    int64_t amount; /* > 0 debit, < 0 credit; never 0, never INT64_MIN */
} ledger_entry;

typedef struct ledger_txn {
    char id[LEDGER_ID_MAX + 1]; /* "txn_…" */
    uint32_t partition;         /* chain partition, see chain.h */
    uint64_t seq;               /* 1, 2, 3, … within the partition, gap-free */
    ledger_kind kind;
    char memo[LEDGER_MEMO_MAX + 1];            /* may be empty */
    char order_id[LEDGER_ID_MAX + 1];          /* optional references: "" = absent */
    char usage_id[LEDGER_ID_MAX + 1];          /* usage record id */
    char invoice_id[LEDGER_ID_MAX + 1];        /* invoice id */
    char reverses_id[LEDGER_ID_MAX + 1];       /* txn id this one reverses (kind reversal) */
    char idempotency_key[LEDGER_IDEM_MAX + 1]; /* optional: "" = absent */
    int64_t effective_us;                      /* when it takes economic effect */
    int64_t inserted_us;                       /* when the ledger recorded it */
    size_t n_entries;
    ledger_entry entries[LEDGER_MAX_ENTRIES];
    /* integrity (sign.h) */
    unsigned char prev_hash[LEDGER_HASH_BYTES];
    unsigned char hash[LEDGER_HASH_BYTES];
    char kid[LEDGER_KID_MAX + 1];
    unsigned char sig[LEDGER_SIG_BYTES];
} ledger_txn;

/* ledger_err_name - the stable snake_case name of a code ("unbalanced", …). */
const char *ledger_err_name(ledger_err code);

/* ledger_error_set - fill err (which may be NULL) and return code. printf-style. */
ledger_err ledger_error_set(ledger_error *err, ledger_err code, long index, const char *field,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ledger_kind_name / ledger_kind_parse - "deposit" <-> LEDGER_KIND_DEPOSIT.
 * ledger_kind_name returns NULL for an unknown kind; ledger_kind_parse returns
 * 0 on success and -1 for an unknown name. */
const char *ledger_kind_name(ledger_kind kind);
int ledger_kind_parse(const char *name, ledger_kind *out);

/* ledger_txn_init - zero t (all optional fields absent, no entries). */
void ledger_txn_init(ledger_txn *t);

/* ledger_txn_add_entry - append an entry. Copies the strings; fails with
 * LEDGER_E_TOO_MANY_ENTRIES, LEDGER_E_BAD_ACCOUNT or LEDGER_E_BAD_CURRENCY when
 * they do not fit. Does not run the full validation. */
ledger_err ledger_txn_add_entry(ledger_txn *t, const char *account, const char *currency,
                                int64_t amount, ledger_error *err);

/* ledger_txn_validate - check everything the canonical bytes cover:
 *   - id, account ids and references: 1..LEDGER_ID_MAX bytes of [A-Za-z0-9_.:-];
 *   - memo: <= LEDGER_MEMO_MAX bytes of valid UTF-8 without control characters;
 *   - idempotency key: absent, or 1..LEDGER_IDEM_MAX bytes of printable ASCII;
 *   - kid: 1..LEDGER_KID_MAX bytes of [A-Za-z0-9_.:-];
 *   - kind known; seq >= 1; times in [0, LEDGER_TIME_MAX];
 *   - kind reversal requires reverses_id, other kinds must not carry it;
 *   - LEDGER_MIN_ENTRIES..LEDGER_MAX_ENTRIES entries, each with a valid account,
 *     a currency of three upper-case ASCII letters, an amount that is neither 0
 *     nor INT64_MIN, and no (account, currency) pair twice;
 *   - per currency, the sum of debits and the sum of credits each fit in an
 *     int64 (LEDGER_E_OVERFLOW otherwise) and are equal (LEDGER_E_UNBALANCED).
 * Returns LEDGER_OK or the first problem found (err filled when non-NULL).
 * The kid is only checked when non-empty, so an unsealed txn validates. */
ledger_err ledger_txn_validate(const ledger_txn *t, ledger_error *err);

/* Field-level checkers, exported for the HTTP layer so a request can be
 * rejected with the same rules before a transaction is built. */
bool ledger_valid_id(const char *s);
bool ledger_valid_currency(const char *s);
bool ledger_valid_memo(const char *s);
bool ledger_valid_idempotency_key(const char *s);

#endif
