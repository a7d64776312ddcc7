/*
 * latency.c - the inter-region RTT matrix and its CSV parser.
 *
 * Representation: up to SCHED_MAX_REGIONS names in insertion order and a
 * fixed square matrix of doubles; a negative cell is "unknown". The invariant
 * is that every known cell is in [0, SCHED_RTT_MAX_MS). The parser works on a
 * copy of one line at a time and never reads past len.
 */
#include "latency.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAT_MAX_FIELDS (SCHED_MAX_REGIONS + 2)
#define LAT_LINE_MAX 8192

struct sched_latency {
    size_t n;
    char names[SCHED_MAX_REGIONS][SCHED_REGION_MAX + 1];
    double ms[SCHED_MAX_REGIONS][SCHED_MAX_REGIONS];
};

typedef enum { SHAPE_LONG, SHAPE_DATED, SHAPE_MATRIX } lat_shape;

/* Split state for one CSV text: the current line, its fields. */
typedef struct {
    const char *p, *end;
    size_t lineno;
    char line[LAT_LINE_MAX];
    char *field[LAT_MAX_FIELDS];
    size_t nfield;
} lat_reader;

static void lat_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

sched_latency *sched_latency_new(void)
{
    sched_latency *lat = calloc(1, sizeof *lat);
    if (!lat)
        return NULL;
    for (size_t i = 0; i < SCHED_MAX_REGIONS; i++)
        for (size_t j = 0; j < SCHED_MAX_REGIONS; j++)
            lat->ms[i][j] = -1.0;
    return lat;
}

void sched_latency_free(sched_latency *lat)
{
    free(lat);
}

int sched_latency_find(const sched_latency *lat, const char *name)
{
    if (!lat || !name)
        return -1;
    for (size_t i = 0; i < lat->n; i++)
        if (strcmp(lat->names[i], name) == 0)
            return (int)i;
    return -1;
}

int sched_latency_region(sched_latency *lat, const char *name, int add)
{
    int i = sched_latency_find(lat, name);
    size_t len;
    if (i >= 0 || !add || !lat || !name)
        return i;
    len = strlen(name);
    if (len == 0 || len > SCHED_REGION_MAX || lat->n == SCHED_MAX_REGIONS)
        return -1;
    memcpy(lat->names[lat->n], name, len + 1);
    return (int)lat->n++;
}

size_t sched_latency_count(const sched_latency *lat)
{
    return lat ? lat->n : 0;
}

const char *sched_latency_name(const sched_latency *lat, size_t i)
{
    return lat && i < lat->n ? lat->names[i] : NULL;
}

int sched_latency_set(sched_latency *lat, const char *src, const char *dst, double ms)
{
    int a, b;
    if (!lat || !(ms >= 0.0 && ms < SCHED_RTT_MAX_MS))
        return -1;
    a = sched_latency_region(lat, src, 1);
    b = sched_latency_region(lat, dst, 1);
    if (a < 0 || b < 0)
        return -1;
    lat->ms[a][b] = ms;
    return 0;
}

double sched_latency_rtt(const sched_latency *lat, int src, int dst)
{
    if (!lat || src < 0 || dst < 0 || (size_t)src >= lat->n || (size_t)dst >= lat->n)
        return -1.0;
    return lat->ms[src][dst] >= 0.0 ? lat->ms[src][dst] : -1.0;
}

double sched_latency_rtt_sym(const sched_latency *lat, int a, int b)
{
    double x = sched_latency_rtt(lat, a, b), y = sched_latency_rtt(lat, b, a);
    if (x >= 0.0 && y >= 0.0)
        return (x + y) / 2.0;
    return x >= 0.0 ? x : y;
}

/* ---- CSV reading ---------------------------------------------------------- */

/* Trim spaces and a trailing CR in place. */
static char *lat_trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Next non-blank, non-comment line split into fields. 1 = got one, 0 = end,
 * -1 = line too long or too many fields. */
static int lat_next(lat_reader *r)
{
    while (r->p < r->end) {
        const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
        size_t len = (size_t)((nl ? nl : r->end) - r->p);
        char *s, *t;
        r->lineno++;
        if (len >= LAT_LINE_MAX)
            return -1;
        memcpy(r->line, r->p, len);
        r->line[len] = '\0';
        r->p = nl ? nl + 1 : r->end;
        s = lat_trim(r->line);
        if (*s == '\0' || *s == '#')
            continue;
        r->nfield = 0;
        for (t = s;; t++) {
            char *comma = strchr(t, ',');
            if (r->nfield == LAT_MAX_FIELDS)
                return -1;
            if (comma)
                *comma = '\0';
            r->field[r->nfield++] = lat_trim(t);
            if (!comma)
                break;
            t = comma;
        }
        return 1;
    }
    return 0;
}

static int lat_number(const char *s, double *out)
{
    char *end;
    double v;
    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v) || v < 0.0 || v >= SCHED_RTT_MAX_MS)
        return -1;
    *out = v;
    return 0;
}

static int lat_column(const lat_reader *r, const char *name)
{
    for (size_t i = 0; i < r->nfield; i++)
        if (strcmp(r->field[i], name) == 0)
            return (int)i;
    return -1;
}

