//! Errors that end a native session.

use super::protocol::DecodeError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client broke the protocol.
    #[error("client protocol error: {0}")]
    ClientProtocol(DecodeError),
    /// ClickHouse (or whatever listens upstream) broke the protocol.
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(DecodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
