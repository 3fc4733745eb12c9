//! `aurora-proxy`: a ClickHouse native-protocol and HTTP proxy. SQL passes to ClickHouse untouched;
//! `ASK '…'` and `EXPLAIN ASK '…'` are answered by Aurora.

pub mod ask;
pub mod cluster;
pub mod codes;
pub mod config;
pub mod dialect;
pub mod gateway;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod native;
pub mod server;
pub mod telemetry;
pub mod tls;
