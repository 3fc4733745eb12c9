-- Runs once, when the ClickHouse container starts on an empty volume: the analytics schema of the contracts.
CREATE DATABASE IF NOT EXISTS analytics;

CREATE TABLE IF NOT EXISTS analytics.events
(
    event_id UUID,
    timestamp DateTime,
    event_type String,
    tenant_id String,
    user_id String,
    revenue Float64,
    payload String,
    schema_version UInt16
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (tenant_id, event_type, timestamp);
