//! The gateway: proxy users (`[[users]]`) and what the proxy enforces for them on both protocols.
//!
//! Without `[[users]]` the proxy passes every client's credentials to ClickHouse as they are. With them, a
//! client logs in as a proxy user — checked here, before anything is sent upstream — and the proxy logs in to
//! ClickHouse as that user's `clickhouse_user`, so clients never hold the ClickHouse password. Each user's
//! limits ([`limits`]) are shared by all its connections and requests. `SIGHUP` reloads the users; a user
//! whose limits did not change keeps its running state (its slots, queue and rate tokens).

pub mod audit;
pub mod limits;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::users;
pub use crate::config::users::UserConfig;
pub use limits::{Admission, LimitSpec, Limiter, Refused};

use crate::codes;
use crate::dialect::Dialect;

/// The proxy users now in force.
pub struct Gateway {
    users: RwLock<Arc<HashMap<String, Arc<ProxyUser>>>>,
}

/// One proxy user as the sessions see it.
pub struct ProxyUser {
    pub config: UserConfig,
    pub limiter: Arc<Limiter>,
}

impl std::fmt::Debug for ProxyUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProxyUser").field(&self.config.name).finish()
    }
}

impl ProxyUser {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The credentials the proxy logs in to ClickHouse with for this user.
    pub fn clickhouse_credentials(&self) -> (&str, &str) {
        (&self.config.clickhouse_user, &self.config.clickhouse_password)
    }

    pub fn max_execution_time(&self) -> Option<Duration> {
        self.config.max_execution_time
    }

    /// The tenant scope of this user's queries, with `database` (empty: `default`) for unqualified tables;
    /// `None` when the user has no tenant.
    pub fn tenant_rule(&self, database: &str) -> Option<nlq::tenant::TenantRule> {
        let value = self.config.tenant.clone()?;
        Some(nlq::tenant::TenantRule {
            column: self.config.tenant_column.clone(),
            value,
            default_database: if database.is_empty() {
                "default".into()
            } else {
                database.into()
            },
        })
    }
}

/// What an HTTP answer holds while it streams: its user's turn, and the watch that kills the query when it
/// passes `max_execution_time` (stopped when the answer ends).
#[derive(Debug, Default)]
pub struct Turn {
    pub admission: Option<Admission>,
    pub watchdog: Option<tokio::task::AbortHandle>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}

/// Who a client is after its login.
#[derive(Debug, Clone)]
pub enum Login {
    /// No `[[users]]`: ClickHouse checks the client's own credentials.
    PassThrough,
    User(Arc<ProxyUser>),
}

impl Login {
    pub fn user(&self) -> Option<&Arc<ProxyUser>> {
        match self {
            Login::PassThrough => None,
            Login::User(user) => Some(user),
        }
    }
}

/// Why a login is refused, in ClickHouse's words and codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginError {
    pub code: i32,
    pub message: String,
}

impl LoginError {
    /// The HTTP status ClickHouse answers a refused login with.
    pub fn http_status(&self) -> hyper::StatusCode {
        if self.code == codes::IP_ADDRESS_NOT_ALLOWED {
            hyper::StatusCode::FORBIDDEN
        } else {
            hyper::StatusCode::UNAUTHORIZED
        }
    }
}

impl Gateway {
    pub fn new(users: Vec<UserConfig>) -> Gateway {
        let gateway = Gateway {
            users: RwLock::new(Arc::new(HashMap::new())),
        };
        gateway.replace(users);
        gateway
    }

    /// Whether logins are checked by the proxy (some `[[users]]` are configured).
    pub fn enabled(&self) -> bool {
        !self.current().is_empty()
    }

    fn current(&self) -> Arc<HashMap<String, Arc<ProxyUser>>> {
        self.users.read().expect("users lock").clone()
    }

    /// Puts `users` in force. A user whose limits are unchanged keeps its limiter; the others start afresh
    /// (queries admitted under the old limits finish under them). Returns the number of users.
    pub fn replace(&self, users: Vec<UserConfig>) -> usize {
        let old = self.current();
        let next: HashMap<String, Arc<ProxyUser>> = users
            .into_iter()
            .map(|config| {
                let limiter = match old.get(&config.name) {
                    Some(user) if user.limiter.spec == config.limits => user.limiter.clone(),
                    _ => Arc::new(Limiter::new(config.limits)),
                };
                (config.name.clone(), Arc::new(ProxyUser { config, limiter }))
            })
            .collect();
        let count = next.len();
        *self.users.write().expect("users lock") = Arc::new(next);
        count
    }

    /// Checks a client's login: user, password and address. Nothing of a refused login goes upstream.
    pub fn login(&self, user: &str, password: &[u8], peer: IpAddr) -> Result<Login, LoginError> {
        let users = self.current();
        if users.is_empty() {
            return Ok(Login::PassThrough);
        }
        let user = if user.is_empty() { "default" } else { user };
        let dialect = crate::dialect::current();
        let Some(found) = users.get(user) else {
            // The hash is computed anyway, so an unknown name takes as long as a wrong password.
            let _ = users::sha256(password);
            return Err(refusal(dialect, Denied::UnknownUser, user, peer));
        };
        if !found.config.password_matches(password) {
            return Err(refusal(dialect, Denied::WrongPassword, user, peer));
        }
        if !found.config.allows(peer) {
            return Err(refusal(dialect, Denied::Network, user, peer));
        }
        Ok(Login::User(found.clone()))
    }
}

