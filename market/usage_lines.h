/*
 * usage_lines.h - a rating's line items as the JSON text stored in
 * usage_records.lines, written straight from the pricing result (no JSON tree
 * per record on the ingestion path).
 */
#ifndef TALLY_MARKET_USAGE_LINES_H
#define TALLY_MARKET_USAGE_LINES_H

#include "rate.h"

#include <jansson.h>

/*
 * usage_lines_text - compact JSON array of res's tenant lines, then the
 * provider-paid fee (if any) as a line with "payer": "provider". Each line has
 * kind, rule_id, rule_kind, quantity, unit, unit_price, amount and payer.
 * malloc'd, NUL-terminated; NULL when out of memory.
 */
char *usage_lines_text(const pricing_result *res);

/* usage_lines_json - the same line items as a JSON tree (new reference; NULL on OOM). */
json_t *usage_lines_json(const pricing_result *res);

#endif
