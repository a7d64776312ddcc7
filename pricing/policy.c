/*
 * policy.c - parse and validate pricing policy documents; render the model
 * back to canonical JSON; time-zone offset lookup from caller transitions.
 *
 * Invariant: a pricing_policy that pricing_policy_parse returned satisfies
 * every rule documented in docs/pricing.md (contiguous tiers starting at 0,
 * sorted spot curve with floor <= cap, non-overlapping windows, at most one
 * rate source per (unit, match), ...), so the rating engine never re-checks
 * them. Validation stops at the first problem and names it by JSON path.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

#define PATH_MAX_LEN 96

static const char *const kind_names[PRICING_RULE_KIND_COUNT] = {
    [PRICING_RULE_BASE] = "base",
    [PRICING_RULE_TIERS] = "tiers",
    [PRICING_RULE_SPOT] = "spot",
    [PRICING_RULE_TIME_WINDOW] = "time_window",
    [PRICING_RULE_COMMITMENT] = "commitment",
    [PRICING_RULE_ALLOWANCE] = "allowance",
    [PRICING_RULE_REGION] = "region",
    [PRICING_RULE_MINIMUM] = "minimum",
    [PRICING_RULE_CONTRACT] = "contract",
    [PRICING_RULE_PLATFORM_FEE] = "platform_fee",
};

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

const char *pricing_status_code(pricing_status s)
{
    switch (s) {
    case PRICING_OK:
        return "ok";
    case PRICING_ERR_INVALID:
        return "invalid";
    case PRICING_ERR_OVERFLOW:
        return "overflow";
    case PRICING_ERR_NO_RATE:
        return "no_rate";
    case PRICING_ERR_TZ:
        return "time_zone";
    case PRICING_ERR_RANGE:
        return "out_of_range";
    case PRICING_ERR_NOMEM:
        return "no_memory";
    }
    return "unknown";
}

int64_t pricing_unit_scale(pricing_unit u)
{
    return u == PRICING_UNIT_DEVICE_HOUR ? INT64_C(3600000) : INT64_C(1000);
}

const char *pricing_unit_name(pricing_unit u)
{
    return u == PRICING_UNIT_DEVICE_HOUR ? "device_hour" : "cu";
}

const char *pricing_rule_kind_name(pricing_rule_kind k)
{
    return (unsigned)k < PRICING_RULE_KIND_COUNT ? kind_names[k] : "unknown";
}

/* ---- error helpers ------------------------------------------------------ */

/* Fill err with code, path and "path: message". */
static void vfill(pricing_error *err, pricing_status code, const char *path, const char *fmt,
                  va_list ap)
{
    if (err) {
        char msg[200];
        vsnprintf(msg, sizeof msg, fmt, ap);
        err->code = code;
        snprintf(err->path, sizeof err->path, "%s", path);
        if (path[0])
            snprintf(err->message, sizeof err->message, "%s: %s", path, msg);
        else
            snprintf(err->message, sizeof err->message, "%s", msg);
    }
}

/* vfill, then return -1 so parsers can `return fail(...)`. */
static int failc(pricing_error *err, pricing_status code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfill(err, code, path, fmt, ap);
    va_end(ap);
    return -1;
}

static pricing_status tzfail(pricing_error *err, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfill(err, PRICING_ERR_TZ, path, fmt, ap);
    va_end(ap);
    return PRICING_ERR_TZ;
}

#define fail(err, path, ...) failc((err), PRICING_ERR_INVALID, (path), __VA_ARGS__)

/* Paths longer than PATH_MAX_LEN are cut (they only ever appear in messages). */
static void child(char *out, const char *parent, const char *key)
{
    if (snprintf(out, PATH_MAX_LEN, "%s%s%s", parent, parent[0] ? "." : "", key) >= PATH_MAX_LEN)
        out[PATH_MAX_LEN - 1] = '\0';
}

static void elem(char *out, const char *parent, size_t i)
{
    if (snprintf(out, PATH_MAX_LEN, "%s[%zu]", parent, i) >= PATH_MAX_LEN)
        out[PATH_MAX_LEN - 1] = '\0';
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Reject any key of obj not in the NULL-terminated list allowed. */
static int check_keys(const json_t *obj, const char *path, const char *const *allowed,
                      pricing_error *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                ok = 1;
        if (!ok) {
            char p[PATH_MAX_LEN];
            child(p, path, key);
            return fail(err, p, "unknown field");
        }
    }
    return 0;
}

