/*
 * http.c - request intake for every route: request ids, routing, body checks,
 * authentication, replies, access logging and metrics.
 * Invariant: every request gets exactly one reply, sent through http_finish(),
 * which also logs it, counts it and frees its context.
 */
#include "http.h"
#include "ids.h"
#include "log.h"
#include "server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

struct http_ctx {
    struct evhttp_request *req;
    tally_server *srv;
    struct event_base *base;
    const route *route;
    int route_index;
    int method;
    route_params params;
    char request_id[80];
    char *path;
    struct evkeyvalq query;
    int query_parsed;
    json_t *body;
    http_caller caller;
    struct timespec start;
    /* pending database work */
    http_work_fn work;
    http_done_fn done;
    http_query_done_fn query_done;
    void *arg;
    void (*free_arg)(void *);
    int status; /* reply status, for the log */
    /* a streamed reply (http_stream_*) */
    http_stream_fn stream_gone, stream_sent;
    void *stream_arg, *sent_arg;
    size_t stream_bytes;
};

static const struct {
    const char *name;
    unsigned bit;
} role_names[] = {
    {"tenant", ROLE_TENANT},
    {"provider", ROLE_PROVIDER},
    {"finance", ROLE_FINANCE},
    {"admin", ROLE_ADMIN},
};

unsigned role_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof role_names / sizeof role_names[0]; i++)
        if (!strcmp(role_names[i].name, name))
            return role_names[i].bit;
    return 0;
}

const char *role_name(unsigned role)
{
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++)
        if (role_names[i].bit == role)
            return role_names[i].name;
    return "unknown";
}

const char *http_param(const http_ctx *c, const char *name)
{
    return router_param(&c->params, name);
}

/* Decode the query string once; -1 when it is malformed (then it reads as empty). */
static int query_parse(http_ctx *c)
{
    const char *q;

    if (c->query_parsed)
        return c->query_parsed > 0 ? 0 : -1;
    q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));
    c->query.tqh_first = NULL;
    c->query.tqh_last = &c->query.tqh_first;
    c->query_parsed = 1;
    if (q && evhttp_parse_query_str(q, &c->query) != 0) {
        evhttp_clear_headers(&c->query);
        c->query_parsed = -1;
        return -1;
    }
    return 0;
}

const char *http_query(http_ctx *c, const char *name)
{
    query_parse(c);
    return evhttp_find_header(&c->query, name);
}

/* Refuse a query string the route does not take: malformed (400), a parameter it does not
 * know or one given twice (422, naming it). 0 when the handler may run. */
static int query_intake(http_ctx *c)
{
    const struct evkeyval *kv, *prev;

    if (query_parse(c) != 0) {
        http_reply_problem(c, PROB_BAD_REQUEST, "the query string is malformed", NULL);
        return -1;
    }
    for (kv = c->query.tqh_first; kv; kv = kv->next.tqe_next) {
        if (!router_query_allows(c->route, kv->key)) {
            http_reply_problemf(c, PROB_VALIDATION, kv->key,
                                "unknown query parameter '%.64s'; %s %s takes %s", kv->key,
                                router_method_name(c->route->method), c->route->pattern,
                                c->route->query ? c->route->query : "none");
            return -1;
        }
        for (prev = c->query.tqh_first; prev != kv; prev = prev->next.tqe_next)
            if (!strcmp(prev->key, kv->key)) {
                http_reply_problemf(c, PROB_VALIDATION, kv->key,
                                    "query parameter '%.64s' is given more than once", kv->key);
                return -1;
            }
    }
    return 0;
}

const char *http_header(const http_ctx *c, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(c->req), name);
}

json_t *http_body(const http_ctx *c)
{
    return c->body;
}

const http_caller *http_get_caller(const http_ctx *c)
{
    return &c->caller;
}

const char *http_request_id(const http_ctx *c)
{
    return c->request_id;
}

const char *http_path(const http_ctx *c)
{
    return c->path;
}

tally_server *http_server(const http_ctx *c)
{
    return c->srv;
}

struct event_base *http_event_base(const http_ctx *c)
{
    return c->base;
}

void http_set_header(http_ctx *c, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(c->req), name, value);
}

static double elapsed_s(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void access_log(http_ctx *c, double secs, size_t bytes)
{
    log_access(router_method_name(c->method), c->route ? c->route->pattern : "unmatched",
               c->path ? c->path : "", c->status, secs * 1e3, bytes, c->request_id,
               c->caller.account_id);
}

static void ctx_free(http_ctx *c)
{
    if (c->query_parsed > 0)
        evhttp_clear_headers(&c->query);
    json_decref(c->body);
    free(c->path);
    free(c);
}

/* Send the reply, account for it, free the context. Takes ownership of buf. */
static void http_finish(http_ctx *c, int status, struct evbuffer *buf)
{
    double secs = elapsed_s(&c->start);
    size_t bytes = buf ? evbuffer_get_length(buf) : 0;

    c->status = status;
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "X-Request-Id", c->request_id);
    evhttp_send_reply(c->req, status, NULL, buf);
    if (buf)
        evbuffer_free(buf);
    metrics_observe(c->srv->metrics, c->route_index, status, secs);
    if (c->srv->cfg.access_log)
        access_log(c, secs, bytes);
    __atomic_sub_fetch(&c->srv->inflight, 1, __ATOMIC_RELAXED);
    ctx_free(c);
}

