//! What can go wrong with one request: a base URL or TLS setup that cannot be used (found when the client is
//! built), the way to the server, the server's answer, and ClickHouse's own refusal read as an [`Exception`].

use std::time::Duration;

use crate::exception;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL cannot be used (checked when the client is built).
    #[error("{0}")]
    Url(String),
    /// A CA file cannot be read, or TLS cannot be set up.
    #[error("{0}")]
    Tls(String),
    /// The request cannot be written: a path, header or credential that HTTP cannot carry.
    #[error("cannot send this request: {0}")]
    Request(String),
    /// No TCP connection: refused, unreachable, or the name does not resolve.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// `host:port`.
        addr: String,
        error: std::io::Error,
    },
    /// A TCP connection but no TLS session (an `https://` URL).
    #[error("TLS handshake with {addr} failed: {error}")]
    Handshake { addr: String, error: std::io::Error },
    /// Neither a connection nor a refusal within the connect timeout.
    #[error("no connection to {addr} within {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    /// The whole exchange (connect, request, answer) took longer than the request timeout.
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: String, after: Duration },
    /// The exchange failed before the answer's head arrived (the server closed the connection, or spoke no
    /// HTTP/1); `reason` is the HTTP library's error with its causes.
    #[error("the request to {addr} failed: {reason}")]
    Send { addr: String, reason: String },
    /// The answer's body broke off.
    #[error("the answer from {addr} broke off: {reason}")]
    Body { addr: String, reason: String },
    /// The answer's body is (or says it is) larger than the client reads.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The server refused the request (a status of 300 or more): ClickHouse's exception.
    #[error("{0}")]
    Exception(Exception),
}

/// A refusal, as ClickHouse writes it: the status, the code (from the `X-ClickHouse-Exception-Code` header,
/// else from the text's `Code: N`), and the text itself. An answer that is not ClickHouse's (a load balancer's
/// `Bad Gateway`) is an exception without a code whose message is the whole text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct Exception {
    /// The HTTP status.
    pub status: u16,
    /// ClickHouse's error code ([`crate::codes`]), when the answer carries one.
    pub code: Option<i32>,
    /// The code's name (`UNKNOWN_TABLE`), which servers since 21.8 print after the message.
    pub name: Option<String>,
    /// What went wrong, without code, class, name or version ([`exception::parse`]); the whole text when it
    /// is not ClickHouse's.
    pub message: String,
    /// The body as the server wrote it, trimmed: what callers show.
    pub text: String,
}

impl Exception {
    /// Reads an error answer: `status`, the `X-ClickHouse-Exception-Code` header's value when sent, the body.
    pub fn read(status: u16, header_code: Option<i32>, body: &[u8]) -> Exception {
        let text = String::from_utf8_lossy(body).trim().to_string();
        let parsed = exception::parse(&text);
        Exception {
            status,
            code: header_code.or(parsed.map(|e| e.code)),
            name: parsed.and_then(|e| e.name).map(String::from),
            message: parsed.map_or_else(|| text.clone(), |e| e.message.to_string()),
            text,
        }
    }
}

/// `error` and its causes, each once: hyper's own text is short (`connection closed before message
/// completed`), the cause says why.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
