/*
 * End-to-end: finance reports against a real tallyd and PostgreSQL. Activity is
 * made through the API (the marketplace's life: accounts, a priced and
 * published offer, a credited tenant, an order, signed usage in batches with a
 * reversal, completion); then the usage report (CSV and JSON, grouped and per
 * record, scoped per caller), the trial balance, the payouts and the
 * reconciliation are read and checked by hand; then the database is tampered
 * with as its owner (the append-only trigger disabled for a moment) and the
 * reconciliation must name the broken rows. Last, a client that walks away
 * from a large streamed report stops the report's query, and a SIGTERM during
 * a large report cuts it off (no last chunk) and tallyd exits cleanly at once.
 *
 * Hand-checked money (as in test_market_api.c): 3.60 USD per device-hour, 8
 * devices x 10 s per record = 0.080000 USD; the platform takes 5 % from the
 * provider (0.004000), so the provider nets 0.076000 per record. Records r1,
 * r2, r3, r4 and the reversal of r3: 5 rows, 3 records' worth: amount
 * 0.240000, fees 0.012000, net 0.228000, 3 x 80 device-seconds = 240 s =
 * 0.066667 device-hours (0.0666..., rounded half-even at the micro-hour).
 */
#include "testdb.h"
#include "testhttp.h"
#include "testmarket.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *prov2, *ten, *ten2, *fin;
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
#define deposit(t, amount) tm_deposit(&srv, t, amount)
#define item(rid, order, s, e, rev, bad) tm_item(&world, rid, order, s, e, rev, bad)

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
    fin = tallyd_account(&srv, "finance-1", "finance");
    tm_publish(&world, "eu-west-1/acme/h100-pool", policy, ",\"residency\":[\"eu\",\"gdpr\"]",
               offer);
}

static void teardown(void)
{
    json_decref(prov2);
    json_decref(ten2);
    json_decref(fin);
    tm_market_down(&mk);
}

TestSuite(reports_api, .init = setup, .fini = teardown, .timeout = 180);

