/*
 * handlers_orders.c - tenants' orders and placements over HTTP.
 *
 *   POST /v1/placements          rank the offers for a workload (dry run)
 *   POST /v1/orders              place an order: rank, reserve, hold
 *   GET  /v1/orders, /{id}       own orders (tenant or provider); all (admin, finance)
 *   POST /v1/orders/{id}/cancel  tenant: stop it; the unused hold is released
 *   POST /v1/orders/{id}/start   provider: placed -> running
 *   POST /v1/orders/{id}/complete, /fail   provider: close it, release the rest
 *
 * The body of a workload is parsed here; everything that needs the database
 * (ranking, reservation, settlement) runs on a database thread in
 * market_orders.c, market_place.c and market_life.c.
 */
#include "handlers.h"
#include "idempotency.h"
#include "ids.h"
#include "market_life.h"
#include "market_orders.h"
#include "metering_req.h"
#include "order.h"
#include "paging.h"
#include "scope.h"
#include "server.h"
#include "timefmt.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORDER_MAX_AHEAD_MS (366LL * 86400 * 1000)

struct order_req {
    market_job job;
    idem_request idem;
    tally_server *srv;
    int placement_only;
    int status;
    json_t *out;
};

static void order_req_free(void *arg)
{
    struct order_req *o = arg;
    market_job_clear(&o->job);
    json_decref(o->out);
    free(o);
}

/* An optional array of short strings (regions, tags, blocked ids). */
static int val_list(http_ctx *c, json_t *obj, const char *field, char *out, size_t width, int max,
                    int *n)
{
    json_t *a = json_object_get(obj, field), *v;
    size_t i;

    *n = 0;
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > (size_t)max) {
        http_reply_problemf(c, PROB_VALIDATION, field,
                            "'%s' must be an array of at most %d strings", field, max);
        return -1;
    }
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= width ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            http_reply_problemf(c, PROB_VALIDATION, field,
                                "'%s[%zu]' must be a string of 1 to %zu bytes", field, i,
                                width - 1);
            return -1;
        }
        memcpy(out + i * width, json_string_value(v), json_string_length(v) + 1);
        (*n)++;
    }
    return 0;
}

static int val_time(http_ctx *c, json_t *obj, const char *field, int64_t def, int64_t *out)
{
    const char *s = NULL;

    *out = def;
    if (val_string(c, obj, field, 0, 40, &s))
        return -1;
    if (s && timefmt_parse(s, out) != 0) {
        http_reply_problemf(c, PROB_VALIDATION, field,
                            "'%s' must be an ISO-8601 UTC time like 2026-12-01T09:00:00Z", field);
        return -1;
    }
    return 0;
}

static int parse_constraints(http_ctx *c, json_t *k, market_job *j)
{
    static const char *const fields[] = {"regions",  "residency",   "deadline", "max_price",
                                         "currency", "data_region", "blocked",  NULL};
    const char *cur = NULL, *dr = NULL;

    if (!k)
        return 0;
    if (!json_is_object(k)) {
        http_reply_problem(c, PROB_VALIDATION, "'constraints' must be an object", "constraints");
        return -1;
    }
    if (val_known_fields(c, k, fields) ||
        val_list(c, k, "regions", j->regions[0], sizeof j->regions[0], MJ_MAX_LIST,
                 &j->n_regions) ||
        val_list(c, k, "residency", j->residency[0], sizeof j->residency[0], MJ_MAX_TAGS,
                 &j->n_residency) ||
        val_list(c, k, "blocked", j->blocked[0], sizeof j->blocked[0], MJ_MAX_LIST,
                 &j->n_blocked) ||
        val_time(c, k, "deadline", 0, &j->deadline_ms) ||
        val_string(c, k, "currency", 0, 3, &cur) || val_string(c, k, "data_region", 0, 31, &dr))
        return -1;
    if (json_object_get(k, "max_price") && val_money(c, k, "max_price", 1, 1, &j->max_price))
        return -1;
    if (cur)
        snprintf(j->currency, sizeof j->currency, "%s", cur);
    if (dr)
        snprintf(j->data_region, sizeof j->data_region, "%s", dr);
    if (j->deadline_ms && j->deadline_ms <= j->start_ms) {
        http_reply_problem(c, PROB_VALIDATION, "'deadline' must be after the start", "deadline");
        return -1;
    }
    return 0;
}

/* device is optional for an order (any device): parse the workload with a placeholder. */
static int parse_workload(http_ctx *c, json_t *body, market_job *j)
{
    json_t *copy = json_copy(body);
    workload_req w;
    int rc;

    if (!json_object_get(body, "device"))
        json_object_set_new(copy, "device", json_string("*"));
    rc = mreq_workload(c, copy, &w);
    if (rc == 0) {
        snprintf(j->device, sizeof j->device, "%s", strcmp(w.device, "*") ? w.device : "");
        j->count = w.count;
        j->profile = w.profile;
        j->profile_json = mreq_profile_json(&w.profile);
    }
    json_decref(copy);
    return rc;
}

