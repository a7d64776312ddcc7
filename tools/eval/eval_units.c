/*
 * eval_units.c - `tally-eval units --csv FILE`: how invariant is the CU?
 *
 * Each row is `workload,precision,device,count,throughput`: the throughput
 * of one fixed workload on `count` devices. If the CU is invariant, the work
 * per CU - throughput / (count x CU rate) - is the same on every device, so
 * its coefficient of variation within a workload measures the error. The
 * naive baseline divides by count x peak dense FP16 TFLOPS (BF16 when the
 * device publishes no FP16 figure). A workload named "class:benchmark" with
 * a known class (llm-train, llm-decode, ...) uses that class's profile at
 * the row's precision; any other name uses the custom default intensity.
 * "class=N:benchmark" keeps the class (its efficiencies, its calibration
 * group) but gives the job its own intensity, N FLOP per byte at the row's
 * precision - for a benchmark whose FLOP and bytes are derived from its model
 * (docs/metering-eval.md). A malformed N skips the row.
 * Rows with unknown devices/precisions, unsupported precisions or malformed
 * fields are skipped and counted. Lines starting with '#' are comments.
 * "overall" is the row-weighted mean of the per-workload CVs (throughputs of
 * different workloads are in different units and cannot be pooled).
 *
 * Efficiencies: the documented defaults, or a stored table (--eff FILE, the
 * JSON of cu_eff_to_json), optionally re-derived from a separate calibration
 * file (--calibrate FILE, same CSV format) that must not overlap the
 * evaluated rows. Calibration is relative: within each calibration workload
 * the work per nominal CU of every row is compared with the geometric mean
 * of the GPU rows of that workload (GPUs anchor the absolute scale, which
 * comes from published MFU figures); a (kind, class) or (device, class)
 * efficiency is its default times the geometric mean of those ratios.
 * --eff-out FILE writes the table used, so a result can be audited.
 * --rows adds "per_row": each scored row's per-device throughput, roofline
 * side, efficiency, and work per CU and per peak FP16 divided by the
 * geometric mean of its workload (1.0 everywhere would be invariance).
 *
 * Cross-validation (--cv): `loo-workload` pools --csv and --calibrate rows and,
 * for each workload in turn, calibrates on every other workload and scores the
 * held-out one; names that differ only after '@' ("x@samples", "x@tokens") are
 * one benchmark and are held out together. `halves` scores --csv calibrated on
 * --calibrate (as without --cv) and adds "reverse": --calibrate scored with
 * efficiencies calibrated on --csv. Every workload also reports "default_cv",
 * its CV under the base table, so the effect of calibration is visible.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "eval.h"
#include "stats.h"

#define MAX_ROWS 4096
#define MAX_WORKLOADS 256
#define WL_NAME_MAX 128

typedef struct {
    char workload[WL_NAME_MAX];
    const cat_device *dev;
    cu_profile prof;
    int64_t count;
    double tput;
} unit_row;

typedef struct {
    unit_row *v;
    size_t n, skipped;
} row_set;

typedef enum { CAL_KIND = 0, CAL_DEVICE } cal_level;

/* Intensity override of a "class=FLOP/B" prefix: milli-FLOP per byte at the
 * row's precision, or 0 when there is none; -1 when malformed. */
static int64_t prefix_intensity(char *prefix)
{
    char *eq = strchr(prefix, '='), *end;
    if (!eq)
        return 0;
    *eq = '\0';
    long long v = strtoll(eq + 1, &end, 10);
    if (end == eq + 1 || *end != '\0' || v <= 0 || v > CU_MAX_INTENSITY / 1000)
        return -1;
    return (int64_t)v * 1000;
}

/* Profile of a workload "class:benchmark" or "class=FLOP/B:benchmark" (the
 * class's efficiencies, the job's own intensity) at precision p. */
