/*
 * keyfile.c - create and load the service's signing key and hashing secret.
 * Invariant: secret bytes are written only to files created 0600 with O_EXCL,
 * and wiped from memory buffers after use.
 */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void keyfile_kid(const unsigned char pk[crypto_sign_PUBLICKEYBYTES], char out[24])
{
    unsigned char h[32];
    char hex[17];

    crypto_generichash(h, sizeof h, pk, crypto_sign_PUBLICKEYBYTES, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, 8);
    snprintf(out, 24, "sk_%s", hex);
}

static int write_new(const char *path, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t n = strlen(text);

    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (refusing to overwrite a key)" : "");
        return -1;
    }
    if (fchmod(fd, 0600) != 0 || write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

int keyfile_write_signing(const char *path, signing_key *out, char *err, size_t errlen)
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    char seedhex[2 * crypto_sign_SEEDBYTES + 1], pkhex[2 * crypto_sign_PUBLICKEYBYTES + 1];
    char when[32], *text;
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    randombytes_buf(seed, sizeof seed);
    crypto_sign_seed_keypair(out->pk, out->sk, seed);
    keyfile_kid(out->pk, out->kid);
    sodium_bin2hex(seedhex, sizeof seedhex, seed, sizeof seed);
    sodium_bin2hex(pkhex, sizeof pkhex, out->pk, sizeof out->pk);
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "alg", "Ed25519", "kid", out->kid,
                                "public_key", pkhex, "seed", seedhex, "created_at", when);
        text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(doc);
    }
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(seedhex, sizeof seedhex);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = write_new(path, text, err, errlen);
    sodium_memzero(text, strlen(text));
    free(text);
    return rc;
}

int keyfile_write_secret(const char *path, char *err, size_t errlen)
{
    unsigned char secret[APIKEY_SECRET_LEN];
    char text[2 * APIKEY_SECRET_LEN + 2];
    int rc;

    randombytes_buf(secret, sizeof secret);
    sodium_bin2hex(text, sizeof text, secret, sizeof secret);
    strcat(text, "\n");
    rc = write_new(path, text, err, errlen);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(text, sizeof text);
    return rc;
}

static int read_small(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (n == len - 1) {
        snprintf(err, errlen, "%s: file too large to be a key", path);
        return -1;
    }
    return 0;
}

static int hex_field(json_t *doc, const char *name, unsigned char *out, size_t outlen)
{
    const char *s = json_string_value(json_object_get(doc, name));
    size_t got = 0;

    if (!s || strlen(s) != outlen * 2)
        return -1;
    return sodium_hex2bin(out, outlen, s, strlen(s), NULL, &got, NULL) == 0 && got == outlen ? 0
                                                                                             : -1;
}

int keyfile_load_signing(const char *path, signing_key *out, char *err, size_t errlen)
{
    char buf[4096];
    unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    json_t *doc;
    int rc = -1;

    if (read_small(path, buf, sizeof buf, err, errlen) != 0)
        return -1;
    doc = json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
    sodium_memzero(buf, sizeof buf);
    if (!doc || hex_field(doc, "seed", seed, sizeof seed) != 0 ||
        hex_field(doc, "public_key", pk, sizeof pk) != 0) {
        snprintf(err, errlen,
                 "%s: not a tally signing key (expected JSON with hex 'seed' and "
                 "'public_key'; make one with 'tallyd keygen --out PATH')",
                 path);
        goto out;
    }
    crypto_sign_seed_keypair(out->pk, out->sk, seed);
    if (sodium_memcmp(out->pk, pk, sizeof pk) != 0) {
        snprintf(err, errlen, "%s: public_key does not match seed", path);
        goto out;
    }
    keyfile_kid(out->pk, out->kid);
    rc = 0;
out:
    sodium_memzero(seed, sizeof seed);
    json_decref(doc);
    return rc;
}

int keyfile_load_secret(const char *path, unsigned char out[APIKEY_SECRET_LEN], char *err,
                        size_t errlen)
{
    char buf[256];
    size_t got = 0, n;

    if (read_small(path, buf, sizeof buf, err, errlen) != 0)
        return -1;
    n = strcspn(buf, "\r\n");
    if (n != 2 * APIKEY_SECRET_LEN ||
        sodium_hex2bin(out, APIKEY_SECRET_LEN, buf, n, NULL, &got, NULL) != 0 ||
        got != APIKEY_SECRET_LEN) {
        sodium_memzero(buf, sizeof buf);
        snprintf(err, errlen,
                 "%s: expected 64 hex characters (make one with 'tallyd keygen --hash-secret "
                 "--out PATH')",
                 path);
        return -1;
    }
    sodium_memzero(buf, sizeof buf);
    return 0;
}
