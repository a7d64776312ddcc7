/*
 * handlers_resolve.c - GET /v1/resolve/{region}[/{handle}[/{name}]]: the
 * hierarchical name service of computing resource identifiers.
 *
 * A full identifier resolves to its offer's location, endpoint, device, CU
 * rating per workload class, live free capacity (with its age), health and
 * price policy; a prefix (region, or region/handle) lists what is directly
 * below it. Served from the in-process cache (market_cache.h) without touching
 * the database: this is the hot read of the marketplace.
 */
#include "handlers.h"
#include "ident.h"
#include "market_cache.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h_resolve(http_ctx *c)
{
    const char *labels[] = {http_param(c, "region"), http_param(c, "handle"),
                            http_param(c, "name")};
    market_cache *mc = http_server(c)->market;
    char text[3 * 256 + 3];
    size_t len = 0, pos = 0, outlen = 0;
    market_ident id;
    ident_status st;
    char *out = NULL;
    int rc;

    for (int i = 0; i < 3 && labels[i]; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? "/" : "", labels[i]);
    if ((st = ident_parse(text, len, &id, &pos)) != IDENT_OK) {
        http_reply_problemf(c, PROB_VALIDATION, "identifier", "'%s': %s (at byte %zu)", text,
                            ident_status_message(st), pos);
        return;
    }
    rc = mc ? market_cache_resolve(mc, &id, &out, &outlen) : 0;
    if (rc < 0) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (rc == 0) {
        http_reply_problemf(c, PROB_NOT_FOUND, NULL, "nothing is published at or below '%s'",
                            id.text);
        return;
    }
    http_reply_raw(c, 200, "application/json", out, outlen);
    free(out);
}
