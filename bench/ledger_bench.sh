#!/usr/bin/env bash
# Ledger write throughput beside its limits, all measured in this run:
#   1. pgbench: one small durable transaction per commit, 8 clients (the commit-rate limit)
#   2. libsodium Ed25519 signatures per second (the signing limit)
#   3. single-transfer HTTP requests per second from many connections (group commit),
#      from curl threads and (3b) from wrk with bench/ledger_bench.lua
#   4. transfers per second through the batch executor (BATCH per transaction,
#      THREADS executors at once)
#   5. the database's ceiling for the same rows: binary COPY of BATCH transactions
#      and their entries per commit, no signing, no ledger logic (THREADS at once)
# Usage: bench/ledger_bench.sh BUILD_DIR PG_DIR [SECONDS] [CONNECTIONS] [BATCH] [THREADS] [TENANTS]
# PG_DIR is a cluster started with scripts/pg.sh start (durable: fsync on).
set -euo pipefail
build=${1:?usage: ledger_bench.sh BUILD_DIR PG_DIR [SECONDS] [CONNECTIONS] [BATCH]}
pgdir=${2:?PG_DIR}
secs=${3:-10}; conns=${4:-64}; batch=${5:-256}; threads=${6:-2}; tenants=${7:-8}
here=$(cd "$(dirname "$0")" && pwd)
pg="host=$(readlink -f "$pgdir")/run port=${TALLY_PG_PORT:-5432} user=tally"
db=ledger_bench_$$
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; psql "$pg dbname=tally" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
psql "$pg dbname=tally" -qc "CREATE DATABASE $db"
export TALLY_DATABASE_URL="$pg dbname=$db" TALLY_SIGNING_KEY=$work/sk TALLY_KEY_HASH_SECRET=$work/hs
T=$build/bin/tallyd
$T keygen --out "$work/sk" >/dev/null
$T keygen --hash-secret --out "$work/hs" >/dev/null
$T migrate 2>/dev/null
key=$($T admin create-account --name bench-admin --role admin | sed -n 's/.*"api_key": "\(tly_[^"]*\)".*/\1/p')
ts=()
for i in $(seq $((tenants > 2 * threads ? tenants : 2 * threads))); do
    ts+=("$($T admin create-account --name "t$i" --role tenant | sed -n 's/.*"id": "\(acc_[^"]*\)".*/\1/p')")
done

# 1. pgbench: one small durable insert per transaction, 8 clients
psql "$pg dbname=$db" -qc "CREATE TABLE pgb (id bigserial PRIMARY KEY, v int)"
echo 'INSERT INTO pgb (v) VALUES (1);' > "$work/one.sql"
pgb=$(pgbench -n -c 8 -j 2 -T "$secs" -f "$work/one.sql" "$pg dbname=$db" 2>/dev/null |
      sed -n 's/^tps = \([0-9.]*\).*/\1/p')
echo "{\"bench\":\"pgbench_single_commit\",\"clients\":8,\"per_s\":${pgb%.*}}"

# 2. signing
"$build/bin/bench-ledger" sign 2

# 3. HTTP single transfers
port=$((20000 + $$ % 20000))
TALLY_LISTEN=127.0.0.1:$port TALLY_ACCESS_LOG=0 TALLY_DB_POOL_SIZE=8 $T serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
dep() { curl -s -XPOST "http://127.0.0.1:$port/v1/ledger/deposits" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' -d "{\"tenant_id\":\"$1\",\"currency\":\"USD\",\"amount\":\"1000000\"}" |
        sed -n 's/.*"entries":\[{"account":"\(la_[^"]*\)".*/\1/p'; }
ws=""
for t in "${ts[@]:0:$tenants}"; do ws="$ws${ws:+,}$(dep "$t")"; done
"$build/bin/bench-ledger" http "http://127.0.0.1:$port" "$key" "$ws" "$conns" "$secs"
# 3b. the same requests from wrk (a much lighter client than 64 curl threads)
if command -v wrk >/dev/null; then
    LEDGER_KEY=$key LEDGER_WALLETS=$ws wrk -t2 -c"$conns" -d"${secs}s" -s "$here/ledger_bench.lua" \
        "http://127.0.0.1:$port" >"$work/wrk.out" 2>&1 || true
    awk -v c="$conns" '
        /requests in/ { req = $1; t = $4; sub(/s,?$/, "", t) }
        /Non-2xx/     { bad = $5 }
        END { if (t > 0) printf "{\"bench\":\"http_single_transfer_wrk\",\"connections\":%d,\"ok\":%d,\"failed\":%d,\"per_s\":%.0f}\n", c, req - bad, bad, (req - bad) / t }' "$work/wrk.out"
fi
kill -TERM $pid; wait $pid || true
$T verify

# 4. the batch executor
"$build/bin/bench-ledger" batch "$TALLY_DATABASE_URL" "$batch" "$secs" 1
"$build/bin/bench-ledger" batch "$TALLY_DATABASE_URL" "$batch" "$secs" "$threads"
$T verify

# 5. the database's ceiling for the same rows
"$build/bin/bench-ledger" copy "$TALLY_DATABASE_URL" "$batch" "$secs" 1
"$build/bin/bench-ledger" copy "$TALLY_DATABASE_URL" "$batch" "$secs" "$threads"
