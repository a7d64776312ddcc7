/* Unit tests for server/problem.c: statuses, stable types, body shape. */
#include "problem.h"

#include <criterion/criterion.h>
#include <string.h>

Test(problem, statuses_match_the_contract)
{
    cr_assert_eq(problem_status(PROB_MALFORMED_JSON), 400);
    cr_assert_eq(problem_status(PROB_UNAUTHENTICATED), 401);
    cr_assert_eq(problem_status(PROB_FORBIDDEN), 403);
    cr_assert_eq(problem_status(PROB_NOT_FOUND), 404);
    cr_assert_eq(problem_status(PROB_METHOD_NOT_ALLOWED), 405);
    cr_assert_eq(problem_status(PROB_PAYLOAD_TOO_LARGE), 413);
    cr_assert_eq(problem_status(PROB_UNSUPPORTED_MEDIA), 415);
    cr_assert_eq(problem_status(PROB_VALIDATION), 422);
    cr_assert_eq(problem_status(PROB_DB_UNAVAILABLE), 503);
    cr_assert_eq(problem_status((problem_type)999), 500);
}

Test(problem, every_type_has_a_unique_slug_and_title)
{
    for (int i = 0; i < PROB__COUNT; i++) {
        cr_assert(problem_slug(i) && *problem_slug(i), "type %d has no slug", i);
        cr_assert(problem_title(i) && *problem_title(i), "type %d has no title", i);
        for (int j = i + 1; j < PROB__COUNT; j++)
            cr_assert_str_neq(problem_slug(i), problem_slug(j));
    }
}

Test(problem, body_has_rfc9457_members)
{
    json_t *b = problem_build(PROB_VALIDATION, "'role' is required", "role", "/v1/accounts");
    cr_assert_str_eq(json_string_value(json_object_get(b, "type")),
                     "https://tally.dev/problems/validation-failed");
    cr_assert_str_eq(json_string_value(json_object_get(b, "title")), "Validation failed");
    cr_assert_eq(json_integer_value(json_object_get(b, "status")), 422);
    cr_assert_str_eq(json_string_value(json_object_get(b, "detail")), "'role' is required");
    cr_assert_str_eq(json_string_value(json_object_get(b, "field")), "role");
    cr_assert_str_eq(json_string_value(json_object_get(b, "instance")), "/v1/accounts");
    json_decref(b);
}

Test(problem, optional_members_are_omitted)
{
    json_t *b = problem_build(PROB_NOT_FOUND, NULL, NULL, NULL);
    cr_assert_eq(json_object_size(b), 3);
    json_decref(b);
}
