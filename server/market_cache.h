/*
 * market_cache.h - the published offers, in memory, for resolution and placement.
 *
 * PostgreSQL is the truth (offers, provider_handles, market_generation). Each
 * tallyd process keeps an immutable snapshot of every *published* offer, sorted
 * by identifier, with its resolution document pre-rendered (location, endpoint,
 * device, CU rating per workload class, price policy). The janitor refreshes it
 * every second: when market_generation moved (a change made by any process) or
 * the device catalog changed, the snapshot is rebuilt; free capacity (devices
 * not reserved by active orders whose window covers now) is re-read every tick
 * and stamped with the time it was read. A change made through this process is
 * applied to the snapshot before its response is sent (market_cache_stage +
 * market_cache_commit), so it is visible at once here and within about a second
 * everywhere else.
 *
 * Threads: every function may be called from any thread. Readers take a read
 * lock for the few microseconds they copy or render; refreshes build a new
 * snapshot outside the lock and swap it in.
 *
 * Health comes from the probe engine (server/probe.h) once attached: every
 * published offer's endpoint is probed under the offer's id (a DNS name through
 * its resolved address), withdrawn offers stop being probed.
 */
#ifndef TALLY_MARKET_CACHE_H
#define TALLY_MARKET_CACHE_H

#include "db.h"
#include "ident.h"
#include "metering_store.h"
#include "probe.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct event_base;

#define MARKET_MAX_RESIDENCY 16
#define MARKET_TAG_MAX 32

typedef struct market_cache market_cache;

/* One published offer, as the scheduler and the orders code see it (a copy). */
typedef struct market_offer {
    char id[48];
    char provider_id[48];
    char identifier[IDENT_MAX_LEN + 1];
    char region[IDENT_LABEL_MAX + 1];
    char handle[IDENT_LABEL_MAX + 1];
    char name[IDENT_LABEL_MAX + 1];
    char zone[IDENT_LABEL_MAX + 1];
    char device_id[64];
    int devices_per_node;
    int nodes;
    char endpoint[264];
    char policy_id[48];
    int64_t available_from_ms;
    int64_t available_until_ms; /* 0 = open-ended */
    int nresidency;
    char residency[MARKET_MAX_RESIDENCY][MARKET_TAG_MAX + 1];
    int version;
    int policy_version; /* the policy's latest version (0 when it has none) */
    /* live figures (not part of the snapshot's static document) */
    int64_t reserved_devices; /* by active orders whose window covers capacity_at_ms */
    int64_t free_devices;     /* devices_per_node x nodes - reserved, never below 0 */
    int64_t capacity_at_ms;   /* when reserved_devices was read (unix ms) */
    probe_status health;      /* PROBE_UNKNOWN when not probed (yet) */
    double srtt_ms;           /* smoothed probed RTT, 0 until the first success */
    int consecutive_failures;
    int32_t failure_ratio_ppm;
} market_offer;

market_cache *market_cache_new(metering_cache *metering);
void market_cache_free(market_cache *mc);

/*
 * market_cache_attach_probes - probe every published offer's endpoint with eng
 * (NULL to detach, on base's thread with the loop stopped). Call before
 * serving; the engine outlives the cache's use of it. base is the engine's
 * loop: DNS-name endpoints are resolved there asynchronously (evdns, from
 * /etc/resolv.conf and /etc/hosts; the first IPv4 address, else IPv6, is
 * probed; a failed resolution is retried after 30 s). The change callback of
 * eng is taken by the cache, which passes UP/DOWN transitions on to the hook below.
 */
void market_cache_attach_probes(market_cache *mc, probe_engine *eng, struct event_base *base);

/* "An offer went up or down": runs on the probe engine's loop thread. */
typedef void (*market_health_fn)(void *arg, const char *offer_id, const probe_state *st);
void market_cache_on_health_change(market_cache *mc, market_health_fn fn, void *arg);

