/*
 * reports_copy.h - a report's rows from COPY ... TO STDOUT (FORMAT binary),
 * read without blocking on a database thread.
 *
 * PostgreSQL sends the rows of a binary COPY as a byte stream: a 19-byte
 * header (signature, flags, extension length), then per row a 16-bit field
 * count and per field a 32-bit length (-1 = NULL) and that many bytes, and a
 * 16-bit -1 at the end, all big-endian. Rows need not align with libpq's
 * messages, so a row cut between messages is kept until it is whole.
 *
 * The database thread waits for input in POLL slices (poll() on the
 * connection's socket), asking the caller between slices whether to stop;
 * stopping cancels the statement (PQcancel) and drains the connection, so it
 * can be rolled back and reused.
 */
#ifndef TALLY_REPORTS_COPY_H
#define TALLY_REPORTS_COPY_H

#include <libpq-fe.h>
#include <stdint.h>

#define REPORT_COPY_MAX_FIELDS 32

typedef struct report_copy_ops {
    /* one row: n fields, vals[i] / lens[i] (lens[i] < 0: NULL). 0, or a status to stop with */
    int (*row)(void *arg, int n, const unsigned char *const *vals, const int32_t *lens);
    /* after each message's rows: 0, or a status to stop with (e.g. hand a full buffer over) */
    int (*batch)(void *arg);
    /* between waits: nonzero to stop (the status returned) */
    int (*stop)(void *arg);
} report_copy_ops;

/*
 * reports_copy_run - send sql (a "COPY (...) TO STDOUT (FORMAT binary)" with
 * static storage) on pg, inside the caller's transaction, and feed its rows to
 * ops. Returns 0 (DB_OK) when every row was read, a db_status (db.h) when
 * PostgreSQL or the connection failed (logged), or the nonzero status a
 * callback stopped with (the COPY then cancelled and drained).
 */
int reports_copy_run(PGconn *pg, const char *sql, const report_copy_ops *ops, void *arg);

#endif
