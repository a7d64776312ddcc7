/*
 * test_metering_eval_units.c - `tally-eval units`: the invariance metric and
 * calibration from a separate file, on hand-computed two-device cases.
 *
 * Both devices run llm-train in bf16, compute-bound (A100: 300 FLOP/B x 2 039
 * GB/s = 611.7 > 312 TFLOP/s; H100: 1 005 > 989.4), GPU default efficiency 40 %:
 *   A100 rate = 312 000 000 x 400 000 x 3 600 000 / 10^15 =   449 280 mCU/h
 *   H100 rate = 989 400 000 x 400 000 x 3 600 000 / 10^15 = 1 424 736 mCU/h
 * Calibration file (w1): A100 x1 at 100/s, H100 x1 at 200/s.
 *   work per CU  x_A = 100 / 449.280 = 0.222578,  x_H = 200 / 1424.736 = 0.140376
 *   GPU geometric mean g = sqrt(x_A x_H); m_A = x_A / g = sqrt(1.585577) = 1.259197,
 *   m_H = 1 / m_A = 0.794157 -> device efficiencies 503 679 and 317 663 ppm;
 *   the GPU kind factor is the geometric mean of m_A and m_H = 1 (unchanged).
 * Evaluated file (w2): A100 x1 at 50/s, H100 x2 at 200/s (100 per device).
 *   defaults: 50 / 449.280 = 0.111289 and 200 / 2 849.472 = 0.070188;
 *     CV of two values = sqrt(2) |a - b| / (a + b) = 0.3203, and naive (per
 *     peak TFLOPS: 50 / 312 = 0.160256, 100 / 989.4 = 0.101071) is the same
 *     0.3203 because both rows are compute-bound at one efficiency;
 *   device-calibrated: A100 312 x 503 679 x 3.6 = 565 732 mCU/h, H100
 *     2 x 989.4 x 317 663 x 3.6 = 2 262 930: 50 / 565.732 = 0.088381 and
 *     200 / 2262.930 = 0.088381 -> CV ~ 0 (rounding only).
 * A row naming a device outside the catalog is skipped and counted.
 *
 * Cross-validation. --cv halves adds "reverse": efficiencies calibrated on the
 * evaluated file (w2, per-device ratio 50/100 = 0.5, so m_A = 1.259197 again)
 * applied to the calibration file (w1, ratio 0.5): CV ~ 0, naive 0.3203.
 * --cv loo-workload pools the two files; the third (loo) holds w3@a (A100 100,
 * H100 200: ratio 0.5) and w3@b (A100 50, H100 200: ratio 0.25), one benchmark
 * because the names differ only after '@'. Pool = loo + heldout (w2): folds w3
 * and w2. Holding out w3, the calibration is w2 alone, m_A = 1.259197,
 * m_H = 0.794157, so w3@a comes out at CV ~ 0 and w3@b at work-per-CU ratio
 * 0.25 x 3.171154 / 1.585577 = 0.5 -> CV = sqrt(2) x 0.5 / 1.5 = 0.4714.
 * (Were w3@b in w3@a's calibration, m_A would be the geometric mean of 1.259197
 * and 0.890387 with w2's: 1.121816, and w3@a's CV 0.1627 instead of 0.)
 * Naive CVs: w3@a 0.3203, w3@b sqrt(2) x 0.207212 / 1.792788 = 0.1635.
 *
 * A job's own intensity: "llm-train=100:w4" keeps llm-train's efficiencies
 * (40 %) at 100 FLOP/B, so both devices are memory-bound:
 *   A100 roof 100 x 2 039 = 203.9 TFLOP/s -> 203 900 000 x 400 000 x 3 600 000
 *        / 10^15 = 293 616 mCU/h;  H100 100 x 3 350 = 335 -> 482 400 mCU/h.
 * Rows A100 x1 at 100/s and H100 x1 at 200/s: work per CU 100 / 293.616 =
 * 0.340581 and 200 / 482.400 = 0.414594 -> CV sqrt(2) x 0.074013 / 0.755175 =
 * 0.1386 (naive 0.3203 as above). --rows divides each by the geometric mean
 * of the two: sqrt(0.340581 / 0.414594) = 0.906356 and 1 / that = 1.103319.
 * "llm-train=abc:w4" and "llm-train=0:w4" are malformed and skipped.
 */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EVAL_BIN TALLY_BINARY_DIR "/bin/tally-eval"

static char calib[] = "/tmp/tally-eval-calib-XXXXXX";
static char heldout[] = "/tmp/tally-eval-heldout-XXXXXX";
static char loo[] = "/tmp/tally-eval-loo-XXXXXX";
static char own[] = "/tmp/tally-eval-own-XXXXXX";

