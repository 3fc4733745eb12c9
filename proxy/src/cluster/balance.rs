//! The balance strategies: which node of a pool takes the next client.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::Node;
use crate::config::Balance;

/// The node of `pool` (in configuration order) that `balance` picks; `turn` counts the choices made so far
/// (round robin's position, the tie-break of least connections), `user` keys `hash_user`.
pub fn pick<'a>(balance: Balance, pool: &[&'a Arc<Node>], user: &str, turn: u64) -> Option<&'a Arc<Node>> {
    if pool.is_empty() {
        return None;
    }
    let n = pool.len();
    let node = match balance {
        Balance::FirstHealthy => pool[0],
        Balance::LeastConnections => {
            // Fewest active per unit of weight; among equals, the one after the previous choice's place.
            let start = (turn % n as u64) as usize;
            (0..n)
                .map(|k| pool[(start + k) % n])
                .min_by(|a, b| {
                    let load_a = a.active() as u128 * u128::from(b.config.weight);
                    let load_b = b.active() as u128 * u128::from(a.config.weight);
                    load_a.cmp(&load_b)
                })
                .expect("pool is not empty")
        }
        Balance::RoundRobin => weighted(pool, turn),
        Balance::Random => weighted(
            pool,
            std::collections::hash_map::RandomState::new().hash_one(turn),
        ),
        Balance::HashUser => pool
            .iter()
            .copied()
            .max_by_key(|node| stable_hash(user, node.name()))
            .expect("pool is not empty"),
    };
    Some(node)
}

/// The node whose share of the total weight holds position `at` (modulo the total).
fn weighted<'a>(pool: &[&'a Arc<Node>], at: u64) -> &'a Arc<Node> {
    let total: u64 = pool.iter().map(|n| u64::from(n.config.weight)).sum();
    let mut slot = at % total.max(1);
    for node in pool {
        let weight = u64::from(node.config.weight);
        if slot < weight {
            return node;
        }
        slot -= weight;
    }
    pool[pool.len() - 1]
}

/// FNV-1a of `user`, a separator and `node`, finished with a 64-bit mix: the same on every run and every
/// proxy, so one user lands on one node (rendezvous hashing: a node going away moves only its own users).
fn stable_hash(user: &str, node: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user.bytes().chain([0u8]).chain(node.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;
    use crate::config::nodes::{ClusterConfig, HealthConfig, NodeConfig};
    use crate::config::Role;
    use crate::metrics::Metrics;

    fn nodes(weights: &[u32]) -> Arc<Cluster> {
        let nodes = weights
            .iter()
            .enumerate()
            .map(|(i, weight)| NodeConfig {
                name: format!("ch{}", i + 1),
                native: format!("127.0.0.1:{}", 9000 + i),
                http: format!("http://127.0.0.1:{}", 8123 + i),
                role: Role::Any,
                weight: *weight,
                shard: None,
            })
            .collect();
        Cluster::new(
            &ClusterConfig {
                nodes,
                balance: Balance::RoundRobin,
                health: HealthConfig {
                    interval: std::time::Duration::from_secs(1),
                    timeout: std::time::Duration::from_secs(1),
                    unhealthy_after: 1,
                    healthy_after: 1,
                    circuit_failures: 0,
                    circuit_cooldown: std::time::Duration::from_secs(1),
                },
            },
            Metrics::new(),
        )
    }

    fn counts(balance: Balance, cluster: &Cluster, user: impl Fn(u64) -> String, picks: u64) -> Vec<usize> {
        let pool: Vec<&Arc<Node>> = cluster.nodes().iter().collect();
        let mut counts = vec![0; pool.len()];
        for turn in 0..picks {
            let node = pick(balance, &pool, &user(turn), turn).unwrap();
            counts[node.index] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_follows_the_weights() {
        let c = nodes(&[1, 2, 1]);
        assert_eq!(
            counts(Balance::RoundRobin, &c, |_| String::new(), 400),
            [100, 200, 100]
        );
    }

    #[test]
    fn random_reaches_every_node_roughly_by_weight() {
        let c = nodes(&[1, 1, 2]);
        let counts = counts(Balance::Random, &c, |_| String::new(), 4000);
        assert!(counts.iter().all(|&n| n > 600), "{counts:?}");
        assert!(counts[2] > counts[0] && counts[2] > counts[1], "{counts:?}");
    }

    #[test]
    fn hash_user_keeps_a_user_on_one_node_and_spreads_users() {
        let c = nodes(&[1, 1, 1]);
        let same = counts(Balance::HashUser, &c, |_| "alice".into(), 50);
        assert_eq!(same.iter().filter(|&&n| n > 0).count(), 1, "{same:?}");
        let many = counts(Balance::HashUser, &c, |turn| format!("user{turn}"), 600);
        assert!(many.iter().all(|&n| n > 120), "{many:?}");
        // A node leaving moves only its own users.
        let pool: Vec<&Arc<Node>> = c.nodes().iter().collect();
        let without_first: Vec<&Arc<Node>> = c.nodes().iter().skip(1).collect();
        for u in 0..100 {
            let user = format!("user{u}");
            let before = pick(Balance::HashUser, &pool, &user, 0).unwrap().index;
            let after = pick(Balance::HashUser, &without_first, &user, 0).unwrap().index;
            if before != 0 {
                assert_eq!(before, after, "{user} moved");
            }
        }
    }

    #[test]
    fn first_healthy_takes_the_first_of_the_pool() {
        let c = nodes(&[1, 5]);
        assert_eq!(counts(Balance::FirstHealthy, &c, |_| String::new(), 10), [10, 0]);
    }
}