static int parse_job(http_ctx *c, json_t *body, market_job *j)
{
    static const char *const fields[] = {"device",   "count",  "profile",        "work_mcu",
                                         "wall_ms",  "start",  "constraints",    "offer_id",
                                         "quote_id", "tenant", "latency_weight", NULL};
    static const char *const amounts[] = {"work_mcu", "wall_ms", NULL};
    const http_caller *who = http_get_caller(c);
    const char *offer = NULL, *quote = NULL, *tenant = NULL;
    long long work, wall, lw;
    int64_t now = timefmt_now_ms();

    j->max_price = -1;
    j->margin_pct = http_server(c)->cfg.order_hold_margin_pct;
    if (val_known_fields(c, body, fields) || parse_workload(c, body, j) ||
        val_require_one(c, body, amounts) ||
        val_int(c, body, "work_mcu", 0, 1, INT64_MAX / 4, 0, &work) ||
        val_int(c, body, "wall_ms", 0, 1, ORDER_MAX_AHEAD_MS, 0, &wall) ||
        val_int(c, body, "latency_weight", 0, 0, 1000000000, -1, &lw) ||
        val_string(c, body, "offer_id", 0, 47, &offer) ||
        val_string(c, body, "quote_id", 0, 47, &quote) ||
        val_string(c, body, "tenant", 0, 47, &tenant) ||
        val_time(c, body, "start", now, &j->start_ms))
        return -1;
    if (wall && !j->device[0]) {
        http_reply_problem(
            c, PROB_VALIDATION,
            "a duration ('wall_ms') needs a 'device'; or give the work in 'work_mcu'", "device");
        return -1;
    }
    if (j->start_ms < now - 60000 || j->start_ms > now + ORDER_MAX_AHEAD_MS) {
        http_reply_problem(c, PROB_VALIDATION, "'start' must be from now to a year ahead", "start");
        return -1;
    }
    if ((offer && !ids_valid(offer, "off")) || (quote && !ids_valid(quote, "quo"))) {
        http_reply_problem(c, PROB_VALIDATION, "'offer_id' / 'quote_id' must be off_… / quo_… ids",
                           offer && !ids_valid(offer, "off") ? "offer_id" : "quote_id");
        return -1;
    }
    if (tenant && (who->role != ROLE_ADMIN || !ids_valid(tenant, "acc"))) {
        http_reply_problem(c, who->role != ROLE_ADMIN ? PROB_FORBIDDEN : PROB_VALIDATION,
                           "only an admin may order for a named tenant (an acc_… id)", "tenant");
        return -1;
    }
    j->work_mcu = work;
    j->wall_ms = wall;
    j->latency_weight = lw;
    snprintf(j->offer_id, sizeof j->offer_id, "%s", offer ? offer : "");
    snprintf(j->quote_id, sizeof j->quote_id, "%s", quote ? quote : "");
    snprintf(j->tenant, sizeof j->tenant, "%s", tenant ? tenant : who->account_id);
    return parse_constraints(c, json_object_get(body, "constraints"), j);
}

static int order_work(db_conn *db, void *arg)
{
    struct order_req *o = arg;

    if (o->placement_only) {
        int rc = market_place(o->srv, db, &o->job, &o->out);
        if (rc < 0)
            return rc;
        o->status = rc >= 400 ? rc : 200;
        return DB_OK;
    }
    return market_order_create(o->srv, db, &o->job, o->idem.key, o->idem.request_hash, &o->status,
                               &o->out);
}

static void order_done(http_ctx *c, int status, void *arg)
{
    struct order_req *o = arg;
    json_t *out = o->out;

    (void)status;
    o->out = NULL;
    if (o->status >= 400) {
        json_object_set_new(out, "instance", json_string(http_path(c)));
        http_reply_problem_body(c, o->status, out);
    } else {
        if (json_is_true(json_object_get(out, "idempotent_replayed"))) {
            json_object_del(out, "idempotent_replayed");
            http_set_header(c, "Idempotent-Replayed", "true");
        }
        http_reply_json(c, o->status, out);
    }
    order_req_free(o);
}

static void submit(http_ctx *c, int placement_only)
{
    struct order_req *o = calloc(1, sizeof *o);
    json_t *body = http_body(c);

    if (!o) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (!body) {
        free(o);
        http_reply_problem(c, PROB_VALIDATION, "a JSON body is required", NULL);
        return;
    }
    o->srv = http_server(c);
    o->placement_only = placement_only;
    if (parse_job(c, body, &o->job) || (!placement_only && idem_prepare(c, &o->idem))) {
        order_req_free(o);
        return;
    }
    http_db(c, order_work, order_done, o, order_req_free);
}

void h_orders_create(http_ctx *c)
{
    submit(c, 0);
}

void h_placements_create(http_ctx *c)
{
    submit(c, 1);
}

/* ---- reads ----------------------------------------------------------------------------- */

