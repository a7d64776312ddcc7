/*
 * market_place.c - evaluate and rank the published offers for a workload.
 *
 * For each offer: the static filters (blocked, region, residency, device,
 * availability window), the workload measured on its device (metering cache:
 * CU and the roofline duration), the duration estimate (p50/p90 from the
 * tenant's history, estimates.c), the deadline at p90, free capacity over the
 * whole window, and the price at p50 and p90 with the offer's policy (pricing
 * engine, the tenant's period-to-date state, live utilisation). Ranking is the
 * cheapest feasible (score = price at p50 + latency penalty + risk), ties by
 * offer id, so the same inputs always give the same order.
 */
#include "estimates.h"
#include "market_orders.h"
#include "metering_store.h"
#include "money.h"
#include "order.h"
#include "pricing_store.h"
#include "ledger_svc.h"
#include "server.h"
#include "timefmt.h"
#include "tzdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_offers[] =
    "SELECT o.id, o.provider_id, o.identifier, o.region, o.zone, o.device_id, "
    "o.devices_per_node::bigint * o.nodes, o.endpoint, o.policy_id, "
    "array_to_string(o.residency, ','), (extract(epoch FROM o.available_from) * 1000)::bigint, "
    "coalesce((extract(epoch FROM o.available_until) * 1000)::bigint, 0) "
    "FROM offers o WHERE o.state = 'published' AND ($1 = '' OR o.device_id = $1) "
    "AND ($2 = '' OR o.id = $2) AND ($3 = '' OR o.policy_id = $3) ORDER BY o.id LIMIT 256";

static const char sql_reserved[] =
    "SELECT coalesce(sum(count), 0) FROM orders WHERE offer_id = $1 "
    "AND state IN ('pending', 'placed', 'running', 'migrating') "
    "AND start_at < to_timestamp($3::bigint / 1000.0) AND end_at > to_timestamp($2::bigint / "
    "1000.0)";

static const char sql_quote[] =
    "SELECT tenant_id, policy_id, policy_version, total_micros, "
    "(extract(epoch FROM expires_at) * 1000)::bigint, document::json #>> '{workload,device}', "
    "document::json #>> '{workload,count}', document::json #>> '{workload,mcu}', "
    "coalesce(document::json ->> 'utilisation_ppm', '-1') FROM quotes WHERE id = $1";

void market_job_clear(market_job *j)
{
    json_decref(j->profile_json);
    j->profile_json = NULL;
}

int market_reserved(db_conn *db, const char *offer, int64_t s, int64_t e, int64_t *out)
{
    char a[24], b[24];
    const char *p[] = {offer, a, b};
    PGresult *r;

    snprintf(a, sizeof a, "%lld", (long long)s);
    snprintf(b, sizeof b, "%lld", (long long)e);
    if (!(r = db_exec(db, sql_reserved, 3, p)))
        return db_last_status(db);
    *out = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return DB_OK;
}

static int rejectf(market_cand *c, const char *fmt, const char *a)
{
    c->feasible = 0;
    snprintf(c->reason, sizeof c->reason, fmt, a);
    return 0;
}

static int in_list(const char list[][32], int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}

/* Every tag the job requires is among the offer's (comma-separated) tags. */
static int residency_ok(const market_job *j, const char *tags)
{
    for (int i = 0; i < j->n_residency; i++) {
        size_t n = strlen(j->residency[i]);
        const char *p = tags;
        int found = 0;
        while (!found && (p = strstr(p, j->residency[i]))) {
            found = (p == tags || p[-1] == ',') && (p[n] == ',' || p[n] == '\0');
            p += n;
        }
        if (!found)
            return 0;
    }
    return 1;
}

static int static_filters(const market_job *j, market_cand *c)
{
    for (int i = 0; i < j->n_blocked; i++)
        if (!strcmp(j->blocked[i], c->offer_id) || !strcmp(j->blocked[i], c->identifier))
            return rejectf(c, "%s", "blocked by the request");
    if (j->n_regions && !in_list(j->regions, j->n_regions, c->region))
        return rejectf(c, "region %s is not among the allowed regions", c->region);
    if (!residency_ok(j, c->residency))
        return rejectf(c, "data-residency tags [%s] lack a required tag", c->residency);
    if (c->avail_from_ms > j->start_ms)
        return rejectf(c, "%s", "not available yet at the requested start");
    return 1;
}

