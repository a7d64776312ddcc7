/*
 * test_pricing_rate.c - the rating engine on hand-computed examples, one rule
 * kind at a time, plus the true-ups and bad inputs. Prices are micro-units
 * per CU (1 000 mCU) or per device-hour (3 600 000 device-ms).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "money.h"
#include "rate.h"

static pricing_policy *pol(const char *rules)
{
    char doc[4096];
    pricing_error err = {0};
    snprintf(doc, sizeof doc,
             "{\"currency\":\"USD\",\"timezone\":\"Europe/Berlin\",\"rules\":[%s]}", rules);
    pricing_policy *p = pricing_policy_parse(doc, strlen(doc), &err);
    cr_assert_not_null(p, "%s", err.message);
    return p;
}

static pricing_policy *platform(const char *payer)
{
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"currency\":\"USD\",\"scope\":\"platform\",\"rules\":[{\"id\":\"take\",\"kind\":"
             "\"platform_fee\",\"take_ppm\":50000,\"payer\":\"%s\"}]}",
             payer);
    pricing_policy *p = pricing_policy_parse(doc, strlen(doc), NULL);
    cr_assert_not_null(p);
    return p;
}

/* 2024-01-08 was a Monday; 00:00 UTC. */
#define MON_2024_01_08 INT64_C(1704672000000)
#define HOUR INT64_C(3600000)

static pricing_usage usage(int64_t mcu, int64_t start, int64_t end)
{
    pricing_usage u = {.tenant_id = "ten_x",
                       .device_id = "nvidia-h100-sxm",
                       .device_class = CAT_KIND_GPU,
                       .count = 1,
                       .profile = "llm-train",
                       .quantity_mcu = mcu,
                       .device_ms = end - start,
                       .start_ms = start,
                       .end_ms = end,
                       .region = ""};
    return u;
}

static pricing_result rate(const pricing_policy *p, const pricing_policy *plat,
                           const pricing_tz *tz, const pricing_usage *u, const pricing_state *st,
                           int64_t util)
{
    pricing_result r;
    pricing_error err = {0};
    pricing_input in = {
        .policy = p, .platform = plat, .tz = tz, .usage = u, .state = st, .utilisation_ppm = util};
    cr_assert_eq(pricing_rate(&in, &r, &err), PRICING_OK, "%s", err.message);
    cr_assert(pricing_result_consistent(&r));
    return r;
}

static const pricing_line *line(const pricing_result *r, pricing_line_kind k, int detail)
{
    for (size_t i = 0; i < r->n_lines; i++)
        if (r->lines[i].kind == k && r->lines[i].detail == detail)
            return &r->lines[i];
    cr_assert_fail("no %s line (detail %d)", pricing_line_kind_name(k), detail);
    return NULL;
}

/* 1.234 CU x 2.50 = 3.085; 1.5 device-hours x 1.20 = 1.80; total 4.885. */
Test(rate, base_cu_and_device_hour)
{
    pricing_policy *p = pol("{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"2.50\","
                            "\"per_device_hour\":\"1.20\"}");
    pricing_usage u = usage(1234, 0, 5400000);
    pricing_result r = rate(p, NULL, NULL, &u, NULL, -1);
    cr_assert_eq(r.n_lines, 2);
    cr_assert_eq(r.lines[0].amount, 3085000);
    cr_assert_eq(r.lines[0].quantity, 1234);
    cr_assert_eq(r.lines[0].unit_price, 2500000);
    cr_assert_str_eq(r.lines[0].rule_id, "b");
    cr_assert_eq(r.lines[1].amount, 1800000);
    cr_assert_eq(r.lines[1].qty_unit, PRICING_QTY_DEVICE_MS);
    cr_assert_eq(r.total, 4885000);
    cr_assert_eq(r.state.quantity[PRICING_UNIT_CU], 1234);
    cr_assert_eq(r.state.quantity[PRICING_UNIT_DEVICE_HOUR], 5400000);
    cr_assert_eq(r.state.charged, 4885000);
    pricing_policy_free(p);
}

/* Price 0.000001 per CU: 0.5 CU costs 0.5 micro -> tie -> 0; the next 0.5 CU
 * brings the period to 1.0 micro, so it is charged 1 - 0 = 1. One record of
 * 1 CU: 1. Cumulative rounding, no drift. 1.5 CU -> 1.5 micro -> 2. */
