//! The ClickHouse nodes behind the proxy: which are healthy, how many clients each serves, and which one takes
//! the next native connection or HTTP request.
//!
//! A node is healthy until `unhealthy_after` consecutive probes fail or a connect to it fails (then at once),
//! and healthy again after `healthy_after` consecutive good probes ([`health`]). [`Cluster::choose`] picks among
//! the healthy nodes that may serve the listener's [`Route`] by the configured [`Balance`] ([`balance`]); the
//! caller tries the next choice (with the failed node excluded) when a connect fails, before the client has seen
//! anything. When no node of the route is healthy, the nodes that are out are tried anyway, best first: a
//! stale "down" must not refuse a client while a node would answer.
//!
//! A node whose connects keep failing has its circuit opened: after `circuit_failures` consecutive failed
//! connects it is skipped for `circuit_cooldown` — even when no other node is left, so that clients fail fast
//! (code 210) instead of piling up connects to a server that is gone. After the cool-down the next connect tries
//! it again; one that succeeds, or a good probe, closes the circuit.
//!
//! Each choice returns a [`NodeLease`] that counts the connection (native) or request (HTTP) on its node for as
//! long as it lives: least-connections balancing and the per-node gauges read these counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::nodes::{ClusterConfig, HealthConfig, NodeConfig};
use crate::config::{Balance, Role};
use crate::metrics::Metrics;
use crate::telemetry::Protocol;

pub mod balance;
pub mod health;

/// What a read endpoint answers a statement that writes (with code 164, READONLY), on both protocols.
pub const READ_ENDPOINT_REFUSAL: &str = "Aurora proxy: Cannot execute query in readonly mode: this is a read \
     endpoint of aurora-proxy, which lets only SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN, SET and USE through; \
     send writes to a write endpoint";

/// What a listener routes: every node, or only those of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Any node (the plain listeners).
    Any,
    /// Nodes with role `read` or `any`.
    Read,
    /// Nodes with role `write` or `any`.
    Write,
}

impl Route {
    /// Where this listener's own reads go (ASK's catalog and generated queries, credential checks): a write
    /// endpoint keeps them on its nodes, the others may use read replicas.
    pub fn for_reads(self) -> Route {
        match self {
            Route::Write => Route::Write,
            Route::Any | Route::Read => Route::Read,
        }
    }

    fn serves(self, role: Role) -> bool {
        match self {
            Route::Any => true,
            Route::Read => role != Role::Write,
            Route::Write => role != Role::Read,
        }
    }
}

/// One node and what the proxy knows about it now.
pub struct Node {
    pub config: NodeConfig,
    /// Position in the configuration (what [`Cluster::choose`] excludes by).
    pub index: usize,
    up: AtomicBool,
    good_probes: AtomicU32,
    bad_probes: AtomicU32,
    /// Native connections open and HTTP requests running on this node.
    active: AtomicUsize,
    /// Consecutive failed connects (reset by a good connect or probe).
    failures: AtomicU32,
    /// Until when the circuit is open: the node is skipped.
    open_until: Mutex<Option<Instant>>,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Native connections and HTTP requests on this node now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// How long the node's circuit stays open from now; `None` when it is closed.
    pub fn circuit_open(&self) -> Option<Duration> {
        let until = (*self.open_until.lock().expect("circuit lock"))?;
        until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
    }
}

/// The nodes, their health and the balancing state.
pub struct Cluster {
    nodes: Vec<Arc<Node>>,
    balance: Balance,
    health: HealthConfig,
    /// Round-robin position.
    turn: AtomicU64,
    metrics: Arc<Metrics>,
    /// The node of each running query the client named (`query_id`), for `KILL QUERY … WHERE query_id = …`.
    running: Running,
}

/// Query id → the index of the node running it.
type Running = Arc<Mutex<HashMap<String, usize>>>;

/// Running queries with a client-given id, at most; past it, new ones are not remembered (their KILL goes
/// where the balance strategy sends it).
const MAX_RUNNING: usize = 65_536;

