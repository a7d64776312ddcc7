/*
 * main.c - tallyd's command line: subcommands, configuration, start-up.
 *
 * Exit status: 0 success, 1 a runtime failure (database, files), 2 a bad command
 * line or configuration. Every failure prints one clear line on stderr.
 */
#include "accounts.h"
#include "assets.h"
#include "cli_ledger.h"
#include "http.h"
#include "keyfile.h"
#include "ledger_svc.h"
#include "log.h"
#include "market_cache.h"
#include "metering_store.h"
#include "migrate.h"
#include "report_pool.h"
#include "sched_external.h"
#include "server.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

static const char usage[] =
    "usage: tallyd COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  serve                         run the HTTP service\n"
    "  migrate                       apply pending database migrations\n"
    "  keygen --out PATH             write a new Ed25519 service signing key (mode 0600)\n"
    "  keygen --hash-secret --out PATH\n"
    "                                write a new API-key hashing secret (mode 0600)\n"
    "  admin create-account --name NAME --role tenant|provider|finance|admin [--once]\n"
    "                                create an account; print its id and a new API key\n"
    "                                (--once: do nothing if NAME already exists with ROLE)\n"
    "  catalog import [--file PATH]  import a device catalog version (default: the shipped one)\n"
    "  verify [--file PATH]          recompute every ledger hash, signature, chain link, balance\n"
    "                                and checkpoint (database, or an export file); exit 0 if all "
    "hold\n"
    "  export --out PATH             write the whole ledger as JSON lines (for verify --file)\n"
    "  version                       print the version\n"
    "  help                          print this help\n"
    "\n"
    "configuration (flag, or environment variable):\n"
    "  --database-url     TALLY_DATABASE_URL     libpq connection string or URI (required)\n"
    "  --reports-database-url TALLY_REPORTS_DATABASE_URL  reports read here, e.g. a replica\n"
    "  --listen           TALLY_LISTEN           HOST:PORT to serve on (127.0.0.1:8080)\n"
    "  --threads          TALLY_THREADS          HTTP worker threads (number of CPUs)\n"
    "  --db-pool-size     TALLY_DB_POOL_SIZE     database connections (threads + 1)\n"
    "  --signing-key      TALLY_SIGNING_KEY      path of the Ed25519 signing key (serve)\n"
    "  --key-hash-secret  TALLY_KEY_HASH_SECRET  path of the API-key hashing secret\n"
    "  --max-body-bytes   TALLY_MAX_BODY_BYTES   largest request body (1048576)\n"
    "  --auth-cache-ms    TALLY_AUTH_CACHE_MS    API-key cache lifetime, 0 = off (2000)\n"
    "  --db-timeout-ms    TALLY_DB_TIMEOUT_MS    database statement and queue timeout (5000)\n"
    "  --access-log       TALLY_ACCESS_LOG       one JSON line per request, 1 or 0 (1)\n"
    "  --order-hold-margin-pct TALLY_ORDER_HOLD_MARGIN_PCT  orders hold p90 price + this % (10)\n"
    "\n"
    "environment only (serve; docs/operations.md has the ranges):\n"
    "  TALLY_LEDGER_WRITERS (2), TALLY_LEDGER_BATCH_MAX (64), TALLY_LEDGER_BATCH_WAIT_US (1000),\n"
    "  TALLY_LEDGER_PARTITIONS (16), TALLY_LEDGER_CHECKPOINT_S (60)   ledger writers and chains\n"
    "  TALLY_LATENCY_MATRIX (embedded AWS matrix; none = off), TALLY_REGION (unset)\n"
    "                                          placement latency model\n"
    "  TALLY_SCHEDULER_URL (unset), TALLY_SCHEDULER_TIMEOUT_MS (500)   external scheduler\n"
    "  TALLY_PROBE_INTERVAL_MS (30000), TALLY_PROBE_FAILURES (3), TALLY_PROBE_TIMEOUT_MS (2000)\n"
    "                                          offer health probes and failover\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "tallyd: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun 'tallyd help' for usage\n");
    return EXIT_USAGE;
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* Option lookup among the leftover arguments: "--name value" or "--name=value". */
static const char *opt_value(int argc, char **argv, const int *rest, int nrest, const char *name,
                             int *bad)
{
    size_t n = strlen(name);

    for (int i = 0; i < nrest; i++) {
        const char *a = argv[rest[i]];
        if (strncmp(a, name, n) != 0)
            continue;
        if (a[n] == '=')
            return a + n + 1;
        if (a[n] == '\0') {
            if (i + 1 < nrest && rest[i + 1] == rest[i] + 1 && strncmp(argv[rest[i + 1]], "--", 2))
                return argv[rest[i + 1]];
            *bad = 1;
        }
    }
    return NULL;
}

