/*
 * End-to-end: pricing policies, versions, utilisation and signed quotes.
 *
 * Hand-checked quote (catalog 2026-11-25.1, efficiency v1):
 *   8 x H100 SXM, llm-train, one hour = 11 397 888 mCU (see test_metering_api.c);
 *   device time 8 x 3 600 000 ms = 28 800 000 device-ms = 8 device-hours.
 *   Policy: base 0.002 per CU and 0.50 per device-hour; free allowance 100 CU.
 *   CU line: (11 397 888 - 100 000) mCU x 0.002 / 1000 = 22.595776
 *   device-hour line: 8 x 0.50 = 4.000000
 *   Tuesday 2026-12-01 10:00 UTC is 11:00 in Berlin, inside the 09:00-18:00 peak
 *   window at x1.5: +0.5 x (22.595776 + 4.000000) = 13.297888
 *   total = 22.595776 + 4 + 13.297888 = 39.893664
 *   platform fee 5 % paid by the provider: 1.994683(2) -> 1.994683 (half-even),
 *   provider net = 39.893664 - 1.994683 = 37.898981
 */
#include "quote_proof.h"
#include "testdb.h"
#include "testhttp.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *prov2, *ten, *ten2;

static const char *key(json_t *a)
{
    return json_string_value(json_object_get(a, "api_key"));
}

static const char *sv(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, NULL);
    prov = tallyd_account(&srv, "gpu-provider", "provider");
    prov2 = tallyd_account(&srv, "other-provider", "provider");
    ten = tallyd_account(&srv, "tenant-a", "tenant");
    ten2 = tallyd_account(&srv, "tenant-b", "tenant");
}

