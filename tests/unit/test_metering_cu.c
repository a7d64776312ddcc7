/*
 * test_metering_cu.c - compute-unit rates, normalisation and its inverse:
 * hand-computed values, properties across devices and counts, bad inputs.
 *
 * Reminder of the arithmetic (docs/compute-units.md):
 *   roof [MFLOP/s]   = min(peak_gflops x 1000, intensity_milli x bandwidth_gbps)
 *   rate [mCU/h]     = roof x eff_ppm x 3 600 000 / 10^15   (half-even)
 *   work [mCU]       = roof x eff_ppm x count x wall_ms / 10^15 (half-even)
 *   duration [ms]    = ceil(work x 10^15 / (roof x eff_ppm x count))
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cu.h"

#define CATALOG_PATH TALLY_SOURCE_DIR "/metering/catalog/devices.json"

static cat_catalog *cat;

static void load(void)
{
    cat_error err = {{0}};
    cat = cat_load_file(CATALOG_PATH, &err);
    cr_assert_not_null(cat, "%s", err.message);
}

static void unload(void)
{
    cat_free(cat);
}

TestSuite(cu, .init = load, .fini = unload);

static cu_profile named(const char *name)
{
    cu_profile p;
    cr_assert_eq(cu_profile_named(name, &p), CU_OK, "profile %s", name);
    return p;
}

/* H100 SXM, llm-train (bf16, 300 FLOP/B, GPU default efficiency 40 %):
 *   peak roof = 989 400 GFLOP/s = 989 400 000 MFLOP/s
 *   mem roof  = 300 000 x 3 350 = 1 005 000 000 MFLOP/s -> compute-bound
 *   rate      = 989 400 000 x 400 000 x 3 600 000 / 10^15 = 1 424 736 mCU/h
 *   (= 0.3958 PFLOP/s effective x 3600 s = 1424.736 CU per hour) */
Test(cu, h100_llm_train_rate)
{
    cu_profile p = named("llm-train");
    cu_rate r;
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-h100-sxm", 1, &p, &r, NULL), CU_OK);
    cr_assert_eq(r.roof_mflops, 989400000);
    cr_assert_eq(r.mem_roof_mflops, 1005000000);
    cr_assert_not(r.memory_bound);
    cr_assert_eq(r.eff_ppm, 400000);
    cr_assert_eq(r.rate_mcu_per_hour, 1424736);
    /* 8 GPUs: 8 x 1 424 736 = 11 397 888 mCU/h. */
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-h100-sxm", 8, &p, &r, NULL), CU_OK);
    cr_assert_eq(r.total_mcu_per_hour, 11397888);
}

/* 8 x H100 SXM for 90 minutes on llm-train: 1 424 736 x 8 x 1.5 = 17 096 832 mCU. */
Test(cu, h100_normalize_90_minutes)
{
    cu_profile p = named("llm-train");
    int64_t mcu = -1;
    cr_assert_eq(cu_normalize(cat, NULL, "nvidia-h100-sxm", 8, &p, 5400000, &mcu, NULL, NULL),
                 CU_OK);
    cr_assert_eq(mcu, 17096832);
}

/* A100 80GB llm-decode (bf16, 16 FLOP/B, 60 % of the roof):
 *   mem roof = 16 000 x 2 039 = 32 624 000 MFLOP/s < 312 000 000 -> memory-bound
 *   rate = 32 624 000 x 600 000 x 3 600 000 / 10^15 = 70 467.84 -> 70 468 mCU/h */
Test(cu, a100_decode_is_memory_bound)
{
    cu_profile p = named("llm-decode");
    cu_rate r;
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-a100-sxm-80gb", 1, &p, &r, NULL), CU_OK);
    cr_assert(r.memory_bound);
    cr_assert_eq(r.roof_mflops, 32624000);
    cr_assert_eq(r.rate_mcu_per_hour, 70468);
}

