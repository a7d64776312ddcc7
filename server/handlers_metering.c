/*
 * handlers_metering.c - compute units and duration estimates over HTTP.
 *
 * POST /v1/normalize is computed in memory from the cached catalog and
 * efficiency table (no database round trip). Estimates read the learned
 * history from PostgreSQL; observations (completed runs) teach the estimator
 * and, when they carry the work done, feed efficiency calibration, which an
 * admin folds into a new efficiency version.
 */
#include "estimates.h"
#include "handlers.h"
#include "ids.h"
#include "idempotency.h"
#include "metering_req.h"
#include "scope.h"
#include "server.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEVICE_SECONDS (CU_MAX_WALL_MS / 1000)

static int need_catalog(http_ctx *c, const cat_catalog *cat)
{
    if (cat)
        return 0;
    http_reply_problem(c, PROB_DB_UNAVAILABLE,
                       "no device catalog is loaded yet (run 'tallyd catalog import')", NULL);
    return -1;
}

void h_normalize(http_ctx *c)
{
    static const char *const fields[] = {"device",  "count",    "profile", "device_seconds",
                                         "wall_ms", "work_mcu", NULL};
    static const char *const amounts[] = {"device_seconds", "wall_ms", "work_mcu", NULL};
    json_t *body = http_body(c);
    jsonw out;
    const cat_catalog *cat;
    const cu_eff_table *eff;
    workload_req w;
    long long dev_s, wall_ms, work;
    int64_t mcu = 0, ms = 0;
    cu_rate rate;
    cu_error err;
    cu_status st;
    char dec[40];

    if (mreq_workload(c, body, &w) || val_known_fields(c, body, fields) ||
        val_require_one(c, body, amounts) ||
        val_int(c, body, "device_seconds", 0, 0, MAX_DEVICE_SECONDS, -1, &dev_s) ||
        val_int(c, body, "wall_ms", 0, 0, CU_MAX_WALL_MS, -1, &wall_ms) ||
        val_int(c, body, "work_mcu", 0, 0, INT64_MAX, -1, &work))
        return;
    mcache_read_lock(http_server(c)->metering, &cat, &eff);
    if (need_catalog(c, cat)) {
        mcache_read_unlock(http_server(c)->metering);
        return;
    }
    if (work >= 0) {
        st = cu_duration(cat, eff, w.device, w.count, &w.profile, work, &ms, &rate, &err);
        mcu = work;
    } else if (dev_s >= 0) {
        /* device-seconds: the same work as one device held that long */
        st = cu_normalize(cat, eff, w.device, 1, &w.profile, dev_s * 1000, &mcu, &rate, &err);
        if (st == CU_OK)
            st = cu_rate_for(cat, eff, w.device, w.count, &w.profile, &rate, &err);
        ms = (dev_s * 1000 + w.count - 1) / w.count;
    } else {
        st = cu_normalize(cat, eff, w.device, w.count, &w.profile, wall_ms, &mcu, &rate, &err);
        ms = wall_ms;
    }
    if (st != CU_OK) {
        mcache_read_unlock(http_server(c)->metering);
        mreq_reply_cu_error(c, &err, "device");
        return;
    }
    /* Written as text (no jansson tree): this is the hottest metering path. */
    mreq_decimal_mcu(mcu, dec, sizeof dec);
    jw_init(&out);
    jw_open(&out);
    jw_key(&out, "device");
    jw_str(&out, w.device);
    jw_key(&out, "count");
    jw_int(&out, w.count);
    jw_key(&out, "profile");
    mreq_profile_jw(&out, &w.profile);
    jw_key(&out, "mcu");
    jw_int(&out, mcu);
    jw_key(&out, "cu");
    jw_str(&out, dec);
    jw_key(&out, "wall_ms");
    jw_int(&out, ms);
    jw_key(&out, "rate");
    mreq_rate_jw(&out, &rate);
    jw_key(&out, "catalog_version");
    jw_str(&out, cat_version(cat));
    jw_key(&out, "efficiency_version");
    jw_int(&out, eff ? (long long)eff->version : 1);
    jw_close(&out);
    mcache_read_unlock(http_server(c)->metering);
    mreq_reply_jw(c, 200, &out);
}

/* ---- estimates ------------------------------------------------------------------- */

