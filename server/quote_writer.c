/*
 * quote_writer.c - the group insert of quotes, signed per batch (see
 * quote_writer.h).
 *
 * The writer signs what it takes: the batch's Merkle root over the rows'
 * leaves, one Ed25519 signature (billing/quote_proof.c; about 25 us, paid
 * once per batch on the database thread instead of once per quote on a
 * worker), each row's audit path. A batch travels to PostgreSQL as one binary
 * COPY of its quote rows (server/ledger_copy.c: no SQL, array or text parsing
 * per row) plus its batch row, in one transaction committed with the server's
 * default synchronous_commit, so every row is on disk before its reply (one
 * WAL flush per batch: group commit); a lone row is one plain INSERT of the
 * row and its batch of one. At most one writer job runs at a time
 * (qw_scheduled): while it stores one batch the next one gathers, which keeps
 * batches large and the referenced rows (tenant, policy version) locked by
 * one transaction at a time. A batch re-run after a failure is signed anew
 * (a new batch id), so a row's batch fields always describe what committed.
 * Invariant: rows leave the queue only inside a job that then completes every
 * one of them.
 */
#include "quote_writer.h"
#include "ids.h"
#include "ledger_copy.h"
#include "ledger_svc.h"
#include "log.h"
#include "quote_proof.h"

#include <event2/event.h>
#include <pthread.h>
#include <sodium.h>
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
    "batch_id, leaf_index, path, expires_at) FROM STDIN (FORMAT binary)";

static const char sql_batch[] = "INSERT INTO quote_batches (id, root, kid, signature, n) VALUES "
                                "($1, $2::bytea, $3, $4::bytea, $5::integer)";

/* The batch's key, if it is not retired, share-locked until the batch commits: a retirement
 * (an UPDATE of the row, server/ledger_maint.c) either committed before and is seen here, or
 * waits for this batch, so no stored batch is signed after its key's valid_until. */
static const char sql_key_live[] =
    "SELECT 1 FROM ledger_keys WHERE kid = $1 AND valid_until IS NULL FOR SHARE";

/* A lone row and its batch of one in one statement (atomic on its own); nothing is stored
 * when the key is retired (0 rows, see sql_key_live). */
static const char sql_insert_one[] =
    "WITH k AS (SELECT 1 FROM ledger_keys WHERE kid = $11 AND valid_until IS NULL FOR SHARE), "
    "b AS (INSERT INTO quote_batches (id, root, kid, signature, n) SELECT $9, $10::bytea, $11, "
    "$12::bytea, 1 FROM k) INSERT INTO quotes (id, tenant_id, policy_id, policy_version, "
    "currency, total_micros, document, batch_id, leaf_index, path, expires_at) SELECT $1, $2, "
    "$3, $4::integer, $5, $6::bigint, $7, $9, 0, '\\x'::bytea, $8::timestamptz FROM k";

/* PostgreSQL's binary timestamptz: microseconds since 2000-01-01 00:00:00 UTC. */
#define QW_PG_EPOCH_MS 946684800000LL

/* ---- signing a batch ------------------------------------------------------------- */

/* Sign rows[0..n) as one batch: a fresh batch id, the Merkle root of their
 * leaves, one signature by rows[0]'s key, and each row's index and audit
 * path. 0, or -1 (out of memory). */
static int seal_rows(qw_row **rows, int n)
{
    unsigned char leaves[QW_BATCH_MAX * QW_HASH_BYTES], root[QW_HASH_BYTES], sig[QW_SIG_BYTES];
    ledger_merkle_proof *pf = malloc((size_t)n * sizeof *pf);
    char id[32];

    if (!pf || n > QW_BATCH_MAX || ids_new(id, sizeof id, "qbt") != 0) {
        free(pf);
        return -1;
    }
    for (int i = 0; i < n; i++)
        memcpy(leaves + (size_t)i * QW_HASH_BYTES, rows[i]->leaf, QW_HASH_BYTES);
    if (quote_proof_seal(leaves, (size_t)n, rows[0]->sk, root, sig, pf, NULL) != LEDGER_OK) {
        free(pf);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        qw_row *r = rows[i];
        memcpy(r->batch_id, id, sizeof r->batch_id);
        memcpy(r->root, root, sizeof root);
        memcpy(r->sig, sig, sizeof sig);
        r->leaf_index = pf[i].index;
        r->batch_n = pf[i].size;
        r->n_path = (uint32_t)pf[i].n_path;
        memcpy(r->path, pf[i].path, pf[i].n_path * QW_HASH_BYTES);
    }
    free(pf);
    return 0;
}

