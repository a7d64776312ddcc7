/*
 * ledger_bench.c - ledger write throughput, beside its limits measured in the
 * same run.
 *
 *   bench-ledger sign SECONDS
 *       libsodium Ed25519 signatures per second on one core (the signing limit).
 *   bench-ledger http URL ADMIN_KEY WALLET,WALLET,... CONNECTIONS SECONDS
 *       single-transfer requests per second from CONNECTIONS keep-alive
 *       clients, spread over pairs of the given wallets (each request one signed, chained transfer,
 * replied after its group commit). bench-ledger batch CONNINFO BATCH SECONDS [THREADS] transfers
 * per second through the batch executor directly (ledger_run_ops with BATCH transfers per database
 * transaction), THREADS executors at once, each with its own connection and its own pair of
 * wallets. bench-ledger copy CONNINFO BATCH SECONDS [THREADS] the database's ceiling for the same
 * rows: BATCH transactions and their entries per commit by binary COPY into tables with the same
 * indexes, without signing or ledger logic. Prints one JSON object per run.
 */
#include "db.h"
#include "ledger_copy.h"
#include "ledger_svc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_sign(double secs)
{
    unsigned char pk[32], sk[64], msg[44] = {0}, sig[64];
    unsigned long long n = 0;
    double t0 = now_s(), t;

    crypto_sign_keypair(pk, sk);
    do {
        for (int i = 0; i < 1000; i++, n++) {
            msg[0] = (unsigned char)n;
            crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
        }
        t = now_s() - t0;
    } while (t < secs);
    printf("{\"bench\":\"ed25519_sign\",\"per_s\":%.0f}\n", (double)n / t);
    return 0;
}

struct hargs {
    const char *url, *key, *a, *b;
    double until;
    unsigned long long ok, bad;
};

static size_t discard(char *d, size_t s, size_t n, void *arg)
{
    (void)d;
    (void)arg;
    return s * n;
}