static int row_profile(const char *wl, cat_precision p, cu_profile *out)
{
    char prefix[64];
    const char *colon = strchr(wl, ':');
    int64_t intensity = 0;
    cu_class cls = CU_CLASS_CUSTOM;
    if (colon && (size_t)(colon - wl) < sizeof prefix) {
        memcpy(prefix, wl, (size_t)(colon - wl));
        prefix[colon - wl] = '\0';
        intensity = prefix_intensity(prefix);
        if (intensity < 0)
            return -1;
        if (cu_class_parse(prefix, &cls) != 0)
            cls = CU_CLASS_CUSTOM;
    }
    if (cu_profile_class_precision(cls, p, out) != CU_OK)
        return -1;
    if (intensity > 0)
        out->intensity_milli = intensity;
    return 0;
}

static double naive_peak(const cat_device *d)
{
    int64_t p = cat_device_peak_gflops(d, CAT_FP16);
    return (double)(p > 0 ? p : cat_device_peak_gflops(d, CAT_BF16)) / 1000.0;
}

/* Parse one data line into r; returns 0 if usable, -1 if it must be skipped. */
static int parse_row(char *line, const cat_catalog *cat, unit_row *r)
{
    char *f[5], *save = NULL, *end;
    int k = 0;
    cat_precision prec;
    cu_rate rate;
    for (char *t = strtok_r(line, ",\r\n", &save); t && k < 5; t = strtok_r(NULL, ",\r\n", &save))
        f[k++] = t;
    if (k != 5 || strlen(f[0]) >= WL_NAME_MAX)
        return -1;
    long long count = strtoll(f[3], &end, 10);
    if (*end != '\0')
        return -1;
    r->tput = strtod(f[4], &end);
    r->dev = cat_find(cat, f[2]);
    if (*end != '\0' || !r->dev || cat_precision_parse(f[1], &prec) != 0 ||
        row_profile(f[0], prec, &r->prof) != 0 || count <= 0 || !(r->tput > 0) ||
        !isfinite(r->tput) || naive_peak(r->dev) <= 0 ||
        cu_rate_for(cat, NULL, f[2], count, &r->prof, &rate, NULL) != CU_OK)
        return -1;
    snprintf(r->workload, sizeof r->workload, "%s", f[0]);
    r->count = count;
    return 0;
}

/* Read every row of path; returns 0, or -1 when the file cannot be read. */
static int read_rows(const char *path, const cat_catalog *cat, row_set *s)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\r' ||
            strncmp(line, "workload,", 9) == 0) /* header row */
            continue;
        if (s->n < MAX_ROWS && parse_row(line, cat, &s->v[s->n]) == 0)
            s->n++;
        else
            s->skipped++;
    }
    fclose(f);
    return 0;
}

/* Work per nominal CU of a row under table t: throughput / (mCU/h / 1000). */
static double work_per_cu(const cat_catalog *cat, const cu_eff_table *t, const unit_row *r)
{
    cu_rate rate;
    if (cu_rate_for(cat, t, cat_device_id(r->dev), r->count, &r->prof, &rate, NULL) != CU_OK ||
        rate.total_mcu_per_hour <= 0)
        return NAN;
    return r->tput / ((double)rate.total_mcu_per_hour / 1000.0);
}

/* Distinct workload names of s, in first-seen order; returns their count. */
static size_t workload_names(const row_set *s, const char **names)
{
    size_t nw = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t j = 0;
        while (j < nw && strcmp(names[j], s->v[i].workload) != 0)
            j++;
        if (j == nw && nw < MAX_WORKLOADS)
            names[nw++] = s->v[i].workload;
    }
    return nw;
}

/* ---- calibration ---------------------------------------------------------- */

/* m[i] = work per CU of row i / geometric mean of the GPU rows of its workload
 * (all rows when the workload has no GPU row); NAN when undefined. */
