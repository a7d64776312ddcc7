/*
 * Unit tests for market/ident.c (the identifier grammar of docs/identifiers.md:
 * case folding, lengths, error positions, prefix matching) and market/endpoint.c
 * (an offer's host:port). Every expected value is written out by hand.
 */
#include "endpoint.h"
#include "ident.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static ident_status parse(const char *s, market_ident *id, size_t *pos)
{
    return ident_parse(s, strlen(s), id, pos);
}

static ident_status parse_full(const char *s, market_ident *id, size_t *pos)
{
    return ident_parse_full(s, strlen(s), id, pos);
}

/* A string of n copies of c (n < 256). */
static const char *rep(char c, size_t n)
{
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    memset(b, c, n);
    b[n] = '\0';
    return b;
}

Test(ident, full_identifier_splits_into_three_labels)
{
    market_ident id;
    cr_assert_eq(parse_full("eu-west-1/acme/h100-pod-7", &id, NULL), IDENT_OK);
    cr_assert_eq(id.nlabels, 3);
    cr_assert_str_eq(id.label[0], "eu-west-1");
    cr_assert_str_eq(id.label[1], "acme");
    cr_assert_str_eq(id.label[2], "h100-pod-7");
    cr_assert_str_eq(id.text, "eu-west-1/acme/h100-pod-7");
}

Test(ident, upper_case_is_folded_to_lower_case)
{
    market_ident id;
    cr_assert_eq(parse_full("EU-West/ACME/Pod1", &id, NULL), IDENT_OK);
    cr_assert_str_eq(id.text, "eu-west/acme/pod1");
    cr_assert_str_eq(id.label[1], "acme");
}

Test(ident, prefixes_of_one_and_two_labels)
{
    market_ident id;
    cr_assert_eq(parse("eu", &id, NULL), IDENT_OK);
    cr_assert_eq(id.nlabels, 1);
    cr_assert_str_eq(id.text, "eu");
    cr_assert_eq(parse("eu/", &id, NULL), IDENT_OK);
    cr_assert_eq(id.nlabels, 1);
    cr_assert_str_eq(id.text, "eu");
    cr_assert_eq(parse("eu/acme/", &id, NULL), IDENT_OK);
    cr_assert_eq(id.nlabels, 2);
    cr_assert_str_eq(id.text, "eu/acme");
    /* a prefix is not an offer identifier */
    cr_assert_eq(parse_full("eu/acme", &id, NULL), IDENT_ERR_LABELS);
    cr_assert_eq(parse_full("eu/acme/", &id, NULL), IDENT_ERR_LABELS);
    cr_assert_eq(id.nlabels, 0);
}

Test(ident, single_character_and_digit_labels)
{
    market_ident id;
    cr_assert_eq(parse_full("a/0/z", &id, NULL), IDENT_OK);
    cr_assert_str_eq(id.text, "a/0/z");
    cr_assert_eq(parse_full("1/2-3/4--5", &id, NULL), IDENT_OK);
}

Test(ident, bad_characters_are_refused_with_their_position)
{
    market_ident id;
    size_t pos = 99;
    cr_assert_eq(parse_full("eu/ac_me/x", &id, &pos), IDENT_ERR_CHAR);
    cr_assert_eq(pos, 5);
    cr_assert_eq(parse_full("eu/acme/x y", &id, &pos), IDENT_ERR_CHAR);
    cr_assert_eq(pos, 9);
    cr_assert_eq(parse_full("eu/acme/caf\xc3\xa9", &id, &pos), IDENT_ERR_CHAR);
    cr_assert_eq(pos, 11);
    cr_assert_eq(parse_full("eu/acme/a.b", &id, &pos), IDENT_ERR_CHAR);
    cr_assert_eq(pos, 9);
    cr_assert_eq(ident_parse_full("eu/a\0c/x", 8, &id, &pos), IDENT_ERR_CHAR);
    cr_assert_eq(pos, 4);
    cr_assert_str_eq(id.text, "");
}

Test(ident, hyphens_at_label_edges_are_refused)
{
    market_ident id;
    size_t pos;
    cr_assert_eq(parse_full("-eu/acme/x", &id, &pos), IDENT_ERR_HYPHEN);
    cr_assert_eq(pos, 0);
    cr_assert_eq(parse_full("eu/acme-/x", &id, &pos), IDENT_ERR_HYPHEN);
    cr_assert_eq(pos, 7);
    cr_assert_eq(parse_full("eu/acme/-", &id, &pos), IDENT_ERR_HYPHEN);
    cr_assert_eq(pos, 8);
}

Test(ident, empty_labels_and_label_counts)
{
    market_ident id;
    size_t pos;
    cr_assert_eq(parse("", &id, &pos), IDENT_ERR_EMPTY);
    cr_assert_eq(parse("/", &id, &pos), IDENT_ERR_EMPTY_LABEL);
    cr_assert_eq(pos, 0);
    cr_assert_eq(parse("/eu", &id, &pos), IDENT_ERR_EMPTY_LABEL);
    cr_assert_eq(parse("eu//x", &id, &pos), IDENT_ERR_EMPTY_LABEL);
    cr_assert_eq(pos, 3);
    cr_assert_eq(parse("eu/", &id, &pos), IDENT_OK);
    cr_assert_eq(parse("eu//", &id, &pos), IDENT_ERR_EMPTY_LABEL);
    cr_assert_eq(parse("eu/a/b/", &id, &pos), IDENT_ERR_EMPTY_LABEL);
    cr_assert_eq(pos, 7);
    cr_assert_eq(parse("eu/a/b/c", &id, &pos), IDENT_ERR_LABELS);
    cr_assert_eq(pos, 7);
}

