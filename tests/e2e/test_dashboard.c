/*
 * End-to-end: the finance dashboard in a real headless Chromium.
 *
 * A provider publishes offers in two regions, two tenants order and usage is
 * reported; then Chromium (Debian's package, installed by scripts/deps.sh with
 * TALLY_DEPS_BROWSER=1) loads /dashboard#key=<finance key>, the page's own
 * JavaScript fetches /v1/reports/dashboard and draws its SVG charts, and the
 * DOM after the scripts ran (--dump-dom) must hold bars for every chart: days,
 * devices, regions, tenants, providers. A screenshot is saved under the build
 * directory (dashboard.png). The JSON endpoint's figures are checked against
 * the usage records, and its roles (tenant 403, no key 401).
 * Skips, saying why, only when no chromium binary can be found.
 */
#include "testdb.h"
#include "testhttp.h"
#include "testmarket.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *ten, *ten2, *fin;
static tm_world world;

#define key(a) tm_key(a)
#define sv(o, k) tm_str(o, k)
#define post(path, k, idem, body) tm_post(&srv, path, k, idem, body)
#define now_ms() tm_now_ms()
#define deposit(t, amount) tm_deposit(&srv, t, amount)
#define item(rid, order, s, e, rev) tm_item(&world, rid, order, s, e, rev, 0)
#define report_ok(items) tm_report_ok(&world, items)
#define publish_offer(region, policy) tm_publish_region(&world, region, policy)

static http_resp get(const char *path, const char *k)
{
    return http_request(&srv, "GET", path, k, NULL, NULL, 0);
}

static const char *sql1(const char *sql)
{
    const char *v = testdb_exec(ci, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return v;
}

/* An order on offer, started 55 s ago (usage can be reported at once). */
static char *order_on(json_t *tenant, const char *offer, long long *start)
{
    static char ids[8][48];
    static int n;
    char body[1024], start_iso[40];
    http_resp r;
    time_t t = (time_t)((now_ms() - 55000) / 1000);

    strftime(start_iso, sizeof start_iso, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    *start = (long long)t * 1000;
    snprintf(body, sizeof body,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\",\"wall_ms\":"
             "200000,\"offer_id\":\"%s\",\"start\":\"%s\",\"constraints\":{\"currency\":\"USD\"}}",
             offer, start_iso);
    r = post("/v1/orders", key(tenant), NULL, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "offer_id"), offer, "%s", r.body);
    snprintf(ids[n], sizeof ids[n], "%s", sv(r.json, "id"));
    http_resp_free(&r);
    return ids[n++];
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, NULL);
    prov = tallyd_account(&srv, "acme-gpu", "provider");
    ten = tallyd_account(&srv, "tenant-alpha", "tenant");
    ten2 = tallyd_account(&srv, "tenant-beta", "tenant");
    fin = tallyd_account(&srv, "finance-1", "finance");
    tm_world_init(&world, &srv, key(prov));
}

