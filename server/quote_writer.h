/*
 * quote_writer.h - group insert of quotes, signed per batch: the rows of
 * concurrent requests go to PostgreSQL together, under one signature.
 *
 * A request hands its quote row (canonical document and its leaf hash,
 * billing/quote_proof.h) to the writer and gets its completion on its own
 * event loop once the row is stored (or the insert failed). The writer keeps
 * one queue per process: the first row queued while no insert is scheduled
 * submits one database job; that job takes what is queued, up to
 * QW_BATCH_MAX rows, signs the batch (ONE Ed25519 signature over the Merkle
 * root of the rows' leaves; each row gets its audit path), stores the batch
 * row and the quote rows (a binary COPY) in one transaction committed durably
 * (one WAL flush for the batch), completes those rows, and goes on with what
 * was queued meanwhile until the queue is empty. Batches form by themselves
 * under load, and a lone request waits for nothing but its own insert (a
 * batch of one: its root is its leaf, its path empty).
 *
 * Invariant: a row's done callback runs exactly once, on the loop it was
 * submitted from, after its row and its batch committed and were flushed to
 * disk (status DB_OK; the row's batch fields then describe the stored batch)
 * or failed: a 201 is never sent for a quote a crash could lose.
 */
#ifndef TALLY_QUOTE_WRITER_H
#define TALLY_QUOTE_WRITER_H

#include "db.h"

#include <stdint.h>

struct event_base;
struct event;

typedef struct qw_row qw_row;
typedef void (*qw_done_fn)(qw_row *row);

#define QW_HASH_BYTES 32
#define QW_SIG_BYTES 64
#define QW_BATCH_MAX 128 /* rows per batch (one COPY, one signature) */
#define QW_PATH_MAX 8    /* audit path length bound: ceil(log2(QW_BATCH_MAX)) + 1 */

/* One quote row. The caller owns it (and the strings) until done runs. */
struct qw_row {
    const char *id, *tenant, *policy_id, *currency, *document, *expires_at;
    int64_t expires_ms; /* expires_at in ms since the Unix epoch (the COPY sends this) */
    int policy_version;
    int64_t total_micros;
    /* the signing key (kid and 64-byte libsodium secret key; the process's:
     * a batch only takes rows of one key) and the document's leaf hash */
    const char *kid;
    const unsigned char *sk;
    unsigned char leaf[QW_HASH_BYTES];
    /* set by the writer for the batch that stored the row (valid at DB_OK) */
    char batch_id[32];
    unsigned char root[QW_HASH_BYTES], sig[QW_SIG_BYTES];
    uint32_t leaf_index, batch_n, n_path;
    unsigned char path[QW_PATH_MAX][QW_HASH_BYTES]; /* sibling nearest the leaf first */
    /* outcome: DB_OK, a db_status, QW_NO_TENANT (foreign key: unknown tenant) or
     * QW_KEY_RETIRED (the signing key was retired: nothing stored) */
    int status;
    qw_done_fn done;
    void *arg;
    /* writer-private */
    struct event *ev;
    qw_row *next;
};

#define QW_NO_TENANT 1
#define QW_KEY_RETIRED 3 /* 2 is the writer's own "pending" */

/* qw_submit - queue row; row->done(row) later runs on base. 0, or -1 (out of
 * memory: nothing queued, done will not run). */
int qw_submit(db_pool *pool, struct event_base *base, qw_row *row);

/* qw_insert - (database thread) sign and store rows[0..n) (n <= QW_BATCH_MAX,
 * one key): for a single row one INSERT of the row and its batch of one
 * (inside the caller's transaction, if any), else the batch row and one
 * binary COPY in their own transaction, falling back to row-by-row INSERTs
 * (each its own batch of one) when one row breaks it.
 * Per-row outcomes in rows[i]->status. Returns DB_OK or the db_status that
 * failed the whole batch. */
int qw_insert(db_conn *db, qw_row **rows, int n);

#endif
