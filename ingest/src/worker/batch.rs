//! A batch: the stage rows and dead letters read from a set of offset ranges, and the limits that close it
//! (`batch_max_rows`, `batch_max_bytes`, `batch_max_wait`, as the `clickhouse` crate's `Inserter` has them).

use std::time::{Duration, Instant};

use super::encode::{self, DeadLetter};
use crate::columns::{RowEncoder, RowError};
use crate::config::PipelineSpec;

/// Offsets ClickHouse has acknowledged, ready to commit: the highest offset read per (topic, partition).
pub(super) type Ack = Vec<((String, i32), i64)>;

/// The longest a poll waits, so that a stop request or a due batch is seen soon.
const MAX_POLL_WAIT: Duration = Duration::from_millis(100);

/// Rows and dead letters read from a set of offset ranges.
pub(super) struct Batch {
    /// The stage rows, RowBinary (see [`encode::stage_row`]).
    pub rows: Vec<u8>,
    pub row_count: usize,
    /// Kept only when the pipeline keeps dead letters (`dead_letters = "table"`).
    pub dead: Vec<DeadLetter>,
    /// Per (topic, partition) read. A handful of entries: searched linearly.
    pub partitions: Vec<BatchPartition>,
    /// When its first message was read: `batch_max_wait` counts from here.
    pub opened: Instant,
}

/// What a batch read of one partition.
pub(super) struct BatchPartition {
    pub topic: String,
    pub partition: i32,
    /// The highest offset read: committed once the batch is in.
    pub last: i64,
    /// The highest offset that became a row (-1: none): what the ledger records for this batch.
    pub row_last: i64,
}

impl Batch {
    pub fn new(capacity: usize) -> Batch {
        Batch {
            rows: Vec::with_capacity(capacity),
            row_count: 0,
            dead: Vec::new(),
            partitions: Vec::new(),
            opened: Instant::now(),
        }
    }

    /// Nothing read yet (a message skipped because the ledger holds it counts as read).
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Appends the message at `offset` as a stage row; on a refusal the batch is left as it was.
    pub fn push_row(
        &mut self,
        encoder: &RowEncoder,
        topic: &str,
        partition: i32,
        offset: i64,
        payload: &[u8],
    ) -> Result<(), RowError> {
        encode::stage_row(encoder, topic, partition, offset, payload, &mut self.rows)?;
        self.row_count += 1;
        self.partition(topic, partition).row_last = offset;
        Ok(())
    }

    /// Records that `offset` was read, whatever became of it: it is committed with the batch.
    pub fn mark_read(&mut self, topic: &str, partition: i32, offset: i64) {
        self.partition(topic, partition).last = offset;
    }

    fn partition(&mut self, topic: &str, partition: i32) -> &mut BatchPartition {
        let i = match self
            .partitions
            .iter()
            .position(|p| p.partition == partition && p.topic == topic)
        {
            Some(i) => i,
            None => {
                self.partitions.push(BatchPartition {
                    topic: topic.to_string(),
                    partition,
                    last: -1,
                    row_last: -1,
                });
                self.partitions.len() - 1
            }
        };
        &mut self.partitions[i]
    }

    /// The ledger's expectation: last row offset per partition that has rows.
    pub fn row_last(&self) -> Vec<((String, i32), i64)> {
        self.partitions
            .iter()
            .filter(|p| p.row_last >= 0)
            .map(|p| ((p.topic.clone(), p.partition), p.row_last))
            .collect()
    }

    /// What to commit once ClickHouse has acknowledged the batch.
    pub fn ack(&self) -> Ack {
        self.partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.last))
            .collect()
    }
}

/// When a pipeline's batch closes.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchLimits {
    pub max_rows: usize,
    /// Bytes of encoded rows.
    pub max_bytes: usize,
    /// Counted from the batch's first message.
    pub max_wait: Duration,
}

impl BatchLimits {
    pub fn new(spec: &PipelineSpec) -> BatchLimits {
        BatchLimits {
            max_rows: spec.batch_max_rows,
            max_bytes: spec.batch_max_bytes,
            max_wait: spec.batch_max_wait,
        }
    }

    /// An empty batch, its row buffer reserved up to 8 MiB.
    pub fn new_batch(&self) -> Batch {
        Batch::new(self.max_bytes.min(8 << 20))
    }

