/*
 * End-to-end: invoices against a real tallyd and PostgreSQL.
 *
 * A provider publishes three offers in three regions, each priced by its own
 * policy so that together they use every pricing rule kind: graduated tiers,
 * free allowance, commitment, time window, region multiplier, contract
 * discount and minimum (offer 1); base and volume tiers (offer 2); spot
 * (offer 3); the platform's fee (platform policy). A tenant orders on each
 * (offer_id), the provider reports signed usage (one record reversed), the
 * settlements reach the ledger. Then finance closes the month and finalises:
 *   - the invoice's total equals, to the micro-unit, what the ledger moved
 *     from the tenant to the provider and the platform for those orders
 *     (captures minus refunds), and the sum of the records' amounts;
 *   - it is numbered INV-00000001 (gap-free), signed, and the signature
 *     verifies with the public key from GET /v1/ledger/keys;
 *   - it is frozen (UPDATE refused, finalize again 409), CSV and HTML render;
 *   - the unused part of a reserved commitment is charged at finalisation through
 *     the ledger and shown as a commitment_trueup line (hand-checked amount);
 *   - usage accepted after finalisation lands in the next period (trigger)
 *     and shows there as an adjustment line naming the original period;
 *   - a credit note moves money through the ledger and is numbered CN-00000001.
 */
#include "testdb.h"
#include "testhttp.h"
#include "testmarket.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *ten, *ten2, *fin;
static tm_world world;
static const tm_market mk = {ci, sizeof ci, &srv, &prov, &ten, &world, NULL};

#define key(a) tm_key(a)
#define sv(o, k) tm_str(o, k)
#define post(path, k, idem, body) tm_post(&srv, path, k, idem, body)
#define now_ms() tm_now_ms()
#define deposit(t, amount) tm_deposit(&srv, t, amount)
#define item(rid, order, s, e, rev) tm_item(&world, rid, order, s, e, rev, 0)
#define report_ok(items) tm_report_ok(&world, items)
#define publish_offer(region, policy) tm_publish_region(&world, region, policy)

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

static char *make_policy(const char *doc)
{
    static char ids[4][48];
    static int n;
    char body[4096];
    http_resp r;

    snprintf(body, sizeof body, "{\"name\":\"p%d\",\"document\":%s}", n, doc);
    r = post("/v1/pricing/policies", key(prov), NULL, body);
    cr_assert_eq(r.status, 201, "%s\n%s", r.body, body);
    snprintf(ids[n], sizeof ids[n], "%s", sv(r.json, "id"));
    http_resp_free(&r);
    return ids[n++];
}

