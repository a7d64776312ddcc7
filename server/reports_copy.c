/*
 * reports_copy.c - binary COPY rows for reports (see reports_copy.h).
 *
 * Invariant: every row handed to ops->row is whole and every field lies inside
 * it; a malformed stream fails the report (DB_FAILED), never reads past a
 * buffer. Whatever ends the COPY, the connection is left idle in its
 * transaction (results drained), so the pool can roll it back.
 */
#include "reports_copy.h"
#include "db.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100
#define HEADER_LEN 19 /* signature (11), flags (4), header extension length (4) */

static const unsigned char signature[11] = "PGCOPY\n\377\r\n";

typedef struct copy_in {
    unsigned char *buf; /* the bytes of a row cut between messages */
    size_t len, cap;
    int header_done, ended;
    const report_copy_ops *ops;
    void *arg;
} copy_in;

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int16_t get16(const unsigned char *p)
{
    return (int16_t)(uint16_t)(p[0] << 8 | p[1]);
}

/* The header at p: its length, 0 when incomplete, -1 when not a binary COPY. */
static long header_len(const unsigned char *p, size_t n)
{
    uint32_t ext;

    if (n < HEADER_LEN)
        return 0;
    if (memcmp(p, signature, sizeof signature) != 0)
        return -1;
    ext = get32(p + 15);
    if (ext > 1u << 20)
        return -1;
    return n < HEADER_LEN + ext ? 0 : (long)(HEADER_LEN + ext);
}

/* One row at p: its length, 0 when incomplete, -1 when malformed; rows go to ops. */
static long row_len(copy_in *in, const unsigned char *p, size_t n, int *st)
{
    const unsigned char *vals[REPORT_COPY_MAX_FIELDS];
    int32_t lens[REPORT_COPY_MAX_FIELDS];
    size_t off = 2;
    int16_t nf;

    if (n < 2)
        return 0;
    if ((nf = get16(p)) == -1) {
        in->ended = 1;
        return 2;
    }
    if (nf < 0 || nf > REPORT_COPY_MAX_FIELDS)
        return -1;
    for (int i = 0; i < nf; i++) {
        if (n - off < 4)
            return 0;
        lens[i] = (int32_t)get32(p + off);
        off += 4;
        vals[i] = p + off;
        if (lens[i] < -1)
            return -1;
        if (lens[i] > 0 && n - off < (size_t)lens[i])
            return 0;
        off += lens[i] > 0 ? (size_t)lens[i] : 0;
    }
    *st = in->ops->row(in->arg, nf, vals, lens);
    return (long)off;
}

/* Consume whole units (the header, rows, the trailer) from p: bytes used, or -1. */
static long consume(copy_in *in, const unsigned char *p, size_t n, int *st)
{
    size_t used = 0;

    while (used < n && !in->ended && *st == 0) {
        long k =
            in->header_done ? row_len(in, p + used, n - used, st) : header_len(p + used, n - used);
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        in->header_done = 1;
        used += (size_t)k;
    }
    return (long)used;
}

static int keep(copy_in *in, const unsigned char *p, size_t n)
{
    if (in->len + n > in->cap) {
        size_t cap = (in->len + n) * 2;
        unsigned char *b = realloc(in->buf, cap);
        if (!b)
            return -1;
        in->buf = b;
        in->cap = cap;
    }
    memcpy(in->buf + in->len, p, n);
    in->len += n;
    return 0;
}

/* One message of COPY data: 0, or the status to stop with. */
static int feed(copy_in *in, const unsigned char *p, size_t n)
{
    int st = 0;
    long used;

    if (in->len) { /* a row was cut: join it with this message */
        if (keep(in, p, n) != 0)
            return DB_FAILED;
        if ((used = consume(in, in->buf, in->len, &st)) < 0)
            return DB_FAILED;
        memmove(in->buf, in->buf + used, in->len - (size_t)used);
        in->len -= (size_t)used;
        return st;
    }
    if ((used = consume(in, p, n, &st)) < 0)
        return DB_FAILED;
    if (st == 0 && (size_t)used < n && keep(in, p + used, n - (size_t)used) != 0)
        return DB_FAILED;
    return st;
}

