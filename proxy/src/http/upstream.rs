//! The upstream side: ClickHouse's HTTP interface, reached over keep-alive connections from [`super::pool`].
//!
//! [`Upstream::send`] takes an idle connection (or opens one within `connect_timeout`), sends the request and
//! returns the answer's head with the connection it came on; the answer's body then drives that connection
//! ([`super::body::ClientBody`]) and gives it back when it ends.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response, Uri};
use tokio::net::TcpStream;

use aurora_common::http::error_chain;

use super::error::HttpError;
use super::pool::{Closed, Lease, Pool, SendFailure};
use super::request_body::UpstreamBody;
use crate::config::upstream_url::UpstreamUrl;

/// ClickHouse's HTTP interface and the connections that reach it.
pub struct Upstream {
    /// Idle keep-alive connections, shared by all client connections.
    pool: Pool,
    /// `host:port` to connect to (port 80 when the URL has none).
    address: String,
    /// The `Host` header of every upstream request.
    host: HeaderValue,
    connect_timeout: Duration,
    /// A path prefix from `upstream_http` (empty for the usual `http://host:8123`).
    base_path: String,
    /// `upstream_http` as configured, for messages.
    pub url: String,
}

/// Why a request got no answer from the upstream.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened; the reason in words.
    Connect(String),
    /// The connection failed before the answer's head arrived; the reason in words.
    Failed(String),
}

impl Upstream {
    /// Describes the upstream at `url` (`http://host:port[/prefix]`); connections open on first use.
    pub fn new(url: &str, connect_timeout: Duration) -> Result<Upstream, HttpError> {
        let UpstreamUrl {
            address,
            host,
            base_path,
        } = UpstreamUrl::parse(url).map_err(|reason| HttpError::UpstreamUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        })?;
        Ok(Upstream {
            pool: Pool::default(),
            address,
            host,
            connect_timeout,
            base_path,
            url: url.to_string(),
        })
    }

    /// The upstream request target for a client's request URI, in origin form: the same path (under the base
    /// path) and query string, byte for byte. The `Host` header names the upstream.
    pub fn uri_for(&self, client_uri: &Uri) -> Result<Uri, HttpError> {
        let path_and_query = client_uri.path_and_query();
        if self.base_path.is_empty() {
            let path_and_query = path_and_query
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            return Ok(Uri::from(path_and_query));
        }
        let path_and_query = path_and_query.map_or("/", |pq| pq.as_str());
        format!("{}{path_and_query}", self.base_path)
            .parse()
            .map_err(|_| HttpError::UpstreamUrl {
                url: self.url.clone(),
                reason: "cannot join the base path and the request path".into(),
            })
    }

    /// Sends a request (its URI as [`Upstream::uri_for`] made it) and returns the answer's head with the
    /// connection it arrived on; the body streams after, driven by [`super::body::ClientBody`].
    ///
    /// A pooled connection the server closed while idle is found before the request is handed to it and left
    /// behind. If one fails after taking the request but before writing any of it, the request is sent once
    /// more on a new connection; once part of it was written (its body may be partly consumed), the error is
    /// final.
    ///
    /// # Cancellation safety
    /// Not cancellation safe: a dropped future may have sent part of the request (its connection is closed).
    pub async fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        self.try_send(request, false).await.map_err(|(error, _)| error)
    }

    /// [`Upstream::send`], with the request given back when no connection could be opened (nothing of it was
    /// sent, so another node may take it).
    ///
    /// A request that only reads (`reads`) and whose body is all in memory is also sent again when a pooled
    /// connection fails under it before the answer's head: the server dropped that connection (it died or
    /// restarted) and a fresh one, or another node, answers. Writes are never sent twice.
    pub async fn try_send(
        &self,
        mut request: Request<UpstreamBody>,
        reads: bool,
    ) -> Result<(Response<Incoming>, Lease), (SendError, Option<Request<UpstreamBody>>)> {
        request.headers_mut().insert(HOST, self.host.clone());
        let mut retried = false;
        loop {
            let pooled = if retried { None } else { self.pool.take() };
            let mut lease = match pooled {
                Some(lease) => lease,
                None => match self.connect().await {
                    Ok(lease) => lease,
                    Err(error) => return Err((error, Some(request))),
                },
            };
            let spare = if lease.reused && reads && !retried {
                copy(&request)
            } else {
                None
            };
            match lease.ready().await {
                Ok(()) => {}
                // Closed while idle: nothing was sent, the next connection takes the request.
                Err(Closed(_)) if lease.reused => continue,
                Err(Closed(error)) => {
                    return Err((SendError::Failed(closed_reason(error.as_ref())), Some(request)))
                }
            }
            match lease.send(request).await {
                Ok(response) => return Ok((response, lease)),
                Err(SendFailure::Unsent { request: back, .. }) if lease.reused && !retried => {
                    request = *back;
                    retried = true;
                }
                Err(SendFailure::Unsent { error, .. }) => {
                    return Err((SendError::Failed(closed_reason(error.as_ref())), None))
                }
                Err(SendFailure::Failed(error)) => match spare {
                    Some(spare) => {
                        tracing::debug!(upstream = %self.url, error = %error_chain(&error), "a pooled connection failed under a read; sending it again");
                        request = spare;
                        retried = true;
                    }
                    None => return Err((SendError::Failed(error_chain(&error)), None)),
                },
            }
        }
    }

    /// Opens a connection within the connect timeout.
    async fn connect(&self) -> Result<Lease, SendError> {
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(SendError::Connect(format!("tcp connect error: {error}"))),
            Err(_) => {
                return Err(SendError::Connect(format!(
                    "no connection within {} (connect_timeout)",
                    humantime::format_duration(self.connect_timeout)
                )))
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|error| SendError::Connect(format!("tcp connect error: {error}")))?;
        self.pool
            .open(stream)
            .await
            .map_err(|error| SendError::Connect(error_chain(&error)))
    }
}

