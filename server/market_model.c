/*
 * market_model.c - load the latency model once (pthread_once), then share it read-only.
 */
#include "assets.h"
#include "log.h"
#include "market_model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_UNKNOWN_MS 100.0 /* latency assumed where neither matrix nor probe knows */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sched_model model;
static char region[48];

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1L << 24) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static void load(void)
{
    const char *path = getenv("TALLY_LATENCY_MATRIX"), *reg = getenv("TALLY_REGION");
    char err[256] = "";
    char *text = NULL;
    size_t len = 0;

    model.unknown_ms = MODEL_UNKNOWN_MS;
    if (reg && reg[0]) {
        snprintf(region, sizeof region, "%s", reg);
        model.probe_region = region;
    }
    if (path && !strcmp(path, "none"))
        return;
    if (path && !(text = read_file(path, &len))) {
        log_warn("market",
                 "TALLY_LATENCY_MATRIX: cannot read '%s'; placements score latency "
                 "from probes only",
                 path);
        return;
    }
    model.matrix =
        path ? sched_latency_parse(text, len, err, sizeof err)
             : sched_latency_parse(tally_latency.data, tally_latency.len, err, sizeof err);
    if (!model.matrix)
        log_warn("market", "latency matrix: %s; placements score latency from probes only", err);
    free(text);
}

const sched_model *market_model_get(void)
{
    pthread_once(&once, load);
    return &model;
}
