/*
 * cu.h - the unified compute unit (CU): workload profiles, efficiency tables,
 * rates, normalisation and its inverse, calibration. See docs/compute-units.md.
 *
 * Definition: 1 CU = 10^15 effective floating-point operations (one "effective
 * PFLOP") at the profile's precision. Quantities are integers:
 *   work      milli-CU (mCU, int64)          1 mCU = 10^12 FLOP
 *   rates     milli-CU per device-hour       (presentation; exact math uses MFLOP/s)
 *   duration  milliseconds of wall-clock time during which `count` devices are held
 *   intensity milli-FLOP per byte of memory traffic
 *   efficiency parts per million (ppm) of the roofline
 *
 * A device's effective rate for a profile is the roofline
 *     min(peak[precision], intensity x bandwidth) x efficiency
 * computed exactly in 128-bit integers and rounded half-to-even exactly once,
 * at the unit the caller receives (mCU, mCU/h) - or rounded up to the next
 * millisecond for durations, so the returned time always suffices.
 *
 * Everything here is pure: no I/O, no globals that change, no floats.
 */
#ifndef TALLY_METERING_CU_H
#define TALLY_METERING_CU_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"

typedef enum {
    CU_OK = 0,
    CU_ERR_INVALID,               /* NULL argument or malformed value */
    CU_ERR_UNKNOWN_DEVICE,        /* device id not in the catalog */
    CU_ERR_UNKNOWN_PROFILE,       /* profile/class name not known */
    CU_ERR_PRECISION_UNSUPPORTED, /* device has no peak for the profile's precision */
    CU_ERR_NEGATIVE,              /* a quantity that must be >= 0 is negative */
    CU_ERR_OUT_OF_RANGE,          /* absurd value (e.g. count 0, 200 years, eff > 100 %) */
    CU_ERR_OVERFLOW,              /* result does not fit the integer type */
    CU_ERR_TABLE_FULL             /* efficiency table has no room for a new entry */
} cu_status;

/* Error detail: stable code, the offending field, a human message. */
typedef struct {
    cu_status code;
    char field[32];
    char message[160];
} cu_error;

/* Stable machine-readable code ("unknown_device") and default message. */
const char *cu_status_code(cu_status s);
const char *cu_status_message(cu_status s);
/* Fill err (when not NULL) with code, field and a formatted message; returns code,
 * so callers can `return cu_fail(...)`. */
