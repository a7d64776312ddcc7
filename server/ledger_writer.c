/*
 * ledger_writer.c - the ledger's write path: account resolution, the batch
 * executor (one database transaction per batch of ops) and the group-commit
 * writer threads that feed it. The design, lock order and failure isolation
 * are described at the top of ledger_svc.h and in docs/ledger.md.
 *
 * Invariant: everything a batch writes is decided in memory against rows the
 * batch has locked (holds, checked accounts, partition heads) or owns through
 * a head lock (shards), so an op that fails leaves no trace except its stored
 * idempotent outcome, and every reply follows the COMMIT.
 */
#include "ids.h"
#include "ledger_copy.h"
#include "ledger_svc.h"
#include "log.h"

#include <stdarg.h>

#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the account cache -------------------------------------------------------
 * Ledger accounts never change owner, purpose, currency or checked-ness, so
 * their metadata is cached per process (the cache is only a cache). */

typedef struct acct_meta {
    char id[LEDGER_ACC_MAX];
    char owner[LEDGER_ACC_MAX]; /* "" for platform accounts */
    char purpose[12];
    char currency[4];
    bool checked;
    ledger_normal normal;
    struct acct_meta *next_id, *next_key;
} acct_meta;

#define ACACHE_BUCKETS 4096

struct ledger_acache {
    pthread_mutex_t mu;
    acct_meta *by_id[ACACHE_BUCKETS];
    acct_meta *by_key[ACACHE_BUCKETS];
    /* owner roles (immutable) */
    struct role_entry {
        char id[LEDGER_ACC_MAX];
        char role[16];
        struct role_entry *next;
    } * roles[ACACHE_BUCKETS];
};

