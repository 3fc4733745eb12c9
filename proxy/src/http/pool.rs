//! Keep-alive connections to ClickHouse's HTTP interface, each driven by the request that uses it.
//!
//! A connection is hyper's HTTP/1 client pair: the [`SendRequest`] handle and the [`Connection`] future that
//! does the socket work. Nothing runs in the background: the request's own task polls the `Connection` while it
//! waits for the answer's head ([`Lease::send`]) and, through the answer's body, while the body streams
//! ([`Lease::poll_drive`]). Reading from ClickHouse and writing to the client thus happen in one task, without
//! a channel hop or a cross-thread wakeup per answer.
//!
//! When an answer has ended cleanly and the connection can carry another request, [`Lease::release`] puts it
//! back; idle connections are taken newest first and expire after [`POOL_IDLE_TIMEOUT`].

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::client::conn::TrySendError;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::request_body::UpstreamBody;

/// How long an idle pooled connection is kept. ClickHouse closes idle keep-alive connections after its
/// `keep_alive_timeout` (3 s by default in 18.x–22.x, longer since); staying below it keeps the proxy from
/// sending a request on a connection the server is closing at that moment.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The most idle connections kept; past it the oldest is closed. Far above what one proxy's clients keep busy.
pub const POOL_MAX_IDLE: usize = 256;

/// hyper's connection future over a TCP stream to ClickHouse.
type Driver = Connection<TokioIo<TcpStream>, UpstreamBody>;

/// Idle keep-alive connections to one upstream.
#[derive(Clone, Default)]
pub struct Pool {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Idle connections, oldest first.
    idle: Mutex<VecDeque<Idle>>,
    /// Whether the task that closes expired connections runs.
    reaper: std::sync::atomic::AtomicBool,
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// One HTTP/1.1 connection: the handle that sends requests and the future that moves its bytes.
struct Conn {
    sender: SendRequest<UpstreamBody>,
    driver: Driver,
}

/// A connection in use by one request. Dropping it closes the connection; [`Lease::release`] returns it.
pub struct Lease {
    /// `None` once the connection has ended. Boxed once when opened, so that leases and answers stay small
    /// to move.
    conn: Option<Box<Conn>>,
    /// Taken from the pool (and so possibly closed by the server meanwhile), not freshly opened.
    pub reused: bool,
    pool: Pool,
    /// The node this request runs on, counted there until the answer ends (set by [`super::route`]).
    pub node: Option<crate::cluster::NodeLease>,
}

/// The connection closed (or failed, with the error) before a request was handed to it.
pub struct Closed(pub Option<hyper::Error>);

/// Why a request got no answer's head.
pub enum SendFailure {
    /// The connection ended before the request was written: the request comes back untouched.
    Unsent {
        request: Box<Request<UpstreamBody>>,
        error: Option<hyper::Error>,
    },
    /// The connection failed after (part of) the request was written, or while reading the head.
    Failed(hyper::Error),
}

impl From<TrySendError<Request<UpstreamBody>>> for SendFailure {
    fn from(mut failure: TrySendError<Request<UpstreamBody>>) -> Self {
        match failure.take_message() {
            Some(request) => SendFailure::Unsent {
                request: Box::new(request),
                error: Some(failure.into_error()),
            },
            None => SendFailure::Failed(failure.into_error()),
        }
    }
}

impl Pool {
    /// The newest idle connection that has not expired, if any.
    pub fn take(&self) -> Option<Lease> {
        let mut idle = self.lock();
        expire(&mut idle, Instant::now());
        let conn = idle.pop_back()?.conn;
        Some(Lease {
            conn: Some(conn),
            reused: true,
            pool: self.clone(),
            node: None,
        })
    }

    /// A lease on a connection just opened over `stream`.
    pub async fn open(&self, stream: TcpStream) -> Result<Lease, hyper::Error> {
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        Ok(Lease {
            conn: Some(Box::new(Conn { sender, driver })),
            reused: false,
            pool: self.clone(),
            node: None,
        })
    }

    /// How many idle connections the pool holds.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn put(&self, conn: Box<Conn>) {
        let now = Instant::now();
        let mut idle = self.lock();
        expire(&mut idle, now);
        if idle.len() >= POOL_MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
        drop(idle);
        self.start_reaper();
    }

    /// Starts, once, the task that closes expired connections when no request comes to take them.
    fn start_reaper(&self) {
        use std::sync::atomic::Ordering;
        if self.shared.reaper.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.shared.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(POOL_IDLE_TIMEOUT / 2);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let expired: Vec<Idle> = {
                    let mut idle = lock(&shared.idle);
                    let cut = idle.iter().take_while(|i| is_expired(i, Instant::now())).count();
                    idle.drain(..cut).collect()
                };
                // Closed outside the lock.
                drop(expired);
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        lock(&self.shared.idle)
    }
}

/// The pool's lock; a panic elsewhere while it was held leaves nothing half-done, so poisoning is ignored.
fn lock(idle: &Mutex<VecDeque<Idle>>) -> MutexGuard<'_, VecDeque<Idle>> {
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn is_expired(idle: &Idle, now: Instant) -> bool {
    now.saturating_duration_since(idle.since) >= POOL_IDLE_TIMEOUT
}

/// Drops the expired connections at the front (the oldest).
fn expire(idle: &mut VecDeque<Idle>, now: Instant) {
    while idle.front().is_some_and(|i| is_expired(i, now)) {
        idle.pop_front();
    }
}

