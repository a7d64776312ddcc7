/*
 * db.c - database threads, the job queue, and the statement helpers.
 * Invariant: a PGconn is only ever used by the one thread that owns it, and a
 * job's completion is delivered exactly once, on the loop it came from.
 */
#include "db.h"
#include "log.h"

#include <event2/event.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_MAX_PREPARED 256
#define DB_MAX_ATTEMPTS 6
#define DB_RECONNECT_BACKOFF_MS 200

enum conn_state { CONN_DOWN, CONN_IDLE, CONN_BUSY, CONN_BROKEN };

struct db_conn {
    PGconn *pg;
    enum conn_state state;
    const char *conninfo;
    int timeout_ms;
    long long last_attempt_ms;
    int ok_statements; /* statements that succeeded in the current run of a job */
    int nprepared;
    const char *prepared[DB_MAX_PREPARED];
    int last_status;
    char last_sqlstate[6];
    char last_message[256];
};

#define DB_PIPELINE_MAX 32
#define DB_QUERY_MAX_PARAMS 8

struct db_job {
    db_work_fn work; /* NULL for a single-statement read (see db_pool_submit_query) */
    db_done_fn done;
    void *arg;
    int status;
    long long queued_ms;
    struct event *ev;
    struct db_job *next;
    /* single-statement reads */
    const char *sql;
    int nparams;
    const char *params[DB_QUERY_MAX_PARAMS];
    char *param_buf;
    PGresult *result;
    db_query_done_fn qdone;
};

struct db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv, rcv;
    struct db_job *head, *tail;   /* general work */
    struct db_job *rhead, *rtail; /* single-statement reads, for the reader thread */
    int has_reader;               /* the last connection pipelines reads */
    int stopping;
    int size;
    int timeout_ms;
    char *conninfo;
    pthread_t *threads;
    db_conn *conns;
    unsigned long long jobs, failures, retries, reconnects;
    int queued;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_set_error(db_conn *c, int status, const char *sqlstate, const char *msg)
{
    size_t n;

    c->last_status = status;
    snprintf(c->last_sqlstate, sizeof c->last_sqlstate, "%s", sqlstate ? sqlstate : "");
    snprintf(c->last_message, sizeof c->last_message, "%s", msg ? msg : "");
    n = strlen(c->last_message);
    while (n > 0 && (c->last_message[n - 1] == '\n' || c->last_message[n - 1] == ' '))
        c->last_message[--n] = '\0';
}

/* Open the connection if needed. Returns 0, or -1 (state BROKEN, error recorded). */
static int conn_ensure(db_conn *c)
{
    static const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {c->conninfo, "3", "tallyd", NULL};
    char setting[64];

    if (c->pg && PQstatus(c->pg) == CONNECTION_OK && c->state != CONN_BROKEN)
        return 0;
    if (c->state == CONN_BROKEN && now_ms() - c->last_attempt_ms < DB_RECONNECT_BACKOFF_MS) {
        conn_set_error(c, DB_UNAVAILABLE, "08006", "database unavailable (reconnect backoff)");
        return -1;
    }
    if (c->pg)
        PQfinish(c->pg);
    c->nprepared = 0;
    c->last_attempt_ms = now_ms();
    c->pg = PQconnectdbParams(keys, vals, 1);
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        conn_set_error(c, DB_UNAVAILABLE, "08006", c->pg ? PQerrorMessage(c->pg) : "out of memory");
        if (c->state != CONN_BROKEN)
            log_warn("db", "cannot connect to the database: %s", c->last_message);
        c->state = CONN_BROKEN;
        return -1;
    }
    if (c->state == CONN_BROKEN)
        log_info("db", "database connection re-established");
    snprintf(setting, sizeof setting, "SET statement_timeout = %d", c->timeout_ms);
    PQclear(PQexec(c->pg, setting));
    c->state = CONN_IDLE;
    return 0;
}

