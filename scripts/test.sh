#!/usr/bin/env bash
# `make test`: install what is missing, build twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), start a throwaway PostgreSQL
# cluster, and run every test (unit, integration, e2e) against both builds.
# The cluster is removed on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc)

# the dashboard test needs a headless browser (TALLY_DEPS_BROWSER=0 to skip installing it)
TALLY_DEPS_BROWSER=${TALLY_DEPS_BROWSER:-1} bash scripts/deps.sh

echo "== build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_BUILD_TESTS=ON >/dev/null
cmake --build build -j"$jobs" >/dev/null
echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=ON -DTALLY_BUILD_TESTS=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null

pgdir="$root/.tally/test-pg-$$"
cleanup() { bash scripts/pg.sh destroy "$pgdir" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "== throwaway PostgreSQL cluster in $pgdir"
bash scripts/pg.sh init "$pgdir" --fast
bash scripts/pg.sh start "$pgdir"
url=$(bash scripts/pg.sh url "$pgdir")
export TALLY_TEST_PG="${url% dbname=*}"
export TALLY_TEST_PG_SCRIPT="$root/scripts/pg.sh"

echo "== tests (plain build)"
TALLY_TEST_TALLYD="$root/build/bin/tallyd" \
    ctest --test-dir build --output-on-failure -j"$jobs"

echo "== tests (ASan + UBSan build)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
TALLY_TEST_TALLYD="$root/build-asan/bin/tallyd" \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== static checks (clang-format, cppcheck)"
bash scripts/lint.sh

echo "== fuzz smoke (libFuzzer, ${FUZZ_SECONDS:-5}s per harness)"
FUZZ_SECONDS=${FUZZ_SECONDS:-5} bash tests/fuzz/run.sh

# One closing line for people and CI: every ctest above passed (set -e stops at the first failure).
n=$(ctest --test-dir build -N | sed -n 's/^Total Tests: //p')
echo "tests: $((2 * n)) passed, 0 failed (plain and ASan+UBSan builds; lint clean; fuzz smoke clean)"
