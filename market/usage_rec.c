/*
 * usage_rec.c - parse, canonicalise, sign and verify usage records; interval rules.
 */
#include "usage_rec.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_codes[USAGE_REASON_COUNT] = {
    [USAGE_OK] = "accepted",
    [USAGE_INVALID] = "invalid_record",
    [USAGE_BAD_SIGNATURE] = "bad_signature",
    [USAGE_UNKNOWN_KEY] = "unknown_key",
    [USAGE_KEY_REVOKED] = "key_revoked",
    [USAGE_UNKNOWN_ORDER] = "unknown_order",
    [USAGE_ORDER_CLOSED] = "order_closed",
    [USAGE_DEVICE_MISMATCH] = "device_mismatch",
    [USAGE_COUNT_EXCEEDED] = "count_exceeded",
    [USAGE_OUTSIDE_WINDOW] = "outside_window",
    [USAGE_IN_FUTURE] = "in_future",
    [USAGE_OVERLAP] = "overlap",
    [USAGE_EXCEEDS_HOLD] = "exceeds_hold",
    [USAGE_ID_REUSED] = "record_id_reused",
    [USAGE_UNKNOWN_RECORD] = "unknown_record",
    [USAGE_ALREADY_REVERSED] = "already_reversed",
    [USAGE_METERING] = "metering_error",
    [USAGE_PRICING] = "pricing_error",
    [USAGE_DUPLICATE_IN_BATCH] = "duplicate_in_batch",
};

const char *usage_reason_code(usage_reason r)
{
    return (unsigned)r < USAGE_REASON_COUNT ? reason_codes[r] : "invalid_record";
}

static usage_reason fail(char *err, size_t errlen, const char *fmt, const char *field)
{
    snprintf(err, errlen, fmt, field);
    return USAGE_INVALID;
}

