#!/usr/bin/env bash
# Brings the whole Aurora stack up on this machine, without containers, and prints where to connect.
#
#   deploy/local/up.sh        # safe to re-run: what runs is left alone, what is missing is installed or started
#   deploy/local/status.sh    # what runs, the ingest pipelines, row counts
#   deploy/local/down.sh      # stops everything started here; data stays
#
# Starts, in order: ClickHouse (scripts/clickhouse.sh), a Kafka-compatible broker (tansu, scripts/kafka.sh; in
# memory) with topic `events` (3 partitions), the sample database of fixtures/analytics (loaded once), optionally
# llama-server (scripts/llm.sh), aurora-ingest with pipeline `events` (topic events -> analytics.events, per-minute
# rollup), deploy/local/generate_events.py producing events, and aurora-proxy (semantic file, embedding model, LLM).
#
# Everything lives under $AURORA_HOME (default ~/.local/share/aurora): data, logs (log/), pid files (run/).
# Environment:
#   ports        CH_NATIVE_PORT 9000, CH_HTTP_PORT 8123, KAFKA_PORT 9092, PROXY_NATIVE_PORT 9001,
#                PROXY_HTTP_PORT 8124, PROXY_METRICS_PORT 9464, INGEST_PORT 8125, LLAMA_PORT 8090
#   LLM          by default llama-server with Qwen2.5-Coder 1.5B (built and fetched once, ~10 min and 1.1 GB; the
#                best model that answers within a minute on 2 cores), on AURORA_LLM_THREADS threads (default: all cores);
#                AURORA_LLM=1.5b|0.5b picks the size (local = 1.5b); AURORA_LLM=none starts no model (ASK then
#                answers code 48, "no model configured");
#                AURORA_LLM_BASE_URL + AURORA_LLM_MODEL (+ AURORA_LLM_API_KEY): any OpenAI-compatible endpoint instead
#   AURORA_EVENTS_RATE   events per second of the generator (default 5)
#   AURORA_GRAFANA_URL   Grafana's base URL, linked from the console
#   AURORA_PIPELINE_ADMINS  ClickHouse users who may connect/disconnect pipelines in the console (default: default,
#                the console's user here); aurora-ingest's API token is made once in $AURORA_HOME/ingest-api-token
# A running part keeps its settings: to change them, run down.sh, then up.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"
PY="$AURORA_CACHE/venv/bin/python"
EVENTS_RATE="${AURORA_EVENTS_RATE:-5}"

say() { printf '[up] %s\n' "$*"; }
die() { printf '[up] error: %s\n' "$*" >&2; exit 1; }

# need_free <component>: its ports must be free (another program there would answer in its place).
need_free() {
    local port
    for port in $(ports_of "$1"); do
        port_open "$port" && die "port $port (for $1) is in use by another program; choose another with the environment (see $0)"
    done
    return 0
}

# wait_until <seconds> <pidfile> <log> <what> <command...>: polls the command until it succeeds.
wait_until() {
    local limit="$1" pidfile="$2" log="$3" what="$4"
    shift 4
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ! running "$pidfile"; then
            tail -n 20 "$log" >&2 || true
            die "$what exited during start; log: $log"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up within $limit s; log: $log"
        sleep 0.2
    done
}

# start_bg <component> <log> <command...>: runs the command in its own session, records its pid.
start_bg() {
    local name="$1" log="$2"
    shift 2
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$(pidfile_of "$name")"
}

# --- what is missing: installs (scripts/setup.sh) and the release binaries -------------------------------------
case "${AURORA_LLM:-}" in
    "")
        if [ -n "${AURORA_LLM_BASE_URL:-}" ]; then
            [ -n "${AURORA_LLM_MODEL:-}" ] || die "AURORA_LLM_BASE_URL is set: set AURORA_LLM_MODEL too (the model name)"
            LLM_MODE=external
        else
            LLM_MODE=local; LLM_SIZE=1.5b
        fi ;;
    none) LLM_MODE=none ;;
    local) LLM_MODE=local; LLM_SIZE=1.5b ;;
    0.5b | 1.5b) LLM_MODE=local; LLM_SIZE="$AURORA_LLM" ;;
    *) die "AURORA_LLM must be none, local, 0.5b or 1.5b (or unset), not '$AURORA_LLM'" ;;
