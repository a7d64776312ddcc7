/*
 * reports_usage.c - the usage report's SQL and columns (see reports_usage.h).
 *
 * Amounts per usage record: `amount` is what the tenant pays (usage_records.
 * amount_micros), `discounts` the sum of the record's negative tenant line
 * items (a reversal negates its original's), `gross` = amount - discounts,
 * `fees` the platform's share (fee_micros) and `net` = amount - fees, the
 * provider's share. Reversals are rows with negative amounts, so every sum is
 * already net of them. Records belong to the range by their start time.
 */
#include "reports_usage.h"

#include <string.h>

#define U_FROM                                                                                     \
    " FROM usage_records u JOIN orders o ON o.id = u.order_id JOIN offers f ON f.id = o.offer_id " \
    "CROSS JOIN LATERAL (SELECT CASE WHEN u.reverses IS NULL THEN (SELECT coalesce(sum((l->>"      \
    "'amount')::bigint), 0) FROM jsonb_array_elements(u.lines) l WHERE l->>'payer' = 'tenant' "    \
    "AND (l->>'amount')::bigint < 0) ELSE -(SELECT coalesce(sum((l->>'amount')::bigint), 0) FROM " \
    "usage_records v CROSS JOIN LATERAL jsonb_array_elements(v.lines) l WHERE v.provider_id = "    \
    "u.provider_id AND v.record_id = u.reverses AND l->>'payer' = 'tenant' AND (l->>'amount')::"   \
    "bigint < 0) END AS disc) d WHERE u.start_at >= $1::timestamptz AND u.start_at < "             \
    "$2::timestamptz AND ($3::text IS NULL OR o.tenant_id = $3) AND ($4::text IS NULL OR "         \
    "u.provider_id = $4)"

#define U_SUMS                                                                                     \
    "count(*), sum(u.mcu)::bigint, sum(u.device_ms)::bigint, (sum(u.amount_micros) - "             \
    "sum(d.disc))::bigint, sum(d.disc)::bigint, sum(u.amount_micros)::bigint, "                    \
    "sum(u.fee_micros)::bigint, (sum(u.amount_micros) - sum(u.fee_micros))::bigint"

#define U_GROUPED(key)                                                                             \
    REPORT_DECLARE "SELECT " key ", u.currency, " U_SUMS U_FROM " GROUP BY 1, 2 ORDER BY 1, 2"

static const char *const group_names[] = {"tenant", "provider", "device", "region",
                                          "day",    "offer",    "record"};

static const char *const group_sql[] = {
    U_GROUPED("o.tenant_id"),
    U_GROUPED("u.provider_id"),
    U_GROUPED("u.device_id"),
    U_GROUPED("f.region"),
    U_GROUPED("to_char(u.start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
    U_GROUPED("o.offer_id"),
    REPORT_DECLARE "SELECT u.id, u.record_id, u.provider_id, o.tenant_id, u.order_id, o.offer_id, "
                   "f.region, u.device_id, u.count, u.start_ms, u.end_ms, u.currency, u.mcu, "
                   "u.device_ms, u.amount_micros - d.disc, d.disc, u.amount_micros, u.fee_micros, "
                   "u.amount_micros - u.fee_micros, u.period, u.billed_period, u.reverses" U_FROM
                   " ORDER BY u.id",
};

#define SUM_COLS                                                                                   \
    {"currency", RCOL_TEXT}, {"records", RCOL_INT}, {"cu", RCOL_MCU},                              \
        {"device_hours", RCOL_HOURS}, {"gross", RCOL_MONEY}, {"discounts", RCOL_MONEY},            \
        {"amount", RCOL_MONEY}, {"fees", RCOL_MONEY},                                              \
    {                                                                                              \
        "net", RCOL_MONEY                                                                          \
    }

static const report_col cols_tenant[] = {{"tenant_id", RCOL_TEXT}, SUM_COLS};
static const report_col cols_provider[] = {{"provider_id", RCOL_TEXT}, SUM_COLS};
static const report_col cols_device[] = {{"device_id", RCOL_TEXT}, SUM_COLS};
static const report_col cols_region[] = {{"region", RCOL_TEXT}, SUM_COLS};
static const report_col cols_day[] = {{"day", RCOL_TEXT}, SUM_COLS};
static const report_col cols_offer[] = {{"offer_id", RCOL_TEXT}, SUM_COLS};
static const report_col cols_record[] = {
    {"usage_id", RCOL_TEXT},   {"record_id", RCOL_TEXT},     {"provider_id", RCOL_TEXT},
    {"tenant_id", RCOL_TEXT},  {"order_id", RCOL_TEXT},      {"offer_id", RCOL_TEXT},
    {"region", RCOL_TEXT},     {"device_id", RCOL_TEXT},     {"count", RCOL_INT},
    {"start", RCOL_TIME_MS},   {"end", RCOL_TIME_MS},        {"currency", RCOL_TEXT},
    {"cu", RCOL_MCU},          {"device_hours", RCOL_HOURS}, {"gross", RCOL_MONEY},
    {"discounts", RCOL_MONEY}, {"amount", RCOL_MONEY},       {"fees", RCOL_MONEY},
    {"net", RCOL_MONEY},       {"period", RCOL_TEXT},        {"billed_period", RCOL_TEXT},
    {"reverses", RCOL_TEXT},
};

static const struct {
    const report_col *cols;
    size_t n;
} group_cols[] = {
    {cols_tenant, sizeof cols_tenant / sizeof cols_tenant[0]},
    {cols_provider, sizeof cols_provider / sizeof cols_provider[0]},
    {cols_device, sizeof cols_device / sizeof cols_device[0]},
    {cols_region, sizeof cols_region / sizeof cols_region[0]},
    {cols_day, sizeof cols_day / sizeof cols_day[0]},
    {cols_offer, sizeof cols_offer / sizeof cols_offer[0]},
    {cols_record, sizeof cols_record / sizeof cols_record[0]},
};

int reports_usage_group(const char *group_by)
{
    for (size_t i = 0; group_by && i < sizeof group_names / sizeof group_names[0]; i++)
        if (!strcmp(group_by, group_names[i]))
            return (int)i;
    return -1;
}

void reports_usage_spec(report_spec *spec, int group, const char *from, const char *to,
                        const char *tenant, const char *provider, report_format format)
{
    memset(spec, 0, sizeof *spec);
    spec->name = "usage";
    spec->declare_sql = group_sql[group];
    spec->cols = group_cols[group].cols;
    spec->ncols = group_cols[group].n;
    spec->nparams = 4;
    spec->params[0] = from;
    spec->params[1] = to;
    spec->params[2] = tenant;
    spec->params[3] = provider;
    spec->format = format;
    spec->meta = json_pack("{s:s}", "group_by", group_names[group]);
}
