/*
 * market_bench.c - usage ingestion throughput, beside its limits measured in
 * the same run (bench/market_bench.sh drives it).
 *
 *   bench-market verify SECONDS
 *       libsodium Ed25519 verifications per second on one core (every record
 *       is verified once).
 *   bench-market insert CONNINFO SECONDS [THREADS]
 *       rows per second inserted 100 per durable commit into a table shaped
 *       like usage_records (the storage limit), THREADS connections at once.
 *   bench-market usage URL ADMIN_KEY CONNECTIONS SECONDS
 *       accepted usage records per second over HTTP: it creates a provider
 *       (key, policy, offer with one node per connection), one tenant and one
 *       order per connection, pre-signs batches of 100 records (1 ms each, so an
 *       order's past minute holds 60 000 of them), then each connection posts
 *       its batches on a keep-alive connection for SECONDS.
 * Prints one JSON object per run.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <time.h>

#define BATCH 100
#define MAX_CONNS 32

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- baselines ---------------------------------------------------------------------------- */

static int bench_verify(double secs)
{
    unsigned char pk[32], sk[64], msg[300] = {0}, sig[64];
    unsigned long long n = 0;
    double t0, t;

    crypto_sign_keypair(pk, sk);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    t0 = now_s();
    do {
        for (int i = 0; i < 200; i++, n++)
            if (crypto_sign_verify_detached(sig, msg, sizeof msg, pk) != 0)
                return 1;
        t = now_s() - t0;
    } while (t < secs);
    printf("{\"bench\":\"ed25519_verify\",\"per_s\":%.0f}\n", (double)n / t);
    return 0;
}

struct iargs {
    const char *conninfo;
    double until;
    int id;
    unsigned long long rows;
};

static void *insert_thread(void *arg)
{
    struct iargs *a = arg;
    PGconn *c = PQconnectdb(a->conninfo);
    char sql[256];
    long long k = 0;

    if (PQstatus(c) != CONNECTION_OK)
        goto out;
    snprintf(sql, sizeof sql,
             "INSERT INTO bench_usage SELECT 'use_' || g || '_%d_' || $1, 'acc_p', "
             "'r' || g || '_%d_' || $1, "
             "'ord_x', 'nvidia-h100-sxm', 1, g, g + 1, 1000, 1, 'USD', 1, 0, '2026-11', "
             "repeat('a', 128), repeat('b', 160), repeat('c', 64) FROM generate_series(1, 100) g",
             a->id, a->id);
    while (now_s() < a->until) {
        char ks[24];
        const char *p[] = {ks};
        PGresult *r;
        snprintf(ks, sizeof ks, "%lld", k++);
        r = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            a->rows += 100;
        PQclear(r);
    }
out:
    PQfinish(c);
    return NULL;
}

