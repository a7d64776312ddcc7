/*
 * market_settle.c - apply pending settlements through the ledger, exactly once.
 * Invariant: a settlement is marked posted only with the ledger transaction
 * that applied it; the ledger's Idempotency-Key (the settlement id) makes a
 * second application a replay of the first.
 */
#include "market_settle.h"
#include "http.h"
#include "ledger_svc.h"
#include "log.h"
#include "server.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_load[] =
    "WITH req AS (SELECT DISTINCT order_id FROM settlements WHERE id = ANY($1::text[])) "
    "SELECT s.id, s.order_id, s.kind, s.amount, s.fee, s.final, o.tenant_id, o.provider_id, "
    "o.currency, coalesce(o.hold_id, ''), (extract(epoch FROM o.start_at) * 1000)::bigint, "
    "(extract(epoch FROM o.end_at) * 1000)::bigint "
    "FROM settlements s JOIN orders o ON o.id = s.order_id "
    "WHERE s.state = 'pending' AND s.order_id IN (SELECT order_id FROM req) "
    "ORDER BY s.order_id, s.id LIMIT 64";

/* Marking a settlement posted need not wait for the WAL flush: should the mark
 * be lost in a crash, the janitor runs the settlement again and the ledger
 * replays it (same transaction), so the mark is restored. */
static const char sql_posted[] =
    "WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "UPDATE settlements SET state = 'posted', txn_id = NULLIF($2, ''), updated_at = now() "
    "FROM cfg WHERE id = $1 AND state = 'pending'";
/* The same mark inside the transaction of the settlement's cause: that commit must wait for the
 * WAL flush (it makes the cause durable), so synchronous_commit stays as it is. */
static const char sql_posted_txn[] =
    "UPDATE settlements SET state = 'posted', txn_id = NULLIF($2, ''), updated_at = now() "
    "WHERE id = $1 AND state = 'pending'";
static const char sql_failed[] = "UPDATE settlements SET state = 'failed', problem = $2::jsonb, "
                                 "updated_at = now() WHERE id = $1 AND state = 'pending'";
static const char sql_placed[] =
    "WITH u AS (UPDATE orders SET hold_id = $2, state = 'placed', updated_at = now() "
    "WHERE id = $1 AND state = 'pending' RETURNING id) "
    "INSERT INTO order_events (order_id, from_state, to_state, actor, detail) "
    "SELECT id, 'pending', 'placed', 'market', json_build_object('hold_id', $2::text, "
    "'transaction_id', $3::text) FROM u";
static const char sql_rejected[] =
    "WITH u AS (UPDATE orders SET state = 'rejected', updated_at = now() "
    "WHERE id = $1 AND state = 'pending' RETURNING id) "
    "INSERT INTO order_events (order_id, from_state, to_state, actor, detail) "
    "SELECT id, 'pending', 'rejected', 'market', json_build_object('problem', $2::jsonb) FROM u";

_Static_assert(MARKET_SETTLE_LATER == LEDGER_NOT_READY, "one 'not now' code for both layers");

/* Holds outlive the order's overrun window by a week, so a late record still finds them. */
#define HOLD_GRACE_MS (7LL * 86400 * 1000)

static void request_hash(const char *id, const char *kind, const char *amount, const char *fee,
                         char out[65])
{
    crypto_generichash_state st;
    unsigned char h[32];

    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)kind, strlen(kind) + 1);
    crypto_generichash_update(&st, (const unsigned char *)amount, strlen(amount) + 1);
    crypto_generichash_update(&st, (const unsigned char *)fee, strlen(fee) + 1);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(out, 65, h, sizeof h);
}

static const char sql_refund_accounts[] =
    "SELECT id, purpose FROM ledger_accounts WHERE currency = $3 AND ((owner_id = $1 AND "
    "purpose = 'wallet') OR (owner_id = $2 AND purpose = 'payable') OR (owner_id IS NULL AND "
    "purpose = 'revenue'))";

/* A refund of reversed usage: the provider's payable and the platform's revenue give back
 * what they received, the tenant's wallet gets it all. 0, or -1 when an account is missing. */
