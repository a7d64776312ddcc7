/*
 * test_scheduler_latency.c - the RTT matrix model and its CSV parser: the
 * three shapes (long, dated, matrix), the latest snapshot only, errors that
 * name the line, and the real published files in ../shared/data/latency when
 * present (long and matrix forms of the AWS set must agree cell for cell).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latency.h"

#define LATENCY_DIR TALLY_SOURCE_DIR "/../shared/data/latency/"

static sched_latency *parse(const char *text)
{
    char err[256] = "";
    sched_latency *l = sched_latency_parse(text, strlen(text), err, sizeof err);
    cr_assert(l, "%s", err);
    return l;
}

static void parse_fails(const char *text, const char *why)
{
    char err[256] = "";
    sched_latency *l = sched_latency_parse(text, strlen(text), err, sizeof err);
    cr_assert_null(l, "accepted: %s", text);
    cr_assert(strstr(err, why), "error '%s' lacks '%s'", err, why);
}

static double rtt(const sched_latency *l, const char *a, const char *b)
{
    return sched_latency_rtt(l, sched_latency_find(l, a), sched_latency_find(l, b));
}

Test(latency, long_form)
{
    sched_latency *l = parse("src,dst,p50_rtt_ms\r\n"
                             "# comment\n"
                             "a,a,1.5\n"
                             "a,b,70.25\n"
                             "\n"
                             "b,a,80\n");
    cr_assert_eq(sched_latency_count(l), 2);
    cr_assert_str_eq(sched_latency_name(l, 1), "b");
    cr_assert_float_eq(rtt(l, "a", "b"), 70.25, 1e-12);
    cr_assert_float_eq(rtt(l, "b", "a"), 80.0, 1e-12);
    cr_assert_float_eq(rtt(l, "a", "a"), 1.5, 1e-12);
    cr_assert_float_eq(rtt(l, "b", "b"), -1.0, 1e-12); /* never set */
    cr_assert_float_eq(sched_latency_rtt_sym(l, 0, 1), 75.125, 1e-12);
    cr_assert_float_eq(sched_latency_rtt_sym(l, 1, 1), -1.0, 1e-12);
    cr_assert_float_eq(sched_latency_rtt(l, 0, 7), -1.0, 1e-12);
    sched_latency_free(l);
}

/* Dated rows: only the latest snapshot (2026-08-16) counts, whatever the order. */
Test(latency, dated_form_latest_snapshot)
{
    sched_latency *l = parse("snapshot_date,window_start,window_end,src,dst,avg_rtt_ms\n"
                             "2026-08-09,x,y,Osaka,Tokyo,11\n"
                             "2026-08-16,x,y,Osaka,Tokyo,9\n"
                             "2026-07-19,x,y,Tokyo,Osaka,12\n"
                             "2026-08-16,x,y,Tokyo,Osaka,10\n"
                             "2026-08-02,x,y,Tokyo,Sydney,120\n");
    cr_assert_float_eq(rtt(l, "Osaka", "Tokyo"), 9.0, 1e-12);
    cr_assert_float_eq(rtt(l, "Tokyo", "Osaka"), 10.0, 1e-12);
    cr_assert_eq(sched_latency_find(l, "Sydney"), -1); /* only in an older snapshot */
    sched_latency_free(l);
}

Test(latency, matrix_form)
{
    sched_latency *l = parse("src\\dst,x,y\n"
                             "x,1,20\n"
                             "y,21,\n");
    cr_assert_float_eq(rtt(l, "x", "y"), 20.0, 1e-12);
    cr_assert_float_eq(rtt(l, "y", "x"), 21.0, 1e-12);
    cr_assert_float_eq(rtt(l, "y", "y"), -1.0, 1e-12); /* empty cell: unknown */
    sched_latency_free(l);
}

