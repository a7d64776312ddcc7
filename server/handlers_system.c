/*
 * handlers_system.c - liveness, readiness, metrics and the API document.
 * None of these needs an API key: they are for load balancers, orchestrators
 * and Prometheus, and reveal nothing about accounts.
 */
#include "assets.h"
#include "handlers.h"
#include "migrate.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

void h_healthz(http_ctx *c)
{
    /* Constant: liveness must cost next to nothing (load balancers poll it). */
    static const char body[] = "{\"status\":\"ok\",\"version\":\"" TALLY_VERSION "\"}";

    http_set_header(c, "Cache-Control", "no-store");
    http_reply_raw(c, 200, "application/json", body, sizeof body - 1);
}

struct ready_job {
    char detail[256];
};

static int ready_work(db_conn *db, void *arg)
{
    struct ready_job *j = arg;
    return migrate_check(db, j->detail, sizeof j->detail);
}

static void ready_done(http_ctx *c, int current, void *arg)
{
    struct ready_job *j = arg;

    if (current == 1)
        http_reply_json(c, 200,
                        json_pack("{s:s, s:s, s:s}", "status", "ready", "database", "ok",
                                  "migrations", "current"));
    else
        http_reply_problem(c, PROB_DB_UNAVAILABLE, j->detail, NULL);
    free(j);
}

void h_readyz(http_ctx *c)
{
    struct ready_job *j = calloc(1, sizeof *j);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    http_db(c, ready_work, ready_done, j, free);
}

void h_metrics(http_ctx *c)
{
    tally_server *srv = http_server(c);
    db_stats st;
    size_t len = 0;
    char *text;

    db_pool_stats(srv->pool, &st);
    text = metrics_render(srv->metrics, &st, &len);
    if (!text) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return;
    }
    http_reply_raw(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

void h_openapi(http_ctx *c)
{
    http_reply_raw(c, 200, "application/yaml", tally_openapi.data, tally_openapi.len);
}
