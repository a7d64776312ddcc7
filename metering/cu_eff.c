/*
 * cu_eff.c - efficiency tables: documented defaults, lookup, JSON round trip
 * and calibration from observed runs.
 *
 * A table is plain data (cu_eff_table): an array of entries keyed either by
 * (device id, class) or, for defaults, by (kind, class). Invariant: every
 * entry's eff_ppm is in [CU_EFF_MIN_PPM, CU_PPM], evidence_s in
 * [0, CU_CALIB_MAX_EVIDENCE_S], no two entries share a key, n <= capacity.
 * Calibration never mutates its input; it returns a copy with version + 1.
 */
#include "cu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef __int128 i128;

/* Documented defaults, ppm of the roofline (docs/compute-units.md#efficiency).
 * Rows: kind; columns: llm-train, llm-prefill, llm-decode, cv-train,
 * hpc-fp64, cpu-batch, custom, cv-infer. */
static const int32_t default_ppm[CAT_KIND_COUNT][CU_CLASS_COUNT] = {
    [CAT_KIND_GPU] = {400000, 550000, 600000, 500000, 650000, 500000, 500000, 500000},
    [CAT_KIND_CPU] = {250000, 300000, 600000, 250000, 650000, 650000, 500000, 250000},
    [CAT_KIND_NPU] = {400000, 550000, 600000, 500000, 650000, 500000, 500000, 500000},
    [CAT_KIND_ACCEL] = {400000, 550000, 600000, 500000, 650000, 500000, 500000, 500000},
};

void cu_eff_defaults(cu_eff_table *t)
{
    memset(t, 0, sizeof *t);
    t->version = 1;
    for (int k = 0; k < CAT_KIND_COUNT; k++) {
        for (int c = 0; c < CU_CLASS_COUNT; c++) {
            cu_eff_entry *e = &t->entries[t->n++];
            e->kind = (cat_kind)k;
            e->cls = (cu_class)c;
            e->eff_ppm = default_ppm[k][c];
        }
    }
}

static int find_device_entry(const cu_eff_table *t, const char *id, cu_class cls)
{
    for (uint32_t i = 0; i < t->n; i++)
        if (t->entries[i].cls == cls && strcmp(t->entries[i].device_id, id) == 0)
            return (int)i;
    return -1;
}

