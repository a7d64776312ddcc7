/*
 * Integration tests for the quote writer's store (server/quote_writer.c)
 * against a real PostgreSQL: a batch goes in as one binary COPY with its
 * batch row, and every field reads back exactly as sent (the document byte
 * for byte, the expiry to the millisecond); the stored batch signature, root,
 * leaf index and path verify each quote with the public key; a batch in which
 * one row names an unknown tenant stores the others (each as a batch of one)
 * and reports that row alone, leaving no batch row behind for it; a single
 * row is a plain INSERT with the same per-row outcome; rows signed one by one
 * before 0015 are still accepted by the schema, rows with neither form not.
 */
#include "assets.h"
#include "db.h"
#include "ids.h"
#include "migrate.h"
#include "quote_proof.h"
#include "quote_writer.h"
#include "testdb.h"

#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static char ci[1024];
static db_conn *db;
static char tenant[48], policy[48];
static const char sig[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static unsigned char pk[32], sk[64];
static char kid[24];

static const char *q(const char *sql)
{
    const char *v = testdb_exec(ci, sql);
    cr_assert(v, "%s: %s", sql, testdb_error());
    return v;
}

static void setup(void)
{
    char err[512], sql[1024];

    cr_assert(sodium_init() >= 0);
    crypto_sign_keypair(pk, sk);
    ledger_key_id(pk, kid);
    testdb_create(ci, sizeof ci);
    db = db_connect(ci, err, sizeof err);
    cr_assert(db, "%s", err);
    cr_assert_geq(migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err), 0,
                  "%s", err);
    ids_new(tenant, sizeof tenant, "acc");
    ids_new(policy, sizeof policy, "pol");
    snprintf(sql, sizeof sql,
             "INSERT INTO accounts (id, name, role) VALUES ('%s', 't', 'tenant'); "
             "INSERT INTO pricing_policies (id, owner_id, scope, name) VALUES ('%s', '%s', "
             "'provider', 'p'); INSERT INTO pricing_policy_versions (policy_id, version, "
             "document, canonical, sha256, currency, created_by) VALUES ('%s', 1, '{}', '{}', "
             "repeat('a', 64), 'USD', 'test'); SELECT 1",
             tenant, policy, tenant, policy);
    q(sql);
}

static void teardown(void)
{
    db_close(db);
    testdb_drop(ci);
}

TestSuite(quote_writer, .init = setup, .fini = teardown, .timeout = 60);

struct qrow {
    char id[48], doc[160];
    qw_row row;
};

/* A row for tenant t expiring at expires_ms (2026-12-01T10:00:00.123Z + i s). */
static void make_row(struct qrow *r, const char *t, int i)
{
    static char exp[8][40];
    int64_t ms = 1796119200123LL + i * 1000LL;

    ids_new(r->id, sizeof r->id, "quo");
    /* quotes, backslashes and a non-ASCII byte travel verbatim in a binary COPY */
    snprintf(r->doc, sizeof r->doc,
             "{\"id\":\"%.47s\",\"n\":%d,\"s\":\"a\\\\b \\\"c\\\" \xc3\xa9\"}", r->id, i);
    snprintf(exp[i], sizeof exp[i], "2026-12-01T10:00:%02d.123Z", i);
    r->row = (qw_row){.id = r->id,
                      .tenant = t,
                      .policy_id = policy,
                      .currency = "USD",
                      .document = r->doc,
                      .kid = kid,
                      .sk = sk,
                      .expires_at = exp[i],
                      .expires_ms = ms,
                      .policy_version = 1,
                      .total_micros = 1000000LL * i + 7};
    quote_proof_leaf(r->doc, strlen(r->doc), r->row.leaf);
}

/* The row's stored proof (index, path, its batch's size, root and signature,
 * as read back from the database) verifies its document with pk. */
static void assert_verifies(const struct qrow *r, int batch_n)
{
    char sql[512], want[80];
    const char *v;
    ledger_merkle_proof p = {0};
    ledger_hash root;
    unsigned char s64[64];
    size_t hl;

    snprintf(sql, sizeof sql,
             "SELECT q.leaf_index || '|' || b.n || '|' || b.kid || '|' || (q.kid IS NULL) || "
             "(q.signature IS NULL) FROM quotes q JOIN quote_batches b ON b.id = q.batch_id "
             "WHERE q.id = '%s'",
             r->id);
    snprintf(want, sizeof want, "%u|%d|%s|truetrue", r->row.leaf_index, batch_n, kid);
    cr_assert_str_eq(q(sql), want);
    p.index = r->row.leaf_index;
    p.size = (uint32_t)batch_n;
    snprintf(sql, sizeof sql, "SELECT encode(path, 'hex') FROM quotes WHERE id = '%s'", r->id);
    v = q(sql);
    cr_assert_eq(
        sodium_hex2bin((unsigned char *)p.path, sizeof p.path, v, strlen(v), NULL, &hl, NULL), 0);
    p.n_path = hl / 32;
    snprintf(sql, sizeof sql,
             "SELECT encode(b.root, 'hex') || encode(b.signature, 'hex') FROM quotes q JOIN "
             "quote_batches b ON b.id = q.batch_id WHERE q.id = '%s'",
             r->id);
    v = q(sql);
    cr_assert_eq(strlen(v), 192);
    cr_assert_eq(sodium_hex2bin(root, 32, v, 64, NULL, NULL, NULL), 0);
    cr_assert_eq(sodium_hex2bin(s64, 64, v + 64, 128, NULL, NULL, NULL), 0);
    cr_assert_eq(quote_proof_verify(r->doc, strlen(r->doc), &p, root, s64, pk, NULL), LEDGER_OK,
                 "quote %s verifies from its stored proof", r->id);
}

