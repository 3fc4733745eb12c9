//! `aurora-common`: the ClickHouse plumbing that the proxy, the natural-language engine and aurora-ingest
//! share — error codes by name ([`codes`]), the one reader of ClickHouse's error text ([`exception`]) and the
//! reading of a secret that configuration names by environment variable or file ([`secret`]).
//!
//! Nothing here does I/O beyond reading that one variable or file: no runtime, no network.

pub mod codes;
pub mod exception;
pub mod secret;
