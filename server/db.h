/*
 * db.h - a pool of PostgreSQL connections, each owned by a dedicated thread.
 *
 * Event-loop threads never touch libpq. A handler submits a unit of work (a
 * function that runs on a database thread with a connection, usually a whole
 * transaction) and a completion callback; the completion runs back on the
 * submitting event loop. Work that fails with a serialization failure or a
 * deadlock is rolled back and run again; work whose very first statement found
 * the connection dead (the database restarted) is run again on a fresh
 * connection. See docs/architecture.md for why threads and not async libpq.
 *
 * Each connection is a small state machine: DOWN -> (connect) -> IDLE <-> BUSY,
 * BUSY -> BROKEN on a connection-level failure, BROKEN -> reconnect on next use
 * (at most one attempt per backoff interval, so a dead database fails fast).
 */
#ifndef TALLY_DB_H
#define TALLY_DB_H

#include <libpq-fe.h>

struct event_base;

typedef struct db_pool db_pool;
typedef struct db_conn db_conn;

enum db_status {
    DB_OK = 0,
    DB_UNAVAILABLE = -1, /* cannot reach the database, or timed out in the queue: 503 */
    DB_FAILED = -2,      /* an unexpected SQL error: a bug, 500 */
    DB_RETRY = -3,       /* serialization failure or deadlock: the pool re-runs the work */
};

/* Work runs on a database thread; it returns a db_status or a value >= 0 of its own. */
typedef int (*db_work_fn)(db_conn *c, void *arg);
/* Completion runs on the event loop the work was submitted from. */
typedef void (*db_done_fn)(int status, void *arg);

typedef struct db_stats {
    int size, in_use, idle, broken, queued;
    unsigned long long jobs, failures, retries, reconnects;
} db_stats;

/* db_pool_start - start size threads with one connection each (connected lazily). */
db_pool *db_pool_start(const char *conninfo, int size, int timeout_ms);
/* db_pool_stop - finish queued work, join the threads, close connections, free. */
void db_pool_stop(db_pool *p);
/* db_pool_submit - queue work; done(status, arg) later runs on base. 0 or -1 (OOM). */
int db_pool_submit(db_pool *p, struct event_base *base, db_work_fn work, db_done_fn done,
                   void *arg);
void db_pool_stats(db_pool *p, db_stats *out);

/* Completion of a single-statement read: r (DB_OK only) belongs to the callee. */
typedef void (*db_query_done_fn)(int status, PGresult *r, void *arg);
/*
 * db_pool_submit_query - one read-only statement (sql with static storage, at
 * most 8 text parameters, copied). A database thread sends the reads queued
 * together in one round trip (pipeline mode). done runs on base with the
 * result, or with DB_UNAVAILABLE / DB_FAILED and NULL.
 */
int db_pool_submit_query(db_pool *p, struct event_base *base, const char *sql, int nparams,
                         const char *const *params, db_query_done_fn done, void *arg);

/*
 * db_connect - a synchronous connection for command-line tools (migrate, admin),
 * which are not event loops. Returns NULL and fills err on failure.
 */
db_conn *db_connect(const char *conninfo, char *err, size_t errlen);
void db_close(db_conn *c);

/*
 * db_exec - run one statement with text parameters (NULL = SQL NULL). sql must be
 * a string with static storage (a literal): it is prepared once per connection,
 * keyed by its address. Returns the result (caller PQclear()s) or NULL on error,
 * with the error classified in db_last_status() and logged.
 */
PGresult *db_exec(db_conn *c, const char *sql, int nparams, const char *const *params);
/* db_exec_dynamic - like db_exec for SQL built at run time: not prepared. */
PGresult *db_exec_dynamic(db_conn *c, const char *sql, int nparams, const char *const *params);
/* db_command - db_exec for statements without rows; returns DB_OK or a db_status. */
int db_command(db_conn *c, const char *sql, int nparams, const char *const *params);

int db_begin(db_conn *c);  /* BEGIN ISOLATION LEVEL READ COMMITTED */
int db_commit(db_conn *c); /* DB_OK, or the classified failure */
void db_rollback(db_conn *c);

/* The status and SQLSTATE of the last failed call on c ("" when none). */
int db_last_status(const db_conn *c);
const char *db_last_sqlstate(const db_conn *c);
const char *db_last_message(const db_conn *c);
/* Direct access for COPY and other rare cases. */
PGconn *db_pgconn(db_conn *c);

#endif
