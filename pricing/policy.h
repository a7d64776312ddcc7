/*
 * policy.h - the pricing policy document: model, JSON parsing with precise
 * validation errors, canonical serialisation, and the time-zone offsets the
 * rating engine needs for time-of-day windows.
 *
 * A policy is one JSON object (docs/pricing.md has the full format):
 *   {"currency": "USD", "scope": "provider", "timezone": "Europe/Berlin",
 *    "rules": [{"id": "...", "kind": "base", ...}, ...]}
 * Money is always a JSON *string* holding an exact decimal ("2.50", at most six
 * fraction digits); quantities, ppm factors and minutes are JSON integers. A
 * JSON real anywhere is rejected, as are unknown fields and duplicate keys.
 *
 * Units: a CU quantity is in milli-CU (mCU) and its price is micro-units per
 * CU; a device-time quantity is in device-milliseconds and its price is
 * micro-units per device-hour. ppm factors: 1 000 000 = 1x.
 *
 * Time zones: this module reads no tzdata. A policy names its IANA zone; the
 * caller (server/) resolves that name with the system tzdata into a list of
 * (utc_start_ms, offset_s) transitions covering the interval it rates and
 * hands it over as a pricing_tz. Fixed-offset zones need no list.
 *
 * Ownership: pricing_policy_parse returns a heap policy the caller frees with
 * pricing_policy_free; the policy owns no other memory. pricing_tz borrows the
 * caller's transition array, which must outlive it.
 */
#ifndef TALLY_PRICING_POLICY_H
#define TALLY_PRICING_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"

#define PRICING_ID_MAX 63
#define PRICING_NAME_MAX 31
#define PRICING_TZ_NAME_MAX 63
#define PRICING_MAX_RULES 64
#define PRICING_MAX_TIERS 16
#define PRICING_MAX_WINDOWS 16
#define PRICING_MAX_REGIONS 32
#define PRICING_MAX_SPOT_POINTS 16
#define PRICING_PPM INT64_C(1000000)
#define PRICING_MAX_PPM INT64_C(100000000)       /* multipliers up to 100x */
#define PRICING_MAX_PRICE INT64_C(1000000000000) /* 10^6 major units per CU / device-hour */
#define PRICING_MAX_QUANTITY INT64_C(4000000000000000000) /* mCU or device-ms */
#define PRICING_MAX_TZ_OFFSET_S 93600                     /* +-26 h */

typedef enum {
    PRICING_OK = 0,
    PRICING_ERR_INVALID,  /* malformed document or argument; err names the field */
    PRICING_ERR_OVERFLOW, /* an amount or quantity does not fit int64 */
    PRICING_ERR_NO_RATE,  /* no rule prices this usage (device not covered) */
    PRICING_ERR_TZ,       /* zone missing, transitions unsorted, time not covered */
    PRICING_ERR_RANGE,    /* input outside the accepted range (interval, utilisation) */
    PRICING_ERR_NOMEM
} pricing_status;

/* Error detail: the JSON path of the offending field (or the input field) and
 * a message that starts with that path, e.g.
 * "rules[2].tiers[1].from: tiers must be contiguous (expected 1000000, got 1200000)". */
typedef struct {
    pricing_status code;
    char path[96];
    char message[256];
} pricing_error;

const char *pricing_status_code(pricing_status s); /* stable: "invalid", "overflow", ... */

typedef enum { PRICING_UNIT_CU = 0, PRICING_UNIT_DEVICE_HOUR, PRICING_UNIT_COUNT } pricing_unit;
/* Quantity per priced unit: 1 000 mCU per CU, 3 600 000 device-ms per device-hour. */
int64_t pricing_unit_scale(pricing_unit u);
const char *pricing_unit_name(pricing_unit u); /* "cu", "device_hour" */

typedef enum {
    PRICING_RULE_BASE = 0,
    PRICING_RULE_TIERS,
    PRICING_RULE_SPOT,
    PRICING_RULE_TIME_WINDOW,
    PRICING_RULE_COMMITMENT,
    PRICING_RULE_ALLOWANCE,
    PRICING_RULE_REGION,
    PRICING_RULE_MINIMUM,
    PRICING_RULE_CONTRACT,
    PRICING_RULE_PLATFORM_FEE,
    PRICING_RULE_KIND_COUNT
} pricing_rule_kind;
const char *pricing_rule_kind_name(pricing_rule_kind k);

typedef enum {
    PRICING_MATCH_ANY = 0,
    PRICING_MATCH_CLASS,
    PRICING_MATCH_DEVICE
} pricing_match_kind;

typedef struct {
    pricing_match_kind kind;
    cat_kind device_class;       /* PRICING_MATCH_CLASS */
    char device[CAT_ID_MAX + 1]; /* PRICING_MATCH_DEVICE */
} pricing_match;

typedef struct {
    int64_t from, to; /* [from, to) in the unit's quantity; to = -1 for the open last tier */
    int64_t price;    /* micro-units per CU / device-hour */
} pricing_tier;

typedef struct {
    char name[PRICING_NAME_MAX + 1];
    uint8_t days;               /* bit d set = applies on day d, 0 = Monday .. 6 = Sunday */
    int32_t start_min, end_min; /* local minutes of the day, [start, end), end <= 1440 */
    int64_t multiplier_ppm;
} pricing_window;

