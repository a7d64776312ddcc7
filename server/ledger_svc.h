/*
 * ledger_svc.h - the ledger inside tallyd: the per-process service state, the
 * operations the HTTP layer and the janitor submit, and the group-commit
 * writer that applies them.
 *
 * Every state-changing ledger request becomes one ledger_op. The writer
 * (ledger_writer.c) collects concurrent ops into a batch (up to batch_max ops,
 * or batch_wait_us after the first, whichever comes first) and applies the
 * whole batch in ONE database transaction:
 *
 *   resolve accounts (autocommit, idempotent get-or-create)
 *   BEGIN
 *   claim idempotency keys    (sorted)             -- global lock order 1
 *   lock holds                (sorted, FOR UPDATE)  -- 2
 *   lock checked accounts     (sorted, FOR UPDATE)  -- 3
 *   lock partition heads      (sorted, FOR UPDATE)  -- 4
 *   apply each op in memory against the locked, batch-local state: an op that
 *     fails (insufficient funds, capture above the hold, ...) is dropped from
 *     the write set and gets its own 4xx, without touching its neighbours
 *   check that the signing key is not retired (after the head locks)
 *   write every surviving transaction and entry by binary COPY
 *     (ledger_copy.c), then balances, shards, heads and holds with a handful
 *     of set-based statements; store every op's outcome (successes and
 *     permanent failures) under its Idempotency-Key
 *   COMMIT (sent with those statements in one pipelined round trip), then
 *     reply to each op.
 *
 * For other modules (the marketplace): build ledger_ops with ledger_op_new and
 * submit each with ledger_submit from an event loop; ops submitted close
 * together share one commit. ledger_run_ops applies a list of ops as one batch
 * synchronously on a database thread (each op still fails on its own).
 *
 * Hot accounts (provider payable, platform revenue, external cash) are never
 * limit-checked and never row-locked: their balance is split into one shard
 * per partition, written only under that partition's head lock.
 *
 * Invariant: an op's reply is sent only after the COMMIT that made its effect
 * (or its stored failure) durable; a transient failure stores nothing.
 */
#ifndef TALLY_LEDGER_SVC_H
#define TALLY_LEDGER_SVC_H

#include "balance.h"
#include "chain.h"
#include "db.h"
#include "keyfile.h"
#include "ledger_txn.h"
#include "merkle.h"
#include "problem.h"
#include "sign.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct event;

#define LEDGER_ACC_MAX 48 /* "la_" + 26, "acc_" + 26, "hold_" + 26, "txn_" + 26 */

typedef enum ledger_op_kind {
    LOP_DEPOSIT = 1,
    LOP_TRANSFER,
    LOP_HOLD,
    LOP_CAPTURE,
    LOP_VOID,
    LOP_REVERSE,
    LOP_EXPIRE,
} ledger_op_kind;

typedef struct ledger_op_entry {
    char account[LEDGER_ACC_MAX];
    char currency[4]; /* "" = the account's */
    int64_t amount;
} ledger_op_entry;

typedef struct ledger_op ledger_op;
typedef void (*ledger_op_done_fn)(ledger_op *op);

/* One request to the ledger writer. Allocated by the submitter, which frees it
 * in its done callback (ledger_op_free). */
