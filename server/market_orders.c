/*
 * market_orders.c - create an order (rank, reserve, hold) and show orders.
 *
 * Exactly once: an order made under an Idempotency-Key is unique per (tenant,
 * key) in the orders table itself; a retry finds it and answers with the
 * order as it stands (a concurrent duplicate that loses the insert race re-runs
 * and finds the winner). The hold is a settlement applied through the ledger
 * after the order commits (market_settle.h).
 */
#include "ids.h"
#include "market_orders.h"
#include "market_settle.h"
#include "money.h"
#include "order.h"
#include "problem.h"
#include "ledger_svc.h"
#include "server.h"
#include "timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_by_key[] = "SELECT " MARKET_ORDER_COLS ", o.request_hash FROM orders o "
                                 "WHERE o.tenant_id = $1 AND o.idempotency_key = $2";
static const char sql_by_id[] = "SELECT " MARKET_ORDER_COLS " FROM orders o WHERE o.id = $1 AND "
                                "($2::text IS NULL OR o.tenant_id = $2 OR o.provider_id = $2)";
static const char sql_events[] =
    "SELECT json_agg(json_build_object('at', to_char(at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'from', from_state, 'to', to_state, 'actor', actor, "
    "'detail', detail) ORDER BY id)::text FROM order_events WHERE order_id = $1";
static const char sql_lock_offer[] =
    "SELECT 1 FROM offers WHERE id = $1 AND state = 'published' FOR UPDATE";
static const char sql_insert[] =
    "INSERT INTO orders (id, tenant_id, offer_id, provider_id, device_id, count, profile, "
    "profile_class, work_mcu, p50_ms, p90_ms, start_at, end_at, deadline, policy_id, "
    "policy_version, quote_id, utilisation_ppm, currency, priced_micros, hold_micros, state, "
    "placement, idempotency_key, request_hash, request, replaces) VALUES ($1, $2, $3, $4, $5, "
    "$6, $7::jsonb, $8, $9, $10, $11, to_timestamp($12::bigint / 1000.0), "
    "to_timestamp($13::bigint / 1000.0), to_timestamp(NULLIF($14, '0')::bigint / 1000.0), $15, "
    "$16, NULLIF($17, ''), $18, $19, $20, $21, 'pending', $22::jsonb, NULLIF($23, ''), $24, "
    "$25::jsonb, NULLIF($26, ''))";
static const char sql_event0[] =
    "INSERT INTO order_events (order_id, from_state, to_state, actor, detail) "
    "VALUES ($1, NULL, 'pending', $2, $3::jsonb)";
static const char sql_settle_hold[] = "INSERT INTO settlements (id, order_id, kind, amount, state) "
                                      "VALUES ($1, $2, 'hold', $3, 'pending')";

static json_t *ms_time(const char *v)
{
    char t[40];
    long long ms = atoll(v);

    if (ms == 0)
        return json_null();
    timefmt_format(ms, t, sizeof t);
    return json_string(t);
}

#define V(i) PQgetvalue(r, row, i)
#define I(i) ((json_int_t)atoll(PQgetvalue(r, row, i)))

json_t *market_order_json(PGresult *r, int row)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", V(0), "state", V(1), "tenant_id",
                  V(2), "offer_id", V(3), "provider_id", V(4), "device", V(5), "count", I(6));
    char cu[40];

    json_object_set_new(o, "profile", json_loads(V(7), 0, NULL));
    snprintf(cu, sizeof cu, "%lld.%03lld", (long long)I(8) / 1000, (long long)I(8) % 1000);
    json_object_set_new(o, "work", json_pack("{s:I, s:s}", "mcu", I(8), "cu", cu));
    json_object_set_new(o, "estimate", json_pack("{s:I, s:I}", "p50_ms", I(9), "p90_ms", I(10)));
    json_object_set_new(o, "window",
                        json_pack("{s:o, s:o, s:o}", "start", ms_time(V(11)), "end", ms_time(V(12)),
                                  "deadline", ms_time(V(13))));
    json_object_set_new(o, "policy", json_pack("{s:s, s:I}", "id", V(14), "version", I(15)));
    json_object_set_new(o, "quote_id", V(16)[0] ? json_string(V(16)) : json_null());
    json_object_set_new(o, "currency", json_string(V(17)));
    json_object_set_new(o, "priced", ledger_money_json(I(18)));
    json_object_set_new(o, "hold",
                        json_pack("{s:o, s:o}", "id", V(20)[0] ? json_string(V(20)) : json_null(),
                                  "amount", ledger_money_json(I(19))));
    /* captured from the hold (gross), refunded for reversed usage, and what that leaves */
    json_object_set_new(o, "captured", ledger_money_json(I(21)));
    json_object_set_new(o, "refunded", ledger_money_json(I(30)));
    json_object_set_new(o, "charged", ledger_money_json(I(21) - I(30)));
    json_object_set_new(o, "platform_fee", ledger_money_json(I(22)));
    json_object_set_new(o, "used", json_pack("{s:I, s:I}", "mcu", I(23), "device_ms", I(24)));
    json_object_set_new(o, "placement", json_loads(V(25), 0, NULL));
    json_object_set_new(o, "created_at", ms_time(V(26)));
    json_object_set_new(o, "updated_at", ms_time(V(27)));
    json_object_set_new(o, "utilisation_ppm", I(28) >= 0 ? json_integer(I(28)) : json_null());
    json_object_set_new(o, "replaces", V(29)[0] ? json_string(V(29)) : json_null());
    return o;
}

