/*
 * estimates.c - load and store est_state rows.
 * Invariant: rows are written only inside a transaction that holds the global
 * row's lock (estimates_load with lock = 1).
 */
#include "estimates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void estimates_keys(const char *tenant, const char *job_class, const char *device, long long count,
                    uint64_t keys[EST_LEVELS])
{
    keys[1] = est_key(tenant, job_class, device);
    keys[0] = est_key_mix(keys[1], count);
    keys[2] = est_key(tenant, job_class, "");
    keys[3] = est_key(tenant, "", "");
}

static const char sql_global_ensure[] =
    "INSERT INTO estimate_global (id, state) VALUES (1, '{}'::jsonb) ON CONFLICT DO NOTHING";
static const char sql_global_lock[] =
    "SELECT state::text FROM estimate_global WHERE id = 1 FOR UPDATE";
static const char sql_global_read[] = "SELECT state::text FROM estimate_global WHERE id = 1";
static const char sql_entries[] =
    "SELECT entry::text FROM estimate_entries WHERE key = ANY($1::bigint[])";
static const char sql_entry_upsert[] =
    "INSERT INTO estimate_entries (key, entry) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO "
    "UPDATE SET entry = EXCLUDED.entry, updated_at = now()";
static const char sql_global_update[] =
    "UPDATE estimate_global SET state = $1::jsonb, updated_at = now() WHERE id = 1";

static void key_text(uint64_t k, char *out, size_t len)
{
    snprintf(out, len, "%lld", (long long)(int64_t)k);
}

static int load_global(db_conn *db, est_state *st, int lock)
{
    PGresult *r;
    json_t *j;

    if (lock && db_command(db, sql_global_ensure, 0, NULL) != DB_OK)
        return db_last_status(db);
    r = db_exec(db, lock ? sql_global_lock : sql_global_read, 0, NULL);
    if (!r)
        return db_last_status(db);
    j = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
    PQclear(r);
    if (j && json_object_size(j) > 0 && est_global_from_json(st, j) != EST_OK) {
        json_decref(j);
        return DB_FAILED;
    }
    json_decref(j);
    return DB_OK;
}

int estimates_load(db_conn *db, const uint64_t keys[EST_LEVELS], int lock, est_state **out)
{
    est_params params = est_params_default();
    est_state *st = est_new(&params);
    char arr[EST_LEVELS * 24 + 4] = "{", k[24];
    PGresult *r;
    int rc;

    *out = NULL;
    if (!st)
        return DB_FAILED;
    rc = load_global(db, st, lock);
    if (rc != DB_OK)
        goto fail;
    for (int i = 0; i < EST_LEVELS; i++) {
        key_text(keys[i], k, sizeof k);
        snprintf(arr + strlen(arr), sizeof arr - strlen(arr), "%s%s", i ? "," : "", k);
    }
    strcat(arr, "}");
    {
        const char *p[] = {arr};
        r = db_exec(db, sql_entries, 1, p);
    }
    if (!r) {
        rc = db_last_status(db);
        goto fail;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *j = json_loads(PQgetvalue(r, i, 0), 0, NULL);
        est_entry e;
        int ok = j && est_entry_from_json(j, &e) == EST_OK && est_restore_entry(st, &e) == EST_OK;
        json_decref(j);
        if (!ok) {
            PQclear(r);
            rc = DB_FAILED;
            goto fail;
        }
    }
    PQclear(r);
    *out = st;
    return DB_OK;
fail:
    est_free(st);
    return rc;
}

int estimates_save(db_conn *db, const est_state *st, const uint64_t keys[EST_LEVELS])
{
    json_t *g;
    char *text;
    int rc = DB_OK;

    for (size_t i = 0; rc == DB_OK && i < est_entry_count(st); i++) {
        const est_entry *e = est_entry_at(st, i);
        int wanted = 0;
        for (int k = 0; k < EST_LEVELS; k++)
            wanted |= e->key == keys[k];
        if (!wanted)
            continue;
        {
            json_t *j = est_entry_to_json(e);
            char kt[24];
            char *et = j ? json_dumps(j, JSON_COMPACT) : NULL;
            const char *p[] = {kt, et};
            json_decref(j);
            key_text(e->key, kt, sizeof kt);
            rc = et ? db_command(db, sql_entry_upsert, 2, p) : DB_FAILED;
            free(et);
        }
    }
    if (rc != DB_OK)
        return rc;
    g = est_global_to_json(st);
    text = g ? json_dumps(g, JSON_COMPACT) : NULL;
    json_decref(g);
    if (!text)
        return DB_FAILED;
    {
        const char *p[] = {text};
        rc = db_command(db, sql_global_update, 1, p);
    }
    free(text);
    return rc;
}