static void write_file(char *tmpl, const char *text)
{
    int fd = mkstemp(tmpl);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    cr_assert_eq(access(EVAL_BIN, X_OK), 0, "build tally-eval first (%s)", EVAL_BIN);
    write_file(calib, "# calibration\n"
                      "workload,precision,device,count,throughput\n"
                      "llm-train:w1,bf16,nvidia-a100-sxm-80gb,1,100\n"
                      "llm-train:w1,bf16,nvidia-h100-sxm,1,200\n");
    write_file(heldout, "workload,precision,device,count,throughput\n"
                        "llm-train:w2,bf16,nvidia-a100-sxm-80gb,1,50\n"
                        "llm-train:w2,bf16,nvidia-h100-sxm,2,200\n"
                        "llm-train:w2,bf16,no-such-device,1,10\n");
    write_file(loo, "llm-train:w3@a,bf16,nvidia-a100-sxm-80gb,1,100\n"
                    "llm-train:w3@a,bf16,nvidia-h100-sxm,1,200\n"
                    "llm-train:w3@b,bf16,nvidia-a100-sxm-80gb,1,50\n"
                    "llm-train:w3@b,bf16,nvidia-h100-sxm,1,200\n");
    write_file(own, "llm-train=100:w4,bf16,nvidia-a100-sxm-80gb,1,100\n"
                    "llm-train=100:w4,bf16,nvidia-h100-sxm,1,200\n"
                    "llm-train=abc:w4,bf16,nvidia-h100-sxm,1,200\n"
                    "llm-train=0:w4,bf16,nvidia-h100-sxm,1,200\n");
}

static void teardown(void)
{
    unlink(calib);
    unlink(heldout);
    unlink(loo);
    unlink(own);
}

TestSuite(eval_units, .init = setup, .fini = teardown);

/* Run tally-eval on csv with args; returns its parsed JSON output (caller decrefs). */
static json_t *run_csv(const char *csv, const char *args)
{
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd, "%s units --csv %s %s", EVAL_BIN, csv, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s failed: %s", cmd, out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "not JSON: %s", out);
    return j;
}

static json_t *run(const char *args)
{
    return run_csv(heldout, args);
}

/* j["workloads"][wl][method] */
static double cv_of(json_t *j, const char *wl, const char *method)
{
    json_t *w = json_object_get(json_object_get(j, "workloads"), wl);
    cr_assert_not_null(w, "no workload %s", wl);
    return json_real_value(json_object_get(w, method));
}

static double cv(json_t *j, const char *method)
{
    return cv_of(j, "llm-train:w2", method);
}

Test(eval_units, defaults_equal_naive_when_compute_bound)
{
    json_t *j = run("");
    cr_assert_eq(json_integer_value(json_object_get(j, "rows")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "skipped")), 1);
    cr_assert_float_eq(cv(j, "tally_cv"), 0.3203, 0.0005);
    cr_assert_float_eq(cv(j, "naive_cv"), 0.3203, 0.0005);
    json_decref(j);
}

Test(eval_units, device_calibration_from_another_file_transfers)
{
    char args[256];
    snprintf(args, sizeof args, "--calibrate %s --level device", calib);
    json_t *j = run(args);
    cr_assert_lt(cv(j, "tally_cv"), 0.001);
    cr_assert_float_eq(cv(j, "naive_cv"), 0.3203, 0.0005);
    json_t *e = json_object_get(j, "efficiency");
    cr_assert_eq(json_integer_value(json_object_get(e, "version")), 2);
    cr_assert_eq(json_integer_value(json_object_get(e, "calibration_rows")), 2);
    json_decref(j);
}

/* Kind level: the GPU factor is the geometric mean of 1.259 and 0.794 = 1. */
Test(eval_units, kind_calibration_keeps_the_gpu_anchor)
{
    char args[256], table[] = "/tmp/tally-eval-eff-XXXXXX";
    int fd = mkstemp(table);
    cr_assert_geq(fd, 0);
    close(fd);
    snprintf(args, sizeof args, "--calibrate %s --level kind --eff-out %s", calib, table);
    json_t *j = run(args);
    cr_assert_float_eq(cv(j, "tally_cv"), 0.3203, 0.0005);
    json_decref(j);
    /* The table written is what was used: device level has the hand values. */
    snprintf(args, sizeof args, "--calibrate %s --level device --eff-out %s", calib, table);
    json_decref(run(args));
    json_t *t = json_load_file(table, 0, NULL), *e;
    size_t i;
    int seen = 0;
    cr_assert_not_null(t);
    json_array_foreach(json_object_get(t, "entries"), i, e)
    {
        const char *dev = json_string_value(json_object_get(e, "device"));
        long long ppm = json_integer_value(json_object_get(e, "eff_ppm"));
        if (dev && strcmp(dev, "nvidia-a100-sxm-80gb") == 0) {
            cr_assert_eq(ppm, 503679);
            seen++;
        }
        if (dev && strcmp(dev, "nvidia-h100-sxm") == 0) {
            cr_assert_eq(ppm, 317663);
            seen++;
        }
    }
    cr_assert_eq(seen, 2);
    json_decref(t);
    unlink(table);
}