static void make_policies(char *pol[3])
{
    char doc[3000];
    http_resp r;

    /* device-ms quantities: a record is 8 devices x 10 s = 80 000 device-ms */
    snprintf(doc, sizeof doc,
             "{\"currency\":\"USD\",\"timezone\":\"UTC\",\"rules\":["
             "{\"id\":\"h100-tiers\",\"kind\":\"tiers\",\"unit\":\"device_hour\",\"mode\":"
             "\"graduated\",\"match\":{\"device\":\"nvidia-h100-sxm\"},\"tiers\":["
             "{\"from\":0,\"to\":200000,\"price\":\"3.60\"},{\"from\":200000,\"price\":\"2.40\"}]},"
             "{\"id\":\"free\",\"kind\":\"allowance\",\"unit\":\"device_hour\",\"quantity\":40000},"
             "{\"id\":\"reserved\",\"kind\":\"commitment\",\"unit\":\"device_hour\",\"quantity\":"
             "80000,\"price\":\"1.80\"},"
             "{\"id\":\"allday\",\"kind\":\"time_window\",\"windows\":[{\"name\":\"all\",\"days\":"
             "[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"],\"start\":\"00:00\","
             "\"end\":\"24:00\",\"multiplier_ppm\":1100000}]},"
             "{\"id\":\"regions\",\"kind\":\"region\",\"multipliers\":{\"eu-west-1\":1200000}},"
             "{\"id\":\"min\",\"kind\":\"minimum\",\"amount\":\"0.01\"},"
             "{\"id\":\"vip\",\"kind\":\"contract\",\"tenant\":\"%s\",\"discount_ppm\":100000}]}",
             sv(ten, "id"));
    pol[0] = make_policy(doc);
    pol[1] = make_policy(
        "{\"currency\":\"USD\",\"rules\":[{\"id\":\"base\",\"kind\":\"base\",\"per_device_hour\":"
        "\"1.80\"},{\"id\":\"reserved\",\"kind\":\"commitment\",\"unit\":\"device_hour\","
        "\"quantity\":10000000,\"price\":\"1.00\"},{\"id\":\"cu-volume\",\"kind\":\"tiers\","
        "\"unit\":\"cu\",\"mode\":\"volume\","
        "\"tiers\":[{\"from\":0,\"to\":50000,\"price\":\"0.02\"},{\"from\":50000,\"price\":"
        "\"0.01\"}]}]}");
    pol[2] = make_policy(
        "{\"currency\":\"USD\",\"rules\":[{\"id\":\"spot\",\"kind\":\"spot\",\"unit\":"
        "\"device_hour\",\"curve\":[{\"utilisation_ppm\":0,\"price\":\"1.00\"},"
        "{\"utilisation_ppm\":1000000,\"price\":\"4.00\"}],\"floor\":\"1.50\",\"cap\":\"3.00\"}]}");
    r = post("/v1/pricing/policies", srv.admin_key, NULL,
             "{\"name\":\"platform\",\"document\":{\"currency\":\"USD\",\"scope\":\"platform\","
             "\"rules\":[{\"id\":\"take\",\"kind\":\"platform_fee\",\"take_ppm\":50000,"
             "\"payer\":\"provider\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    /* spot prices need the live utilisation: 50 % gives 2.50, inside [1.50, 3.00] */
    r = post("/v1/pricing/utilisation", key(prov), NULL,
             "{\"device\":\"nvidia-h100-sxm\",\"utilisation_ppm\":500000}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
}

/* An order on offer, started 55 s ago (usage can be reported at once). */
static char *order_on(json_t *tenant, const char *offer, long long *start)
{
    static char ids[8][48];
    static int n;
    char body[1024], start_iso[40];
    http_resp r;
    time_t t = (time_t)((now_ms() - 55000) / 1000);

    strftime(start_iso, sizeof start_iso, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    *start = (long long)t * 1000;
    snprintf(body, sizeof body,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\",\"wall_ms\":"
             "200000,\"offer_id\":\"%s\",\"start\":\"%s\",\"constraints\":{\"currency\":\"USD\"}}",
             offer, start_iso);
    r = post("/v1/orders", key(tenant), NULL, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "offer_id"), offer, "%s", r.body);
    snprintf(ids[n], sizeof ids[n], "%s", sv(r.json, "id"));
    http_resp_free(&r);
    return ids[n++];
}

static void wait_settled(void)
{
    for (int i = 0; i < 200; i++) {
        if (!strcmp(sql1("SELECT count(*) FROM settlements WHERE state = 'pending'"), "0"))
            return;
        usleep(50000);
    }
    cr_assert_fail("settlements still pending");
}

/* What the ledger moved from the tenant to providers and the platform for its
 * orders' usage: captures minus refunds, read from the entries on the payable
 * and revenue accounts of the settlements' transactions. */
static long long ledger_paid(json_t *tenant)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(-sum(e.amount), 0) FROM settlements s JOIN orders o ON o.id = "
             "s.order_id JOIN ledger_entries e ON e.txn_id = s.txn_id JOIN ledger_accounts a ON "
             "a.id = e.account_id WHERE o.tenant_id = '%s' AND s.kind IN ('capture', 'refund') "
             "AND s.state = 'posted' AND a.purpose IN ('payable', 'revenue')",
             sv(tenant, "id"));
    return atoll(sql1(sql));
}

static long long micros(const char *s)
{
    long long i = 0, f = 0;
    int neg = s[0] == '-', n = 0;
    const char *p = s + neg;
    for (; *p && *p != '.'; p++)
        i = i * 10 + (*p - '0');
    if (*p == '.')
        for (p++; *p; p++, n++)
            f = f * 10 + (*p - '0');
    for (; n < 6; n++)
        f *= 10;
    return (neg ? -1 : 1) * (i * 1000000 + f);
}

static void setup(void)
{
    tm_market_up(&mk, NULL);
    ten2 = tallyd_account(&srv, "tenant-b", "tenant");
    fin = tallyd_account(&srv, "finance-1", "finance");
}

