#!/usr/bin/env bash
# Resolution benchmark: GET /v1/resolve/{identifier} against the trivial evhttp
# baseline, in the same run (goal: resolve >= 0.6 x baseline).
#
#   bash bench/resolve_bench.sh
#
# Builds Release (unless SKIP_BUILD=1), starts a throwaway PostgreSQL cluster,
# migrates, imports the catalog, creates a provider with a registered Ed25519 key
# (openssl), OFFERS published offers (each challenge signed with openssl) and a
# tenant, starts tallyd and bench-baseline with the same number of threads, and
# drives each with wrk (keep-alive), in turn, ROUNDS times:
#
#   baseline        GET /                                    bench-baseline
#   resolve         GET /v1/resolve/eu-west-1/bench/pod-1    tallyd, tenant key, full identifier
#   resolve_prefix  GET /v1/resolve/eu-west-1/bench          tallyd, tenant key, prefix (OFFERS children)
#   placement       POST /v1/placements                      tallyd, tenant key, ranks all OFFERS offers
#
# Each figure is the target's median round; the ratio is to the baseline's median
# round of the same run. Prints the share of CPU other processes took per round.
#
# Environment (all optional): THREADS=2 DURATION=10 CONNS=64 WRK_THREADS=2 WARMUP=2
# ROUNDS=3 OFFERS=20 BUILD_DIR=build SKIP_BUILD=1 LOG_DIR=.tally/resolve-bench
# ACCESS_LOG=1 PG_DIR=.tally/resolve-bench-pg
#
# Exit status: 0 when every run completed without errors, 1 when a run had
# non-2xx responses or socket errors, 2 on a set-up failure.
set -Eeuo pipefail
trap 'echo "bench: command failed (line $LINENO, status $?): $BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib.sh
. bench/lib.sh

THREADS=${THREADS:-2}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
OFFERS=${OFFERS:-20}
ACCESS_LOG=${ACCESS_LOG:-1}
BUILD_DIR=${BUILD_DIR:-build}
LOG_DIR=${LOG_DIR:-.tally/resolve-bench}
PG_DIR=${PG_DIR:-.tally/resolve-bench-pg}