/* Make the activity: r1, r2 | r3 | r4 and the reversal of r3 | complete. Returns the order. */
static const char *activity(void)
{
    static char order[48];
    char path[128];
    long long t0;
    http_resp r;
    json_t *b;

    deposit(ten, "100.00");
    snprintf(order, sizeof order, "%s", place_order("order-1", &t0));
    b = json_pack("[o, o]", item("r1", order, t0, t0 + 10000, NULL, 0),
                  item("r2", order, t0 + 10000, t0 + 20000, NULL, 0));
    r = report(b, key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    b = json_pack("[o]", item("r3", order, t0 + 20000, t0 + 30000, NULL, 0));
    r = report(b, key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    b = json_pack("[o, o]", item("r4", order, t0 + 30000, t0 + 40000, NULL, 0),
                  item("r3-rev", order, t0 + 20000, t0 + 30000, "r3", 0));
    r = report(b, key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(result(&r, 1, "amount"), "-0.080000", "%s", r.body);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/orders/%s/complete", order);
    r = post(path, key(prov), NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    for (int i = 0; i < 100 && strcmp(sql1("SELECT count(*) FROM settlements WHERE state <> "
                                           "'posted'"),
                                      "0") != 0;
         i++)
        usleep(50000);
    cr_assert_str_eq(sql1("SELECT count(*) FROM settlements WHERE state <> 'posted'"), "0");
    cr_assert_eq(balance(prov, "payable"), -228000);
    return order;
}

/* The CU of all usage as the report must print it: milli-CU / 1000, three places. */
static void cu_text(char *out, size_t cap)
{
    long long mcu = atoll(sql1("SELECT sum(mcu) FROM usage_records"));
    cr_assert_gt(mcu, 0);
    snprintf(out, cap, "%lld.%03lld", mcu / 1000, mcu % 1000);
}

Test(reports_api, usage_report_csv_and_json_by_hand)
{
    char path[256], want[1024], cu[32];
    http_resp r;
    json_t *row;

    activity();
    cu_text(cu, sizeof cu);

    r = get("/v1/reports/usage?group_by=provider&format=csv", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(http_header_value(&r, "transfer-encoding"), "chunked", "streamed");
    cr_assert(strstr(http_header_value(&r, "content-type"), "text/csv"));
    cr_assert_str_eq(http_header_value(&r, "x-tally-replica"), "false");
    snprintf(want, sizeof want,
             "provider_id,currency,records,cu,device_hours,gross,discounts,amount,fees,net\r\n"
             "%s,USD,5,%s,0.066667,0.240000,0.000000,0.240000,0.012000,0.228000\r\n",
             sv(prov, "id"), cu);
    cr_assert_str_eq(r.body, want);
    http_resp_free(&r);

    /* JSON: the same fields, amounts as exact decimal strings */
    r = get("/v1/reports/usage?group_by=tenant&from=2020-01-01T00:00:00Z", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "report"), "usage", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "group_by"), "tenant");
    cr_assert(json_is_false(json_object_get(r.json, "served_by_replica")));
    cr_assert_eq(json_integer_value(json_object_get(r.json, "row_count")), 1, "%s", r.body);
    row = json_array_get(json_object_get(r.json, "rows"), 0);
    cr_assert_str_eq(sv(row, "tenant_id"), sv(ten, "id"));
    cr_assert_eq(json_integer_value(json_object_get(row, "records")), 5);
    cr_assert_str_eq(sv(row, "cu"), cu);
    cr_assert_str_eq(sv(row, "amount"), "0.240000");
    cr_assert_str_eq(sv(row, "net"), "0.228000");
    cr_assert_str_eq(sv(row, "device_hours"), "0.066667");
    http_resp_free(&r);

    /* one row per record: 5 rows, the reversal negative and naming r3 */
    r = get("/v1/reports/usage?group_by=record&format=csv", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    {
        int lines = 0;
        for (const char *p = r.body; (p = strstr(p, "\r\n")); p += 2)
            lines++;
        cr_assert_eq(lines, 6, "header + 5 records: %s", r.body);
        cr_assert(strstr(r.body, ",-0.080000,-0.004000,-0.076000,"), "%s", r.body);
        cr_assert(strstr(r.body, ",r3\r\n"), "the reversal names r3: %s", r.body);
    }
    http_resp_free(&r);

    /* by day: one day, the same sums */
    r = get("/v1/reports/usage?group_by=day", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    row = json_array_get(json_object_get(r.json, "rows"), 0);
    cr_assert_eq(strlen(sv(row, "day")), 10, "%s", r.body);
    cr_assert_str_eq(sv(row, "gross"), "0.240000");
    http_resp_free(&r);

    /* scope: the tenant sees its own, the other tenant nothing, the provider its own */
    r = get("/v1/reports/usage?group_by=offer", key(ten));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "row_count")), 1, "%s", r.body);
    cr_assert_str_eq(sv(json_array_get(json_object_get(r.json, "rows"), 0), "offer_id"), offer);
    http_resp_free(&r);
    r = get("/v1/reports/usage?group_by=region&format=csv", key(ten2));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(r.body, "region,currency,records,cu,device_hours,gross,discounts,amount,"
                             "fees,net\r\n");
    http_resp_free(&r);
    r = get("/v1/reports/usage?group_by=device", key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(json_array_get(json_object_get(r.json, "rows"), 0), "device_id"),
                     "nvidia-h100-sxm", "%s", r.body);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/reports/usage?tenant_id=%s", sv(ten, "id"));
    r = get(path, key(ten2));
    cr_assert_eq(r.status, 403, "another tenant's report: %s", r.body);
    http_resp_free(&r);
    /* finance narrows by tenant */
    snprintf(path, sizeof path, "/v1/reports/usage?group_by=provider&tenant_id=%s", sv(ten2, "id"));
    r = get(path, key(fin));
    cr_assert_eq(json_integer_value(json_object_get(r.json, "row_count")), 0, "%s", r.body);
    http_resp_free(&r);
}

Test(reports_api, bad_parameters_are_422_naming_the_field)
{
    static const struct {
        const char *path, *field;
    } bad[] = {
        {"/v1/reports/usage?group_by=week", "group_by"},
        {"/v1/reports/usage?format=xml", "format"},
        {"/v1/reports/usage?from=yesterday", "from"},
        {"/v1/reports/usage?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"},
        {"/v1/reports/trial-balance?as_of=2026-13-01T00:00:00Z", "as_of"},
        {"/v1/reports/payouts?period=2026-13", "period"},
        {"/v1/reports/payouts", "period"},
        {"/v1/reports/reconciliation?to=soon", "to"},
        {"/v1/reports/trial-balance?format=csv", "format"},
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http_resp r = get(bad[i].path, key(fin));
        cr_assert_eq(r.status, 422, "%s: %s", bad[i].path, r.body);
        cr_assert_str_eq(sv(r.json, "field"), bad[i].field, "%s: %s", bad[i].path, r.body);
        http_resp_free(&r);
    }
    {
        http_resp r = get("/v1/reports/trial-balance", key(ten));
        cr_assert_eq(r.status, 403, "a tenant reads no trial balance: %s", r.body);
        http_resp_free(&r);
    }
}

Test(reports_api, trial_balance_and_payouts)
{
    char path[128], period[8];
    time_t now = time(NULL);
    json_t *totals, *row;
    http_resp r;

    activity();
    r = get("/v1/reports/trial-balance", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "balanced")), "%s", r.body);
    totals = json_object_get(r.json, "totals");
    cr_assert_eq(json_array_size(totals), 1, "%s", r.body);
    cr_assert_str_eq(sv(json_array_get(totals, 0), "currency"), "USD");
    cr_assert_str_eq(sv(json_array_get(totals, 0), "total"), "0.000000");
    /* 100 deposited: the external account is debited 100, the rest credit */
    cr_assert_str_eq(sv(json_array_get(totals, 0), "debits"), "100.000000", "%s", r.body);
    cr_assert_str_eq(sv(json_array_get(totals, 0), "credits"), "100.000000", "%s", r.body);
    {
        size_t i;
        json_t *a;
        int seen = 0;
        json_array_foreach(json_object_get(r.json, "rows"), i, a)
        {
            if (sv(a, "owner_id") && !strcmp(sv(a, "owner_id"), sv(prov, "id"))) {
                cr_assert_str_eq(sv(a, "normal"), "credit", "%s", r.body);
                cr_assert_str_eq(sv(a, "balance"), "0.228000", "%s", r.body);
                cr_assert_str_eq(sv(a, "credit"), "0.228000");
                cr_assert_str_eq(sv(a, "debit"), "0.000000");
                seen = 1;
            }
        }
        cr_assert(seen, "the provider's payable account is listed: %s", r.body);
    }
    http_resp_free(&r);
    /* before anything happened: every balance zero, still balanced */
    r = get("/v1/reports/trial-balance?as_of=2020-01-01T00:00:00Z", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "as_of"), "2020-01-01T00:00:00.000000Z");
    cr_assert_str_eq(sv(json_array_get(json_object_get(r.json, "totals"), 0), "debits"), "0.000000",
                     "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "balanced")), "%s", r.body);
    http_resp_free(&r);

    /* payouts this month: 4 captures x 0.076 - the refund of 0.076 = 0.228 owed */
    strftime(period, sizeof period, "%Y-%m", gmtime(&now));
    snprintf(path, sizeof path, "/v1/reports/payouts?period=%s", period);
    r = get(path, key(prov));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "row_count")), 1, "%s", r.body);
    row = json_array_get(json_object_get(r.json, "rows"), 0);
    cr_assert_str_eq(sv(row, "provider_id"), sv(prov, "id"));
    cr_assert_str_eq(sv(row, "opening"), "0.000000", "%s", r.body);
    cr_assert_str_eq(sv(row, "captured"), "0.304000", "%s", r.body);
    cr_assert_str_eq(sv(row, "refunded"), "0.076000", "%s", r.body);
    cr_assert_str_eq(sv(row, "paid_out"), "0.000000", "%s", r.body);
    cr_assert_str_eq(sv(row, "other"), "0.000000", "%s", r.body);
    cr_assert_str_eq(sv(row, "owed"), "0.228000", "%s", r.body);
    cr_assert_str_eq(sv(row, "owed_now"), "0.228000", "%s", r.body);
    http_resp_free(&r);
    /* the month before: nothing yet */
    r = get("/v1/reports/payouts?period=2020-01&format=csv", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, ",USD,0.000000,0.000000,0.000000,0.000000,0.000000,0.000000,"
                             "0.228000\r\n"),
              "%s", r.body);
    http_resp_free(&r);
    /* a provider reads only its own */
    snprintf(path, sizeof path, "/v1/reports/payouts?period=%s&provider_id=%s", period,
             sv(prov, "id"));
    r = get(path, key(prov2));
    cr_assert_eq(r.status, 403, "%s", r.body);
    http_resp_free(&r);
}