static void teardown(void)
{
    json_decref(prov);
    json_decref(prov2);
    json_decref(ten);
    json_decref(ten2);
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(pricing_api, .init = setup, .fini = teardown, .timeout = 90);

static http_resp post(const char *path, const char *k, const char *body)
{
    return http_request(&srv, "POST", path, k, NULL, body, strlen(body));
}

static const char policy_body[] =
    "{\"name\":\"H100 on "
    "demand\",\"document\":{\"currency\":\"USD\",\"timezone\":\"Europe/Berlin\","
    "\"rules\":[{\"id\":\"gpu-base\",\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},"
    "\"per_cu\":\"0.002\",\"per_device_hour\":\"0.50\"},"
    "{\"id\":\"tod\",\"kind\":\"time_window\",\"windows\":[{\"name\":\"peak\",\"days\":[\"mon\","
    "\"tue\",\"wed\",\"thu\",\"fri\"],\"start\":\"09:00\",\"end\":\"18:00\",\"multiplier_ppm\":"
    "1500000}]},{\"id\":\"free\",\"kind\":\"allowance\",\"unit\":\"cu\",\"quantity\":100000},"
    "{\"id\":\"vip\",\"kind\":\"contract\",\"tenant\":\"%s\",\"discount_ppm\":100000}]}}";

/* Create the provider policy (with a contract for tenant-b) and the platform fee policy. */
static char *make_policies(void)
{
    char body[2048];
    static char id[48];
    http_resp r;
    snprintf(body, sizeof body, policy_body, sv(ten2, "id"));
    r = post("/v1/pricing/policies", key(prov), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof id, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    r = post("/v1/pricing/policies", srv.admin_key,
             "{\"name\":\"platform\",\"document\":{\"currency\":\"USD\",\"scope\":\"platform\","
             "\"rules\":[{\"id\":\"take\",\"kind\":\"platform_fee\",\"take_ppm\":50000,"
             "\"payer\":\"provider\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    return id;
}

static http_resp quote(const char *k, const char *policy, const char *extra)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"policy_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":"
             "\"llm-train\",\"wall_ms\":3600000,\"start\":\"2026-12-01T10:00:00Z\"%s}",
             policy, extra ? extra : "");
    return post("/v1/quotes", k, body);
}

/* The public key of the service key kid, as GET /v1/ledger/keys publishes it. */
static void service_pk(const char *kid, unsigned char pk[32])
{
    static char last_kid[32];
    static unsigned char last_pk[32];
    http_resp r;
    size_t i;
    json_t *k;
    int found = 0;

    if (!strcmp(kid, last_kid)) {
        memcpy(pk, last_pk, 32);
        return;
    }
    r = http_request(&srv, "GET", "/v1/ledger/keys", key(ten), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_array_foreach(json_object_get(r.json, "data"), i, k)
    {
        if (!strcmp(sv(k, "kid"), kid)) {
            cr_assert_eq(sodium_hex2bin(pk, 32, sv(k, "public_key"), 64, NULL, NULL, NULL), 0);
            found = 1;
        }
    }
    cr_assert(found, "key %s is not published: %s", kid, r.body);
    http_resp_free(&r);
    snprintf(last_kid, sizeof last_kid, "%s", kid);
    memcpy(last_pk, pk, 32);
}

/* The canonical bytes of a returned quote: without signature (and expired). */
static char *quote_canon(const json_t *quote)
{
    json_t *doc = json_deep_copy(quote);
    char *canon;

    json_object_del(doc, "signature");
    json_object_del(doc, "expired");
    canon = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return canon;
}

/* Offline check of a batch-signed quote from its signature object: canonical
 * document (canon; NULL: from the quote) -> leaf -> path -> root -> Ed25519
 * with the published key. sig may be a tampered copy. LEDGER_OK or the
 * failure. */
static ledger_err quote_check(const json_t *quote, const json_t *sig, const char *canon)
{
    ledger_merkle_proof p = {0};
    unsigned char pk[32], root[32], s64[64];
    char *own = canon ? NULL : quote_canon(quote);
    size_t i;
    json_t *h;
    ledger_err rc;

    cr_assert_str_eq(sv((json_t *)sig, "alg"), "Ed25519");
    cr_assert_str_eq(sv((json_t *)sig, "signed"), "tally-quote-batch-v1 || Merkle root");
    service_pk(sv((json_t *)sig, "kid"), pk);
    cr_assert_eq(sodium_hex2bin(root, 32, sv((json_t *)sig, "root"), 64, NULL, NULL, NULL), 0);
    cr_assert_eq(sodium_hex2bin(s64, 64, sv((json_t *)sig, "value"), 128, NULL, NULL, NULL), 0);
    p.index = (uint32_t)json_integer_value(json_object_get(sig, "leaf_index"));
    p.size = (uint32_t)json_integer_value(json_object_get(sig, "batch_size"));
    json_array_foreach(json_object_get(sig, "path"), i, h)
    {
        cr_assert_lt(i, (size_t)LEDGER_MERKLE_MAX_PATH);
        cr_assert_eq(sodium_hex2bin(p.path[i], 32, json_string_value(h), 64, NULL, NULL, NULL), 0);
        p.n_path = i + 1;
    }
    canon = canon ? canon : own;
    rc = quote_proof_verify(canon, strlen(canon), &p, root, s64, pk, NULL);
    free(own);
    return rc;
}

/* A quote verifies offline; one byte of its document, or of its path, changed
 * does not. Returns the quote's batch size. */
static long assert_signed(const json_t *quote)
{
    const json_t *sig = json_object_get(quote, "signature");
    char *canon = quote_canon(quote);
    json_t *bad;

    cr_assert_not_null(sig, "no signature");
    cr_assert_eq(quote_check(quote, sig, NULL), LEDGER_OK, "quote %s verifies",
                 sv((json_t *)quote, "id"));
    canon[strlen(canon) / 2] ^= 1;
    cr_assert_neq(quote_check(quote, sig, canon), LEDGER_OK, "a changed document is detected");
    free(canon);
    if (json_array_size(json_object_get(sig, "path")) > 0) {
        char h[65];
        bad = json_deep_copy(sig);
        snprintf(h, sizeof h, "%s",
                 json_string_value(json_array_get(json_object_get(bad, "path"), 0)));
        h[7] = h[7] == '0' ? '1' : '0';
        json_array_set_new(json_object_get(bad, "path"), 0, json_string(h));
        cr_assert_neq(quote_check(quote, bad, NULL), LEDGER_OK, "a changed path is detected");
        json_decref(bad);
    }
    return (long)json_integer_value(json_object_get(sig, "batch_size"));
}

Test(pricing_api, quote_is_hand_checked_and_signed)
{
    char *pol = make_policies();
    http_resp r = quote(key(ten), pol, NULL);
    json_t *doc;
    char path[600];
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "total"), "39.893664", "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "total_micros")), 39893664);
    cr_assert_str_eq(sv(r.json, "provider_net"), "37.898981");
    cr_assert_str_eq(sv(json_object_get(r.json, "provider_fee"), "amount"), "1.994683");
    {
        long long sum = 0;
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(r.json, "lines"), i, l) sum +=
            json_integer_value(json_object_get(l, "amount_micros"));
        cr_assert_eq(sum, 39893664, "lines sum to the total");
    }
    /* verify the signature with the service's public key (a lone quote: a batch of one) */
    cr_assert_eq(assert_signed(r.json), 1);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r.json, "signature"), "path")), 0);
    doc = json_deep_copy(r.json);
    /* read back: own tenant yes, another tenant no */
    snprintf(path, sizeof path, "/v1/quotes/%s", sv(doc, "id"));
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, key(ten), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_false(json_object_get(r.json, "expired")));
    cr_assert(json_equal(json_object_get(r.json, "signature"), json_object_get(doc, "signature")),
              "GET returns the signature object of the POST: %s", r.body);
    assert_signed(r.json);
    cr_assert_str_eq(sv(r.json, "total"), "39.893664");
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, key(ten2), NULL, NULL, 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    json_decref(doc);
    cr_assert_null(testdb_exec(ci, "UPDATE quotes SET total_micros = 1"), "quotes are immutable");
}

