/*
 * invoice.c - the invoice model: line groups, totals, the stored line JSON and
 * the canonical document that the service key signs (see invoice.h).
 */
#include "invoice.h"
#include "../pricing/jsonw.h" /* billing may depend on pricing (DESIGN.md) */
#include "../pricing/money.h"

#include <stdlib.h>
#include <string.h>

static int is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

const char *invoice_group(const invoice_line *l)
{
    if (is(l->payer, "provider"))
        return "provider_fees";
    if (l->from_period[0] || is(l->kind, "reversal"))
        return "adjustments";
    if (is(l->kind, "commitment"))
        return "commitments";
    if (is(l->kind, "contract_discount") || is(l->kind, "free_allowance"))
        return "discounts";
    if (is(l->kind, "platform_fee"))
        return "fees";
    return "charges";
}

static int add(int64_t *acc, int64_t v)
{
    return __builtin_add_overflow(*acc, v, acc) ? -1 : 0;
}

int invoice_totals_compute(const invoice_doc *d, invoice_totals *t)
{
    *t = (invoice_totals){0};
    for (size_t i = 0; i < d->n_lines; i++) {
        const invoice_line *l = &d->lines[i];
        const char *g = invoice_group(l);
        int64_t *slot = is(g, "provider_fees") ? &t->provider_fees
                        : is(g, "adjustments") ? &t->adjustments
                        : is(g, "commitments") ? &t->commitments
                        : is(g, "discounts")   ? &t->discounts
                        : is(g, "fees")        ? &t->fees
                                               : &t->charges;
        if (add(slot, l->amount) != 0)
            return -1;
        if (slot != &t->provider_fees && add(&t->total, l->amount) != 0)
            return -1;
    }
    return 0;
}

static int copy_str(char *dst, size_t cap, const json_t *v, int required)
{
    if (!v && !required) {
        dst[0] = '\0';
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int line_from_json(invoice_line *l, const json_t *o)
{
    const json_t *up = json_object_get(o, "unit_price"), *q = json_object_get(o, "quantity"),
                 *a = json_object_get(o, "amount");

    if (!json_is_object(o) || !json_is_integer(up) || !json_is_integer(q) || !json_is_integer(a))
        return -1;
    if (copy_str(l->kind, sizeof l->kind, json_object_get(o, "kind"), 1) ||
        copy_str(l->rule_id, sizeof l->rule_id, json_object_get(o, "rule_id"), 0) ||
        copy_str(l->unit, sizeof l->unit, json_object_get(o, "unit"), 1) ||
        copy_str(l->payer, sizeof l->payer, json_object_get(o, "payer"), 1) ||
        copy_str(l->from_period, sizeof l->from_period, json_object_get(o, "from_period"), 0))
        return -1;
    l->unit_price = json_integer_value(up);
    l->quantity = json_integer_value(q);
    l->amount = json_integer_value(a);
    return 0;
}

int invoice_lines_from_json(invoice_doc *d, const json_t *lines)
{
    size_t n = json_array_size(lines);

    free(d->lines);
    d->lines = NULL;
    d->n_lines = 0;
    if (!json_is_array(lines) || n > INVOICE_MAX_LINES)
        return -1;
    if (n == 0)
        return 0;
    if (!(d->lines = calloc(n, sizeof *d->lines)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (line_from_json(&d->lines[i], json_array_get(lines, i)) != 0) {
            free(d->lines);
            d->lines = NULL;
            return -1;
        }
    }
    d->n_lines = n;
    return 0;
}

json_t *invoice_lines_to_json(const invoice_doc *d)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < d->n_lines; i++) {
        const invoice_line *l = &d->lines[i];
        if (json_array_append_new(
                a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "kind", l->kind, "rule_id",
                             l->rule_id, "unit", l->unit, "payer", l->payer, "from_period",
                             l->from_period, "unit_price", (json_int_t)l->unit_price, "quantity",
                             (json_int_t)l->quantity, "amount", (json_int_t)l->amount)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static void jw_money(jsonw *w, int64_t v)
{
    char m[32];
    money_format(v, m, sizeof m);
    jw_str(w, m);
}

/* Keys in strcmp order, so the text equals jansson's JSON_SORT_KEYS output. */
static void canon_line(jsonw *w, const invoice_line *l)
{
    jw_open(w);
    jw_key(w, "amount");
    jw_money(w, l->amount);
    jw_key(w, "from_period");
    jw_str(w, l->from_period);
    jw_key(w, "group");
    jw_str(w, invoice_group(l));
    jw_key(w, "kind");
    jw_str(w, l->kind);
    jw_key(w, "payer");
    jw_str(w, l->payer);
    jw_key(w, "quantity");
    jw_int(w, l->quantity);
    jw_key(w, "rule_id");
    jw_str(w, l->rule_id);
    jw_key(w, "unit");
    jw_str(w, l->unit);
    jw_key(w, "unit_price");
    jw_money(w, l->unit_price);
    jw_close(w);
}

static void canon_totals(jsonw *w, const invoice_totals *t)
{
    jw_open(w);
    jw_key(w, "adjustments");
    jw_money(w, t->adjustments);
    jw_key(w, "charges");
    jw_money(w, t->charges);
    jw_key(w, "commitments");
    jw_money(w, t->commitments);
    jw_key(w, "discounts");
    jw_money(w, t->discounts);
    jw_key(w, "fees");
    jw_money(w, t->fees);
    jw_key(w, "provider_fees");
    jw_money(w, t->provider_fees);
    jw_key(w, "total");
    jw_money(w, t->total);
    jw_close(w);
}

char *invoice_canonical(const invoice_doc *d, size_t *len)
{
    invoice_totals t;
    jsonw w;

    if (invoice_totals_compute(d, &t) != 0)
        return NULL;
    jw_init(&w);
    jw_open(&w);
    jw_key(&w, "currency");
    jw_str(&w, d->currency);
    jw_key(&w, "id");
    jw_str(&w, d->id);
    jw_key(&w, "issued_at");
    jw_str(&w, d->issued_at);
    jw_key(&w, "kid");
    jw_str(&w, d->kid);
    jw_key(&w, "lines");
    jw_open_array(&w);
    for (size_t i = 0; i < d->n_lines; i++)
        canon_line(&w, &d->lines[i]);
    jw_close_array(&w);
    jw_key(&w, "number");
    jw_str(&w, d->number);
    jw_key(&w, "period");
    jw_str(&w, d->period);
    jw_key(&w, "records");
    jw_int(&w, d->records);
    jw_key(&w, "tenant_id");
    jw_str(&w, d->tenant_id);
    jw_key(&w, "totals");
    canon_totals(&w, &t);
    jw_key(&w, "type");
    jw_str(&w, d->type[0] ? d->type : "invoice");
    jw_key(&w, "version");
    jw_int(&w, 1);
    jw_close(&w);
    return jw_take(&w, len);
}

void invoice_doc_clear(invoice_doc *d)
{
    free(d->lines);
    d->lines = NULL;
    d->n_lines = 0;
}
