/*
 * handlers_accounts.c - accounts and API keys over HTTP.
 *
 * Admin creates and lists accounts; an account reads itself and manages its
 * own keys; admin manages anyone's. Creating an account or a key returns the
 * plaintext key once: an Idempotency-Key replay returns the same body with the
 * key withheld ("api_key": null, "api_key_withheld": true), because keys are
 * never stored in plaintext (see idem_write.c).
 */
#include "accounts.h"
#include "handlers.h"
#include "ids.h"
#include "idem_write.h"
#include "scope.h"
#include "server.h"
#include "validate.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* One mutating request's inputs (the outcome is handled by idem_write). */
struct write_job {
    unsigned char secret[APIKEY_SECRET_LEN];
    char actor[48];
    char account_id[48];
    char key_id[48];
    const char *name, *role, *label; /* borrowed from the request body */
};

static void write_job_free(void *arg)
{
    struct write_job *j = arg;

    sodium_memzero(j->secret, sizeof j->secret);
    free(j);
}

static struct write_job *write_job_new(http_ctx *c)
{
    struct write_job *j = calloc(1, sizeof *j);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    memcpy(j->secret, http_server(c)->key_hash_secret, sizeof j->secret);
    snprintf(j->actor, sizeof j->actor, "%s", http_get_caller(c)->account_id);
    return j;
}

/* Turn an accounts_* result (1 done, 0 not found, < 0 db status) into an outcome. */
static int outcome(int rc, int ok_status, int *status, json_t **body, const char *what)
{
    if (rc < 0)
        return rc;
    if (rc == 0) {
        *status = 404;
        *body = idem_problem(PROB_NOT_FOUND, NULL, "no such %s", what);
        return DB_OK;
    }
    *status = ok_status;
    return DB_OK;
}

static int op_account_create(db_conn *db, void *arg, int *status, json_t **body)
{
    struct write_job *j = arg;
    return outcome(accounts_create(db, j->secret, j->name, j->role, j->actor, body), 201, status,
                   body, "account");
}

void h_accounts_create(http_ctx *c)
{
    static const char *const fields[] = {"name", "role", NULL};
    json_t *body = http_body(c);
    struct write_job *j;
    const char *name, *role;

    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "a JSON body with 'name' and 'role' is required",
                           "name");
        return;
    }
    if (val_known_fields(c, body, fields) || val_string(c, body, "name", 1, 200, &name) ||
        val_string(c, body, "role", 1, 16, &role))
        return;
    if (!role_from_name(role)) {
        http_reply_problem(c, PROB_VALIDATION,
                           "'role' must be one of tenant, provider, finance, admin", "role");
        return;
    }
    j = write_job_new(c);
    if (!j)
        return;
    j->name = name;
    j->role = role;
    idem_write_submit(c, op_account_create, j, write_job_free);
}

/* Admin, or the account itself; otherwise 403 without revealing whether id exists. */
static int may_act(http_ctx *c, const char *id)
{
    if (scope_may_act_for(http_get_caller(c), id))
        return 1;
    http_reply_problem(c, PROB_FORBIDDEN, "this key may only act on its own account", NULL);
    return 0;
}

struct read_job {
    char id[48];
    const char *after;
    int limit;
    json_t *out;
    int (*op)(db_conn *db, struct read_job *j);
};

static void read_job_free(void *arg)
{
    struct read_job *j = arg;
    json_decref(j->out);
    free(j);
}

static int read_work(db_conn *db, void *arg)
{
    struct read_job *j = arg;
    return j->op(db, j);
}

static void read_done(http_ctx *c, int found, void *arg)
{
    struct read_job *j = arg;

    if (found) {
        http_reply_json(c, 200, j->out);
        j->out = NULL;
    } else {
        http_reply_problem(c, PROB_NOT_FOUND, "no such account", NULL);
    }
    read_job_free(j);
}

