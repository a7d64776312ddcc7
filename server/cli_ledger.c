/*
 * cli_ledger.c - `tallyd verify` and `tallyd export`.
 *
 * Both read the ledger as one stream of JSON objects, in this order: a header,
 * the signing keys, the accounts, the hot-account shards, the partition heads,
 * the checkpoints, then every transaction ordered by (partition, seq). Export
 * writes that stream as JSON lines; verify consumes it, from the database (in
 * one REPEATABLE READ snapshot) or from an export file, and recomputes:
 *   - every transaction's hash, chain link, sequence and signature
 *     (billing/chain.c ledger_chain_step), and its stored canonical bytes;
 *   - every entry's running balance (before + delta = after, versions 1, 2, …
 *     without gaps per account or shard) and each account's stored balance;
 *   - per-currency totals (zero), each partition head;
 *   - every checkpoint: signature, digest, the chain of prev_digests, and the
 *     Merkle root over heads that match the transactions they name.
 * It stops at the first failure, names it and exits 1; 0 when all hold.
 */
#include "cli_ledger.h"
#include "db.h"
#include "ledger_svc.h"
#include "money.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*emit_fn)(json_t *obj, void *arg); /* takes the reference */

/* ---- the stream from the database ------------------------------------------------ */

static int q(db_conn *db, const char *sql, PGresult **out)
{
    *out = db_exec_dynamic(db, sql, 0, NULL);
    return *out ? 0 : -1;
}

