/*
 * market_usage.c - validate, measure, price and settle a batch of usage records.
 * Invariants: an accepted record id is stored once per provider and replays
 * its first answer; an order's captured total never exceeds its hold; the
 * period state used to price a record is the state every earlier accepted
 * record of that tenant, policy version and period left behind (row-locked).
 */
#include "ids.h"
#include "ledger_copy.h"
#include "log.h"
#include "market_settle.h"
#include "market_usage.h"
#include "metering_store.h"
#include "order.h"
#include "pricing_store.h"
#include "server.h"
#include "timefmt.h"
#include "tzdb.h"
#include "usage_lines.h"

#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct uorder {
    char id[48], tenant[48], device[64], policy_id[48], currency[4], region[32], cls[32];
    order_state state;
    int version, running;
    int64_t count, start_ms, end_ms, hold, captured, util;
    cu_profile prof;
    int64_t add_amount, add_fee, add_mcu, add_dms, refund_amount, refund_fee;
    int accepted;
    char capture_stl[48], refund_stl[48];
    usage_span *spans;
    size_t nspans, capspans;
    pstore_version pol;
} uorder;

typedef struct ustate {
    char tenant[48], policy[48], period[8];
    int version;
    pricing_state st;
    int used;
} ustate;

typedef struct ukey {
    char id[48];
    unsigned char pk[32];
    int64_t revoked_ms; /* 0 = active */
} ukey;

/* The billed period of what a batch writes, per (tenant, period, currency). */
typedef struct ubill {
    char tenant[48], period[8], currency[4], billed[8];
} ubill;

typedef struct ubatch {
    struct tally_server *srv;
    db_conn *db;
    const char *provider;
    usage_item *items;
    size_t n;
    uorder *orders;
    size_t norders;
    ustate *states;
    size_t nstates;
    ukey *keys;
    size_t nkeys;
    ubill *bills;
    size_t nbills;
    pstore_version plat;
    int64_t now_ms;
    char batch_id[48];
    int settle_later; /* the captures could not join the batch's transaction */
} ubatch;

static void refuse(usage_item *it, usage_reason r, const char *detail)
{
    it->reason = r;
    snprintf(it->detail, sizeof it->detail, "%.199s", detail);
}

/* A Postgres text[] literal of the given strings (ids and record ids have no quotes or commas
 * that need more than double quoting; usage_rec refuses '"' and '\\'). */
static char *text_array(ubatch *b, const char *(*get)(const usage_item *))
{
    size_t cap = 3, len = 0;
    char *s;

    for (size_t i = 0; i < b->n; i++)
        cap += strlen(get(&b->items[i])) + 3;
    if (!(s = malloc(cap)))
        return NULL;
    s[len++] = '{';
    for (size_t i = 0; i < b->n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"%s\"", i ? "," : "", get(&b->items[i]));
    snprintf(s + len, cap - len, "}");
    return s;
}

static const char *get_record_id(const usage_item *it)
{
    return it->rec.record_id;
}

static const char *get_order_id(const usage_item *it)
{
    return it->rec.order_id;
}

static const char *get_reverses(const usage_item *it)
{
    return it->rec.reverses;
}

/* ---- keys and signatures ------------------------------------------------------------------ */

static const char sql_keys[] =
    "SELECT id, encode(public_key, 'hex'), "
    "coalesce((extract(epoch FROM revoked_at) * 1000)::bigint, 0) FROM provider_keys "
    "WHERE provider_id = $1";

static int load_keys(ubatch *b)
{
    const char *p[] = {b->provider};
    PGresult *r = db_exec(b->db, sql_keys, 1, p);
    size_t bin;

    if (!r)
        return db_last_status(b->db);
    b->nkeys = (size_t)PQntuples(r);
    b->keys = calloc(b->nkeys ? b->nkeys : 1, sizeof *b->keys);
    for (size_t i = 0; b->keys && i < b->nkeys; i++) {
        snprintf(b->keys[i].id, sizeof b->keys[i].id, "%s", PQgetvalue(r, (int)i, 0));
        sodium_hex2bin(b->keys[i].pk, 32, PQgetvalue(r, (int)i, 1), 64, NULL, &bin, NULL);
        b->keys[i].revoked_ms = atoll(PQgetvalue(r, (int)i, 2));
    }
    PQclear(r);
    return b->keys ? DB_OK : DB_FAILED;
}

static void verify(ubatch *b, usage_item *it)
{
    for (size_t k = 0; k < b->nkeys; k++) {
        if (strcmp(b->keys[k].id, it->key_id) != 0)
            continue;
        if (b->keys[k].revoked_ms && b->keys[k].revoked_ms <= b->now_ms)
            return refuse(it, USAGE_KEY_REVOKED,
                          "the key was revoked: new records need a live key");
        if (!usage_rec_verify(&it->rec, b->keys[k].pk, it->sig))
            refuse(it, USAGE_BAD_SIGNATURE,
                   "the signature does not verify over \"tally-usage-v1\\n\" || canonical record");
        return;
    }
    refuse(it, USAGE_UNKNOWN_KEY, "no key with this id is registered to this provider");
}

