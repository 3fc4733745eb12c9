//! The ClickHouse native-protocol side of the proxy.
//!
//! `protocol` (codec: bytes ↔ packets) → `connection` (buffered socket) → `session` (one client's state
//! machine: handshake, relay, ASK) → `server` (listener, connection limit, graceful shutdown).

pub mod budget;
pub mod connection;
pub mod error;
pub mod protocol;
pub mod server;
pub mod session;
pub mod upstream;
