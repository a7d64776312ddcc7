/*
 * pricing_bench.c - in-process rating throughput for a policy that uses every
 * rule kind (pricing_example_workload: tiers, spot, base per device-hour, peak
 * and night windows across a DST change, allowance, commitment, regions,
 * contract discount, provider-paid fee, minimum and commitment true-ups),
 * beside libsodium's Ed25519 signing rate on the same core, for a 512-byte
 * message and for one of the size of a quote document (about 1.5 KB), since
 * Ed25519 hashes the message twice: the cost a quote paid when each was signed
 * on its own ("tally-quote-v1"); since migration 0015 the quote writer signs one
 * Merkle root per stored batch (billing/quote_proof.h). Prints one JSON object.
 *
 *   build/bin/bench-pricing [seconds]
 */
#include "example.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rate_sign(double secs, size_t len)
{
    static unsigned char msg[4096];
    unsigned char pk[32], sk[64], sig[64];
    long n = 0;
    double t0, t;

    crypto_sign_keypair(pk, sk);
    t0 = now_s();
    do {
        for (int i = 0; i < 100; i++, n++) {
            msg[0] = (unsigned char)n;
            crypto_sign_detached(sig, NULL, msg, len, sk);
        }
    } while ((t = now_s() - t0) < secs);
    return (double)n / t;
}

static double rate_rating(double secs, int64_t *checksum)
{
    pricing_error err;
    long n = 0;
    double t0 = now_s(), t;

    do {
        if (pricing_example_workload(1000, checksum, &err) != PRICING_OK) {
            fprintf(stderr, "bench-pricing: %s\n", err.message);
            exit(1);
        }
        n += 1000;
    } while ((t = now_s() - t0) < secs);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0, sign, sign_doc, rate;
    int64_t checksum = 0;

    if (sodium_init() < 0)
        return 1;
    sign = rate_sign(secs, 512);
    sign_doc = rate_sign(secs, 1500);
    rate = rate_rating(secs, &checksum);
    printf("{\"baseline_ed25519_sign_per_s\": %.0f, \"ed25519_sign_1500B_per_s\": %.0f, "
           "\"ratings_per_s\": %.0f, \"ratings_ratio\": %.3f, \"checksum\": %lld}\n",
           sign, sign_doc, rate, rate / sign, (long long)checksum);
    return 0;
}
