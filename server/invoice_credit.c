/*
 * invoice_credit.c - credit notes: the only correction of a final invoice.
 *
 * The money moves first, through the ledger writer's batch path
 * (ledger_run_ops): an adjustment that debits platform revenue and credits the
 * tenant's wallet, carrying the invoice id, under the idempotency key
 * "credit-note:<invoice>:<Idempotency-Key>". Then, in one transaction, the
 * note is numbered from the locked "CN" counter row (gap-free), signed
 * (Ed25519 over "tally-credit-note-v1\n" || canonical JSON) and stored with the
 * ledger transaction's id. Before the money moves the request is stored as a
 * pending intent (migration 0017), marked done in the note's transaction. A
 * retry with the same key, or the janitor for an intent still pending 10 s
 * later (invoice_credit_sweep), replays the ledger outcome and finds the stored
 * note by its transaction id, so a crash between the two steps never pays twice
 * and never leaves money moved without its note. The notes of an invoice (and
 * its pending intents) never add up to more than its total: checked before the
 * money moves, under a per-invoice advisory lock that serialises them.
 */
#include "invoice_store.h"
#include "idem_write.h"
#include "ids.h"
#include "jsonw.h"
#include "log.h"
#include "ledger_svc.h"
#include "money.h"
#include "server.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_invoice[] =
    "SELECT i.tenant_id, i.currency, i.state, coalesce(i.number, ''), "
    "(SELECT id FROM ledger_accounts WHERE owner_id = i.tenant_id AND purpose = 'wallet' AND "
    "currency = i.currency), (SELECT id FROM ledger_accounts WHERE owner_id IS NULL AND "
    "purpose = 'revenue' AND currency = i.currency), (SELECT coalesce(sum((x->>'amount')::bigint), "
    "0) FROM jsonb_array_elements(i.lines) x WHERE x->>'payer' = 'tenant') - (SELECT "
    "coalesce(sum(n.amount_micros), 0) FROM credit_notes n WHERE n.invoice_id = i.id) - (SELECT "
    "coalesce(sum(c.amount_micros), 0) FROM credit_note_intents c WHERE c.invoice_id = i.id AND "
    "c.state = 'pending' AND NOT (c.caller = $2 AND c.idem_key = $3)) "
    "FROM invoices i WHERE i.id = $1";
/* The request, written down before the money moves (kept as it was if it exists). */
static const char sql_intent[] =
    "INSERT INTO credit_note_intents (caller, invoice_id, idem_key, caller_role, amount_micros, "
    "reason) VALUES ($1, $2, $3, $4::integer, $5::bigint, $6) ON CONFLICT DO NOTHING";
static const char sql_intent_get[] =
    "SELECT amount_micros = $4::bigint AND reason = $5 FROM credit_note_intents WHERE "
    "caller = $1 AND invoice_id = $2 AND idem_key = $3";
static const char sql_intent_end[] = "UPDATE credit_note_intents SET state = $4 WHERE caller = $1 "
                                     "AND invoice_id = $2 AND idem_key = $3 AND state = 'pending'";
static const char sql_intent_stale[] =
    "SELECT caller, invoice_id, idem_key, caller_role, amount_micros, reason FROM "
    "credit_note_intents WHERE state = 'pending' AND created_at < now() - interval '10 seconds' "
    "ORDER BY created_at LIMIT 16";
/* Serialises the credit notes of one invoice (see the top of this file). */
static const char sql_lock[] = "SELECT pg_advisory_lock(hashtextextended('credit-note:' || $1, 0))";
static const char sql_unlock[] =
    "SELECT pg_advisory_unlock(hashtextextended('credit-note:' || $1, 0))";
static const char sql_by_txn[] =
    "SELECT id, number, document, kid, signature FROM credit_notes WHERE txn_id = $1";
static const char sql_next[] =
    "UPDATE invoice_counters SET last = last + 1 WHERE series = 'CN' RETURNING last, "
    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
static const char sql_insert[] =
    "INSERT INTO credit_notes (id, invoice_id, tenant_id, seq, number, currency, amount_micros, "
    "reason, txn_id, document, kid, signature, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "$8, $9, $10, $11, $12, $13::timestamptz)";

typedef struct cn_ctx {
    const invoice_credit_req *rq;
    char tenant[48], currency[4], number_inv[24], wallet[48], revenue[48], txn[48];
} cn_ctx;

