/*
 * Unit tests for market/usage_rec.h and market/order.h: the canonical bytes of
 * a usage record, its signature, the interval rules, order transitions and
 * the hold arithmetic, the stored line items, with hand-checked values.
 */
#include "order.h"
#include "usage_lines.h"
#include "usage_rec.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

static json_t *rec(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert(j, "%s", e.text);
    return j;
}

Test(market_usage, canonical_bytes_are_sorted_and_compact)
{
    json_t *j = rec("{\"start_ms\": 1000, \"record_id\": \"r-1\", \"order_id\": \"ord_x\","
                    " \"device\": \"nvidia-h100-sxm\", \"count\": 8, \"end_ms\": 61000,"
                    " \"profile\": \"llm-train\"}");
    usage_rec r;
    char err[200];

    cr_assert_eq(usage_rec_parse(j, &r, err, sizeof err), USAGE_OK, "%s", err);
    cr_assert_str_eq(
        r.canonical,
        "{\"count\":8,\"device\":\"nvidia-h100-sxm\",\"end_ms\":61000,\"order_id\":"
        "\"ord_x\",\"profile\":\"llm-train\",\"record_id\":\"r-1\",\"start_ms\":1000}");
    cr_assert_eq(r.work_mcu, -1);
    cr_assert_eq(r.reverses[0], '\0');
    cr_assert_eq(strlen(r.hash_hex), 64);
    usage_rec_clear(&r);
    json_decref(j);
}