/* EPYC 9654 cpu-batch (fp64, 4 FLOP/B, CPU default 65 %):
 *   mem roof = 4 000 x 461 = 1 844 000 MFLOP/s < 3 686 000 -> memory-bound
 *   rate = 1 844 000 x 650 000 x 3 600 000 / 10^15 = 4 314.96 -> 4 315 mCU/h */
Test(cu, epyc_cpu_batch)
{
    cu_profile p = named("cpu-batch");
    cu_rate r;
    cr_assert_eq(cu_rate_for(cat, NULL, "amd-epyc-9654", 1, &p, &r, NULL), CU_OK);
    cr_assert(r.memory_bound);
    cr_assert_eq(r.rate_mcu_per_hour, 4315);
}

/* V100 has no bf16: named profiles swap to fp16 (125 TFLOPS).
 *   rate = 125 000 000 x 400 000 x 3 600 000 / 10^15 = 180 000 mCU/h */
Test(cu, v100_swaps_bf16_for_fp16)
{
    cu_profile p = named("llm-train");
    cu_rate r;
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-v100-sxm2-32gb", 1, &p, &r, NULL), CU_OK);
    cr_assert_eq(r.precision, CAT_FP16);
    cr_assert_eq(r.rate_mcu_per_hour, 180000);
}

/* Intensity is FLOP per byte at the class's own precision; operands of 8, 4,
 * 4, 2, 2, 1, 1 bytes (fp64..int8) rescale it by own / other:
 *   16 000 bf16 -> fp8:  16 000 x 2 / 1 = 32 000
 *   50 000 fp16 -> int8: 50 000 x 2 / 1 = 100 000
 *    8 000 fp64 -> fp32:  8 000 x 8 / 4 = 16 000
 *   50 000 fp16 -> tf32: 50 000 x 2 / 4 = 25 000
 *        1 fp8  -> fp64: (1 x 1 + 4) / 8 = 0 -> clamped to the minimum 1 */
Test(cu, intensity_scales_with_operand_size)
{
    cr_assert_eq(cu_intensity_at_precision(16000, CAT_BF16, CAT_FP8), 32000);
    cr_assert_eq(cu_intensity_at_precision(50000, CAT_FP16, CAT_INT8), 100000);
    cr_assert_eq(cu_intensity_at_precision(8000, CAT_FP64, CAT_FP32), 16000);
    cr_assert_eq(cu_intensity_at_precision(50000, CAT_FP16, CAT_TF32), 25000);
    cr_assert_eq(cu_intensity_at_precision(300000, CAT_BF16, CAT_FP16), 300000);
    cr_assert_eq(cu_intensity_at_precision(1, CAT_FP8, CAT_FP64), CU_MIN_INTENSITY);
    cr_assert_eq(cu_intensity_at_precision(CU_MAX_INTENSITY, CAT_FP64, CAT_INT8), CU_MAX_INTENSITY);
    cr_assert_eq(cu_intensity_at_precision(777, CAT_PRECISION_COUNT, CAT_FP8), 777);
}

/* llm-decode in fp8 on H100 SXM: 32 FLOP/B (fp8 weights are half the bytes),
 *   mem roof = 32 000 x 3 350 = 107 200 000 MFLOP/s < 1 978 900 000 -> memory-bound
 *   rate = 107 200 000 x 600 000 x 3 600 000 / 10^15 = 231 552 mCU/h
 * (with the bf16 intensity it would have been 115 776: half). */
Test(cu, h100_decode_fp8_uses_fp8_bytes)
{
    cu_profile p;
    cu_rate r;
    cr_assert_eq(cu_profile_class_precision(CU_CLASS_LLM_DECODE, CAT_FP8, &p), CU_OK);
    cr_assert_eq(p.intensity_milli, 32000);
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-h100-sxm", 1, &p, &r, NULL), CU_OK);
    cr_assert(r.memory_bound);
    cr_assert_eq(r.roof_mflops, 107200000);
    cr_assert_eq(r.rate_mcu_per_hour, 231552);
}

