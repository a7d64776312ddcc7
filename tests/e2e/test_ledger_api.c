/*
 * End-to-end: the ledger over HTTP against a real tallyd — every endpoint,
 * bad inputs, idempotency (replay, mismatch, replayed permanent failures),
 * tenant scope, hold expiry and checkpoints; 16 concurrent clients on two
 * tallyd processes sharing one database with every request sent twice; a
 * kill -9 in the middle of the load; SIGTERM while ops wait in the writer;
 * credit limits; key retirement and rotation. `tallyd verify` must pass after
 * each.
 */
#include "testdb.h"
#include "testhttp.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static const char *const fast_env[] = {"TALLY_LEDGER_CHECKPOINT_S=1", "TALLY_LEDGER_PARTITIONS=8",
                                       NULL};

static void setup(void)
{
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, fast_env);
}

static void teardown(void)
{
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(ledger_api, .init = setup, .fini = teardown, .timeout = 90);

static const char *str(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

/* POST with an optional Idempotency-Key; returns the response (caller frees). */
static http_resp post(const tallyd_proc *p, const char *key, const char *path, const char *idem,
                      const char *body)
{
    char h[300];
    const char *hdrs[] = {h, NULL};
    snprintf(h, sizeof h, "Idempotency-Key: %s", idem ? idem : "");
    return http_request(p, "POST", path, key, idem ? hdrs : NULL, body, body ? strlen(body) : 0);
}

static const char *verify_cli(const tallyd_proc *p, int *rc)
{
    static char line[2048];
    const char *args[] = {"verify", NULL};
    char *out = NULL;
    *rc = tallyd_cli(p, &out, args);
    snprintf(line, sizeof line, "%s", out ? out : "");
    free(out);
    return line;
}

static const char *sql1(const char *sql)
{
    const char *v = testdb_exec(ci, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return v;
}

static void check_invariants(void)
{
    /* balances equal the sum of their entries (checked accounts are credit-normal) */
    cr_assert_str_eq(sql1("SELECT count(*) FROM ledger_accounts a WHERE checked AND balance <> "
                          "coalesce((SELECT -sum(amount) FROM ledger_entries e WHERE "
                          "e.account_id = a.id), 0)"),
                     "0");
    cr_assert_str_eq(sql1("SELECT count(*) FROM ledger_accounts a WHERE NOT checked AND "
                          "(SELECT coalesce(sum(balance), 0) FROM ledger_account_shards s WHERE "
                          "s.account_id = a.id) <> coalesce((SELECT CASE WHEN a.purpose = "
                          "'external' THEN sum(amount) ELSE -sum(amount) END FROM ledger_entries "
                          "e WHERE e.account_id = a.id), 0)"),
                     "0");
    cr_assert_str_eq(
        sql1("SELECT count(*) FROM ledger_accounts WHERE checked AND balance < -credit_limit"),
        "0");
    cr_assert_str_eq(sql1("SELECT count(*) FROM (SELECT currency FROM ledger_entries GROUP BY "
                          "currency HAVING sum(amount) <> 0) x"),
                     "0");
    /* the holds account holds exactly what open holds still reserve */
    cr_assert_str_eq(sql1("SELECT count(*) FROM ledger_accounts a WHERE purpose = 'holds' AND "
                          "balance <> coalesce((SELECT sum(amount - captured - released) FROM "
                          "ledger_holds h WHERE h.holds_id = a.id AND state = 'open'), 0)"),
                     "0");
    /* each idempotency key produced at most one transaction, and chains have no gaps */
    cr_assert_str_eq(sql1("SELECT count(*) FROM (SELECT 1 FROM ledger_transactions WHERE "
                          "idempotency_key IS NOT NULL GROUP BY caller_id, idempotency_key "
                          "HAVING count(*) > 1) x"),
                     "0");
    cr_assert_str_eq(sql1("SELECT count(*) FROM (SELECT partition FROM ledger_transactions GROUP "
                          "BY partition HAVING max(seq) <> count(*)) x"),
                     "0");
}

Test(ledger_api, deposit_hold_capture_void_reverse_and_reads)
{
    json_t *t = tallyd_account(&srv, "tenant-a", "tenant"),
           *t2 = tallyd_account(&srv, "t-b", "tenant");
    json_t *pr = tallyd_account(&srv, "prov", "provider");
    char body[512], path[256], wallet[64], hold[64], txn[64];
    http_resp r, r2;
    int rc;

    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"25.50\"}",
             str(t, "id"));
    r = post(&srv, srv.admin_key, "/v1/ledger/deposits", "dep-1", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(txn, sizeof txn, "%s", str(r.json, "id"));
    snprintf(wallet, sizeof wallet, "%s",
             str(json_array_get(json_object_get(r.json, "entries"), 0), "account"));
    cr_assert_str_eq(str(json_array_get(json_object_get(r.json, "entries"), 0), "amount"),
                     "-25.500000");
    /* the same key and body replays the first response, byte for byte */
    r2 = post(&srv, srv.admin_key, "/v1/ledger/deposits", "dep-1", body);
    cr_assert_eq(r2.status, 201);
    cr_assert_str_eq(r2.body, r.body);
    cr_assert_str_eq(http_header_value(&r2, "idempotent-replayed"), "true");
    http_resp_free(&r2);
    http_resp_free(&r);
    /* a different body under the same key is refused */
    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"1\"}",
             str(t, "id"));
    r = post(&srv, srv.admin_key, "/v1/ledger/deposits", "dep-1", body);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "idempotency-key-reused"));
    http_resp_free(&r);

    /* a tenant places its own hold; insufficient funds is a permanent, replayed failure */
    r = post(&srv, str(t, "api_key"), "/v1/ledger/holds", "h-big",
             "{\"currency\":\"USD\",\"amount\":\"100\",\"expires_in_s\":60}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "insufficient-funds"));
    http_resp_free(&r);
    r = post(&srv, str(t, "api_key"), "/v1/ledger/holds", "h-big",
             "{\"currency\":\"USD\",\"amount\":\"100\",\"expires_in_s\":60}");
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(http_header_value(&r, "idempotent-replayed"), "true");
    http_resp_free(&r);
    r = post(&srv, str(t, "api_key"), "/v1/ledger/holds", "h-1",
             "{\"currency\":\"USD\",\"amount\":\"10\",\"expires_in_s\":60,\"order_id\":\"ord_1\"}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(hold, sizeof hold, "%s", str(r.json, "id"));
    http_resp_free(&r);
    /* another tenant cannot see or void it */
    snprintf(path, sizeof path, "/v1/ledger/holds/%s/void", hold);
    r = post(&srv, str(t2, "api_key"), path, NULL, "{}");
    cr_assert_eq(r.status, 404, "%s", r.body);
    http_resp_free(&r);
    /* balance: posted 25.50, pending 10, available 15.50 */
    snprintf(path, sizeof path, "/v1/ledger/accounts/%s/balance", wallet);
    r = http_request(&srv, "GET", path, str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(r.json, "posted"), "25.500000");
    cr_assert_str_eq(str(r.json, "pending"), "10.000000");
    cr_assert_str_eq(str(r.json, "available"), "15.500000");
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, str(t2, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 404, "another tenant's balance is invisible");
    http_resp_free(&r);
    /* as_of before anything happened: zero */
    snprintf(path, sizeof path, "/v1/ledger/accounts/%s/balance?as_of=2000-01-01T00:00:00Z",
             wallet);
    r = http_request(&srv, "GET", path, srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(str(r.json, "posted"), "0.000000");
    http_resp_free(&r);

    /* capture: above the hold, bad fee, then partial, then final releases the rest */
    snprintf(path, sizeof path, "/v1/ledger/holds/%s/capture", hold);
    r = post(&srv, srv.admin_key, path, NULL, "{\"amount\":\"11\"}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "capture-exceeds-hold"));
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, path, NULL, "{\"amount\":\"0\"}");
    cr_assert_eq(r.status, 422);
    http_resp_free(&r);
    r = post(&srv, str(t, "api_key"), path, NULL, "{\"amount\":\"1\"}");
    cr_assert_eq(r.status, 403, "tenants do not capture");
    http_resp_free(&r);
    snprintf(body, sizeof body, "{\"amount\":\"4\",\"provider_id\":\"%s\",\"fee\":\"0.40\"}",
             str(pr, "id"));
    r = post(&srv, srv.admin_key, path, "cap-1", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(r.json, "remaining"), "6.000000");
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, path, NULL, "{\"amount\":\"1\",\"final\":true}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(r.json, "state"), "captured");
    cr_assert_str_eq(str(r.json, "released"), "5.000000");
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/ledger/holds/%s/void", hold);
    r = post(&srv, srv.admin_key, path, NULL, NULL);
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert(strstr(r.body, "hold-closed"));
    http_resp_free(&r);

    /* transfers: unbalanced, unknown account, currency mismatch, holds account, success */
    snprintf(body, sizeof body,
             "{\"entries\":[{\"account\":\"%s\",\"amount\":\"1\"},{\"account\":\"%s\","
             "\"amount\":\"-2\"}]}",
             wallet, wallet);
    r = post(&srv, srv.admin_key, "/v1/ledger/transfers", NULL, body);
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"entries\":[{\"account\":\"%s\",\"amount\":\"1\"},{\"account\":"
             "\"la_01HV6Z4ACX8N2Q3M5RG7TB9WKD\",\"amount\":\"-1\"}]}",
             wallet);
    r = post(&srv, srv.admin_key, "/v1/ledger/transfers", NULL, body);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "unknown-account"));
    http_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"entries\":[{\"account\":\"%s\",\"amount\":\"1\",\"currency\":\"EUR\"},"
             "{\"account\":\"%s\",\"amount\":\"-1\"}]}",
             wallet, wallet);
    r = post(&srv, srv.admin_key, "/v1/ledger/transfers", NULL, body);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "currency-mismatch"));
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, "/v1/ledger/transfers", NULL,
             "{\"entries\":[{\"account\":\"x\",\"amount\":1.5}]}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    r = post(&srv, str(t, "api_key"), "/v1/ledger/transfers", NULL, "{}");
    cr_assert_eq(r.status, 403);
    http_resp_free(&r);
    r = post(
        &srv, srv.admin_key, "/v1/ledger/deposits", NULL,
        "{\"tenant_id\":\"acc_01HV6Z4ACX8N2Q3M5RG7TB9WKD\",\"currency\":\"USD\",\"amount\":\"1\"}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "unknown-account"));
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, "/v1/ledger/deposits", NULL,
             "{\"tenant_id\":\"x\",\"currency\":\"usd\",\"amount\":\"-1\",\"extra\":1}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);

    /* reverse the deposit once; a second reversal conflicts; reversing a reversal too */
    snprintf(path, sizeof path, "/v1/ledger/transactions/%s/reverse", txn);
    r = post(&srv, srv.admin_key, path, "rev-1", "{\"memo\":\"refund\"}");
    cr_assert_eq(r.status, 422, "wallet no longer holds 25.50: %s", r.body);
    http_resp_free(&r);
    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"5\"}",
             str(t, "id"));
    r = post(&srv, srv.admin_key, "/v1/ledger/deposits", NULL, body);
    cr_assert_eq(r.status, 201);
    snprintf(txn, sizeof txn, "%s", str(r.json, "id"));
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/ledger/transactions/%s/reverse", txn);
    r = post(&srv, srv.admin_key, path, NULL, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(str(r.json, "reverses_id"), txn);
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, path, NULL, NULL);
    cr_assert_eq(r.status, 409, "%s", r.body);
    http_resp_free(&r);

    /* reads: list (scoped), get, keys, accounts */
    r = http_request(&srv, "GET", "/v1/ledger/transactions?limit=2", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2);
    cr_assert(json_is_true(json_object_get(r.json, "has_more")));
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/ledger/transactions?kind=hold", str(t2, "api_key"), NULL,
                     NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 0, "t2 sees nothing of t");
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/ledger/transactions?kind=bogus", srv.admin_key, NULL, NULL,
                     0);
    cr_assert_eq(r.status, 422);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/ledger/transactions/%s", txn);
    r = http_request(&srv, "GET", path, str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, str(t2, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/ledger/keys", str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/ledger/accounts", str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2, "%s", r.body);
    http_resp_free(&r);

    /* a checkpoint covers the deposit within a couple of seconds; then a proof exists */
    for (int i = 0; i < 40; i++) {
        snprintf(path, sizeof path, "/v1/ledger/transactions/%s/proof", txn);
        r = http_request(&srv, "GET", path, srv.admin_key, NULL, NULL, 0);
        if (r.status == 200)
            break;
        http_resp_free(&r);
        usleep(100000);
    }
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_object_get(json_object_get(r.json, "inclusion"), "path"));
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/ledger/checkpoints", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(json_array_size(json_object_get(r.json, "data")) >= 1);
    http_resp_free(&r);

    check_invariants();
    cr_assert_eq((verify_cli(&srv, &rc), rc), 0, "%s", verify_cli(&srv, &rc));
    json_decref(t);
    json_decref(t2);
    json_decref(pr);
}