/* Integer field. *present (may be NULL) says whether it was there. */
static int get_int(const json_t *obj, const char *key, const char *path, int required, int64_t min,
                   int64_t max, int64_t *out, int *present, pricing_error *err)
{
    char p[PATH_MAX_LEN];
    const json_t *v = json_object_get(obj, key);
    child(p, path, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return required ? fail(err, p, "required") : 0;
    if (json_is_real(v))
        return fail(err, p, "must be an integer, not a real number");
    if (!json_is_integer(v))
        return fail(err, p, "must be an integer, not %s", json_kind(v));
    int64_t x = (int64_t)json_integer_value(v);
    if (x < min || x > max)
        return fail(err, p, "must be between %lld and %lld (got %lld)", (long long)min,
                    (long long)max, (long long)x);
    *out = x;
    return 0;
}

/* Money field: an exact decimal string. */
static int get_money(const json_t *obj, const char *key, const char *path, int required,
                     int64_t min, int64_t max, int64_t *out, int *present, pricing_error *err)
{
    char p[PATH_MAX_LEN], lo[MONEY_FMT_MAX], hi[MONEY_FMT_MAX];
    const json_t *v = json_object_get(obj, key);
    int64_t x = 0;
    child(p, path, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return required ? fail(err, p, "required") : 0;
    if (!json_is_string(v))
        return fail(err, p, "money must be a decimal string such as \"2.50\", not %s",
                    json_kind(v));
    money_status st = money_parse(json_string_value(v), &x);
    if (st == MONEY_ERR_PRECISION)
        return fail(err, p, "at most 6 fraction digits (micro-units)");
    if (st != MONEY_OK)
        return fail(err, p, "not an exact decimal amount (\"%s\")", json_string_value(v));
    if (x < min || x > max) {
        money_format(min, lo, sizeof lo);
        money_format(max, hi, sizeof hi);
        return fail(err, p, "must be between %s and %s", lo, hi);
    }
    *out = x;
    return 0;
}

/* Identifier-like string: 1..max chars of [A-Za-z0-9_.:-] (plus '/' and '+'
 * when tz is set, for zone names). */
static int get_name(const json_t *obj, const char *key, const char *path, int required, size_t max,
                    int tz, char *out, int *present, pricing_error *err)
{
    char p[PATH_MAX_LEN];
    const json_t *v = json_object_get(obj, key);
    child(p, path, key);
    if (present)
        *present = v != NULL;
    if (!v)
        return required ? fail(err, p, "required") : 0;
    if (!json_is_string(v))
        return fail(err, p, "must be a string, not %s", json_kind(v));
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return fail(err, p, "must be 1 to %zu characters", max);
    for (const char *c = s; *c; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 *c == '_' || *c == '-' || *c == '.' || *c == ':' ||
                 (tz && (*c == '/' || *c == '+'));
        if (!ok)
            return fail(err, p, "character '%c' not allowed", *c);
    }
    if (tz && (s[0] == '/' || strstr(s, "..")))
        return fail(err, p, "not a time-zone name");
    memcpy(out, s, n + 1);
    return 0;
}

static int get_unit(const json_t *obj, const char *path, pricing_unit *out, pricing_error *err)
{
    char p[PATH_MAX_LEN];
    const json_t *v = json_object_get(obj, "unit");
    child(p, path, "unit");
    if (!v)
        return fail(err, p, "required");
    const char *s = json_string_value(v);
    if (s && strcmp(s, "cu") == 0)
        *out = PRICING_UNIT_CU;
    else if (s && strcmp(s, "device_hour") == 0)
        *out = PRICING_UNIT_DEVICE_HOUR;
    else
        return fail(err, p, "must be \"cu\" or \"device_hour\"");
    return 0;
}

static const json_t *get_array(const json_t *obj, const char *key, const char *path, size_t min,
                               size_t max, pricing_error *err)
{
    char p[PATH_MAX_LEN];
    const json_t *v = json_object_get(obj, key);
    child(p, path, key);
    if (!v) {
        fail(err, p, "required");
        return NULL;
    }
    if (!json_is_array(v)) {
        fail(err, p, "must be an array, not %s", json_kind(v));
        return NULL;
    }
    if (json_array_size(v) < min || json_array_size(v) > max) {
        fail(err, p, "must have %zu to %zu elements (got %zu)", min, max, json_array_size(v));
        return NULL;
    }
    return v;
}

static int need_object(const json_t *v, const char *path, pricing_error *err)
{
    if (!json_is_object(v))
        return fail(err, path, "must be an object, not %s", json_kind(v));
    return 0;
}

/* ---- rule parsers --------------------------------------------------------- */

static int parse_match(const json_t *r, const char *path, pricing_match *m, pricing_error *err)
{
    static const char *const keys[] = {"device", "device_class", NULL};
    char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
    const json_t *v = json_object_get(r, "match");
    int has_dev = 0, has_cls = 0;
    char cls[PRICING_NAME_MAX + 1];
    memset(m, 0, sizeof *m);
    m->kind = PRICING_MATCH_ANY;
    if (!v)
        return 0;
    child(p, path, "match");
    if (need_object(v, p, err) || check_keys(v, p, keys, err) ||
        get_name(v, "device", p, 0, CAT_ID_MAX, 0, m->device, &has_dev, err) ||
        get_name(v, "device_class", p, 0, PRICING_NAME_MAX, 0, cls, &has_cls, err))
        return -1;
    if (has_dev && has_cls)
        return fail(err, p, "give either device or device_class, not both");
    if (has_dev)
        m->kind = PRICING_MATCH_DEVICE;
    if (has_cls) {
        child(q, p, "device_class");
        if (cat_kind_parse(cls, &m->device_class) != 0)
            return fail(err, q, "unknown device class \"%s\" (gpu, cpu, npu, accelerator)", cls);
        m->kind = PRICING_MATCH_CLASS;
    }
    return 0;
}

static int parse_prices(const json_t *r, const char *path, pricing_rule *rule, int need_one,
                        pricing_error *err)
{
    static const char *const keys[PRICING_UNIT_COUNT] = {"per_cu", "per_device_hour"};
    for (int u = 0; u < PRICING_UNIT_COUNT; u++)
        if (get_money(r, keys[u], path, 0, 0, PRICING_MAX_PRICE, &rule->u.base.price[u],
                      &rule->u.base.has_price[u], err))
            return -1;
    if (need_one && !rule->u.base.has_price[0] && !rule->u.base.has_price[1])
        return fail(err, path, "a base rule needs per_cu and/or per_device_hour");
    return 0;
}

static int parse_tiers(const json_t *r, const char *path, pricing_rule *rule, pricing_error *err)
{
    static const char *const tkeys[] = {"from", "to", "price", NULL};
    char p[PATH_MAX_LEN], pe[PATH_MAX_LEN], pf[PATH_MAX_LEN];
    const json_t *mode = json_object_get(r, "mode"), *promise;
    child(p, path, "mode");
    if (!mode)
        return fail(err, p, "required");
    if (json_is_string(mode) && strcmp(json_string_value(mode), "graduated") == 0)
        rule->u.tiers.volume = 0;
    else if (json_is_string(mode) && strcmp(json_string_value(mode), "volume") == 0)
        rule->u.tiers.volume = 1;
    else
        return fail(err, p, "must be \"graduated\" or \"volume\"");
    promise = json_object_get(r, "volume_never_above_graduated");
    if (promise) {
        child(p, path, "volume_never_above_graduated");
        if (!json_is_boolean(promise))
            return fail(err, p, "must be true or false");
        rule->u.tiers.promise_volume_le_graduated = json_is_true(promise);
    }
    const json_t *arr = get_array(r, "tiers", path, 1, PRICING_MAX_TIERS, err);
    if (!arr)
        return -1;
    child(p, path, "tiers");
    size_t n = json_array_size(arr);
    int64_t expect = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(arr, i);
        pricing_tier *tier = &rule->u.tiers.t[i];
        int has_to = 0;
        elem(pe, p, i);
        if (need_object(t, pe, err) || check_keys(t, pe, tkeys, err) ||
            get_int(t, "from", pe, 1, 0, PRICING_MAX_QUANTITY, &tier->from, NULL, err) ||
            get_int(t, "to", pe, 0, 1, PRICING_MAX_QUANTITY, &tier->to, &has_to, err) ||
            get_money(t, "price", pe, 1, 0, PRICING_MAX_PRICE, &tier->price, NULL, err))
            return -1;
        child(pf, pe, "from");
        if (tier->from != expect) {
            if (i == 0)
                return fail(err, pf, "the first tier must start at 0 (got %lld)",
                            (long long)tier->from);
            return fail(err, pf, "tiers must be contiguous (expected %lld, got %lld)",
                        (long long)expect, (long long)tier->from);
        }
        child(pf, pe, "to");
        if (i + 1 < n && !has_to)
            return fail(err, pf, "required on every tier but the last");
        if (i + 1 == n && has_to)
            return fail(err, pf, "the last tier must be open-ended (omit \"to\")");
        if (!has_to)
            tier->to = -1;
        else if (tier->to <= tier->from)
            return fail(err, pf, "must be greater than from (%lld)", (long long)tier->from);
        if (rule->u.tiers.promise_volume_le_graduated && i > 0 &&
            tier->price > rule->u.tiers.t[i - 1].price) {
            child(pf, pe, "price");
            return fail(err, pf,
                        "prices must not rise from tier to tier when "
                        "volume_never_above_graduated is true");
        }
        expect = tier->to;
    }
    rule->u.tiers.n = n;
    return 0;
}

static int parse_spot(const json_t *r, const char *path, pricing_rule *rule, pricing_error *err)
{
    static const char *const pkeys[] = {"utilisation_ppm", "price", NULL};
    char p[PATH_MAX_LEN], pe[PATH_MAX_LEN], pf[PATH_MAX_LEN];
    const json_t *arr = get_array(r, "curve", path, 1, PRICING_MAX_SPOT_POINTS, err);
    if (!arr)
        return -1;
    child(p, path, "curve");
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(arr, i);
        pricing_spot_point *pt = &rule->u.spot.p[i];
        elem(pe, p, i);
        if (need_object(t, pe, err) || check_keys(t, pe, pkeys, err) ||
            get_int(t, "utilisation_ppm", pe, 1, 0, PRICING_PPM, &pt->utilisation_ppm, NULL, err) ||
            get_money(t, "price", pe, 1, 0, PRICING_MAX_PRICE, &pt->price, NULL, err))
            return -1;
        if (i > 0 && pt->utilisation_ppm <= rule->u.spot.p[i - 1].utilisation_ppm) {
            child(pf, pe, "utilisation_ppm");
            return fail(
                err, pf, "curve points must have strictly increasing utilisation (%lld after %lld)",
                (long long)pt->utilisation_ppm, (long long)rule->u.spot.p[i - 1].utilisation_ppm);
        }
    }
    rule->u.spot.n = n;
    if (get_money(r, "floor", path, 1, 0, PRICING_MAX_PRICE, &rule->u.spot.floor, NULL, err) ||
        get_money(r, "cap", path, 1, 0, PRICING_MAX_PRICE, &rule->u.spot.cap, NULL, err))
        return -1;
    if (rule->u.spot.cap < rule->u.spot.floor) {
        child(pf, path, "cap");
        return fail(err, pf, "must not be below floor");
    }
    return 0;
}