/* llm-prefill in int8 on A100 80GB: 250 x 2 = 500 FLOP/B,
 *   mem roof = 500 000 x 2 039 = 1 019 500 000 > int8 peak 624 000 000 -> compute-bound
 *   rate = 624 000 000 x 550 000 x 3 600 000 / 10^15 = 1 235 520 mCU/h
 * (at the bf16 intensity, 509 750 000 MFLOP/s, it would wrongly be memory-bound). */
Test(cu, a100_prefill_int8_is_compute_bound)
{
    cu_profile p;
    cu_rate r;
    cr_assert_eq(cu_profile_class_precision(CU_CLASS_LLM_PREFILL, CAT_INT8, &p), CU_OK);
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-a100-sxm-80gb", 1, &p, &r, NULL), CU_OK);
    cr_assert_not(r.memory_bound);
    cr_assert_eq(r.roof_mflops, 624000000);
    cr_assert_eq(r.rate_mcu_per_hour, 1235520);
}

/* The class's own precision and the bf16 <-> fp16 swap keep the intensity. */
Test(cu, own_precision_keeps_intensity)
{
    cu_profile a, b;
    cr_assert_eq(cu_profile_named("cv-train", &a), CU_OK);
    cr_assert_eq(cu_profile_class_precision(CU_CLASS_CV_TRAIN, CAT_BF16, &b), CU_OK);
    cr_assert_eq(a.intensity_milli, 50000);
    cr_assert_eq(b.intensity_milli, 50000);
}

/* cv-infer (7 450 FLOP/B in fp16, 14 900 in int8) on an H100 SXM: memory roof
 * 7 450 000 x 3 350 = 24 957.5 TFLOP/s > 989.4 peak, compute-bound; 50 % ->
 * 989 400 000 x 500 000 x 3 600 000 / 10^15 = 1 780 920 mCU/h. In int8 the
 * peak is 1 978.9 TOP/s (roof 14 900 000 x 3 350 is far above):
 * 1 978 900 000 x 500 000 x 3.6e6 / 1e15 = 3 562 020 mCU/h. */
Test(cu, h100_cv_infer_is_compute_bound)
{
    cu_profile p = named("cv-infer");
    cu_rate r;
    cr_assert_eq(p.precision, CAT_FP16);
    cr_assert_eq(p.intensity_milli, 7450000);
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-h100-sxm", 1, &p, &r, NULL), CU_OK);
    cr_assert_not(r.memory_bound);
    cr_assert_eq(r.mem_roof_mflops, INT64_C(24957500000));
    cr_assert_eq(r.rate_mcu_per_hour, 1780920);
    cr_assert_eq(cu_profile_class_precision(CU_CLASS_CV_INFER, CAT_INT8, &p), CU_OK);
    cr_assert_eq(p.intensity_milli, 14900000);
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-h100-sxm", 1, &p, &r, NULL), CU_OK);
    cr_assert_eq(r.rate_mcu_per_hour, 3562020);
}

/* A Xeon 8480+ runs cv-infer in int8 through AMX: 229 376 GOP/s, memory roof
 * 14 900 000 x 307 = 4 574.3 TOP/s, so compute-bound; CPU default 25 % ->
 * 229 376 000 x 250 000 x 3 600 000 / 10^15 = 206 438.4 -> 206 438 mCU/h. */
Test(cu, xeon_cv_infer_int8)
{
    cu_profile p;
    cu_rate r;
    cr_assert_eq(cu_profile_class_precision(CU_CLASS_CV_INFER, CAT_INT8, &p), CU_OK);
    cr_assert_eq(cu_rate_for(cat, NULL, "intel-xeon-platinum-8480p", 1, &p, &r, NULL), CU_OK);
    cr_assert_not(r.memory_bound);
    cr_assert_eq(r.eff_ppm, 250000);
    cr_assert_eq(r.rate_mcu_per_hour, 206438);
}

/* cv-infer's intensity is above every catalog device's ridge point at every
 * precision it runs: the class is compute-bound everywhere, so on it the CU
 * ranks devices by peak x efficiency (docs/compute-units.md, "cv-infer"). */
