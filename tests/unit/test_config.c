/* Unit tests for server/config.c: defaults, environment, flags, errors. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

static const char *env_none(const char *name)
{
    (void)name;
    return NULL;
}

static const char *env_table_vals[][2] = {
    {"TALLY_DATABASE_URL", "host=/tmp dbname=x"},
    {"TALLY_LISTEN", "0.0.0.0:9000"},
    {"TALLY_THREADS", "3"},
    {"TALLY_MAX_BODY_BYTES", "4096"},
    {"TALLY_ACCESS_LOG", "off"},
};

static const char *env_table(const char *name)
{
    for (size_t i = 0; i < sizeof env_table_vals / sizeof env_table_vals[0]; i++)
        if (!strcmp(env_table_vals[i][0], name))
            return env_table_vals[i][1];
    return NULL;
}

static const char *bad_value;
static const char *bad_name;
static const char *env_bad(const char *name)
{
    return !strcmp(name, bad_name) ? bad_value : NULL;
}

Test(config, defaults)
{
    tally_config c;
    config_defaults(&c);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_eq(c.listen_port, 8080);
    cr_assert_gt(c.threads, 0);
    cr_assert_eq(c.max_body_bytes, 1 << 20);
    cr_assert_eq(c.access_log, 1);
    cr_assert_str_eq(c.database_url, "");
}

Test(config, environment_overrides_defaults)
{
    tally_config c;
    char err[256];
    config_defaults(&c);
    cr_assert_eq(config_from_env(&c, env_table, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(c.database_url, "host=/tmp dbname=x");
    cr_assert_str_eq(c.listen_host, "0.0.0.0");
    cr_assert_eq(c.listen_port, 9000);
    cr_assert_eq(c.threads, 3);
    cr_assert_eq(c.max_body_bytes, 4096);
    cr_assert_eq(c.access_log, 0);
}

Test(config, flags_override_environment_and_leave_the_rest)
{
    tally_config c;
    char err[256];
    char *argv[] = {"serve", "--threads", "5", "--listen=127.0.0.1:0", "--name", "x", "pos"};
    int rest[7], nrest;
    config_defaults(&c);
    config_from_env(&c, env_table, err, sizeof err);
    cr_assert_eq(config_from_flags(&c, 7, argv, rest, &nrest, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.threads, 5);
    cr_assert_eq(c.listen_port, 0);
    cr_assert_eq(nrest, 4); /* serve, --name, x, pos */
    cr_assert_str_eq(argv[rest[1]], "--name");
}

Test(config, bad_values_give_one_clear_line)
{
    static const char *cases[][3] = {
        {"TALLY_THREADS", "0", "TALLY_THREADS: must be an integer between 1 and 256, got '0'"},
        {"TALLY_THREADS", "two", "TALLY_THREADS: must be an integer between 1 and 256, got 'two'"},
        {"TALLY_LISTEN", "8080", "TALLY_LISTEN: expected HOST:PORT with port 0-65535, got '8080'"},
        {"TALLY_LISTEN", "h:70000",
         "TALLY_LISTEN: expected HOST:PORT with port 0-65535, got 'h:70000'"},
        {"TALLY_MAX_BODY_BYTES", "12",
         "TALLY_MAX_BODY_BYTES: must be an integer between 1024 and "
         "1073741824, got '12'"},
        {"TALLY_ACCESS_LOG", "maybe",
         "TALLY_ACCESS_LOG: expected 1/0, true/false or on/off, got "
         "'maybe'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tally_config c;
        char err[256] = "";
        config_defaults(&c);
        bad_name = cases[i][0];
        bad_value = cases[i][1];
        cr_assert_eq(config_from_env(&c, env_bad, err, sizeof err), -1);
        cr_assert_str_eq(err, cases[i][2]);
        cr_assert_null(strchr(err, '\n'));
    }
}

Test(config, missing_flag_value)
{
    tally_config c;
    char err[256];
    char *argv[] = {"serve", "--threads"};
    int rest[2], nrest;
    config_defaults(&c);
    cr_assert_eq(config_from_flags(&c, 2, argv, rest, &nrest, err, sizeof err), -1);
    cr_assert_str_eq(err, "--threads: missing value");
}

Test(config, check_names_the_missing_setting)
{
    tally_config c;
    char err[256];
    config_defaults(&c);
    config_from_env(&c, env_none, err, sizeof err);
    cr_assert_eq(config_check(&c, CFG_NEED_DB, err, sizeof err), -1);
    cr_assert(strstr(err, "TALLY_DATABASE_URL is not set"));
    strcpy(c.database_url, "x");
    cr_assert_eq(config_check(&c, CFG_NEED_DB, err, sizeof err), 0);
    cr_assert_eq(config_check(&c, CFG_NEED_SIGNING_KEY, err, sizeof err), -1);
    cr_assert(strstr(err, "TALLY_SIGNING_KEY"));
}

Test(config, listen_parsing)
{
    char host[64];
    int port;
    cr_assert_eq(config_parse_listen("[::1]:8080", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 8080);
    cr_assert_eq(config_parse_listen("::1:8080", host, sizeof host, &port), -1);
    cr_assert_eq(config_parse_listen(":80", host, sizeof host, &port), -1);
    cr_assert_eq(config_parse_listen("h:", host, sizeof host, &port), -1);
    cr_assert_eq(config_parse_listen("h:-1", host, sizeof host, &port), -1);
}
