//! The ClickHouse side of a worker, shaped as a Vector sink: a request builder turns each closed batch into
//! its inserts (the dead letters, then the rows into the stage, whose views write the target and the ledger
//! in the same request), and a retrying service sends each insert until ClickHouse acknowledges it. Only
//! then are the batch's offsets handed back to the consumer, which commits them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prometheus::{Histogram, IntCounter};

use super::batch::{Ack, Batch};
#[cfg(feature = "fault-injection")]
use super::fault::AbortAfterInserts;
use super::{encode, WorkerEnv};
use crate::clickhouse::ClickHouse;
use crate::config::PipelineSpec;
use crate::schema::{self, Objects, DEAD_LETTER_COLUMNS};
use crate::status::{Shared, State};

/// Inserts batches in order, each until ClickHouse acknowledges it, then passes its offsets back.
pub(super) async fn run(
    env: Arc<WorkerEnv>,
    shared: Arc<Shared>,
    mut batches: tokio::sync::mpsc::Receiver<Batch>,
    acks: mpsc::Sender<Ack>,
    in_flight: Arc<AtomicUsize>,
) {
    let mut requests = RequestBuilder::new(&shared.spec);
    let mut service = RetryingInsert::new(&env, shared.clone());
    while let Some(batch) = batches.recv().await {
        let ack = batch.ack();
        for insert in requests.build(batch) {
            service.send(&insert).await;
        }
        let _ = acks.send(ack);
        in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One insert of a batch.
pub(super) struct InsertRequest<'a> {
    pub table: &'a str,
    pub columns: &'a str,
    pub body: Bytes,
    /// Rows for the target (0: the dead letters).
    pub rows: usize,
    /// The same for every attempt at this insert: while an earlier attempt still runs in the server (our side
    /// timed out or lost the connection), ClickHouse refuses the retry instead of running it twice.
    pub query_id: String,
    /// For the rows: the last offset per partition the ledger holds once this insert is in.
    pub ledger: Vec<((String, i32), i64)>,
}

/// Turns batches into their inserts, naming each with a query id unique to this process and batch.
pub(super) struct RequestBuilder {
    pipeline: String,
    /// Process id and start time: query ids differ from those of an earlier run of the daemon.
    run_id: String,
    dead_letter_table: String,
    stage_table: String,
    stage_columns: String,
    /// Batches built so far.
    batches: u64,
}

impl RequestBuilder {
    pub fn new(spec: &PipelineSpec) -> RequestBuilder {
        let objects = Objects::new(spec);
        let run_id = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        );
        RequestBuilder {
            pipeline: spec.name.clone(),
            run_id,
            dead_letter_table: objects.dead_letters.sql(),
            stage_table: objects.stage.sql(),
            stage_columns: schema::stage_insert_columns(&spec.columns()),
            batches: 0,
        }
    }

    /// The inserts of `batch`, in the order they are sent: its dead letters, then its rows. A part with
    /// nothing in it is no insert.
    pub fn build(&mut self, batch: Batch) -> Vec<InsertRequest<'_>> {
        self.batches += 1;
        let dead_rows = if batch.dead.is_empty() {
            Vec::new()
        } else {
            encode::dead_letter_rows(&batch.dead, encode::unix_time())
        };
        let ledger = batch.row_last();
        let parts = [
            (
                &self.dead_letter_table,
                DEAD_LETTER_COLUMNS,
                dead_rows,
                0,
                Vec::new(),
            ),
            (
                &self.stage_table,
                self.stage_columns.as_str(),
                batch.rows,
                batch.row_count,
                ledger,
            ),
        ];
        parts
            .into_iter()
            .filter(|(_, _, body, _, _)| !body.is_empty())
            .map(|(table, columns, body, rows, ledger)| InsertRequest {
                table,
                columns,
                body: Bytes::from(body),
                rows,
                query_id: format!(
                    "aurora-ingest-{}-{}-{}-{}",
                    self.pipeline,
                    self.run_id,
                    self.batches,
                    rows > 0
                ),
                ledger,
            })
            .collect()
    }
}

/// Sends inserts to ClickHouse until each is acknowledged, with backoff from `retry_initial` to
/// `retry_max`; the pipeline shows `backoff` and the error meanwhile.
struct RetryingInsert {
    ch: ClickHouse,
    shared: Arc<Shared>,
    columns: Vec<crate::columns::Column>,
    failovers: IntCounter,
    retry_initial: Duration,
    retry_max: Duration,
    ok: IntCounter,
    failed: IntCounter,
    retries: IntCounter,
    rows_inserted: IntCounter,
    duration: Histogram,
    #[cfg(feature = "fault-injection")]
    fault: AbortAfterInserts,
}

impl RetryingInsert {
    fn new(env: &WorkerEnv, shared: Arc<Shared>) -> RetryingInsert {
        let name = shared.spec.name.as_str();
        let m = &shared.metrics;
        RetryingInsert {
            ch: env.ch.clone(),
            columns: shared.spec.columns(),
            failovers: m.failovers.with_label_values(&[name]),
            retry_initial: env.retry_initial,
            retry_max: env.retry_max,
            ok: m.batches.with_label_values(&[name, "ok"]),
            failed: m.batches.with_label_values(&[name, "error"]),
            retries: m.retries.with_label_values(&[name]),
            rows_inserted: m.rows_inserted.with_label_values(&[name]),
            duration: m.insert_duration.with_label_values(&[name]),
            #[cfg(feature = "fault-injection")]
            fault: AbortAfterInserts::from_env(),
            shared,
        }
    }