Test(pricing_api, contract_discount_applies_to_its_tenant_only)
{
    char *pol = make_policies();
    http_resp r = quote(key(ten2), pol, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    /* 10 % off 39.893664 = 3.9893664 -> discount line -3.989366 (half-even) */
    cr_assert_str_eq(sv(r.json, "total"), "35.904298", "%s", r.body);
    http_resp_free(&r);
}

Test(pricing_api, tenants_never_see_other_tenants_contracts)
{
    char *pol = make_policies(), path[128];
    http_resp r;
    snprintf(path, sizeof path, "/v1/pricing/policies/%s", pol);
    r = http_request(&srv, "GET", path, key(ten), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_null(strstr(r.body, sv(ten2, "id")), "contract of tenant-b leaked: %s", r.body);
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, key(ten2), NULL, NULL, 0);
    cr_assert(strstr(r.body, sv(ten2, "id")), "a tenant sees its own contract");
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, key(prov2), NULL, NULL, 0);
    cr_assert_eq(r.status, 404, "another provider cannot read it");
    http_resp_free(&r);
}

Test(pricing_api, versions_are_immutable_and_owned)
{
    char *pol = make_policies(), path[128], body[2048];
    http_resp r;
    snprintf(path, sizeof path, "/v1/pricing/policies/%s/versions", pol);
    snprintf(body, sizeof body, "{\"document\":%s}", strstr(policy_body, "{\"currency\""));
    /* the document template has one %s: fill it through a second snprintf */
    {
        char doc[2048];
        snprintf(doc, sizeof doc, policy_body, sv(ten, "id"));
        snprintf(body, sizeof body, "{\"document\":%s", strstr(doc, "{\"currency\""));
    }
    r = post(path, key(prov2), body);
    cr_assert_eq(r.status, 404, "another provider cannot add a version: %s", r.body);
    http_resp_free(&r);
    r = post(path, key(prov), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 2);
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, key(prov), NULL, NULL, 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/pricing/policies/%s?version=1", pol);
    r = http_request(&srv, "GET", path, key(prov), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "version")), 1);
    http_resp_free(&r);
    /* a quote may pin the old version */
    r = quote(key(ten2), pol, ",\"policy_version\":1");
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "policy"), "version")),
                 1);
    http_resp_free(&r);
    cr_assert_null(testdb_exec(ci, "DELETE FROM pricing_policy_versions"));
}