/* The rows of a reconciliation whose check is chk and whose usage_ids contain id. */
static int discrepancies(const http_resp *r, const char *chk, const char *id)
{
    size_t i;
    json_t *row;
    int n = 0;

    json_array_foreach(json_object_get(r->json, "rows"), i, row)
    {
        const char *ids = sv(row, "usage_ids");
        if (!strcmp(sv(row, "check"), chk) && (!id || (ids && strstr(ids, id))))
            n++;
    }
    return n;
}

Test(reports_api, reconciliation_empty_then_lists_tampering)
{
    char use_id[48], sql[512];
    http_resp r;

    activity();
    r = get("/v1/reports/reconciliation", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "row_count")), 0,
                 "everything agrees: %s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "agrees")), "%s", r.body);
    http_resp_free(&r);

    /* tamper as the tables' owner: r1 now claims 0.090000 */
    snprintf(use_id, sizeof use_id, "%s",
             sql1("SELECT id FROM usage_records WHERE record_id = 'r1'"));
    sql1("ALTER TABLE usage_records DISABLE TRIGGER usage_records_append_only");
    sql1("UPDATE usage_records SET amount_micros = 90000 WHERE record_id = 'r1' RETURNING 1");
    sql1("ALTER TABLE usage_records ENABLE TRIGGER usage_records_append_only");
    /* and the ledger hold of the order is 1 micro-unit more than the order says */
    sql1("ALTER TABLE ledger_holds DISABLE TRIGGER USER");
    sql1("UPDATE ledger_holds SET amount = amount + 1 RETURNING 1");
    sql1("ALTER TABLE ledger_holds ENABLE TRIGGER USER");

    r = get("/v1/reports/reconciliation", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_false(json_object_get(r.json, "agrees")), "%s", r.body);
    cr_assert_eq(discrepancies(&r, "usage_lines", use_id), 1, "%s", r.body);
    cr_assert_eq(discrepancies(&r, "settlement_usage", use_id), 1, "%s", r.body);
    cr_assert_eq(discrepancies(&r, "order_usage", use_id), 1, "%s", r.body);
    cr_assert_eq(discrepancies(&r, "hold_amount", NULL), 1, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "row_count")), 4, "%s", r.body);
    {
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(r.json, "rows"), i, row)
        {
            if (!strcmp(sv(row, "check"), "settlement_usage")) {
                cr_assert_str_eq(sv(row, "expected"), "0.170000", "%s", r.body);
                cr_assert_str_eq(sv(row, "actual"), "0.160000", "%s", r.body);
                cr_assert(sv(row, "settlement_id") && sv(row, "txn_id"), "%s", r.body);
            }
        }
    }
    http_resp_free(&r);
    /* CSV: one header and four rows */
    r = get("/v1/reports/reconciliation?format=csv", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(!strncmp(r.body,
                       "check,order_id,settlement_id,txn_id,hold_id,usage_ids,currency,"
                       "expected,actual,detail\r\n",
                       80),
              "%s", r.body);
    http_resp_free(&r);
    /* a range before the activity sees none of it */
    snprintf(sql, sizeof sql, "/v1/reports/reconciliation?to=2020-01-01T00:00:00Z");
    r = get(sql, key(fin));
    cr_assert_eq(json_integer_value(json_object_get(r.json, "row_count")), 0, "%s", r.body);
    http_resp_free(&r);
}

