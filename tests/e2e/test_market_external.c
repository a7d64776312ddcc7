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
#include "testmarket.h"

#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *ten;
static tm_world world;
static char policy[48];
static const tm_market mk = {ci, sizeof ci, &srv, &prov, &ten, &world, policy};
static int ext_port, lfd1, lfd2;
static volatile int mode;    /* 0 reverse, 1 too slow, 2 HTTP 500 */
static char received[2][48]; /* offer ids in the order tallyd sent them */
static struct event_base *ext_base;
static pthread_t ext_thread;

#define key(a) tm_key(a)
#define sv(o, k) tm_str(o, k)
#define post(path, k, body) tm_post(&srv, path, k, NULL, body)

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

/* ---- world ------------------------------------------------------------------------------- */

static void setup(void)
{
    static char url_env[128];
    const char *env[] = {url_env, "TALLY_SCHEDULER_TIMEOUT_MS=300", NULL};
    char id[48];
    int p1 = 0, p2 = 0;

    ext_start();
    snprintf(url_env, sizeof url_env, "TALLY_SCHEDULER_URL=http://127.0.0.1:%d/rank", ext_port);
    tm_market_up(&mk, env);
    lfd1 = tm_listen(&p1);
    lfd2 = tm_listen(&p2);
    tm_publish_at(&world, "eu-west-1/acme/pool-a", policy, p1, "", id);
    tm_publish_at(&world, "eu-west-1/acme/pool-b", policy, p2, "", id);
}

static void teardown(void)
{
    tm_market_down(&mk);
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
