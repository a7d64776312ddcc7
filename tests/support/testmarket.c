/*
 * testmarket.c - the marketplace set-up end-to-end tests share (see testmarket.h).
 */
#include "testdb.h"
#include "testmarket.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *tm_key(json_t *account)
{
    return json_string_value(json_object_get(account, "api_key"));
}

const char *tm_str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

long long tm_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

http_resp tm_post(const tallyd_proc *srv, const char *path, const char *key, const char *idem,
                  const char *body)
{
    char h[300];
    const char *hdrs[] = {h, NULL};
    snprintf(h, sizeof h, "Idempotency-Key: %s", idem ? idem : "");
    return http_request(srv, "POST", path, key, idem ? hdrs : NULL, body, body ? strlen(body) : 0);
}

int tm_listen(int *port)
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
void tm_world_init(tm_world *w, const tallyd_proc *srv, const char *provider_key)
{
    char hex[65], body[256];
    http_resp r;

    cr_assert(sodium_init() >= 0);
    memset(w, 0, sizeof *w);
    w->srv = srv;
    w->provider_key = provider_key;
    w->listen_fd = tm_listen(&w->port);
    crypto_sign_keypair(w->pk, w->sk);
    sodium_bin2hex(hex, sizeof hex, w->pk, sizeof w->pk);
    snprintf(body, sizeof body, "{\"public_key\":\"%s\",\"label\":\"meter-1\"}", hex);
    r = tm_post(srv, "/v1/provider-keys", provider_key, NULL, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(w->key_id, sizeof w->key_id, "%s", tm_str(r.json, "id"));
    http_resp_free(&r);
}

void tm_market_up(const tm_market *m, const char *const *env)
{
    testdb_create(m->ci, m->cilen);
    tallyd_start(m->srv, m->ci, env);
    *m->prov = tallyd_account(m->srv, "acme-gpu", "provider");
    *m->ten = tallyd_account(m->srv, "tenant-a", "tenant");
    if (m->policy)
        tm_policies(m->srv, tm_key(*m->prov), m->policy);
    tm_world_init(m->world, m->srv, tm_key(*m->prov));
}

void tm_market_down(const tm_market *m)
{
    tm_world_free(m->world);
    json_decref(*m->prov);
    json_decref(*m->ten);
    tallyd_stop(m->srv);
    testdb_drop(m->ci);
}

void tm_world_free(tm_world *w)
{
    if (w->listen_fd > 0)
        close(w->listen_fd);
    w->listen_fd = -1;
}

void tm_publish(tm_world *w, const char *identifier, const char *policy, const char *extra,
                char id[48])
{
    tm_publish_at(w, identifier, policy, w->port, extra, id);
}

void tm_publish_at(tm_world *w, const char *identifier, const char *policy, int port,
                   const char *extra, char id[48])
{
    char body[1536], msg[512], path[128], sighex[129], region[64];
    unsigned char sig[64];
    const char *slash = strchr(identifier, '/');
    http_resp r;

    snprintf(region, sizeof region, "%.*s", slash ? (int)(slash - identifier) : 0, identifier);
    snprintf(body, sizeof body,
             "{\"identifier\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"devices_per_node\":8,"
             "\"nodes\":2,\"zone\":\"%sa\",\"endpoint\":\"127.0.0.1:%d\",\"policy_id\":\"%s\","
             "\"available_from\":\"2026-01-01T00:00:00Z\"%s}",
             identifier, region, port, policy, extra ? extra : "");
    r = tm_post(w->srv, "/v1/offers", w->provider_key, NULL, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, 48, "%s", tm_str(r.json, "id"));
    snprintf(msg, sizeof msg, "tally-offer-challenge-v1\n%s\n%s\n%s", id, identifier,
             tm_str(r.json, "challenge"));
    http_resp_free(&r);
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), w->sk);
    sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
    snprintf(path, sizeof path, "/v1/offers/%s/publish", id);
    snprintf(body, sizeof body, "{\"key_id\":\"%s\",\"signature\":\"%s\"}", w->key_id, sighex);
    r = tm_post(w->srv, path, w->provider_key, NULL, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
}

const char *tm_publish_region(tm_world *w, const char *region, const char *policy)
{
    static char ids[16][48];
    static int n;
    char ident[96];

    snprintf(ident, sizeof ident, "%s/acme/h100-pool", region);
    n = (n + 1) % 16;
    tm_publish(w, ident, policy, "", ids[n]);
    return ids[n];
}

void tm_deposit(const tallyd_proc *srv, json_t *tenant, const char *amount)
{
    char body[256];
    http_resp r;

    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"%s\"}",
             tm_str(tenant, "id"), amount);
    r = tm_post(srv, "/v1/ledger/deposits", srv->admin_key, NULL, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
}

