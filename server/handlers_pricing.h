/* handlers_pricing.h - pricing policies, utilisation and quotes over HTTP
 * (handlers_pricing.c, handlers_quotes.c). */
#ifndef TALLY_HANDLERS_PRICING_H
#define TALLY_HANDLERS_PRICING_H

#include "http.h"

void h_policies_create(http_ctx *c);
void h_policies_list(http_ctx *c);
void h_policies_get(http_ctx *c);
void h_policy_versions_list(http_ctx *c);
void h_policy_versions_create(http_ctx *c);
void h_utilisation_report(http_ctx *c);
void h_quotes_create(http_ctx *c);
void h_quotes_get(http_ctx *c);

#endif
