#!/usr/bin/env bash
# Static checks on our code: clang-format (the project's .clang-format) and
# cppcheck. Exits non-zero on any finding. Part of `make test`; also `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find server metering tools bench tests -name '*.[ch]')
if command -v clang-format >/dev/null; then
    bad=$(for f in $files; do [ -f "$f" ] && ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1 && echo "$f"; done || true)
    if [ -n "$bad" ]; then
        echo "lint: not clang-formatted (run 'make format'):" $bad >&2
        status=1
    fi
else
    echo "lint: clang-format not installed; skipping the format check" >&2
fi
if command -v cppcheck >/dev/null; then
    dirs=$(for d in server metering pricing billing scheduler market tools bench tests/fuzz; do [ -d "$d" ] && echo "$d"; done)
    if ! cppcheck --enable=warning,performance,portability --std=c11 --quiet --error-exitcode=1 \
        --inline-suppr --suppress=missingIncludeSystem -I server -I metering -I market $dirs; then
        echo "lint: cppcheck found problems" >&2
        status=1
    fi
else
    echo "lint: cppcheck not installed; skipping" >&2
fi
[ $status = 0 ] && echo "lint: clean"
exit $status
