/* Integration tests for server/migrate.c against a real PostgreSQL database. */
#include "assets.h"
#include "db.h"
#include "migrate.h"
#include "testdb.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

static char ci[1024];

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    testdb_create(ci, sizeof ci);
}

static void teardown(void)
{
    testdb_drop(ci);
}

TestSuite(migrate, .init = setup, .fini = teardown);

static db_conn *connect_or_fail(void)
{
    char err[512];
    db_conn *db = db_connect(ci, err, sizeof err);
    cr_assert(db, "%s", err);
    return db;
}

Test(migrate, applies_all_then_is_a_no_op)
{
    char err[512], detail[256];
    db_conn *db = connect_or_fail();
    cr_assert_eq(migrate_check(db, detail, sizeof detail), 0, "fresh database is not current");
    cr_assert_eq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err),
                 (int)tally_migrations_count, "%s", err);
    cr_assert_eq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0,
                 "second run must apply nothing: %s", err);
    cr_assert_eq(migrate_check(db, detail, sizeof detail), 1, "%s", detail);
    {
        char n[16];
        snprintf(n, sizeof n, "%zu", tally_migrations_count);
        cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM schema_migrations"), n);
    }
    db_close(db);
}

Test(migrate, records_name_and_checksum)
{
    char err[512], sum[65], sql[256];
    db_conn *db = connect_or_fail();
    cr_assert_geq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0);
    migrate_checksum(&tally_migrations[0], sum);
    snprintf(sql, sizeof sql, "SELECT checksum FROM schema_migrations WHERE name = '%s'",
             tally_migrations[0].name);
    cr_assert_str_eq(testdb_exec(ci, sql), sum);
    db_close(db);
}

Test(migrate, refuses_a_changed_applied_file)
{
    char err[512] = "";
    db_conn *db = connect_or_fail();
    struct embedded_file changed[1];
    cr_assert_geq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0);
    changed[0] = tally_migrations[0];
    changed[0].data = "SELECT 1; -- edited after it was applied";
    changed[0].len = strlen(changed[0].data);
    cr_assert_eq(migrate_apply(db, changed, 1, err, sizeof err), -1);
    cr_assert(strstr(err, "was changed after it was applied"), "message was: %s", err);
    cr_assert(strstr(err, tally_migrations[0].name));
    db_close(db);
}

Test(migrate, a_failing_migration_leaves_nothing_behind)
{
    char err[512] = "", detail[256];
    db_conn *db = connect_or_fail();
    struct embedded_file bad[2];
    cr_assert_geq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0);
    bad[0] = (struct embedded_file){"9998_ok.sql", "CREATE TABLE t_ok (x int);", 26};
    bad[1] = (struct embedded_file){"9999_bad.sql", "CREATE TABLE t_bad (x int); SELECT nope;", 41};
    cr_assert_eq(migrate_apply(db, bad, 2, err, sizeof err), -1);
    cr_assert(strstr(err, "9999_bad.sql failed"), "message was: %s", err);
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM schema_migrations WHERE name = "
                                     "'9999_bad.sql'"),
                     "0");
    cr_assert_str_eq(testdb_exec(ci, "SELECT to_regclass('t_bad') IS NULL"), "t");
    cr_assert_str_eq(testdb_exec(ci, "SELECT to_regclass('t_ok') IS NOT NULL"), "t");
    /* The database now has a migration the binary does not know. */
    cr_assert_eq(migrate_check(db, detail, sizeof detail), 0);
    cr_assert(strstr(detail, "9998_ok.sql"), "%s", detail);
    db_close(db);
}

Test(migrate, audit_events_are_append_only)
{
    char err[512];
    db_conn *db = connect_or_fail();
    cr_assert_geq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0);
    cr_assert(testdb_exec(ci, "INSERT INTO audit_events (actor, action, subject) VALUES "
                              "('a', 'b', 'c')"));
    cr_assert_null(testdb_exec(ci, "UPDATE audit_events SET actor = 'x'"));
    cr_assert(strstr(testdb_error(), "append-only"), "%s", testdb_error());
    cr_assert_null(testdb_exec(ci, "DELETE FROM audit_events"));
    cr_assert_null(testdb_exec(ci, "TRUNCATE audit_events"));
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM audit_events"), "1");
    db_close(db);
}
