/*
 * Integration tests for the ledger's store (server/ledger_writer.c, ledger_copy.c,
 * ledger_maint.c, migrations 0004-0005) against a real PostgreSQL: one batch is
 * one database transaction whose ops fail independently; idempotent replays;
 * the append-only triggers; balances equal to the sum of their entries and
 * readable as of any past batch; holds captured to a provider with a fee; two
 * executors on one database keep every chain gap-free; the group-commit
 * writer groups ops and, when stopped, applies and answers every queued op.
 * Expected amounts are worked out by hand in the comments (micro-units:
 * 1 USD = 1 000 000).
 */
#include "accounts.h"
#include "assets.h"
#include "cli_ledger.h"
#include "db.h"
#include "http.h"
#include "ledger_svc.h"
#include "migrate.h"
#include "testdb.h"

#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USD(x) ((int64_t)(x)*1000000)

static char ci[1024];
static db_conn *db;
static ledger_svc *ls;
static char t1[48], t2[48], prov[48];
static const unsigned char secret[APIKEY_SECRET_LEN] = {9, 9, 9};

static void make_account(const char *name, const char *role, char *out)
{
    json_t *a = NULL;
    cr_assert_eq(accounts_create(db, secret, name, role, "test", &a), 1, "%s", db_last_message(db));
    snprintf(out, 48, "%s", json_string_value(json_object_get(a, "id")));
    json_decref(a);
}

static void setup(void)
{
    char err[512];
    signing_key k;

    cr_assert(sodium_init() >= 0);
    testdb_create(ci, sizeof ci);
    db = db_connect(ci, err, sizeof err);
    cr_assert(db, "%s", err);
    cr_assert_geq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0,
                  "%s", err);
    make_account("t1", "tenant", t1);
    make_account("t2", "tenant", t2);
    make_account("p", "provider", prov);
    crypto_sign_keypair(k.pk, k.sk);
    keyfile_kid(k.pk, k.kid);
    setenv("TALLY_LEDGER_PARTITIONS", "4", 1);
    ls = ledger_svc_new(ci, 30000, &k, err, sizeof err);
    cr_assert(ls, "%s", err);
}

static void teardown(void)
{
    ledger_svc_free(ls);
    db_close(db);
    testdb_drop(ci);
}

TestSuite(ledger_store, .init = setup, .fini = teardown, .timeout = 120);

static const char *q(const char *sql)
{
    const char *v = testdb_exec(ci, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return v;
}

static long long qll(const char *fmt, const char *arg)
{
    char sql[1024];
    snprintf(sql, sizeof sql, fmt, arg);
    return strtoll(q(sql), NULL, 10);
}

/* ---- op builders (caller "admin", role admin) ----------------------------------- */

static ledger_op *op_new(ledger_op_kind k, const char *idem)
{
    ledger_op *op = ledger_op_new(k);
    cr_assert(op);
    snprintf(op->caller, sizeof op->caller, "admin");
    op->caller_role = ROLE_ADMIN;
    if (idem) {
        snprintf(op->idem_key, sizeof op->idem_key, "%s", idem);
        snprintf(op->request_hash, sizeof op->request_hash, "h-%s", idem);
    }
    return op;
}

static ledger_op *deposit(const char *owner, int64_t amount)
{
    ledger_op *op = op_new(LOP_DEPOSIT, NULL);
    snprintf(op->owner, sizeof op->owner, "%s", owner);
    memcpy(op->currency, "USD", 4);
    op->amount = amount;
    return op;
}

static ledger_op *transfer(const char *from, const char *to, int64_t amount)
{
    ledger_op *op = op_new(LOP_TRANSFER, NULL);
    op->kind = LEDGER_KIND_ADJUSTMENT;
    op->n_entries = 2;
    snprintf(op->entries[0].account, sizeof op->entries[0].account, "%s", from);
    snprintf(op->entries[1].account, sizeof op->entries[1].account, "%s", to);
    op->entries[0].amount = amount;  /* debit: the payer's balance goes down */
    op->entries[1].amount = -amount; /* credit */
    return op;
}

static ledger_op *hold(const char *owner, int64_t amount)
{
    ledger_op *op = op_new(LOP_HOLD, NULL);
    snprintf(op->owner, sizeof op->owner, "%s", owner);
    memcpy(op->currency, "USD", 4);
    op->amount = amount;
    op->expires_us = ledger_now_us() + INT64_C(3600000000);
    return op;
}

static ledger_op *capture(const char *hold_id, int64_t amount, int64_t fee, bool final)
{
    ledger_op *op = op_new(LOP_CAPTURE, NULL);
    snprintf(op->hold_id, sizeof op->hold_id, "%s", hold_id);
    snprintf(op->payee, sizeof op->payee, "%s", prov);
    op->amount = amount;
    op->fee = fee;
    op->final = final;
    return op;
}

/* Run ops as one batch (asserting the batch itself commits), free nothing. */
static void run(ledger_op **ops, size_t n)
{
    int rc = ledger_run_ops(ls, db, ops, n);
    cr_assert_eq(rc, DB_OK, "batch failed (%d): %s", rc, db_last_message(db));
}

static void free_ops(ledger_op **ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ledger_op_free(ops[i]);
}

static const char *problem_type_of(const ledger_op *op)
{
    return json_string_value(json_object_get(op->body, "type"));
}

/* The wallet of tenant (created by a first deposit). */
static void wallet_of(const char *tenant, char *out)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT id FROM ledger_accounts WHERE owner_id = '%s' AND purpose = 'wallet'", tenant);
    snprintf(out, 48, "%s", q(sql));
}

