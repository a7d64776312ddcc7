/*
 * migrate.c - apply and verify checksummed SQL migrations.
 * Invariant: schema_migrations lists exactly the files applied, each with the
 * checksum it had when applied.
 */
#include "migrate.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define MIGRATE_LOCK_KEY "7411290001" /* pg_advisory_lock key shared by all tallyd */

static const char sql_table[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                " name text PRIMARY KEY,"
                                " checksum text NOT NULL,"
                                " applied_at timestamptz NOT NULL DEFAULT now())";
static const char sql_lookup[] = "SELECT checksum FROM schema_migrations WHERE name = $1";
static const char sql_record[] = "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)";
static const char sql_exists[] = "SELECT to_regclass('schema_migrations') IS NOT NULL";
static const char sql_all[] = "SELECT name, checksum FROM schema_migrations ORDER BY name";

void migrate_checksum(const struct embedded_file *f, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, (const unsigned char *)f->data, f->len);
    sodium_bin2hex(out, 65, h, sizeof h);
}

/* Apply one file in a transaction. 1 applied, 0 already there, -1 error. */
static int apply_one(db_conn *db, const struct embedded_file *f, char *err, size_t errlen)
{
    char sum[65];
    const char *p[2] = {f->name, sum};
    PGresult *r;
    int found;

    migrate_checksum(f, sum);
    r = db_exec_dynamic(db, sql_lookup, 1, p);
    if (!r)
        goto dberr;
    found = PQntuples(r) == 1;
    if (found && strcmp(PQgetvalue(r, 0, 0), sum) != 0) {
        snprintf(err, errlen,
                 "migration %s was changed after it was applied (recorded checksum %.12s…, file "
                 "has %.12s…); add a new migration instead of editing an applied one",
                 f->name, PQgetvalue(r, 0, 0), sum);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    if (found)
        return 0;
    if (db_command(db, "BEGIN", 0, NULL) != DB_OK)
        goto dberr;
    /* Simple-query protocol: a migration file may hold many statements. */
    r = PQexec(db_pgconn(db), f->data);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "migration %s failed: %s", f->name, PQresultErrorMessage(r));
        PQclear(r);
        db_rollback(db);
        return -1;
    }
    PQclear(r);
    if (db_command(db, sql_record, 2, p) != DB_OK || db_command(db, "COMMIT", 0, NULL) != DB_OK)
        goto dberr;
    return 1;
dberr:
    snprintf(err, errlen, "migration %s: %s", f->name, db_last_message(db));
    db_rollback(db);
    return -1;
}

int migrate_apply(db_conn *db, const struct embedded_file *files, size_t n, char *err,
                  size_t errlen)
{
    const char *lock[] = {MIGRATE_LOCK_KEY};
    int applied = 0, rc = 0;

    if (db_command(db, "SELECT pg_advisory_lock($1::bigint)", 1, lock) != DB_OK ||
        db_command(db, sql_table, 0, NULL) != DB_OK) {
        snprintf(err, errlen, "cannot prepare schema_migrations: %s", db_last_message(db));
        return -1;
    }
    for (size_t i = 0; i < n && rc >= 0; i++) {
        rc = apply_one(db, &files[i], err, errlen);
        if (rc > 0)
            applied++;
    }
    db_command(db, "SELECT pg_advisory_unlock($1::bigint)", 1, lock);
    return rc < 0 ? -1 : applied;
}

int migrate_check(db_conn *db, char *detail, size_t len)
{
    PGresult *r = db_exec(db, sql_exists, 0, NULL);
    int nrows, exists;

    if (!r)
        return db_last_status(db);
    exists = !strcmp(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    if (!exists) {
        snprintf(detail, len, "the database has no schema yet: run 'tallyd migrate'");
        return 0;
    }
    r = db_exec(db, sql_all, 0, NULL);
    if (!r)
        return db_last_status(db);
    nrows = PQntuples(r);
    for (size_t i = 0; i < tally_migrations_count; i++) {
        char sum[65];
        migrate_checksum(&tally_migrations[i], sum);
        if ((int)i >= nrows || strcmp(PQgetvalue(r, (int)i, 0), tally_migrations[i].name) != 0 ||
            strcmp(PQgetvalue(r, (int)i, 1), sum) != 0) {
            snprintf(detail, len, "migration %s is not applied (or differs): run 'tallyd migrate'",
                     tally_migrations[i].name);
            PQclear(r);
            return 0;
        }
    }
    if ((size_t)nrows > tally_migrations_count) {
        snprintf(detail, len,
                 "the database has migration %s, unknown to this tallyd (older binary?)",
                 PQgetvalue(r, (int)tally_migrations_count, 0));
        PQclear(r);
        return 0;
    }
    PQclear(r);
    return 1;
}