/// A copy of `request` when its body can be sent again.
fn copy(request: &Request<UpstreamBody>) -> Option<Request<UpstreamBody>> {
    let body = request.body().replay()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

fn closed_reason(error: Option<&hyper::Error>) -> String {
    error.map_or_else(|| "connection closed".to_string(), |e| error_chain(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::time::Instant;

    use bytes::Bytes;
    use http_body_util::BodyExt as _;

    use crate::http::body::ClientBody;
    use crate::metrics::Metrics;

    fn upstream(url: &str) -> Upstream {
        Upstream::new(url, Duration::from_secs(1)).unwrap()
    }

    #[tokio::test]
    async fn request_uris_keep_path_and_query() {
        let u = upstream("http://127.0.0.1:8123");
        let client: Uri = "/?query=SELECT%201&database=db".parse().unwrap();
        assert_eq!(
            u.uri_for(&client).unwrap().to_string(),
            "/?query=SELECT%201&database=db"
        );
        let prefixed = upstream("http://ch.internal:8123/clickhouse/");
        let ping: Uri = "/ping".parse().unwrap();
        assert_eq!(prefixed.uri_for(&ping).unwrap().to_string(), "/clickhouse/ping");
        assert_eq!(prefixed.host, "ch.internal:8123");
        assert_eq!(prefixed.address, "ch.internal:8123");
        assert_eq!(upstream("http://[::1]").address, "[::1]:80");
    }

    /// One request through `u`, its answer read to the end like the server side reads it.
    async fn answer(u: &Upstream, metrics: &Arc<Metrics>) -> Result<Bytes, SendError> {
        let request = Request::get("/")
            .body(UpstreamBody::empty(metrics.clone()))
            .unwrap();
        let (response, lease) = u.send(request).await?;
        let (parts, body) = response.into_parts();
        let body = ClientBody::relay(
            body,
            lease,
            crate::telemetry::StatementKind::Sql,
            parts.status,
            Instant::now(),
            metrics.clone(),
        );
        Ok(body.collect().await.unwrap().to_bytes())
    }

    #[tokio::test]
    async fn connections_are_reused_and_ones_closed_while_idle_left_behind() {
        // One answer per connection, then the server closes it (100 ms later).
        let addr =
            super::super::pool::tests::server(1, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n").await;
        let u = upstream(&format!("http://{addr}"));
        let metrics = Metrics::new();
        assert_eq!(answer(&u, &metrics).await.unwrap(), "ok\n");
        assert_eq!(u.pool.idle(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(answer(&u, &metrics).await.unwrap(), "ok\n");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let u = upstream(&format!("http://{addr}"));
        match answer(&u, &Metrics::new()).await {
            Err(SendError::Connect(reason)) => assert!(reason.starts_with("tcp connect error: "), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn unusable_upstream_urls_are_refused() {
        for url in ["https://ch:8443", "ch:8123", "http://ch:8123/?x=1"] {
            assert!(
                Upstream::new(url, Duration::from_secs(1)).is_err(),
                "{url} accepted"
            );
        }
    }
}
