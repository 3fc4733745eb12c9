//! One consumer of a pipeline's group and its inserter: the delivery path, in the shape of a Vector sink.
//!
//! ```text
//! consumer.rs  poll → encode.rs (a RowBinary stage row, or a dead letter) → batch.rs (closes at
//!              batch_max_rows / batch_max_bytes / batch_max_wait) ──► sink.rs: request builder → retrying
//!              insert (ledger check) ──► offsets handed back ──► consumer.rs commits them
//! ```
//!
//! The consumer thread polls messages, turns each into a RowBinary row (or a dead letter) and closes a batch
//! at `batch_max_rows`, `batch_max_bytes` or `batch_max_wait`. The sink (a task on the runtime) inserts
//! batches one after another, retrying with backoff until ClickHouse acknowledges, and hands the offsets back;
//! only then does the consumer thread commit them. One batch may wait while another is inserted: when both
//! are taken, the consumer thread blocks, so memory stays bounded while ClickHouse is down.
//!
//! Exactly-once into ClickHouse rests on the ledger (see [`crate::schema`]): every batch is one insert into
//! the pipeline's stage, which writes the rows and the batch's offset range per partition together. When
//! partitions are assigned, the consumer reads the ledger and skips offsets at or below the recorded range, so
//! a batch inserted but not committed before a crash is not inserted again.
//!
//! Rebalances: before partitions are revoked, the consumer waits for every batch handed to the sink to be
//! acknowledged and commits it; a batch still being filled is dropped (those messages were not committed and
//! will be read again by whoever gets the partition).

mod batch;
mod consumer;
mod encode;
pub mod error;
#[cfg(feature = "fault-injection")]
mod fault;
mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use error::WorkerError;

use crate::clickhouse::ClickHouse;
use crate::config::{Config, Secret};
use crate::metrics::Metrics;
use crate::status::Shared;

/// What every worker needs from the daemon's configuration.
pub struct WorkerEnv {
    pub ch: ClickHouse,
    pub metrics: Arc<Metrics>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// librdkafka properties from `[kafka]`, for every pipeline.
    kafka: BTreeMap<String, String>,
}

impl WorkerEnv {
    pub fn new(config: &Config, ch: ClickHouse, metrics: Arc<Metrics>) -> Result<WorkerEnv, WorkerError> {
        let k = &config.kafka;
        let mut kafka = BTreeMap::new();
        kafka.insert("bootstrap.servers".to_string(), k.brokers.clone());
        kafka.insert("security.protocol".to_string(), k.security_protocol.clone());
        if let Some(m) = &k.sasl_mechanism {
            kafka.insert("sasl.mechanism".to_string(), m.clone());
        }
        if let Some(u) = &k.sasl_username {
            kafka.insert("sasl.username".to_string(), u.clone());
        }
        if let Some(Secret(p)) = config.sasl_password()? {
            kafka.insert("sasl.password".to_string(), p);
        }
        if let Some(ca) = &k.ssl_ca_file {
            kafka.insert("ssl.ca.location".to_string(), ca.display().to_string());
        }
        for (key, value) in &k.options {
            kafka.insert(key.clone(), value.clone());
        }
        Ok(WorkerEnv {
            ch,
            metrics,
            retry_initial: config.clickhouse.retry_initial,
            retry_max: config.clickhouse.retry_max,
            kafka,
        })
    }
}

/// The consumer loop of worker `index` of a pipeline (on a blocking thread); returns after a stop request,
/// once all it read is inserted and committed.
pub fn run(
    env: Arc<WorkerEnv>,
    shared: Arc<Shared>,
    index: usize,
    runtime: tokio::runtime::Handle,
) -> Result<(), WorkerError> {
    consumer::run(env, shared, index, runtime)
}
