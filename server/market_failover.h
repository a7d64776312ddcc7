/*
 * market_failover.h - routing orders around an offer whose endpoint stopped
 * answering its probes.
 *
 * When an offer goes down: each order placed on it that has not started is
 * placed again (the scheduler, with the down offer excluded, from now): a new
 * order takes it over (`replaces` names the old one), the old one becomes
 * 'migrated' with an event naming its successor, the old hold is released and
 * the new one placed — released first, so the tenant's money is never held
 * twice and nothing is charged twice. An order no offer can take stays placed,
 * with an event saying so. Running orders become 'migrating' (an event the
 * tenant sees); when the offer comes back up they return to 'running'.
 */
#ifndef TALLY_MARKET_FAILOVER_H
#define TALLY_MARKET_FAILOVER_H

#include "db.h"

struct tally_server;
struct event_base;

/* market_failover_offer - (database thread) offer_id went down (down = 1) or came back up. */
int market_failover_offer(struct tally_server *srv, db_conn *db, const char *offer_id, int down);

/* market_failover_attach - react to health changes of srv->market's offers; the
 * work runs on srv->pool, completions on base (the probe engine's loop). */
void market_failover_attach(struct tally_server *srv, struct event_base *base);

#endif
