/*
 * handlers_market.h - orders, placements and usage over HTTP
 * (handlers_orders.c, handlers_usage.c).
 */
#ifndef TALLY_HANDLERS_MARKET_H
#define TALLY_HANDLERS_MARKET_H

#include "http.h"

void h_placements_create(http_ctx *c);
void h_orders_create(http_ctx *c);
void h_orders_list(http_ctx *c);
void h_orders_get(http_ctx *c);
void h_orders_cancel(http_ctx *c);
void h_orders_start(http_ctx *c);
void h_orders_complete(http_ctx *c);
void h_orders_fail(http_ctx *c);
void h_usage_create(http_ctx *c);
void h_usage_list(http_ctx *c);

#endif