/* Latest snapshot_date in a dated file (ISO dates compare as strings). */
static void lat_latest_date(const char *text, size_t len, int col, char *out, size_t cap)
{
    lat_reader *r = calloc(1, sizeof *r);
    out[0] = '\0';
    if (!r)
        return;
    r->p = text;
    r->end = text + len;
    if (lat_next(r) == 1)
        while (lat_next(r) == 1)
            if ((size_t)col < r->nfield && strcmp(r->field[col], out) > 0)
                snprintf(out, cap, "%s", r->field[col]);
    free(r);
}

static int lat_row_pairs(sched_latency *lat, lat_reader *r, int src, int dst, int date_col,
                         const char *date, char *err, size_t errlen)
{
    double ms;
    size_t last = r->nfield - 1;
    if ((size_t)src > last || (size_t)dst > last) {
        lat_err(err, errlen, "line %zu: expected %zu fields", r->lineno, last + 1);
        return -1;
    }
    if (date_col >= 0 && ((size_t)date_col > last || strcmp(r->field[date_col], date) != 0))
        return 0;
    if (lat_number(r->field[last], &ms) != 0) {
        lat_err(err, errlen, "line %zu: bad RTT '%s'", r->lineno, r->field[last]);
        return -1;
    }
    if (sched_latency_set(lat, r->field[src], r->field[dst], ms) != 0) {
        lat_err(err, errlen, "line %zu: bad region name or more than %d regions", r->lineno,
                SCHED_MAX_REGIONS);
        return -1;
    }
    return 0;
}

static int lat_row_matrix(sched_latency *lat, lat_reader *r, char dst[][SCHED_REGION_MAX + 1],
                          size_t ndst, char *err, size_t errlen)
{
    if (r->nfield != ndst + 1) {
        lat_err(err, errlen, "line %zu: expected %zu fields, got %zu", r->lineno, ndst + 1,
                r->nfield);
        return -1;
    }
    for (size_t j = 0; j < ndst; j++) {
        double ms;
        if (r->field[j + 1][0] == '\0')
            continue; /* unknown cell */
        if (lat_number(r->field[j + 1], &ms) != 0 ||
            sched_latency_set(lat, r->field[0], dst[j], ms) != 0) {
            lat_err(err, errlen, "line %zu: bad cell %zu '%s'", r->lineno, j + 1, r->field[j + 1]);
            return -1;
        }
    }
    return 0;
}

/* Copy the matrix header's destination names. -1 on a bad name. */
static int lat_matrix_header(const lat_reader *r, char dst[][SCHED_REGION_MAX + 1], size_t *ndst)
{
    *ndst = r->nfield - 1;
    if (*ndst == 0 || *ndst > SCHED_MAX_REGIONS)
        return -1;
    for (size_t j = 0; j < *ndst; j++) {
        size_t l = strlen(r->field[j + 1]);
        if (l == 0 || l > SCHED_REGION_MAX)
            return -1;
        memcpy(dst[j], r->field[j + 1], l + 1);
    }
    return 0;
}

sched_latency *sched_latency_parse(const char *text, size_t len, char *err, size_t errlen)
{
    sched_latency *lat = NULL;
    lat_reader *r = NULL;
    char(*dst)[SCHED_REGION_MAX + 1] = NULL;
    char date[64] = "";
    size_t ndst = 0;
    int src_col, dst_col, date_col = -1, rc;
    lat_shape shape;

    if (!text) {
        lat_err(err, errlen, "no input");
        return NULL;
    }
    lat = sched_latency_new();
    r = calloc(1, sizeof *r);
    dst = calloc(SCHED_MAX_REGIONS, sizeof *dst);
    if (!lat || !r || !dst) {
        lat_err(err, errlen, "out of memory");
        goto fail;
    }
    r->p = text;
    r->end = text + len;
    if (lat_next(r) != 1) {
        lat_err(err, errlen, "no header row");
        goto fail;
    }
    src_col = lat_column(r, "src");
    dst_col = lat_column(r, "dst");
    if (src_col >= 0 && dst_col >= 0 && r->nfield >= 3) {
        date_col = lat_column(r, "snapshot_date");
        shape = date_col >= 0 ? SHAPE_DATED : SHAPE_LONG;
        if (shape == SHAPE_DATED)
            lat_latest_date(text, len, date_col, date, sizeof date);
    } else if (strncmp(r->field[0], "src", 3) == 0 && r->nfield >= 2) {
        shape = SHAPE_MATRIX;
        if (lat_matrix_header(r, dst, &ndst) != 0) {
            lat_err(err, errlen, "line %zu: bad matrix header", r->lineno);
            goto fail;
        }
    } else {
        lat_err(err, errlen, "line %zu: header needs src and dst columns, or src\\dst,R1,...",
                r->lineno);
        goto fail;
    }
    while ((rc = lat_next(r)) == 1) {
        if (shape == SHAPE_MATRIX
                ? lat_row_matrix(lat, r, dst, ndst, err, errlen)
                : lat_row_pairs(lat, r, src_col, dst_col, date_col, date, err, errlen))
            goto fail;
    }
    if (rc < 0) {
        lat_err(err, errlen, "line %zu: too long or too many fields", r->lineno);
        goto fail;
    }
    if (lat->n == 0) {
        lat_err(err, errlen, "no rows");
        goto fail;
    }
    free(r);
    free(dst);
    return lat;
fail:
    free(r);
    free(dst);
    sched_latency_free(lat);
    return NULL;
}
