/*
 * order.h - an order's lifecycle and its money arithmetic (pure).
 *
 * States and the transitions allowed between them:
 *
 *   pending  -> placed | rejected            (the ledger hold succeeded or not)
 *   placed   -> running | completed | failed | cancelled | migrating | migrated
 *   running  -> completed | failed | cancelled | migrating
 *   migrating -> migrated | running | completed | failed | cancelled
 *
 * completed, failed, cancelled, migrated and rejected are final: the hold is
 * closed (what was used captured, the rest released) and nothing changes again.
 * placed -> migrated is failover's: the order was placed again elsewhere
 * before it started (server/market_failover.c).
 */
#ifndef TALLY_MARKET_ORDER_H
#define TALLY_MARKET_ORDER_H

#include <stdint.h>

typedef enum order_state {
    ORDER_PENDING = 0,
    ORDER_PLACED,
    ORDER_RUNNING,
    ORDER_COMPLETED,
    ORDER_FAILED,
    ORDER_CANCELLED,
    ORDER_MIGRATING,
    ORDER_MIGRATED,
    ORDER_REJECTED,
    ORDER_STATE_COUNT
} order_state;

const char *order_state_name(order_state s);
/* order_state_parse - 0 and *out set, or -1 for an unknown name. */
int order_state_parse(const char *name, order_state *out);
/* order_transition_ok - 1 when from -> to is allowed (see above). */
int order_transition_ok(order_state from, order_state to);
/* order_state_final - 1 for completed, failed, cancelled, migrated, rejected. */
int order_state_final(order_state s);
/* order_state_accepts_usage - 1 when usage may be reported (placed, running, migrating). */
int order_state_accepts_usage(order_state s);

/* Default hold margin over the p90 price, percent (TALLY_ORDER_HOLD_MARGIN_PCT). */
#define ORDER_HOLD_MARGIN_PCT 10

/*
 * order_hold_amount - what an order holds: the price of the workload at its
 * p90 duration plus margin_pct percent of it, rounded up to the micro-unit,
 * and never less than the price at p50. 0, or -1 on overflow or bad input.
 */
int order_hold_amount(int64_t priced_p50, int64_t priced_p90, int margin_pct, int64_t *out);

/*
 * order_fee_split - a charge of `total` of which the provider nets
 * `provider_net`: the platform's share (fee) is the rest. 0, or -1 when
 * provider_net is negative or above total.
 */
int order_fee_split(int64_t total, int64_t provider_net, int64_t *fee);

#endif
