/*
 * usage_lines.c - a rating's line items as stored in usage_records.lines.
 * Invariant: usage_lines_text and usage_lines_json describe the same JSON value
 * (tests/unit/test_market_usage.c compares them).
 */
#include "usage_lines.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *unit_name(pricing_qty_unit u)
{
    return u == PRICING_QTY_MCU ? "mcu" : u == PRICING_QTY_DEVICE_MS ? "device_ms" : "money_ppm";
}

/* A JSON string of s at out (room for 6 bytes per input byte + 3): control characters, '"'
 * and '\\' escaped; other bytes (UTF-8) copied. Returns the bytes written. */
static size_t put_string(char *out, const char *s)
{
    size_t n = 0;

    out[n++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)sprintf(out + n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    return n;
}

/* Bytes one line can need: the fixed text (under 128), the names, three int64s (20 each) and
 * the escaped rule id. */
static size_t line_bound(const pricing_line *l)
{
    return 128 + strlen(pricing_line_kind_name(l->kind)) +
           strlen(pricing_rule_kind_name(l->rule_kind)) + 3 * 20 + 6 * strlen(l->rule_id) + 3;
}

static size_t put_line(char *out, const pricing_line *l, const char *payer)
{
    size_t n =
        (size_t)sprintf(out, "{\"kind\":\"%s\",\"rule_id\":", pricing_line_kind_name(l->kind));

    n += put_string(out + n, l->rule_id);
    n += (size_t)sprintf(out + n,
                         ",\"rule_kind\":\"%s\",\"quantity\":%" PRId64 ",\"unit\":\"%s\","
                         "\"unit_price\":%" PRId64 ",\"amount\":%" PRId64 ",\"payer\":\"%s\"}",
                         pricing_rule_kind_name(l->rule_kind), l->quantity, unit_name(l->qty_unit),
                         l->unit_price, l->amount, payer);
    return n;
}

char *usage_lines_text(const pricing_result *res)
{
    size_t cap = 3, n = 0;
    char *s;

    for (size_t i = 0; i < res->n_lines; i++)
        cap += line_bound(&res->lines[i]) + 1;
    if (res->has_provider_fee)
        cap += line_bound(&res->provider_fee) + 1;
    if (!(s = malloc(cap)))
        return NULL;
    s[n++] = '[';
    for (size_t i = 0; i < res->n_lines; i++) {
        if (i)
            s[n++] = ',';
        n += put_line(s + n, &res->lines[i], "tenant");
    }
    if (res->has_provider_fee) {
        if (res->n_lines)
            s[n++] = ',';
        n += put_line(s + n, &res->provider_fee, "provider");
    }
    s[n++] = ']';
    s[n] = '\0';
    return s;
}

static json_t *line_json(const pricing_line *l, const char *payer)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:s}", "kind",
                     pricing_line_kind_name(l->kind), "rule_id", l->rule_id, "rule_kind",
                     pricing_rule_kind_name(l->rule_kind), "quantity", (json_int_t)l->quantity,
                     "unit", unit_name(l->qty_unit), "unit_price", (json_int_t)l->unit_price,
                     "amount", (json_int_t)l->amount, "payer", payer);
}

json_t *usage_lines_json(const pricing_result *res)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < res->n_lines; i++)
        json_array_append_new(a, line_json(&res->lines[i], "tenant"));
    if (a && res->has_provider_fee)
        json_array_append_new(a, line_json(&res->provider_fee, "provider"));
    return a;
}
