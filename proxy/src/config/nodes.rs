//! The nodes behind the proxy: `[[nodes]]` of the config file, or the one node `upstream_native` +
//! `upstream_http` describe, checked like every other key.

use std::collections::BTreeSet;
use std::time::Duration;

use super::settings::{Balance, Cluster, NodeSpec, Role};
use super::upstream_url::UpstreamUrl;

/// The name of the one node when no `[[nodes]]` are configured.
pub const SINGLE_NODE_NAME: &str = "upstream";

/// The cluster as the proxy runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// At least one, in the order of the file.
    pub nodes: Vec<NodeConfig>,
    pub balance: Balance,
    pub health: HealthConfig,
}

/// One node, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub name: String,
    /// HOST:PORT of the native interface.
    pub native: String,
    /// Base URL of the HTTP interface, without a trailing slash.
    pub http: String,
    pub role: Role,
    pub weight: u32,
    pub shard: Option<u32>,
}

/// How nodes are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
    /// Consecutive failed connects that open a node's circuit (0: never).
    pub circuit_failures: u32,
    /// How long an open circuit skips its node.
    pub circuit_cooldown: Duration,
}

/// Whether `address` is HOST:PORT.
pub fn is_host_port(address: &str) -> bool {
    matches!(address.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The cluster `cluster` describes (the one node of `upstream_native` + `upstream_http` without `[[nodes]]`);
/// each problem is reported with its key.
pub fn resolve(
    cluster: Cluster,
    upstream_native: &str,
    upstream_http: &str,
    report: &mut impl FnMut(&str, String),
) -> ClusterConfig {
    // The one node of the upstream_* keys was checked with those keys.
    let single = cluster.nodes.is_empty();
    let specs = if single {
        vec![NodeSpec {
            name: SINGLE_NODE_NAME.into(),
            native: upstream_native.into(),
            http: upstream_http.into(),
            role: Role::Any,
            weight: 1,
            shard: None,
        }]
    } else {
        cluster.nodes
    };
    let mut names = BTreeSet::new();
    let mut nodes = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let key = format!("nodes[{i}]");
        let valid_name = !spec.name.is_empty()
            && spec.name.len() <= 64
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid_name {
            report(
                &format!("{key}.name"),
                format!("{:?} is not 1 to 64 letters, digits, '_', '-' or '.'", spec.name),
            );
        } else if !names.insert(spec.name.clone()) {
            report(&format!("{key}.name"), format!("{:?} names two nodes", spec.name));
        }
        if !single && !is_host_port(&spec.native) {
            report(
                &format!("{key}.native"),
                format!("{:?} is not HOST:PORT", spec.native),
            );
        }
        let http = spec.http.trim_end_matches('/').to_string();
        if let (false, Err(reason)) = (single, UpstreamUrl::parse(&http)) {
            report(
                &format!("{key}.http"),
                format!("{http:?} cannot be used: {reason}"),
            );
        }
        if !(1..=1000).contains(&spec.weight) {
            report(&format!("{key}.weight"), "must be 1 to 1000".into());
        }
        nodes.push(NodeConfig {
            name: spec.name,
            native: spec.native,
            http,
            role: spec.role,
            weight: spec.weight,
            shard: spec.shard,
        });
    }
    let health = HealthConfig {
        interval: cluster.health_interval.0,
        timeout: cluster.health_timeout.0,
        unhealthy_after: cluster.unhealthy_after,
        healthy_after: cluster.healthy_after,
        circuit_failures: cluster.circuit_failures,
        circuit_cooldown: cluster.circuit_cooldown.0,
    };
    if health.circuit_failures > 1000 {
        report("circuit_failures", "must be 0 (off) to 1000".into());
    }
    for (key, value) in [
        ("health_interval", health.interval),
        ("health_timeout", health.timeout),
    ] {
        if value.is_zero() {
            report(key, "must be longer than zero".into());
        }
    }
    for (key, value) in [
        ("unhealthy_after", health.unhealthy_after),
        ("healthy_after", health.healthy_after),
    ] {
        if !(1..=100).contains(&value) {
            report(key, "must be 1 to 100".into());
        }
    }
    ClusterConfig {
        nodes,
        balance: cluster.balance,
        health,
    }
}
