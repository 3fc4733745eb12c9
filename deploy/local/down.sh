#!/usr/bin/env bash
# Stops what deploy/local/up.sh started. Data under $AURORA_HOME is kept.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"

if running "$AURORA_HOME/proxy.pid"; then
    pid="$(cat "$AURORA_HOME/proxy.pid")"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "aurora-proxy stopped"
fi
rm -f "$AURORA_HOME/proxy.pid"
if [ -d "$AURORA_HOME/clickhouse" ]; then
    "$ROOT/scripts/clickhouse.sh" stop "$AURORA_HOME/clickhouse" && echo "ClickHouse stopped"
fi
