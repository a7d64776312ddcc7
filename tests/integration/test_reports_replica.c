/*
 * Integration: reports served by a REAL PostgreSQL streaming replica.
 *
 * The test makes its own two clusters with scripts/pg.sh: a primary (wal_level
 * replica is PostgreSQL's default) and a standby made from it with
 * `pg_basebackup -R` (streaming replication over the primary's Unix socket).
 * tallyd writes to the primary and reads reports from the standby
 * (TALLY_REPORTS_DATABASE_URL). Writes made through the API show in the
 * reports once replayed; every report says it came from a standby
 * (X-Tally-Replica, served_by_replica); and with the primary stopped, writes
 * fail but reports - and the dashboard's data - still work (the API key is in
 * tallyd's auth cache).
 */
#include "testdb.h"
#include "testhttp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64], pdir[128], rdir[128], pci[512], rci[512], env_reports[600];
static tallyd_proc srv;
static json_t *fin, *ten;

static const char *script(void)
{
    const char *s = getenv("TALLY_TEST_PG_SCRIPT");
    return s ? s : TALLY_SOURCE_DIR "/scripts/pg.sh";
}

static void pg(const char *cmd, const char *dir, const char *extra)
{
    char line[1024];
    snprintf(line, sizeof line, "bash '%s' %s '%s' %s >/dev/null", script(), cmd, dir,
             extra ? extra : "");
    cr_assert_eq(system(line), 0, "pg.sh %s %s failed", cmd, dir);
}

static void pg_url(const char *dir, char *out, size_t cap)
{
    char cmd[512];
    FILE *f;
    snprintf(cmd, sizeof cmd, "bash '%s' url '%s'", script(), dir);
    f = popen(cmd, "r");
    cr_assert(f && fgets(out, (int)cap, f));
    pclose(f);
    out[strcspn(out, "\n")] = '\0';
}

/* The standby: a base backup of the primary with -R (standby.signal and
 * primary_conninfo), its own socket directory, started with pg.sh. */
static void make_replica(void)
{
    char sock[256], cmd[2048];
    const char *h = strstr(pci, "host="), *sp;

    cr_assert(h);
    h += 5;
    sp = strchr(h, ' ');
    snprintf(sock, sizeof sock, "%.*s", (int)(sp ? sp - h : (long)strlen(h)), h);
    snprintf(cmd, sizeof cmd,
             "set -e; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); "
             "mkdir -p '%s/run'; run=; if [ \"$(id -u)\" = 0 ]; then chown postgres '%s' '%s/run'; "
             "run='runuser -u postgres --'; fi; chmod 0700 '%s/run'; "
             "$run \"$bin/pg_basebackup\" -D '%s/data' -R -X stream -h '%s' -p 5432 -U tally "
             ">/dev/null; echo \"unix_socket_directories = '%s/run'\" | $run tee -a "
             "'%s/data/postgresql.conf' >/dev/null",
             rdir, rdir, rdir, rdir, rdir, sock, rdir, rdir);
    cr_assert_eq(system(cmd), 0, "pg_basebackup failed");
    pg("start", rdir, NULL);
    pg_url(rdir, rci, sizeof rci);
}

static void setup(void)
{
    char tmpl[] = "/tmp/tally-rep-XXXXXX";
    const char *env[3] = {env_reports, "TALLY_AUTH_CACHE_MS=600000", NULL};

    cr_assert(mkdtemp(tmpl));
    chmod(tmpl, 0755); /* the postgres user (when run as root) must reach the clusters */
    snprintf(base, sizeof base, "%s", tmpl);
    snprintf(pdir, sizeof pdir, "%s/primary", base);
    snprintf(rdir, sizeof rdir, "%s/replica", base);
    cr_assert_eq(mkdir(pdir, 0755), 0);
    cr_assert_eq(mkdir(rdir, 0755), 0);
    pg("init", pdir, "--fast");
    pg("start", pdir, NULL);
    pg_url(pdir, pci, sizeof pci);
    make_replica();
    cr_assert_str_eq(testdb_exec(rci, "SELECT pg_is_in_recovery()"), "t", "a real standby");
    snprintf(env_reports, sizeof env_reports, "TALLY_REPORTS_DATABASE_URL=%s", rci);
    tallyd_start(&srv, pci, env);
    fin = tallyd_account(&srv, "finance-1", "finance");
    ten = tallyd_account(&srv, "tenant-a", "tenant");
}

