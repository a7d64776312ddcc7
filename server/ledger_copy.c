/*
 * ledger_copy.c - binary COPY streams for the ledger writer (see ledger_copy.h).
 *
 * Format (PostgreSQL "COPY BINARY"): the 11-byte signature, a 32-bit flags
 * word and a 32-bit header-extension length (both 0); then per row a 16-bit
 * field count and per field a 32-bit length (-1 = NULL) and the bytes in the
 * type's binary send format (big-endian integers, raw text and bytea); then
 * the 16-bit trailer -1. All integers are big-endian.
 */
#include "ledger_copy.h"
#include "log.h"

#include <string.h>

static const unsigned char copy_signature[11] = {'P',  'G',  'C',  'O',  'P', 'Y',
                                                 '\n', 0xff, '\r', '\n', 0};

static void put(ledger_copy *c, const void *p, size_t n)
{
    if (!c->oom && ledger_buf_put(&c->buf, p, n) != 0)
        c->oom = true;
}

static void put_u32(ledger_copy *c, uint32_t v)
{
    if (!c->oom && ledger_buf_u32(&c->buf, v) != 0)
        c->oom = true;
}

static void put_u16(ledger_copy *c, uint16_t v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(c, b, sizeof b);
}

void ledger_copy_init(ledger_copy *c)
{
    memset(c, 0, sizeof *c);
    ledger_buf_init(&c->buf);
    put(c, copy_signature, sizeof copy_signature);
    put_u32(c, 0); /* flags: no OIDs */
    put_u32(c, 0); /* header extension length */
}

void ledger_copy_free(ledger_copy *c)
{
    ledger_buf_free(&c->buf);
    c->rows = 0;
}

void ledger_copy_row(ledger_copy *c, int nfields)
{
    put_u16(c, (uint16_t)nfields);
    c->rows++;
}

void ledger_copy_text(ledger_copy *c, const char *s)
{
    size_t n = strlen(s);
    put_u32(c, (uint32_t)n);
    put(c, s, n);
}

void ledger_copy_null(ledger_copy *c)
{
    put_u32(c, UINT32_MAX); /* length -1: NULL, whatever the column's type */
}

void ledger_copy_text_or_null(ledger_copy *c, const char *s)
{
    if (!s || !*s)
        ledger_copy_null(c);
    else
        ledger_copy_text(c, s);
}

void ledger_copy_i16(ledger_copy *c, int16_t v)
{
    put_u32(c, 2);
    put_u16(c, (uint16_t)v);
}

void ledger_copy_i32(ledger_copy *c, int32_t v)
{
    put_u32(c, 4);
    put_u32(c, (uint32_t)v);
}

void ledger_copy_i64(ledger_copy *c, int64_t v)
{
    put_u32(c, 8);
    if (!c->oom && ledger_buf_i64(&c->buf, v) != 0)
        c->oom = true;
}

void ledger_copy_bytes(ledger_copy *c, const void *p, size_t n)
{
    put_u32(c, (uint32_t)n);
    put(c, p, n);
}

/* The db_status of a failed COPY result. */
static int copy_classify(PGconn *pg, PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(pg) != CONNECTION_OK)
        return DB_UNAVAILABLE;
    if (st && (!strcmp(st, "40001") || !strcmp(st, "40P01") || !strcmp(st, "23505")))
        return DB_RETRY;
    if (st && (!strncmp(st, "08", 2) || !strncmp(st, "57", 2) || !strcmp(st, "53300")))
        return DB_UNAVAILABLE;
    log_error("ledger", "COPY failed: %s (%s)", r ? PQresultErrorMessage(r) : PQerrorMessage(pg),
              st ? st : "");
    return DB_FAILED;
}

int ledger_copy_send(db_conn *db, const char *sql, ledger_copy *c)
{
    PGconn *pg = db_pgconn(db);
    PGresult *r;
    int rc = DB_OK;

    if (c->rows == 0)
        return DB_OK;
    if (c->oom)
        return DB_FAILED;
    put_u16(c, UINT16_MAX); /* trailer: -1 */
    r = db_exec_dynamic(db, sql, 0, NULL);
    if (!r)
        return db_last_status(db);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        PQclear(r);
        return DB_FAILED;
    }
    PQclear(r);
    if (c->oom || PQputCopyData(pg, (const char *)c->buf.data, (int)c->buf.len) != 1)
        rc = DB_UNAVAILABLE;
    if (PQputCopyEnd(pg, rc == DB_OK ? NULL : "tallyd: COPY aborted") != 1)
        rc = DB_UNAVAILABLE;
    while ((r = PQgetResult(pg))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == DB_OK)
            rc = copy_classify(pg, r);
        PQclear(r);
    }
    return rc;
}

/* Read one pipelined statement's results (until NULL), keeping its last good
 * result in *keep when keep is not NULL; the first failure's status goes to
 * *rc when *rc is still DB_OK. */
static void pipe_read_one(PGconn *pg, int *rc, PGresult **keep)
{
    PGresult *r;

    while ((r = PQgetResult(pg))) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_FATAL_ERROR && *rc == DB_OK)
            *rc = copy_classify(pg, r);
        else if (st == PGRES_PIPELINE_ABORTED && *rc == DB_OK)
            *rc = DB_FAILED;
        if (keep && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
            PQclear(*keep);
            *keep = r;
        } else {
            PQclear(r);
        }
    }
}

int ledger_pipe_query(db_conn *db, const ledger_stmt *st, size_t n, PGresult **res)
{
    PGconn *pg = db_pgconn(db);
    PGresult *r;
    size_t sent = 0;
    int rc = DB_OK;

    if (res)
        memset(res, 0, n * sizeof *res);
    if (PQenterPipelineMode(pg) != 1)
        return copy_classify(pg, NULL);
    for (; sent < n; sent++)
        if (PQsendQueryParams(pg, st[sent].sql, st[sent].param ? 1 : 0, NULL,
                              st[sent].param ? &st[sent].param : NULL, NULL, NULL, 0) != 1) {
            rc = copy_classify(pg, NULL);
            break;
        }
    if (PQpipelineSync(pg) != 1 && rc == DB_OK)
        rc = copy_classify(pg, NULL);
    for (size_t i = 0; i < sent && PQstatus(pg) == CONNECTION_OK; i++)
        pipe_read_one(pg, &rc, res ? &res[i] : NULL);
    while ((r = PQgetResult(pg))) { /* the sync */
        ExecStatusType s = PQresultStatus(r);
        PQclear(r);
        if (s == PGRES_PIPELINE_SYNC)
            break;
    }
    if (PQexitPipelineMode(pg) != 1 && rc == DB_OK)
        rc = copy_classify(pg, NULL);
    if (PQstatus(pg) != CONNECTION_OK)
        rc = DB_UNAVAILABLE;
    for (size_t i = 0; rc != DB_OK && res && i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    return rc;
}

int ledger_pipe_run(db_conn *db, const ledger_stmt *st, size_t n)
{
    return ledger_pipe_query(db, st, n, NULL);
}
