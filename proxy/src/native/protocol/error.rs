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
    /// The bytes break the protocol in a way ClickHouse answers with a code of its own (a checksum that does not
    /// match, a compressed frame whose sizes cannot be true, a handshake string over its limit). The connection
    /// cannot continue; the client gets an Exception with `code`, as ClickHouse would send.
    #[error("{reason}")]
    Rejected { code: i32, reason: String },
    /// Framing this packet would hold `needed` decompressed bytes, more than its allowance
    /// ([`super::block::FrameState::allowance`]). Nothing was consumed: with a larger allowance the same call
    /// resumes where this one stopped.
    #[error("framing needs {needed} decompressed bytes, over the allowance")]
    OverAllowance { needed: usize },
    /// Valid protocol that the proxy cannot frame (for example a column type whose size is not self-describing).
    /// The connection can go on as a plain byte relay.
    #[error("cannot frame packet: {0}")]
    Unsupported(String),
}

impl DecodeError {
    pub fn malformed(reason: impl Into<String>) -> Self {
        DecodeError::Malformed(reason.into())
    }

    pub fn rejected(code: i32, reason: impl Into<String>) -> Self {
        DecodeError::Rejected {
            code,
            reason: reason.into(),
        }
    }

    pub fn unsupported(reason: impl Into<String>) -> Self {
        DecodeError::Unsupported(reason.into())
    }
}