static int opt_flag(char **argv, const int *rest, int nrest, const char *name)
{
    for (int i = 0; i < nrest; i++)
        if (!strcmp(argv[rest[i]], name))
            return 1;
    return 0;
}

/* Every leftover argument must be one of the allowed options (or a value after one). */
static int opts_only(char **argv, const int *rest, int nrest, int first, const char *const *allowed)
{
    for (int i = first; i < nrest; i++) {
        const char *a = argv[rest[i]];
        int ok = 0;
        if (strncmp(a, "--", 2) != 0) {
            if (i > first && rest[i - 1] == rest[i] - 1 && !strchr(argv[rest[i - 1]], '='))
                continue; /* a value */
            return usage_error("unexpected argument '%s'", a);
        }
        for (const char *const *o = allowed; *o; o++)
            if (!strncmp(a, *o, strlen(*o)) && (a[strlen(*o)] == '\0' || a[strlen(*o)] == '='))
                ok = 1;
        if (!ok)
            return usage_error("unknown option '%s'", a);
    }
    return 0;
}

static int cmd_keygen(tally_config *cfg, int argc, char **argv, const int *rest, int nrest)
{
    static const char *const allowed[] = {"--out", "--hash-secret", NULL};
    char err[512];
    int bad = 0, rc;
    const char *out = opt_value(argc, argv, rest, nrest, "--out", &bad);

    (void)cfg;
    if ((rc = opts_only(argv, rest, nrest, 1, allowed)) != 0)
        return rc;
    if (!out || bad)
        return usage_error("%s", "keygen needs --out PATH");
    if (opt_flag(argv, rest, nrest, "--hash-secret")) {
        if (keyfile_write_secret(out, err, sizeof err) != 0)
            goto fail;
        printf("{\"kind\":\"api-key-hash-secret\",\"path\":\"%s\"}\n", out);
        return 0;
    }
    {
        signing_key k;
        char pkhex[2 * crypto_sign_PUBLICKEYBYTES + 1];
        if (keyfile_write_signing(out, &k, err, sizeof err) != 0)
            goto fail;
        sodium_bin2hex(pkhex, sizeof pkhex, k.pk, sizeof k.pk);
        sodium_memzero(&k.sk, sizeof k.sk);
        printf("{\"kind\":\"ed25519-signing-key\",\"kid\":\"%s\",\"public_key\":\"%s\","
               "\"path\":\"%s\"}\n",
               k.kid, pkhex, out);
    }
    return 0;
fail:
    fprintf(stderr, "tallyd: %s\n", err);
    return 1;
}

static db_conn *cli_connect(const tally_config *cfg)
{
    char err[1024];
    db_conn *db = db_connect(cfg->database_url, err, sizeof err);

    if (!db)
        fprintf(stderr, "tallyd: %s\n", err);
    return db;
}

