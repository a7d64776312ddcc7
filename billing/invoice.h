/*
 * invoice.h - an invoice or credit note as a pure value: its line items, its
 * totals, its canonical signed document, and its CSV and HTML renderings.
 *
 * No I/O and no clock: the server reads rows into an invoice_doc and calls
 * these. Money is int64 micro-units throughout and is written as exact
 * decimal strings ("12.340000", pricing/money.h); nothing here uses a float.
 *
 * Invariant: totals.total is the sum of the amounts of every line the tenant
 * pays (payer "tenant"), which is what the ledger captured from the tenant for
 * the records the invoice covers. Lines paid by the provider (the platform's
 * take) are shown for information and never added to the tenant's total.
 *
 * Signed bytes: "tally-invoice-v1\n" || canonical JSON (sorted keys, compact,
 * strings and integers only), credit notes "tally-credit-note-v1\n" || ...
 */
#ifndef TALLY_INVOICE_H
#define TALLY_INVOICE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define INVOICE_SIGN_DOMAIN "tally-invoice-v1\n"
#define CREDIT_NOTE_SIGN_DOMAIN "tally-credit-note-v1\n"
#define INVOICE_MAX_LINES 4096

typedef struct invoice_line {
    char kind[24];       /* usage, free_allowance, commitment, ..., platform_fee, reversal */
    char rule_id[72];    /* "" for reversals */
    char unit[12];       /* mcu | device_ms | money_ppm | record */
    char payer[12];      /* tenant | provider */
    char from_period[8]; /* "" or the period late usage was recorded in (adjustment) */
    int64_t unit_price;  /* micro-units per unit as rated (0 when mixed) */
    int64_t quantity;
    int64_t amount; /* micro-units, signed */
} invoice_line;

/* The totals shown on an invoice. All micro-units; every one is a sum of lines. */
typedef struct invoice_totals {
    int64_t charges;       /* tenant-paid usage, window, region, reprice, minimum, true-up */
    int64_t commitments;   /* tenant-paid commitment lines */
    int64_t discounts;     /* contract discounts and allowances (<= 0) */
    int64_t fees;          /* platform fee lines the tenant pays */
    int64_t adjustments;   /* reversals and late usage from earlier periods */
    int64_t total;         /* everything the tenant pays: the sum of the above */
    int64_t provider_fees; /* the platform's take paid by providers (information) */
} invoice_totals;

typedef struct invoice_doc {
    char type[16]; /* "invoice" */
    char id[48], number[24], tenant_id[48], period[8], currency[4];
    char issued_at[40]; /* "" for a draft */
    char kid[24];       /* "" for a draft */
    char state[8];      /* draft | final */
    int64_t records;
    invoice_line *lines; /* owned: invoice_doc_clear frees */
    size_t n_lines;
} invoice_doc;

/* invoice_group - the totals group of a line: "charges", "commitments",
 * "discounts", "fees", "adjustments" or "provider_fees". */
const char *invoice_group(const invoice_line *l);

/* invoice_totals_compute - sum the lines into *t. 0, or -1 on int64 overflow. */
int invoice_totals_compute(const invoice_doc *d, invoice_totals *t);

/*
 * invoice_lines_from_json - parse an array of line objects with integer money
 * ({"kind","rule_id","unit","payer","from_period","unit_price","quantity",
 * "amount"}, as stored in invoices.lines) into d->lines (replacing them).
 * 0, or -1 on a malformed line or out of memory (d->lines then empty).
 */
int invoice_lines_from_json(invoice_doc *d, const json_t *lines);
/* invoice_lines_to_json - the inverse (new reference, NULL on OOM). */
json_t *invoice_lines_to_json(const invoice_doc *d);

/*
 * invoice_canonical - the canonical document (malloc'd, caller frees; NULL on
 * OOM or overflow) and its length. Money as decimal strings. This is exactly
 * what the signature covers after INVOICE_SIGN_DOMAIN.
 */
char *invoice_canonical(const invoice_doc *d, size_t *len);

/*
 * invoice_csv - RFC 4180 text (header row, CRLF, fields quoted when they hold
 * a comma, quote, CR or LF): one row per line, then one row per total, then
 * the signature rows when sig_hex is not NULL. Caller frees; NULL on OOM.
 */
char *invoice_csv(const invoice_doc *d, const char *sig_hex, size_t *len);

/*
 * invoice_html - a printable self-contained page: line items grouped by kind,
 * totals, and the signature, key id and canonical document with how to verify
 * them (sig_hex and canonical may be NULL for drafts). Caller frees.
 */
char *invoice_html(const invoice_doc *d, const char *sig_hex, const char *canonical, size_t *len);

/* A growing text buffer with sticky OOM (invoice_buf.c). _csv appends one RFC
 * 4180 field (quoted when needed), _html appends HTML-escaped text. */
typedef struct invoice_buf {
    char *p;
    size_t len, cap;
    int failed;
} invoice_buf;
void invoice_buf_puts(invoice_buf *b, const char *s);
void invoice_buf_printf(invoice_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void invoice_buf_csv(invoice_buf *b, const char *s);
void invoice_buf_html(invoice_buf *b, const char *s);
/* invoice_buf_take - the NUL-terminated text (caller frees), or NULL after OOM. */
char *invoice_buf_take(invoice_buf *b, size_t *len);

void invoice_doc_clear(invoice_doc *d);

#endif
