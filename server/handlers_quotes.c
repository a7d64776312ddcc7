/*
 * handlers_quotes.c - POST /v1/quotes and GET /v1/quotes/{id}: signed price locks.
 *
 * A quote measures the workload with the in-memory catalog, rates it with the
 * named policy version (plus the platform's fee policy), the tenant's
 * period-to-date state for the quote's UTC month and the live utilisation, and
 * stores the result as canonical JSON signed by the service key:
 *   signature = Ed25519("tally-quote-v1\n" || canonical JSON)
 * where canonical JSON has sorted keys, no spaces and only strings and
 * integers. The quote is honoured at its price until expires_at.
 */
#include "handlers.h"
#include "idem_write.h"
#include "ids.h"
#include "metering_req.h"
#include "money.h"
#include "pricing_store.h"
#include "scope.h"
#include "server.h"
#include "timefmt.h"
#include "tzdb.h"
#include "validate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTE_DOMAIN "tally-quote-v1\n"
#define QUOTE_MAX_AHEAD_MS (366LL * 86400 * 1000)
#define QUOTE_DEFAULT_VALID_S 900

struct quote_job {
    char id[48], tenant[48], policy_id[48], device[64], region[32], profile_name[32];
    char catalog_version[72];
    int policy_version, eff_version;
    cat_kind device_class;
    json_t *profile;
    long long count, mcu, wall_ms, valid_for_s;
    int64_t start_ms, end_ms;
    const signing_key *key;
};

static void quote_job_free(void *arg)
{
    struct quote_job *j = arg;
    json_decref(j->profile);
    free(j);
}

static json_t *money_json(int64_t micros)
{
    char buf[40];
    money_format(micros, buf, sizeof buf);
    return json_string(buf);
}

static const char *qty_unit_name(pricing_qty_unit u)
{
    return u == PRICING_QTY_MCU ? "mcu" : u == PRICING_QTY_DEVICE_MS ? "device_ms" : "money";
}

static json_t *line_json(const pricing_line *l)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "kind", pricing_line_kind_name(l->kind),
                          "rule_id", l->rule_id, "rule_kind", pricing_rule_kind_name(l->rule_kind),
                          "description", l->description, "quantity", (json_int_t)l->quantity,
                          "quantity_unit", qty_unit_name(l->qty_unit));

    if (l->qty_unit == PRICING_QTY_MONEY)
        json_object_set_new(o, "factor_ppm", json_integer(l->unit_price));
    else
        json_object_set_new(o, "unit_price", money_json(l->unit_price));
    json_object_set_new(o, "amount", money_json(l->amount));
    json_object_set_new(o, "amount_micros", json_integer(l->amount));
    return o;
}

/* Map a rating error to a 422 naming the request field it concerns. */
static json_t *rating_problem(const pricing_error *err, const struct quote_job *j)
{
    const char *field = "policy_id";

    if (err->code == PRICING_ERR_NO_RATE)
        field = "device";
    else if (err->code == PRICING_ERR_RANGE && strstr(err->message, "utilisation"))
        return idem_problem(PROB_VALIDATION, "device",
                            "the policy prices %s at spot rates but no utilisation has been "
                            "reported for it (POST /v1/pricing/utilisation)",
                            j->device);
    else if (err->code == PRICING_ERR_RANGE || err->code == PRICING_ERR_OVERFLOW)
        field = "work_mcu";
    return idem_problem(PROB_VALIDATION, field, "%s (%s)", err->message,
                        pricing_status_code(err->code));
}

