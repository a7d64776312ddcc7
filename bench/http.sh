#!/usr/bin/env bash
# HTTP benchmark: tallyd against the trivial evhttp baseline, in the same run.
#
#   bash bench/http.sh
#
# Installs what is missing (including wrk), builds Release, starts a throwaway
# PostgreSQL cluster under .tally/bench-pg, generates keys, migrates, creates an admin
# account, starts tallyd and bench-baseline on free loopback ports with the same
# number of threads, and drives each with wrk (keep-alive):
#
#   baseline              GET /                  bench-baseline (trivial evhttp handler)
#   healthz               GET /healthz           tallyd, no auth, no database
#   account_read          GET /v1/accounts/{id}  tallyd, Bearer API key, database read
#   account_read_nocache  the same on a second tallyd with TALLY_AUTH_CACHE_MS=0
#   normalize      POST /v1/normalize       tallyd, Bearer key, CU from the in-memory catalog (goal 0.6)
#   quote          POST /v1/quotes          tallyd, tenant key: rate, sign, store a quote (goal 0.5)
#
# Targets run in turn, ROUNDS times; each figure is the target's median round. Then
# baseline, normalize and quote are driven again by bench-paced (bench/paced_load.c)
# at a fixed rate of half their measured maximum, and their p50/p99/p99.9 latency
# is reported (goal for quotes: p99 < 5 ms at that rate). It
# prints requests/s, the ratio to the baseline, p50/p99 latency, error counts, the
# goals (healthz >= 0.8 x baseline, authenticated read >= 0.4 x, normalize >= 0.6 x, quote >= 0.5 x) and, per
# round, the share of CPU that other processes took (a busy machine gives low
# figures). Everything it starts is stopped, and the cluster destroyed, when it exits.
#
# Environment (all optional):
#   THREADS=2        worker threads for tallyd (TALLY_THREADS) and bench-baseline
#   DURATION=10      seconds per measured wrk run
#   CONNS=64         wrk connections
#   WRK_THREADS=2    wrk threads
#   WARMUP=2         seconds of unmeasured wrk load before each measured run (0: none)
#   ROUNDS=3         rounds over all targets; each figure is the target's median round
#   BUILD_DIR=build  CMake build directory (configured Release, sanitizers off)
#   SKIP_BUILD=1     use the binaries already in BUILD_DIR (no deps install, no build)
#   LOG_DIR=.tally/bench-run   where tallyd's access log / stderr and wrk outputs are kept
#   PG_DIR=.tally/bench-pg     the throwaway PostgreSQL cluster (destroyed at exit)
#   ACCESS_LOG=1     tallyd's access log (TALLY_ACCESS_LOG); on, to a file, is the realistic setting
#   KEEP_LOGS=1      keep tallyd's whole logs (by default only non-request lines and the last 1000)
#   ONLY="normalize quote"   measure only these targets (the baseline is always measured)
#
# Exit status: 0 when every run completed without errors, 1 when any run had
# non-2xx responses or socket errors (or a server died), 2 on a set-up failure.
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
ACCESS_LOG=${ACCESS_LOG:-1}
ROUNDS=${ROUNDS:-3}
BUILD_DIR=${BUILD_DIR:-build}
LOG_DIR=${LOG_DIR:-.tally/bench-run}
PG_DIR=${PG_DIR:-.tally/bench-pg}

