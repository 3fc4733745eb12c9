#!/usr/bin/env bash
# ASK benchmark: everything but the model call, and the proxy overhead of a cached ASK, in one run.
#
#   bench/ask.sh      # needs scripts/setup.sh (ClickHouse, the venv, the embedding assets); builds release
#
# 1. nlq's pipeline benchmark on a 200-table catalog (catalog lookup, retrieval, context, validation, binding),
#    with lexical retrieval only and with the embedding model (targets: <= 5 ms p50 without the LLM).
# 2. A private ClickHouse + aurora-proxy + the scripted OpenAI-compatible endpoint: the same ASK repeated
#    (answered from the exact cache) against its SQL sent directly and through the proxy (target: <= 1 ms
#    of proxy overhead for a cached ASK).
#
# Environment: REQUESTS (500), AURORA_CACHE.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
PY="$CACHE/venv/bin/python"
REQUESTS="${REQUESTS:-500}"

cd "$ROOT"
cargo build --release -q -p aurora-proxy -p nlq --example pipeline_bench
eval "$(scripts/embeddings.sh 2>/dev/null | sed -n 's/^\(ORT_DYLIB_PATH\|AURORA_EMBED_MODEL_DIR\)=/export &/p')"

echo "== pipeline without the LLM, lexical retrieval"
env -u AURORA_EMBED_MODEL_DIR target/release/examples/pipeline_bench
echo "== pipeline without the LLM, embeddings + lexical"
target/release/examples/pipeline_bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK="$(mktemp -d /tmp/aurora-bench-ask.XXXXXX)"
CH_TCP="$(free_port)"; CH_HTTP="$(free_port)"; LLM_PORT="$(free_port)"
P_NATIVE="$(free_port)"; P_HTTP="$(free_port)"; P_METRICS="$(free_port)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    scripts/clickhouse.sh stop "$WORK/ch" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/ch"
scripts/clickhouse.sh start "$WORK/ch" "$CH_TCP" "$CH_HTTP" >/dev/null
clickhouse-client --port "$CH_TCP" --multiquery --query "
    CREATE DATABASE bench;
    CREATE TABLE bench.events (tenant_id String, event_type String, revenue Float64) ENGINE = MergeTree ORDER BY tenant_id;
    INSERT INTO bench.events SELECT ['acme','globex','initech'][number % 3 + 1], ['page_view','purchase'][number % 2 + 1], number % 50 FROM numbers(100000);"

"$PY" tests/support/scripted_llm.py --port "$LLM_PORT" > "$WORK/llm.out" 2>"$WORK/llm.err" &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$WORK/llm.out" 2>/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$LLM_PORT/_script" -d '[{"match": "", "responses": [{"content": {"sql": "SELECT tenant_id, sum(revenue) AS revenue FROM bench.events WHERE event_type = {kind:String} GROUP BY tenant_id ORDER BY tenant_id", "params": {"kind": "purchase"}, "explanation": "bench"}}]}]' >/dev/null

target/release/aurora-proxy --native-listen "127.0.0.1:$P_NATIVE" --http-listen "127.0.0.1:$P_HTTP" \
    --metrics-listen "127.0.0.1:$P_METRICS" --upstream-native "127.0.0.1:$CH_TCP" \
    --upstream-http "http://127.0.0.1:$CH_HTTP" --llm-base-url "http://127.0.0.1:$LLM_PORT/v1" \
    --llm-model scripted > "$WORK/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P_HTTP/ping" >/dev/null && break; sleep 0.1; done

echo "== cached ASK vs its SQL ($REQUESTS sequential requests each, one keep-alive connection)"
"$PY" bench/ask_overhead.py "$P_HTTP" "$CH_HTTP" "$REQUESTS"