/* "HH:MM" -> minutes; end_ok allows "24:00". */
static int parse_clock(const json_t *w, const char *key, const char *path, int end_ok, int32_t *out,
                       pricing_error *err)
{
    char p[PATH_MAX_LEN];
    const json_t *v = json_object_get(w, key);
    child(p, path, key);
    if (!v)
        return fail(err, p, "required");
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '9' || s[1] < '0' ||
        s[1] > '9' || s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
        return fail(err, p, "must be a local time \"HH:MM\"");
    int32_t h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || (h == 24 && (m != 0 || !end_ok)))
        return fail(err, p, "hour out of range (00..23%s)", end_ok ? ", or 24:00" : "");
    *out = h * 60 + m;
    return 0;
}

static int parse_windows(const json_t *r, const char *path, pricing_policy *pol, int idx,
                         pricing_error *err)
{
    static const char *const wkeys[] = {"name", "days", "start", "end", "multiplier_ppm", NULL};
    char p[PATH_MAX_LEN], pe[PATH_MAX_LEN], pf[PATH_MAX_LEN], pd[PATH_MAX_LEN];
    pricing_rule *rule = &pol->rules[idx];
    const json_t *arr = get_array(r, "windows", path, 1, PRICING_MAX_WINDOWS, err);
    if (!arr)
        return -1;
    child(p, path, "windows");
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++) {
        const json_t *w = json_array_get(arr, i), *days;
        pricing_window *win = &rule->u.windows.w[i];
        elem(pe, p, i);
        if (need_object(w, pe, err) || check_keys(w, pe, wkeys, err) ||
            get_name(w, "name", pe, 1, PRICING_NAME_MAX, 0, win->name, NULL, err) ||
            parse_clock(w, "start", pe, 0, &win->start_min, err) ||
            parse_clock(w, "end", pe, 1, &win->end_min, err) ||
            get_int(w, "multiplier_ppm", pe, 1, 0, PRICING_MAX_PPM, &win->multiplier_ppm, NULL,
                    err))
            return -1;
        if (win->end_min <= win->start_min) {
            child(pf, pe, "end");
            return fail(err, pf, "must be after start (split a window that crosses midnight)");
        }
        if (!(days = get_array(w, "days", pe, 1, 7, err)))
            return -1;
        child(pf, pe, "days");
        for (size_t d = 0; d < json_array_size(days); d++) {
            const char *s = json_string_value(json_array_get(days, d));
            int day = -1;
            for (int k = 0; k < 7 && s; k++)
                if (strcmp(s, day_names[k]) == 0)
                    day = k;
            elem(pd, pf, d);
            if (day < 0)
                return fail(err, pd, "must be one of mon, tue, wed, thu, fri, sat, sun");
            if (win->days & (1u << day))
                return fail(err, pd, "day %s listed twice", s);
            win->days |= (uint8_t)(1u << day);
        }
        for (int day = 0; day < 7; day++) {
            if (!(win->days & (1u << day)))
                continue;
            for (int32_t m = win->start_min; m < win->end_min; m++) {
                int other = pol->window_at[day][m];
                if (other >= 0)
                    return fail(err, pe, "overlaps windows[%d] (\"%s\") on %s at %02d:%02d", other,
                                rule->u.windows.w[other].name, day_names[day], (int)(m / 60),
                                (int)(m % 60));
                pol->window_at[day][m] = (int8_t)i;
            }
        }
    }
    rule->u.windows.n = n;
    return 0;
}

