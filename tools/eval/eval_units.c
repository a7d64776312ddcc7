/*
 * eval_units.c - `tally-eval units --csv FILE`: how invariant is the CU?
 *
 * Each row is `workload,precision,device,count,throughput`: the throughput
 * of one fixed workload on `count` devices. If the CU is invariant, the work
 * per CU - throughput / (count x CU rate) - is the same on every device, so
 * its coefficient of variation within a workload measures the error. The
 * naive baseline divides by count x peak dense FP16 TFLOPS (BF16 when the
 * device publishes no FP16 figure). A workload named "class:benchmark" with
 * a known class (llm-train, llm-decode, ...) uses that class's intensity at
 * the row's precision; any other name uses the custom default intensity.
 * Rows with unknown devices/precisions, unsupported precisions or malformed
 * fields are skipped and counted. Lines starting with '#' are comments.
 * "overall" is the row-weighted mean of the per-workload CVs (throughputs of
 * different workloads are in different units and cannot be pooled).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "eval.h"
#include "stats.h"

#define MAX_ROWS 4096
#define MAX_WORKLOADS 256

typedef struct {
    char name[128];
    size_t n;
    double tally[MAX_ROWS], naive[MAX_ROWS];
} workload;

static workload *find_workload(workload *w, size_t *nw, const char *name)
{
    for (size_t i = 0; i < *nw; i++)
        if (strcmp(w[i].name, name) == 0)
            return &w[i];
    if (*nw == MAX_WORKLOADS)
        return NULL;
    workload *x = &w[(*nw)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->n = 0;
    return x;
}

static int row_profile(const char *wl, cat_precision p, cu_profile *out)
{
    char cls_name[64];
    const char *colon = strchr(wl, ':');
    cu_class cls = CU_CLASS_CUSTOM;
    if (colon && (size_t)(colon - wl) < sizeof cls_name) {
        memcpy(cls_name, wl, (size_t)(colon - wl));
        cls_name[colon - wl] = '\0';
        if (cu_class_parse(cls_name, &cls) != 0)
            cls = CU_CLASS_CUSTOM;
    }
    return cu_profile_class_precision(cls, p, out) == CU_OK ? 0 : -1;
}

static double naive_peak(const cat_device *d)
{
    int64_t p = cat_device_peak_gflops(d, CAT_FP16);
    return (double)(p > 0 ? p : cat_device_peak_gflops(d, CAT_BF16)) / 1000.0;
}

/* Parse and score one data line; returns 0 if used, -1 if skipped. */
static int score_row(char *line, const cat_catalog *cat, workload *w, size_t *nw)
{
    char *f[5], *save = NULL;
    int k = 0;
    for (char *t = strtok_r(line, ",\r\n", &save); t && k < 5; t = strtok_r(NULL, ",\r\n", &save))
        f[k++] = t;
    if (k != 5)
        return -1;
    cat_precision prec;
    cu_profile prof;
    cu_rate rate;
    char *end;
    long long count = strtoll(f[3], &end, 10);
    double tput = strtod(f[4], &end);
    const cat_device *d = cat_find(cat, f[2]);
    if (!d || cat_precision_parse(f[1], &prec) != 0 || row_profile(f[0], prec, &prof) != 0 ||
        count <= 0 || !(tput > 0) || naive_peak(d) <= 0 ||
        cu_rate_for(cat, NULL, f[2], count, &prof, &rate, NULL) != CU_OK)
        return -1;
    workload *x = find_workload(w, nw, f[0]);
    if (!x || x->n == MAX_ROWS)
        return -1;
    x->tally[x->n] = tput / ((double)rate.total_mcu_per_hour / 1000.0);
    x->naive[x->n] = tput / ((double)count * naive_peak(d));
    x->n++;
    return 0;
}

static void print_units(workload *w, size_t nw, size_t rows, size_t skipped)
{
    json_t *per = json_object();
    double wt = 0, wn = 0, total = 0;
    for (size_t i = 0; i < nw; i++) {
        double t = stats_cv(w[i].tally, w[i].n), n = stats_cv(w[i].naive, w[i].n);
        json_object_set_new(
            per, w[i].name,
            json_pack("{s:f, s:f, s:I}", "tally_cv", t, "naive_cv", n, "rows", (json_int_t)w[i].n));
        if (w[i].n >= 2) {
            wt += t * (double)w[i].n;
            wn += n * (double)w[i].n;
            total += (double)w[i].n;
        }
    }
    json_t *out = json_pack("{s:I, s:I, s:o, s:{s:f, s:f}}", "rows", (json_int_t)rows, "skipped",
                            (json_int_t)skipped, "workloads", per, "overall", "tally_cv",
                            total > 0 ? wt / total : 0.0, "naive_cv", total > 0 ? wn / total : 0.0);
    char *s = json_dumps(out, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(4));
    puts(s);
    free(s);
    json_decref(out);
}

int eval_units(int argc, char **argv)
{
    static const struct option opts[] = {
        {"csv", required_argument, 0, 'c'}, {"catalog", required_argument, 0, 'k'}, {0, 0, 0, 0}};
    const char *csv = NULL, *catalog = TALLY_DEFAULT_CATALOG;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            csv = optarg;
        else if (c == 'k')
            catalog = optarg;
        else
            return 2;
    }
    if (!csv) {
        fprintf(stderr, "usage: tally-eval units --csv FILE [--catalog FILE]\n");
        return 2;
    }
    cat_error err = {{0}};
    cat_catalog *cat = cat_load_file(catalog, &err);
    FILE *f = cat ? fopen(csv, "r") : NULL;
    workload *w = calloc(MAX_WORKLOADS, sizeof *w);
    if (!cat || !f || !w) {
        fprintf(stderr, "tally-eval: %s\n", cat ? "cannot read CSV file" : err.message);
        cat_free(cat);
        free(w);
        if (f)
            fclose(f);
        return 1;
    }
    char line[1024];
    size_t nw = 0, rows = 0, skipped = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\r' ||
            strncmp(line, "workload,", 9) == 0) /* header row */
            continue;
        if (score_row(line, cat, w, &nw) == 0)
            rows++;
        else
            skipped++;
    }
    fclose(f);
    print_units(w, nw, rows, skipped);
    free(w);
    cat_free(cat);
    return 0;
}
