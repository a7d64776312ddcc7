/*
 * router.c - segment-by-segment matching of paths against route patterns.
 * Invariant: a path matches at most one pattern per method (the table is
 * checked for that by a unit test); literal segments win over parameters
 * because the table lists them first.
 */
#include "router.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode src[0..len) into dst; rejects bad escapes, NUL and overflow. */
static int decode_segment(const char *src, size_t len, char *dst, size_t dstlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return -1;
            hi = hexval(src[i + 1]);
            lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= dstlen)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return o > 0 ? 0 : -1;
}

static int bind_param(route_params *p, const char *name, size_t namelen, const char *val,
                      size_t vallen)
{
    if (p->n >= ROUTE_MAX_PARAMS || namelen >= sizeof p->names[0])
        return -1;
    memcpy(p->names[p->n], name, namelen);
    p->names[p->n][namelen] = '\0';
    if (decode_segment(val, vallen, p->values[p->n], sizeof p->values[0]) != 0)
        return -1;
    p->n++;
    return 0;
}

/* Match one pattern; 1 on match (params filled), 0 otherwise. */
static int pattern_match(const char *pat, const char *path, route_params *p)
{
    p->n = 0;
    while (*pat && *path) {
        if (*pat == '{') {
            const char *close = strchr(pat, '}');
            int rest = close > pat + 1 && close[-1] == '*';
            size_t namelen = (size_t)(close - pat - 1) - (size_t)rest;
            size_t vallen = rest ? strlen(path) : strcspn(path, "/");
            if (bind_param(p, pat + 1, namelen, path, vallen) != 0)
                return 0;
            pat = close + 1;
            path += vallen;
            continue;
        }
        if (*pat != *path)
            return 0;
        pat++;
        path++;
    }
    return *pat == '\0' && *path == '\0';
}

enum router_result router_match(const route *table, size_t n, int method, const char *path,
                                const route **out, route_params *params, char *allow,
                                size_t allowlen)
{
    int allowed = 0;
    int want = method == HTTP_HEAD ? HTTP_GET : method;
    route_params scratch;

    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!pattern_match(table[i].pattern, path, &scratch))
            continue;
        if (table[i].method == want) {
            *out = &table[i];
            *params = scratch;
            return ROUTER_MATCH;
        }
        allowed |= table[i].method;
    }
    if (!allowed)
        return ROUTER_NOT_FOUND;
    if (allow && allowlen) {
        size_t o = 0;
        allow[0] = '\0';
        for (int m = HTTP_GET; m <= HTTP_OPTIONS; m <<= 1) {
            if (!(allowed & m))
                continue;
            int w = snprintf(allow + o, allowlen - o, "%s%s", o ? ", " : "", router_method_name(m));
            if (w < 0 || (size_t)w >= allowlen - o)
                break;
            o += (size_t)w;
        }
    }
    return ROUTER_METHOD_NOT_ALLOWED;
}

const char *router_param(const route_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->names[i], name))
            return p->values[i];
    return NULL;
}

int router_query_allows(const route *r, const char *name)
{
    size_t len = strlen(name);
    const char *p = r->query;

    while (p && *p) {
        size_t wl = strcspn(p, " ");
        if (wl == len && len && !strncmp(p, name, len))
            return 1;
        p += wl;
        p += strspn(p, " ");
    }
    return 0;
}

const char *router_method_name(int method)
{
    switch (method) {
    case HTTP_GET:
        return "GET";
    case HTTP_POST:
        return "POST";
    case HTTP_PUT:
        return "PUT";
    case HTTP_DELETE:
        return "DELETE";
    case HTTP_PATCH:
        return "PATCH";
    case HTTP_HEAD:
        return "HEAD";
    case HTTP_OPTIONS:
        return "OPTIONS";
    }
    return "?";
}