static void read_submit(http_ctx *c, const char *id, int (*op)(db_conn *, struct read_job *))
{
    struct read_job *j = calloc(1, sizeof *j);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    snprintf(j->id, sizeof j->id, "%s", id ? id : "");
    j->op = op;
    http_db(c, read_work, read_done, j, read_job_free);
}

static void account_got(http_ctx *c, PGresult *r, void *arg)
{
    json_t *out = PQntuples(r) == 1 ? accounts_row_json(r, 0) : NULL;

    (void)arg;
    PQclear(r);
    if (out)
        http_reply_json(c, 200, out);
    else
        http_reply_problem(c, PROB_NOT_FOUND, "no such account", NULL);
}

void h_accounts_get(http_ctx *c)
{
    const char *id;

    if (val_path_id(c, "id", "acc", &id) || !may_act(c, id))
        return;
    {
        const char *p[] = {id};
        http_db_query(c, accounts_sql_get, 1, p, account_got, NULL, NULL);
    }
}

static int op_account_list(db_conn *db, struct read_job *j)
{
    return accounts_list(db, j->after, j->limit, &j->out);
}

void h_accounts_list(http_ctx *c)
{
    struct read_job *j;
    const char *after;
    int limit;

    if (val_query_limit(c, 50, 200, &limit) || val_query_id(c, "after", "acc", &after))
        return;
    j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    j->after = after; /* borrowed from the query, which lives as long as c */
    j->limit = limit;
    j->op = op_account_list;
    http_db(c, read_work, read_done, j, read_job_free);
}

static int op_keys_list(db_conn *db, struct read_job *j)
{
    int rc = accounts_get(db, j->id, &j->out);

    if (rc != 1)
        return rc;
    json_decref(j->out);
    j->out = NULL;
    return keys_list(db, j->id, &j->out);
}

void h_keys_list(http_ctx *c)
{
    const char *id;

    if (val_path_id(c, "id", "acc", &id) || !may_act(c, id))
        return;
    read_submit(c, id, op_keys_list);
}

static int op_key_create(db_conn *db, void *arg, int *status, json_t **body)
{
    struct write_job *j = arg;
    return outcome(keys_create(db, j->secret, j->account_id, j->label, j->actor, body), 201, status,
                   body, "account");
}

void h_keys_create(http_ctx *c)
{
    static const char *const fields[] = {"label", NULL};
    json_t *body = http_body(c);
    struct write_job *j;
    const char *id, *label = NULL;

    if (val_path_id(c, "id", "acc", &id) || !may_act(c, id))
        return;
    if (val_known_fields(c, body, fields) || val_string(c, body, "label", 0, 100, &label))
        return;
    j = write_job_new(c);
    if (!j)
        return;
    snprintf(j->account_id, sizeof j->account_id, "%s", id);
    j->label = label;
    idem_write_submit(c, op_key_create, j, write_job_free);
}

static int op_key_revoke(db_conn *db, void *arg, int *status, json_t **body)
{
    struct write_job *j = arg;
    return outcome(keys_revoke(db, j->account_id, j->key_id, j->actor, body), 200, status, body,
                   "key");
}

/* After the revocation commits: forget cached identities at once (other
 * processes forget within the cache lifetime). */
static void revoke_committed(http_ctx *c)
{
    auth_cache_clear(http_server(c)->auth);
}

void h_keys_revoke(http_ctx *c)
{
    const char *id, *key_id;
    struct write_job *j;

    if (val_path_id(c, "id", "acc", &id) || !may_act(c, id))
        return;
    key_id = http_param(c, "key_id");
    if (!key_id || !ids_valid(key_id, "key")) {
        http_reply_problemf(c, PROB_NOT_FOUND, NULL, "no key with id '%s'", key_id ? key_id : "");
        return;
    }
    j = write_job_new(c);
    if (!j)
        return;
    snprintf(j->account_id, sizeof j->account_id, "%s", id);
    snprintf(j->key_id, sizeof j->key_id, "%s", key_id);
    idem_write_submit_then(c, op_key_revoke, j, write_job_free, revoke_committed);
}
