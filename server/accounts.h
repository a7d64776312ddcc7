/*
 * accounts.h - accounts and API keys in PostgreSQL.
 *
 * These functions run on a database thread (or in a command-line tool) and do
 * not open transactions themselves: the caller wraps them together with its
 * idempotency record. Results are JSON objects (new references) in the shape
 * the API returns. Return values: 1 done, 0 not found, < 0 a db_status.
 */
#ifndef TALLY_ACCOUNTS_H
#define TALLY_ACCOUNTS_H

#include "apikey.h"
#include "db.h"

#include <jansson.h>

/* accounts_create - a new account and its first API key (shown once, in *out). */
int accounts_create(db_conn *db, const unsigned char secret[APIKEY_SECRET_LEN], const char *name,
                    const char *role, const char *actor, json_t **out);
int accounts_get(db_conn *db, const char *id, json_t **out);
/* The statement behind accounts_get ($1 = id) and its row as JSON, for the
 * pipelined read path (http_db_query). */
extern const char accounts_sql_get[];
json_t *accounts_row_json(PGresult *r, int i);
/* accounts_list - up to limit accounts with id > after (NULL: from the start), by id. */
int accounts_list(db_conn *db, const char *after, int limit, json_t **out);
/* accounts_find_by_name - 1 and *out when an account with this name and role exists. */
int accounts_find_by_name(db_conn *db, const char *name, const char *role, json_t **out);

int keys_create(db_conn *db, const unsigned char secret[APIKEY_SECRET_LEN], const char *account_id,
                const char *label, const char *actor, json_t **out);
int keys_list(db_conn *db, const char *account_id, json_t **out);
/* keys_revoke - revoke (idempotently: revoking twice returns the same revocation). */
int keys_revoke(db_conn *db, const char *account_id, const char *key_id, const char *actor,
                json_t **out);

#endif
