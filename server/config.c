/*
 * config.c - defaults, TALLY_* environment variables and flags.
 * Invariant: after a successful load every numeric field is within its range.
 */
#include "config.h"
#include "order.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum setting_kind { SET_STR, SET_INT, SET_LONG, SET_LISTEN, SET_BOOL };

struct setting {
    const char *env;
    const char *flag;
    enum setting_kind kind;
    size_t offset;
    size_t size; /* string capacity */
    long min, max;
};

#define STR(f) SET_STR, offsetof(tally_config, f), sizeof(((tally_config *)0)->f), 0, 0
#define INT(f, lo, hi) SET_INT, offsetof(tally_config, f), 0, lo, hi
#define LONG(f, lo, hi) SET_LONG, offsetof(tally_config, f), 0, lo, hi

static const struct setting settings[] = {
    {"TALLY_DATABASE_URL", "database-url", STR(database_url)},
    {"TALLY_REPORTS_DATABASE_URL", "reports-database-url", STR(reports_database_url)},
    {"TALLY_LISTEN", "listen", SET_LISTEN, 0, 0, 0, 0},
    {"TALLY_THREADS", "threads", INT(threads, 1, 256)},
    {"TALLY_DB_POOL_SIZE", "db-pool-size", INT(db_pool_size, 1, 512)},
    {"TALLY_SIGNING_KEY", "signing-key", STR(signing_key_path)},
    {"TALLY_KEY_HASH_SECRET", "key-hash-secret", STR(key_hash_secret_path)},
    {"TALLY_MAX_BODY_BYTES", "max-body-bytes", LONG(max_body_bytes, 1024, 1L << 30)},
    {"TALLY_AUTH_CACHE_MS", "auth-cache-ms", INT(auth_cache_ms, 0, 600000)},
    {"TALLY_ORDER_HOLD_MARGIN_PCT", "order-hold-margin-pct", INT(order_hold_margin_pct, 0, 1000)},
    {"TALLY_DB_TIMEOUT_MS", "db-timeout-ms", INT(db_timeout_ms, 100, 600000)},
    {"TALLY_ACCESS_LOG", "access-log", SET_BOOL, offsetof(tally_config, access_log), 0, 0, 1},
};

void config_defaults(tally_config *cfg)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    cfg->threads = n > 0 && n <= 256 ? (int)n : 2;
    cfg->db_pool_size = 0; /* 0: derived from threads at start-up */
    cfg->max_body_bytes = 1L << 20;
    cfg->auth_cache_ms = 2000;
    cfg->order_hold_margin_pct = ORDER_HOLD_MARGIN_PCT;
    cfg->db_timeout_ms = 5000;
    cfg->access_log = 1;
}

int config_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    char *end;
    long p;

    if (!s || !*s)
        return -1;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int setting_apply(tally_config *cfg, const struct setting *s, const char *name,
                         const char *val, char *err, size_t errlen)
{
    char *base = (char *)cfg + s->offset;
    char *end;
    long v;

    switch (s->kind) {
    case SET_STR:
        if (strlen(val) >= s->size) {
            snprintf(err, errlen, "%s: value too long (max %zu bytes)", name, s->size - 1);
            return -1;
        }
        memcpy(base, val, strlen(val) + 1);
        return 0;
    case SET_LISTEN:
        if (config_parse_listen(val, cfg->listen_host, sizeof cfg->listen_host,
                                &cfg->listen_port) != 0) {
            snprintf(err, errlen, "%s: expected HOST:PORT with port 0-65535, got '%s'", name, val);
            return -1;
        }
        return 0;
    case SET_BOOL:
        if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "on")) {
            *(int *)base = 1;
        } else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "off")) {
            *(int *)base = 0;
        } else {
            snprintf(err, errlen, "%s: expected 1/0, true/false or on/off, got '%s'", name, val);
            return -1;
        }
        return 0;
    case SET_INT:
    case SET_LONG:
        errno = 0;
        v = strtol(val, &end, 10);
        if (errno || *end || end == val || v < s->min || v > s->max) {
            snprintf(err, errlen, "%s: must be an integer between %ld and %ld, got '%s'", name,
                     s->min, s->max, val);
            return -1;
        }
        if (s->kind == SET_INT)
            *(int *)base = (int)v;
        else
            *(long *)base = v;
        return 0;
    }
    return -1;
}

int config_from_env(tally_config *cfg, config_getenv_fn get, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const char *v = get(settings[i].env);
        if (v && *v && setting_apply(cfg, &settings[i], settings[i].env, v, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static const struct setting *setting_by_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (strlen(settings[i].flag) == len && !strncmp(settings[i].flag, name, len))
            return &settings[i];
    return NULL;
}

int config_from_flags(tally_config *cfg, int argc, char **argv, int *rest, int *nrest, char *err,
                      size_t errlen)
{
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq;
        const struct setting *s;
        char flagname[64];

        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            rest[(*nrest)++] = i;
            continue;
        }
        eq = strchr(a + 2, '=');
        s = setting_by_flag(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
        if (!s) {
            rest[(*nrest)++] = i; /* left for the subcommand's own options */
            continue;
        }
        snprintf(flagname, sizeof flagname, "--%s", s->flag);
        if (!eq && i + 1 >= argc) {
            snprintf(err, errlen, "%s: missing value", flagname);
            return -1;
        }
        if (setting_apply(cfg, s, flagname, eq ? eq + 1 : argv[++i], err, errlen) != 0)
            return -1;
    }
    return 0;
}

int config_check(const tally_config *cfg, int needs, char *err, size_t errlen)
{
    if ((needs & CFG_NEED_DB) && !cfg->database_url[0]) {
        snprintf(err, errlen,
                 "TALLY_DATABASE_URL is not set (a libpq connection string or URI, or "
                 "--database-url)");
        return -1;
    }
    if ((needs & CFG_NEED_SIGNING_KEY) && !cfg->signing_key_path[0]) {
        snprintf(err, errlen,
                 "TALLY_SIGNING_KEY is not set (path to a key made by 'tallyd keygen --out PATH')");
        return -1;
    }
    if ((needs & CFG_NEED_HASH_SECRET) && !cfg->key_hash_secret_path[0]) {
        snprintf(err, errlen,
                 "TALLY_KEY_HASH_SECRET is not set (path to a secret made by "
                 "'tallyd keygen --hash-secret --out PATH')");
        return -1;
    }
    return 0;
}
