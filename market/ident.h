/*
 * ident.h - computing resource identifiers: `region/handle/name`.
 *
 * An identifier says where a resource is, most general label first, like a
 * DNS name read backwards: the region it runs in, the provider's handle, the
 * offer's own name. The grammar (docs/identifiers.md):
 *
 *   identifier = label "/" label "/" label      (an offer)
 *   prefix     = label [ "/" label ] [ "/" ]    (a listing: region, region/handle)
 *   label      = 1..63 of [a-z0-9-], neither starting nor ending with '-'
 *
 * at most IDENT_MAX_LEN (191) bytes in all. Upper-case ASCII letters are
 * folded to lower case (identifiers are case-insensitive and always stored and
 * shown in lower case); every other byte outside the label alphabet, including
 * any non-ASCII byte, is refused. Pure: no I/O, no allocation.
 */
#ifndef TALLY_MARKET_IDENT_H
#define TALLY_MARKET_IDENT_H

#include <stddef.h>

#define IDENT_MAX_LEN 191
#define IDENT_LABEL_MAX 63
#define IDENT_MAX_LABELS 3

typedef enum {
    IDENT_OK = 0,
    IDENT_ERR_EMPTY,       /* no label at all */
    IDENT_ERR_TOO_LONG,    /* over IDENT_MAX_LEN bytes */
    IDENT_ERR_CHAR,        /* a byte outside [a-zA-Z0-9-/] */
    IDENT_ERR_EMPTY_LABEL, /* "a//b", a leading '/', or "a/" where a full id is needed */
    IDENT_ERR_LABEL_LONG,  /* a label over IDENT_LABEL_MAX bytes */
    IDENT_ERR_HYPHEN,      /* a label starting or ending with '-' */
    IDENT_ERR_LABELS,      /* more than three labels, or fewer than the caller requires */
} ident_status;

/* A parsed identifier or prefix, in canonical (lower-case) form. */
typedef struct market_ident {
    int nlabels; /* 1 (region), 2 (region/handle) or 3 (a full identifier) */
    char label[IDENT_MAX_LABELS][IDENT_LABEL_MAX + 1];
    char text[IDENT_MAX_LEN + 1]; /* the labels joined by '/', no trailing '/' */
} market_ident;

/*
 * ident_parse - parse s[0..len) as a prefix or a full identifier (1 to 3
 * labels; one trailing '/' is allowed after fewer than three labels). On
 * failure *out is zeroed and *pos (when not NULL) is the byte offset of the
 * problem.
 */
ident_status ident_parse(const char *s, size_t len, market_ident *out, size_t *pos);

/* ident_parse_full - the same, but exactly three labels (an offer's identifier). */
ident_status ident_parse_full(const char *s, size_t len, market_ident *out, size_t *pos);

/* ident_label_valid - 1 when s[0..len) is one canonical label (lower case only). */
int ident_label_valid(const char *s, size_t len);

/*
 * ident_under - 1 when the canonical identifier text `id` lies under the
 * canonical prefix `prefix` (1 or 2 labels, no trailing '/'): its first labels
 * equal the prefix's, label for label ("eu/acme" is under "eu", not under "e").
 */
int ident_under(const char *id, const char *prefix);

/* ident_status_message - a short English explanation of a status. */
const char *ident_status_message(ident_status s);

#endif
