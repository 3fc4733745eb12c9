//! What a running pipeline shows (`status`, `/pipelines`, the `aurora_ingest_pipelines` gauge): its state,
//! last error, counters, rate and lag, shared by its workers ([`crate::worker`]), the manager
//! ([`crate::pipeline`]) and the API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::config::PipelineSpec;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Running,
    Backoff,
    Stopping,
    Failed,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Starting,
        State::Running,
        State::Backoff,
        State::Stopping,
        State::Failed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Failed => "failed",
        }
    }
}

/// What the API shows about one pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineView {
    pub name: String,
    pub state: State,
    pub topics: Vec<String>,
    pub table: String,
    pub rows_per_sec: f64,
    pub lag: Option<i64>,
    pub rows_inserted: u64,
    pub dead_letters: u64,
    pub last_error: Option<String>,
}

/// State shared by a pipeline's workers, the manager and the API.
pub struct Shared {
    pub spec: PipelineSpec,
    pub metrics: Arc<Metrics>,
    status: Mutex<(State, Option<String>)>,
    pub rows_inserted: AtomicU64,
    pub dead_letters: AtomicU64,
    /// Rows per second over the last sampling interval (f64 bits).
    rate: AtomicU64,
    /// (time, rows inserted) once a second, the last few: the rate is taken over ~5 s.
    rate_samples: Mutex<std::collections::VecDeque<(Instant, u64)>>,
    /// Messages behind the high watermark, per (topic, partition) this daemon consumes.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// Set by `disconnect`/shutdown: workers flush, commit and leave.
    pub stop: AtomicBool,
    /// The ClickHouse nodes whose stage and views exist for this pipeline (see [`crate::schema::prepare_all`]).
    pub prepared: crate::schema::PreparedNodes,
}

impl Shared {
    pub fn new(spec: PipelineSpec, metrics: Arc<Metrics>) -> Arc<Shared> {
        metrics
            .pipelines
            .with_label_values(&[State::Starting.label()])
            .inc();
        Arc::new(Shared {
            spec,
            metrics,
            status: Mutex::new((State::Starting, None)),
            rows_inserted: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            rate_samples: Mutex::new(std::collections::VecDeque::new()),
            lag: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
            prepared: tokio::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn state(&self) -> State {
        lock(&self.status).0
    }

    /// Moves to `state`; `error` replaces the last error when given.
    pub fn set_state(&self, state: State, error: Option<String>) {
        let mut status = lock(&self.status);
        if status.0 != state {
            self.metrics
                .pipelines
                .with_label_values(&[status.0.label()])
                .dec();
            self.metrics.pipelines.with_label_values(&[state.label()]).inc();
            status.0 = state;
        }
        if error.is_some() {
            status.1 = error;
        }
    }

    /// Leaves backoff once inserts succeed again (a stopping pipeline stays stopping).
    pub fn recovered(&self) {
        if matches!(self.state(), State::Backoff | State::Starting) {
            self.set_state(State::Running, None);
        }
    }

    /// Takes a sample of rows inserted (once a second) for `rows_per_sec`.
    pub(crate) fn sample_rate(&self) {
        let mut samples = lock(&self.rate_samples);
        samples.push_back((Instant::now(), self.rows_inserted.load(Ordering::Relaxed)));
        while samples.len() > 6 {
            samples.pop_front();
        }
        if let (Some(first), Some(last)) = (samples.front(), samples.back()) {
            let secs = last.0.duration_since(first.0).as_secs_f64();
            let rate = if secs > 0.0 {
                last.1.saturating_sub(first.1) as f64 / secs
            } else {
                0.0
            };
            self.rate.store(rate.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn view(&self) -> PipelineView {
        let (state, last_error) = lock(&self.status).clone();
        let lag = lock(&self.lag);
        PipelineView {
            name: self.spec.name.clone(),
            state,
            topics: self.spec.topics.clone(),
            table: self.spec.table.clone(),
            rows_per_sec: (f64::from_bits(self.rate.load(Ordering::Relaxed)) * 10.0).round() / 10.0,
            lag: (!lag.is_empty()).then(|| lag.values().map(|v| (*v).max(0)).sum()),
            rows_inserted: self.rows_inserted.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            last_error,
        }
    }

    /// The pipeline was removed: its gauges no longer count it.
    pub(crate) fn finished(&self) {
        self.metrics
            .pipelines
            .with_label_values(&[self.state().label()])
            .dec();
        let partitions: Vec<(String, i32)> = lock(&self.lag).keys().cloned().collect();
        self.metrics.forget_lag(&self.spec.name, partitions.into_iter());
    }
}

/// A mutex whose poisoning (a panicked holder) does not take the daemon down.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
