#!/usr/bin/env bash
# `make run`: install what is missing, build, start the local database, migrate,
# create the demo accounts (keys printed once), and serve on 127.0.0.1:8080 in
# the foreground. Ctrl-C stops the service; `make stop` stops the database.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/deps.sh
echo "tally: building" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target tallyd >/dev/null

echo "tally: starting the local PostgreSQL cluster in .tally/pg" >&2
bash scripts/pg.sh start .tally/pg

mkdir -p .tally/keys
chmod 700 .tally/keys
[ -f .tally/keys/signing.key ] || build/bin/tallyd keygen --out .tally/keys/signing.key >/dev/null
[ -f .tally/keys/hash.secret ] || build/bin/tallyd keygen --hash-secret --out .tally/keys/hash.secret >/dev/null

export TALLY_DATABASE_URL="${TALLY_DATABASE_URL:-$(bash scripts/pg.sh url .tally/pg)}"
export TALLY_SIGNING_KEY="${TALLY_SIGNING_KEY:-$root/.tally/keys/signing.key}"
export TALLY_KEY_HASH_SECRET="${TALLY_KEY_HASH_SECRET:-$root/.tally/keys/hash.secret}"
export TALLY_LISTEN="${TALLY_LISTEN:-127.0.0.1:8080}"

build/bin/tallyd migrate
build/bin/tallyd catalog import   # the shipped device catalog (a no-op when present)

# Demo accounts: created on the first run only; their keys are shown this once.
for acct in demo-admin:admin demo-tenant:tenant demo-provider:provider demo-finance:finance; do
    name=${acct%%:*} role=${acct##*:}
    out=$(build/bin/tallyd admin create-account --name "$name" --role "$role" --once)
    key=$(printf '%s\n' "$out" | sed -n 's/.*"api_key": "\(tly_[^"]*\)".*/\1/p')
    id=$(printf '%s\n' "$out" | sed -n 's/.*"id": "\(acc_[^"]*\)".*/\1/p')
    if [ -n "$key" ]; then
        echo "tally: created $role account $name ($id); API key (shown once): $key"
    else
        echo "tally: $role account $name ($id) exists; its key was printed when it was created"
    fi
done

echo "tally: serving on http://$TALLY_LISTEN (Ctrl-C to stop; 'make stop' stops the database)" >&2
exec build/bin/tallyd serve
