/* libFuzzer harness: route matching on arbitrary paths and methods. */
#include "router.h"
#include "server.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const route *r;
    route_params p;
    char allow[128];
    char *path;

    if (size < 1)
        return 0;
    path = malloc(size);
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    router_match(tally_routes, tally_routes_count, 1 << (data[0] % 8), path, &r, &p, allow,
                 sizeof allow);
    free(path);
    return 0;
}
