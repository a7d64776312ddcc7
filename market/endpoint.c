/*
 * endpoint.c - parse and canonicalise "host:port" (endpoint.h).
 * Invariant: a parsed endpoint's text re-parses to itself.
 */
#include "endpoint.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static int set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -1;
}

static int parse_port(const char *s, int *port)
{
    long v = 0;

    if (!*s || *s == '0' || strlen(s) > 5)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* A DNS name: dot-separated labels of [a-z0-9-]; folded to lower case in place. */
static int valid_name(char *h)
{
    size_t n = strlen(h), label = 0;

    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = h[i];
        if (c >= 'A' && c <= 'Z')
            c = h[i] = (char)(c - 'A' + 'a');
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || h[i - 1] == '-' || h[i - label] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        label++;
    }
    return 1;
}

int endpoint_parse(const char *s, market_endpoint *out, char *err, size_t errlen)
{
    const char *colon;
    unsigned char addr[16];
    size_t hl;

    memset(out, 0, sizeof *out);
    if (!s || !*s || strlen(s) > ENDPOINT_MAX_LEN)
        return set_err(err, errlen, "expected host:port of at most 263 bytes");
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof out->host)
            return set_err(err, errlen, "an IPv6 endpoint is [address]:port");
        hl = (size_t)(rb - s - 1);
        memcpy(out->host, s + 1, hl);
        colon = rb + 1;
        if (inet_pton(AF_INET6, out->host, addr) != 1 ||
            !inet_ntop(AF_INET6, addr, out->host, sizeof out->host))
            return set_err(err, errlen, "not a valid IPv6 address");
        out->kind = ENDPOINT_IPV6;
    } else {
        colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':'))
            return set_err(err, errlen, "expected host:port (IPv6 addresses go in brackets)");
        hl = (size_t)(colon - s);
        if (hl == 0 || hl >= sizeof out->host)
            return set_err(err, errlen, "the host is empty or longer than 253 bytes");
        memcpy(out->host, s, hl);
        if (inet_pton(AF_INET, out->host, addr) == 1)
            out->kind = ENDPOINT_IPV4;
        else if (valid_name(out->host))
            out->kind = ENDPOINT_NAME;
        else
            return set_err(err, errlen, "the host is neither an IPv4 address nor a DNS name");
    }
    if (parse_port(colon + 1, &out->port) != 0)
        return set_err(err, errlen, "the port must be 1-65535");
    snprintf(out->text, sizeof out->text, out->kind == ENDPOINT_IPV6 ? "[%s]:%d" : "%s:%d",
             out->host, out->port);
    return 0;
}
