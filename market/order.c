/*
 * order.c - order states, transitions and hold arithmetic.
 */
#include "order.h"

#include <string.h>

static const char *const names[ORDER_STATE_COUNT] = {
    "pending",   "placed",    "running",  "completed", "failed",
    "cancelled", "migrating", "migrated", "rejected",
};

const char *order_state_name(order_state s)
{
    return (unsigned)s < ORDER_STATE_COUNT ? names[s] : "unknown";
}

int order_state_parse(const char *name, order_state *out)
{
    for (int i = 0; i < ORDER_STATE_COUNT; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (order_state)i;
            return 0;
        }
    return -1;
}

int order_state_final(order_state s)
{
    return s == ORDER_COMPLETED || s == ORDER_FAILED || s == ORDER_CANCELLED ||
           s == ORDER_MIGRATED || s == ORDER_REJECTED;
}

int order_state_accepts_usage(order_state s)
{
    return s == ORDER_PLACED || s == ORDER_RUNNING || s == ORDER_MIGRATING;
}

int order_transition_ok(order_state from, order_state to)
{
    switch (from) {
    case ORDER_PENDING:
        return to == ORDER_PLACED || to == ORDER_REJECTED;
    case ORDER_PLACED:
        return to == ORDER_RUNNING || to == ORDER_COMPLETED || to == ORDER_FAILED ||
               to == ORDER_CANCELLED || to == ORDER_MIGRATING || to == ORDER_MIGRATED;
    case ORDER_RUNNING:
        return to == ORDER_COMPLETED || to == ORDER_FAILED || to == ORDER_CANCELLED ||
               to == ORDER_MIGRATING;
    case ORDER_MIGRATING:
        return to == ORDER_MIGRATED || to == ORDER_RUNNING || to == ORDER_COMPLETED ||
               to == ORDER_FAILED || to == ORDER_CANCELLED;
    default:
        return 0;
    }
}

int order_hold_amount(int64_t priced_p50, int64_t priced_p90, int margin_pct, int64_t *out)
{
    int64_t base, margin;

    if (priced_p50 < 0 || priced_p90 < 0 || margin_pct < 0 || margin_pct > 1000)
        return -1;
    base = priced_p90 > priced_p50 ? priced_p90 : priced_p50;
    if (base > (INT64_MAX - 99) / 1000)
        return -1;
    margin = (base * margin_pct + 99) / 100; /* rounded up */
    *out = base + margin;
    return 0;
}

int order_fee_split(int64_t total, int64_t provider_net, int64_t *fee)
{
    if (provider_net < 0 || provider_net > total)
        return -1;
    *fee = total - provider_net;
    return 0;
}
