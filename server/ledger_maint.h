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

enum { LEDGER_RETIRE_DONE = 1, LEDGER_RETIRE_UNKNOWN = 0, LEDGER_RETIRE_ALREADY = 2 };
/* ledger_retire_key - close kid's validity now (valid_until = the database
 * clock), inside the caller's transaction. It first takes the checkpoint lock
 * and every partition head lock, so nothing signed with kid before it has an
 * insertion time at or after valid_until, and everything after it sees the key
 * retired (the writer and the checkpoint maker then refuse to sign with it).
 * Returns a LEDGER_RETIRE_* value or a db_status. */
int ledger_retire_key(db_conn *db, const char *kid);

#endif
