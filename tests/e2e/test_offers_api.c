/*
 * End-to-end: provider keys, offers and their identity challenge, resolution of
 * computing resource identifiers, cache invalidation, and endpoint health
 * probed against a real TCP listener.
 *
 * Hand-checked CU rating: one H100 SXM on llm-train delivers 1 424 736 mCU per
 * device-hour (catalog 2026-11-25.1, efficiency v1: 8 devices for one hour are
 * 11 397 888 mCU, see test_metering_api.c), so a node of 8 delivers 11 397 888.
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
#include <time.h>
#include <unistd.h>

static char ci[1024];
static tallyd_proc srv;
static json_t *prov, *prov2, *ten;
static unsigned char pk[32], sk[64];

static const char *key(json_t *a)
{
    return json_string_value(json_object_get(a, "api_key"));
}

static const char *sv(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long iv(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void start(const char *const *env)
{
    cr_assert(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, env);
    prov = tallyd_account(&srv, "gpu-provider", "provider");
    prov2 = tallyd_account(&srv, "other-provider", "provider");
    ten = tallyd_account(&srv, "tenant-a", "tenant");
}

static void setup(void)
{
    start(NULL);
}

static void teardown(void)
{
    json_decref(prov);
    json_decref(prov2);
    json_decref(ten);
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(offers_api, .init = setup, .fini = teardown, .timeout = 120);

static http_resp req(const char *method, const char *path, const char *k, const char *body)
{
    return http_request(&srv, method, path, k, NULL, body, body ? strlen(body) : 0);
}

/* Status of a request whose body we do not need. */
static long status_of(const char *method, const char *path, const char *k, const char *body)
{
    http_resp r = req(method, path, k, body);
    long s = r.status;
    http_resp_free(&r);
    return s;
}

static void b64(char *out, size_t cap, const unsigned char *bin, size_t n)
{
    sodium_bin2base64(out, cap, bin, n, sodium_base64_VARIANT_ORIGINAL);
}

/* Register pub for provider p; returns the key id (static buffer). */
static const char *add_key(json_t *p, const unsigned char *pub)
{
    static char id[48];
    char enc[64], body[160];
    http_resp r;

    b64(enc, sizeof enc, pub, 32);
    snprintf(body, sizeof body, "{\"public_key\":\"%s\",\"label\":\"laptop\"}", enc);
    r = req("POST", "/v1/provider-keys", key(p), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof id, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    return id;
}

static const char *make_policy(json_t *p)
{
    static char id[48];
    http_resp r = req("POST", "/v1/pricing/policies", key(p),
                      "{\"name\":\"h100\",\"document\":{\"currency\":\"USD\",\"rules\":[{\"id\":"
                      "\"b\",\"kind\":\"base\",\"match\":{\"device_class\":\"gpu\"},\"per_cu\":"
                      "\"0.002\",\"per_device_hour\":\"0.50\"}]}}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof id, "%s", sv(r.json, "id"));
    http_resp_free(&r);
    return id;
}

/* POST /v1/offers; the caller frees the response. */
static http_resp create_offer(json_t *p, const char *ident, const char *policy,
                              const char *endpoint)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"identifier\":\"%s\",\"device\":\"nvidia-h100-sxm\",\"devices_per_node\":8,"
             "\"nodes\":4,\"zone\":\"a\",\"endpoint\":\"%s\",\"policy_id\":\"%s\","
             "\"residency\":[\"EU\",\"gdpr\"]}",
             ident, endpoint, policy);
    return req("POST", "/v1/offers", key(p), body);
}

/* Sign an offer's challenge_message with sec; hex signature into out[129]. */
static void sign_challenge(json_t *offer, const unsigned char *sec, char *out)
{
    const char *msg = sv(offer, "challenge_message");
    unsigned char sig[64];
    cr_assert(msg);
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, strlen(msg), sec);
    sodium_bin2hex(out, 129, sig, sizeof sig);
}

static long publish(json_t *p, const char *offer_id, const char *key_id, const char *sig)
{
    char path[128], body[300];
    snprintf(path, sizeof path, "/v1/offers/%s/publish", offer_id);
    snprintf(body, sizeof body, "{\"key_id\":\"%s\",\"signature\":\"%s\"}", key_id, sig);
    return status_of("POST", path, key(p), body);
}

