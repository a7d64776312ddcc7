/*
 * The API contract and its reference page list every route the service has:
 * schema/openapi.yaml (path key at two spaces, method at four) and docs/api.md
 * (a "### `METHOD /path`" heading per route). Fails when a route is added to
 * server/routes.c without documenting it.
 */
#include "router.h"
#include "server.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *rel)
{
    char path[1024], *buf = NULL;
    size_t len = 0;
    FILE *in, *out;
    int ch;

    snprintf(path, sizeof path, "%s/%s", TALLY_SOURCE_DIR, rel);
    in = fopen(path, "r");
    cr_assert(in, "cannot open %s", path);
    out = open_memstream(&buf, &len);
    while ((ch = fgetc(in)) != EOF)
        fputc(ch, out);
    fclose(in);
    fclose(out);
    return buf;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

Test(api_docs, openapi_yaml_has_every_route)
{
    char *yaml = slurp("schema/openapi.yaml");
    for (size_t i = 0; i < tally_routes_count; i++) {
        char key[512], method[32];
        const char *p, *end;
        snprintf(key, sizeof key, "\n  %s:\n", tally_routes[i].pattern);
        p = strstr(yaml, key);
        cr_assert(p, "schema/openapi.yaml lacks path %s", tally_routes[i].pattern);
        p += strlen(key) - 1;
        end = p;
        while ((end = strchr(end + 1, '\n')) && !strncmp(end + 1, "   ", 3))
            ;
        snprintf(method, sizeof method, "\n    %s:", router_method_name(tally_routes[i].method));
        lower(method);
        p = strstr(p, method);
        cr_assert(p && (!end || p < end), "schema/openapi.yaml lacks %s under %s", method + 5,
                  tally_routes[i].pattern);
    }
    free(yaml);
}

Test(api_docs, api_md_has_every_route)
{
    char *md = slurp("docs/api.md");
    for (size_t i = 0; i < tally_routes_count; i++) {
        char heading[512];
        snprintf(heading, sizeof heading, "### `%s %s`", router_method_name(tally_routes[i].method),
                 tally_routes[i].pattern);
        cr_assert(strstr(md, heading), "docs/api.md lacks a section \"%s\"", heading);
    }
    free(md);
}
