//! Fault injection for the delivery tests, compiled only with the cargo feature `fault-injection` (off by
//! default; `scripts/test.sh` builds the debug binary the end-to-end tests run with it, never a release).
//!
//! `AURORA_INGEST_FAULT_ABORT_AFTER_INSERTS=N` aborts the process right after the N-th insert of rows that
//! ClickHouse acknowledged, before its offsets can be committed: the window the ledger exists for
//! (`tests/ingest/test_ingest_delivery.py`).

/// The environment variable that arms the abort.
pub(super) const ABORT_AFTER_INSERTS: &str = "AURORA_INGEST_FAULT_ABORT_AFTER_INSERTS";

/// Counts acknowledged inserts of rows down to an abort, when armed.
pub(super) struct AbortAfterInserts {
    left: Option<u64>,
}

impl AbortAfterInserts {
    /// Armed when [`ABORT_AFTER_INSERTS`] holds a number.
    pub fn from_env() -> AbortAfterInserts {
        AbortAfterInserts {
            left: std::env::var(ABORT_AFTER_INSERTS)
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }

    /// Called after each acknowledged insert of rows: aborts the process at the N-th.
    pub fn acknowledged(&mut self, pipeline: &str) {
        if self.count() {
            tracing::error!(pipeline, "fault injection: aborting after an insert");
            std::process::abort();
        }
    }

    /// One more insert; true when it is the N-th (the first when N is 0).
    fn count(&mut self) -> bool {
        let Some(left) = self.left.as_mut() else {
            return false;
        };
        *left = left.saturating_sub(1);
        *left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abort_comes_at_the_nth_insert_and_only_when_armed() {
        let mut off = AbortAfterInserts { left: None };
        assert!((0..5).all(|_| !off.count()));
        let mut two = AbortAfterInserts { left: Some(2) };
        assert_eq!([two.count(), two.count()], [false, true]);
        let mut zero = AbortAfterInserts { left: Some(0) };
        assert!(zero.count());
    }
}