static void *http_client(void *arg)
{
    struct hargs *h = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char auth[128], url[256], body[256];

    snprintf(auth, sizeof auth, "Authorization: Bearer %s", h->key);
    snprintf(url, sizeof url, "%s/v1/ledger/transfers", h->url);
    snprintf(body, sizeof body,
             "{\"entries\":[{\"account\":\"%s\",\"amount\":\"0.01\"},{\"account\":\"%s\","
             "\"amount\":\"-0.01\"}]}",
             h->a, h->b);
    hdr = curl_slist_append(hdr, auth);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    while (now_s() < h->until) {
        long st = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
        if (st == 201)
            h->ok++;
        else
            h->bad++;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return NULL;
}

/* WALLETS is a comma-separated list of an even number of wallets: connection i
 * moves money within pair i % pairs, in alternating directions so no wallet
 * runs dry. */
static int bench_http(char **argv)
{
    int n = atoi(argv[5]), nw = 0;
    double secs = atof(argv[6]), t0;
    pthread_t *th = calloc((size_t)n, sizeof *th);
    struct hargs *h = calloc((size_t)n, sizeof *h);
    char *list = strdup(argv[4]), *w[256], *save = NULL;
    unsigned long long ok = 0, bad = 0;

    for (char *t = strtok_r(list, ",", &save); t && nw < 256; t = strtok_r(NULL, ",", &save))
        w[nw++] = t;
    if (nw < 2 || nw % 2) {
        fprintf(stderr, "bench-ledger: http needs an even number of wallets\n");
        free(th);
        free(h);
        free(list);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        int pair = i % (nw / 2), dir = (i / (nw / 2)) % 2;
        h[i] = (struct hargs){argv[2], argv[3], w[2 * pair + dir], w[2 * pair + 1 - dir], t0 + secs,
                              0,       0};
        pthread_create(&th[i], NULL, http_client, &h[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        ok += h[i].ok;
        bad += h[i].bad;
    }
    printf("{\"bench\":\"http_single_transfer\",\"connections\":%d,\"wallets\":%d,\"ok\":%llu,"
           "\"failed\":%llu,\"per_s\":%.0f}\n",
           n, nw, ok, bad, (double)ok / (now_s() - t0));
    free(th);
    free(h);
    free(list);
    curl_global_cleanup();
    return bad > ok / 100;
}

/* One batch-executor thread: its own connection and its own two wallets. */
struct bargs {
    ledger_svc *ls;
    const char *conninfo;
    char wallets[2][LEDGER_ACC_MAX];
    int batch;
    double until;
    unsigned long long done;
    int failed;
};

static void *batch_thread(void *arg)
{
    struct bargs *a = arg;
    char err[512];
    db_conn *db = db_connect(a->conninfo, err, sizeof err);
    ledger_op **ops = calloc((size_t)a->batch, sizeof *ops);

    if (!db || !ops) {
        fprintf(stderr, "bench-ledger: %s\n", db ? "out of memory" : err);
        a->failed = 1;
        goto out;
    }
    while (now_s() < a->until) {
        for (int i = 0; i < a->batch; i++) {
            ledger_op *op = ledger_op_new(LOP_TRANSFER);
            snprintf(op->caller, sizeof op->caller, "bench");
            op->kind = LEDGER_KIND_ADJUSTMENT;
            op->n_entries = 2;
            snprintf(op->entries[0].account, sizeof op->entries[0].account, "%s",
                     a->wallets[i % 2]);
            snprintf(op->entries[1].account, sizeof op->entries[1].account, "%s",
                     a->wallets[1 - i % 2]);
            op->entries[0].amount = 10000;
            op->entries[1].amount = -10000;
            ops[i] = op;
        }
        if (ledger_run_ops(a->ls, db, ops, (size_t)a->batch) != DB_OK) {
            fprintf(stderr, "bench-ledger: batch failed: %s\n", db_last_message(db));
            a->failed = 1;
        }
        for (int i = 0; i < a->batch; i++) {
            a->done += !a->failed && ops[i]->status == 201;
            ledger_op_free(ops[i]);
        }
        if (a->failed)
            break;
    }
out:
    db_close(db);
    free(ops);
    return NULL;
}

/* Fund one wallet per tenant (accounts are created on the way). */
static int fund_wallets(ledger_svc *ls, db_conn *db, char (*wallets)[LEDGER_ACC_MAX], int n)
{
    char lim[16];
    const char *p[] = {lim};
    PGresult *r;
    int rc = 0;

    snprintf(lim, sizeof lim, "%d", n);
    r = db_exec_dynamic(db, "SELECT id FROM accounts WHERE role = 'tenant' ORDER BY id LIMIT $1", 1,
                        p);
    if (!r || PQntuples(r) < n) {
        fprintf(stderr, "bench-ledger: batch needs %d tenant accounts in the database\n", n);
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        ledger_op *op = ledger_op_new(LOP_DEPOSIT);
        snprintf(op->owner, sizeof op->owner, "%s", PQgetvalue(r, i, 0));
        snprintf(op->caller, sizeof op->caller, "bench");
        memcpy(op->currency, "USD", 4);
        op->amount = INT64_C(1000000000000);
        if (ledger_run_ops(ls, db, &op, 1) != DB_OK || op->status != 201) {
            fprintf(stderr, "bench-ledger: deposit failed\n");
            rc = -1;
        }
        snprintf(wallets[i], sizeof wallets[i], "%s", op->acc_wallet);
        ledger_op_free(op);
    }
    PQclear(r);
    return rc;
}

static int bench_batch(const char *conninfo, int batch, double secs, int threads)
{
    char err[512], (*wallets)[LEDGER_ACC_MAX] = calloc((size_t)threads * 2, sizeof *wallets);
    struct bargs *a = calloc((size_t)threads, sizeof *a);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    signing_key k;
    ledger_svc *ls = NULL;
    db_conn *db = db_connect(conninfo, err, sizeof err);
    unsigned long long done = 0;
    int failed = 0;
    double t0;

    if (!db || !wallets || !a || !th) {
        fprintf(stderr, "bench-ledger: %s\n", db ? "out of memory" : err);
        failed = 1;
        goto out;
    }
    crypto_sign_keypair(k.pk, k.sk);
    keyfile_kid(k.pk, k.kid);
    if (!(ls = ledger_svc_new(conninfo, 30000, &k, err, sizeof err))) {
        fprintf(stderr, "bench-ledger: %s\n", err);
        failed = 1;
        goto out;
    }
    if (fund_wallets(ls, db, wallets, 2 * threads) != 0) {
        failed = 1;
        goto out;
    }
    t0 = now_s();
    for (int i = 0; i < threads; i++) {
        a[i] = (struct bargs){.ls = ls, .conninfo = conninfo, .batch = batch, .until = t0 + secs};
        memcpy(a[i].wallets, wallets[2 * i], sizeof a[i].wallets);
        pthread_create(&th[i], NULL, batch_thread, &a[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        done += a[i].done;
        failed |= a[i].failed;
    }
    printf("{\"bench\":\"batched_transfers\",\"batch\":%d,\"threads\":%d,\"transfers\":%llu,"
           "\"per_s\":%.0f}\n",
           batch, threads, done, (double)done / (now_s() - t0));
out:
    ledger_svc_free(ls);
    db_close(db);
    free(wallets);
    free(a);
    free(th);
    return failed;
}

/* The database's ceiling for the same rows: COPY of BATCH transactions (with
 * their canonical bytes, hashes and signature) and 2 x BATCH entries per
 * commit into copies of the ledger tables with the same indexes and checks,
 * no signing and no ledger logic. */
struct cargs {
    const char *conninfo;
    int batch, id;
    double until;
    unsigned long long done;
};

static void copy_rows(ledger_copy *tx, ledger_copy *en, int thread, unsigned long long n)
{
    unsigned char bytes[200];
    char id[40], acc[2][40];

    memset(bytes, 0x5a, sizeof bytes);
    snprintf(id, sizeof id, "txn_%02d%024llu", thread, n);
    snprintf(acc[0], sizeof acc[0], "la_%02dA%021d", thread, 0);
    snprintf(acc[1], sizeof acc[1], "la_%02dB%021d", thread, 0);
    ledger_copy_row(tx, 19);
    ledger_copy_text(tx, id);
    ledger_copy_i32(tx, thread);
    ledger_copy_i64(tx, (int64_t)n + 1);
    ledger_copy_text(tx, "adjustment");
    ledger_copy_text(tx, "");
    for (int i = 0; i < 6; i++)
        ledger_copy_text_or_null(tx, NULL);
    ledger_copy_text_or_null(tx, NULL);
    ledger_copy_i64(tx, 1700000000000000);
    ledger_copy_i64(tx, 1700000000000000);
    ledger_copy_bytes(tx, bytes, 170);
    ledger_copy_bytes(tx, bytes, 32);
    ledger_copy_bytes(tx, bytes, 32);
    ledger_copy_text(tx, "sk_0000000000000000");
    ledger_copy_bytes(tx, bytes, 64);
    for (int i = 0; i < 2; i++) {
        ledger_copy_row(en, 10);
        ledger_copy_text(en, id);
        ledger_copy_i16(en, (int16_t)i);
        ledger_copy_text(en, acc[i]);
        ledger_copy_text(en, "USD");
        ledger_copy_i64(en, i ? -10000 : 10000);
        ledger_copy_i32(en, -1);
        ledger_copy_i64(en, (int64_t)n);
        ledger_copy_i64(en, (int64_t)n + 1);
        ledger_copy_i64(en, (int64_t)n + 1);
        ledger_copy_i64(en, 1700000000000000);
    }
}

static void *copy_thread(void *arg)
{
    static const char sql_tx[] =
        "COPY bench_txns (id, partition, seq, kind, memo, order_id, usage_id, invoice_id, "
        "reverses_id, hold_id, caller_id, idempotency_key, effective_us, inserted_us, canonical, "
        "prev_hash, hash, kid, sig) FROM STDIN (FORMAT binary)";
    static const char sql_en[] =
        "COPY bench_entries (txn_id, idx, account_id, currency, amount, shard, balance_before, "
        "balance_after, account_version, inserted_us) FROM STDIN (FORMAT binary)";
    struct cargs *a = arg;
    char err[512];
    db_conn *db = db_connect(a->conninfo, err, sizeof err);
    unsigned long long n = 0;

    while (db && now_s() < a->until) {
        ledger_copy tx, en;
        int rc;
        ledger_copy_init(&tx);
        ledger_copy_init(&en);
        for (int i = 0; i < a->batch; i++)
            copy_rows(&tx, &en, a->id, n++);
        rc = db_begin(db);
        if (rc == DB_OK)
            rc = ledger_copy_send(db, sql_tx, &tx);
        if (rc == DB_OK)
            rc = ledger_copy_send(db, sql_en, &en);
        if (rc == DB_OK)
            rc = db_commit(db);
        ledger_copy_free(&tx);
        ledger_copy_free(&en);
        if (rc != DB_OK) {
            fprintf(stderr, "bench-ledger: copy failed: %s\n", db_last_message(db));
            db_rollback(db);
            break;
        }
        a->done += (unsigned long long)a->batch;
    }
    db_close(db);
    return NULL;
}

static int bench_copy(const char *conninfo, int batch, double secs, int threads)
{
    char err[512];
    db_conn *db = db_connect(conninfo, err, sizeof err);
    struct cargs a[64];
    pthread_t th[64];
    unsigned long long done = 0;
    double t0;

    if (!db || threads > 64) {
        fprintf(stderr, "bench-ledger: %s\n", db ? "at most 64 threads" : err);
        db_close(db);
        return 1;
    }
    if (db_command(db,
                   "CREATE TABLE IF NOT EXISTS bench_txns (LIKE ledger_transactions INCLUDING "
                   "ALL)",
                   0, NULL) != DB_OK ||
        db_command(db,
                   "CREATE TABLE IF NOT EXISTS bench_entries (LIKE ledger_entries INCLUDING ALL)",
                   0, NULL) != DB_OK ||
        db_command(db, "TRUNCATE bench_txns, bench_entries", 0, NULL) != DB_OK) {
        fprintf(stderr, "bench-ledger: %s\n", db_last_message(db));
        db_close(db);
        return 1;
    }
    t0 = now_s();
    for (int i = 0; i < threads; i++) {
        a[i] = (struct cargs){.conninfo = conninfo, .batch = batch, .id = i, .until = t0 + secs};
        pthread_create(&th[i], NULL, copy_thread, &a[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        done += a[i].done;
    }
    printf("{\"bench\":\"copy_ceiling\",\"batch\":%d,\"threads\":%d,\"transfers\":%llu,"
           "\"per_s\":%.0f}\n",
           batch, threads, done, (double)done / (now_s() - t0));
    db_command(db, "DROP TABLE bench_txns, bench_entries", 0, NULL);
    db_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    if (argc == 3 && !strcmp(argv[1], "sign"))
        return bench_sign(atof(argv[2]));
    if (argc == 7 && !strcmp(argv[1], "http"))
        return bench_http(argv);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "batch"))
        return bench_batch(argv[2], atoi(argv[3]), atof(argv[4]), argc == 6 ? atoi(argv[5]) : 1);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "copy"))
        return bench_copy(argv[2], atoi(argv[3]), atof(argv[4]), argc == 6 ? atoi(argv[5]) : 1);
    fprintf(stderr, "usage: bench-ledger sign SECONDS | http URL KEY WALLET,WALLET,... CONNS "
                    "SECONDS | batch|copy CONNINFO BATCH SECONDS [THREADS]\n");
    return 2;
}