struct ledger_op {
    ledger_op_kind op;
    /* caller and idempotency */
    char caller[LEDGER_ACC_MAX];
    unsigned caller_role;
    char idem_key[LEDGER_IDEM_MAX + 1]; /* "" = none */
    char request_hash[65];
    /* inputs */
    char owner[LEDGER_ACC_MAX]; /* tenant for deposit and hold */
    char currency[4];
    int64_t amount;
    ledger_kind kind; /* transfer */
    size_t n_entries;
    ledger_op_entry entries[LEDGER_MAX_ENTRIES];
    char memo[LEDGER_MEMO_MAX + 1];
    char order_id[LEDGER_ID_MAX + 1], usage_id[LEDGER_ID_MAX + 1], invoice_id[LEDGER_ID_MAX + 1];
    int64_t effective_us; /* 0 = the insertion time */
    int64_t expires_us;   /* hold */
    char hold_id[LEDGER_ACC_MAX];
    bool final;                 /* capture */
    char payee[LEDGER_ACC_MAX]; /* capture: provider account, "" = all to revenue */
    int64_t fee;                /* capture: part of amount to platform revenue */
    char reverses[LEDGER_ACC_MAX];
    /* outcome: status >= 100 and body, or status 0 with ok = false when skipped */
    int status;
    json_t *body;
    bool replayed;
    bool skipped;
    char txn_id[LEDGER_ACC_MAX];
    /* completion */
    ledger_op_done_fn done;
    void *arg;
    struct event *ev;
    ledger_op *next;
    /* resolved before the batch (writer-private) */
    char acc_wallet[LEDGER_ACC_MAX], acc_holds[LEDGER_ACC_MAX], acc_other[LEDGER_ACC_MAX],
        acc_revenue[LEDGER_ACC_MAX];
    int pre_status; /* a permanent failure found while resolving */
    problem_type pre_prob;
    char pre_detail[256], pre_field[64];
};

typedef struct ledger_acache ledger_acache;
typedef struct ledger_writer ledger_writer;

typedef struct ledger_svc {
    uint32_t partitions; /* configured; the database may hold more (grow-only) */
    int checkpoint_ms;   /* janitor: a checkpoint at most this often (0 = never) */
    int batch_max, batch_wait_us, writers;
    ledger_signer *signer; /* sodium_malloc'd, read-only */
    unsigned char pk[LEDGER_PK_BYTES];
    char conninfo[1024];
    int db_timeout_ms;
    ledger_acache *cache;
    ledger_writer *writer;
    int setup_done; /* atomic: settings, heads and key registered */
    uint32_t db_partitions;
    /* counters (atomic) for /metrics-style logging and the bench */
    unsigned long long batches, batched_ops;
} ledger_svc;

/* ledger_svc_new - from the environment (TALLY_LEDGER_PARTITIONS, _BATCH_MAX,
 * _BATCH_WAIT_US, _WRITERS, _CHECKPOINT_S). Copies the signing key into locked
 * memory. NULL with err filled on a bad setting. Free with ledger_svc_free. */
ledger_svc *ledger_svc_new(const char *conninfo, int db_timeout_ms, const signing_key *key,
                           char *err, size_t errlen);
/* ledger_svc_start_writer - start the group-commit writer threads. 0 or -1. */
int ledger_svc_start_writer(ledger_svc *ls);
/* ledger_svc_stop_writer - refuse new ops (ledger_submit returns -1), apply
 * every op already queued, fire their completions (event_active on their
 * loops, which must still exist: call this before freeing the loops' bases,
 * then run each loop once to deliver them) and join the writer threads.
 * Idempotent. */
void ledger_svc_stop_writer(ledger_svc *ls);
/* ledger_svc_free - stop the writer if still running, wipe the key, free. */
void ledger_svc_free(ledger_svc *ls);

/* ledger_key_publish - make a service signing key readable at GET /v1/ledger/keys
 * (ledger_keys; an existing kid is left as it is), in the caller's transaction if any.
 * Everything the service signs names a kid that verifiers look up there. DB_OK or a
 * db_status. */
int ledger_key_publish(db_conn *db, const char *kid, const unsigned char pk[LEDGER_PK_BYTES]);

/* ledger_setup - once per process, on any connection: grow the settings row
 * and the partition heads to ls->partitions, register the service key. */
int ledger_setup(ledger_svc *ls, db_conn *db);

/* ledger_submit - queue op; op->done(op) runs later on base (the submitter's
 * loop). 0, or -1 when the writer is not running (op untouched). */
int ledger_submit(ledger_svc *ls, struct event_base *base, ledger_op *op);

/* ledger_run_ops - apply ops[0..n) as one batch on db right now (used by the
 * janitor from a pool thread and by tests). Outcomes are filled into the ops.
 * Returns DB_OK or a db_status for the batch as a whole. */