struct est_job {
    uint64_t keys[EST_LEVELS];
    est_query q;
    est_result res;
    /* observations */
    char id[48], reporter[48], record_id[129], tenant[64], job_class[65], device[64];
    char catalog_version[72], *profile_json;
    long long count, wall_ms, work_mcu;
    int replay;
    json_t *out;
};

static void est_job_free(void *arg)
{
    struct est_job *j = arg;
    json_decref(j->out);
    free(j->profile_json);
    free(j);
}

static int estimate_work(db_conn *db, void *arg)
{
    struct est_job *j = arg;
    est_state *st = NULL;
    int rc = estimates_load(db, j->keys, 0, &st);

    if (rc != DB_OK)
        return rc;
    rc = est_predict(st, &j->q, &j->res) == EST_OK ? 1 : DB_FAILED;
    est_free(st);
    return rc;
}

static const char *evidence_name(est_evidence e)
{
    switch (e) {
    case EST_EVIDENCE_PRIOR:
        return "roofline-prior";
    case EST_EVIDENCE_USER:
        return "user-estimate";
    case EST_EVIDENCE_HISTORY:
        return "history";
    default:
        return "none";
    }
}

static void estimate_done(http_ctx *c, int rc, void *arg)
{
    struct est_job *j = arg;
    json_t *out = j->out;

    j->out = NULL;
    json_object_set_new(out, "p50_seconds", json_integer(j->res.p50_s));
    json_object_set_new(out, "p90_seconds", json_integer(j->res.p90_s));
    json_object_set_new(out, "evidence",
                        json_pack("{s:s, s:i, s:I, s:I, s:I}", "kind",
                                  evidence_name(j->res.evidence), "history_level", j->res.level,
                                  "history_jobs", (json_int_t)j->res.n_history, "prior_seconds",
                                  (json_int_t)j->q.prior_s, "user_estimate_seconds",
                                  (json_int_t)j->q.user_s));
    http_reply_json(c, 200, out);
    est_job_free(j);
}

/* Tenant of an estimate or observation: a tenant is itself; others may name one. */
static int resolve_tenant(http_ctx *c, json_t *body, char *out, size_t len)
{
    const http_caller *who = http_get_caller(c);
    const char *t = NULL;

    if (val_string(c, body, "tenant", 0, 48, &t))
        return -1;
    if (who->role == ROLE_TENANT) {
        if (t && strcmp(t, who->account_id) != 0) {
            http_reply_problem(c, PROB_FORBIDDEN, "a tenant key may only estimate for itself",
                               "tenant");
            return -1;
        }
        t = who->account_id;
    }
    if (!t || !ids_valid(t, "acc")) {
        http_reply_problem(c, PROB_VALIDATION, "'tenant' must be an account id (acc_…)", "tenant");
        return -1;
    }
    snprintf(out, len, "%s", t);
    return 0;
}

/* Roofline prior in whole seconds (rounded up) for work on the workload; 0 if no work. */
static int prior_seconds(http_ctx *c, const workload_req *w, long long work, struct est_job *j)
{
    const cat_catalog *cat;
    const cu_eff_table *eff;
    int64_t ms = 0;
    cu_rate rate;
    cu_error err;

    mcache_read_lock(http_server(c)->metering, &cat, &eff);
    if (need_catalog(c, cat)) {
        mcache_read_unlock(http_server(c)->metering);
        return -1;
    }
    if (!cat_find(cat, w->device)) {
        mcache_read_unlock(http_server(c)->metering);
        http_reply_problemf(c, PROB_VALIDATION, "device", "unknown device '%s'", w->device);
        return -1;
    }
    /* Checked even without work: a profile the device cannot run is an error either way. */
    if ((work > 0
             ? cu_duration(cat, eff, w->device, w->count, &w->profile, work, &ms, &rate, &err)
             : cu_rate_for(cat, eff, w->device, w->count, &w->profile, &rate, &err)) != CU_OK) {
        mcache_read_unlock(http_server(c)->metering);
        mreq_reply_cu_error(c, &err, "work_mcu");
        return -1;
    }
    j->q.prior_s = work > 0 ? (ms + 999) / 1000 : 0;
    snprintf(j->catalog_version, sizeof j->catalog_version, "%s", cat_version(cat));
    j->out =
        json_pack("{s:s, s:I, s:o, s:s, s:i}", "device", w->device, "count", (json_int_t)w->count,
                  "profile", mreq_profile_json(&w->profile), "catalog_version", cat_version(cat),
                  "efficiency_version", eff ? (int)eff->version : 1);
    mcache_read_unlock(http_server(c)->metering);
    return 0;
}