static json_t *quote_document(const struct quote_job *j, const pstore_version *pol,
                              const pstore_version *plat, const pricing_result *res, long long util)
{
    char t[40], created[40], expires[40];
    json_t *lines = json_array(), *doc;
    int64_t now = timefmt_now_ms();

    for (size_t i = 0; i < res->n_lines; i++)
        json_array_append_new(lines, line_json(&res->lines[i]));
    timefmt_format(now, created, sizeof created);
    timefmt_format(now + j->valid_for_s * 1000, expires, sizeof expires);
    doc = json_pack("{s:s, s:s, s:{s:s, s:i, s:s}, s:s, s:o, s:o, s:I, s:s, s:o}", "id", j->id,
                    "tenant_id", j->tenant, "policy", "id", pol->policy_id, "version", pol->version,
                    "sha256", pol->sha256, "currency", res->currency, "lines", lines, "total",
                    money_json(res->total), "total_micros", (json_int_t)res->total, "created_at",
                    created, "provider_net", money_json(res->provider_net));
    json_object_set_new(doc, "expires_at", json_string(expires));
    json_object_set_new(
        doc, "platform_policy",
        plat->ref ? json_pack("{s:s, s:i}", "id", plat->policy_id, "version", plat->version)
                  : json_null());
    json_object_set_new(doc, "provider_fee",
                        res->has_provider_fee ? line_json(&res->provider_fee) : json_null());
    json_object_set_new(doc, "utilisation_ppm", util >= 0 ? json_integer(util) : json_null());
    {
        char cu[40];
        mreq_decimal_mcu(j->mcu, cu, sizeof cu);
        json_object_set_new(doc, "workload",
                            json_pack("{s:s, s:I, s:O, s:I, s:s, s:I, s:I, s:s}", "device",
                                      j->device, "count", (json_int_t)j->count, "profile",
                                      j->profile, "mcu", (json_int_t)j->mcu, "cu", cu, "wall_ms",
                                      (json_int_t)j->wall_ms, "device_ms",
                                      (json_int_t)(j->wall_ms * j->count), "region", j->region));
    }
    timefmt_format(j->start_ms, t, sizeof t);
    json_object_set_new(doc, "interval", json_pack("{s:s}", "start", t));
    timefmt_format(j->end_ms, t, sizeof t);
    json_object_set_new(json_object_get(doc, "interval"), "end", json_string(t));
    json_object_set_new(doc, "catalog_version", json_string(j->catalog_version));
    json_object_set_new(doc, "efficiency_version", json_integer(j->eff_version));
    return doc;
}

/* One statement: the quote row, committed without waiting for the WAL flush
 * (set_config(..., true) applies to the statement's own transaction). */