static int parse_regions(const json_t *r, const char *path, pricing_rule *rule, pricing_error *err)
{
    char p[PATH_MAX_LEN], pe[PATH_MAX_LEN];
    const json_t *m = json_object_get(r, "multipliers"), *v;
    const char *key;
    child(p, path, "multipliers");
    if (!m)
        return fail(err, p, "required");
    if (need_object(m, p, err))
        return -1;
    if (json_object_size(m) < 1 || json_object_size(m) > PRICING_MAX_REGIONS)
        return fail(err, p, "must have 1 to %d regions", PRICING_MAX_REGIONS);
    /* Insert sorted by name so the state's region slots are deterministic. */
    json_object_foreach((json_t *)m, key, v)
    {
        size_t n = rule->u.regions.n, at = n;
        pricing_region_mult rm;
        child(pe, p, key);
        if (strlen(key) == 0 || strlen(key) > PRICING_NAME_MAX)
            return fail(err, pe, "region names are 1 to %d characters", PRICING_NAME_MAX);
        if (json_is_real(v))
            return fail(err, pe, "must be an integer ppm, not a real number");
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > PRICING_MAX_PPM)
            return fail(err, pe, "must be an integer ppm between 0 and %lld",
                        (long long)PRICING_MAX_PPM);
        snprintf(rm.region, sizeof rm.region, "%s", key);
        rm.multiplier_ppm = (int64_t)json_integer_value(v);
        while (at > 0 && strcmp(rule->u.regions.r[at - 1].region, key) > 0)
            at--;
        memmove(&rule->u.regions.r[at + 1], &rule->u.regions.r[at], (n - at) * sizeof rm);
        rule->u.regions.r[at] = rm;
        rule->u.regions.n = n + 1;
    }
    return 0;
}

/* Two rate sources (base/tiers/spot) for the same unit and match collide. */
static int same_match(const pricing_match *a, const pricing_match *b)
{
    if (a->kind != b->kind)
        return 0;
    if (a->kind == PRICING_MATCH_CLASS)
        return a->device_class == b->device_class;
    if (a->kind == PRICING_MATCH_DEVICE)
        return strcmp(a->device, b->device) == 0;
    return 1;
}