Test(cu, cv_infer_compute_bound_on_every_device)
{
    static const cat_precision precs[] = {CAT_FP16, CAT_BF16, CAT_FP8, CAT_INT8};
    int ran = 0;
    for (size_t i = 0; i < cat_device_count(cat); i++) {
        const char *id = cat_device_id(cat_device_at(cat, i));
        for (size_t k = 0; k < sizeof precs / sizeof precs[0]; k++) {
            cu_profile p;
            cu_rate r;
            cr_assert_eq(cu_profile_class_precision(CU_CLASS_CV_INFER, precs[k], &p), CU_OK);
            if (cu_rate_for(cat, NULL, id, 1, &p, &r, NULL) != CU_OK)
                continue;
            cr_expect_not(r.memory_bound, "%s %s", id, cat_precision_name(precs[k]));
            ran++;
        }
    }
    cr_assert_gt(ran, 40);
}

/* Inverse: the work one H100 does in an hour takes exactly an hour; one mCU
 * needs ceil(10^15 / (989 400 000 x 400 000)) = ceil(2.527) = 3 ms. */
Test(cu, duration_inverse)
{
    cu_profile p = named("llm-train");
    int64_t ms = -1;
    cr_assert_eq(cu_duration(cat, NULL, "nvidia-h100-sxm", 1, &p, 1424736, &ms, NULL, NULL), CU_OK);
    cr_assert_eq(ms, 3600000);
    cr_assert_eq(cu_duration(cat, NULL, "nvidia-h100-sxm", 1, &p, 1, &ms, NULL, NULL), CU_OK);
    cr_assert_eq(ms, 3);
    cr_assert_eq(cu_duration(cat, NULL, "nvidia-h100-sxm", 1, &p, 0, &ms, NULL, NULL), CU_OK);
    cr_assert_eq(ms, 0);
}

/* ---- properties over the whole catalog ----------------------------------- */

static const char *profiles[] = {"llm-train", "llm-prefill", "llm-decode", "cv-train",
                                 "cv-infer",  "hpc-fp64",    "cpu-batch"};

/* N devices deliver N x the CU per hour (up to N/2 mCU of per-device rounding)
 * and N x the work in the same time. */
Test(cu, count_scales_linearly)
{
    for (size_t i = 0; i < cat_device_count(cat); i++) {
        const char *id = cat_device_id(cat_device_at(cat, i));
        for (size_t k = 0; k < sizeof profiles / sizeof profiles[0]; k++) {
            cu_profile p = named(profiles[k]);
            cu_rate one, many;
            if (cu_rate_for(cat, NULL, id, 1, &p, &one, NULL) != CU_OK)
                continue;
            for (int64_t n = 2; n <= 4096; n *= 4) {
                cr_assert_eq(cu_rate_for(cat, NULL, id, n, &p, &many, NULL), CU_OK);
                int64_t diff = many.total_mcu_per_hour - n * one.rate_mcu_per_hour;
                cr_expect(diff <= n / 2 + 1 && diff >= -(n / 2 + 1), "%s %s n=%lld", id,
                          profiles[k], (long long)n);
                int64_t w1, wn;
                cr_assert_eq(cu_normalize(cat, NULL, id, 1, &p, 7200000, &w1, NULL, NULL), CU_OK);
                cr_assert_eq(cu_normalize(cat, NULL, id, n, &p, 7200000, &wn, NULL, NULL), CU_OK);
                cr_expect_leq(wn - n * w1 < 0 ? n * w1 - wn : wn - n * w1, n, "%s", id);
            }
        }
    }
}

/* The same job (fixed work) measured on every device that can run the profile
 * comes out at the same CU within 0.01 %: the time a device needs
 * (cu_duration) normalises back to the job's work. Faster devices need less
 * time, so they deliver more CU per hour. */
