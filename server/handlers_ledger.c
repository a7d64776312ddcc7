/*
 * handlers_ledger.c - the ledger over HTTP.
 *
 * POSTs validate their body, become a ledger_op and go to the group-commit
 * writer (ledger_writer.c), which replies after COMMIT. GETs are single
 * database reads on the pool, scoped with scope_owner_filter: tenants see only
 * their own accounts, holds and the transactions that touch them.
 * Amounts are exact decimal strings in currency units ("12.50"; replies always
 * carry six fraction digits), parsed and printed by pricing/money.h.
 */
#include "handlers.h"
#include "ids.h"
#include "idem_write.h"
#include "idempotency.h"
#include "ledger_maint.h"
#include "ledger_svc.h"
#include "paging.h"
#include "money.h"
#include "scope.h"
#include "server.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writes ------------------------------------------------------------------- */

static void op_done(ledger_op *op)
{
    http_ctx *c = op->arg;

    if (op->status < 100) {
        if (op->status == DB_FAILED)
            http_reply_problem(c, PROB_INTERNAL, "a database statement failed unexpectedly", NULL);
        else
            http_reply_problem(c, PROB_DB_UNAVAILABLE,
                               "the database is unreachable or overloaded; retry shortly", NULL);
    } else {
        if (op->replayed)
            http_set_header(c, "Idempotent-Replayed", "true");
        if (op->status >= 400) {
            char *text;
            json_object_set_new(op->body, "instance", json_string(http_path(c)));
            text = json_dumps(op->body, JSON_COMPACT | JSON_PRESERVE_ORDER);
            http_set_header(c, "Cache-Control", "no-store");
            http_reply_raw(c, op->status, "application/problem+json", text ? text : "{}",
                           text ? strlen(text) : 2);
            free(text);
        } else {
            http_reply_json(c, op->status, op->body);
            op->body = NULL;
        }
    }
    ledger_op_free(op);
}

static ledger_op *op_start(http_ctx *c, ledger_op_kind kind)
{
    ledger_op *op = ledger_op_new(kind);
    idem_request r;
    const http_caller *who = http_get_caller(c);

    if (!op) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    if (idem_prepare(c, &r) != 0) {
        ledger_op_free(op);
        return NULL;
    }
    snprintf(op->caller, sizeof op->caller, "%s", who->account_id);
    op->caller_role = who->role;
    snprintf(op->idem_key, sizeof op->idem_key, "%s", r.key);
    snprintf(op->request_hash, sizeof op->request_hash, "%s", r.request_hash);
    return op;
}

static void op_submit(http_ctx *c, ledger_op *op)
{
    op->done = op_done;
    op->arg = c;
    if (ledger_submit(http_server(c)->ledger, http_event_base(c), op) != 0) {
        ledger_op_free(op);
        http_reply_problem(c, PROB_DB_UNAVAILABLE, "the ledger writer is not running", NULL);
    }
}

static int val_currency(http_ctx *c, json_t *body, const char *field, int required, char out[4])
{
    const char *s;

    out[0] = '\0';
    if (val_string(c, body, field, required, 3, &s))
        return -1;
    if (s && !ledger_valid_currency(s)) {
        http_reply_problemf(c, PROB_VALIDATION, field,
                            "'%s' must be three upper-case letters (ISO 4217), e.g. \"USD\"",
                            field);
        return -1;
    }
    if (s)
        memcpy(out, s, 4);
    return 0;
}

/* Optional reference ids and memo shared by the POST bodies. */
static int val_refs(http_ctx *c, json_t *body, ledger_op *op, const char *const *names)
{
    for (const char *const *n = names; *n; n++) {
        const char *s;
        char *dst = !strcmp(*n, "order_id")     ? op->order_id
                    : !strcmp(*n, "usage_id")   ? op->usage_id
                    : !strcmp(*n, "invoice_id") ? op->invoice_id
                                                : NULL;
        if (!strcmp(*n, "memo")) {
            json_t *m = json_object_get(body, "memo");
            if (m && !json_is_null(m)) {
                if (!json_is_string(m) || !ledger_valid_memo(json_string_value(m)) ||
                    json_string_length(m) != strlen(json_string_value(m))) {
                    http_reply_problem(c, PROB_VALIDATION,
                                       "'memo' must be a string of at most 256 bytes without "
                                       "control characters",
                                       "memo");
                    return -1;
                }
                snprintf(op->memo, sizeof op->memo, "%s", json_string_value(m));
            }
            continue;
        }
        if (!strcmp(*n, "effective_at")) {
            if (val_string(c, body, "effective_at", 0, 40, &s))
                return -1;
            if (s && ledger_time_parse(s, &op->effective_us) != 0) {
                http_reply_problem(c, PROB_VALIDATION,
                                   "'effective_at' must be an ISO-8601 UTC time such as "
                                   "2024-05-01T12:00:00Z",
                                   "effective_at");
                return -1;
            }
            continue;
        }
        if (!dst)
            continue;
        if (val_string(c, body, *n, 0, LEDGER_ID_MAX, &s))
            return -1;
        if (s && !ledger_valid_id(s)) {
            http_reply_problemf(c, PROB_VALIDATION, *n,
                                "'%s' may only contain letters, digits and _ . : -", *n);
            return -1;
        }
        if (s)
            snprintf(dst, LEDGER_ID_MAX + 1, "%s", s);
    }
    return 0;
}

static int need_body(http_ctx *c, json_t *body)
{
    if (body)
        return 0;
    http_reply_problem(c, PROB_VALIDATION, "a JSON body is required", NULL);
    return -1;
}