#undef V
#undef I

static int attach_events(db_conn *db, const char *id, json_t *order)
{
    const char *p[] = {id};
    PGresult *r = db_exec(db, sql_events, 1, p);

    if (!r)
        return db_last_status(db);
    json_object_set_new(order, "events",
                        PQgetisnull(r, 0, 0) ? json_array()
                                             : json_loads(PQgetvalue(r, 0, 0), 0, NULL));
    PQclear(r);
    return DB_OK;
}

int market_order_load(db_conn *db, const char *id, const char *owner, json_t **out)
{
    const char *p[] = {id, owner};
    PGresult *r = db_exec(db, sql_by_id, 2, p);
    int rc;

    *out = NULL;
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    *out = market_order_json(r, 0);
    PQclear(r);
    if ((rc = attach_events(db, id, *out)) != DB_OK) {
        json_decref(*out);
        *out = NULL;
        return rc;
    }
    return 1;
}

/* The answer an order gets (first time or replayed): by its state. */
static int answer(db_conn *db, const char *id, int *status, json_t **body)
{
    int rc = market_order_load(db, id, NULL, body);
    const char *state;

    if (rc != 1)
        return rc == 0 ? DB_FAILED : rc;
    state = json_string_value(json_object_get(*body, "state"));
    if (!strcmp(state, "pending")) {
        json_decref(*body);
        *body = problem_build(PROB_IDEMPOTENCY_IN_FLIGHT,
                              "the order is still being placed; retry shortly", NULL, NULL);
        json_object_set_new(*body, "order_id", json_string(id));
        *status = 409;
    } else if (!strcmp(state, "rejected")) {
        json_t *ev = json_array_get(json_object_get(*body, "events"), 1);
        json_t *pb = json_object_get(json_object_get(ev, "detail"), "problem");
        const char *d = json_string_value(json_object_get(pb, "detail"));
        char detail[300];
        snprintf(detail, sizeof detail, "%s",
                 d ? d : "the tenant's wallet cannot cover the order's hold");
        json_decref(*body); /* d pointed into it */
        *body = problem_build(PROB_INSUFFICIENT_FUNDS, detail, "amount", NULL);
        json_object_set_new(*body, "status", json_integer(402));
        json_object_set_new(*body, "order_id", json_string(id));
        *status = 402;
    } else {
        *status = 201;
    }
    return DB_OK;
}

/* An earlier order under the same key: 1 (answered), 0 none, or a db_status. */
static int replay(db_conn *db, const market_job *j, const char *key, const char *hash, int *status,
                  json_t **body)
{
    const char *p[] = {j->tenant, key};
    PGresult *r;
    char id[48];
    int rc;

    if (!key || !key[0])
        return 0;
    if (!(r = db_exec(db, sql_by_key, 2, p)))
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    if (strcmp(PQgetvalue(r, 0, 31), hash) != 0) {
        PQclear(r);
        *status = 422;
        *body = problem_build(PROB_IDEMPOTENCY_REUSE,
                              "this Idempotency-Key was used for a different order", NULL, NULL);
        return 1;
    }
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if ((rc = answer(db, id, status, body)) != DB_OK)
        return rc;
    json_object_set_new(*body, "idempotent_replayed", json_true());
    return 1;
}

