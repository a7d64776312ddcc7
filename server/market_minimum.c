/*
 * market_minimum.c - the top-up to an order's minimum charge, written at its end.
 * Invariant: at most one top-up per order (its record id is unique per provider,
 * and the order's row lock plus its final state admit one ending); the top-up
 * record, its capture settlement, the order's totals and the period state commit
 * together with the order's final state.
 */
#include "ids.h"
#include "ledger_svc.h"
#include "log.h"
#include "market_minimum.h"
#include "market_usage.h"
#include "pricing_store.h"
#include "server.h"
#include "timefmt.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINIMUM_SIGN_DOMAIN "tally-minimum-v1\n"

/* The order (locked by the caller) and its provider charges: the tenant lines of its
 * accepted, unreversed records, without the platform fee. */
static const char sql_order[] =
    "SELECT o.tenant_id, o.provider_id, o.device_id, o.count, o.policy_id, o.policy_version, "
    "o.currency, o.hold_micros, o.captured_micros, coalesce(o.hold_id, ''), "
    "(extract(epoch FROM o.start_at) * 1000)::bigint, (SELECT coalesce(sum((l->>'amount')::"
    "bigint), 0) FROM usage_records u CROSS JOIN LATERAL jsonb_array_elements(u.lines) l WHERE "
    "u.order_id = o.id AND u.reverses IS NULL AND l->>'payer' = 'tenant' AND l->>'kind' <> "
    "'platform_fee' AND NOT EXISTS (SELECT 1 FROM usage_records v WHERE v.provider_id = "
    "u.provider_id AND v.reverses = u.record_id))::bigint FROM orders o WHERE o.id = $1";
static const char sql_record[] =
    "INSERT INTO usage_records (id, provider_id, record_id, order_id, device_id, count, "
    "start_at, end_at, start_ms, end_ms, work_mcu, mcu, device_ms, currency, amount_micros, "
    "fee_micros, period, billed_period, lines, key_id, signature, canonical, record_hash, "
    "batch_id, settlement_id) VALUES ($1, $2, $3, $4, $5, $6::int, timestamptz 'epoch' + "
    "$7::bigint * interval '1 millisecond', timestamptz 'epoch' + $8::bigint * interval "
    "'1 millisecond', $7::bigint, $8::bigint, NULL, 0, 0, $9, $10::bigint, $11::bigint, $12, "
    "tally_billed_period($20, $12, $9), $13::jsonb, $14, decode($15, 'hex'), $16, decode($17, "
    "'hex'), $18, $19)";
/* Before its billed period is looked up (migrations/0014_usage_billed_period.sql). */
static const char sql_lock_usage[] = "LOCK TABLE usage_records IN ROW EXCLUSIVE MODE";
static const char sql_settle[] =
    "INSERT INTO settlements (id, order_id, kind, amount, fee, final, state) "
    "VALUES ($1, $2, 'capture', $3, $4, false, 'pending')";
static const char sql_order_add[] =
    "UPDATE orders SET captured_micros = captured_micros + $2, fee_micros = fee_micros + $3, "
    "updated_at = now() WHERE id = $1";

/* What the top-up needs besides the order's row. */
typedef struct mctx {
    struct tally_server *srv;
    db_conn *db;
    PGresult *o; /* sql_order's row */
    pstore_version pol, plat;
    pricing_state st;
    char period[8], version[16];
    int64_t now_ms;
} mctx;

#define O(i) PQgetvalue(c->o, 0, i)

static int applies(order_state from, order_state to)
{
    return (to == ORDER_COMPLETED || to == ORDER_CANCELLED) &&
           (from == ORDER_RUNNING || from == ORDER_MIGRATING);
}

static int lock_state(mctx *c)
{
    return pstore_state_lock(c->db, O(0), O(4), atoi(c->version), c->period, &c->st);
}

static int save_state(mctx *c, const pricing_state *st)
{
    return pstore_state_save(c->db, O(0), O(4), atoi(c->version), c->period, st);
}

/* The top-up's canonical bytes (sorted keys, compact, integers only), what the service signs. */
static char *canonical(const mctx *c, const market_minimum *m, const char *order_id)
{
    json_t *j = json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:s, s:s}", "kind", "minimum", "amount",
                          (json_int_t)m->amount, "charges", (json_int_t)m->charges, "currency",
                          m->currency, "fee", (json_int_t)m->fee, "minimum", (json_int_t)m->minimum,
                          "order_id", order_id, "period", c->period);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

    json_decref(j);
    return s;
}

static void sign_hex(const struct tally_server *srv, const char *text, char sig[129], char hash[65])
{
    size_t dl = strlen(MINIMUM_SIGN_DOMAIN), n = strlen(text);
    unsigned char s[crypto_sign_BYTES], h[32], *msg = malloc(dl + n);

    sig[0] = '\0';
    crypto_generichash(h, sizeof h, (const unsigned char *)text, n, NULL, 0);
    sodium_bin2hex(hash, 65, h, sizeof h);
    if (!msg)
        return;
    memcpy(msg, MINIMUM_SIGN_DOMAIN, dl);
    memcpy(msg + dl, text, n);
    crypto_sign_detached(s, NULL, msg, dl + n, srv->signing->sk);
    free(msg);
    sodium_bin2hex(sig, 129, s, sizeof s);
}

