/*
 * pricing_store.c - policy versions, their parsed cache, period state, utilisation.
 * Invariant: a cached entry always holds exactly the version its key names.
 */
#include "pricing_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PSTORE_CACHE_MAX 128

struct pstore_ref {
    char key[64];
    pricing_policy *policy;
    int refs;    /* users + 1 while cached */
    int evicted; /* no longer in the table */
    struct pstore_ref *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pstore_ref *head;
static int cached;

static void inputs_clear_locked(void);

static void ref_drop_locked(struct pstore_ref *r)
{
    if (--r->refs == 0) {
        pricing_policy_free(r->policy);
        free(r);
    }
}

/* Evict everything (entries in use survive until released). */
static void evict_all_locked(void)
{
    while (head) {
        struct pstore_ref *n = head->next;
        head->evicted = 1;
        ref_drop_locked(head);
        head = n;
    }
    cached = 0;
}

static struct pstore_ref *cache_get(const char *key, const char *canonical)
{
    struct pstore_ref *r;
    pricing_error err;
    pricing_policy *p;

    pthread_mutex_lock(&mu);
    for (r = head; r; r = r->next)
        if (!strcmp(r->key, key)) {
            r->refs++;
            pthread_mutex_unlock(&mu);
            return r;
        }
    pthread_mutex_unlock(&mu);
    p = pricing_policy_parse(canonical, strlen(canonical), &err);
    if (!p)
        return NULL;
    r = calloc(1, sizeof *r);
    if (!r) {
        pricing_policy_free(p);
        return NULL;
    }
    snprintf(r->key, sizeof r->key, "%s", key);
    r->policy = p;
    r->refs = 2; /* the cache and the caller */
    pthread_mutex_lock(&mu);
    if (cached >= PSTORE_CACHE_MAX)
        evict_all_locked();
    r->next = head;
    head = r;
    cached++;
    pthread_mutex_unlock(&mu);
    return r;
}

void pstore_release(pstore_version *v)
{
    if (!v || !v->ref)
        return;
    pthread_mutex_lock(&mu);
    ref_drop_locked(v->ref);
    pthread_mutex_unlock(&mu);
    v->ref = NULL;
    v->policy = NULL;
}

void pstore_cache_free(void)
{
    pthread_mutex_lock(&mu);
    inputs_clear_locked();
    evict_all_locked();
    pthread_mutex_unlock(&mu);
}

/* ---- the quote-inputs cache (see pricing_store.h for the staleness rule) ---------- */

#define INPUTS_BUCKETS 1024
#define INPUTS_MAX 4096

struct inputs_entry {
    char key[256];
    unsigned gen;           /* the invalidation generation it was read under */
    long long read_ms;      /* monotonic time the database read started */
    pstore_quote_inputs in; /* holds one reference on each version */
    struct inputs_entry *next;
};

static struct inputs_entry *inputs[INPUTS_BUCKETS];
static int n_inputs;
static unsigned inputs_gen;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned inputs_key(const pstore_quote_query *q, char *key, size_t len)
{
    unsigned h = 2166136261u;

    snprintf(key, len, "%s|%d|%s|%s|%s|%s", q->policy_id, q->version, q->tenant, q->period,
             q->device, q->region ? q->region : "");
    for (const char *s = key; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % INPUTS_BUCKETS;
}

static void version_hold_locked(const pstore_version *from, pstore_version *to)
{
    *to = *from;
    if (to->ref)
        to->ref->refs++;
}

static void entry_free_locked(struct inputs_entry *e)
{
    ref_drop_locked(e->in.pol.ref);
    if (e->in.plat.ref)
        ref_drop_locked(e->in.plat.ref);
    free(e);
}

static void inputs_clear_locked(void)
{
    for (int b = 0; b < INPUTS_BUCKETS; b++)
        while (inputs[b]) {
            struct inputs_entry *n = inputs[b]->next;
            entry_free_locked(inputs[b]);
            inputs[b] = n;
        }
    n_inputs = 0;
}

int pstore_inputs_get(const pstore_quote_query *q, pstore_quote_inputs *out)
{
    char key[256];
    unsigned b = inputs_key(q, key, sizeof key);
    long long now = mono_ms();
    int found = 0;

    pthread_mutex_lock(&mu);
    for (struct inputs_entry *e = inputs[b]; e; e = e->next)
        if (!strcmp(e->key, key)) {
            if (e->gen == inputs_gen && now - e->read_ms < PSTORE_INPUTS_TTL_MS) {
                version_hold_locked(&e->in.pol, &out->pol);
                version_hold_locked(&e->in.plat, &out->plat);
                out->state = e->in.state;
                out->util = e->in.util;
                found = 1;
            }
            break;
        }
    pthread_mutex_unlock(&mu);
    return found;
}

void pstore_inputs_release(pstore_quote_inputs *in)
{
    pstore_release(&in->pol);
    pstore_release(&in->plat);
}

void pstore_inputs_invalidate(void)
{
    pthread_mutex_lock(&mu);
    inputs_gen++;
    pthread_mutex_unlock(&mu);
}

/* Remember what was read for q (started at read_ms under generation gen). */
static void inputs_put(const pstore_quote_query *q, unsigned gen, long long read_ms,
                       const pstore_quote_inputs *in)
{
    struct inputs_entry *e = calloc(1, sizeof *e), **pp;
    unsigned b;

    if (!e)
        return; /* only a cache */
    b = inputs_key(q, e->key, sizeof e->key);
    e->gen = gen;
    e->read_ms = read_ms;
    pthread_mutex_lock(&mu);
    for (pp = &inputs[b]; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->key, e->key)) {
            struct inputs_entry *old = *pp;
            *pp = old->next;
            entry_free_locked(old);
            n_inputs--;
            break;
        }
    if (n_inputs >= INPUTS_MAX)
        inputs_clear_locked();
    version_hold_locked(&in->pol, &e->in.pol);
    version_hold_locked(&in->plat, &e->in.plat);
    e->in.state = in->state;
    e->in.util = in->util;
    e->next = inputs[b];
    inputs[b] = e;
    n_inputs++;
    pthread_mutex_unlock(&mu);
}

static const char sql_version[] =
    "SELECT v.policy_id, v.version, p.scope, p.owner_id, v.sha256, v.canonical "
    "FROM pricing_policy_versions v JOIN pricing_policies p ON p.id = v.policy_id "
    "WHERE v.policy_id = $1 AND v.version = COALESCE(NULLIF($2, '0')::integer, "
    "(SELECT max(version) FROM pricing_policy_versions WHERE policy_id = $1))";
static const char sql_platform[] =
    "SELECT v.policy_id, v.version, p.scope, p.owner_id, v.sha256, v.canonical "
    "FROM pricing_policy_versions v JOIN pricing_policies p ON p.id = v.policy_id "
    "WHERE p.scope = 'platform' ORDER BY p.id DESC, v.version DESC LIMIT 1";

/* Row i, columns c0..c0+5: policy_id, version, scope, owner_id, sha256, canonical. */
static int fill_row(PGresult *r, int i, int c0, pstore_version *out)
{
    char key[64];

    snprintf(out->policy_id, sizeof out->policy_id, "%s", PQgetvalue(r, i, c0));
    out->version = atoi(PQgetvalue(r, i, c0 + 1));
    snprintf(out->scope, sizeof out->scope, "%s", PQgetvalue(r, i, c0 + 2));
    snprintf(out->owner_id, sizeof out->owner_id, "%s", PQgetvalue(r, i, c0 + 3));
    snprintf(out->sha256, sizeof out->sha256, "%s", PQgetvalue(r, i, c0 + 4));
    snprintf(key, sizeof key, "%s/%d", out->policy_id, out->version);
    out->ref = cache_get(key, PQgetvalue(r, i, c0 + 5));
    out->policy = out->ref ? out->ref->policy : NULL;
    return out->ref ? 1 : DB_FAILED;
}

static int fill(PGresult *r, pstore_version *out)
{
    return PQntuples(r) == 1 ? fill_row(r, 0, 0, out) : 0;
}

/* Everything a quote reads, in one round trip (rows tagged p, f, s, u). */
static const char sql_quote_inputs[] =
    "WITH pol AS (SELECT v.policy_id, v.version, p.scope, p.owner_id, v.sha256, v.canonical "
    "  FROM pricing_policy_versions v JOIN pricing_policies p ON p.id = v.policy_id "
    "  WHERE v.policy_id = $1 AND v.version = COALESCE(NULLIF($2, '0')::integer, "
    "  (SELECT max(version) FROM pricing_policy_versions WHERE policy_id = $1))), "
    "plat AS (SELECT v.policy_id, v.version, p.scope, p.owner_id, v.sha256, v.canonical "
    "  FROM pricing_policy_versions v JOIN pricing_policies p ON p.id = v.policy_id "
    "  WHERE p.scope = 'platform' ORDER BY p.id DESC, v.version DESC LIMIT 1) "
    "SELECT 'p', pol.*, NULL::text FROM pol "
    "UNION ALL SELECT 'f', plat.*, NULL FROM plat "
    "UNION ALL SELECT 's', NULL, NULL, NULL, NULL, NULL, NULL, s.state::text "
    "  FROM pricing_period_state s JOIN pol ON s.policy_id = pol.policy_id AND "
    "  s.policy_version = pol.version WHERE s.tenant_id = $3 AND s.period = $4 "
    "UNION ALL (SELECT 'u', NULL, NULL, NULL, NULL, NULL, NULL, utilisation_ppm::text "
    "  FROM capacity_utilisation WHERE device_id = $5 AND region IN ($6, '') "
    "  ORDER BY region DESC LIMIT 1)";

int pstore_load_quote_inputs(db_conn *db, const pstore_quote_query *q, pstore_version *pol,
                             pstore_version *plat, pricing_state *state, long long *util)
{
    char v[16];
    const char *p[] = {q->policy_id, v, q->tenant, q->period, q->device, q->region};
    PGresult *r;
    int rc = 0;

    long long read_ms = mono_ms();
    unsigned gen;

    pthread_mutex_lock(&mu);
    gen = inputs_gen; /* a change committed after this read must not be cached as current */
    pthread_mutex_unlock(&mu);
    memset(pol, 0, sizeof *pol);
    memset(plat, 0, sizeof *plat);
    memset(state, 0, sizeof *state);
    *util = -1;
    snprintf(v, sizeof v, "%d", q->version);
    r = db_exec(db, sql_quote_inputs, 6, p);
    if (!r)
        return db_last_status(db);
    for (int i = 0; i < PQntuples(r) && rc >= 0; i++) {
        char tag = PQgetvalue(r, i, 0)[0];
        if (tag == 'p')
            rc = fill_row(r, i, 1, pol);
        else if (tag == 'f' && fill_row(r, i, 1, plat) < 0)
            rc = DB_FAILED;
        else if (tag == 'u')
            *util = atoll(PQgetvalue(r, i, 7));
        else if (tag == 's') {
            json_t *j = json_loads(PQgetvalue(r, i, 7), 0, NULL);
            if (!j || pstore_state_from_json(j, state) != 0)
                rc = DB_FAILED;
            json_decref(j);
        }
    }
    PQclear(r);
    if (rc < 0) {
        pstore_release(pol);
        pstore_release(plat);
    } else if (rc == 1) {
        pstore_quote_inputs in = {*pol, *plat, *state, *util};
        inputs_put(q, gen, read_ms, &in);
    }
    return rc;
}

int pstore_load(db_conn *db, const char *policy_id, int version, pstore_version *out)
{
    char v[16];
    const char *p[] = {policy_id, v};
    PGresult *r;
    int rc;

    memset(out, 0, sizeof *out);
    snprintf(v, sizeof v, "%d", version);
    r = db_exec(db, sql_version, 2, p);
    if (!r)
        return db_last_status(db);
    rc = fill(r, out);
    PQclear(r);
    return rc;
}

int pstore_load_platform(db_conn *db, pstore_version *out)
{
    PGresult *r = db_exec(db, sql_platform, 0, NULL);
    int rc;

    memset(out, 0, sizeof *out);
    if (!r)
        return db_last_status(db);
    rc = fill(r, out);
    PQclear(r);
    return rc;
}

#define SQL_STATE                                                                                  \
    "SELECT state::text FROM pricing_period_state WHERE tenant_id = $1 AND policy_id = $2 AND "    \
    "policy_version = $3 AND period = $4"
static const char sql_state[] = SQL_STATE;
static const char sql_util[] =
    "SELECT utilisation_ppm FROM capacity_utilisation WHERE device_id = $1 AND region IN ($2, '') "
    "ORDER BY region DESC LIMIT 1";

/* The period state p = (tenant, policy, version, period) read with sql into out, the zero
 * state when there is no row (DB_FAILED instead when must_exist). DB_OK or a db_status. */
static int state_read(db_conn *db, const char *sql, const char *const *p, int must_exist,
                      pricing_state *out)
{
    PGresult *r = db_exec(db, sql, 4, p);
    json_t *j = NULL;
    int rc = must_exist ? DB_FAILED : DB_OK;

    memset(out, 0, sizeof *out);
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1) {
        j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
        rc = j && pstore_state_from_json(j, out) == 0 ? DB_OK : DB_FAILED;
    }
    json_decref(j);
    PQclear(r);
    return rc;
}

