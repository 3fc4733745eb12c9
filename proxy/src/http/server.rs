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
        connection(stream, peer, env.clone(), serve_shutdown.clone())
    })
    .await;
}

/// Serves one client connection (HTTP/1.1 keep-alive: many requests, one at a time).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    env: Arc<HttpEnv>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
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