/* Classify a failed result (or NULL) into a db_status and record it on c. */
static int conn_classify(db_conn *c, PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg);
    int status = DB_FAILED;

    if (PQstatus(c->pg) != CONNECTION_OK) {
        status = DB_UNAVAILABLE;
        if (c->state != CONN_BROKEN)
            log_warn("db", "database connection lost: %s", PQerrorMessage(c->pg));
        c->state = CONN_BROKEN;
    } else if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01"))) {
        status = DB_RETRY;
    } else if (state && (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3) ||
                         !strcmp(state, "57014") || !strcmp(state, "53300"))) {
        status = DB_UNAVAILABLE; /* connection errors, shutdown, timeout, too many clients */
        if (strncmp(state, "57014", 5) != 0)
            c->state = CONN_BROKEN;
    }
    conn_set_error(c, status, state ? state : "08006", msg);
    if (status == DB_FAILED && !(state && !strncmp(state, "23", 2)))
        log_error("db", "statement failed: %s (%s)", c->last_message, c->last_sqlstate);
    return status;
}

static int result_ok(PGresult *r)
{
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_COPY_OUT ||
           s == PGRES_COPY_IN;
}

static PGresult *conn_finish(db_conn *c, PGresult *r)
{
    if (result_ok(r)) {
        c->ok_statements++;
        c->last_status = DB_OK;
        return r;
    }
    conn_classify(c, r);
    PQclear(r);
    return NULL;
}

/* The prepared name of sql on c (preparing it now if needed); -1 when it cannot be. */
static int prepared_index(db_conn *c, const char *sql, int nparams)
{
    char name[16];
    PGresult *pr;

    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == sql)
            return i;
    if (c->nprepared >= DB_MAX_PREPARED)
        return -2;
    snprintf(name, sizeof name, "t%d", c->nprepared);
    pr = PQprepare(c->pg, name, sql, nparams, NULL);
    if (!result_ok(pr)) {
        conn_classify(c, pr);
        PQclear(pr);
        return -1;
    }
    PQclear(pr);
    c->prepared[c->nprepared] = sql;
    return c->nprepared++;
}

PGresult *db_exec(db_conn *c, const char *sql, int nparams, const char *const *params)
{
    int idx = prepared_index(c, sql, nparams);
    char name[16];

    if (idx == -2)
        return db_exec_dynamic(c, sql, nparams, params);
    if (idx < 0)
        return NULL;
    snprintf(name, sizeof name, "t%d", idx);
    return conn_finish(c, PQexecPrepared(c->pg, name, nparams, params, NULL, NULL, 0));
}

PGresult *db_exec_dynamic(db_conn *c, const char *sql, int nparams, const char *const *params)
{
    return conn_finish(c, PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0));
}

int db_command(db_conn *c, const char *sql, int nparams, const char *const *params)
{
    PGresult *r = db_exec(c, sql, nparams, params);

    if (!r)
        return c->last_status;
    PQclear(r);
    return DB_OK;
}

int db_begin(db_conn *c)
{
    return db_command(c, "BEGIN ISOLATION LEVEL READ COMMITTED", 0, NULL);
}

int db_commit(db_conn *c)
{
    return db_command(c, "COMMIT", 0, NULL);
}

void db_rollback(db_conn *c)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

int db_last_status(const db_conn *c)
{
    return c->last_status;
}

const char *db_last_sqlstate(const db_conn *c)
{
    return c->last_sqlstate;
}

const char *db_last_message(const db_conn *c)
{
    return c->last_message;
}

PGconn *db_pgconn(db_conn *c)
{
    return c->pg;
}

db_conn *db_connect(const char *conninfo, char *err, size_t errlen)
{
    db_conn *c = calloc(1, sizeof *c);

    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->conninfo = conninfo;
    c->timeout_ms = 0;
    if (conn_ensure(c) != 0) {
        snprintf(err, errlen, "cannot connect to the database: %s", c->last_message);
        db_close(c);
        return NULL;
    }
    PQclear(PQexec(c->pg, "SET statement_timeout = 0"));
    PQclear(PQexec(c->pg, "SET client_min_messages = warning"));
    return c;
}

void db_close(db_conn *c)
{
    if (!c)
        return;
    if (c->pg)
        PQfinish(c->pg);
    free(c);
}

