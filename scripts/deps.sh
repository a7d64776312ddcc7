#!/usr/bin/env bash
# Installs the Debian packages Tally needs to build, test and run, if any are missing.
# Safe to run repeatedly: it only calls apt-get when something is absent.
set -euo pipefail

PKGS=(gcc make cmake pkg-config libevent-dev libpq-dev libjansson-dev libsodium-dev
      libcriterion-dev libcurl4-openssl-dev zlib1g-dev postgresql postgresql-client curl ca-certificates openssl
      clang-format cppcheck)
if [ "${TALLY_DEPS_BENCH:-0}" = 1 ]; then PKGS+=(wrk); fi
if [ "${TALLY_DEPS_FUZZ:-0}" = 1 ]; then PKGS+=(clang libclang-rt-14-dev); fi
# headless browser for tests/e2e/test_dashboard.c (scripts/test.sh sets this)
if [ "${TALLY_DEPS_BROWSER:-0}" = 1 ]; then PKGS+=(chromium chromium-driver fonts-dejavu-core); fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "tally: installing missing packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "tally: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
