//! The start and end of a binary's life, written once for aurora-proxy and aurora-ingest: log lines on stderr
//! as text or JSON with the level from `RUST_LOG` ([`init_logging`]), and the signal that asks the process
//! to stop ([`shutdown_signal`]). Each binary's own events and metrics stay in its crate.

/// How log lines are written: each binary's `log_format` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// tracing's human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `fields`, `target`), what log collectors read.
    Json,
}

/// The filter used when `RUST_LOG` is unset or cannot be read.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Installs the process's log subscriber: lines on stderr in `format`, filtered by `RUST_LOG` (default
/// [`DEFAULT_LOG_FILTER`]).
///
/// # Panics
/// When a global subscriber is already installed: call it once, at start.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves when the process is asked to stop: SIGTERM (what service managers and `docker stop` send) or
/// SIGINT (Ctrl-C). Where SIGTERM cannot be watched, SIGINT alone.
///
/// # Cancellation safety
/// Safe to drop; a signal that arrives after it is dropped is not remembered for the next call.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_resolves_the_shutdown_signal() {
        let waiting = tokio::spawn(shutdown_signal());
        // The handler is installed once the task has run; SIGTERM before that would end the test process.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        // std cannot signal a process; kill(1) sends SIGTERM by default.
        let status = std::process::Command::new("kill")
            .arg(std::process::id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the signal is seen")
            .expect("the task ends");
    }
}
