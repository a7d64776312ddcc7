/*
 * ledger_maint.c - the ledger's periodic work, run by the janitor on a
 * database thread: expiring holds (each recorded as an expiry transaction
 * through the same batch executor as every other write) and signing
 * checkpoints over the partition heads.
 * Invariant: checkpoints are numbered 1, 2, 3, … with each one's prev_digest
 * the digest of the one before; an advisory lock serialises their makers
 * across processes.
 */
#include "ledger_maint.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_due[] = "SELECT id FROM ledger_holds WHERE state = 'open' AND expires_us <= "
                              "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint "
                              "ORDER BY expires_us LIMIT 64";

int ledger_expire_due(ledger_svc *ls, db_conn *db)
{
    PGresult *r = db_exec(db, sql_due, 0, NULL);
    ledger_op *ops[64];
    int n, rc, done = 0;

    if (!r)
        return db_last_status(db);
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        ops[i] = ledger_op_new(LOP_EXPIRE);
        if (!ops[i]) {
            n = i;
            break;
        }
        snprintf(ops[i]->hold_id, sizeof ops[i]->hold_id, "%s", PQgetvalue(r, i, 0));
        snprintf(ops[i]->caller, sizeof ops[i]->caller, "system");
    }
    PQclear(r);
    rc = n ? ledger_run_ops(ls, db, ops, (size_t)n) : DB_OK;
    for (int i = 0; i < n; i++) {
        if (rc == DB_OK && ops[i]->status >= 200 && ops[i]->status < 300)
            done++;
        else if (rc == DB_OK && ops[i]->status >= 400)
            log_warn("ledger", "cannot expire hold %s (status %d)", ops[i]->hold_id,
                     ops[i]->status);
        ledger_op_free(ops[i]);
    }
    return rc == DB_OK ? done : rc;
}

static const char sql_ck_lock[] = "SELECT pg_advisory_xact_lock(7308604897068083268)";
static const char sql_ck_last[] =
    "SELECT number, time_us, encode(digest, 'hex'), encode(heads, 'hex'), "
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint "
    "FROM ledger_checkpoints ORDER BY number DESC LIMIT 1";
static const char sql_now[] = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";
static const char sql_heads_all[] =
    "SELECT partition, seq, encode(hash, 'hex') FROM ledger_heads ORDER BY partition";
static const char sql_ck_insert[] =
    "INSERT INTO ledger_checkpoints (number, time_us, partitions, root, prev_digest, digest, kid, "
    "sig, heads) VALUES ($1::bigint, $2::bigint, $3::integer, decode($4, 'hex'), decode($5, "
    "'hex'), "
    "decode($6, 'hex'), $7, decode($8, 'hex'), decode($9, 'hex'))";

static const char sql_key_valid[] = "SELECT valid_until FROM ledger_keys WHERE kid = $1";

/* 1 when this process's key is not retired, 0 (logged) when it is, or a
 * db_status. Runs under the checkpoint lock, which a retirement also takes. */
static int key_usable(ledger_svc *ls, db_conn *db)
{
    const char *p[] = {ls->signer->kid};
    PGresult *r = db_exec(db, sql_key_valid, 1, p);
    int ok;

    if (!r)
        return db_last_status(db);
    ok = PQntuples(r) == 1 && PQgetisnull(r, 0, 0);
    PQclear(r);
    if (!ok)
        log_warn("ledger", "no checkpoint: signing key %s is retired", ls->signer->kid);
    return ok;
}

