//! The HTTP listener: one hyper connection task per client, a cap on concurrent connections, and graceful
//! shutdown (stop accepting, let requests in flight finish, close idle keep-alive connections).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::HttpEnv;
use crate::listener::{accept_loop, stopped};
use crate::telemetry::{self, Protocol};

/// Accepts HTTP clients until `shutdown` turns true. Connections are spawned on `tracker`, so the caller can
/// wait for requests in flight to finish.
pub async fn serve(
    listener: TcpListener,
    env: Arc<HttpEnv>,
    shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    let max = env.config.max_connections;
    let serve_shutdown = shutdown.clone();
    accept_loop(listener, max, shutdown, tracker, "http", move |stream, peer| {
        plain(stream, peer, env.clone(), serve_shutdown.clone())
    })
    .await;
}

/// Accepts HTTPS clients until `shutdown` turns true: the TLS handshake (within `handshake_timeout`), then
/// the same HTTP service as the plain listener.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    env: Arc<HttpEnv>,
    shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    let max = env.config.max_connections;
    let serve_shutdown = shutdown.clone();
    accept_loop(listener, max, shutdown, tracker, "https", move |stream, peer| {
        let env = env.clone();
        let shutdown = serve_shutdown.clone();
        let acceptor = acceptor.clone();
        async move {
            let _ = stream.set_nodelay(true);
            match tokio::time::timeout(env.config.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(tls, peer, env, shutdown).await,
                Ok(Err(error)) => telemetry::tls_handshake_failed(&env.metrics, Protocol::Http, peer, &error),
                Err(_) => telemetry::tls_handshake_failed(&env.metrics, Protocol::Http, peer, &"timed out"),
            }
        }
    })
    .await;
}

async fn plain(stream: TcpStream, peer: SocketAddr, env: Arc<HttpEnv>, shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    connection(stream, peer, env, shutdown).await
}

/// Serves one client connection (HTTP/1.1 keep-alive: many requests, one at a time).
async fn connection<S>(stream: S, peer: SocketAddr, env: Arc<HttpEnv>, mut shutdown: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    telemetry::connection_opened(&env.metrics, Protocol::Http, peer);
    let service_env = env.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let env = service_env.clone();
        async move { Ok::<_, Infallible>(super::service::handle(&env, request, peer).await) }
    });
    // A connection that sends no complete request head within `http_receive_timeout` (a new client that says
    // nothing, an idle keep-alive connection, a slow header) is closed: it must not hold a connection slot.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(env.config.http_receive_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            // Finishes the request in flight (if any), then closes; an idle connection closes at once.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    let reason = match &result {
        Ok(()) => "closed",
        Err(e) if e.is_incomplete_message() => "client went away mid-request",
        Err(_) => "error",
    };
    if let Err(error) = &result {
        tracing::debug!(%peer, %error, "http connection ended with an error");
    }
    telemetry::connection_closed(&env.metrics, Protocol::Http, peer, reason);
}
