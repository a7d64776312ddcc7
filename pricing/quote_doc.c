/*
 * quote_doc.c - the canonical quote document (see quote_doc.h).
 * Invariant: every object's keys are written in strcmp order; the unit test
 * (tests/unit/test_pricing_quote_doc.c) re-canonicalises with jansson and
 * compares bytes.
 */
#include "quote_doc.h"
#include "jsonw.h"
#include "money.h"

static void money_member(jsonw *w, const char *key, int64_t micros)
{
    char buf[MONEY_FMT_MAX];

    money_format(micros, buf, sizeof buf);
    jw_key(w, key);
    jw_str(w, buf);
}

static const char *qty_unit_name(pricing_qty_unit u)
{
    return u == PRICING_QTY_MCU ? "mcu" : u == PRICING_QTY_DEVICE_MS ? "device_ms" : "money";
}

/* A line item: amount, amount_micros, description, [factor_ppm], kind,
 * quantity, quantity_unit, rule_id, rule_kind, [unit_price]. */
static void line(jsonw *w, const pricing_line *l)
{
    jw_open(w);
    money_member(w, "amount", l->amount);
    jw_key(w, "amount_micros");
    jw_int(w, l->amount);
    jw_key(w, "description");
    jw_str(w, l->description);
    if (l->qty_unit == PRICING_QTY_MONEY) {
        jw_key(w, "factor_ppm");
        jw_int(w, l->unit_price);
    }
    jw_key(w, "kind");
    jw_str(w, pricing_line_kind_name(l->kind));
    jw_key(w, "quantity");
    jw_int(w, l->quantity);
    jw_key(w, "quantity_unit");
    jw_str(w, qty_unit_name(l->qty_unit));
    jw_key(w, "rule_id");
    jw_str(w, l->rule_id);
    jw_key(w, "rule_kind");
    jw_str(w, pricing_rule_kind_name(l->rule_kind));
    if (l->qty_unit != PRICING_QTY_MONEY)
        money_member(w, "unit_price", l->unit_price);
    jw_close(w);
}

static void mcu_decimal(jsonw *w, long long mcu)
{
    unsigned long long a = mcu < 0 ? 0ull - (unsigned long long)mcu : (unsigned long long)mcu;
    char buf[32];
    size_t n = sizeof buf - 1;

    buf[n] = '\0';
    for (int i = 0; i < 3; i++, a /= 10)
        buf[--n] = (char)('0' + a % 10);
    buf[--n] = '.';
    do {
        buf[--n] = (char)('0' + a % 10);
        a /= 10;
    } while (a);
    if (mcu < 0)
        buf[--n] = '-';
    jw_str(w, buf + n);
}

static void workload(jsonw *w, const quote_doc_meta *m)
{
    jw_key(w, "workload");
    jw_open(w);
    jw_key(w, "count");
    jw_int(w, m->count);
    jw_key(w, "cu");
    mcu_decimal(w, m->mcu);
    jw_key(w, "device");
    jw_str(w, m->device);
    jw_key(w, "device_ms");
    jw_int(w, m->device_ms);
    jw_key(w, "mcu");
    jw_int(w, m->mcu);
    jw_key(w, "profile");
    jw_open(w);
    jw_key(w, "class");
    jw_str(w, m->profile_class);
    jw_key(w, "intensity_milli");
    jw_int(w, m->profile_intensity_milli);
    jw_key(w, "precision");
    jw_str(w, m->profile_precision);
    jw_close(w);
    jw_key(w, "region");
    jw_str(w, m->region);
    jw_key(w, "wall_ms");
    jw_int(w, m->wall_ms);
    jw_close(w);
}

static void policies(jsonw *w, const quote_doc_meta *m)
{
    jw_key(w, "platform_policy");
    if (m->platform_policy_id) {
        jw_open(w);
        jw_key(w, "id");
        jw_str(w, m->platform_policy_id);
        jw_key(w, "version");
        jw_int(w, m->platform_policy_version);
        jw_close(w);
    } else {
        jw_null(w);
    }
    jw_key(w, "policy");
    jw_open(w);
    jw_key(w, "id");
    jw_str(w, m->policy_id);
    jw_key(w, "sha256");
    jw_str(w, m->policy_sha256);
    jw_key(w, "version");
    jw_int(w, m->policy_version);
    jw_close(w);
}

char *quote_doc_write(const quote_doc_meta *m, const pricing_result *res, size_t *len)
{
    jsonw w;

    jw_init(&w);
    jw_open(&w);
    jw_key(&w, "catalog_version");
    jw_str(&w, m->catalog_version);
    jw_key(&w, "created_at");
    jw_str(&w, m->created_at);
    jw_key(&w, "currency");
    jw_str(&w, res->currency);
    jw_key(&w, "efficiency_version");
    jw_int(&w, m->efficiency_version);
    jw_key(&w, "expires_at");
    jw_str(&w, m->expires_at);
    jw_key(&w, "id");
    jw_str(&w, m->id);
    jw_key(&w, "interval");
    jw_open(&w);
    jw_key(&w, "end");
    jw_str(&w, m->interval_end);
    jw_key(&w, "start");
    jw_str(&w, m->interval_start);
    jw_close(&w);
    jw_key(&w, "lines");
    jw_open_array(&w);
    for (size_t i = 0; i < res->n_lines; i++)
        line(&w, &res->lines[i]);
    jw_close_array(&w);
    policies(&w, m);
    jw_key(&w, "provider_fee");
    if (res->has_provider_fee)
        line(&w, &res->provider_fee);
    else
        jw_null(&w);
    money_member(&w, "provider_net", res->provider_net);
    jw_key(&w, "tenant_id");
    jw_str(&w, m->tenant_id);
    money_member(&w, "total", res->total);
    jw_key(&w, "total_micros");
    jw_int(&w, res->total);
    jw_key(&w, "utilisation_ppm");
    if (m->utilisation_ppm >= 0)
        jw_int(&w, m->utilisation_ppm);
    else
        jw_null(&w);
    workload(&w, m);
    jw_close(&w);
    return jw_take(&w, len);
}