static long long balance(const char *account)
{
    return qll("SELECT balance FROM ledger_accounts WHERE id = '%s'", account);
}

/* ---- tests ------------------------------------------------------------------------ */

Test(ledger_store, one_batch_is_one_transaction_and_failures_are_isolated)
{
    ledger_op *ops[7];
    char w1[48], w2[48];

    /* accounts exist before the batch so transfers can name them */
    ops[0] = deposit(t1, 1);
    ops[1] = deposit(t2, 1);
    run(ops, 2);
    wallet_of(t1, w1);
    wallet_of(t2, w2);
    free_ops(ops, 2);
    /* t1: 1 µ + 100 − 30 = 70.000001; t2: 1 µ + 30 − 10 (held) = 20.000001 */
    ops[0] = deposit(t1, USD(100));
    ops[1] = transfer(w1, w2, USD(30));  /* relies on ops[0] in the same batch */
    ops[2] = transfer(w1, w2, USD(500)); /* insufficient funds: fails alone */
    ops[3] = hold(t2, USD(10));
    ops[4] = transfer(w1, "la_01JBDHBTNEK1F51XYR0G6V2X6N", USD(1)); /* unknown account */
    ops[5] = deposit(t2, 0);                                        /* zero amount */
    ops[6] = transfer(w2, w1, USD(21)); /* 20.000001 left after the hold: refused */
    run(ops, 7);
    cr_assert_eq(ops[0]->status, 201, "%d", ops[0]->status);
    cr_assert_eq(ops[1]->status, 201, "%d", ops[1]->status);
    cr_assert_eq(ops[2]->status, 422);
    cr_assert_str_eq(problem_type_of(ops[2]), "https://tally.dev/problems/insufficient-funds");
    cr_assert_eq(ops[3]->status, 201, "%d", ops[3]->status);
    cr_assert_eq(ops[4]->status, 422);
    cr_assert_str_eq(problem_type_of(ops[4]), "https://tally.dev/problems/unknown-account");
    cr_assert(ops[5]->status >= 400 && ops[5]->status < 500, "%d", ops[5]->status);
    cr_assert_eq(ops[6]->status, 422);
    cr_assert_eq(balance(w1), USD(70) + 1);
    cr_assert_eq(balance(w2), USD(20) + 1);
    /* 2 + 3 transactions; the batch's three share one insertion time (one DB transaction) */
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_transactions"), "5");
    cr_assert_str_eq(q("SELECT count(DISTINCT inserted_us) FROM ledger_transactions"), "2");
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_holds WHERE state = 'open' AND amount = "
                       "10000000"),
                     "1");
    free_ops(ops, 7);
}

