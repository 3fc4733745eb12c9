//! The audit trail's records and where statements hand them: one record per statement (SQL and ASK, both
//! protocols) — who, from where, on which node, what, and how it ended.
//!
//! Statements hand their record to a bounded channel (`try_send`: a full channel drops the record and counts
//! it, it never slows a query); the writer ([`crate::http::audit`]) inserts them into the audit table. Passwords
//! never enter a record; statement texts are cut at [`MAX_TEXT`] bytes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Longest statement text (or question, or generated SQL) a record keeps.
pub const MAX_TEXT: usize = 16 << 10;
/// Records waiting for the writer at most; beyond, new ones are dropped (and counted).
pub const CAPACITY: usize = 10_000;
pub const BATCH: usize = 1_000;
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

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

    /// Records go to `sender` (the writer's, [`crate::http::audit::start`]).
    pub fn to(sender: mpsc::Sender<AuditRecord>, metrics: Arc<Metrics>) -> Arc<Audit> {
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
