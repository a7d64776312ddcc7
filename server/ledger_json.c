/*
 * ledger_json.c - ledger transactions as JSON (API responses and export
 * lines) and as database rows, plus the time and hex helpers they need.
 * Invariant: a transaction rendered by ledger_txn_json and parsed back by
 * ledger_row_from_json is the same transaction, field for field (amounts are
 * exact decimal strings, times are also given as integer microseconds).
 */
#include "ledger_svc.h"
#include "timefmt.h"
#include "money.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t ledger_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ledger_hex(const unsigned char *p, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, p, n);
}

int ledger_unhex(const char *s, unsigned char *out, size_t n)
{
    size_t got = 0;

    if (!s || strlen(s) != 2 * n)
        return -1;
    if (sodium_hex2bin(out, n, s, 2 * n, NULL, &got, NULL) != 0 || got != n)
        return -1;
    return 0;
}

void ledger_time_fmt(int64_t us, char *out, size_t cap)
{
    timefmt_format_us(us, out, cap);
}

int ledger_time_parse(const char *s, int64_t *out)
{
    return timefmt_parse_us(s, out);
}

json_t *ledger_money_json(int64_t micros)
{
    char buf[MONEY_FMT_MAX];

    if (money_format(micros, buf, sizeof buf) < 0)
        return json_null();
    return json_string(buf);
}

static void set_opt(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v && *v ? json_string(v) : json_null());
}

json_t *ledger_txn_json(const ledger_txn *t, const ledger_entry_info *info, const char *hold_id)
{
    json_t *o = json_object(), *ents = json_array();
    char hex[2 * LEDGER_SIG_BYTES + 1], ts[40];

    json_object_set_new(o, "id", json_string(t->id));
    json_object_set_new(o, "kind", json_string(ledger_kind_name(t->kind)));
    json_object_set_new(o, "partition", json_integer(t->partition));
    json_object_set_new(o, "seq", json_integer((json_int_t)t->seq));
    json_object_set_new(o, "memo", json_string(t->memo));
    set_opt(o, "order_id", t->order_id);
    set_opt(o, "usage_id", t->usage_id);
    set_opt(o, "invoice_id", t->invoice_id);
    set_opt(o, "reverses_id", t->reverses_id);
    set_opt(o, "hold_id", hold_id);
    set_opt(o, "idempotency_key", t->idempotency_key);
    ledger_time_fmt(t->effective_us, ts, sizeof ts);
    json_object_set_new(o, "effective_at", json_string(ts));
    ledger_time_fmt(t->inserted_us, ts, sizeof ts);
    json_object_set_new(o, "inserted_at", json_string(ts));
    json_object_set_new(o, "effective_us", json_integer(t->effective_us));
    json_object_set_new(o, "inserted_us", json_integer(t->inserted_us));
    for (size_t i = 0; i < t->n_entries; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "account", json_string(t->entries[i].account));
        json_object_set_new(e, "currency", json_string(t->entries[i].currency));
        json_object_set_new(e, "amount", ledger_money_json(t->entries[i].amount));
        if (info) {
            json_object_set_new(e, "balance_before", ledger_money_json(info[i].before));
            json_object_set_new(e, "balance_after", ledger_money_json(info[i].after));
            json_object_set_new(e, "account_version", json_integer((json_int_t)info[i].version));
            json_object_set_new(e, "shard", json_integer(info[i].shard));
        }
        json_array_append_new(ents, e);
    }
    json_object_set_new(o, "entries", ents);
    ledger_hex(t->prev_hash, LEDGER_HASH_BYTES, hex);
    json_object_set_new(o, "prev_hash", json_string(hex));
    ledger_hex(t->hash, LEDGER_HASH_BYTES, hex);
    json_object_set_new(o, "hash", json_string(hex));
    json_object_set_new(o, "kid", json_string(t->kid));
    ledger_hex(t->sig, LEDGER_SIG_BYTES, hex);
    json_object_set_new(o, "sig", json_string(hex));
    return o;
}