static void teardown(void)
{
    json_decref(ten2);
    json_decref(fin);
    tm_market_down(&mk);
}

TestSuite(invoices_api, .init = setup, .fini = teardown, .timeout = 180);

static json_t *invoice_of(json_t *tenant, const char *period)
{
    char path[160];
    http_resp r;
    json_t *inv;

    snprintf(path, sizeof path, "/v1/invoices?period=%s&tenant_id=%s", period, sv(tenant, "id"));
    r = get(path, key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1, "%s", r.body);
    inv = json_incref(json_array_get(json_object_get(r.json, "data"), 0));
    http_resp_free(&r);
    return inv;
}

static int has_kind(json_t *inv, const char *kind, const char *payer)
{
    json_t *l;
    size_t i;
    json_array_foreach(json_object_get(inv, "lines"), i,
                       l) if (!strcmp(sv(l, "kind"), kind) &&
                              (!payer || !strcmp(sv(l, "payer"), payer))) return 1;
    return 0;
}

/* The signature over "tally-invoice-v1\n" || document verifies with the listed key. */
static void check_signature(json_t *inv)
{
    json_t *sig = json_object_get(inv, "signature"), *k;
    const char *doc = sv(inv, "document");
    unsigned char pub[32], s[64], *msg;
    size_t dl = strlen("tally-invoice-v1\n"), n = strlen(doc), i;
    http_resp r = get("/v1/ledger/keys", key(ten));
    int found = 0;

    cr_assert_eq(r.status, 200, "%s", r.body);
    json_array_foreach(json_object_get(r.json, "data"), i, k)
    {
        if (strcmp(sv(k, "kid"), sv(sig, "kid")))
            continue;
        cr_assert_eq(sodium_hex2bin(pub, 32, sv(k, "public_key"), 64, NULL, NULL, NULL), 0);
        found = 1;
    }
    http_resp_free(&r);
    cr_assert(found, "the invoice's kid is listed by GET /v1/ledger/keys");
    cr_assert_eq(sodium_hex2bin(s, 64, sv(sig, "value"), 128, NULL, NULL, NULL), 0);
    msg = malloc(dl + n);
    memcpy(msg, "tally-invoice-v1\n", dl);
    memcpy(msg + dl, doc, n);
    cr_assert_eq(crypto_sign_verify_detached(s, msg, dl + n, pub), 0, "signature verifies");
    msg[dl + 2] ^= 1;
    cr_assert_neq(crypto_sign_verify_detached(s, msg, dl + n, pub), 0, "a changed byte fails");
    free(msg);
}