static int refund_entries(db_conn *db, PGresult *r, int i, ledger_op *op)
{
    const char *p[] = {PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8)};
    long long amount = atoll(PQgetvalue(r, i, 3)), fee = atoll(PQgetvalue(r, i, 4));
    PGresult *a = db_exec(db, sql_refund_accounts, 3, p);
    int found = 0;

    if (!a)
        return -1;
    for (int k = 0; k < PQntuples(a); k++) {
        const char *purpose = PQgetvalue(a, k, 1);
        int slot = !strcmp(purpose, "wallet") ? 0 : !strcmp(purpose, "payable") ? 1 : 2;
        ledger_op_entry *e = &op->entries[slot];
        snprintf(e->account, sizeof e->account, "%s", PQgetvalue(a, k, 0));
        /* entries are debits when positive: the credit-normal wallet gains, the others give back */
        e->amount = slot == 0 ? -amount : slot == 1 ? amount - fee : fee;
        found |= 1 << slot;
    }
    PQclear(a);
    op->n_entries = fee ? 3 : 2;
    if (!fee)
        found |= 4; /* no fee: the revenue entry is left out */
    if (!fee && op->entries[2].account[0])
        memset(&op->entries[2], 0, sizeof op->entries[2]);
    op->kind = LEDGER_KIND_ADJUSTMENT;
    return found == 7 ? 0 : -1;
}

/* The ledger op for row i of sql_load, or NULL when it cannot run (no hold). */
static ledger_op *op_for_row(db_conn *db, PGresult *r, int i)
{
    const char *kind = PQgetvalue(r, i, 2), *hold = PQgetvalue(r, i, 9);
    ledger_op *op;

    if (!strcmp(kind, "hold"))
        op = ledger_op_new(LOP_HOLD);
    else if (!strcmp(kind, "refund"))
        op = ledger_op_new(LOP_TRANSFER);
    else if (!hold[0])
        return NULL;
    else
        op = ledger_op_new(!strcmp(kind, "capture") ? LOP_CAPTURE : LOP_VOID);
    if (!op)
        return NULL;
    if (op->op == LOP_TRANSFER && refund_entries(db, r, i, op) != 0) {
        ledger_op_free(op);
        return NULL;
    }
    snprintf(op->caller, sizeof op->caller, "%s", MARKET_SETTLE_CALLER);
    op->caller_role = ROLE_ADMIN;
    snprintf(op->idem_key, sizeof op->idem_key, "%s", PQgetvalue(r, i, 0));
    request_hash(PQgetvalue(r, i, 0), kind, PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                 op->request_hash);
    snprintf(op->owner, sizeof op->owner, "%s", PQgetvalue(r, i, 6));
    snprintf(op->currency, sizeof op->currency, "%s", PQgetvalue(r, i, 8));
    snprintf(op->order_id, sizeof op->order_id, "%s", PQgetvalue(r, i, 1));
    snprintf(op->hold_id, sizeof op->hold_id, "%s", hold);
    op->amount = atoll(PQgetvalue(r, i, 3));
    if (op->op == LOP_HOLD) {
        long long s = atoll(PQgetvalue(r, i, 10)), e = atoll(PQgetvalue(r, i, 11));
        op->expires_us = (e + (e - s) + HOLD_GRACE_MS) * 1000;
        snprintf(op->memo, sizeof op->memo, "order %s", PQgetvalue(r, i, 1));
    } else if (op->op == LOP_CAPTURE) {
        op->fee = atoll(PQgetvalue(r, i, 4));
        op->final = PQgetvalue(r, i, 5)[0] == 't';
        snprintf(op->payee, sizeof op->payee, "%s", PQgetvalue(r, i, 7));
        snprintf(op->usage_id, sizeof op->usage_id, "%s", PQgetvalue(r, i, 0));
        snprintf(op->memo, sizeof op->memo, "usage of order %s", PQgetvalue(r, i, 1));
    } else if (op->op == LOP_TRANSFER) {
        snprintf(op->memo, sizeof op->memo, "refund of reversed usage of order %s",
                 PQgetvalue(r, i, 1));
    } else {
        snprintf(op->memo, sizeof op->memo, "order %s closed: rest of the hold released",
                 PQgetvalue(r, i, 1));
    }
    return op;
}

