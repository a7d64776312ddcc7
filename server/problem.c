/*
 * problem.c - the table of problem types and the body builder.
 * Invariant: slugs are stable API; add new types at the end of the table,
 * never rename one that has shipped.
 */
#include "problem.h"

#define PROBLEM_BASE "https://tally.dev/problems/"

static const struct {
    int status;
    const char *slug;
    const char *title;
} problems[PROB__COUNT] = {
    [PROB_BAD_REQUEST] = {400, "bad-request", "Bad request"},
    [PROB_MALFORMED_JSON] = {400, "malformed-json", "Malformed JSON"},
    [PROB_VALIDATION] = {422, "validation-failed", "Validation failed"},
    [PROB_UNAUTHENTICATED] = {401, "unauthenticated", "Missing or invalid API key"},
    [PROB_FORBIDDEN] = {403, "forbidden", "Not allowed for this API key"},
    [PROB_NOT_FOUND] = {404, "not-found", "Not found"},
    [PROB_METHOD_NOT_ALLOWED] = {405, "method-not-allowed", "Method not allowed"},
    [PROB_CONFLICT] = {409, "conflict", "Conflict"},
    [PROB_IDEMPOTENCY_REUSE] = {422, "idempotency-key-reused",
                                "Idempotency-Key reused with a different request"},
    [PROB_IDEMPOTENCY_IN_FLIGHT] = {409, "idempotency-key-in-flight",
                                    "A request with this Idempotency-Key is in progress"},
    [PROB_PAYLOAD_TOO_LARGE] = {413, "payload-too-large", "Request body too large"},
    [PROB_UNSUPPORTED_MEDIA] = {415, "unsupported-media-type", "Unsupported media type"},
    [PROB_DB_UNAVAILABLE] = {503, "database-unavailable", "Database unavailable"},
    [PROB_INTERNAL] = {500, "internal-error", "Internal error"},
    [PROB_INSUFFICIENT_FUNDS] = {422, "insufficient-funds", "Insufficient funds"},
    [PROB_CURRENCY_MISMATCH] = {422, "currency-mismatch", "Currency mismatch"},
    [PROB_UNKNOWN_ACCOUNT] = {422, "unknown-account", "Unknown account"},
    [PROB_CAPTURE_EXCEEDS_HOLD] = {422, "capture-exceeds-hold",
                                   "Capture exceeds what the hold reserves"},
    [PROB_HOLD_CLOSED] = {409, "hold-closed", "Hold already closed"},
    [PROB_HOLD_EXPIRED] = {409, "hold-expired", "Hold expired"},
    [PROB_NO_PLACEMENT] = {409, "no-feasible-placement", "No feasible placement"},
    [PROB_ORDER_STATE] = {409, "order-state", "Order state does not allow this"},
};

static int problem_valid(problem_type t)
{
    return (int)t >= 0 && t < PROB__COUNT;
}

int problem_status(problem_type t)
{
    return problem_valid(t) ? problems[t].status : 500;
}

const char *problem_slug(problem_type t)
{
    return problem_valid(t) ? problems[t].slug : "internal-error";
}

const char *problem_title(problem_type t)
{
    return problem_valid(t) ? problems[t].title : "Internal error";
}

json_t *problem_build(problem_type t, const char *detail, const char *field, const char *instance)
{
    char type[128];
    json_t *body = json_object();

    if (!body)
        return NULL;
    snprintf(type, sizeof type, "%s%s", PROBLEM_BASE, problem_slug(t));
    json_object_set_new(body, "type", json_string(type));
    json_object_set_new(body, "title", json_string(problem_title(t)));
    json_object_set_new(body, "status", json_integer(problem_status(t)));
    if (detail)
        json_object_set_new(body, "detail", json_string(detail));
    if (field)
        json_object_set_new(body, "field", json_string(field));
    if (instance)
        json_object_set_new(body, "instance", json_string(instance));
    return body;
}