static unsigned hash_str(const char *a, const char *b, const char *c)
{
    unsigned h = 2166136261u;
    for (const char *s = a; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    h = (h ^ '|') * 16777619u;
    for (const char *s = b; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    h = (h ^ '|') * 16777619u;
    for (const char *s = c; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % ACACHE_BUCKETS;
}

static ledger_normal normal_of(const char *purpose)
{
    return !strcmp(purpose, "external") ? LEDGER_NORMAL_DEBIT : LEDGER_NORMAL_CREDIT;
}

static int meta_by_id(ledger_acache *c, const char *id, acct_meta *out)
{
    int found = 0;

    pthread_mutex_lock(&c->mu);
    for (acct_meta *m = c->by_id[hash_str(id, NULL, NULL)]; m; m = m->next_id)
        if (!strcmp(m->id, id)) {
            *out = *m;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    return found;
}

static int meta_by_key(ledger_acache *c, const char *owner, const char *purpose,
                       const char *currency, acct_meta *out)
{
    int found = 0;

    pthread_mutex_lock(&c->mu);
    for (acct_meta *m = c->by_key[hash_str(owner, purpose, currency)]; m; m = m->next_key)
        if (!strcmp(m->owner, owner) && !strcmp(m->purpose, purpose) &&
            !strcmp(m->currency, currency)) {
            *out = *m;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    return found;
}

static void meta_put(ledger_acache *c, const acct_meta *in)
{
    acct_meta tmp, *m;

    if (meta_by_id(c, in->id, &tmp))
        return;
    m = malloc(sizeof *m);
    if (!m)
        return;
    *m = *in;
    pthread_mutex_lock(&c->mu);
    m->next_id = c->by_id[hash_str(m->id, NULL, NULL)];
    c->by_id[hash_str(m->id, NULL, NULL)] = m;
    m->next_key = c->by_key[hash_str(m->owner, m->purpose, m->currency)];
    c->by_key[hash_str(m->owner, m->purpose, m->currency)] = m;
    pthread_mutex_unlock(&c->mu);
}

static void acache_free(ledger_acache *c)
{
    if (!c)
        return;
    for (int i = 0; i < ACACHE_BUCKETS; i++) {
        for (acct_meta *m = c->by_id[i], *n; m; m = n) {
            n = m->next_id;
            free(m);
        }
        for (struct role_entry *r = c->roles[i], *n; r; r = n) {
            n = r->next;
            free(r);
        }
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static const char sql_meta[] = "SELECT id, coalesce(owner_id, ''), purpose, currency, checked "
                               "FROM ledger_accounts WHERE id = $1";

/* Metadata of a ledger account by id: 1 found, 0 unknown, < 0 db_status. */
static int meta_load(ledger_svc *ls, db_conn *db, const char *id, acct_meta *out)
{
    PGresult *r;
    const char *p[] = {id};

    if (meta_by_id(ls->cache, id, out))
        return 1;
    r = db_exec(db, sql_meta, 1, p);
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
        snprintf(out->owner, sizeof out->owner, "%s", PQgetvalue(r, 0, 1));
        snprintf(out->purpose, sizeof out->purpose, "%s", PQgetvalue(r, 0, 2));
        snprintf(out->currency, sizeof out->currency, "%s", PQgetvalue(r, 0, 3));
        out->checked = PQgetvalue(r, 0, 4)[0] == 't';
        out->normal = normal_of(out->purpose);
        meta_put(ls->cache, out);
        PQclear(r);
        return 1;
    }
    PQclear(r);
    return 0;
}

static const char sql_role[] = "SELECT role FROM accounts WHERE id = $1";

/* The role of an account (tenant, provider...): 1 found, 0 unknown, < 0 db_status. */
static int role_of(ledger_svc *ls, db_conn *db, const char *id, char *role, size_t cap)
{
    ledger_acache *c = ls->cache;
    unsigned h = hash_str(id, NULL, NULL);
    const char *p[] = {id};
    PGresult *r;
    int found = 0;

    pthread_mutex_lock(&c->mu);
    for (struct role_entry *e = c->roles[h]; e; e = e->next)
        if (!strcmp(e->id, id)) {
            snprintf(role, cap, "%s", e->role);
            found = 1;
        }
    pthread_mutex_unlock(&c->mu);
    if (found)
        return 1;
    r = db_exec(db, sql_role, 1, p);
    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1) {
        struct role_entry *e = calloc(1, sizeof *e);
        snprintf(role, cap, "%s", PQgetvalue(r, 0, 0));
        if (e) {
            snprintf(e->id, sizeof e->id, "%s", id);
            snprintf(e->role, sizeof e->role, "%s", role);
            pthread_mutex_lock(&c->mu);
            e->next = c->roles[h];
            c->roles[h] = e;
            pthread_mutex_unlock(&c->mu);
        }
        found = 1;
    }
    PQclear(r);
    return found;
}

static const char sql_acct_get_or_create[] =
    "WITH ins AS (INSERT INTO ledger_accounts (id, owner_id, purpose, currency, checked) "
    "VALUES ($1, nullif($2, ''), $3, $4, $5::boolean) ON CONFLICT DO NOTHING RETURNING id) "
    "SELECT id FROM ins UNION ALL SELECT id FROM ledger_accounts "
    "WHERE coalesce(owner_id, '') = $2 AND purpose = $3 AND currency = $4 LIMIT 1";

/* The account of (owner, purpose, currency), created when missing (autocommit:
 * an empty account is harmless and creation is idempotent). 1 or db_status. */
static int acct_resolve(ledger_svc *ls, db_conn *db, const char *owner, const char *purpose,
                        const char *currency, char *out)
{
    acct_meta m;
    char id[LEDGER_ACC_MAX];
    bool checked = !strcmp(purpose, "wallet") || !strcmp(purpose, "holds");

    if (meta_by_key(ls->cache, owner, purpose, currency, &m)) {
        memcpy(out, m.id, sizeof m.id);
        return 1;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *p[] = {id, owner, purpose, currency, checked ? "true" : "false"};
        PGresult *r;
        if (ids_new(id, sizeof id, "la") != 0)
            return DB_FAILED;
        r = db_exec(db, sql_acct_get_or_create, 5, p);
        if (!r)
            return db_last_status(db);
        if (PQntuples(r) == 1) {
            memset(&m, 0, sizeof m);
            snprintf(m.id, sizeof m.id, "%s", PQgetvalue(r, 0, 0));
            snprintf(m.owner, sizeof m.owner, "%s", owner);
            snprintf(m.purpose, sizeof m.purpose, "%s", purpose);
            snprintf(m.currency, sizeof m.currency, "%s", currency);
            m.checked = checked;
            m.normal = normal_of(purpose);
            meta_put(ls->cache, &m);
            memcpy(out, m.id, sizeof m.id);
            PQclear(r);
            return 1;
        }
        PQclear(r); /* lost a race with a concurrent creator: look again */
    }
    return DB_RETRY;
}

/* ---- service life ------------------------------------------------------------ */

static int env_int(const char *name, int def, int min, int max, int *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (!v || !*v) {
        *out = def;
        return 0;
    }
    n = strtol(v, &end, 10);
    if (*end || n < min || n > max) {
        snprintf(err, errlen, "%s: must be an integer between %d and %d, got '%s'", name, min, max,
                 v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

ledger_svc *ledger_svc_new(const char *conninfo, int db_timeout_ms, const signing_key *key,
                           char *err, size_t errlen)
{
    ledger_svc *ls = calloc(1, sizeof *ls);
    int parts, ck;

    if (!ls) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (env_int("TALLY_LEDGER_PARTITIONS", 16, 1, 65536, &parts, err, errlen) ||
        env_int("TALLY_LEDGER_BATCH_MAX", 64, 1, 1024, &ls->batch_max, err, errlen) ||
        env_int("TALLY_LEDGER_BATCH_WAIT_US", 1000, 0, 100000, &ls->batch_wait_us, err, errlen) ||
        env_int("TALLY_LEDGER_WRITERS", 2, 1, 64, &ls->writers, err, errlen) ||
        env_int("TALLY_LEDGER_CHECKPOINT_S", 60, 0, 86400 * 7, &ck, err, errlen)) {
        free(ls);
        return NULL;
    }
    ls->partitions = (uint32_t)parts;
    ls->checkpoint_ms = ck * 1000;
    ls->db_timeout_ms = db_timeout_ms;
    snprintf(ls->conninfo, sizeof ls->conninfo, "%s", conninfo);
    ls->cache = calloc(1, sizeof *ls->cache);
    ls->signer = sodium_malloc(sizeof *ls->signer);
    if (!ls->cache || !ls->signer) {
        snprintf(err, errlen, "out of memory");
        free(ls->cache);
        if (ls->signer)
            sodium_free(ls->signer);
        free(ls);
        return NULL;
    }
    pthread_mutex_init(&ls->cache->mu, NULL);
    ledger_signer_init(ls->signer, key->sk);
    memcpy(ls->pk, key->pk, sizeof ls->pk);
    sodium_mprotect_readonly(ls->signer);
    return ls;
}

static const char sql_settings[] =
    "INSERT INTO ledger_settings (singleton, partitions) VALUES (true, $1::integer) "
    "ON CONFLICT (singleton) DO UPDATE SET partitions = "
    "greatest(ledger_settings.partitions, EXCLUDED.partitions) RETURNING partitions";
static const char sql_heads_init[] =
    "INSERT INTO ledger_heads (partition, seq, hash) SELECT p, 0, decode(h, 'hex') "
    "FROM jsonb_to_recordset($1::jsonb) AS x(p integer, h text) ON CONFLICT DO NOTHING";
static const char sql_key_register[] =
    "INSERT INTO ledger_keys (kid, public_key, valid_from) VALUES ($1, decode($2, 'hex'), "
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint) ON CONFLICT DO NOTHING";

int ledger_key_publish(db_conn *db, const char *kid, const unsigned char pk[LEDGER_PK_BYTES])
{
    char pkhex[2 * LEDGER_PK_BYTES + 1];
    const char *p[] = {kid, pkhex};

    ledger_hex(pk, LEDGER_PK_BYTES, pkhex);
    return db_command(db, sql_key_register, 2, p);
}

int ledger_setup(ledger_svc *ls, db_conn *db)
{
    char n[16];
    const char *p1[] = {n};
    PGresult *r;
    json_t *heads;
    char *text;
    int rc;

    if (__atomic_load_n(&ls->setup_done, __ATOMIC_ACQUIRE))
        return DB_OK;
    snprintf(n, sizeof n, "%u", ls->partitions);
    if ((rc = db_begin(db)) != DB_OK)
        return rc;
    r = db_exec(db, sql_settings, 1, p1);
    if (!r)
        return db_last_status(db);
    ls->db_partitions = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    heads = json_array();
    for (uint32_t p = 0; p < ls->db_partitions; p++) {
        unsigned char g[LEDGER_HASH_BYTES];
        char gh[2 * LEDGER_HASH_BYTES + 1];
        ledger_genesis(p, g);
        ledger_hex(g, sizeof g, gh);
        json_array_append_new(heads, json_pack("{s:I,s:s}", "p", (json_int_t)p, "h", gh));
    }
    text = json_dumps(heads, JSON_COMPACT);
    json_decref(heads);
    {
        const char *p2[] = {text};
        rc = text ? db_command(db, sql_heads_init, 1, p2) : DB_FAILED;
    }
    free(text);
    if (rc != DB_OK)
        return rc;
    if ((rc = ledger_key_publish(db, ls->signer->kid, ls->pk)) != DB_OK)
        return rc;
    if ((rc = db_commit(db)) != DB_OK)
        return rc;
    __atomic_store_n(&ls->setup_done, 1, __ATOMIC_RELEASE);
    return DB_OK;
}

ledger_op *ledger_op_new(ledger_op_kind kind)
{
    ledger_op *op = calloc(1, sizeof *op);
    if (op)
        op->op = kind;
    return op;
}

void ledger_op_free(ledger_op *op)
{
    if (!op)
        return;
    json_decref(op->body);
    if (op->ev)
        event_free(op->ev);
    free(op);
}

/* ---- outcomes ---------------------------------------------------------------- */

static problem_type problem_of(ledger_err code)
{
    switch (code) {
    case LEDGER_E_INSUFFICIENT_FUNDS:
        return PROB_INSUFFICIENT_FUNDS;
    case LEDGER_E_CURRENCY_MISMATCH:
        return PROB_CURRENCY_MISMATCH;
    case LEDGER_E_UNKNOWN_ACCOUNT:
        return PROB_UNKNOWN_ACCOUNT;
    case LEDGER_E_CAPTURE_EXCEEDS_HOLD:
        return PROB_CAPTURE_EXCEEDS_HOLD;
    case LEDGER_E_HOLD_CLOSED:
        return PROB_HOLD_CLOSED;
    case LEDGER_E_HOLD_EXPIRED:
        return PROB_HOLD_EXPIRED;
    default:
        return PROB_VALIDATION;
    }
}

static void op_fail(ledger_op *op, problem_type t, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void op_fail(ledger_op *op, problem_type t, const char *field, const char *fmt, ...)
{
    char detail[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    json_decref(op->body);
    op->body = problem_build(t, detail, field, NULL);
    op->status = problem_status(t);
}

static void op_fail_err(ledger_op *op, const ledger_error *e, const char *field)
{
    op_fail(op, problem_of(e->code), field ? field : (e->field[0] ? e->field : NULL), "%s: %s",
            ledger_err_name(e->code), e->message);
}

/* Resolve the accounts an op names, before the batch's transaction. Permanent
 * problems (unknown tenant, wrong role) are recorded in op->pre_*. */
static int op_resolve(ledger_svc *ls, db_conn *db, ledger_op *op)
{
    char role[16];
    int rc;

    op->pre_status = 0;
#define PRE(t, f, ...)                                                                             \
    do {                                                                                           \
        op->pre_status = problem_status(t);                                                        \
        op->pre_prob = t;                                                                          \
        snprintf(op->pre_field, sizeof op->pre_field, "%s", f);                                    \
        snprintf(op->pre_detail, sizeof op->pre_detail, __VA_ARGS__);                              \
        return 1;                                                                                  \
    } while (0)
    switch (op->op) {
    case LOP_DEPOSIT:
    case LOP_HOLD:
        rc = role_of(ls, db, op->owner, role, sizeof role);
        if (rc < 0)
            return rc;
        if (rc == 0 || strcmp(role, "tenant") != 0)
            PRE(PROB_UNKNOWN_ACCOUNT, "tenant_id", "no tenant account '%s'", op->owner);
        if ((rc = acct_resolve(ls, db, op->owner, "wallet", op->currency, op->acc_wallet)) < 0 ||
            (rc = acct_resolve(ls, db, op->owner, "holds", op->currency, op->acc_holds)) < 0)
            return rc;
        if (op->op == LOP_DEPOSIT &&
            (rc = acct_resolve(ls, db, "", "external", op->currency, op->acc_other)) < 0)
            return rc;
        return 1;
    case LOP_CAPTURE: {
        static const char sql[] = "SELECT currency FROM ledger_holds WHERE id = $1";
        const char *p[] = {op->hold_id};
        PGresult *r = db_exec(db, sql, 1, p);
        if (!r)
            return db_last_status(db);
        if (PQntuples(r) != 1) {
            PQclear(r);
            PRE(PROB_NOT_FOUND, "", "no hold '%s'", op->hold_id);
        }
        snprintf(op->currency, sizeof op->currency, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        if ((rc = acct_resolve(ls, db, "", "revenue", op->currency, op->acc_revenue)) < 0)
            return rc;
        if (op->payee[0]) {
            rc = role_of(ls, db, op->payee, role, sizeof role);
            if (rc < 0)
                return rc;
            if (rc == 0 || strcmp(role, "provider") != 0)
                PRE(PROB_UNKNOWN_ACCOUNT, "provider_id", "no provider account '%s'", op->payee);
            if ((rc = acct_resolve(ls, db, op->payee, "payable", op->currency, op->acc_other)) < 0)
                return rc;
        }
        return 1;
    }
    case LOP_TRANSFER:
        for (size_t i = 0; i < op->n_entries; i++) {
            acct_meta m;
            char f[40];
            snprintf(f, sizeof f, "entries[%zu].account", i);
            rc = meta_load(ls, db, op->entries[i].account, &m);
            if (rc < 0)
                return rc;
            if (rc == 0)
                PRE(PROB_UNKNOWN_ACCOUNT, f, "no ledger account '%s'", op->entries[i].account);
            if (!strcmp(m.purpose, "holds"))
                PRE(PROB_VALIDATION, f,
                    "'%s' is a holds account: it only moves through holds, captures and voids",
                    m.id);
            if (op->entries[i].currency[0] && strcmp(op->entries[i].currency, m.currency)) {
                snprintf(f, sizeof f, "entries[%zu].currency", i);
                PRE(PROB_CURRENCY_MISMATCH, f, "account '%s' is in %s, not %s", m.id, m.currency,
                    op->entries[i].currency);
            }
            snprintf(op->entries[i].currency, sizeof op->entries[i].currency, "%s", m.currency);
        }
        return 1;
    default:
        return 1;
    }
#undef PRE
}

/* ---- the batch ------------------------------------------------------------------ */

typedef struct bacct {
    char id[LEDGER_ACC_MAX];
    ledger_account a;
} bacct;

typedef struct bshard {
    char id[LEDGER_ACC_MAX];
    uint32_t shard;
    ledger_account a;
    bool dirty;
} bshard;

typedef struct bhead {
    uint32_t p;
    uint64_t seq;
    unsigned char hash[LEDGER_HASH_BYTES];
    bool dirty;
} bhead;

typedef struct bhold {
    char id[LEDGER_ACC_MAX], owner[LEDGER_ACC_MAX], wallet[LEDGER_ACC_MAX], holds[LEDGER_ACC_MAX];
    char order_id[LEDGER_ID_MAX + 1], hold_txn[LEDGER_ACC_MAX], closed_txn[LEDGER_ACC_MAX];
    ledger_hold h;
    bool is_new, dirty;
} bhold;

typedef struct borig {
    char id[LEDGER_ID_MAX + 1];
    ledger_row row;
    bool reversed;
} borig;

typedef struct batch {
    ledger_svc *ls;
    db_conn *db;
    ledger_op **ops;
    size_t n;
    bool *active;
    bacct *accts;
    size_t naccts;
    bshard *shards;
    size_t nshards, capshards;
    bhead *heads;
    size_t nheads;
    bhold *holds;
    size_t nholds, capholds;
    borig *origs;
    size_t norigs;
    int64_t now_us;
    ledger_buf scratch;
    ledger_copy cp_txns, cp_entries;
    json_t *w_holds_new, *w_holds_upd, *w_idem;
    bool in_txn; /* inside the caller's transaction: no BEGIN, no COMMIT, no ROLLBACK */
} batch;

static bool op_has_key(const ledger_op *op)
{
    return op->idem_key[0] != '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* A PostgreSQL array literal of ids (ids are [A-Za-z0-9_], no quoting needed). */
static char *id_array(const char **ids, size_t n)
{
    size_t cap = 3 + n * (LEDGER_ACC_MAX + 1);
    char *s = malloc(cap), *p = s;

    if (!s)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i && !strcmp(ids[i], ids[i - 1]))
            continue;
        p += snprintf(p, cap - (size_t)(p - s), "%s%s", p - s > 1 ? "," : "", ids[i]);
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

static const char sql_idem_claim[] =
    "INSERT INTO ledger_idempotency (caller_id, key, request_hash) "
    "SELECT c, k, h FROM jsonb_to_recordset($1::jsonb) AS x(c text, k text, h text) ORDER BY c, k "
    "ON CONFLICT DO NOTHING RETURNING caller_id, key";
static const char sql_idem_load[] =
    "SELECT i.caller_id, i.key, i.request_hash, i.status, i.response::text "
    "FROM ledger_idempotency i JOIN jsonb_to_recordset($1::jsonb) AS x(c text, k text, h text) "
    "ON i.caller_id = x.c AND i.key = x.k";

/* Claim every key in one statement, in (caller, key) order: lock order 1. */
static int claim_keys(batch *b)
{
    json_t *arr = json_array();
    PGresult *r;
    char *text;
    int rc = DB_OK;

    for (size_t i = 0; i < b->n; i++)
        if (b->active[i] && op_has_key(b->ops[i]))
            json_array_append_new(arr,
                                  json_pack("{s:s,s:s,s:s}", "c", b->ops[i]->caller, "k",
                                            b->ops[i]->idem_key, "h", b->ops[i]->request_hash));
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return DB_OK;
    }
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text)
        return DB_FAILED;
    {
        const char *p[] = {text};
        bool *claimed = calloc(b->n, sizeof *claimed);
        r = claimed ? db_exec(b->db, sql_idem_claim, 1, p) : NULL;
        if (!r) {
            free(text);
            free(claimed);
            return claimed ? db_last_status(b->db) : DB_FAILED;
        }
        for (int row = 0; row < PQntuples(r); row++)
            for (size_t i = 0; i < b->n; i++)
                if (b->active[i] && op_has_key(b->ops[i]) &&
                    !strcmp(b->ops[i]->caller, PQgetvalue(r, row, 0)) &&
                    !strcmp(b->ops[i]->idem_key, PQgetvalue(r, row, 1)))
                    claimed[i] = true;
        PQclear(r);
        for (size_t i = 0; i < b->n && rc == DB_OK; i++) {
            ledger_op *op = b->ops[i];
            if (!b->active[i] || !op_has_key(op) || claimed[i])
                continue;
            if (!(r = db_exec(b->db, sql_idem_load, 1, p))) {
                rc = db_last_status(b->db);
                break;
            }
            rc = DB_RETRY; /* vanished or not stored: run the batch again */
            for (int row = 0; row < PQntuples(r); row++) {
                if (strcmp(op->caller, PQgetvalue(r, row, 0)) ||
                    strcmp(op->idem_key, PQgetvalue(r, row, 1)))
                    continue;
                if (strcmp(op->request_hash, PQgetvalue(r, row, 2)) != 0) {
                    op_fail(op, PROB_IDEMPOTENCY_REUSE, "Idempotency-Key",
                            "this Idempotency-Key was used with a different request");
                    rc = DB_OK;
                } else if (!PQgetisnull(r, row, 3)) {
                    op->status = atoi(PQgetvalue(r, row, 3));
                    json_decref(op->body);
                    op->body = json_loads(PQgetvalue(r, row, 4), 0, NULL);
                    op->replayed = true;
                    rc = op->body ? DB_OK : DB_FAILED;
                }
            }
            PQclear(r);
            b->active[i] = false;
        }
        free(claimed);
    }
    free(text);
    return rc;
}

static bhold *find_hold(batch *b, const char *id)
{
    for (size_t i = 0; i < b->nholds; i++)
        if (!strcmp(b->holds[i].id, id))
            return &b->holds[i];
    return NULL;
}

static bhold *add_hold(batch *b)
{
    if (b->nholds == b->capholds) {
        size_t cap = b->capholds ? 2 * b->capholds : 16;
        bhold *n = realloc(b->holds, cap * sizeof *n);
        if (!n)
            return NULL;
        b->holds = n;
        b->capholds = cap;
    }
    memset(&b->holds[b->nholds], 0, sizeof b->holds[0]);
    return &b->holds[b->nholds++];
}

static ledger_hold_status hold_status_parse(const char *s)
{
    if (!strcmp(s, "captured"))
        return LEDGER_HOLD_CAPTURED;
    if (!strcmp(s, "voided"))
        return LEDGER_HOLD_VOIDED;
    if (!strcmp(s, "expired"))
        return LEDGER_HOLD_EXPIRED;
    return LEDGER_HOLD_OPEN;
}

static const char *hold_status_name(ledger_hold_status s)
{
    switch (s) {
    case LEDGER_HOLD_CAPTURED:
        return "captured";
    case LEDGER_HOLD_VOIDED:
        return "voided";
    case LEDGER_HOLD_EXPIRED:
        return "expired";
    default:
        return "open";
    }
}

static const char sql_holds_lock[] =
    "SELECT id, owner_id, wallet_id, holds_id, currency, amount, captured, released, state, "
    "expires_us, coalesce(order_id, ''), hold_txn_id FROM ledger_holds "
    "WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE";

/* Lock the holds the batch touches, in id order: lock order 2. */
static int lock_holds(batch *b)
{
    const char **ids = calloc(b->n + 1, sizeof *ids);
    size_t k = 0;
    char *arr;
    PGresult *r;

    if (!ids)
        return DB_FAILED;
    for (size_t i = 0; i < b->n; i++)
        if (b->active[i] && (b->ops[i]->op == LOP_CAPTURE || b->ops[i]->op == LOP_VOID ||
                             b->ops[i]->op == LOP_EXPIRE))
            ids[k++] = b->ops[i]->hold_id;
    if (k == 0) {
        free(ids);
        return DB_OK;
    }
    qsort(ids, k, sizeof *ids, cmp_str);
    arr = id_array(ids, k);
    free(ids);
    if (!arr)
        return DB_FAILED;
    {
        const char *p[] = {arr};
        r = db_exec(b->db, sql_holds_lock, 1, p);
    }
    free(arr);
    if (!r)
        return db_last_status(b->db);
    for (int i = 0; i < PQntuples(r); i++) {
        bhold *h = add_hold(b);
        if (!h) {
            PQclear(r);
            return DB_FAILED;
        }
        snprintf(h->id, sizeof h->id, "%s", PQgetvalue(r, i, 0));
        snprintf(h->owner, sizeof h->owner, "%s", PQgetvalue(r, i, 1));
        snprintf(h->wallet, sizeof h->wallet, "%s", PQgetvalue(r, i, 2));
        snprintf(h->holds, sizeof h->holds, "%s", PQgetvalue(r, i, 3));
        snprintf(h->h.currency, sizeof h->h.currency, "%s", PQgetvalue(r, i, 4));
        h->h.amount = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        h->h.captured = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        h->h.released = strtoll(PQgetvalue(r, i, 7), NULL, 10);
        h->h.status = hold_status_parse(PQgetvalue(r, i, 8));
        h->h.expires_us = strtoll(PQgetvalue(r, i, 9), NULL, 10);
        snprintf(h->order_id, sizeof h->order_id, "%s", PQgetvalue(r, i, 10));
        snprintf(h->hold_txn, sizeof h->hold_txn, "%s", PQgetvalue(r, i, 11));
    }
    PQclear(r);
    return DB_OK;
}

static const char sql_origs[] =
    "SELECT " LEDGER_TXN_COLS ", EXISTS (SELECT 1 FROM ledger_transactions r "
    "WHERE r.reverses_id = t.id) FROM ledger_transactions t "
    "WHERE t.id = ANY($1::text[])";

/* Read the transactions the batch reverses (immutable rows: no lock needed;
 * a concurrent second reversal is stopped by the unique index). */
static int load_origs(batch *b)
{
    const char **ids = calloc(b->n + 1, sizeof *ids);
    size_t k = 0;
    char *arr;
    PGresult *r;

    if (!ids)
        return DB_FAILED;
    for (size_t i = 0; i < b->n; i++)
        if (b->active[i] && b->ops[i]->op == LOP_REVERSE)
            ids[k++] = b->ops[i]->reverses;
    if (k == 0) {
        free(ids);
        return DB_OK;
    }
    qsort(ids, k, sizeof *ids, cmp_str);
    arr = id_array(ids, k);
    free(ids);
    if (!arr)
        return DB_FAILED;
    {
        const char *p[] = {arr};
        r = db_exec(b->db, sql_origs, 1, p);
    }
    free(arr);
    if (!r)
        return db_last_status(b->db);
    b->origs = calloc((size_t)PQntuples(r) + 1, sizeof *b->origs);
    if (!b->origs) {
        PQclear(r);
        return DB_FAILED;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        borig *o = &b->origs[b->norigs++];
        if (ledger_row_from_pg(r, i, &o->row) != 0) {
            PQclear(r);
            return DB_FAILED;
        }
        snprintf(o->id, sizeof o->id, "%s", o->row.t.id);
        o->reversed = PQgetvalue(r, i, LEDGER_TXN_NCOLS)[0] == 't';
    }
    PQclear(r);
    return DB_OK;
}

static borig *find_orig(batch *b, const char *id)
{
    for (size_t i = 0; i < b->norigs; i++)
        if (!strcmp(b->origs[i].id, id))
            return &b->origs[i];
    return NULL;
}

/* The accounts an op may touch and the account that anchors its partition.
 * Returns the number written to ids (at most LEDGER_MAX_ENTRIES + 4). */
static size_t op_accounts(batch *b, ledger_op *op, const char **ids, const char **anchor)
{
    size_t k = 0;
    bhold *h;
    borig *o;

    *anchor = NULL;
    switch (op->op) {
    case LOP_DEPOSIT:
        ids[k++] = op->acc_wallet;
        ids[k++] = op->acc_other;
        *anchor = op->acc_wallet;
        break;
    case LOP_HOLD:
        ids[k++] = op->acc_wallet;
        ids[k++] = op->acc_holds;
        *anchor = op->acc_wallet;
        break;
    case LOP_CAPTURE:
    case LOP_VOID:
    case LOP_EXPIRE:
        if (!(h = find_hold(b, op->hold_id)))
            break;
        ids[k++] = h->holds;
        ids[k++] = h->wallet;
        if (op->op == LOP_CAPTURE) {
            ids[k++] = op->acc_revenue;
            if (op->payee[0])
                ids[k++] = op->acc_other;
        }
        *anchor = h->holds;
        break;
    case LOP_TRANSFER:
        for (size_t i = 0; i < op->n_entries; i++)
            ids[k++] = op->entries[i].account;
        *anchor = op->n_entries ? op->entries[0].account : NULL;
        break;
    case LOP_REVERSE:
        if (!(o = find_orig(b, op->reverses)))
            break;
        for (size_t i = 0; i < o->row.t.n_entries; i++)
            ids[k++] = o->row.t.entries[i].account;
        *anchor = o->row.t.n_entries ? o->row.t.entries[0].account : NULL;
        break;
    }
    return k;
}

static bacct *find_acct(batch *b, const char *id)
{
    for (size_t i = 0; i < b->naccts; i++)
        if (!strcmp(b->accts[i].id, id))
            return &b->accts[i];
    return NULL;
}

static const char sql_accts_lock[] =
    "SELECT id, balance, version, credit_limit, currency, purpose FROM ledger_accounts "
    "WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE";
static const char sql_heads_lock[] =
    "SELECT partition, seq, encode(hash, 'hex'), "
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint FROM ledger_heads "
    "WHERE partition = ANY($1::integer[]) ORDER BY partition FOR UPDATE";
static const char sql_shards_load[] =
    "SELECT s.account_id, s.shard, s.balance, s.version FROM ledger_account_shards s "
    "JOIN jsonb_to_recordset($1::jsonb) AS x(a text, s integer) "
    "ON s.account_id = x.a AND s.shard = x.s";

static int uint_array(const uint32_t *v, size_t n, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "{");
    for (size_t i = 0; i < n; i++) {
        if (i && v[i] == v[i - 1])
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%u", len > 1 ? "," : "", v[i]);
        if (len >= cap)
            return -1;
    }
    snprintf(out + len, cap - len, "}");
    return 0;
}

static bshard *find_shard(batch *b, const char *id, uint32_t shard)
{
    for (size_t i = 0; i < b->nshards; i++)
        if (b->shards[i].shard == shard && !strcmp(b->shards[i].id, id))
            return &b->shards[i];
    return NULL;
}

static bshard *add_shard(batch *b, const acct_meta *m, uint32_t shard)
{
    bshard *s;

    if ((s = find_shard(b, m->id, shard)))
        return s;
    if (b->nshards == b->capshards) {
        size_t cap = b->capshards ? 2 * b->capshards : 16;
        bshard *n = realloc(b->shards, cap * sizeof *n);
        if (!n)
            return NULL;
        b->shards = n;
        b->capshards = cap;
    }
    s = &b->shards[b->nshards++];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", m->id);
    s->shard = shard;
    ledger_account_init(&s->a, m->id, m->currency, m->normal, 0, true, NULL);
    return s;
}

static bhead *find_head(batch *b, uint32_t p)
{
    for (size_t i = 0; i < b->nheads; i++)
        if (b->heads[i].p == p)
            return &b->heads[i];
    return NULL;
}

static int parse_accts(batch *b, PGresult *r)
{
    b->accts = calloc((size_t)PQntuples(r) + 1, sizeof *b->accts);
    if (!b->accts)
        return DB_FAILED;
    for (int i = 0; i < PQntuples(r); i++) {
        bacct *a = &b->accts[b->naccts++];
        snprintf(a->id, sizeof a->id, "%s", PQgetvalue(r, i, 0));
        ledger_account_init(&a->a, a->id, PQgetvalue(r, i, 4), normal_of(PQgetvalue(r, i, 5)),
                            strtoll(PQgetvalue(r, i, 3), NULL, 10), false, NULL);
        a->a.balance = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        a->a.version = strtoull(PQgetvalue(r, i, 2), NULL, 10);
    }
    return DB_OK;
}

static int parse_heads(batch *b, PGresult *r)
{
    b->heads = calloc((size_t)PQntuples(r) + 1, sizeof *b->heads);
    if (!b->heads)
        return DB_FAILED;
    for (int i = 0; i < PQntuples(r); i++) {
        bhead *h = &b->heads[b->nheads++];
        h->p = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
        h->seq = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        if (ledger_unhex(PQgetvalue(r, i, 2), h->hash, LEDGER_HASH_BYTES) != 0)
            return DB_FAILED;
        b->now_us = strtoll(PQgetvalue(r, i, 3), NULL, 10);
    }
    return DB_OK;
}

static int parse_shards(batch *b, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        acct_meta m;
        bshard *s;
        if (meta_load(b->ls, b->db, PQgetvalue(r, i, 0), &m) != 1 ||
            !(s = add_shard(b, &m, (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10))))
            return DB_FAILED;
        s->a.balance = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        s->a.version = strtoull(PQgetvalue(r, i, 3), NULL, 10);
    }
    return DB_OK;
}

static const char sql_key_valid[] = "SELECT valid_until FROM ledger_keys WHERE kid = $1";

/* Refuse to sign with a retired key. The check runs after the head locks, as
 * its own statement (a new snapshot): a retirement locks every head before it
 * sets valid_until, so it either committed before this batch's head locks (and
 * is seen here) or waits for this batch's COMMIT (and its valid_until is later
 * than this batch's inserted_us). */
static int parse_key(batch *b, PGresult *r)
{
    if (PQntuples(r) == 1 && PQgetisnull(r, 0, 0))
        return DB_OK;
    log_error("ledger", "signing key %s is retired: restart tallyd with a new TALLY_SIGNING_KEY",
              b->ls->signer->kid);
    return DB_UNAVAILABLE;
}

/* The checked accounts (sorted), the partitions (sorted) and the (account,
 * partition) shard pairs the active ops touch. Returns DB_OK or a db_status. */
static int collect_locks(batch *b, const char **checked, size_t *nc, uint32_t *parts, size_t *np,
                         json_t *pairs)
{
    for (size_t i = 0; i < b->n; i++) {
        const char *ids[LEDGER_MAX_ENTRIES + 4], *anchor;
        size_t k;
        if (!b->active[i])
            continue;
        k = op_accounts(b, b->ops[i], ids, &anchor);
        if (!anchor)
            continue;
        parts[(*np)++] = ledger_partition_of(anchor, b->ls->db_partitions);
        for (size_t j = 0; j < k; j++) {
            acct_meta m;
            int found = meta_load(b->ls, b->db, ids[j], &m);
            if (found < 0)
                return found;
            if (!found)
                continue; /* reported when the op is applied */
            if (m.checked)
                checked[(*nc)++] = ids[j];
            else
                json_array_append_new(
                    pairs, json_pack("{s:s,s:I}", "a", m.id, "s", (json_int_t)parts[*np - 1]));
        }
    }
    qsort(checked, *nc, sizeof *checked, cmp_str);
    qsort(parts, *np, sizeof *parts, cmp_u32);
    return DB_OK;
}

/* Lock checked accounts (order 3) and partition heads (order 4), load shards and
 * check the signing key: one pipelined round trip (statements run in order, so
 * the lock order holds), preceded by BEGIN when begin is set. */
static int lock_accounts_and_heads(batch *b, bool begin)
{
    size_t cap = b->n * (LEDGER_MAX_ENTRIES + 4) + 1, nc = 0, np = 0, n = 0;
    const char **checked = calloc(cap, sizeof *checked);
    uint32_t *parts = calloc(b->n + 1, sizeof *parts);
    json_t *pairs = json_array();
    char *arr = NULL, *text = NULL, *parr = malloc(12 * (b->n + 1) + 3);
    ledger_stmt st[5];
    PGresult *res[5] = {NULL};
    int rc, ia = -1, ih = -1, is = -1, ik = -1;

    rc = checked && parts && pairs && parr ? collect_locks(b, checked, &nc, parts, &np, pairs)
                                           : DB_FAILED;
    if (rc != DB_OK)
        goto out;
    if ((nc && !(arr = id_array(checked, nc))) ||
        (np && uint_array(parts, np, parr, 12 * (b->n + 1) + 3) != 0) ||
        (json_array_size(pairs) && !(text = json_dumps(pairs, JSON_COMPACT)))) {
        rc = DB_FAILED;
        goto out;
    }
    if (begin)
        st[n++] = (ledger_stmt){"BEGIN ISOLATION LEVEL READ COMMITTED", NULL};
    if (nc)
        ia = (int)n, st[n++] = (ledger_stmt){sql_accts_lock, arr};
    if (np)
        ih = (int)n, st[n++] = (ledger_stmt){sql_heads_lock, parr};
    if (text)
        is = (int)n, st[n++] = (ledger_stmt){sql_shards_load, text};
    if (np)
        ik = (int)n, st[n++] = (ledger_stmt){sql_key_valid, b->ls->signer->kid};
    if (n && (rc = ledger_pipe_query(b->db, st, n, res)) != DB_OK)
        goto out;
    if ((ia >= 0 && (rc = parse_accts(b, res[ia])) != DB_OK) ||
        (ih >= 0 && (rc = parse_heads(b, res[ih])) != DB_OK) ||
        (is >= 0 && (rc = parse_shards(b, res[is])) != DB_OK) ||
        (ik >= 0 && (rc = parse_key(b, res[ik])) != DB_OK))
        goto out;
    if (b->now_us == 0)
        b->now_us = ledger_now_us();
out:
    for (size_t i = 0; i < n; i++)
        PQclear(res[i]);
    free(arr);
    free(text);
    free(parr);
    free(checked);
    free(parts);
    json_decref(pairs);
    return rc;
}

/* One snapshot of a balance that an op may change, for all-or-nothing apply. */
typedef struct touched {
    ledger_account *a;
    ledger_account saved;
} touched;

/* Apply t's entries to the batch-local balances, all or nothing. */
static ledger_err apply_entries(batch *b, const ledger_txn *t, ledger_entry_info *info,
                                ledger_error *err)
{
    touched tc[LEDGER_MAX_ENTRIES];
    size_t nt = 0;
    ledger_err e = LEDGER_OK;

    for (size_t i = 0; i < t->n_entries && e == LEDGER_OK; i++) {
        const ledger_entry *en = &t->entries[i];
        acct_meta m;
        ledger_account *a;
        ledger_posting post;
        int found = meta_load(b->ls, b->db, en->account, &m);
        if (found != 1) {
            e = ledger_error_set(err, LEDGER_E_UNKNOWN_ACCOUNT, (long)i, "account",
                                 "no ledger account '%s'", en->account);
            break;
        }
        if (m.checked) {
            bacct *ba = find_acct(b, m.id);
            if (!ba) {
                e = ledger_error_set(err, LEDGER_E_UNKNOWN_ACCOUNT, (long)i, "account",
                                     "account '%s' is not locked by this batch", m.id);
                break;
            }
            a = &ba->a;
            info[i].shard = -1;
        } else {
            bshard *s = add_shard(b, &m, t->partition);
            if (!s) {
                e = ledger_error_set(err, LEDGER_E_NOMEM, (long)i, "", "out of memory");
                break;
            }
            a = &s->a;
            info[i].shard = (int32_t)t->partition;
        }
        tc[nt].a = a;
        tc[nt++].saved = *a;
        e = ledger_account_apply(a, en, 0, &post, err);
        if (e == LEDGER_OK) {
            info[i].before = post.before;
            info[i].after = post.after;
            info[i].version = post.version;
        } else if (err) {
            err->index = (long)i;
        }
    }
    if (e != LEDGER_OK)
        while (nt-- > 0)
            *tc[nt].a = tc[nt].saved;
    return e;
}

static void set_refs(ledger_txn *t, const ledger_op *op)
{
    snprintf(t->memo, sizeof t->memo, "%s", op->memo);
    snprintf(t->order_id, sizeof t->order_id, "%s", op->order_id);
    snprintf(t->usage_id, sizeof t->usage_id, "%s", op->usage_id);
    snprintf(t->invoice_id, sizeof t->invoice_id, "%s", op->invoice_id);
    snprintf(t->idempotency_key, sizeof t->idempotency_key, "%s", op->idem_key);
}

static json_t *hold_json(const bhold *h)
{
    json_t *o = json_object();
    char ts[40];

    json_object_set_new(o, "id", json_string(h->id));
    json_object_set_new(o, "tenant_id", json_string(h->owner));
    json_object_set_new(o, "wallet_account", json_string(h->wallet));
    json_object_set_new(o, "holds_account", json_string(h->holds));
    json_object_set_new(o, "currency", json_string(h->h.currency));
    json_object_set_new(o, "amount", ledger_money_json(h->h.amount));
    json_object_set_new(o, "captured", ledger_money_json(h->h.captured));
    json_object_set_new(o, "released", ledger_money_json(h->h.released));
    json_object_set_new(o, "remaining", ledger_money_json(ledger_hold_remaining(&h->h)));
    json_object_set_new(o, "state", json_string(hold_status_name(h->h.status)));
    ledger_time_fmt(h->h.expires_us, ts, sizeof ts);
    json_object_set_new(o, "expires_at", json_string(ts));
    json_object_set_new(o, "order_id", h->order_id[0] ? json_string(h->order_id) : json_null());
    json_object_set_new(o, "hold_transaction_id", json_string(h->hold_txn));
    return o;
}

/* Build op's transaction (kind, entries, refs) and the hold change it implies.
 * Returns LEDGER_OK, or a ledger error (op_fail'd by the caller). *skip is
 * set when there is nothing to do (an expiry that lost a race). */
static ledger_err build_op(batch *b, ledger_op *op, ledger_txn *t, bhold **hp, bhold *hsave,
                           bool *skip, ledger_error *err, problem_type *pt, const char **field)
{
    ledger_err e;
    bhold *h = NULL;
    int64_t released = 0;

    *skip = false;
    *pt = (problem_type)-1;
    *field = NULL;
    ledger_txn_init(t);
    set_refs(t, op);
    switch (op->op) {
    case LOP_DEPOSIT:
        *field = "amount";
        return ledger_build_deposit(t, op->acc_wallet, op->acc_other, op->currency, op->amount,
                                    err);
    case LOP_HOLD:
        if (op->expires_us <= b->now_us) {
            *field = "expires_at";
            return ledger_error_set(err, LEDGER_E_BAD_TIME, -1, "expires_at",
                                    "the hold would already have expired");
        }
        *field = "amount";
        if ((e = ledger_build_hold(t, op->acc_wallet, op->acc_holds, op->currency, op->amount,
                                   err)) != LEDGER_OK)
            return e;
        if (!(h = add_hold(b)))
            return ledger_error_set(err, LEDGER_E_NOMEM, -1, "", "out of memory");
        if (ids_new(h->id, sizeof h->id, "hold") != 0 ||
            ledger_hold_place(&h->h, op->currency, op->amount, op->expires_us, err) != LEDGER_OK) {
            b->nholds--;
            return err ? err->code : LEDGER_E_BAD_AMOUNT;
        }
        h->is_new = true;
        snprintf(h->owner, sizeof h->owner, "%s", op->owner);
        snprintf(h->wallet, sizeof h->wallet, "%s", op->acc_wallet);
        snprintf(h->holds, sizeof h->holds, "%s", op->acc_holds);
        snprintf(h->order_id, sizeof h->order_id, "%s", op->order_id);
        *hp = h;
        return LEDGER_OK;
    case LOP_CAPTURE:
    case LOP_VOID:
    case LOP_EXPIRE:
        h = find_hold(b, op->hold_id);
        if (!h || ((op->caller_role & 1u) && strcmp(h->owner, op->caller) != 0)) {
            *pt = PROB_NOT_FOUND;
            return ledger_error_set(err, LEDGER_E_UNKNOWN_ACCOUNT, -1, "", "no hold '%s'",
                                    op->hold_id);
        }
        *hsave = *h;
        *hp = h;
        snprintf(t->order_id, sizeof t->order_id, "%s", h->order_id);
        if (op->op == LOP_VOID) {
            if ((e = ledger_hold_void(&h->h, &released, err)) != LEDGER_OK)
                return e;
            return ledger_build_release(t, LEDGER_KIND_RELEASE, h->holds, h->wallet, h->h.currency,
                                        released, err);
        }
        if (op->op == LOP_EXPIRE) {
            if (h->h.status != LEDGER_HOLD_OPEN || h->h.expires_us > b->now_us) {
                *skip = true;
                return LEDGER_OK;
            }
            if ((e = ledger_hold_expire(&h->h, b->now_us, &released, err)) != LEDGER_OK)
                return e;
            snprintf(t->memo, sizeof t->memo, "hold %s expired", h->id);
            return ledger_build_release(t, LEDGER_KIND_EXPIRY, h->holds, h->wallet, h->h.currency,
                                        released, err);
        }
        *field = "amount";
        if (op->fee < 0 || op->fee > op->amount) {
            *field = "fee";
            return ledger_error_set(err, LEDGER_E_BAD_AMOUNT, -1, "fee",
                                    "fee must be between 0 and the captured amount");
        }
        if (!op->payee[0] && op->fee != 0 && op->fee != op->amount) {
            *field = "fee";
            return ledger_error_set(err, LEDGER_E_BAD_AMOUNT, -1, "fee",
                                    "without a provider_id the whole capture is platform revenue");
        }
        if ((e = ledger_hold_capture(&h->h, op->amount, op->final, b->now_us, &released, err)) !=
            LEDGER_OK)
            return e;
        {
            ledger_payee pay[2];
            size_t np = 0;
            if (op->payee[0] && op->amount - op->fee > 0)
                pay[np++] = (ledger_payee){op->acc_other, op->amount - op->fee};
            if (!op->payee[0])
                pay[np++] = (ledger_payee){op->acc_revenue, op->amount};
            else if (op->fee > 0)
                pay[np++] = (ledger_payee){op->acc_revenue, op->fee};
            return ledger_build_capture(t, h->holds, h->h.currency, pay, np, h->wallet, released,
                                        err);
        }
    case LOP_TRANSFER:
        for (size_t i = 0; i < op->n_entries; i++)
            if ((e = ledger_txn_add_entry(t, op->entries[i].account, op->entries[i].currency,
                                          op->entries[i].amount, err)) != LEDGER_OK)
                return e;
        t->kind = op->kind;
        return LEDGER_OK;
    case LOP_REVERSE: {
        borig *o = find_orig(b, op->reverses);
        if (!o) {
            *pt = PROB_NOT_FOUND;
            return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, "", "no transaction '%s'",
                                    op->reverses);
        }
        if (o->reversed) {
            *pt = PROB_CONFLICT;
            return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, "",
                                    "transaction '%s' has already been reversed", o->id);
        }
        if (o->row.hold_id[0] || o->row.t.kind == LEDGER_KIND_HOLD ||
            o->row.t.kind == LEDGER_KIND_CAPTURE || o->row.t.kind == LEDGER_KIND_RELEASE ||
            o->row.t.kind == LEDGER_KIND_EXPIRY) {
            *pt = PROB_CONFLICT;
            return ledger_error_set(err, LEDGER_E_BAD_REFERENCE, -1, "",
                                    "hold transactions are settled through their hold (capture "
                                    "or void), not reversed");
        }
        if (o->row.t.kind == LEDGER_KIND_REVERSAL)
            *pt = PROB_CONFLICT;
        if ((e = ledger_build_reversal(t, &o->row.t, err)) != LEDGER_OK)
            return e;
        set_refs(t, op);
        snprintf(t->reverses_id, sizeof t->reverses_id, "%s", o->id);
        t->kind = LEDGER_KIND_REVERSAL;
        return LEDGER_OK;
    }
    }
    return ledger_error_set(err, LEDGER_E_BAD_KIND, -1, "", "unknown operation");
}

/* Queue t's transaction row and its entry rows on the batch's COPY streams
 * (column order: sql_w_txns and sql_w_entries). */
static void push_txn_rows(batch *b, const ledger_txn *t, const ledger_entry_info *info,
                          const ledger_op *op, const char *hold_id)
{
    ledger_copy *c = &b->cp_txns;

    if (ledger_canon_encode(t, &b->scratch, NULL) != LEDGER_OK)
        c->oom = true; /* cannot happen after seal; fail the batch rather than store less */
    ledger_copy_row(c, 19);
    ledger_copy_text(c, t->id);
    ledger_copy_i32(c, (int32_t)t->partition);
    ledger_copy_i64(c, (int64_t)t->seq);
    ledger_copy_text(c, ledger_kind_name(t->kind));
    ledger_copy_text(c, t->memo);
    ledger_copy_text_or_null(c, t->order_id);
    ledger_copy_text_or_null(c, t->usage_id);
    ledger_copy_text_or_null(c, t->invoice_id);
    ledger_copy_text_or_null(c, t->reverses_id);
    ledger_copy_text_or_null(c, hold_id);
    ledger_copy_text_or_null(c, op->caller);
    ledger_copy_text_or_null(c, t->idempotency_key);
    ledger_copy_i64(c, t->effective_us);
    ledger_copy_i64(c, t->inserted_us);
    ledger_copy_bytes(c, b->scratch.data, b->scratch.len);
    ledger_copy_bytes(c, t->prev_hash, LEDGER_HASH_BYTES);
    ledger_copy_bytes(c, t->hash, LEDGER_HASH_BYTES);
    ledger_copy_text(c, t->kid);
    ledger_copy_bytes(c, t->sig, LEDGER_SIG_BYTES);
    c = &b->cp_entries;
    for (size_t i = 0; i < t->n_entries; i++) {
        ledger_copy_row(c, 10);
        ledger_copy_text(c, t->id);
        ledger_copy_i16(c, (int16_t)i);
        ledger_copy_text(c, t->entries[i].account);
        ledger_copy_text(c, t->entries[i].currency);
        ledger_copy_i64(c, t->entries[i].amount);
        ledger_copy_i32(c, info[i].shard);
        ledger_copy_i64(c, info[i].before);
        ledger_copy_i64(c, info[i].after);
        ledger_copy_i64(c, (int64_t)info[i].version);
        ledger_copy_i64(c, t->inserted_us);
    }
}

/* Apply one op in memory: build, validate, apply balances, seal, queue rows. */
static void apply_op(batch *b, ledger_op *op)
{
    ledger_txn t;
    ledger_entry_info info[LEDGER_MAX_ENTRIES];
    ledger_error err = {0};
    bhold *h = NULL, hsave;
    bool skip = false;
    problem_type pt;
    const char *field;
    ledger_err e;
    bhead *head;
    bhead headsave;

    memset(&hsave, 0, sizeof hsave);
    e = build_op(b, op, &t, &h, &hsave, &skip, &err, &pt, &field);
    if (skip) {
        op->skipped = true;
        return;
    }
    if (e == LEDGER_OK) {
        if (ids_new(t.id, sizeof t.id, "txn") != 0)
            e = ledger_error_set(&err, LEDGER_E_NOMEM, -1, "", "cannot make an id");
        t.inserted_us = b->now_us;
        t.effective_us = op->effective_us ? op->effective_us : b->now_us;
        snprintf(t.kid, sizeof t.kid, "%s", b->ls->signer->kid);
    }
    if (e == LEDGER_OK)
        e = ledger_txn_partition(&t, b->ls->db_partitions, &t.partition, &err);
    if (e == LEDGER_OK && !(head = find_head(b, t.partition)))
        e = ledger_error_set(&err, LEDGER_E_UNKNOWN_ACCOUNT, -1, "", "partition not locked");
    if (e == LEDGER_OK) {
        t.seq = head->seq + 1;
        e = ledger_txn_validate(&t, &err);
    }
    if (e == LEDGER_OK)
        e = apply_entries(b, &t, info, &err);
    if (e == LEDGER_OK) {
        headsave = *head;
        e = ledger_txn_seal(&t, head->hash, b->ls->signer, &b->scratch, &err);
        if (e == LEDGER_OK) {
            head->seq = t.seq;
            memcpy(head->hash, t.hash, LEDGER_HASH_BYTES);
            head->dirty = true;
        } else {
            *head = headsave; /* cannot happen after validate; keep state consistent */
        }
    }
    if (e != LEDGER_OK) {
        if (h && h->is_new && h == &b->holds[b->nholds - 1])
            b->nholds--;
        else if (h && !h->is_new)
            *h = hsave;
        if ((int)pt >= 0)
            op_fail(op, pt, field, "%s", err.message);
        else
            op_fail_err(op, &err, e == LEDGER_E_INSUFFICIENT_FUNDS ? "amount" : field);
        return;
    }
    if (h) {
        if (h->is_new)
            snprintf(h->hold_txn, sizeof h->hold_txn, "%.47s", t.id);
        else
            h->dirty = true;
        if (h->h.status != LEDGER_HOLD_OPEN)
            snprintf(h->closed_txn, sizeof h->closed_txn, "%.47s", t.id);
    }
    push_txn_rows(b, &t, info, op, h ? h->id : NULL);
    snprintf(op->txn_id, sizeof op->txn_id, "%.47s", t.id);
    json_decref(op->body);
    if (h) {
        op->body = hold_json(h);
        json_object_set_new(op->body, "transaction", ledger_txn_json(&t, info, h->id));
        op->status = op->op == LOP_HOLD ? 201 : 200;
    } else {
        op->body = ledger_txn_json(&t, info, NULL);
        op->status = 201;
    }
}

static const char sql_w_txns[] =
    "COPY ledger_transactions (id, partition, seq, kind, memo, order_id, usage_id, invoice_id, "
    "reverses_id, hold_id, caller_id, idempotency_key, effective_us, inserted_us, canonical, "
    "prev_hash, hash, kid, sig) FROM STDIN (FORMAT binary)";
static const char sql_w_entries[] =
    "COPY ledger_entries (txn_id, idx, account_id, currency, amount, shard, balance_before, "
    "balance_after, account_version, inserted_us) FROM STDIN (FORMAT binary)";
static const char sql_w_accts[] =
    "UPDATE ledger_accounts a SET balance = x.b, version = x.v "
    "FROM jsonb_to_recordset($1::jsonb) AS x(id text, b bigint, v bigint) WHERE a.id = x.id";
static const char sql_w_shards[] =
    "INSERT INTO ledger_account_shards (account_id, shard, balance, version) "
    "SELECT a, s, b, v FROM jsonb_to_recordset($1::jsonb) AS x(a text, s integer, b bigint, "
    "v bigint) ON CONFLICT (account_id, shard) DO UPDATE SET balance = EXCLUDED.balance, "
    "version = EXCLUDED.version";
static const char sql_w_heads[] =
    "UPDATE ledger_heads h SET seq = x.s, hash = decode(x.h, 'hex') "
    "FROM jsonb_to_recordset($1::jsonb) AS x(p integer, s bigint, h text) WHERE h.partition = x.p";
static const char sql_w_holds_new[] =
    "INSERT INTO ledger_holds (id, owner_id, wallet_id, holds_id, currency, amount, captured, "
    "released, state, expires_us, order_id, hold_txn_id, closed_txn_id) "
    "SELECT id, o, w, h, c, a, cap, rel, st, e, nullif(oid, ''), ht, ct "
    "FROM jsonb_to_recordset($1::jsonb) AS x(id text, o text, w text, h text, c text, a bigint, "
    "cap bigint, rel bigint, st text, e bigint, oid text, ht text, ct text)";
static const char sql_w_holds_upd[] =
    "UPDATE ledger_holds l SET captured = x.cap, released = x.rel, state = x.st, "
    "closed_txn_id = x.ct FROM jsonb_to_recordset($1::jsonb) AS x(id text, cap bigint, "
    "rel bigint, st text, ct text) WHERE l.id = x.id";
static const char sql_w_idem[] =
    "UPDATE ledger_idempotency i SET status = x.st, response = x.r, txn_id = x.t "
    "FROM json_to_recordset($1::json) AS x(c text, k text, st integer, r json, t text) "
    "WHERE i.caller_id = x.c AND i.key = x.k";

static int write_batch(batch *b)
{
    json_t *accts = json_array(), *shards = json_array(), *heads = json_array();
    int rc;

    for (size_t i = 0; i < b->naccts; i++)
        json_array_append_new(accts, json_pack("{s:s,s:I,s:I}", "id", b->accts[i].id, "b",
                                               (json_int_t)b->accts[i].a.balance, "v",
                                               (json_int_t)b->accts[i].a.version));
    for (size_t i = 0; i < b->nshards; i++)
        if (b->shards[i].a.version > 0)
            json_array_append_new(shards, json_pack("{s:s,s:I,s:I,s:I}", "a", b->shards[i].id, "s",
                                                    (json_int_t)b->shards[i].shard, "b",
                                                    (json_int_t)b->shards[i].a.balance, "v",
                                                    (json_int_t)b->shards[i].a.version));
    for (size_t i = 0; i < b->nheads; i++)
        if (b->heads[i].dirty) {
            char hh[65];
            ledger_hex(b->heads[i].hash, LEDGER_HASH_BYTES, hh);
            json_array_append_new(heads, json_pack("{s:I,s:I,s:s}", "p", (json_int_t)b->heads[i].p,
                                                   "s", (json_int_t)b->heads[i].seq, "h", hh));
        }
    for (size_t i = 0; i < b->nholds; i++) {
        bhold *h = &b->holds[i];
        if (h->is_new)
            json_array_append_new(
                b->w_holds_new,
                json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:I,s:s,s:s,s:o}", "id", h->id, "o",
                          h->owner, "w", h->wallet, "h", h->holds, "c", h->h.currency, "a",
                          (json_int_t)h->h.amount, "cap", (json_int_t)h->h.captured, "rel",
                          (json_int_t)h->h.released, "st", hold_status_name(h->h.status), "e",
                          (json_int_t)h->h.expires_us, "oid", h->order_id, "ht", h->hold_txn, "ct",
                          h->closed_txn[0] ? json_string(h->closed_txn) : json_null()));
        else if (h->dirty)
            json_array_append_new(
                b->w_holds_upd,
                json_pack("{s:s,s:I,s:I,s:s,s:o}", "id", h->id, "cap", (json_int_t)h->h.captured,
                          "rel", (json_int_t)h->h.released, "st", hold_status_name(h->h.status),
                          "ct", h->closed_txn[0] ? json_string(h->closed_txn) : json_null()));
    }
    for (size_t i = 0; i < b->n; i++) {
        ledger_op *op = b->ops[i];
        if (!b->active[i] || !op_has_key(op) || op->skipped)
            continue;
        json_array_append_new(b->w_idem,
                              json_pack("{s:s,s:s,s:i,s:O,s:o}", "c", op->caller, "k", op->idem_key,
                                        "st", op->status, "r", op->body, "t",
                                        op->txn_id[0] ? json_string(op->txn_id) : json_null()));
    }
    rc = ledger_copy_send(b->db, sql_w_txns, &b->cp_txns);
    if (rc == DB_OK)
        rc = ledger_copy_send(b->db, sql_w_entries, &b->cp_entries);
    if (rc == DB_OK) {
        /* the set-based writes and COMMIT: one round trip */
        const char *sqls[] = {sql_w_accts,     sql_w_shards,    sql_w_heads,
                              sql_w_holds_new, sql_w_holds_upd, sql_w_idem};
        json_t *arrs[] = {accts, shards, heads, b->w_holds_new, b->w_holds_upd, b->w_idem};
        ledger_stmt st[7];
        char *texts[6] = {NULL};
        size_t n = 0;
        for (size_t i = 0; i < 6 && rc == DB_OK; i++) {
            if (json_array_size(arrs[i]) == 0)
                continue;
            if (!(texts[i] = json_dumps(arrs[i], JSON_COMPACT)))
                rc = DB_FAILED;
            st[n++] = (ledger_stmt){sqls[i], texts[i]};
        }
        if (!b->in_txn)
            st[n++] = (ledger_stmt){"COMMIT", NULL};
        if (rc == DB_OK && n)
            rc = ledger_pipe_run(b->db, st, n);
        for (size_t i = 0; i < 6; i++)
            free(texts[i]);
    }
    json_decref(accts);
    json_decref(shards);
    json_decref(heads);
    return rc; /* a racing second reversal (23505) comes back as DB_RETRY: run again */
}

static void batch_free(batch *b)
{
    free(b->active);
    free(b->accts);
    free(b->shards);
    free(b->heads);
    free(b->holds);
    for (size_t i = 0; i < b->norigs; i++)
        ledger_row_clear(&b->origs[i].row);
    free(b->origs);
    ledger_buf_free(&b->scratch);
    ledger_copy_free(&b->cp_txns);
    ledger_copy_free(&b->cp_entries);
    json_decref(b->w_holds_new);
    json_decref(b->w_holds_upd);
    json_decref(b->w_idem);
}

static void op_reset(ledger_op *op)
{
    json_decref(op->body);
    op->body = NULL;
    op->status = 0;
    op->replayed = op->skipped = false;
    op->txn_id[0] = '\0';
}

/* Whether the batch has Idempotency-Keys to claim, holds to lock or
 * transactions to reverse (all read before the accounts, in lock order). */
static bool needs_pre_reads(const batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const ledger_op *op = b->ops[i];
        if (op_has_key(op) || op->op == LOP_CAPTURE || op->op == LOP_VOID || op->op == LOP_EXPIRE ||
            op->op == LOP_REVERSE)
            return true;
    }
    return false;
}

static int batch_once(ledger_svc *ls, db_conn *db, ledger_op **ops, size_t n, bool in_txn)
{
    batch b;
    int rc;

    memset(&b, 0, sizeof b);
    b.in_txn = in_txn;
    b.ls = ls;
    b.db = db;
    b.ops = ops;
    b.n = n;
    b.active = calloc(n, sizeof *b.active);
    ledger_copy_init(&b.cp_txns);
    ledger_copy_init(&b.cp_entries);
    b.w_holds_new = json_array();
    b.w_holds_upd = json_array();
    b.w_idem = json_array();
    if (!b.active) {
        batch_free(&b);
        return DB_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        op_reset(ops[i]);
        b.active[i] = true;
    }
    /* Keys, holds and reversals are read (and locked) before the accounts; a
     * batch without any sends BEGIN together with its account and head locks. */
    if (needs_pre_reads(&b) &&
        ((!in_txn && (rc = db_begin(db)) != DB_OK) || (rc = claim_keys(&b)) != DB_OK ||
         (rc = lock_holds(&b)) != DB_OK || (rc = load_origs(&b)) != DB_OK))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (b.active[i] && ops[i]->pre_status) {
            op_fail(ops[i], ops[i]->pre_prob, ops[i]->pre_field[0] ? ops[i]->pre_field : NULL, "%s",
                    ops[i]->pre_detail);
        }
    if ((rc = lock_accounts_and_heads(&b, !in_txn && !needs_pre_reads(&b))) != DB_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (b.active[i] && !ops[i]->pre_status)
            apply_op(&b, ops[i]);
    rc = write_batch(&b); /* ends with COMMIT unless in_txn */
out:
    if (rc != DB_OK && !in_txn)
        db_rollback(db);
    batch_free(&b);
    return rc;
}

int ledger_run_ops(ledger_svc *ls, db_conn *db, ledger_op **ops, size_t n)
{
    int rc = ledger_setup(ls, db);

    if (rc != DB_OK) {
        db_rollback(db);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = op_resolve(ls, db, ops[i])) < 0)
            return rc;
    for (int attempt = 0; attempt < 8; attempt++) {
        rc = batch_once(ls, db, ops, n, false);
        if (rc != DB_RETRY)
            break;
        {
            struct timespec ts = {0, (long)(200000L << (attempt < 6 ? attempt : 6)) +
                                         (long)randombytes_uniform(500000)};
            nanosleep(&ts, NULL);
        }
    }
    if (rc == DB_OK) {
        __atomic_add_fetch(&ls->batches, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ls->batched_ops, n, __ATOMIC_RELAXED);
    }
    return rc;
}

/* Whether resolving op inside a caller's transaction would create nothing: every
 * account op_resolve may get-or-create is in the cache already (a creation rolled
 * back with the caller's transaction would leave a cached id with no row). */
static bool op_resolves_cached(ledger_svc *ls, const ledger_op *op)
{
    acct_meta m;

    switch (op->op) {
    case LOP_DEPOSIT:
    case LOP_HOLD:
        return meta_by_key(ls->cache, op->owner, "wallet", op->currency, &m) &&
               meta_by_key(ls->cache, op->owner, "holds", op->currency, &m) &&
               (op->op != LOP_DEPOSIT || meta_by_key(ls->cache, "", "external", op->currency, &m));
    case LOP_CAPTURE:
        return meta_by_key(ls->cache, "", "revenue", op->currency, &m) &&
               (!op->payee[0] || meta_by_key(ls->cache, op->payee, "payable", op->currency, &m));
    default:
        return true; /* transfers only read accounts; the others resolve nothing */
    }
}

int ledger_run_ops_in_txn(ledger_svc *ls, db_conn *db, ledger_op **ops, size_t n)
{
    int rc;

    if (!__atomic_load_n(&ls->setup_done, __ATOMIC_ACQUIRE))
        return LEDGER_NOT_READY;
    for (size_t i = 0; i < n; i++)
        if (!op_resolves_cached(ls, ops[i]))
            return LEDGER_NOT_READY;
    for (size_t i = 0; i < n; i++)
        if ((rc = op_resolve(ls, db, ops[i])) < 0)
            return rc;
    rc = batch_once(ls, db, ops, n, true);
    if (rc == DB_OK) {
        __atomic_add_fetch(&ls->batches, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&ls->batched_ops, n, __ATOMIC_RELAXED);
    }
    return rc;
}

/* ---- the group-commit writer threads -------------------------------------------- */

struct ledger_writer {
    ledger_svc *ls;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ledger_op *head, *tail;
    size_t queued;
    int stopping;
    int nthreads;
    pthread_t *threads;
};

static long long mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Take up to max ops from the queue, leaving a second op with an idempotency
 * key already in this batch for the next one (it then replays). Locked. */
static size_t take_batch(ledger_writer *w, ledger_op **out, size_t max)
{
    ledger_op **pp = &w->head, *last = NULL;
    size_t k = 0;

    while (*pp && k < max) {
        ledger_op *op = *pp;
        bool dup = false;
        for (size_t i = 0; i < k && op_has_key(op); i++)
            dup = dup ||
                  (!strcmp(out[i]->caller, op->caller) && !strcmp(out[i]->idem_key, op->idem_key));
        if (dup) {
            last = op;
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        op->next = NULL;
        out[k++] = op;
        w->queued--;
    }
    /* recompute the tail */
    w->tail = NULL;
    for (ledger_op *op = w->head; op; op = op->next)
        w->tail = op;
    (void)last;
    return k;
}

static void finish_ops(ledger_op **ops, size_t n)
{
    for (size_t i = 0; i < n; i++)
        event_active(ops[i]->ev, 0, 0);
}

static void *writer_main(void *arg)
{
    ledger_writer *w = arg;
    ledger_svc *ls = w->ls;
    size_t cap = (size_t)ls->batch_max;
    ledger_op **ops = calloc(cap, sizeof *ops);
    db_conn *db = NULL;

    if (!ops)
        return NULL;
    for (;;) {
        size_t k;
        int rc;
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        if (w->queued < cap && ls->batch_wait_us > 0 && !w->stopping) {
            long long deadline = mono_us() + ls->batch_wait_us;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)ls->batch_wait_us * 1000;
            ts.tv_sec += ts.tv_nsec / 1000000000;
            ts.tv_nsec %= 1000000000;
            while (w->queued < cap && !w->stopping && mono_us() < deadline)
                if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
                    break;
        }
        k = take_batch(w, ops, cap);
        pthread_mutex_unlock(&w->mu);
        if (k == 0)
            continue;
        if (db && PQstatus(db_pgconn(db)) != CONNECTION_OK) {
            db_close(db);
            db = NULL;
        }
        if (!db) {
            char err[512];
            db = db_connect(ls->conninfo, err, sizeof err);
            if (db) {
                char set[64];
                snprintf(set, sizeof set, "SET statement_timeout = %d", ls->db_timeout_ms);
                PQclear(PQexec(db_pgconn(db), set));
            } else {
                log_warn("ledger", "writer cannot connect: %s", err);
            }
        }
        rc = db ? ledger_run_ops(ls, db, ops, k) : DB_UNAVAILABLE;
        if (rc == DB_FAILED && k > 1) {
            /* isolate the op that broke the batch: run each on its own */
            for (size_t i = 0; i < k; i++) {
                int r1 = ledger_run_ops(ls, db, &ops[i], 1);
                if (r1 != DB_OK) {
                    op_reset(ops[i]);
                    ops[i]->status = r1;
                }
            }
        } else if (rc != DB_OK) {
            for (size_t i = 0; i < k; i++) {
                op_reset(ops[i]);
                ops[i]->status = rc; /* transient: nothing stored, the key may be retried */
            }
        }
        finish_ops(ops, k);
    }
    db_close(db);
    free(ops);
    return NULL;
}

int ledger_svc_start_writer(ledger_svc *ls)
{
    ledger_writer *w = calloc(1, sizeof *w);

    if (!w)
        return -1;
    w->ls = ls;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->threads = calloc((size_t)ls->writers, sizeof *w->threads);
    if (!w->threads) {
        free(w);
        return -1;
    }
    for (; w->nthreads < ls->writers; w->nthreads++)
        if (pthread_create(&w->threads[w->nthreads], NULL, writer_main, w) != 0)
            break;
    ls->writer = w;
    return w->nthreads > 0 ? 0 : -1;
}

static void op_fire(evutil_socket_t fd, short what, void *arg)
{
    ledger_op *op = arg;
    (void)fd;
    (void)what;
    op->done(op);
}

int ledger_submit(ledger_svc *ls, struct event_base *base, ledger_op *op)
{
    ledger_writer *w = ls ? ls->writer : NULL;

    if (!w)
        return -1;
    op->ev = event_new(base, -1, 0, op_fire, op);
    if (!op->ev)
        return -1;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        event_free(op->ev);
        op->ev = NULL;
        return -1;
    }
    op->next = NULL;
    if (w->tail)
        w->tail->next = op;
    else
        w->head = op;
    w->tail = op;
    w->queued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void ledger_svc_stop_writer(ledger_svc *ls)
{
    ledger_writer *w = ls ? ls->writer : NULL;

    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->threads);
    free(w);
    ls->writer = NULL;
}

void ledger_svc_free(ledger_svc *ls)
{
    if (!ls)
        return;
    ledger_svc_stop_writer(ls);
    acache_free(ls->cache);
    if (ls->signer)
        sodium_free(ls->signer);
    free(ls);
}