static void teardown(void)
{
    tm_world_free(&world);
    json_decref(prov);
    json_decref(ten);
    json_decref(ten2);
    json_decref(fin);
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(dashboard, .init = setup, .fini = teardown, .timeout = 180);

static const char *chromium(void)
{
    static const char *const names[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                                        "/usr/bin/google-chrome", NULL};
    const char *env = getenv("TALLY_TEST_CHROMIUM");

    if (env && access(env, X_OK) == 0)
        return env;
    for (const char *const *n = names; *n; n++)
        if (access(*n, X_OK) == 0)
            return *n;
    return NULL;
}

static void activity(void)
{
    char *pol;
    const char *off[2];
    long long t;
    http_resp r = post("/v1/pricing/policies", key(prov), NULL,
                       "{\"name\":\"base\",\"document\":{\"currency\":\"USD\",\"rules\":[{"
                       "\"id\":\"base\",\"kind\":\"base\",\"per_device_hour\":\"3.60\"}]}}");
    static char pid[48];

    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(pid, sizeof pid, "%s", sv(r.json, "id"));
    pol = pid;
    http_resp_free(&r);
    off[0] = publish_offer("eu-west-1", pol);
    off[1] = publish_offer("us-east-1", pol);
    deposit(ten, "100.00");
    deposit(ten2, "100.00");
    {
        char *o = order_on(ten, off[0], &t);
        report_ok(json_pack("[o, o]", item("a1", o, t, t + 10000, NULL),
                            item("a2", o, t + 10000, t + 20000, NULL)));
        o = order_on(ten2, off[1], &t);
        report_ok(json_pack("[o]", item("b1", o, t, t + 10000, NULL)));
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n)
        buf[0] = '\0';
    fclose(f);
    return buf;
}

/* Count occurrences of needle in the part of hay after the element with id. */
static int bars_in(const char *dom, const char *id)
{
    char open[64];
    const char *p, *end;
    int n = 0;

    snprintf(open, sizeof open, "id=\"%s\"", id);
    if (!(p = strstr(dom, open)) || !(end = strstr(p, "</svg>")))
        return -1;
    while ((p = strstr(p, "<rect")) && p < end)
        n++, p++;
    return n;
}

Test(dashboard, charts_render_with_data_in_headless_chromium)
{
    const char *exe = chromium();
    char cmd[2048], url[256], dom_path[512], png[512];
    char *dom;
    http_resp r;
    int rc;

    activity();

    /* the JSON endpoint: finance only, figures from the records */
    r = get("/v1/reports/dashboard", key(ten));
    cr_assert_eq(r.status, 403, "%s", r.body);
    http_resp_free(&r);
    r = get("/v1/reports/dashboard", NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    http_resp_free(&r);
    r = get("/v1/reports/dashboard?from=yesterday", key(fin));
    cr_assert_eq(r.status, 422, "%s", r.body);
    http_resp_free(&r);
    r = get("/v1/reports/dashboard", key(fin));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "by_region")), 2, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "top_tenants")), 2, "%s", r.body);
    /* 3 records x 80 device-seconds x 0.001 = 0.240000; tenant-alpha first (0.160000) */
    {
        json_t *t0 = json_array_get(json_object_get(r.json, "top_tenants"), 0);
        json_t *p0 = json_array_get(json_object_get(r.json, "top_providers"), 0);
        cr_assert_str_eq(sv(t0, "name"), "tenant-alpha", "%s", r.body);
        cr_assert_str_eq(sv(t0, "amount"), "0.160000", "%s", r.body);
        cr_assert_str_eq(sv(p0, "amount"), "0.240000", "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(p0, "records")),
                     atoll(sql1("SELECT count(*) FROM usage_records")), "%s", r.body);
    }
    http_resp_free(&r);
    r = get("/dashboard", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "<svg id=\"chart-day\""), "%s", r.body);
    cr_assert_null(strstr(r.body, "https://"), "no third-party requests");
    cr_assert_null(strstr(r.body, "src=\"http"), "no external scripts");
    http_resp_free(&r);

    if (!exe)
        cr_skip_test("no chromium binary (install Debian's chromium: TALLY_DEPS_BROWSER=1 "
                     "bash scripts/deps.sh); the dashboard page was not rendered");

    snprintf(url, sizeof url, "%s/dashboard#key=%s", srv.base, key(fin));
    snprintf(dom_path, sizeof dom_path, "%s/dashboard-dom.html", srv.dir);
    snprintf(png, sizeof png, "%s/dashboard.png", TALLY_BINARY_DIR);
    snprintf(cmd, sizeof cmd,
             "timeout 90 %s --headless --no-sandbox --disable-gpu --no-first-run "
             "--disable-dev-shm-usage --user-data-dir=%s/chromium --virtual-time-budget=10000 "
             "--dump-dom '%s' > %s 2>%s/chromium.log",
             exe, srv.dir, url, dom_path, srv.dir);
    rc = system(cmd);
    cr_assert_eq(rc, 0, "chromium --dump-dom failed (%d): see %s/chromium.log", rc, srv.dir);
    dom = slurp(dom_path);
    cr_assert_not_null(dom);
    cr_assert(strstr(dom, "data-state=\"rendered\""), "the page did not render its data:\n%s", dom);
    cr_assert_geq(bars_in(dom, "chart-day"), 2, "%s", dom);   /* gross + fee per day */
    cr_assert_eq(bars_in(dom, "chart-region"), 2, "%s", dom); /* eu-west-1, us-east-1 */
    cr_assert_eq(bars_in(dom, "chart-tenant"), 2, "%s", dom); /* alpha, beta */
    cr_assert_eq(bars_in(dom, "chart-provider"), 1, "%s", dom);
    cr_assert_eq(bars_in(dom, "chart-device"), 1, "%s", dom);
    cr_assert(strstr(dom, "tenant-alpha") && strstr(dom, "0.160000"), "%s", dom);
    free(dom);

    snprintf(cmd, sizeof cmd,
             "timeout 90 %s --headless --no-sandbox --disable-gpu --no-first-run "
             "--disable-dev-shm-usage --user-data-dir=%s/chromium2 --virtual-time-budget=10000 "
             "--hide-scrollbars --window-size=1280,1100 --screenshot=%s '%s' "
             ">%s/chromium2.log 2>&1",
             exe, srv.dir, png, url, srv.dir);
    rc = system(cmd);
    cr_assert_eq(rc, 0, "chromium --screenshot failed (%d)", rc);
    {
        struct stat st;
        cr_assert_eq(stat(png, &st), 0, "no screenshot at %s", png);
        cr_assert_gt(st.st_size, 10000, "the screenshot %s is suspiciously small", png);
    }
}