static int insert_order(db_conn *db, const market_job *j, const market_cand *c, json_t *placement,
                        const char *key, const char *hash, const market_order_ids *ids)
{
    char cnt[24], work[24], p50[24], p90[24], s[24], e[24], dl[24], ver[16], util[24], pr[24],
        hold[24];
    char *prof = json_dumps(j->profile_json, JSON_COMPACT | JSON_SORT_KEYS);
    char *pl = json_dumps(placement, JSON_COMPACT);
    json_t *detail = json_pack("{s:s, s:s}", "offer_id", c->offer_id, "identifier", c->identifier);
    char *dt = json_dumps(detail, JSON_COMPACT);
    json_t *request = market_job_to_json(j);
    char *rq = request ? json_dumps(request, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int rc = DB_FAILED;

    snprintf(cnt, sizeof cnt, "%lld", (long long)j->count);
    snprintf(work, sizeof work, "%lld", (long long)c->mcu);
    snprintf(p50, sizeof p50, "%lld", (long long)c->p50_ms);
    snprintf(p90, sizeof p90, "%lld", (long long)c->p90_ms);
    snprintf(s, sizeof s, "%lld", (long long)c->start_ms);
    snprintf(e, sizeof e, "%lld", (long long)c->end_ms);
    snprintf(dl, sizeof dl, "%lld", (long long)j->deadline_ms);
    snprintf(ver, sizeof ver, "%d", c->policy_version);
    snprintf(util, sizeof util, "%lld", (long long)c->utilisation_ppm);
    snprintf(pr, sizeof pr, "%lld", (long long)c->priced_p50);
    snprintf(hold, sizeof hold, "%lld", (long long)c->hold);
    if (prof && pl && dt && rq) {
        const char *p[] = {ids->order,
                           j->tenant,
                           c->offer_id,
                           c->provider_id,
                           c->device,
                           cnt,
                           prof,
                           cu_class_name(j->profile.cls),
                           work,
                           p50,
                           p90,
                           s,
                           e,
                           dl,
                           c->policy_id,
                           ver,
                           j->quote_id,
                           util,
                           c->currency,
                           pr,
                           hold,
                           pl,
                           key ? key : "",
                           hash,
                           rq,
                           ids->replaces};
        const char *ev[] = {ids->order, ids->actor[0] ? ids->actor : j->tenant, dt};
        const char *st[] = {ids->settle, ids->order, hold};
        rc = db_command(db, sql_insert, 26, p);
        if (rc == DB_FAILED && !strcmp(db_last_sqlstate(db), "23505"))
            rc = DB_RETRY; /* a concurrent duplicate won: re-run and replay it */
        if (rc == DB_OK)
            rc = db_command(db, sql_event0, 3, ev);
        if (rc == DB_OK)
            rc = db_command(db, sql_settle_hold, 3, st);
    }
    free(prof);
    free(pl);
    free(dt);
    free(rq);
    json_decref(request);
    json_decref(detail);
    return rc;
}

/* Lock the best offers in rank order until one still has room: its index, -1, or a db_status. */
static int reserve(db_conn *db, const market_job *j, market_cand *c, size_t n, int *chosen)
{
    int rc;

    *chosen = -1;
    for (size_t i = 0; i < n && c[i].feasible; i++) {
        const char *p[] = {c[i].offer_id};
        PGresult *r = db_exec(db, sql_lock_offer, 1, p);
        int ok;
        if (!r)
            return db_last_status(db);
        ok = PQntuples(r) == 1;
        PQclear(r);
        if (ok && (rc = market_reserved_all(db, &c[i], 1)) != DB_OK)
            return rc;
        if (ok && c[i].capacity - c[i].reserved >= j->count) {
            *chosen = (int)i;
            return DB_OK;
        }
        snprintf(c[i].reason, sizeof c[i].reason, "%s",
                 ok ? "its free devices were taken by a concurrent order"
                    : "withdrawn while the order was placed");
        c[i].feasible = 0;
    }
    return DB_OK;
}

int market_order_place(struct tally_server *srv, db_conn *db, const market_job *j, const char *key,
                       const char *hash, market_order_ids *ids, int *status, json_t **body)
{
    market_cand *c = NULL;
    size_t n = 0;
    json_t *placement;
    char sched[200];
    int rc, chosen = -1;

    rc = market_candidates(srv, db, j, &c, &n, sched, sizeof sched, body);
    if (rc != 0) {
        *status = rc;
        return rc >= 400 ? 1 : rc;
    }
    if ((rc = reserve(db, j, c, n, &chosen)) != DB_OK)
        goto out;
    ids_new(ids->order, sizeof ids->order, "ord");
    ids_new(ids->settle, sizeof ids->settle, "stl");
    placement = market_placement_json(c, n, sched);
    if (chosen < 0) {
        *status = 409;
        *body = problem_build(PROB_NO_PLACEMENT,
                              "no published offer can run this workload under these constraints; "
                              "see 'placement.rejected' for the reason of each",
                              NULL, NULL);
        json_object_set_new(*body, "placement", placement);
        rc = 1;
        goto out;
    }
    json_object_set_new(placement, "chosen", json_string(c[chosen].offer_id));
    rc = insert_order(db, j, &c[chosen], placement, key, hash, ids);
    json_decref(placement);
out:
    free(c);
    return rc;
}

int market_order_create(struct tally_server *srv, db_conn *db, const market_job *j,
                        const char *idem_key, const char *request_hash, int *status, json_t **body)
{
    market_order_ids ids = {0};
    const char *sid;
    market_settle_out so;
    int rc;

    *body = NULL;
    if ((rc = db_begin(db)) != DB_OK)
        return rc;
    if ((rc = replay(db, j, idem_key, request_hash, status, body)) != 0) {
        db_rollback(db);
        return rc < 0 ? rc : DB_OK;
    }
    rc = market_order_place(srv, db, j, idem_key, request_hash, &ids, status, body);
    if (rc != DB_OK) {
        db_rollback(db);
        return rc < 0 ? rc : DB_OK; /* 1: a 4xx answer in *body */
    }
    if ((rc = db_commit(db)) != DB_OK)
        return rc;
    sid = ids.settle;
    /* The order is durable now; its hold goes through the ledger. Should this
     * fail transiently the janitor applies it later (the order stays pending). */
    if (market_settle_run(srv, db, &sid, 1, &so) == DB_OK)
        market_settle_out_clear(&so);
    return answer(db, ids.order, status, body);
}
