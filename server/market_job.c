/*
 * market_job.c - a market_job to and from JSON: orders keep the request they
 * were placed with (orders.request), so failover can place them again.
 */
#include "market_orders.h"

#include <stdio.h>
#include <string.h>

static json_t *list_json(const char *list, size_t width, int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_string(list + (size_t)i * width));
    return a;
}

json_t *market_job_to_json(const market_job *j)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:O, s:I, s:I, s:I, s:I, s:I, s:s, s:s}", "tenant", j->tenant, "device",
        j->device, "count", (json_int_t)j->count, "profile", j->profile_json, "work_mcu",
        (json_int_t)j->work_mcu, "wall_ms", (json_int_t)j->wall_ms, "deadline_ms",
        (json_int_t)j->deadline_ms, "max_price", (json_int_t)j->max_price, "latency_weight",
        (json_int_t)j->latency_weight, "currency", j->currency, "data_region", j->data_region);

    if (!o)
        return NULL;
    json_object_set_new(o, "regions", list_json(j->regions[0], sizeof j->regions[0], j->n_regions));
    json_object_set_new(o, "residency",
                        list_json(j->residency[0], sizeof j->residency[0], j->n_residency));
    json_object_set_new(o, "blocked", list_json(j->blocked[0], sizeof j->blocked[0], j->n_blocked));
    json_object_set_new(o, "margin_pct", json_integer(j->margin_pct));
    return o;
}

static int list_from(const json_t *a, char *out, size_t width, int max, int *n)
{
    size_t i;
    json_t *v;

    *n = 0;
    if (!json_is_array(a) || json_array_size(a) > (size_t)max)
        return -1;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) >= width)
            return -1;
        snprintf(out + i * width, width, "%s", json_string_value(v));
        (*n)++;
    }
    return 0;
}

static int str_from(const json_t *o, const char *k, char *out, size_t cap)
{
    const json_t *v = json_object_get(o, k);

    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -1;
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

static int profile_from(const json_t *p, cu_profile *out)
{
    const char *cls = json_string_value(json_object_get(p, "class"));
    const char *prec = json_string_value(json_object_get(p, "precision"));
    cu_class k;
    cat_precision pr;

    if (!cls || !prec || cu_class_parse(cls, &k) != 0 || cat_precision_parse(prec, &pr) != 0)
        return -1;
    if (k == CU_CLASS_CUSTOM)
        return cu_profile_custom(pr, json_integer_value(json_object_get(p, "intensity_milli")),
                                 out) == CU_OK
                   ? 0
                   : -1;
    return cu_profile_class_precision(k, pr, out) == CU_OK ? 0 : -1;
}

int market_job_from_json(const json_t *o, market_job *j)
{
    memset(j, 0, sizeof *j);
    if (!json_is_object(o) || str_from(o, "tenant", j->tenant, sizeof j->tenant) ||
        str_from(o, "device", j->device, sizeof j->device) ||
        str_from(o, "currency", j->currency, sizeof j->currency) ||
        str_from(o, "data_region", j->data_region, sizeof j->data_region) ||
        profile_from(json_object_get(o, "profile"), &j->profile) ||
        list_from(json_object_get(o, "regions"), j->regions[0], sizeof j->regions[0], MJ_MAX_LIST,
                  &j->n_regions) ||
        list_from(json_object_get(o, "residency"), j->residency[0], sizeof j->residency[0],
                  MJ_MAX_TAGS, &j->n_residency) ||
        list_from(json_object_get(o, "blocked"), j->blocked[0], sizeof j->blocked[0], MJ_MAX_LIST,
                  &j->n_blocked))
        return -1;
    j->profile_json = json_incref(json_object_get(o, "profile"));
    j->count = json_integer_value(json_object_get(o, "count"));
    j->work_mcu = json_integer_value(json_object_get(o, "work_mcu"));
    j->wall_ms = json_integer_value(json_object_get(o, "wall_ms"));
    j->deadline_ms = json_integer_value(json_object_get(o, "deadline_ms"));
    j->max_price = json_integer_value(json_object_get(o, "max_price"));
    j->latency_weight = json_integer_value(json_object_get(o, "latency_weight"));
    j->margin_pct = (int)json_integer_value(json_object_get(o, "margin_pct"));
    return j->count >= 1 && (j->work_mcu > 0 || j->wall_ms > 0) ? 0 : -1;
}
