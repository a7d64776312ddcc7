/*
 * metering_req.c - workload parsing and metering error replies for handlers.
 * Invariant: a parsed workload always names a known profile; device existence
 * is checked later against the catalog snapshot the computation uses.
 */
#include "metering_req.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int profile_from_object(http_ctx *c, json_t *o, cu_profile *out)
{
    static const char *const fields[] = {"class", "precision", "intensity_milli", NULL};
    json_t *cls = json_object_get(o, "class"), *prec = json_object_get(o, "precision");
    json_t *inten = json_object_get(o, "intensity_milli");
    cat_precision p = CAT_FP32;
    cu_class k;

    if (val_known_fields(c, o, fields))
        return -1;
    if (prec && (!json_is_string(prec) || cat_precision_parse(json_string_value(prec), &p))) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'profile.precision' must be one of fp64, fp32, tf32, bf16, fp16, "
                           "fp8, int8",
                           "profile.precision");
        return -1;
    }
    if (cls && (!json_is_string(cls) || cu_class_parse(json_string_value(cls), &k))) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'profile.class' must be one of llm-train, llm-prefill, llm-decode, "
                           "cv-train, cv-infer, hpc-fp64, cpu-batch, custom",
                           "profile.class");
        return -1;
    }
    if (cls && k != CU_CLASS_CUSTOM) {
        if (inten) {
            http_reply_problem(c, PROB_VALIDATION, "'intensity_milli' is only for custom profiles",
                               "profile.intensity_milli");
            return -1;
        }
        return (prec ? cu_profile_class_precision(k, p, out)
                     : cu_profile_named(json_string_value(cls), out)) == CU_OK
                   ? 0
                   : (http_reply_problem(c, PROB_VALIDATION, "invalid profile", "profile"), -1);
    }
    if (!prec || !json_is_integer(inten)) {
        http_reply_problem(c, PROB_VALIDATION,
                           "a custom profile needs 'precision' and an integer 'intensity_milli' "
                           "(FLOP per byte x 1000)",
                           prec ? "profile.intensity_milli" : "profile.precision");
        return -1;
    }
    if (cu_profile_custom(p, json_integer_value(inten), out) != CU_OK) {
        http_reply_problemf(c, PROB_VALIDATION, "profile.intensity_milli",
                            "'intensity_milli' must be between %lld and %lld",
                            (long long)CU_MIN_INTENSITY, (long long)CU_MAX_INTENSITY);
        return -1;
    }
    return 0;
}

int mreq_workload(http_ctx *c, json_t *body, workload_req *out)
{
    json_t *prof;

    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "a JSON body is required", "device");
        return -1;
    }
    if (val_string(c, body, "device", 1, 63, &out->device) ||
        val_int(c, body, "count", 0, 1, CU_MAX_COUNT, 1, &out->count))
        return -1;
    prof = json_object_get(body, "profile");
    if (!prof) {
        http_reply_problem(c, PROB_VALIDATION, "'profile' is required", "profile");
        return -1;
    }
    if (json_is_string(prof)) {
        if (cu_profile_named(json_string_value(prof), &out->profile) != CU_OK) {
            http_reply_problemf(c, PROB_VALIDATION, "profile",
                                "unknown profile '%s' (named classes: llm-train, llm-prefill, "
                                "llm-decode, cv-train, cv-infer, hpc-fp64, cpu-batch)",
                                json_string_value(prof));
            return -1;
        }
        return 0;
    }
    if (json_is_object(prof))
        return profile_from_object(c, prof, &out->profile);
    http_reply_problem(c, PROB_VALIDATION, "'profile' must be a class name or an object",
                       "profile");
    return -1;
}

json_t *mreq_profile_json(const cu_profile *p)
{
    return json_pack("{s:s, s:s, s:I}", "class", cu_class_name(p->cls), "precision",
                     cat_precision_name(p->precision), "intensity_milli",
                     (json_int_t)p->intensity_milli);
}

json_t *mreq_rate_json(const cu_rate *r)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:I}", "device",
                     cat_device_id(r->device), "precision_used", cat_precision_name(r->precision),
                     "peak_gflops", (json_int_t)r->peak_gflops, "memory_roof_mflops",
                     (json_int_t)r->mem_roof_mflops, "roof_mflops", (json_int_t)r->roof_mflops,
                     "memory_bound", r->memory_bound, "efficiency_ppm", (json_int_t)r->eff_ppm,
                     "count", (json_int_t)r->count, "mcu_per_device_hour",
                     (json_int_t)r->rate_mcu_per_hour, "mcu_per_hour",
                     (json_int_t)r->total_mcu_per_hour);
}

void mreq_profile_jw(jsonw *w, const cu_profile *p)
{
    jw_open(w);
    jw_key(w, "class");
    jw_str(w, cu_class_name(p->cls));
    jw_key(w, "precision");
    jw_str(w, cat_precision_name(p->precision));
    jw_key(w, "intensity_milli");
    jw_int(w, p->intensity_milli);
    jw_close(w);
}

void mreq_rate_jw(jsonw *w, const cu_rate *r)
{
    jw_open(w);
    jw_key(w, "device");
    jw_str(w, cat_device_id(r->device));
    jw_key(w, "precision_used");
    jw_str(w, cat_precision_name(r->precision));
    jw_key(w, "peak_gflops");
    jw_int(w, r->peak_gflops);
    jw_key(w, "memory_roof_mflops");
    jw_int(w, r->mem_roof_mflops);
    jw_key(w, "roof_mflops");
    jw_int(w, r->roof_mflops);
    jw_key(w, "memory_bound");
    jw_bool(w, r->memory_bound);
    jw_key(w, "efficiency_ppm");
    jw_int(w, r->eff_ppm);
    jw_key(w, "count");
    jw_int(w, r->count);
    jw_key(w, "mcu_per_device_hour");
    jw_int(w, r->rate_mcu_per_hour);
    jw_key(w, "mcu_per_hour");
    jw_int(w, r->total_mcu_per_hour);
    jw_close(w);
}

void mreq_reply_jw(http_ctx *c, int status, jsonw *w)
{
    size_t len;
    char *text = jw_take(w, &len);

    if (!text) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    http_set_header(c, "Cache-Control", "no-store");
    http_reply_raw(c, status, "application/json", text, len);
    free(text);
}

void mreq_reply_cu_error(http_ctx *c, const cu_error *err, const char *default_field)
{
    const char *field = err->field[0] ? err->field : default_field;

    if (err->code == CU_ERR_UNKNOWN_DEVICE)
        field = "device";
    else if (err->code == CU_ERR_PRECISION_UNSUPPORTED || err->code == CU_ERR_UNKNOWN_PROFILE)
        field = "profile";
    http_reply_problemf(c, PROB_VALIDATION, field, "%s (%s)",
                        err->message[0] ? err->message : cu_status_message(err->code),
                        cu_status_code(err->code));
}

void mreq_decimal_mcu(long long mcu, char *out, size_t len)
{
    unsigned long long a = mcu < 0 ? 0ull - (unsigned long long)mcu : (unsigned long long)mcu;

    snprintf(out, len, "%s%llu.%03llu", mcu < 0 ? "-" : "", a / 1000, a % 1000);
}
