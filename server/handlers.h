/*
 * handlers.h - every HTTP handler, grouped by file (handlers_*.c).
 * The route table in routes.c maps methods and paths to these.
 */
#ifndef TALLY_HANDLERS_H
#define TALLY_HANDLERS_H

#include "http.h"

/* handlers_system.c */
void h_healthz(http_ctx *c);
void h_readyz(http_ctx *c);
void h_metrics(http_ctx *c);
void h_openapi(http_ctx *c);

/* handlers_accounts.c */
void h_accounts_create(http_ctx *c);
void h_accounts_list(http_ctx *c);
void h_accounts_get(http_ctx *c);
void h_keys_create(http_ctx *c);
void h_keys_list(http_ctx *c);
void h_keys_revoke(http_ctx *c);

/* handlers_devices.c */
void h_devices_list(http_ctx *c);
void h_devices_get(http_ctx *c);
void h_devices_create(http_ctx *c);
void h_catalog_versions_list(http_ctx *c);
void h_catalog_versions_create(http_ctx *c);

/* handlers_metering.c */
void h_normalize(http_ctx *c);
void h_estimates(http_ctx *c);
void h_observations_create(http_ctx *c);
void h_calibrations_create(http_ctx *c);
void h_efficiency_get(http_ctx *c);

/* handlers_provider_keys.c, handlers_offers.c, handlers_resolve.c */
void h_provider_keys_create(http_ctx *c);
void h_provider_keys_list(http_ctx *c);
void h_provider_keys_revoke(http_ctx *c);
void h_offers_create(http_ctx *c);
void h_offers_list(http_ctx *c);
void h_offers_get(http_ctx *c);
void h_offers_patch(http_ctx *c);
void h_offers_withdraw(http_ctx *c);
void h_offers_publish(http_ctx *c);
void h_offers_health(http_ctx *c);
void h_resolve(http_ctx *c);

/* handlers_invoices.c, handlers_dashboard.c */
void h_invoices_close(http_ctx *c);
void h_invoices_list(http_ctx *c);
void h_invoices_get(http_ctx *c);
void h_invoices_finalize(http_ctx *c);
void h_invoices_credit_note(http_ctx *c);
void h_dashboard_page(http_ctx *c);
void h_dashboard_data(http_ctx *c);

#include "handlers_ledger.h"
#include "handlers_market.h"
#include "handlers_pricing.h"
#include "handlers_reports.h"

#endif
