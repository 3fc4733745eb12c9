//! Events of the proxy: each one writes its log line and updates its metrics together, so the two never
//! disagree. Labels come from closed sets; queries, users and passwords never become labels or log fields.

use std::time::Duration;

use crate::metrics::Metrics;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Native,
    Http,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::Http => "http",
        }
    }
}

/// What a statement was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Sql,
    Ask,
}

impl QueryKind {
    pub fn label(self) -> &'static str {
        match self {
            QueryKind::Sql => "sql",
            QueryKind::Ask => "ask",
        }
    }
}

/// How a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The answer ended normally.
    Ok,
    /// The answer was an exception.
    Error,
    /// The client cancelled it and the server confirmed.
    Cancelled,
    /// A peer went away before the answer ended.
    Aborted,
    /// The connection fell back to a byte relay; the proxy no longer sees the outcome.
    Passthrough,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
            Outcome::Aborted => "aborted",
            Outcome::Passthrough => "passthrough",
        }
    }
}

/// Direction of relayed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToUpstream,
    UpstreamToClient,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::ClientToUpstream => "client_to_upstream",
            Direction::UpstreamToClient => "upstream_to_client",
        }
    }
}

pub fn connection_opened(m: &Metrics, protocol: Protocol, peer: std::net::SocketAddr) {
    m.connections_total.with_label_values(&[protocol.label()]).inc();
    m.connections_open.with_label_values(&[protocol.label()]).inc();
    tracing::debug!(protocol = protocol.label(), %peer, "connection opened");
}

pub fn connection_closed(m: &Metrics, protocol: Protocol, peer: std::net::SocketAddr, reason: &str) {
    m.connections_open.with_label_values(&[protocol.label()]).dec();
    tracing::debug!(protocol = protocol.label(), %peer, reason, "connection closed");
}

pub fn query_finished(m: &Metrics, protocol: Protocol, kind: QueryKind, outcome: Outcome, elapsed: Duration) {
    m.queries_total
        .with_label_values(&[protocol.label(), kind.label(), outcome.label()])
        .inc();
    m.query_duration
        .with_label_values(&[protocol.label(), kind.label()])
        .observe(elapsed.as_secs_f64());
    tracing::debug!(
        protocol = protocol.label(),
        kind = kind.label(),
        outcome = outcome.label(),
        elapsed_ms = elapsed.as_millis() as u64,
        "query finished"
    );
}

pub fn bytes_relayed(m: &Metrics, protocol: Protocol, direction: Direction, n: usize) {
    m.transferred_bytes
        .with_label_values(&[protocol.label(), direction.label()])
        .inc_by(n as u64);
}

pub fn upstream_connect_failed(
    m: &Metrics,
    protocol: Protocol,
    upstream: &str,
    error: &dyn std::fmt::Display,
) {
    m.upstream_connect_errors
        .with_label_values(&[protocol.label()])
        .inc();
    tracing::warn!(protocol = protocol.label(), upstream, %error, "cannot connect to upstream ClickHouse");
}

/// Why a native connection stopped being framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassthroughCause {
    /// Valid traffic the codec cannot size (an opaque column type, an inter-server packet, another codec).
    Unframeable,
    /// A packet larger than `max_framed_packet`.
    TooLarge,
    /// The shared framing memory (`max_framing_memory`) stayed spent while this connection waited for it.
    MemoryBudget,
}

impl PassthroughCause {
    pub fn label(self) -> &'static str {
        match self {
            PassthroughCause::Unframeable => "unframeable",
            PassthroughCause::TooLarge => "too_large",
            PassthroughCause::MemoryBudget => "memory_budget",
        }
    }
}

pub fn passthrough_started(m: &Metrics, peer: std::net::SocketAddr, cause: PassthroughCause, detail: &str) {
    m.native_passthrough.with_label_values(&[cause.label()]).inc();
    tracing::warn!(%peer, reason = cause.label(), detail, "relaying the rest of this connection as plain bytes");
}

pub fn protocol_error(
    m: &Metrics,
    protocol: Protocol,
    peer: std::net::SocketAddr,
    side: &'static str,
    error: &dyn std::fmt::Display,
) {
    m.protocol_errors
        .with_label_values(&[protocol.label(), side])
        .inc();
    tracing::warn!(protocol = protocol.label(), %peer, side, %error, "closing connection: protocol error");
}

/// An HTTP answer was sent in full, or broke off (`Outcome::Aborted`).
pub fn http_response_finished(m: &Metrics, status: u16, outcome: Outcome) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    m.http_responses
        .with_label_values(&[class, outcome.label()])
        .inc();
    if outcome == Outcome::Aborted {
        tracing::debug!(status, "HTTP answer broke off before its end");
    }
}

pub fn tls_handshake_failed(m: &Metrics, peer: std::net::SocketAddr, error: &dyn std::fmt::Display) {
    m.protocol_errors
        .with_label_values(&[Protocol::Native.label(), "tls"])
        .inc();
    tracing::info!(%peer, %error, "TLS handshake with a native client failed");
}