for v in THREADS DURATION CONNS WRK_THREADS WARMUP ROUNDS OFFERS ACCESS_LOG; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
[ "$THREADS" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$ROUNDS" -ge 1 ] && [ "$OFFERS" -ge 1 ] \
    || die "THREADS, DURATION, ROUNDS and OFFERS must be >= 1"

TMP="" BASE_PID="" SRV_PID="" PG_STARTED=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$SRV_PID"
    stop_pid "$BASE_PID"
    if [ "$PG_STARTED" = 1 ]; then scripts/pg.sh destroy "$PG_DIR" >/dev/null 2>&1 || true; fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build --------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    TALLY_DEPS_BENCH=1 scripts/deps.sh
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTALLY_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target tallyd bench-baseline >/dev/null
fi
TALLYD=$ROOT/$BUILD_DIR/bin/tallyd
BASELINE=$ROOT/$BUILD_DIR/bin/bench-baseline
[[ $BUILD_DIR = /* ]] && TALLYD=$BUILD_DIR/bin/tallyd && BASELINE=$BUILD_DIR/bin/bench-baseline
[ -x "$TALLYD" ] && [ -x "$BASELINE" ] || die "tallyd / bench-baseline not in $BUILD_DIR (build first)"
for c in wrk curl jq openssl; do command -v "$c" >/dev/null || die "$c not found"; done
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$TALLYD")/../CMakeCache.txt" 2>/dev/null || true)

TMP=$(mktemp -d /tmp/tally-resolve-bench.XXXXXX)
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# --- database, keys, accounts ---------------------------------------------------------
scripts/pg.sh destroy "$PG_DIR" >/dev/null 2>&1 || true
PG_STARTED=1
scripts/pg.sh start "$PG_DIR" >/dev/null
export TALLY_DATABASE_URL
TALLY_DATABASE_URL=$(scripts/pg.sh url "$PG_DIR")
export TALLY_SIGNING_KEY=$TMP/signing.key TALLY_KEY_HASH_SECRET=$TMP/key-hash.secret
"$TALLYD" keygen --out "$TALLY_SIGNING_KEY" >/dev/null
"$TALLYD" keygen --hash-secret --out "$TALLY_KEY_HASH_SECRET" >/dev/null
"$TALLYD" migrate >"$LOG_DIR/migrate.log" 2>&1 || die "tallyd migrate failed (see $LOG_DIR/migrate.log)"
"$TALLYD" catalog import >>"$LOG_DIR/migrate.log" 2>&1 || die "tallyd catalog import failed"
account() { "$TALLYD" admin create-account --name "$1" --role "$2" 2>>"$LOG_DIR/admin.log" | jq -r .api_key; }
PROVIDER_KEY=$(account bench-provider provider)
TENANT_KEY=$(account bench-tenant tenant)
[ -n "$PROVIDER_KEY" ] && [ -n "$TENANT_KEY" ] || die "cannot create accounts"

# --- servers ---------------------------------------------------------------------------
"$BASELINE" --host 127.0.0.1 --port 0 --threads "$THREADS" 2>"$LOG_DIR/baseline.log" &
BASE_PID=$!
PORT=$(free_port)
# The offers' endpoints (TEST-NET addresses) never answer; 100 probe failures before
# "down" keeps them placeable for the whole run, so placements rank every offer.
TALLY_LISTEN="127.0.0.1:$PORT" TALLY_THREADS="$THREADS" TALLY_ACCESS_LOG="$ACCESS_LOG" \
    TALLY_PROBE_FAILURES=100 "$TALLYD" serve 2>"$LOG_DIR/tallyd.log" >/dev/null &
SRV_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
    kill -0 "$SRV_PID" 2>/dev/null || die "tallyd died (see $LOG_DIR/tallyd.log)"
    sleep 0.1
done
for _ in $(seq 1 100); do
    grep -q 'listening on' "$LOG_DIR/baseline.log" 2>/dev/null && break
    sleep 0.05
done
BASE_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$LOG_DIR/baseline.log" | head -n 1)
[ -n "$BASE_PORT" ] || die "bench-baseline did not start"
API=http://127.0.0.1:$PORT

# --- a provider key, a policy and OFFERS published offers (challenges signed with openssl) ---
api() {  # api METHOD PATH KEY [BODY]: prints the body, dies on a status >= 400
    local out code
    out=$TMP/resp
    code=$(curl -sS -o "$out" -w '%{http_code}' --max-time 10 -X "$1" "$API$2" \
        -H "Authorization: Bearer $3" ${4:+-H 'Content-Type: application/json' -d "$4"})
    [ "$code" -lt 400 ] || { cat "$out" >&2; die "$1 $2 answered $code"; }
    cat "$out"
}
openssl genpkey -algorithm ed25519 -out "$TMP/provider.pem" 2>/dev/null
PUB=$(openssl pkey -in "$TMP/provider.pem" -pubout -outform DER | tail -c 32 | base64)
KEY_ID=$(api POST /v1/provider-keys "$PROVIDER_KEY" "{\"public_key\":\"$PUB\"}" | jq -r .id)
POLICY_ID=$(api POST /v1/pricing/policies "$PROVIDER_KEY" \
    '{"name":"bench","document":{"currency":"USD","rules":[{"id":"b","kind":"base","match":{"device_class":"gpu"},"per_cu":"0.002","per_device_hour":"0.50"}]}}' \
    | jq -r .id)
for i in $(seq 1 "$OFFERS"); do
    offer=$(api POST /v1/offers "$PROVIDER_KEY" \
        "{\"identifier\":\"eu-west-1/bench/pod-$i\",\"device\":\"nvidia-h100-sxm\",\"devices_per_node\":8,\"nodes\":4,\"zone\":\"a\",\"endpoint\":\"192.0.2.$((i % 250 + 1)):443\",\"policy_id\":\"$POLICY_ID\",\"residency\":[\"eu\"]}")
    printf '%s' "$(jq -r .challenge_message <<<"$offer")" >"$TMP/msg"
    sig=$(openssl pkeyutl -sign -inkey "$TMP/provider.pem" -rawin -in "$TMP/msg" | od -An -v -tx1 | tr -d ' \n')
    api POST "/v1/offers/$(jq -r .id <<<"$offer")/publish" "$PROVIDER_KEY" \
        "{\"key_id\":\"$KEY_ID\",\"signature\":\"$sig\"}" >/dev/null
done
RESOLVE_URL=$API/v1/resolve/eu-west-1/bench/pod-1
PREFIX_URL=$API/v1/resolve/eu-west-1/bench
AUTH="Authorization: Bearer $TENANT_KEY"
curl -fsS --max-time 5 -H "$AUTH" "$RESOLVE_URL" >"$LOG_DIR/resolve.body" || die "resolve failed"
jq -e '.kind == "offer" and .capacity.free_devices == 32' "$LOG_DIR/resolve.body" >/dev/null \
    || die "unexpected resolution: $(cat "$LOG_DIR/resolve.body")"
curl -fsS --max-time 5 -H "$AUTH" "$PREFIX_URL" >"$LOG_DIR/resolve_prefix.body"
jq -e ".offers == $OFFERS" "$LOG_DIR/resolve_prefix.body" >/dev/null || die "unexpected prefix listing"

# --- load --------------------------------------------------------------------------------
cpu_ticks() { sed -n 's/^cpu  //p' /proc/stat | awk '{t = 0; for (i = 1; i <= NF; i++) t += $i; print t - $4 - $5, t}'; }
our_ticks() {
    local pm p f
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || echo 0)
    {
        for p in "$SRV_PID" "$BASE_PID"; do sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true; done
        sed 's/^.*) //' "/proc/$$/stat" | awk '{print $14 + $15}' || true
        for f in /proc/[0-9]*/stat; do sed 's/^.*) //' "$f" 2>/dev/null || true; done | awk -v pm="$pm" '$2 == pm {print $12 + $13}' || true
    } | awk '{s += $1} END {print s + 0}'
}
declare -A RPS P50 P99 ERRS FOREIGN
run_wrk() {  # run_wrk NAME ROUND URL [wrk args...]
    local name=$1 round=$2 url=$3 k=$1,$2 out c0 o0 c1 o1; shift 3
    out=$LOG_DIR/$name.round$round.txt
    [ "$WARMUP" -gt 0 ] && { wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$@" "$url" >/dev/null 2>&1 || true; }
    echo "bench: round $round/$ROUNDS $name: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency $url" >&2
    c0=$(cpu_ticks); o0=$(our_ticks)
    wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$out" 2>&1 || die "wrk failed for $name"
    c1=$(cpu_ticks); o1=$(our_ticks)
    FOREIGN[$k]=$(awk -v c0="$c0" -v c1="$c1" -v o0="$o0" -v o1="$o1" 'BEGIN {
        split(c0, a, " "); split(c1, b, " "); f = (b[1] - a[1]) - (o1 - o0); t = b[2] - a[2]
        if (f < 0) f = 0; printf "%.0f", (t > 0 ? 100 * f / t : 0) }')
    RPS[$k]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    P50[$k]=$(awk '$1 == "50%" {print $2}' "$out")
    P99[$k]=$(awk '$1 == "99%" {print $2}' "$out")
    ERRS[$k]=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); n += $2} /Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$out")
    [ -n "${RPS[$k]}" ] || die "cannot parse wrk output for $name"
}
# POST /v1/placements: rank all OFFERS offers for an 8-GPU job (dry run, nothing reserved)
PLACE_BODY='{"device":"nvidia-h100-sxm","count":8,"profile":"llm-train","wall_ms":3600000,"constraints":{"regions":["eu-west-1"],"data_region":"eu-central-1"}}'
curl -fsS --max-time 10 -H "$AUTH" -H 'Content-Type: application/json' -d "$PLACE_BODY" \
    "$API/v1/placements" >"$LOG_DIR/placement.body" || die "placement failed"