static const char sql_quote_insert[] =
    "WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "INSERT INTO quotes (id, tenant_id, policy_id, policy_version, currency, total_micros, "
    "document, kid, signature, expires_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10::timestamptz FROM cfg";

/* Sign the canonical text and store it; *body becomes document + signature. */
static int sign_and_store(db_conn *db, const struct quote_job *j, json_t *doc, json_t **body)
{
    char *canon = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char sig[crypto_sign_BYTES];
    char sighex[2 * crypto_sign_BYTES + 1], ver[16], total[24];
    size_t dl = strlen(QUOTE_DOMAIN), cl;
    unsigned char *msg;
    int rc;

    if (!canon)
        return DB_FAILED;
    cl = strlen(canon);
    msg = malloc(dl + cl);
    if (!msg) {
        free(canon);
        return DB_FAILED;
    }
    memcpy(msg, QUOTE_DOMAIN, dl);
    memcpy(msg + dl, canon, cl);
    crypto_sign_detached(sig, NULL, msg, dl + cl, j->key->sk);
    free(msg);
    sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
    snprintf(ver, sizeof ver, "%d", j->policy_version);
    snprintf(total, sizeof total, "%lld",
             (long long)json_integer_value(json_object_get(doc, "total_micros")));
    {
        const char *p[] = {j->id,
                           j->tenant,
                           j->policy_id,
                           ver,
                           json_string_value(json_object_get(doc, "currency")),
                           total,
                           canon,
                           j->key->kid,
                           sighex,
                           json_string_value(json_object_get(doc, "expires_at"))};
        /* A quote is a price offer, not a money movement: it need not wait for the
         * WAL flush, and the signed document stands on its own if it were lost. */
        rc = db_command(db, sql_quote_insert, 10, p);
    }
    free(canon);
    if (rc == DB_FAILED && !strcmp(db_last_sqlstate(db), "23503")) {
        json_decref(doc);
        *body = idem_problem(PROB_VALIDATION, "tenant", "no account '%s'", j->tenant);
        return 1; /* a 4xx outcome, not a database failure */
    }
    if (rc != DB_OK)
        return rc;
    *body = doc;
    json_object_set_new(doc, "signature",
                        json_pack("{s:s, s:s, s:s, s:s}", "alg", "Ed25519", "kid", j->key->kid,
                                  "value", sighex, "signed",
                                  "tally-quote-v1\\n || canonical JSON"));
    return DB_OK;
}

static int op_quote(db_conn *db, void *arg, int *status, json_t **body)
{
    struct quote_job *j = arg;
    pstore_version pol = {0}, plat = {0};
    pricing_state state;
    pricing_result *res = NULL;
    pricing_error err;
    pricing_tz tz;
    long long util = -1;
    char period[8], tzerr[256];
    pstore_quote_query q = {j->policy_id, j->policy_version, j->tenant,
                            period,       j->device,         j->region};
    int rc;

    timefmt_period(j->start_ms, period);
    rc = pstore_load_quote_inputs(db, &q, &pol, &plat, &state, &util);
    *status = 422;
    if (rc < 0)
        goto out;
    if (rc == 0 || strcmp(pol.scope, "provider") != 0) {
        *body = idem_problem(PROB_VALIDATION, "policy_id", "no provider policy '%s'%s",
                             j->policy_id, j->policy_version ? " at that version" : "");
        rc = DB_OK;
        goto out;
    }
    j->policy_version = pol.version;
    if (pol.policy->timezone[0] &&
        tzdb_zone(pol.policy->timezone, j->end_ms, &tz, tzerr, sizeof tzerr) != 0) {
        *body = idem_problem(PROB_VALIDATION, "policy_id", "policy time zone: %s", tzerr);
        goto out;
    }
    res = malloc(sizeof *res);
    if (!res) {
        rc = DB_FAILED;
        goto out;
    }
    {
        pricing_usage u = {j->tenant,       j->device, j->device_class,       j->count,
                           j->profile_name, j->mcu,    j->wall_ms * j->count, j->start_ms,
                           j->end_ms,       j->region};
        pricing_input in = {pol.policy, plat.policy, pol.policy->timezone[0] ? &tz : NULL,
                            &u,         &state,      util};
        if (pricing_rate(&in, res, &err) != PRICING_OK) {
            *body = rating_problem(&err, j);
            rc = DB_OK;
            goto out;
        }
    }
    rc = sign_and_store(db, j, quote_document(j, &pol, &plat, res, util), body);
    if (rc == DB_OK)
        *status = 201;
    else if (rc == 1)
        rc = DB_OK; /* *status stays 422 */
out:
    free(res);
    pstore_release(&pol);
    pstore_release(&plat);
    return rc < 0 ? rc : DB_OK;
}

/* Measure the workload with the cached catalog: CU and wall time. */
static int quote_measure(http_ctx *c, const workload_req *w, long long work, long long wall_ms,
                         struct quote_job *j)
{
    const cat_catalog *cat;
    const cu_eff_table *eff;
    int64_t mcu = 0, ms = 0;
    cu_rate rate;
    cu_error err;
    cu_status st;

    mcache_read_lock(http_server(c)->metering, &cat, &eff);
    if (!cat) {
        mcache_read_unlock(http_server(c)->metering);
        http_reply_problem(c, PROB_DB_UNAVAILABLE, "no device catalog is loaded yet", NULL);
        return -1;
    }
    if (work > 0) {
        st = cu_duration(cat, eff, w->device, w->count, &w->profile, work, &ms, &rate, &err);
        mcu = work;
    } else {
        st = cu_normalize(cat, eff, w->device, w->count, &w->profile, wall_ms, &mcu, &rate, &err);
        ms = wall_ms;
    }
    if (st != CU_OK) {
        mcache_read_unlock(http_server(c)->metering);
        mreq_reply_cu_error(c, &err, "device");
        return -1;
    }
    j->device_class = cat_device_kind(rate.device);
    j->mcu = mcu;
    j->wall_ms = ms;
    j->eff_version = eff ? (int)eff->version : 1;
    snprintf(j->catalog_version, sizeof j->catalog_version, "%s", cat_version(cat));
    mcache_read_unlock(http_server(c)->metering);
    return 0;
}

static int quote_window(http_ctx *c, json_t *body, struct quote_job *j)
{
    const char *start = NULL;
    int64_t now = timefmt_now_ms();

    if (val_string(c, body, "start", 0, 40, &start))
        return -1;
    j->start_ms = now;
    if (start && timefmt_parse(start, &j->start_ms) != 0) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'start' must be an ISO-8601 UTC time like 2026-12-01T09:00:00Z",
                           "start");
        return -1;
    }
    if (j->start_ms < now - 60000) {
        http_reply_problem(c, PROB_VALIDATION, "'start' is in the past", "start");
        return -1;
    }
    if (j->start_ms > now + QUOTE_MAX_AHEAD_MS) {
        http_reply_problem(c, PROB_VALIDATION, "'start' is more than a year ahead", "start");
        return -1;
    }
    if (j->wall_ms > QUOTE_MAX_AHEAD_MS || j->wall_ms > INT64_MAX / (j->count ? j->count : 1)) {
        http_reply_problem(c, PROB_VALIDATION, "the workload runs for more than a year",
                           "work_mcu");
        return -1;
    }
    j->end_ms = j->start_ms + (j->wall_ms > 0 ? j->wall_ms : 1);
    return 0;
}

