/*
 * market_life.c - order transitions, the release of the hold, and learning.
 */
#include "estimates.h"
#include "http.h"
#include "ids.h"
#include "market_life.h"
#include "market_minimum.h"
#include "market_orders.h"
#include "market_settle.h"
#include "problem.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_lock[] =
    "SELECT state, tenant_id, provider_id, coalesce(hold_id, ''), profile_class, device_id, "
    "count, p50_ms, used_device_ms, (extract(epoch FROM now() - start_at) * 1000)::bigint "
    "FROM orders WHERE id = $1 FOR UPDATE";
static const char sql_update[] = "UPDATE orders SET state = $2, updated_at = now() WHERE id = $1";
static const char sql_event[] =
    "INSERT INTO order_events (order_id, from_state, to_state, actor, detail) "
    "VALUES ($1, $2, $3, $4, json_build_object('reason', NULLIF($5, ''))::jsonb || $6::jsonb)";
static const char sql_release[] = "INSERT INTO settlements (id, order_id, kind, amount, state) "
                                  "VALUES ($1, $2, 'release', 0, 'pending')";

/* Who may take a step: the tenant cancels; the provider runs the job; admin both. */
static int allowed(const market_transition *t, const char *tenant, const char *provider)
{
    if (t->actor_role == ROLE_ADMIN)
        return 1;
    if (t->to == ORDER_CANCELLED)
        return !strcmp(t->actor, tenant);
    return !strcmp(t->actor, provider);
}

static int visible(const market_transition *t, const char *tenant, const char *provider)
{
    return t->actor_role == ROLE_ADMIN || t->actor_role == ROLE_FINANCE ||
           !strcmp(t->actor, tenant) || !strcmp(t->actor, provider);
}

/* The actual duration (device time per device, else wall time since start) teaches the estimator.
 */
static int learn(db_conn *db, PGresult *r)
{
    uint64_t keys[EST_LEVELS];
    est_state *st = NULL;
    est_query q = {{0}, 0, 0, 0};
    long long count = atoll(PQgetvalue(r, 0, 6)), used = atoll(PQgetvalue(r, 0, 8));
    long long actual_ms = used > 0 && count > 0 ? used / count : atoll(PQgetvalue(r, 0, 9));
    int rc;

    if (actual_ms <= 0)
        return DB_OK;
    estimates_keys(PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5), count, keys);
    memcpy(q.keys, keys, sizeof keys);
    q.prior_s = (atoll(PQgetvalue(r, 0, 7)) + 999) / 1000;
    if ((rc = estimates_load(db, keys, 1, &st)) != DB_OK)
        return rc;
    if (est_learn(st, &q, q.prior_s, (actual_ms + 999) / 1000) == EST_OK)
        rc = estimates_save(db, st, keys);
    est_free(st);
    return rc;
}

static int refuse(int *status, json_t **body, problem_type t, const char *detail)
{
    *status = problem_status(t);
    *body = problem_build(t, detail, NULL, NULL);
    return 1;
}

/* The event, the minimum charge and the release of an order entering t->to; stl is the
 * release's settlement id, or "" when there is nothing to apply. Settlements are applied in id
 * order, so a top-up's capture gets the smaller id: the release never overtakes it. */
static int finish(struct tally_server *srv, db_conn *db, const market_transition *t,
                  order_state from, char *stl, int has_hold)
{
    market_minimum m;
    json_t *mj, *detail = json_object();
    char *dtext;
    int rc = market_minimum_charge(srv, db, t->order_id, from, t->to, &m);

    if ((mj = market_minimum_json(&m)))
        json_object_set_new(detail, "minimum", mj);
    dtext = json_dumps(detail, JSON_COMPACT);
    json_decref(detail);
    if (rc == DB_OK && !dtext)
        rc = DB_FAILED;
    if (rc == DB_OK)
        rc = db_command(db, sql_event, 6,
                        (const char *[]){t->order_id, order_state_name(from),
                                         order_state_name(t->to), t->actor, t->reason, dtext});
    free(dtext);
    if (rc != DB_OK)
        return rc;
    while (m.charged && strcmp(stl, m.settlement_id) <= 0)
        ids_new(stl, 48, "stl");
    if (order_state_final(t->to) && has_hold)
        return db_command(db, sql_release, 2, (const char *[]){stl, t->order_id});
    stl[0] = '\0';
    return DB_OK;
}

/* Inside the transaction: check and apply. 0 applied, 1 refused (answer set), or a db_status. */
static int apply(struct tally_server *srv, db_conn *db, const market_transition *t, char *stl,
                 int *status, json_t **body)
{
    const char *p[] = {t->order_id};
    PGresult *r = db_exec(db, sql_lock, 1, p);
    order_state from;
    char detail[160];
    int rc = DB_OK;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1 || !visible(t, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2))) {
        PQclear(r);
        return refuse(status, body, PROB_NOT_FOUND, "no such order");
    }
    if (!allowed(t, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2))) {
        PQclear(r);
        return refuse(status, body, PROB_FORBIDDEN,
                      "the tenant cancels an order; its provider starts, completes or fails it");
    }
    if (order_state_parse(PQgetvalue(r, 0, 0), &from) != 0 || !order_transition_ok(from, t->to)) {
        snprintf(detail, sizeof detail, "an order that is %s cannot become %s", PQgetvalue(r, 0, 0),
                 order_state_name(t->to));
        PQclear(r);
        return refuse(status, body, PROB_ORDER_STATE, detail);
    }
    rc = db_command(db, sql_update, 2, (const char *[]){t->order_id, order_state_name(t->to)});
    if (rc == DB_OK)
        rc = finish(srv, db, t, from, stl, PQgetvalue(r, 0, 3)[0] != '\0');
    if (rc == DB_OK && t->to == ORDER_COMPLETED)
        rc = learn(db, r);
    PQclear(r);
    return rc;
}

int market_order_transition(struct tally_server *srv, db_conn *db, const market_transition *t,
                            int *status, json_t **body)
{
    char stl[48];
    const char *sid = stl;
    market_settle_out so;
    int rc;

    *body = NULL;
    ids_new(stl, sizeof stl, "stl");
    if ((rc = db_begin(db)) != DB_OK)
        return rc;
    rc = apply(srv, db, t, stl, status, body);
    if (rc != DB_OK) {
        db_rollback(db);
        return rc < 0 ? rc : DB_OK;
    }
    if ((rc = db_commit(db)) != DB_OK)
        return rc;
    if (stl[0] && market_settle_run(srv, db, &sid, 1, &so) == DB_OK)
        market_settle_out_clear(&so);
    rc = market_order_load(db, t->order_id, NULL, body);
    if (rc < 0)
        return rc;
    *status = 200;
    return DB_OK;
}
