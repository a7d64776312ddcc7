/*
 * pricing_store.h - pricing policies and period state in PostgreSQL, with a
 * cache of parsed policy versions.
 *
 * Policy versions are immutable, so a parsed version can be cached forever
 * without ever being stale; the cache is bounded and reference-counted so an
 * evicted entry is freed only when its last user releases it.
 */
#ifndef TALLY_PRICING_STORE_H
#define TALLY_PRICING_STORE_H

#include "db.h"
#include "policy.h"
#include "rate.h"

#include <jansson.h>

typedef struct pstore_ref pstore_ref;

/* A loaded policy version. */
typedef struct pstore_version {
    char policy_id[48];
    int version;
    char scope[16];
    char owner_id[48];
    char sha256[65];
    const pricing_policy *policy; /* valid while the ref is held */
    pstore_ref *ref;
} pstore_version;

/*
 * pstore_load - (database thread) policy_id at version (0 = latest). Returns 1
 * found, 0 not found, < 0 a db_status. Release with pstore_release.
 */
int pstore_load(db_conn *db, const char *policy_id, int version, pstore_version *out);
/* pstore_load_platform - the latest version of the newest platform policy; 0 if none. */
int pstore_load_platform(db_conn *db, pstore_version *out);
void pstore_release(pstore_version *v);
void pstore_cache_free(void);

/* What a quote needs, read in one round trip. */
typedef struct pstore_quote_query {
    const char *policy_id;
    int version; /* 0 = latest */
    const char *tenant, *period, *device, *region;
} pstore_quote_query;

/*
 * pstore_load_quote_inputs - the policy version (returns 1, or 0 when there is
 * none), the platform policy (plat->ref NULL when none), the tenant's period
 * state (zero when none) and the utilisation (-1 when unknown). Release both
 * versions with pstore_release. A found set also becomes the cached snapshot
 * for q (see pstore_inputs_get).
 */
int pstore_load_quote_inputs(db_conn *db, const pstore_quote_query *q, pstore_version *pol,
                             pstore_version *plat, pricing_state *state, long long *util);

/*
 * The quote-inputs cache: a snapshot of everything pstore_load_quote_inputs
 * read for one query (policy version, platform policy, period state,
 * utilisation), so a quote can be rated and signed on its event loop without
 * a database round trip.
 *
 * Staleness rule: a snapshot is served for at most PSTORE_INPUTS_TTL_MS after
 * it was read, and never after pstore_inputs_invalidate(), which whoever
 * commits a change to any input in this process calls right after the commit
 * (new policy or version, utilisation report, period state written by
 * charging). A change committed through another process is therefore seen
 * within PSTORE_INPUTS_TTL_MS. Pinned versions are immutable and never stale.
 */
#define PSTORE_INPUTS_TTL_MS 1000

typedef struct pstore_quote_inputs {
    pstore_version pol, plat; /* plat.ref NULL when there is no platform policy */
    pricing_state state;
    long long util; /* -1 when unknown */
} pstore_quote_inputs;

/* pstore_inputs_get - (any thread) a fresh snapshot for q: 1 (release it with
 * pstore_inputs_release) or 0 when none is cached. */
int pstore_inputs_get(const pstore_quote_query *q, pstore_quote_inputs *out);
void pstore_inputs_release(pstore_quote_inputs *in);
/* pstore_inputs_invalidate - (any thread) forget every snapshot taken so far. */
void pstore_inputs_invalidate(void);

/* Period state (all zero when absent) and live utilisation (-1 when unknown). */
int pstore_state_load(db_conn *db, const char *tenant, const char *policy_id, int version,
                      const char *period, pricing_state *out);
int pstore_utilisation(db_conn *db, const char *device, const char *region, long long *ppm);

/*
 * pstore_state_lock - inside the caller's transaction, the period state row of
 * (tenant, policy version, period) created empty when absent and locked FOR
 * UPDATE until the transaction ends; its state (zero when new) into *out.
 * Writers that charge take every row they need in one global order (no
 * deadlocks). DB_OK or a db_status.
 * pstore_state_save - write a locked row's new state (same transaction).
 */
int pstore_state_lock(db_conn *db, const char *tenant, const char *policy_id, int version,
                      const char *period, pricing_state *out);
int pstore_state_save(db_conn *db, const char *tenant, const char *policy_id, int version,
                      const char *period, const pricing_state *st);

/* JSON for pricing_state (integers only) and back; an empty object ('{}', the row a
 * transaction seeds before it locks it) reads as the zero state. */
json_t *pstore_state_to_json(const pricing_state *s);
int pstore_state_from_json(const json_t *j, pricing_state *out);

#endif