/* Run one job on c: retries on serialization failures and on a connection found dead. */
static int job_run(db_pool *p, db_conn *c, struct db_job *j)
{
    int st = DB_UNAVAILABLE;

    for (int attempt = 0; attempt < DB_MAX_ATTEMPTS; attempt++) {
        int was_connected = c->pg && c->state == CONN_IDLE;
        if (conn_ensure(c) != 0)
            return DB_UNAVAILABLE;
        c->ok_statements = 0;
        c->last_status = DB_OK;
        __atomic_store_n(&c->state, CONN_BUSY, __ATOMIC_RELAXED);
        st = j->work(c, j->arg);
        db_rollback(c); /* a no-op unless the work left a transaction open */
        if (c->state == CONN_BUSY)
            __atomic_store_n(&c->state, CONN_IDLE, __ATOMIC_RELAXED);
        if (st == DB_RETRY) {
            struct timespec ts = {0,
                                  (long)(1000000L << attempt) + (long)randombytes_uniform(1000000)};
            __atomic_add_fetch(&p->retries, 1, __ATOMIC_RELAXED);
            nanosleep(&ts, NULL);
            continue;
        }
        /* The database restarted under an idle connection: nothing ran, try once more. */
        if (st == DB_UNAVAILABLE && was_connected && c->ok_statements == 0 && attempt == 0) {
            __atomic_add_fetch(&p->reconnects, 1, __ATOMIC_RELAXED);
            c->state = CONN_BROKEN;
            c->last_attempt_ms = 0;
            continue;
        }
        break;
    }
    return st;
}

/* Run one read alone (outside a pipeline); sets j->status and j->result. */
static void query_run_one(db_conn *c, struct db_job *j)
{
    j->result = db_exec(c, j->sql, j->nparams, j->params);
    j->status = j->result ? DB_OK : c->last_status;
}

/*
 * Run up to DB_PIPELINE_MAX single-statement reads in one round trip (libpq
 * pipeline mode). A read that fails makes the ones after it abort; those are
 * re-run one by one. A connection found dead before anything ran is reopened
 * and the whole batch re-run once (reads are safe to repeat).
 */
static void query_run_batch(db_pool *p, db_conn *c, struct db_job **jobs, int n)
{
    int idx[DB_PIPELINE_MAX];
    int sent = 0, got = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        int was_connected = c->pg && c->state == CONN_IDLE;
        if (conn_ensure(c) != 0)
            break;
        for (int i = 0; i < n; i++)
            idx[i] =
                c->state == CONN_BROKEN ? -1 : prepared_index(c, jobs[i]->sql, jobs[i]->nparams);
        if (c->state == CONN_BROKEN) {
            if (was_connected && attempt == 0) {
                __atomic_add_fetch(&p->reconnects, 1, __ATOMIC_RELAXED);
                c->last_attempt_ms = 0;
                continue;
            }
            break;
        }
        if (PQenterPipelineMode(c->pg) != 1)
            break;
        __atomic_store_n(&c->state, CONN_BUSY, __ATOMIC_RELAXED);
        for (sent = 0; sent < n; sent++) {
            char name[16];
            if (idx[sent] < 0)
                break; /* could not prepare: run it alone below */
            snprintf(name, sizeof name, "t%d", idx[sent]);
            if (!PQsendQueryPrepared(c->pg, name, jobs[sent]->nparams, jobs[sent]->params, NULL,
                                     NULL, 0))
                break;
        }
        PQpipelineSync(c->pg);
        for (got = 0; got < sent; got++) {
            PGresult *r = PQgetResult(c->pg), *end;
            if (!r)
                break;
            end = PQgetResult(c->pg); /* NULL closes each statement's results */
            if (end)
                PQclear(end);
            if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
                jobs[got]->result = r;
                jobs[got]->status = DB_OK;
            } else if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
                PQclear(r);
                jobs[got]->status = 1; /* re-run alone */
            } else {
                jobs[got]->status = conn_classify(c, r);
                PQclear(r);
            }
        }
        for (;;) { /* drain up to and including the sync */
            PGresult *r = PQgetResult(c->pg);
            int sync = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            PQclear(r);
            if (!r || sync)
                break;
        }
        PQexitPipelineMode(c->pg);
        if (PQstatus(c->pg) != CONNECTION_OK) {
            c->state = CONN_BROKEN;
            if (got == 0 && was_connected && attempt == 0) {
                __atomic_add_fetch(&p->reconnects, 1, __ATOMIC_RELAXED);
                c->last_attempt_ms = 0;
                continue;
            }
        } else {
            __atomic_store_n(&c->state, CONN_IDLE, __ATOMIC_RELAXED);
        }
        break;
    }
    for (int i = 0; i < n; i++) {
        if (jobs[i]->result || (i < got && jobs[i]->status < 0))
            continue;
        if (c->state == CONN_BROKEN && conn_ensure(c) != 0) {
            jobs[i]->status = DB_UNAVAILABLE;
            continue;
        }
        query_run_one(c, jobs[i]);
    }
}