/* CU and roofline duration of the job on the offer's device. */
static int measure(struct tally_server *srv, const market_job *j, market_cand *c)
{
    const cat_catalog *cat;
    const cu_eff_table *eff;
    cu_rate rate;
    cu_error err;
    cu_status st;
    int64_t ms = 0, mcu = 0;

    mcache_read_lock(srv->metering, &cat, &eff);
    if (!cat) {
        mcache_read_unlock(srv->metering);
        return rejectf(c, "%s", "no device catalog is loaded");
    }
    if (j->work_mcu > 0) {
        st = cu_duration(cat, eff, c->device, j->count, &j->profile, j->work_mcu, &ms, &rate, &err);
        mcu = j->work_mcu;
    } else {
        st =
            cu_normalize(cat, eff, c->device, j->count, &j->profile, j->wall_ms, &mcu, &rate, &err);
        ms = j->wall_ms;
    }
    if (st == CU_OK) {
        c->kind = cat_device_kind(rate.device);
        c->eff_version = eff ? (int)eff->version : 1;
        snprintf(c->catalog_version, sizeof c->catalog_version, "%s", cat_version(cat));
    }
    mcache_read_unlock(srv->metering);
    if (st != CU_OK)
        return rejectf(c, "cannot run the workload: %s", err.message);
    c->mcu = mcu;
    c->p50_ms = ms > 0 ? ms : 1;
    return 1;
}

/* p50/p90 from the tenant's history on this device (roofline or user prior). */
static int estimate(db_conn *db, const market_job *j, market_cand *c)
{
    uint64_t keys[EST_LEVELS];
    est_state *st = NULL;
    est_query q = {{0}, 0, 0, 0};
    est_result res;
    int rc;

    estimates_keys(j->tenant, cu_class_name(j->profile.cls), c->device, j->count, keys);
    memcpy(q.keys, keys, sizeof keys);
    if (j->work_mcu > 0)
        q.prior_s = (c->p50_ms + 999) / 1000;
    else
        q.user_s = (c->p50_ms + 999) / 1000;
    if ((rc = estimates_load(db, keys, 0, &st)) != DB_OK)
        return rc;
    if (est_predict(st, &q, &res) == EST_OK && res.p50_s > 0) {
        c->p50_ms = res.p50_s * 1000;
        c->p90_ms = (res.p90_s > res.p50_s ? res.p90_s : res.p50_s) * 1000;
    } else {
        c->p90_ms = c->p50_ms * 2;
    }
    est_free(st);
    c->start_ms = j->start_ms;
    c->end_ms = j->start_ms + c->p90_ms;
    return DB_OK;
}

/* Price of the workload over [start, start + ms) with the offer's policy. */
static int rate_for(const market_job *j, const market_cand *c, const pstore_version *pol,
                    const pstore_version *plat, const pricing_state *state, int64_t ms,
                    pricing_result *res, char *why, size_t whylen)
{
    pricing_tz tz;
    pricing_error err;
    char tzerr[200];
    int64_t mcu = j->work_mcu > 0 ? j->work_mcu : c->mcu;
    pricing_usage u = {
        j->tenant, c->device,     c->kind,     j->count,         cu_class_name(j->profile.cls),
        mcu,       ms * j->count, c->start_ms, c->start_ms + ms, c->region};
    pricing_input in = {pol->policy, plat->policy, NULL, &u, state, c->utilisation_ppm};

    if (pol->policy->timezone[0]) {
        if (tzdb_zone(pol->policy->timezone, c->start_ms + ms, &tz, tzerr, sizeof tzerr) != 0) {
            snprintf(why, whylen, "policy time zone: %.150s", tzerr);
            return -1;
        }
        in.tz = &tz;
    }
    if (pricing_rate(&in, res, &err) != PRICING_OK) {
        snprintf(why, whylen, "the policy cannot price it: %.150s", err.message);
        return -1;
    }
    return 0;
}