/* ---- replays ---------------------------------------------------------------------------- */

/* One index probe per record id (a plain "= ANY" would scan all of the provider's records).
 * LIMIT 1 (the pair is unique) keeps the lateral subquery a per-id probe whatever the planner
 * thinks of the table: flattened into a join, the generic plan of a table without statistics
 * (a new database) hashes all of the provider's records for every batch. */
static const char sql_existing[] =
    "SELECT u.record_id, encode(u.record_hash, 'hex'), u.id, u.mcu, u.amount_micros, "
    "u.fee_micros, u.currency, "
    "u.settlement_id FROM unnest($2::text[]) AS k(rid) CROSS JOIN LATERAL (SELECT * FROM "
    "usage_records x WHERE x.provider_id = $1 AND x.record_id = k.rid LIMIT 1) u";

static int find_replays(ubatch *b)
{
    char *arr = text_array(b, get_record_id);
    PGresult *r;

    if (!arr)
        return DB_FAILED;
    {
        const char *p[] = {b->provider, arr};
        r = db_exec(b->db, sql_existing, 2, p);
    }
    free(arr);
    if (!r)
        return db_last_status(b->db);
    for (int row = 0; row < PQntuples(r); row++)
        for (size_t i = 0; i < b->n; i++) {
            usage_item *it = &b->items[i];
            if (it->reason != USAGE_OK || strcmp(it->rec.record_id, PQgetvalue(r, row, 0)) != 0)
                continue;
            if (strcmp(it->rec.hash_hex, PQgetvalue(r, row, 1)) != 0) {
                refuse(it, USAGE_ID_REUSED,
                       "this record id was accepted before with different content; correct it "
                       "with a reversal record");
                continue;
            }
            it->duplicate = 1;
            snprintf(it->usage_id, sizeof it->usage_id, "%s", PQgetvalue(r, row, 2));
            it->mcu = atoll(PQgetvalue(r, row, 3));
            it->amount = atoll(PQgetvalue(r, row, 4));
            it->fee = atoll(PQgetvalue(r, row, 5));
            snprintf(it->currency, sizeof it->currency, "%s", PQgetvalue(r, row, 6));
            snprintf(it->settlement_id, sizeof it->settlement_id, "%s", PQgetvalue(r, row, 7));
        }
    PQclear(r);
    return DB_OK;
}

/* ---- orders ------------------------------------------------------------------------------ */

static const char sql_orders[] =
    "SELECT o.id, o.state, o.tenant_id, o.device_id, o.count, "
    "(extract(epoch FROM o.start_at) * 1000)::bigint, (extract(epoch FROM o.end_at) * "
    "1000)::bigint, "
    "o.policy_id, o.policy_version, o.currency, o.hold_micros, o.captured_micros, "
    "o.utilisation_ppm, o.profile ->> 'class', o.profile ->> 'precision', "
    "(o.profile ->> 'intensity_milli')::bigint, f.region "
    "FROM orders o JOIN offers f ON f.id = o.offer_id "
    "WHERE o.id = ANY($1::text[]) AND o.provider_id = $2 ORDER BY o.id FOR UPDATE OF o";
/* Only the accepted intervals that can meet the batch's: ending after its earliest start and
 * starting before its latest end (indexed by order and end). */
static const char sql_spans[] =
    "SELECT u.order_id, u.device_id, u.start_ms, u.end_ms FROM usage_records u "
    "WHERE u.order_id = ANY($1::text[]) AND u.end_ms > $2::bigint AND u.start_ms < $3::bigint "
    "AND u.reverses IS NULL AND NOT EXISTS (SELECT 1 FROM usage_records v WHERE v.provider_id = "
    "u.provider_id AND v.reverses = u.record_id)";

static uorder *find_order(ubatch *b, const char *id)
{
    for (size_t i = 0; i < b->norders; i++)
        if (!strcmp(b->orders[i].id, id))
            return &b->orders[i];
    return NULL;
}

static void order_profile(uorder *o, PGresult *r, int row)
{
    cu_class cls;
    cat_precision prec;

    snprintf(o->cls, sizeof o->cls, "%s", PQgetvalue(r, row, 13));
    if (cu_class_parse(o->cls, &cls) != 0 || cat_precision_parse(PQgetvalue(r, row, 14), &prec))
        return;
    if (cls == CU_CLASS_CUSTOM)
        cu_profile_custom(prec, atoll(PQgetvalue(r, row, 15)), &o->prof);
    else
        cu_profile_class_precision(cls, prec, &o->prof);
}

static int add_span(uorder *o, int64_t s, int64_t e)
{
    if (o->nspans == o->capspans) {
        size_t cap = o->capspans ? o->capspans * 2 : 16;
        usage_span *n = realloc(o->spans, cap * sizeof *n);
        if (!n)
            return -1;
        o->spans = n;
        o->capspans = cap;
    }
    o->spans[o->nspans].start_ms = s;
    o->spans[o->nspans++].end_ms = e;
    return 0;
}

