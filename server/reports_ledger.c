/*
 * reports_ledger.c - trial balance and payouts SQL, columns and totals.
 *
 * Sign convention (docs/ledger.md, billing/balance.h): an entry's amount is
 * positive for a debit; an account's stored balance is on its normal side
 * (external cash is debit-normal: balance = sum of amounts; wallets, holds,
 * payable and revenue are credit-normal: balance = -sum). The trial balance
 * puts each balance in a debit or a credit column and sums them per currency:
 * double entry makes debits equal credits, and the report says whether they
 * do. Payouts are in the provider's terms: what the platform owes it (its
 * payable balance; entries negated).
 */
#include "reports_ledger.h"
#include "report_fmt.h"

#include <stdlib.h>
#include <string.h>

/*
 * Every account's balance now, or as of $1 (unix us: the last entry per shard at
 * or before it). Stored balances are in the account's natural sign (positive on
 * its normal side: debit for external cash, credit for wallets, holds, payable,
 * revenue); the debit and credit columns put each on its side.
 */
static const char sql_trial[] = REPORT_DECLARE
    "SELECT id, owner_id, purpose, currency, normal, b, CASE WHEN (normal = 'debit') = (b > 0) "
    "THEN abs(b) ELSE 0 END, CASE WHEN (normal = 'debit') = (b < 0) THEN abs(b) ELSE 0 END FROM "
    "(SELECT a.id, a.owner_id, a.purpose, a.currency, CASE WHEN a.purpose = 'external' THEN "
    "'debit' ELSE 'credit' END AS normal, (CASE WHEN $1::bigint IS NULL THEN CASE WHEN a.checked "
    "THEN a.balance ELSE (SELECT coalesce(sum(s.balance), 0) FROM ledger_account_shards s WHERE "
    "s.account_id = a.id) END ELSE (SELECT coalesce(sum(x.b), 0) FROM (SELECT -1 AS shard UNION "
    "ALL SELECT shard FROM ledger_account_shards WHERE account_id = a.id) s CROSS JOIN LATERAL "
    "(SELECT e.balance_after b FROM ledger_entries e WHERE e.account_id = a.id AND e.shard = "
    "s.shard AND e.inserted_us <= $1::bigint ORDER BY e.inserted_us DESC, e.account_version DESC "
    "LIMIT 1) x) END)::bigint AS b FROM ledger_accounts a) t ORDER BY currency, purpose, id";

static const report_col cols_trial[] = {
    {"account_id", RCOL_TEXT}, {"owner_id", RCOL_TEXT}, {"purpose", RCOL_TEXT},
    {"currency", RCOL_TEXT},   {"normal", RCOL_TEXT},   {"balance", RCOL_MONEY},
    {"debit", RCOL_MONEY},     {"credit", RCOL_MONEY},
};

#define IN_PERIOD "t.effective_us >= $1::bigint AND t.effective_us < $2::bigint"
#define REFUND "t.kind IN ('adjustment', 'reversal') AND e.amount > 0"

static const char sql_payouts[] = REPORT_DECLARE
    "SELECT a.owner_id, a.currency, (-coalesce(sum(e.amount) FILTER (WHERE t.effective_us < "
    "$1::bigint), 0))::bigint, (-coalesce(sum(e.amount) FILTER (WHERE " IN_PERIOD
    " AND t.kind = 'capture'), 0))::bigint, coalesce(sum(e.amount) FILTER (WHERE " IN_PERIOD
    " AND " REFUND "), 0)::bigint, coalesce(sum(e.amount) FILTER (WHERE " IN_PERIOD
    " AND t.kind = 'payout'), 0)::bigint, (-coalesce(sum(e.amount) FILTER (WHERE " IN_PERIOD
    " AND t.kind NOT IN ('capture', 'payout') AND NOT (" REFUND
    ")), 0))::bigint, (-coalesce(sum(e.amount) FILTER (WHERE t.effective_us < $2::bigint), "
    "0))::bigint, (SELECT coalesce(sum(s.balance), 0) FROM ledger_account_shards s WHERE "
    "s.account_id = a.id)::bigint FROM ledger_accounts a LEFT JOIN ledger_entries e ON "
    "e.account_id = a.id LEFT JOIN ledger_transactions t ON t.id = e.txn_id WHERE a.purpose = "
    "'payable' AND ($3::text IS NULL OR a.owner_id = $3) GROUP BY a.id, a.owner_id, a.currency "
    "ORDER BY a.owner_id, a.currency";

