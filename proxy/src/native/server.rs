//! The native listener: one session task per client, a cap on concurrent sessions, and graceful shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::session::{self, SessionEnv};
use crate::server::accept_loop;

/// Accepts native clients until `shutdown` turns true. Sessions are spawned on `tracker` so the caller can wait
/// for running queries to finish.
pub async fn serve(
    listener: TcpListener,
    env: Arc<SessionEnv>,
    shutdown: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    let max = env.config.max_connections;
    let session_shutdown = shutdown.clone();
    accept_loop(listener, max, shutdown, tracker, "native", move |stream, peer| {
        session::run(stream, peer, env.clone(), session_shutdown.clone())
    })
    .await;
}
