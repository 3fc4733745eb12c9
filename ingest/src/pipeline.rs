//! Pipelines of a running daemon: their shared state (what `status` and `/pipelines` show), and the
//! [`Manager`] that starts and stops them.
//!
//! A pipeline is `parallelism` workers (see [`crate::worker`]), each one consumer of the pipeline's group plus
//! one inserter. Starting prepares the ClickHouse objects (retrying while ClickHouse is unreachable);
//! stopping flushes what was read, waits for ClickHouse to acknowledge it, commits and leaves the group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex as AsyncMutex;

use crate::clickhouse::{ChError, ClickHouse};
use crate::config::{Config, ConfigError, PipelineSpec};
use crate::metrics::Metrics;
use crate::schema;
use crate::worker::{self, WorkerEnv};

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

    fn sample_rate(&self) {
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

    fn finished(&self) {
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

struct Running {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// Why a pipeline cannot be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("pipeline {0} exists")]
    Exists(String),
    #[error("no pipeline {0}")]
    Unknown(String),
}

/// The pipelines of this daemon.
pub struct Manager {
    env: Arc<WorkerEnv>,
    pipelines: AsyncMutex<BTreeMap<String, Running>>,
}

impl Manager {
    pub fn new(config: &Config, ch: ClickHouse, metrics: Arc<Metrics>) -> Result<Arc<Manager>, String> {
        let env = WorkerEnv::new(config, ch, metrics)?;
        let manager = Arc::new(Manager {
            env: Arc::new(env),
            pipelines: AsyncMutex::new(BTreeMap::new()),
        });
        for state in State::ALL {
            manager
                .env
                .metrics
                .pipelines
                .with_label_values(&[state.label()])
                .set(0);
        }
        let sampler = Arc::downgrade(&manager);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(manager) = sampler.upgrade() else { return };
                for p in manager.pipelines.lock().await.values() {
                    p.shared.sample_rate();
                }
            }
        });
        Ok(manager)
    }

    pub async fn list(&self) -> Vec<PipelineView> {
        self.pipelines
            .lock()
            .await
            .values()
            .map(|p| p.shared.view())
            .collect()
    }

    /// Validates and starts a pipeline; returns at once (the pipeline reports `starting` until it runs).
    pub async fn add(&self, spec: PipelineSpec) -> Result<PipelineView, ManagerError> {
        spec.validate("pipeline")?;
        let mut pipelines = self.pipelines.lock().await;
        if pipelines.contains_key(&spec.name) {
            return Err(ManagerError::Exists(spec.name));
        }
        let shared = Shared::new(spec, self.env.metrics.clone());
        let task = tokio::spawn(run_pipeline(self.env.clone(), shared.clone()));
        let view = shared.view();
        pipelines.insert(shared.spec.name.clone(), Running { shared, task });
        Ok(view)
    }

    /// Stops a pipeline: flush, insert, commit, leave the group. Returns when all of that is done.
    pub async fn remove(&self, name: &str) -> Result<(), ManagerError> {
        let running = {
            let pipelines = self.pipelines.lock().await;
            let Some(running) = pipelines.get(name) else {
                return Err(ManagerError::Unknown(name.to_string()));
            };
            running.shared.stop.store(true, Ordering::SeqCst);
            if running.shared.state() != State::Failed {
                running.shared.set_state(State::Stopping, None);
            }
            running.task.abort_handle()
        };
        // Wait for the pipeline's task without holding the map (status keeps answering meanwhile).
        while !running.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(r) = self.pipelines.lock().await.remove(name) {
            r.shared.finished();
        }
        tracing::info!(pipeline = name, "pipeline disconnected");
        Ok(())
    }

    /// Stops every pipeline (daemon shutdown).
    pub async fn remove_all(&self) {
        let names: Vec<String> = self.pipelines.lock().await.keys().cloned().collect();
        for name in names {
            let _ = self.remove(&name).await;
        }
    }
}

/// Prepares ClickHouse, then runs the workers until they all return.
async fn run_pipeline(env: Arc<WorkerEnv>, shared: Arc<Shared>) {
    let columns = shared.spec.columns();
    let mut delay = env.retry_initial;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match schema::prepare(&env.ch, &shared.spec, &columns).await {
            Ok(()) => break,
            Err(ChError::Config(reason)) => {
                tracing::error!(pipeline = %shared.name(), error = %reason, "pipeline cannot start");
                shared.set_state(State::Failed, Some(reason));
                return;
            }
            Err(e) => {
                tracing::warn!(pipeline = %shared.name(), error = %e, "preparing ClickHouse failed; retrying");
                shared.set_state(State::Backoff, Some(e.to_string()));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(env.retry_max);
            }
        }
    }
    tracing::info!(pipeline = %shared.name(), table = %shared.spec.table, topics = ?shared.spec.topics, "pipeline started");
    let mut workers = Vec::new();
    for index in 0..shared.spec.parallelism {
        let env = env.clone();
        let shared = shared.clone();
        let runtime = tokio::runtime::Handle::current();
        workers.push(tokio::task::spawn_blocking(move || {
            worker::run(env, shared, index, runtime)
        }));
    }
    for w in workers {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(pipeline = %shared.name(), error = %e, "worker failed");
                shared.set_state(State::Failed, Some(e));
            }
            Err(e) => {
                shared.set_state(State::Failed, Some(format!("worker panicked: {e}")));
            }
        }
    }
}
