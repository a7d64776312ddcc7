/*
 * example.h - a reference policy that uses every rule kind, and a fixed
 * rating workload over it, for docs, tests and bench/ ("ratings per second
 * with every rule kind"). Pure: no I/O, no clock; the caller times it.
 */
#ifndef TALLY_PRICING_EXAMPLE_H
#define TALLY_PRICING_EXAMPLE_H

#include <stdint.h>

#include "rate.h"

/* The example provider policy (every provider rule kind; zone Europe/Berlin)
 * and platform policy (5 % fee paid by the provider), as JSON text. */
const char *pricing_example_policy_json(void);
const char *pricing_example_platform_json(void);

/* Parse both example policies once, then rate n usage records that rotate
 * over devices (graduated tiers, spot, base per device-hour), tenants (with
 * and without a contract), regions, and times across the peak and night
 * windows and a DST transition; the period state is threaded through and
 * reset every 1000 records; every 10th record closes an order with the
 * minimum-charge true-up and every 1000th a commitment true-up. *checksum
 * (if non-NULL) receives the sum of all totals, so a benchmark can print it
 * and the compiler cannot drop the work. Only the n ratings count toward n. */
pricing_status pricing_example_workload(int64_t n, int64_t *checksum, pricing_error *err);

#endif