impl Lease {
    /// Waits until the connection can take a request, driving it meanwhile. A pooled connection that the
    /// server has closed shows up here, before the request is handed over.
    ///
    /// # Cancellation safety
    /// Cancellation safe: nothing is sent.
    pub async fn ready(&mut self) -> Result<(), Closed> {
        // An idle connection is ready at once. Asked with a waker that wakes nothing, hyper's request channel
        // does not keep this task's waker, so handing it the request does not wake the task from within (a
        // spurious poll of the whole client connection). `send` polls the driver with the real waker next.
        if let Poll::Ready(ready) = self.poll_ready(&mut quiet()) {
            return ready;
        }
        poll_fn(|cx| self.poll_ready(cx)).await
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Err(Closed(None)));
        };
        if let Poll::Ready(done) = Pin::new(&mut conn.driver).poll(cx) {
            self.conn = None;
            return Poll::Ready(Err(Closed(done.err())));
        }
        conn.sender.poll_ready(cx).map_err(|e| Closed(Some(e)))
    }

    /// Sends `request` and drives the connection until the answer's head arrives. If the connection fails
    /// before the request was written, the error gives the request back.
    ///
    /// # Cancellation safety
    /// Not cancellation safe: a dropped future may have sent part of the request; drop the lease with it.
    pub async fn send(&mut self, request: Request<UpstreamBody>) -> Result<Response<Incoming>, SendFailure> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendFailure::Unsent {
                request: Box::new(request),
                error: None,
            });
        };
        let mut answer = std::pin::pin!(conn.sender.try_send_request(request));
        let head = poll_fn(|cx| {
            let Some(conn) = self.conn.as_mut() else {
                return answer.as_mut().poll(cx);
            };
            // The driver first: it writes the request and reads what ClickHouse sent, then the answer is there.
            if Pin::new(&mut conn.driver).poll(cx).is_ready() {
                // The connection ended. Dropping the driver makes hyper answer the request with the reason,
                // and gives it back if it was never written.
                self.conn = None;
                return answer.as_mut().poll(cx);
            }
            // The answer arrives only while the driver runs, which the socket's waker (the real one) triggers.
            answer.as_mut().poll(&mut quiet())
        });
        head.await.map_err(SendFailure::from)
    }

    /// Moves the connection's bytes (the answer's body, the rest of the request's body) as far as they go.
    /// `Ready` means the connection has ended; an answer still streaming then ends or fails with it.
    pub fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let done = std::task::ready!(Pin::new(&mut conn.driver).poll(cx));
        self.conn = None;
        Poll::Ready(done)
    }

    /// Returns the connection to the pool if it can carry another request: the answer has been read to its
    /// end, the server did not ask to close, and nothing failed. Otherwise the connection is closed.
    pub fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // One more turn lets hyper finish the exchange (keep-alive bookkeeping) and ask for the next request.
        // No task needs waking later: whoever takes the connection polls it with its own waker.
        if Pin::new(&mut conn.driver).poll(&mut quiet()).is_pending() && conn.sender.is_ready() {
            self.pool.put(conn);
        }
    }
}

/// A context whose waker wakes nothing, for state that changes only while this task drives the connection
/// (hyper's channels between the connection and its handles). Polled with the task's own waker, hyper would
/// wake the task from within its own poll, which tokio answers with a second poll and a nudge to another worker
/// thread: a futex call and a context switch per request.
pub fn quiet() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use bytes::Bytes;
    use hyper::body::Body as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

    /// A server that answers `n` requests on each connection with `answer`, waits a little, then closes it.
    pub(crate) async fn server(n: usize, answer: &'static [u8]) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    for _ in 0..n {
                        let mut buf = [0u8; 4096];
                        if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                });
            }
        });
        addr
    }

    async fn lease(pool: &Pool, addr: std::net::SocketAddr) -> Lease {
        if let Some(lease) = pool.take() {
            return lease;
        }
        pool.open(TcpStream::connect(addr).await.unwrap()).await.unwrap()
    }

    fn get() -> Request<UpstreamBody> {
        Request::get("/")
            .body(UpstreamBody::empty(crate::metrics::Metrics::new()))
            .unwrap()
    }

    async fn exchange(lease: &mut Lease) -> Result<Bytes, String> {
        lease.ready().await.map_err(|_| "closed".to_string())?;
        let response = lease.send(get()).await.map_err(|_| "no answer".to_string())?;
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        loop {
            let frame = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
                Poll::Pending => {
                    let _ = lease.poll_drive(cx);
                    Pin::new(&mut body).poll_frame(cx)
                }
                ready => ready,
            })
            .await;
            match frame {
                Some(Ok(frame)) => bytes.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d)),
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(bytes.into()),
            }
        }
    }

    #[tokio::test]
    async fn a_finished_connection_is_reused_until_the_server_closes_it() {
        let addr = server(2, OK).await;
        let pool = Pool::default();
        let mut first = lease(&pool, addr).await;
        assert_eq!(exchange(&mut first).await.unwrap(), "ok\n");
        first.release();
        assert_eq!(pool.idle(), 1);
        let mut second = lease(&pool, addr).await;
        assert!(second.reused);
        assert_eq!(exchange(&mut second).await.unwrap(), "ok\n");
        second.release();
        assert_eq!(pool.idle(), 1);
        // The server closes after two answers: the pooled connection is found closed before anything is sent.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut third = pool.take().expect("pooled");
        assert!(matches!(third.ready().await, Err(Closed(_))));
    }

    #[tokio::test]
    async fn an_unfinished_answer_does_not_go_back() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n";
        let addr = server(1, chunked).await;
        let pool = Pool::default();
        let mut lease = lease(&pool, addr).await;
        assert!(lease.ready().await.is_ok());
        let Ok(response) = lease.send(get()).await else {
            panic!("no answer");
        };
        let _unread = response.into_body();
        lease.release();
        assert_eq!(pool.idle(), 0);
    }
}
