//! Pipelines of a running daemon: the [`Manager`] that starts and stops them (what each shows is in
//! [`crate::status`]).
//!
//! A pipeline is `parallelism` workers (see [`crate::worker`]), each one consumer of the pipeline's group plus
//! one inserter. Starting prepares the ClickHouse objects (retrying while ClickHouse is unreachable);
//! stopping flushes what was read, waits for ClickHouse to acknowledge it, commits and leaves the group.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;

use crate::clickhouse::{ChError, ClickHouse};
use crate::config::{Config, ConfigError, PipelineSpec};
use crate::metrics::Metrics;
use crate::schema;
use crate::status::{PipelineView, Shared, State};
use crate::worker::{self, WorkerEnv, WorkerError};

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
    pub fn new(config: &Config, ch: ClickHouse, metrics: Arc<Metrics>) -> Result<Arc<Manager>, WorkerError> {
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
        match schema::prepare_all(&env.ch, &shared.spec, &columns, &shared.prepared).await {
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
                shared.set_state(State::Failed, Some(e.to_string()));
            }
            Err(e) => {
                shared.set_state(State::Failed, Some(format!("worker panicked: {e}")));
            }
        }
    }
}
