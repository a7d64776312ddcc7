/*
 * server.h - the state one tallyd process shares across its worker threads.
 *
 * Everything here is either immutable after start-up (config, secrets, routes)
 * or safe for concurrent use (the database pool, metrics, the auth cache).
 * Nothing correct depends on it surviving a restart: PostgreSQL is the truth.
 */
#ifndef TALLY_SERVER_H
#define TALLY_SERVER_H

#include "apikey.h"
#include "auth.h"
#include "config.h"
#include "db.h"
#include "keyfile.h"
#include "metering_store.h"
#include "metrics.h"
#include "router.h"

struct tally_server {
    tally_config cfg;
    db_pool *pool;
    db_pool *reports; /* report queries: TALLY_REPORTS_DATABASE_URL or the main database */
    metrics *metrics;
    auth_cache *auth;
    metering_cache *metering;
    unsigned char key_hash_secret[APIKEY_SECRET_LEN];
    const signing_key *signing; /* the service's Ed25519 key (sodium_malloc'd, read-only) */
    const route *routes;
    size_t nroutes;
    int inflight;              /* requests accepted and not yet answered (atomic) */
    struct ledger_svc *ledger; /* the ledger writer and its settings (ledger_svc.h) */
    struct market_cache
        *market; /* published offers for resolution and placement (market_cache.h) */
    struct probe_engine
        *probes; /* endpoint health, on the main loop (probe.h); NULL until serving */
};

/* The route table (routes.c). */
extern const route tally_routes[];
extern const size_t tally_routes_count;

/* server_run - start worker threads and serve until SIGINT/SIGTERM. Exit status. */
int server_run(struct tally_server *srv);

#endif
