/*
 * market_minimum.h - the minimum charge of an order, charged once at its end.
 *
 * A policy may set a minimum charge per order (pricing/policy.h `minimum`).
 * It applies to an order that ran (it was `running` or `migrating`) and ends
 * `completed`, or `cancelled` by its tenant: when the order's provider charges
 * (its accepted, unreversed records' tenant lines other than the platform fee)
 * total less than the minimum, pricing_minimum_trueup's top-up is charged —
 * with the order's locked policy version, the platform policy (its fee line)
 * and the period state of the month the order ends in. Never for an order
 * failed by its provider, cancelled before it started, migrated or rejected.
 *
 * The top-up is a usage record of its own (record id "tally:minimum:ORDER",
 * signed by the service key; its lines are the minimum_charge line and the
 * fee), so invoices, the usage report and reconciliation see it like any
 * record, and a capture settlement (the outbox) that takes it from the order's
 * hold before the order's release settlement frees the rest. Placement
 * prices an order at no less than its minimum, so its hold covers the top-up;
 * a hold that cannot (an order placed before minimums were charged, or a
 * tenant-paid fee rounded against a busy period) is not charged: the shortfall
 * is recorded in the order's final event and logged.
 */
#ifndef TALLY_MARKET_MINIMUM_H
#define TALLY_MARKET_MINIMUM_H

#include "db.h"
#include "order.h"
#include "usage_rec.h"

#include <jansson.h>
#include <stdint.h>

struct tally_server;

#define MARKET_MINIMUM_RECORD_PREFIX USAGE_RESERVED_PREFIX "minimum:"

typedef struct market_minimum {
    int applies; /* the order's policy has a minimum and the order ends so that it applies */
    int charged; /* a top-up was written (record + capture settlement) */
    int64_t minimum, charges, amount, fee, shortfall;
    char currency[4];
    char usage_id[48], settlement_id[48];
} market_minimum;

/*
 * market_minimum_charge - inside the transaction that moves order_id (row
 * locked) from `from` to `to`: write the top-up if the minimum applies and is
 * not met. Fills *m. DB_OK or a db_status (roll back).
 */
int market_minimum_charge(struct tally_server *srv, db_conn *db, const char *order_id,
                          order_state from, order_state to, market_minimum *m);

/* market_minimum_json - the final event's "minimum" detail, or NULL when none applies. */
json_t *market_minimum_json(const market_minimum *m);

#endif
