/*
 * ledger_bench.c - ledger write throughput, beside its limits measured in the
 * same run.
 *
 *   bench-ledger sign SECONDS
 *       libsodium Ed25519 signatures per second on one core (the signing limit).
 *   bench-ledger http URL ADMIN_KEY WALLET_A WALLET_B CONNECTIONS SECONDS
 *       single-transfer requests per second from CONNECTIONS keep-alive
 *       clients (each request one signed, chained transfer, replied after its
 *       group commit).
 *   bench-ledger batch CONNINFO BATCH SECONDS
 *       transfers per second through the batch executor directly (ledger_run_ops
 *       with BATCH transfers per database transaction): the batched ceiling.
 * Prints one JSON object per run.
 */
#include "db.h"
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

static int bench_http(char **argv)
{
    int n = atoi(argv[6]);
    double secs = atof(argv[7]), t0;
    pthread_t *th = calloc((size_t)n, sizeof *th);
    struct hargs *h = calloc((size_t)n, sizeof *h);
    unsigned long long ok = 0, bad = 0;

    curl_global_init(CURL_GLOBAL_ALL);
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        /* alternate the direction so neither wallet runs dry */
        h[i] = (struct hargs){
            argv[2], argv[3], i % 2 ? argv[4] : argv[5], i % 2 ? argv[5] : argv[4], t0 + secs,
            0,       0};
        pthread_create(&th[i], NULL, http_client, &h[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        ok += h[i].ok;
        bad += h[i].bad;
    }
    printf("{\"bench\":\"http_single_transfer\",\"connections\":%d,\"ok\":%llu,\"failed\":%llu,"
           "\"per_s\":%.0f}\n",
           n, ok, bad, (double)ok / (now_s() - t0));
    free(th);
    free(h);
    curl_global_cleanup();
    return bad > ok / 100;
}

static int bench_batch(char **argv)
{
    const char *conninfo = argv[2];
    int batch = atoi(argv[3]);
    double secs = atof(argv[4]), t0, t;
    char err[512];
    signing_key k;
    ledger_svc *ls;
    db_conn *db = db_connect(conninfo, err, sizeof err);
    ledger_op **ops = calloc((size_t)batch, sizeof *ops);
    unsigned long long done = 0;
    char wallets[2][LEDGER_ACC_MAX];

    if (!db || !ops) {
        fprintf(stderr, "bench-ledger: %s\n", db ? "out of memory" : err);
        db_close(db);
        free(ops);
        return 1;
    }
    crypto_sign_keypair(k.pk, k.sk);
    keyfile_kid(k.pk, k.kid);
    if (!(ls = ledger_svc_new(conninfo, 30000, &k, err, sizeof err))) {
        fprintf(stderr, "bench-ledger: %s\n", err);
        free(ops);
        return 1;
    }
    /* two tenants funded by a deposit each (accounts are created on the way) */
    {
        PGresult *r = db_exec_dynamic(db,
                                      "SELECT id FROM accounts WHERE role = 'tenant' ORDER BY id "
                                      "LIMIT 2",
                                      0, NULL);
        if (!r || PQntuples(r) < 2) {
            fprintf(stderr, "bench-ledger: batch needs two tenant accounts in the database\n");
            PQclear(r);
            free(ops);
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            ledger_op *op = ledger_op_new(LOP_DEPOSIT);
            snprintf(op->owner, sizeof op->owner, "%s", PQgetvalue(r, i, 0));
            snprintf(op->caller, sizeof op->caller, "bench");
            memcpy(op->currency, "USD", 4);
            op->amount = INT64_C(1000000000000);
            if (ledger_run_ops(ls, db, &op, 1) != DB_OK || op->status != 201) {
                fprintf(stderr, "bench-ledger: deposit failed\n");
                return 1;
            }
            snprintf(wallets[i], sizeof wallets[i], "%s", op->acc_wallet);
            ledger_op_free(op);
        }
        PQclear(r);
    }
    t0 = now_s();
    do {
        for (int i = 0; i < batch; i++) {
            ledger_op *op = ledger_op_new(LOP_TRANSFER);
            snprintf(op->caller, sizeof op->caller, "bench");
            op->kind = LEDGER_KIND_ADJUSTMENT;
            op->n_entries = 2;
            snprintf(op->entries[0].account, sizeof op->entries[0].account, "%s", wallets[i % 2]);
            snprintf(op->entries[1].account, sizeof op->entries[1].account, "%s",
                     wallets[1 - i % 2]);
            op->entries[0].amount = 10000;
            op->entries[1].amount = -10000;
            ops[i] = op;
        }
        if (ledger_run_ops(ls, db, ops, (size_t)batch) != DB_OK) {
            fprintf(stderr, "bench-ledger: batch failed: %s\n", db_last_message(db));
            return 1;
        }
        for (int i = 0; i < batch; i++) {
            done += ops[i]->status == 201;
            ledger_op_free(ops[i]);
        }
        t = now_s() - t0;
    } while (t < secs);
    printf("{\"bench\":\"batched_transfers\",\"batch\":%d,\"transfers\":%llu,\"per_s\":%.0f}\n",
           batch, done, (double)done / t);
    ledger_svc_free(ls);
    db_close(db);
    free(ops);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    if (argc == 3 && !strcmp(argv[1], "sign"))
        return bench_sign(atof(argv[2]));
    if (argc == 8 && !strcmp(argv[1], "http"))
        return bench_http(argv);
    if (argc == 5 && !strcmp(argv[1], "batch"))
        return bench_batch(argv);
    fprintf(stderr, "usage: bench-ledger sign SECONDS | http URL KEY WALLET_A WALLET_B CONNS "
                    "SECONDS | batch CONNINFO BATCH SECONDS\n");
    return 2;
}