static int load_spans(ubatch *b, const char *arr)
{
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    char los[24], his[24];
    const char *p[] = {arr, los, his};
    PGresult *r;

    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].reason == USAGE_OK) {
            lo = b->items[i].rec.start_ms < lo ? b->items[i].rec.start_ms : lo;
            hi = b->items[i].rec.end_ms > hi ? b->items[i].rec.end_ms : hi;
        }
    if (lo > hi)
        return DB_OK; /* nothing to check */
    snprintf(los, sizeof los, "%lld", (long long)lo);
    snprintf(his, sizeof his, "%lld", (long long)hi);
    r = db_exec(b->db, sql_spans, 3, p);

    if (!r)
        return db_last_status(b->db);
    for (int i = 0; i < PQntuples(r); i++) {
        uorder *o = find_order(b, PQgetvalue(r, i, 0));
        if (o && add_span(o, atoll(PQgetvalue(r, i, 2)), atoll(PQgetvalue(r, i, 3))) != 0) {
            PQclear(r);
            return DB_FAILED;
        }
    }
    PQclear(r);
    return DB_OK;
}

static int load_orders(ubatch *b)
{
    char *arr = text_array(b, get_order_id);
    PGresult *r;
    int rc;

    if (!arr)
        return DB_FAILED;
    {
        const char *p[] = {arr, b->provider};
        r = db_exec(b->db, sql_orders, 2, p);
    }
    if (!r) {
        free(arr);
        return db_last_status(b->db);
    }
    b->norders = (size_t)PQntuples(r);
    b->orders = calloc(b->norders ? b->norders : 1, sizeof *b->orders);
    for (size_t i = 0; b->orders && i < b->norders; i++) {
        uorder *o = &b->orders[i];
        int row = (int)i;
        snprintf(o->id, sizeof o->id, "%s", PQgetvalue(r, row, 0));
        if (order_state_parse(PQgetvalue(r, row, 1), &o->state) != 0)
            o->state = ORDER_REJECTED;
        snprintf(o->tenant, sizeof o->tenant, "%s", PQgetvalue(r, row, 2));
        snprintf(o->device, sizeof o->device, "%s", PQgetvalue(r, row, 3));
        o->count = atoll(PQgetvalue(r, row, 4));
        o->start_ms = atoll(PQgetvalue(r, row, 5));
        o->end_ms = atoll(PQgetvalue(r, row, 6));
        snprintf(o->policy_id, sizeof o->policy_id, "%s", PQgetvalue(r, row, 7));
        o->version = atoi(PQgetvalue(r, row, 8));
        snprintf(o->currency, sizeof o->currency, "%s", PQgetvalue(r, row, 9));
        o->hold = atoll(PQgetvalue(r, row, 10));
        o->captured = atoll(PQgetvalue(r, row, 11));
        o->util = atoll(PQgetvalue(r, row, 12));
        snprintf(o->region, sizeof o->region, "%s", PQgetvalue(r, row, 16));
        order_profile(o, r, row);
    }
    PQclear(r);
    rc = b->orders ? load_spans(b, arr) : DB_FAILED;
    free(arr);
    return rc;
}

/* ---- period state --------------------------------------------------------------------------- */

static int cmp_state(const void *pa, const void *pb)
{
    const ustate *a = pa, *b = pb;
    int c = strcmp(a->tenant, b->tenant);

    if (!c)
        c = strcmp(a->policy, b->policy);
    if (!c)
        c = a->version - b->version;
    return c ? c : strcmp(a->period, b->period);
}

static ustate *find_state(ubatch *b, const uorder *o, const char *period)
{
    for (size_t i = 0; i < b->nstates; i++)
        if (!strcmp(b->states[i].tenant, o->tenant) && !strcmp(b->states[i].policy, o->policy_id) &&
            b->states[i].version == o->version && !strcmp(b->states[i].period, period))
            return &b->states[i];
    return NULL;
}

static int lock_state(ubatch *b, ustate *s)
{
    return pstore_state_lock(b->db, s->tenant, s->policy, s->version, s->period, &s->st);
}

/* Every state a record may need, locked in one global order (no deadlocks). */
static int lock_states(ubatch *b)
{
    char period[8];
    int rc;

    b->states = calloc(b->n ? b->n : 1, sizeof *b->states);
    if (!b->states)
        return DB_FAILED;
    for (size_t i = 0; i < b->n; i++) {
        usage_item *it = &b->items[i];
        uorder *o = it->reason == USAGE_OK ? find_order(b, it->rec.order_id) : NULL;
        if (!o || it->duplicate || it->rec.reverses[0])
            continue;
        timefmt_period(it->rec.start_ms, period);
        if (find_state(b, o, period))
            continue;
        ustate *s = &b->states[b->nstates++];
        snprintf(s->tenant, sizeof s->tenant, "%s", o->tenant);
        snprintf(s->policy, sizeof s->policy, "%s", o->policy_id);
        snprintf(s->period, sizeof s->period, "%s", period);
        s->version = o->version;
    }
    qsort(b->states, b->nstates, sizeof *b->states, cmp_state);
    for (size_t i = 0; i < b->nstates; i++)
        if ((rc = lock_state(b, &b->states[i])) != DB_OK)
            return rc;
    return DB_OK;
}