void h_estimates(http_ctx *c)
{
    static const char *const fields[] = {"device",          "count",  "profile",
                                         "work_mcu",        "tenant", "job_class",
                                         "user_estimate_s", "cap_s",  NULL};
    json_t *body = http_body(c);
    const char *job_class = NULL;
    struct est_job *j;
    workload_req w;
    long long work, user_s, cap_s;
    char tenant[64];

    if (mreq_workload(c, body, &w) || val_known_fields(c, body, fields) ||
        val_int(c, body, "work_mcu", 0, 1, INT64_MAX, 0, &work) ||
        val_int(c, body, "user_estimate_s", 0, 1, EST_MAX_SECONDS, 0, &user_s) ||
        val_int(c, body, "cap_s", 0, 1, EST_MAX_SECONDS, 0, &cap_s) ||
        val_string(c, body, "job_class", 0, 64, &job_class) ||
        resolve_tenant(c, body, tenant, sizeof tenant))
        return;
    if (!work && !user_s) {
        http_reply_problem(c, PROB_VALIDATION,
                           "give 'work_mcu' (the work) or 'user_estimate_s' (your own estimate)",
                           "work_mcu");
        return;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (prior_seconds(c, &w, work, j) != 0) {
        est_job_free(j);
        return;
    }
    j->q.user_s = user_s;
    j->q.cap_s = cap_s;
    estimates_keys(tenant, job_class ? job_class : "default", w.device, w.count, j->keys);
    memcpy(j->q.keys, j->keys, sizeof j->keys);
    json_object_set_new(j->out, "tenant", json_string(tenant));
    json_object_set_new(j->out, "job_class", json_string(job_class ? job_class : "default"));
    http_db(c, estimate_work, estimate_done, j, est_job_free);
}

/* ---- observations (completed runs) ------------------------------------------------ */

static const char sql_obs_existing[] =
    "SELECT id, predicted_p50_s FROM metering_observations WHERE reported_by = $1 AND "
    "record_id = $2";
static const char sql_obs_insert[] =
    "INSERT INTO metering_observations (id, reported_by, record_id, tenant_id, job_class, "
    "device_id, catalog_version, profile, device_count, wall_ms, work_mcu, predicted_p50_s) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, NULLIF($11, '0')::bigint, $12)";

static int observe_work(db_conn *db, void *arg)
{
    struct est_job *j = arg;
    const char *p[] = {j->reporter, j->record_id};
    est_state *st = NULL;
    PGresult *r;
    int rc = db_begin(db);

    if (rc != DB_OK)
        return rc;
    /* The global row lock serialises learners, so the existence check below is exact. */
    if ((rc = estimates_load(db, j->keys, 1, &st)) != DB_OK)
        return rc;
    r = db_exec(db, sql_obs_existing, 2, p);
    if (!r) {
        est_free(st);
        return db_last_status(db);
    }
    if (PQntuples(r) == 1) { /* exactly once: the record was reported before */
        snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, 0, 0));
        j->res.p50_s = atoll(PQgetvalue(r, 0, 1));
        j->replay = 1;
        PQclear(r);
        est_free(st);
        return 1;
    }
    PQclear(r);
    if (est_predict(st, &j->q, &j->res) != EST_OK ||
        est_learn(st, &j->q, j->res.p50_s, (j->wall_ms + 999) / 1000) != EST_OK) {
        est_free(st);
        return DB_FAILED;
    }
    rc = estimates_save(db, st, j->keys);
    est_free(st);
    if (rc != DB_OK)
        return rc;
    {
        char cnt[24], wall[24], work[24], p50[24];
        const char *q[] = {j->id,
                           j->reporter,
                           j->record_id,
                           j->tenant,
                           j->job_class,
                           j->device,
                           j->catalog_version,
                           j->profile_json,
                           cnt,
                           wall,
                           work,
                           p50};
        snprintf(cnt, sizeof cnt, "%lld", j->count);
        snprintf(wall, sizeof wall, "%lld", j->wall_ms);
        snprintf(work, sizeof work, "%lld", j->work_mcu);
        snprintf(p50, sizeof p50, "%lld", (long long)j->res.p50_s);
        if ((rc = db_command(db, sql_obs_insert, 12, q)) != DB_OK)
            return rc;
    }
    rc = db_commit(db);
    return rc == DB_OK ? 1 : rc;
}