json_t *tm_item(const tm_world *w, const char *rid, const char *order, long long s, long long e,
                const char *reverses, int bad)
{
    json_t *rec = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:s}", "record_id", rid, "order_id",
                            order, "device", "nvidia-h100-sxm", "count", 8, "start_ms",
                            (json_int_t)s, "end_ms", (json_int_t)e, "profile", "llm-train");
    unsigned char sig[64], bpk[32], bsk[64], *m;
    size_t cl, dl = strlen("tally-usage-v1\n");
    char *canon, sighex[129];

    if (reverses)
        json_object_set_new(rec, "reverses", json_string(reverses));
    canon = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    cl = strlen(canon);
    m = malloc(dl + cl);
    memcpy(m, "tally-usage-v1\n", dl);
    memcpy(m + dl, canon, cl);
    crypto_sign_keypair(bpk, bsk);
    crypto_sign_detached(sig, NULL, m, dl + cl, bad ? bsk : w->sk);
    sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
    free(m);
    free(canon);
    return json_pack("{s:o, s:s, s:s}", "record", rec, "key_id", w->key_id, "signature", sighex);
}

void tm_report_ok(const tm_world *w, json_t *items)
{
    json_t *b = json_pack("{s:o}", "records", items), *v;
    char *text = json_dumps(b, JSON_COMPACT);
    http_resp r = tm_post(w->srv, "/v1/usage", w->provider_key, NULL, text);
    size_t i;

    cr_assert_eq(r.status, 200, "%s", r.body);
    json_array_foreach(json_object_get(r.json, "results"), i, v)
        cr_assert_str_eq(tm_str(v, "status"), "accepted", "%s", r.body);
    free(text);
    json_decref(b);
    http_resp_free(&r);
}

http_resp tm_report(const tallyd_proc *srv, json_t *items, const char *k)
{
    json_t *b = json_pack("{s:o}", "records", items);
    char *text = json_dumps(b, JSON_COMPACT);
    http_resp r = tm_post(srv, "/v1/usage", k, NULL, text);
    free(text);
    json_decref(b);
    return r;
}

const char *tm_result(const http_resp *r, size_t i, const char *field)
{
    return tm_str(json_array_get(json_object_get(r->json, "results"), i), field);
}

long long tm_balance(const char *conninfo, json_t *who, const char *purpose)
{
    char sql[512];
    const char *v;
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN ledger_accounts a ON "
             "a.id = e.account_id WHERE %s%s%s AND a.purpose = '%s'",
             who ? "a.owner_id = '" : "a.owner_id IS NULL", who ? tm_str(who, "id") : "",
             who ? "'" : "", purpose);
    v = testdb_exec(conninfo, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return atoll(v);
}

const char *tm_quoted_order(const tallyd_proc *srv, json_t *tenant, const char *policy,
                            const char *offer, const char *idem, long long *start)
{
    static char id[48];
    char body[1024], qbody[512], start_iso[40];
    long long work;
    http_resp r;
    time_t t;

    *start = tm_now_ms() - 50000; /* ordered 50 s ago: usage can be reported at once */
    t = (time_t)(*start / 1000);
    strftime(start_iso, sizeof start_iso, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    *start = (long long)t * 1000;
    snprintf(qbody, sizeof qbody,
             "{\"policy_id\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":"
             "\"llm-train\",\"wall_ms\":60000}",
             policy);
    r = tm_post(srv, "/v1/quotes", tm_key(tenant), NULL, qbody);
    cr_assert_eq(r.status, 201, "%s", r.body);
    work = json_integer_value(json_object_get(json_object_get(r.json, "workload"), "mcu"));
    /* 8 devices x 60 s = 480 device-seconds = 0.480000 at 3.60 per device-hour */
    cr_assert_str_eq(tm_str(r.json, "total"), "0.480000", "%s", r.body);
    snprintf(body, sizeof body,
             "{\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\","
             "\"work_mcu\":%lld,\"quote_id\":\"%s\",\"start\":\"%s\",\"constraints\":{"
             "\"regions\":[\"eu-west-1\"],\"residency\":[\"eu\"],\"currency\":\"USD\"}}",
             work, tm_str(r.json, "id"), start_iso);
    http_resp_free(&r);
    r = tm_post(srv, "/v1/orders", tm_key(tenant), idem, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(tm_str(r.json, "state"), "placed", "%s", r.body);
    cr_assert_str_eq(tm_str(r.json, "offer_id"), offer);
    cr_assert_str_eq(tm_str(r.json, "priced"), "0.480000", "the quote's price is locked: %s",
                     r.body);
    snprintf(id, sizeof id, "%s", tm_str(r.json, "id"));
    http_resp_free(&r);
    /* the same request again replays the same order */
    r = tm_post(srv, "/v1/orders", tm_key(tenant), idem, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(tm_str(r.json, "id"), id);
    cr_assert_str_eq(http_header_value(&r, "idempotent-replayed"), "true");
    http_resp_free(&r);
    return id;
}

void tm_policies(const tallyd_proc *srv, const char *provider_key, char policy[48])
{
    http_resp r = tm_post(srv, "/v1/pricing/policies", provider_key, NULL,
                          "{\"name\":\"H100 pool\",\"document\":{\"currency\":\"USD\",\"rules\":[{"
                          "\"id\":\"base\",\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},"
                          "\"per_device_hour\":\"3.60\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(policy, 48, "%s", tm_str(r.json, "id"));
    http_resp_free(&r);
    r = tm_post(srv, "/v1/pricing/policies", srv->admin_key, NULL,
                "{\"name\":\"platform\",\"document\":{\"currency\":\"USD\",\"scope\":\"platform\","
                "\"rules\":[{\"id\":\"take\",\"kind\":\"platform_fee\",\"take_ppm\":50000,"
                "\"payer\":\"provider\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
}
