/*
 * assets.h - files compiled into the binary: the OpenAPI document and the SQL
 * migrations, so a deployed tallyd needs no source tree. Generated at build
 * time by cmake/embed.cmake from schema/openapi.yaml and migrations/NNNN_*.sql.
 */
#ifndef TALLY_ASSETS_H
#define TALLY_ASSETS_H

#include <stddef.h>

struct embedded_file {
    const char *name; /* file name without directory, e.g. "0001_accounts.sql" */
    const char *data; /* NUL-terminated contents */
    size_t len;
};

extern const struct embedded_file tally_openapi;
extern const struct embedded_file tally_catalog;   /* metering/catalog/devices.json */
extern const struct embedded_file tally_latency;   /* scheduler/data/aws_..._matrix.csv */
extern const struct embedded_file tally_dashboard; /* server/dashboard.html */
extern const struct embedded_file tally_migrations[];
extern const size_t tally_migrations_count; /* sorted by name */

#endif
