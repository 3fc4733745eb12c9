//! aurora-ingest's ClickHouse: statements, SELECTs read as TabSeparated, and inserts of RowBinary bodies,
//! through the shared HTTP client ([`aurora_common::http`]). Credentials travel in
//! `X-ClickHouse-User`/`X-ClickHouse-Key` headers (never in the URL, so they never reach a log); `https://`
//! URLs trust only the configured CA (`ca_file`).
//!
//! Several nodes (`urls`): see [`ClickHouse`] for how requests move between them.
//!
//! One connection per request: a batch is large, so the handshake is noise, and a dead server costs nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aurora_common::{codes, exception, http};
use bytes::Bytes;

use crate::config::{ClickHouseConfig, Secret};

#[derive(Debug, thiserror::Error)]
pub enum ChError {
    #[error("cannot reach ClickHouse at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("ClickHouse request timed out after {0:?}")]
    Timeout(Duration),
    #[error("ClickHouse HTTP error: {0}")]
    Http(String),
    /// The server answered with an exception (status ≥ 400).
    #[error("ClickHouse said ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("bad ClickHouse configuration: {0}")]
    Config(String),
}

impl ChError {
    /// True when the same request may succeed later (server down, overloaded, timeout, 5xx other than a table
    /// or column that does not exist).
    pub fn is_transient(&self) -> bool {
        match self {
            ChError::Connect { .. } | ChError::Timeout(_) | ChError::Http(_) => true,
            ChError::Server { status, message } => {
                *status >= 500
                    && !matches!(
                        exception::code(message),
                        Some(codes::UNKNOWN_TABLE | codes::NO_SUCH_COLUMN_IN_TABLE)
                    )
            }
            ChError::Config(_) => false,
        }
    }
}

/// The most bytes of an answer read (an insert's is a line, a ledger or `system.columns` read a few rows).
const MAX_ANSWER: usize = 64 << 20;

/// One node of `[clickhouse] url`/`urls`.
struct Node {
    client: http::Client,
    /// `host:port`, for logs.
    label: String,
}

struct Inner {
    nodes: Vec<Node>,
    /// The node unpinned requests go to; moves on (round the list) after a transient failure.
    current: AtomicUsize,
    auth: http::Auth,
    user: String,
    timeout: Duration,
    /// `[clickhouse] cluster`: the tables that store data are Replicated.
    cluster: Option<String>,
}

/// The ClickHouse nodes of the configuration. Requests go to the current node; a transient failure moves the
/// current node to the next one (round the list, logged once per switch), so the caller's retry goes there. A
/// handle from [`ClickHouse::on_node`] is pinned to one node and never moves.
#[derive(Clone)]
pub struct ClickHouse {
    inner: Arc<Inner>,
    pinned: Option<usize>,
}

impl std::fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.inner.nodes.iter().map(|n| n.label.as_str()).collect();
        write!(f, "ClickHouse({}, user {})", labels.join(", "), self.inner.user)
    }
}

impl ClickHouse {
    pub fn new(config: &ClickHouseConfig, password: Option<Secret>) -> Result<ClickHouse, ChError> {
        let options = http::Options {
            // The request timeout bounds the connection too, as it always has.
            connect_timeout: config.request_timeout,
            request_timeout: Some(config.request_timeout),
            max_answer: MAX_ANSWER,
            roots: http::Roots::PemFiles(config.ca_file.iter().cloned().collect()),
            ports: http::DefaultPorts::CLICKHOUSE,
        };
        let mut nodes = Vec::new();
        for url in config.node_urls() {
            let client = http::Client::new(&url, options.clone()).map_err(|e| match e {
                http::Error::Tls(reason) => ChError::Config(format!("ca_file {reason}")),
                other => ChError::Config(other.to_string()),
            })?;
            let endpoint = client.endpoint();
            let label = format!("{}:{}", endpoint.host, endpoint.port);
            nodes.push(Node { client, label });
        }
        if nodes.is_empty() {
            return Err(ChError::Config("no ClickHouse URL".into()));
        }
        Ok(ClickHouse {
            inner: Arc::new(Inner {
                nodes,
                current: AtomicUsize::new(0),
                auth: http::Auth::ClickHouse {
                    user: config.user.clone(),
                    key: password.map(|p| p.0),
                },
                user: config.user.clone(),
                timeout: config.request_timeout,
                cluster: config.cluster.clone(),
            }),
            pinned: None,
        })
    }

    /// How many nodes the configuration lists.
    pub fn node_count(&self) -> usize {
        self.inner.nodes.len()
    }

    /// `host:port` of node `i`.
    pub fn node_label(&self, i: usize) -> &str {
        &self.inner.nodes[i % self.inner.nodes.len()].label
    }

    /// The node this handle's requests go to now.
    pub fn current(&self) -> usize {
        self.pinned
            .unwrap_or_else(|| self.inner.current.load(Ordering::SeqCst) % self.inner.nodes.len())
    }

