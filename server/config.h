/*
 * config.h - tallyd configuration from environment variables and flags.
 *
 * Precedence: built-in default < environment (TALLY_*) < command-line flag.
 * Parsing is pure (environment is passed in as a lookup function) so it is
 * unit-tested without touching the process environment.
 */
#ifndef TALLY_CONFIG_H
#define TALLY_CONFIG_H

#include <stddef.h>

typedef struct tally_config {
    char database_url[1024];
    char reports_database_url[1024]; /* reports read here (e.g. a replica); "" = database_url */
    char listen_host[256];
    int listen_port;
    int threads;
    int db_pool_size;
    char signing_key_path[1024];
    char key_hash_secret_path[1024];
    long max_body_bytes;
    int auth_cache_ms;
    int db_timeout_ms;
    int access_log;
    int order_hold_margin_pct; /* hold = price at p90 + this percent */
} tally_config;

/* What a subcommand needs; config_check reports the first missing piece. */
enum {
    CFG_NEED_DB = 1 << 0,
    CFG_NEED_SIGNING_KEY = 1 << 1,
    CFG_NEED_HASH_SECRET = 1 << 2,
};

typedef const char *(*config_getenv_fn)(const char *name);

/* config_defaults - fill cfg with built-in defaults (threads = online CPUs). */
void config_defaults(tally_config *cfg);

/*
 * config_from_env - override cfg from TALLY_* variables read via get.
 * Returns 0, or -1 with one clear line in err (e.g. "TALLY_THREADS: must be an
 * integer between 1 and 256, got 'x'").
 */
int config_from_env(tally_config *cfg, config_getenv_fn get, char *err, size_t errlen);

/*
 * config_from_flags - consume known --flags (--name=value or --name value) from
 * argv[0..argc). Unknown options are an error. Positional arguments are left:
 * their indexes are written to rest (at most argc entries), their count to *nrest.
 */
int config_from_flags(tally_config *cfg, int argc, char **argv, int *rest, int *nrest, char *err,
                      size_t errlen);

/* config_check - verify the settings a subcommand needs are present. */
int config_check(const tally_config *cfg, int needs, char *err, size_t errlen);

/* config_parse_listen - split "host:port" ("[::1]:80" too). Pure. */
int config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

#endif
