/*
 * handlers_pricing.c - pricing policies, utilisation reports and quotes.
 *
 * Policies: a provider publishes policies for its own offers, an admin the
 * platform policy (the take rate). Every change is a new immutable version.
 * Tenants may read policies (price lists are public) but never another
 * tenant's contract rules, which are removed from what they see.
 *
 * Quotes: the workload is measured with the in-memory catalog (metering),
 * rated with the policy version, the tenant's period-to-date state and the
 * live utilisation, and stored as a canonical JSON document; the quote writer
 * signs each stored batch once (Ed25519 over the Merkle root of its quotes'
 * leaves, billing/quote_proof.h) and every quote carries its audit path. The
 * quote is a price lock until it expires; anyone can verify it with the key
 * from GET /v1/ledger/keys (docs/api.md, "Verifying a quote").
 */
#include "handlers.h"
#include "idem_write.h"
#include "ids.h"
#include "metering_req.h"
#include "money.h"
#include "paging.h"
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

/* ---- policies --------------------------------------------------------------------- */

struct pol_job {
    char id[48], owner[48], actor[48], name[201];
    int caller_role;
    char caller[48];
    int version;
    json_t *document; /* the submitted document (borrowed from the body until parsed) */
    char *canonical;
    char sha[65], currency[4];
    char scope[16];
    json_t *out;
    char err[512];
};

/* After a committed change to a quote input: cached quote inputs are stale
 * (see pricing_store.h for the staleness rule). */
static void inputs_changed(http_ctx *c)
{
    (void)c;
    pstore_inputs_invalidate();
}

static void pol_job_free(void *arg)
{
    struct pol_job *j = arg;
    json_decref(j->out);
    free(j->canonical);
    free(j);
}

/* Validate the document now (on the loop: pure and fast); 422 with the exact path. */
static int pol_parse(http_ctx *c, json_t *doc, struct pol_job *j)
{
    pricing_error err;
    pricing_policy *p;
    unsigned char h[crypto_hash_sha256_BYTES];

    if (!json_is_object(doc)) {
        http_reply_problem(c, PROB_VALIDATION, "'document' must be a policy object", "document");
        return -1;
    }
    p = pricing_policy_from_json(doc, &err);
    if (!p) {
        char field[160];
        snprintf(field, sizeof field, "document%s%s", err.path[0] ? "." : "", err.path);
        http_reply_problemf(c, PROB_VALIDATION, field, "%s", err.message);
        return -1;
    }
    if (p->timezone[0]) {
        char tzerr[256];
        pricing_tz tz;
        if (tzdb_zone(p->timezone, timefmt_now_ms() + 400LL * 86400 * 1000, &tz, tzerr,
                      sizeof tzerr) != 0) {
            pricing_policy_free(p);
            http_reply_problemf(c, PROB_VALIDATION, "document.timezone", "%s", tzerr);
            return -1;
        }
    }
    j->canonical = pricing_policy_canonical(p);
    snprintf(j->currency, sizeof j->currency, "%s", p->currency);
    snprintf(j->scope, sizeof j->scope, "%s",
             p->scope == PRICING_SCOPE_PLATFORM ? "platform" : "provider");
    pricing_policy_free(p);
    if (!j->canonical) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return -1;
    }
    crypto_hash_sha256(h, (const unsigned char *)j->canonical, strlen(j->canonical));
    sodium_bin2hex(j->sha, sizeof j->sha, h, sizeof h);
    return 0;
}

static const char sql_pol_insert[] =
    "INSERT INTO pricing_policies (id, owner_id, scope, name) SELECT $1, id, $3, $4 FROM accounts "
    "WHERE id = $2 AND role IN ('provider', 'admin')";
static const char sql_ver_insert[] =
    "INSERT INTO pricing_policy_versions (policy_id, version, document, canonical, sha256, "
    "currency, created_by) VALUES ($1, $2, $3::jsonb, $3, $4, $5, $6) "
    "RETURNING to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
static const char sql_pol_head[] =
    "SELECT p.owner_id, p.scope, p.name, (SELECT max(version) FROM pricing_policy_versions v "
    "WHERE v.policy_id = p.id) FROM pricing_policies p WHERE p.id = $1 FOR UPDATE";

