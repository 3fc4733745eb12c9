//! Health probes: every `health_interval`, each node is asked on both its ports (the probe itself is the
//! caller's: a native Hello and Ping, an HTTP `/ping`) within `health_timeout`; [`Cluster::probed`] counts the
//! results into the node's state.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::{Cluster, Node};

/// Probes every node until `shutdown` turns true, one task per node so a slow node does not delay the
/// others. The first round runs at once.
pub fn spawn<F, Fut>(cluster: Arc<Cluster>, probe: F, shutdown: watch::Receiver<bool>)
where
    F: Fn(Arc<Node>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let health = cluster.health_config();
    for node in cluster.nodes().to_vec() {
        let cluster = cluster.clone();
        let probe = probe.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(health.interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = crate::listener::stopped(&mut shutdown) => return,
                }
                let started = Instant::now();
                let result = match tokio::time::timeout(health.timeout, probe(node.clone())).await {
                    Ok(result) => result,
                    Err(_) => Err(format!(
                        "no answer to the health probe within {} (health_timeout)",
                        humantime::format_duration(health.timeout)
                    )),
                };
                cluster
                    .metrics
                    .node_probe_duration
                    .with_label_values(&[node.name(), if result.is_ok() { "ok" } else { "failed" }])
                    .observe(started.elapsed().as_secs_f64());
                if let Err(reason) = &result {
                    tracing::debug!(node = node.name(), reason, "health probe failed");
                }
                cluster.probed(&node, result);
            }
        });
    }
}
