/*
 * End-to-end: the marketplace's whole life against a real tallyd and PostgreSQL.
 * Admin makes the accounts; the provider registers a key, prices and publishes
 * an offer (signed challenge); the tenant is credited, quotes, orders (price
 * locked by the quote, hold placed); the provider reports usage in batches —
 * some late, one duplicated, one overlapping, one badly signed, one reversed —
 * then completes the order; the ledger, the order, the usage records and the
 * estimator agree to the micro-unit, and `tallyd verify` passes.
 *
 * Hand-checked money: the policy charges 3.60 USD per device-hour, so one
 * device-second costs 0.001 USD; every record is 8 devices x 10 s = 80
 * device-seconds = 0.080000 USD; the platform takes 5 % from the provider
 * (0.004000 per record), so the provider nets 0.076000 per record.
 */
#include "testdb.h"
#include "testhttp.h"
#include "testmarket.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *prov2, *ten, *ten2;
static tm_world world;
static char policy[48], offer[48];
static const tm_market mk = {ci, sizeof ci, &srv, &prov, &ten, &world, policy};

#define key(a) tm_key(a)
#define sv(o, k) tm_str(o, k)
#define post(path, k, idem, body) tm_post(&srv, path, k, idem, body)
#define now_ms() tm_now_ms()
#define report(items, k) tm_report(&srv, items, k)
#define result(r, i, field) tm_result(r, i, field)
#define balance(who, purpose) tm_balance(ci, who, purpose)
#define place_order(idem, start) tm_quoted_order(&srv, ten, policy, offer, idem, start)

static http_resp get(const char *path, const char *k)
{
    return http_request(&srv, "GET", path, k, NULL, NULL, 0);
}

