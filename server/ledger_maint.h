/*
 * ledger_maint.h - periodic ledger work for the janitor (ledger_maint.c).
 * Both functions run on a database thread (or a CLI connection).
 */
#ifndef TALLY_LEDGER_MAINT_H
#define TALLY_LEDGER_MAINT_H

#include "ledger_svc.h"

/* ledger_expire_due - expire up to 64 open holds whose time has passed, each
 * as an expiry transaction. Returns how many were expired, or a db_status. */
int ledger_expire_due(ledger_svc *ls, db_conn *db);
/* ledger_make_checkpoint - sign the next checkpoint over every partition head if
 * one is due (checkpoint interval passed and some head moved), or always when
 * force. 1 made, 0 not due, or a db_status. */
int ledger_make_checkpoint(ledger_svc *ls, db_conn *db, int force);

#endif
