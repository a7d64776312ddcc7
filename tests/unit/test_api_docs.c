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

/* The value of "key: value" (block or flow style) inside [p, end), copied to out; 0 if absent. */
static int yaml_value(const char *p, const char *end, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key), n;
    for (; p && p < end; p++) {
        if (strncmp(p, key, kl) != 0 || (p[-1] != ' ' && p[-1] != '{'))
            continue;
        p += kl;
        n = strcspn(p, ",}\n");
        if (p + n > end || n >= cap)
            return 0;
        memcpy(out, p, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

/* The end of the block that starts at line p: the first later line indented at most indent. */
static const char *block_end(const char *p, int indent)
{
    const char *nl = p;
    while ((nl = strchr(nl + 1, '\n'))) {
        int sp = (int)strspn(nl + 1, " ");
        if (nl[1 + sp] != '\n' && sp <= indent)
            return nl;
    }
    return p + strlen(p);
}

/* Every query parameter of one operation [op, end) as " a b c " (components resolved). */
static void operation_queries(const char *yaml, const char *op, const char *end, char *out,
                              size_t cap)
{
    const char *p = strstr(op, "\n      parameters:\n"), *plist_end, *item;
    snprintf(out, cap, " ");
    if (!p || p > end)
        return;
    plist_end = block_end(p + 1, 6);
    for (item = strstr(p, "\n        - "); item && item < plist_end;
         item = strstr(item + 1, "\n        - ")) {
        const char *iend = block_end(item + 1, 8), *from = item, *to = iend;
        char name[64], in[16], ref[128], key[160];
        if (yaml_value(item, iend, "$ref: '#/components/parameters/", ref, sizeof ref)) {
            ref[strcspn(ref, "'")] = '\0';
            snprintf(key, sizeof key, "\n    %s:\n", ref);
            from = strstr(strstr(yaml, "\ncomponents:\n"), key);
            cr_assert(from, "parameter %s is not in components", ref);
            to = block_end(from + 1, 4);
        }
        if (yaml_value(from, to, "name: ", name, sizeof name) &&
            yaml_value(from, to, "in: ", in, sizeof in) && !strcmp(in, "query")) {
            strncat(out, name, cap - strlen(out) - 2);
            strncat(out, " ", cap - strlen(out) - 1);
        }
    }
}

/* Each route accepts exactly the query parameters its operation documents: the service
 * refuses any other (422), so a documented one it lacks, or an undocumented one it takes,
 * is a bug on one side. */
Test(api_docs, query_parameters_match_openapi)
{
    char *yaml = slurp("schema/openapi.yaml");
    for (size_t i = 0; i < tally_routes_count; i++) {
        const route *r = &tally_routes[i];
        char key[512], method[32], doc[512], word[64];
        const char *path, *op, *w;
        snprintf(key, sizeof key, "\n  %s:\n", r->pattern);
        path = strstr(yaml, key);
        cr_assert(path, "schema/openapi.yaml lacks path %s", r->pattern);
        snprintf(method, sizeof method, "\n    %s:", router_method_name(r->method));
        lower(method);
        op = strstr(path + strlen(key) - 1, method);
        cr_assert(op, "no %s under %s", method + 5, r->pattern);
        operation_queries(yaml, op, block_end(op + 1, 4), doc, sizeof doc);
        for (w = doc + 1; *w; w += strlen(word) + 1) {
            sscanf(w, "%63s", word);
            cr_assert(router_query_allows(r, word), "%s %s documents query '%s' it does not take",
                      router_method_name(r->method), r->pattern, word);
        }
        for (w = r->query; w && *w; w += strspn(w, " ")) {
            size_t n = strcspn(w, " ");
            snprintf(word, sizeof word, " %.*s ", (int)n, w);
            cr_assert(strstr(doc, word), "%s %s takes query%s but schema/openapi.yaml lacks it",
                      router_method_name(r->method), r->pattern, word);
            w += n;
        }
    }
    free(yaml);
}