Test(cu, same_job_same_cu_across_devices)
{
    const int64_t work = 5000000; /* 5 000 CU */
    for (size_t k = 0; k < sizeof profiles / sizeof profiles[0]; k++) {
        cu_profile p = named(profiles[k]);
        int seen = 0;
        for (size_t i = 0; i < cat_device_count(cat); i++) {
            const char *id = cat_device_id(cat_device_at(cat, i));
            int64_t ms, back;
            if (cu_duration(cat, NULL, id, 2, &p, work, &ms, NULL, NULL) != CU_OK)
                continue;
            seen++;
            cr_assert_eq(cu_normalize(cat, NULL, id, 2, &p, ms, &back, NULL, NULL), CU_OK);
            cr_expect_geq(back, work, "%s %s", id, profiles[k]);
            cr_expect_leq(back - work, work / 10000, "%s %s: %lld vs %lld", id, profiles[k],
                          (long long)back, (long long)work);
        }
        cr_expect_geq(seen, 5, "profile %s runs on few devices", profiles[k]);
    }
}

/* A faster device (higher rate) needs proportionally less time for a job. */
Test(cu, faster_device_more_cu_per_hour)
{
    cu_profile p = named("llm-train");
    cu_rate a100, h100, b200;
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-a100-sxm-80gb", 1, &p, &a100, NULL), CU_OK);
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-h100-sxm", 1, &p, &h100, NULL), CU_OK);
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-b200", 1, &p, &b200, NULL), CU_OK);
    cr_assert_lt(a100.rate_mcu_per_hour, h100.rate_mcu_per_hour);
    cr_assert_lt(h100.rate_mcu_per_hour, b200.rate_mcu_per_hour);
    int64_t ms_a, ms_h;
    cr_assert_eq(cu_duration(cat, NULL, "nvidia-a100-sxm-80gb", 1, &p, 1000000, &ms_a, NULL, NULL),
                 CU_OK);
    cr_assert_eq(cu_duration(cat, NULL, "nvidia-h100-sxm", 1, &p, 1000000, &ms_h, NULL, NULL),
                 CU_OK);
    cr_assert_gt(ms_a, ms_h);
}

/* ---- bad inputs ------------------------------------------------------------ */

Test(cu, unknown_device)
{
    cu_profile p = named("llm-train");
    cu_rate r;
    cu_error err = {0};
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-h900", 1, &p, &r, &err), CU_ERR_UNKNOWN_DEVICE);
    cr_assert_str_eq(err.field, "device");
    cr_assert_str_eq(cu_status_code(err.code), "unknown_device");
    cr_assert_eq(cu_rate_for(cat, NULL, NULL, 1, &p, &r, NULL), CU_ERR_UNKNOWN_DEVICE);
}

Test(cu, unknown_profile)
{
    cu_profile p;
    cr_assert_eq(cu_profile_named("llm-finetune", &p), CU_ERR_UNKNOWN_PROFILE);
    cr_assert_eq(cu_profile_named("custom", &p), CU_ERR_UNKNOWN_PROFILE);
    cr_assert_eq(cu_profile_custom(CAT_FP32, -1, &p), CU_ERR_NEGATIVE);
    cr_assert_eq(cu_profile_custom(CAT_FP32, 0, &p), CU_ERR_OUT_OF_RANGE);
    cr_assert_eq(cu_profile_custom(CAT_FP32, CU_MAX_INTENSITY + 1, &p), CU_ERR_OUT_OF_RANGE);
    cu_rate r;
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-t4", 1, NULL, &r, NULL), CU_ERR_UNKNOWN_PROFILE);
}

Test(cu, precision_unsupported)
{
    cu_profile p;
    cu_rate r;
    cu_error err = {0};
    /* T4 publishes no FP64 figure. */
    p = named("hpc-fp64");
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-t4", 1, &p, &r, &err),
                 CU_ERR_PRECISION_UNSUPPORTED);
    cr_assert_str_eq(err.field, "profile.precision");
    /* Custom profiles never swap: V100 has no bf16. */
    cr_assert_eq(cu_profile_custom(CAT_BF16, 100000, &p), CU_OK);
    cr_assert_eq(cu_rate_for(cat, NULL, "nvidia-v100-sxm2-32gb", 1, &p, &r, NULL),
                 CU_ERR_PRECISION_UNSUPPORTED);
    /* CPUs without a 16-bit figure cannot run llm-train. */
    p = named("llm-train");
    cr_assert_eq(cu_rate_for(cat, NULL, "amd-epyc-9654", 1, &p, &r, NULL),
                 CU_ERR_PRECISION_UNSUPPORTED);
}

