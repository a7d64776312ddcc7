/* libFuzzer harness: a provider's usage record — JSON text through usage_rec_parse
 * (fields, canonical bytes, hash) and signature verification with a fixed key. */
#include "usage_rec.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char pk[32] = {1, 2, 3};
    static const char sig[] = "00000000000000000000000000000000000000000000000000000000000000"
                              "000000000000000000000000000000000000000000000000000000000000000000";
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    usage_rec r;
    char err[200];

    if (!j)
        return 0;
    if (usage_rec_parse(j, &r, err, sizeof err) == USAGE_OK) {
        if (strlen(r.canonical) != r.canonical_len || strlen(r.hash_hex) != 64)
            __builtin_trap();
        (void)usage_rec_verify(&r, pk, sig);
    }
    usage_rec_clear(&r);
    json_decref(j);
    return 0;
}
