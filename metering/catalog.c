/*
 * catalog.c - parse and query the versioned device catalog.
 *
 * Representation: one heap block per catalog holding the version string, the
 * sources table and an array of cat_device (file order). Strings are strdup'd
 * copies owned by the catalog. Invariant after a successful parse: ids are
 * unique slugs ([a-z0-9-], 1..CAT_ID_MAX chars), every peak is 0 (absent) or
 * in (0, CAT_MAX_PEAK_GFLOPS], bandwidth is in (0, CAT_MAX_BANDWIDTH_GBPS],
 * every device names a source that exists in the catalog's sources table,
 * and at least one precision is present.
 */
#include "catalog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cat_device {
    char *id, *vendor, *name, *interconnect, *note, *source, *source_title, *source_url;
    cat_kind kind;
    int64_t peak[CAT_PRECISION_COUNT];
    int64_t memory_gb, bandwidth_gbps, tdp_w, cores;
};

struct cat_catalog {
    char *version;
    size_t n;
    cat_device *devices;
};

static const char *const precision_names[CAT_PRECISION_COUNT] = {"fp64", "fp32", "tf32", "bf16",
                                                                 "fp16", "fp8",  "int8"};
static const char *const kind_names[CAT_KIND_COUNT] = {"gpu", "cpu", "npu", "accelerator"};

static const char *const device_keys[] = {"id",
                                          "vendor",
                                          "name",
                                          "kind",
                                          "peak",
                                          "memory_gb",
                                          "memory_bandwidth_gbps",
                                          "tdp_w",
                                          "cores",
                                          "interconnect",
                                          "source",
                                          "source_quality",
                                          "note",
                                          NULL};

static void set_err(cat_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

const char *cat_precision_name(cat_precision p)
{
    return (unsigned)p < CAT_PRECISION_COUNT ? precision_names[p] : "unknown";
}

int cat_precision_parse(const char *name, cat_precision *out)
{
    for (int i = 0; name && i < CAT_PRECISION_COUNT; i++) {
        if (strcmp(name, precision_names[i]) == 0) {
            *out = (cat_precision)i;
            return 0;
        }
    }
    return -1;
}

const char *cat_kind_name(cat_kind k)
{
    return (unsigned)k < CAT_KIND_COUNT ? kind_names[k] : "unknown";
}

int cat_kind_parse(const char *name, cat_kind *out)
{
    for (int i = 0; name && i < CAT_KIND_COUNT; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (cat_kind)i;
            return 0;
        }
    }
    return -1;
}

static void device_clear(cat_device *d)
{
    free(d->id);
    free(d->vendor);
    free(d->name);
    free(d->interconnect);
    free(d->note);
    free(d->source);
    free(d->source_title);
    free(d->source_url);
}

void cat_free(cat_catalog *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n; i++)
        device_clear(&cat->devices[i]);
    free(cat->devices);
    free(cat->version);
    free(cat);
}

static int is_slug(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CAT_ID_MAX || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

/* Copy a required (or optional, when required == 0) string member. */
static int get_string(json_t *obj, const char *key, int required, char **out, const char *dev,
                      cat_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v && !required) {
        *out = strdup("");
        return *out ? 0 : -1;
    }
    if (!json_is_string(v) || (required && json_string_length(v) == 0)) {
        set_err(err, "device %s: field '%s' must be a non-empty string", dev, key);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : -1;
}

/* Read an optional integer member in [lo, hi]; absent -> 0. Reals rejected. */
static int get_int(json_t *obj, const char *key, int required, int64_t lo, int64_t hi, int64_t *out,
                   const char *dev, cat_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v && !required)
        return 0;
    if (!json_is_integer(v)) {
        set_err(err, "device %s: field '%s' must be an integer", dev, key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        set_err(err, "device %s: field '%s' out of range [%lld, %lld]", dev, key, (long long)lo,
                (long long)hi);
        return -1;
    }
    *out = (int64_t)x;
    return 0;
}

static int check_keys(json_t *obj, const char *dev, cat_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        int known = 0;
        for (size_t i = 0; device_keys[i]; i++)
            known |= strcmp(key, device_keys[i]) == 0;
        if (!known) {
            set_err(err, "device %s: unknown field '%s'", dev, key);
            return -1;
        }
    }
    return 0;
}

