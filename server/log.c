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
/* Per-thread access-log buffer (event-loop threads only; see log_access_buffered). */
static __thread char access_buf[32768];
static __thread size_t access_len;
static __thread int access_buffered;

void log_set_quiet(int q)
{
    quiet = q;
}

static void iso_now(char *buf, size_t len)
{
    /* The "YYYY-MM-DDTHH:MM:SS" part only changes once a second: keep it per thread. */
    static __thread time_t last_sec = -1;
    static __thread char prefix[40];
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        last_sec = ts.tv_sec;
    }
    snprintf(buf, len, "%s.%03ldZ", prefix, ts.tv_nsec / 1000000);
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

/* Append s as a JSON string body (without quotes); bytes outside printable
 * ASCII are written as \u00XX so any input yields valid JSON. */
static size_t put_escaped(char *out, size_t cap, size_t o, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *p = (const unsigned char *)s; *p && o + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[*p >> 4];
            out[o + 5] = hex[*p & 15];
            o += 6;
        } else {
            out[o++] = (char)*p;
        }
    }
    return o;
}

static size_t put_str(char *out, size_t cap, size_t o, const char *key, const char *val)
{
    int n = snprintf(out + o, cap - o, ",\"%s\":\"", key);

    if (n < 0 || (size_t)n >= cap - o)
        return o;
    o = put_escaped(out, cap, o + (size_t)n, val);
    if (o + 1 < cap)
        out[o++] = '"';
    return o;
}

void log_access(const char *method, const char *route, const char *path, int status, double ms,
                size_t bytes, const char *request_id, const char *account_id)
{
    char line[4096], ts[80];
    size_t o;
    int n;

    iso_now(ts, sizeof ts);
    n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"request\"", ts);
    o = n > 0 ? (size_t)n : 0;
    o = put_str(line, sizeof line, o, "method", method);
    o = put_str(line, sizeof line, o, "route", route);
    o = put_str(line, sizeof line, o, "path", path);
    n = snprintf(line + o, sizeof line - o, ",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%zu",
                 status, ms, bytes);
    if (n > 0 && (size_t)n < sizeof line - o)
        o += (size_t)n;
    o = put_str(line, sizeof line, o, "request_id", request_id);
    if (account_id && *account_id) {
        o = put_str(line, sizeof line, o, "account_id", account_id);
    } else if (o + 20 < sizeof line) {
        memcpy(line + o, ",\"account_id\":null", 18);
        o += 18;
    }
    if (o + 2 > sizeof line)
        o = sizeof line - 2;
    line[o++] = '}';
    line[o++] = '\n';
    if (!access_buffered || o > sizeof access_buf) {
        if (write(STDERR_FILENO, line, o) < 0) {
            /* nothing sensible to do when stderr is gone */
        }
        return;
    }
    if (access_len + o > sizeof access_buf)
        log_access_flush();
    memcpy(access_buf + access_len, line, o);
    access_len += o;
}

void log_access_buffered(int on)
{
    access_buffered = on;
}

void log_access_flush(void)
{
    size_t off = 0;

    while (off < access_len) {
        ssize_t n = write(STDERR_FILENO, access_buf + off, access_len - off);
        if (n <= 0)
            break; /* stderr is gone: drop the lines */
        off += (size_t)n;
    }
    access_len = 0;
}
