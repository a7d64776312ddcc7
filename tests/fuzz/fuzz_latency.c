/* libFuzzer harness: the scheduler's RTT-matrix CSV parser (all three shapes)
 * and a placement on whatever it accepted, plus the probe engine's numeric
 * endpoint parser on the same bytes. */
#include "latency.h"
#include "place.h"
#include "probe.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void place_on(const sched_latency *lat)
{
    sched_offer o[3];
    sched_job j = {0};
    sched_input in = {0};
    sched_result r = SCHED_RESULT_INIT;
    size_t n = sched_latency_count(lat);
    memset(o, 0, sizeof o);
    for (size_t i = 0; i < 3; i++) {
        o[i].id = i == 0 ? "off_a" : i == 1 ? "off_b" : "off_c";
        o[i].region = sched_latency_name(lat, i % n);
        o[i].devices_per_node = 8;
        o[i].nodes = 1;
        o[i].free_devices = 8;
        o[i].srtt_ms = (double)(i * 40);
        o[i].price_micro_per_device_hour = 1000000;
    }
    j.p50_ms = j.p90_ms = 3600000;
    j.devices = 1;
    j.data_region = sched_latency_name(lat, n - 1);
    in.offers = o;
    in.n_offers = 3;
    in.job = &j;
    in.weights = sched_weights_default();
    in.model.matrix = lat;
    in.model.probe_region = sched_latency_name(lat, 0);
    in.model.unknown_ms = 500.0;
    if (sched_place(&in, &r, NULL, 0) != 0 || r.n_ranked + r.n_rejected != 3)
        abort();
    sched_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], *s = malloc(size + 1);
    struct sockaddr_in6 sa;
    unsigned len;
    sched_latency *lat = sched_latency_parse((const char *)data, size, err, sizeof err);

    if (lat) {
        if (sched_latency_count(lat) == 0)
            abort();
        place_on(lat);
        sched_latency_free(lat);
    }
    memcpy(s, data, size);
    s[size] = '\0';
    (void)probe_endpoint_parse(s, &sa, sizeof sa, &len, err, sizeof err);
    free(s);
    return 0;
}
