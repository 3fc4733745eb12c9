# Shared settings of deploy/local/*.sh (sourced, not run). Every value may be overridden by the environment.
AURORA_HOME="${AURORA_HOME:-$HOME/.local/share/aurora}"
AURORA_CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
CH_NATIVE_PORT="${CH_NATIVE_PORT:-9000}"
CH_HTTP_PORT="${CH_HTTP_PORT:-8123}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
PROXY_NATIVE_PORT="${PROXY_NATIVE_PORT:-9001}"
PROXY_HTTP_PORT="${PROXY_HTTP_PORT:-8124}"
PROXY_METRICS_PORT="${PROXY_METRICS_PORT:-9464}"
INGEST_PORT="${INGEST_PORT:-8125}"
LLAMA_PORT="${LLAMA_PORT:-8090}"

RUN="$AURORA_HOME/run"   # pid files of the processes started here (ClickHouse, broker, llama keep theirs in their dirs)
LOG="$AURORA_HOME/log"
CH_DIR="$AURORA_HOME/clickhouse"
KAFKA_DIR="$AURORA_HOME/kafka"
LLAMA_DIR="$AURORA_HOME/llama"
# aurora-ingest's API token (made once by up.sh, mode 600): the daemon, its CLI and the proxy's console read it.
INGEST_TOKEN_FILE="$AURORA_HOME/ingest-api-token"

# Pid file of each part, in start order.
COMPONENTS=(clickhouse broker llama ingest generator proxy)
pidfile_of() {
    case "$1" in
        clickhouse) echo "$CH_DIR/clickhouse.pid" ;;
        broker) echo "$KAFKA_DIR/tansu.pid" ;;
        llama) echo "$LLAMA_DIR/llama.pid" ;;
        *) echo "$RUN/$1.pid" ;;
    esac
}
ports_of() {
    case "$1" in
        clickhouse) echo "$CH_NATIVE_PORT $CH_HTTP_PORT" ;;
        broker) echo "$KAFKA_PORT" ;;
        llama) echo "$LLAMA_PORT" ;;
        ingest) echo "$INGEST_PORT" ;;
        generator) echo "" ;;
        proxy) echo "$PROXY_NATIVE_PORT $PROXY_HTTP_PORT $PROXY_METRICS_PORT" ;;
    esac
}

# running <pidfile>: whether the process in the pid file is alive.
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# port_open <port>: whether something accepts connections on 127.0.0.1:<port>.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
