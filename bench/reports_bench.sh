#!/usr/bin/env bash
# Reports benchmark: rows per second of a streamed CSV usage report over ROWS
# (1 000 000) usage records, with tallyd's peak memory above idle beside it,
# and the same query exported by psql's \copy in the same run as the baseline.
#
#   bash bench/reports_bench.sh
#
# The usage records are a BENCHMARK FIXTURE written with SQL straight into
# usage_records (with the offers, orders and policy rows they join to), not
# made through the API: ingesting a million signed records over HTTP is what
# bench/market_bench.sh measures; here only reading them back counts. Each
# record carries its line items (usage, the provider's fee) like
# a rated record: every record charges 0.075 USD; one in ten gets there with a
# discount line (0.080 - 0.005), the others with a plain usage line, so the
# report computes discounts from jsonb as it would in production.
#
# Targets, in turn, ROUNDS times (each figure is the median round):
#   record        GET /v1/reports/usage?group_by=record&format=csv  one CSV line per record
#   day           GET /v1/reports/usage?group_by=day&format=csv     ROWS records summed per UTC day
#   copy_record   psql \copy (the record query) TO '/dev/null' CSV  baseline for record
#   copy_day      psql \copy (the day query) TO '/dev/null' CSV     baseline for day
#   copy_record_old, copy_day_old: the same for the queries before migration 0011
#                 (discounts from the jsonb line items per report), for the record
# Rows per second = records read / wall time of the whole reply. Beside each
# tallyd figure: time to the first byte, and tallyd's peak RSS during the
# reply minus its RSS when idle before it (sampled every 20 ms from
# /proc/PID/status, and VmHWM at the end).
#
# Environment (all optional): ROWS=1000000 ROUNDS=3 THREADS=2 BUILD_DIR=build
# SKIP_BUILD=1 PG_DIR=.tally/reports-bench-pg LOG_DIR=.tally/reports-bench
# KEEP_PG=1 (keep the cluster and its fixture for the next run with REUSE=1).
#
# Goals (issue 8): >= 200 000 rows/s for the CSV report; peak memory flat,
# < 64 MiB above idle. Exit status 0 when every reply was complete (200, the
# right number of lines), 1 otherwise, 2 on a set-up failure.
set -Eeuo pipefail
trap 'echo "bench: command failed (line $LINENO, status $?): $BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
BUILD_DIR=${BUILD_DIR:-build}
PG_DIR=${PG_DIR:-.tally/reports-bench-pg}
LOG_DIR=${LOG_DIR:-.tally/reports-bench}

for v in ROWS ROUNDS THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "$v must be a positive integer, got '${!v}'"
done

TMP="" SRV_PID="" PG_STARTED=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$SRV_PID"
    if [ "$PG_STARTED" = 1 ] && [ "${KEEP_PG:-0}" != 1 ]; then
        scripts/pg.sh destroy "$PG_DIR" >/dev/null 2>&1 || true
    fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ----------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTALLY_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target tallyd >/dev/null
