#!/bin/bash
# Runs once, on an empty volume: the read-only user of Grafana's datasources.
# readonly = 2 lets the Grafana plugin set max_execution_time; the user can read analytics only.
set -euo pipefail
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery --query "
CREATE USER IF NOT EXISTS ${GRAFANA_CH_USER} IDENTIFIED WITH sha256_password BY '${GRAFANA_CH_PASSWORD}' SETTINGS readonly = 2;
GRANT SELECT ON analytics.* TO ${GRAFANA_CH_USER};
"
