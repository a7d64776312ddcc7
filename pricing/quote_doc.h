/*
 * quote_doc.h - the canonical JSON text of a quote: what the service stores
 * and signs (its Merkle leaf, billing/quote_proof.h: a batch's root is signed;
 * quotes stored before migration 0015 were signed as "tally-quote-v1\n" ||
 * this text).
 *
 * Canonical means sorted keys (strcmp order), no whitespace, only strings,
 * integers and null: byte-identical to jansson's
 * json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) of the same document, so any
 * verifier can re-canonicalise what it received and check the signature.
 * Written directly as text (no JSON tree): quotes are a hot path.
 */
#ifndef TALLY_QUOTE_DOC_H
#define TALLY_QUOTE_DOC_H

#include "rate.h"

#include <stddef.h>
#include <stdint.h>

/* Everything a quote names besides the rating result. Strings are borrowed. */
typedef struct quote_doc_meta {
    const char *id, *tenant_id;
    const char *policy_id, *policy_sha256;
    int policy_version;
    const char *platform_policy_id; /* NULL: no platform policy */
    int platform_policy_version;
    const char *created_at, *expires_at; /* ISO-8601 UTC */
    const char *interval_start, *interval_end;
    long long utilisation_ppm; /* < 0: unknown (null) */
    /* workload */
    const char *device, *region; /* region "" when none */
    long long count, mcu, wall_ms, device_ms;
    const char *profile_class, *profile_precision;
    long long profile_intensity_milli;
    const char *catalog_version;
    long long efficiency_version;
} quote_doc_meta;

/*
 * quote_doc_write - the canonical text (NUL-terminated, caller frees) and its
 * length, or NULL when out of memory.
 */
char *quote_doc_write(const quote_doc_meta *m, const pricing_result *res, size_t *len);

#endif
