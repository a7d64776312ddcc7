#!/usr/bin/env bash
# The README's five-minute tour, run non-interactively against a running
# `make run`; it stops at the first unexpected answer (exit 1) and ends with
# "tour: every step answered as the README says" (exit 0).
#
#   TALLY_ADMIN_KEY=tly_... bash scripts/tour.sh [BASE_URL]   (default http://127.0.0.1:8080)
#
# Only the admin key is needed: the tour creates its own tenant, provider and
# finance accounts, provider key, policies and offer, all named with a run
# suffix, so it can run again on the same database. Needs curl, openssl (3.x,
# for Ed25519) and GNU date; `tallyd verify` runs when build/bin/tallyd (or
# TALLY_TALLYD) and the .tally/pg cluster (or TALLY_DATABASE_URL) are there.
# tests/e2e/test_readme_tour.c runs it against the test harness's tallyd.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN=${TALLY_ADMIN_KEY:?set TALLY_ADMIN_KEY to the demo-admin key printed by make run}
BASE=${1:-http://127.0.0.1:8080}
run=$(date +%s)-$$
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step=0

# call METHOD PATH KEY [BODY] [CURL-ARGS...]: sets CODE, BODY and HEADERS.
call() {
    local method=$1 path=$2 key=$3 body=${4:-}
    local args=(-s -X "$method" -D "$work/headers" -o "$work/body" -w '%{http_code}')
    shift 4 || shift $#
    [ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
    rm -f "$work/body" "$work/headers"
    CODE=$(curl "${args[@]}" "$@" "$BASE$path") || CODE=000
    BODY=$(cat "$work/body" 2>/dev/null || true)
    HEADERS=$(cat "$work/headers" 2>/dev/null || true)
}

fail() {
    echo "tour: step $step: $*" >&2
    echo "tour: status $CODE, body: ${BODY:0:600}" >&2
    exit 1
}

# expect STATUS [FIXED-STRING...]: the last answer had STATUS and contains every string.
expect() {
    local want=$1
    shift
    step=$((step + 1))
    [ "$CODE" = "$want" ] || fail "expected status $want"
    for s in "$@"; do
        case "$BODY" in *"$s"*) ;; *) fail "expected the body to contain $s" ;; esac
    done
}

# field NAME [PREFIX]: the first string value of NAME in BODY (starting with PREFIX).
field() {
    grep -o "\"$1\":\"${2:-}[^\"]*\"" <<<"$BODY" | head -n 1 | cut -d'"' -f4
}

