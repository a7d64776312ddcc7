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
#include "testmarket.h"

#include <criterion/criterion.h>
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
static const char *const env[] = {"TALLY_PROBE_INTERVAL_MS=200", "TALLY_PROBE_FAILURES=2",
                                  "TALLY_PROBE_TIMEOUT_MS=100", NULL};

#define key(a) tm_key(a)
#define sv(o, k) tm_str(o, k)
#define post(path, k, body) tm_post(&srv, path, k, NULL, body)
#define listen_on(port) tm_listen(port)

static void setup(void)
{
    tm_market_up(&mk, env);
    tm_deposit(&srv, ten, "500.00");
}

static void teardown(void)
{
    tm_market_down(&mk);
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

    tm_publish_at(&world, "eu-west-1/acme/pool-a", policy, pa, "", a);
    tm_publish_at(&world, "eu-west-1/acme/pool-b", policy, pb, "", b);
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