Test(rate, half_even_cumulative)
{
    pricing_policy *p = pol("{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"0.000001\"}");
    pricing_usage u = usage(500, 0, 1000);
    u.device_ms = 0;
    pricing_result r1 = rate(p, NULL, NULL, &u, NULL, -1);
    cr_assert_eq(r1.total, 0);
    pricing_result r2 = rate(p, NULL, NULL, &u, &r1.state, -1);
    cr_assert_eq(r2.total, 1);
    u.quantity_mcu = 1000;
    cr_assert_eq(rate(p, NULL, NULL, &u, NULL, -1).total, 1);
    u.quantity_mcu = 1500;
    cr_assert_eq(rate(p, NULL, NULL, &u, NULL, -1).total, 2);
    u.quantity_mcu = 2500; /* 2.5 -> 2 */
    cr_assert_eq(rate(p, NULL, NULL, &u, NULL, -1).total, 2);
    pricing_policy_free(p);
}

#define TIERS(mode)                                                                                \
    "{\"id\":\"t\",\"kind\":\"tiers\",\"unit\":\"cu\",\"mode\":\"" mode "\",\"tiers\":["           \
    "{\"from\":0,\"to\":1000000,\"price\":\"0.003\"},{\"from\":1000000,\"price\":\"0.002\"}]}"

/* Graduated, 900 CU used, +300 CU: 100 CU x 0.003 = 0.30 in tier 1 and
 * 200 CU x 0.002 = 0.40 in tier 2; total 0.70. */
Test(rate, graduated_crossing_a_band)
{
    pricing_policy *p = pol(TIERS("graduated"));
    pricing_state st = {.quantity = {900000, 0}};
    pricing_usage u = usage(300000, 0, 1000);
    u.device_ms = 0;
    pricing_result r = rate(p, NULL, NULL, &u, &st, -1);
    cr_assert_eq(r.n_lines, 2);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, 0)->amount, 300000);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, 0)->quantity, 100000);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, 1)->amount, 400000);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, 1)->unit_price, 2000);
    cr_assert_eq(r.total, 700000);
    pricing_policy_free(p);
}

/* Volume, 900 CU used (charged 900 x 0.003 = 2.70), +300 CU: the period
 * reaches tier 2, so all 1200 CU cost 0.002: 2.40. Re-pricing the earlier
 * 900 CU: 1.80 - 2.70 = -0.90; the new 300 CU: 2.40 - 1.80 = 0.60;
 * total -0.30. */
Test(rate, volume_reaching_a_band)
{
    pricing_policy *p = pol(TIERS("volume"));
    pricing_state st = {.quantity = {900000, 0}};
    pricing_usage u = usage(300000, 0, 1000);
    u.device_ms = 0;
    pricing_result r = rate(p, NULL, NULL, &u, &st, -1);
    cr_assert_eq(line(&r, PRICING_LINE_VOLUME_REPRICE, 1)->amount, -900000);
    cr_assert_eq(line(&r, PRICING_LINE_VOLUME_REPRICE, 1)->quantity, 900000);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, 1)->amount, 600000);
    cr_assert_eq(r.total, -300000);
    pricing_policy_free(p);
}

#define PEAK                                                                                       \
    "{\"id\":\"tod\",\"kind\":\"time_window\",\"windows\":[{\"name\":\"peak\",\"days\":[\"mon\","  \
    "\"tue\",\"wed\",\"thu\",\"fri\"],\"start\":\"09:00\",\"end\":\"18:00\",\"multiplier_ppm\":"   \
    "1500000}]}"

/* Berlin in January is UTC+1. Monday 07:30-08:30 UTC = 08:30-09:30 local:
 * half the hour is off-peak, half peak. 3600 CU at 0.01 = 36.00, of which
 * 18.00 falls in the peak window; peak x1.5 adds 18.00 x 0.5 = 9.00. */
