/* libFuzzer harness: configuration values from the environment and HOST:PORT parsing. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char value[4096];
static const char *names[] = {"TALLY_LISTEN", "TALLY_THREADS", "TALLY_MAX_BODY_BYTES",
                              "TALLY_ACCESS_LOG", "TALLY_DATABASE_URL"};
static const char *target;

static const char *get(const char *name)
{
    return !strcmp(name, target) ? value : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tally_config c;
    char err[256], host[256];
    int port;

    if (size < 1 || size >= sizeof value)
        return 0;
    memcpy(value, data + 1, size - 1);
    value[size - 1] = '\0';
    target = names[data[0] % 5];
    config_defaults(&c);
    config_from_env(&c, get, err, sizeof err);
    config_parse_listen(value, host, sizeof host, &port);
    return 0;
}