static int insert_version(db_conn *db, struct pol_job *j, int *status, json_t **body)
{
    char v[16];
    const char *p[] = {j->id, v, j->canonical, j->sha, j->currency, j->actor};
    PGresult *r;

    snprintf(v, sizeof v, "%d", j->version);
    r = db_exec(db, sql_ver_insert, 6, p);
    if (!r)
        return db_last_status(db);
    *status = 201;
    *body = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:s}", "id", j->id, "name", j->name,
                      "scope", j->scope, "owner_id", j->owner, "version", j->version, "currency",
                      j->currency, "sha256", j->sha, "document", json_loads(j->canonical, 0, NULL),
                      "created_at", PQgetvalue(r, 0, 0));
    PQclear(r);
    return DB_OK;
}

static int op_policy_create(db_conn *db, void *arg, int *status, json_t **body)
{
    struct pol_job *j = arg;
    const char *p[] = {j->id, j->owner, j->scope, j->name};
    PGresult *r = db_exec(db, sql_pol_insert, 4, p);
    int n;

    if (!r)
        return db_last_status(db);
    n = atoi(PQcmdTuples(r));
    PQclear(r);
    if (n != 1) {
        *status = 422;
        *body =
            idem_problem(PROB_VALIDATION, "owner_id", "'%s' is not a provider account", j->owner);
        return DB_OK;
    }
    j->version = 1;
    return insert_version(db, j, status, body);
}

void h_policies_create(http_ctx *c)
{
    static const char *const fields[] = {"name", "owner_id", "document", NULL};
    const http_caller *who = http_get_caller(c);
    json_t *body = http_body(c);
    const char *name, *owner = NULL;
    struct pol_job *j;

    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "'name' and 'document' are required", "name");
        return;
    }
    if (val_known_fields(c, body, fields) || val_string(c, body, "name", 1, 200, &name) ||
        val_string(c, body, "owner_id", 0, 47, &owner))
        return;
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (pol_parse(c, json_object_get(body, "document"), j) != 0) {
        pol_job_free(j);
        return;
    }
    if (who->role != ROLE_ADMIN &&
        (!strcmp(j->scope, "platform") || (owner && strcmp(owner, who->account_id) != 0))) {
        pol_job_free(j);
        http_reply_problem(c, PROB_FORBIDDEN,
                           "a provider publishes provider-scope policies for itself only", NULL);
        return;
    }
    ids_new(j->id, sizeof j->id, "pol");
    snprintf(j->owner, sizeof j->owner, "%s", owner ? owner : who->account_id);
    snprintf(j->actor, sizeof j->actor, "%s", who->account_id);
    snprintf(j->name, sizeof j->name, "%s", name);
    idem_write_submit_then(c, op_policy_create, j, pol_job_free, inputs_changed);
}

static int op_version_create(db_conn *db, void *arg, int *status, json_t **body)
{
    struct pol_job *j = arg;
    const char *p[] = {j->id};
    PGresult *r = db_exec(db, sql_pol_head, 1, p);

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1 ||
        (j->caller_role != ROLE_ADMIN && strcmp(PQgetvalue(r, 0, 0), j->caller) != 0)) {
        PQclear(r);
        *status = 404;
        *body = idem_problem(PROB_NOT_FOUND, NULL, "no policy '%s' of yours", j->id);
        return DB_OK;
    }
    if (strcmp(PQgetvalue(r, 0, 1), j->scope) != 0) {
        *status = 422;
        *body = idem_problem(PROB_VALIDATION, "document.scope",
                             "a new version keeps the policy's scope (%s)", PQgetvalue(r, 0, 1));
        PQclear(r);
        return DB_OK;
    }
    snprintf(j->owner, sizeof j->owner, "%s", PQgetvalue(r, 0, 0));
    snprintf(j->name, sizeof j->name, "%s", PQgetvalue(r, 0, 2));
    j->version = atoi(PQgetvalue(r, 0, 3)) + 1;
    PQclear(r);
    return insert_version(db, j, status, body);
}

void h_policy_versions_create(http_ctx *c)
{
    static const char *const fields[] = {"document", NULL};
    const http_caller *who = http_get_caller(c);
    json_t *body = http_body(c);
    struct pol_job *j;
    const char *id;

    if (val_path_id(c, "id", "pol", &id) || val_known_fields(c, body, fields))
        return;
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (pol_parse(c, json_object_get(body, "document"), j) != 0) {
        pol_job_free(j);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->actor, sizeof j->actor, "%s", who->account_id);
    snprintf(j->caller, sizeof j->caller, "%s", who->account_id);
    j->caller_role = (int)who->role;
    idem_write_submit_then(c, op_version_create, j, pol_job_free, inputs_changed);
}

