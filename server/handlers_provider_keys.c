/*
 * handlers_provider_keys.c - the Ed25519 public keys a provider signs with
 * (offer challenges, usage records): register, list, revoke.
 *
 * A key is 32 bytes, sent as base64 (standard or URL-safe, padded or not) or
 * as 64 hex digits, and must be a valid Ed25519 point. Keys are unique across
 * providers. Revoking sets revoked_at and never deletes: what the key signed
 * before revoked_at stays valid, anything signed with it afterwards is refused.
 */
#include "handlers.h"
#include "idem_write.h"
#include "ids.h"
#include "paging.h"
#include "scope.h"
#include "server.h"
#include "validate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_COLUMNS                                                                                 \
    "id, provider_id, encode(public_key, 'hex'), label, "                                          \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                \
    "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

struct pk_job {
    char id[48], provider[48], caller[48];
    unsigned role;
    char hex[65];
    char label[201];
    const char *after;
    int limit;
    json_t *out;
};

static void pk_job_free(void *arg)
{
    struct pk_job *j = arg;
    json_decref(j->out);
    free(j);
}

static struct pk_job *pk_job_new(http_ctx *c)
{
    struct pk_job *j = calloc(1, sizeof *j);
    const http_caller *who = http_get_caller(c);

    if (!j) {
        http_reply_problem(c, PROB_INTERNAL, "out of memory", NULL);
        return NULL;
    }
    snprintf(j->caller, sizeof j->caller, "%s", who->account_id);
    j->role = who->role;
    return j;
}

/* Row i (PK_COLUMNS) as the API shows a key. */
static json_t *pk_row(PGresult *r, int i, const void *ctx)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES, sodium_base64_VARIANT_ORIGINAL)];

    (void)ctx;
    if (sodium_hex2bin(pk, sizeof pk, PQgetvalue(r, i, 2), 64, NULL, NULL, NULL) != 0)
        return NULL;
    sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "id", PQgetvalue(r, i, 0),
                     "provider_id", PQgetvalue(r, i, 1), "public_key", b64, "public_key_hex",
                     PQgetvalue(r, i, 2), "label", PQgetvalue(r, i, 3), "created_at",
                     PQgetvalue(r, i, 4), "revoked_at",
                     PQgetisnull(r, i, 5) ? json_null() : json_string(PQgetvalue(r, i, 5)));
}

/*
 * Decode a public key given as 64 hex digits or base64 (either alphabet,
 * padded or not) into 32 bytes. 0, or -1 when it is neither.
 */
static int pk_decode(const char *s, unsigned char out[crypto_sign_PUBLICKEYBYTES])
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    size_t len = strlen(s), n = 0;
    const char *end = NULL;

    if (len == 2 * crypto_sign_PUBLICKEYBYTES)
        return sodium_hex2bin(out, crypto_sign_PUBLICKEYBYTES, s, len, NULL, &n, &end) == 0 &&
                       n == crypto_sign_PUBLICKEYBYTES && end == s + len
                   ? 0
                   : -1;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        unsigned char buf[crypto_sign_PUBLICKEYBYTES + 3];
        if (sodium_base642bin(buf, sizeof buf, s, len, NULL, &n, &end, variants[v]) == 0 &&
            end == s + len && n == crypto_sign_PUBLICKEYBYTES) {
            memcpy(out, buf, n);
            return 0;
        }
    }
    return -1;
}

/* ---- register ------------------------------------------------------------------------ */

static const char sql_pk_insert[] =
    "INSERT INTO provider_keys (id, provider_id, public_key, label) "
    "VALUES ($1, $2, decode($3, 'hex'), $4) ON CONFLICT (public_key) DO NOTHING "
    "RETURNING " PK_COLUMNS;

static int op_pk_create(db_conn *db, void *arg, int *status, json_t **body)
{
    struct pk_job *j = arg;
    const char *p[] = {j->id, j->provider, j->hex, j->label};
    PGresult *r = db_exec(db, sql_pk_insert, 4, p);

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) == 1) {
        *status = 201;
        *body = pk_row(r, 0, NULL);
    } else {
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, "public_key", "this public key is already registered");
    }
    PQclear(r);
    return *body ? DB_OK : DB_FAILED;
}

