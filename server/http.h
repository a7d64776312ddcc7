/*
 * http.h - the request context handlers see, and the replies they send.
 *
 * A handler receives an http_ctx for one request whose route, authentication
 * and body checks have already passed. It must eventually send exactly one
 * reply (http_reply_*), possibly after database work submitted with http_db().
 * The context is freed by the reply; do not touch it afterwards.
 */
#ifndef TALLY_HTTP_H
#define TALLY_HTTP_H

#include "problem.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

typedef struct http_ctx http_ctx;
typedef struct tally_server tally_server;
typedef struct db_conn db_conn;

typedef void (*http_handler_fn)(http_ctx *c);
/* Database work for a request: runs on a database thread (see db.h). */
typedef int (*http_work_fn)(db_conn *db, void *arg);
/* Runs back on the request's loop when the work returned a status >= 0. */
typedef void (*http_done_fn)(http_ctx *c, int status, void *arg);

/* Roles (bit masks, for the route table). */
enum role {
    ROLE_TENANT = 1 << 0,
    ROLE_PROVIDER = 1 << 1,
    ROLE_FINANCE = 1 << 2,
    ROLE_ADMIN = 1 << 3,
};
#define ROLE_ANY (ROLE_TENANT | ROLE_PROVIDER | ROLE_FINANCE | ROLE_ADMIN)

/* role_from_name - "tenant" -> ROLE_TENANT; 0 when unknown. role_name is the inverse. */
unsigned role_from_name(const char *name);
const char *role_name(unsigned role);

/* The authenticated caller (valid when the route requires a role). */
typedef struct http_caller {
    char account_id[48];
    char key_id[48];
    unsigned role;
} http_caller;

/* Request accessors. Strings are borrowed and live as long as the context. */
const char *http_param(const http_ctx *c, const char *name);
const char *http_query(http_ctx *c, const char *name); /* decoded; NULL if absent */
const char *http_header(const http_ctx *c, const char *name);
json_t *http_body(const http_ctx *c); /* the parsed JSON body (borrowed) or NULL */
const http_caller *http_get_caller(const http_ctx *c);
const char *http_request_id(const http_ctx *c);
const char *http_path(const http_ctx *c);
tally_server *http_server(const http_ctx *c);
/* http_event_base - the loop this request runs on (for work completed by
 * threads other than the database pool, e.g. the ledger writer). */
struct event_base *http_event_base(const http_ctx *c);

/* Replies. json bodies are stolen (decref'd by the reply). */
void http_reply_json(http_ctx *c, int status, json_t *body);
void http_reply_problem(http_ctx *c, problem_type t, const char *detail, const char *field);
/* A problem whose detail is formatted like printf. */
void http_reply_problemf(http_ctx *c, problem_type t, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A problem+json body built elsewhere (stolen), with its status. */
void http_reply_problem_body(http_ctx *c, int status, json_t *body);
void http_reply_raw(http_ctx *c, int status, const char *content_type, const void *data,
                    size_t len);
/* http_set_header - add a response header before replying. */
void http_set_header(http_ctx *c, const char *name, const char *value);

/*
 * Streamed replies (chunked transfer encoding), for reports of any size:
 * http_stream_start sends the status and headers, http_stream_chunk sends the
 * bytes of buf (moved out of it; the caller still frees buf) and calls
 * sent(arg) on this loop once the socket has taken them (one chunk in flight
 * is the back-pressure), http_stream_end finishes the reply: ok != 0 sends the
 * last chunk, ok == 0 drops the connection so the client sees a truncated body
 * rather than a complete-looking one. It logs, counts and frees the context.
 * gone(arg) runs on this loop when the client disconnects first; after it no
 * sent() comes, and http_stream_end must still be called. start and chunk
 * return -1 when the client is already gone (no callback will follow).
 */
struct evbuffer;
typedef void (*http_stream_fn)(void *arg);
int http_stream_start(http_ctx *c, int status, const char *content_type, http_stream_fn gone,
                      void *arg);
int http_stream_chunk(http_ctx *c, struct evbuffer *buf, http_stream_fn sent, void *arg);
void http_stream_end(http_ctx *c, int ok);

/*
 * http_db - run work(db, arg) on a database thread, then done(c, status, arg) on
 * this loop. Unavailable database -> 503 problem, unexpected SQL failure -> 500
 * problem, both replied for you (done is not called, arg is freed with free_arg
 * when non-NULL).
 */
void http_db(http_ctx *c, http_work_fn work, http_done_fn done, void *arg,
             void (*free_arg)(void *));

/* A read of one statement: done(c, r, arg) gets the result (it PQclear()s it). */
typedef void (*http_query_done_fn)(http_ctx *c, PGresult *r, void *arg);
/*
 * http_db_query - run one read-only statement (static SQL, at most 8 parameters,
 * copied) through the pool's pipelined read path; failures reply 503/500 like
 * http_db (free_arg releases arg then).
 */
void http_db_query(http_ctx *c, const char *sql, int nparams, const char *const *params,
                   http_query_done_fn done, void *arg, void (*free_arg)(void *));

#endif
