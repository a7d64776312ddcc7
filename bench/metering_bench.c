/*
 * metering_bench.c - in-process throughput of the metering hot paths:
 * cu_normalize (CU of a usage interval), cu_duration (its inverse) and
 * est_predict / est_learn (duration estimates), over the shipped catalog.
 * Prints one JSON object. The baseline beside it is libsodium's BLAKE2b-256 of
 * 256 bytes on the same core (DESIGN.md lists ~2.1 M/s), so the figures can be
 * compared across machines as ratios.
 *
 *   build/bin/bench-metering [catalog.json] [seconds-per-figure]
 */
#include "catalog.h"
#include "cu.h"
#include "estimate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile int64_t sink;

static double rate_blake2b(double secs)
{
    unsigned char in[256] = {1}, out[32];
    long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 1000; i++, n++) {
            in[0] = (unsigned char)n;
            crypto_generichash(out, sizeof out, in, sizeof in, NULL, 0);
        }
        sink += out[0];
    } while ((t = now_s() - t0) < secs);
    return (double)n / t;
}

static double rate_normalize(const cat_catalog *cat, const cu_eff_table *eff, double secs)
{
    static const char *profiles[] = {"llm-train", "llm-decode", "cv-train", "llm-prefill"};
    size_t ndev = cat_device_count(cat);
    cu_profile prof[4];
    long n = 0;
    double t0 = now_s(), t;

    for (int i = 0; i < 4; i++)
        cu_profile_named(profiles[i], &prof[i]);
    do {
        for (int i = 0; i < 1000; i++, n++) {
            const cat_device *d = cat_device_at(cat, (size_t)n % ndev);
            int64_t mcu = 0;
            cu_rate r;
            cu_error e;
            if (cu_normalize(cat, eff, cat_device_id(d), 8, &prof[n % 4], 3600000 + n % 1000, &mcu,
                             &r, &e) == CU_OK)
                sink += mcu;
        }
    } while ((t = now_s() - t0) < secs);
    return (double)n / t;
}

static double rate_estimate(double secs, int learn)
{
    est_params p = est_params_default();
    est_state *st = est_new(&p);
    long n = 0;
    double t0 = now_s(), t;
    char tenant[32];

    /* 1000 tenants x 4 job classes of history, 8 jobs each */
    for (int i = 0; i < 32000; i++) {
        est_query q = {{0}, 3600, 7200, 0};
        snprintf(tenant, sizeof tenant, "acc_%d", i % 1000);
        q.keys[0] = est_key(tenant, i % 4 ? "train" : "infer", "gpu");
        q.keys[1] = est_key(tenant, "", "");
        est_learn(st, &q, 3600, 3000 + i % 1500);
    }
    do {
        for (int i = 0; i < 1000; i++, n++) {
            est_query q = {{0}, 3600, 7200, 0};
            est_result r;
            snprintf(tenant, sizeof tenant, "acc_%ld", n % 1000);
            q.keys[0] = est_key(tenant, n % 4 ? "train" : "infer", "gpu");
            q.keys[1] = est_key(tenant, "", "");
            est_predict(st, &q, &r);
            if (learn)
                est_learn(st, &q, r.p50_s, 3000 + n % 1500);
            sink += r.p50_s;
        }
    } while ((t = now_s() - t0) < secs);
    est_free(st);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : TALLY_SOURCE_DIR "/metering/catalog/devices.json";
    double secs = argc > 2 ? atof(argv[2]) : 2.0;
    cat_error err;
    cat_catalog *cat;
    cu_eff_table *eff = malloc(sizeof *eff);
    double base, norm, pred, learn;

    if (sodium_init() < 0 || !eff)
        return 1;
    cat = cat_load_file(path, &err);
    if (!cat) {
        fprintf(stderr, "bench-metering: %s\n", err.message);
        free(eff);
        return 1;
    }
    cu_eff_defaults(eff);
    base = rate_blake2b(secs);
    norm = rate_normalize(cat, eff, secs);
    pred = rate_estimate(secs, 0);
    learn = rate_estimate(secs, 1);
    printf("{\"baseline_blake2b256_per_s\": %.0f, \"normalize_per_s\": %.0f, "
           "\"normalize_ratio\": %.3f, \"estimate_per_s\": %.0f, \"estimate_ratio\": %.3f, "
           "\"estimate_and_learn_per_s\": %.0f, \"estimate_and_learn_ratio\": %.3f}\n",
           base, norm, norm / base, pred, pred / base, learn, learn / base);
    cat_free(cat);
    free(eff);
    return 0;
}