static int price(db_conn *db, const market_job *j, market_cand *c, int version)
{
    pstore_version pol = {0}, plat = {0};
    pricing_state state;
    pricing_result *res = malloc(sizeof *res);
    char period[8];
    long long util = -1;
    int rc;

    if (!res)
        return DB_FAILED;
    timefmt_period(c->start_ms, period);
    if ((rc = pstore_load(db, c->policy_id, version, &pol)) <= 0) {
        rc = rc < 0 ? rc : rejectf(c, "%s", "its pricing policy does not exist");
        goto out;
    }
    c->policy_version = pol.version;
    if ((rc = pstore_load_platform(db, &plat)) < 0 ||
        (rc = pstore_state_load(db, j->tenant, pol.policy_id, pol.version, period, &state)) < 0)
        goto out;
    if (c->utilisation_ppm < 0 && (rc = pstore_utilisation(db, c->device, c->region, &util)) < 0)
        goto out;
    if (c->utilisation_ppm < 0)
        c->utilisation_ppm = util;
    rc = 1;
    if (rate_for(j, c, &pol, &plat, &state, c->p90_ms, res, c->reason, sizeof c->reason) != 0) {
        c->feasible = 0;
        goto out;
    }
    c->priced_p90 = res->total;
    if (rate_for(j, c, &pol, &plat, &state, c->p50_ms, res, c->reason, sizeof c->reason) != 0) {
        c->feasible = 0;
        goto out;
    }
    c->priced_p50 = res->total;
    c->provider_net = res->provider_net;
    snprintf(c->currency, sizeof c->currency, "%s", res->currency);
    if (order_hold_amount(c->priced_p50, c->priced_p90, j->margin_pct, &c->hold) != 0)
        rc = rejectf(c, "%s", "the price overflows");
out:
    free(res);
    pstore_release(&pol);
    pstore_release(&plat);
    return rc;
}

static int feasibility(db_conn *db, const market_job *j, market_cand *c)
{
    char a[40];
    int rc;

    if (j->deadline_ms && c->end_ms > j->deadline_ms) {
        timefmt_format(c->end_ms, a, sizeof a);
        return rejectf(c, "misses the deadline: p90 finish %s", a);
    }
    if (c->avail_until_ms && c->end_ms > c->avail_until_ms)
        return rejectf(c, "%s", "its availability window ends before the job would (p90)");
    if ((rc = market_reserved(db, c->offer_id, c->start_ms, c->end_ms, &c->reserved)) != DB_OK)
        return rc;
    if (c->capacity - c->reserved < j->count) {
        snprintf(c->reason, sizeof c->reason,
                 "only %lld of %lld devices free for the whole window, %lld needed",
                 (long long)(c->capacity - c->reserved), (long long)c->capacity,
                 (long long)j->count);
        return c->feasible = 0;
    }
    return 1;
}

static int after_price(const market_job *j, market_cand *c)
{
    char a[40], b[40];

    if (j->currency[0] && strcmp(j->currency, c->currency) != 0)
        return rejectf(c, "priced in %s", c->currency);
    if (j->max_price >= 0 && c->priced_p90 > j->max_price) {
        money_format(c->priced_p90, a, sizeof a);
        money_format(j->max_price, b, sizeof b);
        snprintf(c->reason, sizeof c->reason, "costs %s %s at p90, above max_price %s", a,
                 c->currency, b);
        return c->feasible = 0;
    }
    c->score = c->priced_p50 + j->latency_weight * c->latency_ms + c->risk;
    return 1;
}

static int evaluate(struct tally_server *srv, db_conn *db, const market_job *j, market_cand *c,
                    int version)
{
    int rc;

    c->feasible = 1;
    if (!static_filters(j, c) || !measure(srv, j, c))
        return DB_OK;
    if ((rc = estimate(db, j, c)) != DB_OK)
        return rc;
    if ((rc = feasibility(db, j, c)) <= 0)
        return rc < 0 ? rc : DB_OK;
    if ((rc = price(db, j, c, version)) <= 0)
        return rc < 0 ? rc : DB_OK;
    if (c->feasible)
        after_price(j, c);
    return DB_OK;
}

