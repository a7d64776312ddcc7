/*
 * reports_recon.c - the reconciliation checks, as one cursor (UNION ALL).
 *
 * Each branch yields rows (check, order_id, settlement_id, txn_id, hold_id,
 * usage_ids, currency, expected, actual, detail) for the rows that disagree:
 *
 *   usage_lines         a record's tenant line items do not add up to its amount
 *   reversal            a reversal is not the exact negative of its original
 *   settlement_usage    a capture/refund settlement's amount or fee differs from
 *                       the sum of the usage records it settles
 *   settlement_ledger   a posted settlement has no ledger transaction, one of
 *                       another kind, or one that moves another amount
 *   settlement_state    a settlement failed, or is pending for over a minute
 *   order_usage         an order's captured (records), refunded (reversals) or fee
 *                       total differs from its usage records
 *   hold_amount         the ledger hold is not the order's hold amount
 *   hold_captured       the hold's captured total differs from the posted captures
 *   hold_state          the hold's state does not fit the order's state
 *   credit_note_state   a credit note written down (migration 0017) is still pending
 *                       after a minute (the janitor finishes them after 10 s), or was
 *                       refused after it was written down
 *
 * The range applies to when usage records were accepted, settlements and
 * orders created.
 */
#include "reports_recon.h"

#include <stdlib.h>
#include <string.h>

#define R_USAGE "u.accepted_at >= $1::timestamptz AND u.accepted_at < $2::timestamptz"
#define R_STL "s.created_at >= $1::timestamptz AND s.created_at < $2::timestamptz"
#define R_ORD "o.created_at >= $1::timestamptz AND o.created_at < $2::timestamptz"
#define R_CN "c.created_at >= $1::timestamptz AND c.created_at < $2::timestamptz"
#define TENANT_LINES                                                                               \
    "(SELECT coalesce(sum((l->>'amount')::bigint), 0) FROM jsonb_array_elements(u.lines) l WHERE " \
    "l->>'payer' = 'tenant')::bigint"
#define STL_USAGE                                                                                  \
    "LEFT JOIN LATERAL (SELECT abs(coalesce(sum(u.amount_micros), 0))::bigint amt, "               \
    "abs(coalesce(sum(u.fee_micros), 0))::bigint fee, string_agg(u.id, ' ' ORDER BY u.id) ids "    \
    "FROM usage_records u WHERE u.order_id = s.order_id AND u.settlement_id = s.id) us ON true "
#define STL_KIND "CASE s.kind WHEN 'refund' THEN 'adjustment' ELSE s.kind END"