static int stream_db(db_conn *db, emit_fn emit, void *arg, char *err, size_t errlen)
{
    PGresult *r;
    uint32_t parts = 0;
    long long entries = 0;

    if (db_command(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL) != DB_OK)
        goto fail;
    if (q(db, "SELECT coalesce((SELECT partitions FROM ledger_settings), 0)", &r))
        goto fail;
    parts = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    /* every entry row, so the verifier can tell one without its transaction */
    if (q(db, "SELECT count(*) FROM ledger_entries", &r))
        goto fail;
    entries = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    emit(json_pack("{s:s,s:i,s:I,s:I}", "type", "header", "version", 1, "partitions",
                   (json_int_t)parts, "entries", (json_int_t)entries),
         arg);
    if (q(db,
          "SELECT kid, encode(public_key, 'hex'), valid_from, valid_until FROM ledger_keys "
          "ORDER BY valid_from, kid",
          &r))
        goto fail;
    for (int i = 0; i < PQntuples(r); i++)
        emit(json_pack("{s:s,s:s,s:s,s:I,s:o}", "type", "key", "kid", PQgetvalue(r, i, 0),
                       "public_key", PQgetvalue(r, i, 1), "valid_from_us",
                       (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10), "valid_until_us",
                       PQgetisnull(r, i, 3) ? json_null()
                                            : json_integer(strtoll(PQgetvalue(r, i, 3), NULL, 10))),
             arg);
    PQclear(r);
    if (q(db,
          "SELECT id, purpose, currency, checked, balance, version, coalesce(owner_id, '') "
          "FROM ledger_accounts ORDER BY id",
          &r))
        goto fail;
    for (int i = 0; i < PQntuples(r); i++)
        emit(json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:s}", "type", "account", "id",
                       PQgetvalue(r, i, 0), "purpose", PQgetvalue(r, i, 1), "currency",
                       PQgetvalue(r, i, 2), "checked", PQgetvalue(r, i, 3)[0] == 't', "balance",
                       (json_int_t)strtoll(PQgetvalue(r, i, 4), NULL, 10), "version",
                       (json_int_t)strtoll(PQgetvalue(r, i, 5), NULL, 10), "owner_id",
                       PQgetvalue(r, i, 6)),
             arg);
    PQclear(r);
    if (q(db,
          "SELECT account_id, shard, balance, version FROM ledger_account_shards "
          "ORDER BY account_id, shard",
          &r))
        goto fail;
    for (int i = 0; i < PQntuples(r); i++)
        emit(json_pack("{s:s,s:s,s:I,s:I,s:I}", "type", "shard", "account", PQgetvalue(r, i, 0),
                       "shard", (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), "balance",
                       (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10), "version",
                       (json_int_t)strtoll(PQgetvalue(r, i, 3), NULL, 10)),
             arg);
    PQclear(r);
    if (q(db, "SELECT partition, seq, encode(hash, 'hex') FROM ledger_heads ORDER BY partition",
          &r))
        goto fail;
    for (int i = 0; i < PQntuples(r); i++)
        emit(json_pack("{s:s,s:I,s:I,s:s}", "type", "head", "partition",
                       (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "seq",
                       (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), "hash",
                       PQgetvalue(r, i, 2)),
             arg);
    PQclear(r);
    if (q(db,
          "SELECT number, time_us, partitions, encode(root, 'hex'), encode(prev_digest, 'hex'), "
          "encode(digest, 'hex'), kid, encode(sig, 'hex'), encode(heads, 'hex') "
          "FROM ledger_checkpoints ORDER BY number",
          &r))
        goto fail;
    for (int i = 0; i < PQntuples(r); i++)
        emit(json_pack("{s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "type", "checkpoint", "number",
                       (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "time_us",
                       (json_int_t)strtoll(PQgetvalue(r, i, 1), NULL, 10), "partitions",
                       (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10), "root",
                       PQgetvalue(r, i, 3), "prev_digest", PQgetvalue(r, i, 4), "digest",
                       PQgetvalue(r, i, 5), "kid", PQgetvalue(r, i, 6), "sig", PQgetvalue(r, i, 7),
                       "heads", PQgetvalue(r, i, 8)),
             arg);
    PQclear(r);
    if (db_command(db,
                   "DECLARE ledger_txns NO SCROLL CURSOR FOR SELECT " LEDGER_TXN_COLS
                   " FROM ledger_transactions t ORDER BY t.partition, t.seq",
                   0, NULL) != DB_OK)
        goto fail;
    for (;;) {
        int n;
        if (q(db, "FETCH 2000 FROM ledger_txns", &r))
            goto fail;
        n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            ledger_row row;
            json_t *o;
            char *hex;
            if (ledger_row_from_pg(r, i, &row) != 0) {
                snprintf(err, errlen, "cannot read transaction %s", PQgetvalue(r, i, 0));
                ledger_row_clear(&row);
                PQclear(r);
                return -1;
            }
            o = ledger_txn_json(&row.t, row.info, row.hold_id);
            json_object_set_new(o, "type", json_string("txn"));
            hex = malloc(2 * row.canonical_len + 1);
            if (hex) {
                ledger_hex(row.canonical ? row.canonical : (const unsigned char *)"",
                           row.canonical_len, hex);
                json_object_set_new(o, "canonical", json_string(hex));
                free(hex);
            }
            ledger_row_clear(&row);
            emit(o, arg);
        }
        PQclear(r);
        if (n == 0)
            break;
    }
    db_rollback(db);
    return 0;
fail:
    snprintf(err, errlen, "database: %s", db_last_message(db));
    db_rollback(db);
    return -1;
}

/* ---- the verifier --------------------------------------------------------------- */

typedef struct vacct {
    char id[LEDGER_ACC_MAX];
    char currency[4];
    bool checked;
    ledger_normal normal;
    int64_t balance;
    uint64_t version;
} vacct;

typedef struct vrec { /* one entry's effect on one account (or shard) */
    uint32_t acct;
    int32_t shard;
    uint64_t version;
    int64_t before, after, delta;
    char txn[LEDGER_ACC_MAX];
} vrec;

typedef struct vshard {
    char account[LEDGER_ACC_MAX];
    int32_t shard;
    int64_t balance;
    uint64_t version;
} vshard;

typedef struct vcur {
    char code[4];
    __int128 sum;
} vcur;

