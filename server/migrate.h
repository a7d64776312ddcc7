/*
 * migrate.h - schema migrations compiled into the binary (see assets.h).
 *
 * Migrations are applied in name order, each in its own transaction together
 * with its row in schema_migrations (name, SHA-256 checksum, time). An applied
 * file whose checksum differs is refused: history is never rewritten, a new
 * migration is added instead. A session advisory lock lets several tallyd
 * processes start at once without racing.
 */
#ifndef TALLY_MIGRATE_H
#define TALLY_MIGRATE_H

#include "assets.h"
#include "db.h"

#include <stddef.h>

/* migrate_checksum - hex SHA-256 of a file's contents into out[65]. */
void migrate_checksum(const struct embedded_file *f, char out[65]);
/*
 * migrate_apply - apply pending migrations from files[0..n). Returns the number
 * applied (>= 0), or -1 with one clear line in err. Synchronous: for the CLI and
 * start-up only, never on an event loop.
 */
int migrate_apply(db_conn *db, const struct embedded_file *files, size_t n, char *err,
                  size_t errlen);
/* migrate_check - 1 when the database has exactly the binary's migrations, 0 (with a
 * reason in detail) when not, or a db_status. */
int migrate_check(db_conn *db, char *detail, size_t len);

#endif