static int val_tenant(http_ctx *c, json_t *body, char out[LEDGER_ACC_MAX])
{
    const http_caller *who = http_get_caller(c);
    const char *s;

    if (val_string(c, body, "tenant_id", who->role != ROLE_TENANT, 47, &s))
        return -1;
    if (s && !ids_valid(s, "acc")) {
        http_reply_problem(c, PROB_VALIDATION, "'tenant_id' must be an account id (acc_…)",
                           "tenant_id");
        return -1;
    }
    if (who->role == ROLE_TENANT) {
        if (s && strcmp(s, who->account_id) != 0) {
            http_reply_problem(c, PROB_FORBIDDEN, "a tenant may only act on its own account",
                               "tenant_id");
            return -1;
        }
        s = who->account_id;
    }
    snprintf(out, LEDGER_ACC_MAX, "%s", s);
    return 0;
}

void h_ledger_deposit(http_ctx *c)
{
    static const char *const fields[] = {"tenant_id",  "currency",     "amount", "memo",
                                         "invoice_id", "effective_at", NULL};
    static const char *const refs[] = {"memo", "invoice_id", "effective_at", NULL};
    json_t *body = http_body(c);
    ledger_op *op;

    if (need_body(c, body) || val_known_fields(c, body, fields))
        return;
    if (!(op = op_start(c, LOP_DEPOSIT)))
        return;
    if (val_tenant(c, body, op->owner) || val_currency(c, body, "currency", 1, op->currency) ||
        val_money(c, body, "amount", 1, 1, &op->amount) || val_refs(c, body, op, refs)) {
        ledger_op_free(op);
        return;
    }
    op_submit(c, op);
}

void h_ledger_transfer(http_ctx *c)
{
    static const char *const fields[] = {"kind",     "memo",       "entries",      "order_id",
                                         "usage_id", "invoice_id", "effective_at", NULL};
    static const char *const efields[] = {"account", "amount", "currency", NULL};
    static const char *const refs[] = {"memo",       "order_id",     "usage_id",
                                       "invoice_id", "effective_at", NULL};
    json_t *body = http_body(c), *ents, *e;
    ledger_op *op;
    const char *kind;
    size_t i;

    if (need_body(c, body) || val_known_fields(c, body, fields) ||
        val_string(c, body, "kind", 0, 16, &kind))
        return;
    if (!(op = op_start(c, LOP_TRANSFER)))
        return;
    op->kind = LEDGER_KIND_ADJUSTMENT;
    if (kind && (ledger_kind_parse(kind, &op->kind) != 0 ||
                 (op->kind != LEDGER_KIND_ADJUSTMENT && op->kind != LEDGER_KIND_FEE &&
                  op->kind != LEDGER_KIND_PAYOUT && op->kind != LEDGER_KIND_DEPOSIT))) {
        ledger_op_free(op);
        http_reply_problem(c, PROB_VALIDATION,
                           "'kind' must be one of adjustment, fee, payout, deposit", "kind");
        return;
    }
    ents = json_object_get(body, "entries");
    if (!json_is_array(ents) || json_array_size(ents) < LEDGER_MIN_ENTRIES ||
        json_array_size(ents) > LEDGER_MAX_ENTRIES) {
        ledger_op_free(op);
        http_reply_problem(c, PROB_VALIDATION, "'entries' must be an array of 2 to 32 entries",
                           "entries");
        return;
    }
    json_array_foreach(ents, i, e)
    {
        char f[40];
        const char *acc;
        if (!json_is_object(e)) {
            snprintf(f, sizeof f, "entries[%zu]", i);
            ledger_op_free(op);
            http_reply_problem(c, PROB_VALIDATION, "each entry must be an object", f);
            return;
        }
        if (val_known_fields(c, e, efields) || val_string(c, e, "account", 1, 47, &acc) ||
            val_money(c, e, "amount", 1, 0, &op->entries[i].amount) ||
            val_currency(c, e, "currency", 0, op->entries[i].currency)) {
            ledger_op_free(op);
            return;
        }
        if (!ids_valid(acc, "la")) {
            snprintf(f, sizeof f, "entries[%zu].account", i);
            ledger_op_free(op);
            http_reply_problem(c, PROB_UNKNOWN_ACCOUNT, "ledger account ids look like la_…", f);
            return;
        }
        snprintf(op->entries[i].account, sizeof op->entries[i].account, "%s", acc);
        op->n_entries = i + 1;
    }
    if (val_refs(c, body, op, refs)) {
        ledger_op_free(op);
        return;
    }
    op_submit(c, op);
}

void h_ledger_hold_create(http_ctx *c)
{
    static const char *const fields[] = {"tenant_id",  "currency", "amount", "expires_in_s",
                                         "expires_at", "order_id", "memo",   NULL};
    static const char *const refs[] = {"memo", "order_id", NULL};
    json_t *body = http_body(c);
    ledger_op *op;
    const char *exp_at;
    long long in_s;

    if (need_body(c, body) || val_known_fields(c, body, fields))
        return;
    if (!(op = op_start(c, LOP_HOLD)))
        return;
    if (val_tenant(c, body, op->owner) || val_currency(c, body, "currency", 1, op->currency) ||
        val_money(c, body, "amount", 1, 1, &op->amount) || val_refs(c, body, op, refs) ||
        val_int(c, body, "expires_in_s", 0, 1, 90LL * 86400, 0, &in_s) ||
        val_string(c, body, "expires_at", 0, 40, &exp_at)) {
        ledger_op_free(op);
        return;
    }
    if ((in_s != 0) == (exp_at != NULL)) {
        ledger_op_free(op);
        http_reply_problem(c, PROB_VALIDATION, "give exactly one of 'expires_in_s', 'expires_at'",
                           "expires_in_s");
        return;
    }
    if (exp_at && ledger_time_parse(exp_at, &op->expires_us) != 0) {
        ledger_op_free(op);
        http_reply_problem(c, PROB_VALIDATION, "'expires_at' must be an ISO-8601 UTC time",
                           "expires_at");
        return;
    }
    if (in_s)
        op->expires_us = ledger_now_us() + in_s * 1000000;
    op_submit(c, op);
}

static ledger_op *hold_op(http_ctx *c, ledger_op_kind kind)
{
    const char *id;
    ledger_op *op;

    if (val_path_id(c, "id", "hold", &id))
        return NULL;
    if (!(op = op_start(c, kind)))
        return NULL;
    snprintf(op->hold_id, sizeof op->hold_id, "%s", id);
    return op;
}