Test(ledger_store, idempotency_replays_success_and_permanent_failure)
{
    ledger_op *a = deposit(t1, USD(5)), *b, *c, *d, *e;

    snprintf(a->idem_key, sizeof a->idem_key, "k1");
    snprintf(a->request_hash, sizeof a->request_hash, "hash-1");
    run(&a, 1);
    cr_assert_eq(a->status, 201);
    cr_assert_not(a->replayed);
    /* same key, same request: the stored response, nothing new written */
    b = deposit(t1, USD(5));
    snprintf(b->idem_key, sizeof b->idem_key, "k1");
    snprintf(b->request_hash, sizeof b->request_hash, "hash-1");
    run(&b, 1);
    cr_assert_eq(b->status, 201);
    cr_assert(b->replayed);
    cr_assert(json_equal(a->body, b->body));
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_transactions"), "1");
    /* same key, another request */
    c = deposit(t1, USD(6));
    snprintf(c->idem_key, sizeof c->idem_key, "k1");
    snprintf(c->request_hash, sizeof c->request_hash, "hash-2");
    run(&c, 1);
    cr_assert_eq(c->status, 422);
    cr_assert_str_eq(problem_type_of(c), "https://tally.dev/problems/idempotency-key-reused");
    /* a permanent failure is stored and replayed even once funds arrive */
    {
        char w[48];
        wallet_of(t1, w);
        d = hold(t1, USD(50));
        snprintf(d->idem_key, sizeof d->idem_key, "k2");
        snprintf(d->request_hash, sizeof d->request_hash, "hash-3");
        run(&d, 1);
        cr_assert_eq(d->status, 422);
        e = deposit(t1, USD(100));
        run(&e, 1);
        ledger_op_free(e);
        e = hold(t1, USD(50));
        snprintf(e->idem_key, sizeof e->idem_key, "k2");
        snprintf(e->request_hash, sizeof e->request_hash, "hash-3");
        run(&e, 1);
        cr_assert_eq(e->status, 422);
        cr_assert(e->replayed);
        cr_assert_eq(balance(w), USD(105), "the replayed failure placed no hold");
    }
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_idempotency"), "2");
    free_ops((ledger_op *[]){a, b, c, d, e}, 5);
}

Test(ledger_store, append_only_tables_refuse_update_delete_and_truncate)
{
    ledger_op *op = deposit(t1, USD(3));
    static const char *const refused[] = {
        "UPDATE ledger_transactions SET memo = 'x'",
        "DELETE FROM ledger_transactions",
        "TRUNCATE ledger_transactions CASCADE",
        "UPDATE ledger_entries SET amount = amount * 2",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries",
        "DELETE FROM ledger_checkpoints",
        NULL,
    };

    run(&op, 1);
    ledger_op_free(op);
    for (const char *const *s = refused; *s; s++) {
        cr_assert_null(testdb_exec(ci, *s), "%s was allowed", *s);
        cr_assert(strstr(testdb_error(), "append-only"), "%s: %s", *s, testdb_error());
    }
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_transactions"), "1");
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_entries"), "2");
}

Test(ledger_store, balances_equal_entries_and_read_as_of_each_batch)
{
    ledger_op *ops[3];
    char w1[48], w2[48];
    long long t[4];
    /* wallet t1 after each batch: 10, 10 − 4 = 6, 6 + 7 − 1 = 12, 12 − 2.5 = 9.5 */
    static const long long expect[4] = {USD(10), USD(6), USD(12), USD(9) + 500000};

    ops[0] = deposit(t1, USD(10));
    ops[1] = deposit(t2, USD(10));
    run(ops, 2);
    free_ops(ops, 2);
    wallet_of(t1, w1);
    wallet_of(t2, w2);
    t[0] = qll("SELECT max(inserted_us) FROM ledger_transactions WHERE %s", "true");
    ops[0] = transfer(w1, w2, USD(4));
    run(ops, 1);
    free_ops(ops, 1);
    t[1] = qll("SELECT max(inserted_us) FROM ledger_transactions WHERE %s", "true");
    ops[0] = deposit(t1, USD(7));
    ops[1] = transfer(w1, w2, USD(1));
    run(ops, 2);
    free_ops(ops, 2);
    t[2] = qll("SELECT max(inserted_us) FROM ledger_transactions WHERE %s", "true");
    ops[0] = transfer(w1, w2, USD(2) + 500000);
    run(ops, 1);
    free_ops(ops, 1);
    t[3] = qll("SELECT max(inserted_us) FROM ledger_transactions WHERE %s", "true");
    for (int i = 0; i < 4; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT balance_after FROM ledger_entries WHERE account_id = '%s' AND shard = -1 "
                 "AND inserted_us <= %lld ORDER BY inserted_us DESC, account_version DESC LIMIT 1",
                 w1, t[i]);
        cr_assert_eq(strtoll(q(sql), NULL, 10), expect[i], "as of batch %d", i);
    }
    cr_assert_eq(balance(w1), expect[3]);
    /* every stored balance equals the sum of its entries (credit-normal: −sum) */
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_accounts a WHERE checked AND balance <> "
                       "coalesce((SELECT -sum(amount) FROM ledger_entries e WHERE e.account_id = "
                       "a.id), 0)"),
                     "0");
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_accounts a WHERE NOT checked AND (SELECT "
                       "coalesce(sum(balance), 0) FROM ledger_account_shards s WHERE s.account_id "
                       "= a.id) <> coalesce((SELECT CASE WHEN a.purpose = 'external' THEN "
                       "sum(amount) ELSE -sum(amount) END FROM ledger_entries e WHERE "
                       "e.account_id = a.id), 0)"),
                     "0");
    cr_assert_str_eq(q("SELECT coalesce(sum(amount), 0) FROM ledger_entries"), "0");
}