static int cmp_cand(const void *pa, const void *pb)
{
    const market_cand *a = pa, *b = pb;

    if (a->feasible != b->feasible)
        return b->feasible - a->feasible;
    if (a->feasible && a->score != b->score)
        return a->score < b->score ? -1 : 1;
    return strcmp(a->offer_id, b->offer_id);
}

static void cand_from_row(PGresult *r, int i, market_cand *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->offer_id, sizeof c->offer_id, "%s", PQgetvalue(r, i, 0));
    snprintf(c->provider_id, sizeof c->provider_id, "%s", PQgetvalue(r, i, 1));
    snprintf(c->identifier, sizeof c->identifier, "%s", PQgetvalue(r, i, 2));
    snprintf(c->region, sizeof c->region, "%s", PQgetvalue(r, i, 3));
    snprintf(c->zone, sizeof c->zone, "%s", PQgetvalue(r, i, 4));
    snprintf(c->device, sizeof c->device, "%s", PQgetvalue(r, i, 5));
    c->capacity = atoll(PQgetvalue(r, i, 6));
    snprintf(c->endpoint, sizeof c->endpoint, "%s", PQgetvalue(r, i, 7));
    snprintf(c->policy_id, sizeof c->policy_id, "%s", PQgetvalue(r, i, 8));
    snprintf(c->residency, sizeof c->residency, "%s", PQgetvalue(r, i, 9));
    c->avail_from_ms = atoll(PQgetvalue(r, i, 10));
    c->avail_until_ms = atoll(PQgetvalue(r, i, 11));
    c->utilisation_ppm = -1;
}

/* The quote an order honours: who, which policy version, which workload. */
typedef struct quote_lock {
    char policy_id[48], device[64];
    int version;
    int64_t total, count, mcu, util;
} quote_lock;

static int load_quote(db_conn *db, const market_job *j, quote_lock *q, json_t **problem)
{
    const char *p[] = {j->quote_id};
    PGresult *r = db_exec(db, sql_quote, 1, p);
    int rc = 0;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), j->tenant) != 0) {
        *problem =
            problem_build(PROB_VALIDATION, "no such quote for this tenant", "quote_id", NULL);
        rc = 422;
    } else if (atoll(PQgetvalue(r, 0, 4)) <= timefmt_now_ms()) {
        *problem = problem_build(PROB_CONFLICT,
                                 "the quote has expired: ask for a new one (POST /v1/quotes)",
                                 "quote_id", NULL);
        rc = 409;
    } else {
        snprintf(q->policy_id, sizeof q->policy_id, "%s", PQgetvalue(r, 0, 1));
        q->version = atoi(PQgetvalue(r, 0, 2));
        q->total = atoll(PQgetvalue(r, 0, 3));
        snprintf(q->device, sizeof q->device, "%s", PQgetvalue(r, 0, 5));
        q->count = atoll(PQgetvalue(r, 0, 6));
        q->mcu = atoll(PQgetvalue(r, 0, 7));
        q->util = atoll(PQgetvalue(r, 0, 8));
        if ((j->device[0] && strcmp(j->device, q->device)) || j->count != q->count ||
            (j->work_mcu > 0 && j->work_mcu != q->mcu) || j->work_mcu == 0) {
            *problem = problem_build(PROB_VALIDATION,
                                     "the order's workload (device, count, work_mcu) must be the "
                                     "quote's",
                                     "quote_id", NULL);
            rc = 422;
        }
    }
    PQclear(r);
    return rc;
}

/* Under a quote the price is locked: p50 price = the quote's total. */
static void apply_quote(const market_job *j, const quote_lock *q, market_cand *c)
{
    if (!c->feasible)
        return;
    c->priced_p50 = q->total;
    if (order_hold_amount(q->total, c->priced_p90, j->margin_pct, &c->hold) != 0)
        rejectf(c, "%s", "the price overflows");
    else
        after_price(j, c);
}