/* The transaction id of an outcome, also when it was replayed. */
static const char *outcome_txn(const ledger_op *op)
{
    json_t *t;

    if (op->txn_id[0])
        return op->txn_id;
    t = json_object_get(op->body, "transaction");
    t = t ? json_object_get(t, "id") : json_object_get(op->body, "id");
    return json_is_string(t) ? json_string_value(t) : "";
}

static int record_posted(db_conn *db, bool in_txn, const char *sid, const char *kind,
                         const char *order, const ledger_op *op)
{
    const char *txn = outcome_txn(op);
    const char *p[] = {sid, txn};
    int rc = db_command(db, in_txn ? sql_posted_txn : sql_posted, 2, p);

    if (rc == DB_OK && !strcmp(kind, "hold")) {
        json_t *id = json_object_get(op->body, "id");
        const char *q[] = {order, json_is_string(id) ? json_string_value(id) : "", txn};
        rc = db_command(db, sql_placed, 3, q);
    }
    return rc;
}

static int record_failed(db_conn *db, const char *sid, const char *kind, const char *order,
                         json_t *problem)
{
    char *text = json_dumps(problem, JSON_COMPACT);
    const char *p[] = {sid, text ? text : "{}"};
    const char *q[] = {order, text ? text : "{}"};
    int rc = db_command(db, sql_failed, 2, p);

    if (rc == DB_OK && !strcmp(kind, "hold"))
        rc = db_command(db, sql_rejected, 2, q);
    log_warn("market", "settlement %s (%s of %s) refused by the ledger: %s", sid, kind, order,
             text ? text : "?");
    free(text);
    return rc;
}

/* A release of a hold that usage captured in full: nothing was left to release. */
static int nothing_left(const char *kind, const ledger_op *op)
{
    const char *type = json_string_value(json_object_get(op->body, "type"));
    size_t n = type ? strlen(type) : 0;

    return !strcmp(kind, "release") && op->status == 409 && n >= 11 &&
           !strcmp(type + n - 11, "hold-closed");
}

static void fill_out(market_settle_out *o, const ledger_op *op)
{
    json_t *id = json_object_get(op->body, "id");

    o->status = op->status;
    snprintf(o->txn_id, sizeof o->txn_id, "%s", outcome_txn(op));
    if (op->op == LOP_HOLD && op->status < 300 && json_is_string(id))
        snprintf(o->hold_id, sizeof o->hold_id, "%s", json_string_value(id));
    if (op->status >= 400)
        o->problem = json_incref(op->body);
}

/* Record every outcome of the batch in the open transaction. */
static int record_rows(db_conn *db, bool in_txn, PGresult *r, ledger_op **ops,
                       const char *const *ids, size_t n, market_settle_out *out)
{
    int rc = DB_OK;

    for (int i = 0; rc == DB_OK && i < PQntuples(r); i++) {
        const char *sid = PQgetvalue(r, i, 0), *kind = PQgetvalue(r, i, 2);
        const char *order = PQgetvalue(r, i, 1);
        json_t *noh = NULL;

        if (!ops[i]) {
            noh = json_pack("{s:s, s:s}", "title", "cannot be applied", "detail",
                            "the order has no hold, or a refund's ledger accounts are missing");
            rc = record_failed(db, sid, kind, order, noh);
            json_decref(noh);
            continue;
        }
        if ((ops[i]->status >= 200 && ops[i]->status < 300) || nothing_left(kind, ops[i]))
            rc = record_posted(db, in_txn, sid, kind, order, ops[i]);
        else if (ops[i]->status >= 400)
            rc = record_failed(db, sid, kind, order, ops[i]->body);
        for (size_t k = 0; out && k < n; k++)
            if (!strcmp(ids[k], sid))
                fill_out(&out[k], ops[i]);
    }
    return rc;
}