static const char *sql1(const char *sql)
{
    const char *v = testdb_exec(ci, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return v;
}

static void setup(void)
{
    tm_market_up(&mk, NULL);
    prov2 = tallyd_account(&srv, "other-gpu", "provider");
    ten2 = tallyd_account(&srv, "tenant-b", "tenant");
    tm_publish(&world, "eu-west-1/acme/h100-pool", policy, ",\"residency\":[\"eu\",\"gdpr\"]",
               offer);
}

static void teardown(void)
{
    json_decref(prov2);
    json_decref(ten2);
    tm_market_down(&mk);
}

TestSuite(market_api, .init = setup, .fini = teardown, .timeout = 120);

#define item(rid, order, s, e, rev, bad) tm_item(&world, rid, order, s, e, rev, bad)

Test(market_api, whole_life_agrees_to_the_micro_unit)
{
    long long t0, hold;
    char path[128];
    const char *order;
    http_resp r;
    json_t *b;

    tm_deposit(&srv, ten, "100.00");
    order = place_order("order-1", &t0);
    hold = atoll(sql1("SELECT hold_micros FROM orders"));
    cr_assert_gt(hold, 480000, "hold = p90 price plus margin, above the p50 price");
    cr_assert_eq(balance(ten, "holds"), -hold, "the hold reserves its amount");

    /* batch 1: two records */
    b = json_pack("[o, o]", item("r1", order, t0, t0 + 10000, NULL, 0),
                  item("r2", order, t0 + 10000, t0 + 20000, NULL, 0));
    r = report(b, key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(result(&r, 0, "status"), "accepted", "%s", r.body);
    cr_assert_str_eq(result(&r, 0, "amount"), "0.080000", "%s", r.body);
    cr_assert_str_eq(result(&r, 1, "platform_fee"), "0.004000", "%s", r.body);
    http_resp_free(&r);

    /* batch 2: a duplicate, a late record, an overlap, a bad signature */
    b = json_pack("[o, o, o, o]", item("r2", order, t0 + 10000, t0 + 20000, NULL, 0),
                  item("r3", order, t0 + 20000, t0 + 30000, NULL, 0),
                  item("r-overlap", order, t0 + 5000, t0 + 15000, NULL, 0),
                  item("r-bad", order, t0 + 40000, t0 + 45000, NULL, 1));
    r = report(b, key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(result(&r, 0, "status"), "accepted", "%s", r.body);
    cr_assert(json_is_true(
        json_object_get(json_array_get(json_object_get(r.json, "results"), 0), "duplicate")));
    cr_assert_str_eq(result(&r, 1, "status"), "accepted", "%s", r.body);
    cr_assert_str_eq(result(&r, 2, "reason"), "overlap", "%s", r.body);
    cr_assert_str_eq(result(&r, 3, "reason"), "bad_signature", "%s", r.body);
    http_resp_free(&r);

    /* batch 3: one more record (its signature in upper-case hex) and the reversal of r3 */
    {
        json_t *r4 = item("r4", order, t0 + 30000, t0 + 40000, NULL, 0);
        char up[129];
        snprintf(up, sizeof up, "%s", sv(r4, "signature"));
        for (char *p = up; *p; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 'a' + 'A');
        json_object_set_new(r4, "signature", json_string(up));
        b = json_pack("[o, o]", r4, item("r3-rev", order, t0 + 20000, t0 + 30000, "r3", 0));
    }
    r = report(b, key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(result(&r, 0, "status"), "accepted", "%s", r.body);
    cr_assert_str_eq(result(&r, 1, "status"), "accepted", "%s", r.body);
    cr_assert_str_eq(result(&r, 1, "amount"), "-0.080000", "%s", r.body);
    http_resp_free(&r);

    /* another provider cannot report on this order */
    b = json_pack("[o]", item("x1", order, t0 + 40000, t0 + 41000, NULL, 0));
    r = report(b, key(prov2));
    cr_assert_str_eq(result(&r, 0, "status"), "rejected", "%s", r.body);
    http_resp_free(&r);
    {
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM usage_records WHERE provider_id = '%s'",
                 sv(prov2, "id"));
        cr_assert_str_eq(sql1(sql), "0");
    }

    /* complete: the rest of the hold is released; the estimator learns */
    snprintf(path, sizeof path, "/v1/orders/%s/complete", order);
    r = post(path, key(prov), NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "state"), "completed", "%s", r.body);
    /* r1 + r2 + r3 + r4 - r3 = 3 records */
    cr_assert_str_eq(sv(r.json, "captured"), "0.320000", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "refunded"), "0.080000", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "charged"), "0.240000", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "platform_fee"), "0.012000", "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 4, "%s", r.body);
    http_resp_free(&r);

    /* the ledger agrees: wallet 100 - 0.24, nothing held, provider 3 x 0.076, platform 3 x 0.004 */
    cr_assert_eq(balance(ten, "holds"), 0);
    cr_assert_eq(balance(ten, "wallet"), -(100000000LL - 240000), "wallet %lld",
                 balance(ten, "wallet"));
    cr_assert_eq(balance(prov, "payable"), -228000);
    cr_assert_eq(balance(NULL, "revenue"), -12000);
    cr_assert_str_eq(sql1("SELECT count(*) FROM settlements WHERE state <> 'posted'"), "0");
    cr_assert_str_eq(sql1("SELECT sum(amount_micros) FROM usage_records"), "240000");
    cr_assert_str_neq(sql1("SELECT count(*) FROM estimate_entries"), "0",
                      "completion taught the estimator");
    {
        const char *args[] = {"verify", NULL};
        char *out = NULL;
        cr_assert_eq(tallyd_cli(&srv, &out, args), 0, "%s", out ? out : "");
        free(out);
    }

    /* every accepted record keeps its line items: usage 0.080000, the provider's 5 % fee */
    snprintf(path, sizeof path, "/v1/usage?order_id=%s&limit=1", order);
    r = get(path, key(ten));
    cr_assert_eq(r.status, 200, "%s", r.body);
    {
        json_t *lines =
            json_object_get(json_array_get(json_object_get(r.json, "data"), 0), "lines");
        cr_assert_eq(json_array_size(lines), 2, "%s", r.body);
        cr_assert_str_eq(sv(json_array_get(lines, 0), "kind"), "usage", "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(lines, 0), "amount")),
                     80000);
        cr_assert_str_eq(sv(json_array_get(lines, 1), "payer"), "provider", "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(lines, 1), "amount")), 4000);
    }
    http_resp_free(&r);

    /* completed: no more usage */
    b = json_pack("[o]", item("r9", order, t0 + 45000, t0 + 46000, NULL, 0));
    r = report(b, key(prov));
    cr_assert_str_eq(result(&r, 0, "reason"), "order_closed", "%s", r.body);
    http_resp_free(&r);
}

Test(market_api, isolation_funds_and_feasibility)
{
    long long t0;
    char path[128], body[512];
    const char *order;
    http_resp r;

    tm_deposit(&srv, ten, "50.00");
    order = place_order("order-iso", &t0);
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    r = get(path, key(ten2));
    cr_assert_eq(r.status, 404, "another tenant cannot read it: %s", r.body);
    http_resp_free(&r);
    r = get(path, key(prov));
    cr_assert_eq(r.status, 200, "its provider can: %s", r.body);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", order);
    r = post(path, key(ten2), NULL, NULL);
    cr_assert_eq(r.status, 404, "another tenant cannot cancel it: %s", r.body);
    http_resp_free(&r);
    r = post(path, key(ten), NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "state"), "cancelled");
    http_resp_free(&r);
    r = post(path, key(ten), NULL, NULL);
    cr_assert_eq(r.status, 409, "cancelled twice: %s", r.body);
    http_resp_free(&r);
    cr_assert_eq(balance(ten, "holds"), 0, "cancel released the hold");
    cr_assert_eq(balance(ten, "wallet"), -50000000LL);

    /* tenant-b has no money: 402 and nothing held */
    r = post("/v1/orders", key(ten2), NULL,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
             "\"wall_ms\":3600000}");
    cr_assert_eq(r.status, 402, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "type"), "https://tally.dev/problems/insufficient-funds", "%s",
                     r.body);
    cr_assert(sv(r.json, "detail"), "the ledger's reason is passed on: %s", r.body);
    http_resp_free(&r);
    {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM ledger_holds WHERE owner_id = '%s'",
                 sv(ten2, "id"));
        cr_assert_str_eq(sql1(sql), "0");
    }

    /* no feasible offer: every offer is explained */
    r = post("/v1/orders", key(ten), NULL,
             "{\"count\":8,\"profile\":\"llm-train\",\"work_mcu\":1000000,"
             "\"constraints\":{\"regions\":[\"us-east-1\"]}}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert_str_eq(
        sv(json_array_get(json_object_get(json_object_get(r.json, "placement"), "rejected"), 0),
           "offer_id"),
        offer, "%s", r.body);
    http_resp_free(&r);

    /* too many devices for the offer's capacity (16) */
    snprintf(body, sizeof body,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":17,\"profile\":\"llm-train\","
             "\"wall_ms\":60000}");
    r = post("/v1/placements", key(ten), NULL, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "ranked")), 0, "%s", r.body);
    http_resp_free(&r);

    /* an expired quote is refused when an order names it (time moved on by hand) */
    {
        char sql[512];
        long long work;
        snprintf(body, sizeof body,
                 "{\"policy_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"count\":8,"
                 "\"profile\":\"llm-train\",\"wall_ms\":60000}",
                 policy);
        r = post("/v1/quotes", key(ten), NULL, body);
        cr_assert_eq(r.status, 201, "%s", r.body);
        work = json_integer_value(json_object_get(json_object_get(r.json, "workload"), "mcu"));
        snprintf(sql, sizeof sql,
                 "ALTER TABLE quotes DISABLE TRIGGER quotes_append_only; UPDATE quotes SET "
                 "expires_at = now() - interval '1 second' WHERE id = '%s'; ALTER TABLE quotes "
                 "ENABLE TRIGGER quotes_append_only; SELECT 1",
                 sv(r.json, "id"));
        sql1(sql);
        snprintf(body, sizeof body,
                 "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
                 "\"work_mcu\":%lld,\"quote_id\":\"%s\"}",
                 work, sv(r.json, "id"));
        http_resp_free(&r);
        r = post("/v1/orders", key(ten), NULL, body);
        cr_assert_eq(r.status, 409, "%s", r.body);
        cr_assert_str_eq(sv(r.json, "field"), "quote_id", "%s", r.body);
        http_resp_free(&r);
    }

    /* an admin may order for a tenant, not for a provider or an unknown account */
    snprintf(body, sizeof body,
             "{\"tenant\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"count\":8,"
             "\"profile\":\"llm-train\",\"wall_ms\":60000}",
             sv(prov, "id"));
    r = post("/v1/orders", srv.admin_key, NULL, body);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "field"), "tenant", "%s", r.body);
    http_resp_free(&r);

    /* bad input */
    r = post("/v1/orders", key(ten), NULL, "{\"count\":8,\"profile\":\"llm-train\"}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    r = post("/v1/orders", key(prov), NULL, "{\"count\":8}");
    cr_assert_eq(r.status, 403, "providers do not order: %s", r.body);
    http_resp_free(&r);
    r = post("/v1/usage", key(prov), NULL, "{\"records\":[]}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
}

/* ---- minimum charge per order ---------------------------------------------------------------
 * A second policy: 3.60 per device-hour and a minimum of 0.20 per order; the platform takes 5 %
 * from the provider. One record (8 devices x 10 s) is 0.080000, so an order with one record is
 * topped up by 0.120000 (fee 0.006000), one with three (0.240000) is not. */

static char min_policy[48], min_offer[48];

static void this_month(char period[8])
{
    time_t t = time(NULL);

    strftime(period, 8, "%Y-%m", gmtime(&t));
}

static void min_offer_publish(void)
{
    http_resp r = post("/v1/pricing/policies", key(prov), NULL,
                       "{\"name\":\"H100 minimum\",\"document\":{\"currency\":\"USD\",\"rules\":[{"
                       "\"id\":\"base\",\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},"
                       "\"per_device_hour\":\"3.60\"},{\"id\":\"min\",\"kind\":\"minimum\","
                       "\"amount\":\"0.20\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(min_policy, sizeof min_policy, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    tm_publish(&world, "eu-west-1/acme/h100-min", min_policy, "", min_offer);
}

/* An order of 8 devices for wall_ms on the minimum's offer, started 50 s ago; its id (valid
 * until the next call), its start in *t0 and its answer's priced amount in priced. */
static const char *min_order(long long wall_ms, long long *t0, char priced[24])
{
    static char id[48];
    char body[512], iso[40];
    time_t t = (time_t)(now_ms() / 1000 - 50);
    http_resp r;

    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    *t0 = (long long)t * 1000;
    snprintf(body, sizeof body,
             "{\"offer_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":"
             "\"llm-train\",\"wall_ms\":%lld,\"start\":\"%s\"}",
             min_offer, wall_ms, iso);
    r = post("/v1/orders", key(ten), NULL, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "state"), "placed", "%s", r.body);
    snprintf(id, sizeof id, "%s", sv(r.json, "id"));
    snprintf(priced, 24, "%s", sv(r.json, "priced"));
    http_resp_free(&r);
    return id;
}

static http_resp min_step(const char *order, const char *step, const char *k)
{
    char path[128];

    snprintf(path, sizeof path, "/v1/orders/%s/%s", order, step);
    return post(path, k, NULL, NULL);
}

/* The "minimum" detail of the order's last event (borrowed from r). */
static json_t *min_detail(const http_resp *r)
{
    json_t *ev = json_object_get(r->json, "events");

    return json_object_get(json_object_get(json_array_get(ev, json_array_size(ev) - 1), "detail"),
                           "minimum");
}

static const char *min_sql_str(const char *fmt, const char *arg)
{
    static char v[128];
    char sql[512];

    snprintf(sql, sizeof sql, fmt, arg);
    snprintf(v, sizeof v, "%s", sql1(sql));
    return v;
}

static long long min_sql_ll(const char *fmt, const char *arg)
{
    char sql[512];

    snprintf(sql, sizeof sql, fmt, arg);
    return atoll(sql1(sql));
}

Test(market_api, minimum_charge_tops_up_an_order_once)
{
    long long t0, hold, wallet0;
    char priced[24], a[48], sql[512], stl[48], txn[48], period[8];
    const char *order;
    json_t *fin, *m;
    http_resp r;

    min_offer_publish();
    tm_deposit(&srv, ten, "10.00");
    wallet0 = balance(ten, "wallet");

    /* A: priced below the minimum, so placed at the minimum (and held with its margin) */
    order = min_order(10000, &t0, priced);
    snprintf(a, sizeof a, "%s", order);
    cr_assert_str_eq(priced, "0.200000", "an order costs at least its minimum");
    hold = min_sql_ll("SELECT hold_micros FROM orders WHERE id = '%s'", a);
    cr_assert_geq(hold, 220000, "the hold covers the minimum and its margin: %lld", hold);
    tm_report_ok(&world, json_pack("[o]", item("m1", a, t0, t0 + 10000, NULL, 0)));
    r = min_step(a, "complete", key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "captured"), "0.200000", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "charged"), "0.200000", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "platform_fee"), "0.010000", "%s", r.body);
    m = min_detail(&r);
    cr_assert(m, "the final event says what the minimum did: %s", r.body);
    cr_assert_str_eq(sv(m, "charges"), "0.080000", "%s", r.body);
    cr_assert_str_eq(sv(m, "top_up"), "0.120000", "%s", r.body);
    cr_assert_str_eq(sv(m, "platform_fee"), "0.006000", "%s", r.body);
    snprintf(stl, sizeof stl, "%s", sv(m, "settlement_id"));
    http_resp_free(&r);

    /* the ledger: 0.20 out of the wallet, nothing held, provider 0.19, platform 0.01 */
    cr_assert_eq(balance(ten, "holds"), 0);
    cr_assert_eq(balance(ten, "wallet"), wallet0 + 200000);
    cr_assert_eq(balance(prov, "payable"), -190000);
    cr_assert_eq(balance(NULL, "revenue"), -10000);
    /* the top-up is a usage record of the order, signed by the service, with its lines */
    snprintf(sql, sizeof sql,
             "SELECT amount_micros || ' ' || fee_micros || ' ' || settlement_id || ' ' || "
             "(SELECT string_agg((l->>'kind') || ':' || (l->>'amount') || ':' || (l->>'payer'), "
             "',' ORDER BY l->>'kind') FROM jsonb_array_elements(lines) l) FROM usage_records "
             "WHERE record_id = 'tally:minimum:%s'",
             a);
    {
        char want[256];
        snprintf(want, sizeof want,
                 "120000 6000 %s minimum_charge:120000:tenant,platform_fee:6000:provider", stl);
        cr_assert_str_eq(sql1(sql), want);
    }
    cr_assert_eq(
        min_sql_ll("SELECT sum(amount_micros) FROM usage_records WHERE order_id = '%s'", a),
        200000);

    /* twice: refused, nothing more charged */
    r = min_step(a, "complete", key(prov));
    cr_assert_eq(r.status, 409, "%s", r.body);
    http_resp_free(&r);
    /* a crash after the ledger applied it but before it was marked: the janitor runs it again,
     * the ledger replays the same transaction */
    snprintf(sql, sizeof sql, "SELECT txn_id FROM settlements WHERE id = '%s'", stl);
    snprintf(txn, sizeof txn, "%s", sql1(sql));
    cr_assert(txn[0], "the top-up's capture is posted");
    snprintf(sql, sizeof sql,
             "UPDATE settlements SET state = 'pending', txn_id = NULL, created_at = now() - "
             "interval '1 minute' WHERE id = '%s' RETURNING 1",
             stl);
    sql1(sql);
    snprintf(sql, sizeof sql,
             "SELECT state || ' ' || coalesce(txn_id, '') FROM settlements "
             "WHERE id = '%s'",
             stl);
    for (int i = 0; i < 100 && strncmp(sql1(sql), "posted", 6) != 0; i++)
        usleep(100000);
    {
        char want[80];
        snprintf(want, sizeof want, "posted %s", txn);
        cr_assert_str_eq(sql1(sql), want, "replayed, not applied twice");
    }
    cr_assert_eq(balance(ten, "wallet"), wallet0 + 200000, "charged once");
    cr_assert_eq(balance(prov, "payable"), -190000);
    /* a provider cannot write or reverse the service's records */
    r = report(json_pack("[o]", item("tally:minimum:x", a, t0, t0 + 1000, NULL, 0)), key(prov));
    cr_assert_str_eq(result(&r, 0, "reason"), "invalid_record", "%s", r.body);
    http_resp_free(&r);

    /* B: usage above the minimum (3 records, 0.240000): no top-up */
    order = min_order(60000, &t0, priced);
    tm_report_ok(&world, json_pack("[o, o, o]", item("n1", order, t0, t0 + 10000, NULL, 0),
                                   item("n2", order, t0 + 10000, t0 + 20000, NULL, 0),
                                   item("n3", order, t0 + 20000, t0 + 30000, NULL, 0)));
    r = min_step(order, "complete", key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "charged"), "0.240000", "%s", r.body);
    cr_assert_str_eq(sv(min_detail(&r), "top_up"), "0.000000", "%s", r.body);
    cr_assert_null(json_object_get(min_detail(&r), "usage_id"), "%s", r.body);
    http_resp_free(&r);

    /* C: cancelled before it started, D: failed by its provider: no minimum */
    order = min_order(10000, &t0, priced);
    r = min_step(order, "cancel", key(ten));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "charged"), "0.000000", "%s", r.body);
    cr_assert_null(min_detail(&r), "%s", r.body);
    http_resp_free(&r);
    order = min_order(10000, &t0, priced);
    tm_report_ok(&world, json_pack("[o]", item("f1", order, t0, t0 + 10000, NULL, 0)));
    r = min_step(order, "fail", key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "charged"), "0.080000", "%s", r.body);
    cr_assert_null(min_detail(&r), "%s", r.body);
    http_resp_free(&r);
    cr_assert_str_eq(sql1("SELECT count(*) FROM usage_records WHERE record_id LIKE 'tally:%'"),
                     "1");

    /* ledger, orders and records agree: 0.20 + 0.24 + 0.08 */
    cr_assert_eq(balance(ten, "holds"), 0);
    cr_assert_eq(balance(ten, "wallet"), wallet0 + 520000);
    cr_assert_str_eq(sql1("SELECT sum(captured_micros - refunded_micros) FROM orders"), "520000");
    cr_assert_str_eq(sql1("SELECT sum(amount_micros) FROM usage_records"), "520000");
    cr_assert_str_eq(sql1("SELECT count(*) FROM settlements WHERE state <> 'posted'"), "0");

    /* the invoice draft shows the top-up as a line and totals what the ledger took */
    fin = tallyd_account(&srv, "finance-1", "finance");
    this_month(period);
    snprintf(sql, sizeof sql, "/v1/invoices/close?period=%s", period);
    r = post(sql, key(fin), NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    snprintf(sql, sizeof sql,
             "SELECT total_micros || ' ' || (SELECT sum((l->>'amount')::bigint) FROM "
             "jsonb_array_elements(lines) l WHERE l->>'kind' = 'minimum_charge') FROM invoices "
             "WHERE tenant_id = '%s' AND period = '%s'",
             sv(ten, "id"), period);
    cr_assert_str_eq(sql1(sql), "520000 120000");

    /* once the invoice is final, nothing more is billed in its period: the next order's record
     * and minimum go to the next period, and a writer that ignores the rule is refused */
    snprintf(sql, sizeof sql, "/v1/invoices/%s/finalize",
             min_sql_str("SELECT id FROM invoices WHERE period = '%s'", period));
    r = post(sql, key(fin), NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    order = min_order(10000, &t0, priced);
    tm_report_ok(&world, json_pack("[o]", item("e1", order, t0, t0 + 10000, NULL, 0)));
    r = min_step(order, "complete", key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(min_detail(&r), "top_up"), "0.120000", "%s", r.body);
    http_resp_free(&r);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM usage_records WHERE order_id = '%s' AND billed_period > "
             "period",
             order);
    cr_assert_str_eq(sql1(sql), "2", "the record and the top-up are billed next period");
    snprintf(
        sql, sizeof sql,
        "INSERT INTO usage_records SELECT 'use_7' || substr(id, 6), provider_id, 'm1-copy', "
        "order_id, device_id, count, start_at, end_at, start_ms, end_ms, work_mcu, mcu, "
        "device_ms, currency, amount_micros, fee_micros, period, billed_period, lines, key_id, "
        "signature, canonical, record_hash, batch_id, settlement_id FROM usage_records WHERE "
        "record_id = 'm1' AND billed_period = '%s' RETURNING 1",
        period);
    cr_assert_null(testdb_exec(ci, sql), "a record billed in a final invoice's period");
    cr_assert(strstr(testdb_error(), "final invoice"), "%s", testdb_error());

    /* F: the tenant stops a running order: the minimum applies */
    order = min_order(10000, &t0, priced);
    tm_report_ok(&world, json_pack("[o]", item("g1", order, t0, t0 + 10000, NULL, 0)));
    r = min_step(order, "cancel", key(ten));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "state"), "cancelled", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "charged"), "0.200000", "%s", r.body);
    cr_assert_str_eq(sv(min_detail(&r), "top_up"), "0.120000", "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(balance(ten, "holds"), 0);
    cr_assert_eq(balance(ten, "wallet"), wallet0 + 520000 + 200000 + 200000);
    cr_assert_str_eq(sql1("SELECT count(*) FROM settlements WHERE state <> 'posted'"), "0");

    r = get("/v1/reports/reconciliation", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "agrees")), "%s", r.body);
    http_resp_free(&r);
    json_decref(fin);
    {
        const char *args[] = {"verify", NULL};
        char *out = NULL;
        cr_assert_eq(tallyd_cli(&srv, &out, args), 0, "%s", out ? out : "");
        free(out);
    }
}
