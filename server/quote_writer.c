/*
 * quote_writer.c - the group insert of signed quotes (see quote_writer.h).
 *
 * A batch travels to PostgreSQL as one binary COPY (server/ledger_copy.c: no
 * SQL, array or text parsing per row; the server copies each field's bytes),
 * committed on its own with the server's default synchronous_commit, so every
 * row is on disk before its reply (one WAL flush per batch: group commit); a
 * lone row is one plain INSERT. At most one writer job runs at a time (qw_scheduled):
 * while it inserts one batch the next one gathers, which keeps batches large
 * and the referenced rows (tenant, policy version) locked by one transaction
 * at a time. Invariant: rows leave the queue only inside a job that then
 * completes every one of them.
 */
#include "quote_writer.h"
#include "ledger_copy.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QW_PENDING 2 /* row->status before its outcome is known */

/* The process's queue (one writer per process, like the pricing caches). */
static pthread_mutex_t qw_mu = PTHREAD_MUTEX_INITIALIZER;
static qw_row *qw_head, *qw_tail;
static int qw_scheduled; /* a job is queued that will take the rows */

struct qw_job {
    db_pool *pool;
    struct event_base *base; /* where the job's own completion runs */
    qw_row *rows[QW_BATCH_MAX];
    int n; /* the batch in flight */
};

#define QW_SLICE_MS 20 /* then yield the database thread (see qw_work) */

/* ---- the statements -------------------------------------------------------------- */

static const char sql_copy[] =
    "COPY quotes (id, tenant_id, policy_id, policy_version, currency, total_micros, document, "
    "kid, signature, expires_at) FROM STDIN (FORMAT binary)";

static const char sql_insert_one[] =
    "INSERT INTO quotes (id, tenant_id, policy_id, policy_version, currency, total_micros, "
    "document, kid, signature, expires_at) VALUES ($1, $2, $3, $4::integer, $5, $6::bigint, $7, "
    "$8, $9, $10::timestamptz)";

/* PostgreSQL's binary timestamptz: microseconds since 2000-01-01 00:00:00 UTC. */
#define QW_PG_EPOCH_MS 946684800000LL

/* rows[0..n) as one binary COPY (one implicit transaction); DB_OK or the db_status. */
static int copy_rows(db_conn *db, qw_row **rows, int n)
{
    ledger_copy c;
    int rc;

    ledger_copy_init(&c);
    for (int i = 0; i < n; i++) {
        const qw_row *r = rows[i];
        ledger_copy_row(&c, 10);
        ledger_copy_text(&c, r->id);
        ledger_copy_text(&c, r->tenant);
        ledger_copy_text(&c, r->policy_id);
        ledger_copy_i32(&c, r->policy_version);
        ledger_copy_text(&c, r->currency);
        ledger_copy_i64(&c, r->total_micros);
        ledger_copy_text(&c, r->document);
        ledger_copy_text(&c, r->kid);
        ledger_copy_text(&c, r->signature);
        ledger_copy_i64(&c, (r->expires_ms - QW_PG_EPOCH_MS) * 1000);
    }
    rc = ledger_copy_send(db, sql_copy, &c);
    ledger_copy_free(&c);
    return rc;
}

/* One row with a plain INSERT, so a failure has its SQLSTATE: DB_OK,
 * QW_NO_TENANT (foreign key), or the db_status. */
static int insert_one(db_conn *db, const qw_row *r)
{
    char ver[16], total[24];
    const char *p[10] = {r->id, r->tenant,   r->policy_id, ver,          r->currency,
                         total, r->document, r->kid,       r->signature, r->expires_at};
    int rc;

    snprintf(ver, sizeof ver, "%d", r->policy_version);
    snprintf(total, sizeof total, "%lld", (long long)r->total_micros);
    rc = db_command(db, sql_insert_one, 10, p);
    if (rc == DB_FAILED && !strcmp(db_last_sqlstate(db), "23503"))
        return QW_NO_TENANT;
    return rc;
}

int qw_insert(db_conn *db, qw_row **rows, int n)
{
    int rc = n == 1 ? insert_one(db, rows[0]) : copy_rows(db, rows, n);

    if (n == 1 && (rc == DB_OK || rc == QW_NO_TENANT || rc == DB_FAILED)) {
        rows[0]->status = rc;
        return DB_OK;
    }
    if (rc == DB_OK) {
        for (int i = 0; i < n; i++)
            rows[i]->status = DB_OK;
        return DB_OK;
    }
    if (rc != DB_FAILED)
        return rc; /* transient: the whole batch fails or is re-run */
    /* One row broke the COPY (an unknown tenant): find it by inserting one by one. */
    for (int i = 0; i < n; i++) {
        int r1 = insert_one(db, rows[i]);
        if (r1 < 0 && r1 != DB_FAILED)
            return r1;
        rows[i]->status = r1;
    }
    return DB_OK;
}

/* ---- the queue ------------------------------------------------------------------- */

