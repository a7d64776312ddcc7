/*
 * metering_store.c - catalog/efficiency versions in SQL and their in-memory cache.
 * Invariant: the cache only ever moves forward to a version that exists in the
 * database; readers hold the read lock for the few microseconds they compute.
 */
#include "metering_store.h"
#include "assets.h"
#include "log.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metering_cache {
    pthread_rwlock_t lock;
    cat_catalog *cat;
    char cat_version[72];
    cu_eff_table *eff;
    uint32_t eff_version;
};

metering_cache *mcache_new(void)
{
    metering_cache *mc = calloc(1, sizeof *mc);

    if (!mc)
        return NULL;
    pthread_rwlock_init(&mc->lock, NULL);
    return mc;
}

void mcache_free(metering_cache *mc)
{
    if (!mc)
        return;
    cat_free(mc->cat);
    free(mc->eff);
    pthread_rwlock_destroy(&mc->lock);
    free(mc);
}

void mcache_read_lock(metering_cache *mc, const cat_catalog **cat, const cu_eff_table **eff)
{
    pthread_rwlock_rdlock(&mc->lock);
    *cat = mc->cat;
    *eff = mc->eff;
}

void mcache_read_unlock(metering_cache *mc)
{
    pthread_rwlock_unlock(&mc->lock);
}

static const char sql_heads[] =
    "SELECT (SELECT version FROM catalog_versions ORDER BY seq DESC LIMIT 1), "
    "(SELECT max(version) FROM efficiency_versions)";
static const char sql_catalog_doc[] =
    "SELECT document::text FROM catalog_versions WHERE version = $1";
static const char sql_eff_doc[] =
    "SELECT factors::text FROM efficiency_versions WHERE version = $1";

/* Load and swap in catalog `version`. */
static int refresh_catalog(db_conn *db, metering_cache *mc, const char *version)
{
    const char *p[] = {version};
    PGresult *r = db_exec(db, sql_catalog_doc, 1, p);
    cat_catalog *cat, *old;
    cat_error err;

    if (!r)
        return db_last_status(db);
    cat = PQntuples(r) == 1 ? cat_parse(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), &err)
                            : NULL;
    PQclear(r);
    if (!cat) {
        log_error("metering", "catalog %s in the database does not parse: %s", version,
                  err.message);
        return DB_OK;
    }
    pthread_rwlock_wrlock(&mc->lock);
    old = mc->cat;
    mc->cat = cat;
    snprintf(mc->cat_version, sizeof mc->cat_version, "%s", version);
    pthread_rwlock_unlock(&mc->lock);
    cat_free(old);
    log_info("metering", "device catalog %s loaded (%zu devices)", version, cat_device_count(cat));
    return DB_OK;
}

static int refresh_eff(db_conn *db, metering_cache *mc, const char *version)
{
    const char *p[] = {version};
    PGresult *r = db_exec(db, sql_eff_doc, 1, p);
    cu_eff_table *t = malloc(sizeof *t), *old;
    json_t *j = NULL;
    cu_error err;
    int ok;

    if (!r) {
        free(t);
        return db_last_status(db);
    }
    if (PQntuples(r) == 1)
        j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    ok = t && j && cu_eff_from_json(j, t, &err) == CU_OK;
    json_decref(j);
    if (!ok) {
        log_error("metering", "efficiency version %s does not parse", version);
        free(t);
        return DB_OK;
    }
    pthread_rwlock_wrlock(&mc->lock);
    old = mc->eff;
    mc->eff = t;
    mc->eff_version = t->version;
    pthread_rwlock_unlock(&mc->lock);
    free(old);
    return DB_OK;
}

