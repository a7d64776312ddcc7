/*
 * End-to-end: an external scheduler (TALLY_SCHEDULER_URL). The test runs a
 * real HTTP server in a thread that answers the placement request with the
 * built-in ranking reversed; tallyd must follow it and say "external". When
 * the external scheduler answers too late (beyond TALLY_SCHEDULER_TIMEOUT_MS)
 * or with an error, the built-in ranking stands, the placement says why, and
 * /metrics counts the fallback.
 */
#include "testdb.h"
#include "testhttp.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
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
static int ext_port, lfd1, lfd2;
static volatile int mode;    /* 0 reverse, 1 too slow, 2 HTTP 500 */
static char received[2][48]; /* offer ids in the order tallyd sent them */
static struct event_base *ext_base;
static pthread_t ext_thread;

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

/* ---- the external scheduler --------------------------------------------------------------- */

static void rank_handler(struct evhttp_request *req, void *arg)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req), *out = evbuffer_new();
    size_t n = evbuffer_get_length(in);
    char *text = malloc(n + 1);
    json_t *j, *offers, *ranking = json_array();
    char *reply;

    (void)arg;
    evbuffer_copyout(in, text, n);
    text[n] = '\0';
    j = json_loads(text, 0, NULL);
    offers = json_object_get(j, "offers");
    for (size_t i = json_array_size(offers); i-- > 0;) {
        const char *id = sv(json_array_get(offers, i), "id");
        if (i < 2)
            snprintf(received[i], sizeof received[i], "%s", id);
        json_array_append_new(ranking, json_string(id));
    }
    if (mode == 1)
        usleep(1000000);
    reply = json_dumps(json_pack("{s:o}", "ranking", ranking), JSON_COMPACT);
    evbuffer_add(out, reply, strlen(reply));
    evhttp_send_reply(req, mode == 2 ? 500 : 200, "OK", out);
    evbuffer_free(out);
    free(reply);
    free(text);
    json_decref(j);
}

static void *ext_main(void *arg)
{
    (void)arg;
    event_base_dispatch(ext_base);
    return NULL;
}

static void ext_start(void)
{
    struct evhttp *h;

    evthread_use_pthreads(); /* the loop is stopped from the test's thread */
    ext_base = event_base_new();
    h = evhttp_new(ext_base);
    ext_port = free_port();
    cr_assert_eq(evhttp_bind_socket(h, "127.0.0.1", (unsigned short)ext_port), 0);
    evhttp_set_cb(h, "/rank", rank_handler, NULL);
    pthread_create(&ext_thread, NULL, ext_main, NULL);
}

/* ---- world ------------------------------------------------------------------------------------
 */

static int listen_any(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 16), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static void publish(const char *name, int port)
{
    char body[1024], msg[512], path[128], sighex[129], ident[128], id[48];
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
    snprintf(id, sizeof id, "%s", sv(r.json, "id"));
    snprintf(msg, sizeof msg, "tally-offer-challenge-v1\n%s\n%s\n%s", id, ident,
             sv(r.json, "challenge"));
    http_resp_free(&r);
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), sk);
    sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
    snprintf(path, sizeof path, "/v1/offers/%s/publish", id);
    snprintf(body, sizeof body, "{\"key_id\":\"%s\",\"signature\":\"%s\"}", key_id, sighex);
    r = post(path, key(prov), body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
}

static void setup(void)
{
    static char url_env[128];
    const char *env[] = {url_env, "TALLY_SCHEDULER_TIMEOUT_MS=300", NULL};
    char hex[65], body[256];
    int p1 = 0, p2 = 0;
    http_resp r;

    cr_assert(sodium_init() >= 0);
    ext_start();
    snprintf(url_env, sizeof url_env, "TALLY_SCHEDULER_URL=http://127.0.0.1:%d/rank", ext_port);
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
    lfd1 = listen_any(&p1);
    lfd2 = listen_any(&p2);
    publish("pool-a", p1);
    publish("pool-b", p2);
}

static void teardown(void)
{
    json_decref(prov);
    json_decref(ten);
    tallyd_stop(&srv);
    testdb_drop(ci);
    close(lfd1);
    close(lfd2);
    event_base_loopbreak(ext_base);
    pthread_join(ext_thread, NULL);
}

TestSuite(market_external, .init = setup, .fini = teardown, .timeout = 90);

static json_t *placement(void)
{
    http_resp r = post("/v1/placements", key(ten),
                       "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
                       "\"wall_ms\":3600000}");
    json_t *j;
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = json_incref(r.json);
    http_resp_free(&r);
    return j;
}

Test(market_external, follows_the_external_ranking_and_falls_back)
{
    json_t *p, *ranked;
    http_resp r;

    sleep(2); /* both offers in the cache */
    mode = 0;
    p = placement();
    ranked = json_object_get(p, "ranked");
    cr_assert_eq(json_array_size(ranked), 2, "%s", json_dumps(p, 0));
    cr_assert_str_eq(sv(p, "scheduler"), "external");
    /* the external scheduler reversed what the built-in one sent it */
    cr_assert_str_eq(sv(json_array_get(ranked, 0), "offer_id"), received[1]);
    cr_assert_str_eq(sv(json_array_get(ranked, 1), "offer_id"), received[0]);
    json_decref(p);

    mode = 1; /* too slow: the built-in ranking stands */
    p = placement();
    cr_assert(!strncmp(sv(p, "scheduler"), "built-in (external scheduler failed", 35), "%s",
              sv(p, "scheduler"));
    cr_assert_str_eq(sv(json_array_get(json_object_get(p, "ranked"), 0), "offer_id"), received[0]);
    json_decref(p);

    usleep(1200000); /* the slow answer is done before the next question */
    mode = 2;        /* an HTTP error: the same */
    p = placement();
    cr_assert(strstr(sv(p, "scheduler"), "HTTP status 500"), "%s", sv(p, "scheduler"));
    json_decref(p);

    r = http_request(&srv, "GET", "/metrics", NULL, NULL, NULL, 0);
    cr_assert(strstr(r.body, "tally_scheduler_external_total{outcome=\"ok\"} 1"), "%s", r.body);
    cr_assert(strstr(r.body, "tally_scheduler_external_total{outcome=\"fallback\"} 2"));
    http_resp_free(&r);
}
