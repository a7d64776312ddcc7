/*
 * cli_ledger.h - `tallyd verify` and `tallyd export` (cli_ledger.c).
 * Command-line tools, not event loops: they use synchronous connections.
 */
#ifndef TALLY_CLI_LEDGER_H
#define TALLY_CLI_LEDGER_H

/* cli_ledger_verify - verify the ledger in the database at conninfo, or in
 * the export file when file is non-NULL. Prints one line; exit status 0 when
 * every check holds, 1 otherwise (naming the first failure). */
int cli_ledger_verify(const char *conninfo, const char *file);
/* cli_ledger_export - write the ledger as JSON lines to out ("-" = stdout). */
int cli_ledger_export(const char *conninfo, const char *out);

#endif