void h_quotes_create(http_ctx *c)
{
    static const char *const fields[] = {"policy_id", "policy_version", "device",      "count",
                                         "profile",   "work_mcu",       "wall_ms",     "start",
                                         "region",    "tenant",         "valid_for_s", NULL};
    static const char *const amounts[] = {"work_mcu", "wall_ms", NULL};
    const http_caller *who = http_get_caller(c);
    json_t *body = http_body(c);
    const char *policy_id, *region = NULL, *tenant = NULL;
    long long version, work, wall_ms, valid;
    struct quote_job *j;
    workload_req w;

    if (mreq_workload(c, body, &w) || val_known_fields(c, body, fields) ||
        val_string(c, body, "policy_id", 1, 47, &policy_id) ||
        val_int(c, body, "policy_version", 0, 1, 1000000, 0, &version) ||
        val_require_one(c, body, amounts) ||
        val_int(c, body, "work_mcu", 0, 1, INT64_MAX / 4, 0, &work) ||
        val_int(c, body, "wall_ms", 0, 1, QUOTE_MAX_AHEAD_MS, 0, &wall_ms) ||
        val_string(c, body, "region", 0, 31, &region) ||
        val_string(c, body, "tenant", 0, 47, &tenant) ||
        val_int(c, body, "valid_for_s", 0, 60, 86400, QUOTE_DEFAULT_VALID_S, &valid))
        return;
    if (!ids_valid(policy_id, "pol")) {
        http_reply_problem(c, PROB_VALIDATION, "'policy_id' must be a policy id (pol_…)",
                           "policy_id");
        return;
    }
    if (tenant && who->role != ROLE_ADMIN && strcmp(tenant, who->account_id) != 0) {
        http_reply_problem(c, PROB_FORBIDDEN, "a tenant key may only quote for itself", "tenant");
        return;
    }
    if (tenant && !ids_valid(tenant, "acc")) {
        http_reply_problem(c, PROB_VALIDATION, "'tenant' must be an account id", "tenant");
        return;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    j->count = w.count;
    if (quote_measure(c, &w, work, wall_ms, j) || quote_window(c, body, j)) {
        quote_job_free(j);
        return;
    }
    ids_new(j->id, sizeof j->id, "quo");
    snprintf(j->tenant, sizeof j->tenant, "%s", tenant ? tenant : who->account_id);
    snprintf(j->policy_id, sizeof j->policy_id, "%s", policy_id);
    snprintf(j->device, sizeof j->device, "%s", w.device);
    snprintf(j->region, sizeof j->region, "%s", region ? region : "");
    snprintf(j->profile_name, sizeof j->profile_name, "%s", cu_class_name(w.profile.cls));
    j->profile = mreq_profile_json(&w.profile);
    j->policy_version = (int)version;
    j->valid_for_s = valid;
    j->key = http_server(c)->signing;
    idem_write_submit_autocommit(c, op_quote, j, quote_job_free);
}

/* ---- reading a quote ---------------------------------------------------------------- */

struct quote_read {
    char id[48];
    const char *owner; /* NULL: sees all */
    char owner_buf[48];
    json_t *out;
};

static void quote_read_free(void *arg)
{
    struct quote_read *j = arg;
    json_decref(j->out);
    free(j);
}

static const char sql_quote_get[] =
    "SELECT document, kid, signature, expires_at < now() FROM quotes WHERE id = $1 AND "
    "($2::text IS NULL OR tenant_id = $2)";

static int quote_read_work(db_conn *db, void *arg)
{
    struct quote_read *j = arg;
    const char *p[] = {j->id, j->owner};
    PGresult *r = db_exec(db, sql_quote_get, 2, p);

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1) {
        j->out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
        json_object_set_new(j->out, "signature",
                            json_pack("{s:s, s:s, s:s, s:s}", "alg", "Ed25519", "kid",
                                      PQgetvalue(r, 0, 1), "value", PQgetvalue(r, 0, 2), "signed",
                                      "tally-quote-v1\\n || canonical JSON"));
        json_object_set_new(j->out, "expired", json_boolean(PQgetvalue(r, 0, 3)[0] == 't'));
    }
    PQclear(r);
    return j->out ? 1 : 0;
}

static void quote_read_done(http_ctx *c, int found, void *arg)
{
    struct quote_read *j = arg;

    if (found) {
        http_reply_json(c, 200, j->out);
        j->out = NULL;
    } else {
        http_reply_problem(c, PROB_NOT_FOUND, "no such quote", NULL);
    }
    quote_read_free(j);
}

void h_quotes_get(http_ctx *c)
{
    struct quote_read *j;
    const char *id, *owner;

    if (val_path_id(c, "id", "quo", &id))
        return;
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    owner = scope_owner_filter(http_get_caller(c));
    if (owner) {
        snprintf(j->owner_buf, sizeof j->owner_buf, "%s", owner);
        j->owner = j->owner_buf;
    }
    http_db(c, quote_read_work, quote_read_done, j, quote_read_free);
}
