/*
 * handlers_devices.c - the device catalog over HTTP.
 *
 * Reads come from PostgreSQL (every version stays readable: past charges refer
 * to them); admin imports a whole catalog version or adds one device, which
 * creates a new version from the current one. New versions reach every
 * process's in-memory catalog within a second (see metering_store.h).
 */
#include "handlers.h"
#include "metering_store.h"
#include "server.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dev_job {
    char version[72]; /* requested catalog version, "" = current */
    char id[72];      /* device id, "" = all */
    char *doc;        /* document to import (owned) */
    size_t doclen;
    char actor[48];
    json_t *out;
    int result;
    char err[512];
};

static void dev_job_free(void *arg)
{
    struct dev_job *j = arg;
    json_decref(j->out);
    free(j->doc);
    free(j);
}

static struct dev_job *dev_job_new(http_ctx *c)
{
    struct dev_job *j = calloc(1, sizeof *j);

    if (!j)
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
    else
        snprintf(j->actor, sizeof j->actor, "%s", http_get_caller(c)->account_id);
    return j;
}

static const char sql_resolve_version[] =
    "SELECT version FROM catalog_versions WHERE ($1::text = '' AND seq = (SELECT max(seq) FROM "
    "catalog_versions)) OR version = $1";
static const char sql_devices[] =
    "SELECT spec::text FROM devices WHERE catalog_version = $1 AND ($2::text = '' OR id = $2) "
    "ORDER BY position";

/* 1 found (j->out set), 0 no such version or device. */
static int devices_work(db_conn *db, void *arg)
{
    struct dev_job *j = arg;
    const char *p1[] = {j->version};
    PGresult *r = db_exec(db, sql_resolve_version, 1, p1);
    json_t *data;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(j->err, sizeof j->err, "%s",
                 j->version[0] ? "no such catalog version" : "no device catalog imported yet");
        return 0;
    }
    snprintf(j->version, sizeof j->version, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    {
        const char *p2[] = {j->version, j->id};
        r = db_exec(db, sql_devices, 2, p2);
    }
    if (!r)
        return db_last_status(db);
    data = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(data, json_loads(PQgetvalue(r, i, 0), 0, NULL));
    PQclear(r);
    if (j->id[0]) {
        if (json_array_size(data) == 0) {
            json_decref(data);
            snprintf(j->err, sizeof j->err, "no device '%s' in catalog %s", j->id, j->version);
            return 0;
        }
        j->out = json_incref(json_array_get(data, 0));
        json_object_set_new(j->out, "catalog_version", json_string(j->version));
        json_decref(data);
        return 1;
    }
    j->out = json_pack("{s:s, s:o}", "catalog_version", j->version, "data", data);
    return 1;
}

static void devices_done(http_ctx *c, int found, void *arg)
{
    struct dev_job *j = arg;

    if (found) {
        http_reply_json(c, 200, j->out);
        j->out = NULL;
    } else {
        http_reply_problem(c, PROB_NOT_FOUND, j->err, NULL);
    }
    dev_job_free(j);
}

static int query_version(http_ctx *c, struct dev_job *j)
{
    const char *v = http_query(c, "catalog_version");

    if (v && (strlen(v) == 0 || strlen(v) >= 64)) {
        http_reply_problem(c, PROB_VALIDATION, "'catalog_version' must have 1 to 63 bytes",
                           "catalog_version");
        return -1;
    }
    snprintf(j->version, sizeof j->version, "%s", v ? v : "");
    return 0;
}

void h_devices_list(http_ctx *c)
{
    struct dev_job *j = dev_job_new(c);

    if (!j)
        return;
    if (query_version(c, j) != 0) {
        dev_job_free(j);
        return;
    }
    http_db(c, devices_work, devices_done, j, dev_job_free);
}