typedef struct verifier {
    bool failed;
    char report[1024];
    uint32_t partitions;
    ledger_keyring ring;
    vacct *accts;
    size_t naccts, capaccts;
    vshard *shards;
    size_t nshards, capshards;
    ledger_head *heads; /* stored rows */
    size_t nheads;
    json_t *ckpts;
    ledger_chain_cursor *cur; /* per partition */
    unsigned char **hashes;   /* per partition: seq-1 -> hash */
    size_t *nhash, *caphash;
    uint32_t cur_partition;
    vrec *recs;
    size_t nrecs, caprecs;
    vcur curr[64];
    size_t ncurr;
    unsigned long long ntxns;
    long long entries_stored;           /* rows in ledger_entries (-1: not in the stream) */
    unsigned long long entries_in_txns; /* entries named by the transactions streamed */
    ledger_buf scratch;
} verifier;

static void vfail(verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vfail(verifier *v, const char *fmt, ...)
{
    va_list ap;

    if (v->failed)
        return;
    v->failed = true;
    va_start(ap, fmt);
    vsnprintf(v->report, sizeof v->report, fmt, ap);
    va_end(ap);
}

static int cmp_acct(const void *a, const void *b)
{
    return strcmp(((const vacct *)a)->id, ((const vacct *)b)->id);
}

static long find_vacct(verifier *v, const char *id)
{
    size_t lo = 0, hi = v->naccts;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v->accts[mid].id, id);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void ensure_partitions(verifier *v, uint32_t n)
{
    if (v->cur || n == 0)
        return;
    v->partitions = n;
    v->cur = calloc(n, sizeof *v->cur);
    v->hashes = calloc(n, sizeof *v->hashes);
    v->nhash = calloc(n, sizeof *v->nhash);
    v->caphash = calloc(n, sizeof *v->caphash);
    if (!v->cur || !v->hashes || !v->nhash || !v->caphash) {
        vfail(v, "out of memory");
        return;
    }
    for (uint32_t p = 0; p < n; p++)
        ledger_chain_cursor_genesis(&v->cur[p], p);
}

static void feed_txn(verifier *v, json_t *o)
{
    ledger_row row;
    ledger_error err = {0};
    char e2[256];
    uint32_t p;

    if (!v->cur)
        ensure_partitions(v, v->partitions ? v->partitions : (uint32_t)v->nheads);
    if (v->naccts > 1 && v->accts[0].id[0] && !v->ntxns)
        qsort(v->accts, v->naccts, sizeof *v->accts, cmp_acct);
    if (ledger_row_from_json(o, &row, e2, sizeof e2) != 0) {
        vfail(v, "transaction %s: %s", json_string_value(json_object_get(o, "id")), e2);
        ledger_row_clear(&row);
        return;
    }
    v->ntxns++;
    v->entries_in_txns += row.t.n_entries;
    p = row.t.partition;
    if (p >= v->partitions) {
        vfail(v, "transaction %s (partition %u, seq %llu): wrong_partition: no such partition",
              row.t.id, p, (unsigned long long)row.t.seq);
        goto out;
    }
    if (ledger_chain_step(&v->cur[p], &row.t, &v->ring, &err) != LEDGER_OK) {
        vfail(v, "transaction %s (partition %u, seq %llu): %s: %s", row.t.id, p,
              (unsigned long long)row.t.seq, ledger_err_name(err.code), err.message);
        goto out;
    }
    if (ledger_canon_encode(&row.t, &v->scratch, NULL) != LEDGER_OK ||
        v->scratch.len != row.canonical_len ||
        memcmp(v->scratch.data, row.canonical, row.canonical_len) != 0) {
        vfail(v,
              "transaction %s (partition %u, seq %llu): canonical_mismatch: the stored canonical "
              "bytes are not the encoding of the stored fields",
              row.t.id, p, (unsigned long long)row.t.seq);
        goto out;
    }
    if (v->nhash[p] == v->caphash[p]) {
        size_t cap = v->caphash[p] ? 2 * v->caphash[p] : 256;
        unsigned char *n = realloc(v->hashes[p], cap * LEDGER_HASH_BYTES);
        if (!n) {
            vfail(v, "out of memory");
            goto out;
        }
        v->hashes[p] = n;
        v->caphash[p] = cap;
    }
    memcpy(v->hashes[p] + v->nhash[p]++ * LEDGER_HASH_BYTES, row.t.hash, LEDGER_HASH_BYTES);
    for (size_t i = 0; i < row.t.n_entries; i++) {
        const ledger_entry *e = &row.t.entries[i];
        long a = find_vacct(v, e->account);
        size_t c;
        vrec *r;
        if (a < 0) {
            vfail(v, "transaction %s (partition %u, seq %llu): unknown_account: entry %zu names %s",
                  row.t.id, p, (unsigned long long)row.t.seq, i, e->account);
            goto out;
        }
        if (strcmp(v->accts[a].currency, e->currency) != 0) {
            vfail(v, "transaction %s: currency_mismatch: entry %zu is %s, account %s is %s",
                  row.t.id, i, e->currency, e->account, v->accts[a].currency);
            goto out;
        }
        if (row.info[i].shard != (v->accts[a].checked ? -1 : (int32_t)p)) {
            vfail(v, "transaction %s: entry %zu records shard %d, expected %d", row.t.id, i,
                  row.info[i].shard, v->accts[a].checked ? -1 : (int)p);
            goto out;
        }
        for (c = 0; c < v->ncurr && strcmp(v->curr[c].code, e->currency); c++)
            ;
        if (c == v->ncurr && v->ncurr < sizeof v->curr / sizeof v->curr[0])
            memcpy(v->curr[v->ncurr++].code, e->currency, 4);
        if (c < v->ncurr)
            v->curr[c].sum += e->amount;
        if (v->nrecs == v->caprecs) {
            size_t cap = v->caprecs ? 2 * v->caprecs : 1024;
            vrec *n = realloc(v->recs, cap * sizeof *n);
            if (!n) {
                vfail(v, "out of memory");
                goto out;
            }
            v->recs = n;
            v->caprecs = cap;
        }
        r = &v->recs[v->nrecs++];
        r->acct = (uint32_t)a;
        r->shard = row.info[i].shard;
        r->version = row.info[i].version;
        r->before = row.info[i].before;
        r->after = row.info[i].after;
        r->delta = ledger_entry_delta(v->accts[a].normal, e->amount);
        snprintf(r->txn, sizeof r->txn, "%.47s", row.t.id);
    }
out:
    ledger_row_clear(&row);
}

static void feed(json_t *o, void *arg)
{
    verifier *v = arg;
    const char *type = json_string_value(json_object_get(o, "type"));

    if (v->failed || !type) {
        if (!type)
            vfail(v, "an object without a type");
        json_decref(o);
        return;
    }
    if (!strcmp(type, "header")) {
        json_t *n = json_object_get(o, "entries"); /* absent in older exports */
        v->partitions = (uint32_t)json_integer_value(json_object_get(o, "partitions"));
        v->entries_stored = json_is_integer(n) ? json_integer_value(n) : -1;
    } else if (!strcmp(type, "key")) {
        unsigned char pk[LEDGER_PK_BYTES];
        json_t *until = json_object_get(o, "valid_until_us");
        ledger_error err;
        char kid[LEDGER_KID_MAX + 1];
        if (ledger_unhex(json_string_value(json_object_get(o, "public_key")), pk, sizeof pk) ||
            ledger_keyring_add(&v->ring, pk,
                               json_integer_value(json_object_get(o, "valid_from_us")),
                               json_is_integer(until) ? json_integer_value(until) : LEDGER_KEY_OPEN,
                               &err) != LEDGER_OK)
            vfail(v, "key %s: cannot be loaded", json_string_value(json_object_get(o, "kid")));
        ledger_key_id(pk, kid);
        if (!v->failed && strcmp(kid, json_string_value(json_object_get(o, "kid"))) != 0)
            vfail(v, "key %s: the key id does not match its public key (%s)",
                  json_string_value(json_object_get(o, "kid")), kid);
    } else if (!strcmp(type, "account")) {
        vacct *a;
        if (v->naccts == v->capaccts) {
            size_t cap = v->capaccts ? 2 * v->capaccts : 256;
            vacct *n = realloc(v->accts, cap * sizeof *n);
            if (!n) {
                vfail(v, "out of memory");
                json_decref(o);
                return;
            }
            v->accts = n;
            v->capaccts = cap;
        }
        a = &v->accts[v->naccts++];
        memset(a, 0, sizeof *a);
        snprintf(a->id, sizeof a->id, "%s", json_string_value(json_object_get(o, "id")));
        snprintf(a->currency, sizeof a->currency, "%s",
                 json_string_value(json_object_get(o, "currency")));
        a->checked = json_is_true(json_object_get(o, "checked"));
        a->normal = !strcmp(json_string_value(json_object_get(o, "purpose")), "external")
                        ? LEDGER_NORMAL_DEBIT
                        : LEDGER_NORMAL_CREDIT;
        a->balance = json_integer_value(json_object_get(o, "balance"));
        a->version = (uint64_t)json_integer_value(json_object_get(o, "version"));
    } else if (!strcmp(type, "shard")) {
        vshard *s;
        if (v->nshards == v->capshards) {
            size_t cap = v->capshards ? 2 * v->capshards : 256;
            vshard *n = realloc(v->shards, cap * sizeof *n);
            if (!n) {
                vfail(v, "out of memory");
                json_decref(o);
                return;
            }
            v->shards = n;
            v->capshards = cap;
        }
        s = &v->shards[v->nshards++];
        snprintf(s->account, sizeof s->account, "%s",
                 json_string_value(json_object_get(o, "account")));
        s->shard = (int32_t)json_integer_value(json_object_get(o, "shard"));
        s->balance = json_integer_value(json_object_get(o, "balance"));
        s->version = (uint64_t)json_integer_value(json_object_get(o, "version"));
    } else if (!strcmp(type, "head")) {
        ledger_head *n = realloc(v->heads, (v->nheads + 1) * sizeof *n);
        if (!n) {
            vfail(v, "out of memory");
        } else {
            v->heads = n;
            n[v->nheads].partition = (uint32_t)json_integer_value(json_object_get(o, "partition"));
            n[v->nheads].seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
            if (n[v->nheads].partition != v->nheads ||
                ledger_unhex(json_string_value(json_object_get(o, "hash")), n[v->nheads].hash,
                             LEDGER_HASH_BYTES))
                vfail(v, "partition head %zu is malformed or out of order", v->nheads);
            v->nheads++;
        }
    } else if (!strcmp(type, "checkpoint")) {
        json_array_append(v->ckpts, o);
    } else if (!strcmp(type, "txn")) {
        if (!v->cur) {
            if (v->nheads > v->partitions)
                v->partitions = (uint32_t)v->nheads;
            ensure_partitions(v, v->partitions);
            qsort(v->accts, v->naccts, sizeof *v->accts, cmp_acct);
        }
        feed_txn(v, o);
    } else {
        vfail(v, "unknown object type '%s'", type);
    }
    json_decref(o);
}

static int cmp_rec(const void *a, const void *b)
{
    const vrec *x = a, *y = b;
    if (x->acct != y->acct)
        return x->acct < y->acct ? -1 : 1;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return x->version < y->version ? -1 : x->version > y->version;
}

static void check_balances(verifier *v)
{
    size_t i = 0;

    qsort(v->recs, v->nrecs, sizeof *v->recs, cmp_rec);
    /* every (account, shard) run: versions 1..n, before = previous after */
    while (i < v->nrecs && !v->failed) {
        size_t j = i;
        int64_t bal = 0;
        uint64_t ver = 0;
        vacct *a = &v->accts[v->recs[i].acct];
        for (; j < v->nrecs && v->recs[j].acct == v->recs[i].acct &&
               v->recs[j].shard == v->recs[i].shard;
             j++) {
            vrec *r = &v->recs[j];
            int64_t want;
            if (r->version != ver + 1 || r->before != bal ||
                __builtin_add_overflow(r->before, r->delta, &want) || want != r->after) {
                char b1[MONEY_FMT_MAX], b2[MONEY_FMT_MAX];
                money_format(bal, b1, sizeof b1);
                money_format(r->before, b2, sizeof b2);
                vfail(v,
                      "transaction %s: balance_broken: account %s (shard %d) version %llu records "
                      "balance before %s, the entries before it sum to %s (version %llu)",
                      r->txn, a->id, r->shard, (unsigned long long)r->version, b2, b1,
                      (unsigned long long)ver);
                return;
            }
            bal = r->after;
            ver = r->version;
        }
        if (v->recs[i].shard < 0) {
            if (a->balance != bal || a->version != ver)
                vfail(v,
                      "account %s: balance_mismatch: stored balance %lld (version %llu), "
                      "entries give %lld (version %llu)",
                      a->id, (long long)a->balance, (unsigned long long)a->version, (long long)bal,
                      (unsigned long long)ver);
            a->version = UINT64_MAX; /* seen */
        } else {
            bool found = false;
            for (size_t s = 0; s < v->nshards; s++)
                if (v->shards[s].shard == v->recs[i].shard &&
                    !strcmp(v->shards[s].account, a->id)) {
                    found = true;
                    if (v->shards[s].balance != bal || v->shards[s].version != ver)
                        vfail(v,
                              "account %s shard %d: balance_mismatch: stored %lld (version "
                              "%llu), entries give %lld (version %llu)",
                              a->id, v->recs[i].shard, (long long)v->shards[s].balance,
                              (unsigned long long)v->shards[s].version, (long long)bal,
                              (unsigned long long)ver);
                    v->shards[s].version = UINT64_MAX;
                }
            if (!found)
                vfail(v, "account %s shard %d: has entries but no stored balance", a->id,
                      v->recs[i].shard);
        }
        i = j;
    }
    for (size_t k = 0; k < v->naccts && !v->failed; k++)
        if (v->accts[k].checked && v->accts[k].version != UINT64_MAX &&
            (v->accts[k].balance != 0 || v->accts[k].version != 0))
            vfail(v, "account %s: balance_mismatch: stored balance %lld without any entry",
                  v->accts[k].id, (long long)v->accts[k].balance);
    for (size_t k = 0; k < v->nshards && !v->failed; k++)
        if (v->shards[k].version != UINT64_MAX)
            vfail(v, "account %s shard %d: a stored balance without any entry",
                  v->shards[k].account, v->shards[k].shard);
    for (size_t c = 0; c < v->ncurr && !v->failed; c++)
        if (v->curr[c].sum != 0)
            vfail(v, "currency %s: unbalanced: the entries do not sum to zero", v->curr[c].code);
}

static void check_heads_and_checkpoints(verifier *v)
{
    size_t k;
    json_t *c;
    ledger_hash prev_digest = {0};
    uint64_t prev_number = 0;
    int64_t prev_time = 0;

    for (uint32_t p = 0; p < v->partitions && !v->failed; p++) {
        ledger_head h;
        ledger_chain_cursor_head(&v->cur[p], &h);
        if (p >= v->nheads)
            vfail(v, "partition %u: no head row", p);
        else if (v->heads[p].seq != h.seq || memcmp(v->heads[p].hash, h.hash, LEDGER_HASH_BYTES))
            vfail(v,
                  "partition %u: head_mismatch: the head row says seq %llu, the chain ends at "
                  "seq %llu",
                  p, (unsigned long long)v->heads[p].seq, (unsigned long long)h.seq);
    }
    json_array_foreach(v->ckpts, k, c)
    {
        ledger_checkpoint ck;
        ledger_error err = {0};
        ledger_hash digest, stored = {0};
        const char *hx = json_string_value(json_object_get(c, "heads"));
        size_t n = hx ? strlen(hx) / 80 : 0;
        ledger_head *heads;
        if (v->failed)
            return;
        memset(&ck, 0, sizeof ck);
        ck.number = (uint64_t)json_integer_value(json_object_get(c, "number"));
        ck.time_us = json_integer_value(json_object_get(c, "time_us"));
        ck.partitions = (uint32_t)json_integer_value(json_object_get(c, "partitions"));
        snprintf(ck.kid, sizeof ck.kid, "%s", json_string_value(json_object_get(c, "kid")));
        if (ledger_unhex(json_string_value(json_object_get(c, "root")), ck.root, 32) ||
            ledger_unhex(json_string_value(json_object_get(c, "prev_digest")), ck.prev_digest,
                         32) ||
            ledger_unhex(json_string_value(json_object_get(c, "digest")), stored, 32) ||
            ledger_unhex(json_string_value(json_object_get(c, "sig")), ck.sig, 64) ||
            n != ck.partitions) {
            vfail(v, "checkpoint %llu: malformed", (unsigned long long)ck.number);
            return;
        }
        if (ledger_checkpoint_verify(&ck, &v->ring, &err) != LEDGER_OK) {
            vfail(v, "checkpoint %llu: %s: %s", (unsigned long long)ck.number,
                  ledger_err_name(err.code), err.message);
            return;
        }
        ledger_checkpoint_digest(&ck, digest, NULL);
        if (memcmp(digest, stored, 32) != 0 || ck.number != prev_number + 1 ||
            memcmp(ck.prev_digest, prev_digest, 32) != 0 || ck.time_us < prev_time) {
            vfail(v,
                  "checkpoint %llu: checkpoint_link_broken: not the successor of checkpoint %llu",
                  (unsigned long long)ck.number, (unsigned long long)prev_number);
            return;
        }
        heads = calloc(n ? n : 1, sizeof *heads);
        if (!heads) {
            vfail(v, "out of memory");
            return;
        }
        for (size_t p = 0; p < n; p++) {
            unsigned char raw[40];
            {
                char part[81];
                memcpy(part, hx + 80 * p, 80);
                part[80] = '\0';
                ledger_unhex(part, raw, 40);
            }
            heads[p].partition = (uint32_t)p;
            heads[p].seq = 0;
            for (int b = 0; b < 8; b++)
                heads[p].seq = (heads[p].seq << 8) | raw[b];
            memcpy(heads[p].hash, raw + 8, 32);
            if (heads[p].seq == 0) {
                unsigned char g[32];
                ledger_genesis((uint32_t)p, g);
                if (memcmp(g, heads[p].hash, 32) != 0)
                    vfail(v, "checkpoint %llu: partition %zu: empty head is not genesis",
                          (unsigned long long)ck.number, p);
            } else if (p >= v->partitions || heads[p].seq > v->nhash[p] ||
                       memcmp(v->hashes[p] + (heads[p].seq - 1) * LEDGER_HASH_BYTES, heads[p].hash,
                              32) != 0) {
                vfail(v,
                      "checkpoint %llu: head_mismatch: partition %zu seq %llu is not the hash of "
                      "that transaction",
                      (unsigned long long)ck.number, p, (unsigned long long)heads[p].seq);
            }
        }
        if (!v->failed) {
            ledger_hash root;
            if (ledger_heads_root(heads, (uint32_t)n, root, NULL) != LEDGER_OK ||
                memcmp(root, ck.root, 32) != 0)
                vfail(v, "checkpoint %llu: root_mismatch", (unsigned long long)ck.number);
        }
        free(heads);
        memcpy(prev_digest, digest, 32);
        prev_number = ck.number;
        prev_time = ck.time_us;
    }
}

static void verifier_free(verifier *v)
{
    for (uint32_t p = 0; v->cur && p < v->partitions; p++) {
        ledger_chain_cursor_free(&v->cur[p]);
        free(v->hashes[p]);
    }
    free(v->cur);
    free(v->hashes);
    free(v->nhash);
    free(v->caphash);
    free(v->accts);
    free(v->shards);
    free(v->heads);
    free(v->recs);
    json_decref(v->ckpts);
    ledger_buf_free(&v->scratch);
}

static int stream_file(const char *path, emit_fn emit, void *arg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;

    if (!f) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *o;
        lineno++;
        if (n == 1 && line[0] == '\n')
            continue;
        o = json_loads(line, JSON_REJECT_DUPLICATES, &je);
        if (!o) {
            snprintf(err, errlen, "%s line %ld: %s", path, lineno, je.text);
            free(line);
            fclose(f);
            return -1;
        }
        emit(o, arg);
    }
    free(line);
    fclose(f);
    return 0;
}

