/*
 * test_scheduler_eval.c - `tally-eval placement` end to end on a small
 * hand-written matrix: one JSON object with the four policies and the fields
 * the issue names, every job accounted for, the same seed giving the same
 * bytes (and another seed other bytes), and Tally routing around outages
 * faster than the policies without probes. Needs build/bin/tally-eval (built
 * with the project).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVAL TALLY_BINARY_DIR "/bin/tally-eval"

static char csv[64];

/* Four regions, two continents: a,b near each other, c,d near each other. */
static void write_matrix(void)
{
    static const char text[] = "src,dst,rtt_ms\n"
                               "a,a,2\nb,b,2\nc,c,3\nd,d,3\n"
                               "a,b,12\nb,a,13\nc,d,15\nd,c,15\n"
                               "a,c,150\nc,a,150\na,d,160\nd,a,160\n"
                               "b,c,140\nc,b,140\nb,d,155\nd,b,155\n";
    int fd;
    FILE *f;
    snprintf(csv, sizeof csv, "/tmp/tally-eval-matrix-XXXXXX");
    fd = mkstemp(csv);
    cr_assert_geq(fd, 0);
    f = fdopen(fd, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static char *run(const char *seed)
{
    char cmd[512], buf[4096];
    size_t len = 0, n;
    char *out = NULL;
    FILE *p;
    cr_assert_eq(access(EVAL, X_OK), 0, "%s is not built", EVAL);
    snprintf(cmd, sizeof cmd, "%s placement --latency %s --jobs 600 --seed %s", EVAL, csv, seed);
    p = popen(cmd, "r");
    cr_assert(p);
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        out = realloc(out, len + n + 1);
        cr_assert(out);
        memcpy(out + len, buf, n);
        len += n;
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
    cr_assert(out);
    out[len] = '\0';
    return out;
}

static void teardown(void)
{
    if (csv[0])
        unlink(csv);
}

TestSuite(eval, .init = write_matrix, .fini = teardown, .timeout = 120);

Test(eval, four_policies_deterministic)
{
    static const char *const policies[] = {"round_robin", "static_geo", "cost_only", "tally"};
    static const char *const fields[] = {"mean_latency_ms", "p95_latency_ms", "total_cost",
                                         "failed_jobs",     "delayed_jobs",   "mean_recovery_s"};
    char *a = run("7"), *b = run("7"), *c = run("8");
    json_error_t e;
    json_t *j = json_loads(a, JSON_REJECT_DUPLICATES, &e), *pols;
    double tally_rec, geo_rec;

    cr_assert(j, "not JSON: %s", e.text);
    cr_assert_str_eq(a, b, "same seed, different output");
    cr_assert_str_neq(a, c, "another seed gave the same output");
    cr_assert_eq(json_integer_value(json_object_get(j, "jobs")), 600);
    cr_assert_eq(json_integer_value(json_object_get(j, "regions")), 4);
    pols = json_object_get(j, "policies");
    cr_assert_eq(json_object_size(pols), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *p = json_object_get(pols, policies[i]);
        cr_assert(p, "%s missing", policies[i]);
        for (size_t k = 0; k < 6; k++)
            cr_assert(json_object_get(p, fields[k]), "%s.%s missing", policies[i], fields[k]);
        cr_assert_eq(json_integer_value(json_object_get(p, "completed_jobs")) +
                         json_integer_value(json_object_get(p, "failed_jobs")),
                     600, "%s lost jobs", policies[i]);
        cr_assert(json_is_string(json_object_get(p, "total_cost")), "money as exact text");
    }
    /* static geo takes the nearest region with room: faster than round robin */
    cr_assert_lt(
        json_real_value(json_object_get(json_object_get(pols, "static_geo"), "mean_latency_ms")),
        json_real_value(json_object_get(json_object_get(pols, "round_robin"), "mean_latency_ms")));
    tally_rec = json_real_value(json_object_get(json_object_get(pols, "tally"), "mean_recovery_s"));
    geo_rec =
        json_real_value(json_object_get(json_object_get(pols, "static_geo"), "mean_recovery_s"));
    cr_assert_gt(tally_rec, 0.0, "no outage hit a tally job: the test proves nothing");
    cr_assert_lt(tally_rec, 30.0, "tally took %.1f s to route around, more than a probe cycle",
                 tally_rec);
    cr_assert_lt(tally_rec, geo_rec);
    json_decref(j);
    free(a);
    free(b);
    free(c);
}

Test(eval, bad_usage)
{
    cr_assert_eq(access(EVAL, X_OK), 0, "%s is not built", EVAL);
    cr_assert_eq(system(EVAL " placement --jobs 10 >/dev/null 2>&1"), 2 << 8); /* no --latency */
    cr_assert_eq(system(EVAL " placement --latency /nonexistent >/dev/null 2>&1"), 1 << 8);
    cr_assert_eq(
        system(EVAL " placement --latency " TALLY_SOURCE_DIR "/README.md --jobs 5 >/dev/null 2>&1"),
        1 << 8); /* not a matrix */
}