/* Create and publish an offer; its id into id (48 bytes). */
static void published_offer(const char *ident, const char *endpoint, char *id)
{
    char kid[48], sig[129];
    http_resp r;

    snprintf(kid, sizeof kid, "%s", add_key(prov, pk));
    r = create_offer(prov, ident, make_policy(prov), endpoint);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, 48, "%s", sv(r.json, "id"));
    sign_challenge(r.json, sk, sig);
    http_resp_free(&r);
    cr_assert_eq(publish(prov, id, kid, sig), 200);
}

Test(offers_api, provider_keys_add_list_revoke)
{
    unsigned char pk2[32], sk2[64], zero[32] = {0};
    char hex[65], body[200], path[80], kid[48];
    http_resp r;

    crypto_sign_keypair(pk2, sk2);
    snprintf(kid, sizeof kid, "%s", add_key(prov, pk));
    /* the same key again, by anyone: 409 */
    sodium_bin2hex(hex, sizeof hex, pk, 32);
    snprintf(body, sizeof body, "{\"public_key\":\"%s\"}", hex);
    cr_assert_eq(status_of("POST", "/v1/provider-keys", key(prov2), body), 409);
    /* a second key as hex */
    sodium_bin2hex(hex, sizeof hex, pk2, 32);
    snprintf(body, sizeof body, "{\"public_key\":\"%s\"}", hex);
    r = req("POST", "/v1/provider-keys", key(prov), body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "public_key_hex"), hex);
    cr_assert(json_is_null(json_object_get(r.json, "revoked_at")));
    http_resp_free(&r);
    /* bad keys: not base64/hex, 31 bytes, a small-order point, unknown field */
    cr_assert_eq(status_of("POST", "/v1/provider-keys", key(prov), "{\"public_key\":\"nope!\"}"),
                 422);
    cr_assert_eq(status_of("POST", "/v1/provider-keys", key(prov),
                           "{\"public_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"}"),
                 422);
    sodium_bin2hex(hex, sizeof hex, zero, 32);
    snprintf(body, sizeof body, "{\"public_key\":\"%s\"}", hex);
    r = req("POST", "/v1/provider-keys", key(prov), body);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "field"), "public_key");
    http_resp_free(&r);
    cr_assert_eq(status_of("POST", "/v1/provider-keys", key(prov), "{\"public_key\":1,\"x\":1}"),
                 422);
    /* tenants register no keys */
    cr_assert_eq(status_of("POST", "/v1/provider-keys", key(ten), body), 403);
    /* list: own keys only; admin sees all */
    r = req("GET", "/v1/provider-keys", key(prov), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2, "%s", r.body);
    http_resp_free(&r);
    r = req("GET", "/v1/provider-keys", key(prov2), NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 0, "%s", r.body);
    http_resp_free(&r);
    r = req("GET", "/v1/provider-keys?limit=1", srv.admin_key, NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "has_more")));
    http_resp_free(&r);
    /* revoke: not another provider's, once, then 409 */
    snprintf(path, sizeof path, "/v1/provider-keys/%s", kid);
    cr_assert_eq(status_of("DELETE", path, key(prov2), NULL), 404);
    r = req("DELETE", path, key(prov), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_string(json_object_get(r.json, "revoked_at")));
    http_resp_free(&r);
    cr_assert_eq(status_of("DELETE", path, key(prov), NULL), 409);
    cr_assert_eq(status_of("DELETE", "/v1/provider-keys/pk_nope", key(prov), NULL), 404);
}

