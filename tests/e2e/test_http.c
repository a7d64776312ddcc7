/* End-to-end: a real tallyd over HTTP — system routes, errors, request ids, logs. */
#include "router.h"
#include "server.h"
#include "testdb.h"
#include "testhttp.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

static void expect_problem(http_resp *r, long status, const char *slug)
{
    char type[128];
    cr_assert_eq(r->status, status, "status %ld, body %s", r->status, r->body);
    cr_assert_str_eq(http_header_value(r, "content-type"), "application/problem+json");
    cr_assert(r->json, "problem body is JSON");
    snprintf(type, sizeof type, "https://tally.dev/problems/%s", slug);
    cr_assert_str_eq(json_string_value(json_object_get(r->json, "type")), type);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "status")), status);
    cr_assert(json_is_string(json_object_get(r->json, "title")));
    cr_assert(http_header_value(r, "x-request-id"));
}

Test(http, healthz_and_readyz)
{
    http_resp r = http_request(&srv, "GET", "/healthz", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/readyz", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "migrations")), "current");
    http_resp_free(&r);
}

Test(http, request_id_is_generated_or_echoed)
{
    const char *hdr[] = {"X-Request-Id: trace-abc.123", NULL};
    const char *bad[] = {"X-Request-Id: has spaces and \"quotes\"", NULL};
    http_resp r = http_request(&srv, "GET", "/healthz", NULL, hdr, NULL, 0);
    cr_assert_str_eq(http_header_value(&r, "x-request-id"), "trace-abc.123");
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/healthz", NULL, bad, NULL, 0);
    cr_assert_eq(strncmp(http_header_value(&r, "x-request-id"), "req_", 4), 0);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/nope", NULL, NULL, NULL, 0);
    cr_assert_eq(strncmp(http_header_value(&r, "x-request-id"), "req_", 4), 0);
    http_resp_free(&r);
}

Test(http, unknown_route_is_404_problem)
{
    http_resp r = http_request(&srv, "GET", "/v1/nothing-here", NULL, NULL, NULL, 0);
    expect_problem(&r, 404, "not-found");
    http_resp_free(&r);
}

Test(http, wrong_method_is_405_with_allow)
{
    http_resp r = http_request(&srv, "PATCH", "/v1/accounts", srv.admin_key, NULL, "{}", 2);
    expect_problem(&r, 405, "method-not-allowed");
    cr_assert_str_eq(http_header_value(&r, "allow"), "GET, POST");
    http_resp_free(&r);
    r = http_request(&srv, "DELETE", "/healthz", NULL, NULL, NULL, 0);
    expect_problem(&r, 405, "method-not-allowed");
    cr_assert_str_eq(http_header_value(&r, "allow"), "GET");
    http_resp_free(&r);
}

Test(http, missing_or_unknown_key_is_401)
{
    const char *paths[] = {"/v1/accounts", "/v1/accounts/acc_00000000000000000000000000"};
    for (int i = 0; i < 2; i++) {
        http_resp r = http_request(&srv, "GET", paths[i], NULL, NULL, NULL, 0);
        expect_problem(&r, 401, "unauthenticated");
        cr_assert(http_header_value(&r, "www-authenticate"));
        http_resp_free(&r);
        r = http_request(&srv, "GET", paths[i], "tly_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                         NULL, NULL, 0);
        expect_problem(&r, 401, "unauthenticated");
        http_resp_free(&r);
        r = http_request(&srv, "GET", paths[i], "not-a-key", NULL, NULL, 0);
        expect_problem(&r, 401, "unauthenticated");
        http_resp_free(&r);
    }
}

Test(http, bad_bodies_are_4xx_problems)
{
    const char *text[] = {"Content-Type: text/plain", NULL};
    char *big;
    size_t n = (1 << 20) + 10;
    http_resp r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, NULL, "{\"name\":", 8);
    expect_problem(&r, 400, "malformed-json");
    http_resp_free(&r);
    r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, NULL,
                     "{\"name\":\"a\",\"name\":\"b\",\"role\":\"tenant\"}", 39);
    expect_problem(&r, 400, "malformed-json"); /* duplicate keys are refused */
    http_resp_free(&r);
    r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, text, "{}", 2);
    expect_problem(&r, 415, "unsupported-media-type");
    http_resp_free(&r);
    r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, NULL, "[1,2]", 5);
    expect_problem(&r, 422, "validation-failed");
    http_resp_free(&r);
    r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, NULL, "\"\xff\xfe\"", 4);
    expect_problem(&r, 400, "malformed-json");
    http_resp_free(&r);
    big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, NULL, big, n);
    expect_problem(&r, 413, "payload-too-large");
    http_resp_free(&r);
    free(big);
    /* Nothing was created by any of these. */
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM accounts"), "1");
}

/* A query parameter the route does not document, one given twice, or a malformed query
 * string is refused before the handler runs (a typo'd filter must not silently list all). */