Test(pricing_api, bad_policies_are_422_with_the_path)
{
    static const struct {
        const char *doc, *field;
    } cases[] = {
        {"{\"currency\":\"USD\",\"rules\":[{\"id\":\"t\",\"kind\":\"tiers\",\"unit\":\"cu\","
         "\"mode\":\"graduated\",\"tiers\":[{\"from\":0,\"to\":10,\"price\":\"1\"},{\"from\":20,"
         "\"price\":\"1\"}]}]}",
         "document.rules[0].tiers[1].from"},
        {"{\"currency\":\"USD\",\"rules\":[{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":1.5}]}",
         "document.rules[0].per_cu"},
        {"{\"currency\":\"USD\",\"rules\":[{\"id\":\"b\",\"kind\":\"warp\"}]}",
         "document.rules[0].kind"},
        {"{\"currency\":\"USD\",\"timezone\":\"Mars/Olympus\",\"rules\":[{\"id\":\"w\",\"kind\":"
         "\"time_window\",\"windows\":[{\"name\":\"p\",\"days\":[\"mon\"],\"start\":\"09:00\","
         "\"end\":\"10:00\",\"multiplier_ppm\":1500000}]}]}",
         "document.timezone"},
        {"{\"currency\":\"usd\",\"rules\":[{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"1\"}]}",
         "document.currency"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[2048];
        http_resp r;
        snprintf(body, sizeof body, "{\"name\":\"bad\",\"document\":%s}", cases[i].doc);
        r = post("/v1/pricing/policies", key(prov), body);
        cr_assert_eq(r.status, 422, "case %zu: %ld %s", i, r.status, r.body);
        cr_assert_str_eq(sv(r.json, "field"), cases[i].field, "case %zu: %s", i, r.body);
        http_resp_free(&r);
    }
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM pricing_policies"), "0");
    /* roles */
    {
        http_resp r = post("/v1/pricing/policies", key(ten),
                           "{\"name\":\"x\",\"document\":{\"currency\":\"USD\",\"rules\":[]}}");
        cr_assert_eq(r.status, 403);
        http_resp_free(&r);
        r = post("/v1/pricing/policies", key(prov),
                 "{\"name\":\"x\",\"document\":{\"currency\":\"USD\",\"scope\":\"platform\","
                 "\"rules\":[{\"id\":\"f\",\"kind\":\"platform_fee\",\"take_ppm\":1}]}}");
        cr_assert_eq(r.status, 403, "a provider cannot set the platform fee: %s", r.body);
        http_resp_free(&r);
    }
}

Test(pricing_api, bad_quotes_change_nothing)
{
    char *pol = make_policies();
    http_resp r = quote(key(ten), "pol_00000000000000000000000000", NULL);
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(sv(r.json, "field"), "policy_id");
    http_resp_free(&r);
    r = post("/v1/quotes", key(ten),
             "{\"policy_id\":\"pol_00000000000000000000000000\",\"device\":\"nvidia-h100-sxm\","
             "\"profile\":\"llm-train\",\"wall_ms\":1000,\"start\":\"2001-01-01T00:00:00Z\"}");
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(sv(r.json, "field"), "start");
    http_resp_free(&r);
    r = quote(key(ten), pol, ",\"tenant\":\"acc_00000000000000000000000000\"");
    cr_assert_eq(r.status, 403, "a tenant cannot quote for another");
    http_resp_free(&r);
    r = post("/v1/quotes", key(ten), "{\"policy_id\":\"x\"}");
    cr_assert_eq(r.status, 422);
    http_resp_free(&r);
    r = quote(key(prov), pol, NULL);
    cr_assert_eq(r.status, 403, "providers do not buy");
    http_resp_free(&r);
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM quotes"), "0");
}

Test(pricing_api, spot_needs_and_records_utilisation)
{
    http_resp r = post("/v1/pricing/policies", key(prov),
                       "{\"name\":\"spot\",\"document\":{\"currency\":\"USD\",\"rules\":[{\"id\":"
                       "\"s\",\"kind\":\"spot\",\"unit\":\"cu\",\"curve\":[{\"utilisation_ppm\":0,"
                       "\"price\":\"0.001\"},{\"utilisation_ppm\":1000000,\"price\":\"0.003\"}],"
                       "\"floor\":\"0.001\",\"cap\":\"0.003\"}]}}");
    char pol[48];
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(pol, sizeof pol, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    r = quote(key(ten), pol, NULL);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "field"), "device");
    http_resp_free(&r);
    r = post("/v1/pricing/utilisation", key(prov),
             "{\"device\":\"nvidia-h100-sxm\",\"utilisation_ppm\":500000}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    r = quote(key(ten), pol, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "utilisation_ppm")), 500000);
    /* at 50 % the curve gives 0.002 per CU: 11 397.888 CU x 0.002 = 22.795776 */
    cr_assert_str_eq(sv(r.json, "total"), "22.795776", "%s", r.body);
    http_resp_free(&r);
}

