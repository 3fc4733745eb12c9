//! One consumer of a pipeline's group and its inserter: the delivery path.
//!
//! The consumer thread polls messages, turns each into a RowBinary row (or a dead letter) and closes a batch
//! at `batch_max_rows`, `batch_max_bytes` or `batch_max_wait`. The inserter (a task on the runtime) inserts
//! batches one after another, retrying with backoff until ClickHouse acknowledges, and hands the offsets back;
//! only then does the consumer thread commit them. One batch may wait while another is inserted: when both
//! are taken, the consumer thread blocks, so memory stays bounded while ClickHouse is down.
//!
//! Exactly-once into ClickHouse rests on the ledger (see [`crate::schema`]): every batch is one insert into
//! the pipeline's stage, which writes the rows and the batch's offset range per partition together. When
//! partitions are assigned, the consumer reads the ledger and skips offsets at or below the recorded range, so
//! a batch inserted but not committed before a crash is not inserted again.
//!
//! Rebalances: before partitions are revoked, the consumer waits for every batch handed to the inserter to be
//! acknowledged and commits it; a batch still being filled is dropped (those messages were not committed and
//! will be read again by whoever gets the partition).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::clickhouse::ClickHouse;
use crate::columns::{write_bytes, RowEncoder};
use crate::config::{Config, DeadLetters, Secret, StartOffset};
use crate::metrics::Metrics;
use crate::pipeline::{lock, Shared, State};
use crate::schema::{self, Objects, DEAD_LETTER_COLUMNS};

/// What every worker needs from the daemon's configuration.
pub struct WorkerEnv {
    pub ch: ClickHouse,
    pub metrics: Arc<Metrics>,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    kafka: BTreeMap<String, String>,
}

