/*
 * swf.h - reader for Standard Workload Format traces (plain or gzip).
 *
 * A trace is a sequence of job records: 18 whitespace-separated numbers per
 * line, ';' lines are header comments, -1 means "not recorded". swf_read
 * returns every well-formed record in file order; lines that are not 18
 * numbers are counted in *malformed and otherwise ignored.
 */
#ifndef TALLY_EVAL_SWF_H
#define TALLY_EVAL_SWF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t id, submit, wait, run, alloc_procs, req_procs, req_time, status;
    int64_t user, group, exe, queue, partition;
} swf_job;

/* Read path (gzip or plain). On success returns 0 and *jobs (caller frees
 * with free()), *n and *malformed; on I/O failure returns -1. */
int swf_read(const char *path, swf_job **jobs, size_t *n, size_t *malformed);

#endif
