#!/usr/bin/env bash
# Shows whether the parts started by deploy/local/up.sh are running.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"
state() { if running "$1"; then echo "running (pid $(cat "$1"))"; else echo "stopped"; fi; }
echo "ClickHouse:   $(state "$AURORA_HOME/clickhouse/clickhouse.pid")"
echo "aurora-proxy: $(state "$AURORA_HOME/proxy.pid")"
