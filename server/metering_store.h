/*
 * metering_store.h - the device catalog and efficiency factors, in PostgreSQL
 * and cached in memory for the hot path (normalisation, estimates, quotes).
 *
 * PostgreSQL is the truth: catalog versions and efficiency versions are
 * append-only rows. Each process keeps the current catalog and efficiency
 * table parsed in memory and refreshes them from the database every second
 * (the janitor), so a new version imported through any process is used by
 * every process within about a second. Every result names the catalog and
 * efficiency versions it used, so nothing depends on which process answered.
 */
#ifndef TALLY_METERING_STORE_H
#define TALLY_METERING_STORE_H

#include "catalog.h"
#include "cu.h"
#include "db.h"

#include <jansson.h>
#include <stdint.h>

typedef struct metering_cache metering_cache;

metering_cache *mcache_new(void);
void mcache_free(metering_cache *mc);

/*
 * mcache_read_lock - the current catalog and efficiency table, valid until
 * mcache_read_unlock. *cat is NULL when no catalog has been imported yet.
 */
void mcache_read_lock(metering_cache *mc, const cat_catalog **cat, const cu_eff_table **eff);
void mcache_read_unlock(metering_cache *mc);

/* mcache_refresh - (database thread) load newer versions if there are any. */
int mcache_refresh(db_conn *db, metering_cache *mc);

/*
 * metering_import_catalog - (inside the caller's transaction) store a catalog
 * document as a new version and make sure efficiency version 1 (the defaults)
 * exists. Returns 1 imported, 0 the same version with the same content already
 * exists (nothing to do), 2 the version exists with different content
 * (refused), 3 the document is invalid (message in err), or a db_status.
 */
int metering_import_catalog(db_conn *db, const char *json_text, size_t len, const char *actor,
                            char *version, size_t versionlen, char *err, size_t errlen);

/* metering_current_document - (database thread) the current catalog document, or 0. */
int metering_current_document(db_conn *db, json_t **doc);

#endif