/* Printable ASCII without '"' and '\\': the canonical form needs no escapes. */
static int plain_string(const json_t *v, size_t min, size_t max)
{
    const char *s;
    size_t n;

    if (!json_is_string(v))
        return 0;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n < min || n > max || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

static usage_reason get_string(const json_t *rec, const char *field, int required, char *out,
                               size_t cap, char *err, size_t errlen)
{
    const json_t *v = json_object_get(rec, field);

    out[0] = '\0';
    if (!v) {
        if (required)
            return fail(err, errlen, "'%s' is required", field);
        return USAGE_OK;
    }
    if (!plain_string(v, 1, cap - 1))
        return fail(err, errlen,
                    "'%s' must be a non-empty string of printable ASCII without quotes or "
                    "backslashes, within its length limit",
                    field);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return USAGE_OK;
}

static usage_reason get_int(const json_t *rec, const char *field, int required, int64_t min,
                            int64_t max, int64_t *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(rec, field);

    if (!v) {
        if (required)
            return fail(err, errlen, "'%s' is required", field);
        return USAGE_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return fail(err, errlen, "'%s' must be an integer in range", field);
    *out = json_integer_value(v);
    return USAGE_OK;
}

/* A profile is a class name, or an object of plain strings and integers. */
static int valid_profile(const json_t *p)
{
    const char *k;
    const json_t *v;

    if (json_is_string(p))
        return plain_string(p, 1, 31);
    if (!json_is_object(p) || json_object_size(p) == 0 || json_object_size(p) > 4)
        return 0;
    json_object_foreach((json_t *)p, k, v)
    {
        if (!json_is_integer(v) && !plain_string(v, 1, 31))
            return 0;
    }
    return 1;
}

static usage_reason check_fields(const json_t *rec, char *err, size_t errlen)
{
    static const char *const known[] = {"record_id", "order_id", "device",   "count",    "start_ms",
                                        "end_ms",    "profile",  "work_mcu", "reverses", NULL};
    const char *k;
    const json_t *v;

    if (!json_is_object(rec)) {
        snprintf(err, errlen, "'record' must be an object");
        return USAGE_INVALID;
    }
    json_object_foreach((json_t *)rec, k, v)
    {
        int ok = 0;
        for (const char *const *n = known; *n && !ok; n++)
            ok = !strcmp(*n, k);
        if (!ok) {
            snprintf(err, errlen, "unknown field '%.64s' in the record", k);
            return USAGE_INVALID;
        }
    }
    return USAGE_OK;
}

static usage_reason parse_fields(const json_t *rec, usage_rec *out, char *err, size_t errlen)
{
    usage_reason r;
    const json_t *p;

    if ((r = check_fields(rec, err, errlen)) ||
        (r = get_string(rec, "record_id", 1, out->record_id, sizeof out->record_id, err, errlen)) ||
        (r = get_string(rec, "order_id", 1, out->order_id, sizeof out->order_id, err, errlen)) ||
        (r = get_string(rec, "device", 1, out->device, sizeof out->device, err, errlen)) ||
        (r = get_string(rec, "reverses", 0, out->reverses, sizeof out->reverses, err, errlen)) ||
        (r = get_int(rec, "count", 1, 1, USAGE_MAX_COUNT, &out->count, err, errlen)) ||
        (r = get_int(rec, "start_ms", 1, 0, INT64_MAX / 4, &out->start_ms, err, errlen)) ||
        (r = get_int(rec, "end_ms", 1, 1, INT64_MAX / 4, &out->end_ms, err, errlen)) ||
        (r = get_int(rec, "work_mcu", 0, 0, INT64_MAX / 4, &out->work_mcu, err, errlen)))
        return r;
    if (!strncmp(out->record_id, USAGE_RESERVED_PREFIX, strlen(USAGE_RESERVED_PREFIX)) ||
        !strncmp(out->reverses, USAGE_RESERVED_PREFIX, strlen(USAGE_RESERVED_PREFIX)))
        return fail(err, errlen, "record ids starting with '%s' are the service's own",
                    USAGE_RESERVED_PREFIX);
    if (out->end_ms <= out->start_ms)
        return fail(err, errlen, "'%s' must be after start_ms", "end_ms");
    if (out->end_ms - out->start_ms > USAGE_MAX_SPAN_MS)
        return fail(err, errlen, "'%s' is more than 31 days after start_ms", "end_ms");
    if (out->count > INT64_MAX / (out->end_ms - out->start_ms))
        return fail(err, errlen, "'%s' x duration overflows", "count");
    p = json_object_get(rec, "profile");
    if (!p || !valid_profile(p))
        return fail(err, errlen,
                    "'%s' must be a workload class name or an object of strings and integers",
                    "profile");
    out->profile = json_incref((json_t *)p);
    return USAGE_OK;
}

usage_reason usage_rec_parse(const json_t *record, usage_rec *out, char *err, size_t errlen)
{
    unsigned char h[32];
    usage_reason r;

    memset(out, 0, sizeof *out);
    out->work_mcu = -1;
    if ((r = parse_fields(record, out, err, errlen)) != USAGE_OK)
        return r;
    out->canonical = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
    if (!out->canonical) {
        snprintf(err, errlen, "the record cannot be encoded");
        return USAGE_INVALID;
    }
    out->canonical_len = strlen(out->canonical);
    crypto_generichash(h, sizeof h, (const unsigned char *)out->canonical, out->canonical_len, NULL,
                       0);
    sodium_bin2hex(out->hash_hex, sizeof out->hash_hex, h, sizeof h);
    return USAGE_OK;
}

void usage_rec_clear(usage_rec *r)
{
    json_decref(r->profile);
    free(r->canonical);
    r->profile = NULL;
    r->canonical = NULL;
}

/* domain || canonical, malloc'd. */
static unsigned char *signed_message(const usage_rec *r, size_t *len)
{
    size_t dl = sizeof USAGE_DOMAIN - 1;
    unsigned char *m = malloc(dl + r->canonical_len);

    if (!m)
        return NULL;
    memcpy(m, USAGE_DOMAIN, dl);
    memcpy(m + dl, r->canonical, r->canonical_len);
    *len = dl + r->canonical_len;
    return m;
}

int usage_rec_verify(const usage_rec *r, const unsigned char pk[32], const char *sig_hex)
{
    unsigned char sig[crypto_sign_BYTES], *m;
    size_t bin = 0, len = 0;
    int ok;

    if (!sig_hex || strlen(sig_hex) != USAGE_SIG_HEX || !r->canonical ||
        sodium_hex2bin(sig, sizeof sig, sig_hex, USAGE_SIG_HEX, NULL, &bin, NULL) != 0 ||
        bin != sizeof sig)
        return 0;
    if (!(m = signed_message(r, &len)))
        return 0;
    ok = crypto_sign_verify_detached(sig, m, len, pk) == 0;
    free(m);
    return ok;
}

void usage_rec_sign(const usage_rec *r, const unsigned char sk[64], char sig_hex[USAGE_SIG_HEX + 1])
{
    unsigned char sig[crypto_sign_BYTES], *m;
    size_t len = 0;

    sig_hex[0] = '\0';
    if (!(m = signed_message(r, &len)))
        return;
    crypto_sign_detached(sig, NULL, m, len, sk);
    free(m);
    sodium_bin2hex(sig_hex, USAGE_SIG_HEX + 1, sig, sizeof sig);
}

int usage_span_overlaps(const usage_span *spans, size_t n, int64_t s, int64_t e)
{
    for (size_t i = 0; i < n; i++)
        if (spans[i].start_ms < e && s < spans[i].end_ms)
            return 1;
    return 0;
}

usage_reason usage_window_check(int64_t order_start_ms, int64_t order_end_ms, int64_t start_ms,
                                int64_t end_ms, int64_t now_ms)
{
    int64_t overrun_end = order_end_ms + (order_end_ms - order_start_ms);

    if (end_ms > now_ms + USAGE_CLOCK_SKEW_MS)
        return USAGE_IN_FUTURE;
    if (start_ms < order_start_ms - USAGE_CLOCK_SKEW_MS || end_ms > overrun_end)
        return USAGE_OUTSIDE_WINDOW;
    return USAGE_OK;
}
