/*
 * cu.c - compute-unit rates, normalisation (time -> mCU) and its inverse.
 *
 * All arithmetic is exact in unsigned/signed 128-bit integers:
 *   roof_mflops  = min(peak_gflops x 1000, intensity_milli x bandwidth_gbps)
 *   mcu          = roof_mflops x eff_ppm x count x wall_ms / 10^15
 *   mcu_per_hour = roof_mflops x eff_ppm x count x 3 600 000 / 10^15
 *   wall_ms      = ceil(work_mcu x 10^15 / (roof_mflops x eff_ppm x count))
 * (1 mCU = 10^12 FLOP = 10^6 MFLOP; 1 ppm = 10^-6; 1 h = 3.6 x 10^6 ms.)
 * The single rounding step is the final division: half-to-even for work and
 * rates, upwards for durations. Invariant: every public result either fits
 * int64 or the call returns CU_ERR_OVERFLOW; inputs outside the documented
 * ranges return an error and leave outputs untouched.
 */
#include "cu.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef __int128 i128;

#define DENOM_E15 ((i128)1000000000000000LL)
#define MS_PER_HOUR INT64_C(3600000)

static const struct {
    const char *code, *message;
} status_text[] = {
    [CU_OK] = {"ok", "ok"},
    [CU_ERR_INVALID] = {"invalid", "invalid argument"},
    [CU_ERR_UNKNOWN_DEVICE] = {"unknown_device", "device is not in the catalog"},
    [CU_ERR_UNKNOWN_PROFILE] = {"unknown_profile", "unknown workload profile"},
    [CU_ERR_PRECISION_UNSUPPORTED] = {"precision_unsupported",
                                      "device has no throughput at this precision"},
    [CU_ERR_NEGATIVE] = {"negative_value", "value must not be negative"},
    [CU_ERR_OUT_OF_RANGE] = {"out_of_range", "value is outside the accepted range"},
    [CU_ERR_OVERFLOW] = {"overflow", "result does not fit a 64-bit integer"},
    [CU_ERR_TABLE_FULL] = {"table_full", "efficiency table is full"},
};

const char *cu_status_code(cu_status s)
{
    return (unsigned)s <= CU_ERR_TABLE_FULL ? status_text[s].code : "unknown";
}

const char *cu_status_message(cu_status s)
{
    return (unsigned)s <= CU_ERR_TABLE_FULL ? status_text[s].message : "unknown error";
}