void http_reply_raw(http_ctx *c, int status, const char *content_type, const void *data, size_t len)
{
    struct evbuffer *buf = evbuffer_new();

    if (content_type)
        http_set_header(c, "Content-Type", content_type);
    if (buf && len)
        evbuffer_add(buf, data, len);
    http_finish(c, status, buf);
}

/* ---- streamed replies (chunked) ----------------------------------------------------- */

static void stream_closed(struct evhttp_connection *evcon, void *arg)
{
    http_ctx *c = arg;
    http_stream_fn gone = c->stream_gone;

    (void)evcon;
    c->stream_gone = NULL;
    c->stream_sent = NULL;
    if (gone)
        gone(c->stream_arg);
}

int http_stream_start(http_ctx *c, int status, const char *content_type, http_stream_fn gone,
                      void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);

    c->status = status;
    if (!evcon)
        return -1; /* the client went away; libevent detached the request */
    if (content_type)
        http_set_header(c, "Content-Type", content_type);
    http_set_header(c, "Cache-Control", "no-store");
    http_set_header(c, "X-Request-Id", c->request_id);
    c->stream_gone = gone;
    c->stream_arg = arg;
    evhttp_connection_set_closecb(evcon, stream_closed, c);
    evhttp_send_reply_start(c->req, status, NULL);
    return 0;
}

static void stream_sent(struct evhttp_connection *evcon, void *arg)
{
    http_ctx *c = arg;
    http_stream_fn sent = c->stream_sent;

    (void)evcon;
    c->stream_sent = NULL;
    if (sent)
        sent(c->sent_arg);
}

int http_stream_chunk(http_ctx *c, struct evbuffer *buf, http_stream_fn sent, void *arg)
{
    if (!evhttp_request_get_connection(c->req) || evbuffer_get_length(buf) == 0)
        return -1;
    c->stream_bytes += evbuffer_get_length(buf);
    c->stream_sent = sent;
    c->sent_arg = arg;
    evhttp_send_reply_chunk_with_cb(c->req, buf, stream_sent, c);
    return 0;
}

void http_stream_end(http_ctx *c, int ok)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(c->req);
    double secs = elapsed_s(&c->start);

    if (evcon) {
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        if (!ok) /* no last chunk: the client must not take a cut-off report as whole */
            shutdown(bufferevent_getfd(evhttp_connection_get_bufferevent(evcon)), SHUT_RDWR);
    }
    evhttp_send_reply_end(c->req); /* frees a detached request */
    metrics_observe(c->srv->metrics, c->route_index, c->status, secs);
    if (c->srv->cfg.access_log)
        access_log(c, secs, c->stream_bytes);
    __atomic_sub_fetch(&c->srv->inflight, 1, __ATOMIC_RELAXED);
    ctx_free(c);
}

static void reply_json_typed(http_ctx *c, int status, json_t *body, const char *type)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);

    if (!text) {
        static const char fallback[] = "{\"type\":\"https://tally.dev/problems/internal-error\","
                                       "\"title\":\"Internal error\",\"status\":500}";
        http_reply_raw(c, 500, "application/problem+json", fallback, sizeof fallback - 1);
        return;
    }
    http_set_header(c, "Cache-Control", "no-store");
    http_reply_raw(c, status, type, text, strlen(text));
    free(text);
}

void http_reply_json(http_ctx *c, int status, json_t *body)
{
    reply_json_typed(c, status, body, "application/json");
}

void http_reply_problem(http_ctx *c, problem_type t, const char *detail, const char *field)
{
    int status = problem_status(t);

    if (status >= 500 && t != PROB_DB_UNAVAILABLE)
        log_error("http", "request %s %s failed: %s", c->request_id, c->path ? c->path : "",
                  detail ? detail : problem_title(t));
    if (t == PROB_DB_UNAVAILABLE)
        http_set_header(c, "Retry-After", "1");
    if (t == PROB_UNAUTHENTICATED)
        http_set_header(c, "WWW-Authenticate", "Bearer realm=\"tally\"");
    reply_json_typed(c, status, problem_build(t, detail, field, c->path),
                     "application/problem+json");
}

void http_reply_problem_body(http_ctx *c, int status, json_t *body)
{
    reply_json_typed(c, status, body, "application/problem+json");
}

