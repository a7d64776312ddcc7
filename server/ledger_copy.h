/*
 * ledger_copy.h - bulk writes of ledger rows: COPY ... FROM STDIN in
 * PostgreSQL's binary format: no SQL text to parse per row, no JSON to decode,
 * no hex to undo; the server copies each field's bytes into the tuple.
 *
 * A ledger_copy accumulates rows in memory (the header is written by
 * ledger_copy_init); ledger_copy_send streams them on a connection that is
 * inside a transaction and appends the trailer. Field order and types must
 * match the COPY statement's column list: text (UTF-8, no NUL), int2, int4,
 * int8 and bytea are supported. The set-based statements that follow the
 * COPYs go out together with COMMIT in one pipelined round trip
 * (ledger_pipe_run).
 *
 * Invariant: data always holds a valid prefix of a binary COPY stream: the
 * header, then whole rows; an out-of-memory append sets oom and the send then
 * fails without writing anything.
 */
#ifndef TALLY_LEDGER_COPY_H
#define TALLY_LEDGER_COPY_H

#include "canon.h"
#include "db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ledger_copy {
    ledger_buf buf;
    size_t rows;
    bool oom;
} ledger_copy;

/* ledger_copy_init - empty stream (header only). Free with ledger_copy_free. */
void ledger_copy_init(ledger_copy *c);
void ledger_copy_free(ledger_copy *c);

/* ledger_copy_row - start a row of nfields fields. */
void ledger_copy_row(ledger_copy *c, int nfields);
/* Fields. text_or_null writes SQL NULL for NULL or "". null writes an SQL NULL of any type. */
void ledger_copy_null(ledger_copy *c);
void ledger_copy_text(ledger_copy *c, const char *s);
void ledger_copy_text_or_null(ledger_copy *c, const char *s);
void ledger_copy_i16(ledger_copy *c, int16_t v);
void ledger_copy_i32(ledger_copy *c, int32_t v);
void ledger_copy_i64(ledger_copy *c, int64_t v);
void ledger_copy_bytes(ledger_copy *c, const void *p, size_t n);

/* ledger_copy_send - run sql ("COPY t (cols) FROM STDIN (FORMAT binary)") on
 * db and stream c. Nothing is sent when c has no rows. Returns DB_OK or a
 * db_status: DB_RETRY on a serialization failure, deadlock or unique
 * violation (23505, e.g. a racing second reversal), DB_UNAVAILABLE when the
 * connection failed or a timeout hit, DB_FAILED otherwise (logged). */
int ledger_copy_send(db_conn *db, const char *sql, ledger_copy *c);

/* One statement of a pipeline: sql with at most one text parameter. */
typedef struct ledger_stmt {
    const char *sql;
    const char *param; /* NULL: no parameter */
} ledger_stmt;

/* ledger_pipe_run - send st[0..n) in ONE round trip (libpq pipeline mode, one
 * sync) and read every result. PostgreSQL runs them in order; after the first
 * failure the rest are skipped. Ending the list with COMMIT commits in the same
 * round trip (a failed statement leaves the transaction aborted: the caller
 * rolls back). Returns DB_OK or the first failure's db_status, classified like
 * ledger_copy_send. */
int ledger_pipe_run(db_conn *db, const ledger_stmt *st, size_t n);
/* ledger_pipe_query - ledger_pipe_run that also keeps each statement's result:
 * res[i] (the caller PQclear()s each; NULL for a statement that failed or was
 * skipped). On a failure every res[i] is cleared and NULL. */
int ledger_pipe_query(db_conn *db, const ledger_stmt *st, size_t n, PGresult **res);

#endif
