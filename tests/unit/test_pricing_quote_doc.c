/*
 * test_pricing_quote_doc.c - the canonical quote text (pricing/quote_doc.c)
 * and the JSON text writer under it (pricing/jsonw.c).
 *
 * Canonical means: what jansson's json_dumps(doc, JSON_COMPACT |
 * JSON_SORT_KEYS) gives for the same document, byte for byte, because that is
 * how a verifier re-canonicalises a quote before checking its signature. So
 * each case parses the writer's text with jansson, dumps it canonically and
 * compares, besides hand-written expected text for the small cases.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "quote_doc.h"

/* The writer's text must parse and re-canonicalise to itself. */
static void assert_canonical(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    char *again;

    cr_assert_not_null(j, "not JSON (%s): %s", err.text, text);
    again = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(again, text);
    free(again);
    json_decref(j);
}

Test(jsonw, writes_compact_json_by_hand)
{
    jsonw w;
    size_t len;
    char *t;

    jw_init(&w);
    jw_open(&w);
    jw_key(&w, "a");
    jw_open_array(&w);
    jw_int(&w, 0);
    jw_int(&w, -9223372036854775807LL - 1);
    jw_int(&w, 9223372036854775807LL);
    jw_bool(&w, 1);
    jw_null(&w);
    jw_open(&w);
    jw_close(&w);
    jw_close_array(&w);
    jw_key(&w, "b");
    jw_str(&w, "x");
    jw_close(&w);
    t = jw_take(&w, &len);
    cr_assert_str_eq(t, "{\"a\":[0,-9223372036854775808,9223372036854775807,true,null,{}],"
                        "\"b\":\"x\"}");
    cr_assert_eq(len, strlen(t));
    free(t);
}

Test(jsonw, escapes_strings_exactly_like_jansson)
{
    /* every control character, the two mandatory escapes, a slash (not
     * escaped by default), DEL, and multi-byte UTF-8 (verbatim) */
    char s[64];
    size_t n = 0;
    jsonw w;
    json_t *js;
    char *mine, *theirs;

    for (int c = 1; c < 0x20; c++)
        s[n++] = (char)c;
    memcpy(s + n, "\"\\/\x7f\xc3\xa9\xe2\x82\xac", 10);
    s[n + 10] = '\0';
    jw_init(&w);
    jw_str(&w, s);
    mine = jw_take(&w, NULL);
    js = json_string(s);
    theirs = json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT);
    cr_assert_str_eq(mine, theirs);
    /* spot checks written out by hand */
    cr_assert(strstr(mine, "\\u0001\\u0002"), "%s", mine);
    cr_assert(strstr(mine, "\\b\\t\\n\\u000B\\f\\r"), "%s", mine);
    cr_assert(strstr(mine, "\\u001F\\\"\\\\/\x7f\xc3\xa9"), "%s", mine);
    free(mine);
    free(theirs);
    json_decref(js);
}

static quote_doc_meta meta(void)
{
    quote_doc_meta m = {0};
    m.id = "quo_01M8HSFWD4MT9K5PXNF5JWGFCB";
    m.tenant_id = "acc_01M8HS0WQAHN7X4Y6EY093NPZQ";
    m.policy_id = "pol_01M8HSB0J2ASFGV4HP5SS7WHG2";
    m.policy_sha256 = "45e97497e422dbec8990c3d3a74371ead6665e53cbe10ecd8c07559fb6f7942d";
    m.policy_version = 3;
    m.created_at = "2026-12-01T09:59:00.000Z";
    m.expires_at = "2026-12-01T10:14:00.000Z";
    m.interval_start = "2026-12-01T10:00:00.000Z";
    m.interval_end = "2026-12-01T11:00:00.000Z";
    m.utilisation_ppm = -1;
    m.device = "nvidia-h100-sxm";
    m.region = "";
    m.count = 8;
    m.mcu = 11397888;
    m.wall_ms = 3600000;
    m.device_ms = 28800000;
    m.profile_class = "llm-train";
    m.profile_precision = "bf16";
    m.profile_intensity_milli = 300000;
    m.catalog_version = "2026-11-25.1";
    m.efficiency_version = 1;
    return m;
}

static pricing_line line(pricing_line_kind kind, pricing_rule_kind rk, const char *rule,
                         const char *desc, pricing_qty_unit u, int64_t qty, int64_t price,
                         int64_t amount)
{
    pricing_line l = {0};
    l.kind = kind;
    l.rule_kind = rk;
    snprintf(l.rule_id, sizeof l.rule_id, "%s", rule);
    snprintf(l.description, sizeof l.description, "%s", desc);
    l.qty_unit = u;
    l.quantity = qty;
    l.unit_price = price;
    l.amount = amount;
    return l;
}