static const char sql_recon[] = REPORT_DECLARE
    "SELECT * FROM ("
    /* usage_lines */
    "SELECT 'usage_lines' AS chk, u.order_id, u.settlement_id, NULL::text AS txn_id, NULL::text "
    "AS hold_id, u.id AS usage_ids, u.currency, u.amount_micros AS expected, " TENANT_LINES
    " AS actual, 'the record''s tenant line items do not add up to its amount' AS detail FROM "
    "usage_records u WHERE " R_USAGE " AND u.reverses IS NULL AND jsonb_array_length(u.lines) > 0 "
    "AND " TENANT_LINES " <> u.amount_micros "
    /* reversal */
    "UNION ALL SELECT 'reversal', u.order_id, u.settlement_id, NULL, NULL, u.id || ' ' || v.id, "
    "u.currency, -v.amount_micros, u.amount_micros, 'a reversal is not the negative of the "
    "record it reverses (amount ' || u.amount_micros || ' vs ' || v.amount_micros || ', fee ' || "
    "u.fee_micros || ' vs ' || v.fee_micros || ')' FROM usage_records u LEFT JOIN usage_records v "
    "ON v.provider_id = u.provider_id AND v.record_id = u.reverses WHERE " R_USAGE
    " AND u.reverses IS NOT NULL AND (v.id IS NULL OR u.amount_micros <> -v.amount_micros OR "
    "u.fee_micros <> -v.fee_micros OR u.mcu <> -v.mcu) "
    /* settlement_usage: amount */
    "UNION ALL SELECT 'settlement_usage', s.order_id, s.id, s.txn_id, NULL, us.ids, o.currency, "
    "us.amt, s.amount, 'the ' || s.kind || ' settlement''s amount differs from the sum of its "
    "usage records' FROM settlements s JOIN orders o ON o.id = s.order_id " STL_USAGE "WHERE " R_STL
    " AND s.kind IN ('capture', 'refund') AND us.amt <> s.amount "
    /* settlement_usage: fee */
    "UNION ALL SELECT 'settlement_usage', s.order_id, s.id, s.txn_id, NULL, us.ids, o.currency, "
    "us.fee, s.fee, 'the ' || s.kind || ' settlement''s fee differs from the sum of its usage "
    "records'' fees' FROM settlements s JOIN orders o ON o.id = s.order_id " STL_USAGE
    "WHERE " R_STL " AND s.kind IN ('capture', 'refund') AND us.fee <> s.fee "
    /* settlement_ledger */
    "UNION ALL SELECT 'settlement_ledger', s.order_id, s.id, s.txn_id, NULL, NULL, o.currency, "
    "s.amount, t.debits, CASE WHEN t.id IS NULL THEN 'the settlement is posted but its ledger "
    "transaction is missing' WHEN t.kind <> " STL_KIND " THEN 'the ledger transaction is a ' || "
    "t.kind || ', not a ' || " STL_KIND " ELSE 'the ledger transaction moves another amount' END "
    "FROM settlements s JOIN orders o ON o.id = s.order_id LEFT JOIN LATERAL (SELECT lt.id, "
    "lt.kind, (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e WHERE e.txn_id = lt.id "
    "AND e.amount > 0)::bigint AS debits FROM ledger_transactions lt WHERE lt.id = s.txn_id) t ON "
    "true WHERE " R_STL " AND s.state = 'posted' AND s.kind IN ('hold', 'capture', 'refund') AND "
    "(t.id IS NULL OR t.kind <> " STL_KIND " OR t.debits <> s.amount) "
    /* settlement_state */
    "UNION ALL SELECT 'settlement_state', s.order_id, s.id, s.txn_id, NULL, NULL, o.currency, "
    "NULL, s.amount, CASE WHEN s.state = 'failed' THEN 'the ledger refused the ' || s.kind || ' "
    "settlement: ' || coalesce(s.problem->>'detail', '') ELSE 'the ' || s.kind || ' settlement "
    "is still pending' END FROM settlements s JOIN orders o ON o.id = s.order_id WHERE " R_STL
    " AND (s.state = 'failed' OR (s.state = 'pending' AND s.created_at < now() - interval '1 "
    "minute')) "
    /* order_usage */
    "UNION ALL SELECT 'order_usage', o.id, NULL, NULL, o.hold_id, us.ids, o.currency, v.want, "
    "v.have, 'the order''s ' || v.what || ' differs from the sum of its usage records' FROM "
    "orders o CROSS JOIN LATERAL (SELECT coalesce(sum(u.amount_micros) FILTER (WHERE u.reverses "
    "IS NULL), 0)::bigint cap, (-coalesce(sum(u.amount_micros) FILTER (WHERE u.reverses IS NOT "
    "NULL), 0))::bigint ref, coalesce(sum(u.fee_micros), 0)::bigint fee, string_agg(u.id, ' ' "
    "ORDER BY u.id) ids FROM usage_records u WHERE u.order_id = o.id) us CROSS JOIN LATERAL "
    "(VALUES ('captured amount', us.cap, o.captured_micros), ('refunded amount', us.ref, "
    "o.refunded_micros), ('platform fee', us.fee, o.fee_micros)) v(what, want, have) WHERE " R_ORD
    " AND v.want <> v.have "
    /* hold_amount */
    "UNION ALL SELECT 'hold_amount', o.id, NULL, h.hold_txn_id, o.hold_id, NULL, o.currency, "
    "o.hold_micros, h.amount, CASE WHEN h.id IS NULL THEN 'the order''s hold is missing from "
    "the ledger' ELSE 'the ledger hold is not the order''s hold amount' END FROM orders o LEFT "
    "JOIN ledger_holds h ON h.id = o.hold_id WHERE " R_ORD " AND o.hold_id IS NOT NULL AND (h.id "
    "IS NULL OR h.amount <> o.hold_micros) "
    /* hold_captured */
    "UNION ALL SELECT 'hold_captured', o.id, NULL, NULL, h.id, NULL, o.currency, c.amt, "
    "h.captured, 'the hold''s captured total differs from the order''s posted captures' FROM "
    "orders o JOIN ledger_holds h ON h.id = o.hold_id CROSS JOIN LATERAL (SELECT "
    "coalesce(sum(s.amount), 0)::bigint amt FROM settlements s WHERE s.order_id = o.id AND "
    "s.kind = 'capture' AND s.state = 'posted') c WHERE " R_ORD " AND c.amt <> h.captured "
    /* hold_state */
    "UNION ALL SELECT 'hold_state', o.id, NULL, h.closed_txn_id, h.id, NULL, o.currency, NULL, "
    "NULL, 'the order is ' || o.state || ' but its hold is ' || h.state FROM orders o JOIN "
    "ledger_holds h ON h.id = o.hold_id WHERE " R_ORD
    " AND ((o.state IN ('placed', 'running') AND h.state <> 'open') OR (h.state = 'open' AND "
    "EXISTS (SELECT 1 FROM settlements s WHERE s.order_id = o.id AND s.kind = 'release' AND "
    "s.state = 'posted')))"
    /* credit_note_state */
    "UNION ALL SELECT 'credit_note_state', NULL, NULL, NULL, NULL, NULL, i.currency, "
    "c.amount_micros, NULL, 'the credit note on invoice ' || c.invoice_id || ' (Idempotency-Key ' "
    "|| c.idem_key || ') ' || CASE WHEN c.state = 'refused' THEN 'was refused after it was written "
    "down (the invoices warning log says why)' ELSE 'is still pending after a minute' END FROM "
    "credit_note_intents c "
    "JOIN invoices i ON i.id = c.invoice_id WHERE " R_CN " AND (c.state = 'refused' OR (c.state = "
    "'pending' AND c.created_at < now() - interval '1 minute'))"
    ") d ORDER BY chk, order_id, settlement_id, usage_ids";

