/*
 * market_model.h - the scheduler's model of the network, for placements: the
 * inter-region RTT matrix and the region this tallyd probes from.
 *
 * Loaded once per process, on first use: TALLY_LATENCY_MATRIX names a CSV file
 * in a shape scheduler/latency.h reads ("none" disables the matrix; unset uses
 * the AWS inter-region p50 matrix embedded at build time, see
 * scheduler/data/README.md); TALLY_REGION names the region the probes run
 * from (unset: probed RTTs are used as they are). Read-only afterwards.
 */
#ifndef TALLY_MARKET_MODEL_H
#define TALLY_MARKET_MODEL_H

#include "place.h"

/* market_model_get - the process's model (never NULL; the matrix may be NULL
 * when disabled or unreadable, which is logged once). */
const sched_model *market_model_get(void);

#endif
