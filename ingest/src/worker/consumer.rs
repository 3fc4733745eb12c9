//! The Kafka side of a worker: librdkafka's context (statistics → lag, rebalances) and the consumer's two
//! states, as in Vector's Kafka source. **Consuming**: poll, turn each message into a row or a dead letter of
//! the open batch, hand closed batches to the sink, commit what the sink acknowledged. **Draining** (after a
//! stop request, the last batch handed over): wait until the sink has acknowledged every batch, commit, leave
//! the group. A revocation drains the same way inside librdkafka's callback, then consuming goes on.
//!
//! When partitions are assigned, the context reads the ledger first: offsets at or below what it records are
//! already in ClickHouse and are skipped (read, committed, not inserted again).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::batch::{Ack, Batch, BatchLimits};
use super::encode::DeadLetter;
use super::error::WorkerError;
use super::{sink, WorkerEnv};
use crate::clickhouse::ClickHouse;
use crate::columns::RowEncoder;
use crate::config::{DeadLetters, PipelineSpec, StartOffset};
use crate::schema;
use crate::status::{lock, Shared, State};

/// The consumer loop of worker `index` of a pipeline; returns after a stop request, once all is committed.
pub(super) fn run(
    env: Arc<WorkerEnv>,
    shared: Arc<Shared>,
    index: usize,
    runtime: tokio::runtime::Handle,
) -> Result<(), WorkerError> {
    let mut consumer = Consumer::start(env, shared, index, runtime)?;
    let mut state = ConsumerState::Consuming;
    loop {
        match state {
            ConsumerState::Consuming => state = consumer.consume()?,
            ConsumerState::Draining => {
                consumer.drain();
                return Ok(());
            }
        }
    }
}

/// Where the consumer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsumerState {
    /// Reading messages into batches; one step per poll.
    Consuming,
    /// Stop requested and the last batch handed over: waiting for the sink, then committing and leaving.
    Draining,
}

/// librdkafka's properties for worker `index`: the daemon's (`[kafka]`), those aurora-ingest sets itself,
/// defaults for statistics and the poll interval unless given, then the pipeline's own options.
fn client_config(env: &WorkerEnv, spec: &PipelineSpec, index: usize) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in &env.kafka {
        config.set(k, v);
    }
    config
        .set("group.id", spec.group_id())
        .set("client.id", format!("aurora-ingest-{}-{index}", spec.name))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match spec.start_offset {
                StartOffset::Earliest => "earliest",
                StartOffset::Latest => "latest",
            },
        );
    if !env.kafka.contains_key("statistics.interval.ms") {
        config.set("statistics.interval.ms", "1000");
    }
    if !env.kafka.contains_key("max.poll.interval.ms") {
        // A batch can wait for ClickHouse for a long time; the group must not evict us meanwhile.
        config.set("max.poll.interval.ms", "600000");
    }
    for (k, v) in &spec.kafka_options {
        config.set(k, v);
    }
    config
}

/// One member of the pipeline's group, with its open batch and the sink it hands batches to.
struct Consumer {
    kafka: BaseConsumer<WorkerContext>,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    limits: BatchLimits,
    encoder: RowEncoder,
    /// The batch being filled.
    batch: Batch,
    /// The revocation generation `batch` was opened in.
    batch_generation: u64,
    /// Closed batches go here; the channel holds one, so at most one waits while another is inserted.
    batches: tokio::sync::mpsc::Sender<Batch>,
    sink: tokio::task::JoinHandle<()>,
    /// The last poll came back empty.
    idle: bool,
    /// Messages polled (wrapping): the clock is read only every 64 messages, it was a visible cost.
    polled: u64,
    /// A message has been read: the pipeline runs.
    started: bool,
    messages: IntCounter,
    bytes: IntCounter,
    dead_letters: IntCounter,
}

impl Consumer {
    /// Creates the consumer, subscribes to the pipeline's topics and starts the sink.
    fn start(
        env: Arc<WorkerEnv>,
        shared: Arc<Shared>,
        index: usize,
        runtime: tokio::runtime::Handle,
    ) -> Result<Consumer, WorkerError> {
        let spec = &shared.spec;
        let (ack_tx, ack_rx) = mpsc::channel::<Ack>();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let context = WorkerContext {
            shared: shared.clone(),
            ch: env.ch.clone(),
            runtime: runtime.clone(),
            retry_max: env.retry_max,
            in_flight: in_flight.clone(),
            acks: Mutex::new(ack_rx),
            floor: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
        };
        let kafka: BaseConsumer<WorkerContext> = client_config(&env, spec, index)
            .create_with_context(context)
            .map_err(WorkerError::CreateConsumer)?;
        let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
        kafka
            .subscribe(&topics)
            .map_err(|source| WorkerError::Subscribe {
                topics: spec.topics.clone(),
                source,
            })?;
        let (batch_tx, batch_rx) = tokio::sync::mpsc::channel::<Batch>(1);
        let sink = runtime.spawn(sink::run(
            env.clone(),
            shared.clone(),
            batch_rx,
            ack_tx,
            in_flight,
        ));
        let limits = BatchLimits::new(spec);
        let name = spec.name.as_str();
        let m = &shared.metrics;
        Ok(Consumer {
            encoder: RowEncoder::new(spec.columns()),
            batch: limits.new_batch(),
            limits,
            batch_generation: 0,
            batches: batch_tx,
            sink,
            idle: true,
            polled: 0,
            started: false,
            messages: m.messages_consumed.with_label_values(&[name]),
            bytes: m.bytes_consumed.with_label_values(&[name]),
            dead_letters: m.dead_letters.with_label_values(&[name]),
            kafka,
            runtime,
            shared,
        })
    }

