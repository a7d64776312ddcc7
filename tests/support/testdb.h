/*
 * testdb.h - throwaway databases on the test cluster (TALLY_TEST_PG).
 * Each test binary creates its own database, so tests never share state.
 */
#ifndef TALLY_TESTDB_H
#define TALLY_TESTDB_H

#include <stddef.h>

/* testdb_create - CREATE DATABASE with a random name; its conninfo into out. */
void testdb_create(char *out, size_t outlen);
/* testdb_drop - drop a database made by testdb_create (WITH FORCE). */
void testdb_drop(const char *conninfo);
/* testdb_exec - run SQL on conninfo; returns the first value of the first row (static
 * buffer, "" when none), or NULL on error (message in testdb_error()). */
const char *testdb_exec(const char *conninfo, const char *sql);
const char *testdb_error(void);

#endif