cu_status cu_fail(cu_error *err, cu_status code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- workload profiles ------------------------------------------------- */

typedef enum {
    CU_CLASS_LLM_TRAIN = 0,
    CU_CLASS_LLM_PREFILL,
    CU_CLASS_LLM_DECODE,
    CU_CLASS_CV_TRAIN,
    CU_CLASS_HPC_FP64,
    CU_CLASS_CPU_BATCH,
    CU_CLASS_CUSTOM,
    CU_CLASS_CV_INFER, /* after custom: existing values keep their numbers */
    CU_CLASS_COUNT
} cu_class;

typedef struct {
    cu_class cls;
    cat_precision precision;
    int64_t intensity_milli; /* milli-FLOP per byte, in [CU_MIN_INTENSITY, CU_MAX_INTENSITY] */
    int allow_16bit_swap;    /* bf16 <-> fp16 substitution when the device lacks one */
} cu_profile;

#define CU_MIN_INTENSITY INT64_C(1)           /* 0.001 FLOP/byte */
#define CU_MAX_INTENSITY INT64_C(1000000000)  /* 10^6 FLOP/byte */
#define CU_MAX_COUNT INT64_C(1000000)         /* devices in one job */
#define CU_MAX_WALL_MS INT64_C(3155760000000) /* 100 Julian years */

/* Named profile ("llm-train", ...). Named classes allow the bf16/fp16 swap. */
cu_status cu_profile_named(const char *name, cu_profile *out);
/* A named class at an explicit precision (swap still allowed). The class's
 * intensity is defined at its own precision; at another precision it is
 * rescaled by operand size (cu_intensity_at_precision): llm-decode is 16
 * FLOP/B in bf16 and 32 in fp8, cv-train 50 in fp16 and 100 in int8. */
cu_status cu_profile_class_precision(cu_class cls, cat_precision p, cu_profile *out);
/* intensity_milli of a kernel at precision `from`, re-expressed for the same
 * kernel at `to`: x bytes(from) / bytes(to) (8, 4, 4, 2, 2, 1, 1 bytes for
 * fp64..int8; TF32 is stored as 4 bytes), rounded half-up and clamped to
 * [CU_MIN_INTENSITY, CU_MAX_INTENSITY]. Unknown precisions return it unchanged. */
int64_t cu_intensity_at_precision(int64_t intensity_milli, cat_precision from, cat_precision to);
/* Custom profile: exact precision, intensity in milli-FLOP/byte. */
cu_status cu_profile_custom(cat_precision p, int64_t intensity_milli, cu_profile *out);
const char *cu_class_name(cu_class cls);
int cu_class_parse(const char *name, cu_class *out); /* 0 ok, -1 unknown */

/* ---- efficiency table (versioned, plain data, serialisable) ------------ */

#define CU_EFF_MAX_ENTRIES 512
#define CU_PPM INT64_C(1000000)
#define CU_EFF_MIN_PPM 1000                       /* 0.1 %: calibration never goes below */
#define CU_CALIB_PRIOR_S INT64_C(3600)            /* weight of a default, device-seconds */
#define CU_CALIB_MAX_EVIDENCE_S INT64_C(10000000) /* cap so calibration stays adaptive */

/* One efficiency: for a device (device_id set) or, when device_id is "",
 * the default for every device of `kind`. evidence_s counts the device-seconds
 * of observed runs folded in; runs counts them. */
typedef struct {
    char device_id[CAT_ID_MAX + 1];
    cat_kind kind;
    cu_class cls;
    int32_t eff_ppm;
    int64_t evidence_s;
    int64_t runs;
} cu_eff_entry;

typedef struct {
    uint32_t version; /* 1 = documented defaults; each calibration adds 1 */
    uint32_t n;
    cu_eff_entry entries[CU_EFF_MAX_ENTRIES];
} cu_eff_table;

/* Fill t with the documented defaults (version 1, one entry per kind x class). */
void cu_eff_defaults(cu_eff_table *t);
/* Efficiency used for dev on class: the device entry, else the kind entry,
 * else the built-in default (also when t is NULL). Never 0. */
int32_t cu_eff_lookup(const cu_eff_table *t, const cat_device *dev, cu_class cls);
/* JSON round trip for persistence (integers only). to_json returns a new
 * reference; from_json returns CU_OK or CU_ERR_INVALID with err filled. */
json_t *cu_eff_to_json(const cu_eff_table *t);
cu_status cu_eff_from_json(const json_t *j, cu_eff_table *out, cu_error *err);

/* ---- rates, normalisation, inverse -------------------------------------- */

typedef struct {
    const cat_device *device;
    cat_precision precision; /* precision actually used (after a bf16/fp16 swap) */
    int64_t peak_gflops;     /* per device */
    int64_t mem_roof_mflops; /* intensity x bandwidth, MFLOP/s per device */
    int64_t roof_mflops;     /* min(peak, mem roof), MFLOP/s per device */
    int memory_bound;        /* 1 when the bandwidth roof is the lower one */
    int32_t eff_ppm;
    uint32_t eff_version;
    int64_t count;
    int64_t rate_mcu_per_hour;  /* per device, rounded half-even */
    int64_t total_mcu_per_hour; /* count devices, rounded half-even */
} cu_rate;

/* Rate of `count` devices of device_id on profile. eff may be NULL (defaults). */
cu_status cu_rate_for(const cat_catalog *cat, const cu_eff_table *eff, const char *device_id,
                      int64_t count, const cu_profile *profile, cu_rate *out, cu_error *err);

/* Work done by `count` devices held for wall_ms: milli-CU, half-even. */
cu_status cu_normalize(const cat_catalog *cat, const cu_eff_table *eff, const char *device_id,
                       int64_t count, const cu_profile *profile, int64_t wall_ms, int64_t *mcu_out,
                       cu_rate *rate_out, cu_error *err);

/* Inverse: wall-clock ms `count` devices need for work_mcu, rounded up. */
cu_status cu_duration(const cat_catalog *cat, const cu_eff_table *eff, const char *device_id,
                      int64_t count, const cu_profile *profile, int64_t work_mcu,
                      int64_t *wall_ms_out, cu_rate *rate_out, cu_error *err);

/* ---- calibration --------------------------------------------------------- */

/* An observed completed run: count devices held for wall_ms did work_mcu. */
typedef struct {
    const char *device_id;
    cu_profile profile;
    int64_t count;
    int64_t wall_ms;
    int64_t work_mcu;
} cu_observation;

/* Pure: out = in with the device-specific efficiencies updated from obs, and
 * version = in->version + 1. Per (device, class) the new efficiency is the
 * evidence-weighted mean  (eff0 x W0 + sum(eff_i x s_i)) / (W0 + sum s_i),
 * where eff_i is the run's implied efficiency, s_i its device-seconds and W0
 * the prior's evidence (CU_CALIB_PRIOR_S for a default). On error out is
 * untouched and *bad_index (if non-NULL) names the offending observation.
 * `out` may alias `in`. */
cu_status cu_calibrate(const cat_catalog *cat, const cu_eff_table *in, const cu_observation *obs,
                       size_t n, cu_eff_table *out, size_t *bad_index, cu_error *err);

#endif