Test(invoices_api, every_rule_kind_invoice_equals_ledger_then_late_usage_and_credit_note)
{
    char *pol[3], *ord[3], path[200], period[8], next[8];
    const char *off[3];
    long long t[3];
    http_resp r;
    json_t *inv, *doc;
    time_t now = time(NULL);
    struct tm tm = *gmtime(&now);

    strftime(period, sizeof period, "%Y-%m", &tm);
    tm.tm_mon += 1;
    tm.tm_mday = 1;
    timegm(&tm);
    strftime(next, sizeof next, "%Y-%m", &tm);

    make_policies(pol);
    off[0] = publish_offer("eu-west-1", pol[0]);
    off[1] = publish_offer("us-east-1", pol[1]);
    off[2] = publish_offer("ap-south-1", pol[2]);
    deposit(ten, "1000.00");
    deposit(ten2, "1000.00");
    for (int i = 0; i < 3; i++)
        ord[i] = order_on(ten, off[i], &t[i]);

    /* offer 1: free (40 000), commitment (80 000), then tiers 3.60 and 2.40 from 200 000 */
    report_ok(json_pack("[o, o, o, o]", item("a1", ord[0], t[0], t[0] + 10000, NULL),
                        item("a2", ord[0], t[0] + 10000, t[0] + 20000, NULL),
                        item("a3", ord[0], t[0] + 20000, t[0] + 30000, NULL),
                        item("a4", ord[0], t[0] + 30000, t[0] + 40000, NULL)));
    /* offer 2: base + volume CU tiers (a later record reaches the cheaper band) */
    report_ok(json_pack("[o, o]", item("b1", ord[1], t[1], t[1] + 10000, NULL),
                        item("b2", ord[1], t[1] + 10000, t[1] + 20000, NULL)));
    report_ok(json_pack("[o]", item("b3", ord[1], t[1] + 20000, t[1] + 30000, NULL)));
    /* offer 3: spot; then one reversal */
    report_ok(json_pack("[o, o]", item("c1", ord[2], t[2], t[2] + 10000, NULL),
                        item("c2", ord[2], t[2] + 10000, t[2] + 20000, NULL)));
    report_ok(json_pack("[o]", item("c2-rev", ord[2], t[2] + 10000, t[2] + 20000, "c2")));
    /* tenant-b: one record on offer 2 */
    {
        long long tb;
        char *ob = order_on(ten2, off[1], &tb);
        report_ok(json_pack("[o]", item("d1", ob, tb, tb + 10000, NULL)));
    }
    wait_settled();

    /* a tenant cannot close; finance can */
    snprintf(path, sizeof path, "/v1/invoices/close?period=%s", period);
    r = post(path, key(ten), NULL, NULL);
    cr_assert_eq(r.status, 403, "%s", r.body);
    http_resp_free(&r);
    r = post("/v1/invoices/close?period=2026-13", key(fin), NULL, NULL);
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    r = post(path, key(fin), "close-1", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "drafts")), 2, "%s", r.body);
    http_resp_free(&r);

    inv = invoice_of(ten, period);
    cr_assert_str_eq(sv(inv, "state"), "draft");
    {
        static const char *const kinds[] = {"usage",          "free_allowance", "commitment",
                                            "time_window",    "region",         "contract_discount",
                                            "volume_reprice", "platform_fee",   "reversal"};
        char *text = json_dumps(json_object_get(inv, "lines"), JSON_INDENT(1));
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            cr_assert(has_kind(inv, kinds[k], NULL), "line kind %s missing: %s", kinds[k], text);
        cr_assert(has_kind(inv, "platform_fee", "provider"), "%s", text);
        free(text);
    }
    /* the invoice total is what the ledger took from the tenant, and what the records say */
    {
        const char *total = sv(json_object_get(inv, "totals"), "total");
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT sum(u.amount_micros) FROM usage_records u JOIN orders o ON o.id = "
                 "u.order_id WHERE o.tenant_id = '%s'",
                 sv(ten, "id"));
        cr_assert_eq(micros(total), ledger_paid(ten), "invoice %s vs ledger %lld", total,
                     ledger_paid(ten));
        cr_assert_eq(micros(total), atoll(sql1(sql)));
        cr_assert_str_eq(total, sv(inv, "records_total"));
        cr_assert_gt(micros(total), 0);
        cr_assert_eq(json_integer_value(json_object_get(inv, "records")), 10);
    }
    json_decref(inv);
    inv = invoice_of(ten2, period);
    cr_assert_eq(micros(sv(json_object_get(inv, "totals"), "total")), ledger_paid(ten2));
    json_decref(inv);

    /* tenant-b cannot read tenant-a's invoice; tenant-a can; providers cannot list */
    inv = invoice_of(ten, period);
    snprintf(path, sizeof path, "/v1/invoices/%s", sv(inv, "id"));
    r = get(path, key(ten2));
    cr_assert_eq(r.status, 404, "%s", r.body);
    http_resp_free(&r);
    r = get(path, key(ten));
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    r = get("/v1/invoices", key(prov));
    cr_assert_eq(r.status, 403, "%s", r.body);
    http_resp_free(&r);

    /* finalize: numbered, signed, frozen */
    snprintf(path, sizeof path, "/v1/invoices/%s/finalize", sv(inv, "id"));
    r = post(path, key(fin), "fin-1", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "number"), "INV-00000001", "%s", r.body);
    cr_assert_str_eq(sv(r.json, "state"), "final");
    /* the unused commitment of offer 2's policy is charged at finalisation, through the
     * ledger: round(10 000 000 device-ms x 1.00/h) - round(240 000 x 1.00/h) = 2.777778 -
     * 0.066667 = 2.711111 */
    {
        json_t *l;
        size_t k;
        long long tu = 0;
        char sql[400];
        json_array_foreach(json_object_get(r.json, "lines"), k,
                           l) if (!strcmp(sv(l, "kind"), "commitment_trueup")) tu +=
            micros(sv(l, "amount"));
        cr_assert_eq(tu, 2711111, "%s", r.body);
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(-sum(e.amount), 0) FROM ledger_transactions t JOIN "
                 "ledger_entries e ON e.txn_id = t.id JOIN ledger_accounts a ON a.id = "
                 "e.account_id WHERE t.invoice_id = '%s' AND a.purpose IN ('payable', 'revenue')",
                 sv(inv, "id"));
        cr_assert_eq(atoll(sql1(sql)), 2711111, "the true-up went through the ledger");
        cr_assert_eq(micros(sv(json_object_get(r.json, "totals"), "total")),
                     ledger_paid(ten) + 2711111, "final invoice == ledger: %s", r.body);
        cr_assert_eq(micros(sv(json_object_get(r.json, "totals"), "total")),
                     micros(sv(json_object_get(inv, "totals"), "total")) + 2711111);
    }
    check_signature(r.json);
    doc = json_loads(sv(r.json, "document"), 0, NULL);
    cr_assert_str_eq(sv(doc, "number"), "INV-00000001");
    cr_assert_str_eq(sv(json_object_get(doc, "totals"), "total"),
                     sv(json_object_get(r.json, "totals"), "total"));
    json_decref(doc);
    http_resp_free(&r);
    r = post(path, key(fin), "fin-2", NULL);
    cr_assert_eq(r.status, 409, "%s", r.body);
    http_resp_free(&r);
    r = post(path, key(fin), "fin-1", NULL);
    cr_assert_eq(r.status, 200, "the same key replays: %s", r.body);
    cr_assert_str_eq(http_header_value(&r, "idempotent-replayed"), "true");
    http_resp_free(&r);
    {
        char sql[200];
        snprintf(sql, sizeof sql, "UPDATE invoices SET total_micros = 0 WHERE id = '%s'",
                 sv(inv, "id"));
        cr_assert_null(testdb_exec(ci, sql), "a final invoice cannot change");
        cr_assert_str_eq(sql1("SELECT last FROM invoice_counters WHERE series = 'INV'"), "1");
    }

    /* CSV and HTML views */
    snprintf(path, sizeof path, "/v1/invoices/%s.csv", sv(inv, "id"));
    r = get(path, key(ten));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(http_header_value(&r, "content-type"), "text/csv"));
    cr_assert(!strncmp(r.body, "record,document,period,group,kind,", 34), "%s", r.body);
    cr_assert(strstr(r.body, "\r\ntotal,INV-00000001,"), "%s", r.body);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/invoices/%s.html", sv(inv, "id"));
    r = get(path, key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "INV-00000001") && strstr(r.body, "Total due") &&
                  strstr(r.body, "GET /v1/ledger/keys") &&
                  strstr(r.body, "data-group=\"discounts\""),
              "%s", r.body);
    http_resp_free(&r);

    /* usage after finalisation: billed in the next period as an adjustment line */
    {
        long long before = ledger_paid(ten);
        json_t *late;
        report_ok(json_pack("[o]", item("a5", ord[0], t[0] + 40000, t[0] + 50000, NULL)));
        wait_settled();
        cr_assert_str_eq(sql1("SELECT billed_period || ' ' || period FROM usage_records WHERE "
                              "record_id = 'a5'"),
                         strcat(strcat(strcpy((char[32]){0}, next), " "), period));
        snprintf(path, sizeof path, "/v1/invoices/close?period=%s", next);
        r = post(path, key(fin), NULL, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        http_resp_free(&r);
        late = invoice_of(ten, next);
        cr_assert_eq(micros(sv(json_object_get(late, "totals"), "adjustments")),
                     ledger_paid(ten) - before, "%s", json_dumps(late, 0));
        cr_assert_eq(micros(sv(json_object_get(late, "totals"), "total")),
                     ledger_paid(ten) - before);
        cr_assert_str_eq(sv(json_array_get(json_object_get(late, "lines"), 0), "from_period"),
                         period);
        json_decref(late);
    }

    /* a credit note: ledger adjustment to the wallet, numbered CN-00000001 */
    {
        char sql[300];
        long long wallet0, wallet1;
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_accounts a "
                 "ON a.id = e.account_id WHERE a.owner_id = '%s' AND a.purpose = 'wallet'",
                 sv(ten, "id"));
        wallet0 = atoll(sql1(sql));
        snprintf(path, sizeof path, "/v1/invoices/%s/credit-notes", sv(inv, "id"));
        r = post(path, key(fin), NULL, "{\"amount\":\"1.25\",\"reason\":\"node degraded\"}");
        cr_assert_eq(r.status, 400, "an Idempotency-Key is required: %s", r.body);
        http_resp_free(&r);
        r = post(path, key(fin), "cn-1", "{\"amount\":\"1.25\",\"reason\":\"node degraded\"}");
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert_str_eq(sv(r.json, "number"), "CN-00000001", "%s", r.body);
        http_resp_free(&r);
        r = post(path, key(fin), "cn-1", "{\"amount\":\"1.25\",\"reason\":\"node degraded\"}");
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert_str_eq(sv(r.json, "number"), "CN-00000001", "a retry credits once: %s", r.body);
        http_resp_free(&r);
        r = post(path, key(fin), "cn-2", "{\"amount\":\"100000.00\",\"reason\":\"too much\"}");
        cr_assert_eq(r.status, 422, "a credit above the invoice's total: %s", r.body);
        cr_assert_str_eq(sv(r.json, "field"), "amount");
        http_resp_free(&r);
        wallet1 = atoll(sql1(sql));
        cr_assert_eq(wallet1 - wallet0, -1250000, "the wallet (credit-normal) gained 1.25");
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM ledger_transactions WHERE invoice_id = '%s'", sv(inv, "id"));
        cr_assert_str_eq(sql1(sql), "2", "the true-up and the credit note");
    }
    json_decref(inv);
}

