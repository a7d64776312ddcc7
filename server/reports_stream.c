/*
 * reports_stream.c - cursor -> chunks -> chunked HTTP reply (see reports_stream.h).
 *
 * Two sides share one rstream. The database thread (stream_work) owns the
 * cursor and fills buffers; it hands a full buffer over by setting `ready`
 * under the mutex and activating the `wake` event, then waits until the loop
 * took it (or the client is gone, or nothing moved for STALL_SECONDS). The
 * loop (pump) takes `ready` only when no chunk is on the socket, sends it, and
 * when the job has finished and nothing is left, ends the reply and frees the
 * rstream. Only the loop frees; the database thread never touches the rstream
 * after stream_work returns (the pool then runs stream_done on the loop).
 *
 * A COPY report (copy_sql) is read without blocking (PQgetCopyData async, a
 * 100 ms poll on the socket between messages), so a client gone or a server
 * stopping is noticed within 100 ms even while PostgreSQL is still computing;
 * the COPY is then cancelled (PQcancel) and drained.
 */
#include "reports_stream.h"
#include "db.h"
#include "log.h"
#include "report_fmt.h"
#include "reports_copy.h"
#include "server.h"
#include "timefmt.h"

#include <errno.h>
#include <endian.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FETCH_ROWS 1000
#define CHUNK_BYTES (128 * 1024)
#define STALL_SECONDS 30
#define STREAM_STOPPED 1 /* work status: the client went away or stopped reading */
#define POLL_MS 100      /* how often a waiting database thread looks for a stop */

static int stopping; /* the server is stopping (atomic): every report ends */

/* Every report not yet freed, so a shutdown can wake their loops. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rstream *live;

static int is_stopping(void)
{
    return __atomic_load_n(&stopping, __ATOMIC_ACQUIRE);
}

static const char sql_begin[] = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
/* Reports are long reads: no statement timeout of the pool's size; no JIT, whose
 * compilation (hundreds of ms) would delay the first row of every report. */
static const char sql_timeout[] = "SET LOCAL statement_timeout = '10min'";
static const char sql_nojit[] = "SET LOCAL jit = off";
static const char sql_work_mem[] = "SET LOCAL work_mem = '64MB'"; /* hash aggregates in memory */
static const char sql_recovery[] = "SELECT pg_is_in_recovery()";
static const char sql_fetch[] = "FETCH 1000 FROM rpt";
/* A copy_sql's parameters: settings local to the report's transaction (NULL -> ''). */
static const char sql_params[] = "SELECT set_config('tally.report_1', coalesce($1, ''), true), "
                                 "set_config('tally.report_2', coalesce($2, ''), true), "
                                 "set_config('tally.report_3', coalesce($3, ''), true), "
                                 "set_config('tally.report_4', coalesce($4, ''), true), "
                                 "set_config('tally.report_5', coalesce($5, ''), true), "
                                 "set_config('tally.report_6', coalesce($6, ''), true), "
                                 "set_config('tally.report_7', coalesce($7, ''), true), "
                                 "set_config('tally.report_8', coalesce($8, ''), true)";

typedef struct rstream {
    http_ctx *c;
    report_spec spec;
    char *params[REPORT_MAX_PARAMS];
    struct event *wake;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct evbuffer *ready; /* handed to the loop, not yet taken (mu) */
    int gone;               /* the client went away (mu) */
    int handed;             /* a chunk was handed over: the work must not be re-run */
    int replica;            /* the snapshot's pg_is_in_recovery(), set before any hand-off */
    /* database thread only */
    void *acc;
    long long rows;
    /* loop only */
    int started, in_flight, job_done, job_status;
    struct rstream *prev, *next; /* the live list (live_mu) */
} rstream;

/* ---- formatting (database thread) ------------------------------------------------- */

typedef struct line {
    struct evbuffer *out;
    size_t len;
    char buf[8192];
} line;

static void line_flush(line *l)
{
    if (l->len)
        evbuffer_add(l->out, l->buf, l->len);
    l->len = 0;
}