Test(eval_units, halves_reports_both_directions)
{
    char args[256];
    snprintf(args, sizeof args, "--calibrate %s --cv halves", calib);
    json_t *j = run(args);
    cr_assert_lt(cv(j, "tally_cv"), 0.001);
    cr_assert_float_eq(cv(j, "default_cv"), 0.3203, 0.0005);
    json_t *rev = json_object_get(j, "reverse");
    cr_assert_not_null(rev);
    cr_assert_lt(cv_of(rev, "llm-train:w1", "tally_cv"), 0.001);
    cr_assert_float_eq(cv_of(rev, "llm-train:w1", "naive_cv"), 0.3203, 0.0005);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "efficiency"), "cv")),
                     "halves");
    json_decref(j);
}

Test(eval_units, loo_workload_holds_out_one_benchmark_at_a_time)
{
    char args[256];
    snprintf(args, sizeof args, "--calibrate %s --cv loo-workload", heldout);
    json_t *j = run_csv(loo, args);
    cr_assert_eq(json_integer_value(json_object_get(j, "folds")), 2);
    cr_assert_lt(cv_of(j, "llm-train:w3@a", "tally_cv"), 0.001);
    cr_assert_float_eq(cv_of(j, "llm-train:w3@b", "tally_cv"), 0.4714, 0.0005);
    cr_assert_float_eq(cv_of(j, "llm-train:w3@a", "naive_cv"), 0.3203, 0.0005);
    cr_assert_float_eq(cv_of(j, "llm-train:w3@b", "naive_cv"), 0.1635, 0.0005);
    cr_assert_float_eq(cv_of(j, "llm-train:w3@a", "default_cv"), 0.3203, 0.0005);
    json_t *e = json_object_get(j, "efficiency");
    cr_assert_eq(json_integer_value(json_object_get(e, "calibration_rows")), 6);
    cr_assert_str_eq(json_string_value(json_object_get(e, "cv")), "loo-workload");
    json_decref(j);
}

Test(eval_units, a_job_intensity_overrides_the_class_intensity)
{
    json_t *j = run_csv(own, "--rows");
    cr_assert_eq(json_integer_value(json_object_get(j, "rows")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "skipped")), 2);
    cr_assert_float_eq(cv_of(j, "llm-train=100:w4", "tally_cv"), 0.1386, 0.0005);
    cr_assert_float_eq(cv_of(j, "llm-train=100:w4", "naive_cv"), 0.3203, 0.0005);
    json_t *rows = json_object_get(j, "per_row");
    cr_assert_eq(json_array_size(rows), 2);
    json_t *a = json_array_get(rows, 0), *h = json_array_get(rows, 1);
    cr_assert_str_eq(json_string_value(json_object_get(a, "device")), "nvidia-a100-sxm-80gb");
    cr_assert_str_eq(json_string_value(json_object_get(a, "roof")), "memory");
    cr_assert_str_eq(json_string_value(json_object_get(h, "roof")), "memory");
    cr_assert_float_eq(json_real_value(json_object_get(a, "eff")), 0.4, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(a, "tally_ratio")), 0.9064, 0.0005);
    cr_assert_float_eq(json_real_value(json_object_get(h, "tally_ratio")), 1.1033, 0.0005);
    cr_assert_float_eq(json_real_value(json_object_get(h, "per_device")), 200.0, 1e-9);
    json_decref(j);
}

Test(eval_units, usage_errors)
{
    FILE *p = popen(EVAL_BIN " units 2>/dev/null", "r");
    cr_assert_not_null(p);
    cr_assert_eq(WEXITSTATUS(pclose(p)), 2);
    p = popen(EVAL_BIN " units --csv x.csv --cv halves 2>/dev/null", "r"); /* no --calibrate */
    cr_assert_not_null(p);
    cr_assert_eq(WEXITSTATUS(pclose(p)), 2);
    p = popen(EVAL_BIN " units --csv x.csv --cv k-fold 2>/dev/null", "r");
    cr_assert_not_null(p);
    cr_assert_eq(WEXITSTATUS(pclose(p)), 2);
    p = popen(EVAL_BIN " units --csv x.csv --cv loo-workload --rows 2>/dev/null", "r");
    cr_assert_not_null(p);
    cr_assert_eq(WEXITSTATUS(pclose(p)), 2);
    p = popen(EVAL_BIN " units --csv /nonexistent/file.csv 2>/dev/null", "r");
    cr_assert_not_null(p);
    cr_assert_eq(WEXITSTATUS(pclose(p)), 1);
}