    /// One step of consuming: hand the batch over when it is due, commit what was acknowledged, then poll
    /// once and read what came. Draining next once a stop was requested.
    fn consume(&mut self) -> Result<ConsumerState, WorkerError> {
        let stopping = self.shared.stop.load(Ordering::SeqCst);
        let check_time = self.idle || self.polled.is_multiple_of(64);
        if self.limits.is_due(&self.batch, check_time) || (stopping && !self.batch.is_empty()) {
            let full = std::mem::replace(&mut self.batch, self.limits.new_batch());
            let in_flight = &self.kafka.context().in_flight;
            in_flight.fetch_add(1, Ordering::SeqCst);
            if self.batches.blocking_send(full).is_err() {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                return Err(WorkerError::SinkStopped);
            }
        }
        self.kafka.context().commit_acks(&self.kafka, CommitMode::Async);
        if stopping {
            return Ok(ConsumerState::Draining);
        }
        let timeout = self.limits.poll_timeout(&self.batch, check_time);
        let Some(result) = self.kafka.poll(timeout) else {
            self.idle = true;
            return Ok(ConsumerState::Consuming);
        };
        self.idle = false;
        self.polled = self.polled.wrapping_add(1);
        let name = self.shared.name();
        let message = match result {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(_)) => return Ok(ConsumerState::Consuming),
            Err(e) => {
                tracing::warn!(pipeline = %name, error = %e, "consumer error");
                self.shared
                    .set_state(self.shared.state(), Some(format!("Kafka: {e}")));
                return Ok(ConsumerState::Consuming);
            }
        };
        if !self.started {
            self.started = true;
            self.shared.recovered();
        }
        let generation = self.kafka.context().generation.load(Ordering::SeqCst);
        if generation != self.batch_generation {
            // A revocation happened inside poll: what this batch holds was not committed; drop it.
            self.batch = self.limits.new_batch();
            self.batch_generation = generation;
        }
        if self.batch.is_empty() {
            self.batch.opened = Instant::now();
        }
        let topic = message.topic();
        let partition = message.partition();
        let offset = message.offset();
        let payload = message.payload().unwrap_or(&[]);
        self.messages.inc();
        self.bytes.inc_by(payload.len() as u64);
        let floor = self.kafka.context().ledger_floor(topic, partition);
        if floor.is_none_or(|f| offset > f) {
            if let Err(e) = self
                .batch
                .push_row(&self.encoder, topic, partition, offset, payload)
            {
                self.dead_letters.inc();
                self.shared.dead_letters.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pipeline = %name, topic, partition, offset, error = %e, "dead letter");
                if self.shared.spec.dead_letters == DeadLetters::Table {
                    self.batch.dead.push(DeadLetter {
                        topic: topic.to_string(),
                        partition,
                        offset,
                        error: e.to_string(),
                        raw: payload.to_vec(),
                    });
                }
            }
        }
        self.batch.mark_read(topic, partition, offset);
        Ok(ConsumerState::Consuming)
    }

    /// Draining: the last batch was handed over; wait for it, commit, leave the group.
    fn drain(self) {
        let Consumer {
            kafka,
            runtime,
            batches,
            sink,
            ..
        } = self;
        kafka.context().drain();
        kafka.context().commit_acks(&kafka, CommitMode::Sync);
        drop(batches);
        let _ = runtime.block_on(sink);
        kafka.unsubscribe();
    }
}

/// State the rebalance callbacks share with the consumer loop.
struct WorkerContext {
    shared: Arc<Shared>,
    ch: ClickHouse,
    runtime: tokio::runtime::Handle,
    retry_max: Duration,
    /// Batches handed to the sink and not yet acknowledged.
    in_flight: Arc<AtomicUsize>,
    acks: Mutex<mpsc::Receiver<Ack>>,
    /// Offsets at or below these are already in ClickHouse (from the ledger): skipped.
    floor: Mutex<Vec<(String, i32, i64)>>,
    /// Bumped at every revocation: a batch opened in an older generation is dropped.
    generation: AtomicU64,
}