/* "\x" + lower-case hex of n bytes into out (2n + 3 bytes): a bytea parameter. */
static void bytea_hex(char *out, const unsigned char *p, size_t n)
{
    out[0] = '\\';
    out[1] = 'x';
    sodium_bin2hex(out + 2, 2 * n + 1, p, n);
}

/* ---- storing ----------------------------------------------------------------------- */

static pthread_mutex_t qw_key_mu = PTHREAD_MUTEX_INITIALIZER;
static char qw_key_published[32]; /* the kid known to be in ledger_keys */

/* Make sure r's key is in ledger_keys before a batch it signed is stored
 * (quote_batches.kid references it). Once per process and key when it ran
 * on its own (autocommit); inside a caller's transaction, which may still
 * roll back, every time until then. DB_OK or the db_status. */
static int publish_key(db_conn *db, const qw_row *r)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    int done, rc;

    pthread_mutex_lock(&qw_key_mu);
    done = !strcmp(qw_key_published, r->kid);
    pthread_mutex_unlock(&qw_key_mu);
    if (done)
        return DB_OK;
    crypto_sign_ed25519_sk_to_pk(pk, r->sk);
    rc = ledger_key_publish(db, r->kid, pk); /* GET /v1/ledger/keys: quotes verify from kid */
    if (rc == DB_OK && PQtransactionStatus(db_pgconn(db)) == PQTRANS_IDLE) {
        pthread_mutex_lock(&qw_key_mu);
        snprintf(qw_key_published, sizeof qw_key_published, "%s", r->kid);
        pthread_mutex_unlock(&qw_key_mu);
    }
    return rc;
}

/* rows[0..n) as one binary COPY; DB_OK or the db_status. */
static int copy_rows(db_conn *db, qw_row **rows, int n)
{
    ledger_copy c;
    int rc;

    ledger_copy_init(&c);
    for (int i = 0; i < n; i++) {
        const qw_row *r = rows[i];
        ledger_copy_row(&c, 11);
        ledger_copy_text(&c, r->id);
        ledger_copy_text(&c, r->tenant);
        ledger_copy_text(&c, r->policy_id);
        ledger_copy_i32(&c, r->policy_version);
        ledger_copy_text(&c, r->currency);
        ledger_copy_i64(&c, r->total_micros);
        ledger_copy_text(&c, r->document);
        ledger_copy_text(&c, r->batch_id);
        ledger_copy_i32(&c, (int32_t)r->leaf_index);
        ledger_copy_bytes(&c, r->path, r->n_path * QW_HASH_BYTES);
        ledger_copy_i64(&c, (r->expires_ms - QW_PG_EPOCH_MS) * 1000);
    }
    rc = ledger_copy_send(db, sql_copy, &c);
    ledger_copy_free(&c);
    return rc;
}

/* The batch row of rows[0..n) (sealed). */
static int insert_batch(db_conn *db, qw_row **rows, int n)
{
    char root[2 * QW_HASH_BYTES + 3], sig[2 * QW_SIG_BYTES + 3], count[16];
    const char *p[5] = {rows[0]->batch_id, root, rows[0]->kid, sig, count};

    bytea_hex(root, rows[0]->root, QW_HASH_BYTES);
    bytea_hex(sig, rows[0]->sig, QW_SIG_BYTES);
    snprintf(count, sizeof count, "%d", n);
    return db_command(db, sql_batch, 5, p);
}

