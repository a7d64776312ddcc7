/*
 * paging.c - the page object of a limit + 1 query.
 * Invariant: next_after is non-null exactly when has_more is true.
 */
#include "paging.h"

json_t *paging_build(PGresult *r, int limit, paging_row_fn row, const void *ctx)
{
    int total = PQntuples(r), n = total > limit ? limit : total;
    json_t *data = json_array(), *page;

    for (int i = 0; i < n; i++) {
        json_t *x = row(r, i, ctx);
        if (x)
            json_array_append_new(data, x);
    }
    page = json_pack("{s:o, s:b}", "data", data, "has_more", total > limit);
    if (page)
        json_object_set_new(page, "next_after",
                            total > limit && n > 0 ? json_string(PQgetvalue(r, n - 1, 0))
                                                   : json_null());
    return page;
}
