/*
 * log.c - structured logging to stderr.
 * Invariant: every line is a complete JSON object written by one write(2).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int quiet;

void log_set_quiet(int q)
{
    quiet = q;
}

static void iso_now(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void log_json(json_t *fields)
{
    char ts[80];
    char *line;
    json_t *obj = json_object();
    size_t n;

    if (!obj)
        return;
    iso_now(ts, sizeof ts);
    json_object_set_new(obj, "ts", json_string(ts));
    json_object_update(obj, fields);
    line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(obj);
    if (!line)
        return;
    n = strlen(line);
    line[n] = '\n'; /* json_dumps leaves room: we overwrite the NUL, writing n + 1 bytes */
    if (write(STDERR_FILENO, line, n + 1) < 0) {
        /* nothing sensible to do when stderr is gone */
    }
    free(line);
}

static void log_v(const char *level, const char *component, const char *fmt, va_list ap)
{
    char msg[1024];
    json_t *f;

    vsnprintf(msg, sizeof msg, fmt, ap);
    f = json_object();
    if (!f)
        return;
    json_object_set_new(f, "level", json_string(level));
    json_object_set_new(f, "component", json_string(component));
    json_object_set_new(f, "msg", json_string(msg));
    if (!json_object_get(f, "msg"))
        json_object_set_new(f, "msg", json_string("(message was not valid UTF-8)"));
    log_json(f);
    json_decref(f);
}

#define LOG_FN(name, level, skip)                                                                  \
    void name(const char *component, const char *fmt, ...)                                         \
    {                                                                                              \
        va_list ap;                                                                                \
        if (skip)                                                                                  \
            return;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_v(level, component, fmt, ap);                                                          \
        va_end(ap);                                                                                \
    }

LOG_FN(log_error, "error", 0)
LOG_FN(log_warn, "warn", 0)
LOG_FN(log_info, "info", quiet)
