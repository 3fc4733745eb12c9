//! The native protocol codec: bytes ↔ packets, no sockets.
//!
//! The proxy frames packets rather than decoding them: it learns where each packet ends and the few facts it
//! acts on (a query's text, the end of a query's answer, exceptions), and forwards the original bytes.

pub mod block;
pub mod client_info;
pub mod client_packet;
pub mod compression;
pub mod error;
pub mod exception;
pub mod hello;
pub mod packets;
pub mod query;
pub mod revision;
pub mod server_packet;
pub mod types;
pub mod wire;

pub use error::DecodeError;
pub use revision::{Feature, Revision, PROXY_MAX_REVISION};

/// What framing depends on after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The negotiated revision, the same on both sides of the proxy.
    pub revision: Revision,
    /// Whether the current query's blocks are compressed (set by each Query packet).
    pub compression: bool,
}