Test(offers_api, challenge_signature_and_identity)
{
    unsigned char pk2[32], sk2[64];
    char kid[48], kid2[48], sig[129], bad[129], id[48], path[128], pol[48];
    http_resp r;

    crypto_sign_keypair(pk2, sk2);
    snprintf(kid, sizeof kid, "%s", add_key(prov, pk));
    snprintf(kid2, sizeof kid2, "%s", add_key(prov, pk2));
    snprintf(pol, sizeof pol, "%s", make_policy(prov));
    r = create_offer(prov, "EU-West-1/Acme/h100-pod-1", pol, "127.0.0.1:9");
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "identifier"), "eu-west-1/acme/h100-pod-1");
    cr_assert_str_eq(sv(r.json, "region"), "eu-west-1");
    cr_assert_str_eq(sv(r.json, "state"), "pending");
    cr_assert_eq(strlen(sv(r.json, "challenge")), 64);
    snprintf(id, sizeof id, "%s", sv(r.json, "id"));
    {
        char want[512];
        snprintf(want, sizeof want, "tally-offer-challenge-v1\n%s\neu-west-1/acme/h100-pod-1\n%s",
                 id, sv(r.json, "challenge"));
        cr_assert_str_eq(sv(r.json, "challenge_message"), want);
    }
    sign_challenge(r.json, sk, sig);
    sign_challenge(r.json, sk2, bad); /* a real signature by the other key */
    http_resp_free(&r);
    /* the challenge is shown to its owner only */
    snprintf(path, sizeof path, "/v1/offers/%s", id);
    cr_assert_eq(status_of("GET", path, key(ten), NULL), 404); /* pending: not public */
    /* signature by a different key than the one named: refused */
    cr_assert_eq(publish(prov, id, kid, bad), 422);
    /* a flipped bit: refused */
    {
        char flipped[129];
        memcpy(flipped, sig, sizeof flipped);
        flipped[0] = flipped[0] == '0' ? '1' : '0';
        cr_assert_eq(publish(prov, id, kid, flipped), 422);
    }
    /* revoked key: refused even with a good signature by it */
    {
        char kp[80], sig2[129];
        r = req("GET", path, key(prov), NULL);
        sign_challenge(r.json, sk2, sig2);
        http_resp_free(&r);
        snprintf(kp, sizeof kp, "/v1/provider-keys/%s", kid2);
        cr_assert_eq(status_of("DELETE", kp, key(prov), NULL), 200);
        {
            char body[300], pp[160];
            snprintf(pp, sizeof pp, "%s/publish", path);
            snprintf(body, sizeof body, "{\"key_id\":\"%s\",\"signature\":\"%s\"}", kid2, sig2);
            r = req("POST", pp, key(prov), body);
            cr_assert_eq(r.status, 422, "%s", r.body);
            cr_assert(strstr(sv(r.json, "detail"), "revoked"), "%s", r.body);
            http_resp_free(&r);
        }
    }
    /* another provider cannot publish it (not theirs) */
    cr_assert_eq(publish(prov2, id, kid, sig), 404);
    /* the right key and signature publish it, once */
    cr_assert_eq(publish(prov, id, kid, sig), 200);
    cr_assert_eq(publish(prov, id, kid, sig), 409);
    r = req("GET", path, key(ten), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "state"), "published");
    cr_assert_str_eq(sv(r.json, "verified_key_id"), kid);
    cr_assert_null(json_object_get(r.json, "challenge"));
    http_resp_free(&r);
    /* the handle "acme" is now the provider's: another provider is refused */
    r = create_offer(prov2, "eu-west-1/acme/mine", make_policy(prov2), "127.0.0.1:9");
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert(strstr(sv(r.json, "detail"), "another provider"), "%s", r.body);
    http_resp_free(&r);
    /* and the provider itself cannot use a second handle */
    r = create_offer(prov, "eu-west-1/other/x", pol, "127.0.0.1:9");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(sv(r.json, "detail"), "handle is 'acme'"), "%s", r.body);
    http_resp_free(&r);
    /* the same identifier twice: 409 */
    r = create_offer(prov, "eu-west-1/acme/h100-pod-1", pol, "127.0.0.1:9");
    cr_assert_eq(r.status, 409, "%s", r.body);
    http_resp_free(&r);
}

