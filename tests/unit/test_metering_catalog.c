/*
 * test_metering_catalog.c - the shipped device catalog and the parser's
 * rejection of malformed catalogs.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "catalog.h"

#define CATALOG_PATH TALLY_SOURCE_DIR "/metering/catalog/devices.json"

static cat_catalog *cat;

static void load(void)
{
    cat_error err = {{0}};
    cat = cat_load_file(CATALOG_PATH, &err);
    cr_assert_not_null(cat, "catalog failed to load: %s", err.message);
}

static void unload(void)
{
    cat_free(cat);
}

TestSuite(catalog, .init = load, .fini = unload);

Test(catalog, version_and_size)
{
    cr_assert_str_eq(cat_version(cat), "2026-11-25.1");
    cr_assert_geq(cat_device_count(cat), 20);
    cr_assert_null(cat_device_at(cat, cat_device_count(cat)));
}

Test(catalog, required_devices_present)
{
    static const char *ids[] = {"nvidia-v100-sxm2-32gb",
                                "nvidia-t4",
                                "nvidia-a10",
                                "nvidia-a100-sxm-40gb",
                                "nvidia-a100-sxm-80gb",
                                "nvidia-l4",
                                "nvidia-l40s",
                                "nvidia-h100-pcie",
                                "nvidia-h100-sxm",
                                "nvidia-h200-sxm",
                                "nvidia-rtx-4090",
                                "nvidia-b200",
                                "amd-mi250x",
                                "amd-mi300x",
                                "huawei-ascend-910b",
                                "intel-gaudi2",
                                "amd-epyc-9654",
                                "intel-xeon-platinum-8480p",
                                "aws-graviton3"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        cr_expect_not_null(cat_find(cat, ids[i]), "missing %s", ids[i]);
    cr_expect_null(cat_find(cat, "nvidia-h100"));
    cr_expect_null(cat_find(cat, NULL));
}

Test(catalog, datasheet_figures)
{
    const cat_device *h100 = cat_find(cat, "nvidia-h100-sxm");
    /* Datasheet prints BF16 1,979 TFLOPS with sparsity; dense = 989.4. */
    cr_assert_eq(cat_device_peak_gflops(h100, CAT_BF16), 989400);
    cr_assert_eq(cat_device_peak_gflops(h100, CAT_FP64), 67000);
    cr_assert_eq(cat_device_bandwidth_gbps(h100), 3350);
    cr_assert_eq(cat_device_memory_gb(h100), 80);
    cr_assert_eq(cat_device_tdp_w(h100), 700);
    cr_assert_eq(cat_device_kind(h100), CAT_KIND_GPU);
    cr_assert_str_eq(cat_device_source(h100), "nvidia-h100");
    const cat_device *epyc = cat_find(cat, "amd-epyc-9654");
    /* 96 cores x 2.4 GHz x 16 FP64 FLOP/cycle = 3686.4 GFLOPS. */
    cr_assert_eq(cat_device_peak_gflops(epyc, CAT_FP64), 3686);
    cr_assert_eq(cat_device_cores(epyc), 96);
    cr_assert_eq(cat_device_kind(epyc), CAT_KIND_CPU);
}

Test(catalog, absent_precisions_are_absent)
{
    cr_assert_not(cat_device_has_precision(cat_find(cat, "nvidia-v100-sxm2-32gb"), CAT_BF16));
    cr_assert_not(cat_device_has_precision(cat_find(cat, "nvidia-t4"), CAT_FP64));
    cr_assert_not(cat_device_has_precision(cat_find(cat, "amd-mi250x"), CAT_FP8));
    cr_assert_eq(cat_device_peak_gflops(cat_find(cat, "nvidia-t4"), CAT_PRECISION_COUNT), 0);
}

/* Every device has a resolvable source, a bandwidth, some precision, and no
 * sparse figure slipped in: dense tensor rates at most double per halving of
 * width (tf32 <= 16-bit, fp8 <= 2 x 16-bit). */
Test(catalog, every_device_consistent)
{
    for (size_t i = 0; i < cat_device_count(cat); i++) {
        const cat_device *d = cat_device_at(cat, i);
        const char *id = cat_device_id(d);
        cr_expect_gt(strlen(cat_device_source_title(d)), 10, "%s title", id);
        cr_expect_eq(strncmp(cat_device_source_url(d), "https://", 8), 0, "%s url", id);
        cr_expect_gt(cat_device_bandwidth_gbps(d), 0, "%s bandwidth", id);
        int64_t h = cat_device_peak_gflops(d, CAT_BF16);
        if (cat_device_peak_gflops(d, CAT_FP16) > h)
            h = cat_device_peak_gflops(d, CAT_FP16);
        if (h > 0) {
            cr_expect_leq(cat_device_peak_gflops(d, CAT_TF32), h, "%s tf32", id);
            /* +4 %: vendors round each figure separately (L40S: 362.05 vs 733). */
            cr_expect_leq(cat_device_peak_gflops(d, CAT_FP8), 2 * h + h / 25, "%s fp8", id);
            /* int8 at most twice the widest 16-bit/fp8 figure: a 2:4-sparse int8
             * figure (4 x 16-bit on A100, H100) would fail here. */
            int64_t h8 =
                cat_device_peak_gflops(d, CAT_FP8) > h ? cat_device_peak_gflops(d, CAT_FP8) : h;
            cr_expect_leq(cat_device_peak_gflops(d, CAT_INT8), 2 * h8 + h8 / 25, "%s int8", id);
        }
        /* No precision is faster at a wider width: fp64 <= fp32. */
        if (cat_device_has_precision(d, CAT_FP64) && cat_device_has_precision(d, CAT_FP32))
            cr_expect_leq(cat_device_peak_gflops(d, CAT_FP64), cat_device_peak_gflops(d, CAT_FP32),
                          "%s fp64", id);
        if (cat_device_kind(d) == CAT_KIND_CPU)
            cr_expect_gt(cat_device_cores(d), 0, "%s cores", id);
        json_t *j = cat_device_to_json(d);
        cr_expect_not_null(j);
        cr_expect_str_eq(json_string_value(json_object_get(j, "id")), id);
        json_decref(j);
    }
}

