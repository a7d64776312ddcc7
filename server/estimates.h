/*
 * estimates.h - the duration estimator's learned state in PostgreSQL.
 *
 * A prediction loads the rows for its history keys and the global pool into a
 * fresh est_state, so every process predicts from the same persisted history.
 * Learning (a completed job) locks the global row, loads, learns, and writes
 * the changed rows back in the caller's transaction: concurrent learners from
 * any number of processes serialise there and none is lost.
 */
#ifndef TALLY_ESTIMATES_H
#define TALLY_ESTIMATES_H

#include "db.h"
#include "estimate.h"

#include <stdint.h>

/* estimates_keys - history keys, most specific first:
 * (tenant, class, device, count) -> (tenant, class, device) -> (tenant, class) -> tenant. */
void estimates_keys(const char *tenant, const char *job_class, const char *device, long long count,
                    uint64_t keys[EST_LEVELS]);
/* estimates_load - state holding the rows for keys (+ global); lock: FOR UPDATE. */
int estimates_load(db_conn *db, const uint64_t keys[EST_LEVELS], int lock, est_state **out);
/* estimates_save - write back the rows for keys and the global pool. */
int estimates_save(db_conn *db, const est_state *st, const uint64_t keys[EST_LEVELS]);

#endif
