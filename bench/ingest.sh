#!/usr/bin/env bash
# Ingest benchmark: aurora-ingest moving N JSON events (default 1M) from a pre-filled topic into ClickHouse,
# with the daemon pinned to one core, side by side with two limits measured in the same run:
#   1. ClickHouse's own insert of the same events: clickhouse-client "INSERT … FORMAT JSONEachRow" < events.json
#      (into the envelope's columns without payload/user_id/revenue: 18.16 cannot put a JSON object into a
#      String column, so ClickHouse does less work than the daemon here);
#   2. a bare consumer of the same librdkafka build reading the same topic on one core (ingest/examples/bare_consumer.rs).
# (ClickHouse 18.16's Kafka table engine links Debian's librdkafka 2.0.2, which cannot talk to tansu, so it is
# not a comparison here; see DESIGN.md.)
#
#   bench/ingest.sh [--events N] [--core C] [--parallelism P] [--batch-rows R]
#
# --parallelism: consumers of the pipeline inside the one daemon (concurrent inserts; default 1).
# Also printed: ClickHouse copying the daemon's table into one of the same shape (INSERT … SELECT), the server's
# own cost of writing exactly these rows without any parsing.
#
# Prints rows/s of each and the daemon's rate as a ratio of each limit and of the lower one, plus the daemon's
# peak RSS. Starts its own ClickHouse and broker on free ports, stops both at the end. Not a test.
# The broker: Apache Kafka 4 (scripts/kafka.sh apache-start, the default) or tansu with AURORA_KAFKA=tansu.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EVENTS=1000000
CORE=0
PARALLELISM=1
BATCH_ROWS=200000
while [ $# -gt 0 ]; do
    case "$1" in
        --events) EVENTS="$2"; shift 2 ;;
        --core) CORE="$2"; shift 2 ;;
        --parallelism) PARALLELISM="$2"; shift 2 ;;
        --batch-rows) BATCH_ROWS="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

PY="${AURORA_CACHE:-$HOME/.cache/aurora}/venv/bin/python"
BROKER="${AURORA_KAFKA:-apache}"
case "$BROKER" in apache|tansu) ;; *) echo "AURORA_KAFKA=$BROKER: expected apache or tansu" >&2; exit 2 ;; esac
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

WORK="$(mktemp -d /tmp/aurora-bench-ingest.XXXXXX)"
CH_TCP=$(free_port); CH_HTTP=$(free_port); KAFKA=$(free_port); API=$(free_port)
DAEMON_PID=""
cleanup() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
    if [ "$BROKER" = apache ]; then
        "$ROOT/scripts/kafka.sh" apache-stop "$WORK/kafka" >/dev/null 2>&1 || true
    else
        "$ROOT/scripts/kafka.sh" stop "$WORK/kafka" >/dev/null 2>&1 || true
    fi
    "$ROOT/scripts/clickhouse.sh" stop "$WORK/ch" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building release binaries…" >&2
(cd "$ROOT" && cargo build --release -q -p aurora-ingest --bin aurora-ingest --example bare_consumer)
BIN="$ROOT/target/release/aurora-ingest"
BARE="$ROOT/target/release/examples/bare_consumer"

"$ROOT/scripts/clickhouse.sh" start "$WORK/ch" "$CH_TCP" "$CH_HTTP"
if [ "$BROKER" = apache ]; then
    "$ROOT/scripts/kafka.sh" apache-start "$WORK/kafka" "$KAFKA"
    "$ROOT/scripts/kafka.sh" apache-topic "$KAFKA" events 3
else
    "$ROOT/scripts/kafka.sh" start "$WORK/kafka" "$KAFKA"
    "$ROOT/scripts/kafka.sh" topic "$KAFKA" events 3
fi
CH() { clickhouse-client --port "$CH_TCP" "$@"; }

echo "pre-filling topic events with $EVENTS events…" >&2
"$PY" "$ROOT/tests/support/events.py" prefill --brokers "127.0.0.1:$KAFKA" --topic events --count "$EVENTS" \
    --jsonl "$WORK/events.json"
MB=$(du -m "$WORK/events.json" | cut -f1)

# 1. ClickHouse's own JSONEachRow insert of the same events.
CH -q "CREATE DATABASE bench"
CH -q "CREATE TABLE bench.direct (event_id UUID, timestamp DateTime, event_type String, tenant_id String,
       schema_version UInt16) ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp)
       ORDER BY (tenant_id, event_type, timestamp)"
t0=$(now)
CH --input_format_skip_unknown_fields=1 --date_time_input_format=best_effort \
    -q "INSERT INTO bench.direct FORMAT JSONEachRow" < "$WORK/events.json"
