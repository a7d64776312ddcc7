/*
 * test_scheduler.c - the placement core: filters with their reasons, the
 * integer score (price + latency term + risk term), durations from work,
 * deterministic ties, overflow and bad input. Every expected figure is worked
 * out by hand in the comment beside it.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "latency.h"
#include "place.h"

#define HOUR_MS INT64_C(3600000)

static sched_latency *lat;

static void setup(void)
{
    lat = sched_latency_new();
    cr_assert(lat);
    cr_assert_eq(sched_latency_set(lat, "r1", "r1", 2.0), 0);
    cr_assert_eq(sched_latency_set(lat, "r2", "r2", 4.0), 0);
    cr_assert_eq(sched_latency_set(lat, "r1", "r2", 100.0), 0);
    cr_assert_eq(sched_latency_set(lat, "r2", "r1", 100.0), 0);
}

static void teardown(void)
{
    sched_latency_free(lat);
}

TestSuite(sched, .init = setup, .fini = teardown);

static sched_offer offer(const char *id, const char *region, int64_t price_micro_per_dev_h)
{
    sched_offer o = {0};
    o.id = id;
    o.region = region;
    o.device_id = "nvidia-h100-sxm";
    o.device_kind = "gpu";
    o.devices_per_node = 8;
    o.nodes = 2;
    o.free_devices = 16;
    o.memory_gib = 80;
    o.tags[0] = "eu";
    o.health = SCHED_UP;
    o.price_micro_per_device_hour = price_micro_per_dev_h;
    return o;
}

/* One device for one hour (p50 = p90 = 1 h) from time 0, data in r1. */
static sched_job job1h(void)
{
    sched_job j = {0};
    j.profile = "llm-train";
    j.p50_ms = HOUR_MS;
    j.p90_ms = HOUR_MS;
    j.devices = 1;
    j.data_region = "r1";
    return j;
}

static sched_input input(const sched_offer *offers, size_t n, const sched_job *job, int64_t w_lat)
{
    sched_input in = {0};
    in.offers = offers;
    in.n_offers = n;
    in.job = job;
    in.weights.latency_micro_per_ms = w_lat;
    in.weights.risk_per_failure_ppm = 250000;
    in.model.matrix = lat;
    in.model.unknown_ms = 500.0;
    return in;
}

