#!/usr/bin/env bash
# Brings Aurora up on this machine without containers: installs what is missing (scripts/setup.sh), builds the
# release binaries, starts a private ClickHouse and aurora-proxy, and prints where to connect.
#
#   deploy/local/up.sh        # safe to re-run: running parts are left alone
#   deploy/local/down.sh      # stops everything started here
#   deploy/local/status.sh    # shows what runs
#
# Everything lives under $AURORA_HOME (default ~/.local/share/aurora): ClickHouse data, logs, pid files.
# Ports (override with the environment): ClickHouse native 9000 / HTTP 8123, proxy native 9001 / HTTP 8124,
# proxy metrics 9464.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"

"$ROOT/scripts/setup.sh"
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust from https://rustup.rs (or your distribution) and re-run" >&2
    exit 1
fi
(cd "$ROOT" && cargo build --release -p aurora-proxy)

mkdir -p "$AURORA_HOME/clickhouse" "$AURORA_HOME/log"
if running "$AURORA_HOME/clickhouse/clickhouse.pid"; then
    echo "ClickHouse already running (pid $(cat "$AURORA_HOME/clickhouse/clickhouse.pid"))"
else
    "$ROOT/scripts/clickhouse.sh" start "$AURORA_HOME/clickhouse" "$CH_NATIVE_PORT" "$CH_HTTP_PORT"
    echo "ClickHouse started on 127.0.0.1:$CH_NATIVE_PORT (native) and :$CH_HTTP_PORT (HTTP)"
fi

if running "$AURORA_HOME/proxy.pid"; then
    echo "aurora-proxy already running (pid $(cat "$AURORA_HOME/proxy.pid"))"
else
    nohup "$ROOT/target/release/aurora-proxy" \
        --native-listen "127.0.0.1:$PROXY_NATIVE_PORT" --http-listen "127.0.0.1:$PROXY_HTTP_PORT" \
        --metrics-listen "127.0.0.1:$PROXY_METRICS_PORT" --upstream-native "127.0.0.1:$CH_NATIVE_PORT" \
        --upstream-http "http://127.0.0.1:$CH_HTTP_PORT" >>"$AURORA_HOME/log/aurora-proxy.log" 2>&1 &
    echo $! > "$AURORA_HOME/proxy.pid"
    for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$PROXY_NATIVE_PORT") 2>/dev/null && break; sleep 0.1; done
    running "$AURORA_HOME/proxy.pid" || { echo "aurora-proxy did not start; see $AURORA_HOME/log/aurora-proxy.log" >&2; exit 1; }
    echo "aurora-proxy started (pid $(cat "$AURORA_HOME/proxy.pid"))"
fi

cat <<INFO

Aurora is up.
  SQL through the proxy:   clickhouse-client --port $PROXY_NATIVE_PORT
  HTTP through the proxy:  curl 'http://127.0.0.1:$PROXY_HTTP_PORT/?query=SELECT+version()'
  Metrics:                 curl http://127.0.0.1:$PROXY_METRICS_PORT/metrics
  ASK (recognised; the natural-language engine is not wired in yet):
                           curl 'http://127.0.0.1:$PROXY_HTTP_PORT/' --data-binary "ASK 'top 5 tenants by revenue'"
  Logs:                    $AURORA_HOME/log/aurora-proxy.log, $AURORA_HOME/clickhouse/log/
  Stop:                    deploy/local/down.sh
INFO