Test(offers_api, validation_and_roles)
{
    char pol[48], pol2[48];
    http_resp r;

    snprintf(pol, sizeof pol, "%s", make_policy(prov));
    snprintf(pol2, sizeof pol2, "%s", make_policy(prov2));

    r = create_offer(ten, "eu/acme/x", pol, "127.0.0.1:9");
    cr_assert_eq(r.status, 403, "%s", r.body);
    http_resp_free(&r);
    r = create_offer(prov, "eu/acme", pol, "127.0.0.1:9"); /* a prefix, not an identifier */
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(sv(r.json, "field"), "identifier");
    http_resp_free(&r);
    r = create_offer(prov, "eu/ac_me/x", pol, "127.0.0.1:9");
    cr_assert_eq(r.status, 422);
    http_resp_free(&r);
    r = create_offer(prov, "eu/acme/x", pol, "127.0.0.1");
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(sv(r.json, "field"), "endpoint");
    http_resp_free(&r);
    r = create_offer(prov, "eu/acme/x", pol2, "127.0.0.1:9"); /* another provider's policy */
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(sv(r.json, "field"), "policy_id");
    http_resp_free(&r);
    r = req("POST", "/v1/offers", key(prov),
            "{\"identifier\":\"eu/acme/x\",\"device\":\"no-such-gpu\",\"devices_per_node\":8,"
            "\"nodes\":1,\"endpoint\":\"127.0.0.1:9\",\"policy_id\":\"pol_x\"}");
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(sv(r.json, "field"), "device");
    http_resp_free(&r);
    r = req("POST", "/v1/offers", key(prov),
            "{\"identifier\":\"eu/acme/x\",\"device\":\"nvidia-h100-sxm\",\"devices_per_node\":0,"
            "\"nodes\":1,\"endpoint\":\"127.0.0.1:9\",\"policy_id\":\"pol_x\"}");
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(sv(r.json, "field"), "devices_per_node");
    http_resp_free(&r);
    /* nothing was created by any of these */
    r = req("GET", "/v1/offers", srv.admin_key, NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 0, "%s", r.body);
    http_resp_free(&r);
}

Test(offers_api, resolve_full_identifier_and_prefixes)
{
    char id[48], id2[48], path[160];
    http_resp r;
    json_t *rating, *cap;

    published_offer("eu-west-1/acme/pod-1", "127.0.0.1:9", id);
    /* a second offer of the same provider, same region */
    {
        char sig[129];
        const char *kid;
        char kidc[48];
        r = req("GET", "/v1/provider-keys", key(prov), NULL);
        kid = sv(json_array_get(json_object_get(r.json, "data"), 0), "id");
        snprintf(kidc, sizeof kidc, "%s", kid);
        http_resp_free(&r);
        r = create_offer(prov, "eu-west-1/acme/pod-2", make_policy(prov), "127.0.0.1:9");
        snprintf(id2, sizeof id2, "%s", sv(r.json, "id"));
        sign_challenge(r.json, sk, sig);
        http_resp_free(&r);
        cr_assert_eq(publish(prov, id2, kidc, sig), 200);
    }
    r = req("GET", "/v1/resolve/eu-west-1/acme/pod-1", key(ten), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "kind"), "offer");
    cr_assert_str_eq(sv(r.json, "offer_id"), id);
    cr_assert_str_eq(sv(json_object_get(r.json, "location"), "region"), "eu-west-1");
    cr_assert_str_eq(sv(json_object_get(r.json, "location"), "zone"), "a");
    cr_assert_str_eq(sv(r.json, "endpoint"), "127.0.0.1:9");
    cr_assert_str_eq(sv(json_object_get(r.json, "device"), "id"), "nvidia-h100-sxm");
    rating = json_object_get(json_object_get(r.json, "cu_rating"), "llm-train");
    cr_assert_eq(iv(rating, "mcu_per_device_hour"), 1424736, "%s", r.body);
    cr_assert_eq(iv(rating, "mcu_per_node_hour"), 11397888);
    cap = json_object_get(r.json, "capacity");
    cr_assert_eq(iv(cap, "total_devices"), 32);
    cr_assert_eq(iv(cap, "free_devices"), 32);
    cr_assert(json_is_string(json_object_get(cap, "as_of")));
    cr_assert(iv(cap, "age_ms") >= 0);
    cr_assert_eq(iv(json_object_get(r.json, "price_policy"), "version"), 1);
    cr_assert_eq(json_array_size(json_object_get(r.json, "residency")), 2);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "residency"), 0)),
                     "eu");
    cr_assert(json_is_object(json_object_get(r.json, "health")));
    http_resp_free(&r);
    /* upper case resolves to the same offer */
    r = req("GET", "/v1/resolve/EU-West-1/ACME/Pod-1", key(ten), NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(sv(r.json, "offer_id"), id);
    http_resp_free(&r);
    /* prefixes: region lists handles, region/handle lists offers */
    r = req("GET", "/v1/resolve/eu-west-1", key(ten), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "kind"), "region");
    cr_assert_eq(json_array_size(json_object_get(r.json, "children")), 1, "%s", r.body);
    cr_assert_str_eq(sv(json_array_get(json_object_get(r.json, "children"), 0), "identifier"),
                     "eu-west-1/acme");
    cr_assert_eq(iv(r.json, "offers"), 2);
    http_resp_free(&r);
    r = req("GET", "/v1/resolve/eu-west-1/acme", key(prov2), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_array_size(json_object_get(r.json, "children")), 2);
    cr_assert_str_eq(sv(json_array_get(json_object_get(r.json, "children"), 1), "identifier"),
                     "eu-west-1/acme/pod-2");
    http_resp_free(&r);
    /* unknown: 404; malformed: 422; too many labels: no such route (404) */
    cr_assert_eq(status_of("GET", "/v1/resolve/eu-west-1/acme/pod-9", key(ten), NULL), 404);
    cr_assert_eq(status_of("GET", "/v1/resolve/us-east", key(ten), NULL), 404);
    cr_assert_eq(status_of("GET", "/v1/resolve/eu-west-1/acme/pod_1", key(ten), NULL), 422);
    cr_assert_eq(status_of("GET", "/v1/resolve/-eu", key(ten), NULL), 422);
    cr_assert_eq(status_of("GET", "/v1/resolve/eu-west-1/acme/pod-1/x", key(ten), NULL), 404);
    cr_assert_eq(status_of("GET", "/v1/resolve/eu-west-1", NULL, NULL), 401);
    /* PATCH is visible at once */
    snprintf(path, sizeof path, "/v1/offers/%s", id);
    cr_assert_eq(status_of("PATCH", path, key(prov2), "{\"nodes\":1}"), 404);
    r = req("PATCH", path, key(prov), "{\"nodes\":2,\"residency\":[\"de\"]}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(iv(r.json, "version"), 2);
    http_resp_free(&r);
    r = req("GET", "/v1/resolve/eu-west-1/acme/pod-1", key(ten), NULL);
    cap = json_object_get(r.json, "capacity");
    cr_assert_eq(iv(cap, "total_devices"), 16, "%s", r.body);
    cr_assert_eq(iv(r.json, "offer_version"), 2);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "residency"), 0)),
                     "de");
    http_resp_free(&r);
    /* DELETE (withdraw) is visible at once; not by another provider */
    cr_assert_eq(status_of("DELETE", path, key(prov2), NULL), 404);
    r = req("DELETE", path, key(prov), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(sv(r.json, "state"), "withdrawn");
    http_resp_free(&r);
    cr_assert_eq(status_of("GET", "/v1/resolve/eu-west-1/acme/pod-1", key(ten), NULL), 404);
    cr_assert_eq(status_of("DELETE", path, key(prov), NULL), 409);
    cr_assert_eq(status_of("PATCH", path, key(prov), "{\"nodes\":3}"), 409);
    r = req("GET", "/v1/resolve/eu-west-1/acme", key(ten), NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "children")), 1, "%s", r.body);
    http_resp_free(&r);
    /* lists: tenants see published only; the provider its own withdrawn too */
    r = req("GET", "/v1/offers?region=eu-west-1", key(ten), NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1, "%s", r.body);
    http_resp_free(&r);
    r = req("GET", "/v1/offers?state=withdrawn", key(prov), NULL);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(status_of("GET", "/v1/offers?state=gone", key(prov), NULL), 422);
}