Test(ledger_api, holds_expire_as_transactions)
{
    json_t *t = tallyd_account(&srv, "tenant-x", "tenant");
    char body[256];
    http_resp r;
    int rc;

    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"EUR\",\"amount\":\"3\"}",
             str(t, "id"));
    r = post(&srv, srv.admin_key, "/v1/ledger/deposits", NULL, body);
    cr_assert_eq(r.status, 201);
    http_resp_free(&r);
    r = post(&srv, str(t, "api_key"), "/v1/ledger/holds", NULL,
             "{\"currency\":\"EUR\",\"amount\":\"2\",\"expires_in_s\":1}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    for (int i = 0; i < 50 && strcmp(sql1("SELECT count(*) FROM ledger_transactions WHERE kind "
                                          "= 'expiry'"),
                                     "1") != 0;
         i++)
        usleep(100000);
    cr_assert_str_eq(sql1("SELECT state FROM ledger_holds"), "expired");
    check_invariants();
    cr_assert_eq((verify_cli(&srv, &rc), rc), 0, "%s", verify_cli(&srv, &rc));
    json_decref(t);
}

Test(ledger_api, append_only_is_enforced_and_verify_catches_tampering)
{
    json_t *t = tallyd_account(&srv, "tenant-y", "tenant");
    char body[256];
    http_resp r;
    int rc;
    const char *out;

    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"7\"}",
             str(t, "id"));
    r = post(&srv, srv.admin_key, "/v1/ledger/deposits", NULL, body);
    cr_assert_eq(r.status, 201);
    http_resp_free(&r);
    cr_assert_null(testdb_exec(ci, "UPDATE ledger_entries SET amount = amount + 1"));
    cr_assert_null(testdb_exec(ci, "DELETE FROM ledger_transactions"));
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    /* as a superuser, bypass the triggers and change an amount */
    cr_assert(testdb_exec(ci, "SET session_replication_role = replica; UPDATE ledger_entries SET "
                              "amount = amount - 1000000 WHERE idx = 1; SELECT 1"),
              "%s", testdb_error());
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "hash_mismatch"), "%s", out);
    cr_assert(strstr(out, "txn_"), "%s", out);
    json_decref(t);
}

