//! The audit writer: one task inserts the records statements hand to [`crate::gateway::audit::Audit`] into the
//! audit table, in batches (every second, or 1,000 at once) with `INSERT … FORMAT JSONEachRow` as the audit user,
//! through the cluster's write-capable nodes. When ClickHouse cannot take a batch, its records are written to the
//! log as JSON (target `aurora_audit`) and counted as not stored.

use std::sync::Arc;

use base64::Engine as _;
use tokio::sync::mpsc;

use super::request_body::UpstreamBody;
use super::route::{RouteKey, Router};
use crate::cluster::Route;
pub use crate::config::users::AuditConfig;
use crate::gateway::audit::{Audit, AuditRecord, BATCH, CAPACITY, FLUSH_EVERY};
use crate::metrics::Metrics;

/// Creates the table if need be (with the first batch) and starts the writer.
pub fn start(config: AuditConfig, router: Arc<Router>, metrics: Arc<Metrics>) -> Arc<Audit> {
    let (sender, receiver) = mpsc::channel(CAPACITY);
    tokio::spawn(write(config, router, metrics.clone(), receiver));
    Audit::to(sender, metrics)
}

async fn write(
    config: AuditConfig,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    mut receiver: mpsc::Receiver<AuditRecord>,
) {
    let table = format!("{}.{}", config.database, config.table);
    let create = [
        format!("CREATE DATABASE IF NOT EXISTS {}", config.database),
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (time DateTime, proxy_user String, clickhouse_user String, \
             client String, protocol String, node String, query_id String, kind String, query String, \
             question String, outcome String, code Int32, status UInt16, bytes UInt64, duration_ms UInt64) \
             ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY time"
        ),
    ];
    let mut created = false;
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH);
    loop {
        let closed = tokio::select! {
            got = receiver.recv() => match got {
                Some(record) => { batch.push(record); false }
                None => true,
            },
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
        };
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            if !created {
                created = true;
                for sql in &create {
                    if let Err(error) = send(&router, &config, sql.as_bytes().to_vec(), "").await {
                        tracing::warn!(%table, %error, "cannot create the audit table");
                        created = false;
                        break;
                    }
                }
            }
            let mut body = Vec::with_capacity(batch.len() * 256);
            for record in &batch {
                if serde_json::to_writer(&mut body, record).is_ok() {
                    body.push(b'\n');
                }
            }
            let insert = format!("INSERT INTO {table} FORMAT JSONEachRow");
            if let Err(error) = send(&router, &config, body, &insert).await {
                // Not stored: the log keeps them.
                tracing::warn!(%table, %error, records = batch.len(), "cannot store audit records; they follow in the log");
                for record in &batch {
                    if let Ok(line) = serde_json::to_string(record) {
                        tracing::info!(target: "aurora_audit", record = %line, "audit record");
                    }
                }
                metrics
                    .audit_dropped
                    .with_label_values(&["clickhouse"])
                    .inc_by(batch.len() as u64);
            } else {
                metrics.audit_stored.inc_by(batch.len() as u64);
            }
            batch.clear();
        }
        if closed {
            return;
        }
    }
}

/// Sends `body` (the statement, or the data of `query`) to a write-capable node as the audit user.
async fn send(router: &Router, config: &AuditConfig, body: Vec<u8>, query: &str) -> Result<(), String> {
    let uri = if query.is_empty() {
        "/".to_string()
    } else {
        format!("/?query={}", super::params::encode(query.as_bytes()))
    };
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", config.user, config.password));
    let request = hyper::Request::post(uri)
        .header(hyper::header::AUTHORIZATION, format!("Basic {credentials}"))
        .body(UpstreamBody::full(body.into(), router.metrics()))
        .map_err(|e| e.to_string())?;
    let key = RouteKey {
        user: config.user.clone(),
        ..Default::default()
    };
    let (response, lease) = router
        .send(Route::Write, &key, request, false)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let answer = super::body::read_answer(response.into_body(), lease, 64 << 10).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&answer).trim()))
    }
}
