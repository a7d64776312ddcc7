/*
 * sched_external.h - an external scheduler's ranking, with the built-in one as
 * the fallback.
 *
 * When TALLY_SCHEDULER_URL is set (an http:// URL), every placement posts the
 * job and the offers the built-in scheduler found feasible (with their price,
 * latency and risk terms) as JSON and waits at most TALLY_SCHEDULER_TIMEOUT_MS
 * (default 500) for {"ranking": ["off_…", …]}. The answer reorders the feasible
 * offers: those it lists first, in its order; the feasible offers it omits
 * after them, in the built-in order (an external scheduler can reorder, never
 * make an infeasible offer feasible nor lose capacity). On a timeout, a
 * connection or HTTP error or a malformed answer the built-in ranking stands,
 * and the placement says so. Counters in /metrics.
 *
 * The call blocks its thread (a private event loop): call it on a database
 * thread, never on a request loop.
 */
#ifndef TALLY_SCHED_EXTERNAL_H
#define TALLY_SCHED_EXTERNAL_H

#include "place.h"

#include <jansson.h>
#include <stdio.h>

/* sched_external_check - 0 when TALLY_SCHEDULER_URL and TALLY_SCHEDULER_TIMEOUT_MS are
 * unset or valid; -1 with the reason in err otherwise (the server refuses to start). */
int sched_external_check(char *err, size_t errlen);

/* sched_external_url - the configured URL, or NULL when none. */
const char *sched_external_url(void);

/*
 * sched_external_rank - ask the external scheduler to order res->ranked
 * (built from in). On success reorders res->ranked in place and returns 0; on
 * failure leaves it and returns -1 with the reason in err.
 */
int sched_external_rank(const sched_input *in, sched_result *res, char *err, size_t errlen);

/* sched_external_metrics - Prometheus counters (a metrics section; arg unused). */
void sched_external_metrics(void *arg, FILE *out);

#endif
