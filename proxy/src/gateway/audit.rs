//! The audit trail: one record per statement (SQL and ASK, both protocols) — who, from where, on which node,
//! what, and how it ended — appended to a ClickHouse table off the hot path.
//!
//! Statements hand their record to a bounded channel (`try_send`: a full channel drops the record and counts
//! it, it never slows a query); one task inserts them in batches (every second, or 1,000 at once) with
//! `INSERT … FORMAT JSONEachRow` as the audit user, through the cluster's write-capable nodes. When ClickHouse
//! cannot take a batch, its records are written to the log as JSON (target `aurora_audit`) and counted as not
//! stored. Passwords never enter a record; statement texts are cut at [`MAX_TEXT`] bytes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::cluster::Route;
use crate::http::request_body::UpstreamBody;
use crate::http::route::{RouteKey, Router};
use crate::metrics::Metrics;

/// Longest statement text (or question, or generated SQL) a record keeps.
pub const MAX_TEXT: usize = 16 << 10;
/// Records waiting for the writer at most; beyond, new ones are dropped (and counted).
const CAPACITY: usize = 10_000;
const BATCH: usize = 1_000;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where the audit table is and who writes it.
#[derive(Clone, PartialEq)]
pub struct AuditConfig {
    /// `database.table`, checked as two identifiers.
    pub database: String,
    pub table: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditConfig")
            .field("table", &format_args!("{}.{}", self.database, self.table))
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One statement, as the audit table holds it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// Seconds since the epoch, when the statement ended.
    pub time: u64,
    pub proxy_user: String,
    pub clickhouse_user: String,
    pub client: String,
    pub protocol: &'static str,
    pub node: String,
    pub query_id: String,
    /// `sql` or `ask`.
    pub kind: &'static str,
    pub query: String,
    pub question: String,
    /// `ok`, `error`, `refused`, `aborted`, `timeout`.
    pub outcome: &'static str,
    /// The exception code (0: none, or unknown on an HTTP answer without the code header: 18.x sends none).
    pub code: i32,
    /// The HTTP status of the answer (0 on the native protocol).
    pub status: u16,
    /// Bytes of the answer sent to the client (HTTP).
    pub bytes: u64,
    pub duration_ms: u64,
}

/// Where records go.
pub struct Audit {
    sender: Option<mpsc::Sender<AuditRecord>>,
    metrics: Arc<Metrics>,
}

impl Audit {
    /// No audit table: records are not kept.
    pub fn off(metrics: Arc<Metrics>) -> Arc<Audit> {
        Arc::new(Audit {
            sender: None,
            metrics,
        })
    }

    /// Creates the table if need be and starts the writer.
    pub fn start(config: AuditConfig, router: Arc<Router>, metrics: Arc<Metrics>) -> Arc<Audit> {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        tokio::spawn(write(config, router, metrics.clone(), receiver));
        Arc::new(Audit {
            sender: Some(sender),
            metrics,
        })
    }

    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Hands `record` to the writer; never waits.
    pub fn record(&self, mut record: AuditRecord) {
        let Some(sender) = &self.sender else { return };
        record.time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for text in [&mut record.query, &mut record.question] {
            cut(text);
        }
        if sender.try_send(record).is_err() {
            self.metrics
                .audit_dropped
                .with_label_values(&["queue_full"])
                .inc();
        }
    }
}

/// `text` cut at [`MAX_TEXT`] bytes, on a character boundary.
fn cut(text: &mut String) {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
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
        format!("/?query={}", crate::http::params::encode(query.as_bytes()))
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
    let answer = crate::http::body::read_answer(response.into_body(), lease, 64 << 10).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&answer).trim()))
    }
}