esac
export AURORA_LLM_THREADS="${AURORA_LLM_THREADS:-$(nproc)}"

missing=()
for cmd in clickhouse-server clickhouse-client curl; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
"$PY" -c 'import confluent_kafka, clickhouse_driver' >/dev/null 2>&1 || missing+=("python packages")
[ -x "$AURORA_CACHE/tansu/bin/tansu" ] || missing+=("tansu")
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing what is missing (${missing[*]}) with scripts/setup.sh"
    AURORA_SKIP_LLM=1 "$ROOT/scripts/setup.sh"
fi
# The embedding model and ONNX Runtime (fetched once; prints their paths).
eval "$(AURORA_PYTHON="$PY" "$ROOT/scripts/embeddings.sh" | sed -n 's/^\(ORT_DYLIB_PATH\|AURORA_EMBED_MODEL_DIR\)=/&/p')"
[ -n "${AURORA_EMBED_MODEL_DIR:-}" ] && [ -n "${ORT_DYLIB_PATH:-}" ] || die "scripts/embeddings.sh gave no model paths"
export ORT_DYLIB_PATH
if [ "$LLM_MODE" = local ]; then
    if ! "$ROOT/scripts/llm.sh" installed "$LLM_SIZE" 2>/dev/null; then
        say "local model: building llama-server and fetching Qwen2.5-Coder $LLM_SIZE once (~10 min on 2 cores;" \
            "progress below; AURORA_LLM=none skips it)"
    fi
    AURORA_PYTHON="$PY" "$ROOT/scripts/llm.sh" install "$LLM_SIZE" >/dev/null
fi

command -v cargo >/dev/null 2>&1 \
    || die "cargo is missing: install Rust 1.89 or newer (https://rustup.rs) and re-run"
say "cargo build --release -p aurora-proxy -p aurora-ingest (nothing to do when up to date)"
(cd "$ROOT" && cargo build --release --quiet -p aurora-proxy -p aurora-ingest)
PROXY_BIN="$ROOT/target/release/aurora-proxy"
INGEST_BIN="$ROOT/target/release/aurora-ingest"

mkdir -p "$RUN" "$LOG" "$CH_DIR" "$KAFKA_DIR"

# --- ClickHouse ---------------------------------------------------------------------------------------------------
if running "$(pidfile_of clickhouse)"; then
    say "ClickHouse already running (pid $(cat "$(pidfile_of clickhouse)"))"
else
    need_free clickhouse
    "$ROOT/scripts/clickhouse.sh" start "$CH_DIR" "$CH_NATIVE_PORT" "$CH_HTTP_PORT"
    say "ClickHouse started (pid $(cat "$(pidfile_of clickhouse)"))"
fi
ch() { clickhouse-client --host 127.0.0.1 --port "$CH_NATIVE_PORT" "$@"; }

# --- sample data (once: afterwards analytics.events also holds what the pipeline inserted) ------------------------
if [ ! -f "$CH_DIR/analytics-fixtures.loaded" ]; then
    say "loading the sample database analytics (fixtures/analytics)"
    "$PY" "$ROOT/fixtures/analytics/load.py" --host 127.0.0.1 --port "$CH_NATIVE_PORT" >>"$LOG/fixtures.log" 2>&1 \
        || die "loading fixtures/analytics failed; log: $LOG/fixtures.log"
    touch "$CH_DIR/analytics-fixtures.loaded"
fi

# --- broker and topic ---------------------------------------------------------------------------------------------
if running "$(pidfile_of broker)"; then
    say "broker already running (pid $(cat "$(pidfile_of broker)"))"
else
    need_free broker
    if running "$(pidfile_of ingest)"; then
        # The daemon's consumers and its ledger belong to the broker that is gone.
        say "stopping aurora-ingest: its broker is gone"
        kill -TERM "$(cat "$(pidfile_of ingest)")"
        for _ in $(seq 1 150); do running "$(pidfile_of ingest)" || break; sleep 0.2; done
        running "$(pidfile_of ingest)" && kill -KILL "$(cat "$(pidfile_of ingest)")"
        rm -f "$(pidfile_of ingest)"
    fi
    "$ROOT/scripts/kafka.sh" start "$KAFKA_DIR" "$KAFKA_PORT"
    # The broker keeps messages in memory: a new one starts at offset 0, so the ingest ledger's record of the
    # previous broker's offsets (which would make the daemon skip the new messages) is dropped.
    ch --query "DROP TABLE IF EXISTS analytics.aurora_ingest_ledger"
    say "broker started on 127.0.0.1:$KAFKA_PORT (pid $(cat "$(pidfile_of broker)"))"
