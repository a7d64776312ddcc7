/*
 * canon.c - canonical bytes of a ledger transaction: encoder, decoder and the
 * growable buffer they write into.
 *
 * Invariant: ledger_canon_decode(ledger_canon_encode(t)) reproduces every field
 * the encoding covers, and every byte string the decoder accepts re-encodes to
 * exactly the same bytes (one representation per transaction).
 */
#include "canon.h"

#include <stdlib.h>
#include <string.h>

void ledger_buf_init(ledger_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void ledger_buf_free(ledger_buf *b)
{
    free(b->data);
    ledger_buf_init(b);
}

int ledger_buf_reserve(ledger_buf *b, size_t extra)
{
    size_t need, cap;
    unsigned char *p;

    if (extra > SIZE_MAX - b->len)
        return -1;
    need = b->len + extra;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int ledger_buf_put(ledger_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (ledger_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ledger_buf_u8(ledger_buf *b, uint8_t v)
{
    return ledger_buf_put(b, &v, 1);
}

int ledger_buf_u32(ledger_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return ledger_buf_put(b, x, sizeof x);
}

int ledger_buf_u64(ledger_buf *b, uint64_t v)
{
    unsigned char x[8];

    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(v >> (56 - 8 * i));
    return ledger_buf_put(b, x, sizeof x);
}

int ledger_buf_i64(ledger_buf *b, int64_t v)
{
    return ledger_buf_u64(b, (uint64_t)v); /* two's complement, well defined */
}

int ledger_buf_str(ledger_buf *b, const char *s, size_t n)
{
    size_t mark = b->len;

    if (n > UINT32_MAX || ledger_buf_u32(b, (uint32_t)n) != 0)
        return -1;
    if (ledger_buf_put(b, s, n) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

/* ---- encoder ---------------------------------------------------------- */

typedef struct enc {
    ledger_buf *b;
    int oom;
} enc;

/* Length of the string in arr[cap] when it is NUL-terminated, at most max and
 * (if required) non-empty; -1 otherwise. */
static long str_len(const char *arr, size_t cap, size_t max)
{
    size_t n = strnlen(arr, cap);

    if (n == cap || n > max)
        return -1;
    return (long)n;
}

static void put_str(enc *e, const char *s, size_t n)
{
    if (!e->oom && ledger_buf_str(e->b, s, n) != 0)
        e->oom = 1;
}

static void put_u8(enc *e, uint8_t v)
{
    if (!e->oom && ledger_buf_u8(e->b, v) != 0)
        e->oom = 1;
}

static void put_u32(enc *e, uint32_t v)
{
    if (!e->oom && ledger_buf_u32(e->b, v) != 0)
        e->oom = 1;
}

static void put_u64(enc *e, uint64_t v)
{
    if (!e->oom && ledger_buf_u64(e->b, v) != 0)
        e->oom = 1;
}

static void put_raw(enc *e, const void *p, size_t n)
{
    if (!e->oom && ledger_buf_put(e->b, p, n) != 0)
        e->oom = 1;
}

/* A field that is too long to encode: name it. */
#define CHECK_LEN(var, arr, max, name)                                                             \
    do {                                                                                           \
        var = str_len(arr, sizeof(arr), max);                                                      \
        if (var < 0) {                                                                             \
            out->len = 0;                                                                          \
            return ledger_error_set(err, LEDGER_E_NONCANONICAL, -1, name,                          \
                                    "%s is longer than %d bytes", name, (int)(max));               \
        }                                                                                          \
    } while (0)

ledger_err ledger_canon_encode(const ledger_txn *t, ledger_buf *out, ledger_error *err)
{
    enc e = {out, 0};
    long n;
    const struct {
        const char *name;
        const char *s;
        size_t cap, max;
    } opts[] = {
        {"order_id", t->order_id, sizeof t->order_id, LEDGER_ID_MAX},
        {"usage_id", t->usage_id, sizeof t->usage_id, LEDGER_ID_MAX},
        {"invoice_id", t->invoice_id, sizeof t->invoice_id, LEDGER_ID_MAX},
        {"reverses_id", t->reverses_id, sizeof t->reverses_id, LEDGER_ID_MAX},
        {"idempotency_key", t->idempotency_key, sizeof t->idempotency_key, LEDGER_IDEM_MAX},
    };

    out->len = 0;
    if ((int)t->kind < 0 || (int)t->kind > 255)
        return ledger_error_set(err, LEDGER_E_BAD_KIND, -1, "kind", "kind %d does not fit a byte",
                                (int)t->kind);
    if (t->n_entries > LEDGER_MAX_ENTRIES)
        return ledger_error_set(err, LEDGER_E_TOO_MANY_ENTRIES, -1, "entries",
                                "a transaction has at most %d entries", LEDGER_MAX_ENTRIES);
    /* Reserve the worst case up front: one allocation per fresh buffer. */
    if (ledger_buf_reserve(out, 1 + 4 + LEDGER_ID_MAX + 4 + 8 + 1 + 4 + LEDGER_MEMO_MAX +
                                    4 * (1 + 4 + LEDGER_ID_MAX) + 1 + 4 + LEDGER_IDEM_MAX + 8 + 8 +
                                    4 + LEDGER_KID_MAX + 4 +
                                    t->n_entries * (4 + LEDGER_ID_MAX + 3 + 8)) != 0)
        return ledger_error_set(err, LEDGER_E_NOMEM, -1, "", "out of memory");

    put_u8(&e, LEDGER_CANON_VERSION);
    CHECK_LEN(n, t->id, LEDGER_ID_MAX, "id");
    put_str(&e, t->id, (size_t)n);
    put_u32(&e, t->partition);
    put_u64(&e, t->seq);
    put_u8(&e, (uint8_t)t->kind);
    CHECK_LEN(n, t->memo, LEDGER_MEMO_MAX, "memo");
    put_str(&e, t->memo, (size_t)n);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        n = str_len(opts[i].s, opts[i].cap, opts[i].max);
        if (n < 0) {
            out->len = 0;
            return ledger_error_set(err, LEDGER_E_NONCANONICAL, -1, opts[i].name,
                                    "%s is longer than %zu bytes", opts[i].name, opts[i].max);
        }
        if (n == 0) {
            put_u8(&e, 0);
        } else {
            put_u8(&e, 1);
            put_str(&e, opts[i].s, (size_t)n);
        }
    }
    put_u64(&e, (uint64_t)t->effective_us);
    put_u64(&e, (uint64_t)t->inserted_us);
    CHECK_LEN(n, t->kid, LEDGER_KID_MAX, "kid");
    put_str(&e, t->kid, (size_t)n);
    put_u32(&e, (uint32_t)t->n_entries);
    for (size_t i = 0; i < t->n_entries; i++) {
        const ledger_entry *en = &t->entries[i];

        CHECK_LEN(n, en->account, LEDGER_ID_MAX, "entries[].account");
        put_str(&e, en->account, (size_t)n);
        if (!ledger_valid_currency(en->currency)) {
            out->len = 0;
            return ledger_error_set(err, LEDGER_E_BAD_CURRENCY, (long)i, "entries[].currency",
                                    "currency of entry %zu is not three upper-case letters", i);
        }
        put_raw(&e, en->currency, LEDGER_CURRENCY_LEN);
        put_u64(&e, (uint64_t)en->amount);
    }
    if (e.oom) {
        out->len = 0;
        return ledger_error_set(err, LEDGER_E_NOMEM, -1, "", "out of memory");
    }
    return LEDGER_OK;
}

/* ---- decoder ---------------------------------------------------------- */

typedef struct dec {
    const unsigned char *p;
    size_t n, off;
    ledger_err rc;
    ledger_error *err;
} dec;

static int need(dec *d, size_t k, const char *field)
{
    if (d->rc != LEDGER_OK)
        return -1;
    if (d->n - d->off < k) {
        d->rc = ledger_error_set(d->err, LEDGER_E_TRUNCATED, (long)d->off, field,
                                 "input ends inside %s (offset %zu)", field, d->off);
        return -1;
    }
    return 0;
}

static uint8_t get_u8(dec *d, const char *field)
{
    if (need(d, 1, field) != 0)
        return 0;
    return d->p[d->off++];
}

static uint32_t get_u32(dec *d, const char *field)
{
    uint32_t v = 0;

    if (need(d, 4, field) != 0)
        return 0;
    for (int i = 0; i < 4; i++)
        v = (v << 8) | d->p[d->off++];
    return v;
}

static uint64_t get_u64(dec *d, const char *field)
{
    uint64_t v = 0;

    if (need(d, 8, field) != 0)
        return 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | d->p[d->off++];
    return v;
}

static int64_t get_i64(dec *d, const char *field)
{
    uint64_t u = get_u64(d, field);
    int64_t v;

    memcpy(&v, &u, sizeof v); /* two's complement on every platform we build on */
    return v;
}

/* A str field into dst[cap]; max is the format limit. */
static void get_str(dec *d, char *dst, size_t cap, size_t max, const char *field)
{
    uint32_t len = get_u32(d, field);

    dst[0] = '\0';
    if (d->rc != LEDGER_OK)
        return;
    if (len > max || len >= cap) {
        d->rc = ledger_error_set(d->err, LEDGER_E_NONCANONICAL, (long)d->off, field,
                                 "%s is %u bytes, the limit is %zu", field, len, max);
        return;
    }
    if (need(d, len, field) != 0)
        return;
    if (memchr(d->p + d->off, 0, len)) {
        d->rc = ledger_error_set(d->err, LEDGER_E_NONCANONICAL, (long)d->off, field,
                                 "%s contains a NUL byte", field);
        return;
    }
    memcpy(dst, d->p + d->off, len);
    dst[len] = '\0';
    d->off += len;
}

static void get_opt(dec *d, char *dst, size_t cap, size_t max, const char *field)
{
    uint8_t present = get_u8(d, field);

    dst[0] = '\0';
    if (d->rc != LEDGER_OK)
        return;
    if (present > 1) {
        d->rc = ledger_error_set(d->err, LEDGER_E_NONCANONICAL, (long)d->off - 1, field,
                                 "presence byte of %s is 0x%02x, not 0x00 or 0x01", field, present);
        return;
    }
    if (present) {
        get_str(d, dst, cap, max, field);
        if (d->rc == LEDGER_OK && dst[0] == '\0')
            d->rc = ledger_error_set(d->err, LEDGER_E_NONCANONICAL, (long)d->off, field,
                                     "%s is present but empty (absent is written as 0x00)", field);
    }
}

ledger_err ledger_canon_decode(const unsigned char *p, size_t n, ledger_txn *t, ledger_error *err)
{
    dec d = {p, n, 0, LEDGER_OK, err};
    uint8_t version;
    uint32_t count;

    ledger_txn_init(t);
    version = get_u8(&d, "version");
    if (d.rc != LEDGER_OK)
        return d.rc;
    if (version != LEDGER_CANON_VERSION)
        return ledger_error_set(err, LEDGER_E_BAD_VERSION, 0, "version",
                                "format version 0x%02x is not supported (expected 0x%02x)", version,
                                LEDGER_CANON_VERSION);
    get_str(&d, t->id, sizeof t->id, LEDGER_ID_MAX, "id");
    t->partition = get_u32(&d, "partition");
    t->seq = get_u64(&d, "seq");
    t->kind = (ledger_kind)get_u8(&d, "kind");
    get_str(&d, t->memo, sizeof t->memo, LEDGER_MEMO_MAX, "memo");
    get_opt(&d, t->order_id, sizeof t->order_id, LEDGER_ID_MAX, "order_id");
    get_opt(&d, t->usage_id, sizeof t->usage_id, LEDGER_ID_MAX, "usage_id");
    get_opt(&d, t->invoice_id, sizeof t->invoice_id, LEDGER_ID_MAX, "invoice_id");
    get_opt(&d, t->reverses_id, sizeof t->reverses_id, LEDGER_ID_MAX, "reverses_id");
    get_opt(&d, t->idempotency_key, sizeof t->idempotency_key, LEDGER_IDEM_MAX, "idempotency_key");
    t->effective_us = get_i64(&d, "effective_us");
    t->inserted_us = get_i64(&d, "inserted_us");
    get_str(&d, t->kid, sizeof t->kid, LEDGER_KID_MAX, "kid");
    count = get_u32(&d, "entry count");
    if (d.rc != LEDGER_OK)
        return d.rc;
    if (count > LEDGER_MAX_ENTRIES)
        return ledger_error_set(err, LEDGER_E_TOO_MANY_ENTRIES, (long)d.off - 4, "entries",
                                "%u entries, the limit is %d", count, LEDGER_MAX_ENTRIES);
    for (uint32_t i = 0; i < count; i++) {
        ledger_entry *e = &t->entries[i];

        get_str(&d, e->account, sizeof e->account, LEDGER_ID_MAX, "entries[].account");
        if (need(&d, LEDGER_CURRENCY_LEN, "entries[].currency") != 0)
            return d.rc;
        memcpy(e->currency, d.p + d.off, LEDGER_CURRENCY_LEN);
        e->currency[LEDGER_CURRENCY_LEN] = '\0';
        if (!ledger_valid_currency(e->currency))
            return ledger_error_set(err, LEDGER_E_NONCANONICAL, (long)d.off, "entries[].currency",
                                    "currency of entry %u is not three upper-case letters", i);
        d.off += LEDGER_CURRENCY_LEN;
        e->amount = get_i64(&d, "entries[].amount");
        if (d.rc != LEDGER_OK)
            return d.rc;
        t->n_entries = i + 1;
    }
    if (d.off != d.n)
        return ledger_error_set(err, LEDGER_E_TRAILING_BYTES, (long)d.off, "",
                                "%zu bytes after the last entry", d.n - d.off);
    return LEDGER_OK;
}
