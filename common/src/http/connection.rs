//! One exchange on one connection: TCP (and TLS) within the connect timeout, the HTTP/1 handshake, the
//! request, the answer's head, and its body read up to the client's bound. The connection is closed after
//! the answer: no pool, so a server that went away between two requests costs nothing, and a request is never
//! retried on a connection that turns out to be dead (an INSERT must not run twice).

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::ServerName;

use super::error::error_chain;
use super::{Error, Inner, Response};

/// Sends `request` on a new connection and reads the answer.
///
/// # Cancellation safety
///
/// Dropping the future closes the connection (the task that drives it is aborted); the request may or may
/// not have reached the server.
pub(super) async fn exchange(inner: &Inner, request: Request<Full<Bytes>>) -> Result<Response, Error> {
    let addr = inner.endpoint.addr();
    let after = inner.options.connect_timeout;
    let connect = async {
        let tcp = TcpStream::connect((inner.endpoint.host.as_str(), inner.endpoint.port))
            .await
            .map_err(|error| Error::Connect {
                addr: addr.clone(),
                error,
            })?;
        let _ = tcp.set_nodelay(true);
        match &inner.tls {
            None => Ok(Stream::Plain(tcp)),
            Some((connector, name)) => connector
                .connect(name.clone(), tcp)
                .await
                .map(|tls| Stream::Tls(Box::new(tls)))
                .map_err(|error| Error::Handshake {
                    addr: addr.clone(),
                    error,
                }),
        }
    };
    let stream = tokio::time::timeout(after, connect)
        .await
        .map_err(|_| Error::ConnectTimeout {
            addr: addr.clone(),
            after,
        })??;
    match stream {
        Stream::Plain(tcp) => send(tcp, request, inner.options.max_answer, &addr).await,
        Stream::Tls(tls) => send(*tls, request, inner.options.max_answer, &addr).await,
    }
}

/// A connection, with or without TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The task that drives a connection, aborted when the exchange ends (or is dropped).
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send<S>(
    stream: S,
    request: Request<Full<Bytes>>,
    limit: usize,
    addr: &str,
) -> Result<Response, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| Error::Send {
        addr: addr.to_string(),
        reason: error_chain(&e),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    let _driver = Driver(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await.map_err(failed)?;
    let (head, body) = response.into_parts();
    let declared = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = read_bounded(body, declared, limit, addr).await?;
    Ok(Response {
        status: head.status,
        headers: head.headers,
        body,
    })
}

/// The body, at most `limit` bytes: refused up front when its declared length is larger, and as soon as the
/// bytes that arrived pass it otherwise; the buffer grows as bytes arrive.
async fn read_bounded(
    mut body: Incoming,
    declared: Option<u64>,
    limit: usize,
    addr: &str,
) -> Result<Bytes, Error> {
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Error::TooLarge { limit });
    }
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Body {
            addr: addr.to_string(),
            reason: error_chain(&e),
        })?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit - out.len() {
                return Err(Error::TooLarge { limit });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// TLS's name for `host` (a DNS name or an IP address).
pub(super) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_string()).map_err(|e| Error::Url(format!("server name {host}: {e}")))
}