/* Record the outcomes in a transaction of their own. */
static int record_all(db_conn *db, PGresult *r, ledger_op **ops, const char *const *ids, size_t n,
                      market_settle_out *out)
{
    int rc = db_begin(db);

    if (rc == DB_OK)
        rc = record_rows(db, false, r, ops, ids, n, out);
    if (rc == DB_OK)
        return db_commit(db);
    db_rollback(db);
    return rc;
}

static char *id_array(const char *const *ids, size_t n)
{
    size_t cap = 3, len = 0;
    char *s;

    for (size_t i = 0; i < n; i++)
        cap += strlen(ids[i]) + 1;
    if (!(s = malloc(cap)))
        return NULL;
    s[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", ids[i]);
    snprintf(s + len, cap - len, "}");
    return s;
}

/* The pending settlements to apply with ids[0..n) (sql_load) into *r and their ops into
 * ops[] (NULL: cannot run), the runnable ones also into run[0..*nrun). DB_OK or a db_status. */
static int load_ops(db_conn *db, const char *const *ids, size_t n, PGresult **r, ledger_op **ops,
                    ledger_op **run, size_t *nrun)
{
    char *arr;

    *nrun = 0;
    if (n > MARKET_SETTLE_MAX || !(arr = id_array(ids, n)))
        return DB_FAILED;
    {
        const char *p[] = {arr};
        *r = db_exec(db, sql_load, 1, p);
    }
    free(arr);
    if (!*r)
        return db_last_status(db);
    for (int i = 0; i < PQntuples(*r); i++)
        if ((ops[i] = op_for_row(db, *r, i)))
            run[(*nrun)++] = ops[i];
    return DB_OK;
}

/* Apply and record; in_txn: inside the caller's transaction, else each step commits. */
static int settle_batch(struct tally_server *srv, db_conn *db, bool in_txn, const char *const *ids,
                        size_t n, market_settle_out *out)
{
    ledger_op *ops[MARKET_SETTLE_MAX] = {0}, *run[MARKET_SETTLE_MAX];
    size_t nrun = 0;
    PGresult *r = NULL;
    int rc;

    for (size_t k = 0; out && k < n; k++)
        memset(&out[k], 0, sizeof out[k]), snprintf(out[k].id, sizeof out[k].id, "%s", ids[k]);
    if (n == 0)
        return DB_OK;
    rc = load_ops(db, ids, n, &r, ops, run, &nrun);
    if (rc == DB_OK && nrun)
        rc = in_txn ? ledger_run_ops_in_txn(srv->ledger, db, run, nrun)
                    : ledger_run_ops(srv->ledger, db, run, nrun);
    if (rc == DB_OK)
        rc = in_txn ? record_rows(db, true, r, ops, ids, n, out)
                    : record_all(db, r, ops, ids, n, out);
    for (int i = 0; r && i < PQntuples(r); i++)
        ledger_op_free(ops[i]);
    PQclear(r);
    return rc;
}

int market_settle_run(struct tally_server *srv, db_conn *db, const char *const *ids, size_t n,
                      market_settle_out *out)
{
    return settle_batch(srv, db, false, ids, n, out);
}

int market_settle_run_in_txn(struct tally_server *srv, db_conn *db, const char *const *ids,
                             size_t n, market_settle_out *out)
{
    return settle_batch(srv, db, true, ids, n, out);
}

void market_settle_out_clear(market_settle_out *o)
{
    json_decref(o->problem);
    o->problem = NULL;
}

static const char sql_stale[] = "SELECT id FROM settlements WHERE state = 'pending' AND "
                                "created_at < now() - interval '10 seconds' ORDER BY id LIMIT 64";

int market_settle_sweep(struct tally_server *srv, db_conn *db)
{
    PGresult *r = db_exec(db, sql_stale, 0, NULL);
    const char *ids[64];
    int n, rc;

    if (!r)
        return db_last_status(db);
    n = PQntuples(r);
    for (int i = 0; i < n; i++)
        ids[i] = PQgetvalue(r, i, 0);
    rc = market_settle_run(srv, db, ids, (size_t)n, NULL);
    PQclear(r);
    if (rc == DB_OK && n)
        log_info("market", "janitor applied %d settlement(s) left pending", n);
    return rc == DB_OK ? n : rc;
}
