/*
 * place.h - placement: filter -> score -> rank, with a reason for every offer
 * filtered out.
 *
 * Pure and deterministic: no I/O, no clock (the job carries its start time),
 * no globals. The same inputs give the same ranking byte for byte: scores are
 * int64 micro-units and ties are broken by offer id (strcmp), then by input
 * index. Floats appear only inside the latency and risk terms, which are
 * rounded to integer micro-units before they are added.
 *
 * Filter, in this order (the first failing check is the reason):
 *   down / blocked -> device (id or kind) -> memory -> region -> residency
 *   -> devices fit the node shape -> capacity free for the whole window
 *   -> deadline met at p90 -> price (callback) -> price cap
 *   -> (when weights.cost_slack_ppm > 0) price within the slack of the
 *      cheapest feasible offer: a budget rule, "at most 5 % over the
 *      cheapest" is cost_slack_ppm = 50 000; latency and risk then choose
 *      among what is left.
 * Score (micro-units, lower is better):
 *   price + latency_term + risk_term, where
 *   latency_term = round(latency_ms x weights.latency_micro_per_ms)
 *   risk_term    = round((price + weights.failure_cost_micro) x risk_ppm / 10^6)
 *   risk_ppm     = min(10^6, offer.failure_ratio_ppm
 *                            + offer.consecutive_failures x weights.risk_per_failure_ppm)
 * i.e. the risk term is the expected cost of the job failing there (paying
 * for it again plus the tenant's stated cost of a failure).
 *
 * Latency model (sched_model): the job's response latency on an offer is
 * base(data_region, offer_region) from the RTT matrix, plus the excess the
 * probes see over the matrix: max(0, srtt - base(probe_region, offer_region))
 * when the offer has a probed RTT and the prober's region is known. Without a
 * matrix entry the probed RTT itself is used; without either,
 * model.unknown_ms. Matrix lookups are symmetrised (mean of both directions).
 *
 * Durations: when job.work_mcu > 0 and the offer has a CU rate, the p50 is
 * ceil(work_mcu x 3600 000 / (rate_mcu_per_device_hour x devices)) ms and the
 * p90 is p50 x job.p90_ms / job.p50_ms (the metering estimate's spread; x1
 * when the job gives none). Otherwise job.p50_ms / job.p90_ms are used as is.
 *
 * Ownership: sched_place fills a sched_result whose arrays it allocates (or
 * reuses from the previous call on the same result); the caller frees them
 * with sched_result_free. Strings in offers/jobs are
 * borrowed for the call only; results copy the offer id.
 */
#ifndef TALLY_SCHEDULER_PLACE_H
#define TALLY_SCHEDULER_PLACE_H

#include <stddef.h>
#include <stdint.h>

#include "latency.h"

#define SCHED_ID_MAX 63
#define SCHED_REASON_MAX 159
#define SCHED_MAX_TAGS 8

typedef enum { SCHED_UP = 0, SCHED_DOWN = 1 } sched_health;

/* Kind of device a job asks for when it names no device id (matches
 * cat_kind's names: "gpu", "cpu", "npu", "accelerator"). */
typedef struct {
    const char *id;          /* offer id, e.g. "off_..." (required) */
    const char *region;      /* e.g. "eu-west-1" (required) */
    const char *zone;        /* may be NULL */
    const char *device_id;   /* catalog id, e.g. "nvidia-h100-sxm" */
    const char *device_kind; /* "gpu", "cpu", ... (may be NULL) */
    int64_t devices_per_node;
    int64_t nodes;
    int64_t free_devices;             /* free for the job's whole window (caller computes) */
    int64_t available_from_ms;        /* earliest start, unix ms (0 = now) */
    int64_t memory_gib;               /* per device */
    const char *tags[SCHED_MAX_TAGS]; /* residency tags, NULL-terminated if fewer */
    sched_health health;
    int32_t consecutive_failures;
    int32_t failure_ratio_ppm;           /* recent probe failures / probes, x 10^6 */
    double srtt_ms;                      /* smoothed probed RTT; <= 0 = not probed yet */
    int64_t rate_mcu_per_device_hour;    /* CU rate of one device for the job's profile */
    int64_t price_micro_per_device_hour; /* list price, for sched_price_device_hours */
    void *user;                          /* caller's handle, untouched */
} sched_offer;

typedef struct {
    const char *profile;                /* workload profile, for the price callback */
    int64_t work_mcu;                   /* work in milli-CU; 0 = use p50_ms/p90_ms */
    int64_t p50_ms, p90_ms;             /* duration estimate (p90 >= p50 > 0 when work_mcu == 0) */
    int64_t devices;                    /* device count (>= 1) */
    const char *device_id;              /* exact device, or NULL */
    const char *device_kind;            /* kind when no device id, or NULL = any */
    int64_t min_memory_gib;             /* per device, 0 = any */
    const char *const *allowed_regions; /* NULL-terminated list, NULL = any */
    const char *tags[SCHED_MAX_TAGS];   /* residency tags the offer must all carry */
    int64_t deadline_ms;                /* unix ms; 0 = none: start + p90 <= deadline */
    int64_t max_price_micro;            /* 0 = no cap */
    const char *data_region;            /* region of the data/users, may be NULL */
    const char *const *blocked;         /* NULL-terminated offer ids to avoid, may be NULL */
    int64_t start_ms;                   /* requested start, unix ms */
} sched_job;

