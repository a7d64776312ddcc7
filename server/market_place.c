/*
 * market_place.c - gather, measure, price and rank the published offers for a workload.
 *
 * For each published offer (that the request's device, offer and quote allow):
 * the workload is measured on its device (metering cache: CU rate and the
 * roofline duration), its duration estimated (p50/p90 from the tenant's history
 * on that device, estimates.c), the devices free over that window counted
 * (active orders), and its probe health read (market_cache.h). The scheduler
 * (scheduler/place.h) then filters (down, blocked, region, residency, node
 * shape, capacity, deadline at p90, price cap) and ranks by price + latency +
 * risk, pricing each offer through a callback into the rating engine with the
 * offer's policy, the tenant's period-to-date state and the live (or quoted)
 * utilisation. Same inputs, same ranking: ties go by offer id.
 */
#include "estimates.h"
#include "market_cache.h"
#include "market_model.h"
#include "market_orders.h"
#include "metering_store.h"
#include "money.h"
#include "order.h"
#include "place.h"
#include "sched_external.h"
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
    "coalesce((extract(epoch FROM o.available_until) * 1000)::bigint, 0), o.devices_per_node, "
    "o.nodes FROM offers o WHERE o.state = 'published' AND ($1 = '' OR o.device_id = $1) "
    "AND ($2 = '' OR o.id = $2) AND ($3 = '' OR o.policy_id = $3) ORDER BY o.id LIMIT 256";

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

