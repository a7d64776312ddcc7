/*
 * routes.c - the whole HTTP API as one table: method, path, roles, handler.
 * Keep it in step with schema/openapi.yaml (a test compares them).
 * Literal routes come before parameterised ones that could shadow them.
 */
#include "handlers.h"
#include "server.h"

/* R: a route that takes no query parameters; Q: one that takes the listed ones (a request
 * with any other, or one given twice, is refused before the handler runs). */
#define R(m, p, roles, h) Q(m, p, roles, h, NULL)
#define Q(m, p, roles, h, q)                                                                       \
    {                                                                                              \
        m, p, roles, (void (*)(void))h, q                                                          \
    }

const route tally_routes[] = {
    R(HTTP_GET, "/healthz", 0, h_healthz),
    R(HTTP_GET, "/readyz", 0, h_readyz),
    R(HTTP_GET, "/metrics", 0, h_metrics),
    R(HTTP_GET, "/openapi.yaml", 0, h_openapi),

    R(HTTP_POST, "/v1/accounts", ROLE_ADMIN, h_accounts_create),
    Q(HTTP_GET, "/v1/accounts", ROLE_ADMIN, h_accounts_list, "limit after"),
    R(HTTP_GET, "/v1/accounts/{id}", ROLE_ANY, h_accounts_get),
    R(HTTP_POST, "/v1/accounts/{id}/keys", ROLE_ANY, h_keys_create),
    R(HTTP_GET, "/v1/accounts/{id}/keys", ROLE_ANY, h_keys_list),
    R(HTTP_DELETE, "/v1/accounts/{id}/keys/{key_id}", ROLE_ANY, h_keys_revoke),

    Q(HTTP_GET, "/v1/devices", ROLE_ANY, h_devices_list, "catalog_version"),
    R(HTTP_POST, "/v1/devices", ROLE_ADMIN, h_devices_create),
    Q(HTTP_GET, "/v1/devices/{id}", ROLE_ANY, h_devices_get, "catalog_version"),
    R(HTTP_GET, "/v1/catalog/versions", ROLE_ANY, h_catalog_versions_list),
    R(HTTP_POST, "/v1/catalog/versions", ROLE_ADMIN, h_catalog_versions_create),
    R(HTTP_POST, "/v1/normalize", ROLE_ANY, h_normalize),
    R(HTTP_POST, "/v1/estimates", ROLE_ANY, h_estimates),
    R(HTTP_POST, "/v1/metering/observations", ROLE_ADMIN | ROLE_PROVIDER, h_observations_create),
    R(HTTP_POST, "/v1/metering/calibrations", ROLE_ADMIN, h_calibrations_create),
    Q(HTTP_GET, "/v1/metering/efficiency", ROLE_ANY, h_efficiency_get, "version"),

/* Each further module keeps its rows in its own fragment of this table. */
#include "routes_pricing.inc"
#include "routes_ledger.inc"
#include "routes_offers.inc"
#include "routes_market.inc"
#include "routes_invoices.inc"
#include "routes_reports.inc"
};

const size_t tally_routes_count = sizeof tally_routes / sizeof tally_routes[0];