/* ---- one record -------------------------------------------------------------------------- */

static int profile_matches(const usage_rec *r, const uorder *o)
{
    const json_t *p = r->profile;
    const json_t *cls = json_is_object(p) ? json_object_get(p, "class") : p;

    return json_is_string(cls) && !strcmp(json_string_value(cls), o->cls);
}

static uorder *check_order(ubatch *b, usage_item *it)
{
    const usage_rec *r = &it->rec;
    uorder *o = find_order(b, r->order_id);
    usage_reason w;

    if (!o)
        return refuse(it, USAGE_UNKNOWN_ORDER, "no such order on this provider's offers"), NULL;
    if (!order_state_accepts_usage(o->state))
        return refuse(it, USAGE_ORDER_CLOSED, "the order does not accept usage in its state"), NULL;
    if (strcmp(r->device, o->device) != 0)
        return refuse(it, USAGE_DEVICE_MISMATCH, "the order runs on another device"), NULL;
    if (r->count > o->count)
        return refuse(it, USAGE_COUNT_EXCEEDED, "more devices than the order holds"), NULL;
    if (!profile_matches(r, o))
        return refuse(it, USAGE_INVALID, "the record's profile class is not the order's"), NULL;
    w = usage_window_check(o->start_ms, o->end_ms, r->start_ms, r->end_ms, b->now_ms);
    if (w != USAGE_OK)
        return refuse(it, w,
                      w == USAGE_IN_FUTURE ? "the interval ends in the future"
                                           : "the interval lies outside the order's window "
                                             "(its start to twice its reserved length)"),
               NULL;
    if (usage_span_overlaps(o->spans, o->nspans, r->start_ms, r->end_ms))
        return refuse(it, USAGE_OVERLAP, "overlaps an accepted interval of this order"), NULL;
    return o;
}

static int load_policy(ubatch *b, uorder *o)
{
    int rc;

    if (o->pol.ref)
        return 1;
    rc = pstore_load(b->db, o->policy_id, o->version, &o->pol);
    return rc;
}

static usage_reason rate(ubatch *b, usage_item *it, uorder *o, ustate *s, int64_t mcu,
                         cat_kind kind, pricing_result *res)
{
    const usage_rec *r = &it->rec;
    pricing_tz tz;
    pricing_error err;
    char tzerr[200];

    {
        pricing_usage u = {o->tenant,
                           r->device,
                           kind,
                           r->count,
                           o->cls,
                           mcu,
                           r->count * (r->end_ms - r->start_ms),
                           r->start_ms,
                           r->end_ms,
                           o->region};
        pricing_input in = {o->pol.policy, b->plat.policy, NULL, &u, &s->st, o->util};
        if (o->pol.policy->timezone[0]) {
            if (tzdb_zone(o->pol.policy->timezone, r->end_ms, &tz, tzerr, sizeof tzerr) != 0) {
                refuse(it, USAGE_PRICING, tzerr);
                return USAGE_PRICING;
            }
            in.tz = &tz;
        }
        if (pricing_rate(&in, res, &err) != PRICING_OK) {
            refuse(it, USAGE_PRICING, err.message);
            return USAGE_PRICING;
        }
    }
    return USAGE_OK;
}

/* CU of the record and its device's kind (for pricing), under one catalog lock. */
static int measure(ubatch *b, usage_item *it, uorder *o, int64_t *mcu, cat_kind *kind)
{
    const usage_rec *r = &it->rec;
    const cat_catalog *cat;
    const cu_eff_table *eff;
    cu_rate rate;
    cu_error err;
    cu_status st = CU_ERR_INVALID;

    mcache_read_lock(b->srv->metering, &cat, &eff);
    if (cat)
        st = cu_normalize(cat, eff, r->device, r->count, &o->prof, r->end_ms - r->start_ms, mcu,
                          &rate, &err);
    if (st == CU_OK)
        *kind = cat_device_kind(rate.device);
    mcache_read_unlock(b->srv->metering);
    if (st != CU_OK) {
        refuse(it, USAGE_METERING, cat ? err.message : "no device catalog is loaded");
        return -1;
    }
    return 0;
}

json_t *market_usage_lines_json(const pricing_result *res)
{
    return usage_lines_json(res);
}

