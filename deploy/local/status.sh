#!/usr/bin/env bash
# Shows the parts started by deploy/local/up.sh (running or stopped, pid, ports), the ingest pipelines and row
# counts of analytics.events. Exits 0 when every part runs, 1 otherwise.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"

all=0
for c in "${COMPONENTS[@]}"; do
    pidfile="$(pidfile_of "$c")"
    ports="$(ports_of "$c")"
    if [ "$c" = llama ] && [ ! -f "$pidfile" ]; then
        printf '%-12s not started (no local LLM)\n' "$c"
        continue
    fi
    if running "$pidfile"; then
        printf '%-12s running  pid %-8s ports %s\n' "$c" "$(cat "$pidfile")" "${ports:--}"
    else
        printf '%-12s stopped  %s\n' "$c" "${ports:+ports $ports}"
        all=1
    fi
done

echo
echo "ingest pipelines (aurora-ingest status):"
if running "$(pidfile_of ingest)"; then
    "$ROOT/target/release/aurora-ingest" status --config "$AURORA_HOME/aurora-ingest.toml" \
        --api "http://127.0.0.1:$INGEST_PORT" || all=1
else
    echo "  aurora-ingest is not running"
fi

echo
echo "analytics.events:"
if running "$(pidfile_of clickhouse)"; then
    # count <query>: one number, or "-" when the table does not exist yet.
    count() { clickhouse-client --host 127.0.0.1 --port "$CH_NATIVE_PORT" --query "$1" 2>/dev/null || echo -; }
    echo "  rows                          $(count "SELECT count() FROM analytics.events")"
    echo "  inserted by pipeline events   $(count "SELECT sum(rows) FROM analytics.aurora_ingest_ledger WHERE pipeline = 'events'") (since the broker started)"
    echo "  dead letters                  $(count "SELECT count() FROM analytics.events_dead_letters")"
else
    echo "  ClickHouse is not running"
    all=1
fi
exit "$all"
