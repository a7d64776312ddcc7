/*
 * endpoint.h - an offer's network endpoint, "host:port", where the platform
 * probes the provider's latency and health.
 *
 * host is a DNS name (labels of [a-z0-9-], 1..63 bytes, no '-' at either end,
 * at most 253 bytes, upper case folded to lower case), a dotted IPv4 address,
 * or an IPv6 address in brackets ("[2001:db8::1]:443"); port is 1..65535
 * without sign or leading zeros. Pure: no I/O, no name resolution.
 */
#ifndef TALLY_MARKET_ENDPOINT_H
#define TALLY_MARKET_ENDPOINT_H

#include <stddef.h>

#define ENDPOINT_MAX_LEN 263 /* "[" 253 "]:" 5 digits, rounded up */

typedef enum { ENDPOINT_NAME = 1, ENDPOINT_IPV4, ENDPOINT_IPV6 } endpoint_kind;

typedef struct market_endpoint {
    endpoint_kind kind;
    char host[254];                  /* canonical host, without brackets */
    int port;                        /* 1..65535 */
    char text[ENDPOINT_MAX_LEN + 1]; /* canonical "host:port" / "[v6]:port" */
} market_endpoint;

/* endpoint_parse - 0 and *out filled, or -1 with a reason in err (errlen bytes). */
int endpoint_parse(const char *s, market_endpoint *out, char *err, size_t errlen);

#endif
