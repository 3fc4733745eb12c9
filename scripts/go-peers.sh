#!/usr/bin/env bash
# Go peers of aurora-proxy: the clickhouse-go/v2 test module in tests/go (the driver of Grafana's ClickHouse plugin).
#
#   scripts/go-peers.sh install                        # download the modules, go vet, build the tests (idempotent)
#   scripts/go-peers.sh test [--driver VER] <go test args>   # run them offline; VER: v2.51.0 (default) or v2.43.0
#
# v2.51.0 is the newest clickhouse-go the module proxy serves here; v2.43.0 is the one grafana/clickhouse-datasource
# pins. Both build the same sources: tests/go/go.mod and tests/go/go.v2.43.0.mod (go -modfile).
# Modules and the build cache live under ${AURORA_CACHE:-~/.cache/aurora}/go. The endpoints come from the
# environment (AURORA_GO_DIRECT_NATIVE, AURORA_GO_PROXY_NATIVE, AURORA_GO_DIRECT_HTTP, AURORA_GO_PROXY_HTTP,
# AURORA_GO_PROXY_TLS): see tests/go/helpers_test.go.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}/go"
export GOMODCACHE="$CACHE/mod" GOCACHE="$CACHE/build" GOFLAGS=-mod=readonly GOTOOLCHAIN=local
DRIVERS=(v2.51.0 v2.43.0)

modfile() { # <version>
    case "$1" in
        v2.51.0) echo go.mod ;;
        v2.43.0) echo go.v2.43.0.mod ;;
        *) echo "unknown driver version $1 (known: ${DRIVERS[*]})" >&2; exit 2 ;;
    esac
}

cmd="${1:-}"
shift || true
cd "$ROOT/tests/go"
case "$cmd" in
    install)
        command -v go >/dev/null || { echo "go is not installed" >&2; exit 1; }
        for v in "${DRIVERS[@]}"; do
            m="$(modfile "$v")"
            go mod download -modfile="$m"
            go vet -modfile="$m" .
            go test -modfile="$m" -count=1 -run '^$' . >/dev/null   # compiles the test binary into the cache
        done
        ;;
    test)
        driver=v2.51.0
        if [[ "${1:-}" == "--driver" ]]; then
            driver="$2"
            shift 2
        fi
        GOPROXY=off exec go test -modfile="$(modfile "$driver")" -count=1 -timeout 300s "$@" .
        ;;
    *)
        echo "usage: $0 install | test [--driver v2.51.0|v2.43.0] <go test args>" >&2
        exit 2
        ;;
esac
