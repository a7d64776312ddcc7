/*
 * report_pool.c - the reports pool: REPORT_POOL_STREAMS job threads plus the
 * pool's pipelined reader, on the reports database (see report_pool.h).
 */
#include "report_pool.h"

#include <malloc.h>

db_pool *report_pool_start(const tally_config *cfg)
{
    const char *url = cfg->reports_database_url[0] ? cfg->reports_database_url : cfg->database_url;

    /*
     * A streamed report allocates and frees a few hundred KiB per chunk (libpq's
     * result of each FETCH, the chunk's buffers) on one thread and frees some of
     * it on another. With glibc's defaults each such block is mapped or the heap
     * grown and trimmed again, and every reuse page-faults: a profile of a
     * per-record export showed a third of the process's time in sysmalloc and
     * page faults. Fixed thresholds keep blocks up to 4 MiB in the heap and let
     * up to 16 MiB of free heap stay mapped (a bound, not a reservation).
     */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    return db_pool_start(url, REPORT_POOL_STREAMS + 1, cfg->db_timeout_ms);
}
