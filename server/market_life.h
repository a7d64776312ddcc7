/*
 * market_life.h - an order's lifecycle after placement: start, complete, fail,
 * cancel. Each transition is checked against market/order.h's table, recorded
 * in order_events in the same transaction, and a final state releases what is
 * left of the hold (a 'release' settlement, after every capture before it).
 * Completion teaches the duration estimator the order's actual duration.
 */
#ifndef TALLY_MARKET_LIFE_H
#define TALLY_MARKET_LIFE_H

#include "db.h"
#include "order.h"

#include <jansson.h>

struct tally_server;

typedef struct market_transition {
    char order_id[48];
    order_state to;
    char actor[48];
    unsigned actor_role;
    char reason[501];
} market_transition;

/*
 * market_order_transition - apply t. *status and *body: 200 and the order, 404
 * (not visible to the actor), 403 (the other party's step) or 409 (state does
 * not allow it) with a problem body. DB_OK or a db_status.
 */
int market_order_transition(struct tally_server *srv, db_conn *db, const market_transition *t,
                            int *status, json_t **body);

#endif