void h_ledger_hold_capture(http_ctx *c)
{
    static const char *const fields[] = {"amount",   "final", "provider_id", "fee",
                                         "usage_id", "memo",  NULL};
    static const char *const refs[] = {"memo", "usage_id", NULL};
    json_t *body = http_body(c), *fin;
    const char *prov;
    ledger_op *op;

    if (need_body(c, body) || val_known_fields(c, body, fields))
        return;
    if (!(op = hold_op(c, LOP_CAPTURE)))
        return;
    if (val_money(c, body, "amount", 1, 1, &op->amount) || val_refs(c, body, op, refs) ||
        val_string(c, body, "provider_id", 0, 47, &prov)) {
        ledger_op_free(op);
        return;
    }
    if (json_object_get(body, "fee") && val_money(c, body, "fee", 0, 1, &op->fee)) {
        ledger_op_free(op);
        return;
    }
    fin = json_object_get(body, "final");
    if (fin && !json_is_boolean(fin)) {
        ledger_op_free(op);
        http_reply_problem(c, PROB_VALIDATION, "'final' must be true or false", "final");
        return;
    }
    op->final = json_is_true(fin);
    if (prov && !ids_valid(prov, "acc")) {
        ledger_op_free(op);
        http_reply_problem(c, PROB_UNKNOWN_ACCOUNT, "'provider_id' must be an account id (acc_…)",
                           "provider_id");
        return;
    }
    if (prov)
        snprintf(op->payee, sizeof op->payee, "%s", prov);
    op_submit(c, op);
}

void h_ledger_hold_void(http_ctx *c)
{
    static const char *const fields[] = {"memo", NULL};
    static const char *const refs[] = {"memo", NULL};
    json_t *body = http_body(c);
    ledger_op *op;

    if (body && val_known_fields(c, body, fields))
        return;
    if (!(op = hold_op(c, LOP_VOID)))
        return;
    if (body && val_refs(c, body, op, refs)) {
        ledger_op_free(op);
        return;
    }
    op_submit(c, op);
}

void h_ledger_reverse(http_ctx *c)
{
    static const char *const fields[] = {"memo", NULL};
    static const char *const refs[] = {"memo", NULL};
    json_t *body = http_body(c);
    const char *id;
    ledger_op *op;

    if (body && val_known_fields(c, body, fields))
        return;
    if (val_path_id(c, "id", "txn", &id) || !(op = op_start(c, LOP_REVERSE)))
        return;
    snprintf(op->reverses, sizeof op->reverses, "%s", id);
    if (body && val_refs(c, body, op, refs)) {
        ledger_op_free(op);
        return;
    }
    if (!op->memo[0])
        snprintf(op->memo, sizeof op->memo, "reversal of %s", id);
    op_submit(c, op);
}

/* ---- reads ---------------------------------------------------------------------- */

typedef struct read_job {
    char owner[LEDGER_ACC_MAX]; /* "" = caller sees all */
    char id[LEDGER_ACC_MAX];
    char account[LEDGER_ACC_MAX], kind[16], after[LEDGER_ACC_MAX];
    int64_t from_us, to_us, as_of_us;
    bool has_from, has_to, has_as_of;
    int limit;
    json_t *out;
    problem_type prob; /* when the work returns 0 */
    char detail[200];
    int (*op)(db_conn *db, struct read_job *j);
} read_job;

static void read_free(void *arg)
{
    read_job *j = arg;
    json_decref(j->out);
    free(j);
}

static int read_work(db_conn *db, void *arg)
{
    read_job *j = arg;
    return j->op(db, j);
}

static void read_done(http_ctx *c, int found, void *arg)
{
    read_job *j = arg;

    if (found > 0) {
        http_reply_json(c, 200, j->out);
        j->out = NULL;
    } else {
        http_reply_problem(c, j->detail[0] ? j->prob : PROB_NOT_FOUND,
                           j->detail[0] ? j->detail : "not found", NULL);
    }
    read_free(j);
}

static read_job *read_new(http_ctx *c, int (*op)(db_conn *, read_job *))
{
    read_job *j = calloc(1, sizeof *j);
    const char *own = scope_owner_filter(http_get_caller(c));

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    snprintf(j->owner, sizeof j->owner, "%s", own ? own : "");
    j->op = op;
    return j;
}

static const char *nz(const char *s)
{
    return s && *s ? s : NULL;
}

static int query_time(http_ctx *c, const char *name, int64_t *out, bool *has)
{
    const char *s = http_query(c, name);

    *has = false;
    if (!s)
        return 0;
    if (ledger_time_parse(s, out) != 0) {
        http_reply_problemf(c, PROB_VALIDATION, name,
                            "'%s' must be an ISO-8601 UTC time such as 2024-05-01T12:00:00Z", name);
        return -1;
    }
    *has = true;
    return 0;
}

static json_t *txn_page_row(PGresult *r, int i, const void *ctx)
{
    ledger_row row;
    json_t *out = NULL;

    (void)ctx;
    if (ledger_row_from_pg(r, i, &row) == 0)
        out = ledger_txn_json(&row.t, row.info, row.hold_id);
    ledger_row_clear(&row);
    return out;
}

static json_t *rows_json(PGresult *r, int n)
{
    json_t *arr = json_array();

    for (int i = 0; i < n; i++) {
        json_t *t = txn_page_row(r, i, NULL);
        if (t)
            json_array_append_new(arr, t);
    }
    return arr;
}