cu_status cu_fail(cu_error *err, cu_status code, const char *field, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        snprintf(err->field, sizeof err->field, "%s", field);
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Half-to-even division of a non-negative numerator by a positive denominator. */
static i128 div_half_even(i128 num, i128 den)
{
    i128 q = num / den, r = num % den;
    if (2 * r > den || (2 * r == den && (q & 1)))
        q++;
    return q;
}

static i128 div_ceil(i128 num, i128 den)
{
    return num / den + (num % den != 0);
}

/* Pick the precision the device runs the profile at (bf16 <-> fp16 swap). */
static int pick_precision(const cat_device *dev, const cu_profile *p, cat_precision *out)
{
    *out = p->precision;
    if (cat_device_has_precision(dev, p->precision))
        return 0;
    if (!p->allow_16bit_swap)
        return -1;
    if (p->precision == CAT_BF16)
        *out = CAT_FP16;
    else if (p->precision == CAT_FP16)
        *out = CAT_BF16;
    else
        return -1;
    return cat_device_has_precision(dev, *out) ? 0 : -1;
}

static cu_status check_profile(const cu_profile *p, cu_error *err)
{
    if (!p || (unsigned)p->cls >= CU_CLASS_COUNT || (unsigned)p->precision >= CAT_PRECISION_COUNT)
        return cu_fail(err, CU_ERR_UNKNOWN_PROFILE, "profile", "profile is missing or malformed");
    if (p->intensity_milli < 0)
        return cu_fail(err, CU_ERR_NEGATIVE, "profile.intensity", "intensity must not be negative");
    if (p->intensity_milli < CU_MIN_INTENSITY || p->intensity_milli > CU_MAX_INTENSITY)
        return cu_fail(err, CU_ERR_OUT_OF_RANGE, "profile.intensity",
                       "intensity must be in [0.001, 1000000] FLOP/byte");
    return CU_OK;
}

static cu_status check_count(int64_t count, cu_error *err)
{
    if (count < 0)
        return cu_fail(err, CU_ERR_NEGATIVE, "count", "count must not be negative");
    if (count == 0 || count > CU_MAX_COUNT)
        return cu_fail(err, CU_ERR_OUT_OF_RANGE, "count", "count must be in [1, %lld]",
                       (long long)CU_MAX_COUNT);
    return CU_OK;
}

cu_status cu_rate_for(const cat_catalog *cat, const cu_eff_table *eff, const char *device_id,
                      int64_t count, const cu_profile *profile, cu_rate *out, cu_error *err)
{
    cu_status st;
    cu_rate r = {0};
    if (!cat || !out)
        return cu_fail(err, CU_ERR_INVALID, "catalog", "catalog and output are required");
    r.device = cat_find(cat, device_id);
    if (!r.device)
        return cu_fail(err, CU_ERR_UNKNOWN_DEVICE, "device", "unknown device '%s'",
                       device_id ? device_id : "(null)");
    if ((st = check_count(count, err)) != CU_OK || (st = check_profile(profile, err)) != CU_OK)
        return st;
    if (pick_precision(r.device, profile, &r.precision) != 0)
        return cu_fail(err, CU_ERR_PRECISION_UNSUPPORTED, "profile.precision",
                       "device '%s' has no %s throughput", device_id,
                       cat_precision_name(profile->precision));
    /* Catalog bounds keep these products far inside int64 (1e12 and 1e16). */
    r.peak_gflops = cat_device_peak_gflops(r.device, r.precision);
    r.mem_roof_mflops = profile->intensity_milli * cat_device_bandwidth_gbps(r.device);
    r.memory_bound = r.mem_roof_mflops < r.peak_gflops * 1000;
    r.roof_mflops = r.memory_bound ? r.mem_roof_mflops : r.peak_gflops * 1000;
    r.eff_ppm = cu_eff_lookup(eff, r.device, profile->cls);
    r.eff_version = eff ? eff->version : 1;
    r.count = count;
    i128 per_hour = (i128)r.roof_mflops * r.eff_ppm * MS_PER_HOUR;
    r.rate_mcu_per_hour = (int64_t)div_half_even(per_hour, DENOM_E15);
    i128 total = div_half_even(per_hour * count, DENOM_E15);
    if (total > INT64_MAX)
        return cu_fail(err, CU_ERR_OVERFLOW, "count", "rate overflows");
    r.total_mcu_per_hour = (int64_t)total;
    *out = r;
    return CU_OK;
}

cu_status cu_normalize(const cat_catalog *cat, const cu_eff_table *eff, const char *device_id,
                       int64_t count, const cu_profile *profile, int64_t wall_ms, int64_t *mcu_out,
                       cu_rate *rate_out, cu_error *err)
{
    cu_rate r;
    cu_status st;
    if (!mcu_out)
        return cu_fail(err, CU_ERR_INVALID, "output", "output is required");
    if ((st = cu_rate_for(cat, eff, device_id, count, profile, &r, err)) != CU_OK)
        return st;
    if (wall_ms < 0)
        return cu_fail(err, CU_ERR_NEGATIVE, "duration", "duration must not be negative");
    if (wall_ms > CU_MAX_WALL_MS)
        return cu_fail(err, CU_ERR_OUT_OF_RANGE, "duration", "duration exceeds 100 years");
    /* roof <= 1e15, eff <= 1e6, count <= 1e6, ms <= 3.2e12: product <= 3.2e39
     * can exceed int128 (1.7e38) only in theory; check instead of assuming. */
    i128 num;
    if (__builtin_mul_overflow((i128)r.roof_mflops * r.eff_ppm, (i128)count * wall_ms, &num))
        return cu_fail(err, CU_ERR_OVERFLOW, "duration", "work overflows");
    i128 mcu = div_half_even(num, DENOM_E15);
    if (mcu > INT64_MAX)
        return cu_fail(err, CU_ERR_OVERFLOW, "duration", "work does not fit 64-bit milli-CU");
    *mcu_out = (int64_t)mcu;
    if (rate_out)
        *rate_out = r;
    return CU_OK;
}

cu_status cu_duration(const cat_catalog *cat, const cu_eff_table *eff, const char *device_id,
                      int64_t count, const cu_profile *profile, int64_t work_mcu,
                      int64_t *wall_ms_out, cu_rate *rate_out, cu_error *err)
{
    cu_rate r;
    cu_status st;
    if (!wall_ms_out)
        return cu_fail(err, CU_ERR_INVALID, "output", "output is required");
    if ((st = cu_rate_for(cat, eff, device_id, count, profile, &r, err)) != CU_OK)
        return st;
    if (work_mcu < 0)
        return cu_fail(err, CU_ERR_NEGATIVE, "work", "work must not be negative");
    i128 per_ms = (i128)r.roof_mflops * r.eff_ppm * count; /* mCU x 1e15 per ms */
    if (per_ms <= 0)
        return cu_fail(err, CU_ERR_OUT_OF_RANGE, "device", "device has zero effective rate");
    i128 ms = div_ceil((i128)work_mcu * DENOM_E15, per_ms);
    if (ms > INT64_MAX)
        return cu_fail(err, CU_ERR_OVERFLOW, "work", "duration does not fit 64-bit milliseconds");
    *wall_ms_out = (int64_t)ms;
    if (rate_out)
        *rate_out = r;
    return CU_OK;
}
