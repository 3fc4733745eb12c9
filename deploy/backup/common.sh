# Shared by backup.sh and restore.sh (sourced).
# Connection: CLICKHOUSE_HOST (127.0.0.1), CLICKHOUSE_PORT (9000), CLICKHOUSE_USER (default),
# CLICKHOUSE_PASSWORD (empty; handed to clickhouse-client as --password, so other users of the host can see it
# in `ps` while a query runs: run backups as root on the ClickHouse host). CLICKHOUSE_CLIENT is the client
# command (default clickhouse-client; e.g. "docker exec -i clickhouse clickhouse-client" on a host that runs
# ClickHouse in a container with its data directory mounted at the same path).

CLICKHOUSE_HOST="${CLICKHOUSE_HOST:-127.0.0.1}"
CLICKHOUSE_PORT="${CLICKHOUSE_PORT:-9000}"
CLICKHOUSE_USER="${CLICKHOUSE_USER:-default}"
CLICKHOUSE_CLIENT="${CLICKHOUSE_CLIENT:-clickhouse-client}"

say() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ch <query>: runs one query, TabSeparatedRaw output.
ch() {
    local cmd
    read -r -a cmd <<< "$CLICKHOUSE_CLIENT"
    CLICKHOUSE_PASSWORD="${CLICKHOUSE_PASSWORD:-}" "${cmd[@]}" --host "$CLICKHOUSE_HOST" --port "$CLICKHOUSE_PORT" \
        --user "$CLICKHOUSE_USER" ${CLICKHOUSE_PASSWORD:+--password "$CLICKHOUSE_PASSWORD"} \
        --format TabSeparatedRaw --query "$1"
}

# quote_ident <name>: a back-quoted ClickHouse identifier.
quote_ident() { printf '`%s`' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/`/\\`/g')"; }

# quote_str <text>: a single-quoted ClickHouse string literal.
quote_str() { printf "'%s'" "$(printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g")"; }

# table_data_path <db> <table>: the table's data directory on the server (ends with /).
table_data_path() {
    local db t
    db="$(quote_str "$1")"; t="$(quote_str "$2")"
    # data_paths (Array) since 20.x; data_path (String) before.
    if [ "$(ch "SELECT count() FROM system.columns WHERE database = 'system' AND table = 'tables' AND name = 'data_paths'")" = 1 ]; then
        ch "SELECT data_paths[1] FROM system.tables WHERE database = $db AND name = $t"
    else
        ch "SELECT data_path FROM system.tables WHERE database = $db AND name = $t"
    fi
}

# server_root <db> <table>: the server's <path> (the directory holding shadow/).
server_root() {
    if [ "$(ch "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'disks'")" = 1 ]; then
        ch "SELECT path FROM system.disks WHERE name = 'default'"
    else
        # Before system.disks (19.15): <path>/data/<db>/<table>/
        local p
        p="$(table_data_path "$1" "$2")"
        p="${p%/}"; p="${p%/*}"; p="${p%/*}"; p="${p%/*}"
        printf '%s/\n' "$p"
    fi
}