Test(catalog, names_round_trip)
{
    for (int p = 0; p < CAT_PRECISION_COUNT; p++) {
        cat_precision q;
        cr_assert_eq(cat_precision_parse(cat_precision_name((cat_precision)p), &q), 0);
        cr_assert_eq((int)q, p);
    }
    cat_precision q;
    cr_assert_eq(cat_precision_parse("fp4", &q), -1);
    cat_kind k;
    cr_assert_eq(cat_kind_parse("npu", &k), 0);
    cr_assert_eq(k, CAT_KIND_NPU);
    cr_assert_eq(cat_kind_parse("tpu", &k), -1);
}

/* ---- parser rejections ---------------------------------------------------- */

#define SRC "\"sources\":{\"s\":{\"title\":\"t\",\"url\":\"https://x\"}}"
#define DEV(body) "{\"version\":\"v1\"," SRC ",\"devices\":[" body "]}"
#define GOOD                                                                                       \
    "{\"id\":\"d-1\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"gpu\","                            \
    "\"peak\":{\"fp16\":1000},\"memory_bandwidth_gbps\":100,\"source\":\"s\"}"

static void expect_reject(const char *json, const char *needle)
{
    cat_error err = {{0}};
    cat_catalog *c = cat_parse(json, strlen(json), &err);
    cr_expect_null(c, "accepted: %s", json);
    cr_expect(strstr(err.message, needle) != NULL, "message '%s' lacks '%s'", err.message, needle);
    cat_free(c);
}

Test(catalog_parse, minimal_ok)
{
    const char *json = DEV(GOOD);
    cat_error err = {{0}};
    cat_catalog *c = cat_parse(json, strlen(json), &err);
    cr_assert_not_null(c, "%s", err.message);
    cr_assert_eq(cat_device_peak_gflops(cat_find(c, "d-1"), CAT_FP16), 1000);
    cat_free(c);
}

Test(catalog_parse, rejects_bad_input)
{
    expect_reject("{", "invalid JSON");
    expect_reject("{\"version\":\"v\",\"version\":\"w\"}", "invalid JSON"); /* duplicate key */
    expect_reject("{\"devices\":[]}", "version");
    expect_reject(DEV(""), "devices");
    expect_reject(DEV(GOOD "," GOOD), "duplicate device id");
    expect_reject(DEV("{\"id\":\"Bad Id\"}"), "slug");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"gpu\","
                      "\"peak\":{\"fp16\":989.4},\"memory_bandwidth_gbps\":1,\"source\":\"s\"}"),
                  "peak.fp16");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"gpu\","
                      "\"peak\":{\"fp4\":1},\"memory_bandwidth_gbps\":1,\"source\":\"s\"}"),
                  "unknown precision");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"gpu\","
                      "\"peak\":{\"fp16\":-5},\"memory_bandwidth_gbps\":1,\"source\":\"s\"}"),
                  "peak.fp16");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"gpu\","
                      "\"peak\":{\"fp16\":1},\"memory_bandwidth_gbps\":1,\"source\":\"nope\"}"),
                  "sources table");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"tpu\","
                      "\"peak\":{\"fp16\":1},\"memory_bandwidth_gbps\":1,\"source\":\"s\"}"),
                  "kind");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"gpu\",\"x\":1,"
                      "\"peak\":{\"fp16\":1},\"memory_bandwidth_gbps\":1,\"source\":\"s\"}"),
                  "unknown field 'x'");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"cpu\","
                      "\"peak\":{\"fp64\":1},\"memory_bandwidth_gbps\":1,\"source\":\"s\"}"),
                  "cores");
    expect_reject(DEV("{\"id\":\"d\",\"vendor\":\"V\",\"name\":\"N\",\"kind\":\"gpu\","
                      "\"peak\":{},\"memory_bandwidth_gbps\":1,\"source\":\"s\"}"),
                  "no precision");
}

Test(catalog_parse, missing_file)
{
    cat_error err = {{0}};
    cr_assert_null(cat_load_file("/nonexistent/devices.json", &err));
    cr_assert(strstr(err.message, "cannot open") != NULL);
}
