/* handlers_reports.h - finance reports over HTTP (handlers_reports.c). */
#ifndef TALLY_HANDLERS_REPORTS_H
#define TALLY_HANDLERS_REPORTS_H

#include "http.h"

void h_reports_usage(http_ctx *c);
void h_reports_trial_balance(http_ctx *c);
void h_reports_reconciliation(http_ctx *c);
void h_reports_payouts(http_ctx *c);

#endif
