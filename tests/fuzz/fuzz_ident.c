/*
 * libFuzzer harness: the identifier grammar (market/ident.c) and offer
 * endpoints (market/endpoint.c) on arbitrary bytes. Checks the invariants as
 * well as memory safety: an accepted identifier is canonical (re-parses to
 * itself, only [a-z0-9-/], at most 191 bytes) and lies under its region; an
 * accepted endpoint's canonical text re-parses to itself.
 */
#include "endpoint.h"
#include "ident.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_canonical(const market_ident *id)
{
    market_ident again;
    size_t n = strlen(id->text);

    if (n == 0 || n > IDENT_MAX_LEN || id->nlabels < 1 || id->nlabels > IDENT_MAX_LABELS)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!((id->text[i] >= 'a' && id->text[i] <= 'z') ||
              (id->text[i] >= '0' && id->text[i] <= '9') || id->text[i] == '-' ||
              id->text[i] == '/'))
            abort();
    if (ident_parse(id->text, n, &again, NULL) != IDENT_OK || strcmp(again.text, id->text) != 0 ||
        again.nlabels != id->nlabels)
        abort();
    for (int i = 0; i < id->nlabels; i++)
        if (!ident_label_valid(id->label[i], strlen(id->label[i])))
            abort();
    if (id->nlabels == IDENT_MAX_LABELS &&
        (!ident_under(id->text, id->label[0]) || ident_under(id->text, id->text)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    market_ident id;
    size_t pos = 0;
    char *s = malloc(size + 1);

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (ident_parse(s, size, &id, &pos) == IDENT_OK)
        check_canonical(&id);
    else if (pos > size || id.nlabels != 0)
        abort();
    if (ident_parse_full(s, size, &id, &pos) == IDENT_OK && id.nlabels != IDENT_MAX_LABELS)
        abort();
    (void)ident_under(s, "eu/acme");
    {
        market_endpoint ep, again;
        char err[160];
        if (endpoint_parse(s, &ep, err, sizeof err) == 0 &&
            (endpoint_parse(ep.text, &again, err, sizeof err) != 0 ||
             strcmp(again.text, ep.text) != 0 || again.port != ep.port || ep.port < 1))
            abort();
    }
    free(s);
    return 0;
}