Test(pricing_api, quote_idempotency)
{
    char *pol = make_policies();
    const char *hdr[] = {"Idempotency-Key: q-1", NULL};
    char body[512];
    http_resp a, b;
    snprintf(body, sizeof body,
             "{\"policy_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"profile\":\"llm-train\","
             "\"wall_ms\":60000}",
             pol);
    a = http_request(&srv, "POST", "/v1/quotes", key(ten), hdr, body, strlen(body));
    b = http_request(&srv, "POST", "/v1/quotes", key(ten), hdr, body, strlen(body));
    cr_assert_eq(a.status, 201, "%s", a.body);
    cr_assert_eq(b.status, 201);
    cr_assert_str_eq(sv(a.json, "id"), sv(b.json, "id"));
    cr_assert_str_eq(http_header_value(&b, "idempotent-replayed"), "true");
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM quotes"), "1");
    http_resp_free(&a);
    http_resp_free(&b);
}

/* GET /v1/quotes/{id} as k: the status, and the stored total when found. */
static long get_quote(const char *k, const char *id, char *total, size_t len)
{
    char path[128];
    http_resp r;
    long st;

    snprintf(path, sizeof path, "/v1/quotes/%s", id);
    r = http_request(&srv, "GET", path, k, NULL, NULL, 0);
    st = r.status;
    if (total)
        snprintf(total, len, "%s", st == 200 ? sv(r.json, "total") : "");
    http_resp_free(&r);
    return st;
}

/* Quotes after the first are rated and signed from the cached inputs and
 * stored by the group writer: each one is signed, readable right after its
 * 201, and identical in price to the one rated from the database. */
Test(pricing_api, cached_quotes_are_signed_and_stored_before_the_reply)
{
    char *pol = make_policies(), total[40];
    for (int i = 0; i < 4; i++) {
        http_resp r = quote(key(ten), pol, NULL);
        cr_assert_eq(r.status, 201, "quote %d: %s", i, r.body);
        cr_assert_str_eq(sv(r.json, "total"), "39.893664", "quote %d: %s", i, r.body);
        assert_signed(r.json);
        cr_assert_eq(get_quote(key(ten), sv(r.json, "id"), total, sizeof total), 200, "quote %d",
                     i);
        cr_assert_str_eq(total, "39.893664");
        http_resp_free(&r);
    }
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM quotes"), "4");
}

struct burst {
    const char *pol;
    int ok;
    json_t *quotes[8];
};

static void *quote_burst(void *arg)
{
    struct burst *b = arg;
    for (int i = 0; i < 8; i++) {
        http_resp r = quote(key(ten), b->pol, NULL);
        if (r.status == 201 && sv(r.json, "id"))
            b->quotes[b->ok++] = json_incref(r.json);
        http_resp_free(&r);
    }
    return NULL;
}

/* Concurrent quotes share batches (one COPY, one signature): every 201 is a
 * stored row, every quote verifies offline from its own signature object,
 * and GET returns the same object. */
Test(pricing_api, concurrent_quotes_are_all_stored)
{
    char *pol = make_policies(), path[80];
    struct burst b[16];
    pthread_t t[16];
    long largest = 0;
    http_resp r = quote(key(ten), pol, NULL); /* loads the inputs into the cache */
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    memset(b, 0, sizeof b);
    for (int i = 0; i < 16; i++) {
        b[i].pol = pol;
        cr_assert_eq(pthread_create(&t[i], NULL, quote_burst, &b[i]), 0);
    }
    for (int i = 0; i < 16; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(b[i].ok, 8, "thread %d: %d of 8 quotes answered 201", i, b[i].ok);
        for (int k = 0; k < 8; k++) {
            long n = assert_signed(b[i].quotes[k]);
            largest = n > largest ? n : largest;
        }
        snprintf(path, sizeof path, "/v1/quotes/%s", sv(b[i].quotes[i % 8], "id"));
        r = http_request(&srv, "GET", path, key(ten), NULL, NULL, 0);
        cr_assert_eq(r.status, 200);
        cr_assert(json_equal(json_object_get(r.json, "signature"),
                             json_object_get(b[i].quotes[i % 8], "signature")),
                  "%s", r.body);
        assert_signed(r.json);
        http_resp_free(&r);
        for (int k = 0; k < 8; k++)
            json_decref(b[i].quotes[k]);
    }
    cr_assert_gt(largest, 1, "128 concurrent quotes formed batches of more than one");
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM quotes"), "129");
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(DISTINCT id) FROM quotes"), "129");
    cr_assert_str_eq(testdb_exec(ci, "SELECT sum(n) FROM quote_batches"), "129",
                     "every quote is in exactly one batch");
}