/* Objective weights. Units are money per unit of the penalised quantity. */
typedef struct {
    int64_t latency_micro_per_ms; /* micro-units charged per ms of response latency */
    int64_t failure_cost_micro;   /* tenant's cost of a failed run beyond re-paying it */
    int32_t risk_per_failure_ppm; /* risk added per consecutive probe failure */
    int64_t cost_slack_ppm;       /* > 0: drop offers priced over cheapest x (1 + slack / 10^6) */
} sched_weights;

typedef struct {
    const sched_latency *matrix; /* may be NULL */
    const char *probe_region;    /* where the prober runs, may be NULL */
    double unknown_ms;           /* latency assumed when nothing is known */
} sched_model;

/* What the price callback gets besides offer and job: the fit found so far. */
typedef struct {
    int64_t devices;
    int64_t start_ms;
    int64_t p50_ms, p90_ms; /* expected durations on this offer */
} sched_fit;

/* Price the job on an offer: total in micro-units into *total_micro, 0 on
 * success; non-zero (with a reason in err) makes the offer infeasible. */
typedef int (*sched_price_fn)(void *ctx, const sched_offer *offer, const sched_job *job,
                              const sched_fit *fit, int64_t *total_micro, char *err, size_t errlen);

/* Built-in price: devices x p50 x offer.price_micro_per_device_hour, rounded
 * half-even once (ctx unused). For the eval, bench and tests; the server
 * prices with the rating engine. */
int sched_price_device_hours(void *ctx, const sched_offer *offer, const sched_job *job,
                             const sched_fit *fit, int64_t *total_micro, char *err, size_t errlen);

typedef enum {
    SCHED_OK = 0,
    SCHED_REJ_DOWN,
    SCHED_REJ_BLOCKED,
    SCHED_REJ_DEVICE,
    SCHED_REJ_MEMORY,
    SCHED_REJ_REGION,
    SCHED_REJ_RESIDENCY,
    SCHED_REJ_SHAPE,
    SCHED_REJ_CAPACITY,
    SCHED_REJ_DEADLINE,
    SCHED_REJ_PRICE_ERROR,
    SCHED_REJ_PRICE_CAP,
    SCHED_REJ_OVERFLOW,
    SCHED_REJ_COST_SLACK
} sched_reject;
/* Stable machine-readable name: "down", "blocked", "device", ... */
const char *sched_reject_name(sched_reject r);

typedef struct {
    size_t offer_index; /* into the input offers */
    char offer_id[SCHED_ID_MAX + 1];
    int64_t devices;
    int64_t start_ms, finish_p50_ms, finish_p90_ms;
    int64_t price_micro;
    double latency_ms;
    int64_t latency_term_micro;
    int32_t risk_ppm;
    int64_t risk_term_micro;
    int64_t score_micro; /* price + latency_term + risk_term */
} sched_placement;

typedef struct {
    size_t offer_index;
    char offer_id[SCHED_ID_MAX + 1];
    sched_reject code;
    char reason[SCHED_REASON_MAX + 1]; /* human-readable, names the numbers */
} sched_rejection;

typedef struct {
    sched_placement *ranked; /* best first */
    size_t n_ranked;
    sched_rejection *rejected; /* in input order */
    size_t n_rejected;
    /* buffers kept between calls (a placement with 10^4 offers would
     * otherwise page-fault fresh memory in every call) */
    size_t cap;
    void *keys;
} sched_result;

#define SCHED_RESULT_INIT                                                                          \
    {                                                                                              \
        NULL, 0, NULL, 0, 0, NULL                                                                  \
    }

typedef struct {
    const sched_offer *offers;
    size_t n_offers;
    const sched_job *job;
    sched_weights weights;
    sched_model model;
    sched_price_fn price; /* NULL = sched_price_device_hours */
    void *price_ctx;
} sched_input;

/* Rank every feasible offer for in->job. *out must be SCHED_RESULT_INIT or a
 * result of an earlier call, whose buffers are reused (results of that call
 * are overwritten). Returns 0 and fills *out; -1 on a bad job or input (err
 * names the field) or allocation failure, with n_ranked = n_rejected = 0.
 * Either way the caller frees *out with sched_result_free when done. */
int sched_place(const sched_input *in, sched_result *out, char *err, size_t errlen);
void sched_result_free(sched_result *r);

/* Latency the model predicts for the job's data region on an offer, in ms. */
double sched_latency_for(const sched_model *m, const char *data_region, const sched_offer *offer);

/* Default weights: 1000 micro-units (0.001) per ms, failure cost 0,
 * 250 000 ppm per consecutive failure (so 4 in a row = certain failure), no
 * cost slack. */
sched_weights sched_weights_default(void);

#endif
