/*
 * invoice_trueup.c - reserved-commitment true-ups, charged when an invoice is
 * finalised.
 *
 * For each policy version the tenant used in the period (pricing_period_state),
 * pricing_commitment_trueup gives the unused part of every reserved commitment
 * at its price (plus the platform fee on it). A positive amount is posted
 * through the ledger first (ledger_run_ops, its own transaction): an adjustment
 * that debits the tenant's wallet and credits the provider's payable with its
 * net and the platform's revenue with the fee, carrying the invoice id, under
 * the idempotency key "trueup:<invoice>:<policy>:<version>" - a retry replays
 * it. Then its line items are stored in invoice_trueups, which the close
 * statement adds to the invoice. Runs outside any transaction.
 */
#include "invoice_store.h"
#include "idem_write.h"
#include "ledger_svc.h"
#include "log.h"
#include "pricing_store.h"
#include "server.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_states[] =
    "SELECT s.policy_id, s.policy_version, s.state::text, p.owner_id FROM pricing_period_state s "
    "JOIN pricing_policies p ON p.id = s.policy_id WHERE s.tenant_id = $1 AND s.period = $2 AND "
    "NOT EXISTS (SELECT 1 FROM invoice_trueups t WHERE t.invoice_id = $3 AND t.policy_id = "
    "s.policy_id AND t.policy_version = s.policy_version) ORDER BY 1, 2";
static const char sql_accounts[] =
    "SELECT id, purpose FROM ledger_accounts WHERE currency = $3 AND ((owner_id = $1 AND purpose "
    "= 'wallet') OR (owner_id = $2 AND purpose = 'payable') OR (owner_id IS NULL AND purpose = "
    "'revenue'))";
static const char sql_store[] =
    "INSERT INTO invoice_trueups (invoice_id, policy_id, policy_version, txn_id, amount_micros, "
    "lines) VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING";

typedef struct tu_ctx {
    const invoice_trueup_req *rq;
    const char *policy, *version, *provider;
    pricing_result *res;
    char wallet[48], payable[48], revenue[48], txn[48];
} tu_ctx;

static const char *unit_name(pricing_qty_unit u)
{
    return u == PRICING_QTY_MCU ? "mcu" : u == PRICING_QTY_DEVICE_MS ? "device_ms" : "money_ppm";
}

static json_t *line_json(const pricing_line *l, const char *payer)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "kind",
                     pricing_line_kind_name(l->kind), "rule_id", l->rule_id, "unit",
                     unit_name(l->qty_unit), "payer", payer, "from_period", "", "unit_price",
                     (json_int_t)l->unit_price, "quantity", (json_int_t)l->quantity, "amount",
                     (json_int_t)l->amount);
}

/* Rate the true-up of one policy version into x->res. 1 with an amount to
 * charge, 0 nothing to charge, < 0 a db_status. */
static int rate(db_conn *db, tu_ctx *x, const char *state_text)
{
    pstore_version pol, plat;
    pricing_state st;
    pricing_error err;
    json_t *sj = json_loads(state_text, 0, NULL);
    int rc, prc;

    memset(&st, 0, sizeof st);
    if (!sj || pstore_state_from_json(sj, &st) != 0) {
        json_decref(sj);
        return DB_FAILED;
    }
    json_decref(sj);
    if ((rc = pstore_load(db, x->policy, atoi(x->version), &pol)) <= 0)
        return rc < 0 ? rc : 0;
    if ((prc = pstore_load_platform(db, &plat)) < 0) {
        pstore_release(&pol);
        return prc;
    }
    rc = pricing_commitment_trueup(pol.policy, prc ? plat.policy : NULL, &st, x->res, &err);
    if (rc != PRICING_OK)
        log_error("invoice", "true-up of %s v%s cannot be rated: %s", x->policy, x->version,
                  err.message);
    rc = rc == PRICING_OK && x->res->total > 0 && !strcmp(x->res->currency, x->rq->currency);
    pstore_release(&pol);
    if (prc)
        pstore_release(&plat);
    return rc;
}