static int rule_prices_unit(const pricing_rule *r, pricing_unit u)
{
    if (r->kind == PRICING_RULE_BASE)
        return r->u.base.has_price[u];
    return (r->kind == PRICING_RULE_TIERS || r->kind == PRICING_RULE_SPOT) && r->unit == u;
}

static int check_unique(pricing_policy *pol, int idx, const char *path, pricing_error *err)
{
    const pricing_rule *r = &pol->rules[idx];
    for (int j = 0; j < idx; j++) {
        const pricing_rule *o = &pol->rules[j];
        if (strcmp(o->id, r->id) == 0) {
            char p[PATH_MAX_LEN];
            child(p, path, "id");
            return fail(err, p, "duplicate rule id \"%s\" (also rules[%d])", r->id, j);
        }
        for (int u = 0; u < PRICING_UNIT_COUNT; u++)
            if (rule_prices_unit(r, (pricing_unit)u) && rule_prices_unit(o, (pricing_unit)u) &&
                same_match(&r->match, &o->match))
                return fail(err, path,
                            "a second %s rate for the same match (rules[%d] \"%s\" already "
                            "prices it)",
                            pricing_unit_name((pricing_unit)u), j, o->id);
        if (r->kind == PRICING_RULE_CONTRACT && o->kind == PRICING_RULE_CONTRACT &&
            strcmp(r->u.base.tenant, o->u.base.tenant) == 0)
            return fail(err, path, "a second contract for tenant \"%s\" (rules[%d])",
                        r->u.base.tenant, j);
    }
    return 0;
}

static int only_once(int *slot, int idx, const char *path, const char *what, pricing_error *err)
{
    if (*slot >= 0)
        return fail(err, path, "only one %s rule per policy (rules[%d] is one)", what, *slot);
    *slot = idx;
    return 0;
}

static int parse_rule(const json_t *r, const char *path, pricing_policy *pol, int idx,
                      pricing_error *err)
{
    static const char *const keys[PRICING_RULE_KIND_COUNT][9] = {
        [PRICING_RULE_BASE] = {"id", "kind", "match", "per_cu", "per_device_hour", NULL},
        [PRICING_RULE_TIERS] = {"id", "kind", "match", "unit", "mode", "tiers",
                                "volume_never_above_graduated", NULL},
        [PRICING_RULE_SPOT] = {"id", "kind", "match", "unit", "curve", "floor", "cap", NULL},
        [PRICING_RULE_TIME_WINDOW] = {"id", "kind", "windows", NULL},
        [PRICING_RULE_COMMITMENT] = {"id", "kind", "unit", "quantity", "price", NULL},
        [PRICING_RULE_ALLOWANCE] = {"id", "kind", "unit", "quantity", NULL},
        [PRICING_RULE_REGION] = {"id", "kind", "multipliers", NULL},
        [PRICING_RULE_MINIMUM] = {"id", "kind", "amount", NULL},
        [PRICING_RULE_CONTRACT] = {"id", "kind", "tenant", "discount_ppm", "per_cu",
                                   "per_device_hour", NULL},
        [PRICING_RULE_PLATFORM_FEE] = {"id", "kind", "take_ppm", "payer", NULL},
    };
    char p[PATH_MAX_LEN];
    pricing_rule *rule = &pol->rules[idx];
    const json_t *kind;
    int k = -1;

    if (need_object(r, path, err) ||
        get_name(r, "id", path, 1, PRICING_ID_MAX, 0, rule->id, NULL, err))
        return -1;
    kind = json_object_get(r, "kind");
    child(p, path, "kind");
    if (!kind)
        return fail(err, p, "required");
    for (int i = 0; i < PRICING_RULE_KIND_COUNT && json_is_string(kind); i++)
        if (strcmp(json_string_value(kind), kind_names[i]) == 0)
            k = i;
    if (k < 0)
        return fail(err, p, "unknown rule kind %s%s%s", json_is_string(kind) ? "\"" : "",
                    json_is_string(kind) ? json_string_value(kind) : json_kind(kind),
                    json_is_string(kind) ? "\"" : "");
    rule->kind = (pricing_rule_kind)k;
    if (check_keys(r, path, keys[k], err))
        return -1;
    if ((pol->scope == PRICING_SCOPE_PLATFORM) != (rule->kind == PRICING_RULE_PLATFORM_FEE))
        return fail(err, p, "%s",
                    pol->scope == PRICING_SCOPE_PLATFORM
                        ? "a platform-scope policy holds only platform_fee rules"
                        : "platform_fee belongs in a platform-scope policy");

    switch (rule->kind) {
    case PRICING_RULE_BASE:
        if (parse_match(r, path, &rule->match, err) || parse_prices(r, path, rule, 1, err))
            return -1;
        break;
    case PRICING_RULE_TIERS:
        if (parse_match(r, path, &rule->match, err) || get_unit(r, path, &rule->unit, err) ||
            parse_tiers(r, path, rule, err))
            return -1;
        break;
    case PRICING_RULE_SPOT:
        if (parse_match(r, path, &rule->match, err) || get_unit(r, path, &rule->unit, err) ||
            parse_spot(r, path, rule, err))
            return -1;
        break;
    case PRICING_RULE_TIME_WINDOW:
        if (only_once(&pol->window_rule, idx, path, "time_window", err) ||
            parse_windows(r, path, pol, idx, err))
            return -1;
        break;
    case PRICING_RULE_COMMITMENT:
    case PRICING_RULE_ALLOWANCE:
        if (get_unit(r, path, &rule->unit, err) ||
            get_int(r, "quantity", path, 1, 1, PRICING_MAX_QUANTITY, &rule->u.quota.quantity, NULL,
                    err))
            return -1;
        if (rule->kind == PRICING_RULE_COMMITMENT) {
            if (get_money(r, "price", path, 1, 0, PRICING_MAX_PRICE, &rule->u.quota.price, NULL,
                          err) ||
                only_once(&pol->commitment_rule[rule->unit], idx, path, "commitment per unit", err))
                return -1;
        } else if (only_once(&pol->allowance_rule[rule->unit], idx, path, "allowance per unit",
                             err)) {
            return -1;
        }
        break;
    case PRICING_RULE_REGION:
        if (only_once(&pol->region_rule, idx, path, "region", err) ||
            parse_regions(r, path, rule, err))
            return -1;
        break;
    case PRICING_RULE_MINIMUM:
        if (only_once(&pol->minimum_rule, idx, path, "minimum", err) ||
            get_money(r, "amount", path, 1, 1, PRICING_MAX_PRICE, &rule->u.minimum, NULL, err))
            return -1;
        break;
    case PRICING_RULE_CONTRACT:
        if (get_name(r, "tenant", path, 1, PRICING_ID_MAX, 0, rule->u.base.tenant, NULL, err) ||
            get_int(r, "discount_ppm", path, 0, 0, PRICING_PPM, &rule->u.base.discount_ppm, NULL,
                    err) ||
            parse_prices(r, path, rule, 0, err))
            return -1;
        if (!rule->u.base.discount_ppm && !rule->u.base.has_price[0] && !rule->u.base.has_price[1])
            return fail(err, path, "a contract needs discount_ppm, per_cu or per_device_hour");
        break;
    case PRICING_RULE_PLATFORM_FEE: {
        const json_t *payer = json_object_get(r, "payer");
        if (only_once(&pol->fee_rule, idx, path, "platform_fee", err) ||
            get_int(r, "take_ppm", path, 1, 0, PRICING_PPM, &rule->u.fee.take_ppm, NULL, err))
            return -1;
        child(p, path, "payer");
        if (!payer || (json_is_string(payer) && strcmp(json_string_value(payer), "provider") == 0))
            rule->u.fee.payer = PRICING_PAYER_PROVIDER;
        else if (json_is_string(payer) && strcmp(json_string_value(payer), "tenant") == 0)
            rule->u.fee.payer = PRICING_PAYER_TENANT;
        else
            return fail(err, p, "must be \"provider\" or \"tenant\"");
        break;
    }
    case PRICING_RULE_KIND_COUNT:
        break;
    }
    return check_unique(pol, idx, path, err);
}

