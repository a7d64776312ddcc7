/*
 * reports_stream.h - a report as a stream: a server-side cursor on the reports
 * pool, fetched in chunks on a database thread, each chunk formatted there (CSV
 * or JSON) and handed to the request's loop, which sends it as one HTTP chunk.
 *
 * Memory is constant whatever the row count: at most three chunks exist at a
 * time (one on the socket, one handed over, one being filled), because the
 * database thread waits for the loop to take a chunk before handing the next,
 * and the loop takes the next only when the socket has taken the last. The
 * loop never waits: it only moves buffers. A client that disconnects stops
 * the fetching at the next chunk. An error before the first chunk is a
 * problem+json reply; after it the connection is dropped without the last
 * chunk, so a cut-off report never looks complete.
 *
 * Every report reads one snapshot (REPEATABLE READ, READ ONLY: also valid on
 * a hot standby) and says whether it was served by a replica (the JSON field
 * "served_by_replica" and the header X-Tally-Replica: true|false).
 *
 * Rows come either from a cursor (declare_sql, FETCHed 1 000 rows at a time
 * into a PGresult: reports with totals kept while they stream) or, faster,
 * from COPY ... TO STDOUT (FORMAT binary) (copy_sql): rows arrive as a byte
 * stream of binary tuples (integers as 8 big-endian bytes, text as is), read
 * without blocking on the database thread, decoded and formatted there. COPY
 * takes no bind parameters, so a copy_sql reads its parameters from settings
 * local to the report's transaction (REPORT_PARAM), set from the spec's
 * params with set_config() - values are never spliced into SQL text.
 *
 * Shutdown: reports_stream_shutdown() makes every report stop within about
 * 100 ms (its reply is cut off: no last chunk, the connection closed), and
 * reports that have not started yet answer 503.
 */
#ifndef TALLY_REPORTS_STREAM_H
#define TALLY_REPORTS_STREAM_H

#include "http.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

/* How a column's text from PostgreSQL becomes a cell. */
typedef enum {
    RCOL_TEXT,    /* text: CSV field / JSON string */
    RCOL_INT,     /* integer: digits / JSON number */
    RCOL_MONEY,   /* int64 micro-units: exact decimal string, 6 places */
    RCOL_MCU,     /* milli-CU: CU as an exact decimal string, 3 places */
    RCOL_HOURS,   /* milliseconds: hours, 6 places (half-even) */
    RCOL_BOOL,    /* t/f: true/false */
    RCOL_TIME_MS, /* unix milliseconds: ISO-8601 UTC */
} report_col_kind;

typedef struct report_col {
    const char *name; /* CSV header and JSON key: a plain identifier */
    report_col_kind kind;
} report_col;

typedef enum { REPORT_CSV, REPORT_JSON } report_format;

/* Totals kept while rows stream (on the database thread), written after them. */
typedef struct report_acc_ops {
    void *(*start)(void);
    int (*row)(void *acc, PGresult *r, int i); /* 0, or -1 to fail the report */
    json_t *(*finish)(void *acc);              /* fields to add after "rows" (new ref) */
    void (*free)(void *acc);
} report_acc_ops;

#define REPORT_MAX_PARAMS 8

typedef struct report_spec {
    const char *name;        /* "usage": the JSON "report" field, the CSV file name */
    const char *declare_sql; /* static: "DECLARE rpt NO SCROLL CURSOR FOR SELECT ..." */
    const char *copy_sql;    /* static, instead of declare_sql: "COPY (SELECT ...) TO STDOUT
                                (FORMAT binary)" with REPORT_PARAM(n); non-text columns int8
                                (or int4/int2), bool for RCOL_BOOL; acc must be NULL */
    const char *setup_sql;   /* static, may be NULL: run in the report's transaction first
                                (e.g. a planner setting: "SET LOCAL enable_sort = off") */
    const report_col *cols;  /* one per output column, in order */
    size_t ncols;
    int nparams;
    const char *params[REPORT_MAX_PARAMS]; /* copied; NULL = SQL NULL */
    report_format format;
    json_t *meta;              /* JSON only: fields before "rows" (stolen; may be NULL) */
    const report_acc_ops *acc; /* JSON only; may be NULL */
} report_spec;

/* The cursor every declare_sql must name. */
#define REPORT_DECLARE "DECLARE rpt NO SCROLL CURSOR FOR "

/* Parameter n (1-based) of a copy_sql as the SQL type `type`, NULL when the
 * spec's param is NULL; evaluated once per statement (an InitPlan), so it is
 * usable as an index bound and costs nothing per row. */
#define REPORT_PARAM(n, type)                                                                      \
    "(SELECT nullif(current_setting('tally.report_" #n "'), '')::" type ")"
#define REPORT_COPY "COPY ("
#define REPORT_COPY_END ") TO STDOUT (FORMAT binary)"

/* reports_stream_shutdown - stop every running report (the server is stopping);
 * safe from any thread. */
void reports_stream_shutdown(void);

/* reports_stream - run spec on the reports pool and stream the reply to c. */
void reports_stream(http_ctx *c, report_spec *spec);

#endif
