/*
 * usage_rec.h - a provider's usage record: its fields, its canonical bytes,
 * its signature, and the interval rules it must meet.
 *
 * The signed part is the "record" object of a batch item:
 *
 *   {"record_id": "r-42", "order_id": "ord_…", "device": "h100-sxm", "count": 8,
 *    "start_ms": 1764547200000, "end_ms": 1764550800000,
 *    "profile": "llm-train", "work_mcu": 123000, "reverses": "r-41"}
 *
 * (work_mcu and reverses optional). Canonical bytes: the object with keys
 * sorted, no whitespace, integers only (no fractions, no booleans, no null),
 * strings of printable ASCII without '"' or '\' — so every JSON library prints
 * the same bytes (Python: json.dumps(r, sort_keys=True, separators=(",", ":"))).
 * Signature: Ed25519 over "tally-usage-v1\n" || canonical bytes, by a key the
 * provider registered (POST /v1/provider-keys). Pure: no I/O, no clock.
 */
#ifndef TALLY_MARKET_USAGE_REC_H
#define TALLY_MARKET_USAGE_REC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define USAGE_DOMAIN "tally-usage-v1\n"
#define USAGE_ID_MAX 128
/* Record ids the service writes itself (an order's minimum charge, server/market_minimum.h)
 * start with this; a provider's record_id and reverses may not. */
#define USAGE_RESERVED_PREFIX "tally:"
#define USAGE_SIG_HEX 128
#define USAGE_MAX_COUNT 1000000
#define USAGE_MAX_SPAN_MS (31LL * 86400 * 1000) /* one record covers at most 31 days */
#define USAGE_CLOCK_SKEW_MS 5000                /* tolerated provider clock skew */

/* Reason codes of a rejected record (stable API strings). */
typedef enum usage_reason {
    USAGE_OK = 0,
    USAGE_INVALID,          /* "invalid_record": a field is missing, mistyped or out of range */
    USAGE_BAD_SIGNATURE,    /* "bad_signature" */
    USAGE_UNKNOWN_KEY,      /* "unknown_key": not this provider's key */
    USAGE_KEY_REVOKED,      /* "key_revoked" */
    USAGE_UNKNOWN_ORDER,    /* "unknown_order": no such order on this provider's offers */
    USAGE_ORDER_CLOSED,     /* "order_closed": the order is not placed or running */
    USAGE_DEVICE_MISMATCH,  /* "device_mismatch": not the order's device */
    USAGE_COUNT_EXCEEDED,   /* "count_exceeded": more devices than the order holds */
    USAGE_OUTSIDE_WINDOW,   /* "outside_window": before the order started or past its overrun */
    USAGE_IN_FUTURE,        /* "in_future": ends after now */
    USAGE_OVERLAP,          /* "overlap": overlaps an accepted interval of this order and device */
    USAGE_EXCEEDS_HOLD,     /* "exceeds_hold": the order's hold cannot cover it */
    USAGE_ID_REUSED,        /* "record_id_reused": accepted before with different content */
    USAGE_UNKNOWN_RECORD,   /* "unknown_record": reverses a record that was never accepted */
    USAGE_ALREADY_REVERSED, /* "already_reversed" */
    USAGE_METERING,         /* "metering_error": the device/profile cannot be measured */
    USAGE_PRICING,          /* "pricing_error": the policy cannot price it */
    USAGE_DUPLICATE_IN_BATCH, /* "duplicate_in_batch": the same record id twice in one batch */
    USAGE_REASON_COUNT
} usage_reason;

const char *usage_reason_code(usage_reason r);

/* One parsed record. Strings are copies; canonical is malloc'd. */
typedef struct usage_rec {
    char record_id[USAGE_ID_MAX + 1];
    char order_id[48];
    char device[64];
    char reverses[USAGE_ID_MAX + 1]; /* "" = not a reversal */
    int64_t count;
    int64_t start_ms, end_ms;
    int64_t work_mcu; /* -1 = not measured */
    json_t *profile;  /* new reference (string or object) */
    char *canonical;  /* NUL-terminated canonical JSON */
    size_t canonical_len;
    char hash_hex[65]; /* BLAKE2b-256 of the canonical bytes */
} usage_rec;

/*
 * usage_rec_parse - check the record object's fields and build its canonical
 * bytes. USAGE_OK, or USAGE_INVALID with a message naming the field. Free
 * with usage_rec_clear (also after a failure).
 */
usage_reason usage_rec_parse(const json_t *record, usage_rec *out, char *err, size_t errlen);
void usage_rec_clear(usage_rec *r);

/* usage_rec_verify - 1 when sig_hex (128 hex) is pk's Ed25519 signature of the
 * record's domain-separated canonical bytes, else 0. */
int usage_rec_verify(const usage_rec *r, const unsigned char pk[32], const char *sig_hex);

/* usage_rec_sign - the provider's side (tests, benchmarks, docs): sig_hex gets 129 bytes. */
void usage_rec_sign(const usage_rec *r, const unsigned char sk[64],
                    char sig_hex[USAGE_SIG_HEX + 1]);

/* An accepted interval [start_ms, end_ms) of one order and device. */
typedef struct usage_span {
    int64_t start_ms, end_ms;
} usage_span;

/*
 * usage_span_overlaps - 1 when [s, e) overlaps any of spans[0..n) (any order).
 * Touching ends ([a, b) and [b, c)) do not overlap.
 */
int usage_span_overlaps(const usage_span *spans, size_t n, int64_t s, int64_t e);

/*
 * usage_window_check - the record's interval against its order: it may start
 * no earlier than the order's start and end no later than the order's
 * reserved end plus an overrun of one reserved length (a job may run up to
 * twice its p90 estimate), and never after now; the start and the "now"
 * bounds tolerate USAGE_CLOCK_SKEW_MS of clock skew. USAGE_OK, USAGE_OUTSIDE_WINDOW
 * or USAGE_IN_FUTURE.
 */
usage_reason usage_window_check(int64_t order_start_ms, int64_t order_end_ms, int64_t start_ms,
                                int64_t end_ms, int64_t now_ms);

#endif