Test(rate, time_window_split)
{
    pricing_policy *p = pol("{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"0.01\"}," PEAK);
    pricing_tz tz;
    cr_assert_eq(pricing_tz_fixed(&tz, "Europe/Berlin", 3600, NULL), PRICING_OK);
    int64_t s = MON_2024_01_08 + 7 * HOUR + HOUR / 2;
    pricing_usage u = usage(3600000, s, s + HOUR);
    u.device_ms = 0;
    pricing_result r = rate(p, NULL, &tz, &u, NULL, -1);
    cr_assert_eq(r.segments, 2);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, -1)->amount, 36000000);
    const pricing_line *w = line(&r, PRICING_LINE_WINDOW, 0);
    cr_assert_eq(w->quantity, 18000000);
    cr_assert_eq(w->unit_price, 500000);
    cr_assert_eq(w->amount, 9000000);
    cr_assert_eq(r.total, 45000000);
    cr_assert_eq(r.state.window_base[0], 18000000);
    /* Without the zone the engine refuses rather than guessing. */
    pricing_input in = {.policy = p, .usage = &u, .utilisation_ppm = -1};
    pricing_error err = {0};
    cr_assert_eq(pricing_rate(&in, &r, &err), PRICING_ERR_TZ);
    pricing_tz other;
    pricing_tz_fixed(&other, "UTC", 0, NULL);
    in.tz = &other;
    cr_assert_eq(pricing_rate(&in, &r, &err), PRICING_ERR_TZ);
    pricing_policy_free(p);
}

/* Spring-forward 2024-03-31 01:00 UTC: local 02:00 +01:00 jumps to 03:00
 * +02:00. Window 03:00-04:00 local (x2). Usage 00:00-02:00 UTC = local
 * 01:00-02:00 (+1) then 03:00-04:00 (+2): the second UTC hour is in the
 * window. 7200 CU at 0.01 = 72.00; the window hour 36.00 doubles: +36.00. */
Test(rate, window_across_dst_transition)
{
    static const pricing_tz_transition berlin[] = {{INT64_MIN, 3600}, {1711846800000, 7200}};
    pricing_policy *p = pol("{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"0.01\"},"
                            "{\"id\":\"tod\",\"kind\":\"time_window\",\"windows\":[{\"name\":\"w\","
                            "\"days\":[\"sun\"],\"start\":\"03:00\",\"end\":\"04:00\","
                            "\"multiplier_ppm\":2000000}]}");
    pricing_tz tz;
    cr_assert_eq(pricing_tz_init(&tz, "Europe/Berlin", berlin, 2, NULL), PRICING_OK);
    int64_t s = 1711846800000 - HOUR;
    pricing_usage u = usage(7200000, s, s + 2 * HOUR);
    u.device_ms = 0;
    pricing_result r = rate(p, NULL, &tz, &u, NULL, -1);
    cr_assert_eq(line(&r, PRICING_LINE_WINDOW, 0)->amount, 36000000);
    cr_assert_eq(r.total, 108000000);
    pricing_policy_free(p);
}

#define QUOTA                                                                                      \
    "{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"0.002\"},"                                       \
    "{\"id\":\"free\",\"kind\":\"allowance\",\"unit\":\"cu\",\"quantity\":100000},"                \
    "{\"id\":\"res\",\"kind\":\"commitment\",\"unit\":\"cu\",\"quantity\":1000000,\"price\":"      \
    "\"0.001\"}"

/* Free 100 CU, commit 1000 CU at 0.001, on demand 0.002. 1500 CU: 100 free,
 * 1000 x 0.001 = 1.00 committed, 400 x 0.002 = 0.80 on demand; 1.80. The
 * commitment is used up, so the period-end true-up adds nothing. */
Test(rate, allowance_commitment_overage)
{
    pricing_policy *p = pol(QUOTA);
    pricing_usage u = usage(1500000, 0, 1000);
    u.device_ms = 0;
    pricing_result r = rate(p, NULL, NULL, &u, NULL, -1);
    cr_assert_eq(line(&r, PRICING_LINE_FREE, -1)->quantity, 100000);
    cr_assert_eq(line(&r, PRICING_LINE_FREE, -1)->amount, 0);
    cr_assert_eq(line(&r, PRICING_LINE_COMMITMENT, -1)->amount, 1000000);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, -1)->amount, 800000);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, -1)->quantity, 400000);
    cr_assert_eq(r.total, 1800000);
    cr_assert_eq(r.free_used[PRICING_UNIT_CU], 100000);
    cr_assert_eq(r.commitment_used[PRICING_UNIT_CU], 1000000);
    pricing_result t;
    cr_assert_eq(pricing_commitment_trueup(p, NULL, &r.state, &t, NULL), PRICING_OK);
    cr_assert_eq(t.n_lines, 0);
    cr_assert_eq(t.total, 0);
    pricing_policy_free(p);
}

