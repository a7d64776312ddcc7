/*
 * latency.h - the inter-region round-trip-time model the scheduler scores with.
 *
 * A sched_latency is a square matrix of measured RTTs in milliseconds between
 * named regions (at most SCHED_MAX_REGIONS, names up to SCHED_REGION_MAX
 * bytes). Cells are ordered pairs (src -> dst); a cell never set is unknown
 * (sched_latency_rtt returns -1). Lookups use the pair as given; callers that
 * want a symmetric figure use sched_latency_rtt_sym (mean of both directions
 * when both are known, else the one that is).
 *
 * Parsing takes the CSV bytes (no I/O here: the caller reads the file) in one
 * of three shapes, recognised from the header row:
 *   long    "src,dst,<ms>"              e.g. aws_interregion_p50_..._.csv
 *   dated   "...,snapshot_date,...,src,dst,...,<ms>" (IBM VPC): only the
 *           rows of the latest snapshot_date are loaded
 *   matrix  "src\dst,R1,R2,..." then one row per src
 * The RTT column of the long/dated shapes is the last column. Values are
 * decimal numbers >= 0 and < 100 000 ms; anything else is an error naming
 * the line. Blank lines and lines starting with '#' are skipped.
 *
 * Ownership: sched_latency_new / sched_latency_parse return a model the caller
 * frees with sched_latency_free. Region names returned are borrowed.
 */
#ifndef TALLY_SCHEDULER_LATENCY_H
#define TALLY_SCHEDULER_LATENCY_H

#include <stddef.h>

#define SCHED_MAX_REGIONS 64
#define SCHED_REGION_MAX 47  /* bytes of a region name, without the NUL */
#define SCHED_RTT_MAX_MS 1e5 /* 100 s: anything above is a data error */

typedef struct sched_latency sched_latency;

/* An empty model; NULL on allocation failure. */
sched_latency *sched_latency_new(void);
void sched_latency_free(sched_latency *lat);

/* Parse CSV text of len bytes (see above). NULL on error with a message in
 * err (errlen bytes, may be 0). */
sched_latency *sched_latency_parse(const char *text, size_t len, char *err, size_t errlen);

/* Index of a region, adding it when add is non-zero; -1 when unknown (or the
 * model is full / the name is empty or too long). */
int sched_latency_region(sched_latency *lat, const char *name, int add);
/* Index of a known region without adding; -1 when unknown. */
int sched_latency_find(const sched_latency *lat, const char *name);
size_t sched_latency_count(const sched_latency *lat);
const char *sched_latency_name(const sched_latency *lat, size_t i);

/* Set src -> dst to ms (0 <= ms < SCHED_RTT_MAX_MS), adding the regions.
 * Returns 0, or -1 for a bad value or a full model. */
int sched_latency_set(sched_latency *lat, const char *src, const char *dst, double ms);

/* RTT src -> dst by index in ms; -1 when unknown or an index is out of range. */
double sched_latency_rtt(const sched_latency *lat, int src, int dst);
/* Mean of both directions when both are known, else the known one, else -1. */
double sched_latency_rtt_sym(const sched_latency *lat, int a, int b);

#endif
