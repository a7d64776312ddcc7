/*
 * cu_profile.c - workload profiles: the named classes and custom profiles.
 *
 * A profile is (class, dominant precision, arithmetic intensity). The named
 * classes are a constant table whose intensities are documented in
 * docs/compute-units.md; they are part of the CU definition, so changing one
 * changes every rate and must come with a new catalog/efficiency version.
 * Invariant: every profile this file hands out has a valid class and
 * precision and an intensity in [CU_MIN_INTENSITY, CU_MAX_INTENSITY].
 */
#include "cu.h"

#include <string.h>

static const struct {
    const char *name;
    cat_precision precision;
    int64_t intensity_milli; /* milli-FLOP per byte */
} classes[CU_CLASS_COUNT] = {
    /* Large-batch transformer training: GEMMs dominate, compute-bound on
     * every device in the catalog except the GDDR parts at the margin. */
    [CU_CLASS_LLM_TRAIN] = {"llm-train", CAT_BF16, 300000},
    /* Prompt processing: large GEMMs over the whole prompt. */
    [CU_CLASS_LLM_PREFILL] = {"llm-prefill", CAT_BF16, 250000},
    /* Token generation: every weight and KV byte read per step; a batch of
     * ~16 sequences gives ~16 FLOP per byte. Memory-bound everywhere. */
    [CU_CLASS_LLM_DECODE] = {"llm-decode", CAT_BF16, 16000},
    /* Convolutional training with mixed precision: convolutions plus
     * bandwidth-heavy normalisation/elementwise layers. */
    [CU_CLASS_CV_TRAIN] = {"cv-train", CAT_FP16, 50000},
    /* Typical FP64 simulation codes (stencils, sparse solvers, MD). */
    [CU_CLASS_HPC_FP64] = {"hpc-fp64", CAT_FP64, 8000},
    /* Generic CPU batch work: FP64, streaming-ish. */
    [CU_CLASS_CPU_BATCH] = {"cpu-batch", CAT_FP64, 4000},
    /* Custom: caller supplies precision and intensity; this is the default
     * intensity used only by cu_profile_class_precision. */
    [CU_CLASS_CUSTOM] = {"custom", CAT_FP32, 10000},
    /* Batched CNN inference (fused conv+bn+relu, batch >= 64). FLOP per byte
     * of unavoidable DRAM traffic: ResNet-50 v1.5 is 8.18 GFLOP per 224x224
     * image; in fp16 the image is 301 056 B and the 25.5 M weights, read once
     * per batch of 64, add 796 966 B: 8.18e9 / 1 098 022 = 7 448 FLOP/B.
     * Compute-bound on every catalog device (highest fp16 ridge: L40S, 419).
     * Derivation in docs/compute-units.md, "cv-infer". */
    [CU_CLASS_CV_INFER] = {"cv-infer", CAT_FP16, 7450000},
};

/* Bytes one operand of each precision occupies in memory (TF32 is stored as
 * FP32). A class's intensity is FLOP per byte at the class's own precision;
 * the same kernels at another precision move proportionally more or fewer
 * bytes for the same FLOP, so the intensity scales by own / other. */
static const int64_t operand_bytes[CAT_PRECISION_COUNT] = {
    [CAT_FP64] = 8, [CAT_FP32] = 4, [CAT_TF32] = 4, [CAT_BF16] = 2,
    [CAT_FP16] = 2, [CAT_FP8] = 1,  [CAT_INT8] = 1,
};

int64_t cu_intensity_at_precision(int64_t intensity_milli, cat_precision from, cat_precision to)
{
    if ((unsigned)from >= CAT_PRECISION_COUNT || (unsigned)to >= CAT_PRECISION_COUNT ||
        intensity_milli <= 0)
        return intensity_milli;
    int64_t num = intensity_milli * operand_bytes[from], den = operand_bytes[to];
    int64_t v = (num + den / 2) / den; /* half-up; all operands positive */
    return v < CU_MIN_INTENSITY ? CU_MIN_INTENSITY : v > CU_MAX_INTENSITY ? CU_MAX_INTENSITY : v;
}

const char *cu_class_name(cu_class cls)
{
    return (unsigned)cls < CU_CLASS_COUNT ? classes[cls].name : "unknown";
}

int cu_class_parse(const char *name, cu_class *out)
{
    for (int i = 0; name && i < CU_CLASS_COUNT; i++) {
        if (strcmp(name, classes[i].name) == 0) {
            *out = (cu_class)i;
            return 0;
        }
    }
    return -1;
}

cu_status cu_profile_named(const char *name, cu_profile *out)
{
    cu_class cls;
    if (!out || cu_class_parse(name, &cls) != 0 || cls == CU_CLASS_CUSTOM)
        return CU_ERR_UNKNOWN_PROFILE;
    return cu_profile_class_precision(cls, classes[cls].precision, out);
}

cu_status cu_profile_class_precision(cu_class cls, cat_precision p, cu_profile *out)
{
    if (!out || (unsigned)cls >= CU_CLASS_COUNT)
        return CU_ERR_UNKNOWN_PROFILE;
    if ((unsigned)p >= CAT_PRECISION_COUNT)
        return CU_ERR_INVALID;
    out->cls = cls;
    out->precision = p;
    out->intensity_milli =
        cu_intensity_at_precision(classes[cls].intensity_milli, classes[cls].precision, p);
    out->allow_16bit_swap = 1;
    return CU_OK;
}

cu_status cu_profile_custom(cat_precision p, int64_t intensity_milli, cu_profile *out)
{
    if (!out || (unsigned)p >= CAT_PRECISION_COUNT)
        return CU_ERR_INVALID;
    if (intensity_milli < 0)
        return CU_ERR_NEGATIVE;
    if (intensity_milli < CU_MIN_INTENSITY || intensity_milli > CU_MAX_INTENSITY)
        return CU_ERR_OUT_OF_RANGE;
    out->cls = CU_CLASS_CUSTOM;
    out->precision = p;
    out->intensity_milli = intensity_milli;
    out->allow_16bit_swap = 0;
    return CU_OK;
}