int pstore_state_load(db_conn *db, const char *tenant, const char *policy_id, int version,
                      const char *period, pricing_state *out)
{
    char v[16];
    const char *p[] = {tenant, policy_id, v, period};

    snprintf(v, sizeof v, "%d", version);
    return state_read(db, sql_state, p, 0, out);
}

static const char sql_state_seed[] =
    "INSERT INTO pricing_period_state (tenant_id, policy_id, policy_version, period, state) "
    "VALUES ($1, $2, $3, $4, '{}'::jsonb) ON CONFLICT DO NOTHING";
static const char sql_state_lock[] = SQL_STATE " FOR UPDATE";
static const char sql_state_save[] =
    "UPDATE pricing_period_state SET state = $5::jsonb, updated_at = now() WHERE tenant_id = $1 "
    "AND policy_id = $2 AND policy_version = $3 AND period = $4";

int pstore_state_lock(db_conn *db, const char *tenant, const char *policy_id, int version,
                      const char *period, pricing_state *out)
{
    char v[16];
    const char *p[] = {tenant, policy_id, v, period};
    int rc;

    memset(out, 0, sizeof *out);
    snprintf(v, sizeof v, "%d", version);
    if ((rc = db_command(db, sql_state_seed, 4, p)) != DB_OK)
        return rc;
    return state_read(db, sql_state_lock, p, 1, out); /* seeded above: the row exists */
}