/* ---- health against a real listener -------------------------------------------------------- */

static const char *const probe_env[] = {"TALLY_PROBE_INTERVAL_MS=200", "TALLY_PROBE_FAILURES=2",
                                        "TALLY_PROBE_TIMEOUT_MS=200", NULL};

static void setup_probe(void)
{
    start(probe_env);
}

TestSuite(offers_health, .init = setup_probe, .fini = teardown, .timeout = 120);

static int listen_port(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind %d", port);
    cr_assert(listen(fd, 64) == 0);
    return fd;
}

/* Poll the offer's health until it reports want (within 10 s). */
static void wait_health(const char *id, const char *want)
{
    char path[128], last[32] = "";
    snprintf(path, sizeof path, "/v1/offers/%s/health", id);
    for (int i = 0; i < 200; i++) {
        http_resp r = req("GET", path, key(ten), NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        snprintf(last, sizeof last, "%s", sv(r.json, "status"));
        http_resp_free(&r);
        if (!strcmp(last, want))
            return;
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    cr_assert_fail("health of %s stayed '%s', expected '%s'", id, last, want);
}

Test(offers_health, down_when_the_listener_closes_up_when_it_reopens)
{
    int port = free_port(), fd = listen_port(port);
    char endpoint[32], id[48];
    http_resp r;

    snprintf(endpoint, sizeof endpoint, "127.0.0.1:%d", port);
    published_offer("eu-west-1/acme/probed", endpoint, id);
    wait_health(id, "up");
    r = req("GET", "/v1/resolve/eu-west-1/acme/probed", key(ten), NULL);
    cr_assert_str_eq(sv(json_object_get(r.json, "health"), "status"), "up", "%s", r.body);
    cr_assert(json_number_value(json_object_get(json_object_get(r.json, "health"), "srtt_ms")) > 0);
    http_resp_free(&r);
    close(fd);
    wait_health(id, "down");
    r = req("GET", "/v1/resolve/eu-west-1/acme/probed", key(ten), NULL);
    cr_assert_str_eq(sv(json_object_get(r.json, "health"), "status"), "down", "%s", r.body);
    http_resp_free(&r);
    r = req("GET", "/metrics", NULL, NULL);
    cr_assert(strstr(r.body, "tally_market_offers_down 1"), "%s", r.body);
    http_resp_free(&r);
    fd = listen_port(port);
    wait_health(id, "up");
    close(fd);
}

Test(offers_health, a_dns_name_endpoint_is_resolved_and_probed)
{
    int port = free_port(), fd = listen_port(port);
    char endpoint[40], id[48], path[128];
    http_resp r;

    /* "localhost" comes from /etc/hosts through the asynchronous resolver */
    snprintf(endpoint, sizeof endpoint, "LocalHost:%d", port);
    published_offer("eu-west-1/acme/named", endpoint, id);
    wait_health(id, "up");
    snprintf(path, sizeof path, "/v1/offers/%s/health", id);
    r = req("GET", path, key(ten), NULL);
    cr_assert_eq(r.status, 200);
    {
        char want[40];
        snprintf(want, sizeof want, "localhost:%d", port);
        cr_assert_str_eq(sv(r.json, "endpoint"), want); /* canonical, as published */
    }
    http_resp_free(&r);
    close(fd);
    wait_health(id, "down");
}

/* ---- a second process sees every change within about a second ------------------------- */

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Poll GET path on q until its status is want (and, when nodes > 0, the resolved
 * total_devices is nodes x 8); returns the seconds it took (fails after 5 s). */
static double wait_on(const tallyd_proc *q, const char *path, long want, long long total)
{
    double t0 = mono_s();
    long last = 0;

    for (int i = 0; i < 250; i++) {
        http_resp r = http_request(q, "GET", path, key(ten), NULL, NULL, 0);
        int ok = r.status == want &&
                 (total == 0 || iv(json_object_get(r.json, "capacity"), "total_devices") == total);
        last = r.status;
        http_resp_free(&r);
        if (ok)
            return mono_s() - t0;
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    cr_assert_fail("%s on the second process stayed %ld, expected %ld", path, last, want);
    return -1;
}

Test(offers_api, another_process_sees_changes_within_a_second)
{
    char secret[600], signing[600], id[48], path[128];
    const char *const env[] = {secret, signing, NULL};
    const char *rpath = "/v1/resolve/eu-west-1/acme/shared";
    tallyd_proc other;
    double took;

    /* the same API-key hashing secret, so the tenant's key works on both */
    snprintf(secret, sizeof secret, "TALLY_KEY_HASH_SECRET=%s/hash.secret", srv.dir);
    snprintf(signing, sizeof signing, "TALLY_SIGNING_KEY=%s/signing.key", srv.dir);
    tallyd_start(&other, ci, env);
    cr_assert_eq(wait_on(&other, rpath, 404, 0) < 1, 1);
    published_offer("eu-west-1/acme/shared", "127.0.0.1:9", id);
    took = wait_on(&other, rpath, 200, 32);
    cr_assert(took < 2.5, "the second process saw the publication after %.2f s", took);
    snprintf(path, sizeof path, "/v1/offers/%s", id);
    cr_assert_eq(status_of("PATCH", path, key(prov), "{\"nodes\":1}"), 200);
    took = wait_on(&other, rpath, 200, 8);
    cr_assert(took < 2.5, "the second process saw the change after %.2f s", took);
    cr_assert_eq(status_of("DELETE", path, key(prov), NULL), 200);
    took = wait_on(&other, rpath, 404, 0);
    cr_assert(took < 2.5, "the second process saw the withdrawal after %.2f s", took);
    tallyd_stop(&other);
}