static int rejectf(market_cand *c, const char *fmt, const char *a)
{
    c->feasible = 0;
    snprintf(c->reason, sizeof c->reason, fmt, a);
    return 0;
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
        c->rate_mcu_dev_hour = rate.rate_mcu_per_hour;
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
    c->start_ms = j->start_ms;
    if (j->work_mcu == 0) { /* a reservation for wall_ms: that is the window, not a guess */
        c->p90_ms = c->p50_ms;
        c->end_ms = j->start_ms + c->p90_ms;
        return DB_OK;
    }
    q.prior_s = (c->p50_ms + 999) / 1000;
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

/* What pricing reads from the database, loaded once per placement: offers of one
 * provider usually share a policy, and every offer the platform policy. */
#define MEMO_POLICIES 16
#define MEMO_UTILS 32
typedef struct price_memo {
    int plat_loaded;
    pstore_version plat;
    struct {
        char policy_id[48], period[8];
        int req_version, found;
        pstore_version pol;
        pricing_state state;
    } pol[MEMO_POLICIES];
    int npol;
    struct {
        char device[64], region[32];
        long long util;
    } util[MEMO_UTILS];
    int nutil;
} price_memo;

static void memo_free(price_memo *m)
{
    pstore_release(&m->plat);
    for (int i = 0; i < m->npol; i++)
        pstore_release(&m->pol[i].pol);
    m->npol = 0;
    m->plat_loaded = 0;
}

/* The policy version, platform policy and tenant state for c: an index into m->pol,
 * -1 when the policy does not exist, or a db_status (< -1). */
static int memo_policy(db_conn *db, price_memo *m, const market_job *j, const market_cand *c,
                       int version)
{
    char period[8];
    int i, rc;

    timefmt_period(c->start_ms, period);
    if (!m->plat_loaded) {
        if ((rc = pstore_load_platform(db, &m->plat)) < 0)
            return rc;
        m->plat_loaded = 1;
    }
    for (i = 0; i < m->npol; i++)
        if (!strcmp(m->pol[i].policy_id, c->policy_id) && m->pol[i].req_version == version &&
            !strcmp(m->pol[i].period, period))
            return m->pol[i].found ? i : -1;
    if (m->npol == MEMO_POLICIES)
        memo_free(m); /* many policies: start over (still correct, just reloads) */
    i = m->npol;
    memset(&m->pol[i], 0, sizeof m->pol[i]);
    snprintf(m->pol[i].policy_id, sizeof m->pol[i].policy_id, "%s", c->policy_id);
    snprintf(m->pol[i].period, sizeof m->pol[i].period, "%s", period);
    m->pol[i].req_version = version;
    if ((rc = pstore_load(db, c->policy_id, version, &m->pol[i].pol)) < 0)
        return rc;
    m->pol[i].found = rc == 1;
    if (rc == 1 && (rc = pstore_state_load(db, j->tenant, m->pol[i].pol.policy_id,
                                           m->pol[i].pol.version, period, &m->pol[i].state)) < 0) {
        pstore_release(&m->pol[i].pol);
        return rc;
    }
    m->npol++;
    return m->pol[i].found ? i : -1;
}

static int memo_util(db_conn *db, price_memo *m, const market_cand *c, long long *util)
{
    int rc;

    for (int i = 0; i < m->nutil; i++)
        if (!strcmp(m->util[i].device, c->device) && !strcmp(m->util[i].region, c->region)) {
            *util = m->util[i].util;
            return DB_OK;
        }
    if ((rc = pstore_utilisation(db, c->device, c->region, util)) < 0)
        return rc;
    if (m->nutil < MEMO_UTILS) {
        snprintf(m->util[m->nutil].device, sizeof m->util[0].device, "%s", c->device);
        snprintf(m->util[m->nutil].region, sizeof m->util[0].region, "%s", c->region);
        m->util[m->nutil++].util = *util;
    }
    return DB_OK;
}

/* An order is charged at least its policy's minimum, at its end (server/market_minimum.c):
 * what it costs, and so what it holds, is never less than the minimum with its fee. 0, or -1
 * when the minimum cannot be priced. */
static int floor_minimum(const pstore_version *pol, const pstore_version *plat,
                         const pricing_state *state, pricing_result *res, market_cand *c)
{
    pricing_error err;

    if (pol->policy->minimum_rule < 0)
        return 0;
    if (pricing_minimum_trueup(pol->policy, plat->policy, 0, state, res, &err) != PRICING_OK)
        return -1;
    c->priced_p50 = c->priced_p50 > res->total ? c->priced_p50 : res->total;
    c->priced_p90 = c->priced_p90 > res->total ? c->priced_p90 : res->total;
    return 0;
}

static int price(db_conn *db, price_memo *m, const market_job *j, market_cand *c, int version)
{
    pricing_result *res = malloc(sizeof *res);
    long long util = -1;
    int rc, k;

    if (!res)
        return DB_FAILED;
    if ((k = memo_policy(db, m, j, c, version)) < 0) {
        rc = k < -1 ? k : rejectf(c, "%s", "its pricing policy does not exist");
        goto out;
    }
    const pstore_version *pol = &m->pol[k].pol, *plat = &m->plat;
    const pricing_state *state = &m->pol[k].state;
    c->policy_version = pol->version;
    if (c->utilisation_ppm < 0 && (rc = memo_util(db, m, c, &util)) < 0)
        goto out;
    if (c->utilisation_ppm < 0)
        c->utilisation_ppm = util;
    rc = 1;
    if (rate_for(j, c, pol, plat, state, c->p90_ms, res, c->reason, sizeof c->reason) != 0) {
        c->feasible = 0;
        goto out;
    }
    c->priced_p90 = res->total;
    if (rate_for(j, c, pol, plat, state, c->p50_ms, res, c->reason, sizeof c->reason) != 0) {
        c->feasible = 0;
        goto out;
    }
    c->priced_p50 = res->total;
    c->provider_net = res->provider_net;
    snprintf(c->currency, sizeof c->currency, "%s", res->currency);
    if (floor_minimum(pol, plat, state, res, c) != 0) {
        c->feasible = 0;
        snprintf(c->reason, sizeof c->reason, "%s", "the policy's minimum cannot be priced");
        goto out;
    }
    if (order_hold_amount(c->priced_p50, c->priced_p90, j->margin_pct, &c->hold) != 0)
        rc = rejectf(c, "%s", "the price overflows");
out:
    free(res);
    return rc;
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
    c->per_node = atoll(PQgetvalue(r, i, 12));
    c->nodes = atoll(PQgetvalue(r, i, 13));
    c->utilisation_ppm = -1;
    c->rank = -1;
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

/* Before the scheduler: what only the service knows about an offer (CU rate,
 * estimate, free devices over the window, probe health). 1 usable, 0 rejected
 * (reason set), or a db_status. */
static int prepare(struct tally_server *srv, db_conn *db, const market_job *j, market_cand *c)
{
    probe_state ps;
    int rc;

    c->feasible = 1;
    if (!measure(srv, j, c))
        return 0;
    if ((rc = estimate(db, j, c)) != DB_OK)
        return rc;
    if (c->avail_until_ms && c->end_ms > c->avail_until_ms)
        return rejectf(c, "%s", "availability: its window ends before the job would (p90)");
    if (srv->market && market_cache_health(srv->market, c->offer_id, &ps) == 0) {
        c->health = ps.status == PROBE_DOWN ? 2 : ps.status == PROBE_UP ? 1 : 0;
        c->srtt_ms = ps.srtt_ms;
        c->consecutive_failures = ps.consecutive_failures;
        c->failure_ratio_ppm = ps.failure_ratio_ppm;
    }
    return 1;
}

struct rank_ctx {
    struct tally_server *srv;
    db_conn *db;
    const market_job *j;
    const quote_lock *q;
    int rc; /* a db_status met inside the price callback */
    char *scheduler;
    size_t schedlen;
    price_memo memo;
};

/* The scheduler's price callback: the rating engine with the offer's policy. */
static int price_cb(void *ctx, const sched_offer *o, const sched_job *job, const sched_fit *fit,
                    int64_t *total, char *err, size_t errlen)
{
    struct rank_ctx *x = ctx;
    market_cand *c = o->user;
    int rc;

    (void)job;
    c->start_ms = fit->start_ms;
    c->p50_ms = fit->p50_ms;
    c->p90_ms = fit->p90_ms;
    c->end_ms = fit->start_ms + fit->p90_ms;
    c->feasible = 1;
    rc = price(x->db, &x->memo, x->j, c, x->q->policy_id[0] ? x->q->version : 0);
    if (rc < 0) {
        x->rc = rc;
        snprintf(err, errlen, "the database is unavailable");
        return 1;
    }
    if (!c->feasible) {
        snprintf(err, errlen, "%s", c->reason);
        return 1;
    }
    if (x->j->currency[0] && strcmp(x->j->currency, c->currency) != 0) {
        snprintf(err, errlen, "priced in %s, not %s", c->currency, x->j->currency);
        return 1;
    }
    if (x->q->policy_id[0]) { /* a quote locks the price of the quoted workload */
        c->priced_p50 = x->q->total;
        if (order_hold_amount(c->priced_p50, c->priced_p90, x->j->margin_pct, &c->hold) != 0) {
            snprintf(err, errlen, "the price overflows");
            return 1;
        }
    }
    *total = c->priced_p50;
    return 0;
}

/* Everything the scheduler reads, pointing into the candidates and the job. */
typedef struct rank_input {
    sched_offer *offers;
    char (*tags)[256];
    const char *regions[MJ_MAX_LIST + 1];
    const char *blocked[2 * MJ_MAX_LIST + 1];
    sched_job job;
} rank_input;

static void offer_for(market_cand *c, const market_job *j, sched_offer *o, char *tags)
{
    char *save = NULL, *t;
    int k = 0;

    o->id = c->offer_id;
    o->region = c->region;
    o->zone = c->zone;
    o->device_id = c->device;
    o->device_kind = cat_kind_name(c->kind);
    o->devices_per_node = c->per_node;
    o->nodes = c->nodes;
    o->free_devices = c->capacity - c->reserved;
    o->available_from_ms = c->avail_from_ms;
    o->health = c->health == 2 ? SCHED_DOWN : SCHED_UP;
    o->consecutive_failures = c->consecutive_failures;
    o->failure_ratio_ppm = c->failure_ratio_ppm;
    o->srtt_ms = c->srtt_ms;
    o->user = c;
    snprintf(tags, 256, "%s", c->residency);
    for (t = strtok_r(tags, ",", &save); t && k < SCHED_MAX_TAGS; t = strtok_r(NULL, ",", &save))
        o->tags[k++] = t;
    /* The effective CU rate that makes the scheduler's p50 the estimator's p50 on this device. */
    if (j->work_mcu > 0)
        o->rate_mcu_per_device_hour =
            (int64_t)((long double)j->work_mcu * 3600000.0L / ((long double)c->p50_ms * j->count));
    if (o->rate_mcu_per_device_hour < 1)
        o->rate_mcu_per_device_hour = 1;
}

static void job_for(const market_job *j, market_cand *c, size_t n, rank_input *in)
{
    sched_job *s = &in->job;
    size_t nb = 0;

    s->profile = cu_class_name(j->profile.cls);
    s->devices = j->count;
    s->device_id = j->device[0] ? j->device : NULL;
    s->deadline_ms = j->deadline_ms;
    s->max_price_micro = j->max_price > 0 ? j->max_price : 0;
    s->data_region = j->data_region[0] ? j->data_region : NULL;
    s->start_ms = j->start_ms;
    for (int i = 0; i < j->n_regions; i++)
        in->regions[i] = j->regions[i];
    s->allowed_regions = j->n_regions ? in->regions : NULL;
    for (int i = 0; i < j->n_residency && i < SCHED_MAX_TAGS; i++)
        s->tags[i] = j->residency[i];
    for (int i = 0; i < j->n_blocked; i++) { /* blocked by id or by identifier */
        in->blocked[nb++] = j->blocked[i];
        for (size_t k = 0; k < n && nb < 2 * MJ_MAX_LIST; k++)
            if (!strcmp(c[k].identifier, j->blocked[i]))
                in->blocked[nb++] = c[k].offer_id;
    }
    s->blocked = nb ? in->blocked : NULL;
    s->work_mcu = j->work_mcu;
    s->p50_ms = 1000;
    s->p90_ms = 1000;
    for (size_t k = 0; k < n; k++) { /* the widest p90/p50 spread of the estimates */
        if (!c[k].feasible)
            continue;
        if (j->work_mcu == 0) {
            s->p50_ms = c[k].p50_ms;
            s->p90_ms = c[k].p90_ms;
            break;
        }
        int64_t spread = (1000 * c[k].p90_ms + c[k].p50_ms - 1) / c[k].p50_ms;
        if (spread > s->p90_ms)
            s->p90_ms = spread;
    }
}

static void apply_result(market_cand **by_offer, const sched_result *res)
{
    for (size_t k = 0; k < res->n_ranked; k++) {
        const sched_placement *p = &res->ranked[k];
        market_cand *c = by_offer[p->offer_index];
        c->feasible = 1;
        c->rank = (int)k;
        c->start_ms = p->start_ms;
        c->p50_ms = p->finish_p50_ms - p->start_ms;
        c->p90_ms = p->finish_p90_ms - p->start_ms;
        c->end_ms = p->finish_p90_ms;
        c->latency_ms = (int64_t)(p->latency_ms + 0.5);
        c->latency_term = p->latency_term_micro;
        c->risk_ppm = p->risk_ppm;
        c->risk = p->risk_term_micro;
        c->score = p->score_micro;
    }
    for (size_t k = 0; k < res->n_rejected; k++) {
        const sched_rejection *r = &res->rejected[k];
        market_cand *c = by_offer[r->offer_index];
        c->feasible = 0;
        snprintf(c->reason, sizeof c->reason, "%s: %s", sched_reject_name(r->code), r->reason);
    }
}

/* Rank the prepared candidates with the scheduler. 0, a problem status, or a db_status. */
static int rank(struct rank_ctx *x, market_cand *c, size_t n, json_t **problem)
{
    rank_input in = {0};
    market_cand **by_offer = calloc(n ? n : 1, sizeof *by_offer);
    sched_result res = {0};
    sched_input si = {0};
    size_t m = 0;
    char err[200];
    int rc = 0;

    in.offers = calloc(n ? n : 1, sizeof *in.offers);
    in.tags = calloc(n ? n : 1, sizeof *in.tags);
    if (!by_offer || !in.offers || !in.tags) {
        rc = DB_FAILED;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (c[i].feasible) {
            offer_for(&c[i], x->j, &in.offers[m], in.tags[m]);
            by_offer[m++] = &c[i];
        }
    job_for(x->j, c, n, &in);
    si.offers = in.offers;
    si.n_offers = m;
    si.job = &in.job;
    si.weights = sched_weights_default();
    if (x->j->latency_weight >= 0)
        si.weights.latency_micro_per_ms = x->j->latency_weight;
    si.model = *market_model_get();
    si.price = price_cb;
    si.price_ctx = x;
    if (sched_place(&si, &res, err, sizeof err) != 0) {
        *problem = problem_build(PROB_VALIDATION, err, NULL, NULL);
        rc = 422;
        goto out;
    }
    rc = x->rc;
    snprintf(x->scheduler, x->schedlen, "built-in");
    if (rc == 0 && res.n_ranked && sched_external_url()) {
        if (sched_external_rank(&si, &res, err, sizeof err) == 0)
            snprintf(x->scheduler, x->schedlen, "external");
        else
            snprintf(x->scheduler, x->schedlen, "built-in (external scheduler failed: %s)", err);
    }
    if (rc == 0)
        apply_result(by_offer, &res);
out:
    sched_result_free(&res);
    free(by_offer);
    free(in.offers);
    free(in.tags);
    return rc;
}

static int cmp_cand(const void *pa, const void *pb)
{
    const market_cand *a = pa, *b = pb;

    if (a->feasible != b->feasible)
        return b->feasible - a->feasible;
    if (a->feasible && a->rank != b->rank)
        return a->rank - b->rank;
    return strcmp(a->offer_id, b->offer_id);
}

static const char sql_reserved_all[] =
    "SELECT offer_id, (extract(epoch FROM start_at) * 1000)::bigint, "
    "(extract(epoch FROM end_at) * 1000)::bigint, count FROM orders "
    "WHERE offer_id = ANY($1::text[]) AND state IN ('pending', 'placed', 'running', 'migrating') "
    "AND start_at < to_timestamp($3::bigint / 1000.0) AND end_at > to_timestamp($2::bigint / "
    "1000.0)";

int market_reserved_all(db_conn *db, market_cand *c, size_t n)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    size_t cap = 3, len = 0;
    char *arr, a[24], b[24];
    PGresult *r;

    for (size_t i = 0; i < n; i++)
        if (c[i].feasible) {
            lo = c[i].start_ms < lo ? c[i].start_ms : lo;
            hi = c[i].end_ms > hi ? c[i].end_ms : hi;
            cap += strlen(c[i].offer_id) + 1;
        }
    for (size_t i = 0; i < n; i++)
        c[i].reserved = 0;
    if (lo > hi)
        return DB_OK;
    if (!(arr = malloc(cap)))
        return DB_FAILED;
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++)
        if (c[i].feasible)
            len +=
                (size_t)snprintf(arr + len, cap - len, "%s%s", len > 1 ? "," : "", c[i].offer_id);
    snprintf(arr + len, cap - len, "}");
    snprintf(a, sizeof a, "%lld", (long long)lo);
    snprintf(b, sizeof b, "%lld", (long long)hi);
    {
        const char *p[] = {arr, a, b};
        r = db_exec(db, sql_reserved_all, 3, p);
    }
    free(arr);
    if (!r)
        return db_last_status(db);
    for (int k = 0; k < PQntuples(r); k++) {
        int64_t s = atoll(PQgetvalue(r, k, 1)), e = atoll(PQgetvalue(r, k, 2));
        for (size_t i = 0; i < n; i++)
            if (c[i].feasible && !strcmp(c[i].offer_id, PQgetvalue(r, k, 0)) && s < c[i].end_ms &&
                e > c[i].start_ms)
                c[i].reserved += atoll(PQgetvalue(r, k, 3));
    }
    PQclear(r);
    return DB_OK;
}

static int load_candidates(db_conn *db, const market_job *j, const quote_lock *q, market_cand **out,
                           size_t *n)
{
    const char *p[] = {j->quote_id[0] ? q->device : j->device, j->offer_id, q->policy_id};
    PGresult *r = db_exec(db, sql_offers, 3, p);
    int rows;

    *out = NULL;
    *n = 0;
    if (!r)
        return db_last_status(db);
    rows = PQntuples(r);
    if (rows && !(*out = calloc((size_t)rows, sizeof **out))) {
        PQclear(r);
        return DB_FAILED;
    }
    for (int i = 0; i < rows; i++) {
        cand_from_row(r, i, &(*out)[i]);
        if (j->quote_id[0])
            (*out)[i].utilisation_ppm = q->util;
    }
    *n = (size_t)rows;
    PQclear(r);
    return DB_OK;
}

static const char sql_tenant[] =
    "SELECT 1 FROM accounts WHERE id = $1 AND role = 'tenant' AND disabled_at IS NULL";

/* The order's tenant must be a live tenant account (an admin may name any). 0, 422, or a db_status.
 */
static int check_tenant(db_conn *db, const market_job *j, json_t **problem)
{
    const char *p[] = {j->tenant};
    PGresult *r = db_exec(db, sql_tenant, 1, p);
    int ok;

    if (!r)
        return db_last_status(db);
    ok = PQntuples(r) == 1;
    PQclear(r);
    if (ok)
        return 0;
    *problem =
        problem_build(PROB_UNKNOWN_ACCOUNT, "no tenant account with this id", "tenant", NULL);
    return 422;
}

int market_candidates(struct tally_server *srv, db_conn *db, const market_job *j,
                      market_cand **cands, size_t *n, char *scheduler, size_t schedlen,
                      json_t **problem)
{
    quote_lock q = {0};
    struct rank_ctx x = {srv, db, j, &q, 0, scheduler, schedlen, {0}};
    int rc;

    *cands = NULL;
    *n = 0;
    if ((rc = check_tenant(db, j, problem)) != 0)
        return rc;
    if (j->quote_id[0] && (rc = load_quote(db, j, &q, problem)) != 0)
        return rc;
    if ((rc = load_candidates(db, j, &q, cands, n)) != DB_OK)
        return rc;
    for (size_t i = 0; i < *n; i++)
        if ((rc = prepare(srv, db, j, &(*cands)[i])) < 0)
            goto fail;
    if ((rc = market_reserved_all(db, *cands, *n)) != DB_OK)
        goto fail;
    rc = rank(&x, *cands, *n, problem);
    memo_free(&x.memo);
    if (rc != 0)
        goto fail;
    if (*n > 1)
        qsort(*cands, *n, sizeof **cands, cmp_cand);
    return 0;
fail:
    free(*cands);
    *cands = NULL;
    *n = 0;
    return rc;
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
    json_object_set_new(o, "latency_term", ledger_money_json(c->latency_term));
    json_object_set_new(o, "risk_ppm", json_integer(c->risk_ppm));
    json_object_set_new(o, "risk_term", ledger_money_json(c->risk));
    json_object_set_new(o, "health",
                        json_string(c->health == 2   ? "down"
                                    : c->health == 1 ? "up"
                                                     : "unknown"));
    json_object_set_new(o, "score", ledger_money_json(c->score));
    return o;
}

json_t *market_placement_json(const market_cand *c, size_t n, const char *scheduler)
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
                     scheduler && scheduler[0] ? scheduler : "built-in");
}

int market_place(struct tally_server *srv, db_conn *db, const market_job *j, json_t **out)
{
    market_cand *c;
    size_t n;
    char sched[200] = "";
    int rc = market_candidates(srv, db, j, &c, &n, sched, sizeof sched, out);

    if (rc != 0)
        return rc;
    *out = market_placement_json(c, n, sched);
    rc = n > 0 && c[0].feasible;
    free(c);
    return rc;
}
