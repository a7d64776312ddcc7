/*
 * router.h - match a method and path against a table of routes.
 *
 * Patterns are literal segments and {name} parameters ("/v1/accounts/{id}/keys");
 * a final {name*} takes the rest of the path, slashes included. The table is
 * data: reading it tells you the whole API. Matching is pure and allocation-free.
 */
#ifndef TALLY_ROUTER_H
#define TALLY_ROUTER_H

#include <stddef.h>

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_POST = 1 << 1,
    HTTP_PUT = 1 << 2,
    HTTP_DELETE = 1 << 3,
    HTTP_PATCH = 1 << 4,
    HTTP_HEAD = 1 << 5,
    HTTP_OPTIONS = 1 << 6,
};

#define ROUTE_MAX_PARAMS 4
#define ROUTE_PARAM_MAX 256

typedef struct route_params {
    int n;
    char names[ROUTE_MAX_PARAMS][32];
    char values[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
} route_params;

typedef struct route {
    int method;            /* one http_method */
    const char *pattern;   /* also the route's label in logs and metrics */
    unsigned roles;        /* bit mask of roles allowed; 0 = no authentication */
    void (*handler)(void); /* opaque to the router: cast back by the caller */
    const char *query;     /* query parameters it accepts, space-separated; NULL = none */
} route;

enum router_result { ROUTER_MATCH, ROUTER_NOT_FOUND, ROUTER_METHOD_NOT_ALLOWED };

/*
 * router_match - find the route for method and path (no query string).
 * On ROUTER_MATCH, *out is the route and params holds the decoded parameters.
 * On ROUTER_METHOD_NOT_ALLOWED, allow receives e.g. "GET, POST".
 * HEAD matches GET routes. Parameters are percent-decoded; an empty parameter,
 * one over ROUTE_PARAM_MAX, or a bad escape does not match.
 */
enum router_result router_match(const route *table, size_t n, int method, const char *path,
                                const route **out, route_params *params, char *allow,
                                size_t allowlen);

/* router_param - the value of a named parameter, or NULL. */
const char *router_param(const route_params *p, const char *name);

/* router_query_allows - whether r accepts a query parameter called name (exact, case-sensitive). */
int router_query_allows(const route *r, const char *name);

/* router_method_name - "GET" for HTTP_GET and so on. */
const char *router_method_name(int method);

#endif
