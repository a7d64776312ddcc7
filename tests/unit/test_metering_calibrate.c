/*
 * test_metering_calibrate.c - efficiency tables: defaults, lookup, JSON round
 * trip, and calibration from observed runs (hand-computed).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"

#define CATALOG_PATH TALLY_SOURCE_DIR "/metering/catalog/devices.json"

static cat_catalog *cat;
static cu_eff_table *base, *next;

static void setup(void)
{
    cat_error err = {{0}};
    cat = cat_load_file(CATALOG_PATH, &err);
    cr_assert_not_null(cat, "%s", err.message);
    base = malloc(sizeof *base);
    next = malloc(sizeof *next);
    cu_eff_defaults(base);
}

static void teardown(void)
{
    cat_free(cat);
    free(base);
    free(next);
}

TestSuite(calibrate, .init = setup, .fini = teardown);

static cu_observation h100_run(int64_t work_mcu)
{
    cu_observation o = {
        .device_id = "nvidia-h100-sxm", .count = 1, .wall_ms = 3600000, .work_mcu = work_mcu};
    cr_assert_eq(cu_profile_named("llm-train", &o.profile), CU_OK);
    return o;
}

Test(calibrate, defaults)
{
    cr_assert_eq(base->version, 1);
    cr_assert_eq(base->n, CAT_KIND_COUNT * CU_CLASS_COUNT);
    const cat_device *h100 = cat_find(cat, "nvidia-h100-sxm");
    const cat_device *epyc = cat_find(cat, "amd-epyc-9654");
    cr_assert_eq(cu_eff_lookup(base, h100, CU_CLASS_LLM_TRAIN), 400000);
    cr_assert_eq(cu_eff_lookup(base, epyc, CU_CLASS_CPU_BATCH), 650000);
    cr_assert_eq(cu_eff_lookup(NULL, h100, CU_CLASS_LLM_DECODE), 600000);
}

/* One hour on one H100 SXM doing 712 368 mCU (half the default rate of
 * 1 424 736 mCU/h, i.e. an implied efficiency of 200 000 ppm).
 *   prior:  400 000 ppm with weight 3 600 device-s (CU_CALIB_PRIOR_S)
 *   run:    200 000 ppm with weight 3 600 device-s
 *   new  =  (400 000 x 3 600 + 200 000 x 3 600) / 7 200 = 300 000 ppm
 * A second identical run: prior weight is now the 3 600 s of evidence:
 *   (300 000 x 3 600 + 200 000 x 3 600) / 7 200 = 250 000 ppm */
Test(calibrate, weighted_mean_hand_computed)
{
    cu_observation o = h100_run(712368);
    size_t bad = 99;
    cr_assert_eq(cu_calibrate(cat, base, &o, 1, next, &bad, NULL), CU_OK);
    cr_assert_eq(next->version, 2);
    cr_assert_eq(next->n, base->n + 1);
    const cat_device *h100 = cat_find(cat, "nvidia-h100-sxm");
    cr_assert_eq(cu_eff_lookup(next, h100, CU_CLASS_LLM_TRAIN), 300000);
    const cu_eff_entry *e = &next->entries[next->n - 1];
    cr_assert_str_eq(e->device_id, "nvidia-h100-sxm");
    cr_assert_eq(e->evidence_s, 3600);
    cr_assert_eq(e->runs, 1);
    /* Other devices of the kind keep the default. */
    cr_assert_eq(cu_eff_lookup(next, cat_find(cat, "nvidia-a10"), CU_CLASS_LLM_TRAIN), 400000);
    /* The input is untouched. */
    cr_assert_eq(base->version, 1);
    cr_assert_eq(cu_eff_lookup(base, h100, CU_CLASS_LLM_TRAIN), 400000);
    /* Second round, calibrating in place (out aliases in). */
    cr_assert_eq(cu_calibrate(cat, next, &o, 1, next, NULL, NULL), CU_OK);
    cr_assert_eq(next->version, 3);
    cr_assert_eq(cu_eff_lookup(next, h100, CU_CLASS_LLM_TRAIN), 250000);
    cr_assert_eq(next->entries[next->n - 1].evidence_s, 7200);
}

/* After calibration the rate reflects the measured efficiency:
 *   989 400 000 x 300 000 x 3 600 000 / 10^15 = 1 068 552 mCU/h, and the
 * calibrated run normalises closer to what it really did. */
Test(calibrate, rate_uses_calibrated_efficiency)
{
    cu_observation o = h100_run(712368);
    cr_assert_eq(cu_calibrate(cat, base, &o, 1, next, NULL, NULL), CU_OK);
    cu_rate r;
    cr_assert_eq(cu_rate_for(cat, next, "nvidia-h100-sxm", 1, &o.profile, &r, NULL), CU_OK);
    cr_assert_eq(r.rate_mcu_per_hour, 1068552);
    cr_assert_eq(r.eff_version, 2);
}

Test(calibrate, rejects_bad_observations)
{
    cu_observation obs[3] = {h100_run(712368), h100_run(712368), h100_run(712368)};
    size_t bad = 99;
    cu_error err = {0};
    /* More work than the roofline allows in an hour (100 % = 3 561 840 mCU). */
    obs[1].work_mcu = 3561841;
    cr_assert_eq(cu_calibrate(cat, base, obs, 3, next, &bad, &err), CU_ERR_OUT_OF_RANGE);
    cr_assert_eq(bad, 1);
    cr_assert_str_eq(err.field, "work");
    obs[1].work_mcu = 3561840; /* exactly 100 % is accepted */
    cr_assert_eq(cu_calibrate(cat, base, obs, 3, next, &bad, NULL), CU_OK);
    obs[2].device_id = "nvidia-h900";
    cr_assert_eq(cu_calibrate(cat, base, obs, 3, next, &bad, NULL), CU_ERR_UNKNOWN_DEVICE);
    cr_assert_eq(bad, 2);
    obs[2] = h100_run(-1);
    cr_assert_eq(cu_calibrate(cat, base, obs, 3, next, &bad, NULL), CU_ERR_NEGATIVE);
    obs[2] = h100_run(1);
    obs[2].wall_ms = 0;
    cr_assert_eq(cu_calibrate(cat, base, obs, 3, next, &bad, NULL), CU_ERR_OUT_OF_RANGE);
}

Test(calibrate, json_round_trip)
{
    cu_observation o = h100_run(712368);
    cr_assert_eq(cu_calibrate(cat, base, &o, 1, next, NULL, NULL), CU_OK);
    json_t *j = cu_eff_to_json(next);
    cr_assert_not_null(j);
    cu_eff_table *back = malloc(sizeof *back);
    cr_assert_eq(cu_eff_from_json(j, back, NULL), CU_OK);
    cr_assert_eq(back->version, next->version);
    cr_assert_eq(back->n, next->n);
    for (uint32_t i = 0; i < back->n; i++) {
        cr_assert_str_eq(back->entries[i].device_id, next->entries[i].device_id);
        cr_assert_eq(back->entries[i].eff_ppm, next->entries[i].eff_ppm);
        cr_assert_eq(back->entries[i].evidence_s, next->entries[i].evidence_s);
    }
    /* A float where an integer belongs is rejected. */
    json_object_set_new(json_array_get(json_object_get(j, "entries"), 0), "eff_ppm",
                        json_real(0.5));
    cu_error err = {0};
    cr_assert_eq(cu_eff_from_json(j, back, &err), CU_ERR_INVALID);
    json_decref(j);
    free(back);
}