void http_reply_problemf(http_ctx *c, problem_type t, const char *field, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    http_reply_problem(c, t, detail, field);
}

/* ---- database work -------------------------------------------------------------- */

static int ctx_work(db_conn *db, void *arg)
{
    http_ctx *c = arg;
    return c->work(db, c->arg);
}

static void ctx_done(int status, void *arg)
{
    http_ctx *c = arg;
    void *warg = c->arg;
    void (*free_arg)(void *) = c->free_arg;

    if (status == DB_UNAVAILABLE || status == DB_FAILED || status == DB_RETRY) {
        if (free_arg)
            free_arg(warg);
        if (status == DB_FAILED)
            http_reply_problem(c, PROB_INTERNAL, "a database statement failed unexpectedly", NULL);
        else
            http_reply_problem(c, PROB_DB_UNAVAILABLE,
                               "the database is unreachable or overloaded; retry shortly", NULL);
        return;
    }
    c->done(c, status, warg);
}

void http_db(http_ctx *c, http_work_fn work, http_done_fn done, void *arg, void (*free_arg)(void *))
{
    c->work = work;
    c->done = done;
    c->arg = arg;
    c->free_arg = free_arg;
    if (db_pool_submit(c->srv->pool, c->base, ctx_work, ctx_done, c) != 0) {
        if (free_arg)
            free_arg(arg);
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
    }
}

static void ctx_query_done(int status, PGresult *r, void *arg)
{
    http_ctx *c = arg;

    if (status != DB_OK) {
        if (c->free_arg)
            c->free_arg(c->arg);
        if (status == DB_FAILED)
            http_reply_problem(c, PROB_INTERNAL, "a database statement failed unexpectedly", NULL);
        else
            http_reply_problem(c, PROB_DB_UNAVAILABLE,
                               "the database is unreachable or overloaded; retry shortly", NULL);
        return;
    }
    c->query_done(c, r, c->arg);
}

void http_db_query(http_ctx *c, const char *sql, int nparams, const char *const *params,
                   http_query_done_fn done, void *arg, void (*free_arg)(void *))
{
    c->query_done = done;
    c->arg = arg;
    c->free_arg = free_arg;
    if (db_pool_submit_query(c->srv->pool, c->base, sql, nparams, params, ctx_query_done, c) != 0) {
        if (free_arg)
            free_arg(arg);
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
    }
}

/* ---- intake ------------------------------------------------------------------------ */

static int method_of(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return HTTP_GET;
    case EVHTTP_REQ_POST:
        return HTTP_POST;
    case EVHTTP_REQ_PUT:
        return HTTP_PUT;
    case EVHTTP_REQ_DELETE:
        return HTTP_DELETE;
    case EVHTTP_REQ_PATCH:
        return HTTP_PATCH;
    case EVHTTP_REQ_HEAD:
        return HTTP_HEAD;
    case EVHTTP_REQ_OPTIONS:
        return HTTP_OPTIONS;
    default:
        return 0;
    }
}

/* A client-supplied request id is echoed when it is short and printable. */
static void set_request_id(http_ctx *c)
{
    const char *rid = http_header(c, "X-Request-Id");
    size_t n = rid ? strlen(rid) : 0;

    if (n > 0 && n < 65 &&
        strspn(rid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789-_.:/+=") == n) {
        memcpy(c->request_id, rid, n + 1);
        return;
    }
    if (ids_new_fast(c->request_id, sizeof c->request_id, "req") != 0)
        snprintf(c->request_id, sizeof c->request_id, "req_unknown");
}

static int media_is_json(const char *ct)
{
    size_t n;

    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    n = strcspn(ct, "; ");
    return (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
           (n == 24 && !strncasecmp(ct, "application/problem+json", 24));
}

/* Check and parse the body of a POST/PUT/PATCH. Replies and returns -1 on a problem. */
static int body_intake(http_ctx *c)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
    size_t len = evbuffer_get_length(in);
    json_error_t err;
    char field[64];

    if ((long)len > c->srv->cfg.max_body_bytes) {
        http_reply_problemf(c, PROB_PAYLOAD_TOO_LARGE, NULL,
                            "the body has %zu bytes; the limit is %ld", len,
                            c->srv->cfg.max_body_bytes);
        return -1;
    }
    if (!(c->method & (HTTP_POST | HTTP_PUT | HTTP_PATCH)) || len == 0)
        return 0;
    if (!media_is_json(http_header(c, "Content-Type"))) {
        http_reply_problem(c, PROB_UNSUPPORTED_MEDIA,
                           "request bodies must be sent as Content-Type: application/json", NULL);
        return -1;
    }
    c->body = json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, &err);
    if (!c->body) {
        http_reply_problemf(c, PROB_MALFORMED_JSON, NULL, "line %d, column %d: %s", err.line,
                            err.column, err.text);
        return -1;
    }
    if (!json_is_object(c->body)) {
        snprintf(field, sizeof field, "/");
        http_reply_problem(c, PROB_VALIDATION, "the request body must be a JSON object", field);
        return -1;
    }
    return 0;
}