static const char sql_txn_list[] =
    "SELECT " LEDGER_TXN_COLS " FROM ledger_transactions t WHERE "
    "($1::text IS NULL OR EXISTS (SELECT 1 FROM ledger_entries e JOIN ledger_accounts a "
    "ON a.id = e.account_id WHERE e.txn_id = t.id AND a.owner_id = $1)) "
    "AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM ledger_entries e WHERE e.txn_id = t.id AND "
    "e.account_id = $2)) AND ($3::text IS NULL OR t.kind = $3) "
    "AND ($4::bigint IS NULL OR t.inserted_us >= $4) AND ($5::bigint IS NULL OR t.inserted_us < "
    "$5) "
    "AND ($6::text IS NULL OR t.id > $6) ORDER BY t.id LIMIT $7::integer";

/* With an account filter: walk ledger_entries_account (account, txn) in
 * cursor order and join each transaction, instead of probing every one. */
static const char sql_txn_list_account[] =
    "SELECT " LEDGER_TXN_COLS " FROM (SELECT DISTINCT e.txn_id FROM ledger_entries e "
    "WHERE e.account_id = $2 AND e.txn_id > coalesce($6::text, '') ORDER BY e.txn_id) x "
    "JOIN ledger_transactions t ON t.id = x.txn_id WHERE "
    "($1::text IS NULL OR EXISTS (SELECT 1 FROM ledger_entries e JOIN ledger_accounts a "
    "ON a.id = e.account_id WHERE e.txn_id = t.id AND a.owner_id = $1)) "
    "AND ($3::text IS NULL OR t.kind = $3) "
    "AND ($4::bigint IS NULL OR t.inserted_us >= $4) AND ($5::bigint IS NULL OR t.inserted_us < "
    "$5) ORDER BY x.txn_id LIMIT $7::integer";

static int op_txn_list(db_conn *db, read_job *j)
{
    char from[24], to[24], lim[16];
    const char *p[7];
    PGresult *r;

    snprintf(from, sizeof from, "%lld", (long long)j->from_us);
    snprintf(to, sizeof to, "%lld", (long long)j->to_us);
    snprintf(lim, sizeof lim, "%d", j->limit + 1);
    p[0] = nz(j->owner);
    p[1] = nz(j->account);
    p[2] = nz(j->kind);
    p[3] = j->has_from ? from : NULL;
    p[4] = j->has_to ? to : NULL;
    p[5] = nz(j->after);
    p[6] = lim;
    if (!(r = db_exec(db, j->account[0] ? sql_txn_list_account : sql_txn_list, 7, p)))
        return db_last_status(db);
    j->out = paging_build(r, j->limit, txn_page_row, NULL);
    PQclear(r);
    return j->out ? 1 : DB_FAILED;
}

void h_ledger_txn_list(http_ctx *c)
{
    read_job *j;
    const char *acc, *after, *kind = http_query(c, "kind");
    ledger_kind k;
    int limit;

    if (val_query_limit(c, 50, 500, &limit) || val_query_id(c, "account", "la", &acc) ||
        val_query_id(c, "after", "txn", &after))
        return;
    if (kind && ledger_kind_parse(kind, &k) != 0) {
        http_reply_problem(c, PROB_VALIDATION, "'kind' is not a transaction kind", "kind");
        return;
    }
    if (!(j = read_new(c, op_txn_list)))
        return;
    if (query_time(c, "from", &j->from_us, &j->has_from) ||
        query_time(c, "to", &j->to_us, &j->has_to)) {
        read_free(j);
        return;
    }
    snprintf(j->account, sizeof j->account, "%s", acc ? acc : "");
    snprintf(j->after, sizeof j->after, "%s", after ? after : "");
    snprintf(j->kind, sizeof j->kind, "%s", kind ? kind : "");
    j->limit = limit;
    http_db(c, read_work, read_done, j, read_free);
}

static const char sql_txn_get[] =
    "SELECT " LEDGER_TXN_COLS " FROM ledger_transactions t WHERE t.id = $2 AND "
    "($1::text IS NULL OR EXISTS (SELECT 1 FROM ledger_entries e JOIN ledger_accounts a "
    "ON a.id = e.account_id WHERE e.txn_id = t.id AND a.owner_id = $1))";

static int op_txn_get(db_conn *db, read_job *j)
{
    const char *p[] = {nz(j->owner), j->id};
    PGresult *r = db_exec(db, sql_txn_get, 2, p);
    json_t *arr;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    arr = rows_json(r, 1);
    j->out = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    PQclear(r);
    return 1;
}

void h_ledger_txn_get(http_ctx *c)
{
    const char *id;
    read_job *j;

    if (val_path_id(c, "id", "txn", &id) || !(j = read_new(c, op_txn_get)))
        return;
    snprintf(j->id, sizeof j->id, "%s", id);
    http_db(c, read_work, read_done, j, read_free);
}

#define ACCT_COLS                                                                                  \
    "a.id, coalesce(a.owner_id, ''), a.purpose, a.currency, a.credit_limit, a.checked, "           \
    "CASE WHEN a.checked THEN a.balance ELSE (SELECT coalesce(sum(s.balance), 0) FROM "            \
    "ledger_account_shards s WHERE s.account_id = a.id) END, "                                     \
    "CASE WHEN a.checked THEN a.version ELSE (SELECT coalesce(sum(s.version), 0) FROM "            \
    "ledger_account_shards s WHERE s.account_id = a.id) END"

static json_t *acct_json(PGresult *r, int i)
{
    json_t *o = json_object();
    const char *owner = PQgetvalue(r, i, 1);

    json_object_set_new(o, "id", json_string(PQgetvalue(r, i, 0)));
    json_object_set_new(o, "owner_id", *owner ? json_string(owner) : json_null());
    json_object_set_new(o, "purpose", json_string(PQgetvalue(r, i, 2)));
    json_object_set_new(o, "currency", json_string(PQgetvalue(r, i, 3)));
    json_object_set_new(o, "credit_limit",
                        ledger_money_json(strtoll(PQgetvalue(r, i, 4), NULL, 10)));
    json_object_set_new(o, "limit_checked", json_boolean(PQgetvalue(r, i, 5)[0] == 't'));
    json_object_set_new(o, "balance", ledger_money_json(strtoll(PQgetvalue(r, i, 6), NULL, 10)));
    json_object_set_new(o, "version", json_integer(strtoll(PQgetvalue(r, i, 7), NULL, 10)));
    return o;
}

