/*
 * jsonw.h - a compact JSON text writer for hot response paths.
 *
 * Writes straight into a growing buffer, with no tree to build and dump:
 * objects, arrays, keys, strings, integers, booleans, null. Strings are escaped
 * exactly as jansson's json_dumps escapes them (", \, \b \f \n \r \t, other
 * control characters as \uXXXX, everything else verbatim), so a document
 * written with its keys in strcmp order is byte-identical to
 * json_dumps(..., JSON_COMPACT | JSON_SORT_KEYS): canonical JSON.
 *
 * Errors (out of memory) are sticky: check jw_take's result once at the end.
 */
#ifndef TALLY_JSONW_H
#define TALLY_JSONW_H

#include <stddef.h>

typedef struct jsonw {
    char *p;
    size_t len, cap;
    int failed;
    int comma; /* a value was written: the next key or element needs a comma */
} jsonw;

void jw_init(jsonw *w);
void jw_free(jsonw *w);
void jw_open(jsonw *w);  /* { */
void jw_close(jsonw *w); /* } */
void jw_open_array(jsonw *w);
void jw_close_array(jsonw *w);
void jw_key(jsonw *w, const char *key); /* "key": (escaped) */
void jw_str(jsonw *w, const char *s);
void jw_int(jsonw *w, long long v);
void jw_bool(jsonw *w, int v);
void jw_null(jsonw *w);
/* jw_raw - append text that is already JSON (a whole value). */
void jw_raw(jsonw *w, const char *json, size_t len);
/* jw_take - the NUL-terminated text (caller frees) and its length, or NULL
 * after an allocation failure; the writer is reset either way. */
char *jw_take(jsonw *w, size_t *len);

#endif