/* Take up to max queued rows into out (locked by the caller). */
static int take_locked(qw_row **out, int max)
{
    int n = 0;

    while (qw_head && n < max) {
        out[n++] = qw_head;
        qw_head = qw_head->next;
    }
    if (!qw_head)
        qw_tail = NULL;
    return n;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Complete rows on their own loops; still-pending ones get status. */
static void complete_rows(qw_row **rows, int n, int status)
{
    for (int i = 0; i < n; i++) {
        if (rows[i]->status == QW_PENDING)
            rows[i]->status = status < 0 ? status : DB_FAILED;
        event_active(rows[i]->ev, 0, 0); /* the row may be freed from here on */
    }
}

static int qw_schedule(struct qw_job *j);

/*
 * The writer's database job: insert batch after batch until the queue is
 * empty (then clear the scheduled flag under the same lock), completing each
 * batch's rows as soon as it committed. After QW_SLICE_MS it yields the
 * database thread to other work by queueing a continuation of itself.
 */
static int qw_work(db_conn *db, void *arg)
{
    struct qw_job *j = arg;
    long long t0 = mono_ms();
    int rc;

    if (j->n > 0) { /* the pool re-runs a failed batch: rows stored meanwhile are done */
        int k = 0;
        for (int i = 0; i < j->n; i++)
            if (j->rows[i]->status == QW_PENDING)
                j->rows[k++] = j->rows[i];
            else
                complete_rows(&j->rows[i], 1, DB_OK);
        j->n = k;
    }
    for (;;) {
        if (j->n == 0) {
            pthread_mutex_lock(&qw_mu);
            j->n = take_locked(j->rows, QW_BATCH_MAX);
            if (j->n == 0)
                qw_scheduled = 0;
            pthread_mutex_unlock(&qw_mu);
            if (j->n == 0)
                return DB_OK;
        }
        if ((rc = qw_insert(db, j->rows, j->n)) != DB_OK)
            return rc; /* qw_done fails this batch and everything queued */
        complete_rows(j->rows, j->n, DB_OK);
        j->n = 0;
        if (mono_ms() - t0 >= QW_SLICE_MS && qw_schedule(j) == 0)
            return 1; /* the continuation owns the queue now */
    }
}

/* Back on the loop that submitted the job. */
static void qw_done(int status, void *arg)
{
    struct qw_job *j = arg;

    if (status < 0) { /* failed, or timed out in the pool's queue before it ran */
        complete_rows(j->rows, j->n, status);
        for (;;) {
            pthread_mutex_lock(&qw_mu);
            j->n = take_locked(j->rows, QW_BATCH_MAX);
            if (j->n == 0)
                qw_scheduled = 0;
            pthread_mutex_unlock(&qw_mu);
            if (j->n == 0)
                break;
            complete_rows(j->rows, j->n, status);
        }
    }
    free(j);
}

/* Queue a fresh job that takes over the queue. 0, or -1 (out of memory). */
static int qw_schedule(struct qw_job *from)
{
    struct qw_job *j = calloc(1, sizeof *j);

    if (!j)
        return -1;
    j->pool = from->pool;
    j->base = from->base;
    if (db_pool_submit(j->pool, j->base, qw_work, qw_done, j) != 0) {
        free(j);
        return -1;
    }
    return 0;
}

static void row_fire(evutil_socket_t fd, short what, void *arg)
{
    qw_row *row = arg;

    (void)fd;
    (void)what;
    event_free(row->ev);
    row->ev = NULL;
    row->done(row);
}

int qw_submit(db_pool *pool, struct event_base *base, qw_row *row)
{
    struct qw_job first = {.pool = pool, .base = base};
    int schedule;

    row->ev = event_new(base, -1, 0, row_fire, row);
    if (!row->ev)
        return -1;
    row->status = QW_PENDING;
    row->next = NULL;
    pthread_mutex_lock(&qw_mu);
    if (qw_tail)
        qw_tail->next = row;
    else
        qw_head = row;
    qw_tail = row;
    schedule = !qw_scheduled;
    qw_scheduled = 1;
    pthread_mutex_unlock(&qw_mu);
    if (schedule && qw_schedule(&first) != 0) {
        struct qw_job *j = calloc(1, sizeof *j);
        if (j) {
            qw_done(DB_FAILED, j); /* fail what is queued; the next row schedules anew */
        } else {
            pthread_mutex_lock(&qw_mu); /* unqueue our row and let the caller fail it */
            for (qw_row **pp = &qw_head; *pp; pp = &(*pp)->next)
                if (*pp == row) {
                    *pp = row->next;
                    break;
                }
            qw_tail = NULL;
            for (qw_row *r = qw_head; r; r = r->next)
                qw_tail = r;
            qw_scheduled = qw_head != NULL;
            pthread_mutex_unlock(&qw_mu);
            event_free(row->ev);
            row->ev = NULL;
            return -1;
        }
    }
    return 0;
}
