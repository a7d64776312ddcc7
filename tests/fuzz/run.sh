#!/usr/bin/env bash
# Build the libFuzzer harnesses with clang and run each for FUZZ_SECONDS (default 30)
# from its seed corpus in tests/fuzz/seeds/NAME. `make test` runs a short smoke pass
# (FUZZ_SECONDS=5); run longer by hand: FUZZ_SECONDS=600 bash tests/fuzz/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TALLY_DEPS_FUZZ=1 bash scripts/deps.sh
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DTALLY_SANITIZE=ON -DTALLY_FUZZ=ON -DTALLY_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
secs=${FUZZ_SECONDS:-30}
for bin in build-fuzz/fuzz/fuzz_*; do
    name=$(basename "$bin")
    corpus=$(mktemp -d)
    seeds="tests/fuzz/seeds/${name#fuzz_}"
    [ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/
    echo "== $name (${secs}s)"
    "$bin" -max_total_time="$secs" -max_len=65536 -print_final_stats=0 "$corpus" 2>&1 \
        | grep -E "^(#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY)" || true
    if ls crash-* leak-* timeout-* >/dev/null 2>&1; then
        echo "fuzz: $name found a failing input:" >&2
        ls crash-* leak-* timeout-* >&2
        exit 1
    fi
    rm -rf "$corpus"
done
echo "fuzz: all harnesses ran ${secs}s without a failure"
