/*
 * testhttp.h - start a real tallyd for end-to-end tests and talk HTTP to it.
 */
#ifndef TALLY_TESTHTTP_H
#define TALLY_TESTHTTP_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tallyd_proc {
    pid_t pid;
    int port;
    char dir[256]; /* temporary directory: keys, log */
    char conninfo[1024];
    char base[64];      /* "http://127.0.0.1:PORT" */
    char admin_key[64]; /* API key of an admin account made with the CLI */
    char admin_id[48];
} tallyd_proc;

typedef struct http_resp {
    long status;
    char *body;
    size_t len;
    char *headers; /* raw header block, lower-cased names */
    json_t *json;  /* parsed body when it is JSON, else NULL */
} http_resp;

/* tallyd_start - keys, migrate, admin account, serve on a free port; waits until ready.
 * extra_env: NULL-terminated "NAME=value" strings, or NULL. */
void tallyd_start(tallyd_proc *p, const char *conninfo, const char *const *extra_env);
void tallyd_stop(tallyd_proc *p);
/* tallyd_cli - run `tallyd ARGS...` with the process's environment; returns exit status,
 * stdout into out (malloc'd, caller frees) when out is not NULL. */
int tallyd_cli(const tallyd_proc *p, char **out, const char *const *args);
/* tallyd_log - the server's stderr so far (malloc'd). */
char *tallyd_log(const tallyd_proc *p);

/*
 * http_request - method, path (appended to p->base), optional bearer key, optional
 * extra header lines ("Name: value", NULL-terminated), optional body (sent with
 * Content-Type: application/json unless a header overrides it).
 */
http_resp http_request(const tallyd_proc *p, const char *method, const char *path, const char *key,
                       const char *const *headers, const char *body, size_t body_len);
/* http_header_value - value of a response header (static buffer), or NULL. */
const char *http_header_value(const http_resp *r, const char *name);
void http_resp_free(http_resp *r);
/* tallyd_account - create an account through the API as p's admin (asserts 201);
 * returns the body with its id and api_key (caller decrefs). */
json_t *tallyd_account(const tallyd_proc *p, const char *name, const char *role);
/* free_port - a TCP port on 127.0.0.1 that was free a moment ago. */
int free_port(void);

#endif