Test(cu, negative_and_absurd_values)
{
    cu_profile p = named("llm-train");
    int64_t out;
    cu_error err = {0};
    cr_assert_eq(cu_normalize(cat, NULL, "nvidia-l4", -1, &p, 1000, &out, NULL, &err),
                 CU_ERR_NEGATIVE);
    cr_assert_str_eq(err.field, "count");
    cr_assert_eq(cu_normalize(cat, NULL, "nvidia-l4", 0, &p, 1000, &out, NULL, NULL),
                 CU_ERR_OUT_OF_RANGE);
    cr_assert_eq(cu_normalize(cat, NULL, "nvidia-l4", CU_MAX_COUNT + 1, &p, 1000, &out, NULL, NULL),
                 CU_ERR_OUT_OF_RANGE);
    cr_assert_eq(cu_normalize(cat, NULL, "nvidia-l4", 1, &p, -1, &out, NULL, &err),
                 CU_ERR_NEGATIVE);
    cr_assert_str_eq(err.field, "duration");
    cr_assert_eq(cu_normalize(cat, NULL, "nvidia-l4", 1, &p, CU_MAX_WALL_MS + 1, &out, NULL, NULL),
                 CU_ERR_OUT_OF_RANGE);
    cr_assert_eq(cu_duration(cat, NULL, "nvidia-l4", 1, &p, -5, &out, NULL, NULL), CU_ERR_NEGATIVE);
    cr_assert_eq(cu_normalize(cat, NULL, "nvidia-l4", 1, &p, 1000, NULL, NULL, NULL),
                 CU_ERR_INVALID);
}

/* Overflow: with efficiency raised to 100 % for custom work, a million B200s
 * at fp8 (4 500 000 GFLOP/s) deliver 16 200 000 mCU/h each; for 100 years
 * (876 600 h) that is 1.42 x 10^19 mCU > INT64_MAX (9.22 x 10^18). */
Test(cu, overflow_is_reported)
{
    cu_eff_table *t = malloc(sizeof *t);
    cu_eff_defaults(t);
    for (uint32_t i = 0; i < t->n; i++)
        if (t->entries[i].cls == CU_CLASS_CUSTOM)
            t->entries[i].eff_ppm = 1000000;
    cu_profile p;
    cr_assert_eq(cu_profile_custom(CAT_FP8, 10000000, &p), CU_OK);
    int64_t out;
    cu_error err = {0};
    cr_assert_eq(
        cu_normalize(cat, t, "nvidia-b200", CU_MAX_COUNT, &p, CU_MAX_WALL_MS, &out, NULL, &err),
        CU_ERR_OVERFLOW);
    cr_assert_str_eq(cu_status_code(err.code), "overflow");
    /* Inverse: INT64_MAX mCU on one EPYC 7763 takes ~1.7 x 10^22 ms. */
    cu_profile cpu = named("cpu-batch");
    cr_assert_eq(cu_duration(cat, NULL, "amd-epyc-7763", 1, &cpu, INT64_MAX, &out, NULL, NULL),
                 CU_ERR_OVERFLOW);
    free(t);
}

Test(cu, status_text_is_stable)
{
    cr_assert_str_eq(cu_status_code(CU_ERR_PRECISION_UNSUPPORTED), "precision_unsupported");
    cr_assert_str_eq(cu_status_code(CU_ERR_NEGATIVE), "negative_value");
    cr_assert_str_eq(cu_status_code((cu_status)99), "unknown");
    cr_assert_str_eq(cu_class_name(CU_CLASS_HPC_FP64), "hpc-fp64");
}
