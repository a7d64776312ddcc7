/*
 * probe.h - the probe engine: is each provider endpoint reachable, and how far?
 *
 * Every endpoint is probed by a NON-BLOCKING TCP connect on the caller's
 * event loop, timed from connect() to writability (the three-way handshake:
 * one round trip, plus the loop's dispatch delay). A connect that completes
 * is a success with that RTT; a refusal, an error or no answer within
 * timeout_ms is a failure. Nothing is sent; the connection is closed at once.
 *
 * Cycle: each endpoint is probed every interval_ms, jittered uniformly by
 * +-jitter_pct % per cycle so endpoints do not probe in lock step. After a
 * failure the next probe comes after retry_ms (shorter), so k failures in a
 * row take about one cycle + (k-1) x (retry_ms + timeout_ms), not k cycles.
 *
 * State per endpoint: smoothed RTT (EWMA: srtt = (1 - a) srtt + a rtt with
 * a = ewma_weight_ppm / 10^6, default 1/8 as in RFC 6298; the first sample
 * sets srtt), the last RTT, consecutive failures, totals, and a ring of the
 * last PROBE_HISTORY results. failures_down (k) consecutive failures mark the
 * endpoint DOWN; one success marks it UP again. A new endpoint is UNKNOWN
 * until its first result (a first failure leaves it UNKNOWN until k).
 *
 * Endpoints are numeric "IPv4:port" or "[IPv6]:port" only: name resolution
 * (getaddrinfo) would block the loop, so callers resolve names first (evdns)
 * or register addresses. probe_endpoint_parse says why a string is refused.
 *
 * Threads: the engine runs on the loop thread of its event_base. set, remove,
 * get and snapshot may be called from any thread (a mutex guards the table;
 * the base must have been created after evthread_use_pthreads()). The change
 * callback runs on the loop thread, outside the lock, so it may call the
 * engine. probe_engine_free must be called when the loop is not running (or
 * from the loop thread).
 */
#ifndef TALLY_SERVER_PROBE_H
#define TALLY_SERVER_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;

#define PROBE_ID_MAX 63
#define PROBE_ENDPOINT_MAX 63 /* "[ffff:...:ffff]:65535" fits */
#define PROBE_HISTORY 16

typedef struct {
    int interval_ms;   /* cycle, default 30000 (TALLY_PROBE_INTERVAL_MS) */
    int jitter_pct;    /* +- % of the cycle, default 10 */
    int timeout_ms;    /* connect timeout, default 2000 (TALLY_PROBE_TIMEOUT_MS) */
    int failures_down; /* k consecutive failures mark DOWN, default 3 (TALLY_PROBE_FAILURES) */
    int retry_ms;      /* delay after a failure, default 2000 (capped at interval_ms) */
    int32_t ewma_weight_ppm; /* weight of a new RTT sample, default 125000 (1/8) */
} probe_config;

typedef enum { PROBE_UNKNOWN = 0, PROBE_UP, PROBE_DOWN } probe_status;

typedef struct {
    int64_t at_ms; /* wall clock, unix ms, when the probe finished */
    int ok;
    int64_t rtt_us; /* connect time when ok, else 0 */
    int error;      /* errno-style code when not ok (ETIMEDOUT, ECONNREFUSED, ...) */
} probe_sample;

typedef struct {
    char id[PROBE_ID_MAX + 1];
    char endpoint[PROBE_ENDPOINT_MAX + 1];
    probe_status status;
    double srtt_ms;     /* 0 until the first success */
    double last_rtt_ms; /* 0 until the first success */
    int consecutive_failures;
    uint64_t probes, failures;
    int64_t last_probe_ms;     /* unix ms; 0 = never */
    int64_t last_change_ms;    /* unix ms of the last UP/DOWN transition; 0 = never */
    int32_t failure_ratio_ppm; /* failures in the history ring x 10^6 / its size */
    size_t n_history;
    probe_sample history[PROBE_HISTORY]; /* oldest first */
} probe_state;

typedef struct probe_engine probe_engine;

/* Called on the loop thread when an endpoint goes UP or DOWN (from any other
 * status). st is a snapshot, valid during the call. */
typedef void (*probe_change_fn)(void *arg, const probe_state *st);

void probe_config_default(probe_config *cfg);
/* Override from TALLY_PROBE_INTERVAL_MS (100..86400000), TALLY_PROBE_FAILURES
 * (1..100), TALLY_PROBE_TIMEOUT_MS (10..60000) read through get. 0, or -1 with
 * one line naming the variable in err. */
int probe_config_from_env(probe_config *cfg, config_getenv_fn get, char *err, size_t errlen);
/* 0 when the config is usable, else -1 with the offending field in err. */
int probe_config_check(const probe_config *cfg, char *err, size_t errlen);

/* Parse a numeric endpoint into a sockaddr (out of cap bytes, at least
 * sizeof(struct sockaddr_in6)); *outlen gets its length. 0 or -1 with err. */
int probe_endpoint_parse(const char *endpoint, void *out, size_t cap, unsigned *outlen, char *err,
                         size_t errlen);

/* A new engine on base (NULL on a bad config, err filled, or no memory). The
 * caller frees it with probe_engine_free. */
probe_engine *probe_engine_new(struct event_base *base, const probe_config *cfg, char *err,
                               size_t errlen);
void probe_engine_free(probe_engine *eng);

/* Probe endpoint under id (add, or change the endpoint of an existing id,
 * which resets its state). The first probe starts at once on the loop
 * thread; later ones follow the jittered cycle. 0, or -1 (bad id or endpoint; err says which). */
int probe_engine_set(probe_engine *eng, const char *id, const char *endpoint, char *err,
                     size_t errlen);
/* Stop probing id. 0, or -1 when unknown. */
int probe_engine_remove(probe_engine *eng, const char *id);
/* Snapshot of one endpoint. 0, or -1 when unknown. */
int probe_engine_get(probe_engine *eng, const char *id, probe_state *out);
/* Snapshot of every endpoint, sorted by id, into a new array the caller
 * frees with free(); returns the count (0 with *out NULL when empty) or -1
 * on allocation failure. For /metrics. */
long probe_engine_snapshot(probe_engine *eng, probe_state **out);
/* Register the change callback (one; NULL to clear). */
void probe_engine_on_change(probe_engine *eng, probe_change_fn cb, void *arg);

const char *probe_status_name(probe_status s); /* "unknown", "up", "down" */

#endif
