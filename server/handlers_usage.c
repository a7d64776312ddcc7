/*
 * handlers_usage.c - providers report usage; anyone involved reads it.
 *
 *   POST /v1/usage   {"records": [{"record": {...}, "key_id": "pk_…", "signature": "…"}, …]}
 *                    provider; up to USAGE_BATCH_MAX records; 200 with one answer per record
 *   GET  /v1/usage   ?order_id=&after=&limit=  accepted records (tenant/provider: own orders)
 *
 * Records are parsed and canonicalised here; signatures are verified and
 * everything else is decided on a database thread (market_usage.c).
 */
#include "handlers.h"
#include "market_usage.h"
#include "money.h"
#include "paging.h"
#include "scope.h"
#include "ledger_svc.h"
#include "server.h"
#include "timefmt.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct usage_job {
    tally_server *srv;
    char provider[48];
    usage_item *items;
    size_t n;
};

static void usage_job_free(void *arg)
{
    struct usage_job *j = arg;

    for (size_t i = 0; i < j->n; i++) {
        usage_rec_clear(&j->items[i].rec);
        free(j->items[i].lines);
    }
    free(j->items);
    free(j);
}

static void parse_item(json_t *v, usage_item *it)
{
    static const char *const known[] = {"record", "key_id", "signature", NULL};
    json_t *kid = json_object_get(v, "key_id"), *sig = json_object_get(v, "signature");
    const char *k;
    json_t *x;

    it->reason = USAGE_INVALID;
    if (!json_is_object(v)) {
        snprintf(it->detail, sizeof it->detail, "each item must be an object");
        return;
    }
    json_object_foreach(v, k, x)
    {
        int ok = 0;
        for (const char *const *n = known; *n && !ok; n++)
            ok = !strcmp(*n, k);
        if (!ok) {
            snprintf(it->detail, sizeof it->detail, "unknown field '%.64s' in the item", k);
            return;
        }
    }
    if (!json_is_string(kid) || json_string_length(kid) >= sizeof it->key_id ||
        !json_is_string(sig) || json_string_length(sig) != USAGE_SIG_HEX) {
        snprintf(it->detail, sizeof it->detail,
                 "each item needs 'key_id' (pk_…) and 'signature' (128 hex digits)");
        return;
    }
    snprintf(it->key_id, sizeof it->key_id, "%s", json_string_value(kid));
    snprintf(it->sig, sizeof it->sig, "%s", json_string_value(sig));
    for (char *p = it->sig; *p; p++) /* hex is case-insensitive; stored in lower case */
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    if (!json_object_get(v, "record")) {
        snprintf(it->detail, sizeof it->detail, "'record' is required");
        return;
    }
    it->reason =
        usage_rec_parse(json_object_get(v, "record"), &it->rec, it->detail, sizeof it->detail);
}

static json_t *answer_json(const usage_item *it, size_t i)
{
    json_t *o = json_pack("{s:I, s:s}", "index", (json_int_t)i, "record_id", it->rec.record_id);

    if (it->reason != USAGE_OK) {
        json_object_set_new(o, "status", json_string("rejected"));
        json_object_set_new(o, "reason", json_string(usage_reason_code(it->reason)));
        json_object_set_new(o, "detail", json_string(it->detail));
        return o;
    }
    json_object_set_new(o, "status", json_string("accepted"));
    json_object_set_new(o, "duplicate", json_boolean(it->duplicate));
    json_object_set_new(o, "usage_id", json_string(it->usage_id));
    json_object_set_new(o, "mcu", json_integer(it->mcu));
    json_object_set_new(o, "currency", json_string(it->currency));
    json_object_set_new(o, "amount", ledger_money_json(it->amount));
    json_object_set_new(o, "platform_fee", ledger_money_json(it->fee));
    json_object_set_new(o, "settlement_id", json_string(it->settlement_id));
    return o;
}

static int usage_work(db_conn *db, void *arg)
{
    struct usage_job *j = arg;
    return market_usage_ingest(j->srv, db, j->provider, j->items, j->n);
}

static void usage_done(http_ctx *c, int status, void *arg)
{
    struct usage_job *j = arg;
    json_t *results = json_array();
    size_t acc = 0;

    (void)status;
    for (size_t i = 0; i < j->n; i++) {
        json_array_append_new(results, answer_json(&j->items[i], i));
        acc += j->items[i].reason == USAGE_OK;
    }
    http_reply_json(c, 200,
                    json_pack("{s:I, s:I, s:I, s:o}", "records", (json_int_t)j->n, "accepted",
                              (json_int_t)acc, "rejected", (json_int_t)(j->n - acc), "results",
                              results));
    usage_job_free(j);
}