static int parse_peak(json_t *obj, cat_device *d, cat_error *err)
{
    json_t *peak = json_object_get(obj, "peak");
    const char *key;
    json_t *v;
    int present = 0;
    if (!json_is_object(peak)) {
        set_err(err, "device %s: field 'peak' must be an object", d->id);
        return -1;
    }
    json_object_foreach(peak, key, v)
    {
        cat_precision p;
        if (cat_precision_parse(key, &p) != 0) {
            set_err(err, "device %s: unknown precision 'peak.%s'", d->id, key);
            return -1;
        }
        if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
            json_integer_value(v) > CAT_MAX_PEAK_GFLOPS) {
            set_err(err, "device %s: 'peak.%s' must be an integer in [1, %lld] GFLOP/s", d->id, key,
                    (long long)CAT_MAX_PEAK_GFLOPS);
            return -1;
        }
        d->peak[p] = (int64_t)json_integer_value(v);
        present = 1;
    }
    if (!present) {
        set_err(err, "device %s: 'peak' lists no precision", d->id);
        return -1;
    }
    return 0;
}

static int parse_source(json_t *obj, json_t *sources, cat_device *d, cat_error *err)
{
    if (get_string(obj, "source", 1, &d->source, d->id, err) != 0)
        return -1;
    json_t *s = json_object_get(sources, d->source);
    json_t *title = json_object_get(s, "title"), *url = json_object_get(s, "url");
    if (!json_is_string(title) || !json_is_string(url)) {
        set_err(err, "device %s: source '%s' is not in the sources table (needs title and url)",
                d->id, d->source);
        return -1;
    }
    d->source_title = strdup(json_string_value(title));
    d->source_url = strdup(json_string_value(url));
    return d->source_title && d->source_url ? 0 : -1;
}

static int parse_kind(json_t *obj, cat_device *d, cat_error *err)
{
    json_t *v = json_object_get(obj, "kind");
    if (!json_is_string(v) || cat_kind_parse(json_string_value(v), &d->kind) != 0) {
        set_err(err, "device %s: 'kind' must be one of gpu, cpu, npu, accelerator", d->id);
        return -1;
    }
    return 0;
}

static int parse_device(json_t *obj, json_t *sources, cat_device *d, size_t index, cat_error *err)
{
    json_t *id = json_object_get(obj, "id");
    if (!json_is_object(obj) || !json_is_string(id) || !is_slug(json_string_value(id))) {
        set_err(err, "devices[%zu]: 'id' must be a lowercase slug of 1..%d chars", index,
                CAT_ID_MAX);
        return -1;
    }
    d->id = strdup(json_string_value(id));
    if (!d->id || check_keys(obj, d->id, err) != 0)
        return -1;
    if (get_string(obj, "vendor", 1, &d->vendor, d->id, err) ||
        get_string(obj, "name", 1, &d->name, d->id, err) ||
        get_string(obj, "interconnect", 0, &d->interconnect, d->id, err) ||
        get_string(obj, "note", 0, &d->note, d->id, err) || parse_kind(obj, d, err) ||
        parse_peak(obj, d, err) || parse_source(obj, sources, d, err))
        return -1;
    if (get_int(obj, "memory_gb", 0, 1, 1000000, &d->memory_gb, d->id, err) ||
        get_int(obj, "memory_bandwidth_gbps", 1, 1, CAT_MAX_BANDWIDTH_GBPS, &d->bandwidth_gbps,
                d->id, err) ||
        get_int(obj, "tdp_w", 0, 1, 100000, &d->tdp_w, d->id, err) ||
        get_int(obj, "cores", d->kind == CAT_KIND_CPU, 1, 1000000, &d->cores, d->id, err))
        return -1;
    return 0;
}

static int parse_devices(json_t *root, cat_catalog *cat, cat_error *err)
{
    json_t *devs = json_object_get(root, "devices");
    json_t *sources = json_object_get(root, "sources");
    if (!json_is_array(devs) || json_array_size(devs) == 0 ||
        json_array_size(devs) > CAT_MAX_DEVICES) {
        set_err(err, "'devices' must be a non-empty array of at most %d devices", CAT_MAX_DEVICES);
        return -1;
    }
    if (!json_is_object(sources)) {
        set_err(err, "'sources' must be an object");
        return -1;
    }
    cat->devices = calloc(json_array_size(devs), sizeof *cat->devices);
    if (!cat->devices) {
        set_err(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(devs); i++) {
        cat->n = i + 1; /* so cat_free clears a partially parsed device too */
        if (parse_device(json_array_get(devs, i), sources, &cat->devices[i], i, err) != 0)
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cat->devices[j].id, cat->devices[i].id) == 0) {
                set_err(err, "duplicate device id '%s'", cat->devices[i].id);
                return -1;
            }
        }
    }
    return 0;
}

cat_catalog *cat_parse(const char *json, size_t len, cat_error *err)
{
    json_error_t jerr;
    cat_catalog *cat = NULL;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, "invalid JSON at line %d: %s", jerr.line, jerr.text);
        goto fail;
    }
    json_t *version = json_object_get(root, "version");
    if (!json_is_string(version) || json_string_length(version) == 0 ||
        json_string_length(version) > 64) {
        set_err(err, "'version' must be a non-empty string of at most 64 chars");
        goto fail;
    }
    cat = calloc(1, sizeof *cat);
    if (!cat || !(cat->version = strdup(json_string_value(version)))) {
        set_err(err, "out of memory");
        goto fail;
    }
    if (parse_devices(root, cat, err) != 0)
        goto fail;
    json_decref(root);
    return cat;