static json_t *note_json(const char *id, const char *number, const char *doc, const char *kid,
                         const char *sig)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:{s:s, s:s, s:s, s:s}}", "id", id, "number", number,
                     "document_fields", json_loads(doc, 0, NULL), "document", doc, "signature",
                     "alg", "Ed25519", "kid", kid, "value", sig, "signed",
                     "tally-credit-note-v1\\n || document");
}

/* Load the invoice and its accounts: DB_OK with x filled, or status/body set. */
static int load(db_conn *db, cn_ctx *x, int *status, json_t **body)
{
    const char *p[] = {x->rq->invoice_id, x->rq->caller, x->rq->idem_key}, *id = p[0];
    PGresult *r = db_exec(db, sql_invoice, 3, p);

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1)
        *status = 404, *body = idem_problem(PROB_NOT_FOUND, NULL, "no invoice %s", id);
    else if (strcmp(PQgetvalue(r, 0, 2), "final") != 0)
        *status = 409, *body = idem_problem(PROB_CONFLICT, NULL,
                                            "invoice %s is a draft: change it by closing the "
                                            "period again, credit notes are for final invoices",
                                            id);
    else if (!PQgetvalue(r, 0, 4)[0] || !PQgetvalue(r, 0, 5)[0])
        *status = 409, *body = idem_problem(PROB_UNKNOWN_ACCOUNT, NULL,
                                            "the tenant's wallet or the platform's revenue "
                                            "account in %s does not exist",
                                            PQgetvalue(r, 0, 1));
    else if (atoll(PQgetvalue(r, 0, 6)) < x->rq->amount) {
        char left[32];
        money_format(atoll(PQgetvalue(r, 0, 6)), left, sizeof left);
        *status = 422, *body = idem_problem(PROB_VALIDATION, "amount",
                                            "the credit notes of invoice %s would exceed its "
                                            "total: at most %s %s remains to credit",
                                            id, left, PQgetvalue(r, 0, 1));
    } else {
        snprintf(x->tenant, sizeof x->tenant, "%s", PQgetvalue(r, 0, 0));
        snprintf(x->currency, sizeof x->currency, "%s", PQgetvalue(r, 0, 1));
        snprintf(x->number_inv, sizeof x->number_inv, "%s", PQgetvalue(r, 0, 3));
        snprintf(x->wallet, sizeof x->wallet, "%s", PQgetvalue(r, 0, 4));
        snprintf(x->revenue, sizeof x->revenue, "%s", PQgetvalue(r, 0, 5));
    }
    PQclear(r);
    return DB_OK;
}

static void request_hash(const invoice_credit_req *rq, char out[65])
{
    char amt[32];
    crypto_generichash_state st;
    unsigned char h[32];

    snprintf(amt, sizeof amt, "%lld", (long long)rq->amount);
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)"credit-note", 12);
    crypto_generichash_update(&st, (const unsigned char *)rq->invoice_id,
                              strlen(rq->invoice_id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)amt, strlen(amt) + 1);
    crypto_generichash_update(&st, (const unsigned char *)rq->reason, strlen(rq->reason) + 1);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(out, 65, h, sizeof h);
}