/* A quote stored before migration 0015 (signed on its own over
 * "tally-quote-v1\n" || canonical JSON, no batch) reads back with that
 * signature, which verifies with the service key. */
Test(pricing_api, quotes_signed_one_by_one_stay_readable)
{
    char *pol = make_policies(), *canon, id[48], sql[8192], sighex[129], path[600];
    unsigned char pk[32], sk[64], seed[32], sig[64], *msg;
    http_resp r = quote(key(ten), pol, NULL);
    json_t *doc, *keyfile;
    size_t n;

    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(path, sizeof path, "%s/signing.key", srv.dir);
    keyfile = json_load_file(path, 0, NULL);
    cr_assert_eq(sodium_hex2bin(seed, 32, sv(keyfile, "seed"), 64, NULL, NULL, NULL), 0);
    crypto_sign_seed_keypair(pk, sk, seed);
    /* a v1 row as the writer stored it before 0015 */
    snprintf(id, sizeof id, "quo_7%s", sv(r.json, "id") + 5);
    doc = json_deep_copy(r.json);
    json_object_del(doc, "signature");
    json_object_set_new(doc, "id", json_string(id));
    canon = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    n = strlen(canon) + 15;
    msg = malloc(n);
    memcpy(msg, "tally-quote-v1\n", 15);
    memcpy(msg + 15, canon, n - 15);
    crypto_sign_detached(sig, NULL, msg, n, sk);
    sodium_bin2hex(sighex, sizeof sighex, sig, 64);
    snprintf(sql, sizeof sql,
             "INSERT INTO quotes (id, tenant_id, policy_id, policy_version, currency, "
             "total_micros, document, kid, signature, expires_at) SELECT '%s', tenant_id, "
             "policy_id, policy_version, currency, total_micros, '%s', '%s', '%s', expires_at "
             "FROM quotes WHERE id = '%s'",
             id, canon, sv(json_object_get(r.json, "signature"), "kid"), sighex, sv(r.json, "id"));
    cr_assert_not_null(testdb_exec(ci, sql), "%s", testdb_error());
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/quotes/%s", id);
    r = http_request(&srv, "GET", path, key(ten), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(json_object_get(r.json, "signature"), "signed"),
                     "tally-quote-v1\\n || canonical JSON", "%s", r.body);
    cr_assert_str_eq(sv(json_object_get(r.json, "signature"), "value"), sighex);
    free(canon);
    canon = quote_canon(r.json);
    memcpy(msg + 15, canon, n - 15);
    cr_assert_eq(strlen(canon), n - 15);
    cr_assert_eq(crypto_sign_verify_detached(sig, msg, n, pk), 0, "the v1 signature verifies");
    msg[20] ^= 1;
    cr_assert_neq(crypto_sign_verify_detached(sig, msg, n, pk), 0, "tampering is detected");
    free(msg);
    free(canon);
    json_decref(doc);
    json_decref(keyfile);
    http_resp_free(&r);
}

/* A change committed through this process is used by the very next quote:
 * a new utilisation report and a new policy version, each after a quote that
 * cached the previous inputs. */
Test(pricing_api, quote_inputs_follow_changes_at_once)
{
    static const char spot[] =
        "{\"currency\":\"USD\",\"rules\":[{\"id\":\"s\",\"kind\":\"spot\",\"unit\":\"cu\","
        "\"curve\":[{\"utilisation_ppm\":0,\"price\":\"0.001\"},{\"utilisation_ppm\":1000000,"
        "\"price\":\"%s\"}],\"floor\":\"0.001\",\"cap\":\"0.005\"}]}";
    char body[1024], doc[768], pol[48], path[128];
    http_resp r;

    snprintf(doc, sizeof doc, spot, "0.003");
    snprintf(body, sizeof body, "{\"name\":\"spot\",\"document\":%s}", doc);
    r = post("/v1/pricing/policies", key(prov), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(pol, sizeof pol, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    r = post("/v1/pricing/utilisation", key(prov),
             "{\"device\":\"nvidia-h100-sxm\",\"utilisation_ppm\":500000}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    for (int i = 0; i < 2; i++) { /* 11 397.888 CU x 0.002 */
        r = quote(key(ten), pol, NULL);
        cr_assert_str_eq(sv(r.json, "total"), "22.795776", "%s", r.body);
        http_resp_free(&r);
    }
    r = post("/v1/pricing/utilisation", key(prov),
             "{\"device\":\"nvidia-h100-sxm\",\"utilisation_ppm\":750000}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    r = quote(key(ten), pol, NULL); /* 0.001 + 0.75 x 0.002 = 0.0025 per CU: 28.494720 */
    cr_assert_eq(json_integer_value(json_object_get(r.json, "utilisation_ppm")), 750000, "%s",
                 r.body);
    cr_assert_str_eq(sv(r.json, "total"), "28.494720", "%s", r.body);
    http_resp_free(&r);
    /* version 2 tops the curve at 0.005: 0.001 + 0.75 x 0.004 = 0.004 per CU: 45.591552 */
    snprintf(doc, sizeof doc, spot, "0.005");
    snprintf(body, sizeof body, "{\"document\":%s}", doc);
    snprintf(path, sizeof path, "/v1/pricing/policies/%s/versions", pol);
    r = post(path, key(prov), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    r = quote(key(ten), pol, NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "policy"), "version")),
                 2, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "total"), "45.591552", "%s", r.body);
    http_resp_free(&r);
}

