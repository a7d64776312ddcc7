/* libFuzzer harness: id and API-key validation on arbitrary strings. */
#include "apikey.h"
#include "auth.h"
#include "ids.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    memcpy(s, data, size);
    s[size] = '\0';
    (void)ids_valid(s, "acc");
    (void)ids_valid(s, "key");
    (void)apikey_well_formed(s);
    (void)auth_bearer_token(s);
    free(s);
    return 0;
}