fail:
    cat_free(cat);
    json_decref(root);
    return NULL;
}

cat_catalog *cat_load_file(const char *path, cat_error *err)
{
    cat_catalog *cat = NULL;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0)
        goto io_fail;
    long size = ftell(f);
    if (size < 0 || size > 64L * 1024 * 1024 || fseek(f, 0, SEEK_SET) != 0)
        goto io_fail;
    buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size)
        goto io_fail;
    cat = cat_parse(buf, (size_t)size, err);
    goto done;
io_fail:
    set_err(err, "cannot read %s", path);
done:
    free(buf);
    fclose(f);
    return cat;
}

const char *cat_version(const cat_catalog *cat)
{
    return cat->version;
}
size_t cat_device_count(const cat_catalog *cat)
{
    return cat->n;
}

const cat_device *cat_device_at(const cat_catalog *cat, size_t i)
{
    return i < cat->n ? &cat->devices[i] : NULL;
}

const cat_device *cat_find(const cat_catalog *cat, const char *id)
{
    if (!cat || !id)
        return NULL;
    for (size_t i = 0; i < cat->n; i++)
        if (strcmp(cat->devices[i].id, id) == 0)
            return &cat->devices[i];
    return NULL;
}

const char *cat_device_id(const cat_device *dev)
{
    return dev->id;
}
const char *cat_device_vendor(const cat_device *dev)
{
    return dev->vendor;
}
const char *cat_device_name(const cat_device *dev)
{
    return dev->name;
}
cat_kind cat_device_kind(const cat_device *dev)
{
    return dev->kind;
}

int64_t cat_device_peak_gflops(const cat_device *dev, cat_precision p)
{
    return (unsigned)p < CAT_PRECISION_COUNT ? dev->peak[p] : 0;
}

int cat_device_has_precision(const cat_device *dev, cat_precision p)
{
    return cat_device_peak_gflops(dev, p) > 0;
}

int64_t cat_device_memory_gb(const cat_device *dev)
{
    return dev->memory_gb;
}
int64_t cat_device_bandwidth_gbps(const cat_device *dev)
{
    return dev->bandwidth_gbps;
}
int64_t cat_device_tdp_w(const cat_device *dev)
{
    return dev->tdp_w;
}
int64_t cat_device_cores(const cat_device *dev)
{
    return dev->cores;
}
const char *cat_device_interconnect(const cat_device *dev)
{
    return dev->interconnect;
}
const char *cat_device_note(const cat_device *dev)
{
    return dev->note;
}
const char *cat_device_source(const cat_device *dev)
{
    return dev->source;
}
const char *cat_device_source_title(const cat_device *dev)
{
    return dev->source_title;
}
const char *cat_device_source_url(const cat_device *dev)
{
    return dev->source_url;
}

static int set_int(json_t *o, const char *key, int64_t v)
{
    return v > 0 ? json_object_set_new(o, key, json_integer((json_int_t)v)) : 0;
}

json_t *cat_device_to_json(const cat_device *d)
{
    json_t *o = json_object(), *peak = json_object(), *src = json_object();
    int rc = (!o || !peak || !src) ? -1 : 0;
    for (int p = 0; rc == 0 && p < CAT_PRECISION_COUNT; p++)
        rc |= set_int(peak, precision_names[p], d->peak[p]);
    if (rc == 0) {
        rc |= json_object_set_new(src, "key", json_string(d->source));
        rc |= json_object_set_new(src, "title", json_string(d->source_title));
        rc |= json_object_set_new(src, "url", json_string(d->source_url));
        rc |= json_object_set_new(o, "id", json_string(d->id));
        rc |= json_object_set_new(o, "vendor", json_string(d->vendor));
        rc |= json_object_set_new(o, "name", json_string(d->name));
        rc |= json_object_set_new(o, "kind", json_string(kind_names[d->kind]));
        rc |= json_object_set(o, "peak_gflops", peak);
        rc |= set_int(o, "memory_gb", d->memory_gb);
        rc |= set_int(o, "memory_bandwidth_gbps", d->bandwidth_gbps);
        rc |= set_int(o, "tdp_w", d->tdp_w);
        rc |= set_int(o, "cores", d->cores);
        rc |= json_object_set_new(o, "interconnect", json_string(d->interconnect));
        rc |= json_object_set_new(o, "note", json_string(d->note));
        rc |= json_object_set(o, "source", src);
    }
    json_decref(peak);
    json_decref(src);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}
