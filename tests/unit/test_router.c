/* Unit tests for server/router.c: matching, parameters, 404 vs 405, Allow. */
#include "router.h"
#include "server.h"

#include <criterion/criterion.h>
#include <string.h>

static void h(void) {}

static const route table[] = {
    {HTTP_GET, "/v1/accounts", 1, h, "limit after"},
    {HTTP_POST, "/v1/accounts", 1, h, NULL},
    {HTTP_GET, "/v1/accounts/{id}", 1, h, NULL},
    {HTTP_DELETE, "/v1/accounts/{id}/keys/{key_id}", 1, h, NULL},
    {HTTP_GET, "/v1/resolve/{name*}", 1, h, NULL},
};
#define N (sizeof table / sizeof table[0])

Test(router, literal_match)
{
    const route *r;
    route_params p;
    cr_assert_eq(router_match(table, N, HTTP_POST, "/v1/accounts", &r, &p, NULL, 0), ROUTER_MATCH);
    cr_assert_eq(r, &table[1]);
    cr_assert_eq(p.n, 0);
}

Test(router, params_are_bound_and_decoded)
{
    const route *r;
    route_params p;
    cr_assert_eq(
        router_match(table, N, HTTP_DELETE, "/v1/accounts/acc_1/keys/key%5F2", &r, &p, NULL, 0),
        ROUTER_MATCH);
    cr_assert_str_eq(router_param(&p, "id"), "acc_1");
    cr_assert_str_eq(router_param(&p, "key_id"), "key_2");
    cr_assert_null(router_param(&p, "nope"));
}

Test(router, rest_parameter_takes_slashes)
{
    const route *r;
    route_params p;
    cr_assert_eq(router_match(table, N, HTTP_GET, "/v1/resolve/eu-west/prov/off", &r, &p, NULL, 0),
                 ROUTER_MATCH);
    cr_assert_str_eq(router_param(&p, "name"), "eu-west/prov/off");
}

Test(router, unknown_path_is_not_found)
{
    const route *r;
    route_params p;
    cr_assert_eq(router_match(table, N, HTTP_GET, "/v1/nothing", &r, &p, NULL, 0),
                 ROUTER_NOT_FOUND);
    cr_assert_eq(router_match(table, N, HTTP_GET, "/v1/accounts/", &r, &p, NULL, 0),
                 ROUTER_NOT_FOUND, "empty parameter must not match");
    cr_assert_eq(router_match(table, N, HTTP_GET, "/v1/accounts/a/b", &r, &p, NULL, 0),
                 ROUTER_NOT_FOUND);
    cr_assert_eq(router_match(table, N, HTTP_GET, "/v1/accounts/%zz", &r, &p, NULL, 0),
                 ROUTER_NOT_FOUND, "bad escape must not match");
    cr_assert_eq(router_match(table, N, HTTP_GET, "/v1/accounts/%00", &r, &p, NULL, 0),
                 ROUTER_NOT_FOUND, "NUL escape must not match");
}

Test(router, wrong_method_lists_allow)
{
    const route *r;
    route_params p;
    char allow[64];
    cr_assert_eq(router_match(table, N, HTTP_PUT, "/v1/accounts", &r, &p, allow, sizeof allow),
                 ROUTER_METHOD_NOT_ALLOWED);
    cr_assert_str_eq(allow, "GET, POST");
}

Test(router, head_matches_get)
{
    const route *r;
    route_params p;
    cr_assert_eq(router_match(table, N, HTTP_HEAD, "/v1/accounts/x", &r, &p, NULL, 0),
                 ROUTER_MATCH);
    cr_assert_eq(r, &table[2]);
}

Test(router, overlong_parameter_does_not_match)
{
    char path[600] = "/v1/accounts/";
    const route *r;
    route_params p;
    memset(path + strlen(path), 'a', 400);
    cr_assert_eq(router_match(table, N, HTTP_GET, path, &r, &p, NULL, 0), ROUTER_NOT_FOUND);
}

/* The service's own table: no two routes share a method and a pattern. */
Test(router, service_table_has_no_duplicates)
{
    for (size_t i = 0; i < tally_routes_count; i++)
        for (size_t j = i + 1; j < tally_routes_count; j++)
            cr_assert(!(tally_routes[i].method == tally_routes[j].method &&
                        !strcmp(tally_routes[i].pattern, tally_routes[j].pattern)),
                      "duplicate route %s", tally_routes[i].pattern);
}

Test(router, query_allow_list_is_exact)
{
    cr_assert(router_query_allows(&table[0], "limit"));
    cr_assert(router_query_allows(&table[0], "after"));
    cr_assert_not(router_query_allows(&table[0], "limi"));   /* a prefix of a name */
    cr_assert_not(router_query_allows(&table[0], "after ")); /* the separator is not a name */
    cr_assert_not(router_query_allows(&table[0], "Limit"));  /* names are case-sensitive */
    cr_assert_not(router_query_allows(&table[0], ""));
    cr_assert_not(router_query_allows(&table[1], "limit")); /* NULL: takes none */
}
