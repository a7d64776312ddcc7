/*
 * swf.c - Standard Workload Format reader over zlib (gzopen reads plain
 * files transparently). Invariant: a returned record had exactly 18 numeric
 * fields; the fractional field 6 (CPU time) is parsed and discarded.
 */
#include "swf.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SWF_FIELDS 18
#define SWF_LINE_MAX 4096

/* Parse one record line into j; returns 0 for a record, 1 for a comment or
 * blank line, -1 for a malformed line. */
static int parse_line(const char *line, swf_job *j)
{
    double f[SWF_FIELDS];
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == ';' || *p == '\n' || *p == '\r' || *p == '\0')
        return 1;
    for (int i = 0; i < SWF_FIELDS; i++) {
        char *end;
        f[i] = strtod(p, &end);
        if (end == p)
            return -1;
        p = end;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p != '\0')
        return -1;
    *j = (swf_job){.id = (int64_t)f[0],
                   .submit = (int64_t)f[1],
                   .wait = (int64_t)f[2],
                   .run = (int64_t)f[3],
                   .alloc_procs = (int64_t)f[4],
                   .req_procs = (int64_t)f[7],
                   .req_time = (int64_t)f[8],
                   .status = (int64_t)f[10],
                   .user = (int64_t)f[11],
                   .group = (int64_t)f[12],
                   .exe = (int64_t)f[13],
                   .queue = (int64_t)f[14],
                   .partition = (int64_t)f[15]};
    return 0;
}

int swf_read(const char *path, swf_job **jobs, size_t *n, size_t *malformed)
{
    char line[SWF_LINE_MAX];
    size_t cap = 1024;
    swf_job *v = NULL;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return -1;
    *n = *malformed = 0;
    v = malloc(cap * sizeof *v);
    if (!v)
        goto fail;
    while (gzgets(gz, line, sizeof line)) {
        swf_job j;
        int rc = parse_line(line, &j);
        if (rc < 0)
            (*malformed)++;
        if (rc != 0)
            continue;
        if (*n == cap) {
            swf_job *bigger = realloc(v, 2 * cap * sizeof *v);
            if (!bigger)
                goto fail;
            v = bigger;
            cap *= 2;
        }
        v[(*n)++] = j;
    }
    int err;
    gzerror(gz, &err);
    if (err != Z_OK && err != Z_STREAM_END)
        goto fail;
    gzclose(gz);
    *jobs = v;
    return 0;
fail:
    free(v);
    gzclose(gz);
    return -1;
}
