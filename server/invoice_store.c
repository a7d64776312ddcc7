/*
 * invoice_store.c - invoices and credit notes in PostgreSQL (see invoice_store.h).
 *
 * Close is one set-based statement: usage records billed in the period,
 * grouped per (tenant, currency) into line items (kind, rule, unit, unit price,
 * payer, original period for late usage), upserted as drafts (a final invoice
 * is never touched: ON CONFLICT ... WHERE state = 'draft', and a trigger).
 * Finalize locks usage_records in SHARE mode (no insert runs meanwhile; the
 * insert trigger of migrations/0010 moves later usage to the next open
 * period), refreshes the draft so it holds every record
 * accepted so far, takes the next number from the locked counter row, signs
 * the canonical document and freezes the row, all in one transaction.
 */
#include "invoice_store.h"
#include "idem_write.h"
#include "ledger_svc.h"
#include "log.h"
#include "server.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The close statement around a filter on the usage rows of period $1: every
 * tenant ($2 NULL), or one tenant's orders ($2, through the orders_tenant and
 * usage_records_order indexes: finalising one invoice never scans the period).
 * u is NOT MATERIALIZED: scanning the rows again for each use is cheaper than
 * spooling 100 000 rows of jsonb (measured with bench/invoices_bench.sh). */
#define SQL_CLOSE_HEAD                                                                             \
    "WITH u AS NOT MATERIALIZED (SELECT o.tenant_id, u.currency, u.lines, u.amount_micros, "       \
    "u.fee_micros, "                                                                               \
    "  u.reverses, CASE WHEN u.period <> u.billed_period THEN u.period ELSE '' END AS fp "         \
    "  FROM usage_records u JOIN orders o ON o.id = u.order_id WHERE u.billed_period = $1 AND "
#define SQL_CLOSE_TAIL                                                                             \
    "), l AS (SELECT tenant_id, currency, x->>'kind' AS k, coalesce(x->>'rule_id', '') AS r, "     \
    "  x->>'unit' AS un, x->>'payer' AS p, fp, (x->>'unit_price')::bigint AS up, "                 \
    "  sum((x->>'quantity')::bigint) AS q, sum((x->>'amount')::bigint) AS a "                      \
    "  FROM u CROSS JOIN LATERAL jsonb_array_elements(u.lines) x GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 " \
    "  UNION ALL SELECT tenant_id, currency, 'reversal', '', 'record', 'tenant', fp, 0, "          \
    "count(*), "                                                                                   \
    "  sum(amount_micros) FROM u WHERE reverses IS NOT NULL GROUP BY 1, 2, 7 "                     \
    "  UNION ALL SELECT tenant_id, currency, 'reversal', '', 'record', 'provider', fp, 0, "        \
    "  count(*), sum(fee_micros) FROM u WHERE reverses IS NOT NULL AND fee_micros <> 0 "           \
    "  GROUP BY 1, 2, 7 "                                                                          \
    "  UNION ALL SELECT i.tenant_id, i.currency, x->>'kind', coalesce(x->>'rule_id', ''), "        \
    "  x->>'unit', x->>'payer', '', (x->>'unit_price')::bigint, sum((x->>'quantity')::bigint), "   \
    "  sum((x->>'amount')::bigint) FROM invoice_trueups tu JOIN invoices i ON i.id = "             \
    "  tu.invoice_id CROSS JOIN LATERAL jsonb_array_elements(tu.lines) x WHERE i.period = $1 "     \
    "  AND ($2::text IS NULL OR i.tenant_id = $2) GROUP BY 1, 2, 3, 4, 5, 6, 7, 8), "              \
    "g AS (SELECT tenant_id, currency, jsonb_agg(jsonb_build_object('kind', k, 'rule_id', r, "     \
    "  'unit', un, 'payer', p, 'from_period', fp, 'unit_price', up, 'quantity', q, 'amount', a) "  \
    "  ORDER BY p DESC, fp, k, r, up) AS lines FROM l GROUP BY 1, 2), "                            \
    "t AS (SELECT tenant_id, currency, count(*) AS n, sum(amount_micros) AS tot FROM u "           \
    "  GROUP BY 1, 2), "                                                                           \
    "ins AS (INSERT INTO invoices (id, tenant_id, period, currency, state, lines, records, "       \
    "  total_micros) SELECT tally_invoice_new_id('inv'), t.tenant_id, $1, t.currency, 'draft', "   \
    "  coalesce(g.lines, '[]'::jsonb), t.n, t.tot FROM t LEFT JOIN g USING (tenant_id, currency) " \
    "  ON CONFLICT (tenant_id, period, currency) DO UPDATE SET lines = EXCLUDED.lines, "           \
    "  records = EXCLUDED.records, total_micros = EXCLUDED.total_micros, updated_at = now() "      \
    "  WHERE invoices.state = 'draft' RETURNING 1) "                                               \
    "SELECT count(*), (SELECT count(*) FROM invoices WHERE period = $1 AND state = 'final' AND "   \
    "  ($2::text IS NULL OR tenant_id = $2)) FROM ins"

