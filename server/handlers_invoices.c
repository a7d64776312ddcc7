/*
 * handlers_invoices.c - invoices and credit notes over HTTP.
 *
 *   POST /v1/invoices/close?period=YYYY-MM       finance/admin: drafts for every tenant
 *   GET  /v1/invoices?period=&tenant_id=&after=&limit=   tenant: own; finance/admin: all
 *   GET  /v1/invoices/{id}        JSON; {id} may end in ".csv" (RFC 4180) or ".html"
 *   POST /v1/invoices/{id}/finalize               finance/admin: number, sign, freeze
 *   POST /v1/invoices/{id}/credit-notes {"amount": "1.50", "reason": "..."}  finance/admin
 *
 * The router matches whole path segments, so the ".csv" and ".html" views are
 * the same route as the JSON one: the handler splits the suffix off the id.
 * Database work is in invoice_store.c and invoice_credit.c; rendering in
 * billing/invoice*.c.
 */
#include "handlers.h"
#include "idem_write.h"
#include "invoice_store.h"
#include "paging.h"
#include "scope.h"
#include "server.h"
#include "validate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "YYYY-MM" with a month 01..12 and a year 2000..9999. */
static int period_ok(const char *s)
{
    if (!s || strlen(s) != 7 || s[4] != '-')
        return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && !isdigit((unsigned char)s[i]))
            return 0;
    return atoi(s) >= 2000 && atoi(s + 5) >= 1 && atoi(s + 5) <= 12;
}

static int query_period(http_ctx *c, int required, const char **out)
{
    *out = http_query(c, "period");
    if ((!*out && !required) || period_ok(*out))
        return 0;
    http_reply_problem(c, PROB_VALIDATION, "'period' must be a month as YYYY-MM, e.g. 2026-11",
                       "period");
    return -1;
}

/* ---- close ---------------------------------------------------------------------------------- */

struct close_job {
    char period[8];
};

static int close_op(db_conn *db, void *arg, int *status, json_t **body)
{
    return invoice_close(db, ((struct close_job *)arg)->period, status, body);
}

void h_invoices_close(http_ctx *c)
{
    struct close_job *j;
    const char *period;

    if (query_period(c, 1, &period))
        return;
    if (!(j = malloc(sizeof *j))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    snprintf(j->period, sizeof j->period, "%s", period);
    idem_write_submit(c, close_op, j, free);
}

/* ---- finalize ------------------------------------------------------------------------------- */

struct fin_job {
    const signing_key *key;
    char id[48];
    tally_server *srv;
    invoice_trueup_req tu;
    int status;
    json_t *body;
};

static void fin_free(void *arg)
{
    struct fin_job *j = arg;
    json_decref(j->body);
    free(j);
}

static int fin_op(db_conn *db, void *arg, int *status, json_t **body)
{
    struct fin_job *j = arg;
    return invoice_finalize(db, j->key, j->id, status, body);
}

static const char sql_draft[] =
    "SELECT tenant_id, period, currency FROM invoices WHERE id = $1 AND state = 'draft'";

/* Step 1 (outside the idempotent write: the ledger runs its own transaction):
 * charge the reserved commitments' true-ups of a draft. */
static int trueup_work(db_conn *db, void *arg)
{
    struct fin_job *j = arg;
    const char *p[] = {j->id};
    PGresult *r = db_exec(db, sql_draft, 1, p);

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r); /* not a draft: the write answers 404 or 409 */
        return DB_OK;
    }
    snprintf(j->tu.invoice_id, sizeof j->tu.invoice_id, "%s", j->id);
    snprintf(j->tu.tenant, sizeof j->tu.tenant, "%s", PQgetvalue(r, 0, 0));
    snprintf(j->tu.period, sizeof j->tu.period, "%s", PQgetvalue(r, 0, 1));
    snprintf(j->tu.currency, sizeof j->tu.currency, "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    json_decref(j->body);
    j->body = NULL;
    return invoice_trueup(j->srv, db, &j->tu, &j->status, &j->body);
}

/* Step 2: number, sign and freeze (idempotent write). */
static void trueup_done(http_ctx *c, int status, void *arg)
{
    struct fin_job *j = arg;

    (void)status;
    if (j->status >= 400) {
        http_reply_problem_body(c, j->status, j->body);
        j->body = NULL;
        fin_free(j);
        return;
    }
    idem_write_submit(c, fin_op, j, fin_free);
}