Test(ledger_store, capture_pays_the_provider_and_the_platform_fee_then_releases)
{
    ledger_op *ops[2];
    char hold_id[48], w1[48];

    ops[0] = deposit(t1, USD(100));
    ops[1] = hold(t1, USD(50));
    run(ops, 2);
    cr_assert_eq(ops[1]->status, 201);
    snprintf(hold_id, sizeof hold_id, "%s", json_string_value(json_object_get(ops[1]->body, "id")));
    free_ops(ops, 2);
    wallet_of(t1, w1);
    cr_assert_eq(balance(w1), USD(50));
    /* capture 20 with a 2 fee: provider 18, revenue 2, 30 stay held;
     * a second capture of 31 in the same batch exceeds what is left and fails alone */
    ops[0] = capture(hold_id, USD(20), USD(2), false);
    ops[1] = capture(hold_id, USD(31), 0, false);
    run(ops, 2);
    cr_assert_eq(ops[0]->status, 200, "%d", ops[0]->status);
    cr_assert_eq(ops[1]->status, 422);
    cr_assert_str_eq(problem_type_of(ops[1]), "https://tally.dev/problems/capture-exceeds-hold");
    free_ops(ops, 2);
    /* final capture of 5 (fee 0.5): provider 4.5 more, revenue 0.5 more, 25 back to the wallet */
    ops[0] = capture(hold_id, USD(5), 500000, true);
    run(ops, 1);
    cr_assert_eq(ops[0]->status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(ops[0]->body, "state")), "captured");
    free_ops(ops, 1);
    cr_assert_eq(balance(w1), USD(75));
    cr_assert_eq(qll("SELECT sum(s.balance) FROM ledger_account_shards s JOIN ledger_accounts a ON "
                     "a.id = s.account_id WHERE a.owner_id = '%s' AND a.purpose = 'payable'",
                     prov),
                 USD(22) + 500000);
    cr_assert_eq(qll("SELECT sum(s.balance) FROM ledger_account_shards s JOIN ledger_accounts a ON "
                     "a.id = s.account_id WHERE a.purpose = '%s'",
                     "revenue"),
                 USD(2) + 500000);
    cr_assert_str_eq(q("SELECT balance FROM ledger_accounts WHERE purpose = 'holds'"), "0");
}

/* ---- two executors on one database ------------------------------------------------- */

struct exec_args {
    char from[48], to[48];
    int failures;
};

static void *executor(void *arg)
{
    struct exec_args *a = arg;
    char err[512];
    db_conn *c = db_connect(ci, err, sizeof err);

    for (int round = 0; c && round < 10; round++) {
        ledger_op *ops[16];
        for (int i = 0; i < 16; i++)
            ops[i] = i % 2 ? transfer(a->from, a->to, 1000) : transfer(a->to, a->from, 1000);
        if (ledger_run_ops(ls, c, ops, 16) != DB_OK)
            a->failures++;
        for (int i = 0; i < 16; i++) {
            a->failures += ops[i]->status != 201;
            ledger_op_free(ops[i]);
        }
    }
    a->failures += !c;
    db_close(c);
    return NULL;
}