static json_t *acct_page_row(PGresult *r, int i, const void *ctx)
{
    (void)ctx;
    return acct_json(r, i);
}

static const char sql_acct_list[] =
    "SELECT " ACCT_COLS " FROM ledger_accounts a WHERE "
    "($1::text IS NULL OR a.owner_id = $1) AND "
    "($2::text IS NULL OR a.id > $2) ORDER BY a.id LIMIT $3::integer";

static int op_acct_list(db_conn *db, read_job *j)
{
    char lim[16];
    const char *p[3];
    PGresult *r;

    snprintf(lim, sizeof lim, "%d", j->limit + 1);
    p[0] = nz(j->owner);
    p[1] = nz(j->after);
    p[2] = lim;
    if (!(r = db_exec(db, sql_acct_list, 3, p)))
        return db_last_status(db);
    j->out = paging_build(r, j->limit, acct_page_row, NULL);
    PQclear(r);
    return j->out ? 1 : DB_FAILED;
}

void h_ledger_accounts_list(http_ctx *c)
{
    const char *after;
    read_job *j;
    int limit;

    if (val_query_limit(c, 50, 500, &limit) || val_query_id(c, "after", "la", &after) ||
        !(j = read_new(c, op_acct_list)))
        return;
    snprintf(j->after, sizeof j->after, "%s", after ? after : "");
    j->limit = limit;
    http_db(c, read_work, read_done, j, read_free);
}

static const char sql_acct_get[] = "SELECT " ACCT_COLS " FROM ledger_accounts a WHERE a.id = $2 "
                                   "AND ($1::text IS NULL OR a.owner_id = $1)";
static const char sql_pair[] =
    "SELECT id FROM ledger_accounts WHERE owner_id = $1 AND currency = $2 AND purpose = $3";
static const char sql_bal_now[] =
    "SELECT CASE WHEN a.checked THEN a.balance ELSE (SELECT coalesce(sum(s.balance), 0) "
    "FROM ledger_account_shards s WHERE s.account_id = a.id) END FROM ledger_accounts a "
    "WHERE a.id = $1";
/* One indexed read per shard: the last entry at or before the time. */
static const char sql_bal_asof[] =
    "SELECT coalesce(sum(x.b), 0) FROM (SELECT -1 AS shard UNION ALL SELECT shard FROM "
    "ledger_account_shards WHERE account_id = $1) s CROSS JOIN LATERAL (SELECT e.balance_after b "
    "FROM ledger_entries e WHERE e.account_id = $1 AND e.shard = s.shard AND e.inserted_us <= "
    "$2::bigint ORDER BY e.inserted_us DESC, e.account_version DESC LIMIT 1) x";

static int balance_of(db_conn *db, read_job *j, const char *id, int64_t *out)
{
    char t[24];
    const char *p[] = {id, t};
    PGresult *r;

    snprintf(t, sizeof t, "%lld", (long long)j->as_of_us);
    r = j->has_as_of ? db_exec(db, sql_bal_asof, 2, p) : db_exec(db, sql_bal_now, 1, p);
    if (!r)
        return db_last_status(db);
    *out = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 1;
}

static int op_balance(db_conn *db, read_job *j)
{
    const char *p[] = {nz(j->owner), j->id};
    PGresult *r = db_exec(db, sql_acct_get, 2, p);
    char purpose[16], owner[LEDGER_ACC_MAX], cur[4], ts[40];
    int64_t own = 0, wallet = 0, holds = 0;
    int rc;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    j->out = acct_json(r, 0);
    snprintf(purpose, sizeof purpose, "%s", PQgetvalue(r, 0, 2));
    snprintf(owner, sizeof owner, "%s", PQgetvalue(r, 0, 1));
    snprintf(cur, sizeof cur, "%s", PQgetvalue(r, 0, 3));
    PQclear(r);
    if ((rc = balance_of(db, j, j->id, &own)) < 0)
        return rc;
    json_object_set_new(j->out, "balance", ledger_money_json(own));
    if (!strcmp(purpose, "wallet") || !strcmp(purpose, "holds")) {
        const char *other = !strcmp(purpose, "wallet") ? "holds" : "wallet";
        const char *q[] = {owner, cur, other};
        int64_t o = 0;
        if (!(r = db_exec(db, sql_pair, 3, q)))
            return db_last_status(db);
        if (PQntuples(r) == 1 && (rc = balance_of(db, j, PQgetvalue(r, 0, 0), &o)) < 0) {
            PQclear(r);
            return rc;
        }
        PQclear(r);
        wallet = !strcmp(purpose, "wallet") ? own : o;
        holds = !strcmp(purpose, "wallet") ? o : own;
        json_object_set_new(j->out, "posted", ledger_money_json(wallet + holds));
        json_object_set_new(j->out, "pending", ledger_money_json(holds));
        json_object_set_new(j->out, "available", ledger_money_json(wallet));
    } else {
        json_object_set_new(j->out, "posted", ledger_money_json(own));
        json_object_set_new(j->out, "pending", ledger_money_json(0));
        json_object_set_new(j->out, "available", ledger_money_json(own));
    }
    ledger_time_fmt(j->has_as_of ? j->as_of_us : ledger_now_us(), ts, sizeof ts);
    json_object_set_new(j->out, "as_of", json_string(ts));
    return 1;
}

void h_ledger_balance(http_ctx *c)
{
    const char *id;
    read_job *j;

    if (val_path_id(c, "id", "la", &id) || !(j = read_new(c, op_balance)))
        return;
    snprintf(j->id, sizeof j->id, "%s", id);
    if (query_time(c, "as_of", &j->as_of_us, &j->has_as_of)) {
        read_free(j);
        return;
    }
    http_db(c, read_work, read_done, j, read_free);
}

