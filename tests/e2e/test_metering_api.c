/*
 * End-to-end: devices, compute units, estimates, observations and calibration
 * over HTTP against a real tallyd and PostgreSQL.
 *
 * Hand-checked figures (catalog 2026-11-25.1, efficiency defaults v1):
 *   H100 SXM, llm-train (bf16, 300 FLOP/byte): peak 989.4 TFLOP/s; memory roof
 *   300 x 3350 GB/s = 1005 TFLOP/s, so compute-bound at 989.4 TFLOP/s; GPU
 *   llm-train efficiency 40 %: 395.76 TFLOP/s = 0.39576 CU/s per device
 *   = 1424.736 CU per device-hour -> 1 424 736 mCU/h; 8 devices x 1 h = 11 397 888 mCU.
 */
#include "testdb.h"
#include "testhttp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;

static void setup(void)
{
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, NULL);
}

static void teardown(void)
{
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(metering_api, .init = setup, .fini = teardown, .timeout = 90);

static http_resp post(const char *path, const char *key, const char *body)
{
    return http_request(&srv, "POST", path, key, NULL, body, strlen(body));
}

static long long ival(json_t *o, const char *path)
{
    char buf[128], *save = NULL, *tok;
    snprintf(buf, sizeof buf, "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
        o = json_object_get(o, tok);
    cr_assert(json_is_integer(o), "%s is not an integer", path);
    return json_integer_value(o);
}

Test(metering_api, devices_are_listed_with_sources)
{
    http_resp r = http_request(&srv, "GET", "/v1/devices", srv.admin_key, NULL, NULL, 0);
    json_t *d;
    size_t i;
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_geq(json_array_size(json_object_get(r.json, "data")), 20);
    json_array_foreach(json_object_get(r.json, "data"), i, d)
    {
        cr_assert(json_is_string(json_object_get(json_object_get(d, "source"), "url")),
                  "device %zu has no source", i);
    }
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/devices/nvidia-h100-sxm", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(ival(r.json, "peak_gflops.bf16"), 989400);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/devices/no-such-gpu", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/devices?catalog_version=1999", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
}

Test(metering_api, normalize_hand_checked)
{
    http_resp r = post("/v1/normalize", srv.admin_key,
                       "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
                       "\"wall_ms\":3600000}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(ival(r.json, "mcu"), 11397888);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "cu")), "11397.888");
    cr_assert_eq(ival(r.json, "rate.mcu_per_device_hour"), 1424736);
    cr_assert_eq(ival(r.json, "efficiency_version"), 1);
    cr_assert(json_is_string(json_object_get(r.json, "catalog_version")));
    http_resp_free(&r);
    /* device-seconds: 8 devices x 3600 s = 28800 device-seconds, the same work */
    r = post("/v1/normalize", srv.admin_key,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
             "\"device_seconds\":28800}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(ival(r.json, "mcu"), 11397888);
    cr_assert_eq(ival(r.json, "wall_ms"), 3600000);
    http_resp_free(&r);
    /* inverse: that work on the same 8 devices takes one hour */
    r = post("/v1/normalize", srv.admin_key,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
             "\"work_mcu\":11397888}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(ival(r.json, "wall_ms"), 3600000);
    http_resp_free(&r);
}

/* cv-infer (batched CNN inference, fp16, 7 450 FLOP/B: compute-bound on every device):
 * H100 SXM 989.4 TFLOPS fp16 dense x 50 % default efficiency, per device-hour in mCU
 * = 1 780 920 (tests/unit/test_metering_cu.c shows the arithmetic). */
Test(metering_api, normalize_cv_infer)
{
    http_resp r = post("/v1/normalize", srv.admin_key,
                       "{\"device\":\"nvidia-h100-sxm\",\"count\":1,\"profile\":\"cv-infer\","
                       "\"wall_ms\":3600000}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(ival(r.json, "mcu"), 1780920);
    cr_assert_eq(ival(r.json, "rate.mcu_per_device_hour"), 1780920);
    http_resp_free(&r);
}

Test(metering_api, a_faster_device_delivers_more_cu_per_hour)
{
    http_resp a = post("/v1/normalize", srv.admin_key,
                       "{\"device\":\"nvidia-h100-sxm\",\"profile\":\"llm-train\",\"wall_ms\":"
                       "3600000}");
    http_resp b = post("/v1/normalize", srv.admin_key,
                       "{\"device\":\"nvidia-a100-sxm-80gb\",\"profile\":\"llm-train\",\"wall_ms\":"
                       "3600000}");
    cr_assert_eq(a.status, 200, "%s", a.body);
    cr_assert_eq(b.status, 200, "%s", b.body);
    cr_assert_gt(ival(a.json, "mcu"), ival(b.json, "mcu"));
    http_resp_free(&a);
    http_resp_free(&b);
}

Test(metering_api, bad_inputs_are_422_and_name_the_field)
{
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"device\":\"nope\",\"profile\":\"llm-train\",\"wall_ms\":1}", "device"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"hpc-fp64\",\"wall_ms\":1}", "profile"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"warp-drive\",\"wall_ms\":1}", "profile"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"llm-train\",\"wall_ms\":-5}", "wall_ms"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"llm-train\",\"wall_ms\":1.5}", "wall_ms"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"llm-train\",\"wall_ms\":\"10\"}", "wall_ms"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"llm-train\"}", "device_seconds"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"llm-train\",\"wall_ms\":1,\"work_mcu\":1}",
         "device_seconds"},
        {"{\"device\":\"nvidia-t4\",\"count\":0,\"profile\":\"llm-train\",\"wall_ms\":1}", "count"},
        {"{\"device\":\"nvidia-t4\",\"profile\":\"llm-train\",\"wall_ms\":1,\"x\":1}", "x"},
        {"{\"device\":\"nvidia-t4\",\"profile\":{\"precision\":\"fp32\"},\"wall_ms\":1}",
         "profile.intensity_milli"},
        {"{\"device\":\"nvidia-t4\",\"count\":1000000,\"profile\":\"llm-train\","
         "\"wall_ms\":3155760000000}",
         NULL}, /* 10^6 devices x 100 years: overflow or out of range, never a 500 */
        {"{\"device\":\"nvidia-t4\",\"profile\":\"llm-train\",\"work_mcu\":9223372036854775807}",
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_resp r = post("/v1/normalize", srv.admin_key, cases[i].body);
        if (cases[i].field) {
            cr_assert_eq(r.status, 422, "case %zu: %ld %s", i, r.status, r.body);
            cr_assert_str_eq(json_string_value(json_object_get(r.json, "field")), cases[i].field,
                             "case %zu: %s", i, r.body);
        } else {
            cr_assert(r.status == 422 || r.status == 200, "case %zu: %ld %s", i, r.status, r.body);
        }
        http_resp_free(&r);
    }
}

Test(metering_api, estimates_learn_from_observations_and_persist)
{
    char body[512];
    http_resp r;
    long long before;
    const char *est = "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
                      "\"work_mcu\":11397888,\"tenant\":\"%s\",\"job_class\":\"train\"}";
    snprintf(body, sizeof body, est, srv.admin_id);
    r = post("/v1/estimates", srv.admin_key, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(ival(r.json, "p50_seconds"), 3600, "cold start: the roofline prior");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(r.json, "evidence"), "kind")),
        "roofline-prior");
    before = ival(r.json, "p90_seconds");
    cr_assert_geq(before, 3600);
    http_resp_free(&r);
    /* the jobs really take 2 hours */
    for (int i = 0; i < 6; i++) {
        snprintf(body, sizeof body,
                 "{\"record_id\":\"job-%d\",\"device\":\"nvidia-h100-sxm\",\"count\":8,"
                 "\"profile\":\"llm-train\",\"work_mcu\":11397888,\"tenant\":\"%s\","
                 "\"job_class\":\"train\",\"wall_ms\":7200000}",
                 i, srv.admin_id);
        r = post("/v1/metering/observations", srv.admin_key, body);
        cr_assert_eq(r.status, 201, "%s", r.body);
        http_resp_free(&r);
    }
    /* the same record again is recorded once */
    r = post("/v1/metering/observations", srv.admin_key, body);
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_true(json_object_get(r.json, "replayed")));
    http_resp_free(&r);
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM metering_observations"), "6");
    /* restart the service: the learned history is in PostgreSQL */
    tallyd_stop(&srv);
    {
        char admin_key[64], admin_id[48];
        snprintf(admin_key, sizeof admin_key, "%s", srv.admin_key);
        snprintf(admin_id, sizeof admin_id, "%s", srv.admin_id);
        tallyd_start(&srv, ci, NULL);
        (void)admin_key;
        (void)admin_id;
    }
    snprintf(body, sizeof body, est, srv.admin_id);
    /* a new admin was created on restart; estimate for the first one's tenant id */
    {
        const char *first = testdb_exec(ci, "SELECT tenant_id FROM metering_observations LIMIT 1");
        char tenant[64];
        snprintf(tenant, sizeof tenant, "%s", first);
        snprintf(body, sizeof body, est, tenant);
    }
    r = post("/v1/estimates", srv.admin_key, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(ival(r.json, "p50_seconds"), 7200, "%s", r.body);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(r.json, "evidence"), "kind")), "history");
    cr_assert_eq(ival(r.json, "evidence.history_jobs"), 6);
    http_resp_free(&r);
}