static const report_col cols_recon[] = {
    {"check", RCOL_TEXT},    {"order_id", RCOL_TEXT},  {"settlement_id", RCOL_TEXT},
    {"txn_id", RCOL_TEXT},   {"hold_id", RCOL_TEXT},   {"usage_ids", RCOL_TEXT},
    {"currency", RCOL_TEXT}, {"expected", RCOL_MONEY}, {"actual", RCOL_MONEY},
    {"detail", RCOL_TEXT},
};

/* "agrees": true when no row was listed. */
static void *recon_start(void)
{
    return calloc(1, sizeof(long long));
}

static int recon_row(void *acc, PGresult *r, int i)
{
    (void)r;
    (void)i;
    ++*(long long *)acc;
    return 0;
}

static json_t *recon_finish(void *acc)
{
    return json_pack("{s:b}", "agrees", *(long long *)acc == 0);
}

static const report_acc_ops recon_ops = {recon_start, recon_row, recon_finish, free};

void reports_recon_spec(report_spec *spec, const char *from, const char *to, report_format format,
                        json_t *meta)
{
    memset(spec, 0, sizeof *spec);
    spec->name = "reconciliation";
    spec->declare_sql = sql_recon;
    spec->cols = cols_recon;
    spec->ncols = sizeof cols_recon / sizeof cols_recon[0];
    spec->nparams = 2;
    spec->params[0] = from;
    spec->params[1] = to;
    spec->format = format;
    spec->meta = meta;
    spec->acc = &recon_ops;
}
