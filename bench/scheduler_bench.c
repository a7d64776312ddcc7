/*
 * scheduler_bench.c - in-process placement throughput (sched_place: filter,
 * price with the built-in device-hour callback, score, sort) with N offers,
 * for N = 100, 1 000, 10 000 and 100 000, beside two baselines measured in
 * the same run on the same core:
 *   - qsort of N int64 keys (the sort any ranking pays), and
 *   - libsodium BLAKE2b-256 of 256 bytes (DESIGN.md lists ~2.1 M/s),
 * so the figures compare across machines as ratios. Each figure is the median
 * of `rounds` rounds of about `seconds` each. Offers are synthetic (seeded):
 * 32 regions with a random symmetric RTT matrix, 1-4 nodes of 8 devices,
 * a quarter of them failing one filter, a few with probe failures.
 *
 *   build/bin/bench-scheduler [seconds-per-round] [rounds]
 * Prints one JSON object.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "latency.h"
#include "place.h"

#define NREGIONS 32
#define MAX_ROUNDS 15

static volatile uint64_t sink; /* unsigned: sums wrap, by design */
static char region_names[NREGIONS][16];
static char (*offer_ids)[32];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static sched_latency *make_matrix(uint64_t *seed)
{
    sched_latency *lat = sched_latency_new();
    for (int i = 0; lat && i < NREGIONS; i++)
        snprintf(region_names[i], sizeof region_names[i], "region-%02d", i);
    for (int i = 0; lat && i < NREGIONS; i++)
        for (int j = i; j < NREGIONS; j++) {
            double ms = i == j ? 2.0 : 5.0 + (double)(rnd(seed) % 300);
            sched_latency_set(lat, region_names[i], region_names[j], ms);
            sched_latency_set(lat, region_names[j], region_names[i], ms);
        }
    return lat;
}

static void make_offers(sched_offer *o, size_t n, uint64_t *seed)
{
    static const char *devices[] = {"nvidia-h100-sxm", "nvidia-a100-sxm-80gb", "nvidia-l40s",
                                    "amd-mi300x"};
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd(seed);
        memset(&o[i], 0, sizeof o[i]);
        snprintf(offer_ids[i], sizeof offer_ids[i], "off_%06zu", i);
        o[i].id = offer_ids[i];
        o[i].region = region_names[r % NREGIONS];
        o[i].device_id = devices[(r >> 8) % 4];
        o[i].device_kind = "gpu";
        o[i].devices_per_node = 8;
        o[i].nodes = 1 + (int64_t)((r >> 12) % 4);
        o[i].free_devices = (r >> 16) % 4 == 0 ? 0 : o[i].nodes * 8; /* a quarter full */
        o[i].memory_gib = 80;
        o[i].consecutive_failures = (r >> 20) % 16 == 0 ? 1 : 0;
        o[i].srtt_ms = 20.0 + (double)((r >> 24) % 200);
        o[i].rate_mcu_per_device_hour = 1000000 + (int64_t)((r >> 32) % 1000000);
        o[i].price_micro_per_device_hour = 1500000 + (int64_t)((r >> 40) % 2000000);
    }
}

static int median_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, median_cmp);
    return v[n / 2];
}

static double rate_place(const sched_latency *lat, const sched_offer *o, size_t n, double secs)
{
    static const char *const regions[] = {"region-03", "region-17", "region-29", "region-08"};
    sched_job j = {0};
    sched_input in = {0};
    sched_result r = SCHED_RESULT_INIT; /* reused across calls, as a server would */
    long k = 0;
    double t0 = now_s(), t;

    j.work_mcu = 8000000;
    j.devices = 4;
    j.p50_ms = 100;
    j.p90_ms = 130;
    in.offers = o;
    in.n_offers = n;
    in.job = &j;
    in.weights = sched_weights_default();
    in.model.matrix = lat;
    in.model.probe_region = "region-00";
    in.model.unknown_ms = 500.0;
    do {
        j.data_region = regions[k % 4];
        if (sched_place(&in, &r, NULL, 0) == 0 && r.n_ranked > 0)
            sink += (uint64_t)r.ranked[0].score_micro;
        k++;
    } while ((t = now_s() - t0) < secs);
    sched_result_free(&r);
    return (double)k / t;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts of n fresh random int64 keys per second (refill included). */
static double rate_qsort(size_t n, double secs, uint64_t *seed)
{
    int64_t *v = malloc(n * sizeof *v);
    long k = 0;
    double t0 = now_s(), t;
    if (!v)
        return 0.0;
    do {
        for (size_t i = 0; i < n; i++)
            v[i] = (int64_t)(rnd(seed) >> 1);
        qsort(v, n, sizeof *v, cmp_i64);
        sink += (uint64_t)v[0];
        k++;
    } while ((t = now_s() - t0) < secs);
    free(v);
    return (double)k / t;
}

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

int main(int argc, char **argv)
{
    static const size_t sizes[] = {100, 1000, 10000, 100000};
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    uint64_t seed = 42;
    sched_latency *lat = NULL;
    sched_offer *offers = NULL;
    double place[MAX_ROUNDS], sortr[MAX_ROUNDS], blake[MAX_ROUNDS], prev_us = 0.0;
    int rc = 1;

    if (secs <= 0.0 || rounds < 1 || rounds > MAX_ROUNDS || sodium_init() < 0) {
        fprintf(stderr, "usage: bench-scheduler [seconds-per-round > 0] [rounds 1..%d]\n",
                MAX_ROUNDS);
        return 2;
    }
    lat = make_matrix(&seed);
    offers = malloc(sizes[3] * sizeof *offers);
    offer_ids = malloc(sizes[3] * sizeof *offer_ids);
    if (!lat || !offers || !offer_ids)
        goto done;
    make_offers(offers, sizes[3], &seed);
    printf("{\"rounds\": %d, \"seconds_per_round\": %.2f, \"sizes\": [", rounds, secs);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        double p, q, b, us;
        for (int r = 0; r < rounds; r++) { /* interleaved, so noise hits all alike */
            place[r] = rate_place(lat, offers, n, secs);
            sortr[r] = rate_qsort(n, secs, &seed);
            blake[r] = rate_blake2b(secs / 4);
        }
        p = median(place, rounds);
        q = median(sortr, rounds);
        b = median(blake, rounds);
        us = 1e6 / p;
        printf("%s\n  {\"offers\": %zu, \"placements_per_s\": %.1f, \"us_per_placement\": %.2f, "
               "\"ns_per_offer\": %.1f, \"qsort_n_int64_per_s\": %.1f, "
               "\"placement_over_qsort_time\": %.2f, \"blake2b256_per_s\": %.0f, "
               "\"blake2b_hashes_per_placement\": %.1f, \"time_growth_vs_previous\": %.2f}",
               s ? "," : "", n, p, us, us * 1000.0 / (double)n, q, q / p, b, b / p,
               prev_us > 0.0 ? us / prev_us : 0.0);
        prev_us = us;
    }
    printf("\n]}\n");
    rc = 0;
done:
    sched_latency_free(lat);
    free(offers);
    free(offer_ids);
    return rc;
}