/* The ledger adjustment. DB_OK with x->txn set, or status/body set from the ledger's 4xx. */
static int move_money(tally_server *srv, db_conn *db, cn_ctx *x, int *status, json_t **body)
{
    ledger_op *op = ledger_op_new(LOP_TRANSFER);
    int rc;

    if (!op)
        return DB_FAILED;
    op->kind = LEDGER_KIND_ADJUSTMENT;
    snprintf(op->caller, sizeof op->caller, "%s", x->rq->caller);
    op->caller_role = x->rq->caller_role;
    snprintf(op->idem_key, sizeof op->idem_key, "credit-note:%.26s:%.60s", x->rq->invoice_id + 4,
             x->rq->idem_key);
    request_hash(x->rq, op->request_hash);
    snprintf(op->currency, sizeof op->currency, "%s", x->currency);
    snprintf(op->invoice_id, sizeof op->invoice_id, "%s", x->rq->invoice_id);
    snprintf(op->memo, sizeof op->memo, "credit note on invoice %s", x->number_inv);
    op->n_entries = 2;
    snprintf(op->entries[0].account, sizeof op->entries[0].account, "%s", x->revenue);
    op->entries[0].amount = x->rq->amount; /* revenue gives back (debit) */
    snprintf(op->entries[1].account, sizeof op->entries[1].account, "%s", x->wallet);
    op->entries[1].amount = -x->rq->amount; /* the credit-normal wallet gains */
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

static char *note_canonical(const cn_ctx *x, const char *id, const char *number, const char *issued,
                            const char *kid, size_t *len)
{
    char amt[32];
    jsonw w;

    money_format(x->rq->amount, amt, sizeof amt);
    jw_init(&w);
    jw_open(&w);
    jw_key(&w, "amount");
    jw_str(&w, amt);
    jw_key(&w, "currency");
    jw_str(&w, x->currency);
    jw_key(&w, "id");
    jw_str(&w, id);
    jw_key(&w, "invoice_id");
    jw_str(&w, x->rq->invoice_id);
    jw_key(&w, "invoice_number");
    jw_str(&w, x->number_inv);
    jw_key(&w, "issued_at");
    jw_str(&w, issued);
    jw_key(&w, "kid");
    jw_str(&w, kid);
    jw_key(&w, "number");
    jw_str(&w, number);
    jw_key(&w, "reason");
    jw_str(&w, x->rq->reason);
    jw_key(&w, "tenant_id");
    jw_str(&w, x->tenant);
    jw_key(&w, "transaction_id");
    jw_str(&w, x->txn);
    jw_key(&w, "type");
    jw_str(&w, "credit_note");
    jw_key(&w, "version");
    jw_int(&w, 1);
    jw_close(&w);
    return jw_take(&w, len);
}

/* Number, sign and insert (inside a transaction). */
static int store(tally_server *srv, db_conn *db, cn_ctx *x, json_t **body)
{
    const signing_key *key = srv->signing;
    char id[48], number[24], amt[24], sig[2 * crypto_sign_BYTES + 1], *canon = NULL;
    unsigned char raw[crypto_sign_BYTES], *msg = NULL;
    size_t len, dl = strlen(CREDIT_NOTE_SIGN_DOMAIN);
    PGresult *r = db_exec(db, sql_next, 0, NULL);
    int rc = DB_FAILED;

    if (!r)
        return db_last_status(db);
    ids_new(id, sizeof id, "cn");
    snprintf(number, sizeof number, "CN-%08lld", atoll(PQgetvalue(r, 0, 0)));
    snprintf(amt, sizeof amt, "%lld", (long long)x->rq->amount);
    if (!(canon = note_canonical(x, id, number, PQgetvalue(r, 0, 1), key->kid, &len)) ||
        !(msg = malloc(dl + len)))
        goto cleanup;
    memcpy(msg, CREDIT_NOTE_SIGN_DOMAIN, dl);
    memcpy(msg + dl, canon, len);
    crypto_sign_detached(raw, NULL, msg, dl + len, key->sk);
    sodium_bin2hex(sig, sizeof sig, raw, sizeof raw);
    {
        const char *p[] = {id,
                           x->rq->invoice_id,
                           x->tenant,
                           PQgetvalue(r, 0, 0),
                           number,
                           x->currency,
                           amt,
                           x->rq->reason,
                           x->txn,
                           canon,
                           key->kid,
                           sig,
                           PQgetvalue(r, 0, 1)};
        rc = db_command(db, sql_insert, 13, p);
    }
    if (rc == DB_OK)
        *body = note_json(id, number, canon, key->kid, sig);
cleanup:
    free(msg);
    free(canon);
    PQclear(r);
    return rc;
}

/* An already stored note for this ledger transaction (a retry): 1 with body set, 0, or < 0. */
static int replay(db_conn *db, const cn_ctx *x, json_t **body)
{
    const char *p[] = {x->txn};
    PGresult *r = db_exec(db, sql_by_txn, 1, p);
    int found;

    if (!r)
        return db_last_status(db);
    if ((found = PQntuples(r) == 1))
        *body = note_json(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                          PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4));
    PQclear(r);
    return found;
}

/* Store the request as a pending intent (its own commit; an existing one is kept). */
static int intent_write(db_conn *db, const invoice_credit_req *rq)
{
    char role[16], amt[24];
    const char *p[] = {rq->caller, rq->invoice_id, rq->idem_key, role, amt, rq->reason};

    snprintf(role, sizeof role, "%u", rq->caller_role);
    snprintf(amt, sizeof amt, "%lld", (long long)rq->amount);
    return db_command(db, sql_intent, 6, p);
}

