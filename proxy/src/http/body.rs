//! The two bodies the proxy moves: the request body on its way to ClickHouse ([`UpstreamBody`], in
//! [`super::request_body`], below the connection pool that sends it), and the answer on its way back
//! ([`ClientBody`], here, which drives the pooled connection it arrives on).
//!
//! Both stream frame by frame; nothing is collected. Each counts its bytes and reports them when it is dropped,
//! and the answer's body also closes the request's metrics then: whether it ended, broke off, or the client
//! went away is only known at that point.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::StatusCode;

use super::pool::{quiet, Lease};
pub use super::request_body::{BodyTimeout, UpstreamBody};
use crate::metrics::Metrics;
use crate::telemetry::{self, Direction, Outcome, Protocol, StatementKind};

/// Where an answer's bytes come from.
enum Source {
    /// ClickHouse's response body, relayed as it arrives, and the connection it comes over. This body drives
    /// the connection (see [`super::pool`]); `None` once the connection has ended.
    Relay(Incoming, Option<Lease>),
    /// An answer of the proxy itself (ASK, errors); `None` once sent.
    Local(Option<Bytes>),
}

/// The answer to one request. Dropping it records the request's outcome, duration and bytes.
pub struct ClientBody {
    source: Source,
    /// What the request was, for its metrics.
    kind: StatementKind,
    /// The status sent to the client; 2xx counts as a success.
    status: StatusCode,
    started: Instant,
    /// Bytes handed to the client so far.
    bytes: u64,
    /// The body ended cleanly (the source said so).
    ended: bool,
    /// The upstream's body broke off mid-way; the client connection is closed as a result.
    failed: bool,
    metrics: Arc<Metrics>,
    /// The proxy user's turn and time watch, given back when the answer ends.
    turn: Option<crate::gateway::Turn>,
    /// The statement's audit record, completed and handed on when the answer ends.
    audit: Option<(
        crate::gateway::audit::AuditRecord,
        Arc<crate::gateway::audit::Audit>,
    )>,
}

impl ClientBody {
    /// Relays ClickHouse's response body, driving `upstream` (the connection it arrives on) as it streams.
    /// The connection goes back to the pool when the body has ended cleanly.
    pub fn relay(
        body: Incoming,
        upstream: Lease,
        kind: StatementKind,
        status: StatusCode,
        started: Instant,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::new(
            Source::Relay(body, Some(upstream)),
            kind,
            status,
            started,
            metrics,
        )
    }

    /// An answer of the proxy's own.
    pub fn local(
        text: impl Into<Bytes>,
        kind: StatementKind,
        status: StatusCode,
        started: Instant,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::new(Source::Local(Some(text.into())), kind, status, started, metrics)
    }

    fn new(
        source: Source,
        kind: StatementKind,
        status: StatusCode,
        started: Instant,
        metrics: Arc<Metrics>,
    ) -> Self {
        ClientBody {
            source,
            kind,
            status,
            started,
            bytes: 0,
            ended: false,
            failed: false,
            metrics,
            turn: None,
            audit: None,
        }
    }

    /// Completes `record` when this answer ends and hands it to `audit`.
    pub fn auditing(
        mut self,
        record: crate::gateway::audit::AuditRecord,
        audit: Arc<crate::gateway::audit::Audit>,
    ) -> Self {
        self.audit = Some((record, audit));
        self
    }

    /// Holds `turn` until this answer ends.
    pub fn holding(mut self, turn: Option<crate::gateway::Turn>) -> Self {
        self.turn = turn;
        self
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.source {
            Source::Relay(body, upstream) => poll_relay(body, upstream, cx),
            Source::Local(text) => Poll::Ready(text.take().map(|t| Ok(Frame::data(t)))),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.failed = true,
            Poll::Ready(None) => {
                this.ended = true;
                // The user's turn goes back with the last byte, not when hyper drops the body.
                this.turn = None;
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Relay(body, _) => body.is_end_stream(),
            Source::Local(text) => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Relay(body, _) => body.size_hint(),
            Source::Local(text) => SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64)),
        }
    }
}