/* Issue 4's bad inputs, each a 4xx problem naming its field, none leaving a
 * trace: unknown policy (and version), a window in the past, overflow (on the
 * database path and again on the cached path), overlapping and gapped tiers,
 * an unknown time zone, an out-of-range validity; an expired quote reads as
 * expired. */
Test(pricing_api, issue_bad_inputs_are_4xx_and_change_nothing)
{
    static const struct {
        const char *doc, *field;
    } bad_policies[] = {
        {"{\"currency\":\"USD\",\"rules\":[{\"id\":\"t\",\"kind\":\"tiers\",\"unit\":\"cu\","
         "\"mode\":\"graduated\",\"tiers\":[{\"from\":0,\"to\":20,\"price\":\"1\"},{\"from\":10,"
         "\"price\":\"1\"}]}]}",
         "document.rules[0].tiers[1].from"}, /* overlap */
        {"{\"currency\":\"USD\",\"rules\":[{\"id\":\"t\",\"kind\":\"tiers\",\"unit\":\"cu\","
         "\"mode\":\"volume\",\"tiers\":[{\"from\":0,\"to\":10,\"price\":\"1\"},{\"from\":20,"
         "\"price\":\"1\"}]}]}",
         "document.rules[0].tiers[1].from"}, /* gap */
        {"{\"currency\":\"USD\",\"timezone\":\"Europe/Atlantis\",\"rules\":[{\"id\":\"w\","
         "\"kind\":\"time_window\",\"windows\":[{\"name\":\"p\",\"days\":[\"mon\"],\"start\":"
         "\"09:00\",\"end\":\"10:00\",\"multiplier_ppm\":1500000}]}]}",
         "document.timezone"},
    };
    char *pol = make_policies(), body[2048], maxpol[48], expired[64], sql[512], total[40];
    const char *count0;
    http_resp r;

    for (size_t i = 0; i < sizeof bad_policies / sizeof bad_policies[0]; i++) {
        snprintf(body, sizeof body, "{\"name\":\"bad\",\"document\":%s}", bad_policies[i].doc);
        r = post("/v1/pricing/policies", key(prov), body);
        cr_assert_eq(r.status, 422, "policy %zu: %s", i, r.body);
        cr_assert_str_eq(sv(r.json, "field"), bad_policies[i].field, "policy %zu: %s", i, r.body);
        http_resp_free(&r);
    }
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM pricing_policies"), "2");
    /* one good quote, so the policy's inputs are cached for the cases below */
    r = quote(key(ten), pol, NULL);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(expired, sizeof expired, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    count0 = "1";
    r = quote(key(ten), "pol_00000000000000000000000000", NULL);
    cr_assert_eq(r.status, 422, "unknown policy: %s", r.body);
    cr_assert_str_eq(sv(r.json, "field"), "policy_id");
    http_resp_free(&r);
    r = quote(key(ten), pol, ",\"policy_version\":99");
    cr_assert_eq(r.status, 422, "unknown version: %s", r.body);
    cr_assert_str_eq(sv(r.json, "field"), "policy_id");
    http_resp_free(&r);
    r = quote(key(ten), pol, ",\"valid_for_s\":30");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "field"), "valid_for_s");
    http_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"policy_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"profile\":\"llm-train\","
             "\"wall_ms\":60000,\"start\":\"2020-02-29T12:00:00Z\"}",
             pol);
    r = post("/v1/quotes", key(ten), body);
    cr_assert_eq(r.status, 422, "window in the past: %s", r.body);
    cr_assert_str_eq(sv(r.json, "field"), "start");
    http_resp_free(&r);
    /* overflow: 1 000 000 USD per CU for 40 days of 8 H100 is about 1.1e19 micro-USD */
    r = post("/v1/pricing/policies", key(prov),
             "{\"name\":\"max\",\"document\":{\"currency\":\"USD\",\"rules\":[{\"id\":\"b\","
             "\"kind\":\"base\",\"per_cu\":\"1000000\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(maxpol, sizeof maxpol, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"policy_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":"
             "\"llm-train\",\"wall_ms\":3456000000}",
             maxpol);
    for (int i = 0; i < 2; i++) { /* database path, then cached inputs */
        r = post("/v1/quotes", key(ten), body);
        cr_assert_eq(r.status, 422, "overflow %d: %s", i, r.body);
        cr_assert_str_eq(sv(r.json, "field"), "work_mcu");
        cr_assert(strstr(sv(r.json, "detail"), "overflow"), "%s", r.body);
        http_resp_free(&r);
    }
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM quotes"), count0);
    /* an expired quote (its copy, expired a minute ago) reads as expired */
    snprintf(
        sql, sizeof sql,
        "INSERT INTO quotes (id, tenant_id, policy_id, policy_version, currency, total_micros, "
        "document, batch_id, leaf_index, path, expires_at) SELECT 'quo_7' || substr(id, 6), "
        "tenant_id, policy_id, policy_version, currency, total_micros, document, batch_id, "
        "leaf_index, path, now() - interval '1 minute' FROM quotes WHERE id = '%s'",
        expired);
    cr_assert_not_null(testdb_exec(ci, sql), "%s", testdb_error());
    snprintf(sql, sizeof sql, "/v1/quotes/quo_7%s", expired + 5);
    r = http_request(&srv, "GET", sql, key(ten), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "expired")), "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(get_quote(key(ten), expired, total, sizeof total), 200);
}

