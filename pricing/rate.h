/*
 * rate.h - the rating engine: (policy, usage, period-to-date state, live
 * utilisation) -> explainable line items, their exact total, and the new state.
 *
 * Pure and deterministic: no I/O, no clock (the usage interval carries the
 * time), no allocation, no globals. Same inputs, same bytes out.
 *
 * How a record is rated (docs/pricing.md has the worked detail):
 *  1. The interval [start, end) is cut into segments at the policy's
 *     time-window boundaries (local time from the caller's pricing_tz) and the
 *     record's quantities are spread over the segments in proportion to time.
 *  2. Per unit (CU, device-hour), in time order, the period-to-date quantity
 *     x advances: the first `allowance` units are free, the next `commitment`
 *     units are charged at the committed price, the rest on demand at the rate
 *     source that matches (contract rate > device > device class > any; a
 *     base, tiers or spot rule). Tiers are positioned on x.
 *  3. Time-window, region and contract-discount lines adjust on-demand money;
 *     the platform fee is a share of everything the provider charges.
 * Every line's period-to-date amount is a function of state accumulators,
 * rounded half-even once; a record is charged the difference between the
 * rounded amount after and before it. Hence splitting a record into two
 * consecutive records (same period, state threaded through) charges exactly
 * the same total.
 */
#ifndef TALLY_PRICING_RATE_H
#define TALLY_PRICING_RATE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "policy.h"

#define PRICING_MAX_LINES 96
#define PRICING_DESC_MAX 95
#define PRICING_MAX_SEGMENTS 1000000 /* time segments in one record */

/* One usage record (or a quoted workload). Strings are borrowed. */
typedef struct {
    const char *tenant_id;
    const char *device_id;
    cat_kind device_class;
    int64_t count;        /* devices held (>= 1), for descriptions */
    const char *profile;  /* workload profile name, for descriptions; may be NULL */
    int64_t quantity_mcu; /* work, milli-CU (>= 0) */
    int64_t device_ms;    /* device-time, device-milliseconds (>= 0), usually count x (end-start) */
    int64_t start_ms;     /* interval [start_ms, end_ms), unix ms UTC, end > start */
    int64_t end_ms;
    const char *region; /* may be NULL or "" */
} pricing_usage;

/* Period-to-date state of one tenant on one policy version for one billing
 * period. All zero at the start of a period. The window and region slots are
 * indexed like the policy's windows / regions (so a state belongs to one
 * policy version). Callers store it and hand it back unchanged. */
typedef struct {
    int64_t quantity[PRICING_UNIT_COUNT];     /* mCU, device-ms used so far */
    int64_t window_base[PRICING_MAX_WINDOWS]; /* on-demand amount in each window */
    int64_t region_base[PRICING_MAX_REGIONS]; /* on-demand + window amount per region */
    int64_t discount_base;                    /* amount the contract discount applies to */
    int64_t fee_base;                         /* provider charges the platform fee applies to */
    int64_t charged;                          /* sum of all line amounts so far */
} pricing_state;

typedef enum {
    PRICING_LINE_FREE = 0,          /* free allowance used (amount 0) */
    PRICING_LINE_COMMITMENT,        /* usage within the commitment, at the committed price */
    PRICING_LINE_USAGE,             /* on-demand usage (base, tier band, spot or contract rate) */
    PRICING_LINE_VOLUME_REPRICE,    /* volume tier reached: earlier usage re-priced */
    PRICING_LINE_WINDOW,            /* time-of-day multiplier on on-demand money */
    PRICING_LINE_REGION,            /* region multiplier */
    PRICING_LINE_DISCOUNT,          /* contract discount (negative) */
    PRICING_LINE_PLATFORM_FEE,      /* take rate on provider charges */
    PRICING_LINE_COMMITMENT_TRUEUP, /* unused commitment at period end */
    PRICING_LINE_MINIMUM            /* top-up to the minimum charge of an order */
} pricing_line_kind;
const char *pricing_line_kind_name(pricing_line_kind k);