pricing_policy *pricing_policy_from_json(const json_t *doc, pricing_error *err)
{
    static const char *const keys[] = {"currency", "scope", "timezone", "rules", NULL};
    pricing_policy *pol;
    const json_t *v, *rules;
    int has_tz = 0;
    char p[PATH_MAX_LEN];

    if (!doc) {
        fail(err, "", "no document");
        return NULL;
    }
    if (need_object(doc, "", err) || check_keys(doc, "", keys, err))
        return NULL;
    pol = calloc(1, sizeof *pol);
    if (!pol) {
        failc(err, PRICING_ERR_NOMEM, "", "out of memory");
        return NULL;
    }
    pol->window_rule = pol->region_rule = pol->minimum_rule = pol->fee_rule = -1;
    for (int u = 0; u < PRICING_UNIT_COUNT; u++)
        pol->allowance_rule[u] = pol->commitment_rule[u] = -1;
    memset(pol->window_at, -1, sizeof pol->window_at);

    v = json_object_get(doc, "currency");
    if (!v || !money_currency_valid(json_string_value(v))) {
        fail(err, "currency", v ? "must be an ISO 4217 code such as \"USD\"" : "required");
        goto bad;
    }
    memcpy(pol->currency, json_string_value(v), 4);
    v = json_object_get(doc, "scope");
    if (v && json_is_string(v) && strcmp(json_string_value(v), "platform") == 0)
        pol->scope = PRICING_SCOPE_PLATFORM;
    else if (v && !(json_is_string(v) && strcmp(json_string_value(v), "provider") == 0)) {
        fail(err, "scope", "must be \"provider\" or \"platform\"");
        goto bad;
    }
    if (get_name(doc, "timezone", "", 0, PRICING_TZ_NAME_MAX, 1, pol->timezone, &has_tz, err))
        goto bad;
    rules = get_array(doc, "rules", "", 1, PRICING_MAX_RULES, err);
    if (!rules)
        goto bad;
    for (size_t i = 0; i < json_array_size(rules); i++) {
        elem(p, "rules", i);
        pol->n_rules = i + 1;
        if (parse_rule(json_array_get(rules, i), p, pol, (int)i, err))
            goto bad;
    }
    if (pol->window_rule >= 0 && !has_tz) {
        fail(err, "timezone", "required by the time_window rule rules[%d]", pol->window_rule);
        goto bad;
    }
    return pol;
bad:
    free(pol);
    return NULL;
}

