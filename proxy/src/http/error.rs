//! Errors of the HTTP side and the ClickHouse-style answers they turn into.
//!
//! A client of ClickHouse's HTTP interface reads an error from three places: the status code, the
//! `X-ClickHouse-Exception-Code` header and a text body `Code: N. DB::Exception: message. (NAME) `. Errors the
//! proxy raises itself (ASK, an upstream that cannot be reached, a request it cannot read) are answered in the
//! same shape, so drivers that parse ClickHouse's errors parse Aurora's too.

use hyper::StatusCode;

use crate::codes;

/// The status ClickHouse answers for an exception code, as its `exceptionCodeToHTTPStatus`
/// (`src/Server/HTTP/exceptionCodeToHTTPStatus.cpp`) maps the codes the proxy raises; others are 500 there too.
pub fn status_for_code(code: i32) -> StatusCode {
    match code {
        codes::SYNTAX_ERROR => StatusCode::BAD_REQUEST,
        codes::QUERY_IS_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        codes::NOT_IMPLEMENTED => StatusCode::NOT_IMPLEMENTED,
        codes::READONLY => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Why the proxy answers a request itself instead of relaying ClickHouse's answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No connection to the upstream could be opened within the connect timeout.
    #[error("Aurora proxy: cannot connect to ClickHouse at {upstream}: {reason}")]
    Connect { upstream: String, reason: String },
    /// The upstream took the request but failed before its response head arrived.
    #[error("Aurora proxy: ClickHouse at {upstream} failed before answering: {reason}")]
    Upstream { upstream: String, reason: String },
    /// The client's request body broke off while the proxy was reading the statement.
    #[error("Aurora proxy: cannot read the request body: {0}")]
    ClientBody(#[source] hyper::Error),
    /// An ASK statement's body is larger than the proxy reads into memory.
    #[error("Aurora proxy: an ASK statement is limited to {limit} bytes")]
    AskTooLarge { limit: usize },
    /// The body's first bytes (or an ASK statement's whole text) did not arrive within `http_receive_timeout`.
    #[error("Aurora proxy: Timeout exceeded while reading the request: the statement did not arrive within {0:?} (http_receive_timeout)")]
    ReceiveTimeout(std::time::Duration),
    /// No node of the listener's route could take the request.
    #[error("Aurora proxy: no ClickHouse node can take the request (every node of this endpoint is down or refused the connection)")]
    NoNode,
    /// Every node of the listener's route has its circuit open (too many failed connects in a row).
    #[error("Aurora proxy: cannot connect to ClickHouse: {0}")]
    CircuitOpen(String),
    /// The node that holds the request's `session_id` is down; the session cannot move.
    #[error("Aurora proxy: ClickHouse node {node}, which holds this session_id's session, is down ({reason}); ClickHouse sessions live on one server and cannot move to another, so start a new session")]
    SessionNodeDown { node: String, reason: String },
    /// A statement that writes, on a read endpoint.
    #[error("{}", crate::cluster::READ_ENDPOINT_REFUSAL)]
    ReadOnly,
    /// The proxy users refused the login (nothing was sent upstream).
    #[error("{}", .0.message)]
    Login(crate::gateway::LoginError),
    /// The proxy user's limits refused the query (code 202) or ASK is not allowed for it (497).
    #[error("{message}")]
    Refused {
        code: i32,
        message: String,
        retry_after: Option<u64>,
    },
    /// The query passed its proxy user's `max_execution_time` before its answer began; it was killed.
    #[error("{message}")]
    Expired { message: String },
    /// The configured upstream URL cannot be used.
    #[error("Aurora proxy: upstream_http {url:?} cannot be used: {reason}")]
    UpstreamUrl { url: String, reason: String },
}

impl HttpError {
    /// The ClickHouse exception code of this error.
    pub fn code(&self) -> i32 {
        match self {
            HttpError::Connect { .. }
            | HttpError::Upstream { .. }
            | HttpError::NoNode
            | HttpError::CircuitOpen(_)
            | HttpError::SessionNodeDown { .. } => codes::NETWORK_ERROR,
            HttpError::ClientBody(_) => codes::CANNOT_READ_FROM_SOCKET,
            HttpError::ReceiveTimeout(_) => codes::SOCKET_TIMEOUT,
            HttpError::AskTooLarge { .. } => codes::QUERY_IS_TOO_LARGE,
            HttpError::UpstreamUrl { .. } => codes::UNSUPPORTED_URI_SCHEME,
            HttpError::ReadOnly => codes::READONLY,
            HttpError::Login(refused) => refused.code,
            HttpError::Refused { code, .. } => *code,
            HttpError::Expired { .. } => codes::TIMEOUT_EXCEEDED,
        }
    }

    /// The status of the answer. An upstream that cannot be reached or fails is the gateway's problem (502),
    /// which is what load balancers and retrying clients look for; the rest follow ClickHouse's mapping.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Connect { .. }
            | HttpError::Upstream { .. }
            | HttpError::NoNode
            | HttpError::CircuitOpen(_)
            | HttpError::SessionNodeDown { .. } => StatusCode::BAD_GATEWAY,
            HttpError::ClientBody(_) => StatusCode::BAD_REQUEST,
            HttpError::ReceiveTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            HttpError::Login(refused) => refused.http_status(),
            // What rate limiters answer and retrying clients (clickhouse-connect among them) wait on.
            HttpError::Refused {
                code: codes::TOO_MANY_SIMULTANEOUS_QUERIES,
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            HttpError::Refused { .. } => StatusCode::FORBIDDEN,
            other => status_for_code(other.code()),
        }
    }

    /// The exception class ClickHouse would name: network trouble is a `DB::NetException`.
    pub fn class(&self) -> &'static str {
        match self {
            HttpError::Connect { .. }
            | HttpError::Upstream { .. }
            | HttpError::NoNode
            | HttpError::CircuitOpen(_)
            | HttpError::SessionNodeDown { .. } => "DB::NetException",
            _ => "DB::Exception",
        }
    }
}

/// The body of a ClickHouse HTTP error in the upstream's dialect ([`crate::dialect`]): `Code: N. DB::Exception:
/// message. (NAME) ` as servers since 21.8 write it, `Code: N, e.displayText() = DB::Exception: message,
/// e.what() = DB::Exception` before. The message's own trailing period is not doubled.
pub fn exception_body(code: i32, class: &str, message: &str) -> String {
    crate::dialect::http_error_body(crate::dialect::current(), code, codes::name(code), class, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_looks_like_clickhouses() {
        assert_eq!(
            exception_body(codes::SYNTAX_ERROR, "DB::Exception", "Aurora: bad ASK."),
            "Code: 62. DB::Exception: Aurora: bad ASK. (SYNTAX_ERROR) \n"
        );
        assert_eq!(
            exception_body(codes::NOT_IMPLEMENTED, "DB::Exception", "not yet"),
            "Code: 48. DB::Exception: not yet. (NOT_IMPLEMENTED) \n"
        );
    }

    #[test]
    fn statuses_follow_clickhouses_mapping() {
        assert_eq!(status_for_code(codes::SYNTAX_ERROR), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_for_code(codes::NOT_IMPLEMENTED),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            status_for_code(codes::QUERY_IS_TOO_LARGE),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(status_for_code(999_999), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn an_unreachable_upstream_is_a_bad_gateway_net_exception() {
        let e = HttpError::Connect {
            upstream: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            exception_body(e.code(), e.class(), &e.to_string()),
            "Code: 210. DB::NetException: Aurora proxy: cannot connect to ClickHouse at http://127.0.0.1:1: connection refused. (NETWORK_ERROR) \n"
        );
    }
}