void h_usage_create(http_ctx *c)
{
    static const char *const fields[] = {"records", NULL};
    json_t *body = http_body(c), *recs, *v;
    struct usage_job *j;
    size_t i;

    if (!body || val_known_fields(c, body, fields))
        return body ? (void)0
                    : http_reply_problem(c, PROB_VALIDATION, "a JSON body is required", "records");
    recs = json_object_get(body, "records");
    if (!json_is_array(recs) || json_array_size(recs) == 0 ||
        json_array_size(recs) > USAGE_BATCH_MAX) {
        http_reply_problemf(c, PROB_VALIDATION, "records",
                            "'records' must be an array of 1 to %d signed records",
                            USAGE_BATCH_MAX);
        return;
    }
    j = calloc(1, sizeof *j);
    if (j)
        j->items = calloc(json_array_size(recs), sizeof *j->items);
    if (!j || !j->items) {
        free(j);
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    j->srv = http_server(c);
    snprintf(j->provider, sizeof j->provider, "%s", http_get_caller(c)->account_id);
    json_array_foreach(recs, i, v)
    {
        parse_item(v, &j->items[i]);
        j->n = i + 1;
    }
    http_db(c, usage_work, usage_done, j, usage_job_free);
}

/* ---- reading ------------------------------------------------------------------------------ */

static const char sql_list[] =
    "SELECT u.id, u.record_id, u.order_id, u.provider_id, o.tenant_id, u.device_id, u.count, "
    "u.start_ms, u.end_ms, coalesce(u.work_mcu, -1), u.mcu, u.device_ms, u.currency, "
    "u.amount_micros, u.fee_micros, u.period, u.key_id, encode(u.signature, 'hex'), u.canonical, "
    "u.batch_id, u.settlement_id, coalesce(u.reverses, ''), coalesce(s.state, 'none'), "
    "coalesce(s.txn_id, ''), u.lines::text "
    "FROM usage_records u JOIN orders o ON o.id = u.order_id "
    "LEFT JOIN settlements s ON s.id = u.settlement_id "
    "WHERE ($1::text IS NULL OR o.tenant_id = $1 OR u.provider_id = $1) "
    "AND ($2::text IS NULL OR u.order_id = $2) AND ($3::text IS NULL OR u.id > $3) "
    "ORDER BY u.id LIMIT $4";

static json_t *ms_json(const char *v)
{
    char t[40];
    timefmt_format(atoll(v), t, sizeof t);
    return json_string(t);
}

#define V(k) PQgetvalue(r, i, k)
#define I(k) ((json_int_t)atoll(PQgetvalue(r, i, k)))

static json_t *usage_row(PGresult *r, int i, const void *ctx)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", V(0), "record_id", V(1), "order_id",
                  V(2), "provider_id", V(3), "tenant_id", V(4), "device", V(5), "count", I(6));

    (void)ctx;
    json_object_set_new(o, "start", ms_json(V(7)));
    json_object_set_new(o, "end", ms_json(V(8)));
    json_object_set_new(o, "work_mcu", I(9) >= 0 ? json_integer(I(9)) : json_null());
    json_object_set_new(o, "mcu", json_integer(I(10)));
    json_object_set_new(o, "device_ms", json_integer(I(11)));
    json_object_set_new(o, "currency", json_string(V(12)));
    json_object_set_new(o, "amount", ledger_money_json(I(13)));
    json_object_set_new(o, "platform_fee", ledger_money_json(I(14)));
    json_object_set_new(o, "period", json_string(V(15)));
    json_object_set_new(o, "signature",
                        json_pack("{s:s, s:s, s:s, s:s}", "alg", "Ed25519", "key_id", V(16),
                                  "value", V(17), "signed", "tally-usage-v1\\n || canonical"));
    json_object_set_new(o, "canonical", json_string(V(18)));
    json_object_set_new(o, "batch_id", json_string(V(19)));
    json_object_set_new(o, "settlement",
                        json_pack("{s:s, s:s, s:o}", "id", V(20), "state", V(22), "transaction_id",
                                  V(23)[0] ? json_string(V(23)) : json_null()));
    json_object_set_new(o, "reverses", V(21)[0] ? json_string(V(21)) : json_null());
    json_object_set_new(o, "lines", json_loads(V(24), 0, NULL));
    return o;
}

#undef V
#undef I

static void usage_list_done(http_ctx *c, PGresult *r, void *arg)
{
    int limit = *(int *)arg;
    free(arg);
    http_reply_json(c, 200, paging_build(r, limit, usage_row, NULL));
    PQclear(r);
}

void h_usage_list(http_ctx *c)
{
    const char *order = NULL, *after = NULL, *owner = scope_owner_filter(http_get_caller(c));
    char lim[16];
    int limit, *lp;

    if (val_query_limit(c, 100, 1000, &limit) || val_query_id(c, "order_id", "ord", &order) ||
        val_query_id(c, "after", "use", &after))
        return;
    if (!(lp = malloc(sizeof *lp))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    *lp = limit;
    snprintf(lim, sizeof lim, "%d", limit + 1);
    {
        const char *p[] = {owner, order, after, lim};
        http_db_query(c, sql_list, 4, p, usage_list_done, lp, free);
    }
}