for v in THREADS DURATION CONNS WRK_THREADS WARMUP ACCESS_LOG ROUNDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer, got '${!v}'"
done
[ "$THREADS" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$CONNS" -ge 1 ] && [ "$WRK_THREADS" -ge 1 ] && [ "$ROUNDS" -ge 1 ] \
    || die "THREADS, DURATION, CONNS, WRK_THREADS and ROUNDS must be >= 1"

TMP=""
BASE_PID=""
PG_STARTED=0


cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for n in "${!SERVER_PID[@]}"; do stop_pid "${SERVER_PID[$n]}"; done   # "" when already stopped
    stop_pid "$BASE_PID"
    if [ "$PG_STARTED" = 1 ]; then scripts/pg.sh destroy "$PG_DIR" >/dev/null 2>&1 || true; fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- dependencies and build -------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    TALLY_DEPS_BENCH=1 scripts/deps.sh
    echo "bench: building Release into $BUILD_DIR" >&2
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTALLY_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target tallyd bench-baseline bench-paced >/dev/null
fi
TALLYD=$ROOT/$BUILD_DIR/bin/tallyd
BASELINE=$ROOT/$BUILD_DIR/bin/bench-baseline
PACED=$ROOT/$BUILD_DIR/bin/bench-paced
[[ $BUILD_DIR = /* ]] && TALLYD=$BUILD_DIR/bin/tallyd && BASELINE=$BUILD_DIR/bin/bench-baseline && PACED=$BUILD_DIR/bin/bench-paced
[ -x "$PACED" ] || die "$PACED not found (build first, or unset SKIP_BUILD)"
[ -x "$TALLYD" ] || die "$TALLYD not found (build first, or unset SKIP_BUILD)"
[ -x "$BASELINE" ] || die "$BASELINE not found (build first, or unset SKIP_BUILD)"
for c in wrk curl; do command -v "$c" >/dev/null || die "$c not found (run: TALLY_DEPS_BENCH=1 scripts/deps.sh)"; done
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$TALLYD")/../CMakeCache.txt" 2>/dev/null || true)
SANITIZE=$(sed -n 's/^TALLY_SANITIZE:[A-Z]*=//p' "$(dirname "$TALLYD")/../CMakeCache.txt" 2>/dev/null || true)
case "${SANITIZE:-OFF}" in ON|on|1|TRUE|true) echo "bench: WARNING: $BUILD_DIR is built with sanitizers; figures are not representative" >&2 ;; esac

TMP=$(mktemp -d /tmp/tally-bench.XXXXXX)
chmod 0700 "$TMP"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# --- database ---------------------------------------------------------------------
scripts/pg.sh destroy "$PG_DIR" >/dev/null 2>&1 || true   # leftovers of an interrupted run
PG_STARTED=1
# The cluster must not inherit this script's other descriptors: run under
# `flock LOCKFILE bash bench/http.sh`, a postmaster holding the lock file open
# would keep the benchmark lock held for as long as it runs.
scripts/pg.sh start "$PG_DIR" >/dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
export TALLY_DATABASE_URL
TALLY_DATABASE_URL=$(scripts/pg.sh url "$PG_DIR")

# --- keys, migrations, admin account -------------------------------------------------
export TALLY_SIGNING_KEY=$TMP/signing.key
export TALLY_KEY_HASH_SECRET=$TMP/key-hash.secret
"$TALLYD" keygen --out "$TALLY_SIGNING_KEY" >/dev/null
"$TALLYD" keygen --hash-secret --out "$TALLY_KEY_HASH_SECRET" >/dev/null
"$TALLYD" migrate >"$LOG_DIR/migrate.log" 2>&1 || { cat "$LOG_DIR/migrate.log" >&2; die "tallyd migrate failed"; }
"$TALLYD" catalog import >>"$LOG_DIR/migrate.log" 2>&1 || { cat "$LOG_DIR/migrate.log" >&2; die "tallyd catalog import failed"; }

acct_json=$("$TALLYD" admin create-account --name bench-admin --role admin 2>"$LOG_DIR/admin.log") \
    || { cat "$LOG_DIR/admin.log" >&2; die "tallyd admin create-account failed"; }
json_str() { printf '%s\n' "$acct_json" | grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/'; }
ACCOUNT_ID=$(json_str id)
API_KEY=$(json_str api_key)
[ -n "$ACCOUNT_ID" ] && [ -n "$API_KEY" ] || die "cannot parse account id / api_key from: $acct_json"
acct_json=$("$TALLYD" admin create-account --name bench-provider --role provider 2>>"$LOG_DIR/admin.log") || die "provider account"
PROVIDER_KEY=$(json_str api_key)
acct_json=$("$TALLYD" admin create-account --name bench-tenant --role tenant 2>>"$LOG_DIR/admin.log") || die "tenant account"
TENANT_KEY=$(json_str api_key)

# --- servers ------------------------------------------------------------------------

"$BASELINE" --host 127.0.0.1 --port 0 --threads "$THREADS" 2>"$LOG_DIR/baseline.log" &
BASE_PID=$!

# start_tallyd NAME [VAR=VALUE...]: start one tallyd with extra environment, wait until
# /readyz answers 200 (database reachable, migrations current); sets PORT_<NAME>.
declare -A SERVER_PID SERVER_PORT
start_tallyd() {
    local name=$1; shift
    local port pid log=$LOG_DIR/$name.log
    for _ in 1 2 3; do
        port=$(free_port) || exit 2
        env "$@" TALLY_LISTEN="127.0.0.1:$port" TALLY_THREADS="$THREADS" TALLY_ACCESS_LOG="$ACCESS_LOG" \
            "$TALLYD" serve 2>"$log" >/dev/null &
        pid=$!
        SERVER_PID[$name]=$pid
        for _ in $(seq 1 300); do
            if ! kill -0 "$pid" 2>/dev/null; then break; fi
            if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz" 2>/dev/null; then
                SERVER_PORT[$name]=$port
                return 0
            fi
            sleep 0.1
        done
        stop_pid "$pid"
        SERVER_PID[$name]=""
        grep -qi 'in use' "$log" 2>/dev/null || break   # only retry on a port race
    done
    tail -n 20 "$log" >&2 || true
    die "$name did not become ready (log: $log)"
}
# The configuration a deployment runs (auth cache on, its default), and the same with
# the API-key cache off so every request also verifies its key against PostgreSQL.
start_tallyd tallyd
start_tallyd tallyd_nocache TALLY_AUTH_CACHE_MS=0

for _ in $(seq 1 100); do
    grep -q 'listening on' "$LOG_DIR/baseline.log" 2>/dev/null && break
    kill -0 "$BASE_PID" 2>/dev/null || break
    sleep 0.05
done
BASE_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$LOG_DIR/baseline.log" | head -n 1)
[ -n "$BASE_PORT" ] || { cat "$LOG_DIR/baseline.log" >&2; die "bench-baseline did not start"; }

BASE_URL=http://127.0.0.1:$BASE_PORT/
HEALTH_URL=http://127.0.0.1:${SERVER_PORT[tallyd]}/healthz
ACCOUNT_URL=http://127.0.0.1:${SERVER_PORT[tallyd]}/v1/accounts/$ACCOUNT_ID
NOCACHE_URL=http://127.0.0.1:${SERVER_PORT[tallyd_nocache]}/v1/accounts/$ACCOUNT_ID
AUTH="Authorization: Bearer $API_KEY"
NORMALIZE_URL=http://127.0.0.1:${SERVER_PORT[tallyd]}/v1/normalize
QUOTE_URL=http://127.0.0.1:${SERVER_PORT[tallyd]}/v1/quotes

# A provider policy with a base rate, a time window and a free allowance, for quotes.
POLICY_ID=$(curl -sS --max-time 5 -X POST "http://127.0.0.1:${SERVER_PORT[tallyd]}/v1/pricing/policies" \
    -H "Authorization: Bearer $PROVIDER_KEY" -H 'Content-Type: application/json' \
    -d '{"name":"bench","document":{"currency":"USD","timezone":"Europe/Berlin","rules":[
        {"id":"base","kind":"base","match":{"device_class":"gpu"},"per_cu":"0.002","per_device_hour":"0.50"},
        {"id":"tod","kind":"time_window","windows":[{"name":"peak","days":["mon","tue","wed","thu","fri"],
         "start":"09:00","end":"18:00","multiplier_ppm":1500000}]},
        {"id":"free","kind":"allowance","unit":"cu","quantity":100000}]}}' \
    | grep -o '"id":"pol_[^"]*"' | head -n 1 | cut -d'"' -f4)
[ -n "$POLICY_ID" ] || die "cannot create the benchmark pricing policy"
NORMALIZE_BODY='{"device":"nvidia-h100-sxm","count":8,"profile":"llm-train","wall_ms":3600000}'
QUOTE_BODY="{\"policy_id\":\"$POLICY_ID\",\"device\":\"nvidia-h100-sxm\",\"count\":8,\"profile\":\"llm-train\",\"wall_ms\":3600000}"
post_script() {  # post_script FILE BODY: a wrk Lua script that POSTs BODY as JSON
    printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$2" >"$1"
}
post_script "$LOG_DIR/normalize.lua" "$NORMALIZE_BODY"
post_script "$LOG_DIR/quote.lua" "$QUOTE_BODY"

# Sanity: each target answers 200 before we measure it.
check() {
    local name=$1 url=$2; shift 2
    local code
    code=$(curl -sS -o "$LOG_DIR/$name.body" -w '%{http_code}' --max-time 5 "$@" "$url" || true)
    [ "$code" = 200 ] || { cat "$LOG_DIR/$name.body" >&2 2>/dev/null || true; die "$name: GET $url answered $code, expected 200"; }
}
check baseline "$BASE_URL"
check healthz "$HEALTH_URL"
check account_read "$ACCOUNT_URL" -H "$AUTH"
check account_read_nocache "$NOCACHE_URL" -H "$AUTH"
grep -q "\"$ACCOUNT_ID\"" "$LOG_DIR/account_read.body" || die "account_read: body does not contain $ACCOUNT_ID"
code=$(curl -sS -o "$LOG_DIR/normalize.body" -w '%{http_code}' --max-time 5 -H "$AUTH" -H 'Content-Type: application/json' -d "$NORMALIZE_BODY" "$NORMALIZE_URL" || true)
[ "$code" = 200 ] || { cat "$LOG_DIR/normalize.body" >&2; die "normalize answered $code"; }
code=$(curl -sS -o "$LOG_DIR/quote.body" -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TENANT_KEY" -H 'Content-Type: application/json' -d "$QUOTE_BODY" "$QUOTE_URL" || true)
[ "$code" = 201 ] || { cat "$LOG_DIR/quote.body" >&2; die "quote answered $code"; }

# --- load -----------------------------------------------------------------------------
# Everything here shares the machine's CPUs: a busy machine gives meaningless figures.
cpu_idle_pct() {  # share of CPU time idle over one second, from /proc/stat
    local a b
    a=$(sed -n 's/^cpu  //p' /proc/stat); sleep 1; b=$(sed -n 's/^cpu  //p' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); t = 0
        for (i = 1; i <= n; i++) t += y[i] - x[i]
        idle = (y[4] - x[4]) + (y[5] - x[5])
        printf "%.0f", (t > 0 ? 100 * idle / t : 0) }'
}
IDLE_BEFORE=$(cpu_idle_pct)
if [ "$IDLE_BEFORE" -lt 90 ]; then
    echo "bench: WARNING: the machine is busy before the run (only $IDLE_BEFORE% idle); figures will be low and noisy" >&2
fi
# Each round runs every target once, in turn, so slow drifts (other load, thermal,
# the database warming up) hit all of them alike; each target's figure is its median
# round, and the spread over rounds is printed beside it. Errors are summed over rounds.
#
# The machine may be shared: each measured run also records how much CPU time went to
# processes that are not part of this benchmark (FOREIGN, % of all CPU time), from
# /proc/stat minus the ticks of our servers, our database cluster and wrk.
ALL_TARGETS="baseline healthz account_read account_read_nocache normalize quote"
read -r -a TARGETS <<<"${ONLY:-$ALL_TARGETS}"
[ "${TARGETS[0]}" = baseline ] || TARGETS=(baseline "${TARGETS[@]}")   # every ratio needs it
for n in "${TARGETS[@]}"; do
    case " $ALL_TARGETS " in *" $n "*) ;; *) die "ONLY: unknown target '$n' (known: $ALL_TARGETS)" ;; esac
done
declare -A RPS P50 P99 NON2XX SOCKERR REQS ALL FOREIGN RRATIO CPU
PG_PIDFILE=$PG_DIR/data/postmaster.pid
[ -L "$PG_DIR/store" ] && PG_PIDFILE=$PG_DIR/store/data/postmaster.pid
cpu_ticks() {  # "busy total" over all CPUs, from /proc/stat
    sed -n 's/^cpu  //p' /proc/stat | awk '{t = 0; for (i = 1; i <= NF; i++) t += $i; print t - $4 - $5, t}'
}
srv_ticks() {  # CPU ticks used so far by our servers and database cluster (processes may vanish meanwhile)
    local pm p f
    pm=$(head -n 1 "$PG_PIDFILE" 2>/dev/null || echo 0)
    {
        for p in "${SERVER_PID[@]}" "$BASE_PID"; do sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true; done
        sed 's/^.*) //' "/proc/$pm/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}' || true
        for f in /proc/[0-9]*/stat; do sed 's/^.*) //' "$f" 2>/dev/null || true; done | awk -v pm="$pm" '$2 == pm {print $12 + $13}' || true
    } | awk '{s += $1} END {print s + 0}'
}
our_ticks() {  # CPU ticks used so far by this benchmark's processes, this script's children (wrk, curl) included
    echo $(( $(srv_ticks) + $(sed 's/^.*) //' "/proc/$$/stat" | awk '{print $14 + $15}') ))
}
# times_secs "AmB.BBBs CmD.DDDs" (a line of bash's `times`: user, system) -> their sum in seconds
times_secs() {
    awk -v t="$1" 'BEGIN { n = split(t, f, " "); s = 0
        for (i = 1; i <= n; i++) { split(f[i], a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] }
        printf "%.3f", s }'
}
run_wrk() {  # run_wrk NAME ROUND URL [wrk args...]
    local name=$1 round=$2 url=$3; shift 3
    local out=$LOG_DIR/$name.round$round.txt k=$name,$round
    if [ "$WARMUP" -gt 0 ]; then
        wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$@" "$url" >"$LOG_DIR/$name.round$round.warmup.txt" 2>&1 || true
    fi
    echo "bench: round $round/$ROUNDS $name: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency $url" >&2
    local c0 o0 c1 o1 s0 s1 wt
    c0=$(cpu_ticks); o0=$(our_ticks); s0=$(srv_ticks)
    # wrk in a subshell whose `times` reports wrk's own CPU time (user and system)
    wt=$( { wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$out" 2>&1 || echo "wrk failed" >"$out.failed"; times; } | tail -n 1)
    [ ! -e "$out.failed" ] || { cat "$out" >&2; die "wrk failed for $name"; }
    s1=$(srv_ticks); c1=$(cpu_ticks); o1=$(our_ticks)
    FOREIGN[$k]=$(awk -v c0="$c0" -v c1="$c1" -v o0="$o0" -v o1="$o1" 'BEGIN {
        split(c0, a, " "); split(c1, b, " "); f = (b[1] - a[1]) - (o1 - o0); t = b[2] - a[2]
        if (f < 0) f = 0
        printf "%.0f", (t > 0 ? 100 * f / t : 0) }')
    RPS[$k]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    REQS[$k]=$(awk '/requests in/ {print $1; exit}' "$out")
    # CPU time of everything this benchmark runs (servers, database, wrk) per request:
    # what the request costs the machine, which other processes' load barely changes
    CPU[$k]=$(awk -v s0="$s0" -v s1="$s1" -v n="${REQS[$k]}" -v hz="$(getconf CLK_TCK)" \
        -v w="$(times_secs "$wt")" 'BEGIN { printf "%.1f", (n > 0 ? ((s1 - s0) / hz + w) * 1e6 / n : 0) }')
    P50[$k]=$(awk '$1 == "50%" {print $2}' "$out")
    P99[$k]=$(awk '$1 == "99%" {print $2}' "$out")
    NON2XX[$k]=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$out")
    # "Socket errors: connect 0, read 0, write 0, timeout 0" -> sum
    SOCKERR[$k]=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$out")
    [ -n "${RPS[$k]}" ] || { cat "$out" >&2; die "cannot parse wrk output for $name"; }
}
for round in $(seq 1 "$ROUNDS"); do
    for n in "${TARGETS[@]}"; do
        case $n in
        baseline) run_wrk baseline "$round" "$BASE_URL" ;;
        healthz) run_wrk healthz "$round" "$HEALTH_URL" ;;
        account_read) run_wrk account_read "$round" "$ACCOUNT_URL" -H "$AUTH" ;;
        account_read_nocache) run_wrk account_read_nocache "$round" "$NOCACHE_URL" -H "$AUTH" ;;
        normalize) run_wrk normalize "$round" "$NORMALIZE_URL" -H "$AUTH" -s "$LOG_DIR/normalize.lua" ;;
        quote) run_wrk quote "$round" "$QUOTE_URL" -H "Authorization: Bearer $TENANT_KEY" -s "$LOG_DIR/quote.lua" ;;
        esac
    done