struct thread_arg {
    db_pool *pool;
    db_conn *conn;
    int reader;
};

/* Account for a finished job and hand it back to its loop. */
static void job_complete(db_pool *p, struct db_job *j)
{
    __atomic_add_fetch(&p->jobs, 1, __ATOMIC_RELAXED);
    if (j->status == DB_UNAVAILABLE || j->status == DB_FAILED)
        __atomic_add_fetch(&p->failures, 1, __ATOMIC_RELAXED);
    event_active(j->ev, 0, 0);
}

/* Take one job, or a run of up to DB_PIPELINE_MAX reads, from a queue (mu held). */
static int dequeue(db_pool *p, struct db_job **headp, struct db_job **tailp, struct db_job **batch)
{
    struct db_job *j;
    int n = 0;

    do {
        j = *headp;
        *headp = j->next;
        if (!*headp)
            *tailp = NULL;
        p->queued--;
        batch[n++] = j;
    } while (!j->work && n < DB_PIPELINE_MAX && *headp && !(*headp)->work);
    return n;
}

static void run_batch(db_pool *p, db_conn *c, struct db_job **batch, int n)
{
    if (!batch[0]->work) {
        struct db_job *live[DB_PIPELINE_MAX];
        int nl = 0;
        for (int i = 0; i < n; i++) {
            if (now_ms() - batch[i]->queued_ms > p->timeout_ms)
                batch[i]->status = DB_UNAVAILABLE; /* the caller has given up */
            else
                live[nl++] = batch[i];
        }
        if (nl)
            query_run_batch(p, c, live, nl);
    } else if (now_ms() - batch[0]->queued_ms > p->timeout_ms) {
        batch[0]->status = DB_UNAVAILABLE; /* waited too long: the caller has given up */
    } else {
        batch[0]->status = job_run(p, c, batch[0]);
    }
    for (int i = 0; i < n; i++)
        job_complete(p, batch[i]);
}

static void *db_thread_main(void *arg)
{
    struct thread_arg *ta = arg;
    db_pool *p = ta->pool;
    db_conn *c = ta->conn;
    int reader = ta->reader;

    free(ta);
    for (;;) {
        struct db_job *batch[DB_PIPELINE_MAX];
        struct db_job **headp = reader ? &p->rhead : &p->head;
        struct db_job **tailp = reader ? &p->rtail : &p->tail;
        int n;

        pthread_mutex_lock(&p->mu);
        while (!*headp && !p->stopping)
            pthread_cond_wait(reader ? &p->rcv : &p->cv, &p->mu);
        if (!*headp) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        n = dequeue(p, headp, tailp, batch);
        pthread_mutex_unlock(&p->mu);
        run_batch(p, c, batch, n);
    }
    return NULL;
}

static void job_fire(evutil_socket_t fd, short what, void *arg)
{
    struct db_job *j = arg;

    if (j->qdone) {
        PGresult *r = j->status == DB_OK ? j->result : NULL;
        if (!r && j->result)
            PQclear(j->result);
        j->qdone(j->status == DB_OK ? DB_OK : j->status, r, j->arg);
        free(j->param_buf);
    } else {
        j->done(j->status, j->arg);
    }
    event_free(j->ev);
    free(j);
}

