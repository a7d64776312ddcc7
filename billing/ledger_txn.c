/*
 * ledger_txn.c - validation of ledger transactions and the shared error table.
 *
 * Invariant enforced here: a valid transaction has 2..LEDGER_MAX_ENTRIES
 * non-zero entries on distinct (account, currency) pairs whose debits and
 * credits are equal per currency, with every sum computed without overflow.
 */
#include "ledger_txn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const err_names[LEDGER_E__COUNT] = {
    [LEDGER_OK] = "ok",
    [LEDGER_E_TOO_FEW_ENTRIES] = "too_few_entries",
    [LEDGER_E_TOO_MANY_ENTRIES] = "too_many_entries",
    [LEDGER_E_ZERO_AMOUNT] = "zero_amount",
    [LEDGER_E_AMOUNT_RANGE] = "amount_out_of_range",
    [LEDGER_E_UNBALANCED] = "unbalanced",
    [LEDGER_E_OVERFLOW] = "overflow",
    [LEDGER_E_BAD_CURRENCY] = "bad_currency",
    [LEDGER_E_BAD_ID] = "bad_id",
    [LEDGER_E_BAD_ACCOUNT] = "bad_account",
    [LEDGER_E_DUPLICATE_ACCOUNT] = "duplicate_account",
    [LEDGER_E_BAD_KIND] = "bad_kind",
    [LEDGER_E_BAD_MEMO] = "bad_memo",
    [LEDGER_E_BAD_REFERENCE] = "bad_reference",
    [LEDGER_E_BAD_IDEMPOTENCY_KEY] = "bad_idempotency_key",
    [LEDGER_E_BAD_TIME] = "bad_time",
    [LEDGER_E_BAD_KID] = "bad_kid",
    [LEDGER_E_BAD_SEQUENCE] = "bad_sequence",
    [LEDGER_E_MISSING_REFERENCE] = "missing_reference",
    [LEDGER_E_BAD_VERSION] = "bad_version",
    [LEDGER_E_TRUNCATED] = "truncated",
    [LEDGER_E_TRAILING_BYTES] = "trailing_bytes",
    [LEDGER_E_NONCANONICAL] = "noncanonical",
    [LEDGER_E_NOMEM] = "out_of_memory",
    [LEDGER_E_HASH_MISMATCH] = "hash_mismatch",
    [LEDGER_E_PREV_LINK] = "prev_link_broken",
    [LEDGER_E_SEQUENCE_GAP] = "sequence_gap",
    [LEDGER_E_WRONG_PARTITION] = "wrong_partition",
    [LEDGER_E_BAD_SIGNATURE] = "bad_signature",
    [LEDGER_E_UNKNOWN_KEY] = "unknown_key",
    [LEDGER_E_KEY_NOT_VALID] = "key_not_valid",
    [LEDGER_E_KEYRING_FULL] = "keyring_full",
    [LEDGER_E_INSUFFICIENT_FUNDS] = "insufficient_funds",
    [LEDGER_E_CURRENCY_MISMATCH] = "currency_mismatch",
    [LEDGER_E_UNKNOWN_ACCOUNT] = "unknown_account",
    [LEDGER_E_BAD_AMOUNT] = "bad_amount",
    [LEDGER_E_CAPTURE_EXCEEDS_HOLD] = "capture_exceeds_hold",
    [LEDGER_E_HOLD_CLOSED] = "hold_closed",
    [LEDGER_E_HOLD_EXPIRED] = "hold_expired",
    [LEDGER_E_HOLD_NOT_EXPIRED] = "hold_not_expired",
    [LEDGER_E_BAD_LIMIT] = "bad_credit_limit",
    [LEDGER_E_BAD_PROOF] = "bad_proof",
    [LEDGER_E_ROOT_MISMATCH] = "root_mismatch",
    [LEDGER_E_HEAD_MISMATCH] = "head_mismatch",
    [LEDGER_E_BAD_PARTITION_COUNT] = "bad_partition_count",
    [LEDGER_E_ROLLBACK] = "rollback",
    [LEDGER_E_CHECKPOINT_LINK] = "checkpoint_link_broken",
};

