/*
 * ident.c - the identifier grammar of ident.h.
 * Invariant: a market_ident only ever holds canonical labels (lower-case
 * [a-z0-9-], 1..63 bytes, no '-' at either end), so three of them joined by
 * '/' are at most 3 x 63 + 2 = 191 bytes, IDENT_MAX_LEN, by construction.
 */
#include "ident.h"

#include <string.h>

static int is_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static char fold(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int ident_label_valid(const char *s, size_t len)
{
    if (len == 0 || len > IDENT_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_label_char(s[i]))
            return 0;
    return 1;
}

static ident_status fail(market_ident *out, size_t *pos, size_t at, ident_status st)
{
    memset(out, 0, sizeof *out);
    if (pos)
        *pos = at;
    return st;
}

/* Close the label that ends at s[end] (exclusive) and starts at s[start]. */
static ident_status end_label(market_ident *out, size_t start, size_t end, size_t *bad)
{
    char *l;
    size_t n = end - start;

    if (n == 0) {
        *bad = start;
        return IDENT_ERR_EMPTY_LABEL;
    }
    if (out->nlabels == IDENT_MAX_LABELS) {
        *bad = start;
        return IDENT_ERR_LABELS;
    }
    if (n > IDENT_LABEL_MAX) {
        *bad = start + IDENT_LABEL_MAX;
        return IDENT_ERR_LABEL_LONG;
    }
    l = out->label[out->nlabels];
    if (l[0] == '-' || l[n - 1] == '-') {
        *bad = l[0] == '-' ? start : end - 1;
        return IDENT_ERR_HYPHEN;
    }
    out->nlabels++;
    return IDENT_OK;
}

/* Append the canonical labels to out->text, joined by '/'. */
static void join_labels(market_ident *out)
{
    size_t o = 0;

    for (int i = 0; i < out->nlabels; i++) {
        size_t n = strlen(out->label[i]);
        if (i)
            out->text[o++] = '/';
        memcpy(out->text + o, out->label[i], n);
        o += n;
    }
    out->text[o] = '\0';
}

ident_status ident_parse(const char *s, size_t len, market_ident *out, size_t *pos)
{
    size_t start = 0, bad = 0;
    ident_status st;

    memset(out, 0, sizeof *out);
    if (!s || len == 0)
        return fail(out, pos, 0, IDENT_ERR_EMPTY);
    if (len > IDENT_MAX_LEN + 1)
        return fail(out, pos, IDENT_MAX_LEN, IDENT_ERR_TOO_LONG);
    for (size_t i = 0; i < len; i++) {
        char c = fold(s[i]);
        if (c == '/') {
            if ((st = end_label(out, start, i, &bad)) != IDENT_OK)
                return fail(out, pos, bad, st);
            start = i + 1;
            continue;
        }
        if (!is_label_char(c))
            return fail(out, pos, i, IDENT_ERR_CHAR);
        if (out->nlabels < IDENT_MAX_LABELS && i - start < IDENT_LABEL_MAX)
            out->label[out->nlabels][i - start] = c;
    }
    if (start < len || out->nlabels == IDENT_MAX_LABELS || out->nlabels == 0) {
        /* the last label, unless a single trailing '/' after 1 or 2 labels ended it */
        if ((st = end_label(out, start, len, &bad)) != IDENT_OK)
            return fail(out, pos, bad, st);
    }
    join_labels(out);
    return IDENT_OK;
}

ident_status ident_parse_full(const char *s, size_t len, market_ident *out, size_t *pos)
{
    ident_status st = ident_parse(s, len, out, pos);

    if (st != IDENT_OK)
        return st;
    if (out->nlabels != IDENT_MAX_LABELS || s[len - 1] == '/')
        return fail(out, pos, len, IDENT_ERR_LABELS);
    return IDENT_OK;
}

int ident_under(const char *id, const char *prefix)
{
    size_t n = strlen(prefix);

    return n > 0 && strncmp(id, prefix, n) == 0 && id[n] == '/';
}

const char *ident_status_message(ident_status s)
{
    switch (s) {
    case IDENT_OK:
        return "ok";
    case IDENT_ERR_EMPTY:
        return "the identifier is empty";
    case IDENT_ERR_TOO_LONG:
        return "the identifier is longer than 191 bytes";
    case IDENT_ERR_CHAR:
        return "only letters a-z, digits, '-' and '/' between labels are allowed";
    case IDENT_ERR_EMPTY_LABEL:
        return "a label is empty";
    case IDENT_ERR_LABEL_LONG:
        return "a label is longer than 63 characters";
    case IDENT_ERR_HYPHEN:
        return "a label cannot start or end with '-'";
    case IDENT_ERR_LABELS:
        return "an offer identifier has exactly three labels: region/handle/name";
    }
    return "invalid identifier";
}