static void observe_done(http_ctx *c, int rc, void *arg)
{
    struct est_job *j = arg;

    if (j->replay)
        http_set_header(c, "Idempotent-Replayed", "true");
    http_reply_json(c, j->replay ? 200 : 201,
                    json_pack("{s:s, s:s, s:I, s:b}", "id", j->id, "record_id", j->record_id,
                              "predicted_p50_seconds", (json_int_t)j->res.p50_s, "replayed",
                              j->replay));
    est_job_free(j);
}

void h_observations_create(http_ctx *c)
{
    static const char *const fields[] = {"record_id",       "tenant",  "job_class", "device",
                                         "count",           "profile", "wall_ms",   "work_mcu",
                                         "user_estimate_s", NULL};
    json_t *body = http_body(c);
    const char *record_id, *job_class = NULL;
    struct est_job *j;
    workload_req w;
    long long wall_ms, work, user_s;
    char tenant[64];

    if (mreq_workload(c, body, &w) || val_known_fields(c, body, fields) ||
        val_string(c, body, "record_id", 1, 128, &record_id) ||
        val_string(c, body, "job_class", 0, 64, &job_class) ||
        val_int(c, body, "wall_ms", 1, 1, CU_MAX_WALL_MS, 0, &wall_ms) ||
        val_int(c, body, "work_mcu", 0, 1, INT64_MAX, 0, &work) ||
        val_int(c, body, "user_estimate_s", 0, 1, EST_MAX_SECONDS, 0, &user_s) ||
        resolve_tenant(c, body, tenant, sizeof tenant))
        return;
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (prior_seconds(c, &w, work, j) != 0) {
        est_job_free(j);
        return;
    }
    ids_new(j->id, sizeof j->id, "obs");
    snprintf(j->reporter, sizeof j->reporter, "%s", http_get_caller(c)->account_id);
    snprintf(j->record_id, sizeof j->record_id, "%s", record_id);
    snprintf(j->tenant, sizeof j->tenant, "%s", tenant);
    snprintf(j->job_class, sizeof j->job_class, "%s", job_class ? job_class : "default");
    snprintf(j->device, sizeof j->device, "%s", w.device);
    j->profile_json = json_dumps(json_object_get(j->out, "profile"), JSON_COMPACT);
    j->count = w.count;
    j->wall_ms = wall_ms;
    j->work_mcu = work;
    j->q.user_s = user_s;
    estimates_keys(tenant, j->job_class, w.device, w.count, j->keys);
    memcpy(j->q.keys, j->keys, sizeof j->keys);
    http_db(c, observe_work, observe_done, j, est_job_free);
}

/* ---- calibration and efficiency versions ------------------------------------------ */

struct cal_job {
    idem_request idem;
    metering_cache *mc;
    char actor[48], reason[201];
    int version;
    json_t *out;
    int status;
    char err[256];
};

static void cal_job_free(void *arg)
{
    struct cal_job *j = arg;
    json_decref(j->out);
    free(j);
}

static const char sql_eff_latest[] =
    "SELECT version, factors::text FROM efficiency_versions ORDER BY version DESC LIMIT 1 FOR "
    "UPDATE";
static const char sql_obs_pending[] =
    "SELECT id, device_id, profile::text, device_count, wall_ms, work_mcu FROM "
    "metering_observations WHERE calibrated_in IS NULL AND work_mcu IS NOT NULL ORDER BY "
    "created_at, id LIMIT 10000 FOR UPDATE";
static const char sql_eff_insert[] =
    "INSERT INTO efficiency_versions (version, factors, observations, reason, created_by) "
    "VALUES ($1, $2::jsonb, $3, $4, $5)";