int mcache_refresh(db_conn *db, metering_cache *mc)
{
    PGresult *r = db_exec(db, sql_heads, 0, NULL);
    char cat_version[72] = "", eff_version[16] = "";
    int rc = DB_OK, cat_changed, eff_changed;

    if (!r)
        return db_last_status(db);
    if (!PQgetisnull(r, 0, 0))
        snprintf(cat_version, sizeof cat_version, "%s", PQgetvalue(r, 0, 0));
    if (!PQgetisnull(r, 0, 1))
        snprintf(eff_version, sizeof eff_version, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    pthread_rwlock_rdlock(&mc->lock);
    cat_changed = cat_version[0] && strcmp(cat_version, mc->cat_version) != 0;
    eff_changed = eff_version[0] && (uint32_t)strtoul(eff_version, NULL, 10) != mc->eff_version;
    pthread_rwlock_unlock(&mc->lock);
    if (cat_changed)
        rc = refresh_catalog(db, mc, cat_version);
    if (rc == DB_OK && eff_changed)
        rc = refresh_eff(db, mc, eff_version);
    return rc;
}

static const char sql_existing[] = "SELECT sha256 FROM catalog_versions WHERE version = $1";
static const char sql_insert_version[] =
    "INSERT INTO catalog_versions (version, sha256, document, device_count, imported_by) "
    "VALUES ($1, $2, $3::jsonb, $4, $5)";
static const char sql_insert_device[] =
    "INSERT INTO devices (catalog_version, id, position, kind, spec) VALUES ($1, $2, $3, $4, "
    "$5::jsonb)";
static const char sql_eff_defaults[] =
    "INSERT INTO efficiency_versions (version, factors, reason, created_by) "
    "VALUES (1, $1::jsonb, 'documented defaults', 'tallyd') ON CONFLICT (version) DO NOTHING";

static int insert_devices(db_conn *db, const cat_catalog *cat, const char *version)
{
    for (size_t i = 0; i < cat_device_count(cat); i++) {
        const cat_device *d = cat_device_at(cat, i);
        json_t *spec = cat_device_to_json(d);
        char *text = spec ? json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        char pos[24];
        const char *p[] = {version, cat_device_id(d), pos, cat_kind_name(cat_device_kind(d)), text};
        int rc;

        json_decref(spec);
        if (!text)
            return DB_FAILED;
        snprintf(pos, sizeof pos, "%zu", i);
        rc = db_command(db, sql_insert_device, 5, p);
        free(text);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int ensure_eff_defaults(db_conn *db)
{
    cu_eff_table *t = malloc(sizeof *t);
    json_t *j;
    char *text;
    int rc;

    if (!t)
        return DB_FAILED;
    cu_eff_defaults(t);
    j = cu_eff_to_json(t);
    free(t);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return DB_FAILED;
    {
        const char *p[] = {text};
        rc = db_command(db, sql_eff_defaults, 1, p);
    }
    free(text);
    return rc;
}

int metering_import_catalog(db_conn *db, const char *json_text, size_t len, const char *actor,
                            char *version, size_t versionlen, char *err, size_t errlen)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char sha[65], count[24];
    cat_error cerr;
    cat_catalog *cat = cat_parse(json_text, len, &cerr);
    PGresult *r;
    int rc;

    if (!cat) {
        snprintf(err, errlen, "%s", cerr.message);
        return 3;
    }
    snprintf(version, versionlen, "%s", cat_version(cat));
    crypto_hash_sha256(h, (const unsigned char *)json_text, len);
    sodium_bin2hex(sha, sizeof sha, h, sizeof h);
    {
        const char *p[] = {version};
        r = db_exec(db, sql_existing, 1, p);
    }
    if (!r) {
        cat_free(cat);
        return db_last_status(db);
    }
    if (PQntuples(r) == 1) {
        rc = strcmp(PQgetvalue(r, 0, 0), sha) == 0 ? 0 : 2;
        if (rc == 2)
            snprintf(err, errlen,
                     "catalog version %s already exists with different content; a changed "
                     "catalog needs a new version",
                     version);
        PQclear(r);
        cat_free(cat);
        return rc == 0 ? (ensure_eff_defaults(db) == DB_OK ? 0 : db_last_status(db)) : rc;
    }
    PQclear(r);
    snprintf(count, sizeof count, "%zu", cat_device_count(cat));
    {
        char *text = strndup(json_text, len);
        const char *p[] = {version, sha, text, count, actor};
        rc = text ? db_command(db, sql_insert_version, 5, p) : DB_FAILED;
        free(text);
    }
    if (rc == DB_OK)
        rc = insert_devices(db, cat, version);
    if (rc == DB_OK)
        rc = ensure_eff_defaults(db);
    cat_free(cat);
    return rc == DB_OK ? 1 : rc;
}

static const char sql_current_doc[] =
    "SELECT document::text FROM catalog_versions ORDER BY seq DESC LIMIT 1";

int metering_current_document(db_conn *db, json_t **doc)
{
    PGresult *r = db_exec(db, sql_current_doc, 0, NULL);

    *doc = NULL;
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1)
        *doc = json_loads(PQgetvalue(r, 0, 0), JSON_REJECT_DUPLICATES, NULL);
    PQclear(r);
    return *doc ? 1 : 0;
}
