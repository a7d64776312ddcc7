/*
 * idem_write.h - one idempotent, transactional write: the pattern every
 * mutating POST follows.
 *
 *   BEGIN; claim the Idempotency-Key; SAVEPOINT; run the operation;
 *   success   -> store the response, COMMIT
 *   4xx       -> ROLLBACK TO SAVEPOINT (nothing changed), store the problem
 *                response (a permanent failure replays as itself), COMMIT
 *   5xx       -> ROLLBACK everything, reply with the operation's problem (not
 *                permanent: a retry under the same key runs again)
 *   db error  -> ROLLBACK everything (a transient failure may be retried
 *                under the same key)
 *
 * The operation runs on a database thread and must not reply; it fills the
 * status and the response body (a resource, or a problem+json body).
 */
#ifndef TALLY_IDEM_WRITE_H
#define TALLY_IDEM_WRITE_H

#include "db.h"
#include "http.h"
#include "idempotency.h"

#include <jansson.h>

typedef struct idem_write idem_write;
/* Returns DB_OK (status and body set) or a db_status (< 0). */
typedef int (*idem_write_op)(db_conn *db, void *arg, int *status, json_t **body);

/*
 * idem_write_submit - run op(arg) as an idempotent write for this request and
 * reply with its outcome. free_arg (may be NULL) releases arg afterwards.
 * Replays carry Idempotent-Replayed: true. Replies 4xx itself when the
 * Idempotency-Key header is malformed.
 */
void idem_write_submit(http_ctx *c, idem_write_op op, void *arg, void (*free_arg)(void *));

/* idem_write_submit_then - the same; committed(c) runs on the loop after a 2xx
 * outcome commits, before the reply (e.g. to drop a cache entry). */
void idem_write_submit_then(http_ctx *c, idem_write_op op, void *arg, void (*free_arg)(void *),
                            void (*committed)(http_ctx *c));

/*
 * idem_write_submit_autocommit - for an operation whose only write is its final
 * statement (decided after all its reads): without an Idempotency-Key it runs
 * without an explicit transaction, saving the BEGIN and COMMIT round trips.
 * With a key it runs exactly like idem_write_submit.
 */
void idem_write_submit_autocommit(http_ctx *c, idem_write_op op, void *arg,
                                  void (*free_arg)(void *));

/* idem_problem - a problem body for an operation to return with its status. */
json_t *idem_problem(problem_type t, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