static const char sql_keys[] = "SELECT kid, encode(public_key, 'hex'), valid_from, valid_until "
                               "FROM ledger_keys ORDER BY valid_from, kid";
static const char sql_keys_one[] = "SELECT kid, encode(public_key, 'hex'), valid_from, "
                                   "valid_until FROM ledger_keys WHERE kid = $1";

/* One key with its validity; "retired" once valid_until is set. */
static json_t *key_json(PGresult *r, int i)
{
    char from[40], until[40];
    bool open = PQgetisnull(r, i, 3);

    ledger_time_fmt(strtoll(PQgetvalue(r, i, 2), NULL, 10), from, sizeof from);
    if (!open)
        ledger_time_fmt(strtoll(PQgetvalue(r, i, 3), NULL, 10), until, sizeof until);
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:o,s:o,s:s}", "kid", PQgetvalue(r, i, 0), "alg",
                     "Ed25519", "public_key", PQgetvalue(r, i, 1), "valid_from", from,
                     "valid_from_us", (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10),
                     "valid_until", open ? json_null() : json_string(until), "valid_until_us",
                     open ? json_null() : json_integer(strtoll(PQgetvalue(r, i, 3), NULL, 10)),
                     "status", open ? "active" : "retired");
}

static int op_keys(db_conn *db, read_job *j)
{
    PGresult *r = db_exec(db, sql_keys, 0, NULL);
    json_t *data = json_array();

    if (!r) {
        json_decref(data);
        return db_last_status(db);
    }
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(data, key_json(r, i));
    PQclear(r);
    j->out = json_pack("{s:o}", "data", data);
    return 1;
}

void h_ledger_keys(http_ctx *c)
{
    read_job *j = read_new(c, op_keys);
    if (j)
        http_db(c, read_work, read_done, j, read_free);
}

#define CKPT_COLS                                                                                  \
    "number, time_us, partitions, encode(root, 'hex'), encode(prev_digest, 'hex'), "               \
    "encode(digest, 'hex'), kid, encode(sig, 'hex'), encode(heads, 'hex')"

static json_t *ckpt_json(PGresult *r, int i)
{
    json_t *o = json_object(), *heads = json_array();
    const char *hx = PQgetvalue(r, i, 8);
    size_t n = strlen(hx) / 2;
    unsigned char *raw = malloc(n ? n : 1);
    char ts[40];

    ledger_time_fmt(strtoll(PQgetvalue(r, i, 1), NULL, 10), ts, sizeof ts);
    json_object_set_new(o, "number", json_integer(strtoll(PQgetvalue(r, i, 0), NULL, 10)));
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "time_us", json_integer(strtoll(PQgetvalue(r, i, 1), NULL, 10)));
    json_object_set_new(o, "partitions", json_integer(strtoll(PQgetvalue(r, i, 2), NULL, 10)));
    json_object_set_new(o, "root", json_string(PQgetvalue(r, i, 3)));
    json_object_set_new(o, "prev_digest", json_string(PQgetvalue(r, i, 4)));
    json_object_set_new(o, "digest", json_string(PQgetvalue(r, i, 5)));
    json_object_set_new(o, "kid", json_string(PQgetvalue(r, i, 6)));
    json_object_set_new(o, "sig", json_string(PQgetvalue(r, i, 7)));
    if (raw && ledger_unhex(hx, raw, n) == 0)
        for (size_t p = 0; p + 40 <= n; p += 40) {
            uint64_t seq = 0;
            char hh[65];
            for (int b = 0; b < 8; b++)
                seq = (seq << 8) | raw[p + (size_t)b];
            ledger_hex(raw + p + 8, 32, hh);
            json_array_append_new(heads,
                                  json_pack("{s:I,s:I,s:s}", "partition", (json_int_t)(p / 40),
                                            "seq", (json_int_t)seq, "hash", hh));
        }
    free(raw);
    json_object_set_new(o, "heads", heads);
    return o;
}

static json_t *ckpt_page_row(PGresult *r, int i, const void *ctx)
{
    (void)ctx;
    return ckpt_json(r, i);
}

static const char sql_ckpts[] = "SELECT " CKPT_COLS " FROM ledger_checkpoints WHERE number > "
                                "$1::bigint ORDER BY number LIMIT $2::integer";

static int op_ckpts(db_conn *db, read_job *j)
{
    char lim[16];
    const char *p[] = {nz(j->after) ? j->after : "0", lim};
    PGresult *r;

    snprintf(lim, sizeof lim, "%d", j->limit + 1);
    if (!(r = db_exec(db, sql_ckpts, 2, p)))
        return db_last_status(db);
    j->out = paging_build(r, j->limit, ckpt_page_row, NULL);
    PQclear(r);
    return j->out ? 1 : DB_FAILED;
}

void h_ledger_checkpoints(http_ctx *c)
{
    const char *after = http_query(c, "after");
    read_job *j;
    int limit;

    if (val_query_limit(c, 50, 500, &limit))
        return;
    if (after && (strspn(after, "0123456789") != strlen(after) || !*after || strlen(after) > 18)) {
        http_reply_problem(c, PROB_VALIDATION, "'after' must be a checkpoint number", "after");
        return;
    }
    if (!(j = read_new(c, op_ckpts)))
        return;
    snprintf(j->after, sizeof j->after, "%s", after ? after : "");
    j->limit = limit;
    http_db(c, read_work, read_done, j, read_free);
}

/*
 * The links after a transaction up to the checkpointed head belong to other
 * owners too. A caller who does not see every account gets each link reduced
 * to what proves it without revealing it: position, prev_hash, hash and the
 * service's signature over the hash (the signature covers "tally-txn-v1" ||
 * hash, so every link is still checked to be the service's own).
 */
static json_t *redact_links(json_t *later, const read_job *j)
{
    json_t *out, *t;
    size_t i;

    if (!j->owner[0])
        return later;
    out = json_array();
    json_array_foreach(later, i, t)
    {
        json_t *link = json_object();
        static const char *const keep[] = {"partition", "seq", "prev_hash", "hash", "kid", "sig"};
        for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
            if (json_object_get(t, keep[k]))
                json_object_set(link, keep[k], json_object_get(t, keep[k]));
        json_object_set_new(link, "redacted", json_true());
        json_array_append_new(out, link);
    }
    json_decref(later);
    return out;
}