impl ClientContext for WorkerContext {
    /// librdkafka's statistics (every `statistics.interval.ms`) carry each assigned partition's high watermark
    /// and committed offset, without a request to the broker: the lag is taken from them.
    fn stats(&self, statistics: Statistics) {
        let mut lag = Vec::new();
        for (topic, t) in &statistics.topics {
            for p in t.partitions.values() {
                if p.partition < 0 || p.fetch_state != "active" || p.hi_offset < 0 {
                    continue;
                }
                let done = if p.committed_offset >= 0 {
                    p.committed_offset
                } else {
                    p.app_offset
                };
                if done < 0 {
                    continue;
                }
                lag.push(((topic.clone(), p.partition), (p.hi_offset - done).max(0)));
            }
        }
        let name = self.shared.name();
        let mut map = lock(&self.shared.lag);
        for ((topic, partition), value) in lag {
            self.shared
                .metrics
                .consumer_lag
                .with_label_values(&[name, &topic, &partition.to_string()])
                .set(value);
            map.insert((topic, partition), value);
        }
    }
}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let name = self.shared.name().to_string();
        match rebalance {
            Rebalance::Revoke(tpl) => {
                self.shared.metrics.rebalances.with_label_values(&[&name]).inc();
                tracing::info!(pipeline = %name, partitions = tpl.count(), "partitions revoked: draining");
                self.drain();
                self.commit_acks(consumer, CommitMode::Sync);
                self.generation.fetch_add(1, Ordering::SeqCst);
                lock(&self.floor).clear();
                let partitions: Vec<(String, i32)> = lock(&self.shared.lag).keys().cloned().collect();
                self.shared.metrics.forget_lag(&name, partitions.into_iter());
                lock(&self.shared.lag).clear();
            }
            Rebalance::Assign(tpl) => {
                self.shared.metrics.rebalances.with_label_values(&[&name]).inc();
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(pipeline = %name, partitions = ?partitions, "partitions assigned");
                let ledger = self.read_ledger();
                let mut floor = lock(&self.floor);
                floor.clear();
                for (topic, partition, offset) in ledger {
                    if partitions.iter().any(|(t, p)| *t == topic && *p == partition) {
                        floor.push((topic, partition, offset));
                    }
                }
                if !floor.is_empty() {
                    tracing::info!(pipeline = %name, ledger = ?*floor, "offsets up to these are already in ClickHouse");
                }
                drop(floor);
                self.shared.recovered();
            }
            Rebalance::Error(e) => {
                tracing::warn!(pipeline = %name, error = %e, "rebalance error");
            }
        }
    }
}

impl WorkerContext {
    /// Waits until the sink has acknowledged every batch handed to it.
    fn drain(&self) {
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The ledger's position for a partition: offsets at or below it are already in ClickHouse.
    fn ledger_floor(&self, topic: &str, partition: i32) -> Option<i64> {
        lock(&self.floor)
            .iter()
            .find(|(t, p, _)| *p == partition && t == topic)
            .map(|(_, _, f)| *f)
    }

    /// The ledger's positions, retried until ClickHouse answers (nothing may be read before they are known).
    fn read_ledger(&self) -> Vec<(String, i32, i64)> {
        let mut delay = Duration::from_millis(200);
        loop {
            match self
                .runtime
                .block_on(schema::ledger_positions(&self.ch, &self.shared.spec))
            {
                Ok(positions) => return positions,
                Err(e) => {
                    tracing::warn!(pipeline = %self.shared.name(), error = %e, "cannot read the ledger; retrying");
                    self.shared.set_state(State::Backoff, Some(e.to_string()));
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
    }

    /// Commits the highest acknowledged offset of each partition (+1: the next to read).
    fn commit_acks(&self, consumer: &BaseConsumer<Self>, mode: CommitMode) {
        let mut offsets: HashMap<(String, i32), i64> = HashMap::new();
        for ack in lock(&self.acks).try_iter() {
            for (tp, offset) in ack {
                let e = offsets.entry(tp).or_insert(offset);
                *e = (*e).max(offset);
            }
        }
        if offsets.is_empty() {
            return;
        }
        let result = {
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), offset) in &offsets {
                if tpl
                    .add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
                    .is_err()
                {
                    continue;
                }
            }
            consumer.commit(&tpl, mode)
            // tpl dropped here, before anything else touches the consumer
        };
        if let Err(e) = result {
            // Safe: the ledger holds these ranges, a re-read skips them.
            tracing::warn!(pipeline = %self.shared.name(), error = %e, "offset commit failed");
        }
    }
}
