//! `aurora-common`: the ClickHouse plumbing that the proxy, the natural-language engine and aurora-ingest
//! share — error codes by name ([`codes`]), the one reader of ClickHouse's error text ([`exception`]), the
//! reading of a secret that configuration names by environment variable or file ([`secret`]), the one small
//! HTTP/1 client for ClickHouse's HTTP interface and aurora-ingest's API ([`http`]: timeouts, a byte bound on
//! every answer, `https://`), and the binaries' start-up and shutdown ([`telemetry`]: logging, signals).

pub mod codes;
pub mod exception;
pub mod http;
pub mod secret;
pub mod telemetry;