static void relative_ratios(const cat_catalog *cat, const cu_eff_table *t, const row_set *s,
                            double *m)
{
    const char *names[MAX_WORKLOADS];
    size_t nw = workload_names(s, names);
    for (size_t w = 0; w < nw; w++) {
        double lg = 0, la = 0;
        size_t ng = 0, na = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (strcmp(s->v[i].workload, names[w]) != 0)
                continue;
            m[i] = work_per_cu(cat, t, &s->v[i]);
            if (!(m[i] > 0))
                continue;
            la += log(m[i]), na++;
            if (cat_device_kind(s->v[i].dev) == CAT_KIND_GPU)
                lg += log(m[i]), ng++;
        }
        double ref = ng ? exp(lg / (double)ng) : na ? exp(la / (double)na) : NAN;
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->v[i].workload, names[w]) == 0)
                m[i] = na > 1 ? m[i] / ref : NAN; /* one row says nothing relative */
    }
}

/* Set (or add) the entry for (device or kind, cls) to eff_ppm; runs counts rows. */
static void table_set(cu_eff_table *t, const cat_device *dev, cat_kind kind, cu_class cls,
                      double eff_ppm, int64_t runs)
{
    const char *id = dev ? cat_device_id(dev) : "";
    uint32_t i = 0;
    while (i < t->n && !(t->entries[i].cls == cls && strcmp(t->entries[i].device_id, id) == 0 &&
                         (dev || t->entries[i].kind == kind)))
        i++;
    if (i == t->n) {
        if (t->n == CU_EFF_MAX_ENTRIES)
            return;
        t->n++;
        memset(&t->entries[i], 0, sizeof t->entries[i]);
        snprintf(t->entries[i].device_id, sizeof t->entries[i].device_id, "%s", id);
        t->entries[i].kind = kind;
        t->entries[i].cls = cls;
    }
    double e = eff_ppm < CU_EFF_MIN_PPM ? CU_EFF_MIN_PPM : eff_ppm > CU_PPM ? CU_PPM : eff_ppm;
    t->entries[i].eff_ppm = (int32_t)llround(e);
    t->entries[i].runs = runs;
}

/* Geometric mean of m[i] over rows matching (dev, or kind when dev is NULL, and cls). */
static double group_factor(const row_set *s, const double *m, const cat_device *dev, cat_kind kind,
                           cu_class cls, int64_t *n_out)
{
    double l = 0;
    int64_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const unit_row *r = &s->v[i];
        if (r->prof.cls != cls || !(m[i] > 0) ||
            (dev ? r->dev != dev : cat_device_kind(r->dev) != kind))
            continue;
        l += log(m[i]), n++;
    }
    *n_out = n;
    return n ? exp(l / (double)n) : 1.0;
}

/* The (kind, cls) entry of t, else the documented default. */
static double kind_eff(const cu_eff_table *t, cat_kind kind, cu_class cls)
{
    cu_eff_table d;
    for (int pass = 0; pass < 2; pass++, t = &d) {
        if (pass == 1)
            cu_eff_defaults(&d);
        for (uint32_t i = 0; i < t->n; i++)
            if (t->entries[i].device_id[0] == '\0' && t->entries[i].kind == kind &&
                t->entries[i].cls == cls)
                return t->entries[i].eff_ppm;
    }
    return CU_PPM / 2;
}

/* out = base with efficiencies re-derived from the calibration rows s. */
static void calibrate(const cat_catalog *cat, const cu_eff_table *base, const row_set *s,
                      cal_level level, cu_eff_table *out, double *m)
{
    memcpy(out, base, sizeof *out);
    out->version = base->version + 1;
    relative_ratios(cat, base, s, m);
    for (int c = 0; c < CU_CLASS_COUNT; c++) {
        for (int k = 0; k < CAT_KIND_COUNT; k++) {
            int64_t n;
            double f = group_factor(s, m, NULL, (cat_kind)k, (cu_class)c, &n);
            if (n > 0)
                table_set(out, NULL, (cat_kind)k, (cu_class)c,
                          kind_eff(base, (cat_kind)k, (cu_class)c) * f, n);
        }
    }
    for (size_t i = 0; level == CAL_DEVICE && i < s->n; i++) {
        int64_t n;
        const unit_row *r = &s->v[i];
        double f = group_factor(s, m, r->dev, cat_device_kind(r->dev), r->prof.cls, &n);
        if (n > 0)
            table_set(out, r->dev, cat_device_kind(r->dev), r->prof.cls,
                      cu_eff_lookup(base, r->dev, r->prof.cls) * f, n);
    }
}

