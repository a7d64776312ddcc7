/*
 * invoice_buf.c - the growing text buffer invoices are rendered into, with
 * RFC 4180 field quoting and HTML escaping. Out of memory is sticky: the
 * buffer stops growing and invoice_buf_take returns NULL.
 */
#include "invoice.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_reserve(invoice_buf *b, size_t extra)
{
    size_t want;
    char *np;

    if (b->failed)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    want = b->cap ? b->cap : 1024;
    while (want < b->len + extra + 1)
        want *= 2;
    if (!(np = realloc(b->p, want))) {
        b->failed = 1;
        return -1;
    }
    b->p = np;
    b->cap = want;
    return 0;
}

static void buf_put(invoice_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void invoice_buf_puts(invoice_buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

void invoice_buf_printf(invoice_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = 1; /* callers format short fields only */
        return;
    }
    buf_put(b, tmp, (size_t)n);
}

/* RFC 4180: a field holding a comma, a quote, CR or LF is quoted, and quotes
 * inside it are doubled. */
void invoice_buf_csv(invoice_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        invoice_buf_puts(b, s);
        return;
    }
    buf_put(b, "\"", 1);
    for (const char *q = s; *q; q++) {
        if (*q == '"')
            buf_put(b, "\"\"", 2);
        else
            buf_put(b, q, 1);
    }
    buf_put(b, "\"", 1);
}

void invoice_buf_html(invoice_buf *b, const char *s)
{
    for (const char *q = s; *q; q++) {
        switch (*q) {
        case '&':
            invoice_buf_puts(b, "&amp;");
            break;
        case '<':
            invoice_buf_puts(b, "&lt;");
            break;
        case '>':
            invoice_buf_puts(b, "&gt;");
            break;
        case '"':
            invoice_buf_puts(b, "&quot;");
            break;
        case '\'':
            invoice_buf_puts(b, "&#39;");
            break;
        default:
            buf_put(b, q, 1);
        }
    }
}

char *invoice_buf_take(invoice_buf *b, size_t *len)
{
    char *p;

    if (!b->failed && buf_reserve(b, 0) != 0)
        b->failed = 1;
    if (b->failed) {
        free(b->p);
        *b = (invoice_buf){0};
        return NULL;
    }
    p = b->p;
    if (len)
        *len = b->len;
    *b = (invoice_buf){0};
    return p;
}