static const char sql_close[] = SQL_CLOSE_HEAD "$2::text IS NULL" SQL_CLOSE_TAIL;
static const char sql_close_tenant[] =
    SQL_CLOSE_HEAD "u.order_id IN (SELECT id FROM orders WHERE tenant_id = $2)" SQL_CLOSE_TAIL;

/* Closing every tenant of a month is a batch job: it may take longer than the
 * pool's per-statement limit (TALLY_DB_TIMEOUT_MS), so it sets its own for the
 * transaction it runs in. */
static const char sql_close_timeout[] = "SET LOCAL statement_timeout = '600s'";

int invoice_close(db_conn *db, const char *period, int *status, json_t **body)
{
    const char *p[] = {period, NULL};
    PGresult *r;
    int rc;

    if ((rc = db_command(db, sql_close_timeout, 0, NULL)) != DB_OK)
        return rc;
    if (!(r = db_exec(db, sql_close, 2, p)))
        return db_last_status(db);
    *status = 200;
    *body = json_pack("{s:s, s:I, s:I}", "period", period, "drafts",
                      (json_int_t)atoll(PQgetvalue(r, 0, 0)), "final_untouched",
                      (json_int_t)atoll(PQgetvalue(r, 0, 1)));
    PQclear(r);
    return DB_OK;
}

/* ---- rows ----------------------------------------------------------------------------------- */

#define V(k) PQgetvalue(r, i, k)

int invoice_row_doc(PGresult *r, int i, invoice_doc *d)
{
    json_t *lines = json_loads(V(6), 0, NULL);
    int rc;

    memset(d, 0, sizeof *d);
    snprintf(d->type, sizeof d->type, "invoice");
    snprintf(d->id, sizeof d->id, "%s", V(0));
    snprintf(d->tenant_id, sizeof d->tenant_id, "%s", V(1));
    snprintf(d->period, sizeof d->period, "%s", V(2));
    snprintf(d->currency, sizeof d->currency, "%s", V(3));
    snprintf(d->state, sizeof d->state, "%s", V(4));
    snprintf(d->number, sizeof d->number, "%s", V(5));
    snprintf(d->kid, sizeof d->kid, "%s", V(10));
    snprintf(d->issued_at, sizeof d->issued_at, "%s", V(12));
    d->records = atoll(V(7));
    rc = invoice_lines_from_json(d, lines);
    json_decref(lines);
    return rc;
}

static json_t *lines_api(const invoice_doc *d)
{
    json_t *a = json_array();

    for (size_t k = 0; k < d->n_lines; k++) {
        const invoice_line *l = &d->lines[k];
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "kind", l->kind, "group",
                      invoice_group(l), "rule_id", l->rule_id, "unit", l->unit, "payer", l->payer,
                      "quantity", (json_int_t)l->quantity, "from_period", l->from_period);
        json_object_set_new(o, "unit_price", ledger_money_json(l->unit_price));
        json_object_set_new(o, "amount", ledger_money_json(l->amount));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *totals_api(const invoice_totals *t)
{
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "charges", ledger_money_json(t->charges),
        "commitments", ledger_money_json(t->commitments), "discounts",
        ledger_money_json(t->discounts), "fees", ledger_money_json(t->fees), "adjustments",
        ledger_money_json(t->adjustments), "total", ledger_money_json(t->total), "provider_fees",
        ledger_money_json(t->provider_fees));
}

static json_t *credit_notes_api(const char *text)
{
    json_t *a = json_loads(text, 0, NULL), *v;
    size_t k;

    json_array_foreach(a, k, v)
    {
        json_t *amt = json_object_get(v, "amount");
        json_object_set_new(v, "amount", ledger_money_json(json_integer_value(amt)));
    }
    return a ? a : json_array();
}

json_t *invoice_row_json(PGresult *r, int i)
{
    invoice_doc d;
    invoice_totals t;
    json_t *o;
    char links[2][96];

    if (invoice_row_doc(r, i, &d) != 0 || invoice_totals_compute(&d, &t) != 0) {
        invoice_doc_clear(&d);
        return NULL;
    }
    snprintf(links[0], sizeof links[0], "/v1/invoices/%s.csv", d.id);
    snprintf(links[1], sizeof links[1], "/v1/invoices/%s.html", d.id);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o}", "id", d.id, "tenant_id",
                  d.tenant_id, "period", d.period, "currency", d.currency, "state", d.state,
                  "records", (json_int_t)d.records, "lines", lines_api(&d), "totals",
                  totals_api(&t), "records_total", ledger_money_json(atoll(V(8))), "credit_notes",
                  credit_notes_api(V(13)));
    json_object_set_new(o, "number", d.number[0] ? json_string(d.number) : json_null());
    json_object_set_new(o, "issued_at", d.issued_at[0] ? json_string(d.issued_at) : json_null());
    json_object_set_new(o, "links", json_pack("{s:s, s:s}", "csv", links[0], "html", links[1]));
    if (d.number[0]) {
        json_object_set_new(o, "document", json_string(V(9)));
        json_object_set_new(o, "signature",
                            json_pack("{s:s, s:s, s:s, s:s}", "alg", "Ed25519", "kid", V(10),
                                      "value", V(11), "signed", "tally-invoice-v1\\n || document"));
    }
    invoice_doc_clear(&d);
    return o;
}