/* ---- concurrent finalisations take consecutive numbers ---------------------------------- */

#define CONCURRENT 8

struct fin_arg {
    char id[48];
    long status;
    char number[24];
};

static void *finalize_one(void *p)
{
    struct fin_arg *a = p;
    char path[128];
    http_resp r;

    snprintf(path, sizeof path, "/v1/invoices/%s/finalize", a->id);
    r = post(path, key(fin), NULL, NULL);
    a->status = r.status;
    if (r.json && sv(r.json, "number"))
        snprintf(a->number, sizeof a->number, "%s", sv(r.json, "number"));
    http_resp_free(&r);
    return NULL;
}

Test(invoices_api, concurrent_finalisations_are_gap_free)
{
    struct fin_arg args[CONCURRENT];
    pthread_t th[CONCURRENT];
    int seen[CONCURRENT + 1] = {0};

    /* drafts made directly (no usage needed to number them) */
    for (int i = 0; i < CONCURRENT; i++) {
        char name[32], sql[512];
        json_t *t;
        snprintf(name, sizeof name, "tenant-c%d", i);
        t = tallyd_account(&srv, name, "tenant");
        snprintf(sql, sizeof sql,
                 "INSERT INTO invoices (id, tenant_id, period, currency, state, lines, records, "
                 "total_micros) VALUES (tally_invoice_new_id('inv'), '%s', '2026-01', 'USD', "
                 "'draft', '[]', 0, 0) RETURNING id",
                 sv(t, "id"));
        snprintf(args[i].id, sizeof args[i].id, "%s", sql1(sql));
        args[i].number[0] = '\0';
        json_decref(t);
    }
    for (int i = 0; i < CONCURRENT; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, finalize_one, &args[i]), 0);
    for (int i = 0; i < CONCURRENT; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CONCURRENT; i++) {
        int n;
        cr_assert_eq(args[i].status, 200, "finalize %s: %ld", args[i].id, args[i].status);
        cr_assert_eq(sscanf(args[i].number, "INV-%8d", &n), 1, "%s", args[i].number);
        cr_assert(n >= 1 && n <= CONCURRENT && !seen[n], "number %d twice or out of range", n);
        seen[n] = 1;
    }
    cr_assert_str_eq(sql1("SELECT last FROM invoice_counters WHERE series = 'INV'"), "8");
}