int pstore_state_save(db_conn *db, const char *tenant, const char *policy_id, int version,
                      const char *period, const pricing_state *st)
{
    char v[16], *text;
    json_t *j = pstore_state_to_json(st);
    int rc = DB_FAILED;

    snprintf(v, sizeof v, "%d", version);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text) {
        const char *p[] = {tenant, policy_id, v, period, text};
        rc = db_command(db, sql_state_save, 5, p);
    }
    free(text);
    json_decref(j);
    return rc;
}

int pstore_utilisation(db_conn *db, const char *device, const char *region, long long *ppm)
{
    const char *p[] = {device, region ? region : ""};
    PGresult *r = db_exec(db, sql_util, 2, p);

    *ppm = -1;
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1)
        *ppm = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return DB_OK;
}

static json_t *int_array(const int64_t *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

json_t *pstore_state_to_json(const pricing_state *s)
{
    return json_pack("{s:o, s:o, s:o, s:I, s:I, s:I}", "quantity",
                     int_array(s->quantity, PRICING_UNIT_COUNT), "window_base",
                     int_array(s->window_base, PRICING_MAX_WINDOWS), "region_base",
                     int_array(s->region_base, PRICING_MAX_REGIONS), "discount_base",
                     (json_int_t)s->discount_base, "fee_base", (json_int_t)s->fee_base, "charged",
                     (json_int_t)s->charged);
}

static int read_array(const json_t *j, const char *name, int64_t *v, size_t n)
{
    const json_t *a = json_object_get(j, name);

    if (!json_is_array(a) || json_array_size(a) != n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(a, i);
        if (!json_is_integer(x))
            return -1;
        v[i] = json_integer_value(x);
    }
    return 0;
}

int pstore_state_from_json(const json_t *j, pricing_state *out)
{
    memset(out, 0, sizeof *out);
    if (json_is_object(j) && json_object_size(j) == 0)
        return 0; /* a seeded row nothing was charged against yet: the zero state */
    if (read_array(j, "quantity", out->quantity, PRICING_UNIT_COUNT) ||
        read_array(j, "window_base", out->window_base, PRICING_MAX_WINDOWS) ||
        read_array(j, "region_base", out->region_base, PRICING_MAX_REGIONS) ||
        !json_is_integer(json_object_get(j, "discount_base")) ||
        !json_is_integer(json_object_get(j, "fee_base")) ||
        !json_is_integer(json_object_get(j, "charged")))
        return -1;
    out->discount_base = json_integer_value(json_object_get(j, "discount_base"));
    out->fee_base = json_integer_value(json_object_get(j, "fee_base"));
    out->charged = json_integer_value(json_object_get(j, "charged"));
    return 0;
}