t1=$(now)
direct_rows=$(CH -q "SELECT count() FROM bench.direct")
direct_rate=$(python3 -c "print(round($direct_rows / ($t1 - $t0)))")

# 2. A bare consumer on one core.
read -r bare_count bare_secs _ bare_cpu < <(taskset -c "$CORE" "$BARE" "127.0.0.1:$KAFKA" events "$EVENTS")
bare_rate=$(python3 -c "print(round($bare_count / $bare_secs))")

# 3. aurora-ingest on one core.
cat > "$WORK/ingest.toml" <<EOF
api_listen = "127.0.0.1:$API"
[clickhouse]
url = "http://127.0.0.1:$CH_HTTP"
[kafka]
brokers = "127.0.0.1:$KAFKA"
[kafka.options]
"session.timeout.ms" = "6000"
[[pipelines]]
name = "bench"
topics = ["events"]
table = "bench.events"
parallelism = $PARALLELISM
batch_max_rows = $BATCH_ROWS
EOF
metric() { # <name> → value summed over the bench pipeline's samples
    curl -s "http://127.0.0.1:$API/metrics" | awk -v n="$1" '$1 ~ "^"n"\\{" {s+=$2} END {print s+0}'
}
taskset -c "$CORE" "$BIN" --config "$WORK/ingest.toml" run 2>"$WORK/ingest.log" &
DAEMON_PID=$!
until curl -sf "http://127.0.0.1:$API/health" >/dev/null; do sleep 0.05; done
peak_rss=0
first=""
while :; do
    consumed=$(metric aurora_ingest_messages_consumed_total)
    if [ -z "$first" ] && [ "${consumed%.*}" -gt 0 ]; then first=$(now); fi
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")
    [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
    inserted=$(metric aurora_ingest_rows_inserted_total)
    if [ "${inserted%.*}" -ge "$EVENTS" ]; then break; fi
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then echo "daemon died:" >&2; tail "$WORK/ingest.log" >&2; exit 1; fi
    sleep 0.05
done
done_at=$(now)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
daemon_rows=$(CH -q "SELECT count() FROM bench.events")
distinct=$(CH -q "SELECT count(DISTINCT event_id) FROM bench.events")
daemon_rate=$(python3 -c "print(round($daemon_rows / ($done_at - $first)))")
cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$DAEMON_PID/stat")
CH -q "CREATE TABLE bench.copy AS bench.events"
t0=$(now)
CH -q "INSERT INTO bench.copy SELECT * FROM bench.events"
t1=$(now)
copy_rate=$(python3 -c "print(round($daemon_rows / ($t1 - $t0)))")

python3 - "$EVENTS" "$MB" "$direct_rate" "$bare_rate" "$daemon_rate" "$daemon_rows" "$distinct" "$peak_rss" "$hwm" "$cpu" \
    "$copy_rate" "$PARALLELISM" "$BATCH_ROWS" "$bare_cpu" "$BROKER" <<'PY'
import sys
events, mb, direct, bare, daemon, rows, distinct, rss, hwm, cpu, copy, par, batch, bare_cpu, broker = sys.argv[1:]
broker = "Apache Kafka" if broker == "apache" else "tansu"
direct, bare, daemon = int(direct), int(bare), int(daemon)
print(f"events: {int(events):,} envelope JSON messages ({mb} MB), topic with 3 partitions ({broker})")
print(f"  ClickHouse JSONEachRow insert (clickhouse-client): {direct:>10,} rows/s")
print(f"  bare rdkafka consumer, 1 core:                     {bare:>10,} msgs/s  (CPU {float(bare_cpu):.2f} s)")
print(f"  ClickHouse INSERT … SELECT of the same rows:       {int(copy):>10,} rows/s  (server-side write cost only)")
print(f"  aurora-ingest, 1 core, parallelism {par}, batches {batch}:{daemon:>10,} rows/s  ({rows} rows, {distinct} distinct)")
print(f"  aurora-ingest / ClickHouse insert: {daemon / direct:.2f}")
print(f"  aurora-ingest / bare consumer:     {daemon / bare:.2f}")
print(f"  aurora-ingest / lower limit:       {daemon / min(direct, bare):.2f}")
print(f"  aurora-ingest / INSERT … SELECT:   {daemon / int(copy):.2f}")
print(f"  daemon RSS under load: peak sampled {int(rss) / 1024:.0f} MB, VmHWM {int(hwm) / 1024:.0f} MB; "
      f"CPU {float(cpu):.1f} s = {int(rows) / max(float(cpu), 0.01):,.0f} rows per CPU-second")
print(f"  per CPU-second: aurora-ingest / bare consumer = "
      f"{(int(rows) / max(float(cpu), 0.01)) / (int(events) / max(float(bare_cpu), 0.01)):.2f}")
PY
