#!/usr/bin/env bash
# HTTP interface benchmark: aurora-proxy against ClickHouse directly, in one run, on one machine.
#
#   bench/http.sh            # builds nothing; needs target/release/aurora-proxy, wrk, curl, clickhouse-server
#
# Prints, for proxy and direct:
#   - small queries: requests/s of `SELECT 1` with wrk, 16 connections, DURATION seconds each, alternating
#     direct/proxy ROUNDS times (the median of each side is compared);
#   - streaming: seconds to read `SELECT number FROM numbers(5000000) FORMAT RowBinary` (40 MB) with curl,
#     STREAM_RUNS alternating runs, median compared;
#   - the proxy's peak RSS (VmHWM) after streaming ~1 GB through it.
# Targets (issue 3): requests/s ratio >= 0.95, streaming ratio >= 0.97. On a small machine the load generator,
# ClickHouse and the proxy share the CPUs, so the small-query ratio measures the proxy's CPU per request.
#
# Environment: DURATION (5), ROUNDS (3), STREAM_RUNS (5), CONNECTIONS (16), AURORA_PROXY_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PROXY_BIN="${AURORA_PROXY_BIN:-$ROOT/target/release/aurora-proxy}"
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
STREAM_RUNS="${STREAM_RUNS:-5}"
CONNECTIONS="${CONNECTIONS:-16}"

for tool in wrk curl clickhouse-server python3; do
    command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool is missing" >&2; exit 2; }
done
[ -x "$PROXY_BIN" ] || { echo "bench/http.sh: no $PROXY_BIN (cargo build --release -p aurora-proxy)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK="$(mktemp -d /tmp/aurora-bench-http.XXXXXX)"
CH_TCP="$(free_port)"; CH_HTTP="$(free_port)"
P_NATIVE="$(free_port)"; P_HTTP="$(free_port)"; P_METRICS="$(free_port)"
PROXY_PID=""

cleanup() {
    if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill -TERM "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
    fi
    "$ROOT/scripts/clickhouse.sh" stop "$WORK/clickhouse" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$ROOT/scripts/clickhouse.sh" start "$WORK/clickhouse" "$CH_TCP" "$CH_HTTP"
"$PROXY_BIN" --native-listen "127.0.0.1:$P_NATIVE" --http-listen "127.0.0.1:$P_HTTP" \
    --metrics-listen "127.0.0.1:$P_METRICS" --upstream-native "127.0.0.1:$CH_TCP" \
    --upstream-http "http://127.0.0.1:$CH_HTTP" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do
    [ "$(curl -fsS "http://127.0.0.1:$P_HTTP/ping" 2>/dev/null)" = "Ok." ] && break
    sleep 0.05
done
[ "$(curl -fsS "http://127.0.0.1:$P_HTTP/ping")" = "Ok." ] || { echo "proxy did not start:" >&2; cat "$WORK/proxy.log" >&2; exit 1; }

DIRECT="http://127.0.0.1:$CH_HTTP"
PROXY="http://127.0.0.1:$P_HTTP"
SMALL="/?query=SELECT%201"
STREAM="/?query=SELECT%20number%20FROM%20numbers(5000000)%20FORMAT%20RowBinary"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v p="$1" -v d="$2" 'BEGIN {printf "%.3f", p/d}'; }

rps() { # <base url>
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$1$SMALL" | awk '/Non-2xx/ {bad=1} /Requests\/sec/ {r=$2} END {if (bad) print "0"; else print r}'
}

stream_seconds() { # <base url>
    curl -fsS -o /dev/null -w '%{time_total}\n' "$1$STREAM"
}

echo "== warm-up"
wrk -t2 -c"$CONNECTIONS" -d1s "$DIRECT$SMALL" >/dev/null
wrk -t2 -c"$CONNECTIONS" -d1s "$PROXY$SMALL" >/dev/null
stream_seconds "$DIRECT" >/dev/null; stream_seconds "$PROXY" >/dev/null

echo "== small queries: SELECT 1, wrk ${CONNECTIONS} connections, ${DURATION}s x ${ROUNDS} rounds each, alternating"
: >"$WORK/rps.direct"; : >"$WORK/rps.proxy"
for round in $(seq "$ROUNDS"); do
    d="$(rps "$DIRECT")"; p="$(rps "$PROXY")"
    echo "$d" >>"$WORK/rps.direct"; echo "$p" >>"$WORK/rps.proxy"
    printf '  round %d: direct %10.1f req/s   proxy %10.1f req/s\n' "$round" "$d" "$p"
done
RPS_D="$(median <"$WORK/rps.direct")"; RPS_P="$(median <"$WORK/rps.proxy")"

echo "== streaming: 5M rows RowBinary (40 MB), ${STREAM_RUNS} runs each, alternating"
: >"$WORK/st.direct"; : >"$WORK/st.proxy"
for run in $(seq "$STREAM_RUNS"); do
    d="$(stream_seconds "$DIRECT")"; p="$(stream_seconds "$PROXY")"
    echo "$d" >>"$WORK/st.direct"; echo "$p" >>"$WORK/st.proxy"
    printf '  run %d: direct %.3f s   proxy %.3f s\n' "$run" "$d" "$p"
done
ST_D="$(median <"$WORK/st.direct")"; ST_P="$(median <"$WORK/st.proxy")"

echo "== peak RSS while streaming ~1 GB (125M rows RowBinary) through the proxy"
RSS_BEFORE="$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status")"
BIG="/?query=SELECT%20number%20FROM%20numbers(125000000)%20FORMAT%20RowBinary"
BYTES="$(curl -fsS -o /dev/null -w '%{size_download}' "$PROXY$BIG")"
HWM="$(awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status")"

echo
echo "== results"
printf '  small queries  direct %10.1f req/s  proxy %10.1f req/s  ratio proxy/direct %s (target >= 0.95)\n' \
    "$RPS_D" "$RPS_P" "$(ratio "$RPS_P" "$RPS_D")"
# Streaming compares throughput: direct time / proxy time.
printf '  5M rows stream direct %10.3f s      proxy %10.3f s      ratio proxy/direct %s (throughput; target >= 0.97)\n' \
    "$ST_D" "$ST_P" "$(ratio "$ST_D" "$ST_P")"
printf '  proxy RSS      before %d KiB, peak (VmHWM) %d KiB after relaying %d bytes\n' "$RSS_BEFORE" "$HWM" "$BYTES"
