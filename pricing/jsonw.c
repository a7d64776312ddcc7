/*
 * jsonw.c - the compact JSON text writer (see jsonw.h).
 * Invariant: p[0..len) is always a prefix of a valid JSON text and p[len] is
 * NUL (once anything was written).
 */
#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(jsonw *w)
{
    memset(w, 0, sizeof *w);
}

void jw_free(jsonw *w)
{
    free(w->p);
    jw_init(w);
}

static void put(jsonw *w, const char *s, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 512;
        char *p;
        while (cap < w->len + n + 1)
            cap *= 2;
        p = realloc(w->p, cap);
        if (!p) {
            w->failed = 1;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

/* Before a value or key: the separating comma. */
static void sep(jsonw *w)
{
    if (w->comma)
        put(w, ",", 1);
}

static void put_escaped(jsonw *w, const char *s)
{
    const unsigned char *u = (const unsigned char *)s, *run = u;

    put(w, "\"", 1);
    for (; *u; u++) {
        char esc[8];
        const char *e = NULL;
        if (*u >= 0x20 && *u != '"' && *u != '\\')
            continue;
        switch (*u) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04X", *u);
            e = esc;
        }
        put(w, (const char *)run, (size_t)(u - run));
        put(w, e, strlen(e));
        run = u + 1;
    }
    put(w, (const char *)run, (size_t)(u - run));
    put(w, "\"", 1);
}

void jw_open(jsonw *w)
{
    sep(w);
    put(w, "{", 1);
    w->comma = 0;
}

void jw_close(jsonw *w)
{
    put(w, "}", 1);
    w->comma = 1;
}

void jw_open_array(jsonw *w)
{
    sep(w);
    put(w, "[", 1);
    w->comma = 0;
}

void jw_close_array(jsonw *w)
{
    put(w, "]", 1);
    w->comma = 1;
}

void jw_key(jsonw *w, const char *key)
{
    sep(w);
    put_escaped(w, key);
    put(w, ":", 1);
    w->comma = 0;
}

void jw_str(jsonw *w, const char *s)
{
    sep(w);
    put_escaped(w, s);
    w->comma = 1;
}

void jw_int(jsonw *w, long long v)
{
    char buf[24];
    size_t n = sizeof buf;
    unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

    do {
        buf[--n] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0)
        buf[--n] = '-';
    sep(w);
    put(w, buf + n, sizeof buf - n);
    w->comma = 1;
}

void jw_bool(jsonw *w, int v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
    w->comma = 1;
}

void jw_null(jsonw *w)
{
    sep(w);
    put(w, "null", 4);
    w->comma = 1;
}

void jw_raw(jsonw *w, const char *json, size_t len)
{
    sep(w);
    put(w, json, len);
    w->comma = 1;
}

char *jw_take(jsonw *w, size_t *len)
{
    char *p = w->failed ? NULL : w->p;

    if (!p)
        free(w->p);
    if (len)
        *len = p ? w->len : 0;
    jw_init(w);
    return p;
}
