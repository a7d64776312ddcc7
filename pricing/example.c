/*
 * example.c - the every-rule-kind reference policy and a fixed workload over
 * it (see example.h). The policy text is also the worked example in
 * docs/pricing.md; keep the two in step.
 */
#include "example.h"

#include <string.h>

static const char POLICY[] =
    "{\"currency\":\"USD\",\"timezone\":\"Europe/Berlin\",\"rules\":["
    "{\"id\":\"gpu-base\",\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},"
    "\"per_cu\":\"0.002\",\"per_device_hour\":\"0.50\"},"
    "{\"id\":\"h100-cu\",\"kind\":\"tiers\",\"unit\":\"cu\",\"mode\":\"graduated\","
    "\"match\":{\"device\":\"nvidia-h100-sxm\"},\"volume_never_above_graduated\":true,"
    "\"tiers\":[{\"from\":0,\"to\":1000000,\"price\":\"0.003\"},"
    "{\"from\":1000000,\"to\":50000000,\"price\":\"0.0025\"},{\"from\":50000000,\"price\":"
    "\"0.002\"}]},"
    "{\"id\":\"a100-spot\",\"kind\":\"spot\",\"unit\":\"cu\",\"match\":{\"device\":"
    "\"nvidia-a100-sxm-80gb\"},\"curve\":[{\"utilisation_ppm\":0,\"price\":\"0.001\"},"
    "{\"utilisation_ppm\":800000,\"price\":\"0.002\"},{\"utilisation_ppm\":1000000,\"price\":"
    "\"0.005\"}],\"floor\":\"0.0015\",\"cap\":\"0.004\"},"
    "{\"id\":\"tod\",\"kind\":\"time_window\",\"windows\":["
    "{\"name\":\"peak\",\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"],\"start\":\"09:00\","
    "\"end\":\"18:00\",\"multiplier_ppm\":1500000},"
    "{\"name\":\"night\",\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"],"
    "\"start\":\"00:00\",\"end\":\"06:00\",\"multiplier_ppm\":800000}]},"
    "{\"id\":\"reserved\",\"kind\":\"commitment\",\"unit\":\"device_hour\",\"quantity\":"
    "360000000,\"price\":\"0.40\"},"
    "{\"id\":\"free\",\"kind\":\"allowance\",\"unit\":\"cu\",\"quantity\":100000},"
    "{\"id\":\"regions\",\"kind\":\"region\",\"multipliers\":{\"ap-south\":950000,"
    "\"eu-west\":1100000}},"
    "{\"id\":\"min\",\"kind\":\"minimum\",\"amount\":\"1.00\"},"
    "{\"id\":\"acme\",\"kind\":\"contract\",\"tenant\":\"ten_acme\",\"discount_ppm\":100000}]}";

static const char PLATFORM[] =
    "{\"currency\":\"USD\",\"scope\":\"platform\",\"rules\":[{\"id\":\"take-rate\",\"kind\":"
    "\"platform_fee\",\"take_ppm\":50000,\"payer\":\"provider\"}]}";

/* Europe/Berlin 2024: CET, CEST from 2024-03-31T01:00Z, CET from 2024-10-27T01:00Z. */
static const pricing_tz_transition BERLIN[] = {
    {INT64_MIN, 3600},
    {INT64_C(1711846800000), 7200},
    {INT64_C(1729990800000), 3600},
};

const char *pricing_example_policy_json(void)
{
    return POLICY;
}

const char *pricing_example_platform_json(void)
{
    return PLATFORM;
}

pricing_status pricing_example_workload(int64_t n, int64_t *checksum, pricing_error *err)
{
    static const char *const devices[] = {"nvidia-h100-sxm", "nvidia-a100-sxm-80gb", "nvidia-l4"};
    static const char *const tenants[] = {"ten_acme", "ten_beta"};
    static const char *const regions[] = {"eu-west", "us-east", "ap-south"};
    pricing_policy *pol = pricing_policy_parse(POLICY, sizeof POLICY - 1, err);
    pricing_policy *plat = pricing_policy_parse(PLATFORM, sizeof PLATFORM - 1, err);
    pricing_tz tz;
    pricing_state state;
    pricing_result res;
    pricing_status st = PRICING_OK;
    int64_t sum = 0, order = 0;

    if (!pol || !plat) {
        st = err ? err->code : PRICING_ERR_INVALID;
        goto out;
    }
    if ((st = pricing_tz_init(&tz, "Europe/Berlin", BERLIN, 3, err)) != PRICING_OK)
        goto out;
    memset(&state, 0, sizeof state);
    for (int64_t i = 0; i < n; i++) {
        /* Start on Friday 2024-03-29 and walk forward 47 minutes per record,
         * so records fall in peak, night and plain hours and cross DST. */
        int64_t start = INT64_C(1711670400000) + (i % 1000) * INT64_C(2820000);
        int64_t dur = INT64_C(600000) + (i % 7) * INT64_C(900000);
        int64_t count = 1 + i % 8;
        pricing_usage u = {.tenant_id = tenants[i % 2],
                           .device_id = devices[i % 3],
                           .device_class = CAT_KIND_GPU,
                           .count = count,
                           .profile = "llm-train",
                           .quantity_mcu = dur * count / 3,
                           .device_ms = dur * count,
                           .start_ms = start,
                           .end_ms = start + dur,
                           .region = regions[i % 3]};
        pricing_input in = {.policy = pol,
                            .platform = plat,
                            .tz = &tz,
                            .usage = &u,
                            .state = &state,
                            .utilisation_ppm = (i * 7919) % 1000001};
        if ((st = pricing_rate(&in, &res, err)) != PRICING_OK)
            goto out;
        state = res.state;
        sum += res.total;
        order += res.total;
        if (i % 10 == 9) {
            if ((st = pricing_minimum_trueup(pol, plat, order, &state, &res, err)) != PRICING_OK)
                goto out;
            state = res.state;
            sum += res.total;
            order = 0;
        }
        if (i % 1000 == 999) {
            if ((st = pricing_commitment_trueup(pol, plat, &state, &res, err)) != PRICING_OK)
                goto out;
            sum += res.total;
            memset(&state, 0, sizeof state);
        }
    }
    if (checksum)
        *checksum = sum;
out:
    pricing_policy_free(pol);
    pricing_policy_free(plat);
    return st;
}