db_pool *db_pool_start(const char *conninfo, int size, int timeout_ms)
{
    db_pool *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->rcv, NULL);
    p->size = size;
    p->has_reader = size >= 2;
    p->timeout_ms = timeout_ms;
    p->conninfo = strdup(conninfo);
    p->threads = calloc((size_t)size, sizeof *p->threads);
    p->conns = calloc((size_t)size, sizeof *p->conns);
    if (!p->conninfo || !p->threads || !p->conns)
        goto fail;
    for (int i = 0; i < size; i++) {
        struct thread_arg *ta = malloc(sizeof *ta);
        if (!ta)
            goto fail;
        p->conns[i].conninfo = p->conninfo;
        p->conns[i].timeout_ms = timeout_ms;
        ta->pool = p;
        ta->conn = &p->conns[i];
        ta->reader = p->has_reader && i == size - 1;
        if (pthread_create(&p->threads[i], NULL, db_thread_main, ta) != 0) {
            free(ta);
            p->size = i;
            goto fail;
        }
    }
    return p;
fail:
    db_pool_stop(p);
    return NULL;
}

void db_pool_stop(db_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->rcv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->size; i++)
        pthread_join(p->threads[i], NULL);
    for (int i = 0; p->conns && i < p->size; i++)
        if (p->conns[i].pg)
            PQfinish(p->conns[i].pg);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->rcv);
    free(p->threads);
    free(p->conns);
    free(p->conninfo);
    free(p);
}

static void pool_enqueue(db_pool *p, struct db_job *j)
{
    int to_reader = !j->work && p->has_reader;
    struct db_job **headp = to_reader ? &p->rhead : &p->head;
    struct db_job **tailp = to_reader ? &p->rtail : &p->tail;

    pthread_mutex_lock(&p->mu);
    if (*tailp)
        (*tailp)->next = j;
    else
        *headp = j;
    *tailp = j;
    p->queued++;
    pthread_cond_signal(to_reader ? &p->rcv : &p->cv);
    pthread_mutex_unlock(&p->mu);
}

int db_pool_submit(db_pool *p, struct event_base *base, db_work_fn work, db_done_fn done, void *arg)
{
    struct db_job *j = calloc(1, sizeof *j);

    if (!j)
        return -1;
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->queued_ms = now_ms();
    j->ev = event_new(base, -1, 0, job_fire, j);
    if (!j->ev) {
        free(j);
        return -1;
    }
    pool_enqueue(p, j);
    return 0;
}

int db_pool_submit_query(db_pool *p, struct event_base *base, const char *sql, int nparams,
                         const char *const *params, db_query_done_fn done, void *arg)
{
    struct db_job *j;
    size_t total = 0, off = 0;

    if (nparams < 0 || nparams > DB_QUERY_MAX_PARAMS)
        return -1;
    for (int i = 0; i < nparams; i++)
        total += params[i] ? strlen(params[i]) + 1 : 0;
    j = calloc(1, sizeof *j);
    if (!j || !(j->param_buf = malloc(total ? total : 1))) {
        free(j);
        return -1;
    }
    for (int i = 0; i < nparams; i++) {
        if (!params[i])
            continue;
        memcpy(j->param_buf + off, params[i], strlen(params[i]) + 1);
        j->params[i] = j->param_buf + off;
        off += strlen(params[i]) + 1;
    }
    j->sql = sql;
    j->nparams = nparams;
    j->qdone = done;
    j->arg = arg;
    j->queued_ms = now_ms();
    j->ev = event_new(base, -1, 0, job_fire, j);
    if (!j->ev) {
        free(j->param_buf);
        free(j);
        return -1;
    }
    pool_enqueue(p, j);
    return 0;
}

void db_pool_stats(db_pool *p, db_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->queued = p->queued;
    for (int i = 0; i < p->size; i++) {
        enum conn_state s = __atomic_load_n(&p->conns[i].state, __ATOMIC_RELAXED);
        if (s == CONN_BUSY)
            out->in_use++;
        else if (s == CONN_IDLE)
            out->idle++;
        else if (s == CONN_BROKEN)
            out->broken++;
    }
    pthread_mutex_unlock(&p->mu);
    out->jobs = __atomic_load_n(&p->jobs, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&p->failures, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&p->retries, __ATOMIC_RELAXED);
    out->reconnects = __atomic_load_n(&p->reconnects, __ATOMIC_RELAXED);
}
