/*
 * report_pool.h - the database connections report queries run on.
 *
 * Reports are long reads (a cursor over millions of usage records), so they
 * never run on the main pool, where they would hold a connection that
 * transactions are waiting for. They get a small pool of their own, connected
 * to TALLY_REPORTS_DATABASE_URL (typically a streaming replica) or, when that
 * is unset, to the main database.
 */
#ifndef TALLY_REPORT_POOL_H
#define TALLY_REPORT_POOL_H

#include "config.h"
#include "db.h"

/* Report jobs that run at once; one more connection serves single reads. */
#define REPORT_POOL_STREAMS 2

/* report_pool_start - start the reports pool for cfg; NULL on failure. */
db_pool *report_pool_start(const tally_config *cfg);

#endif