    /// Whether `batch` must close: it holds something and is full by rows or bytes, or — reading the clock
    /// only when `check_time` — it has been open for `max_wait`.
    pub fn is_due(&self, batch: &Batch, check_time: bool) -> bool {
        !batch.is_empty()
            && (batch.row_count >= self.max_rows
                || batch.rows.len() >= self.max_bytes
                || (check_time && batch.opened.elapsed() >= self.max_wait))
    }

    /// How long the next poll may wait: at most [`MAX_POLL_WAIT`], less when the batch is due sooner.
    pub fn poll_timeout(&self, batch: &Batch, check_time: bool) -> Duration {
        if batch.is_empty() || !check_time {
            MAX_POLL_WAIT
        } else {
            self.max_wait
                .saturating_sub(batch.opened.elapsed())
                .min(MAX_POLL_WAIT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::envelope_columns;

    const EVENT: &[u8] = br#"{"event_id":"6f1c2d3e-4a5b-4c6d-8e7f-901234567890","timestamp":"2024-05-01T12:00:00Z","event_type":"click","tenant_id":"t1"}"#;

    fn limits(max_rows: usize, max_bytes: usize, max_wait: Duration) -> BatchLimits {
        BatchLimits {
            max_rows,
            max_bytes,
            max_wait,
        }
    }

    #[test]
    fn a_batch_closes_at_its_row_limit() {
        let encoder = RowEncoder::new(envelope_columns());
        let limits = limits(3, 1 << 20, Duration::from_secs(600));
        let mut batch = limits.new_batch();
        assert!(!limits.is_due(&batch, true), "an empty batch never closes");
        for offset in 0..3 {
            assert!(!limits.is_due(&batch, true), "closed after {offset} rows");
            batch.push_row(&encoder, "t", 0, offset, EVENT).unwrap();
            batch.mark_read("t", 0, offset);
        }
        assert_eq!(batch.row_count, 3);
        assert!(limits.is_due(&batch, false), "full by rows, whatever the clock");
    }

    #[test]
    fn a_batch_closes_at_its_byte_limit() {
        let encoder = RowEncoder::new(envelope_columns());
        let mut one = Batch::new(0);
        one.push_row(&encoder, "t", 0, 0, EVENT).unwrap();
        let row = one.rows.len();
        let limits = limits(1000, 2 * row, Duration::from_secs(600));
        let mut batch = limits.new_batch();
        batch.push_row(&encoder, "t", 0, 0, EVENT).unwrap();
        assert!(!limits.is_due(&batch, true));
        batch.push_row(&encoder, "t", 0, 1, EVENT).unwrap();
        assert_eq!(batch.rows.len(), 2 * row);
        assert!(limits.is_due(&batch, false));
    }

    #[test]
    fn a_batch_closes_after_its_wait_when_the_clock_is_read() {
        let limits = limits(1000, 1 << 20, Duration::from_millis(50));
        let mut batch = limits.new_batch();
        batch.mark_read("t", 0, 7);
        assert!(!limits.is_due(&batch, true));
        assert_eq!(limits.poll_timeout(&batch, false), MAX_POLL_WAIT);
        assert!(limits.poll_timeout(&batch, true) <= Duration::from_millis(50));
        batch.opened = Instant::now() - Duration::from_millis(60);
        assert!(!limits.is_due(&batch, false), "the clock is not read");
        assert!(limits.is_due(&batch, true));
        assert_eq!(limits.poll_timeout(&batch, true), Duration::ZERO);
    }

    #[test]
    fn a_refused_message_is_read_but_no_row() {
        let encoder = RowEncoder::new(envelope_columns());
        let mut batch = Batch::new(0);
        batch.push_row(&encoder, "a", 1, 10, EVENT).unwrap();
        batch.mark_read("a", 1, 10);
        assert!(batch.push_row(&encoder, "a", 1, 11, b"{not json").is_err());
        batch.mark_read("a", 1, 11);
        let rows = batch.rows.len();
        batch.mark_read("b", 0, 3); // skipped: the ledger already holds it
        assert_eq!((batch.row_count, batch.rows.len()), (1, rows));
        assert_eq!(batch.row_last(), vec![(("a".to_string(), 1), 10)]);
        assert_eq!(
            batch.ack(),
            vec![(("a".to_string(), 1), 11), (("b".to_string(), 0), 3)]
        );
    }
}
