/*
 * quote_writer.c - the group insert of signed quotes (see quote_writer.h).
 *
 * Rows travel to PostgreSQL as ten array parameters of one prepared statement
 * (INSERT ... SELECT FROM unnest(...)), so a batch of any size is one round
 * trip and one plan. At most one writer job runs at a time (qw_scheduled):
 * while it inserts one batch the next one gathers, which keeps batches large
 * and the referenced rows (tenant, policy version) locked by one transaction
 * at a time. Invariant: rows leave the queue only inside a job that then
 * completes every one of them.
 */
#include "quote_writer.h"

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

/* ---- array parameters ----------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} abuf;

static void ab_put(abuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Append one quoted array element (", \ escaped), preceded by a comma unless first. */
static void ab_elem(abuf *b, const char *s, int first)
{
    const char *run = s;

    ab_put(b, first ? "\"" : ",\"", first ? 1 : 2);
    for (; *s; s++)
        if (*s == '"' || *s == '\\') {
            ab_put(b, run, (size_t)(s - run));
            ab_put(b, "\\", 1);
            run = s;
        }
    ab_put(b, run, (size_t)(s - run));
    ab_put(b, "\"", 1);
}

/* ---- the statement ---------------------------------------------------------------- */

static const char sql_insert[] =
    "WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "INSERT INTO quotes (id, tenant_id, policy_id, policy_version, currency, total_micros, "
    "document, kid, signature, expires_at) SELECT u.* FROM cfg, unnest($1::text[], $2::text[], "
    "$3::text[], $4::integer[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], "
    "$10::timestamptz[]) AS u";

/* One statement for rows[0..n); DB_OK or the db_status. */
static int insert_once(db_conn *db, qw_row **rows, int n)
{
    abuf a[10];
    const char *p[10];
    int rc = DB_FAILED;

    memset(a, 0, sizeof a);
    for (int k = 0; k < 10; k++)
        ab_put(&a[k], "{", 1);
    for (int i = 0; i < n; i++) {
        const qw_row *r = rows[i];
        char ver[16], total[24];
        snprintf(ver, sizeof ver, "%d", r->policy_version);
        snprintf(total, sizeof total, "%lld", (long long)r->total_micros);
        ab_elem(&a[0], r->id, i == 0);
        ab_elem(&a[1], r->tenant, i == 0);
        ab_elem(&a[2], r->policy_id, i == 0);
        ab_elem(&a[3], ver, i == 0);
        ab_elem(&a[4], r->currency, i == 0);
        ab_elem(&a[5], total, i == 0);
        ab_elem(&a[6], r->document, i == 0);
        ab_elem(&a[7], r->kid, i == 0);
        ab_elem(&a[8], r->signature, i == 0);
        ab_elem(&a[9], r->expires_at, i == 0);
    }
    for (int k = 0; k < 10; k++) {
        ab_put(&a[k], "}", 1);
        if (a[k].failed)
            goto out;
        p[k] = a[k].p;
    }
    rc = db_command(db, sql_insert, 10, p);
out:
    for (int k = 0; k < 10; k++)
        free(a[k].p);
    return rc;
}

int qw_insert(db_conn *db, qw_row **rows, int n)
{
    int rc = insert_once(db, rows, n);

    if (rc == DB_OK) {
        for (int i = 0; i < n; i++)
            rows[i]->status = DB_OK;
        return DB_OK;
    }
    if (rc != DB_FAILED)
        return rc; /* transient: the whole batch fails or is re-run */
    /* One row broke the statement (an unknown tenant): find it by inserting alone. */
    for (int i = 0; i < n; i++) {
        int r1 = n == 1 ? rc : insert_once(db, &rows[i], 1);
        if (r1 == DB_FAILED && !strcmp(db_last_sqlstate(db), "23503"))
            r1 = QW_NO_TENANT;
        else if (r1 < 0 && r1 != DB_FAILED)
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