static int bench_insert(const char *conninfo, double secs, int threads)
{
    struct iargs a[MAX_CONNS];
    pthread_t th[MAX_CONNS];
    unsigned long long rows = 0;
    PGconn *c = PQconnectdb(conninfo);
    double t0;

    PQclear(PQexec(c, "DROP TABLE IF EXISTS bench_usage"));
    PQclear(PQexec(c, "CREATE TABLE bench_usage (id text PRIMARY KEY, provider_id text, record_id "
                      "text, order_id text, device_id text, count int, start_ms bigint, end_ms "
                      "bigint, mcu bigint, amount bigint, currency text, fee bigint, fee2 bigint, "
                      "period text, canonical text, signature text, hash text, "
                      "UNIQUE (provider_id, record_id))"));
    PQclear(PQexec(c, "CREATE INDEX ON bench_usage (order_id, end_ms)"));
    t0 = now_s();
    for (int i = 0; i < threads; i++) {
        a[i] = (struct iargs){conninfo, t0 + secs, i, 0};
        pthread_create(&th[i], NULL, insert_thread, &a[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        rows += a[i].rows;
    }
    PQclear(PQexec(c, "DROP TABLE bench_usage"));
    PQfinish(c);
    printf("{\"bench\":\"insert_100_rows_per_commit\",\"threads\":%d,\"rows_per_s\":%.0f}\n",
           threads, (double)rows / (now_s() - t0));
    return 0;
}

/* ---- HTTP helpers --------------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t n;
};

static size_t collect(char *d, size_t s, size_t n, void *arg)
{
    struct buf *b = arg;
    char *q = realloc(b->p, b->n + s * n + 1);
    if (!q)
        return 0;
    memcpy(q + b->n, d, s * n);
    b->p = q;
    b->n += s * n;
    b->p[b->n] = '\0';
    return s * n;
}

/* POST body to url+path with key; the parsed JSON reply (or NULL) and its status. */
static json_t *call(CURL *h, const char *url, const char *path, const char *key, const char *body,
                    long *status)
{
    char u[512], auth[128];
    struct curl_slist *hd = NULL;
    struct buf b = {0};
    json_t *j;

    snprintf(u, sizeof u, "%s%s", url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    hd = curl_slist_append(hd, auth);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, u);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    *status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hd);
    j = b.p ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    return j;
}

static const char *must(json_t *j, long st, long want, const char *field, const char *what)
{
    const char *v = json_string_value(json_object_get(j, field));
    if (st != want || !v) {
        char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
        fprintf(stderr, "bench-market: %s failed (%ld): %s\n", what, st, t ? t : "");
        exit(1);
    }
    return v;
}

/* A loopback listener on any port (the offer's endpoint). Its fd, or -1. */
static int listen_any(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("bench-market: listen");
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- the usage run ------------------------------------------------------------------------- */

struct world {
    const char *url, *admin;
    int endpoint_port; /* a listener of ours, so the offer's probes see it up */
    char prov_key[80], prov_id[48], key_id[48], policy[48], offer[48];
    unsigned char pk[32], sk[64];
};

struct uargs {
    struct world *w;
    char tenant_key[80], order[48];
    long long start_ms;
    char **bodies;
    int nbodies;
    double until;
    unsigned long long accepted, rejected, requests;
};

static void account(struct world *w, CURL *h, const char *name, const char *role, char *key,
                    char *id)
{
    char body[256];
    long st;
    json_t *j;

    snprintf(body, sizeof body, "{\"name\":\"%s\",\"role\":\"%s\"}", name, role);
    j = call(h, w->url, "/v1/accounts", w->admin, body, &st);
    snprintf(key, 80, "%s", must(j, st, 201, "api_key", "create account"));
    snprintf(id, 48, "%s", must(j, st, 201, "id", "create account"));
    json_decref(j);
}

static void build_world(struct world *w, CURL *h, int conns)
{
    char body[1024], hex[65], msg[512], sighex[129], path[128], ident[64];
    unsigned char sig[64];
    long st;
    json_t *j;

    account(w, h, "bench-provider", "provider", w->prov_key, w->prov_id);
    j = call(h, w->url, "/v1/pricing/policies", w->prov_key,
             "{\"name\":\"bench\",\"document\":{\"currency\":\"USD\",\"rules\":[{\"id\":\"b\","
             "\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},\"per_device_hour\":"
             "\"3.60\"}]}}",
             &st);
    snprintf(w->policy, sizeof w->policy, "%s", must(j, st, 201, "id", "policy"));
    json_decref(j);
    crypto_sign_keypair(w->pk, w->sk);
    sodium_bin2hex(hex, sizeof hex, w->pk, sizeof w->pk);
    snprintf(body, sizeof body, "{\"public_key\":\"%s\"}", hex);
    j = call(h, w->url, "/v1/provider-keys", w->prov_key, body, &st);
    snprintf(w->key_id, sizeof w->key_id, "%s", must(j, st, 201, "id", "provider key"));
    json_decref(j);
    snprintf(ident, sizeof ident, "eu-west-1/bench/pool-%d", (int)(wall_ms() % 100000));
    snprintf(body, sizeof body,
             "{\"identifier\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"devices_per_node\":1,"
             "\"nodes\":%d,\"endpoint\":\"127.0.0.1:%d\",\"policy_id\":\"%s\","
             "\"available_from\":\"2026-01-01T00:00:00Z\"}",
             ident, conns, w->endpoint_port, w->policy);
    j = call(h, w->url, "/v1/offers", w->prov_key, body, &st);
    snprintf(w->offer, sizeof w->offer, "%s", must(j, st, 201, "id", "offer"));
    snprintf(msg, sizeof msg, "tally-offer-challenge-v1\n%s\n%s\n%s", w->offer, ident,
             must(j, st, 201, "challenge", "offer"));
    json_decref(j);
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), w->sk);
    sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
    snprintf(path, sizeof path, "/v1/offers/%s/publish", w->offer);
    snprintf(body, sizeof body, "{\"key_id\":\"%s\",\"signature\":\"%s\"}", w->key_id, sighex);
    j = call(h, w->url, path, w->prov_key, body, &st);
    must(j, st, 200, "id", "publish");
    json_decref(j);
}