/* Open a raw connection, ask for path, read about want bytes of the reply; the socket. */
static int open_report(const char *path, const char *k, size_t want, size_t *got)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)srv.port)};
    char req[512], buf[16384];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    *got = 0;
    cr_assert_geq(fd, 0);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             path, k);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (*got < want) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        *got += (size_t)n;
    }
    return fd;
}

/* Open a raw connection, ask for path, read about want bytes of the reply, close. */
static size_t read_some_and_leave(const char *path, const char *k, size_t want)
{
    size_t got;

    close(open_report(path, k, want, &got));
    return got;
}

/* 100 000 copies of r1 straight into the table (a fixture, not through the API). */
static void big_fixture(void)
{
    sql1("INSERT INTO usage_records (id, provider_id, record_id, order_id, device_id, count, "
         "start_at, end_at, start_ms, end_ms, work_mcu, mcu, device_ms, currency, amount_micros, "
         "fee_micros, period, billed_period, lines, key_id, signature, canonical, record_hash, "
         "batch_id, settlement_id) SELECT 'use_0' || lpad(upper(to_hex(g)), 25, '0'), "
         "provider_id, 'fx-' || g, order_id, device_id, count, start_at, end_at, start_ms, end_ms, "
         "work_mcu, mcu, device_ms, currency, amount_micros, fee_micros, period, billed_period, "
         "lines, key_id, signature, canonical, record_hash, batch_id, settlement_id FROM "
         "usage_records, generate_series(1, 100000) g WHERE record_id = 'r1' RETURNING 1");
}