/* ---- credit notes racing for one invoice's remainder are serialised --------------------- */

#define CN_ROUNDS 4

struct cn_arg {
    char path[128], idem[32];
    long status;
};

static void *credit_one(void *p)
{
    struct cn_arg *a = p;
    http_resp r = post(a->path, key(fin), a->idem, "{\"amount\":\"0.60\",\"reason\":\"race\"}");

    a->status = r.status;
    http_resp_free(&r);
    return NULL;
}

/* The tenant's wallet (10.00) and the platform's revenue account (a capture without a
 * provider), which credit notes move money between. */
static void wallet_and_revenue(void)
{
    char path[128];
    http_resp r;

    deposit(ten, "10.00");
    r = post("/v1/ledger/holds", key(ten), "h-cn",
             "{\"currency\":\"USD\",\"amount\":\"1\",\"expires_in_s\":60}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(path, sizeof path, "/v1/ledger/holds/%s/capture", sv(r.json, "id"));
    http_resp_free(&r);
    r = post(path, srv.admin_key, NULL, "{\"amount\":\"1\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
}

Test(invoices_api, racing_credit_notes_never_exceed_the_invoice)
{
    char sql[768];

    wallet_and_revenue();

    for (int round = 0; round < CN_ROUNDS; round++) {
        struct cn_arg a[2];
        pthread_t th[2];
        char inv[48];
        int created = 0, refused = 0;

        /* a final invoice of 1.00 made directly (finalisation is tested above) */
        snprintf(sql, sizeof sql,
                 "INSERT INTO invoices (id, tenant_id, period, currency, state, seq, number, "
                 "lines, records, total_micros, document, kid, signature, finalized_at) VALUES "
                 "(tally_invoice_new_id('inv'), '%s', '2025-0%d', 'USD', 'final', %d, "
                 "'INV-RACE-%d', '[{\"payer\":\"tenant\",\"amount\":1000000}]', 1, 1000000, "
                 "'{}', 'k', repeat('0', 128), now()) RETURNING id",
                 sv(ten, "id"), round + 1, 9000 + round, round);
        snprintf(inv, sizeof inv, "%s", sql1(sql));
        /* two notes of 0.60 at once: together they would exceed the 1.00 total */
        for (int i = 0; i < 2; i++) {
            snprintf(a[i].path, sizeof a[i].path, "/v1/invoices/%s/credit-notes", inv);
            snprintf(a[i].idem, sizeof a[i].idem, "race-%d-%d", round, i);
            cr_assert_eq(pthread_create(&th[i], NULL, credit_one, &a[i]), 0);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            created += a[i].status == 201;
            refused += a[i].status == 422;
        }
        cr_assert_eq(created, 1, "round %d: one note of 0.60 fits (%ld, %ld)", round, a[0].status,
                     a[1].status);
        cr_assert_eq(refused, 1, "round %d: the other exceeds the rest (%ld, %ld)", round,
                     a[0].status, a[1].status);
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT coalesce(sum(amount_micros), 0) FROM credit_notes WHERE "
                 "invoice_id = '%s') || '/' || (SELECT count(*) FROM ledger_transactions WHERE "
                 "invoice_id = '%s')",
                 inv, inv);
        cr_assert_str_eq(sql1(sql), "600000/1", "round %d: credited once, moved once", round);
    }
}

/* ---- a credit note cut off between its money and its document is finished ---------------- */

/* What a crash right after the request was written down leaves: a pending intent (migration
 * 0017), no ledger adjustment, no note. The janitor finishes it within seconds of it being
 * 10 s old, exactly once; a retry under the same key answers with that note; another body
 * under the key is refused; the remainder counts it. */
Test(invoices_api, a_pending_credit_note_is_finished_by_the_janitor_once)
{
    char sql[1024], inv[48], path[128], number[32];
    const char *body = "{\"amount\":\"0.40\",\"reason\":\"cut off\"}";
    http_resp r;
    int waited = 0;

    wallet_and_revenue();
    snprintf(sql, sizeof sql,
             "INSERT INTO invoices (id, tenant_id, period, currency, state, seq, number, lines, "
             "records, total_micros, document, kid, signature, finalized_at) VALUES "
             "(tally_invoice_new_id('inv'), '%s', '2024-01', 'USD', 'final', 9900, 'INV-CRASH', "
             "'[{\"payer\":\"tenant\",\"amount\":1000000}]', 1, 1000000, '{}', 'k', "
             "repeat('0', 128), now()) RETURNING id",
             sv(ten, "id"));
    snprintf(inv, sizeof inv, "%s", sql1(sql));
    snprintf(sql, sizeof sql,
             "INSERT INTO credit_note_intents (caller, invoice_id, idem_key, caller_role, "
             "amount_micros, reason, created_at) VALUES ('%s', '%s', 'crash-1', %d, 400000, "
             "'cut off', now() - interval '1 minute') RETURNING state",
             sv(fin, "id"), inv, 1 << 2 /* ROLE_FINANCE */);
    cr_assert_str_eq(sql1(sql), "pending");

    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM credit_notes WHERE invoice_id = '%s') || '/' || "
             "(SELECT count(*) FROM ledger_transactions WHERE invoice_id = '%s') || '/' || "
             "(SELECT state FROM credit_note_intents WHERE invoice_id = '%s')",
             inv, inv, inv);
    while (strcmp(sql1(sql), "1/1/done") != 0 && waited++ < 300)
        usleep(100 * 1000); /* the janitor ticks every second; 30 s for a loaded machine */
    cr_assert_str_eq(sql1(sql), "1/1/done",
                     "finished within 30 s: one note, one adjustment (notes/adjustments/intent)");
    snprintf(sql, sizeof sql,
             "SELECT number || ' ' || amount_micros || ' ' || reason FROM credit_notes WHERE "
             "invoice_id = '%s'",
             inv);
    snprintf(number, sizeof number, "%s", sql1(sql));
    cr_assert(strstr(number, " 400000 cut off"), "%s", number);
    number[strcspn(number, " ")] = '\0';

    /* the client's retry gets that note; the money moved once */
    snprintf(path, sizeof path, "/v1/invoices/%s/credit-notes", inv);
    r = post(path, key(fin), "crash-1", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "number"), number);
    http_resp_free(&r);
    r = post(path, key(fin), "crash-1", "{\"amount\":\"0.50\",\"reason\":\"cut off\"}");
    cr_assert_eq(r.status, 422, "another body under the key: %s", r.body);
    cr_assert(strstr(r.body, "idempotency-key-reused"), "%s", r.body);
    http_resp_free(&r);
    r = post(path, key(fin), "crash-2", "{\"amount\":\"0.61\",\"reason\":\"too much\"}");
    cr_assert_eq(r.status, 422, "0.60 remains: %s", r.body);
    http_resp_free(&r);
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM credit_notes WHERE invoice_id = '%s') || '/' || "
             "(SELECT count(*) FROM ledger_transactions WHERE invoice_id = '%s')",
             inv, inv);
    cr_assert_str_eq(sql1(sql), "1/1", "nothing more moved or stored");

    /* reconciliation agrees; an intent the ledger cannot honour (more than remains) is
     * refused by the janitor, moves nothing, and reconciliation names it */
    r = get("/v1/reports/reconciliation", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "agrees")), "%s", r.body);
    http_resp_free(&r);
    snprintf(sql, sizeof sql,
             "INSERT INTO credit_note_intents (caller, invoice_id, idem_key, caller_role, "
             "amount_micros, reason, created_at) VALUES ('%s', '%s', 'crash-3', %d, 5000000, "
             "'too much', now() - interval '2 minutes')",
             sv(fin, "id"), inv, 1 << 2 /* ROLE_FINANCE */);
    sql1(sql);
    snprintf(sql, sizeof sql,
             "SELECT state FROM credit_note_intents WHERE idem_key = 'crash-3' AND invoice_id = "
             "'%s'",
             inv);
    for (waited = 0; strcmp(sql1(sql), "refused") != 0 && waited < 300; waited++)
        usleep(100 * 1000);
    cr_assert_str_eq(sql1(sql), "refused", "the janitor refuses what exceeds the invoice");
    r = get("/v1/reports/reconciliation", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_false(json_object_get(r.json, "agrees")), "%s", r.body);
    cr_assert(strstr(r.body, "\"credit_note_state\"") && strstr(r.body, "crash-3") &&
                  strstr(r.body, "was refused after it was written down"),
              "%s", r.body);
    http_resp_free(&r);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ledger_transactions WHERE invoice_id = '%s'",
             inv);
    cr_assert_str_eq(sql1(sql), "1", "the refused intent moved nothing");
}
