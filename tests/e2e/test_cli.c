/* End-to-end: the tallyd command line — usage errors, configuration errors, keygen. */
#include "testhttp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *bin(void)
{
    const char *p = getenv("TALLY_TEST_TALLYD");
    return p && *p ? p : TALLY_BINARY_DIR "/bin/tallyd";
}

/* Run tallyd with args and the extra environment assignments vars (NAME=value ...);
 * returns its exit status and its stderr into err. */
static int run_env(const char *vars, const char *args, char *err, size_t errlen)
{
    char line[2048];
    FILE *f;
    int st;
    size_t n;
    snprintf(line, sizeof line,
             "env -u TALLY_DATABASE_URL -u TALLY_SIGNING_KEY "
             "-u TALLY_KEY_HASH_SECRET -u TALLY_SCHEDULER_URL -u TALLY_SCHEDULER_TIMEOUT_MS "
             "%s %s %s 2>&1 >/dev/null",
             vars, bin(), args);
    f = popen(line, "r");
    n = fread(err, 1, errlen - 1, f);
    err[n] = '\0';
    st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(const char *args, char *err, size_t errlen)
{
    return run_env("", args, err, errlen);
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(cli, bad_command_lines_exit_2)
{
    char err[2048];
    cr_assert_eq(run("", err, sizeof err), 2);
    cr_assert_eq(run("frobnicate", err, sizeof err), 2);
    cr_assert(strstr(err, "unknown command 'frobnicate'"), "%s", err);
    cr_assert_eq(run("serve --no-such-flag", err, sizeof err), 2);
    cr_assert(strstr(err, "unknown option '--no-such-flag'"), "%s", err);
    cr_assert_eq(run("keygen", err, sizeof err), 2);
    cr_assert_eq(run("admin create-account --name x --role root", err, sizeof err), 2);
    cr_assert_eq(run("admin", err, sizeof err), 2);
}

Test(cli, help_and_version)
{
    char err[2048];
    cr_assert_eq(run("help", err, sizeof err), 0);
    cr_assert_eq(run("version", err, sizeof err), 0);
}

/* `tallyd help` names every setting docs/operations.md documents (its "| `TALLY_…` |" rows). */
Test(cli, help_names_every_documented_setting)
{
    char cmd[1024], help[8192], row[512];
    size_t n;
    int seen = 0;
    FILE *f;

    snprintf(cmd, sizeof cmd, "%s help", bin());
    f = popen(cmd, "r");
    n = fread(help, 1, sizeof help - 1, f);
    help[n] = '\0';
    cr_assert_eq(pclose(f), 0);
    f = fopen(TALLY_SOURCE_DIR "/docs/operations.md", "r");
    cr_assert(f);
    while (fgets(row, sizeof row, f)) {
        char name[64];
        if (sscanf(row, "| `%63[A-Z_]` |", name) != 1 || strncmp(name, "TALLY_", 6) != 0)
            continue;
        cr_assert(strstr(help, name), "'tallyd help' does not mention %s", name);
        seen++;
    }
    fclose(f);
    cr_assert_geq(seen, 20, "only %d settings found in docs/operations.md", seen);
}

Test(cli, missing_or_invalid_configuration_is_one_clear_line)
{
    char err[2048];
    cr_assert_eq(run("serve", err, sizeof err), 2);
    cr_assert(strstr(err, "TALLY_DATABASE_URL is not set"), "%s", err);
    cr_assert_eq(lines(err), 1, "one line: %s", err);
    cr_assert_eq(run("serve --database-url x --threads 0", err, sizeof err), 2);
    cr_assert(strstr(err, "--threads: must be an integer between 1 and 256"), "%s", err);
    cr_assert_eq(lines(err), 1);
    cr_assert_eq(run("serve --database-url x --signing-key /nonexistent --key-hash-secret /x", err,
                     sizeof err),
                 2);
    cr_assert(strstr(err, "/nonexistent"), "%s", err);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert_eq(run_env("TALLY_SCHEDULER_TIMEOUT_MS=5", "serve", err, sizeof err), 2);
    cr_assert(strstr(err, "TALLY_SCHEDULER_TIMEOUT_MS: an integer from 10 to 60000, not '5'"), "%s",
              err);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert_eq(run_env("TALLY_SCHEDULER_TIMEOUT_MS=1s", "serve", err, sizeof err), 2);
    cr_assert_eq(run_env("TALLY_SCHEDULER_URL=ftp://x", "serve", err, sizeof err), 2);
    cr_assert(strstr(err, "TALLY_SCHEDULER_URL: an http:// URL"), "%s", err);
    cr_assert_eq(run("migrate --database-url 'host=/nonexistent-dir dbname=x'", err, sizeof err),
                 1);
    cr_assert(strstr(err, "cannot connect to the database"), "%s", err);
}

Test(cli, keygen_writes_0600_and_refuses_to_overwrite)
{
    char dir[] = "/tmp/tally-keygen-XXXXXX", args[512], err[2048];
    struct stat st;
    cr_assert(mkdtemp(dir));
    snprintf(args, sizeof args, "keygen --out %s/k", dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    snprintf(args, sizeof args, "%s/k", dir);
    cr_assert_eq(stat(args, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    snprintf(args, sizeof args, "keygen --out %s/k", dir);
    cr_assert_eq(run(args, err, sizeof err), 1);
    cr_assert(strstr(err, "refusing to overwrite"), "%s", err);
    snprintf(args, sizeof args, "keygen --hash-secret --out %s/h", dir);
    cr_assert_eq(run(args, err, sizeof err), 0, "%s", err);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    cr_assert_eq(system(args), 0);
}
