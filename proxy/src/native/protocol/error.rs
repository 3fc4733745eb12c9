//! Errors of the codec layer.

/// Why bytes could not be decoded as a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes so far are a valid beginning; at least `needed` bytes (counted from the packet start) are required.
    #[error("incomplete packet: at least {needed} bytes needed")]
    Incomplete { needed: usize },
    /// The bytes break the protocol: the connection cannot continue.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// Valid protocol that the proxy cannot frame (for example a column type whose size is not self-describing).
    /// The connection can go on as a plain byte relay.
    #[error("cannot frame packet: {0}")]
    Unsupported(String),
}

impl DecodeError {
    pub fn malformed(reason: impl Into<String>) -> Self {
        DecodeError::Malformed(reason.into())
    }

    pub fn unsupported(reason: impl Into<String>) -> Self {
        DecodeError::Unsupported(reason.into())
    }
}
