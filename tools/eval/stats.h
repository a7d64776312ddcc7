/*
 * stats.h - accuracy accumulators for the evaluation tool (floats are fine
 * here: this is statistics about predictions, never a stored quantity).
 *
 * err_acc collects per-job (prediction, actual) pairs and reports the mean
 * absolute error, the median absolute percentage error (actual floored at
 * 1 s so zero-length jobs do not divide by zero), the under-estimation rate
 * and, when upper bounds are fed, their coverage.
 */
#ifndef TALLY_EVAL_STATS_H
#define TALLY_EVAL_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct {
    size_t n, cap, under, covered, bounded;
    double abs_sum;
    double *ape;
} err_acc;

void err_add(err_acc *a, int64_t predicted, int64_t actual);
void err_add_bound(err_acc *a, int64_t upper, int64_t actual);
/* {"mae_s":..,"mdape":..,"under_rate":..[,"p90_coverage":..]}; new reference. */
json_t *err_to_json(err_acc *a);
void err_free(err_acc *a);

/* Coefficient of variation (sample stddev / mean) of v[0..n); 0 if n < 2. */
double stats_cv(const double *v, size_t n);

#endif