done
# Fold the rounds: median round's figures, min-max spread, summed errors.
for n in "${TARGETS[@]}"; do
    med=$(for r in $(seq 1 "$ROUNDS"); do echo "${RPS[$n,$r]} $r"; done | sort -g | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}')
    RPS[$n]=${RPS[$n,$med]}; P50[$n]=${P50[$n,$med]}; P99[$n]=${P99[$n,$med]}
    ALL[$n]=$(for r in $(seq 1 "$ROUNDS"); do
        printf '%.0f (%s%%) %sx, ' "${RPS[$n,$r]}" "${FOREIGN[$n,$r]}" \
            "$(awk -v a="${RPS[$n,$r]}" -v b="${RPS[baseline,$r]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
    done)
    # the target's ratio to the baseline of the same round, median over rounds: on a
    # shared machine this follows the load better than a ratio of medians
    RRATIO[$n]=$(for r in $(seq 1 "$ROUNDS"); do
        awk -v a="${RPS[$n,$r]}" -v b="${RPS[baseline,$r]}" 'BEGIN { printf "%.4f\n", (b > 0 ? a / b : 0) }'
    done | sort -g | awk '{a[NR] = $1} END { printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    CPU[$n]=$(for r in $(seq 1 "$ROUNDS"); do echo "${CPU[$n,$r]}"; done | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    NON2XX[$n]=0; SOCKERR[$n]=0; REQS[$n]=0
    for r in $(seq 1 "$ROUNDS"); do
        NON2XX[$n]=$(( ${NON2XX[$n]} + ${NON2XX[$n,$r]:-0} ))
        SOCKERR[$n]=$(( ${SOCKERR[$n]} + ${SOCKERR[$n,$r]:-0} ))
        REQS[$n]=$(( ${REQS[$n]} + ${REQS[$n,$r]:-0} ))
    done
done

# --- latency at half load ---------------------------------------------------------------
# wrk above measures the maximum rate (closed loop: 64 connections always busy).
# Latency goals are stated at 50 % of that rate, so each paced target is driven
# by bench-paced at half its median wrk rate, open loop: requests are due at fixed
# times and their latency counts from when they were due (coordinated omission
# corrected), over DURATION seconds after a WARMUP (at least 1 s) at the same rate.
declare -A PRATE PACH PP50 PP99 PP999 PERR PLAG PWAIT PCPU
PACED_TARGETS=()
for n in baseline normalize quote; do
    case " ${TARGETS[*]} " in *" $n "*) PACED_TARGETS+=("$n") ;; esac
done
paced() {  # paced NAME URL [bench-paced args]
    local name=$1 url=$2; shift 2
    local rate out=$LOG_DIR/$name.paced.json pw=$(( WARMUP > 0 ? WARMUP : 1 ))
    rate=$(awk -v r="${RPS[$name]}" 'BEGIN { printf "%d", r / 2 }')
    echo "bench: paced $name: bench-paced --rate $rate --duration $((DURATION + pw)) --warmup $pw --conns $CONNS $url" >&2
    "$PACED" --url "$url" --rate "$rate" --duration "$((DURATION + pw))" --warmup "$pw" --conns "$CONNS" "$@" >"$out" 2>&1 || true
    PRATE[$name]=$rate
    PACH[$name]=$(grep -o '"achieved_rps": [0-9.]*' "$out" | awk '{print $2}')
    PP50[$name]=$(grep -o '"p50_ms": [0-9.]*' "$out" | awk '{print $2}')
    PP99[$name]=$(grep -o '"p99_ms": [0-9.]*' "$out" | awk '{print $2}')
    PP999[$name]=$(grep -o '"p999_ms": [0-9.]*' "$out" | awk '{print $2}')
    # the pacer's own health: how late it sent (p99), requests that found every
    # connection busy, and its CPU share; a late pacer inflates every latency
    PLAG[$name]=$(grep -o '"send_lag_p99_ms": [0-9.]*' "$out" | awk '{print $2}' || true)
    PWAIT[$name]=$(grep -o '"conn_waits": [0-9]*' "$out" | awk '{print $2}' || true)
    PCPU[$name]=$(grep -o '"client_cpu_pct": [0-9.]*' "$out" | awk '{print $2}' || true)
    PERR[$name]=$(awk -F'[:,]' '{for (i = 1; i < NF; i++) if ($i ~ /"errors"|"non_2xx"/) s += $(i + 1)} END {print s + 0}' "$out")
    [ -n "${PP99[$name]}" ] || { cat "$out" >&2; die "cannot parse bench-paced output for $name"; }
}
for n in "${PACED_TARGETS[@]}"; do
    case $n in
    baseline) paced baseline "$BASE_URL" ;;
    normalize) paced normalize "$NORMALIZE_URL" --header "$AUTH" --body "$NORMALIZE_BODY" ;;
    quote) paced quote "$QUOTE_URL" --header "Authorization: Bearer $TENANT_KEY" --body "$QUOTE_BODY" ;;
    esac
