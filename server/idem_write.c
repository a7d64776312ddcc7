/*
 * idem_write.c - the idempotent write runner shared by mutating handlers.
 * Invariant: the stored response and the change it describes commit together,
 * or neither does.
 */
#include "idem_write.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct idem_write {
    idem_request idem;
    idem_write_op op;
    void *arg;
    void (*free_arg)(void *);
    void (*committed)(http_ctx *c);
    int autocommit; /* see idem_write_submit_autocommit */
    char path[256];
    int status;
    json_t *body;
    int outcome; /* IDEM_NEW (ran), IDEM_REPLAY, IDEM_MISMATCH */
};

json_t *idem_problem(problem_type t, const char *field, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return problem_build(t, detail, field, NULL);
}

static void iw_free(void *p)
{
    idem_write *w = p;

    if (w->free_arg)
        w->free_arg(w->arg);
    json_decref(w->body);
    free(w);
}

/* Stored bodies never hold a plaintext API key (see handlers_accounts.c). */
static json_t *storable(json_t *body)
{
    json_t *copy = json_deep_copy(body);

    if (copy && json_is_string(json_object_get(copy, "api_key"))) {
        json_object_set_new(copy, "api_key", json_null());
        json_object_set_new(copy, "api_key_withheld", json_true());
    }
    return copy;
}

static int iw_work(db_conn *db, void *p)
{
    idem_write *w = p;
    json_t *stored;
    int rc;

    json_decref(w->body);
    w->body = NULL;
    if (w->autocommit && !w->idem.key[0]) {
        w->outcome = IDEM_NEW;
        rc = w->op(db, w->arg, &w->status, &w->body);
        return rc == DB_OK ? 1 : rc;
    }
    if ((rc = db_begin(db)) != DB_OK)
        return rc;
    if (!w->idem.key[0]) { /* no key: nothing to claim or store, a 4xx just rolls back */
        w->outcome = IDEM_NEW;
        rc = w->op(db, w->arg, &w->status, &w->body);
        if (rc != DB_OK)
            return rc;
        if (w->status >= 400) {
            db_rollback(db);
            return 1;
        }
        rc = db_commit(db);
        return rc == DB_OK ? 1 : rc;
    }
    rc = idem_begin(db, &w->idem, &w->status, &w->body);
    if (rc == IDEM_REPLAY || rc == IDEM_MISMATCH) {
        w->outcome = rc;
        return 1;
    }
    if (rc != IDEM_NEW)
        return rc;
    w->outcome = IDEM_NEW;
    if ((rc = db_command(db, "SAVEPOINT op", 0, NULL)) != DB_OK)
        return rc;
    rc = w->op(db, w->arg, &w->status, &w->body);
    if (rc != DB_OK)
        return rc;
    if (w->status >= 500) { /* not permanent: nothing stored, the key free for a retry */
        db_rollback(db);
        return 1;
    }
    if (w->status >= 400 && (rc = db_command(db, "ROLLBACK TO SAVEPOINT op", 0, NULL)) != DB_OK)
        return rc;
    stored = storable(w->body);
    rc = idem_store(db, &w->idem, w->status, stored ? stored : json_null());
    json_decref(stored);
    if (rc == DB_OK)
        rc = db_commit(db);
    return rc == DB_OK ? 1 : rc;
}

static void iw_done(http_ctx *c, int rc, void *p)
{
    idem_write *w = p;
    json_t *body = w->body;

    w->body = NULL;
    if (w->outcome == IDEM_MISMATCH) {
        json_decref(body);
        http_reply_problem(c, PROB_IDEMPOTENCY_REUSE,
                           "this Idempotency-Key was used with a different request",
                           "Idempotency-Key");
    } else {
        if (w->outcome == IDEM_REPLAY)
            http_set_header(c, "Idempotent-Replayed", "true");
        if (w->committed && w->status < 400)
            w->committed(c);
        if (w->status >= 400) {
            if (!json_object_get(body, "instance"))
                json_object_set_new(body, "instance", json_string(w->path));
            http_reply_problem_body(c, w->status, body);
        } else {
            http_reply_json(c, w->status, body);
        }
    }
    iw_free(w);
}

void idem_write_submit(http_ctx *c, idem_write_op op, void *arg, void (*free_arg)(void *))
{
    idem_write_submit_then(c, op, arg, free_arg, NULL);
}

static idem_write *iw_new(http_ctx *c, idem_write_op op, void *arg, void (*free_arg)(void *));

void idem_write_submit_autocommit(http_ctx *c, idem_write_op op, void *arg,
                                  void (*free_arg)(void *))
{
    idem_write *w = iw_new(c, op, arg, free_arg);

    if (w) {
        w->autocommit = 1;
        http_db(c, iw_work, iw_done, w, iw_free);
    }
}

void idem_write_submit_then(http_ctx *c, idem_write_op op, void *arg, void (*free_arg)(void *),
                            void (*committed)(http_ctx *c))
{
    idem_write *w = iw_new(c, op, arg, free_arg);

    if (w) {
        w->committed = committed;
        http_db(c, iw_work, iw_done, w, iw_free);
    }
}

/* A runner for this request, or NULL after replying (out of memory, bad key header). */
static idem_write *iw_new(http_ctx *c, idem_write_op op, void *arg, void (*free_arg)(void *))
{
    idem_write *w = calloc(1, sizeof *w);

    if (!w) {
        if (free_arg)
            free_arg(arg);
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    w->op = op;
    w->arg = arg;
    w->free_arg = free_arg;
    snprintf(w->path, sizeof w->path, "%s", http_path(c));
    if (idem_prepare(c, &w->idem) != 0) {
        iw_free(w);
        return NULL;
    }
    return w;
}