static int cmd_migrate(tally_config *cfg, char **argv, const int *rest, int nrest)
{
    static const char *const allowed[] = {NULL};
    char err[1024];
    db_conn *db;
    int rc;

    if ((rc = opts_only(argv, rest, nrest, 1, allowed)) != 0)
        return rc;
    if (config_check(cfg, CFG_NEED_DB, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    if (!(db = cli_connect(cfg)))
        return 1;
    rc = migrate_apply(db, tally_migrations, tally_migrations_count, err, sizeof err);
    db_close(db);
    if (rc < 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return 1;
    }
    fprintf(stderr, "tallyd: %d migration(s) applied, %zu in total\n", rc, tally_migrations_count);
    return 0;
}

static int create_account(db_conn *db, const tally_config *cfg, const char *name, const char *role,
                          int once)
{
    unsigned char secret[APIKEY_SECRET_LEN];
    char err[512];
    json_t *out = NULL;
    int rc;

    if (keyfile_load_secret(cfg->key_hash_secret_path, secret, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return 1;
    }
    if (db_command(db, "BEGIN", 0, NULL) != DB_OK)
        goto dberr;
    if (once && (rc = accounts_find_by_name(db, name, role, &out)) != 0) {
        if (rc < 0)
            goto dberr;
        json_object_set_new(out, "api_key", json_null());
        json_object_set_new(
            out, "note",
            json_string("account already exists; its key was shown when it was "
                        "created (create another with POST /v1/accounts/{id}/keys)"));
    } else if (accounts_create(db, secret, name, role, "cli", &out) != 1) {
        goto dberr;
    }
    if (db_command(db, "COMMIT", 0, NULL) != DB_OK)
        goto dberr;
    sodium_memzero(secret, sizeof secret);
    {
        char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text ? text : "{}");
        free(text);
    }
    json_decref(out);
    return 0;
dberr:
    sodium_memzero(secret, sizeof secret);
    json_decref(out);
    fprintf(stderr, "tallyd: cannot create the account: %s\n", db_last_message(db));
    return 1;
}

static int cmd_admin(tally_config *cfg, int argc, char **argv, const int *rest, int nrest)
{
    static const char *const allowed[] = {"--name", "--role", "--once", NULL};
    char err[1024];
    const char *name, *role;
    int bad = 0, rc;
    db_conn *db;

    if (nrest < 2 || strcmp(argv[rest[1]], "create-account") != 0)
        return usage_error("%s", "admin needs a subcommand: create-account");
    if ((rc = opts_only(argv, rest, nrest, 2, allowed)) != 0)
        return rc;
    name = opt_value(argc, argv, rest, nrest, "--name", &bad);
    role = opt_value(argc, argv, rest, nrest, "--role", &bad);
    if (bad || !name || !*name || strlen(name) > 200)
        return usage_error("%s", "create-account needs --name NAME (1 to 200 bytes)");
    if (!role || !role_from_name(role))
        return usage_error("%s", "create-account needs --role tenant|provider|finance|admin");
    if (config_check(cfg, CFG_NEED_DB | CFG_NEED_HASH_SECRET, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    if (!(db = cli_connect(cfg)))
        return 1;
    rc = create_account(db, cfg, name, role, opt_flag(argv, rest, nrest, "--once"));
    db_close(db);
    return rc;
}

static int cmd_catalog(tally_config *cfg, int argc, char **argv, const int *rest, int nrest)
{
    static const char *const allowed[] = {"--file", NULL};
    char err[1024], version[72];
    const char *file;
    char *text = NULL;
    size_t len = 0;
    int bad = 0, rc;
    db_conn *db;

    if (nrest < 2 || strcmp(argv[rest[1]], "import") != 0)
        return usage_error("%s", "catalog needs a subcommand: import");
    if ((rc = opts_only(argv, rest, nrest, 2, allowed)) != 0)
        return rc;
    file = opt_value(argc, argv, rest, nrest, "--file", &bad);
    if (bad)
        return usage_error("%s", "--file needs a PATH");
    if (config_check(cfg, CFG_NEED_DB, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    if (file) {
        FILE *f = fopen(file, "re");
        FILE *m = open_memstream(&text, &len);
        int ch;
        if (!f) {
            fprintf(stderr, "tallyd: cannot read %s\n", file);
            fclose(m);
            free(text);
            return 1;
        }
        while ((ch = fgetc(f)) != EOF)
            fputc(ch, m);
        fclose(f);
        fclose(m);
    }
    if (!(db = cli_connect(cfg))) {
        free(text);
        return 1;
    }
    rc = db_command(db, "BEGIN", 0, NULL);
    if (rc == DB_OK)
        rc = metering_import_catalog(db, file ? text : tally_catalog.data,
                                     file ? len : tally_catalog.len, "cli", version, sizeof version,
                                     err, sizeof err);
    if (rc == 0 || rc == 1) {
        if (db_command(db, "COMMIT", 0, NULL) != DB_OK)
            rc = DB_FAILED;
    }
    free(text);
    if (rc == 1 || rc == 0) {
        fprintf(stderr, "tallyd: device catalog %s %s\n", version,
                rc == 1 ? "imported" : "already present (unchanged)");
        db_close(db);
        return 0;
    }
    if (rc == 2 || rc == 3)
        fprintf(stderr, "tallyd: %s\n", err);
    else
        fprintf(stderr, "tallyd: catalog import failed: %s\n", db_last_message(db));
    db_close(db);
    return 1;
}

static int cmd_verify(tally_config *cfg, int argc, char **argv, const int *rest, int nrest)
{
    static const char *const allowed[] = {"--file", NULL};
    char err[1024];
    int bad = 0, rc;
    const char *file = opt_value(argc, argv, rest, nrest, "--file", &bad);

    if ((rc = opts_only(argv, rest, nrest, 1, allowed)) != 0)
        return rc;
    if (bad)
        return usage_error("%s", "--file needs a PATH");
    if (!file && config_check(cfg, CFG_NEED_DB, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    return cli_ledger_verify(cfg->database_url, file);
}

static int cmd_export(tally_config *cfg, int argc, char **argv, const int *rest, int nrest)
{
    static const char *const allowed[] = {"--out", NULL};
    char err[1024];
    int bad = 0, rc;
    const char *out = opt_value(argc, argv, rest, nrest, "--out", &bad);

    if ((rc = opts_only(argv, rest, nrest, 1, allowed)) != 0)
        return rc;
    if (bad || !out)
        return usage_error("%s", "export needs --out PATH (or --out -)");
    if (config_check(cfg, CFG_NEED_DB, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    return cli_ledger_export(cfg->database_url, out);
}

/* Load the catalog cache before serving; a database that is down now is retried later. */
static void serve_preload(struct tally_server *srv)
{
    char err[512];
    db_conn *db = db_connect(srv->cfg.database_url, err, sizeof err);

    if (!db) {
        log_warn("server", "database not reachable at start-up (%s); will retry", err);
        return;
    }
    mcache_refresh(db, srv->metering);
    market_cache_refresh(db, srv->market, 1);
    db_close(db);
}

static int cmd_serve(tally_config *cfg, char **argv, const int *rest, int nrest)
{
    static const char *const allowed[] = {NULL};
    struct tally_server srv;
    signing_key *sk;
    char err[1024];
    int rc;

    if ((rc = opts_only(argv, rest, nrest, 1, allowed)) != 0)
        return rc;
    if (sched_external_check(err, sizeof err) != 0 ||
        config_check(cfg, CFG_NEED_DB | CFG_NEED_SIGNING_KEY | CFG_NEED_HASH_SECRET, err,
                     sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    memset(&srv, 0, sizeof srv);
    sk = sodium_malloc(sizeof *sk);
    if (!sk) {
        fprintf(stderr, "tallyd: cannot allocate locked memory for the signing key\n");
        return 1;
    }
    if (keyfile_load_signing(cfg->signing_key_path, sk, err, sizeof err) != 0 ||
        keyfile_load_secret(cfg->key_hash_secret_path, srv.key_hash_secret, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        sodium_free(sk);
        return EXIT_USAGE;
    }
    sodium_mprotect_readonly(sk); /* guarded, locked pages; freed (and wiped) at exit */
    srv.signing = sk;
    srv.ledger = ledger_svc_new(cfg->database_url, cfg->db_timeout_ms, sk, err, sizeof err);
    if (!srv.ledger) {
        fprintf(stderr, "tallyd: %s\n", err);
        sodium_free(sk);
        return EXIT_USAGE;
    }
    if (cfg->db_pool_size == 0)
        cfg->db_pool_size = cfg->threads + 1; /* one per worker, plus the pipelined reader */
    srv.cfg = *cfg;
    srv.routes = tally_routes;
    srv.nroutes = tally_routes_count;
    if (evthread_use_pthreads() != 0 ||
        !(srv.metrics = metrics_new(tally_routes, tally_routes_count)) ||
        !(srv.auth = auth_cache_new(cfg->auth_cache_ms, 4096)) || !(srv.metering = mcache_new()) ||
        !(srv.market = market_cache_new(srv.metering)) ||
        !(srv.pool = db_pool_start(cfg->database_url, cfg->db_pool_size, cfg->db_timeout_ms)) ||
        !(srv.reports = report_pool_start(cfg))) {
        fprintf(stderr, "tallyd: cannot initialise (out of memory or threads)\n");
        return 1;
    }
    metrics_add_section(srv.metrics, market_cache_metrics, srv.market);
    metrics_add_section(srv.metrics, sched_external_metrics, NULL);
    if (ledger_svc_start_writer(srv.ledger) != 0) {
        fprintf(stderr, "tallyd: cannot start the ledger writer\n");
        return 1;
    }
    serve_preload(&srv);
    rc = server_run(&srv);
    ledger_svc_free(srv.ledger); /* after the drain: no request waits on the writer */
    db_pool_stop(srv.pool);
    db_pool_stop(srv.reports);
    market_cache_free(srv.market);
    mcache_free(srv.metering);
    sodium_free(sk);
    auth_cache_free(srv.auth);
    metrics_free(srv.metrics);
    sodium_memzero(srv.key_hash_secret, sizeof srv.key_hash_secret);
    libevent_global_shutdown();
    return rc;
}

int main(int argc, char **argv)
{
    tally_config cfg;
    char err[1024];
    int *rest, nrest = 0, rc;
    const char *cmd;

    if (argc < 2)
        return usage_error("%s", "missing command");
    cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tallyd %s\n", TALLY_VERSION);
        return 0;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "tallyd: libsodium failed to initialise\n");
        return 1;
    }
    config_defaults(&cfg);
    if (config_from_env(&cfg, env_get, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    rest = calloc((size_t)argc, sizeof *rest);
    if (!rest)
        return 1;
    if (config_from_flags(&cfg, argc - 1, argv + 1, rest, &nrest, err, sizeof err) != 0) {
        free(rest);
        fprintf(stderr, "tallyd: %s\n", err);
        return EXIT_USAGE;
    }
    for (int i = 0; i < nrest; i++)
        rest[i] += 1; /* indexes into argv */
    if (!strcmp(cmd, "serve"))
        rc = cmd_serve(&cfg, argv, rest, nrest);
    else if (!strcmp(cmd, "migrate"))
        rc = cmd_migrate(&cfg, argv, rest, nrest);
    else if (!strcmp(cmd, "keygen"))
        rc = cmd_keygen(&cfg, argc, argv, rest, nrest);
    else if (!strcmp(cmd, "catalog"))
        rc = cmd_catalog(&cfg, argc, argv, rest, nrest);
    else if (!strcmp(cmd, "verify"))
        rc = cmd_verify(&cfg, argc, argv, rest, nrest);
    else if (!strcmp(cmd, "export"))
        rc = cmd_export(&cfg, argc, argv, rest, nrest);
    else if (!strcmp(cmd, "admin"))
        rc = cmd_admin(&cfg, argc, argv, rest, nrest);
    else
        rc = usage_error("unknown command '%s'", cmd);
    free(rest);
    return rc;
}