void ledger_row_clear(ledger_row *r)
{
    free(r->canonical);
    memset(r, 0, sizeof *r);
}

static void copy_opt(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int64_t to_i64(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

int ledger_row_from_pg(PGresult *res, int i, ledger_row *r)
{
#define V(col) (PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col))
    json_t *ents;
    const char *hex;

    memset(r, 0, sizeof *r);
    ledger_txn_init(&r->t);
    copy_opt(r->t.id, sizeof r->t.id, V(0));
    r->t.partition = (uint32_t)to_i64(V(1));
    r->t.seq = (uint64_t)to_i64(V(2));
    if (ledger_kind_parse(V(3) ? V(3) : "", &r->t.kind) != 0)
        r->t.kind = 0;
    copy_opt(r->t.memo, sizeof r->t.memo, V(4));
    copy_opt(r->t.order_id, sizeof r->t.order_id, V(5));
    copy_opt(r->t.usage_id, sizeof r->t.usage_id, V(6));
    copy_opt(r->t.invoice_id, sizeof r->t.invoice_id, V(7));
    copy_opt(r->t.reverses_id, sizeof r->t.reverses_id, V(8));
    copy_opt(r->t.idempotency_key, sizeof r->t.idempotency_key, V(9));
    r->t.effective_us = to_i64(V(10));
    r->t.inserted_us = to_i64(V(11));
    if (ledger_unhex(V(12), r->t.prev_hash, LEDGER_HASH_BYTES) ||
        ledger_unhex(V(13), r->t.hash, LEDGER_HASH_BYTES) ||
        ledger_unhex(V(15), r->t.sig, LEDGER_SIG_BYTES))
        return -1;
    copy_opt(r->t.kid, sizeof r->t.kid, V(14));
    copy_opt(r->hold_id, sizeof r->hold_id, V(16));
    copy_opt(r->caller, sizeof r->caller, V(17));
    hex = V(18);
    if (hex) {
        size_t n = strlen(hex) / 2;
        r->canonical = malloc(n ? n : 1);
        if (!r->canonical || ledger_unhex(hex, r->canonical, n) != 0)
            return -1;
        r->canonical_len = n;
    }
    ents = V(19) ? json_loads(V(19), 0, NULL) : NULL;
    if (ents) {
        size_t k;
        json_t *e;
        json_array_foreach(ents, k, e)
        {
            if (k >= LEDGER_MAX_ENTRIES)
                break;
            copy_opt(r->t.entries[k].account, sizeof r->t.entries[k].account,
                     json_string_value(json_array_get(e, 0)));
            copy_opt(r->t.entries[k].currency, sizeof r->t.entries[k].currency,
                     json_string_value(json_array_get(e, 1)));
            r->t.entries[k].amount = json_integer_value(json_array_get(e, 2));
            r->info[k].shard = (int32_t)json_integer_value(json_array_get(e, 3));
            r->info[k].before = json_integer_value(json_array_get(e, 4));
            r->info[k].after = json_integer_value(json_array_get(e, 5));
            r->info[k].version = (uint64_t)json_integer_value(json_array_get(e, 6));
            r->t.n_entries = k + 1;
        }
        json_decref(ents);
    }
    return 0;
#undef V
}

static int get_str(json_t *o, const char *k, char *dst, size_t cap, int required)
{
    json_t *v = json_object_get(o, k);

    if (!v || json_is_null(v)) {
        dst[0] = '\0';
        return required ? -1 : 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap)
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_money(json_t *o, const char *k, int64_t *out)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) && money_parse(json_string_value(v), out) == MONEY_OK ? 0 : -1;
}

int ledger_row_from_json(json_t *o, ledger_row *r, char *err, size_t errlen)
{
    char kind[16], hex[2 * LEDGER_SIG_BYTES + 1];
    json_t *ents, *e;
    size_t k;

    memset(r, 0, sizeof *r);
    ledger_txn_init(&r->t);
    if (get_str(o, "id", r->t.id, sizeof r->t.id, 1) || get_str(o, "kind", kind, sizeof kind, 1) ||
        ledger_kind_parse(kind, &r->t.kind) != 0 ||
        get_str(o, "memo", r->t.memo, sizeof r->t.memo, 0) ||
        get_str(o, "order_id", r->t.order_id, sizeof r->t.order_id, 0) ||
        get_str(o, "usage_id", r->t.usage_id, sizeof r->t.usage_id, 0) ||
        get_str(o, "invoice_id", r->t.invoice_id, sizeof r->t.invoice_id, 0) ||
        get_str(o, "reverses_id", r->t.reverses_id, sizeof r->t.reverses_id, 0) ||
        get_str(o, "hold_id", r->hold_id, sizeof r->hold_id, 0) ||
        get_str(o, "idempotency_key", r->t.idempotency_key, sizeof r->t.idempotency_key, 0) ||
        get_str(o, "kid", r->t.kid, sizeof r->t.kid, 1) ||
        !json_is_integer(json_object_get(o, "partition")) ||
        !json_is_integer(json_object_get(o, "seq")) ||
        !json_is_integer(json_object_get(o, "effective_us")) ||
        !json_is_integer(json_object_get(o, "inserted_us"))) {
        snprintf(err, errlen, "malformed transaction object");
        return -1;
    }
    r->t.partition = (uint32_t)json_integer_value(json_object_get(o, "partition"));
    r->t.seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
    r->t.effective_us = json_integer_value(json_object_get(o, "effective_us"));
    r->t.inserted_us = json_integer_value(json_object_get(o, "inserted_us"));
    if (get_str(o, "prev_hash", hex, sizeof hex, 1) ||
        ledger_unhex(hex, r->t.prev_hash, LEDGER_HASH_BYTES) ||
        get_str(o, "hash", hex, sizeof hex, 1) || ledger_unhex(hex, r->t.hash, LEDGER_HASH_BYTES) ||
        get_str(o, "sig", hex, sizeof hex, 1) || ledger_unhex(hex, r->t.sig, LEDGER_SIG_BYTES)) {
        snprintf(err, errlen, "transaction %s: malformed hash or signature", r->t.id);
        return -1;
    }
    ents = json_object_get(o, "entries");
    if (!json_is_array(ents) || json_array_size(ents) > LEDGER_MAX_ENTRIES) {
        snprintf(err, errlen, "transaction %s: malformed entries", r->t.id);
        return -1;
    }
    json_array_foreach(ents, k, e)
    {
        json_t *sh = json_object_get(e, "shard"), *ver = json_object_get(e, "account_version");
        if (get_str(e, "account", r->t.entries[k].account, sizeof r->t.entries[k].account, 1) ||
            get_str(e, "currency", r->t.entries[k].currency, sizeof r->t.entries[k].currency, 1) ||
            get_money(e, "amount", &r->t.entries[k].amount) ||
            get_money(e, "balance_before", &r->info[k].before) ||
            get_money(e, "balance_after", &r->info[k].after) || !json_is_integer(sh) ||
            !json_is_integer(ver)) {
            snprintf(err, errlen, "transaction %s: malformed entry %zu", r->t.id, k);
            return -1;
        }
        r->info[k].shard = (int32_t)json_integer_value(sh);
        r->info[k].version = (uint64_t)json_integer_value(ver);
        r->t.n_entries = k + 1;
    }
    if (get_str(o, "canonical", hex, 1, 0) != 0) {
        const char *c = json_string_value(json_object_get(o, "canonical"));
        size_t n = c ? strlen(c) / 2 : 0;
        r->canonical = malloc(n ? n : 1);
        if (!r->canonical || !c || ledger_unhex(c, r->canonical, n) != 0) {
            snprintf(err, errlen, "transaction %s: malformed canonical bytes", r->t.id);
            return -1;
        }
        r->canonical_len = n;
    }
    return 0;
}