static const char sql_ckpt_last[] =
    "SELECT " CKPT_COLS " FROM ledger_checkpoints ORDER BY number DESC LIMIT 1";
static const char sql_later[] = "SELECT " LEDGER_TXN_COLS " FROM ledger_transactions t "
                                "WHERE t.partition = $1::integer AND t.seq > $2::bigint AND "
                                "t.seq <= $3::bigint ORDER BY t.seq";

static int op_proof(db_conn *db, read_job *j)
{
    int rc = op_txn_get(db, j);
    json_t *txn, *ck, *heads, *h;
    PGresult *r;
    ledger_head *hv = NULL;
    ledger_merkle_proof proof;
    uint32_t part, n;
    uint64_t seq, head_seq;

    if (rc != 1)
        return rc;
    txn = j->out;
    j->out = NULL;
    part = (uint32_t)json_integer_value(json_object_get(txn, "partition"));
    seq = (uint64_t)json_integer_value(json_object_get(txn, "seq"));
    if (!(r = db_exec(db, sql_ckpt_last, 0, NULL))) {
        json_decref(txn);
        return db_last_status(db);
    }
    ck = PQntuples(r) == 1 ? ckpt_json(r, 0) : NULL;
    PQclear(r);
    heads = ck ? json_object_get(ck, "heads") : NULL;
    h = heads ? json_array_get(heads, part) : NULL;
    head_seq = h ? (uint64_t)json_integer_value(json_object_get(h, "seq")) : 0;
    if (!ck || head_seq < seq) {
        json_decref(txn);
        json_decref(ck);
        j->prob = PROB_CONFLICT;
        snprintf(j->detail, sizeof j->detail,
                 "the transaction is not yet covered by a checkpoint; retry after the next one");
        return 0;
    }
    n = (uint32_t)json_array_size(heads);
    hv = calloc(n, sizeof *hv);
    for (uint32_t i = 0; hv && i < n; i++) {
        json_t *x = json_array_get(heads, i);
        hv[i].partition = i;
        hv[i].seq = (uint64_t)json_integer_value(json_object_get(x, "seq"));
        ledger_unhex(json_string_value(json_object_get(x, "hash")), hv[i].hash, LEDGER_HASH_BYTES);
    }
    if (!hv || ledger_heads_prove(hv, n, part, &proof, NULL) != LEDGER_OK) {
        free(hv);
        json_decref(txn);
        json_decref(ck);
        return DB_FAILED;
    }
    free(hv);
    {
        char a[16], b[24], c2[24];
        const char *p[] = {a, b, c2};
        json_t *path = json_array();
        snprintf(a, sizeof a, "%u", part);
        snprintf(b, sizeof b, "%llu", (unsigned long long)seq);
        snprintf(c2, sizeof c2, "%llu", (unsigned long long)head_seq);
        if (!(r = db_exec(db, sql_later, 3, p))) {
            json_decref(path);
            json_decref(txn);
            json_decref(ck);
            return db_last_status(db);
        }
        for (size_t i = 0; i < proof.n_path; i++) {
            char hh[65];
            ledger_hex(proof.path[i], LEDGER_HASH_BYTES, hh);
            json_array_append_new(path, json_string(hh));
        }
        j->out = json_pack("{s:o,s:o,s:o,s:{s:I,s:I,s:o}}", "transaction", txn, "later",
                           redact_links(rows_json(r, PQntuples(r)), j), "checkpoint", ck,
                           "inclusion", "index", (json_int_t)proof.index, "size",
                           (json_int_t)proof.size, "path", path);
        PQclear(r);
    }
    return 1;
}

void h_ledger_proof(http_ctx *c)
{
    const char *id;
    read_job *j;

    if (val_path_id(c, "id", "txn", &id) || !(j = read_new(c, op_proof)))
        return;
    snprintf(j->id, sizeof j->id, "%s", id);
    http_db(c, read_work, read_done, j, read_free);
}

static const char sql_hold_get[] =
    "SELECT id, owner_id, wallet_id, holds_id, currency, amount, captured, released, state, "
    "expires_us, order_id, hold_txn_id, closed_txn_id FROM ledger_holds WHERE id = $2 AND "
    "($1::text IS NULL OR owner_id = $1)";

static int op_hold_get(db_conn *db, read_job *j)
{
    const char *p[] = {nz(j->owner), j->id};
    PGresult *r = db_exec(db, sql_hold_get, 2, p);
    int64_t amt, cap, rel;
    char ts[40];

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    amt = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    cap = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
    rel = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
    ledger_time_fmt(strtoll(PQgetvalue(r, 0, 9), NULL, 10), ts, sizeof ts);
    j->out = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:s,s:s,s:o,s:s,s:o}", "id", PQgetvalue(r, 0, 0),
        "tenant_id", PQgetvalue(r, 0, 1), "wallet_account", PQgetvalue(r, 0, 2), "holds_account",
        PQgetvalue(r, 0, 3), "currency", PQgetvalue(r, 0, 4), "amount", ledger_money_json(amt),
        "captured", ledger_money_json(cap), "released", ledger_money_json(rel), "remaining",
        ledger_money_json(amt - cap - rel), "state", PQgetvalue(r, 0, 8), "expires_at", ts,
        "order_id", PQgetisnull(r, 0, 10) ? json_null() : json_string(PQgetvalue(r, 0, 10)),
        "hold_transaction_id", PQgetvalue(r, 0, 11), "closed_transaction_id",
        PQgetisnull(r, 0, 12) ? json_null() : json_string(PQgetvalue(r, 0, 12)));
    PQclear(r);
    return 1;
}