/* Once an admin retires the service key, no quote is signed with it any more: the lone-quote
 * statement and the batch transaction both find the key retired and store nothing (503, the
 * operator must restart with a new key); quotes signed before stay readable and valid. */
Test(pricing_api, a_retired_signing_key_signs_no_more_quotes)
{
    const char *hdr[] = {"Idempotency-Key: after-retire", NULL};
    char *pol = make_policies(), path[128], kid[64], body[512];
    struct burst b[4];
    pthread_t t[4];
    http_resp r = quote(key(ten), pol, NULL);

    cr_assert_eq(r.status, 201, "%s", r.body);
    assert_signed(r.json);
    snprintf(kid, sizeof kid, "%s", sv(json_object_get(r.json, "signature"), "kid"));
    snprintf(path, sizeof path, "/v1/quotes/%s", sv(r.json, "id"));
    http_resp_free(&r);
    snprintf(body, sizeof body, "/v1/ledger/keys/%s/retire", kid);
    r = http_request(&srv, "POST", body, srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);

    r = quote(key(ten), pol, NULL); /* the cached path */
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert(strstr(r.body, "is retired"), "%s", r.body);
    http_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"policy_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"profile\":\"llm-train\","
             "\"wall_ms\":60000}",
             pol);
    r = http_request(&srv, "POST", "/v1/quotes", key(ten), hdr, body, strlen(body));
    cr_assert_eq(r.status, 503, "the idempotent path: %s", r.body);
    http_resp_free(&r);
    cr_assert_str_eq(
        testdb_exec(ci, "SELECT count(*) FROM idempotency_keys WHERE key = 'after-retire'"), "0",
        "a 503 is not stored under its key: a retry after the restart runs again");
    memset(b, 0, sizeof b); /* concurrent ones, so batches of more than one meet it too */
    for (int i = 0; i < 4; i++) {
        b[i].pol = pol;
        cr_assert_eq(pthread_create(&t[i], NULL, quote_burst, &b[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(b[i].ok, 0, "thread %d: %d quotes signed by a retired key", i, b[i].ok);
    }
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) || '/' || count(DISTINCT batch_id) FROM "
                                     "quotes"),
                     "1/1", "nothing stored after the retirement");
    r = http_request(&srv, "GET", path, key(ten), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    assert_signed(r.json);
    http_resp_free(&r);
}
