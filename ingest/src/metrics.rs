//! Prometheus metrics of the daemon (names fixed by the project's contracts; dashboards use them).
//! Labels are pipeline names (validated identifiers), topics, partitions and closed sets: never message content.

use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// `aurora_ingest_messages_consumed_total{pipeline}`
    pub messages_consumed: IntCounterVec,
    /// `aurora_ingest_bytes_consumed_total{pipeline}`: message value bytes.
    pub bytes_consumed: IntCounterVec,
    /// `aurora_ingest_rows_inserted_total{pipeline}`: rows ClickHouse acknowledged.
    pub rows_inserted: IntCounterVec,
    /// `aurora_ingest_batches_total{pipeline,outcome}`: insert attempts, ok or error.
    pub batches: IntCounterVec,
    /// `aurora_ingest_insert_duration_seconds{pipeline}`: one successful insert request.
    pub insert_duration: HistogramVec,
    /// `aurora_ingest_consumer_lag{pipeline,topic,partition}`: high watermark minus the consumer's position.
    pub consumer_lag: IntGaugeVec,
    /// `aurora_ingest_dead_letters_total{pipeline}`
    pub dead_letters: IntCounterVec,
    /// `aurora_ingest_retries_total{pipeline}`: failed inserts that will be tried again.
    pub retries: IntCounterVec,
    /// `aurora_ingest_clickhouse_failovers_total{pipeline}`: inserts that moved to the next ClickHouse node.
    pub failovers: IntCounterVec,
    /// `aurora_ingest_rebalances_total{pipeline}`: partition assignments and revocations.
    pub rebalances: IntCounterVec,
    /// `aurora_ingest_pipelines{state}`
    pub pipelines: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let insert_duration = HistogramVec::new(
            HistogramOpts::new(
                "aurora_ingest_insert_duration_seconds",
                "Duration of one successful insert of a batch into ClickHouse.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["pipeline"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(insert_duration.clone()))
            .expect("metric registered once");
        let p = &["pipeline"];
        Arc::new(Metrics {
            messages_consumed: counter(
                "aurora_ingest_messages_consumed_total",
                "Kafka messages consumed.",
                p,
            ),
            bytes_consumed: counter(
                "aurora_ingest_bytes_consumed_total",
                "Bytes of Kafka message values consumed.",
                p,
            ),
            rows_inserted: counter(
                "aurora_ingest_rows_inserted_total",
                "Rows inserted into ClickHouse.",
                p,
            ),
            batches: counter(
                "aurora_ingest_batches_total",
                "Insert attempts of batches by outcome.",
                &["pipeline", "outcome"],
            ),
            insert_duration,
            consumer_lag: gauge(
                "aurora_ingest_consumer_lag",
                "Messages behind the high watermark, per partition.",
                &["pipeline", "topic", "partition"],
            ),
            dead_letters: counter(
                "aurora_ingest_dead_letters_total",
                "Messages set aside as dead letters.",
                p,
            ),
            retries: counter("aurora_ingest_retries_total", "Failed inserts tried again.", p),
            failovers: counter(
                "aurora_ingest_clickhouse_failovers_total",
                "Inserts whose retry went to the next ClickHouse node after a transient failure.",
                p,
            ),
            rebalances: counter(
                "aurora_ingest_rebalances_total",
                "Partition assignments and revocations.",
                p,
            ),
            pipelines: gauge("aurora_ingest_pipelines", "Pipelines by state.", &["state"]),
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Drops the series of a removed pipeline (its lag gauges would otherwise stay at their last value).
    pub fn forget_lag(&self, pipeline: &str, partitions: impl Iterator<Item = (String, i32)>) {
        for (topic, partition) in partitions {
            let _ = self
                .consumer_lag
                .remove_label_values(&[pipeline, &topic, &partition.to_string()]);
        }
    }
}