/* The top-up record, its capture settlement and the order's totals. */
static int write_topup(mctx *c, const char *order_id, const pricing_result *res, market_minimum *m)
{
    char rid[80], batch[48], start[24], end[24], amt[24], fee[24], sig[129], hash[65];
    char *canon = canonical(c, m, order_id), *lines = NULL;
    json_t *lj = market_usage_lines_json(res);
    int64_t s = atoll(O(10)), e = c->now_ms > s ? c->now_ms : s + 1;
    int rc = DB_FAILED;

    if (!canon || !lj || !(lines = json_dumps(lj, JSON_COMPACT)))
        goto out;
    sign_hex(c->srv, canon, sig, hash);
    if (!sig[0])
        goto out;
    snprintf(rid, sizeof rid, "%s%s", MARKET_MINIMUM_RECORD_PREFIX, order_id);
    ids_new(m->usage_id, sizeof m->usage_id, "use");
    ids_new(m->settlement_id, sizeof m->settlement_id, "stl");
    ids_new(batch, sizeof batch, "usb");
    snprintf(start, sizeof start, "%lld", (long long)s);
    snprintf(end, sizeof end, "%lld", (long long)e);
    snprintf(amt, sizeof amt, "%lld", (long long)m->amount);
    snprintf(fee, sizeof fee, "%lld", (long long)m->fee);
    {
        const char *p[] = {m->usage_id,
                           O(1),
                           rid,
                           order_id,
                           O(2),
                           O(3),
                           start,
                           end,
                           O(6),
                           amt,
                           fee,
                           c->period,
                           lines,
                           c->srv->signing->kid,
                           sig,
                           canon,
                           hash,
                           batch,
                           m->settlement_id,
                           O(0)};
        const char *q[] = {m->settlement_id, order_id, amt, fee};
        const char *u[] = {order_id, amt, fee};
        rc = db_command(c->db, sql_lock_usage, 0, NULL);
        if (rc == DB_OK)
            rc = db_command(c->db, sql_record, 20, p);
        if (rc == DB_OK)
            rc = db_command(c->db, sql_settle, 4, q);
        if (rc == DB_OK)
            rc = db_command(c->db, sql_order_add, 3, u);
        if (rc == DB_OK)
            rc = save_state(c, &res->state);
    }
out:
    json_decref(lj);
    free(lines);
    free(canon);
    return rc;
}

/* Price the top-up and write it when the hold covers it. */
static int top_up(mctx *c, const char *order_id, market_minimum *m)
{
    pricing_result *res = malloc(sizeof *res);
    pricing_error err;
    int64_t rest = atoll(O(7)) - atoll(O(8));
    int rc;

    if (!res)
        return DB_FAILED;
    if ((rc = lock_state(c)) != DB_OK)
        goto out;
    if (pricing_minimum_trueup(c->pol.policy, c->plat.policy, m->charges, &c->st, res, &err) !=
        PRICING_OK) {
        log_warn("market", "order %s: the minimum cannot be priced: %s", order_id, err.message);
        goto out;
    }
    if (res->total <= 0)
        goto out; /* the order's charges reach the minimum */
    if (res->total > rest) {
        m->shortfall = res->total;
        log_warn("market",
                 "order %s: its hold (%lld left) cannot cover the minimum's top-up "
                 "(%lld): not charged",
                 order_id, (long long)rest, (long long)res->total);
        goto out;
    }
    m->amount = res->total;
    if (order_fee_split(res->total, res->provider_net, &m->fee) != 0)
        m->fee = 0;
    if ((rc = write_topup(c, order_id, res, m)) == DB_OK)
        m->charged = 1;
out:
    free(res);
    return rc;
}

int market_minimum_charge(struct tally_server *srv, db_conn *db, const char *order_id,
                          order_state from, order_state to, market_minimum *m)
{
    mctx ctx = {.srv = srv, .db = db}, *c = &ctx;
    const char *p[] = {order_id};
    int rc = DB_OK;

    memset(m, 0, sizeof *m);
    if (!applies(from, to))
        return DB_OK;
    if (!(c->o = db_exec(db, sql_order, 1, p)))
        return db_last_status(db);
    if (PQntuples(c->o) != 1 || !O(9)[0])
        goto out; /* no hold: nothing can be captured */
    if ((rc = pstore_load(db, O(4), atoi(O(5)), &c->pol)) < 0 ||
        (rc == 1 && (rc = pstore_load_platform(db, &c->plat)) < 0))
        goto out;
    rc = DB_OK;
    if (!c->pol.ref || c->pol.policy->minimum_rule < 0)
        goto out;
    m->applies = 1;
    m->minimum = c->pol.policy->rules[c->pol.policy->minimum_rule].u.minimum;
    m->charges = atoll(O(11));
    snprintf(m->currency, sizeof m->currency, "%s", O(6));
    snprintf(c->version, sizeof c->version, "%s", O(5));
    c->now_ms = timefmt_now_ms();
    timefmt_period(c->now_ms, c->period);
    rc = top_up(c, order_id, m);
out:
    pstore_release(&c->plat);
    pstore_release(&c->pol);
    PQclear(c->o);
    return rc;
}

#undef O

json_t *market_minimum_json(const market_minimum *m)
{
    json_t *j;

    if (!m->applies)
        return NULL;
    j = json_pack("{s:o, s:o, s:o, s:o}", "minimum", ledger_money_json(m->minimum), "charges",
                  ledger_money_json(m->charges), "top_up", ledger_money_json(m->amount),
                  "platform_fee", ledger_money_json(m->fee));
    if (m->charged) {
        json_object_set_new(j, "usage_id", json_string(m->usage_id));
        json_object_set_new(j, "settlement_id", json_string(m->settlement_id));
    }
    if (m->shortfall)
        json_object_set_new(j, "not_charged", ledger_money_json(m->shortfall));
    return j;
}
