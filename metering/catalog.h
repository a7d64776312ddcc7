/*
 * catalog.h - the versioned device catalog (datasheet figures per device).
 *
 * A catalog is parsed from JSON (metering/catalog/devices.json is the shipped
 * one) into an immutable, opaque cat_catalog. Every figure is an integer:
 * peak throughput in GFLOP/s (GOP/s for int8), memory in GB, bandwidth in GB/s,
 * power in W. A precision the device lacks has peak 0 ("absent"), never a
 * guess. Each device names the source its figures come from.
 *
 * Parsing (cat_parse) does no I/O. cat_load_file is the only function in
 * metering/ that reads a file; it reads the bytes and hands them to cat_parse.
 *
 * Ownership: cat_parse/cat_load_file return a catalog the caller frees with
 * cat_free. Devices and strings returned by accessors are borrowed from the
 * catalog and live as long as it does.
 */
#ifndef TALLY_METERING_CATALOG_H
#define TALLY_METERING_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Precisions, in the order the catalog lists them. */
typedef enum {
    CAT_FP64 = 0,
    CAT_FP32,
    CAT_TF32,
    CAT_BF16,
    CAT_FP16,
    CAT_FP8,
    CAT_INT8,
    CAT_PRECISION_COUNT
} cat_precision;

typedef enum {
    CAT_KIND_GPU = 0,
    CAT_KIND_CPU,
    CAT_KIND_NPU,
    CAT_KIND_ACCEL,
    CAT_KIND_COUNT
} cat_kind;

/* Upper bounds the parser enforces; anything above is rejected as absurd. */
#define CAT_ID_MAX 63
#define CAT_MAX_DEVICES 4096
#define CAT_MAX_PEAK_GFLOPS INT64_C(1000000000)  /* 1 EFLOP/s per device */
#define CAT_MAX_BANDWIDTH_GBPS INT64_C(10000000) /* 10 PB/s per device */

typedef struct cat_catalog cat_catalog;
typedef struct cat_device cat_device;

/* Error detail filled by the parser: a message naming the offending field. */
typedef struct {
    char message[256];
} cat_error;

/* Parse a catalog from a JSON text of len bytes. Returns NULL and fills err
 * (if non-NULL) on any malformed, duplicate, unknown or out-of-range field.
 * The caller frees the result with cat_free. */
cat_catalog *cat_parse(const char *json, size_t len, cat_error *err);

/* Read the file at path and cat_parse it. The only I/O in metering/. */
cat_catalog *cat_load_file(const char *path, cat_error *err);

void cat_free(cat_catalog *cat);

/* The catalog's version string, e.g. "2026-11-25.1". */
const char *cat_version(const cat_catalog *cat);

size_t cat_device_count(const cat_catalog *cat);
/* i-th device in file order; NULL when i is out of range. */
const cat_device *cat_device_at(const cat_catalog *cat, size_t i);
/* Device by id (exact, case-sensitive); NULL if unknown. */
const cat_device *cat_find(const cat_catalog *cat, const char *id);

const char *cat_device_id(const cat_device *dev);
const char *cat_device_vendor(const cat_device *dev);
const char *cat_device_name(const cat_device *dev);
cat_kind cat_device_kind(const cat_device *dev);
/* Dense peak in GFLOP/s (GOP/s for int8); 0 when the device lacks it. */
int64_t cat_device_peak_gflops(const cat_device *dev, cat_precision p);
int cat_device_has_precision(const cat_device *dev, cat_precision p);
/* Memory in GB; 0 when not applicable (CPUs: depends on the server). */
int64_t cat_device_memory_gb(const cat_device *dev);
int64_t cat_device_bandwidth_gbps(const cat_device *dev);
/* TDP in W and core count; 0 when not published / not a CPU. */
int64_t cat_device_tdp_w(const cat_device *dev);
int64_t cat_device_cores(const cat_device *dev);
const char *cat_device_interconnect(const cat_device *dev); /* "" if none */
const char *cat_device_note(const cat_device *dev);         /* "" if none */
/* Source key, its title and URL (from the catalog's "sources" table). */
const char *cat_device_source(const cat_device *dev);
const char *cat_device_source_title(const cat_device *dev);
const char *cat_device_source_url(const cat_device *dev);

/* JSON rendering of one device (new reference, caller json_decref's it);
 * integers only, absent precisions omitted. NULL on allocation failure. */
json_t *cat_device_to_json(const cat_device *dev);

/* Names: "fp64".."int8", "gpu"/"cpu"/"npu"/"accelerator". Parsing returns 0 on
 * success, -1 for an unknown name. */
const char *cat_precision_name(cat_precision p);
int cat_precision_parse(const char *name, cat_precision *out);
const char *cat_kind_name(cat_kind k);
int cat_kind_parse(const char *name, cat_kind *out);

#endif