    /// A handle whose requests all go to node `i` (no failover).
    pub fn on_node(&self, i: usize) -> ClickHouse {
        ClickHouse {
            inner: self.inner.clone(),
            pinned: Some(i % self.inner.nodes.len()),
        }
    }

    /// `[clickhouse] cluster`, when set.
    pub fn cluster(&self) -> Option<&str> {
        self.inner.cluster.as_deref()
    }

    /// After a transient failure on node `failed`: the next node becomes current, unless another request
    /// already moved it. Returns the new node when this call moved it (and logged the switch).
    pub fn fail_over(&self, failed: usize, error: &ChError) -> Option<usize> {
        let n = self.inner.nodes.len();
        if n < 2 {
            return None;
        }
        let next = (failed + 1) % n;
        let moved = self
            .inner
            .current
            .compare_exchange(failed, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if moved {
            tracing::warn!(
                from = self.node_label(failed),
                to = self.node_label(next),
                error = %error,
                "ClickHouse node failed; switching to the next node"
            );
            Some(next)
        } else {
            None
        }
    }

    /// Runs a statement that returns nothing of interest.
    pub async fn execute(&self, sql: &str) -> Result<(), ChError> {
        self.request(sql, "", Bytes::new()).await.map(|_| ())
    }

    /// Runs a SELECT and returns its rows as TabSeparated fields (values with no tabs or escapes expected).
    pub async fn query_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, ChError> {
        let body = self
            .request(&format!("{sql} FORMAT TabSeparated"), "", Bytes::new())
            .await?;
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(unescape_tsv).collect())
            .collect())
    }

    /// `INSERT INTO <table> (<columns>) FORMAT RowBinary` with `rows` as the body; `settings` are URL parameters.
    pub async fn insert(
        &self,
        table: &str,
        columns: &str,
        settings: &str,
        rows: Bytes,
    ) -> Result<(), ChError> {
        let sql = format!("INSERT INTO {table} ({columns}) FORMAT RowBinary");
        self.request(&sql, settings, rows).await.map(|_| ())
    }

    /// The server's version, `(major, minor)`.
    pub async fn version(&self) -> Result<(u32, u32), ChError> {
        let rows = self.query_rows("SELECT version()").await?;
        let v = rows.first().and_then(|r| r.first()).cloned().unwrap_or_default();
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
    }

    /// `sql` in the `query` parameter, `settings` (already a query string) after it, `body` as the body.
    async fn request(&self, sql: &str, settings: &str, body: Bytes) -> Result<Bytes, ChError> {
        let node = self.current();
        let result = self.request_on(node, sql, settings, body).await;
        if let Err(e) = &result {
            if self.pinned.is_none() && e.is_transient() {
                self.fail_over(node, e);
            }
        }
        result
    }

    async fn request_on(
        &self,
        node: usize,
        sql: &str,
        settings: &str,
        body: Bytes,
    ) -> Result<Bytes, ChError> {
        let response = self.inner.nodes[node]
            .client
            .post("/")
            .query("query", sql)
            .query_encoded(settings)
            .auth(&self.inner.auth)
            .body(body)
            .send()
            .await
            .map_err(|e| self.failed(e))?;
        if response.status != http::StatusCode::OK {
            let exception = http::Exception::read(response.status.as_u16(), None, &response.body);
            return Err(ChError::Server {
                status: exception.status,
                message: exception.text,
            });
        }
        Ok(response.body)
    }

    fn failed(&self, error: http::Error) -> ChError {
        match error {
            http::Error::Connect { addr, error } => ChError::Connect {
                addr,
                reason: error.to_string(),
            },
            http::Error::Handshake { addr, error } => ChError::Connect {
                addr,
                reason: format!("TLS: {error}"),
            },
            http::Error::ConnectTimeout { .. } | http::Error::Timeout { .. } => {
                ChError::Timeout(self.inner.timeout)
            }
            http::Error::Exception(exception) => ChError::Server {
                status: exception.status,
                message: exception.text,
            },
            http::Error::Send { reason, .. } | http::Error::Body { reason, .. } => ChError::Http(reason),
            other => ChError::Http(other.to_string()),
        }
    }
}

fn unescape_tsv(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    http::percent_encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(percent_encode("SELECT 1+1 ='a'"), "SELECT%201%2B1%20%3D%27a%27");
        assert_eq!(unescape_tsv("a\\tb\\\\"), "a\tb\\");
    }

    #[test]
    fn a_missing_table_or_column_is_not_retried_in_either_shape() {
        let server = |status: u16, message: &str| ChError::Server {
            status,
            message: message.into(),
        };
        let legacy =
            "Code: 60, e.displayText() = DB::Exception: Table db.t doesn't exist., e.what() = DB::Exception";
        assert!(!server(500, legacy).is_transient());
        let modern = "Code: 16. DB::Exception: There is no column x in table db.t. (NO_SUCH_COLUMN_IN_TABLE)";
        assert!(!server(500, modern).is_transient());
        let memory = "Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)";
        assert!(server(500, memory).is_transient());
        assert!(server(502, "Bad Gateway").is_transient());
        assert!(!server(400, "Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)").is_transient());
    }
}