/* 600 CU: 100 free, 500 x 0.001 = 0.50 committed. Period end: 500 CU unused
 * x 0.001 = 0.50 true-up; usage + true-up = 1.00 = the whole commitment. */
Test(rate, commitment_trueup_unused)
{
    pricing_policy *p = pol(QUOTA);
    pricing_usage u = usage(600000, 0, 1000);
    u.device_ms = 0;
    pricing_result r = rate(p, NULL, NULL, &u, NULL, -1);
    cr_assert_eq(r.total, 500000);
    pricing_result t;
    cr_assert_eq(pricing_commitment_trueup(p, NULL, &r.state, &t, NULL), PRICING_OK);
    cr_assert_eq(t.n_lines, 1);
    cr_assert_eq(t.lines[0].kind, PRICING_LINE_COMMITMENT_TRUEUP);
    cr_assert_eq(t.lines[0].quantity, 500000);
    cr_assert_eq(t.total, 500000);
    /* Nothing used at all: the whole 1.00. */
    cr_assert_eq(pricing_commitment_trueup(p, NULL, NULL, &t, NULL), PRICING_OK);
    cr_assert_eq(t.total, 1000000);
    pricing_policy_free(p);
}

#define REGION_CONTRACT                                                                            \
    "{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"0.002\"},"                                       \
    "{\"id\":\"reg\",\"kind\":\"region\",\"multipliers\":{\"eu-west\":1100000}},"                  \
    "{\"id\":\"acme\",\"kind\":\"contract\",\"tenant\":\"ten_acme\",\"discount_ppm\":100000}"

/* 1000 CU x 0.002 = 2.00; eu-west x1.1: +0.20; acme's 10 % discount on 2.20:
 * -0.22; provider charge 1.98. Platform fee 5 % of 1.98 = 0.099, paid by the
 * provider: not in the tenant's total (1.98); provider nets 1.881. */
Test(rate, region_discount_fee_provider_pays)
{
    pricing_policy *p = pol(REGION_CONTRACT), *plat = platform("provider");
    pricing_usage u = usage(1000000, 0, 1000);
    u.device_ms = 0;
    u.region = "eu-west";
    u.tenant_id = "ten_acme";
    pricing_result r = rate(p, plat, NULL, &u, NULL, -1);
    cr_assert_eq(line(&r, PRICING_LINE_USAGE, -1)->amount, 2000000);
    cr_assert_eq(line(&r, PRICING_LINE_REGION, 0)->amount, 200000);
    cr_assert_eq(line(&r, PRICING_LINE_DISCOUNT, -1)->amount, -220000);
    cr_assert_eq(line(&r, PRICING_LINE_DISCOUNT, -1)->quantity, 2200000);
    cr_assert_eq(r.total, 1980000);
    cr_assert(r.has_provider_fee);
    cr_assert_eq(r.provider_fee.amount, 99000);
    cr_assert_eq(r.provider_net, 1881000);
    /* Another tenant, another region: neither line. */
    u.tenant_id = "ten_other";
    u.region = "us-east";
    r = rate(p, plat, NULL, &u, NULL, -1);
    cr_assert_eq(r.n_lines, 1);
    cr_assert_eq(r.total, 2000000);
    cr_assert_eq(r.provider_fee.amount, 100000);
    pricing_policy_free(p);
    pricing_policy_free(plat);
}

/* Tenant pays the fee: it is a line, in the total: 1.98 + 0.099 = 2.079. */
Test(rate, fee_tenant_pays)
{
    pricing_policy *p = pol(REGION_CONTRACT), *plat = platform("tenant");
    pricing_usage u = usage(1000000, 0, 1000);
    u.device_ms = 0;
    u.region = "eu-west";
    u.tenant_id = "ten_acme";
    pricing_result r = rate(p, plat, NULL, &u, NULL, -1);
    cr_assert_eq(line(&r, PRICING_LINE_PLATFORM_FEE, -1)->amount, 99000);
    cr_assert_not(r.has_provider_fee);
    cr_assert_eq(r.total, 2079000);
    cr_assert_eq(r.provider_net, 1980000);
    pricing_policy_free(p);
    pricing_policy_free(plat);
}