int cli_ledger_verify(const char *conninfo, const char *file)
{
    verifier v;
    char err[1024] = "";
    int rc;

    memset(&v, 0, sizeof v);
    v.entries_stored = -1;
    ledger_keyring_init(&v.ring);
    v.ckpts = json_array();
    if (file) {
        rc = stream_file(file, feed, &v, err, sizeof err);
    } else {
        db_conn *db = db_connect(conninfo, err, sizeof err);
        rc = db ? stream_db(db, feed, &v, err, sizeof err) : -1;
        db_close(db);
    }
    if (rc != 0) {
        fprintf(stderr, "tallyd: verify: %s\n", err);
        verifier_free(&v);
        return 1;
    }
    if (!v.cur)
        ensure_partitions(&v, v.partitions > v.nheads ? v.partitions : (uint32_t)v.nheads);
    if (!v.failed && v.entries_stored >= 0 &&
        (unsigned long long)v.entries_stored != v.entries_in_txns)
        vfail(&v,
              "orphan_entries: ledger_entries holds %lld rows but the transactions name %llu (an "
              "entry without its transaction)",
              v.entries_stored, v.entries_in_txns);
    if (!v.failed)
        check_balances(&v);
    if (!v.failed)
        check_heads_and_checkpoints(&v);
    if (v.failed) {
        printf("verify: FAILED: %s\n", v.report);
        verifier_free(&v);
        return 1;
    }
    printf("verify: OK: %llu transactions in %u partitions, %zu accounts, %zu checkpoints, "
           "%zu keys; every hash, signature, chain link, balance and checkpoint holds\n",
           v.ntxns, v.partitions, v.naccts, json_array_size(v.ckpts), v.ring.n);
    verifier_free(&v);
    return 0;
}

static void write_line(json_t *o, void *arg)
{
    FILE *f = arg;
    json_dumpf(o, f, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', f);
    json_decref(o);
}

int cli_ledger_export(const char *conninfo, const char *out)
{
    char err[1024] = "";
    FILE *f = !strcmp(out, "-") ? stdout : fopen(out, "we");
    db_conn *db;
    int rc;

    if (!f) {
        fprintf(stderr, "tallyd: export: cannot write %s\n", out);
        return 1;
    }
    db = db_connect(conninfo, err, sizeof err);
    rc = db ? stream_db(db, write_line, f, err, sizeof err) : -1;
    db_close(db);
    if (f != stdout && fclose(f) != 0 && rc == 0) {
        snprintf(err, sizeof err, "cannot write %s", out);
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "tallyd: export: %s\n", err);
        return 1;
    }
    return 0;
}