/* The stored row reads back exactly as it was sent. */
static void assert_stored(const struct qrow *r, int i)
{
    char sql[512], want[160];

    snprintf(sql, sizeof sql, "SELECT document FROM quotes WHERE id = '%s'", r->id);
    cr_assert_str_eq(q(sql), r->doc);
    snprintf(sql, sizeof sql,
             "SELECT to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS') || "
             "'|' || total_micros || '|' || policy_version || '|' || batch_id || '|' || "
             "tenant_id FROM quotes WHERE id = '%s'",
             r->id);
    snprintf(want, sizeof want, "2026-12-01T10:00:%02d.123|%lld|1|%s|%s", i, 1000000LL * i + 7,
             r->row.batch_id, r->row.tenant);
    cr_assert_str_eq(q(sql), want);
}

Test(quote_writer, a_batch_is_stored_exactly)
{
    struct qrow r[3];
    qw_row *rows[3];

    for (int i = 0; i < 3; i++) {
        make_row(&r[i], tenant, i);
        rows[i] = &r[i].row;
    }
    cr_assert_eq(qw_insert(db, rows, 3), DB_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].row.status, DB_OK, "row %d: %d", i, r[i].row.status);
        cr_assert_str_eq(r[i].row.batch_id, r[0].row.batch_id, "one batch");
        cr_assert_eq(r[i].row.leaf_index, (uint32_t)i);
        assert_stored(&r[i], i);
        assert_verifies(&r[i], 3);
    }
    cr_assert_str_eq(q("SELECT count(*) FROM quotes"), "3");
    cr_assert_str_eq(q("SELECT count(*) || '|' || sum(n) FROM quote_batches"), "1|3");
    {
        char sql[256], hex[65];
        sodium_bin2hex(hex, sizeof hex, pk, 32);
        snprintf(sql, sizeof sql,
                 "SELECT encode(public_key, 'hex') FROM ledger_keys WHERE kid = '%s'", kid);
        cr_assert_str_eq(q(sql), hex, "the writer published its key");
    }
}

Test(quote_writer, an_unknown_tenant_fails_its_row_alone)
{
    struct qrow r[3];
    qw_row *rows[3];
    char ghost[48];

    ids_new(ghost, sizeof ghost, "acc");
    for (int i = 0; i < 3; i++) {
        make_row(&r[i], i == 1 ? ghost : tenant, i);
        rows[i] = &r[i].row;
    }
    cr_assert_eq(qw_insert(db, rows, 3), DB_OK);
    cr_assert_eq(r[0].row.status, DB_OK);
    cr_assert_eq(r[1].row.status, QW_NO_TENANT);
    cr_assert_eq(r[2].row.status, DB_OK);
    assert_stored(&r[0], 0);
    assert_stored(&r[2], 2);
    assert_verifies(&r[0], 1);
    assert_verifies(&r[2], 1);
    cr_assert_str_eq(q("SELECT count(*) FROM quotes"), "2");
    cr_assert_str_eq(q("SELECT count(*) || '|' || sum(n) FROM quote_batches"), "2|2",
                     "the failed batch and the refused row left no batch row");
}

Test(quote_writer, a_single_row_is_stored_or_refused)
{
    struct qrow ok, bad;
    qw_row *row;
    char ghost[48];

    make_row(&ok, tenant, 4);
    row = &ok.row;
    cr_assert_eq(qw_insert(db, &row, 1), DB_OK);
    cr_assert_eq(ok.row.status, DB_OK);
    assert_stored(&ok, 4);
    ids_new(ghost, sizeof ghost, "acc");
    make_row(&bad, ghost, 5);
    row = &bad.row;
    cr_assert_eq(qw_insert(db, &row, 1), DB_OK);
    cr_assert_eq(bad.row.status, QW_NO_TENANT);
    assert_verifies(&ok, 1);
    cr_assert_str_eq(q("SELECT count(*) FROM quotes"), "1");
    cr_assert_str_eq(q("SELECT count(*) FROM quote_batches"), "1");
}

/* Quotes signed one by one (stored before 0015) stay valid rows; a row with
 * neither a per-row signature nor a batch is refused. */
Test(quote_writer, per_quote_signed_rows_are_still_accepted)
{
    char sql[1024], id[48];

    ids_new(id, sizeof id, "quo");
    snprintf(sql, sizeof sql,
             "INSERT INTO quotes (id, tenant_id, policy_id, policy_version, currency, "
             "total_micros, document, kid, signature, expires_at) VALUES ('%s', '%s', '%s', 1, "
             "'USD', 1, '{}', 'sk_test', '%s', now()) RETURNING 1",
             id, tenant, policy, sig);
    cr_assert_str_eq(q(sql), "1");
    ids_new(id, sizeof id, "quo");
    snprintf(sql, sizeof sql,
             "INSERT INTO quotes (id, tenant_id, policy_id, policy_version, currency, "
             "total_micros, document, expires_at) VALUES ('%s', '%s', '%s', 1, 'USD', 1, '{}', "
             "now()) RETURNING 1",
             id, tenant, policy);
    cr_assert_null(testdb_exec(ci, sql), "an unsigned quote row is refused");
    cr_assert(strstr(testdb_error(), "quotes_signed"), "%s", testdb_error());
}
