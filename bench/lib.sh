#!/usr/bin/env bash
# Shell helpers shared by the benchmark scripts (sourced, never run):
# die, stop_pid, port_in_use, free_port.

# die MESSAGE...: the message on stderr, exit 2.
die() { echo "bench: $*" >&2; exit 2; }

# stop_pid PID: SIGTERM, up to 5 s to exit, then SIGKILL; reaps it (a child of this shell).
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# port_in_use PORT: true when something accepts on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a loopback port nothing listened on a moment ago (20000-59999).
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free loopback port found"
}