static void line_put(line *l, const char *s, size_t n)
{
    if (l->len + n > sizeof l->buf) {
        line_flush(l);
        if (n > sizeof l->buf) {
            evbuffer_add(l->out, s, n);
            return;
        }
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static int parse_i64(const char *v, int64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoll(v, &end, 10);
    return errno || end == v || *end ? -1 : 0;
}

/* A number cell as text into buf; *str = 1 when JSON needs it quoted. -1 on bad data. */
static int number_text(report_col_kind k, int64_t x, char *buf, size_t cap, int *str)
{
    *str = 1;
    switch (k) {
    case RCOL_INT:
        *str = 0;
        return report_fmt_decimal(x, 0, buf, cap);
    case RCOL_MONEY:
        return report_fmt_decimal(x, 6, buf, cap);
    case RCOL_MCU:
        return report_fmt_decimal(x, 3, buf, cap);
    case RCOL_HOURS:
        return report_fmt_hours(x, buf, cap);
    case RCOL_TIME_MS:
        if (report_fmt_time_ms(x, buf, cap) >= 0)
            return (int)strlen(buf);
        timefmt_format(x, buf, cap); /* beyond year 9999 */
        return (int)strlen(buf);
    default:
        return -1;
    }
}

/* A text cell, CSV-quoted or as a JSON string. */
static int put_text(line *l, report_format f, const char *v, size_t len)
{
    char small[512];
    size_t cap = 2 * len + 8;
    char *big, *buf;
    int n;

    if (f == REPORT_CSV && !report_csv_needs_quotes(v, len)) {
        line_put(l, v, len); /* the common case: the field as is, one copy */
        return 0;
    }
    big = cap > sizeof small ? malloc(cap) : NULL;
    buf = big ? big : small;
    if (cap > sizeof small && !big)
        return -1;
    n = f == REPORT_CSV ? report_csv_field(v, len, buf, big ? cap : sizeof small)
                        : report_json_string(v, len, buf, big ? cap : sizeof small);
    if (n >= 0)
        line_put(l, buf, (size_t)n);
    free(big);
    return n < 0 ? -1 : 0;
}

static void put_null(line *l, report_format f)
{
    if (f == REPORT_JSON)
        line_put(l, "null", 4);
}

static void put_bool(line *l, int v)
{
    line_put(l, v ? "true" : "false", v ? 4 : 5);
}

static int put_number(line *l, report_format f, report_col_kind k, int64_t x)
{
    char buf[64];
    int str, n;

    if ((n = number_text(k, x, buf, sizeof buf, &str)) < 0 || (size_t)n >= sizeof buf)
        return -1;
    if (f == REPORT_JSON && str)
        line_put(l, "\"", 1);
    line_put(l, buf, (size_t)n);
    if (f == REPORT_JSON && str)
        line_put(l, "\"", 1);
    return 0;
}

/* A cell from a cursor row (text). */
static int put_cell(line *l, const report_spec *sp, const report_col *col, PGresult *r, int i,
                    int j)
{
    const char *v = PQgetvalue(r, i, j);
    int64_t x = 0;

    if (PQgetisnull(r, i, j)) {
        put_null(l, sp->format);
        return 0;
    }
    if (col->kind == RCOL_TEXT)
        return put_text(l, sp->format, v, (size_t)PQgetlength(r, i, j));
    if (col->kind == RCOL_BOOL) {
        put_bool(l, v[0] == 't');
        return 0;
    }
    if (parse_i64(v, &x) != 0)
        return -1;
    return put_number(l, sp->format, col->kind, x);
}

/* A big-endian binary integer of 2, 4 or 8 bytes (int2, int4, int8). */
static int be_int(const unsigned char *v, int32_t len, int64_t *out)
{
    uint64_t u = 0, sign;

    if (len == 8) {
        memcpy(&u, v, 8);
        *out = (int64_t)be64toh(u);
        return 0;
    }
    if (len != 2 && len != 4)
        return -1;
    for (int32_t i = 0; i < len; i++)
        u = u << 8 | v[i];
    sign = (uint64_t)1 << (len * 8 - 1);
    *out = (int64_t)((u ^ sign) - sign);
    return 0;
}

/* A cell from a binary COPY field: len bytes at v, len < 0 for NULL. */
static int put_binary_cell(line *l, const report_spec *sp, const report_col *col,
                           const unsigned char *v, int32_t len)
{
    int64_t x = 0;

    if (len < 0) {
        put_null(l, sp->format);
        return 0;
    }
    if (col->kind == RCOL_TEXT)
        return put_text(l, sp->format, (const char *)v, (size_t)len);
    if (col->kind == RCOL_BOOL) {
        if (len != 1)
            return -1;
        put_bool(l, v[0] != 0);
        return 0;
    }
    if (be_int(v, len, &x) != 0)
        return -1;
    return put_number(l, sp->format, col->kind, x);
}

/* Before column j of a row: the row's opening, the separator, the JSON key. */
static void put_col_start(rstream *s, line *l, size_t j)
{
    const report_spec *sp = &s->spec;

    if (sp->format == REPORT_CSV) {
        if (j)
            line_put(l, ",", 1);
        return;
    }
    if (!j)
        line_put(l, s->rows ? ",{" : "{", s->rows ? 2 : 1);
    line_put(l, j ? ",\"" : "\"", j ? 2 : 1);
    line_put(l, sp->cols[j].name, strlen(sp->cols[j].name));
    line_put(l, "\":", 2);
}

static void put_row_end(rstream *s, line *l)
{
    int json = s->spec.format == REPORT_JSON;

    line_put(l, json ? "}" : "\r\n", json ? 1 : 2);
    s->rows++;
}

static int write_row(rstream *s, line *l, PGresult *r, int i)
{
    const report_spec *sp = &s->spec;

    for (size_t j = 0; j < sp->ncols; j++) {
        put_col_start(s, l, j);
        if (put_cell(l, sp, &sp->cols[j], r, i, (int)j) != 0)
            return -1;
    }
    put_row_end(s, l);
    if (sp->acc && sp->acc->row(s->acc, r, i) != 0)
        return -1;
    return 0;
}

/* Fields of obj (a JSON object) without its braces, after a comma when non-empty. */
static int put_fields(struct evbuffer *out, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    size_t n = text ? strlen(text) : 0;

    if (!text)
        return -1;
    if (n > 2) {
        evbuffer_add(out, ",", 1);
        evbuffer_add(out, text + 1, n - 2);
    }
    free(text);
    return 0;
}

static int write_head(rstream *s, struct evbuffer *out)
{
    const report_spec *sp = &s->spec;

    if (sp->format == REPORT_CSV) {
        for (size_t j = 0; j < sp->ncols; j++)
            evbuffer_add_printf(out, "%s%s", j ? "," : "", sp->cols[j].name);
        evbuffer_add(out, "\r\n", 2);
        return 0;
    }
    evbuffer_add_printf(out, "{\"report\":\"%s\",\"served_by_replica\":%s", sp->name,
                        s->replica ? "true" : "false");
    if (sp->meta && put_fields(out, sp->meta) != 0)
        return -1;
    evbuffer_add(out, ",\"rows\":[", 9);
    return 0;
}

static int write_tail(rstream *s, struct evbuffer *out)
{
    json_t *extra;
    int rc = 0;

    if (s->spec.format == REPORT_CSV)
        return 0;
    evbuffer_add_printf(out, "],\"row_count\":%lld", s->rows);
    if (s->spec.acc) {
        extra = s->spec.acc->finish(s->acc);
        rc = put_fields(out, extra);
        json_decref(extra);
    }
    evbuffer_add(out, "}\n", 2);
    return rc;
}

/* ---- the database thread ---------------------------------------------------------- */

/* 1 when the report should stop: the client went away or the server is stopping. */
static int should_stop(rstream *s)
{
    int gone;

    if (is_stopping())
        return 1;
    pthread_mutex_lock(&s->mu);
    gone = s->gone;
    pthread_mutex_unlock(&s->mu);
    return gone;
}

/* Hand buf (taken) to the loop. 0, or -1 when the client is gone or stopped
 * reading (nothing taken for STALL_SECONDS), or the server is stopping. */
static int hand_off(rstream *s, struct evbuffer *buf)
{
    struct timespec slice;

    pthread_mutex_lock(&s->mu);
    for (int waited = 0;
         s->ready && !s->gone && !is_stopping() && waited < STALL_SECONDS * 1000 / POLL_MS;
         waited++) {
        clock_gettime(CLOCK_REALTIME, &slice);
        slice.tv_nsec += POLL_MS * 1000000L;
        slice.tv_sec += slice.tv_nsec / 1000000000L;
        slice.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &slice);
    }
    if (s->ready || s->gone || is_stopping()) {
        pthread_mutex_unlock(&s->mu);
        evbuffer_free(buf);
        return -1;
    }
    s->ready = buf;
    s->handed = 1;
    pthread_mutex_unlock(&s->mu);
    event_active(s->wake, 0, 0);
    return 0;
}

/* Hand the buffer over once it holds a chunk's worth: DB_OK, STREAM_STOPPED or DB_FAILED. */
static int maybe_hand_off(rstream *s, struct evbuffer **bufp)
{
    struct evbuffer *full = *bufp;

    if (evbuffer_get_length(full) < CHUNK_BYTES)
        return DB_OK;
    *bufp = evbuffer_new();
    if (hand_off(s, full) != 0)
        return STREAM_STOPPED;
    return *bufp ? DB_OK : DB_FAILED;
}

static int fetch_all(db_conn *db, rstream *s, struct evbuffer **bufp)
{
    line *l = malloc(sizeof *l);
    int rc = DB_OK;

    if (!l)
        return DB_FAILED;
    for (int n = FETCH_ROWS; n == FETCH_ROWS && rc == DB_OK;) {
        PGresult *r;
        if (is_stopping()) {
            rc = STREAM_STOPPED;
            break;
        }
        if (!(r = db_exec(db, sql_fetch, 0, NULL))) {
            rc = db_last_status(db);
            break;
        }
        n = PQntuples(r);
        l->out = *bufp;
        l->len = 0;
        for (int i = 0; i < n && rc == DB_OK; i++)
            if (write_row(s, l, r, i) != 0)
                rc = DB_FAILED;
        line_flush(l);
        PQclear(r);
        if (rc == DB_OK)
            rc = maybe_hand_off(s, bufp);
    }
    free(l);
    return rc;
}

/* A COPY report's rows, formatted into *bufp and handed over a chunk at a time. */
typedef struct copy_ctx {
    rstream *s;
    line *l;
    struct evbuffer **bufp;
} copy_ctx;

static int copy_row(void *arg, int n, const unsigned char *const *vals, const int32_t *lens)
{
    copy_ctx *x = arg;
    const report_spec *sp = &x->s->spec;

    if ((size_t)n != sp->ncols)
        return DB_FAILED;
    for (size_t j = 0; j < sp->ncols; j++) {
        put_col_start(x->s, x->l, j);
        if (put_binary_cell(x->l, sp, &sp->cols[j], vals[j], lens[j]) != 0)
            return DB_FAILED;
    }
    put_row_end(x->s, x->l);
    return 0;
}

static int copy_batch(void *arg)
{
    copy_ctx *x = arg;
    int st;

    if (evbuffer_get_length(*x->bufp) + x->l->len < CHUNK_BYTES)
        return 0;
    line_flush(x->l);
    st = maybe_hand_off(x->s, x->bufp);
    x->l->out = *x->bufp;
    return st;
}

static int copy_stop(void *arg)
{
    copy_ctx *x = arg;

    return should_stop(x->s) ? STREAM_STOPPED : 0;
}

static int copy_all(db_conn *db, rstream *s, struct evbuffer **bufp)
{
    static const report_copy_ops ops = {copy_row, copy_batch, copy_stop};
    line *l = malloc(sizeof *l);
    copy_ctx x = {s, l, bufp};
    int st;

    if (!l)
        return DB_FAILED;
    l->out = *bufp;
    l->len = 0;
    st = reports_copy_run(db_pgconn(db), s->spec.copy_sql, &ops, &x);
    if (st == DB_OK)
        line_flush(l);
    free(l);
    return st;
}

/* The report's transaction: one read-only snapshot, its settings, where it runs. */
static int open_tx(db_conn *db, rstream *s)
{
    PGresult *r;
    int st;

    if ((st = db_command(db, sql_begin, 0, NULL)) != DB_OK ||
        (st = db_command(db, sql_timeout, 0, NULL)) != DB_OK ||
        (st = db_command(db, sql_nojit, 0, NULL)) != DB_OK ||
        (st = db_command(db, sql_work_mem, 0, NULL)) != DB_OK)
        return st;
    if (!(r = db_exec(db, sql_recovery, 0, NULL)))
        return db_last_status(db);
    s->replica = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return s->spec.setup_sql ? db_command(db, s->spec.setup_sql, 0, NULL) : DB_OK;
}

static int open_cursor(db_conn *db, rstream *s)
{
    PGresult *r;
    int st;

    if ((st = open_tx(db, s)) != DB_OK)
        return st;
    if (!(r = db_exec(db, s->spec.declare_sql, s->spec.nparams, (const char *const *)s->params)))
        return db_last_status(db);
    PQclear(r);
    return DB_OK;
}

/* A COPY report: the transaction, then its parameters as transaction-local settings. */
static int open_copy(db_conn *db, rstream *s)
{
    const char *p[REPORT_MAX_PARAMS] = {0};
    PGresult *r;
    int st;

    if ((st = open_tx(db, s)) != DB_OK)
        return st;
    for (int i = 0; i < s->spec.nparams && i < REPORT_MAX_PARAMS; i++)
        p[i] = s->params[i];
    if (!(r = db_exec(db, sql_params, REPORT_MAX_PARAMS, p)))
        return db_last_status(db);
    PQclear(r);
    return DB_OK;
}

static int stream_work(db_conn *db, void *arg)
{
    rstream *s = arg;
    struct evbuffer *buf = NULL;
    int st;

    if (s->handed)
        return DB_FAILED; /* never re-run a report whose start was sent */
    if (is_stopping())
        return STREAM_STOPPED;
    s->rows = 0;
    if ((st = s->spec.copy_sql ? open_copy(db, s) : open_cursor(db, s)) != DB_OK)
        goto out;
    if (s->spec.acc && !(s->acc = s->spec.acc->start())) {
        st = DB_FAILED;
        goto out;
    }
    if (!(buf = evbuffer_new()) || write_head(s, buf) != 0) {
        st = DB_FAILED;
        goto out;
    }
    st = s->spec.copy_sql ? copy_all(db, s, &buf) : fetch_all(db, s, &buf);
    if (st != DB_OK)
        goto out;
    if (write_tail(s, buf) != 0) {
        st = DB_FAILED;
        goto out;
    }
    st = hand_off(s, buf) == 0 ? DB_OK : STREAM_STOPPED;
    buf = NULL;
out:
    if (buf)
        evbuffer_free(buf);
    if (s->acc)
        s->spec.acc->free(s->acc);
    s->acc = NULL;
    if (st < 0 && s->handed)
        st = DB_FAILED; /* bytes are out: no retry */
    if (st < 0)
        log_warn("reports", "report %s stopped: %s", s->spec.name, db_last_message(db));
    return st; /* the transaction is read-only: the pool's rollback ends it */
}

/* ---- the loop --------------------------------------------------------------------- */

void reports_stream_shutdown(void)
{
    __atomic_store_n(&stopping, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&live_mu);
    for (rstream *s = live; s; s = s->next)
        if (s->wake)
            event_active(s->wake, 0, 0); /* its loop ends a finished report's reply now */
    pthread_mutex_unlock(&live_mu);
}

static void live_add(rstream *s)
{
    pthread_mutex_lock(&live_mu);
    s->next = live;
    if (live)
        live->prev = s;
    live = s;
    pthread_mutex_unlock(&live_mu);
}

static void live_remove(rstream *s)
{
    pthread_mutex_lock(&live_mu);
    if (s->prev)
        s->prev->next = s->next;
    else if (live == s)
        live = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&live_mu);
}