static int accept_usage(ubatch *b, usage_item *it, pricing_result *res)
{
    char period[8];
    uorder *o;
    ustate *s;
    int64_t mcu = 0, fee = 0;
    cat_kind kind = CAT_KIND_GPU;
    int rc;

    if (!(o = check_order(b, it)) || measure(b, it, o, &mcu, &kind) != 0)
        return DB_OK;
    timefmt_period(it->rec.start_ms, period);
    if ((rc = load_policy(b, o)) < 0)
        return rc;
    if (rc == 0 || !(s = find_state(b, o, period)))
        return refuse(it, USAGE_PRICING, "the order's policy version cannot be loaded"), DB_OK;
    if (rate(b, it, o, s, mcu, kind, res) != USAGE_OK)
        return DB_OK;
    if (order_fee_split(res->total, res->provider_net, &fee) != 0)
        fee = 0;
    if (res->total < 0 || o->captured + o->add_amount + res->total > o->hold)
        return refuse(it, USAGE_EXCEEDS_HOLD,
                      "the order's hold cannot cover this record: the budget is spent"),
               DB_OK;
    if (add_span(o, it->rec.start_ms, it->rec.end_ms) != 0)
        return DB_FAILED;
    s->st = res->state;
    s->used = 1;
    free(it->lines);
    if (!(it->lines = usage_lines_text(res)))
        return DB_FAILED;
    ids_new(it->usage_id, sizeof it->usage_id, "use");
    it->mcu = mcu;
    it->amount = res->total;
    it->fee = fee;
    snprintf(it->currency, sizeof it->currency, "%s", res->currency);
    o->add_amount += res->total;
    o->add_fee += fee;
    o->add_mcu += mcu;
    o->add_dms += it->rec.count * (it->rec.end_ms - it->rec.start_ms);
    o->accepted++;
    return DB_OK;
}

/* ---- reversals ----------------------------------------------------------------------------- */

static const char sql_originals[] =
    "SELECT u.record_id, u.order_id, u.mcu, u.amount_micros, u.fee_micros, u.currency, "
    "u.device_ms, EXISTS (SELECT 1 FROM usage_records v WHERE v.provider_id = u.provider_id AND "
    "v.reverses = u.record_id) FROM unnest($2::text[]) AS k(rid) CROSS JOIN LATERAL (SELECT * "
    "FROM usage_records x WHERE x.provider_id = $1 AND x.record_id = k.rid LIMIT 1) u "
    "WHERE u.reverses IS NULL";

