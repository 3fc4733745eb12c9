#!/usr/bin/env bash
# Native-protocol benchmark: aurora-proxy against ClickHouse directly, in one run, on this machine.
#
#   bench/native.sh [--rows N] [--runs N] [--seconds S] [--cluster] [--users]
#
# --users: the proxy with a proxy user (`[[users]]`: login checked by the proxy, mapped to ClickHouse's default,
# a concurrency limit of 64 and 600,000 requests per minute, so every query takes its turn and a token): the
# cost of the gateway's policies; the proxied clients log in as that user.
#
# --cluster: three ClickHouse nodes (scripts/cluster.sh: ZooKeeper and three replicas) behind the proxy, balanced
# by least connections, against the first node directly.
#
# Prints, for each measurement, the direct and proxied numbers and their ratio (proxy / direct, higher is
# better, 1.00 = no overhead):
#   1. `SELECT 1` queries per second with clickhouse-benchmark, 4 and 16 concurrent connections (median of
#      --runs alternating runs of --seconds each);
#   2. streaming N UInt64 rows (default 50M) with `clickhouse-client … FORMAT Null`, with the client's
#      compression off and on (median of --runs alternating runs, rows/s; the time includes the client's start);
#   3. the proxy's peak resident memory (VmHWM) before and after the streaming runs.
# It starts its own ClickHouse (scripts/clickhouse.sh) and proxy (target/release/aurora-proxy) on free ports
# and stops both at the end. Not a test: nothing here passes or fails.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROWS=50000000
RUNS=5
SECONDS_PER_QPS=6
CLUSTER=0
USERS=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cluster) CLUSTER=1; shift ;;
        --users) USERS=1; shift ;;
        --rows) ROWS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --seconds) SECONDS_PER_QPS="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK="$(mktemp -d /tmp/aurora-bench-native.XXXXXX)"
CH_TCP=$(free_port); CH_HTTP=$(free_port); PX_NATIVE=$(free_port); PX_HTTP=$(free_port); PX_METRICS=$(free_port)
PROXY_PID=""
cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
    "$ROOT/scripts/clickhouse.sh" stop "$WORK/ch" >/dev/null 2>&1 || true
    [ "$CLUSTER" = 1 ] && "$ROOT/scripts/cluster.sh" stop "$WORK/cluster" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$ROOT/target/release/aurora-proxy" ] || (cd "$ROOT" && cargo build --release -p aurora-proxy)
NODES_CONFIG=()
if [ "$CLUSTER" = 1 ]; then
    BASE=$(python3 -c 'import socket,sys
for base in range(41000, 60000, 97):
    try:
        socks = []
        for p in [base] + [base + 10 * i + k for i in (1, 2, 3) for k in range(3)]:
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); sys.exit(0)
    except OSError:
        pass')
    "$ROOT/scripts/cluster.sh" start "$WORK/cluster" "$BASE"
    CH_TCP=$((BASE + 10)); CH_HTTP=$((BASE + 11))
    {
        echo 'balance = "least_connections"'
        for i in 1 2 3; do
            printf '[[nodes]]\nname = "ch%s"\nnative = "127.0.0.1:%s"\nhttp = "http://127.0.0.1:%s"\n' \
                "$i" "$((BASE + 10 * i))" "$((BASE + 10 * i + 1))"
        done
    } > "$WORK/nodes.toml"
    NODES_CONFIG=(--config "$WORK/nodes.toml")
else
    mkdir -p "$WORK/ch"
    "$ROOT/scripts/clickhouse.sh" start "$WORK/ch" "$CH_TCP" "$CH_HTTP"
fi
PX_AUTH=()
if [ "$USERS" = 1 ]; then
    {
        [ "${#NODES_CONFIG[@]}" -gt 0 ] && cat "$WORK/nodes.toml"
        printf '[[users]]\nname = "bench"\npassword_sha256 = "%s"\nclickhouse_user = "default"\n' \
            "$(printf 'bench-pw' | sha256sum | cut -d' ' -f1)"
        printf 'max_concurrent_queries = 64\nmax_queue_size = 64\nrequests_per_minute = 600000\n'
    } > "$WORK/users.toml"
    NODES_CONFIG=(--config "$WORK/users.toml")
    PX_AUTH=(--user bench --password bench-pw)
fi
RUST_LOG=warn "$ROOT/target/release/aurora-proxy" --native-listen "127.0.0.1:$PX_NATIVE" --http-listen "127.0.0.1:$PX_HTTP" \
    --metrics-listen "127.0.0.1:$PX_METRICS" --upstream-native "127.0.0.1:$CH_TCP" \
    --upstream-http "http://127.0.0.1:$CH_HTTP" "${NODES_CONFIG[@]}" 2>"$WORK/proxy.log" &
PROXY_PID=$!
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$PX_NATIVE") 2>/dev/null && break; sleep 0.05; done

hwm() { awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status"; }
ratio() { python3 -c "import sys; d,p=float(sys.argv[1]),float(sys.argv[2]); print(f'{p/d:.3f}' if d else 'n/a')" "$1" "$2"; }

echo "aurora-proxy native benchmark — $(nproc) cores, ClickHouse $(clickhouse-client --port "$CH_TCP" -q 'SELECT version()')$([ "$CLUSTER" = 1 ] && echo ', proxy over three nodes, direct to one')$([ "$USERS" = 1 ] && echo ', through a proxy user with limits')"
echo

qps() { # <port> <concurrency> [login arguments]
    echo "SELECT 1" | clickhouse-benchmark --port "$1" -c "$2" -t "$SECONDS_PER_QPS" -d 0 "${@:3}" 2>&1 \
        | awk '/QPS:/ { for (i = 1; i <= NF; i++) if ($i == "QPS:") { v = $(i + 1); sub(",", "", v); print v; exit } }'
}
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
printf '%-34s %14s %14s %8s\n' "measurement" "direct" "proxy" "ratio"
for c in 4 16; do
    # Alternate direct and proxied runs so that drift in the machine's load hits both alike; report medians.
    ds=(); ps=()
    for _ in $(seq 1 "$RUNS"); do ds+=("$(qps "$CH_TCP" "$c")"); ps+=("$(qps "$PX_NATIVE" "$c" "${PX_AUTH[@]}")"); done
    d=$(median "${ds[@]}"); p=$(median "${ps[@]}")
    printf '%-34s %14.0f %14.0f %8s\n' "SELECT 1, $c connections (q/s)" "$d" "$p" "$(ratio "$d" "$p")"
done

HWM_BEFORE=$(hwm)
stream_once() { # <port> <compression 0|1> → seconds
    local start end
    start=$(date +%s.%N)
    clickhouse-client --port "$1" --compression "$2" "${@:3}" -q "SELECT number FROM numbers($ROWS) FORMAT Null"
    end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}
for comp in 0 1; do
    ds=(); ps=()
    for _ in $(seq 1 "$RUNS"); do ds+=("$(stream_once "$CH_TCP" "$comp")"); ps+=("$(stream_once "$PX_NATIVE" "$comp" "${PX_AUTH[@]}")"); done
    d=$(python3 -c "print($ROWS / $(median "${ds[@]}"))"); p=$(python3 -c "print($ROWS / $(median "${ps[@]}"))")
    label="stream $((ROWS / 1000000))M UInt64, compression $comp"
    printf '%-34s %14.3g %14.3g %8s\n' "$label (rows/s)" "$d" "$p" "$(ratio "$d" "$p")"
done
echo
echo "proxy peak RSS: ${HWM_BEFORE} kB before streaming, $(hwm) kB after ($(( RUNS * 2 )) streams of $ROWS rows)"
