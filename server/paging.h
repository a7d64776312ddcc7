/*
 * paging.h - cursor pagination, built once for every list endpoint.
 *
 * A list query selects limit + 1 rows ordered by the cursor column (column 0,
 * an id or number that sorts in creation order). The extra row only says that
 * there is a next page; the page is {"data": [...], "has_more": bool,
 * "next_after": <cursor of the last row shown> | null}, and the client asks for
 * the next page with ?after=next_after.
 */
#ifndef TALLY_PAGING_H
#define TALLY_PAGING_H

#include <jansson.h>
#include <libpq-fe.h>

/* Renders row i of r (a new reference, or NULL to skip the row). */
typedef json_t *(*paging_row_fn)(PGresult *r, int i, const void *ctx);

/* paging_build - the page for the first limit rows of r (new reference). */
json_t *paging_build(PGresult *r, int limit, paging_row_fn row, const void *ctx);

#endif