Test(reports_api, client_leaving_a_large_report_stops_its_cursor)
{
    const char *busy;
    http_resp r;
    int i;

    activity();
    big_fixture();
    cr_assert_gt(
        read_some_and_leave("/v1/reports/usage?group_by=record&format=csv", key(fin), 65536), 4096,
        "the report started at once");
    /* the stream notices at its next chunk and its statement (a COPY) ends */
    for (i = 0; i < 100; i++) {
        busy = sql1("SELECT count(*) FROM pg_stat_activity WHERE (query LIKE 'FETCH%' OR query "
                    "LIKE 'COPY%') AND state <> 'idle' AND pid <> pg_backend_pid()");
        if (!strcmp(busy, "0"))
            break;
        usleep(100000);
    }
    cr_assert_str_eq(busy, "0", "the cursor was abandoned");
    /* the pool is free again: a full report still works, and says how many rows */
    r = get("/v1/reports/usage?group_by=provider", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_array_get(json_object_get(r.json, "rows"), 0), "records")),
                 100005, "%s", r.body);
    http_resp_free(&r);
    /* and the whole per-record export arrives, in many chunks, complete */
    r = get("/v1/reports/usage?group_by=record&format=csv", key(fin));
    cr_assert_eq(r.status, 200);
    {
        size_t lines = 0;
        for (const char *p = r.body; (p = strchr(p, '\n')); p++)
            lines++;
        cr_assert_eq(lines, 100006, "header + 100 005 records, got %zu lines", lines);
        cr_assert_gt(r.len, 10u * 131072, "more than ten chunks' worth");
    }
    http_resp_free(&r);
}

Test(reports_api, sigterm_during_a_report_cuts_it_off_and_exits_cleanly)
{
    static const char last_chunk[] = "0\r\n\r\n";
    char buf[65536], tail[sizeof last_chunk - 1] = {0};
    struct timespec t0, t1;
    size_t got, after = 0;
    ssize_t n;
    double secs;
    int fd;

    activity();
    big_fixture();
    /* a client reads the start of a 33 MB export, then stops reading */
    fd = open_report("/v1/reports/usage?group_by=record&format=csv", key(fin), 65536, &got);
    cr_assert_gt(got, 4096, "the report started");
    /* tallyd is asked to stop: tallyd_stop sends SIGTERM and asserts exit status 0 and
     * no sanitizer report */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tallyd_stop(&srv);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(secs, 5.0, "a streaming report held the shutdown for %.1f s", secs);
    /* what was still on its way ends without the last chunk: visibly cut off */
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        size_t k = (size_t)n < sizeof tail ? (size_t)n : sizeof tail;
        memmove(tail, tail + k, sizeof tail - k);
        memcpy(tail + sizeof tail - k, buf + n - k, k);
        after += (size_t)n;
    }
    close(fd);
    cr_assert(memcmp(tail, last_chunk, sizeof tail) != 0, "a cut-off report must not look whole");
    cr_assert_lt(got + after, 20u << 20, "the report stopped (%zu bytes of about 33 MB)",
                 got + after);
}