fi
if ! "$AURORA_CACHE/tansu/bin/tansu" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" | grep -q '"name":"events"'; then
    "$ROOT/scripts/kafka.sh" topic "$KAFKA_PORT" events 3
    say "topic events created (3 partitions)"
fi

# --- LLM ----------------------------------------------------------------------------------------------------------
LLM_ARGS=()
case "$LLM_MODE" in
    local)
        if running "$(pidfile_of llama)"; then
            say "llama-server already running (pid $(cat "$(pidfile_of llama)"))"
        else
            need_free llama
            "$ROOT/scripts/llm.sh" start "$LLAMA_DIR" "$LLAMA_PORT" "$LLM_SIZE"
        fi
        # A small model on few cores: a first, uncached prompt can take minutes.
        LLM_ARGS=(--llm-base-url "http://127.0.0.1:$LLAMA_PORT/v1" --llm-model qwen --llm-timeout 300s)
        ;;
    external) LLM_ARGS=(--llm-base-url "$AURORA_LLM_BASE_URL" --llm-model "$AURORA_LLM_MODEL") ;;
esac

# --- aurora-ingest ------------------------------------------------------------------------------------------------
if running "$(pidfile_of ingest)"; then
    say "aurora-ingest already running (pid $(cat "$(pidfile_of ingest)"))"
else
    need_free ingest
    if [ ! -s "$INGEST_TOKEN_FILE" ]; then
        (umask 077 && "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$INGEST_TOKEN_FILE")
        say "aurora-ingest API token written to $INGEST_TOKEN_FILE"
    fi
    cat >"$AURORA_HOME/aurora-ingest.toml" <<EOF
# Written by deploy/local/up.sh at each start of aurora-ingest (keys: ingest/README.md).
api_listen = "127.0.0.1:$INGEST_PORT"
api_token_file = "$INGEST_TOKEN_FILE"

[clickhouse]
url = "http://127.0.0.1:$CH_HTTP_PORT"

[kafka]
brokers = "127.0.0.1:$KAFKA_PORT"

[kafka.options]
"session.timeout.ms" = "10000"

[[pipelines]]
name = "events"
topics = ["events"]
table = "analytics.events"
rollup = true
batch_max_wait = "1s"
columns = [
    { name = "event_id", type = "UUID", required = true },
    { name = "timestamp", type = "DateTime", required = true },
    { name = "event_type", type = "String", required = true },
    { name = "tenant_id", type = "String", required = true },
    { name = "user_id", path = "payload.user_id", type = "String" },
    { name = "revenue", path = "payload.amount", type = "Float64" },
    { name = "payload", type = "String" },
    { name = "schema_version", type = "UInt16" },
]
EOF
    start_bg ingest "$LOG/aurora-ingest.log" "$INGEST_BIN" run --config "$AURORA_HOME/aurora-ingest.toml"
    wait_until 30 "$(pidfile_of ingest)" "$LOG/aurora-ingest.log" aurora-ingest \
        curl -fsS --max-time 1 "http://127.0.0.1:$INGEST_PORT/health"
    say "aurora-ingest started (pid $(cat "$(pidfile_of ingest)")), pipeline events: topic events -> analytics.events"
fi

# --- event generator ----------------------------------------------------------------------------------------------
if running "$(pidfile_of generator)"; then
    say "event generator already running (pid $(cat "$(pidfile_of generator)"))"
else
    start_bg generator "$LOG/generate-events.log" \
        "$PY" "$ROOT/deploy/local/generate_events.py" --bootstrap "127.0.0.1:$KAFKA_PORT" --topic events --rate "$EVENTS_RATE"
    sleep 0.5
    running "$(pidfile_of generator)" || { tail -n 20 "$LOG/generate-events.log" >&2; die "the event generator exited; log: $LOG/generate-events.log"; }
    say "event generator started (pid $(cat "$(pidfile_of generator)")), $EVENTS_RATE events/s into topic events"