Test(ledger_store, two_executors_keep_every_chain_gap_free)
{
    ledger_op *ops[2] = {deposit(t1, USD(1)), deposit(t2, USD(1))};
    struct exec_args a[2];
    pthread_t th[2];

    run(ops, 2);
    free_ops(ops, 2);
    /* both move money between the same two wallets, in both directions */
    wallet_of(t1, a[0].from);
    wallet_of(t2, a[0].to);
    wallet_of(t2, a[1].from);
    wallet_of(t1, a[1].to);
    a[0].failures = a[1].failures = 0;
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, executor, &a[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(a[0].failures + a[1].failures, 0);
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_transactions"), "322");
    cr_assert_str_eq(q("SELECT count(*) FROM (SELECT partition FROM ledger_transactions GROUP BY "
                       "partition HAVING max(seq) <> count(*) OR min(seq) <> 1) x"),
                     "0");
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_heads h WHERE seq <> coalesce((SELECT "
                       "max(seq) FROM ledger_transactions t WHERE t.partition = h.partition), 0)"),
                     "0");
    cr_assert_eq(balance(a[0].from), USD(1));
    cr_assert_eq(balance(a[0].to), USD(1));
}

/* ---- the group-commit writer ----------------------------------------------------- */

static int fired;

static void on_done(ledger_op *op)
{
    fired += op->status == 201;
    ledger_op_free(op);
}

Test(ledger_store, writer_groups_ops_and_stop_applies_every_queued_op)
{
    struct event_base *base;
    ledger_op *op;
    char w1[48], w2[48];

    cr_assert_eq(evthread_use_pthreads(), 0);
    base = event_base_new();
    {
        ledger_op *d[2] = {deposit(t1, USD(10)), deposit(t2, USD(10))};
        run(d, 2);
        free_ops(d, 2);
    }
    wallet_of(t1, w1);
    wallet_of(t2, w2);
    cr_assert_eq(ledger_svc_start_writer(ls), 0);
    ls->batches = ls->batched_ops = 0;
    for (int i = 0; i < 50; i++) {
        op = transfer(i % 2 ? w1 : w2, i % 2 ? w2 : w1, 10000);
        op->done = on_done;
        cr_assert_eq(ledger_submit(ls, base, op), 0);
    }
    /* stop at once: every queued op is applied and its completion fired */
    ledger_svc_stop_writer(ls);
    event_base_loop(base, EVLOOP_NONBLOCK);
    cr_assert_eq(fired, 50, "%d of 50 answered", fired);
    cr_assert_eq(ls->batched_ops, 50);
    cr_assert_lt(ls->batches, 50, "ops were grouped into fewer commits");
    cr_assert_str_eq(q("SELECT count(*) FROM ledger_transactions WHERE kind = 'adjustment'"), "50");
    /* after the stop, a submission is refused cleanly (the op stays the caller's) */
    op = transfer(w1, w2, 1);
    cr_assert_eq(ledger_submit(ls, base, op), -1);
    ledger_op_free(op);
    event_base_free(base);
}

/* With the foreign keys gone (0005), an entry row without its transaction could
 * only come from outside the writer; verify must still catch it. */
Test(ledger_store, verify_catches_an_entry_without_its_transaction)
{
    ledger_op *op = deposit(t1, USD(2));
    char w[48], sql[512];

    run(&op, 1);
    ledger_op_free(op);
    wallet_of(t1, w);
    cr_assert_eq(cli_ledger_verify(ci, NULL), 0);
    snprintf(sql, sizeof sql,
             "INSERT INTO ledger_entries (txn_id, idx, account_id, currency, amount, shard, "
             "balance_before, balance_after, account_version, inserted_us) VALUES "
             "('txn_01JBDHBTNEK1F51XYR0G6V2X6N', 0, '%s', 'USD', 1, -1, 0, 0, 1, 0)",
             w);
    q(sql);
    cr_assert_eq(cli_ledger_verify(ci, NULL), 1, "an orphan entry went unnoticed");
}