static int result_status(PGconn *pg, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(pg) == CONNECTION_BAD)
        return DB_UNAVAILABLE;
    if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
        return DB_RETRY; /* a serialization failure, or a standby's recovery conflict */
    return DB_FAILED;
}

static void drain_copy(PGconn *pg)
{
    char *data;
    int n;

    while ((n = PQgetCopyData(pg, &data, 0)) > 0)
        PQfreemem(data);
}

/* Every remaining result; DB_OK when none failed (failures logged unless quiet). */
static int finish(PGconn *pg, int quiet)
{
    int st = DB_OK;
    PGresult *r;

    while ((r = PQgetResult(pg))) {
        ExecStatusType t = PQresultStatus(r);
        if (t == PGRES_COPY_OUT) {
            drain_copy(pg);
        } else if (t != PGRES_COMMAND_OK && st == DB_OK) {
            st = result_status(pg, r);
            if (!quiet)
                log_warn("reports", "report COPY failed: %s", PQresultErrorMessage(r));
        }
        PQclear(r);
        if (PQstatus(pg) == CONNECTION_BAD)
            return DB_UNAVAILABLE;
    }
    return st;
}

/* Stop a running COPY (or the query before it): cancel, drain, collect results. */
static void abort_copy(PGconn *pg)
{
    char err[256];
    PGcancel *cn = PQgetCancel(pg);

    if (cn && !PQcancel(cn, err, sizeof err))
        log_warn("reports", "cannot cancel a report's COPY: %s", err);
    PQfreeCancel(cn);
    drain_copy(pg);
    (void)finish(pg, 1);
}

/* Wait up to POLL_MS for input: 0, the caller's stop status, or DB_UNAVAILABLE. */
static int wait_input(PGconn *pg, copy_in *in)
{
    struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
    int st = in->ops->stop(in->arg);

    if (st)
        return st;
    if (poll(&pfd, 1, POLL_MS) < 0 && errno != EINTR)
        return DB_UNAVAILABLE;
    return PQconsumeInput(pg) ? 0 : DB_UNAVAILABLE;
}

/* Send the COPY and wait (stoppable) until its rows start. */
static int copy_start(PGconn *pg, const char *sql, copy_in *in)
{
    PGresult *r;
    int st;

    if (!PQsendQuery(pg, sql)) {
        log_warn("reports", "cannot send a report's COPY: %s", PQerrorMessage(pg));
        return result_status(pg, NULL);
    }
    while (PQisBusy(pg))
        if ((st = wait_input(pg, in)) != 0) {
            abort_copy(pg);
            return st;
        }
    r = PQgetResult(pg);
    if (r && PQresultStatus(r) == PGRES_COPY_OUT) {
        PQclear(r);
        return DB_OK;
    }
    st = result_status(pg, r);
    log_warn("reports", "report COPY failed: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    PQclear(r);
    (void)finish(pg, 1);
    return st;
}

static int copy_rows(PGconn *pg, copy_in *in)
{
    int st;

    for (;;) {
        char *data = NULL;
        int n = PQgetCopyData(pg, &data, 1);
        if (n > 0) {
            st = feed(in, (const unsigned char *)data, (size_t)n);
            PQfreemem(data);
            if (st == 0)
                st = in->ops->batch(in->arg);
        } else if (n == 0) {
            st = wait_input(pg, in);
        } else {
            break; /* -1: the COPY is complete; -2: it failed (the result says why) */
        }
        if (st != 0) {
            abort_copy(pg);
            return st;
        }
    }
    if ((st = finish(pg, 0)) == DB_OK && (!in->ended || in->len)) {
        log_warn("reports", "a report's COPY ended without its trailer");
        st = DB_FAILED;
    }
    return st;
}

int reports_copy_run(PGconn *pg, const char *sql, const report_copy_ops *ops, void *arg)
{
    copy_in in = {.ops = ops, .arg = arg};
    int st = copy_start(pg, sql, &in);

    if (st == DB_OK)
        st = copy_rows(pg, &in);
    free(in.buf);
    return st;
}