void h_ledger_hold_get(http_ctx *c)
{
    const char *id;
    read_job *j;

    if (val_path_id(c, "id", "hold", &id) || !(j = read_new(c, op_hold_get)))
        return;
    snprintf(j->id, sizeof j->id, "%s", id);
    http_db(c, read_work, read_done, j, read_free);
}

/* ---- credit limits ------------------------------------------------------------ */

#define LEDGER_CREDIT_LIMIT_MAX INT64_C(1000000000000000) /* 10^9 currency units */

typedef struct limit_job {
    char id[LEDGER_ACC_MAX];
    int64_t limit;
} limit_job;

/* Only wallets may go below zero, and only down to their limit: holds accounts
 * are escrow and the unchecked accounts take no balance lock at all. The
 * UPDATE takes the same row lock as the writer's balance check, so a batch
 * sees either the old or the new limit, never a mix; a limit below the
 * wallet's current overdraft is refused, so no balance is ever below its
 * limit. */
static const char sql_limit_set[] =
    "WITH u AS (UPDATE ledger_accounts SET credit_limit = $2::bigint WHERE id = $1 "
    "AND purpose = 'wallet' AND balance >= -$2::bigint RETURNING id) "
    "SELECT (SELECT count(*) FROM u), a.purpose, a.balance FROM (SELECT 1) one "
    "LEFT JOIN ledger_accounts a ON a.id = $1";
static const char sql_limit_get[] = "SELECT " ACCT_COLS " FROM ledger_accounts a WHERE a.id = $1";

static int op_limit_set(db_conn *db, void *arg, int *status, json_t **body)
{
    limit_job *j = arg;
    char lim[24];
    const char *p[] = {j->id, lim};
    PGresult *r;

    snprintf(lim, sizeof lim, "%lld", (long long)j->limit);
    if (!(r = db_exec(db, sql_limit_set, 2, p)))
        return db_last_status(db);
    if (PQgetisnull(r, 0, 1)) {
        *status = 404;
        *body = idem_problem(PROB_NOT_FOUND, NULL, "no ledger account '%s'", j->id);
    } else if (strcmp(PQgetvalue(r, 0, 1), "wallet") != 0) {
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, "credit_limit",
                             "account '%s' is a %s account: only wallet accounts have a credit "
                             "limit",
                             j->id, PQgetvalue(r, 0, 1));
    } else if (strcmp(PQgetvalue(r, 0, 0), "1") != 0) {
        char bal[40];
        money_format(strtoll(PQgetvalue(r, 0, 2), NULL, 10), bal, sizeof bal);
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, "credit_limit",
                             "wallet '%s' stands at %s: the limit cannot be lower than its "
                             "current overdraft",
                             j->id, bal);
    }
    PQclear(r);
    if (*body)
        return DB_OK;
    if (!(r = db_exec(db, sql_limit_get, 1, p)))
        return db_last_status(db);
    *body = acct_json(r, 0);
    *status = 200;
    PQclear(r);
    return DB_OK;
}

void h_ledger_credit_limit(http_ctx *c)
{
    static const char *const fields[] = {"credit_limit", NULL};
    json_t *body = http_body(c), *v;
    const char *id;
    limit_job *j;
    int64_t lim;
    money_status st;

    if (val_path_id(c, "id", "la", &id) || need_body(c, body) || val_known_fields(c, body, fields))
        return;
    v = json_object_get(body, "credit_limit");
    if (!json_is_string(v)) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'credit_limit' is required: a decimal string in the account's "
                           "currency units, e.g. \"250.00\" (\"0\" = no overdraft)",
                           "credit_limit");
        return;
    }
    if ((st = money_parse(json_string_value(v), &lim)) != MONEY_OK) {
        http_reply_problemf(c, PROB_VALIDATION, "credit_limit", "'credit_limit': %s",
                            money_status_message(st));
        return;
    }
    if (lim < 0 || lim > LEDGER_CREDIT_LIMIT_MAX) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'credit_limit' must be between 0 and 1000000000 currency units",
                           "credit_limit");
        return;
    }
    if (!(j = calloc(1, sizeof *j))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    j->limit = lim;
    idem_write_submit(c, op_limit_set, j, free);
}

/* ---- key retirement ------------------------------------------------------------ */

typedef struct retire_job {
    char kid[LEDGER_KID_MAX + 1];
} retire_job;

static int op_key_retire(db_conn *db, void *arg, int *status, json_t **body)
{
    retire_job *j = arg;
    const char *p[] = {j->kid};
    PGresult *r;
    int rc = ledger_retire_key(db, j->kid);
    bool found = rc != LEDGER_RETIRE_UNKNOWN, retired = rc == LEDGER_RETIRE_DONE;

    if (rc < 0)
        return rc;
    if (!found) {
        *status = 404;
        *body = idem_problem(PROB_NOT_FOUND, NULL, "no ledger key '%s'", j->kid);
        return DB_OK;
    }
    if (!retired) {
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, NULL, "ledger key '%s' is already retired", j->kid);
        return DB_OK;
    }
    if (!(r = db_exec(db, sql_keys_one, 1, p)))
        return db_last_status(db);
    *body = key_json(r, 0);
    *status = 200;
    PQclear(r);
    return DB_OK;
}

void h_ledger_key_retire(http_ctx *c)
{
    const char *kid = http_param(c, "kid");
    retire_job *j;

    if (!kid || strlen(kid) != 19 || strncmp(kid, "sk_", 3) != 0 ||
        strspn(kid + 3, "0123456789abcdef") != 16) {
        http_reply_problem(c, PROB_VALIDATION, "'kid' must be a ledger key id (sk_ and 16 hex)",
                           "kid");
        return;
    }
    if (http_body(c) && json_object_size(http_body(c)) != 0) {
        http_reply_problem(c, PROB_VALIDATION, "this request takes no body fields", NULL);
        return;
    }
    if (!(j = calloc(1, sizeof *j))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    snprintf(j->kid, sizeof j->kid, "%s", kid);
    idem_write_submit(c, op_key_retire, j, free);
}