static int reverse_all(ubatch *b)
{
    char *arr;
    PGresult *r;
    size_t first = 0;

    while (first < b->n && !(b->items[first].reason == USAGE_OK && b->items[first].rec.reverses[0]))
        first++;
    if (first == b->n)
        return DB_OK; /* no reversal in this batch */
    if (!(arr = text_array(b, get_reverses)))
        return DB_FAILED;
    {
        const char *p[] = {b->provider, arr};
        r = db_exec(b->db, sql_originals, 2, p);
    }
    free(arr);
    if (!r)
        return db_last_status(b->db);
    for (size_t i = 0; i < b->n; i++) {
        usage_item *it = &b->items[i];
        int row = -1;
        uorder *o;
        if (it->reason != USAGE_OK || it->duplicate || !it->rec.reverses[0])
            continue;
        for (int k = 0; k < PQntuples(r) && row < 0; k++)
            if (!strcmp(PQgetvalue(r, k, 0), it->rec.reverses))
                row = k;
        if (row < 0 || strcmp(PQgetvalue(r, row, 1), it->rec.order_id) != 0) {
            refuse(it, USAGE_UNKNOWN_RECORD, "no accepted record of this order with that id");
            continue;
        }
        if (PQgetvalue(r, row, 7)[0] == 't') {
            refuse(it, USAGE_ALREADY_REVERSED, "that record was reversed already");
            continue;
        }
        if (!(o = find_order(b, it->rec.order_id))) {
            refuse(it, USAGE_UNKNOWN_ORDER, "no such order on this provider's offers");
            continue;
        }
        for (size_t k = 0; k < i; k++) /* the same original twice in one batch */
            if (b->items[k].reason == USAGE_OK &&
                !strcmp(b->items[k].rec.reverses, it->rec.reverses))
                refuse(it, USAGE_ALREADY_REVERSED, "that record is reversed earlier in this batch");
        if (it->reason != USAGE_OK)
            continue;
        ids_new(it->usage_id, sizeof it->usage_id, "use");
        it->mcu = -atoll(PQgetvalue(r, row, 2));
        it->amount = -atoll(PQgetvalue(r, row, 3));
        it->fee = -atoll(PQgetvalue(r, row, 4));
        snprintf(it->currency, sizeof it->currency, "%s", PQgetvalue(r, row, 5));
        o->refund_amount += -it->amount;
        o->refund_fee += -it->fee;
        o->add_mcu += it->mcu;
        o->add_dms -= atoll(PQgetvalue(r, row, 6));
    }
    PQclear(r);
    return DB_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Accepted records stream in as binary COPY: no SQL text or JSON to parse per row. */
static const char sql_copy[] =
    "COPY usage_records (id, provider_id, record_id, order_id, device_id, count, start_at, "
    "end_at, start_ms, end_ms, work_mcu, mcu, device_ms, currency, amount_micros, fee_micros, "
    "period, billed_period, lines, key_id, signature, canonical, record_hash, batch_id, "
    "settlement_id, reverses) FROM STDIN (FORMAT binary)";
#define COPY_FIELDS 26
#define PG_EPOCH_MS INT64_C(946684800000) /* 2000-01-01T00:00:00Z, binary timestamptz's zero */

/* jsonb's binary form: version 1, then the text (NULL: a reversal, no line items of its own). */
static void copy_jsonb(ledger_copy *c, const char *text)
{
    size_t n;

    text = text ? text : "[]";
    n = strlen(text);
    unsigned char *buf = malloc(n + 1);

    if (buf) {
        buf[0] = 1;
        memcpy(buf + 1, text, n);
        ledger_copy_bytes(c, buf, n + 1);
    } else {
        c->oom = true;
    }
    free(buf);
}

/* A bytea field from its hex digits (signature, record hash: migrations/0016): n bytes. The
 * digits were checked when the record was parsed (usage_rec.h); a bad one marks the copy. */
static void copy_hex(ledger_copy *c, const char *hex, size_t n)
{
    unsigned char buf[64];
    size_t len = 0;

    if (n > sizeof buf || sodium_hex2bin(buf, n, hex, strlen(hex), NULL, &len, NULL) != 0 ||
        len != n) {
        c->oom = true;
        return;
    }
    ledger_copy_bytes(c, buf, n);
}

static ubill *find_bill(const ubatch *b, const char *tenant, const char *period,
                        const char *currency)
{
    for (size_t i = 0; i < b->nbills; i++)
        if (!strcmp(b->bills[i].tenant, tenant) && !strcmp(b->bills[i].period, period) &&
            !strcmp(b->bills[i].currency, currency))
            return &b->bills[i];
    return NULL;
}

static void copy_row(ledger_copy *c, const ubatch *b, const usage_item *it, const uorder *o)
{
    const usage_rec *r = &it->rec;
    const ubill *bill;
    char per[8];

    timefmt_period(r->start_ms, per);
    bill = find_bill(b, o->tenant, per, it->currency);
    ledger_copy_row(c, COPY_FIELDS);
    ledger_copy_text(c, it->usage_id);
    ledger_copy_text(c, b->provider);
    ledger_copy_text(c, r->record_id);
    ledger_copy_text(c, r->order_id);
    ledger_copy_text(c, r->device);
    ledger_copy_i32(c, (int32_t)r->count);
    ledger_copy_i64(c, (r->start_ms - PG_EPOCH_MS) * 1000);
    ledger_copy_i64(c, (r->end_ms - PG_EPOCH_MS) * 1000);
    ledger_copy_i64(c, r->start_ms);
    ledger_copy_i64(c, r->end_ms);
    if (r->work_mcu >= 0)
        ledger_copy_i64(c, r->work_mcu);
    else
        ledger_copy_null(c);
    ledger_copy_i64(c, it->mcu);
    ledger_copy_i64(c, (it->amount < 0 ? -1 : 1) * r->count * (r->end_ms - r->start_ms));
    ledger_copy_text(c, it->currency);
    ledger_copy_i64(c, it->amount);
    ledger_copy_i64(c, it->fee);
    ledger_copy_text(c, per);
    ledger_copy_text(c, bill ? bill->billed : per);
    copy_jsonb(c, it->lines);
    ledger_copy_text(c, it->key_id);
    copy_hex(c, it->sig, USAGE_SIG_HEX / 2);
    ledger_copy_text(c, r->canonical);
    copy_hex(c, r->hash_hex, 32);
    ledger_copy_text(c, b->batch_id);
    ledger_copy_text(c, r->reverses[0] ? o->refund_stl : o->capture_stl);
    ledger_copy_text_or_null(c, r->reverses);
}

static const char sql_settle[] =
    "INSERT INTO settlements (id, order_id, kind, amount, fee, state) VALUES ($1, $2, $3, $4, $5, "
    "'pending')";
static const char sql_order_add[] =
    "UPDATE orders SET captured_micros = captured_micros + $2, refunded_micros = refunded_micros + "
    "$6, fee_micros = fee_micros + $3 - "
    "$7, used_mcu = used_mcu + $4, used_device_ms = used_device_ms + $5, state = CASE WHEN state = "
    "'placed' THEN 'running' ELSE state END, updated_at = now() WHERE id = $1";
static const char sql_order_run[] =
    "INSERT INTO order_events (order_id, from_state, to_state, actor, detail) VALUES ($1, "
    "'placed', 'running', $2, '{\"reason\": \"first usage accepted\"}'::jsonb)";

static int write_orders(ubatch *b)
{
    int rc = DB_OK;

    for (size_t i = 0; rc == DB_OK && i < b->norders; i++) {
        uorder *o = &b->orders[i];
        char a[24], f[24], m[24], d[24], ra[24], rf[24];
        if (!o->accepted && !o->refund_amount && !o->add_mcu)
            continue;
        snprintf(a, sizeof a, "%lld", (long long)o->add_amount);
        snprintf(f, sizeof f, "%lld", (long long)o->add_fee);
        snprintf(m, sizeof m, "%lld", (long long)o->add_mcu);
        snprintf(d, sizeof d, "%lld", (long long)o->add_dms);
        snprintf(ra, sizeof ra, "%lld", (long long)o->refund_amount);
        snprintf(rf, sizeof rf, "%lld", (long long)o->refund_fee);
        {
            const char *p[] = {o->id, a, f, m, d, ra, rf};
            const char *sc[] = {o->capture_stl, o->id, "capture", a, f};
            const char *sr[] = {o->refund_stl, o->id, "refund", ra, rf};
            const char *ev[] = {o->id, b->provider};
            rc = db_command(b->db, sql_order_add, 7, p);
            if (rc == DB_OK && o->add_amount > 0)
                rc = db_command(b->db, sql_settle, 5, sc);
            if (rc == DB_OK && o->refund_amount > 0)
                rc = db_command(b->db, sql_settle, 5, sr);
            if (rc == DB_OK && o->state == ORDER_PLACED && o->accepted)
                rc = db_command(b->db, sql_order_run, 2, ev);
        }
    }
    return rc;
}

static int write_states(ubatch *b)
{
    int rc = DB_OK;

    for (size_t i = 0; rc == DB_OK && i < b->nstates; i++) {
        const ustate *s = &b->states[i];
        if (s->used)
            rc = pstore_state_save(b->db, s->tenant, s->policy, s->version, s->period, &s->st);
    }
    return rc;
}

/* Billed periods are decided after usage_records is taken in ROW EXCLUSIVE mode (what the COPY
 * takes anyway): an invoice finalisation (SHARE) has then committed, and is seen, or waits for
 * this transaction (migrations/0014_usage_billed_period.sql). */
static const char sql_lock_usage[] = "LOCK TABLE usage_records IN ROW EXCLUSIVE MODE";
static const char sql_billed[] =
    "SELECT tally_billed_period(k.t, k.p, k.c) FROM unnest($1::text[], $2::text[], $3::text[]) "
    "WITH ORDINALITY AS k(t, p, c, i) ORDER BY k.i";

/* A text[] literal of field f (offset into ubill) of the batch's bills; malloc'd. */
static char *bill_array(const ubatch *b, size_t off)
{
    size_t cap = 3 + b->nbills * 52, len = 0;
    char *s = malloc(cap);

    if (!s)
        return NULL;
    s[len++] = '{';
    for (size_t i = 0; i < b->nbills; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"%s\"", i ? "," : "",
                                (const char *)&b->bills[i] + off);
    snprintf(s + len, cap - len, "}");
    return s;
}

static int collect_bills(ubatch *b)
{
    char per[8];

    b->bills = calloc(b->n ? b->n : 1, sizeof *b->bills);
    if (!b->bills)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        const usage_item *it = &b->items[i];
        const uorder *o = find_order(b, it->rec.order_id);
        ubill *x;
        if (it->reason != USAGE_OK || it->duplicate || !o)
            continue;
        timefmt_period(it->rec.start_ms, per);
        if (find_bill(b, o->tenant, per, it->currency))
            continue;
        x = &b->bills[b->nbills++];
        snprintf(x->tenant, sizeof x->tenant, "%s", o->tenant);
        snprintf(x->period, sizeof x->period, "%s", per);
        snprintf(x->currency, sizeof x->currency, "%s", it->currency);
    }
    return 0;
}