fi
TALLYD=$ROOT/$BUILD_DIR/bin/tallyd
[[ $BUILD_DIR = /* ]] && TALLYD=$BUILD_DIR/bin/tallyd
[ -x "$TALLYD" ] || die "tallyd not in $BUILD_DIR (build first)"
for c in curl jq psql; do command -v "$c" >/dev/null || die "$c not found"; done
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$TALLYD")/../CMakeCache.txt" 2>/dev/null || true)

TMP=$(mktemp -d /tmp/tally-reports-bench.XXXXXX)
mkdir -p "$LOG_DIR"

# --- database, keys, accounts, fixture ---------------------------------------------------
[ "${REUSE:-0}" = 1 ] || scripts/pg.sh destroy "$PG_DIR" >/dev/null 2>&1 || true
PG_STARTED=1
# Started without this script's inherited descriptors above 2: under
# `flock LOCK bash bench/...` one of them holds the lock, and a server kept
# with KEEP_PG=1 would hold it (and block every other benchmark) until stopped.
(
    for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
    exec scripts/pg.sh start "$PG_DIR" >/dev/null
)
export TALLY_DATABASE_URL
TALLY_DATABASE_URL=$(scripts/pg.sh url "$PG_DIR")
export TALLY_SIGNING_KEY=$TMP/signing.key TALLY_KEY_HASH_SECRET=$TMP/key-hash.secret
"$TALLYD" keygen --out "$TALLY_SIGNING_KEY" >/dev/null
"$TALLYD" keygen --hash-secret --out "$TALLY_KEY_HASH_SECRET" >/dev/null
"$TALLYD" migrate >"$LOG_DIR/migrate.log" 2>&1 || die "tallyd migrate failed (see $LOG_DIR/migrate.log)"
account() { "$TALLYD" admin create-account --name "$1" --role "$2" 2>>"$LOG_DIR/admin.log"; }
FIN_KEY=$(account "bench-finance-$$" finance | jq -r .api_key)
[ -n "$FIN_KEY" ] || die "cannot create the finance account"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$TALLY_DATABASE_URL")
have=$("${PSQL[@]}" -tAc "SELECT count(*) FROM usage_records")
[ "$have" = 0 ] || [ "$have" = "$ROWS" ] || die "$PG_DIR holds $have usage records, not $ROWS: run without REUSE=1"
if [ "$have" != "$ROWS" ]; then
    echo "bench: writing the fixture: $ROWS usage records by SQL (not through the API)" >&2
    PROV=$(account bench-provider provider | jq -r .id)
    TENANTS=()
    for i in 1 2 3 4; do TENANTS+=("$(account "bench-tenant-$i" tenant | jq -r .id)"); done
    t0=$(date +%s.%N)
    "${PSQL[@]}" -v prov="$PROV" -v t1="${TENANTS[0]}" -v t2="${TENANTS[1]}" -v t3="${TENANTS[2]}" \
        -v t4="${TENANTS[3]}" -v rows="$ROWS" >"$LOG_DIR/fixture.log" 2>&1 <<'SQL' || die "fixture failed (see $LOG_DIR/fixture.log)"
BEGIN;
INSERT INTO pricing_policies (id, owner_id, scope, name)
VALUES ('pol_00000000000000000000000001', :'prov', 'provider', 'bench') ON CONFLICT DO NOTHING;
INSERT INTO offers (id, provider_id, identifier, region, zone, name, device_id, devices_per_node,
                    nodes, endpoint, policy_id, available_from, state, challenge)
SELECT 'off_0' || lpad(upper(to_hex(g)), 25, '0'), :'prov',
       r || '/bench/pod-' || g, r, 'a', 'pod ' || g, 'nvidia-h100-sxm', 8, 4, '192.0.2.1:443',
       'pol_00000000000000000000000001', now() - interval '60 days', 'withdrawn', repeat('0', 64)
FROM generate_series(1, 4) g, LATERAL (SELECT CASE WHEN g % 2 = 0 THEN 'eu-west-1' ELSE 'us-east-1' END AS r) x;
INSERT INTO orders (id, tenant_id, offer_id, provider_id, device_id, count, profile, profile_class,
                    work_mcu, p50_ms, p90_ms, start_at, end_at, policy_id, policy_version, currency,
                    priced_micros, hold_micros, state, placement, request_hash, request)
SELECT 'ord_0' || lpad(upper(to_hex(g)), 25, '0'), (ARRAY[:'t1', :'t2', :'t3', :'t4'])[1 + g % 4],
       'off_0' || lpad(upper(to_hex(1 + g % 4)), 25, '0'), :'prov', 'nvidia-h100-sxm', 8, '{}',
       'llm', 0, 1, 1, now() - interval '40 days', now(), 'pol_00000000000000000000000001', 1,
       'USD', 0, 0, 'completed', '{}', 'bench', '{}'
FROM generate_series(1, 100) g;
INSERT INTO usage_records (id, provider_id, record_id, order_id, device_id, count, start_at, end_at,
                           start_ms, end_ms, work_mcu, mcu, device_ms, currency, amount_micros,
                           fee_micros, period, billed_period, lines, key_id, signature, canonical,
                           record_hash, batch_id, settlement_id)
SELECT 'use_0' || lpad(upper(to_hex(g)), 25, '0'), :'prov', 'rec-' || g,
       'ord_0' || lpad(upper(to_hex(1 + g % 100)), 25, '0'), 'nvidia-h100-sxm', 8, t,
       t + interval '10 s', ms, ms + 10000, NULL, 31661, 80000, 'USD', 75000, 4000,
       to_char(t AT TIME ZONE 'UTC', 'YYYY-MM'), to_char(t AT TIME ZONE 'UTC', 'YYYY-MM'),
       CASE WHEN g % 10 = 0 THEN
       '[{"kind":"usage","rule_id":"base","rule_kind":"base","quantity":80000,"unit":"device_ms","unit_price":1,"amount":80000,"payer":"tenant"},{"kind":"discount","rule_id":"d","rule_kind":"discount","quantity":80000,"unit":"money_ppm","unit_price":-62500,"amount":-5000,"payer":"tenant"},{"kind":"platform_fee","rule_id":"take","rule_kind":"platform_fee","quantity":80000,"unit":"money_ppm","unit_price":50000,"amount":4000,"payer":"provider"}]'
       ELSE
       '[{"kind":"usage","rule_id":"base","rule_kind":"base","quantity":75000,"unit":"device_ms","unit_price":1,"amount":75000,"payer":"tenant"},{"kind":"platform_fee","rule_id":"take","rule_kind":"platform_fee","quantity":75000,"unit":"money_ppm","unit_price":50000,"amount":4000,"payer":"provider"}]'
       END::jsonb,
       'pk_bench', decode(repeat('0', 128), 'hex'), '{}', decode(repeat('0', 64), 'hex'), 'bat_bench', 'stl_bench'
FROM generate_series(1, :rows) g,
     LATERAL (SELECT date_trunc('day', now()) - interval '28 days' + g * (interval '28 days' / :rows) AS t) x,
     LATERAL (SELECT (extract(epoch FROM t) * 1000)::bigint AS ms) y;
COMMIT;
VACUUM ANALYZE usage_records;
VACUUM ANALYZE orders;
VACUUM ANALYZE offers;
SQL
    echo "bench: fixture written in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s" >&2
fi

# --- tallyd ------------------------------------------------------------------------------
PORT=""
for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000)); port_in_use "$p" || { PORT=$p; break; }
done
[ -n "$PORT" ] || die "no free loopback port"
TALLY_LISTEN="127.0.0.1:$PORT" TALLY_THREADS="$THREADS" TALLY_ACCESS_LOG=1 \
    "$TALLYD" serve 2>"$LOG_DIR/tallyd.log" >/dev/null &
SRV_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
    kill -0 "$SRV_PID" 2>/dev/null || die "tallyd died (see $LOG_DIR/tallyd.log)"
    sleep 0.1
done
API=http://127.0.0.1:$PORT
AUTH="Authorization: Bearer $FIN_KEY"
# warm up the key cache, the connections and the prepared statements
curl -fsS -o /dev/null -H "$AUTH" "$API/v1/reports/usage?group_by=provider&to=2000-01-01T00:00:00Z" \
    || die "a warm-up report failed"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SRV_PID/status" 2>/dev/null || echo 0; }

# The server's two queries (server/reports_usage.c) with its parameters bound:
# the whole time range, no tenant or provider filter. The server runs them as
# COPY (...) TO STDOUT (FORMAT binary) and formats the cells itself; psql's
# \copy ... CSV formats them in PostgreSQL (plain integers, not decimals).
NDISC="CASE WHEN u.reverses IS NULL THEN u.discount_micros ELSE -coalesce((SELECT v.discount_micros FROM usage_records v WHERE v.provider_id = u.provider_id AND v.record_id = u.reverses), 0) END"
RANGE="u.start_at >= '-infinity'::timestamptz AND u.start_at < 'infinity'::timestamptz"
RECORD_SQL="SELECT u.id, u.record_id, u.provider_id, o.tenant_id, u.order_id, o.offer_id, f.region, u.device_id, u.count::bigint, u.start_ms, u.end_ms, u.currency, u.mcu, u.device_ms, u.amount_micros - d.disc, d.disc, u.amount_micros, u.fee_micros, u.amount_micros - u.fee_micros, u.period, u.billed_period, u.reverses FROM usage_records u JOIN orders o ON o.id = u.order_id JOIN offers f ON f.id = o.offer_id CROSS JOIN LATERAL (SELECT $NDISC AS disc) d WHERE $RANGE ORDER BY u.id"
DAY_SQL="SELECT to_char(a.k, 'YYYY-MM-DD'), a.currency, sum(a.n)::bigint, sum(a.mcu)::bigint, sum(a.dms)::bigint, (sum(a.amt) - sum(a.disc))::bigint, sum(a.disc)::bigint, sum(a.amt)::bigint, sum(a.fee)::bigint, (sum(a.amt) - sum(a.fee))::bigint FROM (SELECT u.order_id, (u.start_at AT TIME ZONE 'UTC')::date AS k, u.currency, count(*) AS n, sum(u.mcu) AS mcu, sum(u.device_ms) AS dms, sum(u.amount_micros) AS amt, sum($NDISC) AS disc, sum(u.fee_micros) AS fee FROM usage_records u WHERE $RANGE GROUP BY 1, 2, 3) a JOIN orders o ON o.id = a.order_id JOIN offers f ON f.id = o.offer_id GROUP BY 1, 2 ORDER BY 1, 2"
# The queries before migration 0011 (discounts from the jsonb line items).
DISC="CASE WHEN u.reverses IS NULL THEN CASE WHEN jsonb_path_exists(u.lines, '\$[*] ? (@.payer == \"tenant\" && @.amount < 0)') THEN (SELECT coalesce(sum((l->>'amount')::bigint), 0) FROM jsonb_array_elements(u.lines) l WHERE l->>'payer' = 'tenant' AND (l->>'amount')::bigint < 0) ELSE 0 END ELSE -(SELECT coalesce(sum((l->>'amount')::bigint), 0) FROM usage_records v CROSS JOIN LATERAL jsonb_array_elements(v.lines) l WHERE v.provider_id = u.provider_id AND v.record_id = u.reverses AND l->>'payer' = 'tenant' AND (l->>'amount')::bigint < 0) END"
RECORD_SQL_OLD="SELECT u.id, u.record_id, u.provider_id, o.tenant_id, u.order_id, o.offer_id, f.region, u.device_id, u.count, u.start_ms, u.end_ms, u.currency, u.mcu, u.device_ms, u.amount_micros - d.disc, d.disc, u.amount_micros, u.fee_micros, u.amount_micros - u.fee_micros, u.period, u.billed_period, u.reverses FROM usage_records u JOIN orders o ON o.id = u.order_id JOIN offers f ON f.id = o.offer_id CROSS JOIN LATERAL (SELECT $DISC AS disc) d WHERE $RANGE ORDER BY u.id"
DAY_SQL_OLD="SELECT a.k, a.currency, sum(a.n)::bigint, sum(a.mcu)::bigint, sum(a.dms)::bigint, (sum(a.amt) - sum(a.disc))::bigint, sum(a.disc)::bigint, sum(a.amt)::bigint, sum(a.fee)::bigint, (sum(a.amt) - sum(a.fee))::bigint FROM (SELECT u.order_id, to_char(u.start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS k, u.currency, count(*) AS n, sum(u.mcu) AS mcu, sum(u.device_ms) AS dms, sum(u.amount_micros) AS amt, sum($DISC) AS disc, sum(u.fee_micros) AS fee FROM usage_records u WHERE $RANGE GROUP BY 1, 2, 3) a JOIN orders o ON o.id = a.order_id JOIN offers f ON f.id = o.offer_id GROUP BY 1, 2 ORDER BY 1, 2"
# The same session settings as a report's transaction (server/reports_stream.c).
export PGOPTIONS="-c jit=off -c work_mem=64MB"

declare -A RATE TTFB PEAK
BAD=0
now() { date +%s.%N; }
# run_report NAME GROUP ROUND: one streamed CSV reply, lines counted as they arrive
run_report() {
    local name=$1 group=$2 round=$3 k=$1,$3 idle t0 t1 lines sampler peak meta
    idle=$(rss_kib)
    ( trap - ERR; peak=0; while kill -0 "$SRV_PID" 2>/dev/null; do
          r=$(rss_kib); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$TMP/peak"
          sleep 0.02; done ) &
    sampler=$!
    echo "$idle" >"$TMP/peak"
    echo "bench: round $round/$ROUNDS $name: curl -H 'Authorization: Bearer …' '$API/v1/reports/usage?group_by=$group&format=csv'" >&2
    t0=$(now)
    lines=$(curl -sS -H "$AUTH" -w '%{stderr}%{http_code} %{time_starttransfer}\n' \
        "$API/v1/reports/usage?group_by=$group&format=csv" 2>"$TMP/meta" | wc -l)
    t1=$(now)
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    meta=$(tail -n 1 "$TMP/meta")
    peak=$(cat "$TMP/peak")
    [ "${meta%% *}" = 200 ] || { echo "bench: $name answered ${meta%% *}" >&2; BAD=1; }
    if [ "$group" = record ] && [ "$lines" != $((ROWS + 1)) ]; then
        echo "bench: $name: $lines lines, expected $((ROWS + 1))" >&2; BAD=1
    fi
    RATE[$k]=$(awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
    TTFB[$k]=$(awk -v s="${meta#* }" 'BEGIN {printf "%.0f", s * 1000}')
    PEAK[$k]=$(( (peak - idle) / 1024 ))
}
run_copy() {
    local name=$1 sql=$2 round=$3 k=$1,$3 t0 t1
    echo "bench: round $round/$ROUNDS $name: psql -c \"\\copy ($name query) TO '/dev/null' CSV\"" >&2
    t0=$(now)
    "${PSQL[@]}" -c "\\copy ($sql) TO '/dev/null' CSV" || { echo "bench: $name failed" >&2; BAD=1; }
    t1=$(now)
    RATE[$k]=$(awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
}
IDLE_KIB=$(rss_kib)
for round in $(seq 1 "$ROUNDS"); do
    run_copy copy_record_old "$RECORD_SQL_OLD" "$round"
    run_copy copy_record "$RECORD_SQL" "$round"
    run_report record record "$round"
    run_copy copy_day_old "$DAY_SQL_OLD" "$round"
    run_copy copy_day "$DAY_SQL" "$round"
    run_report day day "$round"
done
HWM_KIB=$(awk '/^VmHWM:/ {print $2}' "/proc/$SRV_PID/status")

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
col() { local t=$1 arr=$2 r out=""; for r in $(seq 1 "$ROUNDS"); do eval "out+=\" \${$arr[$t,$r]}\""; done; echo "$out" | median; }
echo
echo "reports bench: $ROWS usage records (SQL fixture), $ROUNDS rounds, tallyd $THREADS threads, build ${BUILD_TYPE:-?}, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
printf '%-12s %14s %10s %12s %14s\n' target "rows/s" "vs copy" "first byte" "peak-idle MiB"
for t in record day; do
    b=$(col "copy_$t" RATE); v=$(col "$t" RATE)
    printf '%-12s %14s %10s %10s ms %14s\n' "$t" "$v" "$(awk -v a="$v" -v b="$b" 'BEGIN {printf "%.2f", a / b}')" "$(col "$t" TTFB)" "$(col "$t" PEAK)"
    printf '%-12s %14s\n' "copy_$t" "$b"
    printf '%-16s %10s   (the query before migration 0011; the server at %s x this)\n' "copy_${t}_old" "$(col "copy_${t}_old" RATE)" "$(awk -v a="$v" -v b="$(col "copy_${t}_old" RATE)" 'BEGIN {printf "%.2f", a / b}')"
done
echo "tallyd RSS idle $((IDLE_KIB / 1024)) MiB, VmHWM at the end $((HWM_KIB / 1024)) MiB ($(( (HWM_KIB - IDLE_KIB) / 1024 )) MiB above idle)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in record copy_record copy_record_old day copy_day copy_day_old; do
    line="$t:"; for r in $(seq 1 "$ROUNDS"); do line+=" ${RATE[$t,$r]}"; done; echo "  rounds $line rows/s"
done
[ "$BAD" = 0 ] || { echo "bench: SOME REPLIES WERE INCOMPLETE: figures invalid" >&2; exit 1; }
