#!/usr/bin/env bash
# Manages a private PostgreSQL cluster for Tally, reached only over a Unix socket.
#
#   pg.sh init    DIR [--fast]   create the cluster in DIR (no-op if it exists)
#   pg.sh start   DIR            start it (init first if needed) and create database "tally"
#   pg.sh stop    DIR            stop it (fast shutdown); no-op if not running
#   pg.sh status  DIR            exit 0 if running
#   pg.sh url     DIR [DBNAME]   print the libpq connection string
#   pg.sh destroy DIR            stop and remove the cluster
#
# PostgreSQL refuses to run as root: when called as root the server runs as the
# "postgres" system user (created by the postgresql package). The superuser role
# inside the cluster is "tally"; authentication is "trust" on the Unix socket only
# (no TCP listener), and the socket directory is private to the cluster's owner
# and root. --fast turns off fsync for throwaway test clusters. TALLY_PG_STATEMENTS=1 at
# init also loads pg_stat_statements (per-statement times for profiling; off by default).
set -euo pipefail

cmd=${1:?usage: pg.sh init|start|stop|status|url|destroy DIR}
dir=${2:?usage: pg.sh $cmd DIR}
shift 2 || true
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
port=${TALLY_PG_PORT:-5432}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (install postgresql)" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
    owner=postgres
    id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    as_owner() { runuser -u postgres -- "$@"; }
else
    owner=$(id -un)
    as_owner() { "$@"; }
fi

# The cluster lives in $dir/data unless the owner cannot reach $dir (a checkout under
# a private home) or the socket path would exceed the kernel's limit: then the files
# live under /tmp and $dir holds a symlink to them.
store="$dir"
key=$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
if [ -L "$dir/store" ]; then
    store=$(readlink "$dir/store")
elif ! as_owner test -x "$dir" 2>/dev/null || [ ${#dir} -gt 80 ]; then
    store="/tmp/tally-pg-$key"
fi
data="$store/data"
sock="$store/run"
log="$store/postgresql.log"

ensure_store() {
    mkdir -p "$store" "$sock"
    [ "$store" != "$dir" ] && ln -sfn "$store" "$dir/store"
    chown "$owner" "$store" "$sock"
    chmod 0700 "$sock"
    [ "$owner" != "$(id -un)" ] && chmod 0755 "$store" || true
}

do_init() {
    local fast=0
    [ "${1:-}" = "--fast" ] && fast=1
    ensure_store
    if [ ! -f "$data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$data" -U tally --auth=trust -E UTF8 --locale=C.UTF-8 >"$store/initdb.log" 2>&1 \
            || { cat "$store/initdb.log" >&2; exit 1; }
        {
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '$sock'"
            echo "port = $port"
            echo "max_connections = 200"
            echo "shared_buffers = 256MB"
            echo "log_min_messages = warning"
            if [ "${TALLY_PG_STATEMENTS:-0}" = 1 ]; then
                echo "shared_preload_libraries = 'pg_stat_statements'"
                echo "pg_stat_statements.track = all"
            fi
            if [ $fast = 1 ]; then
                echo "fsync = off"
                echo "synchronous_commit = off"
                echo "full_page_writes = off"
            fi
        } | as_owner tee -a "$data/postgresql.conf" >/dev/null
    fi
}

is_running() { as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

do_start() {
    [ -f "$data/PG_VERSION" ] || do_init
    ensure_store
    if ! is_running; then
        touch "$log" && chown "$owner" "$log"
        as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
            || { tail -n 20 "$log" >&2; exit 1; }
    fi
    local psql=("$bindir/psql" -X -q -h "$sock" -p "$port" -U tally -d postgres -v ON_ERROR_STOP=1)
    if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'tally'")" ]; then
        "${psql[@]}" -c "CREATE DATABASE tally" >/dev/null
    fi
}

case "$cmd" in
    init) do_init "$@" ;;
    start) do_start ;;
    stop) if [ -f "$data/PG_VERSION" ] && is_running; then as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi ;;
    status) [ -f "$data/PG_VERSION" ] && is_running ;;
    url) echo "host=$sock port=$port user=tally dbname=${1:-tally}" ;;
    destroy)
        if [ -f "$data/PG_VERSION" ] && is_running; then as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true; fi
        rm -rf "$store" "$dir" ;;
    *) echo "pg.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