void h_invoices_finalize(http_ctx *c)
{
    struct fin_job *j;
    const char *id;

    if (val_path_id(c, "id", "inv", &id))
        return;
    if (!(j = calloc(1, sizeof *j))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    j->key = http_server(c)->signing;
    j->srv = http_server(c);
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->tu.caller, sizeof j->tu.caller, "%s", http_get_caller(c)->account_id);
    j->tu.caller_role = http_get_caller(c)->role;
    http_db(c, trueup_work, trueup_done, j, fin_free);
}

/* ---- credit notes --------------------------------------------------------------------------- */

struct cn_job {
    tally_server *srv;
    invoice_credit_req rq;
    int status;
    json_t *body;
};

static void cn_free(void *arg)
{
    struct cn_job *j = arg;
    json_decref(j->body);
    free(j);
}

static int cn_work(db_conn *db, void *arg)
{
    struct cn_job *j = arg;
    json_decref(j->body);
    j->body = NULL;
    return invoice_credit_note(j->srv, db, &j->rq, &j->status, &j->body);
}

static void cn_done(http_ctx *c, int status, void *arg)
{
    struct cn_job *j = arg;

    (void)status;
    if (j->status >= 400)
        http_reply_problem_body(c, j->status, j->body);
    else
        http_reply_json(c, j->status, j->body);
    j->body = NULL;
    cn_free(j);
}

void h_invoices_credit_note(http_ctx *c)
{
    static const char *const fields[] = {"amount", "reason", NULL};
    const char *id, *reason, *idem = http_header(c, "Idempotency-Key");
    json_t *body = http_body(c);
    struct cn_job *j;
    int64_t amount;

    if (val_path_id(c, "id", "inv", &id))
        return;
    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "a JSON body is required", "amount");
        return;
    }
    if (val_known_fields(c, body, fields) || val_money(c, body, "amount", 1, 1, &amount) ||
        val_string(c, body, "reason", 1, 500, &reason))
        return;
    if (!idem || !idem[0] || strlen(idem) > 60) {
        http_reply_problem(c, PROB_BAD_REQUEST,
                           "credit notes move money: send an Idempotency-Key header (1 to 60 "
                           "characters) so a retry never credits twice",
                           "Idempotency-Key");
        return;
    }
    if (!(j = calloc(1, sizeof *j))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    j->srv = http_server(c);
    j->rq.amount = amount;
    j->rq.caller_role = http_get_caller(c)->role;
    snprintf(j->rq.invoice_id, sizeof j->rq.invoice_id, "%s", id);
    snprintf(j->rq.caller, sizeof j->rq.caller, "%s", http_get_caller(c)->account_id);
    snprintf(j->rq.idem_key, sizeof j->rq.idem_key, "%s", idem);
    snprintf(j->rq.reason, sizeof j->rq.reason, "%s", reason);
    http_db(c, cn_work, cn_done, j, cn_free);
}

/* ---- reading -------------------------------------------------------------------------------- */

static const char sql_get[] = "SELECT " INVOICE_COLS " FROM invoices i WHERE i.id = $1 AND "
                              "($2::text IS NULL OR i.tenant_id = $2)";
static const char sql_list[] =
    "SELECT " INVOICE_COLS " FROM invoices i WHERE ($1::text IS NULL OR i.tenant_id = $1) AND "
    "($2::text IS NULL OR i.period = $2) AND ($3::text IS NULL OR i.tenant_id = $3) AND "
    "($4::text IS NULL OR i.id > $4) AND ($5::text IS NULL OR i.state = $5) ORDER BY i.id LIMIT $6";

enum view { VIEW_JSON, VIEW_CSV, VIEW_HTML };

struct get_job {
    enum view view;
};