void h_provider_keys_create(http_ctx *c)
{
    static const char *const fields[] = {"public_key", "label", NULL};
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], curve[crypto_scalarmult_curve25519_BYTES];
    json_t *body = http_body(c);
    const char *key, *label = NULL;
    struct pk_job *j;

    if (!body) {
        http_reply_problem(c, PROB_VALIDATION, "'public_key' is required", "public_key");
        return;
    }
    if (val_known_fields(c, body, fields) || val_string(c, body, "public_key", 1, 100, &key) ||
        val_string(c, body, "label", 0, 200, &label))
        return;
    if (pk_decode(key, pk) != 0) {
        http_reply_problem(c, PROB_VALIDATION,
                           "an Ed25519 public key is 32 bytes as base64 or 64 hex digits",
                           "public_key");
        return;
    }
    /* a point that is not on the curve (or of small order) can never verify */
    if (crypto_sign_ed25519_pk_to_curve25519(curve, pk) != 0) {
        http_reply_problem(c, PROB_VALIDATION, "not a valid Ed25519 public key", "public_key");
        return;
    }
    if (!(j = pk_job_new(c)))
        return;
    ids_new(j->id, sizeof j->id, "pk");
    snprintf(j->provider, sizeof j->provider, "%s", j->caller);
    sodium_bin2hex(j->hex, sizeof j->hex, pk, sizeof pk);
    snprintf(j->label, sizeof j->label, "%s", label ? label : "");
    idem_write_submit(c, op_pk_create, j, pk_job_free);
}

/* ---- list ------------------------------------------------------------------------------ */

static const char sql_pk_list[] =
    "SELECT " PK_COLUMNS " FROM provider_keys WHERE ($1::text IS NULL OR provider_id = $1) "
    "AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3";

static int pk_list_work(db_conn *db, void *arg)
{
    struct pk_job *j = arg;
    char lim[16];
    const char *owner = j->role & ROLE_ADMIN ? (j->provider[0] ? j->provider : NULL) : j->caller;
    const char *p[] = {owner, j->after, lim};
    PGresult *r;

    snprintf(lim, sizeof lim, "%d", j->limit + 1);
    r = db_exec(db, sql_pk_list, 3, p);
    if (!r)
        return db_last_status(db);
    j->out = paging_build(r, j->limit, pk_row, NULL);
    PQclear(r);
    return j->out ? 1 : DB_FAILED;
}

static void pk_done(http_ctx *c, int status, void *arg)
{
    struct pk_job *j = arg;

    (void)status;
    http_reply_json(c, 200, j->out);
    j->out = NULL;
    pk_job_free(j);
}

void h_provider_keys_list(http_ctx *c)
{
    struct pk_job *j;
    const char *after, *provider;
    int limit;

    if (val_query_limit(c, 50, 200, &limit) || val_query_id(c, "after", "pk", &after) ||
        val_query_id(c, "provider", "acc", &provider))
        return;
    if (!(j = pk_job_new(c)))
        return;
    j->after = after;
    j->limit = limit;
    snprintf(j->provider, sizeof j->provider, "%s", provider ? provider : "");
    http_db(c, pk_list_work, pk_done, j, pk_job_free);
}

/* ---- revoke ------------------------------------------------------------------------------ */

static const char sql_pk_lock[] = "SELECT revoked_at IS NOT NULL FROM provider_keys WHERE id = $1 "
                                  "AND ($2::text IS NULL OR provider_id = $2) FOR UPDATE";
static const char sql_pk_revoke[] =
    "UPDATE provider_keys SET revoked_at = now() WHERE id = $1 RETURNING " PK_COLUMNS;

static int op_pk_revoke(db_conn *db, void *arg, int *status, json_t **body)
{
    struct pk_job *j = arg;
    const char *p[] = {j->id, j->role & ROLE_ADMIN ? NULL : j->caller};
    PGresult *r = db_exec(db, sql_pk_lock, 2, p);
    int revoked;

    if (!r)
        return db_last_status(db);
    if (PQntuples(r) != 1) {
        PQclear(r);
        *status = 404;
        *body = idem_problem(PROB_NOT_FOUND, NULL, "no provider key '%s' of yours", j->id);
        return DB_OK;
    }
    revoked = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (revoked) {
        *status = 409;
        *body = idem_problem(PROB_CONFLICT, NULL, "provider key '%s' is already revoked", j->id);
        return DB_OK;
    }
    if (!(r = db_exec(db, sql_pk_revoke, 1, p)))
        return db_last_status(db);
    *status = 200;
    *body = pk_row(r, 0, NULL);
    PQclear(r);
    return *body ? DB_OK : DB_FAILED;
}

void h_provider_keys_revoke(http_ctx *c)
{
    const char *id;
    struct pk_job *j;

    if (val_path_id(c, "id", "pk", &id))
        return;
    if (!(j = pk_job_new(c)))
        return;
    snprintf(j->id, sizeof j->id, "%s", id);
    idem_write_submit(c, op_pk_revoke, j, pk_job_free);
}
