/*
 * validate.c - field checks with problem replies.
 * Invariant: a failed check has replied exactly once; a passed one has not.
 */
#include "validate.h"
#include "ids.h"
#include "money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int val_known_fields(http_ctx *c, json_t *body, const char *const *allowed)
{
    const char *key;
    json_t *v;

    if (!body)
        return 0;
    json_object_foreach(body, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(*a, key)) {
                ok = 1;
                break;
            }
        if (!ok) {
            http_reply_problemf(c, PROB_VALIDATION, key, "unknown field '%s'", key);
            return -1;
        }
    }
    return 0;
}

/* The value of body[field]: 1 present (in *v), 0 absent and optional, -1 replied. */
static int val_present(http_ctx *c, json_t *body, const char *field, int required, json_t **v)
{
    *v = body ? json_object_get(body, field) : NULL;
    if (*v && !json_is_null(*v))
        return 1;
    if (!required)
        return 0;
    http_reply_problemf(c, PROB_VALIDATION, field, "'%s' is required", field);
    return -1;
}

static int printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

int val_string(http_ctx *c, json_t *body, const char *field, int required, size_t maxlen,
               const char **out)
{
    json_t *v;
    const char *s;
    int rc;

    *out = NULL;
    if ((rc = val_present(c, body, field, required, &v)) <= 0)
        return rc;
    if (!json_is_string(v)) {
        http_reply_problemf(c, PROB_VALIDATION, field, "'%s' must be a string", field);
        return -1;
    }
    s = json_string_value(v);
    if (json_string_length(v) == 0 || json_string_length(v) > maxlen) {
        http_reply_problemf(c, PROB_VALIDATION, field, "'%s' must have 1 to %zu bytes", field,
                            maxlen);
        return -1;
    }
    if (strlen(s) != json_string_length(v) || !printable(s)) {
        http_reply_problemf(c, PROB_VALIDATION, field, "'%s' must not contain control characters",
                            field);
        return -1;
    }
    *out = s;
    return 0;
}

int val_query_limit(http_ctx *c, int def, int max, int *out)
{
    const char *s = http_query(c, "limit");
    char *end;
    long v;

    *out = def;
    if (!s)
        return 0;
    v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > max) {
        http_reply_problemf(c, PROB_VALIDATION, "limit", "'limit' must be an integer from 1 to %d",
                            max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int val_query_id(http_ctx *c, const char *name, const char *prefix, const char **out)
{
    const char *s = http_query(c, name);

    *out = NULL;
    if (!s)
        return 0;
    if (!ids_valid(s, prefix)) {
        http_reply_problemf(c, PROB_VALIDATION, name, "'%s' must be an id of the form %s_…", name,
                            prefix);
        return -1;
    }
    *out = s;
    return 0;
}

int val_path_id(http_ctx *c, const char *name, const char *prefix, const char **out)
{
    const char *s = http_param(c, name);

    *out = NULL;
    if (!s || !ids_valid(s, prefix)) {
        http_reply_problemf(c, PROB_NOT_FOUND, NULL, "no %s with id '%s'",
                            !strcmp(prefix, "acc") ? "account" : prefix, s ? s : "");
        return -1;
    }
    *out = s;
    return 0;
}

int val_int(http_ctx *c, json_t *body, const char *field, int required, long long min,
            long long max, long long def, long long *out)
{
    json_t *v;
    json_int_t n;
    int rc;

    *out = def;
    if ((rc = val_present(c, body, field, required, &v)) <= 0)
        return rc;
    if (!json_is_integer(v)) {
        http_reply_problemf(c, PROB_VALIDATION, field, "'%s' must be an integer%s", field,
                            json_is_real(v) ? " (no fractions or exponents)" : "");
        return -1;
    }
    n = json_integer_value(v);
    if (n < min || n > max) {
        http_reply_problemf(c, PROB_VALIDATION, field, "'%s' must be between %lld and %lld", field,
                            min, max);
        return -1;
    }
    *out = n;
    return 0;
}

int val_require_one(http_ctx *c, json_t *body, const char *const *fields)
{
    int present = 0;
    char list[256] = "";

    for (const char *const *f = fields; *f; f++) {
        json_t *v = body ? json_object_get(body, *f) : NULL;
        if (v && !json_is_null(v))
            present++;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'",
                 f == fields ? "" : (f[1] ? ", " : " or "), *f);
    }
    if (present == 1)
        return 0;
    http_reply_problemf(c, PROB_VALIDATION, fields[0], "give exactly one of %s", list);
    return -1;
}

int val_money(http_ctx *c, json_t *body, const char *field, int required, int sign, int64_t *out)
{
    json_t *v;
    money_status st;
    int rc;

    if ((rc = val_present(c, body, field, required, &v)) <= 0)
        return rc;
    if (!json_is_string(v)) {
        http_reply_problemf(c, PROB_VALIDATION, field,
                            "'%s' must be a decimal string in currency units, e.g. \"12.50\"",
                            field);
        return -1;
    }
    st = money_parse(json_string_value(v), out);
    if (st != MONEY_OK) {
        http_reply_problemf(c, PROB_VALIDATION, field, "'%s': %s", field, money_status_message(st));
        return -1;
    }
    if (*out == 0 || *out == INT64_MIN || (sign > 0 && *out < 0)) {
        http_reply_problemf(c, PROB_VALIDATION, field, "'%s' must be %s", field,
                            sign > 0 ? "greater than zero" : "non-zero");
        return -1;
    }
    return 0;
}
