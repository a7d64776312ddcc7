/*
 * quote_writer.h - group insert of signed quotes: the rows of concurrent
 * requests go to PostgreSQL in one multi-row INSERT.
 *
 * A request hands its signed quote row to the writer and gets its completion
 * on its own event loop once the row is stored (or the insert failed). The
 * writer keeps one queue per process: the first row queued while no insert is
 * scheduled submits one database job; that job stores what is queued, up to
 * QW_BATCH_MAX rows per binary COPY (its own transaction, committed durably:
 * one WAL flush for the batch), completes those rows, and goes on with what
 * was queued meanwhile until the queue is empty. Batches form by themselves
 * under load, and a lone request waits for nothing but its own insert.
 *
 * Invariant: a row's done callback runs exactly once, on the loop it was
 * submitted from, after its row committed and was flushed to disk (status
 * DB_OK) or failed: a 201 is never sent for a quote a crash could lose.
 */
#ifndef TALLY_QUOTE_WRITER_H
#define TALLY_QUOTE_WRITER_H

#include "db.h"

#include <stdint.h>

struct event_base;
struct event;

typedef struct qw_row qw_row;
typedef void (*qw_done_fn)(qw_row *row);

/* One quote row. The caller owns it (and the strings) until done runs. */
struct qw_row {
    const char *id, *tenant, *policy_id, *currency, *document, *kid, *signature, *expires_at;
    int64_t expires_ms; /* expires_at in ms since the Unix epoch (the COPY sends this) */
    int policy_version;
    int64_t total_micros;
    /* outcome: DB_OK, a db_status, or QW_NO_TENANT (foreign key: unknown tenant) */
    int status;
    qw_done_fn done;
    void *arg;
    /* writer-private */
    struct event *ev;
    qw_row *next;
};

#define QW_NO_TENANT 1
#define QW_BATCH_MAX 128 /* rows per COPY */

/* qw_submit - queue row; row->done(row) later runs on base. 0, or -1 (out of
 * memory: nothing queued, done will not run). */
int qw_submit(db_pool *pool, struct event_base *base, qw_row *row);

/* qw_insert - (database thread) store rows[0..n): one INSERT for a single
 * row (inside the caller's transaction, if any), else one binary COPY in its
 * own transaction, falling back to row-by-row INSERTs when one row breaks it.
 * Per-row outcomes in rows[i]->status. Returns DB_OK or the db_status that
 * failed the whole batch. */
int qw_insert(db_conn *db, qw_row **rows, int n);

#endif