Test(market_usage, bad_records_name_the_field)
{
    static const char *const bad[][2] = {
        {"{\"record_id\":\"r\",\"order_id\":\"o\",\"device\":\"d\",\"count\":1,\"start_ms\":5,"
         "\"end_ms\":5,\"profile\":\"p\"}",
         "end_ms"},
        {"{\"record_id\":\"r\",\"order_id\":\"o\",\"device\":\"d\",\"count\":1.5,\"start_ms\":1,"
         "\"end_ms\":5,\"profile\":\"p\"}",
         "count"},
        {"{\"record_id\":\"a\\\"b\",\"order_id\":\"o\",\"device\":\"d\",\"count\":1,\"start_ms\":1,"
         "\"end_ms\":5,\"profile\":\"p\"}",
         "record_id"},
        {"{\"record_id\":\"r\",\"order_id\":\"o\",\"device\":\"d\",\"count\":1,\"start_ms\":1,"
         "\"end_ms\":5,\"profile\":\"p\",\"extra\":1}",
         "extra"},
        {"{\"record_id\":\"r\",\"order_id\":\"o\",\"device\":\"d\",\"count\":1,\"start_ms\":1,"
         "\"end_ms\":5,\"profile\":true}",
         "profile"},
        {"{\"record_id\":\"r\",\"order_id\":\"o\",\"device\":\"d\",\"count\":1,\"start_ms\":0,"
         "\"end_ms\":2678400001,\"profile\":\"p\"}",
         "31 days"},
        /* the service's own record ids (an order's minimum charge) */
        {"{\"record_id\":\"tally:minimum:ord_x\",\"order_id\":\"o\",\"device\":\"d\","
         "\"count\":1,\"start_ms\":1,\"end_ms\":5,\"profile\":\"p\"}",
         "service's own"},
        {"{\"record_id\":\"r\",\"reverses\":\"tally:minimum:ord_x\",\"order_id\":\"o\","
         "\"device\":\"d\",\"count\":1,\"start_ms\":1,\"end_ms\":5,\"profile\":\"p\"}",
         "service's own"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = rec(bad[i][0]);
        usage_rec r;
        char err[200] = "";
        cr_assert_eq(usage_rec_parse(j, &r, err, sizeof err), USAGE_INVALID, "case %zu", i);
        cr_assert(strstr(err, bad[i][1]), "case %zu: '%s' should name %s", i, err, bad[i][1]);
        usage_rec_clear(&r);
        json_decref(j);
    }
}

Test(market_usage, signature_covers_the_domain_and_every_byte)
{
    unsigned char pk[32], sk[64], pk2[32], sk2[64];
    json_t *j = rec("{\"record_id\":\"r\",\"order_id\":\"o\",\"device\":\"d\",\"count\":2,"
                    "\"start_ms\":1,\"end_ms\":5,\"profile\":\"llm-train\",\"work_mcu\":7}");
    usage_rec r, r2;
    char err[200], sig[USAGE_SIG_HEX + 1], sig2[USAGE_SIG_HEX + 1];
    unsigned char raw[64];

    cr_assert(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    cr_assert_eq(usage_rec_parse(j, &r, err, sizeof err), USAGE_OK, "%s", err);
    cr_assert_eq(r.work_mcu, 7);
    usage_rec_sign(&r, sk, sig);
    cr_assert(usage_rec_verify(&r, pk, sig));
    cr_assert_not(usage_rec_verify(&r, pk2, sig), "another key");
    /* a signature over the bare canonical bytes (no domain) is refused */
    crypto_sign_detached(raw, NULL, (const unsigned char *)r.canonical, r.canonical_len, sk);
    sodium_bin2hex(sig2, sizeof sig2, raw, sizeof raw);
    cr_assert_not(usage_rec_verify(&r, pk, sig2));
    cr_assert_not(usage_rec_verify(&r, pk, "zz"), "malformed hex");
    /* one changed field changes the bytes */
    json_object_set_new(j, "count", json_integer(3));
    cr_assert_eq(usage_rec_parse(j, &r2, err, sizeof err), USAGE_OK, "%s", err);
    cr_assert_not(usage_rec_verify(&r2, pk, sig));
    cr_assert_str_neq(r.hash_hex, r2.hash_hex);
    usage_rec_clear(&r);
    usage_rec_clear(&r2);
    json_decref(j);
}

Test(market_usage, spans_and_windows)
{
    usage_span s[] = {{1000, 2000}, {3000, 4000}};

    cr_assert_not(usage_span_overlaps(s, 2, 2000, 3000), "touching ends do not overlap");
    cr_assert(usage_span_overlaps(s, 2, 1999, 2500));
    cr_assert(usage_span_overlaps(s, 2, 3500, 3600), "inside");
    cr_assert(usage_span_overlaps(s, 2, 0, 10000), "covering");
    cr_assert_not(usage_span_overlaps(s, 0, 0, 10000));
    /* order [10 000, 20 000): usage may run to 30 000 (twice the reserved length), 5 s skew */
    cr_assert_eq(usage_window_check(10000, 20000, 10000, 30000, 40000), USAGE_OK);
    cr_assert_eq(usage_window_check(10000, 20000, 5000, 6000, 40000), USAGE_OK, "within skew");
    cr_assert_eq(usage_window_check(10000, 20000, 4999, 6000, 40000), USAGE_OUTSIDE_WINDOW);
    cr_assert_eq(usage_window_check(10000, 20000, 20000, 30001, 40000), USAGE_OUTSIDE_WINDOW);
    cr_assert_eq(usage_window_check(10000, 20000, 10000, 25001, 20000), USAGE_IN_FUTURE);
    cr_assert_str_eq(usage_reason_code(USAGE_OVERLAP), "overlap");
    cr_assert_str_eq(usage_reason_code(USAGE_EXCEEDS_HOLD), "exceeds_hold");
}

Test(market_order, transitions)
{
    order_state s;

    cr_assert(order_transition_ok(ORDER_PENDING, ORDER_PLACED));
    cr_assert(order_transition_ok(ORDER_PENDING, ORDER_REJECTED));
    cr_assert_not(order_transition_ok(ORDER_PENDING, ORDER_RUNNING));
    cr_assert(order_transition_ok(ORDER_PLACED, ORDER_CANCELLED));
    cr_assert(order_transition_ok(ORDER_RUNNING, ORDER_MIGRATING));
    cr_assert_not(order_transition_ok(ORDER_RUNNING, ORDER_RUNNING), "started twice");
    cr_assert(order_transition_ok(ORDER_PLACED, ORDER_MIGRATED), "failover");
    cr_assert(order_transition_ok(ORDER_MIGRATING, ORDER_RUNNING));
    cr_assert_not(order_transition_ok(ORDER_COMPLETED, ORDER_RUNNING), "final stays final");
    cr_assert_not(order_transition_ok(ORDER_CANCELLED, ORDER_CANCELLED));
    cr_assert(order_state_final(ORDER_MIGRATED));
    cr_assert_not(order_state_final(ORDER_MIGRATING));
    cr_assert(order_state_accepts_usage(ORDER_MIGRATING));
    cr_assert_not(order_state_accepts_usage(ORDER_PENDING));
    cr_assert_eq(order_state_parse("migrating", &s), 0);
    cr_assert_eq(s, ORDER_MIGRATING);
    cr_assert_eq(order_state_parse("paused", &s), -1);
}

Test(market_order, hold_and_fee_arithmetic)
{
    int64_t h, fee;

    /* p90 price 57.592 000, margin 10 %: 57.592 000 + 5.759 200 = 63.351 200 (the e2e figure) */
    cr_assert_eq(order_hold_amount(28800000, 57592000, 10, &h), 0);
    cr_assert_eq(h, 63351200);
    /* rounded up: 1 micro-unit at 10 % is 0.1, held as 1 more */
    cr_assert_eq(order_hold_amount(1, 1, 10, &h), 0);
    cr_assert_eq(h, 2);
    /* never below the p50 price */
    cr_assert_eq(order_hold_amount(500, 100, 0, &h), 0);
    cr_assert_eq(h, 500);
    cr_assert_eq(order_hold_amount(INT64_MAX / 2, 0, 10, &h), -1, "overflow is an error");
    cr_assert_eq(order_hold_amount(-1, 0, 10, &h), -1);
    cr_assert_eq(order_fee_split(80000, 76000, &fee), 0);
    cr_assert_eq(fee, 4000);
    cr_assert_eq(order_fee_split(80000, 90000, &fee), -1);
}

static pricing_line line(pricing_line_kind kind, const char *rule, int64_t qty, int64_t price,
                         int64_t amount)
{
    pricing_line l;

    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.rule_kind = PRICING_RULE_BASE;
    snprintf(l.rule_id, sizeof l.rule_id, "%s", rule);
    l.qty_unit = PRICING_QTY_MCU;
    l.quantity = qty;
    l.unit_price = price;
    l.amount = amount;
    return l;
}

static void assert_text_is_tree(const pricing_result *res)
{
    char *text = usage_lines_text(res);
    json_t *tree = usage_lines_json(res), *parsed;
    json_error_t e;

    cr_assert(text && tree);
    parsed = json_loads(text, 0, &e);
    cr_assert(parsed, "%s: %s", text, e.text);
    cr_assert(json_equal(parsed, tree), "%s", text);
    json_decref(parsed);
    json_decref(tree);
    free(text);
}

Test(market_usage, stored_line_items_text_is_the_tree)
{
    pricing_result res;
    char *text;

    memset(&res, 0, sizeof res);
    text = usage_lines_text(&res);
    cr_assert_str_eq(text, "[]");
    free(text);
    assert_text_is_tree(&res);

    res.lines[0] = line(PRICING_LINE_USAGE, "base", 1500, 2000000, 3000);
    res.lines[1] = line(PRICING_LINE_DISCOUNT, "q\"uote\\d\x01", 3000, -100000, -300);
    res.n_lines = 2;
    text = usage_lines_text(&res);
    cr_assert_str_eq(text, "[{\"kind\":\"usage\",\"rule_id\":\"base\",\"rule_kind\":\"base\","
                           "\"quantity\":1500,\"unit\":\"mcu\",\"unit_price\":2000000,"
                           "\"amount\":3000,\"payer\":\"tenant\"},{\"kind\":\"contract_discount\","
                           "\"rule_id\":\"q\\\"uote\\\\d\\u0001\",\"rule_kind\":\"base\","
                           "\"quantity\":3000,\"unit\":\"mcu\",\"unit_price\":-100000,"
                           "\"amount\":-300,\"payer\":\"tenant\"}]");
    free(text);
    assert_text_is_tree(&res);

    res.has_provider_fee = 1;
    res.provider_fee = line(PRICING_LINE_PLATFORM_FEE, "fee", INT64_MAX, 100000, INT64_MIN);
    res.provider_fee.qty_unit = PRICING_QTY_MONEY;
    assert_text_is_tree(&res);
    res.n_lines = 0;
    assert_text_is_tree(&res);
}
