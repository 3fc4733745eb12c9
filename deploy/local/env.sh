# Shared settings of deploy/local/*.sh (sourced, not run).
AURORA_HOME="${AURORA_HOME:-$HOME/.local/share/aurora}"
CH_NATIVE_PORT="${CH_NATIVE_PORT:-9000}"
CH_HTTP_PORT="${CH_HTTP_PORT:-8123}"
PROXY_NATIVE_PORT="${PROXY_NATIVE_PORT:-9001}"
PROXY_HTTP_PORT="${PROXY_HTTP_PORT:-8124}"
PROXY_METRICS_PORT="${PROXY_METRICS_PORT:-9464}"

# running <pidfile>: whether the process in the pid file is alive.
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
