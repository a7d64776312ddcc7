/*
 * market_failover.c - re-place orders of an offer that went down; flag running ones.
 */
#include "ids.h"
#include "log.h"
#include "market_cache.h"
#include "market_failover.h"
#include "market_orders.h"
#include "market_settle.h"
#include "probe.h"
#include "server.h"
#include "timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_affected[] = "SELECT id, state FROM orders WHERE offer_id = $1 AND state IN "
                                   "('placed', 'running', 'migrating') ORDER BY id";
static const char sql_lock[] = "SELECT state, request::text, request_hash, coalesce(hold_id, '') "
                               "FROM orders WHERE id = $1 FOR UPDATE";
static const char sql_migrated[] =
    "WITH u AS (UPDATE orders SET state = 'migrated', updated_at = now() WHERE id = $1 "
    "AND state = 'placed' RETURNING id) "
    "INSERT INTO order_events (order_id, from_state, to_state, actor, detail) "
    "SELECT id, 'placed', 'migrated', 'market', json_build_object('reason', 'its offer ' || $2 || "
    "' stopped answering probes', 'replaced_by', $3::text)::jsonb FROM u";
static const char sql_release[] = "INSERT INTO settlements (id, order_id, kind, amount, state) "
                                  "VALUES ($1, $2, 'release', 0, 'pending')";
static const char sql_stuck[] =
    "INSERT INTO order_events (order_id, from_state, to_state, actor, detail) VALUES ($1, "
    "'placed', 'placed', 'market', json_build_object('reason', 'its offer ' || $2 || ' is down "
    "and no other offer can take it: ' || $3::text)::jsonb)";
static const char sql_flag[] =
    "WITH u AS (UPDATE orders SET state = $3, updated_at = now() WHERE id = $1 AND state = $2 "
    "RETURNING id) INSERT INTO order_events (order_id, from_state, to_state, actor, detail) "
    "SELECT id, $2, $3, 'market', json_build_object('reason', $4::text, 'offer_id', "
    "$5::text)::jsonb FROM u";

/* Place the order again elsewhere: 1 moved, 0 stays (nothing feasible), or a db_status. */
static int replace_in_txn(struct tally_server *srv, db_conn *db, const char *id, const char *offer,
                          market_order_ids *ids, char *release, char *why, size_t whylen)
{
    const char *p[] = {id};
    PGresult *r = db_exec(db, sql_lock, 1, p);
    market_job j;
    json_t *req, *body = NULL;
    int rc, status = 0;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "placed") != 0) {
        PQclear(r);
        return 0;
    }
    req = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
    if (!req || market_job_from_json(req, &j) != 0) {
        json_decref(req);
        PQclear(r);
        snprintf(why, whylen, "its request cannot be read back");
        return 0;
    }
    json_decref(req);
    j.start_ms = timefmt_now_ms();
    j.quote_id[0] = j.offer_id[0] = '\0'; /* re-priced at today's rates on another offer */
    if (j.n_blocked < MJ_MAX_LIST)
        snprintf(j.blocked[j.n_blocked++], sizeof j.blocked[0], "%s", offer);
    snprintf(ids->replaces, sizeof ids->replaces, "%s", id);
    snprintf(ids->actor, sizeof ids->actor, "market");
    rc = market_order_place(srv, db, &j, NULL, PQgetvalue(r, 0, 2), ids, &status, &body);
    if (rc == 1) {
        const char *d = json_string_value(json_object_get(body, "detail"));
        snprintf(why, whylen, "%s", d ? d : "no feasible placement");
        rc = 0;
    } else if (rc == DB_OK) {
        const char *m[] = {id, offer, ids->order};
        const char *s[] = {release, id};
        rc = db_command(db, sql_migrated, 3, m);
        if (rc == DB_OK && PQgetvalue(r, 0, 3)[0])
            rc = db_command(db, sql_release, 2, s);
        else
            release[0] = '\0';
        rc = rc == DB_OK ? 1 : rc;
    }
    json_decref(body);
    market_job_clear(&j);
    PQclear(r);
    return rc;
}

