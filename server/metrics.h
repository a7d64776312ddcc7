/*
 * metrics.h - Prometheus counters and histograms for the service.
 *
 * Counters are fixed arrays of atomics indexed by route and status class, so
 * recording a request takes no lock. Rendering produces the text exposition
 * format (version 0.0.4).
 */
#ifndef TALLY_METRICS_H
#define TALLY_METRICS_H

#include "db.h"
#include "router.h"

#include <stddef.h>
#include <stdio.h>

typedef struct metrics metrics;

/* metrics_new - counters for a route table (borrowed; must outlive the metrics). */
metrics *metrics_new(const route *routes, size_t nroutes);
void metrics_free(metrics *m);
/* metrics_observe - one finished request; route_index -1 for unmatched paths. */
void metrics_observe(metrics *m, int route_index, int status, double seconds);
/* metrics_count_auth_cache - a hit or a miss of the API-key cache. */
void metrics_count_auth_cache(metrics *m, int hit);
/* metrics_add_section - fn(arg, out) appends its own gauges to every rendering,
 * after the built-in ones, in the order added (at most METRICS_MAX_SECTIONS; add
 * them before serving). 0, or -1 when full. The marketplace's offers and probes
 * and the external scheduler use it. */
#define METRICS_MAX_SECTIONS 8
typedef void (*metrics_section_fn)(void *arg, FILE *out);
int metrics_add_section(metrics *m, metrics_section_fn fn, void *arg);
/* metrics_render - the exposition text; caller frees. */
char *metrics_render(metrics *m, const db_stats *db, size_t *len);

#endif
