//! The request body on its way to ClickHouse: the frames already read to recognise the statement, then the
//! rest of the client's stream as it arrives. It streams frame by frame, nothing collected, and reports its
//! bytes when it is dropped. The answer on its way back is [`super::body::ClientBody`].

use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::metrics::Metrics;
use crate::telemetry::{self, Direction, Protocol};

/// The request body sent upstream: the frames already read to recognise the statement, then the rest of the
/// client's stream as it arrives.
pub struct UpstreamBody {
    /// Frames read while looking for `ASK`, in order; sent first.
    peeked: VecDeque<Frame<Bytes>>,
    /// The client's body after the peeked frames (`None`: no body).
    rest: Option<Incoming>,
    /// Bytes sent upstream so far, reported on drop.
    bytes: u64,
    metrics: Arc<Metrics>,
    /// Longest pause between two frames of the client's body (`http_receive_timeout`), and the timer of the
    /// pause in progress.
    receive_timeout: Duration,
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The client's body paused for longer than `http_receive_timeout`: the request is abandoned (ClickHouse's own
/// answer to a stalled body is the same timeout, code 209).
#[derive(Debug, thiserror::Error)]
#[error("Timeout exceeded while reading the request body: no bytes for {0:?} (http_receive_timeout)")]
pub struct BodyTimeout(pub Duration);

impl UpstreamBody {
    pub fn new(
        peeked: VecDeque<Frame<Bytes>>,
        rest: Incoming,
        receive_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        UpstreamBody {
            peeked,
            rest: Some(rest),
            bytes: 0,
            metrics,
            receive_timeout,
            idle: None,
        }
    }

    /// A body of the proxy's own making (a generated query).
    pub fn full(bytes: Bytes, metrics: Arc<Metrics>) -> Self {
        UpstreamBody {
            peeked: VecDeque::from([Frame::data(bytes)]),
            rest: None,
            bytes: 0,
            metrics,
            receive_timeout: Duration::MAX,
            idle: None,
        }
    }

    /// A body with nothing in it.
    pub fn empty(metrics: Arc<Metrics>) -> Self {
        UpstreamBody {
            peeked: VecDeque::new(),
            rest: None,
            bytes: 0,
            metrics,
            receive_timeout: Duration::MAX,
            idle: None,
        }
    }

    /// A copy to send again, when the whole body is in memory (the client's stream has ended, or there is
    /// none): what lets a read that failed on a connection the server had dropped go to another one.
    pub fn replay(&self) -> Option<UpstreamBody> {
        let ended = self.rest.as_ref().is_none_or(|rest| rest.is_end_stream());
        if !ended || self.bytes > 0 {
            return None;
        }
        let peeked = self
            .peeked
            .iter()
            .map(|frame| frame.data_ref().cloned().map(Frame::data))
            .collect::<Option<VecDeque<_>>>()?;
        Some(UpstreamBody {
            peeked,
            rest: None,
            bytes: 0,
            metrics: self.metrics.clone(),
            receive_timeout: self.receive_timeout,
            idle: None,
        })
    }

    fn peeked_len(&self) -> u64 {
        self.peeked
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = match this.peeked.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None => match &mut this.rest {
                Some(rest) => match Pin::new(rest).poll_frame(cx) {
                    Poll::Pending => {
                        let timeout = this.receive_timeout;
                        let idle = this.idle.get_or_insert_with(|| {
                            Box::pin(tokio::time::sleep(timeout.min(Duration::from_secs(1 << 30))))
                        });
                        if idle.as_mut().poll(cx).is_ready() {
                            this.rest = None;
                            return Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout)))));
                        }
                        Poll::Pending
                    }
                    other => {
                        this.idle = None;
                        other.map(|frame| frame.map(|r| r.map_err(Into::into)))
                    }
                },
                None => Poll::Ready(None),
            },
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.peeked.is_empty() && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |rest| rest.size_hint());
        shifted(rest, self.peeked_len())
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.bytes > 0 {
            telemetry::bytes_relayed(
                &self.metrics,
                Protocol::Http,
                Direction::ClientToUpstream,
                self.bytes as usize,
            );
        }
    }
}

/// `hint` plus `extra` bytes already known.
fn shifted(hint: SizeHint, extra: u64) -> SizeHint {
    let mut out = SizeHint::new();
    out.set_lower(hint.lower().saturating_add(extra));
    if let Some(upper) = hint.upper() {
        out.set_upper(upper.saturating_add(extra));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_hints_add_the_peeked_bytes() {
        let exact = shifted(SizeHint::with_exact(10), 5);
        assert_eq!((exact.lower(), exact.upper()), (15, Some(15)));
        let open = shifted(SizeHint::new(), 5);
        assert_eq!((open.lower(), open.upper()), (5, None));
    }
}