done

dead=()
for n in "${!SERVER_PID[@]}"; do kill -0 "${SERVER_PID[$n]}" 2>/dev/null || dead+=("$n"); done
kill -0 "$BASE_PID" 2>/dev/null || dead+=(bench-baseline)
# Stop tallyd now (SIGTERM, graceful drain) and check that it exits cleanly.
unclean=()
for n in "${!SERVER_PID[@]}"; do
    pid=${SERVER_PID[$n]}
    kill -TERM "$pid" 2>/dev/null || true
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    SERVER_PID[$n]=""
    [ "$rc" = 0 ] || unclean+=("$n (exit status $rc)")
done

# --- report ---------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
goal() {  # goal NAME MIN (on the median per-round ratio)
    local r=${RRATIO[$1]}
    awk -v r="$r" -v m="$2" 'BEGIN { if (r + 0 >= m) printf ">= %.1fx: met", m; else printf ">= %.1fx: MISSED", m }'
}

cpu_model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
mem_total=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
pg_version=$("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" --version 2>/dev/null || echo unknown)
wrk_version=$({ wrk --version 2>&1 || true; } | head -n 1 | cut -d' ' -f1-2)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
access_lines=$(cat "$LOG_DIR/tallyd.log" "$LOG_DIR/tallyd_nocache.log" 2>/dev/null | wc -l)
# The access logs run to hundreds of MB: keep every non-request line and the last
# 1000 request lines of each, unless KEEP_LOGS=1.
if [ "${KEEP_LOGS:-0}" != 1 ]; then
    for f in "$LOG_DIR/tallyd.log" "$LOG_DIR/tallyd_nocache.log"; do
        [ -f "$f" ] || continue
        { grep -v '"msg":"request"' "$f" || true; tail -n 1000 "$f" | grep '"msg":"request"' || true; } >"$f.kept"
        mv "$f.kept" "$f"
    done
