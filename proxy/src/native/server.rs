//! The native listeners (plain and TLS): one session task per client, a cap on concurrent sessions, and
//! graceful shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use super::session::{self, SessionEnv};
use crate::listener::accept_loop;
use crate::tls::ClientStream;

/// Accepts plain native clients until `shutdown` turns true. Sessions are spawned on `tracker` so the caller can
/// wait for running queries to finish.
pub async fn serve(
    listener: TcpListener,
    env: Arc<SessionEnv>,
    shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    let max = env.config.max_connections;
    let session_shutdown = shutdown.clone();
    accept_loop(listener, max, shutdown, tracker, "native", move |stream, peer| {
        let env = env.clone();
        let shutdown = session_shutdown.clone();
        async move {
            // Request/response with small packets: Nagle plus delayed ACKs would stall each one.
            let _ = stream.set_nodelay(true);
            session::run(ClientStream::Plain(stream), peer, env, shutdown).await;
        }
    })
    .await;
}

/// Accepts TLS native clients (clickhouse-client `--secure`) until `shutdown` turns true. The TLS handshake
/// counts against the handshake timeout.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    env: Arc<SessionEnv>,
    shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    let max = env.config.max_connections;
    let session_shutdown = shutdown.clone();
    accept_loop(
        listener,
        max,
        shutdown,
        tracker,
        "native-tls",
        move |stream, peer| {
            let env = env.clone();
            let shutdown = session_shutdown.clone();
            let acceptor = acceptor.clone();
            async move {
                let _ = stream.set_nodelay(true);
                match tokio::time::timeout(env.config.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => session::run(ClientStream::Tls(Box::new(tls)), peer, env, shutdown).await,
                    Ok(Err(error)) => crate::telemetry::tls_handshake_failed(
                        &env.metrics,
                        crate::telemetry::Protocol::Native,
                        peer,
                        &error,
                    ),
                    Err(_) => crate::telemetry::tls_handshake_failed(
                        &env.metrics,
                        crate::telemetry::Protocol::Native,
                        peer,
                        &"timed out",
                    ),
                }
            }
        },
    )
    .await;
}
