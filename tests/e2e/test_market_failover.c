/*
 * End-to-end: failover. Two offers of one provider whose endpoints are real TCP
 * listeners on loopback; the probe cycle is 200 ms and two failures mark an
 * offer down. The order lands on one of them, A (same price; the lower probed
 * RTT wins); closing A's listener moves it to B within a few probe cycles: the old order is
 * 'migrated' and names its successor, the new one 'replaces' it, the old hold
 * is released and only the new one holds money. Then the moved order is
 * started; closing B's listener flags it 'migrating', reopening brings it back
 * to 'running'.
 */
#include "testdb.h"
#include "testhttp.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *ten;
static unsigned char pk[32], sk[64];
static char key_id[48], policy[48];
static const char *const env[] = {"TALLY_PROBE_INTERVAL_MS=200", "TALLY_PROBE_FAILURES=2",
                                  "TALLY_PROBE_TIMEOUT_MS=100", NULL};

static const char *key(json_t *a)
{
    return json_string_value(json_object_get(a, "api_key"));
}

static const char *sv(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static http_resp post(const char *path, const char *k, const char *body)
{
    return http_request(&srv, "POST", path, k, NULL, body, body ? strlen(body) : 0);
}

/* A listening socket on 127.0.0.1:port (port 0 = any); its fd, port in *port. */
static int listen_on(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    socklen_t len = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind port %d", *port);
    cr_assert_eq(listen(fd, 64), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static void publish(const char *name, int port, char *id_out)
{
    char body[1024], msg[512], path[128], sighex[129], ident[128];
    unsigned char sig[64];
    http_resp r;

    snprintf(ident, sizeof ident, "eu-west-1/acme/%s", name);
    snprintf(body, sizeof body,
             "{\"identifier\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"devices_per_node\":8,"
             "\"nodes\":1,\"endpoint\":\"127.0.0.1:%d\",\"policy_id\":\"%s\","
             "\"available_from\":\"2026-01-01T00:00:00Z\"}",
             ident, port, policy);
    r = post("/v1/offers", key(prov), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id_out, 48, "%s", sv(r.json, "id"));
    snprintf(msg, sizeof msg, "tally-offer-challenge-v1\n%s\n%s\n%s", id_out, ident,
             sv(r.json, "challenge"));
    http_resp_free(&r);
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), sk);
    sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
    snprintf(path, sizeof path, "/v1/offers/%s/publish", id_out);
    snprintf(body, sizeof body, "{\"key_id\":\"%s\",\"signature\":\"%s\"}", key_id, sighex);
    r = post(path, key(prov), body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
}

static void setup(void)
{
    char hex[65], body[512];
    http_resp r;

    cr_assert(sodium_init() >= 0);
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, env);
    prov = tallyd_account(&srv, "acme-gpu", "provider");
    ten = tallyd_account(&srv, "tenant-a", "tenant");
    r = post("/v1/pricing/policies", key(prov),
             "{\"name\":\"pool\",\"document\":{\"currency\":\"USD\",\"rules\":[{\"id\":\"base\","
             "\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},\"per_device_hour\":"
             "\"3.60\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(policy, sizeof policy, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    crypto_sign_keypair(pk, sk);
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    snprintf(body, sizeof body, "{\"public_key\":\"%s\"}", hex);
    r = post("/v1/provider-keys", key(prov), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(key_id, sizeof key_id, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"500.00\"}",
             sv(ten, "id"));
    r = post("/v1/ledger/deposits", srv.admin_key, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
}

static void teardown(void)
{
    json_decref(prov);
    json_decref(ten);
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(market_failover, .init = setup, .fini = teardown, .timeout = 120);

/* Poll GET /v1/orders/{id} until its state is `want` (up to ~15 s); the last body. */
static json_t *wait_state(const char *id, const char *want)
{
    char path[128];
    json_t *last = NULL;

    snprintf(path, sizeof path, "/v1/orders/%s", id);
    for (int i = 0; i < 150; i++) {
        http_resp r = http_request(&srv, "GET", path, key(ten), NULL, NULL, 0);
        json_decref(last);
        last = json_incref(r.json);
        http_resp_free(&r);
        if (last && !strcmp(sv(last, "state"), want))
            return last;
        usleep(100000);
    }
    {
        char *log = tallyd_log(&srv);
        size_t n = log ? strlen(log) : 0;
        cr_assert_fail("order %s never became %s: %s\n--- tallyd log (tail) ---\n%s", id, want,
                       last ? sv(last, "state") : "?", log ? log + (n > 3000 ? n - 3000 : 0) : "");
    }
    return NULL;
}

static long long sql_ll(const char *sql)
{
    const char *v = testdb_exec(ci, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return atoll(v);
}

Test(market_failover, orders_move_off_a_down_offer)
{
    int pa = 0, pb = 0;
    int fa = listen_on(&pa), fb = listen_on(&pb), t;
    char a[48], b[48], old[48], neu[48], path[128], tmp[48];
    json_t *o, *ev;
    http_resp r;

    publish("pool-a", pa, a);
    publish("pool-b", pb, b);
    sleep(2); /* the cache registers both endpoints; the probes see them up */
    r = post("/v1/orders", key(ten),
             "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
             "\"wall_ms\":3600000}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    if (!strcmp(sv(r.json, "offer_id"), b)) { /* name the chosen one A */
        memcpy(tmp, a, sizeof tmp), memcpy(a, b, sizeof a), memcpy(b, tmp, sizeof b);
        t = fa, fa = fb, fb = t;
        t = pa, pa = pb, pb = t;
    }
    cr_assert_str_eq(sv(r.json, "offer_id"), a, "%s", r.body);
    snprintf(old, sizeof old, "%s", sv(r.json, "id"));
    http_resp_free(&r);

    close(fa); /* offer A stops answering */
    o = wait_state(old, "migrated");
    ev = json_array_get(json_object_get(o, "events"),
                        json_array_size(json_object_get(o, "events")) - 1);
    snprintf(neu, sizeof neu, "%s", sv(json_object_get(ev, "detail"), "replaced_by"));
    json_decref(o);
    cr_assert(neu[0], "the migration event names the new order");
    o = wait_state(neu, "placed");
    cr_assert_str_eq(sv(o, "offer_id"), b);
    cr_assert_str_eq(sv(o, "replaces"), old);
    json_decref(o);
    /* only the new order's hold reserves money */
    {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM ledger_holds WHERE owner_id = '%s' AND state = 'open'",
                 sv(ten, "id"));
        cr_assert_eq(sql_ll(sql), 1);
    }

    /* the new order starts; B goes down: migrating; B comes back: running */
    snprintf(path, sizeof path, "/v1/orders/%s/start", neu);
    r = post(path, key(prov), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    close(fb);
    json_decref(wait_state(neu, "migrating"));
    fb = listen_on(&pb);
    json_decref(wait_state(neu, "running"));
    close(fb);
}
