/* End-to-end: accounts and API keys over HTTP — roles, scope, idempotency, revocation. */
#include "testdb.h"
#include "testhttp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char ci[1024];
static tallyd_proc srv;

static void setup(void)
{
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, NULL);
}

static void teardown(void)
{
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(accounts_api, .init = setup, .fini = teardown, .timeout = 60);

static const char *str(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

Test(accounts_api, admin_creates_and_reads_accounts)
{
    json_t *t = tallyd_account(&srv, "tenant-one", "tenant");
    char path[128];
    http_resp r;
    cr_assert_eq(strncmp(str(t, "id"), "acc_", 4), 0);
    cr_assert_eq(strncmp(str(t, "api_key"), "tly_", 4), 0);
    cr_assert_eq(strncmp(str(t, "key_id"), "key_", 4), 0);
    snprintf(path, sizeof path, "/v1/accounts/%s", str(t, "id"));
    r = http_request(&srv, "GET", path, srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(str(r.json, "name"), "tenant-one");
    cr_assert_null(json_object_get(r.json, "api_key"));
    http_resp_free(&r);
    /* the account reads itself with its own key */
    r = http_request(&srv, "GET", path, str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    http_resp_free(&r);
    json_decref(t);
}

Test(accounts_api, roles_and_scope_are_enforced)
{
    json_t *a = tallyd_account(&srv, "ta", "tenant"), *b = tallyd_account(&srv, "tb", "tenant");
    json_t *f = tallyd_account(&srv, "fin", "finance");
    char path[128];
    http_resp r;
    /* a tenant cannot list or create accounts */
    r = http_request(&srv, "GET", "/v1/accounts", str(a, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 403, "%s", r.body);
    http_resp_free(&r);
    r = http_request(&srv, "POST", "/v1/accounts", str(f, "api_key"), NULL,
                     "{\"name\":\"x\",\"role\":\"admin\"}", 27);
    cr_assert_eq(r.status, 403, "finance cannot create accounts");
    http_resp_free(&r);
    /* a tenant cannot read another tenant, nor mint keys for it */
    snprintf(path, sizeof path, "/v1/accounts/%s", str(b, "id"));
    r = http_request(&srv, "GET", path, str(a, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 403);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/accounts/%s/keys", str(b, "id"));
    r = http_request(&srv, "POST", path, str(a, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 403);
    http_resp_free(&r);
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM api_keys"), "4", "nothing was minted");
    /* malformed ids are 404 */
    r = http_request(&srv, "GET", "/v1/accounts/acc_nope", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/accounts/acc_00000000000000000000000000", srv.admin_key,
                     NULL, NULL, 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    json_decref(a);
    json_decref(b);
    json_decref(f);
}

Test(accounts_api, validation_names_the_field)
{
    static const struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"{\"role\":\"tenant\"}", "name"},
        {"{\"name\":\"x\"}", "role"},
        {"{\"name\":\"x\",\"role\":\"root\"}", "role"},
        {"{\"name\":5,\"role\":\"tenant\"}", "name"},
        {"{\"name\":\"\",\"role\":\"tenant\"}", "name"},
        {"{\"name\":\"x\",\"role\":\"tenant\",\"extra\":1}", "extra"},
        {"{\"name\":\"a\\u0000b\",\"role\":\"tenant\"}", NULL},
        {"{\"name\":\"a\\nb\",\"role\":\"tenant\"}", "name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_resp r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, NULL, cases[i].body,
                                   strlen(cases[i].body));
        cr_assert(r.status == 422 || r.status == 400, "case %zu: status %ld", i, r.status);
        if (cases[i].field)
            cr_assert_str_eq(str(r.json, "field"), cases[i].field, "case %zu: %s", i, r.body);
        http_resp_free(&r);
    }
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM accounts"), "1");
}

Test(accounts_api, pagination_with_limit_and_after)
{
    char path[128];
    http_resp r;
    for (int i = 0; i < 4; i++)
        json_decref(tallyd_account(&srv, "page", "tenant"));
    r = http_request(&srv, "GET", "/v1/accounts?limit=2", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2);
    cr_assert(json_is_true(json_object_get(r.json, "has_more")));
    snprintf(path, sizeof path, "/v1/accounts?limit=10&after=%s", str(r.json, "next_after"));
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 3);
    cr_assert(json_is_false(json_object_get(r.json, "has_more")));
    cr_assert(json_is_null(json_object_get(r.json, "next_after")));
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/accounts?limit=0", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(str(r.json, "field"), "limit");
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/v1/accounts?after=zzz", srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 422);
    cr_assert_str_eq(str(r.json, "field"), "after");
    http_resp_free(&r);
}

Test(accounts_api, idempotency_key_replays_and_refuses_reuse)
{
    const char *hdr[] = {"Idempotency-Key: create-42", NULL};
    const char *body = "{\"name\":\"idem\",\"role\":\"tenant\"}";
    const char *other = "{\"name\":\"idem2\",\"role\":\"tenant\"}";
    http_resp r1 =
        http_request(&srv, "POST", "/v1/accounts", srv.admin_key, hdr, body, strlen(body));
    http_resp r2 =
        http_request(&srv, "POST", "/v1/accounts", srv.admin_key, hdr, body, strlen(body));
    http_resp r3 =
        http_request(&srv, "POST", "/v1/accounts", srv.admin_key, hdr, other, strlen(other));
    cr_assert_eq(r1.status, 201);
    cr_assert_eq(r2.status, 201, "a replay returns the first status");
    cr_assert_str_eq(str(r1.json, "id"), str(r2.json, "id"));
    cr_assert_str_eq(http_header_value(&r2, "idempotent-replayed"), "true");
    cr_assert(json_is_null(json_object_get(r2.json, "api_key")), "keys are never replayed");
    cr_assert(json_is_true(json_object_get(r2.json, "api_key_withheld")));
    cr_assert_eq(r3.status, 422);
    cr_assert_str_eq(str(r3.json, "field"), "Idempotency-Key");
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM accounts WHERE name LIKE 'idem%'"), "1");
    http_resp_free(&r1);
    http_resp_free(&r2);
    http_resp_free(&r3);
}

Test(accounts_api, keys_can_be_added_listed_and_revoked)
{
    json_t *t = tallyd_account(&srv, "keys", "tenant");
    char path[160];
    http_resp r;
    json_t *k;
    snprintf(path, sizeof path, "/v1/accounts/%s/keys", str(t, "id"));
    r = http_request(&srv, "POST", path, str(t, "api_key"), NULL, "{\"label\":\"ci\"}", 14);
    cr_assert_eq(r.status, 201, "%s", r.body);
    k = json_incref(r.json);
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, str(k, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "the new key works");
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 2);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/accounts/%s/keys/%s", str(t, "id"), str(k, "id"));
    r = http_request(&srv, "DELETE", path, str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_string(json_object_get(r.json, "revoked_at")));
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/accounts/%s", str(t, "id"));
    r = http_request(&srv, "GET", path, str(k, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 401, "a revoked key is refused at once");
    http_resp_free(&r);
    r = http_request(&srv, "GET", path, str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "other keys still work");
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/accounts/%s/keys/key_00000000000000000000000000",
             str(t, "id"));
    r = http_request(&srv, "DELETE", path, str(t, "api_key"), NULL, NULL, 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    json_decref(t);
    json_decref(k);
}
