#!/bin/sh
# Container entrypoint for tallyd.
#
#   (no arguments) or "serve": make the keys if absent, apply migrations, then serve.
#   anything else: run "tallyd ARGS..." (e.g. "admin create-account --name ops --role admin").
#
# Keys: TALLY_SIGNING_KEY and TALLY_KEY_HASH_SECRET point into the volume mounted at
# /var/lib/tally/keys. If a file is missing it is generated once here, which suits a
# trial run. In production mount the real key files (read-only, e.g. Docker secrets)
# and point the two variables at them: a lost hash secret invalidates every API key,
# and a lost signing key leaves the ledger's signatures unverifiable by a new key.
#
# Migrations run on every start (TALLY_MIGRATE_ON_START=0 skips them); they are retried
# for a while because the database may still be starting even after its healthcheck.
set -eu

if [ "$#" -eq 0 ]; then set -- serve; fi
if [ "$1" != serve ]; then exec tallyd "$@"; fi
shift

: "${TALLY_SIGNING_KEY:?TALLY_SIGNING_KEY must be set}"
: "${TALLY_KEY_HASH_SECRET:?TALLY_KEY_HASH_SECRET must be set}"

umask 077
if [ ! -s "$TALLY_SIGNING_KEY" ]; then
    echo "entrypoint: no signing key at $TALLY_SIGNING_KEY, generating one (mount a real key in production)" >&2
    tallyd keygen --out "$TALLY_SIGNING_KEY"
fi
if [ ! -s "$TALLY_KEY_HASH_SECRET" ]; then
    echo "entrypoint: no API-key hash secret at $TALLY_KEY_HASH_SECRET, generating one (mount a real secret in production)" >&2
    tallyd keygen --hash-secret --out "$TALLY_KEY_HASH_SECRET"
fi

if [ "${TALLY_MIGRATE_ON_START:-1}" != 0 ]; then
    tries=${TALLY_MIGRATE_TRIES:-30}
    n=1
    until tallyd migrate; do
        if [ "$n" -ge "$tries" ]; then
            echo "entrypoint: tallyd migrate failed $n times, giving up" >&2
            exit 1
        fi
        echo "entrypoint: tallyd migrate failed (attempt $n/$tries), retrying in 2 s" >&2
        n=$((n + 1))
        sleep 2
    done
fi

exec tallyd serve "$@"