static const report_col cols_payouts[] = {
    {"provider_id", RCOL_TEXT}, {"currency", RCOL_TEXT},  {"opening", RCOL_MONEY},
    {"captured", RCOL_MONEY},   {"refunded", RCOL_MONEY}, {"paid_out", RCOL_MONEY},
    {"other", RCOL_MONEY},      {"owed", RCOL_MONEY},     {"owed_now", RCOL_MONEY},
};

/* ---- trial balance totals (database thread) ---------------------------------------- */

#define TB_MAX_CURRENCIES 64

typedef struct tb_total {
    char currency[4];
    int64_t debits, credits, total;
    long long accounts;
} tb_total;

typedef struct tb_acc {
    size_t n;
    tb_total t[TB_MAX_CURRENCIES];
} tb_acc;

static void *tb_start(void)
{
    return calloc(1, sizeof(tb_acc));
}

static tb_total *tb_find(tb_acc *a, const char *cur)
{
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->t[i].currency, cur))
            return &a->t[i];
    if (a->n == TB_MAX_CURRENCIES || strlen(cur) != 3)
        return NULL;
    memcpy(a->t[a->n].currency, cur, 4);
    return &a->t[a->n++];
}

static int tb_row(void *acc, PGresult *r, int i)
{
    tb_total *t = tb_find(acc, PQgetvalue(r, i, 3));
    int64_t dr = strtoll(PQgetvalue(r, i, 6), NULL, 10),
            cr = strtoll(PQgetvalue(r, i, 7), NULL, 10);

    if (!t || __builtin_add_overflow(t->debits, dr, &t->debits) ||
        __builtin_add_overflow(t->credits, cr, &t->credits) ||
        __builtin_sub_overflow(t->debits, t->credits, &t->total))
        return -1;
    t->accounts++;
    return 0;
}

static json_t *money_json(int64_t v)
{
    char buf[REPORT_DECIMAL_MAX];

    report_fmt_decimal(v, 6, buf, sizeof buf);
    return json_string(buf);
}

static json_t *tb_finish(void *acc)
{
    tb_acc *a = acc;
    json_t *totals = json_array();
    int balanced = 1;

    for (size_t i = 0; i < a->n; i++) {
        balanced &= a->t[i].total == 0;
        json_array_append_new(
            totals, json_pack("{s:s, s:I, s:o, s:o, s:o, s:b}", "currency", a->t[i].currency,
                              "accounts", (json_int_t)a->t[i].accounts, "debits",
                              money_json(a->t[i].debits), "credits", money_json(a->t[i].credits),
                              "total", money_json(a->t[i].total), "balanced", a->t[i].total == 0));
    }
    return json_pack("{s:o, s:b}", "totals", totals, "balanced", balanced);
}

static const report_acc_ops tb_ops = {tb_start, tb_row, tb_finish, free};

void reports_trial_balance_spec(report_spec *spec, const char *as_of_us, json_t *meta)
{
    memset(spec, 0, sizeof *spec);
    spec->name = "trial-balance";
    spec->declare_sql = sql_trial;
    spec->cols = cols_trial;
    spec->ncols = sizeof cols_trial / sizeof cols_trial[0];
    spec->nparams = 1;
    spec->params[0] = as_of_us;
    spec->format = REPORT_JSON;
    spec->meta = meta;
    spec->acc = &tb_ops;
}

void reports_payouts_spec(report_spec *spec, const char *from_us, const char *to_us,
                          const char *provider, report_format format, json_t *meta)
{
    memset(spec, 0, sizeof *spec);
    spec->name = "payouts";
    spec->declare_sql = sql_payouts;
    spec->cols = cols_payouts;
    spec->ncols = sizeof cols_payouts / sizeof cols_payouts[0];
    spec->nparams = 3;
    spec->params[0] = from_us;
    spec->params[1] = to_us;
    spec->params[2] = provider;
    spec->format = format;
    spec->meta = meta;
}
