/*
 * End-to-end: a usage batch, its capture settlement, the ledger's capture and the
 * settlement's posted mark commit together (market_settle_run_in_txn), so an
 * acknowledged batch is always captured and a batch whose capture cannot be
 * written leaves nothing behind. A real tallyd and PostgreSQL; the ledger's
 * failure is a trigger that refuses the order's ledger transactions.
 */
#include "testdb.h"
#include "testhttp.h"
#include "testmarket.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *ten;
static tm_world world;
static char policy[48], offer[48];
static const tm_market mk = {ci, sizeof ci, &srv, &prov, &ten, &world, policy};

static const char *sql1(const char *sql)
{
    const char *v = testdb_exec(ci, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return v;
}

static void setup(void)
{
    tm_market_up(&mk, NULL);
    tm_publish(&world, "eu-west-1/acme/h100-pool", policy, ",\"residency\":[\"eu\",\"gdpr\"]",
               offer);
}

static void teardown(void)
{
    tm_market_down(&mk);
}

TestSuite(market_usage_commit, .init = setup, .fini = teardown, .timeout = 120);

#define item(rid, order, s, e) tm_item(&world, rid, order, s, e, NULL, 0)

/* A trigger that makes every ledger transaction of an order fail (or, with on = 0, none). */
static void ledger_refuses(const char *order, int on)
{
    char sql[600];

    if (!on) {
        sql1("DROP TRIGGER u1_refuse ON ledger_transactions; DROP FUNCTION u1_refuse()");
        return;
    }
    snprintf(sql, sizeof sql,
             "CREATE FUNCTION u1_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
             "IF NEW.order_id = '%s' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
             "RETURN NEW; END $$; CREATE TRIGGER u1_refuse BEFORE INSERT ON ledger_transactions "
             "FOR EACH ROW EXECUTE FUNCTION u1_refuse()",
             order);
    sql1(sql);
}

static const char *count_where(const char *table, const char *order)
{
    static char sql[200];

    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE order_id = '%s'", table, order);
    return sql1(sql);
}

Test(market_usage_commit, a_batch_commits_with_its_capture_or_not_at_all)
{
    char order[48], sql[300];
    long long t0;
    http_resp r;

    tm_deposit(&srv, ten, "100.00");
    snprintf(order, sizeof order, "%s", tm_quoted_order(&srv, ten, policy, offer, "order-1", &t0));
    /* the first batch: the provider's payable account is created (its own commit) */
    tm_report_ok(&world, json_pack("[o]", item("r1", order, t0, t0 + 10000)));

    /* the ledger cannot write the capture: the batch is refused and nothing of it stays */
    ledger_refuses(order, 1);
    r = tm_report(&srv,
                  json_pack("[o, o]", item("r2", order, t0 + 10000, t0 + 20000),
                            item("r3", order, t0 + 20000, t0 + 30000)),
                  tm_key(prov));
    cr_assert_geq(r.status, 500, "%d %s", r.status, r.body);
    http_resp_free(&r);
    cr_assert_str_eq(count_where("usage_records", order), "1", "the refused batch left records");
    cr_assert_str_eq(count_where("settlements", order), "2", "hold and the first capture only");
    snprintf(sql, sizeof sql, "SELECT captured_micros FROM orders WHERE id = '%s'", order);
    cr_assert_str_eq(sql1(sql), "80000", "the order's running total moved");

    /* the same batch again, the ledger working: accepted once, captured once, all posted */
    ledger_refuses(order, 0);
    tm_report_ok(&world, json_pack("[o, o]", item("r2", order, t0 + 10000, t0 + 20000),
                                   item("r3", order, t0 + 20000, t0 + 30000)));
    cr_assert_str_eq(count_where("usage_records", order), "3");
    cr_assert_str_eq(sql1(sql), "240000");
    cr_assert_str_eq(sql1("SELECT count(*) FROM settlements WHERE state <> 'posted'"), "0");
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM settlements s JOIN usage_records u ON u.settlement_id = s.id "
             "WHERE u.record_id = 'r2' AND s.created_at = s.updated_at AND s.txn_id IS NOT NULL");
    cr_assert_str_eq(sql1(sql), "1", "r2's capture was written and posted in its transaction");
    cr_assert_eq(tm_balance(ci, ten, "holds") + tm_balance(ci, ten, "wallet"),
                 -(100000000LL - 240000), "the tenant paid three records");
    cr_assert_eq(tm_balance(ci, prov, "payable"), -3 * 76000);
}

/* migrations/0016: signature and record hash stored as bytes read back as the hex that was
 * signed and hashed (a replay is still recognised by its hash); the checks refuse what they
 * refused as text. */
Test(market_usage_commit, the_narrow_row_reads_back_and_keeps_its_checks)
{
    char order[48], sig[129], path[160], sql[700];
    long long t0;
    json_t *it;
    http_resp r;

    tm_deposit(&srv, ten, "100.00");
    snprintf(order, sizeof order, "%s", tm_quoted_order(&srv, ten, policy, offer, "order-2", &t0));
    it = item("n1", order, t0, t0 + 10000);
    snprintf(sig, sizeof sig, "%s", tm_str(it, "signature"));
    tm_report_ok(&world, json_pack("[o]", it));
    r = tm_report(&srv, json_pack("[o]", item("n1", order, t0, t0 + 10000)), tm_key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(json_array_get(json_object_get(r.json, "results"), 0),
                                           "duplicate")),
              "%s", r.body);
    http_resp_free(&r);

    snprintf(path, sizeof path, "/v1/usage?order_id=%s", order);
    r = http_request(&srv, "GET", path, tm_key(prov), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(
        tm_str(json_object_get(json_array_get(json_object_get(r.json, "data"), 0), "signature"),
               "value"),
        sig, "%s", r.body);
    http_resp_free(&r);
    cr_assert_str_eq(sql1("SELECT octet_length(signature) || ' ' || octet_length(record_hash) "
                          "FROM usage_records WHERE record_id = 'n1'"),
                     "64 32");

    /* a copy of the record with one field broken at a time: each check still refuses it */
    {
        static const char *const broken[] = {"'2026-1x' AS period", "'2026-111' AS period",
                                             "substr(signature, 2)"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(sql, sizeof sql,
                     "INSERT INTO usage_records (id, provider_id, record_id, order_id, device_id, "
                     "count, start_at, end_at, start_ms, end_ms, mcu, device_ms, currency, "
                     "amount_micros, fee_micros, period, billed_period, lines, key_id, signature, "
                     "canonical, record_hash, batch_id, settlement_id) SELECT 'use_7' || "
                     "substr(id, 6), provider_id, 'n1-copy', order_id, device_id, count, start_at, "
                     "end_at, start_ms, end_ms, mcu, device_ms, currency, amount_micros, "
                     "fee_micros, %s, billed_period, lines, key_id, %s, canonical, record_hash, "
                     "batch_id, settlement_id FROM usage_records WHERE record_id = 'n1'",
                     i < 2 ? broken[i] : "period", i < 2 ? "signature" : broken[i]);
            cr_assert_null(testdb_exec(ci, sql), "broken copy %zu was stored", i);
            cr_assert(strstr(testdb_error(), "_check"), "%s", testdb_error());
        }
    }
}