impl WorkerEnv {
    pub fn new(config: &Config, ch: ClickHouse, metrics: Arc<Metrics>) -> Result<WorkerEnv, String> {
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

/// A message set aside.
struct DeadLetter {
    topic: String,
    partition: i32,
    offset: i64,
    error: String,
    raw: Vec<u8>,
}

/// Rows and dead letters read from a set of offset ranges.
struct Batch {
    rows: Vec<u8>,
    row_count: usize,
    dead: Vec<DeadLetter>,
    /// Per (topic, partition) read: the highest offset read (committed once the batch is in) and the highest
    /// that became a row (what the ledger records for this batch). A handful of entries: searched linearly.
    partitions: Vec<BatchPartition>,
    opened: Instant,
}

impl Batch {
    fn new(capacity: usize) -> Batch {
        Batch {
            rows: Vec::with_capacity(capacity),
            row_count: 0,
            dead: Vec::new(),
            partitions: Vec::new(),
            opened: Instant::now(),
        }
    }

    fn is_empty(&self) -> bool {
        self.partitions.is_empty()
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
    fn row_last(&self) -> Vec<((String, i32), i64)> {
        self.partitions
            .iter()
            .filter(|p| p.row_last >= 0)
            .map(|p| ((p.topic.clone(), p.partition), p.row_last))
            .collect()
    }
}

struct BatchPartition {
    topic: String,
    partition: i32,
    last: i64,
    row_last: i64,
}

/// Offsets ClickHouse has acknowledged, ready to commit.
type Ack = Vec<((String, i32), i64)>;

/// State the rebalance callbacks share with the consumer loop.
struct WorkerContext {
    shared: Arc<Shared>,
    ch: ClickHouse,
    runtime: tokio::runtime::Handle,
    retry_max: Duration,
    /// Batches handed to the inserter and not yet acknowledged.
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
    /// Waits until the inserter has acknowledged every batch handed to it.
    fn drain(&self) {
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
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

/// The consumer loop of worker `index` of a pipeline; returns after a stop request, once all is committed.
pub fn run(
    env: Arc<WorkerEnv>,
    shared: Arc<Shared>,
    index: usize,
    runtime: tokio::runtime::Handle,
) -> Result<(), String> {
    let spec = shared.spec.clone();
    let name = spec.name.clone();
    let mut config = ClientConfig::new();
    for (k, v) in &env.kafka {
        config.set(k, v);
    }
    config
        .set("group.id", spec.group_id())
        .set("client.id", format!("aurora-ingest-{name}-{index}"))
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
    let consumer: BaseConsumer<WorkerContext> = config
        .create_with_context(context)
        .map_err(|e| format!("cannot create the Kafka consumer: {e}"))?;
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;

    let (batch_tx, batch_rx) = tokio::sync::mpsc::channel::<Batch>(1);
    let inserter = runtime.spawn(insert_loop(
        env.clone(),
        shared.clone(),
        batch_rx,
        ack_tx,
        in_flight.clone(),
    ));

    let encoder = RowEncoder::new(spec.columns());
    let capacity = spec.batch_max_bytes.min(8 << 20);
    let mut batch = Batch::new(capacity);
    let mut batch_generation = 0;
    let mut idle = true;
    let mut polled: u64 = 0;
    let mut started = false;
    let messages = shared.metrics.messages_consumed.with_label_values(&[&name]);
    let bytes = shared.metrics.bytes_consumed.with_label_values(&[&name]);
    let dead_counter = shared.metrics.dead_letters.with_label_values(&[&name]);

    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        // The clock is read only every 64 messages (or when polling came back empty): it was a visible cost.
        let check_time = idle || polled % 64 == 0;
        let due = !batch.is_empty()
            && (batch.row_count >= spec.batch_max_rows
                || batch.rows.len() >= spec.batch_max_bytes
                || stopping
                || (check_time && batch.opened.elapsed() >= spec.batch_max_wait));
        if due {
            let full = std::mem::replace(&mut batch, Batch::new(capacity));
            in_flight.fetch_add(1, Ordering::SeqCst);
            if batch_tx.blocking_send(full).is_err() {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                return Err("the inserter stopped".into());
            }
        }
        consumer.context().commit_acks(&consumer, CommitMode::Async);
        if stopping {
            break;
        }
        let timeout = if batch.is_empty() || !check_time {
            Duration::from_millis(100)
        } else {
            spec.batch_max_wait
                .saturating_sub(batch.opened.elapsed())
                .min(Duration::from_millis(100))
        };
        let Some(result) = consumer.poll(timeout) else {
            idle = true;
            continue;
        };
        idle = false;
        polled = polled.wrapping_add(1);
        let message = match result {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(_)) => continue,
            Err(e) => {
                tracing::warn!(pipeline = %name, error = %e, "consumer error");
                shared.set_state(shared.state(), Some(format!("Kafka: {e}")));
                continue;
            }
        };
        if !started {
            started = true;
            shared.recovered();
        }
        let generation = consumer.context().generation.load(Ordering::SeqCst);
        if generation != batch_generation {
            // A revocation happened inside poll: what this batch holds was not committed; drop it.
            batch = Batch::new(capacity);
            batch_generation = generation;
        }
        if batch.is_empty() {
            batch.opened = Instant::now();
        }
        let topic = message.topic();
        let partition = message.partition();
        let offset = message.offset();
        let payload = message.payload().unwrap_or(&[]);
        messages.inc();
        bytes.inc_by(payload.len() as u64);
        let floor = lock(&consumer.context().floor)
            .iter()
            .find(|(t, p, _)| *p == partition && t == topic)
            .map(|(_, _, f)| *f);
        if floor.is_none_or(|f| offset > f) {
            match encoder.encode(payload, &mut batch.rows) {
                Ok(()) => {
                    write_bytes(topic.as_bytes(), &mut batch.rows);
                    batch.rows.extend_from_slice(&partition.to_le_bytes());
                    batch.rows.extend_from_slice(&offset.to_le_bytes());
                    batch.row_count += 1;
                    batch.partition(topic, partition).row_last = offset;
                }
                Err(e) => {
                    dead_counter.inc();
                    shared.dead_letters.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(pipeline = %name, topic, partition, offset, error = %e, "dead letter");
                    if spec.dead_letters == DeadLetters::Table {
                        batch.dead.push(DeadLetter {
                            topic: topic.to_string(),
                            partition,
                            offset,
                            error: e.to_string(),
                            raw: payload.to_vec(),
                        });
                    }
                }
            }
        }
        batch.partition(topic, partition).last = offset;
    }

    // Stop: the last batch was handed over above; wait for it, commit, leave the group.
    consumer.context().drain();
    consumer.context().commit_acks(&consumer, CommitMode::Sync);
    drop(batch_tx);
    let _ = runtime.block_on(inserter);
    consumer.unsubscribe();
    drop(consumer);
    Ok(())
}

/// True when the ledger records, for every partition of the batch, a range reaching its last row.
async fn already_in_ledger(
    ch: &ClickHouse,
    spec: &crate::config::PipelineSpec,
    row_last: &[((String, i32), i64)],
) -> bool {
    match schema::ledger_positions(ch, spec).await {
        Ok(positions) => row_last.iter().all(|((topic, partition), last)| {
            positions
                .iter()
                .any(|(t, p, o)| t == topic && p == partition && o >= last)
        }),
        Err(_) => false,
    }
}

/// Inserts batches in order, each until ClickHouse acknowledges it, then passes its offsets back.
async fn insert_loop(
    env: Arc<WorkerEnv>,
    shared: Arc<Shared>,
    mut batches: tokio::sync::mpsc::Receiver<Batch>,
    acks: mpsc::Sender<Ack>,
    in_flight: Arc<AtomicUsize>,
) {
    let spec = &shared.spec;
    let objects = Objects::new(spec);
    let (dead_letter_table, stage_table) = (objects.dead_letters.sql(), objects.stage.sql());
    let stage_columns = schema::stage_insert_columns(&spec.columns());
    let name = spec.name.as_str();
    let ok = shared.metrics.batches.with_label_values(&[name, "ok"]);
    let failed = shared.metrics.batches.with_label_values(&[name, "error"]);
    let retries = shared.metrics.retries.with_label_values(&[name]);
    let rows_inserted = shared.metrics.rows_inserted.with_label_values(&[name]);
    let duration = shared.metrics.insert_duration.with_label_values(&[name]);
    // Fault injection for the delivery tests: abort the process right after the N-th acknowledged insert of
    // rows, before its offsets can be committed (the window the ledger exists for).
    let mut abort_after: Option<u64> = std::env::var("AURORA_INGEST_FAULT_ABORT_AFTER_INSERTS")
        .ok()
        .and_then(|v| v.parse().ok());
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let mut batch_number = 0u64;
    while let Some(batch) = batches.recv().await {
        let mut dead_rows = Vec::new();
        if !batch.dead.is_empty() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0) as u32;
            for d in &batch.dead {
                write_bytes(d.topic.as_bytes(), &mut dead_rows);
                dead_rows.extend_from_slice(&d.partition.to_le_bytes());
                dead_rows.extend_from_slice(&d.offset.to_le_bytes());
                write_bytes(d.error.as_bytes(), &mut dead_rows);
                write_bytes(&d.raw, &mut dead_rows);
                dead_rows.extend_from_slice(&now.to_le_bytes());
            }
        }
        let row_last = batch.row_last();
        let parts: [(&str, &str, Bytes, usize); 2] = [
            (
                &dead_letter_table,
                DEAD_LETTER_COLUMNS,
                Bytes::from(dead_rows),
                0,
            ),
            (
                &stage_table,
                &stage_columns,
                Bytes::from(batch.rows),
                batch.row_count,
            ),
        ];
        batch_number += 1;
        for (table, columns, body, rows) in parts {
            if body.is_empty() {
                continue;
            }
            // One query id for every attempt at this insert: while an earlier attempt still runs in the server
            // (our side timed out or lost the connection), ClickHouse refuses the retry instead of running it twice.
            let query_id = format!("aurora-ingest-{name}-{run_id}-{batch_number}-{}", rows > 0);
            let settings = format!("query_id={query_id}");
            let mut delay = env.retry_initial;
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                if attempt > 1 && rows > 0 && already_in_ledger(&env.ch, spec, &row_last).await {
                    // An attempt that failed on our side did complete in the server (rows and ledger together).
                    tracing::info!(
                        pipeline = name,
                        query_id,
                        "batch found in the ledger after a failed attempt"
                    );
                    ok.inc();
                    rows_inserted.inc_by(rows as u64);
                    shared.rows_inserted.fetch_add(rows as u64, Ordering::Relaxed);
                    shared.recovered();
                    break;
                }
                let started = Instant::now();
                match env.ch.insert(table, columns, &settings, body.clone()).await {
                    Ok(()) => {
                        ok.inc();
                        duration.observe(started.elapsed().as_secs_f64());
                        rows_inserted.inc_by(rows as u64);
                        shared.rows_inserted.fetch_add(rows as u64, Ordering::Relaxed);
                        shared.recovered();
                        if rows > 0 {
                            if let Some(n) = abort_after.as_mut() {
                                *n = n.saturating_sub(1);
                                if *n == 0 {
                                    tracing::error!(
                                        pipeline = name,
                                        "fault injection: aborting after an insert"
                                    );
                                    std::process::abort();
                                }
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        failed.inc();
                        retries.inc();
                        tracing::warn!(pipeline = name, table, error = %e, retry_in = ?delay, "insert failed");
                        if shared.state() != State::Stopping {
                            shared.set_state(State::Backoff, Some(e.to_string()));
                        } else {
                            shared.set_state(State::Stopping, Some(e.to_string()));
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(env.retry_max);
                    }
                }
            }
        }
        let ack: Ack = batch
            .partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.last))
            .collect();
        let _ = acks.send(ack);
        in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