static void teardown(void)
{
    json_decref(fin);
    json_decref(ten);
    tallyd_stop(&srv);
    pg("destroy", rdir, NULL);
    pg("destroy", pdir, NULL);
    rmdir(base);
}

TestSuite(reports_replica, .init = setup, .fini = teardown, .timeout = 180);

static const char *fkey(void)
{
    return json_string_value(json_object_get(fin, "api_key"));
}

static void deposit(const char *amount, long want)
{
    char body[256];
    http_resp r;
    snprintf(body, sizeof body, "{\"tenant_id\":\"%s\",\"currency\":\"USD\",\"amount\":\"%s\"}",
             json_string_value(json_object_get(ten, "id")), amount);
    r = http_request(&srv, "POST", "/v1/ledger/deposits", srv.admin_key, NULL, body, strlen(body));
    cr_assert_eq(r.status, want, "%s", r.body);
    http_resp_free(&r);
}

/* Wait until the standby has replayed everything the primary has written so far. */
static void wait_replay(void)
{
    char lsn[64], sql[160];
    const char *v = testdb_exec(pci, "SELECT pg_current_wal_insert_lsn()");

    cr_assert(v, "%s", testdb_error());
    snprintf(lsn, sizeof lsn, "%s", v);
    snprintf(sql, sizeof sql, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", lsn);
    for (int i = 0; i < 200; i++) {
        v = testdb_exec(rci, sql);
        if (v && !strcmp(v, "t"))
            return;
        usleep(50000);
    }
    cr_assert_fail("the standby did not replay %s in 10 s", lsn);
}

/* The trial balance's USD debits, read through tallyd; asserts the standby served it. */
static void trial_balance_debits(char *out, size_t cap)
{
    http_resp r = http_request(&srv, "GET", "/v1/reports/trial-balance", fkey(), NULL, NULL, 0);
    json_t *totals;

    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(http_header_value(&r, "x-tally-replica"), "true", "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "served_by_replica")), "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "balanced")), "%s", r.body);
    totals = json_object_get(r.json, "totals");
    cr_assert_eq(json_array_size(totals), 1, "%s", r.body);
    snprintf(out, cap, "%s",
             json_string_value(json_object_get(json_array_get(totals, 0), "debits")));
    http_resp_free(&r);
}

Test(reports_replica, reports_come_from_the_standby_even_with_the_primary_down)
{
    char debits[32];
    http_resp r;

    deposit("25.00", 201);
    wait_replay();
    trial_balance_debits(debits, sizeof debits);
    cr_assert_str_eq(debits, "25.000000");

    deposit("5.50", 201);
    wait_replay();
    trial_balance_debits(debits, sizeof debits);
    cr_assert_str_eq(debits, "30.500000", "a write on the primary shows once replayed: %s", debits);

    pg("stop", pdir, NULL);
    deposit("1.00", 503);                        /* the primary is gone: writes fail... */
    trial_balance_debits(debits, sizeof debits); /* ...reports do not */
    cr_assert_str_eq(debits, "30.500000");
    r = http_request(&srv, "GET", "/v1/reports/usage?group_by=day&format=csv", fkey(), NULL, NULL,
                     0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(http_header_value(&r, "x-tally-replica"), "true");
    cr_assert_str_eq(r.body,
                     "day,currency,records,cu,device_hours,gross,discounts,amount,fees,net\r\n");
    http_resp_free(&r);
    /* the dashboard's data is a report too: served by the standby, not the main pool */
    r = http_request(&srv, "GET", "/v1/reports/dashboard", fkey(), NULL, NULL, 0);
    cr_assert_eq(r.status, 200, "the dashboard reads the reports database: %s", r.body);
    cr_assert(json_is_array(json_object_get(r.json, "by_day")), "%s", r.body);
    http_resp_free(&r);
}