static const char sql_obs_mark[] = "UPDATE metering_observations SET calibrated_in = $1 WHERE "
                                   "id = ANY($2::text[])";

static int profile_of(const char *text, cu_profile *p)
{
    json_t *j = json_loads(text, 0, NULL);
    cat_precision prec;
    cu_class cls;
    int rc = -1;

    if (j && !cu_class_parse(json_string_value(json_object_get(j, "class")), &cls) &&
        !cat_precision_parse(json_string_value(json_object_get(j, "precision")), &prec)) {
        if (cls == CU_CLASS_CUSTOM)
            rc = cu_profile_custom(prec, json_integer_value(json_object_get(j, "intensity_milli")),
                                   p) == CU_OK
                     ? 0
                     : -1;
        else
            rc = cu_profile_class_precision(cls, prec, p) == CU_OK ? 0 : -1;
    }
    json_decref(j);
    return rc;
}

/* Fold the pending observations into a new efficiency version. */
static int calibrate_run(db_conn *db, struct cal_job *j, const cat_catalog *cat)
{
    PGresult *r = db_exec(db, sql_eff_latest, 0, NULL), *obs;
    cu_eff_table *in = malloc(sizeof *in), *out = malloc(sizeof *out);
    cu_observation *o = NULL;
    json_t *ids = json_array(), *tj = NULL;
    cu_error err;
    int n, rc = DB_FAILED;
    char *text = NULL, *idtext = NULL;

    if (!r || !in || !out || PQntuples(r) != 1)
        goto done;
    tj = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
    if (!tj || cu_eff_from_json(tj, in, &err) != CU_OK)
        goto done;
    obs = db_exec(db, sql_obs_pending, 0, NULL);
    if (!obs) {
        rc = db_last_status(db);
        goto done;
    }
    n = PQntuples(obs);
    o = calloc((size_t)n + 1, sizeof *o);
    for (int i = 0; o && i < n; i++) {
        o[i].device_id = PQgetvalue(obs, i, 1);
        o[i].count = atoll(PQgetvalue(obs, i, 3));
        o[i].wall_ms = atoll(PQgetvalue(obs, i, 4));
        o[i].work_mcu = atoll(PQgetvalue(obs, i, 5));
        if (profile_of(PQgetvalue(obs, i, 2), &o[i].profile) == 0)
            json_array_append_new(ids, json_string(PQgetvalue(obs, i, 0)));
    }
    if (n == 0 || !o) {
        snprintf(j->err, sizeof j->err, "no uncalibrated observations with measured work");
        j->status = 409;
        PQclear(obs);
        rc = 1;
        goto done;
    }
    {
        size_t bad = 0;
        if (cu_calibrate(cat, in, o, (size_t)n, out, &bad, &err) != CU_OK) {
            snprintf(j->err, sizeof j->err, "observation %s cannot be used: %s",
                     PQgetvalue(obs, (int)bad, 0), err.message);
            j->status = 409;
            PQclear(obs);
            rc = 1;
            goto done;
        }
    }
    PQclear(obs);
    json_decref(tj);
    tj = cu_eff_to_json(out);
    text = json_dumps(tj, JSON_COMPACT);
    idtext = json_dumps(ids, JSON_COMPACT);
    if (!text || !idtext)
        goto done;
    /* JSON array text -> PostgreSQL array literal: ["a","b"] -> {"a","b"} */
    idtext[0] = '{';
    idtext[strlen(idtext) - 1] = '}';
    {
        char v[16], nobs[16];
        const char *p[] = {v, text, nobs, j->reason, j->actor};
        const char *m[] = {v, idtext};
        snprintf(v, sizeof v, "%u", out->version);
        snprintf(nobs, sizeof nobs, "%d", n);
        if ((rc = db_command(db, sql_eff_insert, 5, p)) != DB_OK ||
            (rc = db_command(db, sql_obs_mark, 2, m)) != DB_OK)
            goto done;
    }
    j->version = (int)out->version;
    j->status = 201;
    j->out = json_pack("{s:i, s:i, s:i, s:s}", "version", (int)out->version, "previous_version",
                       (int)in->version, "observations", n, "reason", j->reason);
    rc = 1;
done:
    if (r)
        PQclear(r);
    json_decref(tj);
    json_decref(ids);
    free(text);
    free(idtext);
    free(o);
    free(in);
    free(out);
    return rc;
}