/* ---- scoring -------------------------------------------------------------- */

/* Row-weighted sums behind "overall" (workloads with at least two rows). */
typedef struct {
    double tally, naive, dflt, rows;
} cv_acc;

/* CVs of every workload of s under table t (and, for "default_cv", base) into
 * per; tally/naive are scratch arrays of MAX_ROWS. */
static void score_into(const cat_catalog *cat, const cu_eff_table *t, const cu_eff_table *base,
                       const row_set *s, json_t *per, cv_acc *acc, double *tally, double *naive)
{
    const char *names[MAX_WORKLOADS];
    size_t nw = workload_names(s, names);
    for (size_t w = 0; w < nw; w++) {
        size_t n = 0;
        double dc;
        for (size_t i = 0; i < s->n; i++) {
            const unit_row *r = &s->v[i];
            if (strcmp(r->workload, names[w]) != 0)
                continue;
            tally[n] = work_per_cu(cat, base, r);
            naive[n++] = r->tput / ((double)r->count * naive_peak(r->dev));
        }
        dc = stats_cv(tally, n);
        for (size_t i = 0, k = 0; i < s->n; i++)
            if (strcmp(s->v[i].workload, names[w]) == 0)
                tally[k++] = work_per_cu(cat, t, &s->v[i]);
        double tc = stats_cv(tally, n), nc = stats_cv(naive, n);
        json_object_set_new(per, names[w],
                            json_pack("{s:f, s:f, s:f, s:I}", "tally_cv", tc, "naive_cv", nc,
                                      "default_cv", dc, "rows", (json_int_t)n));
        if (n >= 2)
            *acc = (cv_acc){acc->tally + tc * (double)n, acc->naive + nc * (double)n,
                            acc->dflt + dc * (double)n, acc->rows + (double)n};
    }
}

static json_t *overall_json(const cv_acc *a)
{
    double d = a->rows > 0 ? a->rows : 1.0;
    return json_pack("{s:f, s:f, s:f}", "tally_cv", a->tally / d, "naive_cv", a->naive / d,
                     "default_cv", a->dflt / d);
}

/* {"workloads": {...}, "overall": {...}} of s under t (new reference). */
static json_t *score(const cat_catalog *cat, const cu_eff_table *t, const cu_eff_table *base,
                     const row_set *s, double *tally, double *naive)
{
    json_t *per = json_object();
    cv_acc acc = {0};
    score_into(cat, t, base, s, per, &acc, tally, naive);
    return json_pack("{s:o, s:o}", "workloads", per, "overall", overall_json(&acc));
}

/* ---- per-row diagnosis (--rows) ------------------------------------------- */

/* Geometric mean over the rows of workload wl of v[i] (v parallel to s). */
static double workload_gmean(const row_set *s, const char *wl, const double *v)
{
    double l = 0;
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].workload, wl) == 0 && v[i] > 0)
            l += log(v[i]), n++;
    return n ? exp(l / (double)n) : NAN;
}

/* One object per row of s under t: per-device throughput, the roofline side,
 * and work per CU (tally) and per peak FP16 TFLOPS (naive), each divided by
 * the geometric mean of its workload - 1.0 everywhere would be invariance.
 * tally/naive are scratch arrays of s->n. New reference. */