fi

# --- aurora-proxy -------------------------------------------------------------------------------------------------
if running "$(pidfile_of proxy)"; then
    say "aurora-proxy already running (pid $(cat "$(pidfile_of proxy)"))"
else
    need_free proxy
    PROXY_ARGS=(
        --native-listen "127.0.0.1:$PROXY_NATIVE_PORT" --http-listen "127.0.0.1:$PROXY_HTTP_PORT"
        --metrics-listen "127.0.0.1:$PROXY_METRICS_PORT"
        --upstream-native "127.0.0.1:$CH_NATIVE_PORT" --upstream-http "http://127.0.0.1:$CH_HTTP_PORT"
        --semantic-file "$ROOT/fixtures/analytics/semantic.yaml"
        --embed-model-dir "$AURORA_EMBED_MODEL_DIR" --cache-dir "$AURORA_HOME/cache"
        --ingest-api-url "http://127.0.0.1:$INGEST_PORT" --ingest-api-token-file "$INGEST_TOKEN_FILE"
        --pipeline-admins "${AURORA_PIPELINE_ADMINS:-default}"
    )
    [ -n "${AURORA_GRAFANA_URL:-}" ] && PROXY_ARGS+=(--grafana-url "$AURORA_GRAFANA_URL")
    mkdir -p "$AURORA_HOME/cache"
    start_bg proxy "$LOG/aurora-proxy.log" "$PROXY_BIN" "${PROXY_ARGS[@]}" "${LLM_ARGS[@]}"
    wait_until 30 "$(pidfile_of proxy)" "$LOG/aurora-proxy.log" aurora-proxy \
        curl -fsS --max-time 1 "http://127.0.0.1:$PROXY_METRICS_PORT/health"
    wait_until 10 "$(pidfile_of proxy)" "$LOG/aurora-proxy.log" aurora-proxy port_open "$PROXY_NATIVE_PORT"
    say "aurora-proxy started (pid $(cat "$(pidfile_of proxy)")), LLM: $LLM_MODE"
fi

ask_note=""
[ "$LLM_MODE" = none ] && ask_note="
                         (no LLM configured: ASK answers code 48; down.sh, then up.sh without AURORA_LLM=none,
                          or set AURORA_LLM_BASE_URL and AURORA_LLM_MODEL)"
cat <<INFO

Aurora is up (data, logs and pid files under $AURORA_HOME).
  SQL through the proxy:  clickhouse-client --port $PROXY_NATIVE_PORT
  HTTP through the proxy: curl 'http://127.0.0.1:$PROXY_HTTP_PORT/?query=SELECT+count()+FROM+analytics.events'
  Console:                http://127.0.0.1:$PROXY_HTTP_PORT/ui/   (user default, no password)
  Metrics:                http://127.0.0.1:$PROXY_METRICS_PORT/metrics (proxy), http://127.0.0.1:$INGEST_PORT/metrics (ingest)
  Ingest API:             http://127.0.0.1:$INGEST_PORT/pipelines   (Authorization: Bearer \$(cat $INGEST_TOKEN_FILE);
                          $INGEST_BIN status --config $AURORA_HOME/aurora-ingest.toml)
  Kafka:                  127.0.0.1:$KAFKA_PORT, topic events (the generator sends $EVENTS_RATE events/s)
  ClickHouse itself:      clickhouse-client --port $CH_NATIVE_PORT, http://127.0.0.1:$CH_HTTP_PORT
  Ask a question:
    clickhouse-client --port $PROXY_NATIVE_PORT --query "SELECT * FROM ask('How many purchase events were there per tenant in October 2026?')"$ask_note
  Logs:                   $LOG/aurora-proxy.log, $LOG/aurora-ingest.log, $LOG/generate-events.log,
                          $KAFKA_DIR/tansu.log, $CH_DIR/log/$([ "$LLM_MODE" = local ] && echo ", $LLAMA_DIR/llama.log")
  Status / stop:          deploy/local/status.sh, deploy/local/down.sh
INFO
