/*
 * problem.h - RFC 9457 problem details, built from one table of stable types.
 *
 * Every error a client can see has a stable machine-readable `type` (a URI under
 * https://tally.dev/problems/), an HTTP status and a short title. Handlers name
 * the type and add a detail (and, for validation errors, the offending field);
 * they never hand-build error bodies.
 */
#ifndef TALLY_PROBLEM_H
#define TALLY_PROBLEM_H

#include <jansson.h>

typedef enum problem_type {
    PROB_BAD_REQUEST,           /* 400 generic malformed request */
    PROB_MALFORMED_JSON,        /* 400 body is not valid JSON */
    PROB_VALIDATION,            /* 422 a field is missing, of the wrong type or out of range */
    PROB_UNAUTHENTICATED,       /* 401 missing or unknown API key */
    PROB_FORBIDDEN,             /* 403 the key's role may not do this */
    PROB_NOT_FOUND,             /* 404 no such route or resource (or not visible to caller) */
    PROB_METHOD_NOT_ALLOWED,    /* 405 route exists, method does not */
    PROB_CONFLICT,              /* 409 state conflict (duplicate, already revoked...) */
    PROB_IDEMPOTENCY_REUSE,     /* 422 Idempotency-Key reused with a different request */
    PROB_IDEMPOTENCY_IN_FLIGHT, /* 409 same key still being processed */
    PROB_PAYLOAD_TOO_LARGE,     /* 413 body over TALLY_MAX_BODY_BYTES */
    PROB_UNSUPPORTED_MEDIA,     /* 415 body is not application/json */
    PROB_DB_UNAVAILABLE,        /* 503 database unreachable; retry later */
    PROB_INTERNAL,              /* 500 a bug; logged with the request id */
    PROB_INSUFFICIENT_FUNDS,    /* 422 the ledger account would end below its credit limit */
    PROB_CURRENCY_MISMATCH,     /* 422 an amount's currency is not its account's */
    PROB_UNKNOWN_ACCOUNT,       /* 422 a referenced (ledger) account does not exist */
    PROB_CAPTURE_EXCEEDS_HOLD,  /* 422 capture above what the hold still reserves */
    PROB_HOLD_CLOSED,           /* 409 the hold was already captured, voided or expired */
    PROB_HOLD_EXPIRED,          /* 409 the hold's expiry time has passed */
    PROB_NO_PLACEMENT,          /* 409 no offer can run the workload under its constraints */
    PROB_ORDER_STATE,           /* 409 the order's state does not allow this */
    PROB__COUNT
} problem_type;

/* HTTP status of a problem type. */
int problem_status(problem_type t);
/* Stable slug ("malformed-json") and title ("Malformed JSON") of a type. */
const char *problem_slug(problem_type t);
const char *problem_title(problem_type t);

/*
 * problem_build - the problem+json body for a type.
 * detail may be NULL; field (a JSON path such as "role" or "limits.max") may be NULL.
 * instance (the request path) may be NULL. Returns a new reference: caller decrefs.
 */
json_t *problem_build(problem_type t, const char *detail, const char *field, const char *instance);

#endif