static int billed_periods(ubatch *b)
{
    char *t = NULL, *p = NULL, *c = NULL;
    PGresult *r = NULL;
    int rc = DB_FAILED;

    if (collect_bills(b) != 0)
        return DB_FAILED;
    if (b->nbills == 0)
        return DB_OK;
    if ((rc = db_command(b->db, sql_lock_usage, 0, NULL)) != DB_OK)
        return rc;
    rc = DB_FAILED;
    t = bill_array(b, offsetof(ubill, tenant));
    p = bill_array(b, offsetof(ubill, period));
    c = bill_array(b, offsetof(ubill, currency));
    if (t && p && c) {
        const char *q[] = {t, p, c};
        r = db_exec(b->db, sql_billed, 3, q);
        rc = r ? DB_OK : db_last_status(b->db);
    }
    for (int i = 0; r && i < PQntuples(r) && (size_t)i < b->nbills; i++)
        snprintf(b->bills[i].billed, sizeof b->bills[i].billed, "%s", PQgetvalue(r, i, 0));
    if (r && (size_t)PQntuples(r) != b->nbills)
        rc = DB_FAILED;
    PQclear(r);
    free(t);
    free(p);
    free(c);
    return rc;
}

static int write_all(ubatch *b)
{
    ledger_copy c;
    int rc;

    if ((rc = billed_periods(b)) != DB_OK)
        return rc;

    for (size_t i = 0; i < b->norders; i++) {
        ids_new(b->orders[i].capture_stl, sizeof b->orders[i].capture_stl, "stl");
        ids_new(b->orders[i].refund_stl, sizeof b->orders[i].refund_stl, "stl");
    }
    ledger_copy_init(&c);
    for (size_t i = 0; i < b->n; i++) {
        usage_item *it = &b->items[i];
        uorder *o = find_order(b, it->rec.order_id);
        if (it->reason != USAGE_OK || it->duplicate || !o)
            continue;
        snprintf(it->settlement_id, sizeof it->settlement_id, "%s",
                 it->rec.reverses[0] ? o->refund_stl : o->capture_stl);
        copy_row(&c, b, it, o);
    }
    rc = c.rows ? ledger_copy_send(b->db, sql_copy, &c) : DB_OK;
    ledger_copy_free(&c);
    if (rc == DB_OK)
        rc = write_orders(b);
    if (rc == DB_OK)
        rc = write_states(b);
    return rc;
}