# micros DECIMAL: "12.345678" -> 12345678 (non-negative, six places as Tally prints them).
micros() {
    local i=${1%.*} f=${1#*.}
    echo $((10#$i * 1000000 + 10#$f))
}

# sign FILE: hex Ed25519 signature of FILE's bytes with the meter key.
sign() {
    openssl pkeyutl -sign -inkey "$work/meter.pem" -rawin -in "$1" | od -An -tx1 | tr -d ' \n'
}

echo "tour: $BASE, run $run"

# -- health, accounts, keys, errors
call GET /healthz ""
expect 200 '"status":"ok"'
call GET /readyz ""
expect 200 '"database":"ok"' '"migrations":"current"'
call GET /v1/accounts "$ADMIN"
expect 200 '"role":"admin"'

call POST /v1/accounts "$ADMIN" '{"name": "Acme Research '"$run"'", "role": "tenant"}' \
    -H "Idempotency-Key: onboard-acme-$run"
expect 201 '"role":"tenant"' '"api_key":"tly_'
TENANT_ID=$(field id acc_) TENANT=$(field api_key tly_)
call POST /v1/accounts "$ADMIN" '{"name": "Acme Research '"$run"'", "role": "tenant"}' \
    -H "Idempotency-Key: onboard-acme-$run"
expect 201 "\"id\":\"$TENANT_ID\"" '"api_key_withheld":true'
grep -qi '^idempotent-replayed: true' <<<"$HEADERS" || fail "no Idempotent-Replayed: true header"

call GET "/v1/accounts/$TENANT_ID" "$TENANT"
expect 200 "\"id\":\"$TENANT_ID\""
call GET /v1/accounts "$TENANT"
expect 403 '"status":403' 'problems/forbidden'

call POST "/v1/accounts/$TENANT_ID/keys" "$TENANT" '{"label":"ci"}'
expect 201 '"label":"ci"' '"api_key":"tly_'
KEY_ID=$(field id key_) CI_KEY=$(field api_key tly_)
call GET "/v1/accounts/$TENANT_ID/keys" "$TENANT"
expect 200 "\"id\":\"$KEY_ID\"" '"label":"initial"'
call DELETE "/v1/accounts/$TENANT_ID/keys/$KEY_ID" "$TENANT"
expect 200 '"revoked_at":"20'
call GET "/v1/accounts/$TENANT_ID" "$CI_KEY"
expect 401 'problems/unauthenticated'

call POST /v1/accounts "$ADMIN" '{"name": "x", "role": "root"}'
expect 422 'problems/validation-failed' '"field":"role"'
grep -qi '^content-type: application/problem+json' <<<"$HEADERS" || fail "not problem+json"

# -- compute units and estimates
call GET /v1/devices/nvidia-h100-sxm "$TENANT"
expect 200 '"id":"nvidia-h100-sxm"' '"peak_gflops"'
call POST /v1/normalize "$TENANT" \
    '{"device": "nvidia-h100-sxm", "count": 8, "profile": "llm-train", "wall_ms": 3600000}'
expect 200 '"mcu":11397888' '"cu":"11397.888"'
call POST /v1/estimates "$TENANT" \
    '{"device": "nvidia-a100-sxm-80gb", "count": 8, "profile": "llm-train", "work_mcu": 11397888}'
expect 200 '"p50_seconds":' '"p90_seconds":'

# -- the tour's provider and finance accounts (the README uses make run's demo ones)
call POST /v1/accounts "$ADMIN" '{"name": "tour-provider-'"$run"'", "role": "provider"}'
expect 201 '"api_key":"tly_'
PROVIDER=$(field api_key tly_)
call POST /v1/accounts "$ADMIN" '{"name": "tour-finance-'"$run"'", "role": "finance"}'
expect 201 '"api_key":"tly_'
FINANCE=$(field api_key tly_)

# -- pricing: the platform's take rate (admin) and the provider's policy
call POST /v1/pricing/policies "$ADMIN" '{"name": "platform take", "document": {"currency": "USD",
    "scope": "platform", "rules": [{"id": "take", "kind": "platform_fee", "take_ppm": 50000}]}}'
expect 201 '"scope":"platform"'
call POST /v1/pricing/policies "$PROVIDER" '{"name": "H100 on demand", "document": {
    "currency": "USD", "rules": [{"id": "base", "kind": "base",
    "match": {"device_class": "gpu"}, "per_cu": "0.002", "per_device_hour": "0.50"}]}}'
expect 201 '"scope":"provider"' '"version":1'
POLICY=$(field id pol_)

