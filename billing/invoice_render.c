/*
 * invoice_render.c - an invoice as RFC 4180 CSV and as a printable HTML page.
 * Both are pure functions of the invoice_doc (and the signature for final
 * ones); amounts are the exact decimal strings of pricing/money.h.
 */
#include "invoice.h"
#include "../pricing/money.h"

#include <stdio.h>
#include <string.h>

static const char *const groups[] = {"charges", "commitments", "discounts",
                                     "fees",    "adjustments", "provider_fees"};
static const char *const group_titles[] = {"Charges",
                                           "Commitments",
                                           "Discounts and allowances",
                                           "Platform fees",
                                           "Adjustments (reversals, late usage)",
                                           "Platform take paid by providers (not in the total)"};

static const char *fmt(int64_t v, char buf[32])
{
    money_format(v, buf, 32);
    return buf;
}

static void csv_row(invoice_buf *b, const char *const *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            invoice_buf_puts(b, ",");
        invoice_buf_csv(b, f[i]);
    }
    invoice_buf_puts(b, "\r\n");
}

static void csv_lines(invoice_buf *b, const invoice_doc *d)
{
    char q[32], up[32], am[32];

    for (size_t i = 0; i < d->n_lines; i++) {
        const invoice_line *l = &d->lines[i];
        const char *f[] = {"line",
                           d->number[0] ? d->number : d->id,
                           d->period,
                           invoice_group(l),
                           l->kind,
                           l->rule_id,
                           l->from_period,
                           l->payer,
                           l->unit,
                           q,
                           fmt(l->unit_price, up),
                           fmt(l->amount, am),
                           d->currency};
        snprintf(q, sizeof q, "%lld", (long long)l->quantity);
        csv_row(b, f, sizeof f / sizeof f[0]);
    }
}

static void csv_total(invoice_buf *b, const invoice_doc *d, const char *name, int64_t v)
{
    char am[32];
    const char *f[] = {"total",    d->number[0] ? d->number : d->id,
                       d->period,  name,
                       "",         "",
                       "",         "",
                       "",         "",
                       "",         fmt(v, am),
                       d->currency};
    csv_row(b, f, sizeof f / sizeof f[0]);
}

char *invoice_csv(const invoice_doc *d, const char *sig_hex, size_t *len)
{
    static const char *const head[] = {"record",     "document",    "period",  "group", "kind",
                                       "rule_id",    "from_period", "payer",   "unit",  "quantity",
                                       "unit_price", "amount",      "currency"};
    invoice_buf b = {0};
    invoice_totals t;

    if (invoice_totals_compute(d, &t) != 0)
        return NULL;
    csv_row(&b, head, sizeof head / sizeof head[0]);
    csv_lines(&b, d);
    csv_total(&b, d, "charges", t.charges);
    csv_total(&b, d, "commitments", t.commitments);
    csv_total(&b, d, "discounts", t.discounts);
    csv_total(&b, d, "fees", t.fees);
    csv_total(&b, d, "adjustments", t.adjustments);
    csv_total(&b, d, "total", t.total);
    csv_total(&b, d, "provider_fees", t.provider_fees);
    if (sig_hex) {
        const char *f[] = {"signature", d->number, d->period, "Ed25519", d->kid, sig_hex,    "",
                           "",          "",        "",        "",        "",     d->currency};
        csv_row(&b, f, sizeof f / sizeof f[0]);
    }
    return invoice_buf_take(&b, len);
}

/* ---- HTML ----------------------------------------------------------------------------------- */

static const char html_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>Invoice</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#111}\n"
    "table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}\n"
    "th,td{border-bottom:1px solid #ccc;padding:.3em .5em;text-align:left}\n"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\n"
    "h2{font-size:1.1em;margin-top:1.5em}.draft{color:#b00}\n"
    "pre{white-space:pre-wrap;word-break:break-all;background:#f4f4f4;padding:.5em}\n"
    "@media print{pre{font-size:9px}}\n</style></head><body>\n";

static void html_text(invoice_buf *b, const char *tag, const char *s)
{
    invoice_buf_printf(b, "<%s>", tag);
    invoice_buf_html(b, s);
    invoice_buf_printf(b, "</%s>", tag);
}

