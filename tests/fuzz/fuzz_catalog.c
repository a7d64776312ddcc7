/* libFuzzer harness: the device catalog parser on arbitrary JSON text. */
#include "catalog.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cat_error err;
    cat_catalog *c = cat_parse((const char *)data, size, &err);

    if (c) {
        for (size_t i = 0; i < cat_device_count(c); i++)
            (void)cat_find(c, cat_device_id(cat_device_at(c, i)));
        cat_free(c);
    }
    return 0;
}
