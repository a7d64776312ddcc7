/*
 * End-to-end: the database goes away and comes back while tallyd runs.
 * This test owns a whole PostgreSQL cluster (made with scripts/pg.sh), so
 * stopping it does not disturb the other tests.
 */
#include "testhttp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char pgdir[256];
static tallyd_proc srv;

static void pg(const char *cmd)
{
    char line[1024];
    const char *script = getenv("TALLY_TEST_PG_SCRIPT");
    snprintf(line, sizeof line, "bash '%s' %s '%s' >/dev/null",
             script ? script : TALLY_SOURCE_DIR "/scripts/pg.sh", cmd, pgdir);
    cr_assert_eq(system(line), 0, "pg.sh %s failed", cmd);
}

static void setup(void)
{
    char tmpl[] = "/tmp/tally-pg-restart-XXXXXX", ci[1024];
    FILE *f;
    cr_assert(mkdtemp(tmpl));
    snprintf(pgdir, sizeof pgdir, "%s", tmpl);
    pg("init");
    pg("start");
    snprintf(ci, sizeof ci, "bash '%s' url '%s'",
             getenv("TALLY_TEST_PG_SCRIPT") ? getenv("TALLY_TEST_PG_SCRIPT")
                                            : TALLY_SOURCE_DIR "/scripts/pg.sh",
             pgdir);
    f = popen(ci, "r");
    cr_assert(f && fgets(ci, sizeof ci, f));
    pclose(f);
    ci[strcspn(ci, "\n")] = '\0';
    tallyd_start(&srv, ci, NULL);
}

static void teardown(void)
{
    tallyd_stop(&srv);
    pg("destroy");
}

TestSuite(db_restart, .init = setup, .fini = teardown, .timeout = 120);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(db_restart, service_answers_503_then_recovers)
{
    char path[128];
    http_resp r;
    double t0;
    int ok = 0;
    snprintf(path, sizeof path, "/v1/accounts/%s", srv.admin_id);
    r = http_request(&srv, "GET", path, srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    http_resp_free(&r);

    pg("stop");
    /* Requests that need the database fail fast with a 503 problem. */
    t0 = now_s();
    r = http_request(&srv, "GET", "/readyz", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 503, "readyz with the database down: %ld %s", r.status, r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "type")),
                     "https://tally.dev/problems/database-unavailable");
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/accounts", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert(http_header_value(&r, "retry-after"));
    http_resp_free(&r);
    cr_assert_lt(now_s() - t0, 2.0, "503s must be quick");
    r = http_request(&srv, "GET", "/healthz", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "the process is alive");
    http_resp_free(&r);

    pg("start");
    t0 = now_s();
    while (now_s() - t0 < 15.0 && !ok) {
        r = http_request(&srv, "GET", "/readyz", NULL, NULL, NULL, 0);
        ok = r.status == 200;
        http_resp_free(&r);
        if (!ok)
            usleep(100000);
    }
    cr_assert(ok, "readyz did not recover within 15 s");
    /* /readyz used one connection; the others (the pipelined reader among them) reconnect
     * at their next use, at most every 200 ms: give them a moment, then demand a streak */
    ok = 0;
    t0 = now_s();
    while (now_s() - t0 < 5.0 && !ok) {
        r = http_request(&srv, "GET", "/v1/accounts", srv.admin_key, NULL, NULL, 0);
        ok = r.status == 200;
        http_resp_free(&r);
        if (!ok)
            usleep(100000);
    }
    cr_assert(ok, "reads did not recover within 5 s of /readyz");
    /* every pooled connection recovers: several reads in a row succeed */
    for (int i = 0; i < 20; i++) {
        r = http_request(&srv, "GET", "/v1/accounts", srv.admin_key, NULL, NULL, 0);
        cr_assert_eq(r.status, 200, "read %d after restart: %ld %s", i, r.status, r.body);
        http_resp_free(&r);
    }
}
