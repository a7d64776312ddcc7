/*
 * idempotency.h - Idempotency-Key handling for mutating requests.
 *
 * Inside the same database transaction as the change itself: idem_begin claims
 * (caller account, key). A first request proceeds and stores its response with
 * idem_store before COMMIT; a retry with the same key and the same request
 * gets the stored response back; a different request with a used key is
 * refused. A concurrent duplicate waits on the key's row lock until the first
 * commits, then replays. So a retry never applies a change twice.
 */
#ifndef TALLY_IDEMPOTENCY_H
#define TALLY_IDEMPOTENCY_H

#include "db.h"
#include "http.h"

#include <jansson.h>

#define IDEM_KEY_MAX 255

enum idem_result {
    IDEM_NEW = 1,      /* proceed; call idem_store before commit */
    IDEM_REPLAY = 2,   /* *status and *response hold the first response */
    IDEM_MISMATCH = 3, /* the key was used for a different request */
};

typedef struct idem_request {
    char account_id[48];
    char key[IDEM_KEY_MAX + 1]; /* "" when the client sent none */
    char request_hash[65];
} idem_request;

/*
 * idem_prepare - copy the caller, the Idempotency-Key header and a hash of
 * (method, route, path, canonical body) into r. Replies 400 and returns -1 when
 * the header is malformed.
 */
int idem_prepare(http_ctx *c, idem_request *r);
/* idem_begin - in a transaction; returns an idem_result or a db_status (< 0). */
int idem_begin(db_conn *db, const idem_request *r, int *status, json_t **response);
/* idem_store - record the response of a first request; DB_OK or a db_status. */
int idem_store(db_conn *db, const idem_request *r, int status, json_t *response);

#endif