# -- marketplace: provider key, offer, publish (signed challenge), resolve
openssl genpkey -algorithm ed25519 -out "$work/meter.pem" 2>/dev/null
PUB=$(openssl pkey -in "$work/meter.pem" -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')
call POST /v1/provider-keys "$PROVIDER" "{\"public_key\": \"$PUB\", \"label\": \"meter-1\"}"
expect 201 "\"public_key_hex\":\"$PUB\""
PK=$(field id pk_)
IDENT=eu-west-1/tour-$run/h100-pod-1
host=${BASE#http://}
call POST /v1/offers "$PROVIDER" "{\"identifier\": \"$IDENT\",
    \"device\": \"nvidia-h100-sxm\", \"devices_per_node\": 8, \"nodes\": 4,
    \"endpoint\": \"${host%%/*}\", \"policy_id\": \"$POLICY\"}"
expect 201 '"state":"pending"' '"challenge":"'
OFFER=$(field id off_) CHALLENGE=$(field challenge)
printf 'tally-offer-challenge-v1\n%s\n%s\n%s' "$OFFER" "$IDENT" "$CHALLENGE" >"$work/msg"
call POST "/v1/offers/$OFFER/publish" "$PROVIDER" "{\"key_id\": \"$PK\", \"signature\": \"$(sign "$work/msg")\"}"
expect 200 '"state":"published"' "\"verified_key_id\":\"$PK\""
call GET "/v1/resolve/$IDENT" "$TENANT"
expect 200 "\"offer_id\":\"$OFFER\"" '"free_devices":32'

# -- the tenant's signed quote (a price lock): 11 397.888 CU x 0.002 + 8 device-hours x 0.50
call POST /v1/quotes "$TENANT" "{\"policy_id\": \"$POLICY\",
    \"device\": \"nvidia-h100-sxm\", \"count\": 8, \"profile\": \"llm-train\", \"work_mcu\": 11397888}"
expect 201 '"total":"26.795776"' '"provider_net":"25.455987"' '"alg":"Ed25519"'
QUOTE=$(field id quo_)

# -- money in, then the order honouring the quote (hold: the price at p90 + 10 %)
call POST /v1/ledger/deposits "$FINANCE" \
    "{\"tenant_id\": \"$TENANT_ID\", \"currency\": \"USD\", \"amount\": \"100.00\"}" \
    -H "Idempotency-Key: wire-$run"
expect 201 '"kind":"deposit"' '"balance_after":"100.000000"'
call POST /v1/orders "$TENANT" "{\"quote_id\": \"$QUOTE\", \"device\": \"nvidia-h100-sxm\",
    \"count\": 8, \"profile\": \"llm-train\", \"work_mcu\": 11397888, \"offer_id\": \"$OFFER\"}" \
    -H 'Idempotency-Key: order-0001'
expect 201 '"state":"placed"' "\"quote_id\":\"$QUOTE\"" '"priced":"26.795776"' '"hold":{"id":"hold_'
ORDER=$(field id ord_)
HOLD=$(grep -o '"hold":{"id":"[^"]*","amount":"[^"]*"' <<<"$BODY" | cut -d'"' -f10)
[ "$(micros "$HOLD")" -ge $((26795776 * 11 / 10)) ] || fail "hold $HOLD is below the price plus 10 %"
START=$(grep -o '"window":{"start":"[^"]*"' <<<"$BODY" | cut -d'"' -f6)

# -- the provider's signed usage: the first 10 s of the order
S=$(date -d "$START" +%s%3N)
E=$((S + 10000))
wait_ms=$((E - $(date +%s%3N) + 200))
[ $wait_ms -gt 0 ] && sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"
REC="{\"count\":8,\"device\":\"nvidia-h100-sxm\",\"end_ms\":$E,\"order_id\":\"$ORDER\",\"profile\":\"llm-train\",\"record_id\":\"r-1\",\"start_ms\":$S}"
printf 'tally-usage-v1\n%s' "$REC" >"$work/msg"
call POST /v1/usage "$PROVIDER" "{\"records\": [{\"record\": $REC, \"key_id\": \"$PK\", \"signature\": \"$(sign "$work/msg")\"}]}"
expect 200 '"accepted":1' '"status":"accepted"'
AMOUNT=$(field amount) FEE=$(field platform_fee)
call POST "/v1/orders/$ORDER/complete" "$PROVIDER"
expect 200 '"state":"completed"' "\"captured\":\"$AMOUNT\"" "\"platform_fee\":\"$FEE\""

# -- the settlement in the ledger: hold, capture (fee as its own entry), release
call GET "/v1/usage?order_id=$ORDER" "$TENANT"
expect 200 '"record_id":"r-1"' '"state":"posted"'
call GET /v1/ledger/transactions "$TENANT"
expect 200 '"kind":"deposit"' '"kind":"hold"' '"kind":"capture"' '"kind":"release"' "\"amount\":\"-$FEE\""
call GET /v1/ledger/accounts "$TENANT"
wallet=$(grep -o '"purpose":"wallet"[^}]*"balance":"[^"]*"' <<<"$BODY" | grep -o '[0-9.]*"$' | tr -d '"')
expect 200 '"purpose":"wallet"' '"purpose":"holds","currency":"USD","credit_limit":"0.000000","limit_checked":true,"balance":"0.000000"'
[ "$(micros "$wallet")" = $((100000000 - $(micros "$AMOUNT"))) ] ||
    fail "wallet $wallet is not 100.000000 - $AMOUNT"

# -- finance: usage report, invoice draft, dashboard
call GET "/v1/reports/usage?group_by=tenant&format=csv" "$TENANT"
expect 200 "$TENANT_ID,USD,1," ",$AMOUNT,$FEE,"
call POST "/v1/invoices/close?period=$(date -u +%Y-%m)" "$FINANCE" "" -H "Idempotency-Key: close-$run"
expect 200 '"drafts":'
call GET /v1/invoices "$TENANT"
expect 200 '"state":"draft"' "\"total\":\"$AMOUNT\"" "\"provider_fees\":\"$FEE\""
call GET /dashboard ""
expect 200 '<html'
call GET /v1/reports/dashboard "$FINANCE"
expect 200 '"by_day":' '"top_tenants":'

# -- the ledger verifies offline; metrics and the API contract
tallyd=${TALLY_TALLYD:-build/bin/tallyd}
if [ -x "$tallyd" ] && { [ -n "${TALLY_DATABASE_URL:-}" ] || bash scripts/pg.sh status .tally/pg >/dev/null 2>&1; }; then
    step=$((step + 1))
    TALLY_DATABASE_URL=${TALLY_DATABASE_URL:-$(bash scripts/pg.sh url .tally/pg)} "$tallyd" verify ||
        { CODE=- BODY=; fail "tallyd verify failed"; }
fi
call GET /metrics ""
expect 200 'tally_http_requests_total{method="POST",route="/v1/usage",status="200"}'
call GET /openapi.yaml ""
expect 200 'openapi: 3.1.0'

echo "tour: every step answered as the README says ($step checks)"
