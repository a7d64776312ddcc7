/* Integration tests for server/accounts.c: accounts and keys in PostgreSQL. */
#include "accounts.h"
#include "assets.h"
#include "db.h"
#include "ids.h"
#include "migrate.h"
#include "testdb.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

static char ci[1024];
static db_conn *db;
static const unsigned char secret[APIKEY_SECRET_LEN] = {7, 7, 7};

static void setup(void)
{
    char err[512];
    cr_assert(sodium_init() >= 0);
    testdb_create(ci, sizeof ci);
    db = db_connect(ci, err, sizeof err);
    cr_assert(db, "%s", err);
    cr_assert_geq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0,
                  "%s", err);
}

static void teardown(void)
{
    db_close(db);
    testdb_drop(ci);
}

TestSuite(accounts, .init = setup, .fini = teardown);

static json_t *create(const char *name, const char *role)
{
    json_t *out = NULL;
    cr_assert_eq(accounts_create(db, secret, name, role, "test", &out), 1, "%s",
                 db_last_message(db));
    return out;
}

Test(accounts, create_returns_id_and_a_key_stored_only_as_hash)
{
    json_t *a = create("alice", "tenant");
    const char *id = json_string_value(json_object_get(a, "id"));
    const char *key = json_string_value(json_object_get(a, "api_key"));
    char hash[APIKEY_HASH_HEX_LEN + 1], sql[512];
    cr_assert(ids_valid(id, "acc"));
    cr_assert(apikey_well_formed(key));
    apikey_hash(secret, key, hash);
    snprintf(sql, sizeof sql, "SELECT account_id FROM api_keys WHERE key_hash = '%s'", hash);
    cr_assert_str_eq(testdb_exec(ci, sql), id);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM api_keys WHERE key_hash LIKE '%%%s%%' OR "
             "display_prefix = '%s'",
             key + 8, key);
    cr_assert_str_eq(testdb_exec(ci, sql), "0", "plaintext key must not be stored");
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM audit_events WHERE action = "
                                     "'account.create'"),
                     "1");
    json_decref(a);
}

Test(accounts, get_and_not_found)
{
    json_t *a = create("bob", "provider"), *got = NULL;
    const char *id = json_string_value(json_object_get(a, "id"));
    cr_assert_eq(accounts_get(db, id, &got), 1);
    cr_assert_str_eq(json_string_value(json_object_get(got, "name")), "bob");
    cr_assert_str_eq(json_string_value(json_object_get(got, "role")), "provider");
    cr_assert_null(json_object_get(got, "api_key"), "reads never return keys");
    json_decref(got);
    cr_assert_eq(accounts_get(db, "acc_00000000000000000000000000", &got), 0);
    json_decref(a);
}

Test(accounts, the_database_refuses_bad_roles_and_ids)
{
    cr_assert_null(testdb_exec(ci, "INSERT INTO accounts (id, name, role) VALUES "
                                   "('acc_00000000000000000000000000', 'x', 'root')"));
    cr_assert_null(testdb_exec(ci, "INSERT INTO accounts (id, name, role) VALUES ('bad', 'x', "
                                   "'tenant')"));
}

Test(accounts, list_pages_by_cursor)
{
    json_t *page, *all = json_array();
    const char *after = NULL;
    char cursor[48];
    int seen = 0;
    for (int i = 0; i < 5; i++)
        json_decref(create("p", "tenant"));
    do {
        cr_assert_eq(accounts_list(db, after, 2, &page), 1);
        json_t *data = json_object_get(page, "data");
        size_t i;
        json_t *v;
        json_array_foreach(data, i, v) json_array_append(all, json_object_get(v, "id"));
        seen += (int)json_array_size(data);
        if (json_is_true(json_object_get(page, "has_more"))) {
            snprintf(cursor, sizeof cursor, "%s",
                     json_string_value(json_object_get(page, "next_after")));
            after = cursor;
        } else {
            after = NULL;
        }
        json_decref(page);
    } while (after);
    cr_assert_eq(seen, 5);
    for (size_t i = 1; i < json_array_size(all); i++)
        cr_assert_lt(strcmp(json_string_value(json_array_get(all, i - 1)),
                            json_string_value(json_array_get(all, i))),
                     0, "pages are ordered and do not overlap");
    json_decref(all);
}

Test(accounts, keys_create_list_revoke)
{
    json_t *a = create("carol", "tenant"), *k = NULL, *list = NULL, *rev = NULL, *rev2 = NULL;
    const char *id = json_string_value(json_object_get(a, "id"));
    cr_assert_eq(keys_create(db, secret, id, "ci", "test", &k), 1);
    cr_assert(apikey_well_formed(json_string_value(json_object_get(k, "api_key"))));
    cr_assert_eq(keys_list(db, id, &list), 1);
    cr_assert_eq(json_array_size(json_object_get(list, "data")), 2);
    cr_assert_eq(keys_revoke(db, id, json_string_value(json_object_get(k, "id")), "test", &rev), 1);
    cr_assert(json_is_string(json_object_get(rev, "revoked_at")));
    cr_assert_eq(keys_revoke(db, id, json_string_value(json_object_get(k, "id")), "test", &rev2),
                 1);
    cr_assert(json_equal(json_object_get(rev, "revoked_at"), json_object_get(rev2, "revoked_at")),
              "revoking twice keeps the first revocation");
    cr_assert_eq(keys_revoke(db, "acc_00000000000000000000000000",
                             json_string_value(json_object_get(k, "id")), "test", &rev2),
                 0, "another account cannot revoke this key");
    cr_assert_eq(keys_create(db, secret, "acc_00000000000000000000000000", NULL, "t", &rev2), 0);
    json_decref(a);
    json_decref(k);
    json_decref(list);
    json_decref(rev);
}

Test(accounts, find_by_name)
{
    json_t *a = create("dave", "admin"), *f = NULL;
    cr_assert_eq(accounts_find_by_name(db, "dave", "admin", &f), 1);
    cr_assert(json_equal(json_object_get(a, "id"), json_object_get(f, "id")));
    json_decref(f);
    cr_assert_eq(accounts_find_by_name(db, "dave", "tenant", &f), 0);
    json_decref(a);
}