typedef enum {
    PRICING_QTY_MCU = 0,   /* quantity in mCU; unit_price per CU */
    PRICING_QTY_DEVICE_MS, /* quantity in device-ms; unit_price per device-hour */
    PRICING_QTY_MONEY      /* quantity is an amount in micro-units; unit_price is a ppm factor */
} pricing_qty_unit;

typedef struct {
    pricing_line_kind kind;
    pricing_rule_kind rule_kind;
    int rule_index; /* index in policy->rules (platform policy for the fee) */
    char rule_id[PRICING_ID_MAX + 1];
    int detail; /* tier band, window or region index; -1 if none */
    char description[PRICING_DESC_MAX + 1];
    pricing_qty_unit qty_unit;
    int64_t quantity;
    int64_t unit_price; /* micro-units per CU/device-hour, or ppm (PRICING_QTY_MONEY) */
    int64_t amount;     /* micro-units, may be negative */
} pricing_line;

typedef struct {
    char currency[4];
    size_t n_lines;
    pricing_line lines[PRICING_MAX_LINES];
    int64_t total; /* exactly the sum of lines[].amount: what the tenant pays */
    /* Platform fee when the provider pays it: not a tenant charge, so not in
     * lines/total; the provider's net is total - tenant fee - provider_fee. */
    int has_provider_fee;
    pricing_line provider_fee;
    int64_t provider_net;
    /* Spot: whether a spot rule priced this record, the utilisation used and
     * the resulting unit price per unit. */
    int spot_used[PRICING_UNIT_COUNT];
    int64_t utilisation_ppm;
    int64_t spot_price[PRICING_UNIT_COUNT];
    /* Derived period-to-date figures after this record. */
    int64_t free_used[PRICING_UNIT_COUNT];
    int64_t commitment_used[PRICING_UNIT_COUNT];
    size_t segments;     /* time segments the interval was cut into */
    pricing_state state; /* the state to store for the next record */
} pricing_result;

typedef struct {
    const pricing_policy *policy;   /* provider policy (required) */
    const pricing_policy *platform; /* platform policy with the fee; may be NULL */
    const pricing_tz *tz;           /* required when policy has a time_window rule */
    const pricing_usage *usage;
    const pricing_state *state; /* NULL = start of period */
    int64_t utilisation_ppm;    /* live utilisation 0..10^6 of the matching capacity; -1 unknown */
} pricing_input;

/* Rate one usage record. On success fills *out (lines, total, new state);
 * on error returns the status, fills err (path names the input field) and
 * leaves *out unspecified. Errors: PRICING_ERR_INVALID (bad usage fields,
 * currency mismatch with the platform policy), PRICING_ERR_RANGE (empty
 * interval, utilisation needed but unknown), PRICING_ERR_NO_RATE (no rule
 * prices the device), PRICING_ERR_TZ (zone missing/not covering the
 * interval), PRICING_ERR_OVERFLOW. */
pricing_status pricing_rate(const pricing_input *in, pricing_result *out, pricing_error *err);

/* Period-end true-up of reserved commitments: for each unit with a
 * commitment, the unused part (committed - used) at the committed price, as
 * the difference between the whole commitment's rounded amount and what usage
 * already paid, so usage + true-up = round(committed x price) exactly. Applies
 * the platform fee like any charge. state is the period's final state. */
pricing_status pricing_commitment_trueup(const pricing_policy *policy,
                                         const pricing_policy *platform, const pricing_state *state,
                                         pricing_result *out, pricing_error *err);

/* Minimum charge per order, applied once at order settlement (never per usage
 * record, so splitting records cannot change it): if the order's charges
 * total less than the policy's minimum, one MINIMUM line tops it up. The fee
 * applies to the top-up; state (may be NULL) is the period state to thread the
 * fee accumulator through. A policy without a minimum yields no lines. */
pricing_status pricing_minimum_trueup(const pricing_policy *policy, const pricing_policy *platform,
                                      int64_t order_total, const pricing_state *state,
                                      pricing_result *out, pricing_error *err);

/* Check that a result is internally consistent: total == sum of lines, no
 * overflow. Returns 1 when it is. For tests and defensive callers. */
int pricing_result_consistent(const pricing_result *r);

#endif