int32_t cu_eff_lookup(const cu_eff_table *t, const cat_device *dev, cu_class cls)
{
    cat_kind kind = cat_device_kind(dev);
    if (t) {
        int i = find_device_entry(t, cat_device_id(dev), cls);
        if (i >= 0)
            return t->entries[i].eff_ppm;
        for (uint32_t j = 0; j < t->n; j++) {
            const cu_eff_entry *e = &t->entries[j];
            if (e->device_id[0] == '\0' && e->kind == kind && e->cls == cls)
                return e->eff_ppm;
        }
    }
    return default_ppm[kind][cls];
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *entry_to_json(const cu_eff_entry *e)
{
    return json_pack("{s:o, s:s, s:s, s:I, s:I, s:I}", "device",
                     e->device_id[0] ? json_string(e->device_id) : json_null(), "kind",
                     cat_kind_name(e->kind), "class", cu_class_name(e->cls), "eff_ppm",
                     (json_int_t)e->eff_ppm, "evidence_s", (json_int_t)e->evidence_s, "runs",
                     (json_int_t)e->runs);
}

json_t *cu_eff_to_json(const cu_eff_table *t)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < t->n; i++) {
        if (json_array_append_new(arr, entry_to_json(&t->entries[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr ? json_pack("{s:I, s:o}", "version", (json_int_t)t->version, "entries", arr) : NULL;
}

static int int_in(const json_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static cu_status entry_from_json(const json_t *j, cu_eff_entry *e, size_t i, cu_error *err)
{
    const json_t *dev = json_object_get(j, "device");
    int64_t ppm, ev, runs;
    memset(e, 0, sizeof *e);
    if (json_object_size(j) != 6 ||
        cat_kind_parse(json_string_value(json_object_get(j, "kind")), &e->kind) != 0 ||
        cu_class_parse(json_string_value(json_object_get(j, "class")), &e->cls) != 0 ||
        int_in(json_object_get(j, "eff_ppm"), CU_EFF_MIN_PPM, CU_PPM, &ppm) != 0 ||
        int_in(json_object_get(j, "evidence_s"), 0, CU_CALIB_MAX_EVIDENCE_S, &ev) != 0 ||
        int_in(json_object_get(j, "runs"), 0, INT64_MAX, &runs) != 0 ||
        !(json_is_null(dev) || (json_is_string(dev) && json_string_length(dev) > 0 &&
                                json_string_length(dev) <= CAT_ID_MAX)))
        return cu_fail(err, CU_ERR_INVALID, "entries", "entries[%zu] is malformed", i);
    if (json_is_string(dev))
        memcpy(e->device_id, json_string_value(dev), json_string_length(dev) + 1);
    e->eff_ppm = (int32_t)ppm;
    e->evidence_s = ev;
    e->runs = runs;
    return CU_OK;
}

cu_status cu_eff_from_json(const json_t *j, cu_eff_table *out, cu_error *err)
{
    const json_t *arr = json_object_get(j, "entries");
    int64_t version;
    cu_eff_table *t;
    if (int_in(json_object_get(j, "version"), 1, UINT32_MAX, &version) != 0 ||
        !json_is_array(arr) || json_array_size(arr) > CU_EFF_MAX_ENTRIES)
        return cu_fail(err, CU_ERR_INVALID, "version", "efficiency table is malformed");
    if (!(t = calloc(1, sizeof *t)))
        return cu_fail(err, CU_ERR_INVALID, "entries", "out of memory");
    t->version = (uint32_t)version;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        cu_status st = entry_from_json(json_array_get(arr, i), &t->entries[i], i, err);
        if (st != CU_OK) {
            free(t);
            return st;
        }
        t->n++;
    }
    memcpy(out, t, sizeof *t);
    free(t);
    return CU_OK;
}

/* ---- calibration ------------------------------------------------------- */

/* Per-entry accumulators of the weighted mean, in ppm x ms and ms. */
typedef struct {
    int touched;
    i128 num, den, added_ms, runs;
} accum;

/* Validate one observation and return its roof (MFLOP/s per device). */
static cu_status obs_roof(const cat_catalog *cat, const cu_eff_table *in, const cu_observation *o,
                          int64_t *roof, cu_error *err)
{
    cu_rate r;
    cu_status st = cu_rate_for(cat, in, o->device_id, o->count, &o->profile, &r, err);
    if (st != CU_OK)
        return st;
    if (o->wall_ms < 0 || o->work_mcu < 0)
        return cu_fail(err, CU_ERR_NEGATIVE, o->wall_ms < 0 ? "duration" : "work",
                       "observation has a negative value");
    if (o->wall_ms == 0 || o->wall_ms > CU_MAX_WALL_MS)
        return cu_fail(err, CU_ERR_OUT_OF_RANGE, "duration", "duration must be in (0, 100 years]");
    /* Implied efficiency above 100 % means the run beat the roofline. */
    if ((i128)o->work_mcu * 1000000000000000LL >
        (i128)CU_PPM * r.roof_mflops * o->count * o->wall_ms)
        return cu_fail(err, CU_ERR_OUT_OF_RANGE, "work", "work exceeds the device's roofline");
    *roof = r.roof_mflops;
    return CU_OK;
}

/* Find or append the device entry for o in t; returns its index or -1. */
static int entry_for(cu_eff_table *t, const cu_eff_table *in, const cat_device *dev, cu_class cls,
                     accum *acc)
{
    int i = find_device_entry(t, cat_device_id(dev), cls);
    if (i < 0) {
        if (t->n >= CU_EFF_MAX_ENTRIES)
            return -1;
        i = (int)t->n++;
        cu_eff_entry *e = &t->entries[i];
        memset(e, 0, sizeof *e);
        snprintf(e->device_id, sizeof e->device_id, "%s", cat_device_id(dev));
        e->kind = cat_device_kind(dev);
        e->cls = cls;
        e->eff_ppm = cu_eff_lookup(in, dev, cls);
    }
    if (!acc[i].touched) {
        const cu_eff_entry *e = &t->entries[i];
        i128 w0 = (i128)(e->evidence_s > 0 ? e->evidence_s : CU_CALIB_PRIOR_S) * 1000;
        acc[i] = (accum){1, (i128)e->eff_ppm * w0, w0, 0, 0};
    }
    return i;
}

static void finish_entry(cu_eff_entry *e, const accum *a)
{
    i128 q = a->num / a->den, r = a->num % a->den;
    if (2 * r > a->den || (2 * r == a->den && (q & 1)))
        q++;
    e->eff_ppm = (int32_t)(q < CU_EFF_MIN_PPM ? CU_EFF_MIN_PPM : q > CU_PPM ? CU_PPM : q);
    i128 ev = (i128)e->evidence_s + a->added_ms / 1000;
    e->evidence_s = (int64_t)(ev > CU_CALIB_MAX_EVIDENCE_S ? CU_CALIB_MAX_EVIDENCE_S : ev);
    i128 runs = (i128)e->runs + a->runs;
    e->runs = runs > INT64_MAX ? INT64_MAX : (int64_t)runs;
}

cu_status cu_calibrate(const cat_catalog *cat, const cu_eff_table *in, const cu_observation *obs,
                       size_t n, cu_eff_table *out, size_t *bad_index, cu_error *err)
{
    cu_status st = CU_OK;
    cu_eff_table *t = NULL;
    accum *acc = NULL;
    if (!cat || !in || !out || (n > 0 && !obs))
        return cu_fail(err, CU_ERR_INVALID, "observations",
                       "catalog, tables and runs are required");
    if (in->version == UINT32_MAX)
        return cu_fail(err, CU_ERR_OUT_OF_RANGE, "version", "efficiency table version exhausted");
    t = malloc(sizeof *t);
    acc = calloc(CU_EFF_MAX_ENTRIES, sizeof *acc);
    if (!t || !acc) {
        st = cu_fail(err, CU_ERR_INVALID, "observations", "out of memory");
        goto done;
    }
    memcpy(t, in, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        int64_t roof = 0;
        const cu_observation *o = &obs[i];
        if ((st = obs_roof(cat, in, o, &roof, err)) != CU_OK) {
            if (bad_index)
                *bad_index = i;
            goto done;
        }
        int k = entry_for(t, in, cat_find(cat, o->device_id), o->profile.cls, acc);
        if (k < 0) {
            st = cu_fail(err, CU_ERR_TABLE_FULL, "observations", "efficiency table is full");
            if (bad_index)
                *bad_index = i;
            goto done;
        }
        /* eff_i x s_i in ppm x ms is exactly work x 10^15 / roof. */
        acc[k].num += (i128)o->work_mcu * 1000000000000000LL / roof;
        acc[k].den += (i128)o->count * o->wall_ms;
        acc[k].added_ms += (i128)o->count * o->wall_ms;
        acc[k].runs += 1;
    }
    for (uint32_t k = 0; k < t->n; k++)
        if (acc[k].touched)
            finish_entry(&t->entries[k], &acc[k]);
    t->version = in->version + 1;
    memcpy(out, t, sizeof *t);
done:
    free(t);
    free(acc);
    return st;
}
