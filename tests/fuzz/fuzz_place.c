/* libFuzzer harness: sched_place on arbitrary numbers (devices, nodes, free
 * devices, rates, prices, times, weights, health) read from the input. The
 * invariants: no crash or UB, every offer ranked or rejected exactly once,
 * ranked sorted by score. */
#include "place.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t n;
} src;

static int64_t next(src *s)
{
    int64_t v = 0;
    size_t k = s->n < 8 ? s->n : 8;
    memcpy(&v, s->p, k);
    s->p += k;
    s->n -= k;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *ids[] = {"off_a", "off_b", "off_c", "off_d"};
    static const char *regions[] = {"r1", "r2", "r3", "r4"};
    src s = {data, size};
    sched_offer o[4];
    sched_job j = {0};
    sched_input in = {0};
    sched_result r = SCHED_RESULT_INIT;

    memset(o, 0, sizeof o);
    for (int i = 0; i < 4; i++) {
        o[i].id = ids[i];
        o[i].region = regions[(uint64_t)next(&s) % 4];
        o[i].devices_per_node = next(&s);
        o[i].nodes = next(&s);
        o[i].free_devices = next(&s);
        o[i].available_from_ms = next(&s);
        o[i].memory_gib = next(&s);
        o[i].health = next(&s) & 1 ? SCHED_DOWN : SCHED_UP;
        o[i].consecutive_failures = (int32_t)next(&s);
        o[i].failure_ratio_ppm = (int32_t)next(&s);
        o[i].srtt_ms = (double)(next(&s) % 100000);
        o[i].rate_mcu_per_device_hour = next(&s);
        o[i].price_micro_per_device_hour = next(&s);
    }
    j.work_mcu = next(&s);
    j.p50_ms = next(&s);
    j.p90_ms = next(&s);
    j.devices = next(&s);
    j.min_memory_gib = next(&s);
    j.deadline_ms = next(&s);
    j.max_price_micro = next(&s);
    j.start_ms = next(&s);
    j.data_region = regions[(uint64_t)next(&s) % 4];
    in.offers = o;
    in.n_offers = 4;
    in.job = &j;
    in.weights.latency_micro_per_ms = next(&s);
    in.weights.failure_cost_micro = next(&s);
    in.weights.risk_per_failure_ppm = (int32_t)next(&s);
    in.weights.cost_slack_ppm = next(&s);
    in.model.unknown_ms = 500.0;
    if (sched_place(&in, &r, NULL, 0) == 0) {
        if (r.n_ranked + r.n_rejected != 4)
            abort();
        for (size_t i = 1; i < r.n_ranked; i++)
            if (r.ranked[i - 1].score_micro > r.ranked[i].score_micro)
                abort();
    }
    sched_result_free(&r);
    return 0;
}
