/*
 * testmarket.h - marketplace set-up for end-to-end tests: a provider with a
 * registered Ed25519 key, published offers whose endpoint is a real loopback
 * listener (so the probes see them up and failover never moves a test's
 * orders), money in tenants' wallets, signed usage items.
 */
#ifndef TALLY_TESTMARKET_H
#define TALLY_TESTMARKET_H

#include "testhttp.h"

#include <jansson.h>

typedef struct tm_world {
    const tallyd_proc *srv;
    const char *provider_key; /* the provider account's API key (borrowed) */
    unsigned char pk[32], sk[64];
    char key_id[48];
    int listen_fd, port; /* the offers' endpoint */
} tm_world;

/* tm_world_init - a key pair registered for the provider, and the listener. */
void tm_world_init(tm_world *w, const tallyd_proc *srv, const char *provider_key);
void tm_world_free(tm_world *w);

/* The set-up the marketplace suites share, on the suite's own statics: a throwaway database
 * (conninfo into ci), a tallyd (extra NAME=value settings in env, or NULL), the provider
 * "acme-gpu" with its signing world, the tenant "tenant-a" and, when policy is not NULL, the
 * tm_policies pair (the provider's policy id into policy). tm_market_down undoes it. */
typedef struct tm_market {
    char *ci;
    size_t cilen;
    tallyd_proc *srv;
    json_t **prov, **ten;
    tm_world *world;
    char *policy; /* 48 bytes, or NULL */
} tm_market;
void tm_market_up(const tm_market *m, const char *const *env);
void tm_market_down(const tm_market *m);

/* Small accessors: an account's API key, a string member. */
const char *tm_key(json_t *account);
const char *tm_str(json_t *o, const char *k);
long long tm_now_ms(void);

/* POST with an optional Idempotency-Key (NULL: none). */
http_resp tm_post(const tallyd_proc *srv, const char *path, const char *key, const char *idem,
                  const char *body);

/* tm_publish - an nvidia-h100-sxm offer (devices_per_node 8, nodes 2) at identifier under
 * policy, extra JSON members appended to the body ("" or ",\"residency\":[...]"); its
 * challenge signed and published. The offer id into id. */
void tm_publish(tm_world *w, const char *identifier, const char *policy, const char *extra,
                char id[48]);

/* tm_publish_at - the same with the endpoint 127.0.0.1:port (a listener of the test's). */
void tm_publish_at(tm_world *w, const char *identifier, const char *policy, int port,
                   const char *extra, char id[48]);

/* tm_listen - a loopback listener on *port (0: any; the port chosen is written back). */
int tm_listen(int *port);

/* tm_publish_region - tm_publish of "REGION/acme/h100-pool" without extras; the id stays
 * valid for the next 15 calls. */
const char *tm_publish_region(tm_world *w, const char *region, const char *policy);

/* tm_deposit - credit a tenant's USD wallet (admin). */
void tm_deposit(const tallyd_proc *srv, json_t *tenant, const char *amount);

/* tm_item - one signed batch item (8 x nvidia-h100-sxm, llm-train, [s, e) ms); reverses may
 * be NULL; bad signs with a stranger's key. New reference. */
json_t *tm_item(const tm_world *w, const char *rid, const char *order, long long s, long long e,
                const char *reverses, int bad);

/* tm_report_ok - POST /v1/usage with items (stolen); every record must be accepted. */
void tm_report_ok(const tm_world *w, json_t *items);

/* tm_policies - the provider's policy (3.60 per GPU device-hour, UTC; its id into policy)
 * and the platform's 5 % take, paid by the provider (admin). */
void tm_policies(const tallyd_proc *srv, const char *provider_key, char policy[48]);

/* tm_report - POST /v1/usage with items (stolen) as the provider key k; the response. */
http_resp tm_report(const tallyd_proc *srv, json_t *items, const char *k);
/* tm_result - field of the i-th per-record answer of a usage response. */
const char *tm_result(const http_resp *r, size_t i, const char *field);
/* tm_balance - sum of the entries of who's accounts of purpose (who NULL: the platform's). */
long long tm_balance(const char *conninfo, json_t *who, const char *purpose);
/* tm_quoted_order - the tenant quotes 8 x nvidia-h100-sxm for 60 s under policy (priced at
 * 3.60 per device-hour: 0.480000), then orders it (start 50 s ago, so usage can be reported
 * at once) under Idempotency-Key idem, checks it lands on offer at the quoted price and that a
 * retry replays it; the order id (valid until the next call) and its start in *start. */
const char *tm_quoted_order(const tallyd_proc *srv, json_t *tenant, const char *policy,
                            const char *offer, const char *idem, long long *start);

#endif