/* A tenant with money and an order started 59 s ago on the bench offer. */
static void order_for(struct world *w, CURL *h, int i, struct uargs *a)
{
    char body[512], start[40], tid[48];
    long st;
    json_t *j;
    time_t t;

    snprintf(body, sizeof body, "bench-tenant-%d", i);
    account(w, h, body, "tenant", a->tenant_key, tid);
    snprintf(body, sizeof body,
             "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"100000.00\"}", tid);
    j = call(h, w->url, "/v1/ledger/deposits", w->admin, body, &st);
    must(j, st, 201, "id", "deposit");
    json_decref(j);
    a->start_ms = (wall_ms() / 1000 - 59) * 1000;
    t = (time_t)(a->start_ms / 1000);
    strftime(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    snprintf(body, sizeof body,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":1,\"profile\":\"llm-train\","
             "\"wall_ms\":3600000,\"start\":\"%s\",\"offer_id\":\"%s\"}",
             start, w->offer);
    j = call(h, w->url, "/v1/orders", a->tenant_key, body, &st);
    snprintf(a->order, sizeof a->order, "%s", must(j, st, 201, "id", "order"));
    json_decref(j);
}

/* Batches of 100 signed 1-ms records, back to back from the order's start. */
static void presign(struct world *w, struct uargs *a, int nbatches)
{
    unsigned char sig[64];
    long long t = a->start_ms;

    a->bodies = calloc((size_t)nbatches, sizeof *a->bodies);
    a->nbodies = nbatches;
    for (int b = 0; b < nbatches; b++) {
        json_t *items = json_array();
        for (int k = 0; k < BATCH; k++, t++) {
            char rid[48], sighex[129];
            json_t *rec;
            char *canon, *m;
            size_t cl;
            snprintf(rid, sizeof rid, "%s-%d-%d", a->order + 20, b, k);
            rec = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:s}", "record_id", rid, "order_id",
                            a->order, "device", "nvidia-h100-sxm", "count", 1, "start_ms",
                            (json_int_t)t, "end_ms", (json_int_t)(t + 1), "profile", "llm-train");
            canon = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
            cl = strlen(canon);
            m = malloc(15 + cl);
            memcpy(m, "tally-usage-v1\n", 15);
            memcpy(m + 15, canon, cl);
            crypto_sign_detached(sig, NULL, (unsigned char *)m, 15 + cl, w->sk);
            sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
            json_array_append_new(items, json_pack("{s:o, s:s, s:s}", "record", rec, "key_id",
                                                   w->key_id, "signature", sighex));
            free(m);
            free(canon);
        }
        {
            json_t *body = json_pack("{s:o}", "records", items);
            a->bodies[b] = json_dumps(body, JSON_COMPACT);
            json_decref(body);
        }
    }
}

static void *usage_thread(void *arg)
{
    struct uargs *a = arg;
    CURL *h = curl_easy_init();

    for (int b = 0; b < a->nbodies && now_s() < a->until; b++) {
        long st;
        json_t *j = call(h, a->w->url, "/v1/usage", a->w->prov_key, a->bodies[b], &st);
        a->requests++;
        if (st == 200) {
            a->accepted += (unsigned long long)json_integer_value(json_object_get(j, "accepted"));
            a->rejected += (unsigned long long)json_integer_value(json_object_get(j, "rejected"));
        }
        json_decref(j);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static int bench_usage(const char *url, const char *admin, int conns, double secs)
{
    struct world w = {.url = url, .admin = admin};
    struct uargs a[MAX_CONNS];
    pthread_t th[MAX_CONNS];
    unsigned long long acc = 0, rej = 0, req = 0;
    CURL *h = curl_easy_init();
    double t0, el;
    int lfd, nb = 55000 / BATCH; /* 55 s of 1-ms records per order: all in the past */

    memset(a, 0, sizeof a);
    if ((lfd = listen_any(&w.endpoint_port)) < 0)
        return 1;
    build_world(&w, h, conns);
    for (int i = 0; i < conns; i++) {
        a[i].w = &w;
        order_for(&w, h, i, &a[i]);
        presign(&w, &a[i], nb);
    }
    curl_easy_cleanup(h);
    t0 = now_s();
    for (int i = 0; i < conns; i++) {
        a[i].until = t0 + secs;
        pthread_create(&th[i], NULL, usage_thread, &a[i]);
    }
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        acc += a[i].accepted;
        rej += a[i].rejected;
        req += a[i].requests;
        for (int b = 0; b < a[i].nbodies; b++)
            free(a[i].bodies[b]);
        free(a[i].bodies);
    }
    el = now_s() - t0;
    close(lfd);
    printf("{\"bench\":\"usage_records_http\",\"connections\":%d,\"batch\":%d,\"seconds\":%.1f,"
           "\"requests\":%llu,\"accepted\":%llu,\"rejected\":%llu,\"accepted_per_s\":%.0f}\n",
           conns, BATCH, el, req, acc, rej, (double)acc / el);
    return rej ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc == 3 && !strcmp(argv[1], "verify"))
        return bench_verify(atof(argv[2]));
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "insert"))
        return bench_insert(argv[2], atof(argv[3]), argc == 5 ? atoi(argv[4]) : 2);
    if (argc == 6 && !strcmp(argv[1], "usage") && atoi(argv[4]) >= 1 && atoi(argv[4]) <= MAX_CONNS)
        return bench_usage(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: bench-market verify SECONDS | insert CONNINFO SECONDS [THREADS] | "
                    "usage URL ADMIN_KEY CONNECTIONS SECONDS\n");
    return 2;
}
