#!/usr/bin/env bash
# Usage ingestion throughput beside its limits, all measured in this run:
#   1. libsodium Ed25519 verifications per second on one core (each record is verified)
#   2. rows per second inserted 100 per durable commit into a usage-shaped table
#   3. accepted signed usage records per second over HTTP: CONNECTIONS providers'
#      connections posting batches of 100 records, each to its own order
# Usage: bench/market_bench.sh BUILD_DIR PG_DIR [SECONDS] [CONNECTIONS]
# PG_DIR is a cluster started with scripts/pg.sh start (durable: fsync on).
set -euo pipefail
build=${1:?usage: market_bench.sh BUILD_DIR PG_DIR [SECONDS] [CONNECTIONS]}
pgdir=${2:?PG_DIR}
secs=${3:-10}; conns=${4:-4}
pg="host=$(readlink -f "$pgdir")/run port=${TALLY_PG_PORT:-5432} user=tally"
db=market_bench_$$
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; psql "$pg dbname=tally" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
psql "$pg dbname=tally" -qc "CREATE DATABASE $db"
export TALLY_DATABASE_URL="$pg dbname=$db" TALLY_SIGNING_KEY=$work/sk TALLY_KEY_HASH_SECRET=$work/hs
T=$build/bin/tallyd
$T keygen --out "$work/sk" >/dev/null
$T keygen --hash-secret --out "$work/hs" >/dev/null
$T migrate 2>/dev/null
$T catalog import >/dev/null 2>&1 || true
key=$($T admin create-account --name bench-admin --role admin | sed -n 's/.*"api_key": "\(tly_[^"]*\)".*/\1/p')

"$build/bin/bench-market" verify 2
"$build/bin/bench-market" insert "$pg dbname=$db" "$secs" "$conns"

port=$((20000 + $$ % 20000))
# tallyd gets none of this script's other descriptors: run as `flock LOCKFILE bash
# bench/market_bench.sh`, a tallyd left behind (the script killed) would otherwise keep the
# benchmark lock held. The cluster is the caller's (started before, outside the lock).
TALLY_LISTEN=127.0.0.1:$port TALLY_ACCESS_LOG=0 TALLY_DB_POOL_SIZE=${POOL:-6} ${PERF_WRAP:-} $T serve \
    2>"$work/serve.log" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
sleep 1.5 # the catalog and offer caches load on the first janitor ticks
# CPU time (user + system, clock ticks) of the cluster's processes and of tallyd, read from
# /proc around the usage run, so each record's cost is split by process (other load on the
# machine does not count). The postmaster's pid is the first line of postmaster.pid.
ticks() { for p in "$@"; do [ -r /proc/$p/stat ] && sed 's/^.*) //' /proc/$p/stat | awk '{print $12 + $13}'; done | awk '{s += $1} END {print s + 0}'; }
pm=$(head -n 1 "$(readlink -f "$pgdir")/data/postmaster.pid" 2>/dev/null || true)
pgpids() { [ -n "$pm" ] && echo "$pm" $(ps -o pid= --ppid "$pm"); }
pg0=$(ticks $(pgpids)); td0=$(ticks $pid)
rc=0
out=$("$build/bin/bench-market" usage "http://127.0.0.1:$port" "$key" "$conns" "$secs") || rc=$?
pg1=$(ticks $(pgpids)); td1=$(ticks $pid)
echo "$out"
acc=$(echo "$out" | sed -n 's/.*"accepted":\([0-9]*\).*/\1/p')
sec=$(echo "$out" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
hz=$(getconf CLK_TCK)
awk -v a="${acc:-0}" -v hz="$hz" -v pg=$((pg1 - pg0)) -v td=$((td1 - td0)) -v w="${sec:-1}" 'BEGIN {
    if (a > 0) printf "{\"bench\":\"usage_cpu\",\"records\":%d,\"seconds\":%.1f,\"tallyd_us_per_record\":%.1f,\"postgres_us_per_record\":%.1f,\"tallyd_cores\":%.2f,\"postgres_cores\":%.2f}\n", a, w, td * 1e6 / hz / a, pg * 1e6 / hz / a, td / hz / w, pg / hz / w }'
exit $rc