fi

echo
echo "## Tally HTTP benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- machine: $(nproc) CPUs ($cpu_model), $mem_total RAM, $(uname -sr)"
echo "- software: $wrk_version, $pg_version, libevent $(pkg-config --modversion libevent 2>/dev/null || echo '?'), $("$TALLYD" version 2>/dev/null | head -n 1 || echo 'tallyd ?') (commit $commit, build ${BUILD_TYPE:-?})"
echo "- load: wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency (keep-alive), ${WARMUP}s warm-up per target, $ROUNDS round(s) over all targets (figures: each target's median round; x base = median over rounds of its req/s / the same round's baseline req/s), wrk on the same machine"
if [ "$ACCESS_LOG" = 1 ]; then al="access log on (stderr to a file; $access_lines lines written)"; else al="access log OFF"; fi
echo "- servers: tallyd TALLY_THREADS=$THREADS, $al, auth cache at its default except in the last row; bench-baseline --threads $THREADS"
echo "- machine idle before the run: $IDLE_BEFORE% (load average $(cut -d' ' -f1-3 /proc/loadavg) after it)"
echo "- database: private PostgreSQL cluster over a Unix socket, default durability settings"
echo
FMT_H='| %-20s | %-22s | %8s | %6s | %8s | %8s | %7s | %13s | %-16s | %s\n'
FMT_R='| %-20s | %-22s | %8.0f | %6s | %8s | %8s | %7s | %13s | %-16s | %s\n'
# shellcheck disable=SC2059
printf "$FMT_H" name request "req/s" "x base" p50 p99 non-2xx "socket errors" goal "each round: req/s (foreign CPU) ratio |"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ---------------------- ------------------------ ---------- -------- ---------- ---------- --------- --------------- ------------------ ----------------------
row() {  # row NAME REQUEST GOALTEXT
    # shellcheck disable=SC2059
    printf "$FMT_R" "$1" "$2" "${RPS[$1]}" \
        "${RRATIO[$1]}" "${P50[$1]}" "${P99[$1]}" "${NON2XX[$1]}" "${SOCKERR[$1]}" "$3" "${ALL[$1]}|"
}
for n in "${TARGETS[@]}"; do
    case $n in
    baseline) row baseline "GET / (bench-baseline)" "-" ;;
    healthz) row healthz "GET /healthz" "$(goal healthz 0.8)" ;;
    account_read) row account_read "GET /v1/accounts/{id}" "$(goal account_read 0.4)" ;;
    account_read_nocache) row account_read_nocache "same, auth cache off" "(information)" ;;
    normalize) row normalize "POST /v1/normalize" "$(goal normalize 0.6)" ;;
    quote) row quote "POST /v1/quotes" "$(goal quote 0.5)" ;;
    esac