/* ---- the batch --------------------------------------------------------------------------- */

static void batch_free(ubatch *b)
{
    for (size_t i = 0; i < b->norders; i++) {
        free(b->orders[i].spans);
        pstore_release(&b->orders[i].pol);
    }
    pstore_release(&b->plat);
    free(b->orders);
    free(b->states);
    free(b->keys);
    free(b->bills);
    b->bills = NULL;
    b->nbills = 0;
    b->orders = NULL;
    b->states = NULL;
    b->keys = NULL;
    b->norders = b->nstates = b->nkeys = 0;
}

/* Apply the batch's captures and refunds through the ledger, MARKET_SETTLE_MAX at a time:
 * in_txn inside the batch's transaction (one commit for the records, the settlements and
 * the ledger; MARKET_SETTLE_LATER when the ledger cannot join it), else after its commit. */
static int settle(ubatch *b, int in_txn)
{
    const char *ids[MARKET_SETTLE_MAX];
    size_t k = 0;
    int rc = DB_OK;

    for (size_t i = 0; i < b->norders && rc == DB_OK; i++) {
        uorder *o = &b->orders[i];
        if (o->add_amount > 0)
            ids[k++] = o->capture_stl;
        if (o->refund_amount > 0)
            ids[k++] = o->refund_stl;
        if (k + 2 > MARKET_SETTLE_MAX || i + 1 == b->norders) {
            rc = in_txn ? market_settle_run_in_txn(b->srv, b->db, ids, k, NULL)
                        : market_settle_run(b->srv, b->db, ids, k, NULL);
            k = 0;
        }
    }
    return rc;
}

static int run_txn(ubatch *b)
{
    pricing_result *res = malloc(sizeof *res);
    int rc;

    if (!res)
        return DB_FAILED;
    if ((rc = db_begin(b->db)) != DB_OK)
        goto out;
    if ((rc = find_replays(b)) != DB_OK || (rc = load_orders(b)) != DB_OK)
        goto fail;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].reason == USAGE_OK && !b->items[i].duplicate)
            verify(b, &b->items[i]);
    if ((rc = lock_states(b)) != DB_OK || (rc = pstore_load_platform(b->db, &b->plat)) < 0 ||
        (rc = reverse_all(b)) != DB_OK)
        goto fail;
    for (size_t i = 0; i < b->n; i++) {
        usage_item *it = &b->items[i];
        if (it->reason == USAGE_OK && !it->duplicate && !it->rec.reverses[0] &&
            (rc = accept_usage(b, it, res)) != DB_OK)
            goto fail;
    }
    if ((rc = write_all(b)) != DB_OK)
        goto fail;
    rc = settle(b, 1);
    b->settle_later = rc == MARKET_SETTLE_LATER;
    if (rc != DB_OK && !b->settle_later)
        goto fail;
    rc = db_commit(b->db);
    if (rc == DB_OK)
        pstore_inputs_invalidate(); /* quotes in this process see the new period state */
    goto out;
fail:
    db_rollback(b->db);
out:
    free(res);
    return rc;
}

/* Same record id twice in one batch: the later ones are refused. */
static void refuse_in_batch_duplicates(ubatch *b)
{
    for (size_t i = 1; i < b->n; i++)
        for (size_t k = 0; k < i && b->items[i].reason == USAGE_OK; k++)
            if (b->items[k].reason == USAGE_OK &&
                !strcmp(b->items[k].rec.record_id, b->items[i].rec.record_id))
                refuse(&b->items[i], USAGE_DUPLICATE_IN_BATCH,
                       "the same record id appears earlier in this batch");
}

static void reset_answers(ubatch *b, const usage_reason *parsed)
{
    for (size_t i = 0; i < b->n; i++) {
        usage_item *it = &b->items[i];
        it->reason = parsed[i];
        if (parsed[i] == USAGE_OK)
            it->detail[0] = '\0';
        it->duplicate = 0;
        it->usage_id[0] = it->settlement_id[0] = '\0';
        free(it->lines);
        it->lines = NULL;
    }
}

int market_usage_ingest(struct tally_server *srv, db_conn *db, const char *provider,
                        usage_item *items, size_t n)
{
    ubatch b = {.srv = srv, .db = db, .provider = provider, .items = items, .n = n};
    usage_reason *parsed = malloc((n ? n : 1) * sizeof *parsed);
    int rc;

    if (!parsed)
        return DB_FAILED;
    refuse_in_batch_duplicates(&b);
    for (size_t i = 0; i < n; i++)
        parsed[i] = items[i].reason;
    b.now_ms = timefmt_now_ms();
    ids_new(b.batch_id, sizeof b.batch_id, "usb");
    rc = load_keys(&b);
    if (rc == DB_OK)
        rc = run_txn(&b);
    if (rc == DB_OK && b.settle_later && settle(&b, 0) != DB_OK)
        log_warn("market", "usage batch %s: settlement deferred to the janitor", b.batch_id);
    if (rc != DB_OK)
        reset_answers(&b, parsed); /* the pool may run the whole batch again */
    batch_free(&b);
    free(parsed);
    return rc;
}
