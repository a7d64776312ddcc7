/*
 * market_settle.h - moving the marketplace's money through the ledger.
 *
 * Every money movement an order causes (its hold, the captures of its usage,
 * the release of what is left, refunds of reversed usage) is first written as
 * a `settlements` row in the same database transaction as its cause (an order,
 * a batch of usage records, a completion), then applied by the ledger with the
 * settlement's id as Idempotency-Key (caller "market"), then marked posted.
 * The ledger applies each settlement exactly once however often this runs, so
 * a crash between the two transactions is repaired by running it again: the
 * janitor does so for settlements left pending (market_settle_sweep).
 *
 * The settlements of one order are applied in creation order, in one ledger
 * batch, so a release never overtakes a capture written before it.
 *
 * A cause may instead apply its settlements inside its own transaction
 * (market_settle_run_in_txn, used by usage batches): the settlement rows, the
 * ledger's transaction and the posted mark then commit with the cause, in one
 * commit, and a rollback leaves none of them.
 */
#ifndef TALLY_MARKET_SETTLE_H
#define TALLY_MARKET_SETTLE_H

#include "db.h"

#include <jansson.h>
#include <stddef.h>

struct tally_server;

#define MARKET_SETTLE_CALLER "market"
#define MARKET_SETTLE_MAX 64 /* settlements per ledger batch */

/* Outcome of one settlement. */
typedef struct market_settle_out {
    char id[48];
    int status;       /* ledger status: 2xx posted, 4xx refused (permanent), 0 not run */
    char txn_id[48];  /* the ledger transaction (posted) */
    char hold_id[48]; /* kind hold: the hold placed */
    json_t *problem;  /* 4xx: the ledger's problem body (new reference) */
} market_settle_out;

/*
 * market_settle_run - apply the pending settlements ids[0..n) (n <= MARKET_SETTLE_MAX),
 * together with any earlier pending settlement of the same orders, and record
 * their outcomes: posted settlements get their transaction, a posted hold puts
 * its order in 'placed', a refused hold puts it in 'rejected'. out[i] (may be
 * NULL) receives the outcome of ids[i]. DB_OK or a db_status (nothing
 * recorded; everything stays pending and may be run again).
 */
int market_settle_run(struct tally_server *srv, db_conn *db, const char *const *ids, size_t n,
                      market_settle_out *out);
void market_settle_out_clear(market_settle_out *o);

#define MARKET_SETTLE_LATER 1 /* market_settle_run_in_txn: nothing done (LEDGER_NOT_READY) */

/*
 * market_settle_run_in_txn - market_settle_run inside the transaction open on db
 * (which wrote the pending settlements ids[0..n)): applied, marked and recorded in
 * it; the caller commits. DB_RETRY: roll back and run the whole transaction again.
 * MARKET_SETTLE_LATER when the ledger cannot join the transaction yet (first use
 * in this process, or an account to create): nothing done, the settlements stay
 * pending for market_settle_run after the commit. Otherwise DB_OK or a db_status.
 */
int market_settle_run_in_txn(struct tally_server *srv, db_conn *db, const char *const *ids,
                             size_t n, market_settle_out *out);

/* market_settle_sweep - (janitor) run settlements pending for over 10 s. >= 0 run, or a db_status.
 */
int market_settle_sweep(struct tally_server *srv, db_conn *db);

#endif
