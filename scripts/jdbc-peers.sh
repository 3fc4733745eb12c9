#!/usr/bin/env bash
# The JDBC peer tests (tests/jdbc, a Maven module): the ClickHouse JDBC driver that BI tools use, against
# aurora-proxy and against ClickHouse directly over HTTP, every answer compared.
#
#   scripts/jdbc-peers.sh install   # resolves the pinned Maven artifacts into $AURORA_CACHE/m2, compiles the tests
#   scripts/jdbc-peers.sh test      # runs them offline; needs AURORA_JDBC_DIRECT and AURORA_JDBC_PROXY (host:port
#                                   # of the HTTP interfaces); for ask(): AURORA_JDBC_ASK, AURORA_JDBC_ASK_QUESTION,
#                                   # AURORA_JDBC_ASK_SQL. Extra arguments go to Maven (e.g. -Dtest=PeersTest#errorCodes*).
#
# Driver: ru.yandex.clickhouse:clickhouse-jdbc 0.3.1, the newest that works with ClickHouse 18.16: every later one
# (0.3.2 on, com.clickhouse 0.4.x, the legacy v1 and the default jdbc-v2 of 0.10.0) runs currentUser() or
# 21.x-only SQL on connect or in DatabaseMetaData, and jdbc-v2 reads no rows from 18.16.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/tests/jdbc"
M2="${AURORA_CACHE:-$HOME/.cache/aurora}/m2"
TIMEOUT_S="${AURORA_JDBC_TIMEOUT_S:-300}"
MVN=(mvn -B -q -f "$MODULE/pom.xml" "-Dmaven.repo.local=$M2")

case "${1:-}" in
install)
    mkdir -p "$M2"
    # With no endpoints every test is skipped: this resolves the plugins, the driver and surefire's JUnit provider.
    timeout "$TIMEOUT_S" "${MVN[@]}" test
    ;;
test)
    shift
    : "${AURORA_JDBC_DIRECT:?host:port of ClickHouse HTTP}" "${AURORA_JDBC_PROXY:?host:port of aurora-proxy HTTP}"
    timeout "$TIMEOUT_S" "${MVN[@]}" -o test \
        "-Daurora.jdbc.direct=$AURORA_JDBC_DIRECT" "-Daurora.jdbc.proxy=$AURORA_JDBC_PROXY" \
        "-Daurora.jdbc.ask=${AURORA_JDBC_ASK:-}" "-Daurora.jdbc.ask.question=${AURORA_JDBC_ASK_QUESTION:-}" \
        "-Daurora.jdbc.ask.sql=${AURORA_JDBC_ASK_SQL:-}" "$@"
    ;;
*)
    echo "usage: $0 install | test [maven args]" >&2
    exit 2
    ;;
esac