static const char *const kind_names[LEDGER_KIND_MAX + 1] = {
    [LEDGER_KIND_DEPOSIT] = "deposit", [LEDGER_KIND_HOLD] = "hold",
    [LEDGER_KIND_CAPTURE] = "capture", [LEDGER_KIND_RELEASE] = "release",
    [LEDGER_KIND_PAYOUT] = "payout",   [LEDGER_KIND_REVERSAL] = "reversal",
    [LEDGER_KIND_FEE] = "fee",         [LEDGER_KIND_ADJUSTMENT] = "adjustment",
    [LEDGER_KIND_EXPIRY] = "expiry",
};

const char *ledger_err_name(ledger_err code)
{
    if ((int)code < 0 || code >= LEDGER_E__COUNT || !err_names[code])
        return "unknown_error";
    return err_names[code];
}

ledger_err ledger_error_set(ledger_error *err, ledger_err code, long index, const char *field,
                            const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return code;
    err->code = code;
    err->index = index;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

const char *ledger_kind_name(ledger_kind kind)
{
    if ((int)kind < LEDGER_KIND_MIN || (int)kind > LEDGER_KIND_MAX)
        return NULL;
    return kind_names[kind];
}

int ledger_kind_parse(const char *name, ledger_kind *out)
{
    if (!name)
        return -1;
    for (int k = LEDGER_KIND_MIN; k <= LEDGER_KIND_MAX; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (ledger_kind)k;
            return 0;
        }
    }
    return -1;
}

void ledger_txn_init(ledger_txn *t)
{
    memset(t, 0, sizeof *t);
}

/* Copy s into dst[cap] when it fits (strlen(s) < cap); false otherwise. */
static bool copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (!s || n >= cap)
        return false;
    memcpy(dst, s, n + 1);
    return true;
}

ledger_err ledger_txn_add_entry(ledger_txn *t, const char *account, const char *currency,
                                int64_t amount, ledger_error *err)
{
    ledger_entry *e;
    long i = (long)t->n_entries;

    if (t->n_entries >= LEDGER_MAX_ENTRIES)
        return ledger_error_set(err, LEDGER_E_TOO_MANY_ENTRIES, i, "entries",
                                "a transaction has at most %d entries", LEDGER_MAX_ENTRIES);
    e = &t->entries[t->n_entries];
    if (!copy_str(e->account, sizeof e->account, account) || !ledger_valid_id(account))
        return ledger_error_set(err, LEDGER_E_BAD_ACCOUNT, i, "account",
                                "account id must be 1..%d characters of [A-Za-z0-9_.:-]",
                                LEDGER_ID_MAX);
    if (!ledger_valid_currency(currency))
        return ledger_error_set(err, LEDGER_E_BAD_CURRENCY, i, "currency",
                                "currency must be three upper-case letters");
    memcpy(e->currency, currency, LEDGER_CURRENCY_LEN + 1);
    e->amount = amount;
    t->n_entries++;
    return LEDGER_OK;
}

static bool id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
}

/* s is a NUL-terminated string inside a buffer of cap bytes with 1..max id chars. */
static bool valid_token(const char *s, size_t cap, size_t max)
{
    size_t n = 0;

    if (!s)
        return false;
    while (n < cap && s[n]) {
        if (!id_char((unsigned char)s[n]))
            return false;
        n++;
    }
    return n >= 1 && n <= max && n < cap;
}

bool ledger_valid_id(const char *s)
{
    return valid_token(s, LEDGER_ID_MAX + 1, LEDGER_ID_MAX);
}

bool ledger_valid_currency(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < LEDGER_CURRENCY_LEN; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return false;
    return s[LEDGER_CURRENCY_LEN] == '\0';
}

