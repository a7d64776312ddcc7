/*
 * janitor.h - periodic maintenance on the main thread's event loop, in the
 * manner of PgBouncer's janitor: each tick submits database work and never
 * blocks the loop. Today: refresh the metering cache (catalog, efficiency).
 * Later: hold expiry, ledger checkpoints, provider probes.
 */
#ifndef TALLY_JANITOR_H
#define TALLY_JANITOR_H

struct event_base;
struct tally_server;
typedef struct janitor janitor;

/* janitor_start - tick every interval_ms on base. NULL on failure. */
janitor *janitor_start(struct tally_server *srv, struct event_base *base, int interval_ms);
void janitor_stop(janitor *j);

#endif