jq -e ".ranked | length == $OFFERS" "$LOG_DIR/placement.body" >/dev/null \
    || die "unexpected placement: $(head -c 600 "$LOG_DIR/placement.body")"
cat >"$TMP/placement.lua" <<LUA
wrk.method = "POST"
wrk.body = '$PLACE_BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TENANT_KEY"
LUA
TARGETS=(baseline resolve resolve_prefix placement)
for round in $(seq 1 "$ROUNDS"); do
    run_wrk baseline "$round" "http://127.0.0.1:$BASE_PORT/"
    run_wrk resolve "$round" "$RESOLVE_URL" -H "$AUTH"
    run_wrk resolve_prefix "$round" "$PREFIX_URL" -H "$AUTH"
    run_wrk placement "$round" "$API/v1/placements" -s "$TMP/placement.lua"
done

# --- report ---------------------------------------------------------------------------------
status=0
declare -A MED MEDR
for n in "${TARGETS[@]}"; do
    MEDR[$n]=$(for r in $(seq 1 "$ROUNDS"); do echo "${RPS[$n,$r]} $r"; done | sort -g | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')
    MED[$n]=${RPS[$n,${MEDR[$n]}]}
done
echo
echo "resolve benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, build ${BUILD_TYPE:-?}, THREADS=$THREADS CONNS=$CONNS DURATION=${DURATION}s ROUNDS=$ROUNDS OFFERS=$OFFERS ACCESS_LOG=$ACCESS_LOG"
printf '%-16s %12s %8s %9s %9s   %s\n' target "req/s (med)" ratio p50 p99 "per round: req/s (foreign CPU %) x ratio to that round's baseline"
for n in "${TARGETS[@]}"; do
    ratio=$(awk -v a="${MED[$n]}" -v b="${MED[baseline]}" 'BEGIN {printf "%.2f", a / b}')
    rounds=""
    errs=0
    for r in $(seq 1 "$ROUNDS"); do
        rounds+=$(awk -v a="${RPS[$n,$r]}" -v b="${RPS[baseline,$r]}" -v f="${FOREIGN[$n,$r]}" 'BEGIN {printf "%.0f (%s%%) x%.2f  ", a, f, a / b}')
        errs=$((errs + ${ERRS[$n,$r]}))
    done
    printf '%-16s %12.0f %8s %9s %9s   %s\n' "$n" "${MED[$n]}" "$ratio" "${P50[$n,${MEDR[$n]}]}" "${P99[$n,${MEDR[$n]}]}" "$rounds"
    [ "$errs" -eq 0 ] || { echo "bench: $n had $errs errors" >&2; status=1; }
done
ratio=$(awk -v a="${MED[resolve]}" -v b="${MED[baseline]}" 'BEGIN {printf "%.2f", a / b}')
paired=$(for r in $(seq 1 "$ROUNDS"); do awk -v a="${RPS[resolve,$r]}" -v b="${RPS[baseline,$r]}" 'BEGIN {printf "%.4f\n", a / b}'; done \
    | sort -g | awk '{a[NR] = $1} END {printf "%.2f", a[int((NR + 1) / 2)]}')
echo "goal: resolve >= 0.60 x baseline: $ratio (medians), $paired (median of per-round ratios)" \
    "$(awk -v r="$ratio" 'BEGIN {print (r >= 0.6 ? "(met)" : "(NOT met)")}')"
exit "$status"