done
echo

echo "CPU time per request of all benchmark processes (servers, PostgreSQL, wrk; median round), and the"
echo "baseline's divided by the target's: the throughput ratio a machine with nothing else running would give"
echo "when everything is CPU-bound (robust to other processes' load, unlike req/s):"
echo
printf '| %-20s | %12s | %14s |\n' name "CPU µs/req" "x base (CPU)"
printf '|%s|%s|%s|\n' ---------------------- -------------- ----------------
for n in "${TARGETS[@]}"; do
    printf '| %-20s | %12s | %14s |\n' "$n" "${CPU[$n]}" \
        "$(awk -v a="${CPU[baseline]}" -v b="${CPU[$n]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
done
echo

if [ ${#PACED_TARGETS[@]} -gt 0 ]; then
    echo "Latency at 50 % of the maximum rate (bench-paced, open loop, $CONNS connections, ${DURATION}s measured; latency from when each request was due):"
    echo
    printf '| %-10s | %10s | %9s | %8s | %8s | %8s | %6s | %-18s | %12s | %10s | %10s |\n' name "rate req/s" achieved p50 p99 p99.9 errors goal \
        "pacer lag99" "conn waits" "pacer CPU"
    printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------ ------------ ----------- ---------- ---------- ---------- -------- -------------------- -------------- ------------ ------------
    for n in "${PACED_TARGETS[@]}"; do
        g="(information)"
        [ "$n" = quote ] && g=$(awk -v p="${PP99[$n]}" 'BEGIN { if (p + 0 < 5) print "p99 < 5 ms: met"; else print "p99 < 5 ms: MISSED" }')
        printf '| %-10s | %10s | %9s | %6sms | %6sms | %6sms | %6s | %-18s | %10sms | %10s | %9s%% |\n' "$n" "${PRATE[$n]}" "${PACH[$n]}" \
            "${PP50[$n]}" "${PP99[$n]}" "${PP999[$n]}" "${PERR[$n]}" "$g" "${PLAG[$n]}" "${PWAIT[$n]}" "${PCPU[$n]}"
    done
    echo
    echo "pacer lag99: p99 of how late bench-paced sent a request after it was due (its own thread late, or every"
    echo "connection busy: conn waits counts those requests). A lag near the p99 means the machine, not the server,"
    echo "set the tail: a shared or saturated machine cannot judge a latency goal."
    echo
fi

busy_rounds=0
for n in "${TARGETS[@]}"; do
    for r in $(seq 1 "$ROUNDS"); do [ "${FOREIGN[$n,$r]}" -le 5 ] || busy_rounds=$((busy_rounds + 1)); done
done
if [ "$busy_rounds" -gt 0 ]; then
    echo "Note: in $busy_rounds measured run(s) other processes took more than 5% of the machine's CPU (the % in the last column); those figures are low. Rerun on a quiet machine for publishable numbers."
    echo
fi

status=0
for n in "${TARGETS[@]}"; do
    if [ "${NON2XX[$n]}" != 0 ] || [ "${SOCKERR[$n]}" != 0 ]; then
        echo "!!! ERRORS: $n had ${NON2XX[$n]} non-2xx responses and ${SOCKERR[$n]} socket errors out of ${REQS[$n]} requests — its figure is NOT valid (see $LOG_DIR/$n.round*.txt)"
        status=1
    fi
done
for n in "${PACED_TARGETS[@]}"; do
    if [ "${PERR[$n]}" != 0 ]; then
        echo "!!! ERRORS: the paced $n run had ${PERR[$n]} failed or non-2xx requests (see $LOG_DIR/$n.paced.json)"
        status=1
    fi
done
for n in "${dead[@]}"; do echo "!!! ERRORS: $n DIED during the run (see $LOG_DIR/$n.log)"; status=1; done
for n in "${unclean[@]}"; do echo "!!! ERRORS: $n did not exit cleanly on SIGTERM"; status=1; done
if [ $status = 0 ]; then
    echo "All runs completed without errors. Raw wrk output and tallyd's log: $LOG_DIR/"
else
    echo "!!! THIS RUN HAD ERRORS — do not publish its figures. Raw output: $LOG_DIR/"
    echo "bench: THIS RUN HAD ERRORS (see above)" >&2
fi
exit $status
