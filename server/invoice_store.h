/*
 * invoice_store.h - invoices and credit notes in PostgreSQL (migrations/0010).
 *
 * Every function runs on a database thread with its connection. close and
 * finalize run inside the caller's transaction (idem_write); the credit note
 * runs its own transactions because its money moves through the ledger first.
 * They fill an HTTP status and a body (the resource, or a problem+json body)
 * and return DB_OK or a db_status.
 */
#ifndef TALLY_INVOICE_STORE_H
#define TALLY_INVOICE_STORE_H

#include "db.h"
#include "invoice.h"
#include "keyfile.h"

#include <jansson.h>
#include <libpq-fe.h>

struct tally_server;

/* invoice_close - create or refresh the drafts of period ("YYYY-MM") for every
 * tenant with usage billed in it. Body: {"period", "invoices": n, "ids": [..]}. */
int invoice_close(db_conn *db, const char *period, int *status, json_t **body);

/* invoice_finalize - number (gap-free), sign and freeze a draft. Body: the invoice. */
int invoice_finalize(db_conn *db, const signing_key *key, const char *id, int *status,
                     json_t **body);

/* A credit note request (amount > 0 micro-units). */
typedef struct invoice_credit_req {
    char invoice_id[48], caller[48], idem_key[128], reason[501];
    unsigned caller_role;
    int64_t amount;
} invoice_credit_req;

/* invoice_credit_note - move the money through the ledger (an adjustment from
 * platform revenue to the tenant's wallet, idempotent under the request's key),
 * then number, sign and store the note. Body: the credit note. */
int invoice_credit_note(struct tally_server *srv, db_conn *db, const invoice_credit_req *rq,
                        int *status, json_t **body);

/* invoice_credit_sweep - finish credit notes whose request was written down more than 10 s
 * ago and is still pending (a crash or a lost connection between the ledger adjustment and the
 * note): the same idempotent steps as a retry. Returns how many it finished, or < 0. */
int invoice_credit_sweep(struct tally_server *srv, db_conn *db);

/* A true-up request: the draft invoice's tenant, period and currency, and the caller. */
typedef struct invoice_trueup_req {
    char invoice_id[48], tenant[48], period[8], currency[4], caller[48];
    unsigned caller_role;
} invoice_trueup_req;

/* invoice_trueup - (invoice_trueup.c) charge the unused part of the tenant's
 * reserved commitments for the period through the ledger and record the line
 * items for the invoice; outside any transaction, idempotent. DB_OK with
 * status 0, or status and body a problem (e.g. 422 insufficient funds). */
int invoice_trueup(struct tally_server *srv, db_conn *db, const invoice_trueup_req *rq, int *status,
                   json_t **body);

/* The columns invoice_row_doc reads: "SELECT " INVOICE_COLS " FROM invoices i ...". */
#define INVOICE_COLS                                                                               \
    "i.id, i.tenant_id, i.period, i.currency, i.state, coalesce(i.number, ''), i.lines::text, "    \
    "i.records, i.total_micros, coalesce(i.document, ''), coalesce(i.kid, ''), "                   \
    "coalesce(i.signature, ''), coalesce(to_char(i.finalized_at AT TIME ZONE 'UTC', "              \
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), (SELECT coalesce(json_agg(json_build_object('id', "   \
    "n.id, 'number', n.number, 'amount', n.amount_micros, 'reason', n.reason, 'transaction_id', "  \
    "n.txn_id) ORDER BY n.seq), '[]') FROM credit_notes n WHERE n.invoice_id = i.id)::text"

/* invoice_row_doc - row i of r (INVOICE_COLS) into d. 0, or -1 (malformed lines). */
int invoice_row_doc(PGresult *r, int i, invoice_doc *d);
/* invoice_row_json - the API representation of row i (new reference). */
json_t *invoice_row_json(PGresult *r, int i);

#endif