/* Contract custom rate replaces the base rate for that tenant only. */
Test(rate, contract_custom_rate)
{
    pricing_policy *p = pol("{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"0.002\"},"
                            "{\"id\":\"acme\",\"kind\":\"contract\",\"tenant\":\"ten_acme\","
                            "\"per_cu\":\"0.0015\"}");
    pricing_usage u = usage(1000000, 0, 1000);
    u.device_ms = 0;
    u.tenant_id = "ten_acme";
    pricing_result r = rate(p, NULL, NULL, &u, NULL, -1);
    cr_assert_eq(r.total, 1500000); /* 1000 x 0.0015 */
    cr_assert_str_eq(r.lines[0].rule_id, "acme");
    u.tenant_id = "ten_b";
    cr_assert_eq(rate(p, NULL, NULL, &u, NULL, -1).total, 2000000);
    pricing_policy_free(p);
}

#define SPOT                                                                                       \
    "{\"id\":\"s\",\"kind\":\"spot\",\"unit\":\"cu\",\"curve\":[{\"utilisation_ppm\":0,"           \
    "\"price\":\"0.001\"},{\"utilisation_ppm\":1000000,\"price\":\"0.005\"}],\"floor\":"           \
    "\"0.0015\",\"cap\":\"0.004\"}"

/* Linear 0.001 + 0.004 x u: u=0 -> 0.001 below floor -> 0.0015; u=50 % ->
 * 0.003; u=90 % -> 0.0046 above cap -> 0.004; u=33.3333 % -> 0.002333332
 * -> quoted 0.002333 (2333.332 micro, half-even). 1000 CU at each. */
Test(rate, spot_curve_floor_cap)
{
    pricing_policy *p = pol(SPOT);
    pricing_usage u = usage(1000000, 0, 1000);
    u.device_ms = 0;
    struct {
        int64_t util, price;
    } v[] = {{0, 1500}, {500000, 3000}, {900000, 4000}, {333333, 2333}, {1000000, 4000}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        pricing_result r = rate(p, NULL, NULL, &u, NULL, v[i].util);
        cr_assert(r.spot_used[PRICING_UNIT_CU]);
        cr_assert_eq(r.utilisation_ppm, v[i].util);
        cr_assert_eq(r.spot_price[PRICING_UNIT_CU], v[i].price, "util %lld", (long long)v[i].util);
        cr_assert_eq(r.total, v[i].price * 1000);
    }
    pricing_input in = {.policy = p, .usage = &u, .utilisation_ppm = -1};
    pricing_result r;
    pricing_error err = {0};
    cr_assert_eq(pricing_rate(&in, &r, &err), PRICING_ERR_RANGE);
    cr_assert_str_eq(err.path, "utilisation_ppm");
    pricing_policy_free(p);
}

/* Minimum 1.00 per order: an order that came to 0.30 gets a 0.70 top-up;
 * one at 1.50 gets nothing. */
Test(rate, minimum_trueup)
{
    pricing_policy *p = pol("{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"1\"},"
                            "{\"id\":\"min\",\"kind\":\"minimum\",\"amount\":\"1.00\"}");
    pricing_result r;
    cr_assert_eq(pricing_minimum_trueup(p, NULL, 300000, NULL, &r, NULL), PRICING_OK);
    cr_assert_eq(r.n_lines, 1);
    cr_assert_eq(r.lines[0].kind, PRICING_LINE_MINIMUM);
    cr_assert_eq(r.total, 700000);
    cr_assert_eq(pricing_minimum_trueup(p, NULL, 1500000, NULL, &r, NULL), PRICING_OK);
    cr_assert_eq(r.n_lines, 0);
    cr_assert_eq(r.total, 0);
    pricing_policy_free(p);
}

