/*
 * janitor.c - the maintenance timer.
 * Invariant: at most one refresh is in flight at a time, so a slow database
 * never accumulates a backlog of maintenance jobs.
 */
#include "janitor.h"
#include "invoice_store.h"
#include "ledger_maint.h"
#include "market_cache.h"
#include "market_settle.h"
#include "metering_store.h"
#include "server.h"

#include <event2/event.h>
#include <stdlib.h>

struct janitor {
    struct tally_server *srv;
    struct event_base *base;
    struct event *timer;
    int busy;
    int ledger_busy; /* hold expiry and checkpoints: at most one job in flight */
};

static int ledger_work(db_conn *db, void *arg)
{
    struct janitor *j = arg;
    int rc = ledger_expire_due(j->srv->ledger, db);

    if (rc >= 0 && j->srv->ledger->checkpoint_ms > 0)
        rc = ledger_make_checkpoint(j->srv->ledger, db, 0);
    if (rc >= 0) /* marketplace settlements a crash left pending (market_settle.h) */
        rc = market_settle_sweep(j->srv, db);
    if (rc >= 0) /* credit notes whose money moved but whose note a crash cut off */
        rc = invoice_credit_sweep(j->srv, db);
    return rc < 0 ? rc : DB_OK;
}

static void ledger_done(int status, void *arg)
{
    struct janitor *j = arg;
    (void)status; /* retried on the next tick */
    j->ledger_busy = 0;
}

static int refresh_work(db_conn *db, void *arg)
{
    struct janitor *j = arg;
    int rc = mcache_refresh(db, j->srv->metering);

    /* offers (when any process changed them) and free capacity (market_cache.h) */
    if (rc >= 0 && j->srv->market)
        rc = market_cache_refresh(db, j->srv->market, 0);
    return rc;
}

static void refresh_done(int status, void *arg)
{
    struct janitor *j = arg;
    (void)status; /* an unreachable database is retried on the next tick */
    j->busy = 0;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct janitor *j = arg;

    if (!j->srv->pool)
        return;
    if (j->srv->ledger && !j->ledger_busy) {
        j->ledger_busy = 1;
        if (db_pool_submit(j->srv->pool, j->base, ledger_work, ledger_done, j) != 0)
            j->ledger_busy = 0;
    }
    if (j->busy)
        return;
    j->busy = 1;
    if (db_pool_submit(j->srv->pool, j->base, refresh_work, refresh_done, j) != 0)
        j->busy = 0;
}

janitor *janitor_start(struct tally_server *srv, struct event_base *base, int interval_ms)
{
    janitor *j = calloc(1, sizeof *j);
    struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};

    if (!j)
        return NULL;
    j->srv = srv;
    j->base = base;
    j->timer = event_new(base, -1, EV_PERSIST, tick, j);
    if (!j->timer || event_add(j->timer, &tv) != 0) {
        janitor_stop(j);
        return NULL;
    }
    return j;
}

void janitor_stop(janitor *j)
{
    if (!j)
        return;
    if (j->timer)
        event_free(j->timer);
    free(j);
}
