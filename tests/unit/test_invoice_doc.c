/*
 * Unit tests for billing/invoice*.c: line groups and totals (hand-checked),
 * the canonical document against jansson's JSON_SORT_KEYS | JSON_COMPACT,
 * the stored line JSON round trip, RFC 4180 quoting and HTML escaping.
 */
#include "invoice.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static invoice_line L(const char *kind, const char *rule, const char *payer, const char *from,
                      int64_t qty, int64_t price, int64_t amount)
{
    invoice_line l = {0};
    snprintf(l.kind, sizeof l.kind, "%s", kind);
    snprintf(l.rule_id, sizeof l.rule_id, "%s", rule);
    snprintf(l.unit, sizeof l.unit, "mcu");
    snprintf(l.payer, sizeof l.payer, "%s", payer);
    snprintf(l.from_period, sizeof l.from_period, "%s", from);
    l.quantity = qty;
    l.unit_price = price;
    l.amount = amount;
    return l;
}

static invoice_doc sample(invoice_line *lines, size_t n)
{
    invoice_doc d = {0};
    snprintf(d.type, sizeof d.type, "invoice");
    snprintf(d.id, sizeof d.id, "inv_01M8HSR32CR59RGST3T28EG7KX");
    snprintf(d.number, sizeof d.number, "INV-00000007");
    snprintf(d.tenant_id, sizeof d.tenant_id, "acc_01M8HSMP0NBATQZZ1JX5AZNAQN");
    snprintf(d.period, sizeof d.period, "2026-11");
    snprintf(d.currency, sizeof d.currency, "USD");
    snprintf(d.issued_at, sizeof d.issued_at, "2026-12-01T00:00:05Z");
    snprintf(d.kid, sizeof d.kid, "sk_0123456789abcdef");
    d.records = 3;
    d.lines = lines;
    d.n_lines = n;
    return d;
}

/* usage 2.000000 + window 0.500000 + region 0.250000 + commitment 1.000000
 * - discount 0.375000 + free 0 + tenant fee 0.100000 - reversal 0.200000
 * + late usage from October 0.300000 = 3.575000; the provider's take 0.137500
 * is shown but not owed by the tenant. */
Test(invoice_doc, totals_by_group_hand_checked)
{
    invoice_line lines[] = {
        L("usage", "base", "tenant", "", 1000, 2000, 2000000),
        L("time_window", "tod", "tenant", "", 0, 0, 500000),
        L("region", "regions", "tenant", "", 0, 0, 250000),
        L("commitment", "reserved", "tenant", "", 500, 2000, 1000000),
        L("contract_discount", "vip", "tenant", "", 0, 0, -375000),
        L("free_allowance", "free", "tenant", "", 100, 0, 0),
        L("platform_fee", "take", "tenant", "", 0, 0, 100000),
        L("reversal", "", "tenant", "", 1, 0, -200000),
        L("usage", "base", "tenant", "2026-10", 150, 2000, 300000),
        L("platform_fee", "take", "provider", "", 0, 0, 137500),
    };
    invoice_doc d = sample(lines, sizeof lines / sizeof lines[0]);
    invoice_totals t;

    cr_assert_eq(invoice_totals_compute(&d, &t), 0);
    cr_assert_eq(t.charges, 2750000);
    cr_assert_eq(t.commitments, 1000000);
    cr_assert_eq(t.discounts, -375000);
    cr_assert_eq(t.fees, 100000);
    cr_assert_eq(t.adjustments, 100000);
    cr_assert_eq(t.total, 3575000);
    cr_assert_eq(t.provider_fees, 137500);
    cr_assert_str_eq(invoice_group(&lines[8]), "adjustments");
    cr_assert_str_eq(invoice_group(&lines[9]), "provider_fees");
}

Test(invoice_doc, totals_overflow_is_refused)
{
    invoice_line lines[] = {L("usage", "a", "tenant", "", 1, 1, INT64_MAX),
                            L("usage", "b", "tenant", "", 1, 1, 1)};
    invoice_doc d = sample(lines, 2);
    invoice_totals t;
    size_t len;

    cr_assert_eq(invoice_totals_compute(&d, &t), -1);
    cr_assert_null(invoice_canonical(&d, &len));
}

