/* handlers_ledger.h - the ledger over HTTP (handlers_ledger.c). */
#ifndef TALLY_HANDLERS_LEDGER_H
#define TALLY_HANDLERS_LEDGER_H

#include "http.h"

void h_ledger_deposit(http_ctx *c);
void h_ledger_transfer(http_ctx *c);
void h_ledger_hold_create(http_ctx *c);
void h_ledger_hold_get(http_ctx *c);
void h_ledger_hold_capture(http_ctx *c);
void h_ledger_hold_void(http_ctx *c);
void h_ledger_reverse(http_ctx *c);
void h_ledger_txn_list(http_ctx *c);
void h_ledger_txn_get(http_ctx *c);
void h_ledger_proof(http_ctx *c);
void h_ledger_accounts_list(http_ctx *c);
void h_ledger_balance(http_ctx *c);
void h_ledger_keys(http_ctx *c);
void h_ledger_checkpoints(http_ctx *c);
void h_ledger_credit_limit(http_ctx *c);
void h_ledger_key_retire(http_ctx *c);

#endif
