/*
 * reports_ledger.h - reports read from the ledger: the trial balance (every
 * account's balance, per-currency totals that must be zero) and provider
 * payouts (payable movements in a period), as report_specs for reports_stream.
 */
#ifndef TALLY_REPORTS_LEDGER_H
#define TALLY_REPORTS_LEDGER_H

#include "reports_stream.h"

#include <stdint.h>

/* reports_trial_balance_spec - balances now (as_of NULL) or as of unix
 * microseconds as_of_us (decimal text, copied), JSON with totals. */
void reports_trial_balance_spec(report_spec *spec, const char *as_of_us, json_t *meta);

/* reports_payouts_spec - payable movements with effective time in [from_us,
 * to_us) (decimal text), for one provider or all (NULL). */
void reports_payouts_spec(report_spec *spec, const char *from_us, const char *to_us,
                          const char *provider, report_format format, json_t *meta);

#endif