void h_devices_get(http_ctx *c)
{
    struct dev_job *j = dev_job_new(c);
    const char *id = http_param(c, "id");

    if (!j)
        return;
    if (query_version(c, j) != 0) {
        dev_job_free(j);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", id && strlen(id) < 64 ? id : "");
    if (!j->id[0]) {
        dev_job_free(j);
        http_reply_problem(c, PROB_NOT_FOUND, "no such device", NULL);
        return;
    }
    http_db(c, devices_work, devices_done, j, dev_job_free);
}

static const char sql_versions[] =
    "SELECT version, sha256, device_count, to_char(imported_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), imported_by, seq = max(seq) OVER () "
    "FROM catalog_versions ORDER BY seq DESC";

static int versions_work(db_conn *db, void *arg)
{
    struct dev_job *j = arg;
    PGresult *r = db_exec(db, sql_versions, 0, NULL);
    json_t *data;

    if (!r)
        return db_last_status(db);
    data = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(data,
                              json_pack("{s:s, s:s, s:i, s:s, s:s, s:b}", "version",
                                        PQgetvalue(r, i, 0), "sha256", PQgetvalue(r, i, 1),
                                        "device_count", atoi(PQgetvalue(r, i, 2)), "imported_at",
                                        PQgetvalue(r, i, 3), "imported_by", PQgetvalue(r, i, 4),
                                        "current", PQgetvalue(r, i, 5)[0] == 't'));
    PQclear(r);
    j->out = json_pack("{s:o}", "data", data);
    return 1;
}

void h_catalog_versions_list(http_ctx *c)
{
    struct dev_job *j = dev_job_new(c);

    if (j)
        http_db(c, versions_work, devices_done, j, dev_job_free);
}

/* Import j->doc as a new version, in one transaction. */
static int import_work(db_conn *db, void *arg)
{
    struct dev_job *j = arg;
    int rc = db_begin(db);

    if (rc != DB_OK)
        return rc;
    rc = metering_import_catalog(db, j->doc, j->doclen, j->actor, j->version, sizeof j->version,
                                 j->err, sizeof j->err);
    if (rc < 0)
        return rc;
    if (rc == 0 || rc == 1) {
        int crc = db_commit(db);
        if (crc != DB_OK)
            return crc;
    }
    j->result = rc;
    return 1;
}

static void import_done(http_ctx *c, int ok, void *arg)
{
    struct dev_job *j = arg;

    if (j->result == 2) {
        http_reply_problem(c, PROB_CONFLICT, j->err, "version");
    } else if (j->result == 3) {
        http_reply_problemf(c, PROB_VALIDATION, NULL, "invalid catalog: %s", j->err);
    } else {
        http_reply_json(c, j->result == 1 ? 201 : 200,
                        json_pack("{s:s, s:s}", "version", j->version, "status",
                                  j->result == 1 ? "imported" : "unchanged"));
    }
    dev_job_free(j);
}

void h_catalog_versions_create(http_ctx *c)
{
    json_t *body = http_body(c);
    struct dev_job *j;

    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "the body must be a catalog document", "version");
        return;
    }
    if (!(j = dev_job_new(c)))
        return;
    j->doc = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    j->doclen = j->doc ? strlen(j->doc) : 0;
    http_db(c, import_work, import_done, j, dev_job_free);
}

/* Add one device: the current document plus the device (and its source) under a new version. */
static int add_device_work(db_conn *db, void *arg)
{
    struct dev_job *j = arg;
    json_t *req = json_loads(j->doc, 0, NULL), *doc = NULL;
    int rc = db_begin(db);

    if (rc != DB_OK || !req) {
        json_decref(req);
        return rc != DB_OK ? rc : DB_FAILED;
    }
    rc = metering_current_document(db, &doc);
    if (rc <= 0) {
        json_decref(req);
        snprintf(j->err, sizeof j->err, "no device catalog imported yet");
        j->result = 3;
        return rc < 0 ? rc : 1;
    }
    json_object_set(doc, "version", json_object_get(req, "version"));
    json_array_append(json_object_get(doc, "devices"), json_object_get(req, "device"));
    if (json_object_get(req, "source")) {
        json_t *src = json_object_get(req, "source");
        json_object_set(
            json_object_get(doc, "sources"),
            json_string_value(json_object_get(json_object_get(req, "device"), "source")), src);
    }
    free(j->doc);
    j->doc = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    j->doclen = j->doc ? strlen(j->doc) : 0;
    json_decref(doc);
    json_decref(req);
    if (!j->doc)
        return DB_FAILED;
    db_rollback(db);
    return import_work(db, j);
}

void h_devices_create(http_ctx *c)
{
    static const char *const fields[] = {"version", "device", "source", NULL};
    json_t *body = http_body(c), *dev, *src;
    struct dev_job *j;
    const char *version;

    if (val_known_fields(c, body, fields) || val_string(c, body, "version", 1, 63, &version))
        return;
    dev = json_object_get(body, "device");
    src = json_object_get(body, "source");
    if (!json_is_object(dev) || !json_is_string(json_object_get(dev, "source"))) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'device' must be a device object in the catalog format, with a "
                           "'source' key",
                           "device");
        return;
    }
    if (src && !json_is_object(src)) {
        http_reply_problem(c, PROB_VALIDATION, "'source' must be {\"title\": …, \"url\": …}",
                           "source");
        return;
    }
    if (!(j = dev_job_new(c)))
        return;
    j->doc = json_dumps(body, JSON_COMPACT);
    http_db(c, add_device_work, import_done, j, dev_job_free);
}