int ledger_make_checkpoint(ledger_svc *ls, db_conn *db, int force)
{
    PGresult *r = NULL;
    uint64_t number = 1;
    int64_t last_time = 0, now = 0;
    ledger_hash prev = {0};
    char *last_heads = NULL, *heads_hex = NULL;
    ledger_head *heads = NULL;
    ledger_checkpoint c;
    int rc, n = 0;

    if ((rc = ledger_setup(ls, db)) != DB_OK)
        return rc;
    if ((rc = db_begin(db)) != DB_OK || (rc = db_command(db, sql_ck_lock, 0, NULL)) != DB_OK)
        return rc;
    if (!(r = db_exec(db, sql_ck_last, 0, NULL)))
        return db_last_status(db);
    if (PQntuples(r) == 1) {
        number = strtoull(PQgetvalue(r, 0, 0), NULL, 10) + 1;
        last_time = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        ledger_unhex(PQgetvalue(r, 0, 2), prev, LEDGER_HASH_BYTES);
        last_heads = strdup(PQgetvalue(r, 0, 3));
        now = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    }
    PQclear(r);
    r = NULL;
    if (number == 1) {
        if (!(r = db_exec(db, sql_now, 0, NULL)))
            return db_last_status(db);
        now = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        r = NULL;
    }
    rc = 0;
    if (!force && number > 1 && now - last_time < (int64_t)ls->checkpoint_ms * 1000)
        goto out; /* not yet due */
    if (!(r = db_exec(db, sql_heads_all, 0, NULL))) {
        rc = db_last_status(db);
        goto out;
    }
    n = PQntuples(r);
    heads = calloc((size_t)n + 1, sizeof *heads);
    heads_hex = malloc((size_t)n * 80 + 1);
    if (!heads || !heads_hex) {
        rc = DB_FAILED;
        goto out;
    }
    heads_hex[0] = '\0';
    for (int i = 0; i < n; i++) {
        unsigned char raw[40];
        heads[i].partition = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
        heads[i].seq = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        ledger_unhex(PQgetvalue(r, i, 2), heads[i].hash, LEDGER_HASH_BYTES);
        for (int b = 0; b < 8; b++)
            raw[b] = (unsigned char)(heads[i].seq >> (56 - 8 * b));
        memcpy(raw + 8, heads[i].hash, 32);
        ledger_hex(raw, sizeof raw, heads_hex + 80 * i);
    }
    PQclear(r);
    r = NULL;
    if (!force && last_heads && !strcmp(last_heads, heads_hex))
        goto out; /* nothing new since the last checkpoint */
    if ((rc = key_usable(ls, db)) != 1)
        goto out;
    if (ledger_checkpoint_make(&c, number, now, heads, (uint32_t)n, prev, ls->signer, NULL) !=
        LEDGER_OK) {
        rc = DB_FAILED;
        goto out;
    }
    {
        char num[24], t[24], parts[16], root[65], pd[65], dg[65], sig[129];
        ledger_hash digest;
        const char *p[] = {num, t, parts, root, pd, dg, c.kid, sig, heads_hex};
        ledger_checkpoint_digest(&c, digest, NULL);
        snprintf(num, sizeof num, "%llu", (unsigned long long)c.number);
        snprintf(t, sizeof t, "%lld", (long long)c.time_us);
        snprintf(parts, sizeof parts, "%u", c.partitions);
        ledger_hex(c.root, 32, root);
        ledger_hex(c.prev_digest, 32, pd);
        ledger_hex(digest, 32, dg);
        ledger_hex(c.sig, 64, sig);
        if ((rc = db_command(db, sql_ck_insert, 9, p)) != DB_OK)
            goto out;
    }
    rc = db_commit(db);
    rc = rc == DB_OK ? 1 : rc;
out:
    PQclear(r);
    db_rollback(db);
    free(last_heads);
    free(heads_hex);
    free(heads);
    return rc;
}

static const char sql_heads_lock_all[] = "SELECT partition FROM ledger_heads ORDER BY partition "
                                         "FOR UPDATE";
static const char sql_key_retire[] =
    "WITH k AS (SELECT kid FROM ledger_keys WHERE kid = $1), "
    "u AS (UPDATE ledger_keys SET valid_until = (extract(epoch FROM clock_timestamp()) * "
    "1000000)::bigint WHERE kid = $1 AND valid_until IS NULL RETURNING kid) "
    "SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM u)";

int ledger_retire_key(db_conn *db, const char *kid)
{
    const char *p[] = {kid};
    PGresult *r;
    int rc;

    if ((rc = db_command(db, sql_ck_lock, 0, NULL)) != DB_OK)
        return rc;
    if (!(r = db_exec(db, sql_heads_lock_all, 0, NULL)))
        return db_last_status(db);
    PQclear(r);
    if (!(r = db_exec(db, sql_key_retire, 1, p)))
        return db_last_status(db);
    if (!strcmp(PQgetvalue(r, 0, 0), "0"))
        rc = LEDGER_RETIRE_UNKNOWN;
    else
        rc = strcmp(PQgetvalue(r, 0, 1), "0") != 0 ? LEDGER_RETIRE_DONE : LEDGER_RETIRE_ALREADY;
    PQclear(r);
    return rc;
}