static void place_ok(const sched_input *in, sched_result *r)
{
    char err[256] = "";
    cr_assert_eq(sched_place(in, r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(r->n_ranked + r->n_rejected, in->n_offers);
}

/* 2 devices x 1.5 h x 2.50/device-hour = 7.50; ties round half-even. */
Test(sched, device_hour_price)
{
    sched_offer o = offer("off_a", "r1", 2500000);
    sched_job j = job1h();
    sched_fit f = {2, 0, 5400000, 5400000};
    int64_t t = -1;
    cr_assert_eq(sched_price_device_hours(NULL, &o, &j, &f, &t, NULL, 0), 0);
    cr_assert_eq(t, 7500000);
    o.price_micro_per_device_hour = 1; /* 1 micro per device-hour */
    f.devices = 1;
    f.p50_ms = 1800000; /* 0.5 micro -> 0 (even) */
    cr_assert_eq(sched_price_device_hours(NULL, &o, &j, &f, &t, NULL, 0), 0);
    cr_assert_eq(t, 0);
    f.p50_ms = 5400000; /* 1.5 micro -> 2 (even) */
    cr_assert_eq(sched_price_device_hours(NULL, &o, &j, &f, &t, NULL, 0), 0);
    cr_assert_eq(t, 2);
}

/* far = r2 at 3.00, near = r1 at 3.05 (1 device, 1 h).
 * weight 1000/ms: far 3 000 000 + 100 ms x 1000 = 3 100 000,
 *                 near 3 050 000 + 2 ms x 1000 = 3 052 000 -> near wins.
 * weight 100/ms:  far 3 000 000 + 10 000 = 3 010 000,
 *                 near 3 050 000 + 200 = 3 050 200 -> far wins. */
Test(sched, latency_weight_trades_cost_for_latency)
{
    sched_offer o[2] = {offer("off_far", "r2", 3000000), offer("off_near", "r1", 3050000)};
    sched_job j = job1h();
    sched_input in = input(o, 2, &j, 1000);
    sched_result r = SCHED_RESULT_INIT;

    place_ok(&in, &r);
    cr_assert_eq(r.n_ranked, 2);
    cr_assert_str_eq(r.ranked[0].offer_id, "off_near");
    cr_assert_eq(r.ranked[0].price_micro, 3050000);
    cr_assert_eq(r.ranked[0].latency_term_micro, 2000);
    cr_assert_eq(r.ranked[0].score_micro, 3052000);
    cr_assert_eq(r.ranked[1].score_micro, 3100000);
    cr_assert_eq(r.ranked[1].offer_index, 0);
    cr_assert_float_eq(r.ranked[1].latency_ms, 100.0, 1e-9);
    cr_assert_eq(r.ranked[0].start_ms, 0);
    cr_assert_eq(r.ranked[0].finish_p90_ms, HOUR_MS);
    sched_result_free(&r);

    in.weights.latency_micro_per_ms = 100;
    place_ok(&in, &r);
    cr_assert_str_eq(r.ranked[0].offer_id, "off_far");
    cr_assert_eq(r.ranked[0].score_micro, 3010000);
    cr_assert_eq(r.ranked[1].score_micro, 3050200);
    sched_result_free(&r);
}

/* risk = 100 000 ppm ratio + 1 failure x 250 000 = 350 000 ppm;
 * exposure = price 3 000 000 + failure cost 1 000 000 = 4 000 000;
 * risk term = 4 000 000 x 0.35 = 1 400 000; latency 2 ms x 1000 = 2000. */
Test(sched, risk_term)
{
    sched_offer o = offer("off_a", "r1", 3000000);
    sched_job j = job1h();
    sched_input in = input(&o, 1, &j, 1000);
    sched_result r = SCHED_RESULT_INIT;
    o.consecutive_failures = 1;
    o.failure_ratio_ppm = 100000;
    in.weights.failure_cost_micro = 1000000;
    place_ok(&in, &r);
    cr_assert_eq(r.ranked[0].risk_ppm, 350000);
    cr_assert_eq(r.ranked[0].risk_term_micro, 1400000);
    cr_assert_eq(r.ranked[0].score_micro, 3000000 + 2000 + 1400000);
    sched_result_free(&r);
    /* five failures in a row: capped at certain failure (10^6 ppm) */
    o.consecutive_failures = 5;
    place_ok(&in, &r);
    cr_assert_eq(r.ranked[0].risk_ppm, 1000000);
    cr_assert_eq(r.ranked[0].risk_term_micro, 4000000);
    sched_result_free(&r);
}

static const sched_rejection *rejection(const sched_result *r, const char *id)
{
    for (size_t i = 0; i < r->n_rejected; i++)
        if (strcmp(r->rejected[i].offer_id, id) == 0)
            return &r->rejected[i];
    return NULL;
}

static void expect_reject(const sched_result *r, const char *id, sched_reject code,
                          const char *reason_part)
{
    const sched_rejection *x = rejection(r, id);
    cr_assert(x, "%s was not rejected", id);
    cr_assert_eq(x->code, code, "%s: %s, want %s (%s)", id, sched_reject_name(x->code),
                 sched_reject_name(code), x->reason);
    cr_assert(strstr(x->reason, reason_part), "%s: reason '%s' lacks '%s'", id, x->reason,
              reason_part);
}

/* One offer per filter, each failing exactly one check; 4 devices for
 * 1 h (p90 2 h) starting at 1 000 000, deadline at 1 000 000 + 2 h. */
Test(sched, every_filter_has_a_reason)
{
    static const char *const allowed[] = {"r1", "r2", NULL};
    static const char *const blocked[] = {"off_blocked", NULL};
    sched_offer o[11];
    sched_job j = job1h();
    sched_input in;
    sched_result r = SCHED_RESULT_INIT;

    for (size_t i = 0; i < 11; i++)
        o[i] = offer("", "r1", 3000000);
    o[0].id = "off_ok";
    o[1].id = "off_down", o[1].health = SCHED_DOWN, o[1].consecutive_failures = 3;
    o[2].id = "off_blocked";
    o[3].id = "off_device", o[3].device_id = "nvidia-a100-sxm-80gb";
    o[4].id = "off_memory", o[4].memory_gib = 40;
    o[5].id = "off_region", o[5].region = "r9";
    o[6].id = "off_tag", o[6].tags[0] = "us";
    o[7].id = "off_shape", o[7].devices_per_node = 3, o[7].nodes = 4, o[7].free_devices = 12;
    o[8].id = "off_full", o[8].free_devices = 3;
    o[9].id = "off_late", o[9].available_from_ms = 1000001;
    o[10].id = "off_dear", o[10].price_micro_per_device_hour = 3000001;

    j.devices = 4;
    j.p90_ms = 2 * HOUR_MS;
    j.start_ms = 1000000;
    j.deadline_ms = 1000000 + 2 * HOUR_MS;
    j.device_id = "nvidia-h100-sxm";
    j.min_memory_gib = 80;
    j.allowed_regions = allowed;
    j.tags[0] = "eu";
    j.blocked = blocked;
    j.max_price_micro = 12000000; /* 4 x 1 h x 3.00 = 12.00 exactly: at the cap is fine */
    in = input(o, 11, &j, 1000);
    place_ok(&in, &r);
    cr_assert_eq(r.n_ranked, 1);
    cr_assert_str_eq(r.ranked[0].offer_id, "off_ok");
    cr_assert_eq(r.ranked[0].price_micro, 12000000);
    cr_assert_eq(r.ranked[0].finish_p90_ms, j.deadline_ms);
    expect_reject(&r, "off_down", SCHED_REJ_DOWN, "3 consecutive probe failures");
    expect_reject(&r, "off_blocked", SCHED_REJ_BLOCKED, "blocked");
    expect_reject(&r, "off_device", SCHED_REJ_DEVICE, "nvidia-a100-sxm-80gb");
    expect_reject(&r, "off_memory", SCHED_REJ_MEMORY, "40 GiB per device, job needs 80");
    expect_reject(&r, "off_region", SCHED_REJ_REGION, "region r9");
    expect_reject(&r, "off_tag", SCHED_REJ_RESIDENCY, "'eu'");
    expect_reject(&r, "off_shape", SCHED_REJ_SHAPE, "4 devices do not fit 4 nodes x 3");
    expect_reject(&r, "off_full", SCHED_REJ_CAPACITY, "3 devices free");
    expect_reject(&r, "off_late", SCHED_REJ_DEADLINE, "1 ms after the deadline");
    expect_reject(&r, "off_dear", SCHED_REJ_PRICE_CAP, "price 12.000004 is over the cap 12.000000");
    cr_assert_eq(r.rejected[0].offer_index, 1); /* input order */
    sched_result_free(&r);
}

/* Device kind when no id is named; multi-node jobs take whole nodes. */
Test(sched, kind_and_whole_nodes)
{
    sched_offer o[2] = {offer("off_gpu", "r1", 1000000), offer("off_cpu", "r1", 1000000)};
    sched_job j = job1h();
    sched_input in = input(o, 2, &j, 0);
    sched_result r = SCHED_RESULT_INIT;
    o[1].device_kind = "cpu";
    j.device_kind = "gpu";
    j.devices = 16; /* 2 whole nodes of 8 */
    place_ok(&in, &r);
    cr_assert_eq(r.n_ranked, 1);
    cr_assert_str_eq(r.ranked[0].offer_id, "off_gpu");
    cr_assert_eq(r.ranked[0].price_micro, 16000000);
    expect_reject(&r, "off_cpu", SCHED_REJ_DEVICE, "device kind cpu, job needs gpu");
    sched_result_free(&r);
    j.devices = 12; /* 1.5 nodes */
    place_ok(&in, &r);
    expect_reject(&r, "off_gpu", SCHED_REJ_SHAPE, "whole nodes");
    sched_result_free(&r);
}

/* work 10 CU = 10 000 mCU on 2 devices of 4 000 mCU/h:
 * p50 = ceil(10 000 x 3 600 000 / 8 000) = 4 500 000 ms (1.25 h);
 * spread p90/p50 = 150/100 -> p90 = 6 750 000 ms;
 * price = 2 x 1.25 h x 2.00 = 5.00. A 3 000 mCU/h device:
 * p50 = ceil(36 000 000 000 / 6 000) = 6 000 000 ms, price 2 x 5/3 h x 2 = 6.666667. */
Test(sched, durations_from_work)
{
    sched_offer o[2] = {offer("off_fast", "r1", 2000000), offer("off_slow", "r1", 2000000)};
    sched_job j = job1h();
    sched_input in = input(o, 2, &j, 0);
    sched_result r = SCHED_RESULT_INIT;
    o[0].rate_mcu_per_device_hour = 4000;
    o[1].rate_mcu_per_device_hour = 3000;
    j.work_mcu = 10000;
    j.p50_ms = 100;
    j.p90_ms = 150;
    j.devices = 2;
    place_ok(&in, &r);
    cr_assert_eq(r.n_ranked, 2);
    cr_assert_str_eq(r.ranked[0].offer_id, "off_fast");
    cr_assert_eq(r.ranked[0].finish_p50_ms, 4500000);
    cr_assert_eq(r.ranked[0].finish_p90_ms, 6750000);
    cr_assert_eq(r.ranked[0].price_micro, 5000000);
    cr_assert_eq(r.ranked[1].finish_p50_ms, 6000000);
    cr_assert_eq(r.ranked[1].price_micro, 6666667);
    sched_result_free(&r);
    o[1].rate_mcu_per_device_hour = 0; /* profile unsupported on that device */
    place_ok(&in, &r);
    expect_reject(&r, "off_slow", SCHED_REJ_DEVICE, "no CU rate");
    sched_result_free(&r);
}

/* Equal scores: offer id decides, whatever the input order. */
Test(sched, ties_broken_by_offer_id)
{
    sched_offer o[3] = {offer("off_c", "r1", 1000000), offer("off_a", "r1", 1000000),
                        offer("off_b", "r1", 1000000)};
    sched_job j = job1h();
    sched_input in = input(o, 3, &j, 1000);
    sched_result r = SCHED_RESULT_INIT;
    place_ok(&in, &r);
    cr_assert_str_eq(r.ranked[0].offer_id, "off_a");
    cr_assert_str_eq(r.ranked[1].offer_id, "off_b");
    cr_assert_str_eq(r.ranked[2].offer_id, "off_c");
    cr_assert_eq(r.ranked[0].score_micro, r.ranked[2].score_micro);
    sched_result_free(&r);
}

/* Latency: matrix base (symmetrised) + probe excess over the prober's base. */
Test(sched, latency_model)
{
    sched_offer o = offer("off_a", "r2", 1);
    sched_model m = {lat, "r1", 500.0};
    cr_assert_float_eq(sched_latency_for(&m, "r1", &o), 100.0, 1e-9); /* no probe */
    o.srtt_ms = 130.0; /* the prober (r1) sees 30 ms more than the matrix */
    cr_assert_float_eq(sched_latency_for(&m, "r1", &o), 130.0, 1e-9);
    cr_assert_float_eq(sched_latency_for(&m, "r2", &o), 34.0, 1e-9); /* 4 + 30 */
    o.srtt_ms = 80.0; /* faster than the matrix: no bonus */
    cr_assert_float_eq(sched_latency_for(&m, "r2", &o), 4.0, 1e-9);
    cr_assert_float_eq(sched_latency_for(&m, "nowhere", &o), 80.0, 1e-9); /* probe only */
    o.srtt_ms = 0.0;
    cr_assert_float_eq(sched_latency_for(&m, "nowhere", &o), 500.0, 1e-9); /* nothing known */
    cr_assert_float_eq(sched_latency_for(&m, NULL, &o), 500.0, 1e-9);
    cr_assert_eq(sched_latency_set(lat, "r2", "r1", 110.0), 0); /* asymmetric: mean 105 */
    cr_assert_float_eq(sched_latency_for(&m, "r1", &o), 105.0, 1e-9);
}

static int fail_price(void *ctx, const sched_offer *o, const sched_job *j, const sched_fit *f,
                      int64_t *t, char *err, size_t errlen)
{
    (void)o, (void)j, (void)f, (void)t;
    ++*(int *)ctx;
    snprintf(err, errlen, "no rule prices %s", o->device_id);
    return -1;
}

Test(sched, price_callback_errors_and_overflow)
{
    sched_offer o[2] = {offer("off_a", "r1", INT64_MAX), offer("off_b", "r1", 1000000)};
    sched_job j = job1h();
    sched_input in = input(o, 2, &j, 1000);
    sched_result r = SCHED_RESULT_INIT;
    int calls = 0;
    place_ok(&in, &r); /* INT64_MAX per device-hour x 1 h fits; x 2 devices does not */
    cr_assert_eq(r.n_ranked, 1);
    cr_assert_eq(r.ranked[0].offer_index, 1); /* off_a: the score overflows */
    expect_reject(&r, "off_a", SCHED_REJ_OVERFLOW, "overflows");
    sched_result_free(&r);
    j.devices = 2;
    place_ok(&in, &r);
    expect_reject(&r, "off_a", SCHED_REJ_PRICE_ERROR, "price overflows int64");
    sched_result_free(&r);
    in.price = fail_price;
    in.price_ctx = &calls;
    place_ok(&in, &r);
    cr_assert_eq(calls, 2);
    cr_assert_eq(r.n_ranked, 0);
    expect_reject(&r, "off_b", SCHED_REJ_PRICE_ERROR,
                  "cannot price: no rule prices nvidia-h100-sxm");
    sched_result_free(&r);
}

Test(sched, bad_input)
{
    sched_offer o = offer("off_a", "r1", 1);
    sched_job j = job1h();
    sched_input in = input(&o, 1, &j, 1000);
    sched_result r = SCHED_RESULT_INIT;
    char err[128];
    j.devices = 0;
    cr_assert_eq(sched_place(&in, &r, err, sizeof err), -1);
    cr_assert(strstr(err, "devices"), "%s", err);
    cr_assert_eq(r.ranked, NULL);
    j.devices = 1;
    j.p90_ms = j.p50_ms - 1;
    cr_assert_eq(sched_place(&in, &r, err, sizeof err), -1);
    cr_assert(strstr(err, "p50_ms"), "%s", err);
    j.p90_ms = j.p50_ms;
    in.weights.latency_micro_per_ms = -1;
    cr_assert_eq(sched_place(&in, &r, err, sizeof err), -1);
    in.weights.latency_micro_per_ms = 0;
    o.id = NULL;
    cr_assert_eq(sched_place(&in, &r, err, sizeof err), -1);
    cr_assert(strstr(err, "offers[0]"), "%s", err);
    in.n_offers = 0; /* nothing to rank is not an error */
    cr_assert_eq(sched_place(&in, &r, err, sizeof err), 0);
    cr_assert_eq(r.n_ranked + r.n_rejected, 0);
    sched_result_free(&r);
}

/* Budget rule: slack 50 000 ppm over the cheapest (2.00) allows up to 2.10;
 * 2.10 stays, 2.100001 goes, with its reason; rejected stays in input order. */
Test(sched, cost_slack)
{
    sched_offer o[4] = {offer("off_a", "r2", 2100001), offer("off_b", "r2", 2000000),
                        offer("off_c", "r1", 2100000), offer("off_d", "r1", 2000000)};
    sched_job j = job1h();
    sched_input in = input(o, 4, &j, 2000);
    sched_result r = SCHED_RESULT_INIT;
    o[3].health = SCHED_DOWN; /* rejected by the filter, before the slack */
    in.weights.cost_slack_ppm = 50000;
    place_ok(&in, &r);
    cr_assert_eq(r.n_ranked, 2);
    cr_assert_str_eq(r.ranked[0].offer_id, "off_c"); /* 2 100 000 + 2 ms x 2000 = 2 104 000 */
    cr_assert_str_eq(r.ranked[1].offer_id, "off_b"); /* 2 000 000 + 100 x 2000 = 2 200 000 */
    cr_assert_eq(r.ranked[0].score_micro, 2104000);
    cr_assert_eq(r.ranked[1].score_micro, 2200000);
    cr_assert_eq(r.n_rejected, 2);
    cr_assert_str_eq(r.rejected[0].offer_id, "off_a");
    cr_assert_str_eq(r.rejected[1].offer_id, "off_d");
    expect_reject(&r, "off_a", SCHED_REJ_COST_SLACK,
                  "price 2.100001 is more than 50000 ppm over the cheapest 2.000000");
    cr_assert_str_eq(sched_reject_name(SCHED_REJ_COST_SLACK), "cost_slack");
    sched_result_free(&r);
}

/* Absurd numbers are rejected with a reason, never overflow (UBSan build). */
Test(sched, absurd_numbers)
{
    sched_offer o[3] = {offer("off_a", "r1", 1), offer("off_b", "r1", 1), offer("off_c", "r1", 1)};
    sched_job j = job1h();
    sched_input in = input(o, 3, &j, 1000);
    sched_result r = SCHED_RESULT_INIT;
    o[0].nodes = INT64_MAX; /* nodes x devices per node overflows int64 */
    o[0].devices_per_node = INT64_MAX;
    o[0].free_devices = INT64_MAX;
    o[1].available_from_ms = INT64_MAX; /* start + duration would overflow */
    o[2].rate_mcu_per_device_hour = 1;  /* a tiny rate: duration beyond any bound */
    j.work_mcu = INT64_MAX;
    j.p50_ms = 1;
    j.p90_ms = INT64_MAX; /* and a wild spread */
    j.deadline_ms = INT64_MAX;
    o[0].rate_mcu_per_device_hour = INT64_MAX;
    o[1].rate_mcu_per_device_hour = INT64_MAX;
    place_ok(&in, &r);
    cr_assert_eq(r.n_ranked + r.n_rejected, 3);
    expect_reject(&r, "off_b", SCHED_REJ_OVERFLOW, "beyond");
    expect_reject(&r, "off_c", SCHED_REJ_OVERFLOW, "beyond");
    sched_result_free(&r);
}
