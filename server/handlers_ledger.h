/* handlers_ledger.h - the ledger over HTTP (handlers_ledger.c). */
#ifndef TALLY_HANDLERS_LEDGER_H
#define TALLY_HANDLERS_LEDGER_H

#include "http.h"

#endif
