/* libFuzzer harness: a pricing policy document (what providers and admins upload) through
 * pricing_policy_parse, then the properties the service relies on for every policy it accepts:
 * the canonical form parses back to the same canonical form, and rating a few usage records
 * (split intervals, across the zone's offset, with and without a platform fee) either fails
 * cleanly or returns line items that sum to the total. */
#include "example.h"
#include "policy.h"
#include "rate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void rate_some(const pricing_policy *pol, const pricing_policy *plat, uint64_t seed)
{
    static const char *const devices[] = {"nvidia-h100-sxm", "nvidia-l4", "amd-epyc-9654"};
    static const cat_kind kinds[] = {CAT_KIND_GPU, CAT_KIND_GPU, CAT_KIND_CPU};
    pricing_state state;
    pricing_tz tz;
    pricing_result res;
    pricing_error err;
    int64_t start = INT64_C(1711670400000) + (int64_t)(seed % 100000) * 60000;

    memset(&state, 0, sizeof state);
    if (pricing_tz_fixed(&tz, pol->timezone[0] ? pol->timezone : "UTC", 3600, &err) != PRICING_OK)
        return;
    for (int i = 0; i < 4; i++) {
        int64_t dur = 60000 * (1 + (int64_t)((seed >> (8 * i)) % 600));
        pricing_usage u = {.tenant_id = i % 2 ? "ten_a" : "ten_b",
                           .device_id = devices[i % 3],
                           .device_class = kinds[i % 3],
                           .count = 1 + i,
                           .profile = "llm-train",
                           .quantity_mcu = dur * (1 + i) / 3,
                           .device_ms = dur * (1 + i),
                           .start_ms = start,
                           .end_ms = start + dur,
                           .region = i % 2 ? "eu-west" : ""};
        pricing_input in = {.policy = pol,
                            .platform = i % 2 ? plat : NULL,
                            .tz = &tz,
                            .usage = &u,
                            .state = &state,
                            .utilisation_ppm = (int64_t)((seed >> 16) % 1000001)};
        if (pricing_rate(&in, &res, &err) != PRICING_OK)
            continue;
        if (!pricing_result_consistent(&res))
            __builtin_trap(); /* line items must sum to the total */
        state = res.state;
        start += dur;
    }
    if (pricing_commitment_trueup(pol, plat, &state, &res, &err) == PRICING_OK &&
        !pricing_result_consistent(&res))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pricing_policy *plat;
    pricing_error err;
    pricing_policy *pol, *again;
    char *canon, *canon2;
    uint64_t seed = 0;

    if (!plat) {
        const char *p = pricing_example_platform_json();
        plat = pricing_policy_parse(p, strlen(p), &err);
    }
    if (!(pol = pricing_policy_parse((const char *)data, size, &err)))
        return 0;
    canon = pricing_policy_canonical(pol);
    again = canon ? pricing_policy_parse(canon, strlen(canon), &err) : NULL;
    canon2 = again ? pricing_policy_canonical(again) : NULL;
    if (canon && (!canon2 || strcmp(canon, canon2) != 0))
        __builtin_trap(); /* an accepted policy's canonical form means the same policy */
    for (size_t i = 0; i < size; i++)
        seed = seed * 131 + data[i];
    if (pol->scope == PRICING_SCOPE_PROVIDER)
        rate_some(pol, plat, seed);
    free(canon);
    free(canon2);
    pricing_policy_free(again);
    pricing_policy_free(pol);
    return 0;
}
