/*
 * log.h - one JSON object per line on stderr.
 *
 * Lines are assembled in a buffer and written with a single write(2), so lines
 * from several threads never interleave. Levels: error, warn, info.
 */
#ifndef TALLY_LOG_H
#define TALLY_LOG_H

#include <jansson.h>

void log_error(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warn(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* log_json - write fields (borrowed) plus "ts" as one line. */
void log_json(json_t *fields);
/*
 * log_access - the access-log line of one request, formatted without building
 * a JSON tree (it is on every request's path). Strings are escaped; account_id
 * may be NULL.
 */
void log_access(const char *method, const char *route, const char *path, int status, double ms,
                size_t bytes, const char *request_id, const char *account_id);
/*
 * log_access_buffered - on an event-loop thread, keep access lines in a
 * per-thread 32 KiB buffer written out by log_access_flush (which the loop
 * calls every 50 ms and on exit) or when full: one write(2) for many requests
 * instead of one each. Lines of the last 50 ms are lost if the process is
 * killed with SIGKILL; error lines are never buffered.
 */
void log_access_buffered(int on);
void log_access_flush(void);
/* log_set_quiet - suppress info lines (command-line tools). */
void log_set_quiet(int quiet);

#endif