/* Decode one UTF-8 scalar value at s (n bytes left). Returns its length in
 * bytes and stores it in *cp, or 0 when the sequence is invalid (overlong,
 * surrogate, above U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c = s[0], min;
    size_t len;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, c &= 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, c &= 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

bool ledger_valid_memo(const char *s)
{
    size_t n, i = 0;

    if (!s)
        return false;
    n = strnlen(s, LEDGER_MEMO_MAX + 1);
    if (n > LEDGER_MEMO_MAX)
        return false;
    while (i < n) {
        uint32_t cp;
        size_t len = utf8_next((const unsigned char *)s + i, n - i, &cp);

        if (len == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            return false;
        i += len;
    }
    return true;
}

bool ledger_valid_idempotency_key(const char *s)
{
    size_t n = 0;

    if (!s)
        return false;
    while (n <= LEDGER_IDEM_MAX && s[n]) {
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7E)
            return false;
        n++;
    }
    return n >= 1 && n <= LEDGER_IDEM_MAX;
}

static ledger_err validate_refs(const ledger_txn *t, ledger_error *err)
{
    static const struct {
        const char *name;
        size_t off;
    } refs[] = {
        {"order_id", offsetof(ledger_txn, order_id)},
        {"usage_id", offsetof(ledger_txn, usage_id)},
        {"invoice_id", offsetof(ledger_txn, invoice_id)},
        {"reverses_id", offsetof(ledger_txn, reverses_id)},
    };

    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        const char *s = (const char *)t + refs[i].off;

        if (s[0] && !ledger_valid_id(s))
            return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, refs[i].name,
                                    "%s must be 1..%d characters of [A-Za-z0-9_.:-]", refs[i].name,
                                    LEDGER_ID_MAX);
    }
    if (t->kind == LEDGER_KIND_REVERSAL && !t->reverses_id[0])
        return ledger_error_set(err, LEDGER_E_MISSING_REFERENCE, -1, "reverses_id",
                                "a reversal must name the transaction it reverses");
    if (t->kind != LEDGER_KIND_REVERSAL && t->reverses_id[0])
        return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, "reverses_id",
                                "only a reversal may reference a reversed transaction");
    if (t->reverses_id[0] && strcmp(t->reverses_id, t->id) == 0)
        return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, "reverses_id",
                                "a transaction cannot reverse itself");
    return LEDGER_OK;
}

static ledger_err validate_header(const ledger_txn *t, ledger_error *err)
{
    if (!ledger_valid_id(t->id))
        return ledger_error_set(err, LEDGER_E_BAD_ID, -1, "id",
                                "id must be 1..%d characters of [A-Za-z0-9_.:-]", LEDGER_ID_MAX);
    if (t->seq == 0)
        return ledger_error_set(err, LEDGER_E_BAD_SEQUENCE, -1, "seq",
                                "sequence numbers start at 1");
    if (!ledger_kind_name(t->kind))
        return ledger_error_set(err, LEDGER_E_BAD_KIND, -1, "kind", "unknown kind %d",
                                (int)t->kind);
    if (!ledger_valid_memo(t->memo))
        return ledger_error_set(err, LEDGER_E_BAD_MEMO, -1, "memo",
                                "memo must be at most %d bytes of UTF-8 without control "
                                "characters",
                                LEDGER_MEMO_MAX);
    if (t->idempotency_key[0] && !ledger_valid_idempotency_key(t->idempotency_key))
        return ledger_error_set(err, LEDGER_E_BAD_IDEMPOTENCY_KEY, -1, "idempotency_key",
                                "idempotency key must be 1..%d printable ASCII characters",
                                LEDGER_IDEM_MAX);
    if (t->effective_us < 0 || t->effective_us > LEDGER_TIME_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_TIME, -1, "effective_us",
                                "effective time out of range");
    if (t->inserted_us < 0 || t->inserted_us > LEDGER_TIME_MAX)
        return ledger_error_set(err, LEDGER_E_BAD_TIME, -1, "inserted_us",
                                "insertion time out of range");
    if (t->kid[0] && !valid_token(t->kid, sizeof t->kid, LEDGER_KID_MAX))
        return ledger_error_set(err, LEDGER_E_BAD_KID, -1, "kid",
                                "key id must be 1..%d characters of [A-Za-z0-9_.:-]",
                                LEDGER_KID_MAX);
    return validate_refs(t, err);
}

/* Per-currency running sums of debits and credits (credits as positive numbers). */
typedef struct cur_sum {
    char currency[LEDGER_CURRENCY_LEN + 1];
    int64_t debits, credits;
} cur_sum;

