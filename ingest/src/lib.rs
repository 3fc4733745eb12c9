//! aurora-ingest: Kafka topics into ClickHouse tables, with pipelines connected and disconnected while the
//! daemon runs, dead letters for what cannot be a row, and nothing lost or doubled (see README.md).

pub mod api;
pub mod cli;
pub mod clickhouse;
pub mod columns;
pub mod config;
pub mod daemon;
pub mod kafka_options;
pub mod metrics;
pub mod pipeline;
pub mod schema;
pub mod sql;
pub mod status;
pub mod table_keys;
pub mod worker;