static json_t *rows_json(const cat_catalog *cat, const cu_eff_table *t, const row_set *s,
                         double *tally, double *naive)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < s->n; i++) {
        tally[i] = work_per_cu(cat, t, &s->v[i]);
        naive[i] = s->v[i].tput / ((double)s->v[i].count * naive_peak(s->v[i].dev));
    }
    for (size_t i = 0; i < s->n; i++) {
        const unit_row *r = &s->v[i];
        cu_rate rate = {0};
        cu_rate_for(cat, t, cat_device_id(r->dev), r->count, &r->prof, &rate, NULL);
        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:I, s:f, s:s, s:f, s:f, s:f}", "workload", r->workload, "device",
                      cat_device_id(r->dev), "count", (json_int_t)r->count, "per_device",
                      r->tput / (double)r->count, "roof", rate.memory_bound ? "memory" : "compute",
                      "eff", (double)rate.eff_ppm / (double)CU_PPM, "tally_ratio",
                      tally[i] / workload_gmean(s, r->workload, tally), "naive_ratio",
                      naive[i] / workload_gmean(s, r->workload, naive)));
    }
    return arr;
}

/* ---- cross-validation ------------------------------------------------------ */

/* Length of a workload's fold key: the name up to '@' ("...gptj-offline@tokens"
 * and "...@samples" are one benchmark, so they are held out together). */
static size_t fold_len(const char *wl)
{
    const char *at = strchr(wl, '@');
    return at ? (size_t)(at - wl) : strlen(wl);
}

static int same_fold(const char *a, const char *b)
{
    size_t n = fold_len(a);
    return n == fold_len(b) && strncmp(a, b, n) == 0;
}

/* Split pool into train (every other fold) and test (the fold of `key`). */
static void split_fold(const row_set *pool, const char *key, row_set *train, row_set *test)
{
    train->n = test->n = 0;
    for (size_t i = 0; i < pool->n; i++) {
        row_set *dst = same_fold(pool->v[i].workload, key) ? test : train;
        dst->v[dst->n++] = pool->v[i];
    }
}

typedef struct {
    const cat_catalog *cat;
    const cu_eff_table *base;
    cal_level level;
    cu_eff_table *t;
    double *m, *a, *b;
} cv_ctx;

/* Leave one workload (fold) out: calibrate on the others, score it, aggregate. */
static json_t *loo_workload(const cv_ctx *c, const row_set *pool, row_set *train, row_set *test,
                            size_t *folds)
{
    const char *names[MAX_WORKLOADS];
    size_t nw = workload_names(pool, names);
    json_t *per = json_object();
    cv_acc acc = {0};
    *folds = 0;
    for (size_t w = 0; w < nw; w++) {
        size_t j = 0;
        while (j < w && !same_fold(names[j], names[w]))
            j++;
        if (j < w)
            continue; /* fold already done with an earlier name */
        split_fold(pool, names[w], train, test);
        calibrate(c->cat, c->base, train, c->level, c->t, c->m);
        score_into(c->cat, c->t, c->base, test, per, &acc, c->a, c->b);
        (*folds)++;
    }
    return json_pack("{s:o, s:o}", "workloads", per, "overall", overall_json(&acc));
}

/* ---- command -------------------------------------------------------------- */

typedef enum { CV_NONE = 0, CV_LOO_WORKLOAD, CV_HALVES } cv_mode;

typedef struct {
    const char *csv, *catalog, *calib, *eff_in, *eff_out;
    cal_level level;
    cv_mode cv;
    int rows; /* --rows: add the per-row table of the scored file */
} units_opts;

static int parse_cv(const char *arg, cv_mode *out)
{
    if (strcmp(arg, "loo-workload") == 0)
        *out = CV_LOO_WORKLOAD;
    else if (strcmp(arg, "halves") == 0)
        *out = CV_HALVES;
    else
        return -1;
    return 0;
}

