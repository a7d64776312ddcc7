/*
 * idempotency.c - claim, replay and store responses keyed by Idempotency-Key.
 * Invariant: a stored response is written in the same transaction as the change
 * it describes, so either both exist or neither does.
 */
#include "idempotency.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int idem_prepare(http_ctx *c, idem_request *r)
{
    const char *key = http_header(c, "Idempotency-Key");
    const http_caller *who = http_get_caller(c);
    crypto_generichash_state st;
    unsigned char h[32];
    char *canon = NULL;
    size_t n = key ? strlen(key) : 0;

    memset(r, 0, sizeof *r);
    snprintf(r->account_id, sizeof r->account_id, "%s", who->account_id);
    if (key) {
        int ok = n > 0 && n <= IDEM_KEY_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = key[i] > 0x20 && key[i] < 0x7f;
        if (!ok) {
            http_reply_problem(c, PROB_BAD_REQUEST,
                               "Idempotency-Key must be 1 to 255 printable ASCII characters",
                               "Idempotency-Key");
            return -1;
        }
        memcpy(r->key, key, n + 1);
    }
    if (http_body(c))
        canon = json_dumps(http_body(c), JSON_COMPACT | JSON_SORT_KEYS);
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)http_path(c), strlen(http_path(c)) + 1);
    if (canon)
        crypto_generichash_update(&st, (const unsigned char *)canon, strlen(canon));
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(r->request_hash, sizeof r->request_hash, h, sizeof h);
    free(canon);
    return 0;
}

static const char sql_claim[] =
    "INSERT INTO idempotency_keys (account_id, key, request_hash) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING RETURNING 1";
static const char sql_load[] = "SELECT request_hash, status, response::text FROM idempotency_keys "
                               "WHERE account_id = $1 AND key = $2";
static const char sql_store[] = "UPDATE idempotency_keys SET status = $3, response = $4::jsonb "
                                "WHERE account_id = $1 AND key = $2";

int idem_begin(db_conn *db, const idem_request *r, int *status, json_t **response)
{
    const char *p[] = {r->account_id, r->key, r->request_hash};
    PGresult *res;
    int claimed, rc;

    *response = NULL;
    if (!r->key[0])
        return IDEM_NEW;
    res = db_exec(db, sql_claim, 3, p);
    if (!res)
        return db_last_status(db);
    claimed = PQntuples(res) == 1;
    PQclear(res);
    if (claimed)
        return IDEM_NEW;
    res = db_exec(db, sql_load, 2, p);
    if (!res)
        return db_last_status(db);
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)) {
        rc = DB_RETRY; /* vanished or not yet stored: run the whole request again */
    } else if (strcmp(PQgetvalue(res, 0, 0), r->request_hash) != 0) {
        rc = IDEM_MISMATCH;
    } else {
        *status = atoi(PQgetvalue(res, 0, 1));
        *response = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
        rc = *response ? IDEM_REPLAY : DB_FAILED;
    }
    PQclear(res);
    return rc;
}

int idem_store(db_conn *db, const idem_request *r, int status, json_t *response)
{
    char st[16];
    char *text;
    int rc;

    if (!r->key[0])
        return DB_OK;
    snprintf(st, sizeof st, "%d", status);
    text = json_dumps(response, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        return DB_FAILED;
    {
        const char *p[] = {r->account_id, r->key, st, text};
        rc = db_command(db, sql_store, 4, p);
    }
    free(text);
    return rc;
}
