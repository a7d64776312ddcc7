/*
 * handlers_dashboard.c - the finance dashboard.
 *
 *   GET /dashboard              the page (server/dashboard.html, embedded): no key needed
 *                               to load it, it holds no data
 *   GET /v1/reports/dashboard   finance/admin: ?from=&to=&currency= (default: the last 30
 *                               days, USD): usage and money by day, device, region,
 *                               tenant and provider
 *
 * A browser cannot send a bearer header when it navigates, so the page asks
 * for the key once (a form), keeps it in sessionStorage (gone when the tab
 * closes, never in a cookie or URL) and fetches the JSON endpoint with an
 * Authorization header. All data goes through the finance-only endpoint.
 *
 * The data is a report: its query runs on the reports pool
 * (TALLY_REPORTS_DATABASE_URL, e.g. a replica), never on the main pool, where
 * a scan of the usage table would hold a connection money-moving requests
 * wait for.
 */
#include "assets.h"
#include "handlers.h"
#include "ledger_svc.h"
#include "server.h"
#include "timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DASH_TOP 10 /* tenants and providers listed */

void h_dashboard_page(http_ctx *c)
{
    http_set_header(c, "Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'");
    http_set_header(c, "Cache-Control", "no-store");
    http_reply_raw(c, 200, "text/html; charset=utf-8", tally_dashboard.data, tally_dashboard.len);
}

/* One row per (dimension, key): five groupings of the usage in [from, to). */
static const char sql_dash[] =
    "WITH u AS (SELECT u.start_at, u.device_id, u.provider_id, u.mcu, u.device_ms, "
    "  u.amount_micros, u.fee_micros, o.tenant_id, f.region FROM usage_records u "
    "  JOIN orders o ON o.id = u.order_id JOIN offers f ON f.id = o.offer_id "
    "  WHERE u.start_at >= $1::timestamptz AND u.start_at < $2::timestamptz AND u.currency = $3) "
    "SELECT dim, key, coalesce(a.name, ''), n, mcu, dms, amt, fee FROM ("
    "  SELECT 'day' AS dim, to_char(start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS key, count(*) AS "
    "n,"
    "   sum(mcu) AS mcu, sum(device_ms) AS dms, sum(amount_micros) AS amt, sum(fee_micros) AS fee "
    "   FROM u GROUP BY 2 "
    "  UNION ALL SELECT 'device', device_id, count(*), sum(mcu), sum(device_ms), "
    "   sum(amount_micros), sum(fee_micros) FROM u GROUP BY 2 "
    "  UNION ALL SELECT 'region', region, count(*), sum(mcu), sum(device_ms), sum(amount_micros), "
    "   sum(fee_micros) FROM u GROUP BY 2 "
    "  UNION ALL SELECT 'tenant', tenant_id, count(*), sum(mcu), sum(device_ms), "
    "   sum(amount_micros), sum(fee_micros) FROM u GROUP BY 2 "
    "  UNION ALL SELECT 'provider', provider_id, count(*), sum(mcu), sum(device_ms), "
    "   sum(amount_micros), sum(fee_micros) FROM u GROUP BY 2) g "
    "LEFT JOIN accounts a ON a.id = g.key AND g.dim IN ('tenant', 'provider') "
    "ORDER BY dim, CASE WHEN dim IN ('day', 'region', 'device') THEN key END, amt DESC, key";

struct dash_job {
    http_ctx *c;
    char from[40], to[40], currency[4];
};

#define V(k) PQgetvalue(r, i, k)

static json_t *dash_row(PGresult *r, int i)
{
    json_t *o = json_pack("{s:s, s:I, s:I, s:I}", "key", V(1), "records", (json_int_t)atoll(V(3)),
                          "mcu", (json_int_t)atoll(V(4)), "device_ms", (json_int_t)atoll(V(5)));

    if (V(2)[0])
        json_object_set_new(o, "name", json_string(V(2)));
    json_object_set_new(o, "amount", ledger_money_json(atoll(V(6))));
    json_object_set_new(o, "platform_fee", ledger_money_json(atoll(V(7))));
    return o;
}

static void dash_done(http_ctx *c, PGresult *r, void *arg)
{
    struct dash_job *j = arg;
    static const char *const dims[] = {"day", "device", "region", "tenant", "provider"};
    json_t *out =
        json_pack("{s:s, s:s, s:s}", "from", j->from, "to", j->to, "currency", j->currency);
    json_t *arr[5];

    for (int d = 0; d < 5; d++)
        arr[d] = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        for (int d = 0; d < 5; d++)
            if (!strcmp(V(0), dims[d]) && (d < 3 || json_array_size(arr[d]) < DASH_TOP))
                json_array_append_new(arr[d], dash_row(r, i));
    json_object_set_new(out, "by_day", arr[0]);
    json_object_set_new(out, "by_device", arr[1]);
    json_object_set_new(out, "by_region", arr[2]);
    json_object_set_new(out, "top_tenants", arr[3]);
    json_object_set_new(out, "top_providers", arr[4]);
    PQclear(r);
    free(j);
    http_reply_json(c, 200, out);
}

#undef V

static void dash_result(int status, PGresult *r, void *arg)
{
    struct dash_job *j = arg;
    http_ctx *c = j->c;

    if (status == DB_OK) {
        dash_done(c, r, j);
        return;
    }
    free(j);
    if (status == DB_FAILED)
        http_reply_problem(c, PROB_INTERNAL, "the dashboard query failed unexpectedly", NULL);
    else
        http_reply_problem(c, PROB_DB_UNAVAILABLE,
                           "the reports database is unreachable or overloaded; retry shortly",
                           NULL);
}

static int time_param(http_ctx *c, const char *name, int64_t def_ms, char out[40])
{
    const char *v = http_query(c, name);
    int64_t ms = def_ms;

    if (v && timefmt_parse(v, &ms) != 0) {
        http_reply_problemf(c, PROB_VALIDATION, name,
                            "'%s' must be an ISO-8601 UTC time, e.g. 2026-11-01T00:00:00Z", name);
        return -1;
    }
    timefmt_format(ms, out, 40);
    return 0;
}

void h_dashboard_data(http_ctx *c)
{
    const char *cur = http_query(c, "currency");
    int64_t now = timefmt_now_ms();
    struct dash_job *j = calloc(1, sizeof *j);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (time_param(c, "from", now - 30LL * 86400000, j->from) ||
        time_param(c, "to", now + 60000, j->to)) {
        free(j);
        return;
    }
    if (cur && (strlen(cur) != 3 || cur[strspn(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")])) {
        free(j);
        http_reply_problem(c, PROB_VALIDATION, "'currency' is a code like USD", "currency");
        return;
    }
    snprintf(j->currency, sizeof j->currency, "%s", cur ? cur : "USD");
    j->c = c;
    {
        const char *p[] = {j->from, j->to, j->currency};
        if (db_pool_submit_query(http_server(c)->reports, http_event_base(c), sql_dash, 3, p,
                                 dash_result, j) != 0) {
            free(j);
            http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        }
    }
}