static int parse_opts(int argc, char **argv, units_opts *o)
{
    static const struct option opts[] = {{"csv", required_argument, 0, 'c'},
                                         {"catalog", required_argument, 0, 'k'},
                                         {"calibrate", required_argument, 0, 'a'},
                                         {"level", required_argument, 0, 'l'},
                                         {"eff", required_argument, 0, 'e'},
                                         {"eff-out", required_argument, 0, 'o'},
                                         {"cv", required_argument, 0, 'v'},
                                         {"rows", no_argument, 0, 'r'},
                                         {0, 0, 0, 0}};
    int c;
    *o = (units_opts){NULL, TALLY_DEFAULT_CATALOG, NULL, NULL, NULL, CAL_DEVICE, CV_NONE, 0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            o->csv = optarg;
        else if (c == 'k')
            o->catalog = optarg;
        else if (c == 'a')
            o->calib = optarg;
        else if (c == 'e')
            o->eff_in = optarg;
        else if (c == 'o')
            o->eff_out = optarg;
        else if (c == 'r')
            o->rows = 1;
        else if (c == 'l' && (strcmp(optarg, "kind") == 0 || strcmp(optarg, "device") == 0))
            o->level = strcmp(optarg, "kind") == 0 ? CAL_KIND : CAL_DEVICE;
        else if (c != 'v' || parse_cv(optarg, &o->cv) != 0)
            return -1;
    }
    /* halves needs both halves; loo-workload and halves write no single table,
     * and --rows is of one table */
    if (!o->csv || (o->cv == CV_HALVES && !o->calib) ||
        (o->cv != CV_NONE && (o->eff_out || o->rows)))
        return -1;
    return 0;
}

/* Base table: --eff FILE or the documented defaults. Returns 0 or -1. */
static int load_base(const char *path, cu_eff_table *t)
{
    json_error_t jerr;
    cu_error err;
    if (!path) {
        cu_eff_defaults(t);
        return 0;
    }
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    int rc = j && cu_eff_from_json(j, t, &err) == CU_OK ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "tally-eval: %s: not an efficiency table\n", path);
    json_decref(j);
    return rc;
}