/* SIGTERM p and wait for it, keeping its directory (keys, secret, log); the
 * exit status (0 = clean), or -1. */
static int term_and_wait(tallyd_proc *p)
{
    int status = 0;

    kill(p->pid, SIGTERM);
    if (waitpid(p->pid, &status, 0) != p->pid)
        return -1;
    p->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A deposit for tenant; returns its wallet id in out. */
static void deposit(const char *tenant, const char *amount, char *wallet_out)
{
    char body[256];
    http_resp r;

    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"%s\"}",
             tenant, amount);
    r = post(&srv, srv.admin_key, "/v1/ledger/deposits", NULL, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    if (wallet_out)
        snprintf(wallet_out, 64, "%s",
                 str(json_array_get(json_object_get(r.json, "entries"), 0), "account"));
    http_resp_free(&r);
}

/* An admin transfer of amount from wallet a to wallet b; returns the status. */
static long move(const char *a, const char *b, const char *amount)
{
    char body[300];
    http_resp r;
    long st;

    snprintf(body, sizeof body,
             "{\"entries\":[{\"account\":\"%s\",\"amount\":\"%s\"},{\"account\":\"%s\","
             "\"amount\":\"-%s\"}]}",
             a, amount, b, amount);
    r = post(&srv, srv.admin_key, "/v1/ledger/transfers", NULL, body);
    st = r.status;
    http_resp_free(&r);
    return st;
}

Test(ledger_api, credit_limit_lets_a_wallet_go_below_zero_and_no_further)
{
    json_t *t = tallyd_account(&srv, "lim-a", "tenant"),
           *t2 = tallyd_account(&srv, "lim-b", "tenant");
    json_t *fin = tallyd_account(&srv, "lim-fin", "finance");
    char wa[64], wb[64], path[200], holds[64];
    http_resp r, r2;

    deposit(str(t, "id"), "10", wa);
    deposit(str(t2, "id"), "1", wb);
    cr_assert_eq(move(wa, wb, "15"), 422, "no overdraft without a limit");
    snprintf(path, sizeof path, "/v1/ledger/accounts/%s/credit-limit", wa);
    /* bad inputs change nothing */
    r = post(&srv, str(fin, "api_key"), path, NULL, "{\"credit_limit\":\"-1\"}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(str(r.json, "field"), "credit_limit");
    http_resp_free(&r);
    r = post(&srv, str(fin, "api_key"), path, NULL, "{\"credit_limit\":5}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    r = post(&srv, str(fin, "api_key"), path, NULL, "{\"credit_limit\":\"5\",\"x\":1}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    r = post(&srv, str(t, "api_key"), path, NULL, "{\"credit_limit\":\"5\"}");
    cr_assert_eq(r.status, 403, "tenants do not set their own limit");
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, "/v1/ledger/accounts/la_01JBDHBTNEK1F51XYR0G6V2X6N/credit-limit",
             NULL, "{\"credit_limit\":\"5\"}");
    cr_assert_eq(r.status, 404, "%s", r.body);
    http_resp_free(&r);
    cr_assert_str_eq(sql1("SELECT count(*) FROM ledger_accounts WHERE credit_limit <> 0"), "0");
    /* a holds account has no limit */
    snprintf(holds, sizeof holds, "%s",
             sql1("SELECT id FROM ledger_accounts WHERE purpose = 'holds' LIMIT 1"));
    if (holds[0]) {
        char hp[200];
        snprintf(hp, sizeof hp, "/v1/ledger/accounts/%s/credit-limit", holds);
        r = post(&srv, srv.admin_key, hp, NULL, "{\"credit_limit\":\"5\"}");
        cr_assert_eq(r.status, 409, "%s", r.body);
        http_resp_free(&r);
    }
    /* finance sets 7.25: the wallet may now reach -7.25, not -7.26; replayed by key */
    r = post(&srv, str(fin, "api_key"), path, "lim-1", "{\"credit_limit\":\"7.25\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(r.json, "credit_limit"), "7.250000");
    cr_assert_str_eq(str(r.json, "purpose"), "wallet");
    r2 = post(&srv, str(fin, "api_key"), path, "lim-1", "{\"credit_limit\":\"7.25\"}");
    cr_assert_eq(r2.status, 200);
    cr_assert(json_equal(r2.json, r.json), "%s\n%s", r2.body, r.body);
    cr_assert_str_eq(http_header_value(&r2, "idempotent-replayed"), "true");
    http_resp_free(&r2);
    http_resp_free(&r);
    cr_assert_eq(move(wa, wb, "17.26"), 422, "beyond the limit");
    cr_assert_eq(move(wa, wb, "17.25"), 201, "down to the limit");
    cr_assert_str_eq(sql1("SELECT balance FROM ledger_accounts WHERE purpose = 'wallet' AND "
                          "balance < 0"),
                     "-7250000");
    /* a limit below the current overdraft is refused; credits land, then it may go */
    r = post(&srv, srv.admin_key, path, NULL, "{\"credit_limit\":\"7.24\"}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert(strstr(r.body, "-7.250000"), "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(move(wb, wa, "1"), 201);
    r = post(&srv, srv.admin_key, path, NULL, "{\"credit_limit\":\"6.25\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(move(wa, wb, "0.01"), 422);
    /* listing by account (index on entries): only the wallet's transactions, in id order */
    {
        char lp[200];
        json_t *data;
        snprintf(lp, sizeof lp, "/v1/ledger/transactions?account=%s&limit=2", wa);
        r = http_request(&srv, "GET", lp, srv.admin_key, NULL, NULL, 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        data = json_object_get(r.json, "data");
        cr_assert_eq(json_array_size(data), 2);
        cr_assert(strcmp(str(json_array_get(data, 0), "id"), str(json_array_get(data, 1), "id")) <
                  0);
        snprintf(lp, sizeof lp, "/v1/ledger/transactions?account=%s&after=%s", wa,
                 str(json_array_get(data, 1), "id"));
        http_resp_free(&r);
        r = http_request(&srv, "GET", lp, srv.admin_key, NULL, NULL, 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1,
                     "deposit, transfer out, transfer in: %s", r.body);
        http_resp_free(&r);
        snprintf(lp, sizeof lp, "/v1/ledger/transactions?account=%s", wa);
        r = http_request(&srv, "GET", lp, str(t2, "api_key"), NULL, NULL, 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        /* t2 sees only the two transfers that also touch its own wallet */
        cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2, "%s", r.body);
        http_resp_free(&r);
    }
    check_invariants();
    json_decref(t);
    json_decref(t2);
    json_decref(fin);
}

Test(ledger_api, retiring_a_key_stops_signing_and_old_signatures_still_verify)
{
    tallyd_proc old = srv;
    json_t *t = tallyd_account(&srv, "rot", "tenant");
    char kid[32], path[200], env_secret[600];
    const char *env2[] = {env_secret, "TALLY_LEDGER_CHECKPOINT_S=1", "TALLY_LEDGER_PARTITIONS=8",
                          NULL};
    const char *out;
    http_resp r;
    int rc;

    deposit(str(t, "id"), "5", NULL);
    r = http_request(&srv, "GET", "/v1/ledger/keys", str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1);
    cr_assert_str_eq(str(json_array_get(json_object_get(r.json, "data"), 0), "status"), "active");
    snprintf(kid, sizeof kid, "%s", str(json_array_get(json_object_get(r.json, "data"), 0), "kid"));
    http_resp_free(&r);
    /* bad requests */
    r = post(&srv, srv.admin_key, "/v1/ledger/keys/sk_nothex/retire", NULL, NULL);
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, "/v1/ledger/keys/sk_0000000000000000/retire", NULL, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/ledger/keys/%s/retire", kid);
    r = post(&srv, str(t, "api_key"), path, NULL, NULL);
    cr_assert_eq(r.status, 403, "%s", r.body);
    http_resp_free(&r);
    /* retire: the key is listed with its window closed */
    r = post(&srv, srv.admin_key, path, "ret-1", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(str(r.json, "status"), "retired");
    cr_assert(json_is_integer(json_object_get(r.json, "valid_until_us")));
    http_resp_free(&r);
    r = post(&srv, srv.admin_key, path, NULL, NULL);
    cr_assert_eq(r.status, 409, "already retired: %s", r.body);
    http_resp_free(&r);
    /* this process may no longer sign: writes are refused as unavailable, nothing stored */
    {
        char body[200];
        snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"1\"}",
                 str(t, "id"));
        r = post(&srv, srv.admin_key, "/v1/ledger/deposits", "after-retire", body);
        cr_assert_eq(r.status, 503, "%s", r.body);
        http_resp_free(&r);
    }
    cr_assert_str_eq(sql1("SELECT count(*) FROM ledger_transactions WHERE kid <> '' AND "
                          "inserted_us >= (SELECT valid_until FROM ledger_keys WHERE valid_until "
                          "IS NOT NULL)"),
                     "0");
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    /* rotation: a process with a new key signs again; both windows verify */
    cr_assert_eq(term_and_wait(&srv), 0, "tallyd did not exit cleanly on SIGTERM");
    snprintf(env_secret, sizeof env_secret, "TALLY_KEY_HASH_SECRET=%s/hash.secret", old.dir);
    tallyd_start(&srv, ci, env2);
    snprintf(srv.admin_key, sizeof srv.admin_key, "%s", old.admin_key);
    {
        char body[200];
        snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"1\"}",
                 str(t, "id"));
        r = post(&srv, srv.admin_key, "/v1/ledger/deposits", "after-retire", body);
        cr_assert_eq(r.status, 201, "the transient 503 was not stored: %s", r.body);
        cr_assert_str_neq(str(r.json, "kid"), kid);
        http_resp_free(&r);
    }
    cr_assert_str_eq(sql1("SELECT count(*) FROM ledger_keys"), "2");
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", old.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", old.dir);
    }
    json_decref(t);
}

/* ---- concurrency -------------------------------------------------------------------- */

#define CLIENTS 16
#define OPS 30
#define TENANTS 4

struct load {
    const tallyd_proc *procs[2];
    int nprocs;
    const char *admin_key;
    char tenants[TENANTS][48];
    char wallets[TENANTS][48];
    int failures;
    char failure[512];
    int stop_on_error; /* crash test: connection errors end the client quietly */
    volatile int halt;
    int victim_status;
    pthread_mutex_t mu;
    char acked[CLIENTS * OPS][48]; /* crash test: acknowledged txn ids */
    int nacked;
};

struct client {
    struct load *L;
    int index;
    CURL *curl;
    char holds[OPS][48];
    int nholds;
};

static size_t sink(char *d, size_t s, size_t n, void *arg)
{
    fwrite(d, s, n, arg);
    return s * n;
}

/* One POST; status (0 on a transport error), body into *out (malloc'd). */
static long cpost(struct client *c, const tallyd_proc *p, const char *path, const char *key,
                  const char *body, char **out)
{
    char url[256], auth[128], idem[128];
    struct curl_slist *h = NULL;
    size_t len = 0;
    FILE *f = open_memstream(out, &len);
    long status = 0;

    snprintf(url, sizeof url, "%s%s", p->base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->L->admin_key);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", key);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, idem);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform(c->curl) == CURLE_OK)
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    fclose(f);
    curl_slist_free_all(h);
    return status;
}

static void client_fail(struct load *L, const char *fmt, const char *a, const char *b)
{
    pthread_mutex_lock(&L->mu);
    if (!L->failures++)
        snprintf(L->failure, sizeof L->failure, fmt, a, b);
    pthread_mutex_unlock(&L->mu);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    struct load *L = c->L;
    unsigned seed = (unsigned)c->index * 7919u + 1;

    for (int i = 0; i < OPS && !L->halt; i++) {
        const tallyd_proc *p = L->procs[(c->index + i) % L->nprocs];
        char key[64], body[512], path[128], *b1 = NULL, *b2 = NULL;
        int kind = rand_r(&seed) % 6, tn = rand_r(&seed) % TENANTS, tn2 = (tn + 1) % TENANTS;
        long s1, s2;
        snprintf(key, sizeof key, "c%d-op%d", c->index, i);
        if ((kind == 3 || kind == 4) && c->nholds == 0)
            kind = 1;
        switch (kind) {
        case 0:
            snprintf(path, sizeof path, "/v1/ledger/deposits");
            snprintf(body, sizeof body,
                     "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"%d.25\"}",
                     L->tenants[tn], 1 + rand_r(&seed) % 20);
            break;
        case 1:
        case 2:
            snprintf(path, sizeof path, "/v1/ledger/holds");
            snprintf(body, sizeof body,
                     "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"%d\","
                     "\"expires_in_s\":%d}",
                     L->tenants[tn], 1 + rand_r(&seed) % 15, kind == 2 ? 1 : 60);
            break;
        case 3:
            snprintf(path, sizeof path, "/v1/ledger/holds/%s/capture",
                     c->holds[rand_r(&seed) % c->nholds]);
            snprintf(body, sizeof body, "{\"amount\":\"0.%02d\",\"final\":%s}",
                     1 + rand_r(&seed) % 99, rand_r(&seed) % 2 ? "true" : "false");
            break;
        case 4:
            snprintf(path, sizeof path, "/v1/ledger/holds/%s/void",
                     c->holds[rand_r(&seed) % c->nholds]);
            snprintf(body, sizeof body, "{}");
            break;
        default:
            snprintf(path, sizeof path, "/v1/ledger/transfers");
            snprintf(body, sizeof body,
                     "{\"entries\":[{\"account\":\"%s\",\"amount\":\"%d.5\"},{\"account\":\"%s\","
                     "\"amount\":\"-%d.5\"}]}",
                     L->wallets[tn], rand_r(&seed) % 10, L->wallets[tn2], 0);
            {
                int x = rand_r(&seed) % 10;
                snprintf(body, sizeof body,
                         "{\"entries\":[{\"account\":\"%s\",\"amount\":\"%d.5\"},{\"account\":"
                         "\"%s\",\"amount\":\"-%d.5\"}]}",
                         L->wallets[tn], x, L->wallets[tn2], x);
            }
        }
        s1 = cpost(c, p, path, key, body, &b1);
        if (L->stop_on_error && (s1 == 0 || s1 >= 500)) {
            free(b1);
            break;
        }
        s2 = cpost(c, L->procs[(c->index + i + 1) % L->nprocs], path, key, body, &b2);
        if (L->stop_on_error && s1 >= 200 && s1 < 300) {
            json_t *j = json_loads(b1, 0, NULL);
            json_t *tx = json_object_get(j, "transaction");
            const char *id = json_string_value(json_object_get(tx ? tx : j, "id"));
            pthread_mutex_lock(&L->mu);
            if (id && L->nacked < CLIENTS * OPS)
                snprintf(L->acked[L->nacked++], 48, "%s", id);
            pthread_mutex_unlock(&L->mu);
            json_decref(j);
        }
        if (!L->stop_on_error) {
            if (s1 == 0 || s1 >= 500 || !(s1 == 200 || s1 == 201 || s1 == 409 || s1 == 422))
                client_fail(L, "unexpected status: %s -> %s", path, b1 ? b1 : "");
            else if (s2 != s1 || strcmp(b1, b2) != 0)
                client_fail(L, "retry differs: %s\n%s", b1, b2 ? b2 : "");
        }
        if ((kind == 1 || kind == 2) && s1 == 201 && c->nholds < OPS) {
            json_t *j = json_loads(b1, 0, NULL);
            snprintf(c->holds[c->nholds++], 48, "%s", str(j, "id"));
            json_decref(j);
        }
        free(b1);
        free(b2);
    }
    return NULL;
}

static void load_prepare(struct load *L, const tallyd_proc *p)
{
    memset(L, 0, sizeof *L);
    pthread_mutex_init(&L->mu, NULL);
    L->admin_key = p->admin_key;
    for (int i = 0; i < TENANTS; i++) {
        char name[32], body[256];
        json_t *t;
        http_resp r;
        snprintf(name, sizeof name, "load-%d", i);
        t = tallyd_account(p, name, "tenant");
        snprintf(L->tenants[i], 48, "%s", str(t, "id"));
        snprintf(body, sizeof body,
                 "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"100\"}", L->tenants[i]);
        r = post(p, p->admin_key, "/v1/ledger/deposits", NULL, body);
        cr_assert_eq(r.status, 201, "%s", r.body);
        snprintf(L->wallets[i], 48, "%s",
                 str(json_array_get(json_object_get(r.json, "entries"), 0), "account"));
        http_resp_free(&r);
        json_decref(t);
    }
}

/* Run the clients; with a victim, send it sig after kill_after µs and wait for
 * it (its exit status goes to L->victim_status). */
static void load_run_sig(struct load *L, useconds_t kill_after, tallyd_proc *victim, int sig)
{
    pthread_t th[CLIENTS];
    struct client cl[CLIENTS];

    for (int i = 0; i < CLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].L = L;
        cl[i].index = i;
        cl[i].curl = curl_easy_init();
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    if (victim) {
        usleep(kill_after);
        kill(victim->pid, sig);
        waitpid(victim->pid, &L->victim_status, 0);
        victim->pid = 0; /* waited for here (SIGKILL: it did not exit cleanly, on purpose) */
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        curl_easy_cleanup(cl[i].curl);
    }
}

static void load_run(struct load *L, useconds_t kill_after, tallyd_proc *victim)
{
    load_run_sig(L, kill_after, victim, SIGKILL);
}

Test(ledger_api, sixteen_clients_on_two_processes_every_request_twice, .timeout = 120)
{
    tallyd_proc second;
    struct load *L = calloc(1, sizeof *L);
    char env_secret[600];
    const char *env2[] = {env_secret, "TALLY_LEDGER_CHECKPOINT_S=1", "TALLY_LEDGER_PARTITIONS=8",
                          NULL};
    int rc;
    const char *out;

    snprintf(env_secret, sizeof env_secret, "TALLY_KEY_HASH_SECRET=%s/hash.secret", srv.dir);
    tallyd_start(&second, ci, env2);
    load_prepare(L, &srv);
    L->procs[0] = &srv;
    L->procs[1] = &second;
    L->nprocs = 2;
    load_run(L, 0, NULL);
    tallyd_stop(&second);
    cr_assert_eq(L->failures, 0, "%d failures; first: %s", L->failures, L->failure);
    /* each key produced exactly one transaction: count keys with a stored transaction */
    cr_assert_str_eq(sql1("SELECT count(*) FROM ledger_idempotency i WHERE txn_id IS NOT NULL AND "
                          "(SELECT count(*) FROM ledger_transactions t WHERE t.caller_id = "
                          "i.caller_id AND t.idempotency_key = i.key) <> 1"),
                     "0");
    cr_assert_str_eq(sql1("SELECT count(*) >= 2 FROM ledger_keys"), "t");
    check_invariants();
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    free(L);
}

/* Every transaction a client saw acknowledged is in the database, once. */
static void check_acked(const struct load *L)
{
    static char list[CLIENTS * OPS * 40 + 64], sql[sizeof list + 200];
    size_t len = 0;

    len += (size_t)snprintf(list + len, sizeof list - len, "{");
    for (int i = 0; i < L->nacked; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? "," : "", L->acked[i]);
    snprintf(list + len, sizeof list - len, "}");
    snprintf(sql, sizeof sql,
             "SELECT count(*) = %d FROM ledger_transactions WHERE id = ANY('%s'::text[])",
             L->nacked, list);
    cr_assert_str_eq(sql1(sql), "t", "an acknowledged transaction is missing");
}

/* SIGTERM while every client has a request waiting in the ledger writer (a
 * 100 ms batch window, so ops are nearly always queued): tallyd must apply and answer
 * them, or drop the connection only after applying them, and exit cleanly;
 * everything acknowledged is durable and a replay of every key afterwards is
 * consistent. */
Test(ledger_api, sigterm_with_ops_queued_in_the_writer, .timeout = 120)
{
    struct load *L = calloc(1, sizeof *L);
    tallyd_proc slow;
    char env_secret[600], *log;
    const char *env_slow[] = {env_secret, "TALLY_LEDGER_BATCH_WAIT_US=100000",
                              "TALLY_LEDGER_BATCH_MAX=1024", "TALLY_LEDGER_PARTITIONS=8", NULL};
    int rc;
    const char *out;

    snprintf(env_secret, sizeof env_secret, "TALLY_KEY_HASH_SECRET=%s/hash.secret", srv.dir);
    tallyd_start(&slow, ci, env_slow);
    load_prepare(L, &srv); /* srv's admin key: both processes share its hash secret */
    L->procs[0] = &slow;
    L->nprocs = 1;
    L->stop_on_error = 1;
    load_run_sig(L, 700000, &slow, SIGTERM);
    log = tallyd_log(&slow);
    if (getenv("TALLY_TEST_SHOW_LOG"))
        fprintf(stderr, "---- tallyd log ----\n%s----\n", log);
    cr_assert(!strstr(log, "ERROR: AddressSanitizer") && !strstr(log, "runtime error:"),
              "sanitizer report in the log:\n%s", log);
    cr_assert(WIFEXITED(L->victim_status) && WEXITSTATUS(L->victim_status) == 0,
              "tallyd did not exit cleanly on SIGTERM (status %d)\n%s", L->victim_status, log);
    free(log);
    cr_assert(L->nacked > 0, "no transaction was acknowledged before SIGTERM");
    check_acked(L);
    check_invariants();
    /* the same keys again on the other process: applied ones replay, the rest apply once */
    L->procs[0] = &srv;
    L->stop_on_error = 0;
    L->nacked = 0;
    load_run(L, 0, NULL);
    cr_assert_eq(L->failures, 0, "%d failures; first: %s", L->failures, L->failure);
    check_invariants();
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", slow.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", slow.dir);
    }
    free(L);
}

Test(ledger_api, kill_9_mid_load_loses_no_acknowledged_transaction, .timeout = 120)
{
    struct load *L = calloc(1, sizeof *L);
    tallyd_proc crashed = srv;
    char env_secret[600];
    const char *env2[] = {env_secret, "TALLY_LEDGER_CHECKPOINT_S=1", "TALLY_LEDGER_PARTITIONS=8",
                          NULL};
    int rc;
    const char *out;

    load_prepare(L, &srv);
    L->procs[0] = &srv;
    L->nprocs = 1;
    L->stop_on_error = 1;
    load_run(L, 400000, &srv);
    cr_assert(L->nacked > 0, "no transaction was acknowledged before the kill");
    /* restart on the same database, keeping the API-key secret of the first process */
    snprintf(env_secret, sizeof env_secret, "TALLY_KEY_HASH_SECRET=%s/hash.secret", crashed.dir);
    tallyd_start(&srv, ci, env2);
    snprintf(srv.admin_key, sizeof srv.admin_key, "%s", crashed.admin_key);
    check_acked(L);
    check_invariants();
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    /* the load again with the same keys: acknowledged ones replay, the rest apply once */
    L->stop_on_error = 0;
    L->halt = 0;
    L->nacked = 0;
    load_run(L, 0, NULL);
    cr_assert_eq(L->failures, 0, "%d failures; first: %s", L->failures, L->failure);
    check_invariants();
    out = verify_cli(&srv, &rc);
    cr_assert_eq(rc, 0, "%s", out);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", crashed.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", crashed.dir);
    }
    free(L);
}
