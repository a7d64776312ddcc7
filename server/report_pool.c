/*
 * report_pool.c - the reports pool: REPORT_POOL_STREAMS job threads plus the
 * pool's pipelined reader, on the reports database (see report_pool.h).
 */
#include "report_pool.h"

db_pool *report_pool_start(const tally_config *cfg)
{
    const char *url = cfg->reports_database_url[0] ? cfg->reports_database_url : cfg->database_url;

    return db_pool_start(url, REPORT_POOL_STREAMS + 1, cfg->db_timeout_ms);
}