/* A stored intent under the request's key with another amount or reason: 422, nothing done. */
static int intent_check(db_conn *db, const invoice_credit_req *rq, int *status, json_t **body)
{
    char amt[24];
    const char *p[] = {rq->caller, rq->invoice_id, rq->idem_key, amt, rq->reason};
    PGresult *r;

    snprintf(amt, sizeof amt, "%lld", (long long)rq->amount);
    if (!(r = db_exec(db, sql_intent_get, 5, p)))
        return db_last_status(db);
    if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        *status = 422, *body = idem_problem(PROB_IDEMPOTENCY_REUSE, NULL,
                                            "Idempotency-Key %s was used for another credit note "
                                            "on invoice %s (other amount or reason)",
                                            rq->idem_key, rq->invoice_id);
    PQclear(r);
    return DB_OK;
}

/* Mark the request's pending intent "done" or "refused" (in the caller's transaction, if any). */
static int intent_end(db_conn *db, const invoice_credit_req *rq, const char *state)
{
    const char *p[] = {rq->caller, rq->invoice_id, rq->idem_key, state};
    return db_command(db, sql_intent_end, 4, p);
}

/* Check, move the money, store the note: under the invoice's lock. */
static int credit_locked(tally_server *srv, db_conn *db, const invoice_credit_req *rq, int *status,
                         json_t **body)
{
    cn_ctx x = {.rq = rq};
    int rc;

    if ((rc = intent_check(db, rq, status, body)) != DB_OK || *status)
        return rc;
    if ((rc = load(db, &x, status, body)) != DB_OK)
        return rc;
    if (*status) /* a refusal ends a pending intent of this request (the janitor's, say) */
        return intent_end(db, rq, "refused");
    if ((rc = intent_write(db, rq)) != DB_OK)
        return rc;
    if ((rc = move_money(srv, db, &x, status, body)) != DB_OK)
        return rc;
    if (*status)
        return intent_end(db, rq, "refused");
    if ((rc = db_begin(db)) != DB_OK)
        return rc;
    if ((rc = replay(db, &x, body)) == 0)
        rc = store(srv, db, &x, body);
    else if (rc == 1)
        rc = DB_OK;
    if (rc == DB_OK && (rc = intent_end(db, rq, "done")) != DB_OK)
        json_decref(*body), *body = NULL;
    if (rc != DB_OK) {
        db_rollback(db);
        return rc;
    }
    if ((rc = db_commit(db)) == DB_OK)
        *status = 201;
    else
        json_decref(*body), *body = NULL;
    return rc;
}

int invoice_credit_note(tally_server *srv, db_conn *db, const invoice_credit_req *rq, int *status,
                        json_t **body)
{
    const char *p[] = {rq->invoice_id};
    PGresult *r;
    int rc;

    *status = 0;
    if (!(r = db_exec(db, sql_lock, 1, p)))
        return db_last_status(db);
    PQclear(r);
    rc = credit_locked(srv, db, rq, status, body);
    if ((r = db_exec(db, sql_unlock, 1, p)))
        PQclear(r); /* a failure here means the connection is gone, and the lock with it */
    return rc;
}

int invoice_credit_sweep(struct tally_server *srv, db_conn *db)
{
    PGresult *r = db_exec(db, sql_intent_stale, 0, NULL);
    int n, done = 0, rc = DB_OK;

    if (!r)
        return db_last_status(db);
    n = PQntuples(r);
    for (int i = 0; i < n && rc == DB_OK; i++) {
        invoice_credit_req rq = {.caller_role = (unsigned)atoi(PQgetvalue(r, i, 3)),
                                 .amount = atoll(PQgetvalue(r, i, 4))};
        json_t *body = NULL;
        int status;

        snprintf(rq.caller, sizeof rq.caller, "%s", PQgetvalue(r, i, 0));
        snprintf(rq.invoice_id, sizeof rq.invoice_id, "%s", PQgetvalue(r, i, 1));
        snprintf(rq.idem_key, sizeof rq.idem_key, "%s", PQgetvalue(r, i, 2));
        snprintf(rq.reason, sizeof rq.reason, "%s", PQgetvalue(r, i, 5));
        rc = invoice_credit_note(srv, db, &rq, &status, &body);
        if (rc == DB_OK && status >= 400)
            log_warn("invoices", "credit note intent %s on %s refused: %s", rq.idem_key,
                     rq.invoice_id, json_string_value(json_object_get(body, "detail")));
        done += rc == DB_OK;
        json_decref(body);
    }
    PQclear(r);
    if (done)
        log_info("invoices", "janitor finished %d credit note(s) left pending", done);
    return rc == DB_OK ? done : rc;
}