int market_candidates(struct tally_server *srv, db_conn *db, const market_job *j,
                      market_cand **cands, size_t *n, json_t **problem)
{
    quote_lock q = {0};
    market_cand *c = NULL;
    PGresult *r;
    int rc, rows;

    *cands = NULL;
    *n = 0;
    if (j->quote_id[0] && (rc = load_quote(db, j, &q, problem)) != 0)
        return rc;
    {
        const char *p[] = {j->quote_id[0] ? q.device : j->device, j->offer_id, q.policy_id};
        if (!(r = db_exec(db, sql_offers, 3, p)))
            return db_last_status(db);
    }
    rows = PQntuples(r);
    if (rows && !(c = calloc((size_t)rows, sizeof *c))) {
        PQclear(r);
        return DB_FAILED;
    }
    for (int i = 0; i < rows; i++)
        cand_from_row(r, i, &c[i]);
    PQclear(r);
    for (int i = 0; i < rows; i++) {
        if (j->quote_id[0])
            c[i].utilisation_ppm = q.util;
        if ((rc = evaluate(srv, db, j, &c[i], j->quote_id[0] ? q.version : 0)) != DB_OK) {
            free(c);
            return rc;
        }
        if (j->quote_id[0])
            apply_quote(j, &q, &c[i]);
    }
    if (rows > 1)
        qsort(c, (size_t)rows, sizeof *c, cmp_cand);
    *cands = c;
    *n = (size_t)rows;
    return 0;
}

static json_t *ranked_json(const market_cand *c)
{
    char s[40], e[40], cu[40];
    json_t *o;

    timefmt_format(c->start_ms, s, sizeof s);
    timefmt_format(c->start_ms + c->p50_ms, e, sizeof e);
    snprintf(cu, sizeof cu, "%lld.%03lld", (long long)(c->mcu / 1000), (long long)(c->mcu % 1000));
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "offer_id", c->offer_id, "identifier",
                  c->identifier, "provider_id", c->provider_id, "region", c->region, "zone",
                  c->zone, "device", c->device, "cu", cu, "free_devices",
                  (json_int_t)(c->capacity - c->reserved));
    json_object_set_new(o, "price",
                        json_pack("{s:s, s:o, s:o, s:o, s:s, s:i}", "currency", c->currency, "p50",
                                  ledger_money_json(c->priced_p50), "p90",
                                  ledger_money_json(c->priced_p90), "hold",
                                  ledger_money_json(c->hold), "policy_id", c->policy_id,
                                  "policy_version", c->policy_version));
    json_object_set_new(o, "expected_start", json_string(s));
    json_object_set_new(o, "expected_finish_p50", json_string(e));
    timefmt_format(c->end_ms, e, sizeof e);
    json_object_set_new(o, "expected_finish_p90", json_string(e));
    json_object_set_new(o, "latency_ms", json_integer(c->latency_ms));
    json_object_set_new(o, "risk", ledger_money_json(c->risk));
    json_object_set_new(o, "score", ledger_money_json(c->score));
    return o;
}

json_t *market_placement_json(const market_cand *c, size_t n)
{
    json_t *ranked = json_array(), *rejected = json_array();

    for (size_t i = 0; i < n; i++) {
        if (c[i].feasible)
            json_array_append_new(ranked, ranked_json(&c[i]));
        else
            json_array_append_new(rejected,
                                  json_pack("{s:s, s:s, s:s}", "offer_id", c[i].offer_id,
                                            "identifier", c[i].identifier, "reason", c[i].reason));
    }
    return json_pack("{s:o, s:o, s:s}", "ranked", ranked, "rejected", rejected, "scheduler",
                     "built-in cheapest-feasible");
}

int market_place(struct tally_server *srv, db_conn *db, const market_job *j, json_t **out)
{
    market_cand *c;
    size_t n;
    int rc = market_candidates(srv, db, j, &c, &n, out);

    if (rc != 0)
        return rc;
    *out = market_placement_json(c, n);
    rc = n > 0 && c[0].feasible;
    free(c);
    return rc;
}