/* market_cache_offer - copy the published offer id into *out. 1 found, 0 not. */
int market_cache_offer(market_cache *mc, const char *id, market_offer *out);

/*
 * market_cache_each - call fn(arg, offer) for every published offer in
 * identifier order, on a consistent snapshot; fn returns non-zero to stop.
 * fn runs under the read lock: it must not call back into the cache.
 * Returns the number of offers visited.
 */
typedef int (*market_offer_fn)(void *arg, const market_offer *o);
size_t market_cache_each(market_cache *mc, market_offer_fn fn, void *arg);

/* market_cache_health - the probe state of an offer's endpoint. 0, or -1 when
 * it is not probed (no engine, not published, or a DNS-name endpoint). */
int market_cache_health(market_cache *mc, const char *offer_id, probe_state *out);

/* The generation of the current snapshot and the age of its capacity figures. */
int64_t market_cache_generation(market_cache *mc);

/* ---- refresh (database threads) ------------------------------------------------- */

/* market_cache_refresh - rebuild when the generation or the catalog moved (or
 * force), then re-read free capacity. A db_status. */
int market_cache_refresh(db_conn *db, market_cache *mc, int force);

/*
 * market_cache_bump - (inside the caller's transaction) move market_generation
 * forward; every change to offers or handles calls it. A db_status.
 */
int market_cache_bump(db_conn *db);

/*
 * The columns every offer read selects (in this order), so one function turns
 * a row into a market_offer: MARKET_OFFER_COLUMNS is SQL text for "FROM offers o".
 */
#define MARKET_OFFER_COLUMNS                                                                       \
    "o.id, o.provider_id, o.identifier, o.region, o.zone, o.name, o.device_id, "                   \
    "o.devices_per_node, o.nodes, o.endpoint, o.policy_id, "                                       \
    "(extract(epoch FROM o.available_from) * 1000)::bigint, "                                      \
    "(extract(epoch FROM o.available_until) * 1000)::bigint, array_to_json(o.residency)::text, "   \
    "o.version, o.state, "                                                                         \
    "(SELECT max(v.version) FROM pricing_policy_versions v WHERE v.policy_id = o.policy_id)"
#define MARKET_OFFER_NCOLS 17
/* market_offer_from_row - row i of r (columns above) into *out. 0, or -1 when malformed. */
int market_offer_from_row(PGresult *r, int i, market_offer *out);

/*
 * market_cache_stage - (database thread, inside the writing transaction) record
 * what offer o will look like once the transaction commits: published (state
 * "published") or gone from resolution (anything else). token identifies the
 * writer. market_cache_commit(mc, offer_id) - (after the commit, before the
 * reply) apply the staged change at once; the janitor's next refresh re-reads
 * everything from the database anyway.
 * market_cache_unstage(mc, token) drops a staged change that never committed.
 */
void market_cache_stage(market_cache *mc, const market_offer *o, const char *state, uint64_t token);
void market_cache_commit(market_cache *mc, const char *offer_id);
void market_cache_unstage(market_cache *mc, uint64_t token);
uint64_t market_cache_token(void);

/* ---- resolution ------------------------------------------------------------------- */

/*
 * market_cache_resolve - the resolution document of a canonical identifier or
 * prefix into a malloc'd JSON text (*out, *outlen; the caller frees). 1
 * rendered, 0 nothing at or below it, -1 out of memory.
 */
int market_cache_resolve(market_cache *mc, const market_ident *id, char **out, size_t *outlen);

/* For /metrics: offers in the snapshot and how many are up / down / unknown. */
typedef struct market_cache_stats {
    int64_t generation, offers, up, down, unknown, refreshes;
    int64_t capacity_age_ms;
} market_cache_stats;
void market_cache_stats_get(market_cache *mc, market_cache_stats *out);
/* market_cache_metrics - the offer and probe gauges (a metrics_section_fn; arg is the cache). */
void market_cache_metrics(void *arg, FILE *out);

#endif
