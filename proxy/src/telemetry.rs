//! Events of the proxy: each one writes its log line and updates its metrics together, so the two never
//! disagree. Labels come from closed sets; queries, users and passwords never become labels, and passwords and
//! SQL never become log fields. The ASK events are the exception for text, bounded: they name the user (clipped)
//! and the lengths of question and SQL at INFO, the texts themselves clipped to [`LOGGED_TEXT`] bytes at DEBUG,
//! and their failures are rate-limited per user ([`LogLimiter`]), so no client can grow the log faster than a
//! few lines a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
pub enum StatementKind {
    Sql,
    Ask,
}

impl StatementKind {
    pub fn label(self) -> &'static str {
        match self {
            StatementKind::Sql => "sql",
            StatementKind::Ask => "ask",
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

pub fn query_finished(
    m: &Metrics,
    protocol: Protocol,
    kind: StatementKind,
    outcome: Outcome,
    elapsed: Duration,
) {
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

/// A login the proxy users refused.
pub fn login_refused(m: &Metrics, protocol: Protocol, code: i32) {
    m.logins_refused
        .with_label_values(&[protocol.label(), &code.to_string()])
        .inc();
}

/// A query of a proxy user refused by its limits (`reason` from [`crate::gateway::Refused::reason`]) or
/// killed at its time (`max_execution_time`).
pub fn user_query_refused(m: &Metrics, user: &str, reason: &str) {
    tracing::info!(user, reason, "query refused by the proxy user's limits");
    m.user_refused.with_label_values(&[user, reason]).inc();
}

/// A query of a proxy user got its turn after `waited`.
pub fn user_query_admitted(m: &Metrics, user: &str, waited: std::time::Duration) {
    m.user_queue_wait
        .with_label_values(&[user])
        .observe(waited.as_secs_f64());
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

pub fn tls_handshake_failed(
    m: &Metrics,
    protocol: Protocol,
    peer: std::net::SocketAddr,
    error: &dyn std::fmt::Display,
) {
    m.protocol_errors
        .with_label_values(&[protocol.label(), "tls"])
        .inc();
    tracing::info!(%peer, %error, protocol = protocol.label(), "TLS handshake with a client failed");
}

/// Most bytes of a question, generated SQL, user name or error text written into one log line.
pub const LOGGED_TEXT: usize = 1024;

/// `text` cut to at most `max` bytes at a character boundary, with `…` when something was cut.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

/// Lets through at most [`LogLimiter::PER_MINUTE`] lines a minute per key (a user name); the lines held back
/// are counted and reported with the next line let through. Keys are forgotten when the table fills.
#[derive(Debug, Default)]
pub struct LogLimiter {
    windows: Mutex<HashMap<String, (Instant, u32, u64)>>,
}

impl LogLimiter {
    pub const PER_MINUTE: u32 = 10;
    const MAX_KEYS: usize = 4096;

    /// `Some(lines held back since the last one let through)` when this line may be written.
    pub fn allow(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= Self::MAX_KEYS && !windows.contains_key(key) {
            windows.clear();
        }
        let key = clip(key, 256).into_owned();
        let (start, count, held) = windows.entry(key).or_insert((now, 0, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        if *count >= Self::PER_MINUTE {
            *held += 1;
            return None;
        }
        *count += 1;
        Some(std::mem::take(held))
    }
}

/// An ASK could not be planned.
pub fn ask_failed(limiter: &LogLimiter, user: &str, question: &str, error: &dyn std::fmt::Display) {
    tracing::debug!(user = %clip(user, LOGGED_TEXT), question = %clip(question, LOGGED_TEXT), question_len = question.len(), "ASK failed: question");
    if let Some(suppressed) = limiter.allow(user) {
        let error = error.to_string();
        tracing::info!(
            user = %clip(user, LOGGED_TEXT),
            question_len = question.len(),
            error = %clip(&error, LOGGED_TEXT),
            suppressed,
            "ASK failed"
        );
    }
}

/// An ASK was planned (or found in a cache).
pub fn ask_planned(user: &str, question: &str, sql: &str, cached: Option<&str>) {
    tracing::info!(user = %clip(user, LOGGED_TEXT), question_len = question.len(), sql_len = sql.len(), cached, "ASK planned");
    tracing::debug!(question = %clip(question, LOGGED_TEXT), sql = %clip(sql, LOGGED_TEXT), "ASK planned: texts");
}

/// ClickHouse rejected a generated query; the model is asked once to correct it.
pub fn ask_correcting(limiter: &LogLimiter, user: &str, sql: &str, error: &str) {
    tracing::debug!(sql = %clip(sql, LOGGED_TEXT), error = %clip(error, LOGGED_TEXT), "ClickHouse rejected a generated query: texts");
    if let Some(suppressed) = limiter.allow(user) {
        tracing::info!(
            user = %clip(user, LOGGED_TEXT),
            sql_len = sql.len(),
            error = %clip(error, LOGGED_TEXT),
            suppressed,
            "ClickHouse rejected a generated query; asking the model to correct it"
        );
    }
}

#[cfg(test)]
mod ask_log_tests {
    use super::*;

    #[test]
    fn texts_are_clipped_at_character_boundaries() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(1000);
        let clipped = clip(&long, 1023);
        assert!(clipped.len() <= 1023 + "…".len());
        assert!(clipped.ends_with('…'));
    }

    #[test]
    fn each_user_gets_a_few_lines_a_minute() {
        let limiter = LogLimiter::default();
        for _ in 0..LogLimiter::PER_MINUTE {
            assert_eq!(limiter.allow("mallory"), Some(0));
        }
        assert_eq!(limiter.allow("mallory"), None);
        assert_eq!(limiter.allow("mallory"), None);
        assert_eq!(limiter.allow("alice"), Some(0));
    }
}
