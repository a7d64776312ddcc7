/*
 * metering_req.h - the parts of a request body that describe a workload
 * (device, count, profile) and the problem replies for metering errors.
 *
 * Profile forms accepted:
 *   "llm-train"                                      a named class
 *   {"class": "llm-train", "precision": "fp16"}      a named class at a precision
 *   {"precision": "fp32", "intensity_milli": 25000}  custom: FLOP/byte x 1000
 */
#ifndef TALLY_METERING_REQ_H
#define TALLY_METERING_REQ_H

#include "cu.h"
#include "http.h"
#include "jsonw.h"

#include <jansson.h>

typedef struct workload_req {
    const char *device; /* borrowed from the body */
    long long count;
    cu_profile profile;
} workload_req;

/* mreq_workload - parse device, count, profile. -1 after replying. */
int mreq_workload(http_ctx *c, json_t *body, workload_req *out);
/* mreq_profile_json - the profile as the API shows it (new reference). */
json_t *mreq_profile_json(const cu_profile *p);
/* mreq_rate_json - the rate a computation used (new reference). */
json_t *mreq_rate_json(const cu_rate *r);
/* The same two as text, for hot paths (keys in the order shown above). */
void mreq_profile_jw(jsonw *w, const cu_profile *p);
void mreq_rate_jw(jsonw *w, const cu_rate *r);
/* mreq_reply_jw - reply status with w's text as application/json (w is reset). */
void mreq_reply_jw(http_ctx *c, int status, jsonw *w);
/* mreq_reply_cu_error - a 422 problem for a metering error (field named). */
void mreq_reply_cu_error(http_ctx *c, const cu_error *err, const char *default_field);
/* mreq_decimal_mcu - milli-units as an exact decimal string ("12.345"). */
void mreq_decimal_mcu(long long mcu, char *out, size_t len);

#endif
