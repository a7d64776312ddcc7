/*
 * validate.h - checks on request bodies and query parameters that reply with a
 * precise problem (422 naming the field) when they fail.
 *
 * Each function returns 0 when the value is acceptable and -1 after it has
 * replied; the caller then returns at once without touching the context.
 */
#ifndef TALLY_VALIDATE_H
#define TALLY_VALIDATE_H

#include "http.h"

#include <jansson.h>
#include <stdint.h>

/* val_known_fields - reject any member of body not listed in allowed (NULL-terminated). */
int val_known_fields(http_ctx *c, json_t *body, const char *const *allowed);
/*
 * val_string - body[field] as a string of 1..maxlen bytes of printable UTF-8
 * (no control characters). Missing and !required: *out = NULL and 0.
 */
int val_string(http_ctx *c, json_t *body, const char *field, int required, size_t maxlen,
               const char **out);
/*
 * val_int - body[field] as an integer in [min, max] (JSON reals and strings are
 * refused: quantities are integers). Missing and !required: *out = def and 0.
 */
int val_int(http_ctx *c, json_t *body, const char *field, int required, long long min,
            long long max, long long def, long long *out);
/*
 * val_money - body[field] as an exact decimal string in currency units ("12.50",
 * at most 6 fraction digits) into micro-units; non-zero, and positive when sign > 0.
 */
int val_money(http_ctx *c, json_t *body, const char *field, int required, int sign, int64_t *out);
/* val_require_one - exactly one of the listed fields is present (422 otherwise). */
int val_require_one(http_ctx *c, json_t *body, const char *const *fields);
/* val_query_limit - ?limit= as 1..max (default def). */
int val_query_limit(http_ctx *c, int def, int max, int *out);
/* val_query_id - ?name= as an id with prefix, or NULL when absent. */
int val_query_id(http_ctx *c, const char *name, const char *prefix, const char **out);
/* val_path_id - the path parameter name as an id with prefix (404 when malformed). */
int val_path_id(http_ctx *c, const char *name, const char *prefix, const char **out);

#endif
