/*
 * market_usage.h - ingesting a provider's batch of signed usage records.
 *
 * Per record, in the batch's order: replay if the record id was accepted
 * before (same bytes) or refuse it (different bytes); check the signature
 * with the provider's registered key (unrevoked); check the order (this
 * provider's, accepting usage, same device, count within it, interval inside
 * its window and not in the future, no overlap with accepted intervals of the
 * order and device); measure it in CU (metering cache); price it with the
 * order's locked policy version and the tenant's period-to-date state; check
 * the order's hold still covers it. Accepted records, the period state, the
 * orders' running totals, one capture settlement per order, its ledger
 * transaction and its posted mark commit together, in one commit
 * (market_settle_run_in_txn); only when the ledger cannot join that
 * transaction yet do the captures go through it after the commit
 * (market_settle.h). A batch is not all-or-nothing: each record gets its own
 * answer.
 */
#ifndef TALLY_MARKET_USAGE_H
#define TALLY_MARKET_USAGE_H

#include "db.h"
#include "rate.h"
#include "usage_rec.h"

#include <jansson.h>

struct tally_server;

#define USAGE_BATCH_MAX 1000

/* One item of a batch: the parsed record and its answer. */
typedef struct usage_item {
    usage_rec rec;
    char key_id[48];
    char sig[USAGE_SIG_HEX + 1];
    usage_reason reason; /* USAGE_OK until refused */
    char detail[200];
    /* accepted */
    char usage_id[48], settlement_id[48], currency[4];
    int64_t mcu, amount, fee;
    char *lines; /* accepted: the rating's line items as JSON text (market/usage_lines.h) */
    int duplicate;
} usage_item;

/*
 * market_usage_ingest - items[0..n) from provider (items already refused by
 * parsing keep their reason). Fills every item's answer. DB_OK or a db_status.
 */
/* market_usage_lines_json - a rating's line items as stored in usage_records.lines (what
 * invoices are made of); the provider-paid fee is a line with "payer": "provider". New ref. */
json_t *market_usage_lines_json(const pricing_result *res);

int market_usage_ingest(struct tally_server *srv, db_conn *db, const char *provider,
                        usage_item *items, size_t n);

#endif