/* DB_OK when kid may still sign (and is share-locked until the transaction ends), QW_KEY_RETIRED
 * (logged), or the db_status. */
static int key_live(db_conn *db, const char *kid)
{
    const char *p[] = {kid};
    PGresult *r = db_exec(db, sql_key_live, 1, p);
    int live;

    if (!r)
        return db_last_status(db);
    live = PQntuples(r) == 1;
    PQclear(r);
    if (!live)
        log_error("quotes",
                  "signing key %s is retired: quotes are refused until tallyd restarts "
                  "with a new TALLY_SIGNING_KEY",
                  kid);
    return live ? DB_OK : QW_KEY_RETIRED;
}

/* rows[0..n) (n > 1) sealed as one batch, in one transaction: BEGIN, the
 * quote rows by COPY, the batch row, COMMIT. DB_OK or the db_status (the
 * transaction rolled back). */
static int store_batch(db_conn *db, qw_row **rows, int n)
{
    int rc;

    if (seal_rows(rows, n) != 0)
        return DB_FAILED;
    if ((rc = publish_key(db, rows[0])) != DB_OK || (rc = db_begin(db)) != DB_OK)
        return rc;
    if ((rc = key_live(db, rows[0]->kid)) == DB_OK && (rc = copy_rows(db, rows, n)) == DB_OK &&
        (rc = insert_batch(db, rows, n)) == DB_OK)
        rc = db_commit(db);
    if (rc != DB_OK)
        db_rollback(db);
    return rc;
}

/* One row as a batch of one with a plain INSERT, so a failure has its
 * SQLSTATE: DB_OK, QW_NO_TENANT (foreign key), or the db_status. */
static int insert_one(db_conn *db, qw_row *r)
{
    char ver[16], total[24], root[2 * QW_HASH_BYTES + 3], sig[2 * QW_SIG_BYTES + 3];
    const char *p[12] = {r->id,       r->tenant,     r->policy_id, ver,  r->currency, total,
                         r->document, r->expires_at, r->batch_id,  root, r->kid,      sig};
    PGresult *res;
    int rc;

    if (seal_rows(&r, 1) != 0)
        return DB_FAILED;
    if ((rc = publish_key(db, r)) != DB_OK)
        return rc;
    snprintf(ver, sizeof ver, "%d", r->policy_version);
    snprintf(total, sizeof total, "%lld", (long long)r->total_micros);
    bytea_hex(root, r->root, QW_HASH_BYTES);
    bytea_hex(sig, r->sig, QW_SIG_BYTES);
    if (!(res = db_exec(db, sql_insert_one, 12, p))) {
        rc = db_last_status(db);
        return rc == DB_FAILED && !strcmp(db_last_sqlstate(db), "23503") ? QW_NO_TENANT : rc;
    }
    rc = strcmp(PQcmdTuples(res), "1") == 0 ? DB_OK : QW_KEY_RETIRED;
    PQclear(res);
    if (rc == QW_KEY_RETIRED)
        log_error("quotes",
                  "signing key %s is retired: quotes are refused until tallyd restarts "
                  "with a new TALLY_SIGNING_KEY",
                  r->kid);
    return rc;
}

int qw_insert(db_conn *db, qw_row **rows, int n)
{
    int rc = n == 1 ? insert_one(db, rows[0]) : store_batch(db, rows, n);

    if (n == 1 && (rc == DB_OK || rc == QW_NO_TENANT || rc == DB_FAILED)) {
        rows[0]->status = rc;
        return DB_OK;
    }
    if (rc == DB_OK || rc == QW_KEY_RETIRED) {
        for (int i = 0; i < n; i++)
            rows[i]->status = rc;
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

/* Take up to max queued rows signed by one key into out (locked by the caller). */
static int take_locked(qw_row **out, int max)
{
    int n = 0;

    while (qw_head && n < max && (n == 0 || qw_head->sk == out[0]->sk)) {
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