static int calibrate_work(db_conn *db, void *arg)
{
    struct cal_job *j = arg;
    const cat_catalog *cat;
    const cu_eff_table *eff;
    int rc = db_begin(db);

    if (rc != DB_OK)
        return rc;
    rc = idem_begin(db, &j->idem, &j->status, &j->out);
    if (rc == IDEM_REPLAY || rc == IDEM_MISMATCH)
        return rc;
    if (rc != IDEM_NEW)
        return rc;
    mcache_read_lock(j->mc, &cat, &eff);
    rc = cat ? calibrate_run(db, j, cat) : DB_FAILED;
    mcache_read_unlock(j->mc);
    if (rc != 1 || j->status != 201)
        return rc;
    if ((rc = idem_store(db, &j->idem, j->status, j->out)) != DB_OK)
        return rc;
    rc = db_commit(db);
    return rc == DB_OK ? 1 : rc;
}

static void calibrate_done(http_ctx *c, int rc, void *arg)
{
    struct cal_job *j = arg;

    if (rc == IDEM_MISMATCH) {
        http_reply_problem(c, PROB_IDEMPOTENCY_REUSE,
                           "this Idempotency-Key was used with a different request",
                           "Idempotency-Key");
    } else if (j->status == 409) {
        http_reply_problem(c, PROB_CONFLICT, j->err, NULL);
    } else {
        if (rc == IDEM_REPLAY)
            http_set_header(c, "Idempotent-Replayed", "true");
        http_reply_json(c, j->status, j->out);
        j->out = NULL;
    }
    cal_job_free(j);
}

void h_calibrations_create(http_ctx *c)
{
    static const char *const fields[] = {"reason", NULL};
    json_t *body = http_body(c);
    const char *reason = NULL;
    struct cal_job *j;

    if (val_known_fields(c, body, fields) || val_string(c, body, "reason", 0, 200, &reason))
        return;
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (idem_prepare(c, &j->idem) != 0) {
        free(j);
        return;
    }
    j->mc = http_server(c)->metering;
    snprintf(j->actor, sizeof j->actor, "%s", http_get_caller(c)->account_id);
    snprintf(j->reason, sizeof j->reason, "%s", reason ? reason : "calibration from observations");
    http_db(c, calibrate_work, calibrate_done, j, cal_job_free);
}

static const char sql_eff_get[] =
    "SELECT version, factors::text, observations, reason, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), created_by FROM efficiency_versions WHERE "
    "version = COALESCE($1::integer, (SELECT max(version) FROM efficiency_versions))";

static int efficiency_work(db_conn *db, void *arg)
{
    struct cal_job *j = arg;
    char v[16];
    const char *p[] = {j->version > 0 ? v : NULL};
    PGresult *r;

    snprintf(v, sizeof v, "%d", j->version);
    r = db_exec(db, sql_eff_get, 1, p);
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1)
        j->out = json_pack("{s:i, s:o, s:i, s:s, s:s, s:s}", "version", atoi(PQgetvalue(r, 0, 0)),
                           "factors", json_loads(PQgetvalue(r, 0, 1), 0, NULL), "observations",
                           atoi(PQgetvalue(r, 0, 2)), "reason", PQgetvalue(r, 0, 3), "created_at",
                           PQgetvalue(r, 0, 4), "created_by", PQgetvalue(r, 0, 5));
    PQclear(r);
    return j->out ? 1 : 0;
}

static void efficiency_done(http_ctx *c, int found, void *arg)
{
    struct cal_job *j = arg;

    if (found) {
        http_reply_json(c, 200, j->out);
        j->out = NULL;
    } else {
        http_reply_problem(c, PROB_NOT_FOUND, "no such efficiency version", NULL);
    }
    cal_job_free(j);
}

void h_efficiency_get(http_ctx *c)
{
    const char *v = http_query(c, "version");
    struct cal_job *j;
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : 0;

    if (v && (!*v || *end || n < 1 || n > 1000000000)) {
        http_reply_problem(c, PROB_VALIDATION, "'version' must be a positive integer", "version");
        return;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    j->version = (int)n;
    http_db(c, efficiency_work, efficiency_done, j, cal_job_free);
}
