/*
 * testdb.c - create and drop per-test databases with libpq (tests only).
 */
#include "testdb.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char last_error[1024];
static char value[4096];

const char *testdb_error(void)
{
    return last_error;
}

const char *testdb_exec(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r;
    const char *out = NULL;

    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(last_error, sizeof last_error, "%s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
        snprintf(value, sizeof value, "%s",
                 PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
        out = value;
    } else {
        snprintf(last_error, sizeof last_error, "%s", PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
    return out;
}

void testdb_create(char *out, size_t outlen)
{
    const char *admin = getenv("TALLY_TEST_PG");
    char name[40], sql[128], admin_ci[1024];

    cr_assert(admin && *admin, "TALLY_TEST_PG is not set: run the tests through scripts/test.sh");
    if (sodium_init() < 0)
        cr_assert_fail("sodium_init failed");
    snprintf(name, sizeof name, "t_%08x%08x", randombytes_random(), randombytes_random());
    snprintf(admin_ci, sizeof admin_ci, "%s dbname=postgres", admin);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    cr_assert(testdb_exec(admin_ci, sql), "create database: %s", testdb_error());
    snprintf(out, outlen, "%s dbname=%s", admin, name);
}

void testdb_drop(const char *conninfo)
{
    const char *admin = getenv("TALLY_TEST_PG");
    const char *db = strstr(conninfo, "dbname=t_");
    char sql[128], admin_ci[1024];

    if (!admin || !db)
        return;
    snprintf(admin_ci, sizeof admin_ci, "%s dbname=postgres", admin);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db + 7);
    testdb_exec(admin_ci, sql);
}
