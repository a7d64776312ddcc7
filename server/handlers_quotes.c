/*
 * handlers_quotes.c - POST /v1/quotes and GET /v1/quotes/{id}: signed price locks.
 *
 * A quote measures the workload with the in-memory catalog, rates it with the
 * named policy version (plus the platform's fee policy), the tenant's
 * period-to-date state for the quote's UTC month and the live utilisation, and
 * stores the result as canonical JSON (sorted keys, no spaces, only strings
 * and integers), signed by the service key per batch of stored quotes
 * (server/quote_writer.c, billing/quote_proof.h):
 *   leaf = BLAKE2b-256(0x00 || "tally-quote-leaf-v1\n" || canonical JSON)
 *   signature = Ed25519("tally-quote-batch-v1" || Merkle root of the batch)
 * and the reply carries the quote's audit path from its leaf to that root.
 * Quotes stored before migration 0015 keep their per-quote signature
 * ("tally-quote-v1\n" || canonical JSON) and are read back with it. The
 * quote is honoured at its price until expires_at.
 */
#include "handlers.h"
#include "idem_write.h"
#include "ids.h"
#include "metering_req.h"
#include "money.h"
#include "pricing_store.h"
#include "quote_doc.h"
#include "quote_proof.h"
#include "quote_writer.h"
#include "scope.h"
#include "server.h"
#include "timefmt.h"
#include "tzdb.h"
#include "validate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTE_V1_LABEL "tally-quote-v1\\n || canonical JSON"
#define QUOTE_MAX_AHEAD_MS (366LL * 86400 * 1000)
#define QUOTE_DEFAULT_VALID_S 900

/* A quote signed by a retired key would not verify for what it claims (docs/api.md): none is
 * stored, and the operator has to restart tallyd with a new key (docs/operations.md). */
#define KEY_RETIRED_DETAIL                                                                         \
    "the service's signing key %s is retired; quotes resume when tallyd restarts with a new "      \
    "TALLY_SIGNING_KEY"

struct quote_job {
    char id[48], tenant[48], policy_id[48], device[64], region[32], profile_name[32];
    char catalog_version[72];
    int policy_version, eff_version;
    cat_kind device_class;
    cu_profile profile;
    long long count, mcu, wall_ms, valid_for_s;
    int64_t start_ms, end_ms, expires_ms;
    const signing_key *key;
    /* the rated result (signed by the quote writer with its batch) */
    char period[8], currency[8], expires_at[40];
    char *canon; /* canonical document text */
    size_t canon_len;
    int64_t total;
    qw_row row;
    http_ctx *c; /* the cached path */
};