#undef V

/* ---- finalize ------------------------------------------------------------------------------- */

static const char sql_lock_invoice[] =
    "SELECT tenant_id, period, currency, state FROM invoices WHERE id = $1 FOR UPDATE";
/* Waits for transactions inserting usage to finish and holds new ones off
 * until this one commits: no record can slip between the refresh and the
 * freeze (the insert trigger then sees the final invoice and moves it on). */
static const char sql_lock_usage[] = "LOCK TABLE usage_records IN SHARE MODE";
static const char sql_next_number[] =
    "UPDATE invoice_counters SET last = last + 1 WHERE series = $1 RETURNING last, "
    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
static const char sql_read[] = "SELECT " INVOICE_COLS " FROM invoices i WHERE i.id = $1";
static const char sql_freeze[] =
    "UPDATE invoices SET state = 'final', seq = $2, number = $3, document = $4, kid = $5, "
    "signature = $6, finalized_at = $7::timestamptz, updated_at = now() WHERE id = $1";

/* sign_hex - Ed25519(domain || text) as 128 hex digits into out. 0 or -1 (OOM). */
static int sign_hex(const signing_key *key, const char *domain, const char *text, size_t len,
                    char out[2 * crypto_sign_BYTES + 1])
{
    size_t dl = strlen(domain);
    unsigned char sig[crypto_sign_BYTES], *msg = malloc(dl + len);

    if (!msg)
        return -1;
    memcpy(msg, domain, dl);
    memcpy(msg + dl, text, len);
    crypto_sign_detached(sig, NULL, msg, dl + len, key->sk);
    free(msg);
    sodium_bin2hex(out, 2 * crypto_sign_BYTES + 1, sig, sizeof sig);
    return 0;
}

/* Refresh the draft, number it, sign it and freeze it. The caller holds the locks. */
static int freeze(db_conn *db, const signing_key *key, const char *id, const char *tenant,
                  const char *period)
{
    char seq[24], number[24], sig[2 * crypto_sign_BYTES + 1], *canon = NULL;
    const char *p[] = {period, tenant};
    PGresult *r = db_exec(db, sql_close_tenant, 2, p), *q = NULL;
    invoice_doc d = {0};
    size_t len;
    int rc = DB_FAILED;

    if (!r)
        return db_last_status(db);
    PQclear(r);
    {
        const char *s[] = {"INV"};
        if (!(q = db_exec(db, sql_next_number, 1, s)))
            return db_last_status(db);
    }
    if (!(r = db_exec(db, sql_read, 1, &id)) || PQntuples(r) != 1 || invoice_row_doc(r, 0, &d))
        goto cleanup;
    snprintf(seq, sizeof seq, "%s", PQgetvalue(q, 0, 0));
    snprintf(number, sizeof number, "INV-%08lld", atoll(seq));
    snprintf(d.number, sizeof d.number, "%s", number);
    snprintf(d.issued_at, sizeof d.issued_at, "%s", PQgetvalue(q, 0, 1));
    snprintf(d.kid, sizeof d.kid, "%s", key->kid);
    if (!(canon = invoice_canonical(&d, &len)) ||
        sign_hex(key, INVOICE_SIGN_DOMAIN, canon, len, sig))
        goto cleanup;
    {
        const char *f[] = {id, seq, number, canon, key->kid, sig, d.issued_at};
        rc = db_command(db, sql_freeze, 7, f);
    }
cleanup:
    if (r && rc == DB_FAILED && !PQntuples(r))
        log_error("invoice", "invoice %s vanished while finalising", id);
    free(canon);
    invoice_doc_clear(&d);
    PQclear(r);
    PQclear(q);
    return rc;
}

int invoice_finalize(db_conn *db, const signing_key *key, const char *id, int *status,
                     json_t **body)
{
    PGresult *r = db_exec(db, sql_lock_invoice, 1, &id);
    char tenant[48], period[8];
    int rc;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 3), "draft") != 0) {
        *status = PQntuples(r) ? 409 : 404;
        *body = PQntuples(r) ? idem_problem(PROB_CONFLICT, NULL,
                                            "invoice %s is already final: corrections are "
                                            "credit notes (POST /v1/invoices/%s/credit-notes)",
                                            id, id)
                             : idem_problem(PROB_NOT_FOUND, NULL, "no invoice %s", id);
        PQclear(r);
        return DB_OK;
    }
    snprintf(tenant, sizeof tenant, "%s", PQgetvalue(r, 0, 0));
    snprintf(period, sizeof period, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    if ((rc = db_command(db, sql_lock_usage, 0, NULL)) != DB_OK)
        return rc;
    if ((rc = freeze(db, key, id, tenant, period)) != DB_OK)
        return rc;
    if (!(r = db_exec(db, sql_read, 1, &id)))
        return db_last_status(db);
    *status = 200;
    *body = invoice_row_json(r, 0);
    PQclear(r);
    return *body ? DB_OK : DB_FAILED;
}
