/*
 * canon.h - canonical bytes of a ledger transaction (format version 0x01).
 *
 * The canonical bytes are what the hash chain and the signature cover. They are
 * a binary encoding with exactly one representation per transaction:
 *
 *   u8   version = 0x01
 *   str  id
 *   u32  partition
 *   u64  seq
 *   u8   kind
 *   str  memo                      (may be empty)
 *   opt  order_id                  opt = u8 0x00 (absent) | u8 0x01 str (present,
 *   opt  usage_id                        non-empty)
 *   opt  invoice_id
 *   opt  reverses_id
 *   opt  idempotency_key
 *   i64  effective_us
 *   i64  inserted_us
 *   str  kid
 *   u32  entry count
 *   per entry, in the transaction's own order (entry 0 first):
 *     str  account
 *     3 bytes currency (ASCII A-Z)
 *     i64  amount (two's complement)
 *
 * Integers are fixed-width big-endian; str = u32 big-endian byte length then
 * that many bytes (UTF-8, no NUL). prev_hash, hash and sig are NOT part of the
 * canonical bytes (the hash covers prev_hash separately; see chain.h).
 * docs/ledger-format.md has the byte-by-byte description and a worked vector.
 */
#ifndef TALLY_LEDGER_CANON_H
#define TALLY_LEDGER_CANON_H

#include "ledger_txn.h"

#include <stddef.h>

#define LEDGER_CANON_VERSION 0x01

/* A growable byte buffer. Initialise with ledger_buf_init (or = {0}); the
 * buffer owns data and ledger_buf_free releases it. Reuse one buffer across
 * many encodings to avoid allocating per transaction. */
typedef struct ledger_buf {
    unsigned char *data;
    size_t len, cap;
} ledger_buf;

void ledger_buf_init(ledger_buf *b);
void ledger_buf_free(ledger_buf *b);
/* ledger_buf_reserve - make room for extra more bytes. 0 or -1 (out of memory). */
int ledger_buf_reserve(ledger_buf *b, size_t extra);
/* Appenders: 0 or -1 (out of memory; the buffer is unchanged). */
int ledger_buf_put(ledger_buf *b, const void *p, size_t n);
int ledger_buf_u8(ledger_buf *b, uint8_t v);
int ledger_buf_u32(ledger_buf *b, uint32_t v);
int ledger_buf_u64(ledger_buf *b, uint64_t v);
int ledger_buf_i64(ledger_buf *b, int64_t v);
int ledger_buf_str(ledger_buf *b, const char *s, size_t n);

/* ledger_canon_encode - replace out's contents with t's canonical bytes.
 * Fails (out->len is then 0) only when a field cannot be represented: a string
 * longer than its limit or not NUL-terminated inside its array, an unknown
 * kind, more than LEDGER_MAX_ENTRIES entries, a bad currency, or out of memory.
 * It deliberately does NOT check that debits equal credits, so a tampered row can still be
 * hashed and reported as a hash mismatch; call ledger_txn_validate for that. */
ledger_err ledger_canon_encode(const ledger_txn *t, ledger_buf *out, ledger_error *err);

/* ledger_canon_decode - parse canonical bytes into *t (prev_hash, hash and sig
 * are zeroed). Rejects a version other than 0x01 (LEDGER_E_BAD_VERSION), input
 * that ends early (LEDGER_E_TRUNCATED), bytes after the last entry
 * (LEDGER_E_TRAILING_BYTES), over-long strings, NUL bytes inside strings,
 * presence bytes other than 0/1, present-but-empty optionals and bad currency
 * bytes (LEDGER_E_NONCANONICAL), more than LEDGER_MAX_ENTRIES entries. It
 * checks the encoding only; run ledger_txn_validate for the ledger rules. */
ledger_err ledger_canon_decode(const unsigned char *p, size_t n, ledger_txn *t, ledger_error *err);

#endif
