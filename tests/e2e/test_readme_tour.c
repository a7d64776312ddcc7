/*
 * End-to-end: the README's five-minute tour (scripts/tour.sh, the same steps
 * as the README, run non-interactively) against a real tallyd, so the README
 * cannot drift from the service unnoticed. The script creates its own
 * accounts, policies, provider key and offer with the admin key, signs the
 * offer challenge and the usage with openssl, and ends with `tallyd verify`.
 */
#include "testdb.h"
#include "testhttp.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static char ci[1024];
static tallyd_proc srv;

static void setup(void)
{
    testdb_create(ci, sizeof ci);
    tallyd_start(&srv, ci, NULL);
}

static void teardown(void)
{
    tallyd_stop(&srv);
    testdb_drop(ci);
}

TestSuite(readme_tour, .init = setup, .fini = teardown, .timeout = 180);

Test(readme_tour, every_step_answers_as_the_readme_says)
{
    const char *t = getenv("TALLY_TEST_TALLYD");
    char line[4096], out[8192];
    size_t n;
    FILE *f;
    int st;

    snprintf(line, sizeof line,
             "cd '%s' && TALLY_ADMIN_KEY='%s' TALLY_DATABASE_URL='%s' TALLY_TALLYD='%s' "
             "bash scripts/tour.sh '%s' 2>&1 | tail -c 4000",
             TALLY_SOURCE_DIR, srv.admin_key, ci, t && *t ? t : TALLY_BINARY_DIR "/bin/tallyd",
             srv.base);
    f = popen(line, "r");
    cr_assert(f);
    n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    st = pclose(f);
    cr_assert(WIFEXITED(st), "%s", out);
    cr_assert(strstr(out, "tour: every step answered as the README says"), "%s", out);
}