static void reply_view(http_ctx *c, PGresult *r, enum view view)
{
    invoice_doc d;
    char *text = NULL, disp[128];
    const char *sig = PQgetvalue(r, 0, 11), *canon = PQgetvalue(r, 0, 9);
    size_t len = 0;

    if (invoice_row_doc(r, 0, &d) == 0)
        text = view == VIEW_CSV
                   ? invoice_csv(&d, sig[0] ? sig : NULL, &len)
                   : invoice_html(&d, sig[0] ? sig : NULL, canon[0] ? canon : NULL, &len);
    if (!text) {
        invoice_doc_clear(&d);
        http_reply_problem(c, PROB_INTERNAL, "the invoice cannot be rendered", NULL);
        return;
    }
    if (view == VIEW_CSV) {
        snprintf(disp, sizeof disp, "inline; filename=\"%s.csv\"", d.number[0] ? d.number : d.id);
        http_set_header(c, "Content-Disposition", disp);
    }
    http_reply_raw(c, 200,
                   view == VIEW_CSV ? "text/csv; charset=utf-8; header=present"
                                    : "text/html; charset=utf-8",
                   text, len);
    invoice_doc_clear(&d);
    free(text);
}

static void get_done(http_ctx *c, PGresult *r, void *arg)
{
    enum view view = ((struct get_job *)arg)->view;
    json_t *o;

    free(arg);
    if (PQntuples(r) != 1) {
        PQclear(r);
        http_reply_problem(c, PROB_NOT_FOUND, "no such invoice", NULL);
        return;
    }
    if (view != VIEW_JSON) {
        reply_view(c, r, view);
        PQclear(r);
        return;
    }
    o = invoice_row_json(r, 0);
    PQclear(r);
    if (!o)
        http_reply_problem(c, PROB_INTERNAL, "the invoice cannot be read", NULL);
    else
        http_reply_json(c, 200, o);
}

/* Split "inv_….csv" into the id and its view. 0, or -1 (not an invoice id). */
static int parse_id(const char *raw, char id[48], enum view *view)
{
    size_t n = strlen(raw);

    *view = VIEW_JSON;
    if (n > 4 && !strcmp(raw + n - 4, ".csv"))
        *view = VIEW_CSV, n -= 4;
    else if (n > 5 && !strcmp(raw + n - 5, ".html"))
        *view = VIEW_HTML, n -= 5;
    if (n != 30 || strncmp(raw, "inv_", 4) != 0)
        return -1;
    for (size_t i = 4; i < n; i++)
        if (!isalnum((unsigned char)raw[i]))
            return -1;
    memcpy(id, raw, n);
    id[n] = '\0';
    return 0;
}

void h_invoices_get(http_ctx *c)
{
    struct get_job *j;
    char id[48];
    enum view view;

    if (parse_id(http_param(c, "id"), id, &view) != 0) {
        http_reply_problem(c, PROB_NOT_FOUND,
                           "no such invoice: ids look like inv_… (optionally .csv or .html)", "id");
        return;
    }
    if (!(j = malloc(sizeof *j))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    j->view = view;
    {
        const char *p[] = {id, scope_owner_filter(http_get_caller(c))};
        http_db_query(c, sql_get, 2, p, get_done, j, free);
    }
}

static json_t *list_row(PGresult *r, int i, const void *ctx)
{
    (void)ctx;
    return invoice_row_json(r, i);
}

static void list_done(http_ctx *c, PGresult *r, void *arg)
{
    int limit = *(int *)arg;
    json_t *page = paging_build(r, limit, list_row, NULL);

    free(arg);
    PQclear(r);
    http_reply_json(c, 200, page);
}

void h_invoices_list(http_ctx *c)
{
    const char *period, *tenant = NULL, *after = NULL, *state = http_query(c, "state");
    char lim[16];
    int limit, *lp;

    if (val_query_limit(c, 50, 500, &limit) || query_period(c, 0, &period) ||
        val_query_id(c, "tenant_id", "acc", &tenant) || val_query_id(c, "after", "inv", &after))
        return;
    if (state && strcmp(state, "draft") && strcmp(state, "final")) {
        http_reply_problem(c, PROB_VALIDATION, "'state' is draft or final", "state");
        return;
    }
    if (!(lp = malloc(sizeof *lp))) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    *lp = limit;
    snprintf(lim, sizeof lim, "%d", limit + 1);
    {
        const char *p[] = {
            scope_owner_filter(http_get_caller(c)), period, tenant, after, state, lim};
        http_db_query(c, sql_list, 6, p, list_done, lp, free);
    }
}