static int write_table(const char *path, const cu_eff_table *t)
{
    json_t *j = cu_eff_to_json(t);
    int rc = j ? json_dump_file(j, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : -1;
    json_decref(j);
    return rc;
}

static const char *cv_name(cv_mode m)
{
    return m == CV_LOO_WORKLOAD ? "loo-workload" : m == CV_HALVES ? "halves" : "none";
}

static void print_result(json_t *res, const row_set *s, size_t cal_rows, const cu_eff_table *t,
                         const units_opts *o)
{
    json_t *out =
        json_pack("{s:I, s:I}", "rows", (json_int_t)s->n, "skipped", (json_int_t)s->skipped);
    json_object_update(out, res);
    json_decref(res);
    json_object_set_new(
        out, "efficiency",
        json_pack("{s:I, s:s, s:I, s:s}", "version", (json_int_t)t->version, "source",
                  o->calib || o->cv == CV_LOO_WORKLOAD
                      ? (o->level == CAL_KIND ? "calibrated-kind" : "calibrated-device")
                  : o->eff_in ? "file"
                              : "defaults",
                  "calibration_rows", (json_int_t)cal_rows, "cv", cv_name(o->cv)));
    char *txt = json_dumps(out, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(4));
    puts(txt);
    free(txt);
    json_decref(out);
}

/* Everything eval_units allocates. */
typedef struct {
    cu_eff_table *base, *t;
    double *a, *b, *m;
    row_set s, cal, pool, train, test;
} units_mem;

static int mem_alloc(units_mem *u)
{
    memset(u, 0, sizeof *u);
    u->base = malloc(sizeof *u->base);
    u->t = malloc(sizeof *u->t);
    u->a = calloc(2 * MAX_ROWS, sizeof *u->a);
    u->b = calloc(2 * MAX_ROWS, sizeof *u->b);
    u->m = calloc(2 * MAX_ROWS, sizeof *u->m);
    u->s.v = calloc(MAX_ROWS, sizeof *u->s.v);
    u->cal.v = calloc(MAX_ROWS, sizeof *u->cal.v);
    u->pool.v = calloc(2 * MAX_ROWS, sizeof *u->pool.v);
    u->train.v = calloc(2 * MAX_ROWS, sizeof *u->train.v);
    u->test.v = calloc(2 * MAX_ROWS, sizeof *u->test.v);
    return u->base && u->t && u->a && u->b && u->m && u->s.v && u->cal.v && u->pool.v &&
                   u->train.v && u->test.v
               ? 0
               : -1;
}

static void mem_free(units_mem *u)
{
    free(u->base), free(u->t), free(u->a), free(u->b), free(u->m);
    free(u->s.v), free(u->cal.v), free(u->pool.v), free(u->train.v), free(u->test.v);
}

/* The result object of the chosen mode; *cal_rows = rows calibrated on. */
static json_t *run_mode(const cat_catalog *cat, const units_opts *o, units_mem *u, size_t *cal_rows)
{
    cv_ctx c = {cat, u->base, o->level, u->t, u->m, u->a, u->b};
    if (o->cv == CV_LOO_WORKLOAD) {
        size_t folds;
        u->pool.n = 0;
        for (size_t i = 0; i < u->s.n; i++)
            u->pool.v[u->pool.n++] = u->s.v[i];
        for (size_t i = 0; i < u->cal.n; i++)
            u->pool.v[u->pool.n++] = u->cal.v[i];
        json_t *r = loo_workload(&c, &u->pool, &u->train, &u->test, &folds);
        *cal_rows = u->pool.n;
        json_object_set_new(r, "folds", json_integer((json_int_t)folds));
        return r;
    }
    *cal_rows = o->calib ? u->cal.n : 0;
    if (o->calib)
        calibrate(cat, u->base, &u->cal, o->level, u->t, u->m);
    else
        memcpy(u->t, u->base, sizeof *u->t);
    json_t *r = score(cat, u->t, u->base, &u->s, u->a, u->b);
    if (o->rows)
        json_object_set_new(r, "per_row", rows_json(cat, u->t, &u->s, u->a, u->b));
    if (o->cv == CV_HALVES) {
        calibrate(cat, u->base, &u->s, o->level, u->t, u->m);
        json_object_set_new(r, "reverse", score(cat, u->t, u->base, &u->cal, u->a, u->b));
        calibrate(cat, u->base, &u->cal, o->level, u->t, u->m); /* the forward table */
    }
    return r;
}

int eval_units(int argc, char **argv)
{
    units_opts o;
    cat_error cerr = {{0}};
    cat_catalog *cat = NULL;
    units_mem u;
    json_t *res;
    size_t cal_rows = 0;
    int rc = 1;
    if (parse_opts(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: tally-eval units --csv FILE [--catalog FILE] [--eff TABLE.json]\n"
                "         [--calibrate FILE [--level kind|device]] [--eff-out FILE]\n"
                "         [--cv loo-workload|halves]   (halves needs --calibrate;\n"
                "          --cv writes no --eff-out)  [--rows]  (per-row ratios, no --cv)\n");
        return 2;
    }
    if (mem_alloc(&u) != 0 || !(cat = cat_load_file(o.catalog, &cerr))) {
        fprintf(stderr, "tally-eval: %s\n", cerr.message[0] ? cerr.message : "out of memory");
        goto done;
    }
    if (load_base(o.eff_in, u.base) != 0)
        goto done;
    if (read_rows(o.csv, cat, &u.s) != 0 || (o.calib && read_rows(o.calib, cat, &u.cal) != 0)) {
        fprintf(stderr, "tally-eval: cannot read CSV file\n");
        goto done;
    }
    res = run_mode(cat, &o, &u, &cal_rows);
    if (o.eff_out && write_table(o.eff_out, u.t) != 0) {
        json_decref(res);
        fprintf(stderr, "tally-eval: cannot write %s\n", o.eff_out);
        goto done;
    }
    print_result(res, &u.s, cal_rows, u.t, &o);
    rc = 0;
done:
    mem_free(&u);
    cat_free(cat);
    return rc;
}