Test(invoice_doc, canonical_equals_jansson_sorted_compact)
{
    invoice_line lines[] = {L("usage", "base \"x\"\n", "tenant", "", 7, 1500, 10500),
                            L("contract_discount", "vip", "tenant", "", 0, 0, -1050)};
    invoice_doc d = sample(lines, 2);
    size_t len;
    char *c = invoice_canonical(&d, &len), *again;
    json_t *j = json_loads(c, 0, NULL);

    cr_assert_not_null(j, "%s", c);
    again = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(c, again);
    cr_assert_eq(len, strlen(c));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "totals"), "total")),
                     "0.009450");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "lines"), 0), "unit_price")),
                     "0.001500");
    free(again);
    free(c);
    json_decref(j);
}

Test(invoice_doc, stored_lines_round_trip)
{
    invoice_line lines[] = {L("usage", "base", "tenant", "2026-10", 7, 1500, 10500)};
    invoice_doc d = sample(lines, 1), e = {0};
    json_t *a = invoice_lines_to_json(&d);

    cr_assert_eq(invoice_lines_from_json(&e, a), 0);
    cr_assert_eq(e.n_lines, 1);
    cr_assert_eq(memcmp(&e.lines[0], &lines[0], sizeof lines[0]), 0);
    json_decref(a);
    a = json_loads("[{\"kind\":\"usage\",\"unit\":\"mcu\",\"payer\":\"tenant\","
                   "\"unit_price\":1.5,\"quantity\":1,\"amount\":1}]",
                   0, NULL);
    cr_assert_eq(invoice_lines_from_json(&e, a), -1, "a real is not money");
    cr_assert_eq(e.n_lines, 0);
    json_decref(a);
    invoice_doc_clear(&e);
}

Test(invoice_doc, csv_is_rfc4180)
{
    invoice_line lines[] = {L("usage", "gpu, \"fast\"", "tenant", "", 7, 1500, 10500)};
    invoice_doc d = sample(lines, 1);
    size_t len;
    char *csv = invoice_csv(&d, "ab12", &len);

    cr_assert_not_null(csv);
    cr_assert_eq(strncmp(csv,
                         "record,document,period,group,kind,rule_id,from_period,payer,unit,"
                         "quantity,unit_price,amount,currency\r\n",
                         strlen("record,document,period,group,kind,rule_id,from_period,payer,"
                                "unit,quantity,unit_price,amount,currency\r\n")),
                 0, "%s", csv);
    cr_assert(strstr(csv, "line,INV-00000007,2026-11,charges,usage,\"gpu, \"\"fast\"\"\",,tenant,"
                          "mcu,7,0.001500,0.010500,USD\r\n"),
              "%s", csv);
    cr_assert(strstr(csv, "total,INV-00000007,2026-11,total,,,,,,,,0.010500,USD\r\n"), "%s", csv);
    cr_assert(strstr(csv, "signature,INV-00000007,2026-11,Ed25519,sk_0123456789abcdef,ab12,"), "%s",
              csv);
    cr_assert_eq(csv[len - 1], '\n');
    cr_assert_eq(csv[len - 2], '\r');
    free(csv);
}

Test(invoice_doc, html_escapes_and_groups)
{
    invoice_line lines[] = {L("usage", "<script>", "tenant", "", 7, 1500, 10500),
                            L("contract_discount", "vip&co", "tenant", "", 0, 0, -500)};
    invoice_doc d = sample(lines, 2);
    size_t len;
    char *h = invoice_html(&d, "ab12", "{\"a\":\"<b>\"}", &len);

    cr_assert_not_null(h);
    cr_assert_null(strstr(h, "<script>"));
    cr_assert(strstr(h, "&lt;script&gt;"));
    cr_assert(strstr(h, "vip&amp;co"));
    cr_assert(strstr(h, "data-group=\"charges\""));
    cr_assert(strstr(h, "data-group=\"discounts\""));
    cr_assert(strstr(h, "0.010000 USD"), "total due 0.010500 - 0.000500");
    cr_assert(strstr(h, "{&quot;a&quot;:&quot;&lt;b&gt;&quot;}"));
    cr_assert(strstr(h, "sk_0123456789abcdef"));
    free(h);
}
