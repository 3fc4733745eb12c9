//! The engine's client of ClickHouse's HTTP interface, on the shared [`aurora_common::http`] client, used for
//! what the engine reads itself: the catalog (with the asking user's credentials), sample values of
//! low-cardinality columns, and, in the evaluation command, the generated and reference queries. Results come
//! back as `JSONCompact`, which every supported server speaks. The proxy never sends a user's own SQL through
//! here: that travels on the user's connection.

use std::time::Duration;

use aurora_common::http;
use serde::Deserialize;
use serde_json::Value;

/// Whose rights a request runs with.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// An error from ClickHouse (with its code when it sent one) or from reaching it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ClickHouseError {
    /// ClickHouse's exception code; `None` when the server could not be reached or answered oddly.
    pub code: Option<i32>,
    /// ClickHouse's message, or what went wrong reaching it.
    pub message: String,
}

impl ClickHouseError {
    fn unreachable(message: String) -> Self {
        Self { code: None, message }
    }

    /// Reads `Code: N. DB::Exception: …` (or the older `Code: N, e.displayText() = …`) from an error body
    /// ([`aurora_common::exception`]); the message is the whole body, trimmed.
    pub fn from_body(body: &str) -> Self {
        let text = body.trim();
        Self {
            code: aurora_common::exception::code(text),
            message: text.to_string(),
        }
    }
}

/// Column names and types, and rows as JSON values (64-bit integers arrive as strings, as ClickHouse quotes them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
struct JsonCompact {
    meta: Vec<Meta>,
    data: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// A ClickHouse HTTP endpoint, or several replicas of one: a request whose connect fails goes to the next,
/// which then takes the following requests too.
#[derive(Debug, Clone)]
pub struct ClickHouseHttp {
    clients: Vec<http::Client>,
    /// The replica tried first.
    preferred: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// The most bytes of an answer the engine reads (catalogs of thousands of columns fit easily).
const MAX_ANSWER: usize = 64 << 20;

impl ClickHouseHttp {
    /// `url` is ClickHouse's HTTP interface, e.g. `http://127.0.0.1:8123` (`https://` checks the server's
    /// certificate against the platform's CAs).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, ClickHouseError> {
        Self::replicated(&[url], timeout)
    }

