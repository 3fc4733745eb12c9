//! The native listener: one session task per client, a cap on concurrent sessions, and graceful shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

use super::session::{self, SessionEnv};

/// Accepts native clients until `shutdown` turns true. Sessions are spawned on `tracker` so the caller can wait
/// for running queries to finish.
pub async fn serve(
    listener: TcpListener,
    env: Arc<SessionEnv>,
    mut shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(env.config.max_connections));
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = crate::server::stopped(&mut shutdown) => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    tracing::warn!(%error, "native accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::server::stopped(&mut shutdown) => return,
        };
        let env = env.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            session::run(stream, peer, env, shutdown).await;
            drop(permit);
        });
    }
}
