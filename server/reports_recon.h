/*
 * reports_recon.h - the reconciliation report: every disagreement between
 * usage records, settlements, orders, ledger postings and holds, one row per
 * discrepancy with the ids involved; no rows when everything agrees.
 */
#ifndef TALLY_REPORTS_RECON_H
#define TALLY_REPORTS_RECON_H

#include "reports_stream.h"

/* reports_recon_spec - checks over rows created in [from, to) (timestamptz text). */
void reports_recon_spec(report_spec *spec, const char *from, const char *to, report_format format,
                        json_t *meta);

#endif
