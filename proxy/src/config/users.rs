//! `[[users]]` of the config file, checked into [`UserConfig`]s (what [`crate::gateway`] enforces): names, password hashes, the ClickHouse
//! credentials (read from the environment or a file, never from the config itself), networks and limits.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use aurora_common::secret::{self, SecretKeys};
use ipnet::IpNet;

use super::settings::UserSpec;

/// What the limits of one user are (the part of `[[users]]` that a reload may keep the state of).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    pub max_concurrent_queries: Option<u32>,
    pub max_queue_size: u32,
    pub max_queue_time: Duration,
    pub requests_per_minute: Option<u32>,
}

/// One proxy user, checked.
#[derive(Clone, PartialEq)]
pub struct UserConfig {
    pub name: String,
    password_sha256: [u8; 32],
    pub clickhouse_user: String,
    /// Never logged (the `Debug` impl hides it).
    pub clickhouse_password: String,
    /// Empty: any address.
    pub networks: Vec<IpNet>,
    pub limits: LimitSpec,
    pub max_execution_time: Option<Duration>,
    pub allow_ask: bool,
    /// The tenant whose rows alone this user sees, and the column that holds it.
    pub tenant: Option<String>,
    pub tenant_column: String,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("clickhouse_user", &self.clickhouse_user)
            .field("networks", &self.networks)
            .field("limits", &self.limits)
            .field("max_execution_time", &self.max_execution_time)
            .field("allow_ask", &self.allow_ask)
            .finish_non_exhaustive()
    }
}

impl UserConfig {
    /// Whether `password` is this user's (compared in constant time).
    pub fn password_matches(&self, password: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(sha256(password).ct_eq(&self.password_sha256))
    }

    pub fn allows(&self, peer: IpAddr) -> bool {
        // An IPv4 client on a dual-stack listener arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.networks.is_empty() || self.networks.iter().any(|net| net.contains(&peer))
    }

    #[cfg(test)]
    pub fn for_tests(name: &str, password: &str, networks: &[&str]) -> UserConfig {
        UserConfig {
            name: name.into(),
            password_sha256: sha256(password.as_bytes()),
            clickhouse_user: "default".into(),
            clickhouse_password: String::new(),
            networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
            limits: LimitSpec {
                max_concurrent_queries: None,
                max_queue_size: 0,
                max_queue_time: Duration::from_secs(1),
                requests_per_minute: None,
            },
            max_execution_time: None,
            allow_ask: true,
            tenant: None,
            tenant_column: "tenant_id".into(),
        }
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Checks `[[users]]`; every problem is reported with its key (`users[i].field`).
pub fn resolve_users(
    specs: &[UserSpec],
    tenant_column: &str,
    report: &mut impl FnMut(&str, String),
) -> Vec<UserConfig> {
    if tenant_column.is_empty() {
        report("tenant_column", "must name a column".into());
    }
    let mut names = BTreeSet::new();
    let mut users = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let key = |field: &str| format!("users[{i}].{field}");
        let valid_name = !spec.name.is_empty()
            && spec.name.len() <= 64
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
        if !valid_name {
            report(
                &key("name"),
                format!(
                    "{:?} is not 1 to 64 letters, digits, '_', '-', '.' or '@'",
                    spec.name
                ),
            );
        } else if !names.insert(spec.name.clone()) {
            report(&key("name"), format!("{:?} names two users", spec.name));
        }
        let password = match (&spec.password_sha256, &spec.password_env) {
            (Some(hex), None) => parse_hex32(hex).or_else(|| {
                report(&key("password_sha256"), "is not 64 hex digits (a SHA-256)".into());
                None
            }),
            (None, Some(var)) => match std::env::var(var) {
                Ok(value) if !value.is_empty() => Some(sha256(value.as_bytes())),
                _ => {
                    report(
                        &key("password_env"),
                        format!("environment variable {var} is not set or empty"),
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                report(
                    &key("password_env"),
                    "give password_sha256 or password_env, not both".into(),
                );
                None
            }
            (None, None) => {
                report(
                    &key("password_sha256"),
                    "a proxy user needs password_sha256 or password_env".into(),
                );
                None
            }
        };
        let keys = SecretKeys {
            what: "password",
            env: "clickhouse_password_env",
            file: "clickhouse_password_file",
        };
        let clickhouse_password = match secret::read(
            keys,
            spec.clickhouse_password_env.as_deref(),
            spec.clickhouse_password_file.as_deref(),
        ) {
            Ok(password) => password.unwrap_or_default(),
            Err(e) => {
                report(&key(e.key()), e.to_string());
                String::new()
            }
        };
        let mut networks = Vec::with_capacity(spec.networks.len());
        for (j, net) in spec.networks.iter().enumerate() {
            // A bare address is a network of one.
            let parsed = net
                .parse::<IpNet>()
                .or_else(|_| net.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => networks.push(net),
                Err(_) => report(
                    &format!("users[{i}].networks[{j}]"),
                    format!("{net:?} is not an address or a network in CIDR form"),
                ),
            }
        }
        if spec.max_concurrent_queries == Some(0) {
            report(
                &key("max_concurrent_queries"),
                "must be at least 1 (leave it out for no limit)".into(),
            );
        }
        if spec.requests_per_minute == Some(0) {
            report(
                &key("requests_per_minute"),
                "must be at least 1 (leave it out for no limit)".into(),
            );
        }
        if spec.max_queue_size > 0 && spec.max_concurrent_queries.is_none() {
            report(
                &key("max_queue_size"),
                "a queue needs max_concurrent_queries".into(),
            );
        }
        if spec.tenant.as_deref() == Some("") {
            report(
                &key("tenant"),
                "must not be empty (leave it out for no tenant)".into(),
            );
        }
        if spec.max_execution_time.is_some_and(|t| t.0.is_zero()) {
            report(&key("max_execution_time"), "must be longer than zero".into());
        }
        let Some(password_sha256) = password else { continue };
        users.push(UserConfig {
            name: spec.name.clone(),
            password_sha256,
            clickhouse_user: spec.clickhouse_user.clone().unwrap_or_else(|| spec.name.clone()),
            clickhouse_password,
            networks,
            limits: LimitSpec {
                max_concurrent_queries: spec.max_concurrent_queries,
                max_queue_size: spec.max_queue_size,
                max_queue_time: spec.max_queue_time.0,
                requests_per_minute: spec.requests_per_minute,
            },
            max_execution_time: spec.max_execution_time.map(|t| t.0),
            allow_ask: spec.allow_ask,
            tenant: spec.tenant.clone(),
            tenant_column: tenant_column.to_string(),
        });
    }
    users
}

/// Where the audit table is and who writes it.
#[derive(Clone, PartialEq)]
pub struct AuditConfig {
    /// `database.table`, checked as two identifiers.
    pub database: String,
    pub table: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditConfig")
            .field("table", &format_args!("{}.{}", self.database, self.table))
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}