Test(latency, errors_name_the_line)
{
    parse_fails("", "no header");
    parse_fails("region,ms\na,1\n", "header needs src and dst");
    parse_fails("src,dst,ms\n", "no rows");
    parse_fails("src,dst,ms\na,b,1\na,c,-1\n", "line 3: bad RTT '-1'");
    parse_fails("src,dst,ms\na,b,1e9\n", "line 2: bad RTT");
    parse_fails("src,dst,ms\na,b,nan\n", "bad RTT");
    parse_fails("src,dst,ms\na,b,12ms\n", "bad RTT");
    parse_fails("src,dst,ms\na,b\n", "line 2: bad RTT 'b'");
    parse_fails("src,dst,ms\n,b,1\n", "bad region name");
    parse_fails("src\\dst,x,y\nx,1\n", "line 2: expected 3 fields, got 2");
    parse_fails("src\\dst,x,y\nx,1,oops\n", "line 2: bad cell 2 'oops'");
}

Test(latency, too_many_regions)
{
    size_t cap = 80 * 16 + 32, len = 0;
    char *t = malloc(cap);
    char err[128];
    len += (size_t)snprintf(t + len, cap - len, "src,dst,ms\n");
    for (int i = 0; i <= SCHED_MAX_REGIONS; i++)
        len += (size_t)snprintf(t + len, cap - len, "r%d,r0,1\n", i);
    cr_assert_null(sched_latency_parse(t, len, err, sizeof err));
    cr_assert(strstr(err, "more than 64 regions"), "%s", err);
    free(t);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    cr_assert(buf);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static sched_latency *load(const char *name)
{
    size_t len = 0;
    char err[256] = "", *text = slurp(name, &len);
    sched_latency *l;
    if (!text)
        cr_skip_test("%s not present (the shared data set is outside the repository)", name);
    l = sched_latency_parse(text, len, err, sizeof err);
    free(text);
    cr_assert(l, "%s: %s", name, err);
    return l;
}

/* The published AWS set (README: us-east-1 -> eu-west-1 69.6 ms, us-east-1 ->
 * ap-southeast-2 199.7 ms, 32 regions) in both its shapes. */
Test(latency, real_aws_long_and_matrix_agree)
{
    sched_latency *a = load(LATENCY_DIR "aws_interregion_p50_1y_2025-05-29.csv");
    sched_latency *m = load(LATENCY_DIR "aws_interregion_p50_1y_2025-05-29_matrix.csv");
    cr_assert_eq(sched_latency_count(a), 32);
    cr_assert_eq(sched_latency_count(m), 32);
    cr_assert_float_eq(rtt(a, "us-east-1", "eu-west-1"), 69.6, 0.05);
    cr_assert_float_eq(rtt(a, "us-east-1", "ap-southeast-2"), 199.7, 0.05);
    for (size_t i = 0; i < 32; i++)
        for (size_t j = 0; j < 32; j++) {
            const char *s = sched_latency_name(a, i), *d = sched_latency_name(a, j);
            cr_assert_float_eq(rtt(a, s, d), rtt(m, s, d), 1e-9, "%s -> %s", s, d);
            cr_assert_geq(rtt(a, s, d), 0.0);
        }
    sched_latency_free(a);
    sched_latency_free(m);
}

/* IBM: 13 regions, latest snapshot: Osaka <-> Tokyo 9 ms (README). */
Test(latency, real_ibm_latest_snapshot)
{
    sched_latency *l = load(LATENCY_DIR "ibm_vpc_interregion_avg_2026-06-20_2026-08-16.csv");
    cr_assert_eq(sched_latency_count(l), 13);
    cr_assert_float_eq(rtt(l, "Osaka", "Tokyo"), 9.0, 1e-9);
    cr_assert_float_eq(rtt(l, "Dallas", "Toronto"), 35.0, 1e-9);
    cr_assert_float_eq(rtt(l, "Dallas", "Dallas"), -1.0, 1e-9); /* no diagonal */
    sched_latency_free(l);
}
