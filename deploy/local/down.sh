#!/usr/bin/env bash
# Stops what deploy/local/up.sh started (generator, ingest, proxy, llama-server, broker, ClickHouse).
# ClickHouse's data under $AURORA_HOME stays; the broker kept its messages in memory, so they are gone.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"

# stop_pid <name> <pidfile> <seconds>: SIGTERM, then SIGKILL after the given time.
stop_pid() {
    local name="$1" pidfile="$2" limit="$3" pid
    if running "$pidfile"; then
        pid="$(cat "$pidfile")"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + limit))
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                echo "[down] $name (pid $pid) still running after $limit s: SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
        echo "[down] $name stopped (pid $pid)"
    fi
    rm -f "$pidfile"
}

stop_pid "event generator" "$(pidfile_of generator)" 40    # flushes what it produced
stop_pid aurora-ingest "$(pidfile_of ingest)" 30             # inserts and commits what it read
stop_pid aurora-proxy "$(pidfile_of proxy)" 35               # running queries may finish (shutdown_timeout 30s)
if running "$(pidfile_of llama)"; then
    "$ROOT/scripts/llm.sh" stop "$LLAMA_DIR" && echo "[down] llama-server stopped"
fi
if running "$(pidfile_of broker)"; then
    "$ROOT/scripts/kafka.sh" stop "$KAFKA_DIR" && echo "[down] broker stopped"
fi
if running "$(pidfile_of clickhouse)"; then
    "$ROOT/scripts/clickhouse.sh" stop "$CH_DIR" && echo "[down] ClickHouse stopped"
fi
rm -f "$(pidfile_of llama)" "$(pidfile_of broker)" "$(pidfile_of clickhouse)"
echo "[down] done; data stays in $AURORA_HOME"