typedef struct {
    int64_t utilisation_ppm; /* 0 .. 1 000 000 */
    int64_t price;
} pricing_spot_point;

typedef struct {
    char region[PRICING_NAME_MAX + 1];
    int64_t multiplier_ppm;
} pricing_region_mult;

typedef enum { PRICING_PAYER_PROVIDER = 0, PRICING_PAYER_TENANT } pricing_payer;

typedef struct {
    char id[PRICING_ID_MAX + 1];
    pricing_rule_kind kind;
    pricing_match match; /* base, tiers, spot */
    pricing_unit unit;   /* tiers, spot, commitment, allowance */
    union {
        struct { /* base; contract custom rates */
            int has_price[PRICING_UNIT_COUNT];
            int64_t price[PRICING_UNIT_COUNT];
            char tenant[PRICING_ID_MAX + 1]; /* contract */
            int64_t discount_ppm;            /* contract */
        } base;
        struct {
            int volume; /* 0 graduated, 1 volume */
            int promise_volume_le_graduated;
            size_t n;
            pricing_tier t[PRICING_MAX_TIERS];
        } tiers;
        struct {
            size_t n;
            pricing_spot_point p[PRICING_MAX_SPOT_POINTS];
            int64_t floor, cap;
        } spot;
        struct {
            size_t n;
            pricing_window w[PRICING_MAX_WINDOWS];
        } windows;
        struct {
            int64_t quantity;
            int64_t price; /* commitment only */
        } quota;           /* commitment, allowance */
        struct {
            size_t n;
            pricing_region_mult r[PRICING_MAX_REGIONS]; /* sorted by region name */
        } regions;
        int64_t minimum; /* micro-units per order */
        struct {
            int64_t take_ppm;
            pricing_payer payer;
        } fee;
    } u;
} pricing_rule;

typedef enum { PRICING_SCOPE_PROVIDER = 0, PRICING_SCOPE_PLATFORM } pricing_scope;

typedef struct {
    char currency[4];
    pricing_scope scope;
    char timezone[PRICING_TZ_NAME_MAX + 1]; /* "" when the policy has no windows */
    size_t n_rules;
    pricing_rule rules[PRICING_MAX_RULES];
    /* Derived at parse time (indexes into rules, -1 when absent). */
    int window_rule, region_rule, minimum_rule, fee_rule;
    int allowance_rule[PRICING_UNIT_COUNT], commitment_rule[PRICING_UNIT_COUNT];
    int8_t window_at[7][1440]; /* window index for (day, local minute), -1 none */
} pricing_policy;

/* Parse and validate a policy document of len bytes. Returns a new policy the
 * caller frees with pricing_policy_free, or NULL with err filled
 * (PRICING_ERR_INVALID naming the field; PRICING_ERR_NOMEM). */
pricing_policy *pricing_policy_parse(const char *json, size_t len, pricing_error *err);
/* Same, from an already-parsed JSON value (borrowed). */
pricing_policy *pricing_policy_from_json(const json_t *doc, pricing_error *err);
void pricing_policy_free(pricing_policy *p);

/* Canonical form of a policy: the model rendered back to JSON (money as
 * six-digit decimal strings, defaults made explicit) and dumped with sorted
 * keys, compact. Two documents with the same meaning give the same text.
 * Returns a malloc'd NUL-terminated string the caller free()s; NULL on
 * allocation failure. pricing_policy_to_json returns a new reference. */
json_t *pricing_policy_to_json(const pricing_policy *p);
char *pricing_policy_canonical(const pricing_policy *p);

/* ---- time zones --------------------------------------------------------- */

typedef struct {
    int64_t utc_start_ms; /* first UTC instant (unix ms) the offset applies to */
    int32_t offset_s;     /* local = UTC + offset_s */
} pricing_tz_transition;

typedef struct {
    char name[PRICING_TZ_NAME_MAX + 1];
    const pricing_tz_transition *tr; /* borrowed; NULL for a fixed offset */
    size_t n;
    int32_t fixed_offset_s;
} pricing_tz;

/* A zone from transitions sorted by strictly increasing utc_start_ms, each
 * offset within +-26 h. Instants before tr[0].utc_start_ms are not covered
 * (the rating engine reports PRICING_ERR_TZ): supply a first transition at or
 * before the earliest instant you rate (INT64_MIN is fine). */
pricing_status pricing_tz_init(pricing_tz *tz, const char *name, const pricing_tz_transition *tr,
                               size_t n, pricing_error *err);
/* A fixed-offset zone ("UTC", "Etc/GMT-3", or any name with a constant offset). */
pricing_status pricing_tz_fixed(pricing_tz *tz, const char *name, int32_t offset_s,
                                pricing_error *err);
/* Offset in force at utc_ms and the first instant it stops being in force
 * (INT64_MAX when it never does). PRICING_ERR_TZ when utc_ms is not covered. */
pricing_status pricing_tz_offset_at(const pricing_tz *tz, int64_t utc_ms, int32_t *offset_s,
                                    int64_t *until_ms);

#endif
