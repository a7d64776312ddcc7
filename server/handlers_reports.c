/*
 * handlers_reports.c - finance reports over HTTP: query parameters, scope,
 * then a report_spec handed to reports_stream (which replies).
 *
 * Scope (server/scope.c): finance and admin read everything and may narrow a
 * report with tenant_id / provider_id; a tenant sees only its own usage, a
 * provider only its own usage and payouts.
 */
#include "handlers_reports.h"
#include "reports_ledger.h"
#include "reports_recon.h"
#include "reports_usage.h"
#include "scope.h"
#include "timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct range {
    char from[40], to[40]; /* timestamptz text: ISO-8601 or -infinity / infinity */
} range;

/* An optional ISO-8601 time parameter as canonical text; -1 after replying 422. */
static int time_param(http_ctx *c, const char *name, const char *dflt, char *out, size_t cap,
                      int64_t *ms)
{
    const char *s = http_query(c, name);

    if (!s) {
        snprintf(out, cap, "%s", dflt);
        return 0;
    }
    if (timefmt_parse(s, ms) != 0) {
        http_reply_problemf(c, PROB_VALIDATION, name,
                            "'%s' must be an ISO-8601 UTC time such as 2026-05-01T00:00:00Z", name);
        return -1;
    }
    timefmt_format(*ms, out, cap);
    return 0;
}

static int range_params(http_ctx *c, range *r)
{
    int64_t from = 0, to = 0;

    if (time_param(c, "from", "-infinity", r->from, sizeof r->from, &from) != 0 ||
        time_param(c, "to", "infinity", r->to, sizeof r->to, &to) != 0)
        return -1;
    if (http_query(c, "from") && http_query(c, "to") && from >= to) {
        http_reply_problem(c, PROB_VALIDATION, "'to' must be later than 'from'", "to");
        return -1;
    }
    return 0;
}

static int format_param(http_ctx *c, report_format *f)
{
    const char *s = http_query(c, "format");

    *f = REPORT_JSON;
    if (!s || !strcmp(s, "json"))
        return 0;
    if (!strcmp(s, "csv")) {
        *f = REPORT_CSV;
        return 0;
    }
    http_reply_problem(c, PROB_VALIDATION, "'format' must be csv or json", "format");
    return -1;
}

/* The account filter a caller may use: its own for tenants/providers, any for finance. */
static int owner_param(http_ctx *c, const char *name, unsigned own_role, const char **out)
{
    const http_caller *who = http_get_caller(c);
    const char *s = http_query(c, name);

    *out = NULL;
    if (!scope_sees_all(who)) {
        if (s && strcmp(s, who->account_id) != 0) {
            http_reply_problemf(c, PROB_FORBIDDEN, name, "a %s key reads only its own reports",
                                role_name(who->role));
            return -1;
        }
        *out = who->role == own_role ? who->account_id : NULL;
        return 0;
    }
    if (s && (!*s || strlen(s) > 64)) {
        http_reply_problemf(c, PROB_VALIDATION, name, "'%s' must be an account id", name);
        return -1;
    }
    *out = s;
    return 0;
}

void h_reports_usage(http_ctx *c)
{
    const char *g = http_query(c, "group_by");
    const char *tenant, *provider;
    int group = reports_usage_group(g ? g : "day");
    report_format f;
    report_spec spec;
    range r;

    if (group < 0) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'group_by' must be tenant, provider, device, region, day, offer or "
                           "record",
                           "group_by");
        return;
    }
    if (range_params(c, &r) != 0 || format_param(c, &f) != 0 ||
        owner_param(c, "tenant_id", ROLE_TENANT, &tenant) != 0 ||
        owner_param(c, "provider_id", ROLE_PROVIDER, &provider) != 0)
        return;
    reports_usage_spec(&spec, group, r.from, r.to, tenant, provider, f);
    json_object_set_new(spec.meta, "from", json_string(r.from));
    json_object_set_new(spec.meta, "to", json_string(r.to));
    reports_stream(c, &spec);
}

void h_reports_trial_balance(http_ctx *c)
{
    const char *s = http_query(c, "as_of");
    char us[24], when[40];
    int64_t as_of = 0;
    report_spec spec;

    if (http_query(c, "format") && strcmp(http_query(c, "format"), "json") != 0) {
        http_reply_problem(c, PROB_VALIDATION,
                           "the trial balance is JSON only (its totals follow the rows)", "format");
        return;
    }
    if (s && timefmt_parse_us(s, &as_of) != 0) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'as_of' must be an ISO-8601 UTC time such as 2026-05-01T00:00:00Z",
                           "as_of");
        return;
    }
    if (!s)
        as_of = timefmt_now_ms() * 1000;
    snprintf(us, sizeof us, "%lld", (long long)as_of);
    timefmt_format_us(as_of, when, sizeof when);
    reports_trial_balance_spec(&spec, s ? us : NULL, json_pack("{s:s}", "as_of", when));
    reports_stream(c, &spec);
}

void h_reports_reconciliation(http_ctx *c)
{
    report_format f;
    report_spec spec;
    range r;

    if (range_params(c, &r) != 0 || format_param(c, &f) != 0)
        return;
    reports_recon_spec(&spec, r.from, r.to, f, json_pack("{s:s, s:s}", "from", r.from, "to", r.to));
    reports_stream(c, &spec);
}

/* "YYYY-MM" -> the month's bounds in unix microseconds. */
static int period_bounds(const char *p, int64_t *from_us, int64_t *to_us)
{
    char a[32], b[32];
    int y, m;

    if (!p || strlen(p) != 7 || sscanf(p, "%4d-%2d", &y, &m) != 2 || p[4] != '-' || y < 1970 ||
        y > 9998 || m < 1 || m > 12)
        return -1;
    snprintf(a, sizeof a, "%04d-%02d-01T00:00:00Z", y, m);
    snprintf(b, sizeof b, "%04d-%02d-01T00:00:00Z", m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1);
    return timefmt_parse_us(a, from_us) == 0 && timefmt_parse_us(b, to_us) == 0 ? 0 : -1;
}

void h_reports_payouts(http_ctx *c)
{
    const char *period = http_query(c, "period");
    const char *provider;
    char from[24], to[24];
    int64_t from_us, to_us;
    report_format f;
    report_spec spec;

    if (period_bounds(period, &from_us, &to_us) != 0) {
        http_reply_problem(c, PROB_VALIDATION, "'period' must be a month such as 2026-05",
                           "period");
        return;
    }
    if (format_param(c, &f) != 0 || owner_param(c, "provider_id", ROLE_PROVIDER, &provider) != 0)
        return;
    snprintf(from, sizeof from, "%lld", (long long)from_us);
    snprintf(to, sizeof to, "%lld", (long long)to_us);
    reports_payouts_spec(&spec, from, to, provider, f, json_pack("{s:s}", "period", period));
    reports_stream(c, &spec);
}