int ledger_run_ops(ledger_svc *ls, db_conn *db, ledger_op **ops, size_t n);

#define LEDGER_NOT_READY 1 /* ledger_run_ops_in_txn: nothing done, use ledger_run_ops */

/* ledger_run_ops_in_txn - ledger_run_ops inside the transaction the caller has open
 * on db: the batch's locks, rows and stored outcomes join it, the caller commits
 * (one commit for its own writes and the ledger's) or rolls back (nothing of the
 * batch stays). Not retried here: DB_RETRY means the caller's transaction must be
 * rolled back and run again. LEDGER_NOT_READY (nothing sent) when the ledger is
 * not set up in this process yet or an account the ops need would have to be
 * created (creation commits on its own: use ledger_run_ops after the caller's
 * commit). Otherwise DB_OK or a db_status. */
int ledger_run_ops_in_txn(ledger_svc *ls, db_conn *db, ledger_op **ops, size_t n);

ledger_op *ledger_op_new(ledger_op_kind kind);
void ledger_op_free(ledger_op *op);

/* ---- rendering and rows (ledger_json.c) ------------------------------------- */

/* One entry's stored running balance. */
typedef struct ledger_entry_info {
    int32_t shard; /* -1 for checked accounts */
    int64_t before, after;
    uint64_t version;
} ledger_entry_info;

/* A stored transaction as read back (or built). */
typedef struct ledger_row {
    ledger_txn t;
    ledger_entry_info info[LEDGER_MAX_ENTRIES];
    char hold_id[LEDGER_ACC_MAX];
    char caller[LEDGER_ACC_MAX];
    unsigned char *canonical; /* malloc'd (may be NULL) */
    size_t canonical_len;
} ledger_row;

/* The column list that ledger_row_from_pg parses, for "SELECT <cols> FROM
 * ledger_transactions t ...". */
#define LEDGER_TXN_COLS                                                                            \
    "t.id, t.partition, t.seq, t.kind, t.memo, t.order_id, t.usage_id, t.invoice_id, "             \
    "t.reverses_id, t.idempotency_key, t.effective_us, t.inserted_us, encode(t.prev_hash, "        \
    "'hex'), "                                                                                     \
    "encode(t.hash, 'hex'), t.kid, encode(t.sig, 'hex'), t.hold_id, t.caller_id, "                 \
    "encode(t.canonical, 'hex'), "                                                                 \
    "(SELECT json_agg(json_build_array(e.account_id, e.currency, e.amount, e.shard, "              \
    "e.balance_before, e.balance_after, e.account_version) ORDER BY e.idx) "                       \
    "FROM ledger_entries e WHERE e.txn_id = t.id)::text"
#define LEDGER_TXN_NCOLS 20

/* ledger_row_from_pg - row i of res (LEDGER_TXN_COLS) into r. 0 or -1. */
int ledger_row_from_pg(PGresult *res, int i, ledger_row *r);
/* ledger_row_from_json - an exported/API transaction object into r. 0 or -1. */
int ledger_row_from_json(json_t *o, ledger_row *r, char *err, size_t errlen);
void ledger_row_clear(ledger_row *r);

/* ledger_txn_json - the API (and export) form of a transaction. New reference. */
json_t *ledger_txn_json(const ledger_txn *t, const ledger_entry_info *info, const char *hold_id);
/* Amounts as exact decimal strings ("12.500000"), times as ISO-8601 UTC. */
json_t *ledger_money_json(int64_t micros);
void ledger_time_fmt(int64_t us, char *out, size_t cap);
/* ledger_time_parse - "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" to Unix microseconds. 0 or -1. */
int ledger_time_parse(const char *s, int64_t *out);
/* Hex helpers. */
void ledger_hex(const unsigned char *p, size_t n, char *out);
int ledger_unhex(const char *s, unsigned char *out, size_t n);
/* ledger_now_us - wall clock, Unix microseconds. */
int64_t ledger_now_us(void);

#endif