static int accounts(db_conn *db, tu_ctx *x)
{
    const char *p[] = {x->rq->tenant, x->provider, x->rq->currency};
    PGresult *r = db_exec(db, sql_accounts, 3, p);

    if (!r)
        return db_last_status(db);
    for (int i = 0; i < PQntuples(r); i++) {
        const char *purpose = PQgetvalue(r, i, 1);
        char *dst = !strcmp(purpose, "wallet")    ? x->wallet
                    : !strcmp(purpose, "payable") ? x->payable
                                                  : x->revenue;
        snprintf(dst, 48, "%s", PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return DB_OK;
}

static void request_hash(const char *idem, int64_t total, char out[65])
{
    char buf[320];
    unsigned char h[32];

    snprintf(buf, sizeof buf, "%s|%lld", idem, (long long)total);
    crypto_generichash(h, sizeof h, (const unsigned char *)buf, strlen(buf), NULL, 0);
    sodium_bin2hex(out, 65, h, sizeof h);
}

/* Post the charge. DB_OK with x->txn, or status/body from the ledger's refusal. */
static int post(tally_server *srv, db_conn *db, tu_ctx *x, int *status, json_t **body)
{
    ledger_op *op = ledger_op_new(LOP_TRANSFER);
    int64_t net = x->res->provider_net, fee = x->res->total - net;
    int rc;

    if (!op)
        return DB_FAILED;
    op->kind = LEDGER_KIND_ADJUSTMENT;
    snprintf(op->caller, sizeof op->caller, "%s", x->rq->caller);
    op->caller_role = x->rq->caller_role;
    snprintf(op->idem_key, sizeof op->idem_key, "trueup:%.26s:%.26s:%.8s", x->rq->invoice_id + 4,
             x->policy + 4, x->version);
    request_hash(op->idem_key, x->res->total, op->request_hash);
    snprintf(op->currency, sizeof op->currency, "%s", x->rq->currency);
    snprintf(op->invoice_id, sizeof op->invoice_id, "%s", x->rq->invoice_id);
    snprintf(op->memo, sizeof op->memo, "commitment true-up %s for %s", x->rq->period, x->policy);
    snprintf(op->entries[0].account, sizeof op->entries[0].account, "%s", x->wallet);
    op->entries[0].amount = x->res->total; /* the tenant pays (debit of a credit-normal wallet) */
    op->n_entries = 1;
    if (net) {
        snprintf(op->entries[op->n_entries].account, LEDGER_ACC_MAX, "%s", x->payable);
        op->entries[op->n_entries++].amount = -net;
    }
    if (fee) {
        snprintf(op->entries[op->n_entries].account, LEDGER_ACC_MAX, "%s", x->revenue);
        op->entries[op->n_entries++].amount = -fee;
    }
    rc = ledger_run_ops(srv->ledger, db, &op, 1);
    if (rc == DB_OK && op->status >= 400) {
        *status = op->status;
        *body = json_incref(op->body);
    } else if (rc == DB_OK) {
        json_t *t = json_object_get(op->body, "id");
        snprintf(x->txn, sizeof x->txn, "%s",
                 op->txn_id[0]       ? op->txn_id
                 : json_is_string(t) ? json_string_value(t)
                                     : "");
        rc = x->txn[0] ? DB_OK : DB_FAILED;
    }
    ledger_op_free(op);
    return rc;
}

static int store(db_conn *db, tu_ctx *x)
{
    json_t *lines = json_array();
    char amt[24], *text;
    int rc;

    for (size_t i = 0; i < x->res->n_lines; i++)
        json_array_append_new(lines, line_json(&x->res->lines[i], "tenant"));
    if (x->res->has_provider_fee)
        json_array_append_new(lines, line_json(&x->res->provider_fee, "provider"));
    text = json_dumps(lines, JSON_COMPACT);
    json_decref(lines);
    if (!text)
        return DB_FAILED;
    snprintf(amt, sizeof amt, "%lld", (long long)x->res->total);
    {
        const char *p[] = {x->rq->invoice_id, x->policy, x->version, x->txn, amt, text};
        rc = db_command(db, sql_store, 6, p);
    }
    free(text);
    return rc;
}

static int one(tally_server *srv, db_conn *db, tu_ctx *x, const char *state, int *status,
               json_t **body)
{
    int rc = rate(db, x, state);

    if (rc <= 0)
        return rc;
    if ((rc = accounts(db, x)) != DB_OK)
        return rc;
    if (!x->wallet[0] || (x->res->provider_net && !x->payable[0]) ||
        (x->res->total != x->res->provider_net && !x->revenue[0])) {
        *status = 409;
        *body = idem_problem(PROB_UNKNOWN_ACCOUNT, NULL,
                             "the commitment true-up of %s cannot be posted: the tenant's "
                             "wallet, the provider's payable or the platform's revenue account "
                             "in %s does not exist",
                             x->policy, x->rq->currency);
        return DB_OK;
    }
    if ((rc = post(srv, db, x, status, body)) != DB_OK || *status)
        return rc;
    return store(db, x);
}

int invoice_trueup(tally_server *srv, db_conn *db, const invoice_trueup_req *rq, int *status,
                   json_t **body)
{
    const char *p[] = {rq->tenant, rq->period, rq->invoice_id};
    PGresult *r = db_exec(db, sql_states, 3, p);
    tu_ctx x = {.rq = rq};
    int rc = DB_OK;

    *status = 0;
    if (!r)
        return db_last_status(db);
    if (!(x.res = malloc(sizeof *x.res))) {
        PQclear(r);
        return DB_FAILED;
    }
    for (int i = 0; rc == DB_OK && !*status && i < PQntuples(r); i++) {
        x.policy = PQgetvalue(r, i, 0);
        x.version = PQgetvalue(r, i, 1);
        x.provider = PQgetvalue(r, i, 3);
        x.wallet[0] = x.payable[0] = x.revenue[0] = x.txn[0] = '\0';
        rc = one(srv, db, &x, PQgetvalue(r, i, 2), status, body);
    }
    free(x.res);
    PQclear(r);
    return rc;
}