Test(metering_api, calibration_creates_a_new_efficiency_version)
{
    char body[512];
    http_resp r;
    for (int i = 0; i < 3; i++) {
        /* observed: the job ran at half the default efficiency (2 h instead of 1 h) */
        snprintf(body, sizeof body,
                 "{\"record_id\":\"cal-%d\",\"device\":\"nvidia-h100-sxm\",\"count\":8,"
                 "\"profile\":\"llm-train\",\"work_mcu\":11397888,\"tenant\":\"%s\","
                 "\"wall_ms\":7200000}",
                 i, srv.admin_id);
        r = post("/v1/metering/observations", srv.admin_key, body);
        cr_assert_eq(r.status, 201, "%s", r.body);
        http_resp_free(&r);
    }
    r = post("/v1/metering/calibrations", srv.admin_key, "{\"reason\":\"e2e\"}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(ival(r.json, "version"), 2);
    cr_assert_eq(ival(r.json, "observations"), 3);
    http_resp_free(&r);
    r = post("/v1/metering/calibrations", srv.admin_key, "{}");
    cr_assert_eq(r.status, 409, "nothing left to calibrate");
    http_resp_free(&r);
    /* every process picks the new version up within about a second */
    for (int i = 0; i < 40; i++) {
        r = post("/v1/normalize", srv.admin_key,
                 "{\"device\":\"nvidia-h100-sxm\",\"profile\":\"llm-train\",\"wall_ms\":3600000}");
        if (ival(r.json, "efficiency_version") == 2)
            break;
        http_resp_free(&r);
        usleep(100000);
    }
    cr_assert_eq(ival(r.json, "efficiency_version"), 2);
    /* evidence-weighted: (0.4 x 3600 + 0.2 x 3 x 57600) / (3600 + 172800) = 0.2082 */
    cr_assert_lt(ival(r.json, "rate.efficiency_ppm"), 400000);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/metering/efficiency?version=1", srv.admin_key, NULL, NULL,
                     0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(ival(r.json, "version"), 1, "old versions stay readable");
    http_resp_free(&r);
    cr_assert_null(testdb_exec(ci, "UPDATE efficiency_versions SET reason = 'x'"),
                   "efficiency versions are append-only");
}

Test(metering_api, catalog_versions_are_append_only_and_admin_only)
{
    http_resp r;
    json_t *t;
    char body[2048];
    r = post("/v1/accounts", srv.admin_key, "{\"name\":\"t\",\"role\":\"tenant\"}");
    t = json_incref(r.json);
    http_resp_free(&r);
    snprintf(
        body, sizeof body,
        "{\"version\":\"2026-11-25.1+test\",\"device\":{\"id\":\"acme-x1\",\"vendor\":\"Acme\","
        "\"name\":\"X1\",\"kind\":\"gpu\",\"peak\":{\"fp32\":10000,\"bf16\":100000},"
        "\"memory_gb\":24,\"memory_bandwidth_gbps\":1000,\"tdp_w\":300,"
        "\"source\":\"acme-x1\"},\"source\":{\"title\":\"Acme X1 datasheet\","
        "\"url\":\"https://example.com/x1.pdf\"}}");
    r = post("/v1/devices", json_string_value(json_object_get(t, "api_key")), body);
    cr_assert_eq(r.status, 403);
    http_resp_free(&r);
    r = post("/v1/devices", srv.admin_key, body);
    cr_assert(r.status == 201, "%ld %s", r.status, r.body);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/devices/acme-x1", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "the new version is current: %s", r.body);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/devices/acme-x1?catalog_version=2026-11-25.1", srv.admin_key,
                     NULL, NULL, 0);
    cr_assert_eq(r.status, 404, "the old version is unchanged");
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/catalog/versions", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2);
    http_resp_free(&r);
    /* the same version with other content is refused */
    r = post("/v1/devices", srv.admin_key, body);
    cr_assert(r.status == 409 || r.status == 422, "%ld %s", r.status, r.body);
    http_resp_free(&r);
    cr_assert_null(testdb_exec(ci, "DELETE FROM devices"));
    json_decref(t);
}
