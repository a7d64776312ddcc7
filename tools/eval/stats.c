/*
 * stats.c - accuracy accumulators and the coefficient of variation.
 * Invariant: ape holds exactly n values; under/covered count jobs among n
 * (covered among `bounded`).
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

void err_add(err_acc *a, int64_t predicted, int64_t actual)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 1024;
        double *bigger = realloc(a->ape, cap * sizeof *bigger);
        if (!bigger)
            abort(); /* evaluation tool: out of memory is fatal */
        a->ape = bigger;
        a->cap = cap;
    }
    double err = fabs((double)predicted - (double)actual);
    a->abs_sum += err;
    a->ape[a->n++] = err / (double)(actual > 1 ? actual : 1);
    a->under += predicted < actual;
}

void err_add_bound(err_acc *a, int64_t upper, int64_t actual)
{
    a->bounded++;
    a->covered += actual <= upper;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double round6(double x)
{
    return round(x * 1e6) / 1e6;
}

json_t *err_to_json(err_acc *a)
{
    double n = a->n ? (double)a->n : 1;
    json_t *o = json_object();
    json_object_set_new(o, "mae_s", json_real(round(a->abs_sum / n * 10) / 10));
    json_object_set_new(o, "mdape", json_real(round6(median(a->ape, a->n))));
    json_object_set_new(o, "under_rate", json_real(round6((double)a->under / n)));
    if (a->bounded)
        json_object_set_new(o, "p90_coverage",
                            json_real(round6((double)a->covered / (double)a->bounded)));
    return o;
}

void err_free(err_acc *a)
{
    free(a->ape);
    a->ape = NULL;
    a->n = a->cap = 0;
}

double stats_cv(const double *v, size_t n)
{
    if (n < 2)
        return 0;
    double mean = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        mean += v[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - mean) * (v[i] - mean);
    return mean > 0 ? sqrt(ss / (double)(n - 1)) / mean : 0;
}
