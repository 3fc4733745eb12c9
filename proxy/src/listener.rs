//! What every listener of the proxy shares (native, native TLS, HTTP, metrics): the accept loop with its cap on
//! connections, and the shutdown signal every connection watches to finish gracefully.
//!
//! [`crate::server`] creates the signal (a `watch` channel that turns true on SIGTERM/SIGINT) and binds the
//! listeners; the protocol sides only accept and watch.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// Accepts clients on `listener` until `shutdown` turns true, at most `max_connections` served at once (more
/// wait in the listen queue). Each connection runs `serve` on `tracker`, so shutdown can wait for it.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
    what: &'static str,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stopped(&mut shutdown) => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    tracing::warn!(%error, listener = what, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let connection = serve(stream, peer);
        tracker.spawn(async move {
            connection.await;
            drop(permit);
        });
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
///
/// # Cancellation safety
/// Safe in `select!`: it only waits for a change.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