static int replace_order(struct tally_server *srv, db_conn *db, const char *id, const char *offer)
{
    market_order_ids ids = {0};
    char release[48], why[300] = "";
    const char *settle[2];
    int rc;

    ids_new(release, sizeof release, "stl");
    if ((rc = db_begin(db)) != DB_OK)
        return rc;
    rc = replace_in_txn(srv, db, id, offer, &ids, release, why, sizeof why);
    if (rc <= 0) {
        db_rollback(db);
        if (rc == 0 && why[0]) {
            const char *p[] = {id, offer, why};
            rc = db_command(db, sql_stuck, 3, p);
        }
        return rc < 0 ? rc : DB_OK;
    }
    if ((rc = db_commit(db)) != DB_OK)
        return rc;
    log_info("market", "order %s moved off down offer %s to order %s", id, offer, ids.order);
    settle[0] = release; /* older order first: the old hold is released before the new one */
    settle[1] = ids.settle;
    if (release[0])
        return market_settle_run(srv, db, settle, 2, NULL);
    return market_settle_run(srv, db, &settle[1], 1, NULL);
}

static int flag(db_conn *db, const char *id, const char *offer, int down)
{
    const char *p[] = {id, down ? "running" : "migrating", down ? "migrating" : "running",
                       down ? "its offer stopped answering probes: the job may have to move"
                            : "its offer answers probes again",
                       offer};
    return db_command(db, sql_flag, 5, p);
}

int market_failover_offer(struct tally_server *srv, db_conn *db, const char *offer_id, int down)
{
    const char *p[] = {offer_id};
    PGresult *r = db_exec(db, sql_affected, 1, p);
    int rc = DB_OK;

    if (!r)
        return db_last_status(db);
    for (int i = 0; rc == DB_OK && i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0), *state = PQgetvalue(r, i, 1);
        if (down && !strcmp(state, "placed"))
            rc = replace_order(srv, db, id, offer_id);
        else if (down ? !strcmp(state, "running") : !strcmp(state, "migrating"))
            rc = flag(db, id, offer_id, down);
    }
    PQclear(r);
    return rc;
}

/* ---- wiring ------------------------------------------------------------------------------- */

struct fo_ctx {
    struct tally_server *srv;
    struct event_base *base;
};

struct fo_job {
    struct tally_server *srv;
    char offer[48];
    int down;
};

static int fo_work(db_conn *db, void *arg)
{
    struct fo_job *j = arg;
    return market_failover_offer(j->srv, db, j->offer, j->down);
}

static void fo_done(int status, void *arg)
{
    struct fo_job *j = arg;

    if (status != DB_OK) /* the janitor's settlement sweep finishes what was written */
        log_warn("market", "failover for offer %s did not finish (status %d)", j->offer, status);
    free(j);
}

static void on_health(void *arg, const char *offer_id, const probe_state *st)
{
    struct fo_ctx *x = arg;
    struct fo_job *j;

    if (st->status != PROBE_DOWN && st->status != PROBE_UP)
        return;
    if (!x->srv->pool || !(j = calloc(1, sizeof *j)))
        return;
    j->srv = x->srv;
    j->down = st->status == PROBE_DOWN;
    snprintf(j->offer, sizeof j->offer, "%s", offer_id);
    if (db_pool_submit(x->srv->pool, x->base, fo_work, fo_done, j) != 0)
        free(j);
}

void market_failover_attach(struct tally_server *srv, struct event_base *base)
{
    static struct fo_ctx ctx; /* one server per process; lives as long as it */

    ctx.srv = srv;
    ctx.base = base;
    if (srv->market)
        market_cache_on_health_change(srv->market, on_health, &ctx);
}
