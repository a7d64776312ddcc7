/*
 * accounts.c - SQL for accounts, API keys and their audit events.
 * Invariant: a plaintext API key exists only in the response that creates it;
 * the table holds its keyed hash and a short display prefix.
 */
#include "accounts.h"
#include "ids.h"
#include "paging.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char sql_account_insert[] =
    "INSERT INTO accounts (id, name, role) VALUES ($1, $2, $3) "
    "RETURNING id, name, role, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
const char accounts_sql_get[] = "SELECT id, name, role, to_char(created_at AT TIME ZONE 'UTC', "
                                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM accounts WHERE id = $1";
static const char sql_account_list[] =
    "SELECT id, name, role, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM accounts "
    "WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2";
static const char sql_account_by_name[] =
    "SELECT id, name, role, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM accounts WHERE name = $1 AND role = $2 "
    "ORDER BY id LIMIT 1";
static const char sql_key_insert[] =
    "INSERT INTO api_keys (id, account_id, key_hash, display_prefix, label, created_by) "
    "SELECT $1, id, $3, $4, $5, $6 FROM accounts WHERE id = $2 "
    "RETURNING id, account_id, display_prefix, label, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), NULL::text";
static const char sql_key_list[] =
    "SELECT id, account_id, display_prefix, label, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), to_char(revoked_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM api_keys WHERE account_id = $1 ORDER BY id";
static const char sql_key_revoke[] =
    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()), "
    "revoked_by = COALESCE(revoked_by, $3) WHERE account_id = $1 AND id = $2 "
    "RETURNING id, account_id, display_prefix, label, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), to_char(revoked_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
static const char sql_audit[] =
    "INSERT INTO audit_events (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)";

json_t *accounts_row_json(PGresult *r, int i)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "id", PQgetvalue(r, i, 0), "name", PQgetvalue(r, i, 1),
                     "role", PQgetvalue(r, i, 2), "created_at", PQgetvalue(r, i, 3));
}

static json_t *account_page_row(PGresult *r, int i, const void *ctx)
{
    (void)ctx;
    return accounts_row_json(r, i);
}

static json_t *key_row(PGresult *r, int i)
{
    json_t *k = json_pack("{s:s, s:s, s:s}", "id", PQgetvalue(r, i, 0), "account_id",
                          PQgetvalue(r, i, 1), "prefix", PQgetvalue(r, i, 2));

    if (!k)
        return NULL;
    json_object_set_new(k, "label",
                        PQgetisnull(r, i, 3) ? json_null() : json_string(PQgetvalue(r, i, 3)));
    json_object_set_new(k, "created_at", json_string(PQgetvalue(r, i, 4)));
    json_object_set_new(k, "revoked_at",
                        PQgetisnull(r, i, 5) ? json_null() : json_string(PQgetvalue(r, i, 5)));
    return k;
}

static int audit(db_conn *db, const char *actor, const char *action, const char *subject,
                 json_t *detail)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const char *p[] = {actor, action, subject, text ? text : "{}"};
    int rc = db_command(db, sql_audit, 4, p);

    free(text);
    return rc;
}

int keys_create(db_conn *db, const unsigned char secret[APIKEY_SECRET_LEN], const char *account_id,
                const char *label, const char *actor, json_t **out)
{
    char id[ID_MAX_LEN], key[APIKEY_TEXT_LEN + 1], hash[APIKEY_HASH_HEX_LEN + 1], prefix[16];
    PGresult *r;
    int rc;

    *out = NULL;
    if (ids_new(id, sizeof id, "key") != 0)
        return DB_FAILED;
    apikey_generate(key);
    apikey_hash(secret, key, hash);
    snprintf(prefix, sizeof prefix, "%.8s", key);
    {
        const char *p[] = {id, account_id, hash, prefix, label, actor};
        r = db_exec(db, sql_key_insert, 6, p);
    }
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    *out = key_row(r, 0);
    PQclear(r);
    if (!*out)
        return DB_FAILED;
    json_object_set_new(*out, "api_key", json_string(key));
    sodium_memzero(key, sizeof key);
    rc = audit(db, actor, "api_key.create", id, NULL);
    return rc == DB_OK ? 1 : rc;
}

int accounts_create(db_conn *db, const unsigned char secret[APIKEY_SECRET_LEN], const char *name,
                    const char *role, const char *actor, json_t **out)
{
    char id[ID_MAX_LEN];
    const char *p[3];
    json_t *key = NULL, *detail;
    PGresult *r;
    int rc;

    *out = NULL;
    if (ids_new(id, sizeof id, "acc") != 0)
        return DB_FAILED;
    p[0] = id;
    p[1] = name;
    p[2] = role;
    r = db_exec(db, sql_account_insert, 3, p);
    if (!r)
        return db_last_status(db);
    *out = accounts_row_json(r, 0);
    PQclear(r);
    detail = json_pack("{s:s, s:s}", "name", name, "role", role);
    rc = audit(db, actor ? actor : "cli", "account.create", id, detail);
    json_decref(detail);
    if (rc == DB_OK)
        rc = keys_create(db, secret, id, "initial", actor ? actor : "cli", &key);
    if (rc != 1) {
        json_decref(*out);
        *out = NULL;
        return rc < 0 ? rc : DB_FAILED;
    }
    json_object_set(*out, "api_key", json_object_get(key, "api_key"));
    json_object_set(*out, "key_id", json_object_get(key, "id"));
    json_decref(key);
    return 1;
}

int accounts_get(db_conn *db, const char *id, json_t **out)
{
    const char *p[] = {id};
    PGresult *r = db_exec(db, accounts_sql_get, 1, p);

    *out = NULL;
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1)
        *out = accounts_row_json(r, 0);
    PQclear(r);
    return *out ? 1 : 0;
}

int accounts_find_by_name(db_conn *db, const char *name, const char *role, json_t **out)
{
    const char *p[] = {name, role};
    PGresult *r = db_exec(db, sql_account_by_name, 2, p);

    *out = NULL;
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1)
        *out = accounts_row_json(r, 0);
    PQclear(r);
    return *out ? 1 : 0;
}

int accounts_list(db_conn *db, const char *after, int limit, json_t **out)
{
    char lim[16];
    const char *p[] = {after, lim};
    PGresult *r;

    snprintf(lim, sizeof lim, "%d", limit + 1); /* one more tells whether there is a next page */
    r = db_exec(db, sql_account_list, 2, p);
    if (!r)
        return db_last_status(db);
    *out = paging_build(r, limit, account_page_row, NULL);
    PQclear(r);
    return *out ? 1 : DB_FAILED;
}

int keys_list(db_conn *db, const char *account_id, json_t **out)
{
    const char *p[] = {account_id};
    json_t *data = json_array();
    PGresult *r = db_exec(db, sql_key_list, 1, p);

    if (!r) {
        json_decref(data);
        return db_last_status(db);
    }
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(data, key_row(r, i));
    PQclear(r);
    *out = json_pack("{s:o}", "data", data);
    return 1;
}

int keys_revoke(db_conn *db, const char *account_id, const char *key_id, const char *actor,
                json_t **out)
{
    const char *p[] = {account_id, key_id, actor};
    PGresult *r = db_exec(db, sql_key_revoke, 3, p);
    int rc;

    *out = NULL;
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1)
        *out = key_row(r, 0);
    PQclear(r);
    if (!*out)
        return 0;
    rc = audit(db, actor, "api_key.revoke", key_id, NULL);
    return rc == DB_OK ? 1 : rc;
}