Test(quote_doc, smallest_document_by_hand)
{
    pricing_result *res = calloc(1, sizeof *res);
    quote_doc_meta m = meta();
    size_t len;
    char *t;

    snprintf(res->currency, sizeof res->currency, "EUR");
    m.mcu = 0;
    m.region = "eu";
    t = quote_doc_write(&m, res, &len);
    cr_assert_not_null(t);
    cr_assert_eq(len, strlen(t));
    cr_assert_str_eq(
        t,
        "{\"catalog_version\":\"2026-11-25.1\",\"created_at\":\"2026-12-01T09:59:00.000Z\","
        "\"currency\":\"EUR\",\"efficiency_version\":1,\"expires_at\":\"2026-12-01T10:14:00.000Z\","
        "\"id\":\"quo_01M8HSFWD4MT9K5PXNF5JWGFCB\",\"interval\":{\"end\":\"2026-12-01T11:00:00."
        "000Z\",\"start\":\"2026-12-01T10:00:00.000Z\"},\"lines\":[],\"platform_policy\":null,"
        "\"policy\":{\"id\":\"pol_01M8HSB0J2ASFGV4HP5SS7WHG2\",\"sha256\":\"45e97497e422dbec89"
        "90c3d3a74371ead6665e53cbe10ecd8c07559fb6f7942d\",\"version\":3},\"provider_fee\":null,"
        "\"provider_net\":\"0.000000\",\"tenant_id\":\"acc_01M8HS0WQAHN7X4Y6EY093NPZQ\","
        "\"total\":\"0.000000\",\"total_micros\":0,\"utilisation_ppm\":null,\"workload\":{"
        "\"count\":8,\"cu\":\"0.000\",\"device\":\"nvidia-h100-sxm\",\"device_ms\":28800000,"
        "\"mcu\":0,\"profile\":{\"class\":\"llm-train\",\"intensity_milli\":300000,"
        "\"precision\":\"bf16\"},\"region\":\"eu\",\"wall_ms\":3600000}}");
    assert_canonical(t);
    free(t);
    free(res);
}

/* The hand-checked quote of test_pricing_api.c: every optional member set, a
 * negative amount, a money-unit line (factor_ppm instead of unit_price). */
Test(quote_doc, full_document_is_canonical)
{
    pricing_result *res = calloc(1, sizeof *res);
    quote_doc_meta m = meta();
    json_t *j;
    char *t;

    snprintf(res->currency, sizeof res->currency, "USD");
    res->lines[res->n_lines++] = line(PRICING_LINE_FREE, PRICING_RULE_ALLOWANCE, "free",
                                      "CU free allowance", PRICING_QTY_MCU, 100000, 0, 0);
    res->lines[res->n_lines++] =
        line(PRICING_LINE_USAGE, PRICING_RULE_BASE, "gpu-base", "CU on demand (rule gpu-base)",
             PRICING_QTY_MCU, 11297888, 2000, 22595776);
    res->lines[res->n_lines++] =
        line(PRICING_LINE_WINDOW, PRICING_RULE_TIME_WINDOW, "tod", "peak \"x1.5\"\t\\ window",
             PRICING_QTY_MONEY, 26595776, 1500000, 13297888);
    res->lines[res->n_lines++] = line(PRICING_LINE_DISCOUNT, PRICING_RULE_CONTRACT, "vip",
                                      "10 % off", PRICING_QTY_MONEY, 39893664, 100000, -3989366);
    res->total = 22595776 + 13297888 - 3989366;
    res->has_provider_fee = 1;
    res->provider_fee = line(PRICING_LINE_PLATFORM_FEE, PRICING_RULE_PLATFORM_FEE, "take",
                             "platform fee 5 %", PRICING_QTY_MONEY, res->total, 50000, 1795215);
    res->provider_net = res->total - 1795215;
    m.platform_policy_id = "pol_01M8HSB0J2ASFGV4HP5SS7WHG3";
    m.platform_policy_version = 2;
    m.utilisation_ppm = 500000;
    m.region = "eu-\xc3\xa9\"west\"";
    m.mcu = -1234; /* not a real quote; the decimal of a negative milli-unit */
    t = quote_doc_write(&m, res, NULL);
    cr_assert_not_null(t);
    assert_canonical(t);
    j = json_loads(t, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "total")), "31.904298");
    cr_assert_eq(json_integer_value(json_object_get(j, "total_micros")), 31904298);
    cr_assert_str_eq(json_string_value(json_object_get(j, "provider_net")), "30.109083");
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(j, "lines"), 3), "amount")),
                     "-3.989366");
    cr_assert_eq(json_integer_value(
                     json_object_get(json_array_get(json_object_get(j, "lines"), 2), "factor_ppm")),
                 1500000);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "lines"), 1), "unit_price")),
                     "0.002000");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "workload"), "cu")),
                     "-1.234");
    cr_assert_eq(json_integer_value(json_object_get(j, "utilisation_ppm")), 500000);
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(j, "platform_policy"), "version")), 2);
    json_decref(j);
    free(t);
    free(res);
}