static const char sql_list[] =
    "SELECT " MARKET_ORDER_COLS
    " FROM orders o WHERE ($1::text IS NULL OR o.tenant_id = $1 OR o.provider_id = $1) "
    "AND ($2::text IS NULL OR o.id > $2) AND ($3::text IS NULL OR o.state = $3) "
    "AND ($4::text IS NULL OR o.offer_id = $4) ORDER BY o.id LIMIT $5";

struct order_read {
    char id[48];
    const char *owner;
    char owner_buf[48];
    json_t *out;
};

static void order_read_free(void *arg)
{
    struct order_read *r = arg;
    json_decref(r->out);
    free(r);
}

static struct order_read *read_start(http_ctx *c)
{
    struct order_read *r = calloc(1, sizeof *r);
    const char *owner = scope_owner_filter(http_get_caller(c));

    if (!r) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    if (owner) {
        snprintf(r->owner_buf, sizeof r->owner_buf, "%s", owner);
        r->owner = r->owner_buf;
    }
    return r;
}

static int order_get_work(db_conn *db, void *arg)
{
    struct order_read *r = arg;
    return market_order_load(db, r->id, r->owner, &r->out);
}

static void order_get_done(http_ctx *c, int found, void *arg)
{
    struct order_read *r = arg;

    if (found != 1) {
        http_reply_problem(c, PROB_NOT_FOUND, "no such order", NULL);
    } else {
        http_reply_json(c, 200, r->out);
        r->out = NULL;
    }
    order_read_free(r);
}

void h_orders_get(http_ctx *c)
{
    struct order_read *r;
    const char *id;

    if (val_path_id(c, "id", "ord", &id) || !(r = read_start(c)))
        return;
    snprintf(r->id, sizeof r->id, "%s", id);
    http_db(c, order_get_work, order_get_done, r, order_read_free);
}

static json_t *list_row(PGresult *res, int i, const void *ctx)
{
    (void)ctx;
    return market_order_json(res, i);
}

static void order_list_done(http_ctx *c, PGresult *res, void *arg)
{
    int limit = *(int *)arg;
    free(arg);
    http_reply_json(c, 200, paging_build(res, limit, list_row, NULL));
    PQclear(res);
}

void h_orders_list(http_ctx *c)
{
    const char *after, *state = http_query(c, "state"), *offer = NULL, *owner;
    order_state st;
    char lim[16];
    int limit, *lp;

    if (val_query_limit(c, 50, 200, &limit) || val_query_id(c, "after", "ord", &after) ||
        val_query_id(c, "offer_id", "off", &offer))
        return;
    if (state && order_state_parse(state, &st) != 0) {
        http_reply_problem(c, PROB_VALIDATION, "'state' must be an order state", "state");
        return;
    }
    if (!(lp = malloc(sizeof *lp))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    *lp = limit;
    owner = scope_owner_filter(http_get_caller(c));
    snprintf(lim, sizeof lim, "%d", limit + 1);
    {
        const char *p[] = {owner, after, state, offer, lim};
        http_db_query(c, sql_list, 5, p, order_list_done, lp, free);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

struct order_life {
    market_transition t;
    tally_server *srv;
    int status;
    json_t *out;
};

static void life_free(void *arg)
{
    struct order_life *l = arg;
    json_decref(l->out);
    free(l);
}

static int life_work(db_conn *db, void *arg)
{
    struct order_life *l = arg;
    return market_order_transition(l->srv, db, &l->t, &l->status, &l->out);
}

static void life_done(http_ctx *c, int rc, void *arg)
{
    struct order_life *l = arg;
    json_t *out = l->out;

    (void)rc;
    l->out = NULL;
    if (l->status >= 400) {
        json_object_set_new(out, "instance", json_string(http_path(c)));
        http_reply_problem_body(c, l->status, out);
    } else {
        http_reply_json(c, l->status, out);
    }
    life_free(l);
}

static void transition(http_ctx *c, order_state to)
{
    static const char *const fields[] = {"reason", NULL};
    const http_caller *who = http_get_caller(c);
    json_t *body = http_body(c);
    struct order_life *l;
    const char *id, *reason = NULL;

    if (val_path_id(c, "id", "ord", &id))
        return;
    if (body &&
        (val_known_fields(c, body, fields) || val_string(c, body, "reason", 0, 500, &reason)))
        return;
    if (!(l = calloc(1, sizeof *l))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    l->srv = http_server(c);
    l->t.to = to;
    snprintf(l->t.order_id, sizeof l->t.order_id, "%s", id);
    snprintf(l->t.actor, sizeof l->t.actor, "%s", who->account_id);
    l->t.actor_role = who->role;
    snprintf(l->t.reason, sizeof l->t.reason, "%s", reason ? reason : "");
    http_db(c, life_work, life_done, l, life_free);
}

void h_orders_cancel(http_ctx *c)
{
    transition(c, ORDER_CANCELLED);
}

void h_orders_start(http_ctx *c)
{
    transition(c, ORDER_RUNNING);
}

void h_orders_complete(http_ctx *c)
{
    transition(c, ORDER_COMPLETED);
}

void h_orders_fail(http_ctx *c)
{
    transition(c, ORDER_FAILED);
}