/// The next frame of ClickHouse's answer. When none is there yet, the connection is driven (it reads from
/// ClickHouse into the body) and the body asked once more.
///
/// While the connection is there, the body is asked with [`quiet`]: its frames arrive only while the driver
/// runs, and the driver registers this task's waker with the socket. Once the connection has ended, the body
/// holds what is left and the task's own waker is used.
fn poll_relay(
    body: &mut Incoming,
    upstream: &mut Option<Lease>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
    let Some(lease) = upstream else {
        return Pin::new(body).poll_frame(cx);
    };
    if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(&mut quiet()) {
        return Poll::Ready(frame);
    }
    match lease.poll_drive(cx) {
        Poll::Pending => Pin::new(body).poll_frame(&mut quiet()),
        // The connection ended; the body has its end or its error (hyper hands it over first).
        Poll::Ready(Ok(())) => {
            *upstream = None;
            Pin::new(body).poll_frame(cx)
        }
        Poll::Ready(Err(error)) => {
            *upstream = None;
            Poll::Ready(Some(Err(error)))
        }
    }
}

/// Reads a whole (small) answer of ClickHouse, driving its connection, which goes back to the pool when the
/// answer ended cleanly. More than `limit` bytes is an error (the connection is closed).
pub async fn read_answer(mut body: Incoming, upstream: Lease, limit: usize) -> Result<Vec<u8>, String> {
    let mut upstream = Some(upstream);
    let mut out = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| poll_relay(&mut body, &mut upstream, cx)).await;
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if out.len() + data.len() > limit {
                        return Err(format!("ClickHouse's answer is larger than {limit} bytes"));
                    }
                    out.extend_from_slice(data);
                }
            }
            Some(Err(e)) => return Err(format!("ClickHouse's answer broke off: {e}")),
            None => break,
        }
    }
    if let Some(lease) = upstream {
        lease.release();
    }
    Ok(out)
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        // hyper stops polling a body of known length once `is_end_stream` says so, without a final `None`.
        let complete = !self.failed && (self.ended || self.is_end_stream());
        if let Source::Relay(_, upstream) = &mut self.source {
            if let Some(upstream) = upstream.take().filter(|_| complete) {
                upstream.release();
            }
        }
        let outcome = match (complete, self.status.is_success()) {
            (false, _) => Outcome::Aborted,
            (true, true) => Outcome::Ok,
            (true, false) => Outcome::Error,
        };
        telemetry::query_finished(
            &self.metrics,
            Protocol::Http,
            self.kind,
            outcome,
            self.started.elapsed(),
        );
        telemetry::http_response_finished(&self.metrics, self.status.as_u16(), outcome);
        if let Some((mut record, audit)) = self.audit.take() {
            record.outcome = match outcome {
                Outcome::Ok => "ok",
                Outcome::Aborted => "aborted",
                _ if record.code == crate::codes::TOO_MANY_SIMULTANEOUS_QUERIES
                    || record.code == crate::codes::ACCESS_DENIED
                    || self.status == StatusCode::UNAUTHORIZED =>
                {
                    "refused"
                }
                _ => "error",
            };
            record.status = self.status.as_u16();
            record.bytes = self.bytes;
            record.duration_ms = self.started.elapsed().as_millis() as u64;
            audit.record(record);
        }
        if self.bytes > 0 {
            telemetry::bytes_relayed(
                &self.metrics,
                Protocol::Http,
                Direction::UpstreamToClient,
                self.bytes as usize,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_answer_is_sent_once_and_counted() {
        use http_body_util::BodyExt as _;
        let metrics = Metrics::new();
        let body = ClientBody::local(
            "Code: 48.\n",
            StatementKind::Ask,
            StatusCode::NOT_IMPLEMENTED,
            Instant::now(),
            metrics.clone(),
        );
        assert_eq!(body.size_hint().exact(), Some(10));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"Code: 48.\n");
        let rendered = metrics.render();
        assert!(
            rendered.contains(r#"aurora_proxy_queries_total{kind="ask",outcome="error",protocol="http"} 1"#),
            "{rendered}"
        );
        assert!(
            rendered.contains(r#"aurora_proxy_http_responses_total{class="5xx",outcome="error"} 1"#),
            "{rendered}"
        );
    }
}