/* After authentication: the role, then the body, then the handler. */
static void call_handler(http_ctx *c)
{
    if (c->route->roles && !(c->route->roles & c->caller.role)) {
        http_reply_problemf(c, PROB_FORBIDDEN, NULL, "a %s key may not %s %s",
                            role_name(c->caller.role), router_method_name(c->route->method),
                            c->route->pattern);
        return;
    }
    if (query_intake(c) != 0 || body_intake(c) != 0)
        return;
    ((http_handler_fn)c->route->handler)(c);
}

struct auth_job {
    char key_hash[APIKEY_HASH_HEX_LEN + 1];
    auth_identity id;
};

static const char sql_auth[] =
    "SELECT k.id, k.account_id, a.role FROM api_keys k JOIN accounts a ON a.id = k.account_id "
    "WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND a.disabled_at IS NULL";

static void auth_accept(http_ctx *c, const auth_identity *id)
{
    memcpy(c->caller.account_id, id->account_id, sizeof c->caller.account_id);
    memcpy(c->caller.key_id, id->key_id, sizeof c->caller.key_id);
    c->caller.role = id->role;
    call_handler(c);
}

static void auth_done(http_ctx *c, PGresult *r, void *arg)
{
    struct auth_job *j = arg;

    if (PQntuples(r) != 1) {
        PQclear(r);
        free(j);
        http_reply_problem(c, PROB_UNAUTHENTICATED, "the API key is unknown or revoked", NULL);
        return;
    }
    snprintf(j->id.key_id, sizeof j->id.key_id, "%s", PQgetvalue(r, 0, 0));
    snprintf(j->id.account_id, sizeof j->id.account_id, "%s", PQgetvalue(r, 0, 1));
    j->id.role = role_from_name(PQgetvalue(r, 0, 2));
    PQclear(r);
    auth_cache_put(c->srv->auth, j->key_hash, &j->id);
    auth_accept(c, &j->id);
    free(j);
}

static void authenticate(http_ctx *c)
{
    const char *token = auth_bearer_token(http_header(c, "Authorization"));
    struct auth_job *j;
    auth_identity id;

    if (!token) {
        http_reply_problem(c, PROB_UNAUTHENTICATED, "send 'Authorization: Bearer <API key>'", NULL);
        return;
    }
    if (!apikey_well_formed(token)) {
        http_reply_problem(c, PROB_UNAUTHENTICATED, "the API key is malformed", NULL);
        return;
    }
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    apikey_hash(c->srv->key_hash_secret, token, j->key_hash);
    if (auth_cache_get(c->srv->auth, j->key_hash, &id)) {
        metrics_count_auth_cache(c->srv->metrics, 1);
        free(j);
        auth_accept(c, &id);
        return;
    }
    metrics_count_auth_cache(c->srv->metrics, 0);
    {
        const char *p[] = {j->key_hash};
        http_db_query(c, sql_auth, 1, p, auth_done, j, free);
    }
}

void http_dispatch(struct evhttp_request *req, void *arg);

void http_dispatch(struct evhttp_request *req, void *arg)
{
    void **wctx = arg; /* {server, base} */
    http_ctx *c = calloc(1, sizeof *c);
    const char *raw;
    char allow[128];
    enum router_result rr;

    if (!c) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    c->req = req;
    c->srv = wctx[0];
    c->base = wctx[1];
    c->route_index = -1;
    c->method = method_of(evhttp_request_get_command(req));
    __atomic_add_fetch(&c->srv->inflight, 1, __ATOMIC_RELAXED);
    set_request_id(c);
    raw = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    c->path = strdup(raw && *raw ? raw : "/");
    if (!c->path) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    if (strlen(c->path) > 2048) {
        http_reply_problem(c, PROB_BAD_REQUEST, "the path is longer than 2048 bytes", NULL);
        return;
    }
    rr = router_match(c->srv->routes, c->srv->nroutes, c->method, c->path, &c->route, &c->params,
                      allow, sizeof allow);
    if (rr == ROUTER_NOT_FOUND) {
        http_reply_problemf(c, PROB_NOT_FOUND, NULL, "no route for %s", c->path);
        return;
    }
    if (rr == ROUTER_METHOD_NOT_ALLOWED) {
        http_set_header(c, "Allow", allow);
        http_reply_problemf(c, PROB_METHOD_NOT_ALLOWED, NULL, "%s supports %s", c->path, allow);
        return;
    }
    c->route_index = (int)(c->route - c->srv->routes);
    if (c->route->roles)
        authenticate(c);
    else
        call_handler(c);
}