/* ---- reading policies ------------------------------------------------------------- */

static const char sql_pol_get[] =
    "SELECT p.id, p.name, p.scope, p.owner_id, v.version, v.currency, v.sha256, v.canonical, "
    "to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), v.created_by "
    "FROM pricing_policies p JOIN pricing_policy_versions v ON v.policy_id = p.id "
    "WHERE p.id = $1 AND ($2::integer IS NULL OR v.version = $2) ORDER BY v.version DESC";
static const char sql_pol_list[] =
    "SELECT p.id, p.name, p.scope, p.owner_id, v.version, v.currency, v.sha256, v.canonical, "
    "to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), v.created_by "
    "FROM pricing_policies p JOIN LATERAL (SELECT * FROM pricing_policy_versions x WHERE "
    "x.policy_id = p.id ORDER BY x.version DESC LIMIT 1) v ON true "
    "WHERE ($1::text IS NULL OR p.owner_id = $1) AND ($2::text IS NULL OR p.id > $2) "
    "ORDER BY p.id LIMIT $3";

struct read_pol {
    char id[48], caller[48];
    unsigned role;
    int version, versions_only, limit;
    const char *after, *owner;
    json_t *out;
};

static void read_pol_free(void *arg)
{
    struct read_pol *j = arg;
    json_decref(j->out);
    free(j);
}

/* A tenant never sees another tenant's contract terms. */
static json_t *redact(json_t *doc, const struct read_pol *j)
{
    json_t *rules = json_object_get(doc, "rules"), *kept;
    size_t i;
    json_t *r;

    if (j->role != ROLE_TENANT || !json_is_array(rules))
        return doc;
    kept = json_array();
    json_array_foreach(rules, i, r)
    {
        const char *kind = json_string_value(json_object_get(r, "kind"));
        const char *tenant = json_string_value(json_object_get(r, "tenant"));
        if (!(kind && !strcmp(kind, "contract") && (!tenant || strcmp(tenant, j->caller) != 0)))
            json_array_append(kept, r);
    }
    json_object_set_new(doc, "rules", kept);
    return doc;
}

static json_t *pol_row(PGresult *r, int i, const struct read_pol *j)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:s, s:s}", "id",
                     PQgetvalue(r, i, 0), "name", PQgetvalue(r, i, 1), "scope", PQgetvalue(r, i, 2),
                     "owner_id", PQgetvalue(r, i, 3), "version", atoi(PQgetvalue(r, i, 4)),
                     "currency", PQgetvalue(r, i, 5), "sha256", PQgetvalue(r, i, 6), "document",
                     redact(json_loads(PQgetvalue(r, i, 7), 0, NULL), j), "created_at",
                     PQgetvalue(r, i, 8), "created_by", PQgetvalue(r, i, 9));
}

static json_t *pol_page_row(PGresult *r, int i, const void *ctx)
{
    return pol_row(r, i, ctx);
}

static int read_pol_work(db_conn *db, void *arg)
{
    struct read_pol *j = arg;
    char v[16];
    const char *p[] = {j->id, j->version > 0 ? v : NULL};
    PGresult *r;
    int n;

    snprintf(v, sizeof v, "%d", j->version);
    r = db_exec(db, sql_pol_get, 2, p);
    if (!r)
        return db_last_status(db);
    n = PQntuples(r);
    if (n > 0 && j->role == ROLE_PROVIDER && strcmp(PQgetvalue(r, 0, 3), j->caller) != 0 &&
        strcmp(PQgetvalue(r, 0, 2), "platform") != 0)
        n = 0; /* another provider's policy */
    if (n == 0) {
        PQclear(r);
        return 0;
    }
    if (j->versions_only) {
        json_t *data = json_array();
        for (int i = 0; i < n; i++) {
            json_t *row = pol_row(r, i, j);
            json_object_del(row, "document");
            json_array_append_new(data, row);
        }
        j->out = json_pack("{s:s, s:o}", "policy_id", j->id, "data", data);
    } else {
        j->out = pol_row(r, 0, j);
    }
    PQclear(r);
    return 1;
}