static ledger_err validate_entries(const ledger_txn *t, ledger_error *err)
{
    cur_sum sums[LEDGER_MAX_ENTRIES];
    size_t nsums = 0;
    char field[40];

    if (t->n_entries < LEDGER_MIN_ENTRIES)
        return ledger_error_set(err, LEDGER_E_TOO_FEW_ENTRIES, -1, "entries",
                                "a transaction needs at least %d entries", LEDGER_MIN_ENTRIES);
    if (t->n_entries > LEDGER_MAX_ENTRIES)
        return ledger_error_set(err, LEDGER_E_TOO_MANY_ENTRIES, -1, "entries",
                                "a transaction has at most %d entries", LEDGER_MAX_ENTRIES);
    for (size_t i = 0; i < t->n_entries; i++) {
        const ledger_entry *e = &t->entries[i];
        size_t k;

        if (!ledger_valid_id(e->account)) {
            snprintf(field, sizeof field, "entries[%zu].account", i);
            return ledger_error_set(err, LEDGER_E_BAD_ACCOUNT, (long)i, field,
                                    "account id must be 1..%d characters of [A-Za-z0-9_.:-]",
                                    LEDGER_ID_MAX);
        }
        if (!ledger_valid_currency(e->currency)) {
            snprintf(field, sizeof field, "entries[%zu].currency", i);
            return ledger_error_set(err, LEDGER_E_BAD_CURRENCY, (long)i, field,
                                    "currency must be three upper-case letters");
        }
        snprintf(field, sizeof field, "entries[%zu].amount", i);
        if (e->amount == 0)
            return ledger_error_set(err, LEDGER_E_ZERO_AMOUNT, (long)i, field,
                                    "entry amounts must not be zero");
        if (e->amount == INT64_MIN)
            return ledger_error_set(err, LEDGER_E_AMOUNT_RANGE, (long)i, field,
                                    "amount out of range");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t->entries[j].account, e->account) == 0 &&
                strcmp(t->entries[j].currency, e->currency) == 0) {
                snprintf(field, sizeof field, "entries[%zu].account", i);
                return ledger_error_set(err, LEDGER_E_DUPLICATE_ACCOUNT, (long)i, field,
                                        "account %s appears twice in %s (entries %zu and %zu)",
                                        e->account, e->currency, j, i);
            }
        }
        for (k = 0; k < nsums; k++)
            if (strcmp(sums[k].currency, e->currency) == 0)
                break;
        if (k == nsums) {
            memcpy(sums[k].currency, e->currency, sizeof sums[k].currency);
            sums[k].debits = sums[k].credits = 0;
            nsums++;
        }
        if (e->amount > 0 ? __builtin_add_overflow(sums[k].debits, e->amount, &sums[k].debits)
                          : __builtin_add_overflow(sums[k].credits, -e->amount, &sums[k].credits))
            return ledger_error_set(err, LEDGER_E_OVERFLOW, (long)i, field,
                                    "the %s of %s overflow a 64-bit integer",
                                    e->amount > 0 ? "debits" : "credits", e->currency);
    }
    for (size_t k = 0; k < nsums; k++) {
        if (sums[k].debits != sums[k].credits)
            return ledger_error_set(err, LEDGER_E_UNBALANCED, -1, "entries",
                                    "%s does not balance: debits %lld, credits %lld",
                                    sums[k].currency, (long long)sums[k].debits,
                                    (long long)sums[k].credits);
    }
    return LEDGER_OK;
}

ledger_err ledger_txn_validate(const ledger_txn *t, ledger_error *err)
{
    ledger_err rc = validate_header(t, err);

    if (rc != LEDGER_OK)
        return rc;
    return validate_entries(t, err);
}
