/*
 * reports_usage.c - the usage report's SQL and columns (see reports_usage.h).
 *
 * Amounts per usage record: `amount` is what the tenant pays (usage_records.
 * amount_micros), `discounts` the sum of the record's negative tenant line
 * items (a reversal negates its original's), `gross` = amount - discounts,
 * `fees` the platform's share (fee_micros) and `net` = amount - fees, the
 * provider's share. Reversals are rows with negative amounts, so every sum is
 * already net of them. Records belong to the range by their start time.
 *
 * The rows come from COPY (binary) (reports_stream.h): PostgreSQL sends
 * integers, tallyd formats the cells, in CSV or JSON alike.
 */
#include "reports_usage.h"

#include <string.h>

/* A record's discount: its stored discount_micros (the negative tenant line
 * items, migrations/0011), a reversal's is minus its original's. */
#define U_DISC                                                                                     \
    "CASE WHEN u.reverses IS NULL THEN u.discount_micros ELSE -coalesce((SELECT "                  \
    "v.discount_micros "                                                                           \
    "FROM usage_records v WHERE v.provider_id = u.provider_id AND v.record_id = u.reverses), 0) "  \
    "END"

#define P_FROM REPORT_PARAM(1, "timestamptz")
#define P_TO REPORT_PARAM(2, "timestamptz")
#define P_TENANT REPORT_PARAM(3, "text")
#define P_PROVIDER REPORT_PARAM(4, "text")

/*
 * COPY cannot bind parameters, so the planner never sees their values: a
 * range it cannot see is estimated at 0.5 % of the table, which made a
 * report over everything scan the start_at index and sort a million rows
 * before its first byte. So each report has two statements: with the range
 * (from/to given: the start_at index) and without (the whole table: a per-
 * record report streams in primary-key order from its first row).
 *
 * And COPY is planned for its total cost, not its first rows as a cursor is:
 * for the whole table it chose a scan and a sort of every record (4 s before
 * the first byte of 1 000 000, and PostgreSQL idle while tallyd formats, and
 * the reverse), so a per-record report over everything runs with sorting off
 * (the primary key's order: rows stream at once).
 */
#define U_RANGE                                                                                    \
    "u.start_at >= " P_FROM " AND u.start_at < " P_TO " AND (" P_PROVIDER                          \
    " IS NULL OR u.provider_id = " P_PROVIDER ")"
#define U_ALL "(" P_PROVIDER " IS NULL OR u.provider_id = " P_PROVIDER ")"
#define U_TENANT "(" P_TENANT " IS NULL OR o.tenant_id = " P_TENANT ")"

/*
 * Grouped: records are summed per (order, usage-side key, currency) first, and
 * only those partial sums are joined to orders and offers (for the tenant,
 * offer and region keys and the tenant filter) and summed again, so the joins
 * see thousands of rows, not millions.
 */
#define U_GROUPED(inner_key, outer_key, where)                                                     \
    REPORT_COPY "SELECT " outer_key ", a.currency, sum(a.n)::bigint, sum(a.mcu)::bigint, "         \
                "sum(a.dms)::bigint, (sum(a.amt) - sum(a.disc))::bigint, sum(a.disc)::bigint, "    \
                "sum(a.amt)::bigint, sum(a.fee)::bigint, (sum(a.amt) - sum(a.fee))::bigint "       \
                "FROM (SELECT u.order_id, " inner_key " AS k, u.currency, count(*) AS n, "         \
                "sum(u.mcu) AS mcu, sum(u.device_ms) AS dms, sum(u.amount_micros) AS amt, "        \
                "sum(" U_DISC                                                                      \
                ") AS disc, sum(u.fee_micros) AS fee FROM usage_records u WHERE " where            \
                " GROUP BY 1, 2, 3) a JOIN orders o ON o.id = a.order_id JOIN offers "             \
                "f ON f.id = o.offer_id WHERE " U_TENANT " GROUP BY 1, 2 ORDER BY 1, "             \
                "2" REPORT_COPY_END

#define GROUP_RECORD 6 /* group_names' "record" */
static const char sql_no_sort[] = "SET LOCAL enable_sort = off";

static const char *const group_names[] = {"tenant", "provider", "device", "region",
                                          "day",    "offer",    "record"};

#define U_RECORD(where)                                                                            \
    REPORT_COPY                                                                                    \
    "SELECT u.id, u.record_id, u.provider_id, o.tenant_id, u.order_id, o.offer_id, "               \
    "f.region, u.device_id, u.count::bigint, u.start_ms, u.end_ms, u.currency, u.mcu, "            \
    "u.device_ms, u.amount_micros - d.disc, d.disc, u.amount_micros, u.fee_micros, "               \
    "u.amount_micros - u.fee_micros, u.period, u.billed_period, u.reverses FROM "                  \
    "usage_records u JOIN orders o ON o.id = u.order_id JOIN offers f ON f.id = "                  \
    "o.offer_id CROSS JOIN LATERAL (SELECT " U_DISC " AS disc) d WHERE " where " AND " U_TENANT    \
    " ORDER BY u.id" REPORT_COPY_END

/* a date per record (cheap), its text per group */
#define U_DAY "(u.start_at AT TIME ZONE 'UTC')::date"
#define U_DAY_TEXT "to_char(a.k, 'YYYY-MM-DD')"

/* COPY (binary) statements, [group][0] with the range, [group][1] without;
 * every non-text column is int8. */
static const char *const group_sql[][2] = {
    {U_GROUPED("NULL::text", "o.tenant_id", U_RANGE),
     U_GROUPED("NULL::text", "o.tenant_id", U_ALL)},
    {U_GROUPED("u.provider_id", "a.k", U_RANGE), U_GROUPED("u.provider_id", "a.k", U_ALL)},
    {U_GROUPED("u.device_id", "a.k", U_RANGE), U_GROUPED("u.device_id", "a.k", U_ALL)},
    {U_GROUPED("NULL::text", "f.region", U_RANGE), U_GROUPED("NULL::text", "f.region", U_ALL)},
    {U_GROUPED(U_DAY, U_DAY_TEXT, U_RANGE), U_GROUPED(U_DAY, U_DAY_TEXT, U_ALL)},
    {U_GROUPED("NULL::text", "o.offer_id", U_RANGE), U_GROUPED("NULL::text", "o.offer_id", U_ALL)},
    {U_RECORD(U_RANGE), U_RECORD(U_ALL)},
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
    /* the handler's defaults for a missing from / to: the whole table */
    int all = !strcmp(from, "-infinity") && !strcmp(to, "infinity");

    memset(spec, 0, sizeof *spec);
    spec->name = "usage";
    spec->copy_sql = group_sql[group][all];
    if (all && group == GROUP_RECORD)
        spec->setup_sql = sql_no_sort;
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
