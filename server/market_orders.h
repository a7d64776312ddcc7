/*
 * market_orders.h - placing orders: gather the published offers that could run
 * a workload, measure and price it on each (metering cache, duration
 * estimator, the offer's pricing policy), rank them, and reserve the best one.
 *
 * Runs on a database thread. A placement (dry run) stops after ranking; an
 * order locks the chosen offer's row, re-counts the devices reserved in its
 * window (so two concurrent orders never oversubscribe it), and writes the
 * order, its first audit event and its hold settlement in one transaction.
 */
#ifndef TALLY_MARKET_ORDERS_H
#define TALLY_MARKET_ORDERS_H

#include "cu.h"
#include "db.h"

#include <jansson.h>
#include <stdint.h>

struct tally_server;

#define MJ_MAX_LIST 16
#define MJ_MAX_TAGS 8 /* residency tags a job may require (SCHED_MAX_TAGS) */
#define MJ_MAX_CANDIDATES 256

/* What a tenant asks for. */
typedef struct market_job {
    char tenant[48];
    char device[64]; /* "" = any device */
    int64_t count;
    cu_profile profile;
    json_t *profile_json; /* the profile as the API shows it */
    int64_t work_mcu;     /* > 0, or 0 when wall_ms is given */
    int64_t wall_ms;      /* a duration (device given) */
    int64_t start_ms;
    int64_t deadline_ms; /* 0 = none */
    int64_t max_price;   /* micro-units, -1 = none */
    char currency[4];    /* "" = any */
    char regions[MJ_MAX_LIST][32];
    int n_regions;
    char residency[MJ_MAX_LIST][32];
    int n_residency;
    char data_region[32];
    char blocked[MJ_MAX_LIST][48];
    int n_blocked;
    char offer_id[48];      /* "" = any offer */
    char quote_id[48];      /* "" = none */
    int64_t latency_weight; /* micro-units per ms of round-trip time; -1 = default */
    int margin_pct;
} market_job;

void market_job_clear(market_job *j);
/* market_job_to_json / market_job_from_json - the job as orders.request keeps it
 * (market_job.c). from_json: 0, or -1 when the document is not a job. */
json_t *market_job_to_json(const market_job *j);
int market_job_from_json(const json_t *o, market_job *j);

/* One offer evaluated for a job (market_place.c). */
typedef struct market_cand {
    char offer_id[48], provider_id[48], identifier[192], region[32], zone[32], device[64];
    char policy_id[48], endpoint[304], residency[256], currency[4];
    int64_t capacity, reserved, avail_from_ms, avail_until_ms, per_node, nodes;
    int64_t rate_mcu_dev_hour; /* CU rate of one device for the job's profile */
    int64_t mcu, p50_ms, p90_ms, start_ms, end_ms;
    int policy_version, eff_version;
    cat_kind kind;
    char catalog_version[72];
    int64_t utilisation_ppm;
    int64_t priced_p50, priced_p90, hold, provider_net;
    int64_t latency_ms, latency_term, risk, score;
    int32_t risk_ppm;
    int health; /* 0 unknown, 1 up, 2 down */
    double srtt_ms;
    int consecutive_failures;
    int32_t failure_ratio_ppm;
    int rank;     /* position among the feasible, -1 when rejected */
    int feasible; /* passed every check (after ranking) */
    char reason[200];
} market_cand;

/*
 * market_candidates - every published offer considered for j, evaluated and
 * ranked (feasible first, by score, then offer id; or in the external
 * scheduler's order, sched_external.h). *cands is malloc'd; scheduler gets
 * which scheduler ranked them ("built-in", "external", or the fallback note).
 * Returns 0, a problem status (>= 400, *problem set) or a db_status.
 */
int market_candidates(struct tally_server *srv, db_conn *db, const market_job *j,
                      market_cand **cands, size_t *n, char *scheduler, size_t schedlen,
                      json_t **problem);
/* market_reserved_all - set each feasible candidate's reserved devices: those held by
 * active orders overlapping its own window [start_ms, end_ms), in one query for all. */
int market_reserved_all(db_conn *db, market_cand *c, size_t n);
/* market_placement_json - the ranked and rejected offers and which scheduler
 * ranked them (new reference). */
json_t *market_placement_json(const market_cand *c, size_t n, const char *scheduler);

/*
 * market_place - rank the offers for j. *out gets {"ranked": [...], "rejected":
 * [...], "scheduler": ...} (new reference). Returns 1 when at least one offer
 * is feasible, 0 when none is (out still explains why), a problem status
 * (>= 400, *out a problem body) for a bad request found on the way (unknown
 * quote, expired quote), or a db_status.
 */
int market_place(struct tally_server *srv, db_conn *db, const market_job *j, json_t **out);

/*
 * market_order_create - place an order: rank, lock and reserve, write the order
 * (state pending), its event and its hold settlement, commit, then apply the
 * hold through the ledger. *status and *body: 201 and the order, 402 (funds),
 * 409/422 (no feasible placement, quote problems) with a problem body, or the
 * replay of an earlier order under the same idempotency key. DB_OK or a db_status.
 */
int market_order_create(struct tally_server *srv, db_conn *db, const market_job *j,
                        const char *idem_key, const char *request_hash, int *status, json_t **body);

/* What market_order_place wrote (ids), and who for. */
typedef struct market_order_ids {
    char order[48], settle[48]; /* set by market_order_place */
    char replaces[48];          /* "" or the order this one takes over (failover) */
    char actor[48];             /* the first event's actor; "" = the tenant */
} market_order_ids;

/*
 * market_order_place - inside the caller's transaction: rank, lock and reserve
 * the best offer, write the order (pending), its first event and its hold
 * settlement. 0 written (ids set), 1 a 4xx answer in *status and *body (no
 * feasible placement, quote problems), or a db_status.
 */
int market_order_place(struct tally_server *srv, db_conn *db, const market_job *j, const char *key,
                       const char *hash, market_order_ids *ids, int *status, json_t **body);

/* The columns market_order_json reads, for "SELECT <cols> FROM orders o". */
#define MARKET_ORDER_COLS                                                                          \
    "o.id, o.state, o.tenant_id, o.offer_id, o.provider_id, o.device_id, o.count, "                \
    "o.profile::text, o.work_mcu, o.p50_ms, o.p90_ms, "                                            \
    "(extract(epoch FROM o.start_at) * 1000)::bigint, "                                            \
    "(extract(epoch FROM o.end_at) * 1000)::bigint, "                                              \
    "coalesce((extract(epoch FROM o.deadline) * 1000)::bigint, 0), o.policy_id, "                  \
    "o.policy_version, coalesce(o.quote_id, ''), o.currency, o.priced_micros, o.hold_micros, "     \
    "coalesce(o.hold_id, ''), o.captured_micros, o.fee_micros, o.used_mcu, o.used_device_ms, "     \
    "o.placement::text, (extract(epoch FROM o.created_at) * 1000)::bigint, "                       \
    "(extract(epoch FROM o.updated_at) * 1000)::bigint, o.utilisation_ppm, "                       \
    "coalesce(o.replaces, ''), o.refunded_micros"

/* market_order_json - row i as the API shows an order (new reference). */
json_t *market_order_json(PGresult *r, int i);
/* market_order_load - the order with its events; 1 found, 0 not, or a db_status.
 * owner (may be NULL) limits it to a tenant's or provider's own orders. */
int market_order_load(db_conn *db, const char *id, const char *owner, json_t **out);

#endif