    /// Replicas of one database, tried in this order (at least one URL).
    pub fn replicated(urls: &[&str], timeout: Duration) -> Result<Self, ClickHouseError> {
        crate::install_crypto_provider();
        let options = http::Options {
            connect_timeout: timeout.min(Duration::from_secs(10)),
            request_timeout: Some(timeout),
            max_answer: MAX_ANSWER,
            roots: http::Roots::Platform,
            ports: http::DefaultPorts::WEB,
        };
        let clients = urls
            .iter()
            .map(|url| {
                http::Client::new(url, options.clone())
                    .map_err(|e| ClickHouseError::unreachable(format!("cannot build an HTTP client: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            return Err(ClickHouseError::unreachable(
                "no ClickHouse URL configured".into(),
            ));
        }
        Ok(Self {
            clients,
            preferred: Default::default(),
        })
    }

    /// The URL requests go to now.
    pub fn url(&self) -> &str {
        self.client().url()
    }

    fn client(&self) -> &http::Client {
        let at = self.preferred.load(std::sync::atomic::Ordering::Relaxed);
        &self.clients[at % self.clients.len()]
    }

    /// Runs `sql` (without a FORMAT clause) as `credentials`, with extra URL parameters (settings, `param_*`).
    pub async fn query(
        &self,
        credentials: &Credentials,
        database: Option<&str>,
        sql: &str,
        params: &[(String, String)],
    ) -> Result<QueryResult, ClickHouseError> {
        let body = format!("{sql}\nFORMAT JSONCompact");
        let bytes = self
            .send(credentials, |client| {
                let mut request = client
                    .post("/")
                    .queries(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                if let Some(db) = database.filter(|d| !d.is_empty()) {
                    request = request.query("database", db);
                }
                request.body(body.clone())
            })
            .await?;
        let parsed: JsonCompact = serde_json::from_slice(&bytes).map_err(|e| {
            ClickHouseError::unreachable(format!(
                "ClickHouse answered with JSON this client cannot read: {e}"
            ))
        })?;
        Ok(QueryResult {
            columns: parsed.meta.into_iter().map(|m| (m.name, m.ty)).collect(),
            rows: parsed.data,
        })
    }
}

impl ClickHouseHttp {
    /// Runs a statement that returns no rows (DDL, `INSERT … FORMAT …`) as `credentials`; `data` (an INSERT's
    /// rows) is the body, after the statement in the `query` parameter.
    pub async fn command(
        &self,
        credentials: &Credentials,
        sql: &str,
        data: Vec<u8>,
    ) -> Result<(), ClickHouseError> {
        // Without rows the statement is the body (an empty POST body lacks the Content-Length 18.16 needs).
        let data = bytes::Bytes::from(data);
        self.send(credentials, |client| {
            let request = client.post("/");
            if data.is_empty() {
                request.body(sql.to_string())
            } else {
                request.query("query", sql).body(data.clone())
            }
        })
        .await
        .map(drop)
    }

    /// Sends the request `build` makes as `credentials` and reads the answer (at most [`MAX_ANSWER`] bytes);
    /// ClickHouse's exception when it refused. A replica that cannot be connected to passes the request to the
    /// next (nothing was sent to it).
    async fn send<'a>(
        &'a self,
        credentials: &Credentials,
        build: impl Fn(&'a http::Client) -> http::RequestBuilder<'a>,
    ) -> Result<Vec<u8>, ClickHouseError> {
        let auth = http::Auth::Basic {
            user: credentials.user.clone(),
            password: credentials.password.clone(),
        };
        let first = self.preferred.load(std::sync::atomic::Ordering::Relaxed);
        let mut last = None;
        for k in 0..self.clients.len() {
            let at = (first + k) % self.clients.len();
            let client = &self.clients[at];
            match build(client).auth(&auth).send().await {
                Ok(response) => {
                    self.preferred.store(at, std::sync::atomic::Ordering::Relaxed);
                    let response = response.error_for_status().map_err(|e| self.failed(client, e))?;
                    return Ok(response.body.into());
                }
                Err(e @ (http::Error::Connect { .. } | http::Error::ConnectTimeout { .. })) => {
                    last = Some(self.failed(client, e));
                }
                Err(e) => return Err(self.failed(client, e)),
            }
        }
        Err(last.unwrap_or_else(|| ClickHouseError::unreachable("no ClickHouse URL configured".into())))
    }

    /// What went wrong, as the engine reports it.
    fn failed(&self, client: &http::Client, error: http::Error) -> ClickHouseError {
        match error {
            http::Error::Exception(exception) => ClickHouseError {
                code: exception.code,
                message: exception.text,
            },
            http::Error::TooLarge { .. } => {
                ClickHouseError::unreachable(format!("ClickHouse's answer is larger than {MAX_ANSWER} bytes"))
            }
            http::Error::Body { reason, .. } => {
                ClickHouseError::unreachable(format!("ClickHouse's answer broke off: {reason}"))
            }
            other => {
                ClickHouseError::unreachable(format!("cannot reach ClickHouse at {}: {other}", client.url()))
            }
        }
    }
}

/// A JSON value as text: strings unquoted, everything else in JSON form.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_both_message_shapes() {
        let new =
            ClickHouseError::from_body("Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE)");
        assert_eq!(new.code, Some(60));
        let old =
            ClickHouseError::from_body("Code: 47, e.displayText() = DB::Exception: Missing columns: 'z'");
        assert_eq!(old.code, Some(47));
        assert_eq!(ClickHouseError::from_body("Bad Gateway").code, None);
    }

    #[test]
    fn credentials_never_print_the_password() {
        let printed = format!("{:?}", Credentials::new("alice", "alice-secret"));
        assert!(
            printed.contains("alice") && !printed.contains("secret"),
            "{printed}"
        );
    }
}