static void read_pol_done(http_ctx *c, int found, void *arg)
{
    struct read_pol *j = arg;

    if (found) {
        http_reply_json(c, 200, j->out);
        j->out = NULL;
    } else {
        http_reply_problem(c, PROB_NOT_FOUND, "no such policy (or version)", NULL);
    }
    read_pol_free(j);
}

static struct read_pol *read_pol_new(http_ctx *c)
{
    struct read_pol *j = calloc(1, sizeof *j);
    const http_caller *who = http_get_caller(c);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    snprintf(j->caller, sizeof j->caller, "%s", who->account_id);
    j->role = who->role;
    return j;
}

static void policy_read(http_ctx *c, int versions_only)
{
    const char *id, *v = http_query(c, "version");
    struct read_pol *j;
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : 0;

    if (val_path_id(c, "id", "pol", &id))
        return;
    if (v && (versions_only || !*v || *end || n < 1 || n > 1000000)) {
        http_reply_problem(c, PROB_VALIDATION, "'version' must be a positive integer", "version");
        return;
    }
    if (!(j = read_pol_new(c)))
        return;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->version = (int)n;
    j->versions_only = versions_only;
    http_db(c, read_pol_work, read_pol_done, j, read_pol_free);
}

void h_policies_get(http_ctx *c)
{
    policy_read(c, 0);
}

void h_policy_versions_list(http_ctx *c)
{
    policy_read(c, 1);
}

static int list_pol_work(db_conn *db, void *arg)
{
    struct read_pol *j = arg;
    char lim[16];
    const char *p[] = {j->owner, j->after, lim};
    PGresult *r;

    snprintf(lim, sizeof lim, "%d", j->limit + 1);
    r = db_exec(db, sql_pol_list, 3, p);
    if (!r)
        return db_last_status(db);
    j->out = paging_build(r, j->limit, pol_page_row, j);
    PQclear(r);
    return j->out ? 1 : DB_FAILED;
}

void h_policies_list(http_ctx *c)
{
    struct read_pol *j;
    const char *after;
    int limit;

    if (val_query_limit(c, 50, 200, &limit) || val_query_id(c, "after", "pol", &after))
        return;
    if (!(j = read_pol_new(c)))
        return;
    j->limit = limit;
    j->after = after;
    /* providers list their own; everyone else sees every published policy */
    j->owner = j->role == ROLE_PROVIDER ? j->caller : NULL;
    http_db(c, list_pol_work, read_pol_done, j, read_pol_free);
}

/* ---- utilisation ------------------------------------------------------------------ */

struct util_job {
    char device[64], region[32], actor[48];
    long long ppm;
};

static const char sql_util_upsert[] =
    "INSERT INTO capacity_utilisation (device_id, region, utilisation_ppm, reported_by) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, region) DO UPDATE SET utilisation_ppm = "
    "EXCLUDED.utilisation_ppm, reported_by = EXCLUDED.reported_by, updated_at = now()";

static int op_util(db_conn *db, void *arg, int *status, json_t **body)
{
    struct util_job *j = arg;
    char ppm[24];
    const char *p[] = {j->device, j->region, ppm, j->actor};
    int rc;

    snprintf(ppm, sizeof ppm, "%lld", j->ppm);
    if ((rc = db_command(db, sql_util_upsert, 4, p)) != DB_OK)
        return rc;
    *status = 200;
    *body = json_pack("{s:s, s:s, s:I}", "device", j->device, "region", j->region,
                      "utilisation_ppm", (json_int_t)j->ppm);
    return DB_OK;
}

void h_utilisation_report(http_ctx *c)
{
    static const char *const fields[] = {"device", "region", "utilisation_ppm", NULL};
    json_t *body = http_body(c);
    const char *device, *region = NULL;
    struct util_job *j;
    long long ppm;

    if (val_known_fields(c, body, fields) || val_string(c, body, "device", 1, 63, &device) ||
        val_string(c, body, "region", 0, 31, &region) ||
        val_int(c, body, "utilisation_ppm", 1, 0, 1000000, 0, &ppm))
        return;
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    snprintf(j->device, sizeof j->device, "%s", device);
    snprintf(j->region, sizeof j->region, "%s", region ? region : "");
    snprintf(j->actor, sizeof j->actor, "%s", http_get_caller(c)->account_id);
    j->ppm = ppm;
    idem_write_submit_then(c, op_util, j, free, inputs_changed);
}