/// Why a login is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    UnknownUser,
    WrongPassword,
    Network,
}

/// The refusal as the upstream's version words it: 18.x names the cause (192, 193), newer servers answer
/// 516 for both; a disallowed address is 195.
fn refusal(dialect: Dialect, denied: Denied, user: &str, peer: IpAddr) -> LoginError {
    match (denied, dialect) {
        (Denied::Network, _) => LoginError {
            code: codes::IP_ADDRESS_NOT_ALLOWED,
            message: format!("User {user} is not allowed to connect from address {peer}"),
        },
        (Denied::UnknownUser, Dialect::Legacy) => LoginError {
            code: codes::UNKNOWN_USER,
            message: format!("Unknown user {user}"),
        },
        (Denied::WrongPassword, Dialect::Legacy) => LoginError {
            code: codes::WRONG_PASSWORD,
            message: format!("Wrong password for user {user}"),
        },
        (_, Dialect::Modern) => authentication_failed(user),
    }
}

fn authentication_failed(user: &str) -> LoginError {
    LoginError {
        code: codes::AUTHENTICATION_FAILED,
        message: format!(
            "{user}: Authentication failed: password is incorrect, or there is no user with such name."
        ),
    }
}

/// The error a query gets when its user's limit refuses it (code 202, TOO_MANY_SIMULTANEOUS_QUERIES).
pub fn refusal_message(user: &str, refused: &Refused) -> (i32, String) {
    (codes::TOO_MANY_SIMULTANEOUS_QUERIES, refused.message(user))
}

/// The error a query gets when the proxy killed it at its user's `max_execution_time` (code 159).
pub fn timeout_message(elapsed: Duration, max: Duration) -> (i32, String) {
    (
        codes::TIMEOUT_EXCEEDED,
        format!(
            "Timeout exceeded: elapsed {:.3} seconds, maximum: {} (max_execution_time of the proxy user)",
            elapsed.as_secs_f64(),
            humantime::format_duration(max)
        ),
    )
}

/// A fresh query id in the form ClickHouse gives its own (a random UUID).
pub fn new_query_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // The system's random source does not fail on Linux once booted; a zero id still works.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str, networks: &[&str]) -> UserConfig {
        UserConfig::for_tests(name, password, networks)
    }

    #[test]
    fn login_checks_user_password_and_network() {
        let gateway = Gateway::new(vec![user("analyst", "s3cret", &["127.0.0.0/8"])]);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let far: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(matches!(
            gateway.login("analyst", b"s3cret", local),
            Ok(Login::User(_))
        ));
        assert!(matches!(
            gateway.login("analyst", b"s3cret", mapped),
            Ok(Login::User(_))
        ));
        // The tests run in the modern dialect (the process-wide default).
        for (name, password) in [("nobody", "s3cret"), ("analyst", "wrong")] {
            let refused = gateway.login(name, password.as_bytes(), local).unwrap_err();
            assert_eq!(refused.code, codes::AUTHENTICATION_FAILED, "{refused:?}");
        }
        let refused = gateway.login("analyst", b"s3cret", far).unwrap_err();
        assert_eq!(refused.code, codes::IP_ADDRESS_NOT_ALLOWED);
        assert!(refused.message.contains("10.1.2.3"), "{}", refused.message);
        assert!(Gateway::new(vec![]).login("x", b"y", far).is_ok());
    }

    #[test]
    fn refusals_in_the_legacy_dialect_name_the_cause() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let unknown = refusal(Dialect::Legacy, Denied::UnknownUser, "nosuch", peer);
        assert_eq!(
            (unknown.code, unknown.message.as_str()),
            (codes::UNKNOWN_USER, "Unknown user nosuch")
        );
        let wrong = refusal(Dialect::Legacy, Denied::WrongPassword, "alice", peer);
        assert_eq!(
            (wrong.code, wrong.message.as_str()),
            (codes::WRONG_PASSWORD, "Wrong password for user alice")
        );
        assert_eq!(unknown.http_status(), hyper::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn reload_keeps_unchanged_limiters() {
        let gateway = Gateway::new(vec![user("a", "p", &[]), user("b", "p", &[])]);
        let before = gateway.current();
        let mut b = user("b", "p", &[]);
        b.limits.max_queue_size = 7;
        gateway.replace(vec![user("a", "p", &[]), b]);
        let after = gateway.current();
        assert!(Arc::ptr_eq(&before["a"].limiter, &after["a"].limiter));
        assert!(!Arc::ptr_eq(&before["b"].limiter, &after["b"].limiter));
    }

    #[test]
    fn query_ids_look_like_uuids() {
        let id = new_query_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, new_query_id());
    }
}