Test(http, unknown_repeated_or_malformed_query_parameters_are_refused)
{
    static const struct {
        const char *method, *path, *field;
        long status;
    } bad[] = {
        {"GET", "/v1/accounts?order_id=x", "order_id", 422},   /* not a filter of this list */
        {"GET", "/v1/accounts?Limit=5", "Limit", 422},         /* names are case-sensitive */
        {"GET", "/v1/accounts?limit=1&limit=2", "limit", 422}, /* given twice */
        {"GET", "/v1/devices/nvidia-h100-sxm?x=1", "x", 422},
        {"POST", "/v1/accounts?dry_run=1", "dry_run", 422}, /* a route that takes none */
        {"GET", "/v1/accounts?limit", NULL, 400},           /* no '=': malformed */
        {"GET", "/v1/accounts?=5", NULL, 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *body =
            !strcmp(bad[i].method, "POST") ? "{\"name\":\"q\",\"role\":\"tenant\"}" : NULL;
        http_resp r = http_request(&srv, bad[i].method, bad[i].path, srv.admin_key, NULL, body,
                                   body ? strlen(body) : 0);
        expect_problem(&r, bad[i].status,
                       bad[i].status == 400 ? "bad-request" : "validation-failed");
        if (bad[i].field)
            cr_assert_str_eq(json_string_value(json_object_get(r.json, "field")), bad[i].field,
                             "%s: %s", bad[i].path, r.body);
        http_resp_free(&r);
    }
    /* Nothing was created by the refused POST; documented parameters still work. */
    cr_assert_str_eq(testdb_exec(ci, "SELECT count(*) FROM accounts"), "1");
    http_resp r =
        http_request(&srv, "GET", "/v1/accounts?limit=1&after=acc_00000000000000000000000000",
                     srv.admin_key, NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/healthz?", NULL, NULL, NULL, 0); /* an empty query is none */
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
}

Test(http, a_huge_body_is_refused_without_a_crash)
{
    size_t n = 16u << 20;
    char *big = malloc(n);
    http_resp r;
    memset(big, 'x', n);
    r = http_request(&srv, "POST", "/v1/accounts", srv.admin_key, NULL, big, n);
    cr_assert(r.status == 413 || r.status == 0, "status %ld", r.status);
    http_resp_free(&r);
    free(big);
    r = http_request(&srv, "GET", "/healthz", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "server still alive");
    http_resp_free(&r);
}

Test(http, metrics_count_requests)
{
    http_resp r = http_request(&srv, "GET", "/healthz", NULL, NULL, NULL, 0);
    http_resp_free(&r);
    r = http_request(&srv, "GET", "/metrics", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(http_header_value(&r, "content-type"), "text/plain"));
    cr_assert(strstr(r.body, "tally_http_requests_total{method=\"GET\",route=\"/healthz\","
                             "status=\"200\"}"),
              "%s", r.body);
    cr_assert(strstr(r.body, "tally_http_request_duration_seconds_bucket{method=\"GET\","
                             "route=\"/healthz\",le=\"+Inf\"}"));
    cr_assert(strstr(r.body, "tally_db_pool_connections{state=\"idle\"}"));
    cr_assert(strstr(r.body, "tally_http_errors_total"));
    http_resp_free(&r);
}

Test(http, access_log_has_one_json_line_per_request)
{
    const char *hdr[] = {"X-Request-Id: log-check-42", NULL};
    char path[64], *log, *line;
    json_t *j;
    http_resp r;
    snprintf(path, sizeof path, "/v1/accounts/%s", srv.admin_id);
    r = http_request(&srv, "GET", path, srv.admin_key, hdr, NULL, 0);
    cr_assert_eq(r.status, 200);
    http_resp_free(&r);
    usleep(300000); /* access lines are flushed every 50 ms */
    log = tallyd_log(&srv);
    line = strstr(log, "\"request_id\":\"log-check-42\"");
    cr_assert(line, "no access log line for the request:\n%s", log);
    while (line > log && line[-1] != '\n')
        line--;
    line[strcspn(line, "\n")] = '\0';
    j = json_loads(line, 0, NULL);
    cr_assert(j, "log line is JSON: %s", line);
    cr_assert_str_eq(json_string_value(json_object_get(j, "route")), "/v1/accounts/{id}");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "account_id")), srv.admin_id);
    cr_assert(json_is_number(json_object_get(j, "duration_ms")));
    json_decref(j);
    free(log);
}

/* Every route in the table appears, with its method, in schema/openapi.yaml. */
Test(http, openapi_lists_every_route)
{
    http_resp r = http_request(&srv, "GET", "/openapi.yaml", NULL, NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "openapi: 3.1"));
    for (size_t i = 0; i < tally_routes_count; i++) {
        char want[512], method[16];
        const char *p, *end;
        int found = 0;
        snprintf(want, sizeof want, "\n  %s:\n", tally_routes[i].pattern);
        p = strstr(r.body, want);
        cr_assert(p, "openapi.yaml lacks path %s", tally_routes[i].pattern);
        p += strlen(want) - 1;
        end = p;
        /* the path's block ends at the next line indented by exactly two spaces */
        while ((end = strchr(end + 1, '\n')) && end[1] == ' ' && end[2] == ' ' && end[3] == ' ')
            ;
        snprintf(method, sizeof method, "\n    %s:", router_method_name(tally_routes[i].method));
        for (char *m = method; *m; m++)
            *m = (char)(*m >= 'A' && *m <= 'Z' ? *m - 'A' + 'a' : *m);
        for (const char *q = strstr(p, method); q && (!end || q < end); q = NULL)
            found = 1;
        cr_assert(found, "openapi.yaml lacks %s %s", method + 5, tally_routes[i].pattern);
    }
    http_resp_free(&r);
}
