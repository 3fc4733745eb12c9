//! `aurora-ingest run`: starts the API and the configured pipelines, runs until SIGTERM/SIGINT, then
//! disconnects every pipeline (flush, insert, commit) before exiting.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, Api};
use crate::clickhouse::ClickHouse;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::Manager;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let password = config.clickhouse_password().map_err(anyhow::Error::msg)?;
    let ch = ClickHouse::new(&config.clickhouse, password)?;
    match ch.version().await {
        Ok((major, minor)) => tracing::info!(major, minor, "ClickHouse version"),
        Err(e) => tracing::warn!(error = %e, "ClickHouse not reachable yet; pipelines will retry"),
    }
    let metrics = Metrics::new();
    let manager = Manager::new(&config, ch, metrics.clone()).map_err(anyhow::Error::msg)?;
    let token = config.api_token().map_err(anyhow::Error::msg)?;
    if !config.api_listen.ip().is_loopback() {
        tracing::warn!(
            addr = %config.api_listen,
            "the API listens beyond this machine (api_listen is not a loopback address): anyone who can reach it \
             sees /metrics and /health, and /pipelines answers whoever holds the token; prefer 127.0.0.1 behind a proxy"
        );
    }
    if token.is_none() {
        tracing::warn!(
            "no API token configured (api_token_env / api_token_file): /pipelines refuses every request; \
             the pipelines of the config file run"
        );
    }
    let listener = TcpListener::bind(config.api_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.api_listen))?;
    tracing::info!(addr = %config.api_listen, "API listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let api_task = tokio::spawn(api::serve(
        listener,
        Arc::new(Api {
            manager: manager.clone(),
            metrics,
            token,
        }),
        stop_rx,
    ));
    for spec in config.pipelines.clone() {
        manager.add(spec).await?;
    }
    aurora_common::telemetry::shutdown_signal().await;
    tracing::info!("shutting down: disconnecting pipelines");
    manager.remove_all().await;
    let _ = stop_tx.send(true);
    let _ = api_task.await;
    Ok(())
}