/* Device match beats class match beats catch-all. */
Test(rate, most_specific_rule_wins)
{
    pricing_policy *p = pol("{\"id\":\"any\",\"kind\":\"base\",\"per_cu\":\"1\"},"
                            "{\"id\":\"gpu\",\"kind\":\"base\",\"per_cu\":\"2\",\"match\":"
                            "{\"device_class\":\"gpu\"}},"
                            "{\"id\":\"h100\",\"kind\":\"base\",\"per_cu\":\"3\",\"match\":"
                            "{\"device\":\"nvidia-h100-sxm\"}}");
    pricing_usage u = usage(1000, 0, 1000);
    u.device_ms = 0;
    cr_assert_str_eq(rate(p, NULL, NULL, &u, NULL, -1).lines[0].rule_id, "h100");
    u.device_id = "nvidia-a100-sxm-80gb";
    cr_assert_str_eq(rate(p, NULL, NULL, &u, NULL, -1).lines[0].rule_id, "gpu");
    u.device_class = CAT_KIND_CPU;
    cr_assert_str_eq(rate(p, NULL, NULL, &u, NULL, -1).lines[0].rule_id, "any");
    pricing_policy_free(p);
}

static pricing_status rate_err(const pricing_policy *p, const pricing_usage *u,
                               const pricing_state *st, pricing_error *err)
{
    pricing_input in = {.policy = p, .usage = u, .state = st, .utilisation_ppm = -1};
    pricing_result r;
    return pricing_rate(&in, &r, err);
}

Test(rate, bad_inputs)
{
    pricing_policy *p = pol("{\"id\":\"h\",\"kind\":\"base\",\"per_cu\":\"1\",\"match\":"
                            "{\"device\":\"nvidia-h100-sxm\"}}");
    pricing_error err = {0};
    pricing_usage u = usage(1000, 0, 1000);
    u.quantity_mcu = -1;
    cr_assert_eq(rate_err(p, &u, NULL, &err), PRICING_ERR_INVALID);
    cr_assert_str_eq(err.message, "quantity_mcu: must not be negative (got -1)");
    u = usage(1000, 1000, 1000);
    cr_assert_eq(rate_err(p, &u, NULL, &err), PRICING_ERR_RANGE);
    cr_assert_str_eq(err.path, "end_ms");
    u = usage(1000, 0, 1000);
    u.device_id = "amd-mi300x";
    cr_assert_eq(rate_err(p, &u, NULL, &err), PRICING_ERR_NO_RATE);
    cr_assert_str_eq(err.message,
                     "device_id: no rule of this policy prices device \"amd-mi300x\" (class gpu)");
    /* Overflow: a period-to-date quantity at the int64 edge. */
    u = usage(1000, 0, 1000);
    pricing_state st = {.quantity = {INT64_MAX - 10, 0}};
    cr_assert_eq(rate_err(p, &u, &st, &err), PRICING_ERR_OVERFLOW);
    /* Amount beyond int64: 4e18 mCU at 1e6 per CU = 4e21 micro. */
    pricing_policy *big = pol("{\"id\":\"b\",\"kind\":\"base\",\"per_cu\":\"1000000\"}");
    u.quantity_mcu = INT64_C(4000000000000000000);
    cr_assert_eq(rate_err(big, &u, NULL, &err), PRICING_ERR_OVERFLOW);
    /* A platform policy is not a provider policy, and currencies must agree. */
    pricing_policy *plat = platform("provider");
    u = usage(1000, 0, 1000);
    cr_assert_eq(rate_err(plat, &u, NULL, &err), PRICING_ERR_INVALID);
    pricing_policy_free(p);
    pricing_policy_free(big);
    pricing_policy_free(plat);
}

/* The every-rule-kind example (docs/pricing.md, bench/) parses and its
 * workload runs; its checksum is stable. */
#include "example.h"

Test(rate, example_workload)
{
    pricing_error err = {0};
    int64_t sum = 0, again = 0;
    cr_assert_eq(pricing_example_workload(3000, &sum, &err), PRICING_OK, "%s", err.message);
    cr_assert_eq(pricing_example_workload(3000, &again, &err), PRICING_OK);
    cr_assert_eq(sum, again);
    cr_assert_gt(sum, 0);
    cr_assert_eq(sum, INT64_C(37494648521), "checksum %lld", (long long)sum);
}