/// A node chosen for one native connection or one HTTP request; counted on the node while it lives.
pub struct NodeLease {
    node: Arc<Node>,
    protocol: Protocol,
    metrics: Arc<Metrics>,
    /// The query id this lease's query runs under, remembered in `running` until the lease ends.
    query: Option<(String, Running)>,
}

impl NodeLease {
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }
}

impl std::fmt::Debug for NodeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NodeLease").field(&self.node.config.name).finish()
    }
}

impl Drop for NodeLease {
    fn drop(&mut self) {
        if let Some((id, running)) = self.query.take() {
            let mut running = running.lock().expect("running lock");
            if running.get(&id) == Some(&self.node.index) {
                running.remove(&id);
            }
        }
        self.node.active.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .node_active
            .with_label_values(&[self.node.name(), self.protocol.label()])
            .dec();
    }
}

impl Cluster {
    pub fn new(config: &ClusterConfig, metrics: Arc<Metrics>) -> Arc<Cluster> {
        let nodes: Vec<Arc<Node>> = config
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                // Until the first probe says otherwise, a node is taken to be up: the proxy serves at once.
                metrics.node_up.with_label_values(&[&node.name]).set(1);
                for protocol in [Protocol::Native, Protocol::Http] {
                    metrics
                        .node_active
                        .with_label_values(&[&node.name, protocol.label()]);
                    metrics
                        .node_chosen
                        .with_label_values(&[&node.name, protocol.label()]);
                }
                Arc::new(Node {
                    config: node.clone(),
                    index,
                    up: AtomicBool::new(true),
                    good_probes: AtomicU32::new(0),
                    bad_probes: AtomicU32::new(0),
                    active: AtomicUsize::new(0),
                    failures: AtomicU32::new(0),
                    open_until: Mutex::new(None),
                })
            })
            .collect();
        Arc::new(Cluster {
            nodes,
            balance: config.balance,
            health: config.health,
            turn: AtomicU64::new(0),
            metrics,
            running: Default::default(),
        })
    }

    /// Remembers that the query `id` runs on `lease`'s node, until the lease ends.
    pub fn running(&self, lease: &mut NodeLease, id: &str) {
        if id.is_empty() || id.len() > 256 {
            return;
        }
        let mut running = self.running.lock().expect("running lock");
        if running.len() >= MAX_RUNNING && !running.contains_key(id) {
            return;
        }
        running.insert(id.to_string(), lease.node.index);
        lease.query = Some((id.to_string(), self.running.clone()));
    }

    /// The node running the query `id`, if a client started it through this proxy and it has not ended.
    pub fn running_on(&self, id: &str) -> Option<usize> {
        self.running.lock().expect("running lock").get(id).copied()
    }

    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    pub fn health_config(&self) -> HealthConfig {
        self.health
    }

    /// The node for the next connection or request of `route`, none of `tried`; `user` keys `hash_user`.
    /// `None` when every node of the route was tried.
    pub fn choose(&self, route: Route, user: &str, tried: &[usize], protocol: Protocol) -> Option<NodeLease> {
        let candidates: Vec<&Arc<Node>> = self
            .nodes
            .iter()
            .filter(|n| route.serves(n.config.role) && !tried.contains(&n.index))
            .filter(|n| n.circuit_open().is_none())
            .collect();
        let healthy: Vec<&Arc<Node>> = candidates.iter().copied().filter(|n| n.is_up()).collect();
        let pool = if healthy.is_empty() { candidates } else { healthy };
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let index = balance::pick(self.balance, &pool, user, turn)?.index;
        self.lease(index, protocol)
    }

    /// A lease on the node at `index` (a sticky session's node), whatever its state; `None` past the end.
    pub fn lease(&self, index: usize, protocol: Protocol) -> Option<NodeLease> {
        let node = self.nodes.get(index)?.clone();
        node.active.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .node_active
            .with_label_values(&[node.name(), protocol.label()])
            .inc();
        self.metrics
            .node_chosen
            .with_label_values(&[node.name(), protocol.label()])
            .inc();
        Some(NodeLease {
            node,
            protocol,
            metrics: self.metrics.clone(),
            query: None,
        })
    }

    /// A connect to `node` failed: it is out at once, until probes bring it back; after `circuit_failures`
    /// in a row its circuit opens for `circuit_cooldown`.
    pub fn connect_failed(&self, node: &Node, reason: &str) {
        node.good_probes.store(0, Ordering::Relaxed);
        self.set_up(node, false, reason);
        let failures = node.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let breaker = self.health.circuit_failures;
        if breaker > 0 && failures >= breaker {
            let cooldown = self.health.circuit_cooldown;
            *node.open_until.lock().expect("circuit lock") = Some(Instant::now() + cooldown);
            self.metrics
                .node_circuit_open
                .with_label_values(&[node.name()])
                .inc();
            tracing::warn!(
                node = node.name(),
                failures,
                cooldown = %humantime::format_duration(cooldown),
                "circuit open: the node is skipped for the cool-down"
            );
        }
    }

    /// A connect to `node` succeeded: its circuit is closed.
    pub fn connected(&self, node: &Node) {
        if node.failures.swap(0, Ordering::Relaxed) > 0 {
            *node.open_until.lock().expect("circuit lock") = None;
        }
    }

    /// Why no node of `route` can be chosen now, when their circuits are open (for the client's error).
    pub fn circuits_open(&self, route: Route) -> Option<String> {
        let open: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| route.serves(n.config.role))
            .filter_map(|n| {
                n.circuit_open()
                    .map(|left| format!("{} for {:.1} s more", n.name(), left.as_secs_f64()))
            })
            .collect();
        (!open.is_empty()).then(|| {
            format!(
                "the circuit of every node is open after {} failed connects in a row: {} (circuit_cooldown)",
                self.health.circuit_failures,
                open.join(", ")
            )
        })
    }

    /// Records one probe of `node`.
    pub fn probed(&self, node: &Node, result: Result<(), String>) {
        match result {
            Ok(()) => {
                node.bad_probes.store(0, Ordering::Relaxed);
                self.connected(node);
                let good = node.good_probes.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                if good >= self.health.healthy_after {
                    self.set_up(node, true, "health probes answered");
                }
            }
            Err(reason) => {
                node.good_probes.store(0, Ordering::Relaxed);
                let bad = node.bad_probes.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                if bad >= self.health.unhealthy_after {
                    self.set_up(node, false, &reason);
                }
            }
        }
    }

    /// Changes a node's state, logging the change once.
    fn set_up(&self, node: &Node, up: bool, reason: &str) {
        if node.up.swap(up, Ordering::Relaxed) != up {
            self.metrics
                .node_up
                .with_label_values(&[node.name()])
                .set(i64::from(up));
            if up {
                tracing::info!(node = node.name(), reason, "ClickHouse node is up");
            } else {
                tracing::warn!(node = node.name(), reason, "ClickHouse node is down");
            }
        }
    }

    /// The nodes' states as `/health` shows them: one line per node; `true` when at least one is up.
    pub fn report(&self) -> (bool, String) {
        let mut text = String::new();
        for node in &self.nodes {
            text.push_str(&format!(
                "{} {} native={} http={} role={} active={}\n",
                node.name(),
                if node.is_up() { "up" } else { "down" },
                node.config.native,
                node.config.http,
                match node.config.role {
                    Role::Any => "any",
                    Role::Read => "read",
                    Role::Write => "write",
                },
                node.active(),
            ));
        }
        (self.nodes.iter().any(|n| n.is_up()), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::nodes::NodeConfig;

    fn cluster(balance: Balance, roles: &[Role]) -> Arc<Cluster> {
        let nodes = roles
            .iter()
            .enumerate()
            .map(|(i, role)| NodeConfig {
                name: format!("ch{}", i + 1),
                native: format!("127.0.0.1:{}", 9000 + i),
                http: format!("http://127.0.0.1:{}", 8123 + i),
                role: *role,
                weight: 1,
                shard: None,
            })
            .collect();
        let config = ClusterConfig {
            nodes,
            balance,
            health: HealthConfig {
                interval: std::time::Duration::from_secs(1),
                timeout: std::time::Duration::from_secs(1),
                unhealthy_after: 2,
                healthy_after: 2,
                circuit_failures: 3,
                circuit_cooldown: std::time::Duration::from_secs(60),
            },
        };
        Cluster::new(&config, Metrics::new())
    }

    fn names(leases: &[NodeLease]) -> Vec<&str> {
        leases.iter().map(|l| l.node().name()).collect()
    }

    #[test]
    fn routes_keep_to_their_roles_and_tried_nodes_are_skipped() {
        let c = cluster(Balance::FirstHealthy, &[Role::Write, Role::Read, Role::Any]);
        let read = c.choose(Route::Read, "", &[], Protocol::Native).unwrap();
        assert_eq!(read.node().name(), "ch2");
        let write = c.choose(Route::Write, "", &[], Protocol::Native).unwrap();
        assert_eq!(write.node().name(), "ch1");
        let next = c.choose(Route::Write, "", &[0], Protocol::Native).unwrap();
        assert_eq!(next.node().name(), "ch3");
        assert!(c.choose(Route::Write, "", &[0, 2], Protocol::Native).is_none());
    }

    #[test]
    fn probes_take_nodes_out_and_back_after_their_counts() {
        let c = cluster(Balance::FirstHealthy, &[Role::Any, Role::Any]);
        let first = &c.nodes()[0];
        c.probed(first, Err("refused".into()));
        assert!(first.is_up(), "one failed probe is not enough");
        c.probed(first, Err("refused".into()));
        assert!(!first.is_up());
        let lease = c.choose(Route::Any, "", &[], Protocol::Http).unwrap();
        assert_eq!(lease.node().name(), "ch2");
        c.probed(first, Ok(()));
        assert!(!first.is_up());
        c.probed(first, Ok(()));
        assert!(first.is_up());
        c.connect_failed(first, "connection refused");
        assert!(!first.is_up(), "a failed connect takes a node out at once");
    }

    #[test]
    fn when_every_node_is_down_they_are_still_tried() {
        let c = cluster(Balance::FirstHealthy, &[Role::Any, Role::Any]);
        for node in c.nodes() {
            c.connect_failed(node, "refused");
        }
        let lease = c.choose(Route::Any, "", &[], Protocol::Native).unwrap();
        assert_eq!(lease.node().name(), "ch1");
        assert!(!c.report().0);
    }

    #[test]
    fn an_open_circuit_skips_the_node_even_when_no_other_is_left() {
        let c = cluster(Balance::FirstHealthy, &[Role::Any, Role::Any]);
        let first = &c.nodes()[0];
        for _ in 0..2 {
            c.connect_failed(first, "refused");
            assert!(first.circuit_open().is_none());
        }
        c.connect_failed(first, "refused");
        assert!(first.circuit_open().is_some());
        // Down and open: skipped, though "every node down" would try it.
        c.connect_failed(&c.nodes()[1], "refused");
        let lease = c.choose(Route::Any, "", &[], Protocol::Native).unwrap();
        assert_eq!(lease.node().name(), "ch2");
        assert!(c.choose(Route::Any, "", &[1], Protocol::Native).is_none());
        for _ in 0..2 {
            c.connect_failed(&c.nodes()[1], "refused");
        }
        assert!(c.choose(Route::Any, "", &[], Protocol::Native).is_none());
        assert!(c.circuits_open(Route::Any).unwrap().contains("ch1 for"));
        // A good probe closes it.
        c.probed(first, Ok(()));
        assert!(first.circuit_open().is_none());
        assert_eq!(
            c.choose(Route::Any, "", &[], Protocol::Native)
                .unwrap()
                .node()
                .name(),
            "ch1"
        );
    }

    #[test]
    fn least_connections_spreads_and_leases_count_while_they_live() {
        let c = cluster(Balance::LeastConnections, &[Role::Any, Role::Any, Role::Any]);
        let leases: Vec<NodeLease> = (0..6)
            .map(|_| c.choose(Route::Any, "", &[], Protocol::Native).unwrap())
            .collect();
        let mut counts = names(&leases);
        counts.sort();
        assert_eq!(counts, ["ch1", "ch1", "ch2", "ch2", "ch3", "ch3"]);
        assert_eq!(c.nodes()[0].active(), 2);
        drop(leases);
        assert_eq!(c.nodes()[0].active(), 0);
    }
}