    /// Returns once ClickHouse has acknowledged `request`. Each attempt goes to the current node (prepared
    /// first if it was not reachable when the pipeline started); after a transient failure the next attempt
    /// goes to the next node, with the same body and query id.
    async fn send(&mut self, request: &InsertRequest<'_>) {
        let name = self.shared.spec.name.as_str();
        let settings = format!("query_id={}", request.query_id);
        let mut delay = self.retry_initial;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 && request.rows > 0 && self.already_in_ledger(&request.ledger).await {
                // An attempt that failed on our side did complete in the server (rows and ledger together).
                tracing::info!(
                    pipeline = name,
                    query_id = request.query_id.as_str(),
                    "batch found in the ledger after a failed attempt"
                );
                self.acknowledged(request.rows);
                return;
            }
            let node = self.ch.current();
            let started = Instant::now();
            let result = match schema::ensure_prepared(
                &self.ch,
                node,
                &self.shared.spec,
                &self.columns,
                &self.shared.prepared,
            )
            .await
            {
                Ok(()) => {
                    self.ch
                        .on_node(node)
                        .insert(request.table, request.columns, &settings, request.body.clone())
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    self.duration.observe(started.elapsed().as_secs_f64());
                    self.acknowledged(request.rows);
                    #[cfg(feature = "fault-injection")]
                    if request.rows > 0 {
                        self.fault.acknowledged(name);
                    }
                    return;
                }
                Err(e) => {
                    self.failed.inc();
                    self.retries.inc();
                    let node_label = self.ch.node_label(node).to_string();
                    tracing::warn!(pipeline = name, table = request.table, node = node_label.as_str(), error = %e, retry_in = ?delay, "insert failed");
                    // A node that cannot be prepared (down, or anything else) is passed over like one that
                    // fails the insert; the same batch goes to the next node.
                    let move_on = e.is_transient() || matches!(e, crate::clickhouse::ChError::Config(_));
                    if move_on && self.ch.fail_over(node, &e).is_some() {
                        self.failovers.inc();
                    }
                    if self.shared.state() != State::Stopping {
                        self.shared.set_state(State::Backoff, Some(e.to_string()));
                    } else {
                        self.shared.set_state(State::Stopping, Some(e.to_string()));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
    }

    /// Counts an acknowledged insert; the pipeline leaves `backoff`.
    fn acknowledged(&self, rows: usize) {
        self.ok.inc();
        self.rows_inserted.inc_by(rows as u64);
        self.shared
            .rows_inserted
            .fetch_add(rows as u64, Ordering::Relaxed);
        self.shared.recovered();
    }

    /// True when the ledger records, for every partition of the batch, a range reaching its last row.
    async fn already_in_ledger(&self, row_last: &[((String, i32), i64)]) -> bool {
        match schema::ledger_positions(&self.ch, &self.shared.spec).await {
            Ok(positions) => row_last.iter().all(|((topic, partition), last)| {
                positions
                    .iter()
                    .any(|(t, p, o)| t == topic && p == partition && o >= last)
            }),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::RowEncoder;
    use crate::worker::encode::DeadLetter;

    fn spec() -> PipelineSpec {
        serde_json::from_str(r#"{"name":"p","topics":["t"],"table":"db.events"}"#).unwrap()
    }

    const EVENT: &[u8] = br#"{"event_id":"6f1c2d3e-4a5b-4c6d-8e7f-901234567890","timestamp":1714564800,"event_type":"click","tenant_id":"t1"}"#;

    #[test]
    fn a_batch_is_its_dead_letters_then_its_rows_and_empty_parts_are_no_inserts() {
        let spec = spec();
        let encoder = RowEncoder::new(spec.columns());
        let mut builder = RequestBuilder::new(&spec);
        let mut batch = Batch::new(0);
        batch.push_row(&encoder, "t", 0, 4, EVENT).unwrap();
        batch.mark_read("t", 0, 4);
        batch.dead.push(DeadLetter {
            topic: "t".into(),
            partition: 0,
            offset: 5,
            error: "empty message".into(),
            raw: Vec::new(),
        });
        batch.mark_read("t", 0, 5);
        let rows = batch.rows.clone();
        let inserts = builder.build(batch);
        assert_eq!(inserts.len(), 2);
        let (dead, stage) = (&inserts[0], &inserts[1]);
        assert_eq!(
            (dead.table, dead.columns, dead.rows),
            ("`db`.`events_dead_letters`", DEAD_LETTER_COLUMNS, 0)
        );
        assert!(dead.ledger.is_empty());
        assert!(dead.query_id.starts_with("aurora-ingest-p-") && dead.query_id.ends_with("-1-false"));
        assert_eq!(
            (stage.table, stage.rows, &stage.body[..]),
            ("`db`.`aurora_stage_p`", 1, &rows[..])
        );
        assert_eq!(stage.ledger, vec![(("t".to_string(), 0), 4)]);
        assert!(stage.query_id.ends_with("-1-true"), "{}", stage.query_id);

        let mut skipped = Batch::new(0);
        skipped.mark_read("t", 0, 6);
        assert!(
            builder.build(skipped).is_empty(),
            "nothing to insert, only offsets to commit"
        );
        let mut only_rows = Batch::new(0);
        only_rows.push_row(&encoder, "t", 0, 7, EVENT).unwrap();
        let inserts = builder.build(only_rows);
        assert_eq!(inserts.len(), 1);
        assert!(
            inserts[0].query_id.ends_with("-3-true"),
            "every batch counts: {}",
            inserts[0].query_id
        );
    }
}