static void html_header(invoice_buf *b, const invoice_doc *d)
{
    invoice_buf_puts(b, "<h1>Invoice ");
    invoice_buf_html(b, d->number[0] ? d->number : "(draft)");
    invoice_buf_puts(b, "</h1>\n<table class=\"meta\">");
    invoice_buf_puts(b, "<tr><th>Invoice id</th>");
    html_text(b, "td", d->id);
    invoice_buf_puts(b, "</tr>\n<tr><th>Tenant</th>");
    html_text(b, "td", d->tenant_id);
    invoice_buf_puts(b, "</tr>\n<tr><th>Period</th>");
    html_text(b, "td", d->period);
    invoice_buf_puts(b, "</tr>\n<tr><th>Currency</th>");
    html_text(b, "td", d->currency);
    invoice_buf_puts(b, "</tr>\n<tr><th>Issued</th>");
    html_text(b, "td", d->issued_at[0] ? d->issued_at : "not yet: this is a draft");
    invoice_buf_printf(b, "</tr>\n<tr><th>Usage records</th><td>%lld</td></tr></table>\n",
                       (long long)d->records);
    if (!d->number[0])
        invoice_buf_puts(b, "<p class=\"draft\">DRAFT: not numbered, not signed.</p>\n");
}

static void html_group(invoice_buf *b, const invoice_doc *d, size_t g)
{
    char up[32], am[32];
    int any = 0;

    for (size_t i = 0; i < d->n_lines; i++) {
        const invoice_line *l = &d->lines[i];
        if (strcmp(invoice_group(l), groups[g]) != 0)
            continue;
        if (!any++) {
            invoice_buf_printf(b, "<h2>%s</h2>\n<table class=\"lines\" data-group=\"%s\">",
                               group_titles[g], groups[g]);
            invoice_buf_puts(b, "<tr><th>Kind</th><th>Rule</th><th>From period</th><th "
                                "class=\"n\">Quantity</th><th>Unit</th><th class=\"n\">Unit "
                                "price</th><th class=\"n\">Amount</th></tr>\n");
        }
        invoice_buf_puts(b, "<tr>");
        html_text(b, "td", l->kind);
        html_text(b, "td", l->rule_id);
        html_text(b, "td", l->from_period);
        invoice_buf_printf(b, "<td class=\"n\">%lld</td>", (long long)l->quantity);
        html_text(b, "td", l->unit);
        invoice_buf_printf(b, "<td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
                           fmt(l->unit_price, up), fmt(l->amount, am));
    }
    if (any)
        invoice_buf_puts(b, "</table>\n");
}

static void html_totals(invoice_buf *b, const invoice_doc *d, const invoice_totals *t)
{
    const char *names[] = {"Charges",       "Commitments", "Discounts and allowances",
                           "Platform fees", "Adjustments", "Total due"};
    const int64_t v[] = {t->charges, t->commitments, t->discounts,
                         t->fees,    t->adjustments, t->total};
    char am[32];

    invoice_buf_puts(b, "<h2>Totals</h2>\n<table class=\"totals\">");
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        invoice_buf_printf(b, "<tr><th>%s</th><td class=\"n\" id=\"total-%zu\">%s %s</td></tr>\n",
                           names[i], i, fmt(v[i], am), d->currency);
    invoice_buf_puts(b, "</table>\n");
}

static void html_signature(invoice_buf *b, const invoice_doc *d, const char *sig,
                           const char *canonical)
{
    invoice_buf_puts(b, "<h2>Signature</h2>\n<table class=\"sig\"><tr><th>Algorithm</th>"
                        "<td>Ed25519</td></tr>\n<tr><th>Key id</th>");
    html_text(b, "td", d->kid);
    invoice_buf_puts(b, "</tr>\n<tr><th>Signature</th>");
    html_text(b, "td", sig);
    invoice_buf_puts(
        b, "</tr></table>\n<p>To verify: fetch the public key with this key id from "
           "<code>GET /v1/ledger/keys</code>; the signature covers the bytes "
           "<code>tally-invoice-v1\\n</code> followed by the canonical document below "
           "(UTF-8, exactly as shown; it is also the <code>document</code> member of "
           "<code>GET /v1/invoices/{id}</code>). Any Ed25519 library checks it, e.g. "
           "libsodium's <code>crypto_sign_verify_detached</code>.</p>\n<pre id=\"canonical\">");
    invoice_buf_html(b, canonical);
    invoice_buf_puts(b, "</pre>\n");
}

char *invoice_html(const invoice_doc *d, const char *sig_hex, const char *canonical, size_t *len)
{
    invoice_buf b = {0};
    invoice_totals t;

    if (invoice_totals_compute(d, &t) != 0)
        return NULL;
    invoice_buf_puts(&b, html_head);
    html_header(&b, d);
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        html_group(&b, d, g);
    html_totals(&b, d, &t);
    if (sig_hex && canonical)
        html_signature(&b, d, sig_hex, canonical);
    invoice_buf_puts(&b, "</body></html>\n");
    return invoice_buf_take(&b, len);
}
