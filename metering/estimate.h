/*
 * estimate.h - duration estimation (p50, p90) that learns online from
 * completed jobs.
 *
 * A query names up to EST_LEVELS history keys, most specific first (e.g.
 * (tenant, job class, device class, size) -> (tenant, job class) -> tenant);
 * a global pool is always consulted last. Each key keeps a small ring of its
 * most recent completed jobs: actual seconds, the reference the job was
 * submitted with (roofline prior, else the user's estimate) and the log
 * residual of the p50 that was predicted for it. The point estimate is the
 * median of the last few jobs' actual/reference ratios times this job's
 * reference (or their actual seconds when there is no reference); p90 is
 * p50 times the 0.9 quantile of recent residuals. Cold start: the roofline
 * prior, else the user's estimate scaled by the global ratio.
 *
 * State is plain data: est_entry holds only integers and can be persisted
 * row by row (est_entry_to_json / est_entry_from_json). est_predict is a
 * pure function of (state, query); est_learn mutates only the state.
 * Deterministic: integer storage, fixed iteration order, no randomness.
 */
#ifndef TALLY_METERING_ESTIMATE_H
#define TALLY_METERING_ESTIMATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EST_LEVELS 4
#define EST_RING 16
#define EST_HIST_BINS 400                   /* global residual histogram: 50 milli-neper bins */
#define EST_HIST_LO_MNP -10000              /* lowest bin edge, milli-nepers (e^-10) */
#define EST_MAX_SECONDS INT64_C(3155760000) /* 100 years */
#define EST_FORMAT_VERSION 1

typedef enum {
    EST_OK = 0,
    EST_ERR_INVALID,  /* NULL argument or malformed state */
    EST_ERR_NEGATIVE, /* negative seconds */
    EST_ERR_RANGE,    /* seconds above EST_MAX_SECONDS */
    EST_ERR_NOMEM
} est_status;

const char *est_status_code(est_status s);

/* One history key's recent completed jobs (ring, newest at head - 1). */
typedef struct {
    uint64_t key;
    uint32_t n;    /* jobs learned (saturates at UINT32_MAX) */
    uint32_t head; /* next slot to write */
    int64_t actual_s[EST_RING];
    int64_t ref_s[EST_RING];     /* reference at submit; 0 = none */
    int32_t resid_mnp[EST_RING]; /* ln(actual / predicted p50) in milli-nepers */
} est_entry;

/* Tunables (documented defaults from est_params_default; see
 * docs/metering-eval.md for how they were chosen). */
typedef struct {
    uint32_t window;        /* jobs of a key the median looks at (<= EST_RING) */
    uint32_t min_resid;     /* shrinkage: a key with m residuals weighs m/(m+min_resid) */
    uint32_t quantile_ppm;  /* upper quantile, 900000 = p90 */
    int32_t p90_margin_mnp; /* added to the residual quantile, milli-nepers */
    int32_t cold_p90_mnp;   /* p90/p50 when nothing is known: e^0.693 = 2x */
    uint32_t cap_slack_ppm; /* p90 may exceed cap_s by this fraction: kills land late */
} est_params;

typedef struct est_state est_state;

typedef enum {
    EST_EVIDENCE_NONE = 0, /* nothing known: p50 = 0 */
    EST_EVIDENCE_PRIOR,    /* roofline prior (work / rate) */
    EST_EVIDENCE_USER,     /* user's estimate scaled by the global ratio */
    EST_EVIDENCE_HISTORY   /* history of a key (level says which) */
} est_evidence;

typedef struct {
    uint64_t keys[EST_LEVELS]; /* most specific first; 0 = unused slot */
    int64_t prior_s;           /* roofline prior, 0 if unknown */
    int64_t user_s;            /* the user's own estimate, 0 if unknown */
    int64_t cap_s;             /* hard limit (job is killed at it), 0 if none */
} est_query;

typedef struct {
    int64_t p50_s;
    int64_t p90_s;
    est_evidence evidence;
    int level;          /* history level used, -1 for none, EST_LEVELS = global */
    uint32_t n_history; /* completed jobs behind the estimate */
} est_result;

est_params est_params_default(void);

/* New empty state; caller frees with est_free. NULL on allocation failure. */
est_state *est_new(const est_params *params);
void est_free(est_state *st);

/* Stable 64-bit key of a text tuple (FNV-1a over the parts with separators),
 * and a key extended by an integer (e.g. requested processors). Never 0. */
uint64_t est_key(const char *tenant, const char *job_class, const char *device_class);
uint64_t est_key_mix(uint64_t key, int64_t value);

/* Predict for q. Pure. */
est_status est_predict(const est_state *st, const est_query *q, est_result *out);

/* Learn a completed job: the query it was submitted with, the p50 predicted
 * then (for the residual) and its actual run time. */
est_status est_learn(est_state *st, const est_query *q, int64_t predicted_p50_s, int64_t actual_s);

/* Persistence: number of keyed entries, i-th entry (stable until the next
 * est_learn), and JSON for one entry / the global pool. Callers persist each
 * entry as a row and restore with est_restore_entry. */
size_t est_entry_count(const est_state *st);
const est_entry *est_entry_at(const est_state *st, size_t i);
json_t *est_entry_to_json(const est_entry *e);
est_status est_entry_from_json(const json_t *j, est_entry *out);
est_status est_restore_entry(est_state *st, const est_entry *e);
/* The global pool (ratio ring + residual histogram) as JSON and back. */
json_t *est_global_to_json(const est_state *st);
est_status est_global_from_json(est_state *st, const json_t *j);

#endif