Test(ident, label_of_63_is_accepted_64_refused)
{
    char s[300];
    market_ident id;
    size_t pos;

    snprintf(s, sizeof s, "eu/acme/%s", rep('a', 63));
    cr_assert_eq(parse_full(s, &id, NULL), IDENT_OK);
    cr_assert_eq(strlen(id.label[2]), 63);
    snprintf(s, sizeof s, "eu/acme/%s", rep('a', 64));
    cr_assert_eq(parse_full(s, &id, &pos), IDENT_ERR_LABEL_LONG);
    cr_assert_eq(pos, 8 + 63);
    snprintf(s, sizeof s, "%s/acme/x", rep('b', 64));
    cr_assert_eq(parse_full(s, &id, &pos), IDENT_ERR_LABEL_LONG);
    cr_assert_eq(pos, 63);
}

Test(ident, longest_identifier_is_191_bytes)
{
    char s[400];
    market_ident id;
    size_t pos;

    snprintf(s, sizeof s, "%s/%s/%s", rep('a', 63), rep('b', 63), rep('c', 63));
    cr_assert_eq(strlen(s), 191);
    cr_assert_eq(parse_full(s, &id, NULL), IDENT_OK);
    cr_assert_eq(strlen(id.text), 191);
    /* 192 bytes can only be an over-long label or a trailing '/' (a full id has none) */
    strcat(s, "/");
    cr_assert_eq(parse_full(s, &id, &pos), IDENT_ERR_EMPTY_LABEL);
    /* anything longer is refused before it is scanned */
    snprintf(s, sizeof s, "%s", rep('x', 250));
    cr_assert_eq(parse(s, &id, &pos), IDENT_ERR_TOO_LONG);
    cr_assert_eq(pos, 191);
}

Test(ident, label_validity)
{
    cr_assert_eq(ident_label_valid("acme", 4), 1);
    cr_assert_eq(ident_label_valid("a-1", 3), 1);
    cr_assert_eq(ident_label_valid("Acme", 4), 0); /* canonical labels are lower case */
    cr_assert_eq(ident_label_valid("a-", 2), 0);
    cr_assert_eq(ident_label_valid("", 0), 0);
    cr_assert_eq(ident_label_valid(rep('a', 64), 64), 0);
}

Test(ident, prefix_matching_is_label_by_label)
{
    cr_assert_eq(ident_under("eu/acme/x", "eu"), 1);
    cr_assert_eq(ident_under("eu/acme/x", "eu/acme"), 1);
    cr_assert_eq(ident_under("eu/acme/x", "e"), 0);
    cr_assert_eq(ident_under("eu/acme/x", "eu/acm"), 0);
    cr_assert_eq(ident_under("eu-west/acme/x", "eu"), 0);
    cr_assert_eq(ident_under("eu/acme/x", "eu/acme/x"), 0); /* not under itself */
    cr_assert_eq(ident_under("eu/acme/x", ""), 0);
}

Test(ident, messages_are_defined)
{
    for (int s = IDENT_OK; s <= IDENT_ERR_LABELS; s++)
        cr_assert(strlen(ident_status_message((ident_status)s)) > 0);
}

/* ---- market/endpoint.c: an offer's host:port ------------------------------------------ */

Test(endpoint, names_ipv4_and_ipv6_are_canonicalised)
{
    market_endpoint ep;
    char err[160];

    cr_assert_eq(endpoint_parse("GPU-1.Example.COM:443", &ep, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ep.kind, ENDPOINT_NAME);
    cr_assert_str_eq(ep.text, "gpu-1.example.com:443");
    cr_assert_eq(endpoint_parse("127.0.0.1:9", &ep, err, sizeof err), 0);
    cr_assert_eq(ep.kind, ENDPOINT_IPV4);
    cr_assert_eq(ep.port, 9);
    cr_assert_eq(endpoint_parse("[2001:DB8:0::1]:65535", &ep, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ep.kind, ENDPOINT_IPV6);
    cr_assert_str_eq(ep.text, "[2001:db8::1]:65535");
}

Test(endpoint, malformed_endpoints_are_refused)
{
    static const char *const bad[] = {
        "",           "host",       "host:",          ":80",          "host:0",
        "host:65536", "host:080",   "host:+80",       "a:b:80",       "2001:db8::1:80",
        "[::1]80",    "[zz::1]:80", "-host.com:80",   "host-.com:80", "ho_st:80",
        "a..b:80",    "host.:80",   "1.2.3.4.5.6:80x"};
    market_endpoint ep;
    char err[160];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_assert_eq(endpoint_parse(bad[i], &ep, err, sizeof err), -1, "'%s' was accepted", bad[i]);
        cr_assert(strlen(err) > 0);
    }
}