static void rstream_free(rstream *s)
{
    live_remove(s);
    if (s->wake)
        event_free(s->wake);
    if (s->ready)
        evbuffer_free(s->ready);
    for (int i = 0; i < REPORT_MAX_PARAMS; i++)
        free(s->params[i]);
    json_decref(s->spec.meta);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static void mark_gone(rstream *s)
{
    pthread_mutex_lock(&s->mu);
    s->gone = 1;
    if (s->ready)
        evbuffer_free(s->ready);
    s->ready = NULL;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    s->in_flight = 0;
}

static void pump(rstream *s);

static void on_sent(void *arg)
{
    rstream *s = arg;

    s->in_flight = 0;
    pump(s);
}

static void on_gone(void *arg)
{
    rstream *s = arg;

    mark_gone(s);
    pump(s);
}

static int start_reply(rstream *s)
{
    char disp[96];

    http_set_header(s->c, "X-Tally-Replica", s->replica ? "true" : "false");
    if (s->spec.format == REPORT_CSV) {
        snprintf(disp, sizeof disp, "attachment; filename=\"%s-report.csv\"", s->spec.name);
        http_set_header(s->c, "Content-Disposition", disp);
    }
    s->started = 1;
    return http_stream_start(s->c, 200,
                             s->spec.format == REPORT_CSV
                                 ? "text/csv; charset=utf-8; header=present"
                                 : "application/json",
                             on_gone, s);
}

static void send_chunk(rstream *s, struct evbuffer *buf)
{
    if (s->started && evbuffer_get_length(buf) == 0) { /* e.g. a CSV's empty tail */
        evbuffer_free(buf);
        pump(s);
        return;
    }
    if ((!s->started && start_reply(s) != 0) || http_stream_chunk(s->c, buf, on_sent, s) != 0) {
        evbuffer_free(buf);
        mark_gone(s);
        pump(s);
        return;
    }
    evbuffer_free(buf);
    s->in_flight = 1;
}

static void fail_reply(rstream *s)
{
    if (s->job_status == DB_FAILED)
        http_reply_problem(s->c, PROB_INTERNAL, "the report query failed unexpectedly", NULL);
    else
        http_reply_problem(s->c, PROB_DB_UNAVAILABLE,
                           "the reports database is unreachable or overloaded; retry shortly",
                           NULL);
    rstream_free(s);
}

/*
 * Move the next buffer to the socket, or end the reply when the job is done.
 * When the server is stopping, a finished job's reply ends at once, cut off,
 * even with a chunk still on its way to a slow client.
 */
static void pump(rstream *s)
{
    int cut = s->job_done && is_stopping();
    struct evbuffer *buf;

    if (s->in_flight && !cut)
        return;
    pthread_mutex_lock(&s->mu);
    buf = s->gone || cut ? NULL : s->ready;
    if (buf) {
        s->ready = NULL;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (buf) {
        send_chunk(s, buf);
        return;
    }
    if (!s->job_done)
        return;
    if (!s->started) {
        fail_reply(s);
        return;
    }
    http_stream_end(s->c, s->job_status == DB_OK && !s->gone && !s->in_flight && !s->ready);
    rstream_free(s);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void stream_done(int status, void *arg)
{
    rstream *s = arg;

    s->job_done = 1;
    s->job_status = status;
    pump(s);
}

void reports_stream(http_ctx *c, report_spec *spec)
{
    rstream *s = calloc(1, sizeof *s);

    if (!s) {
        json_decref(spec->meta);
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    s->c = c;
    s->spec = *spec;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    for (int i = 0; i < spec->nparams && i < REPORT_MAX_PARAMS; i++)
        if (spec->params[i] && !(s->params[i] = strdup(spec->params[i])))
            goto oom;
    if (!(s->wake = event_new(http_event_base(c), -1, 0, on_wake, s)))
        goto oom;
    live_add(s);
    if (db_pool_submit(http_server(c)->reports, http_event_base(c), stream_work, stream_done, s) !=
        0)
        goto oom;
    return;
oom:
    rstream_free(s);
    http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
}