pricing_policy *pricing_policy_parse(const char *json, size_t len, pricing_error *err)
{
    json_error_t jerr;
    pricing_policy *pol;
    json_t *doc;
    if (!json) {
        fail(err, "", "no document");
        return NULL;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fail(err, "", "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    pol = pricing_policy_from_json(doc, err);
    json_decref(doc);
    return pol;
}

void pricing_policy_free(pricing_policy *p)
{
    free(p);
}

/* ---- canonical rendering ------------------------------------------------ */

static int set_money(json_t *o, const char *key, int64_t micros)
{
    char buf[MONEY_FMT_MAX];
    money_format(micros, buf, sizeof buf);
    return json_object_set_new(o, key, json_string(buf));
}

static int set_int(json_t *o, const char *key, int64_t x)
{
    return json_object_set_new(o, key, json_integer((json_int_t)x));
}

static json_t *match_to_json(const pricing_match *m)
{
    json_t *o = json_object();
    if (o && m->kind == PRICING_MATCH_DEVICE)
        json_object_set_new(o, "device", json_string(m->device));
    if (o && m->kind == PRICING_MATCH_CLASS)
        json_object_set_new(o, "device_class", json_string(cat_kind_name(m->device_class)));
    return o;
}

static json_t *rule_to_json(const pricing_rule *r)
{
    json_t *o = json_object(), *a;
    int rc = 0;
    if (!o)
        return NULL;
    rc |= json_object_set_new(o, "id", json_string(r->id));
    rc |= json_object_set_new(o, "kind", json_string(kind_names[r->kind]));
    if (r->kind == PRICING_RULE_BASE || r->kind == PRICING_RULE_TIERS ||
        r->kind == PRICING_RULE_SPOT)
        rc |= json_object_set_new(o, "match", match_to_json(&r->match));
    if (r->kind == PRICING_RULE_TIERS || r->kind == PRICING_RULE_SPOT ||
        r->kind == PRICING_RULE_COMMITMENT || r->kind == PRICING_RULE_ALLOWANCE)
        rc |= json_object_set_new(o, "unit", json_string(pricing_unit_name(r->unit)));
    switch (r->kind) {
    case PRICING_RULE_CONTRACT:
        rc |= json_object_set_new(o, "tenant", json_string(r->u.base.tenant));
        rc |= set_int(o, "discount_ppm", r->u.base.discount_ppm);
        /* fall through: custom rates */
        __attribute__((fallthrough));
    case PRICING_RULE_BASE:
        if (r->u.base.has_price[PRICING_UNIT_CU])
            rc |= set_money(o, "per_cu", r->u.base.price[PRICING_UNIT_CU]);
        if (r->u.base.has_price[PRICING_UNIT_DEVICE_HOUR])
            rc |= set_money(o, "per_device_hour", r->u.base.price[PRICING_UNIT_DEVICE_HOUR]);
        break;
    case PRICING_RULE_TIERS:
        rc |=
            json_object_set_new(o, "mode", json_string(r->u.tiers.volume ? "volume" : "graduated"));
        rc |= json_object_set_new(o, "volume_never_above_graduated",
                                  json_boolean(r->u.tiers.promise_volume_le_graduated));
        a = json_array();
        for (size_t i = 0; a && i < r->u.tiers.n; i++) {
            json_t *t = json_object();
            if (t) {
                set_int(t, "from", r->u.tiers.t[i].from);
                if (r->u.tiers.t[i].to >= 0)
                    set_int(t, "to", r->u.tiers.t[i].to);
                set_money(t, "price", r->u.tiers.t[i].price);
            }
            rc |= json_array_append_new(a, t);
        }
        rc |= json_object_set_new(o, "tiers", a);
        break;
    case PRICING_RULE_SPOT:
        a = json_array();
        for (size_t i = 0; a && i < r->u.spot.n; i++) {
            json_t *t = json_object();
            if (t) {
                set_int(t, "utilisation_ppm", r->u.spot.p[i].utilisation_ppm);
                set_money(t, "price", r->u.spot.p[i].price);
            }
            rc |= json_array_append_new(a, t);
        }
        rc |= json_object_set_new(o, "curve", a);
        rc |= set_money(o, "floor", r->u.spot.floor);
        rc |= set_money(o, "cap", r->u.spot.cap);
        break;
    case PRICING_RULE_TIME_WINDOW:
        a = json_array();
        for (size_t i = 0; a && i < r->u.windows.n; i++) {
            const pricing_window *w = &r->u.windows.w[i];
            json_t *t = json_object(), *days = json_array();
            char clock[16];
            for (int d = 0; days && d < 7; d++)
                if (w->days & (1u << d))
                    json_array_append_new(days, json_string(day_names[d]));
            if (t) {
                json_object_set_new(t, "name", json_string(w->name));
                json_object_set_new(t, "days", days);
                snprintf(clock, sizeof clock, "%02d:%02d", (int)(w->start_min / 60),
                         (int)(w->start_min % 60));
                json_object_set_new(t, "start", json_string(clock));
                snprintf(clock, sizeof clock, "%02d:%02d", (int)(w->end_min / 60),
                         (int)(w->end_min % 60));
                json_object_set_new(t, "end", json_string(clock));
                set_int(t, "multiplier_ppm", w->multiplier_ppm);
            } else {
                json_decref(days);
            }
            rc |= json_array_append_new(a, t);
        }
        rc |= json_object_set_new(o, "windows", a);
        break;
    case PRICING_RULE_COMMITMENT:
        rc |= set_money(o, "price", r->u.quota.price);
        /* fall through */
        __attribute__((fallthrough));
    case PRICING_RULE_ALLOWANCE:
        rc |= set_int(o, "quantity", r->u.quota.quantity);
        break;
    case PRICING_RULE_REGION:
        a = json_object();
        for (size_t i = 0; a && i < r->u.regions.n; i++)
            set_int(a, r->u.regions.r[i].region, r->u.regions.r[i].multiplier_ppm);
        rc |= json_object_set_new(o, "multipliers", a);
        break;
    case PRICING_RULE_MINIMUM:
        rc |= set_money(o, "amount", r->u.minimum);
        break;
    case PRICING_RULE_PLATFORM_FEE:
        rc |= set_int(o, "take_ppm", r->u.fee.take_ppm);
        rc |= json_object_set_new(
            o, "payer",
            json_string(r->u.fee.payer == PRICING_PAYER_TENANT ? "tenant" : "provider"));
        break;
    case PRICING_RULE_KIND_COUNT:
        break;
    }
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *pricing_policy_to_json(const pricing_policy *p)
{
    json_t *o, *rules;
    int rc = 0;
    if (!p || !(o = json_object()))
        return NULL;
    rc |= json_object_set_new(o, "currency", json_string(p->currency));
    rc |= json_object_set_new(
        o, "scope", json_string(p->scope == PRICING_SCOPE_PLATFORM ? "platform" : "provider"));
    if (p->timezone[0])
        rc |= json_object_set_new(o, "timezone", json_string(p->timezone));
    rules = json_array();
    for (size_t i = 0; rules && i < p->n_rules; i++) {
        json_t *r = rule_to_json(&p->rules[i]);
        rc |= r ? json_array_append_new(rules, r) : -1;
    }
    rc |= json_object_set_new(o, "rules", rules);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *pricing_policy_canonical(const pricing_policy *p)
{
    json_t *j = pricing_policy_to_json(p);
    char *s;
    if (!j)
        return NULL;
    s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* ---- time zones ------------------------------------------------------------ */

pricing_status pricing_tz_init(pricing_tz *tz, const char *name, const pricing_tz_transition *tr,
                               size_t n, pricing_error *err)
{
    char p[PATH_MAX_LEN];
    if (!tz || !name || !name[0] || strlen(name) > PRICING_TZ_NAME_MAX)
        return tzfail(err, "timezone", "a zone name of 1 to %d characters is required",
                      PRICING_TZ_NAME_MAX);
    if (!tr || n == 0)
        return tzfail(err, "transitions", "at least one transition is required");
    /* The path is formatted only on failure: a zone has hundreds of transitions
     * and this runs for every quote. */
    for (size_t i = 0; i < n; i++) {
        if (tr[i].offset_s < -PRICING_MAX_TZ_OFFSET_S || tr[i].offset_s > PRICING_MAX_TZ_OFFSET_S) {
            elem(p, "transitions", i);
            return tzfail(err, p, "offset %d s is beyond +-26 h", (int)tr[i].offset_s);
        }
        if (i > 0 && tr[i].utc_start_ms <= tr[i - 1].utc_start_ms) {
            elem(p, "transitions", i);
            return tzfail(err, p,
                          "transitions must be sorted by strictly increasing utc_start_ms "
                          "(%lld after %lld)",
                          (long long)tr[i].utc_start_ms, (long long)tr[i - 1].utc_start_ms);
        }
    }
    memset(tz, 0, sizeof *tz);
    snprintf(tz->name, sizeof tz->name, "%s", name);
    tz->tr = tr;
    tz->n = n;
    return PRICING_OK;
}

pricing_status pricing_tz_fixed(pricing_tz *tz, const char *name, int32_t offset_s,
                                pricing_error *err)
{
    if (!tz || !name || !name[0] || strlen(name) > PRICING_TZ_NAME_MAX)
        return tzfail(err, "timezone", "a zone name of 1 to %d characters is required",
                      PRICING_TZ_NAME_MAX);
    if (offset_s < -PRICING_MAX_TZ_OFFSET_S || offset_s > PRICING_MAX_TZ_OFFSET_S)
        return tzfail(err, "offset_s", "offset %d s is beyond +-26 h", (int)offset_s);
    memset(tz, 0, sizeof *tz);
    snprintf(tz->name, sizeof tz->name, "%s", name);
    tz->fixed_offset_s = offset_s;
    return PRICING_OK;
}

pricing_status pricing_tz_offset_at(const pricing_tz *tz, int64_t utc_ms, int32_t *offset_s,
                                    int64_t *until_ms)
{
    size_t lo = 0, hi;
    if (!tz || !offset_s || !until_ms)
        return PRICING_ERR_INVALID;
    if (!tz->tr) {
        *offset_s = tz->fixed_offset_s;
        *until_ms = INT64_MAX;
        return PRICING_OK;
    }
    if (tz->n == 0 || utc_ms < tz->tr[0].utc_start_ms)
        return PRICING_ERR_TZ;
    /* Binary search: last transition with utc_start_ms <= utc_ms. */
    hi = tz->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->tr[mid].utc_start_ms <= utc_ms)
            lo = mid;
        else
            hi = mid;
    }
    *offset_s = tz->tr[lo].offset_s;
    *until_ms = lo + 1 < tz->n ? tz->tr[lo + 1].utc_start_ms : INT64_MAX;
    return PRICING_OK;
}