static void quote_job_free(void *arg)
{
    struct quote_job *j = arg;
    free(j->canon);
    free(j);
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

/* The canonical document of a rated quote into j->canon. 0, or -1 out of memory. */
static int quote_document(struct quote_job *j, const pstore_version *pol,
                          const pstore_version *plat, const pricing_result *res, long long util)
{
    char created[40], start[40], end[40];
    int64_t now = timefmt_now_ms();
    quote_doc_meta m = {0};

    timefmt_format(now, created, sizeof created);
    j->expires_ms = now + j->valid_for_s * 1000;
    timefmt_format(j->expires_ms, j->expires_at, sizeof j->expires_at);
    timefmt_format(j->start_ms, start, sizeof start);
    timefmt_format(j->end_ms, end, sizeof end);
    m.id = j->id;
    m.tenant_id = j->tenant;
    m.policy_id = pol->policy_id;
    m.policy_sha256 = pol->sha256;
    m.policy_version = pol->version;
    m.platform_policy_id = plat->ref ? plat->policy_id : NULL;
    m.platform_policy_version = plat->version;
    m.created_at = created;
    m.expires_at = j->expires_at;
    m.interval_start = start;
    m.interval_end = end;
    m.utilisation_ppm = util;
    m.device = j->device;
    m.region = j->region;
    m.count = j->count;
    m.mcu = j->mcu;
    m.wall_ms = j->wall_ms;
    m.device_ms = j->wall_ms * j->count;
    m.profile_class = cu_class_name(j->profile.cls);
    m.profile_precision = cat_precision_name(j->profile.precision);
    m.profile_intensity_milli = j->profile.intensity_milli;
    m.catalog_version = j->catalog_version;
    m.efficiency_version = j->eff_version;
    free(j->canon); /* a re-run of the database path rates again */
    j->canon = quote_doc_write(&m, res, &j->canon_len);
    snprintf(j->currency, sizeof j->currency, "%s", res->currency);
    j->total = res->total;
    return j->canon ? 0 : -1;
}

/* Check and rate with the given inputs: 0 with the canonical document in
 * j->canon, or -1 with *out a problem body (422). */
static int quote_rate(struct quote_job *j, const pstore_version *pol, const pstore_version *plat,
                      const pricing_state *state, long long util, json_t **out)
{
    pricing_result *res;
    pricing_error err;
    pricing_tz tz;
    char tzerr[256];
    int rc;

    if (strcmp(pol->scope, "provider") != 0) {
        *out = idem_problem(PROB_VALIDATION, "policy_id", "no provider policy '%s'%s", j->policy_id,
                            j->policy_version ? " at that version" : "");
        return -1;
    }
    j->policy_version = pol->version;
    if (pol->policy->timezone[0] &&
        tzdb_zone(pol->policy->timezone, j->end_ms, &tz, tzerr, sizeof tzerr) != 0) {
        *out = idem_problem(PROB_VALIDATION, "policy_id", "policy time zone: %s", tzerr);
        return -1;
    }
    res = malloc(sizeof *res);
    if (!res) {
        *out = idem_problem(PROB_INTERNAL, NULL, "out of memory");
        return -1;
    }
    {
        pricing_usage u = {j->tenant,       j->device, j->device_class,       j->count,
                           j->profile_name, j->mcu,    j->wall_ms * j->count, j->start_ms,
                           j->end_ms,       j->region};
        pricing_input in = {pol->policy, plat->policy, pol->policy->timezone[0] ? &tz : NULL,
                            &u,          state,        util};
        if (pricing_rate(&in, res, &err) != PRICING_OK) {
            *out = rating_problem(&err, j);
            free(res);
            return -1;
        }
    }
    rc = quote_document(j, pol, plat, res, util);
    free(res);
    if (rc != 0)
        *out = idem_problem(PROB_INTERNAL, NULL, "out of memory");
    return rc;
}

/* Fill the job's row for the quote writer: the document and its leaf hash
 * (the writer signs the batch the row lands in). */
static void quote_seal(struct quote_job *j)
{
    j->row = (qw_row){.id = j->id,
                      .tenant = j->tenant,
                      .policy_id = j->policy_id,
                      .currency = j->currency,
                      .document = j->canon,
                      .kid = j->key->kid,
                      .sk = j->key->sk,
                      .expires_at = j->expires_at,
                      .expires_ms = j->expires_ms,
                      .policy_version = j->policy_version,
                      .total_micros = j->total};
    quote_proof_leaf(j->canon, j->canon_len, j->row.leaf);
}

/* Lower-case hex of n bytes (n <= QW_SIG_BYTES) as a JSON string (nothing to
 * escape: written raw). */
static void jw_hex(jsonw *w, const unsigned char *p, size_t n)
{
    char q[2 * QW_SIG_BYTES + 3];

    q[0] = '"';
    sodium_bin2hex(q + 1, sizeof q - 1, p, n);
    q[2 * n + 1] = '"';
    jw_raw(w, q, 2 * n + 2);
}

/* The batch signature object of a stored row (see quote_proof.h). */
static void quote_sig_batch(jsonw *w, const qw_row *r)
{
    jw_open(w);
    jw_key(w, "alg");
    jw_str(w, "Ed25519");
    jw_key(w, "kid");
    jw_str(w, r->kid);
    jw_key(w, "signed");
    jw_str(w, QUOTE_BATCH_SIGNED_LABEL);
    jw_key(w, "value");
    jw_hex(w, r->sig, QW_SIG_BYTES);
    jw_key(w, "batch");
    jw_str(w, r->batch_id);
    jw_key(w, "batch_size");
    jw_int(w, r->batch_n);
    jw_key(w, "leaf_index");
    jw_int(w, r->leaf_index);
    jw_key(w, "root");
    jw_hex(w, r->root, QW_HASH_BYTES);
    jw_key(w, "path");
    jw_open_array(w);
    for (uint32_t i = 0; i < r->n_path; i++)
        jw_hex(w, r->path[i], QW_HASH_BYTES);
    jw_close_array(w);
    jw_close(w);
}

/* The response body: the canonical document with its "signature" member
 * appended (caller frees; NULL out of memory). */
static char *quote_body(const struct quote_job *j, size_t *len)
{
    jsonw w;

    jw_init(&w);
    jw_raw(&w, j->canon, j->canon_len - 1); /* without the closing brace */
    w.comma = 1;
    jw_key(&w, "signature");
    quote_sig_batch(&w, &j->row);
    jw_close(&w); /* the document's own closing brace */
    return jw_take(&w, len);
}

static void quote_query(struct quote_job *j, pstore_quote_query *q)
{
    timefmt_period(j->start_ms, j->period);
    *q = (pstore_quote_query){j->policy_id, j->policy_version, j->tenant,
                              j->period,    j->device,         j->region};
}

/* The database path (a cache miss, or an Idempotency-Key): read the inputs,
 * rate, sign and insert the row, inside the idempotent write. */
static int op_quote(db_conn *db, void *arg, int *status, json_t **body)
{
    struct quote_job *j = arg;
    pstore_version pol = {0}, plat = {0};
    pricing_state state;
    pstore_quote_query q;
    long long util = -1;
    qw_row *row = &j->row;
    char *text;
    int rc;

    quote_query(j, &q);
    rc = pstore_load_quote_inputs(db, &q, &pol, &plat, &state, &util);
    *status = 422;
    if (rc < 0)
        goto out;
    rc = DB_OK;
    if (!pol.ref) {
        *body = idem_problem(PROB_VALIDATION, "policy_id", "no provider policy '%s'%s",
                             j->policy_id, j->policy_version ? " at that version" : "");
        goto out;
    }
    if (quote_rate(j, &pol, &plat, &state, util, body) != 0)
        goto out;
    quote_seal(j);
    if ((rc = qw_insert(db, &row, 1)) != DB_OK)
        goto out;
    if (row->status == QW_NO_TENANT) {
        *body = idem_problem(PROB_VALIDATION, "tenant", "no account '%s'", j->tenant);
    } else if (row->status == QW_KEY_RETIRED) {
        *status = 503; /* not stored under the key (idem_write.h): a restart with a new key */
        *body = idem_problem(PROB_DB_UNAVAILABLE, NULL, KEY_RETIRED_DETAIL, j->key->kid);
    } else if (row->status != DB_OK) {
        rc = row->status;
    } else if ((text = quote_body(j, NULL)) != NULL) {
        *status = 201;
        *body = json_loads(text, 0, NULL);
        free(text);
        rc = *body ? DB_OK : DB_FAILED;
    } else {
        rc = DB_FAILED;
    }
out:
    pstore_release(&pol);
    pstore_release(&plat);
    return rc;
}

/* ---- the cached path: rate on the loop, group insert and batch signature ------------------- */

static void quote_stored(qw_row *row)
{
    struct quote_job *j = row->arg;
    http_ctx *c = j->c;
    jsonw w;

    if (row->status == DB_OK) {
        jw_init(&w);
        w.p = quote_body(j, &w.len);
        w.failed = !w.p;
        mreq_reply_jw(c, 201, &w);
    } else if (row->status == QW_NO_TENANT) {
        http_reply_problemf(c, PROB_VALIDATION, "tenant", "no account '%s'", j->tenant);
    } else if (row->status == QW_KEY_RETIRED) {
        http_reply_problemf(c, PROB_DB_UNAVAILABLE, NULL, KEY_RETIRED_DETAIL, j->key->kid);
    } else if (row->status == DB_FAILED) {
        http_reply_problem(c, PROB_INTERNAL, "a database statement failed unexpectedly", NULL);
    } else {
        http_reply_problem(c, PROB_DB_UNAVAILABLE,
                           "the database is unreachable or overloaded; retry shortly", NULL);
    }
    quote_job_free(j);
}

/* Rate j with cached inputs (released here), then hand it to the writer. */
static void quote_from_cache(http_ctx *c, struct quote_job *j, pstore_quote_inputs *in)
{
    json_t *problem;
    int rc = quote_rate(j, &in->pol, &in->plat, &in->state, in->util, &problem);

    pstore_inputs_release(in);
    if (rc != 0) {
        json_object_set_new(problem, "instance", json_string(http_path(c)));
        http_reply_problem_body(c, 422, problem);
        quote_job_free(j);
        return;
    }
    quote_seal(j);
    j->c = c;
    j->row.done = quote_stored;
    j->row.arg = j;
    if (qw_submit(http_server(c)->pool, http_event_base(c), &j->row) != 0) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        quote_job_free(j);
    }
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
    j->profile = w.profile;
    j->policy_version = (int)version;
    j->valid_for_s = valid;
    j->key = http_server(c)->signing;
    if (!http_header(c, "Idempotency-Key")) {
        pstore_quote_inputs in;
        pstore_quote_query q;
        quote_query(j, &q);
        if (pstore_inputs_get(&q, &in)) {
            quote_from_cache(c, j, &in);
            return;
        }
    }
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

/* A quote and, for one signed per batch (since 0015), its batch. */
static const char sql_quote_get[] =
    "SELECT q.document, q.kid, q.signature, q.expires_at < now(), q.batch_id, q.leaf_index, "
    "encode(q.path, 'hex'), encode(b.root, 'hex'), b.kid, encode(b.signature, 'hex'), b.n "
    "FROM quotes q LEFT JOIN quote_batches b ON b.id = q.batch_id WHERE q.id = $1 AND "
    "($2::text IS NULL OR q.tenant_id = $2)";

/* The stored signature object of row 0 of r: the batch form, or the
 * per-quote (v1) form of a quote stored before 0015. NULL when the row names
 * a batch that is not there (a broken database) or out of memory. */
static json_t *quote_sig_stored(PGresult *r)
{
    const char *path = PQgetvalue(r, 0, 6);
    size_t np = strlen(path) / (2 * QW_HASH_BYTES);
    json_t *arr;

    if (PQgetisnull(r, 0, 4))
        return json_pack("{s:s, s:s, s:s, s:s}", "alg", "Ed25519", "kid", PQgetvalue(r, 0, 1),
                         "value", PQgetvalue(r, 0, 2), "signed", QUOTE_V1_LABEL);
    if (PQgetisnull(r, 0, 7) || !(arr = json_array()))
        return NULL;
    for (size_t i = 0; i < np; i++)
        json_array_append_new(arr, json_stringn(path + i * 2 * QW_HASH_BYTES, 2 * QW_HASH_BYTES));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:o}", "alg", "Ed25519", "kid",
                     PQgetvalue(r, 0, 8), "signed", QUOTE_BATCH_SIGNED_LABEL, "value",
                     PQgetvalue(r, 0, 9), "batch", PQgetvalue(r, 0, 4), "batch_size",
                     (json_int_t)atoll(PQgetvalue(r, 0, 10)), "leaf_index",
                     (json_int_t)atoll(PQgetvalue(r, 0, 5)), "root", PQgetvalue(r, 0, 7), "path",
                     arr);
}

static int quote_read_work(db_conn *db, void *arg)
{
    struct quote_read *j = arg;
    const char *p[] = {j->id, j->owner};
    PGresult *r = db_exec(db, sql_quote_get, 2, p);
    json_t *sig;
    int expired;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    j->out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    sig = quote_sig_stored(r);
    expired = PQgetvalue(r, 0, 3)[0] == 't';
    PQclear(r);
    if (!j->out || !sig) {
        json_decref(sig);
        return DB_FAILED;
    }
    json_object_set_new(j->out, "signature", sig);
    json_object_set_new(j->out, "expired", json_boolean(expired));
    return 1;
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
