//! A small client of ClickHouse's HTTP interface, used for what the engine reads itself: the catalog (with the
//! asking user's credentials), sample values of low-cardinality columns, and, in the evaluation command, the
//! generated and reference queries. Results come back as `JSONCompact`, which every supported server speaks.
//! The proxy never sends a user's own SQL through here: that travels on the user's connection.

use std::time::Duration;

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

/// A ClickHouse HTTP endpoint.
#[derive(Debug, Clone)]
pub struct ClickHouseHttp {
    client: reqwest::Client,
    url: String,
}

/// The most bytes of an answer the engine reads (catalogs of thousands of columns fit easily).
const MAX_ANSWER: usize = 64 << 20;

impl ClickHouseHttp {
    /// `url` is ClickHouse's HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, ClickHouseError> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ClickHouseError::unreachable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` (without a FORMAT clause) as `credentials`, with extra URL parameters (settings, `param_*`).
    pub async fn query(
        &self,
        credentials: &Credentials,
        database: Option<&str>,
        sql: &str,
        params: &[(String, String)],
    ) -> Result<QueryResult, ClickHouseError> {
        let mut query: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Some(db) = database.filter(|d| !d.is_empty()) {
            query.push(("database", db));
        }
        let body = format!("{sql}\nFORMAT JSONCompact");
        let request = self.client.post(format!("{}/", self.url)).query(&query).body(body);
        let bytes = self.send(request, credentials).await?;
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
        let request = self.client.post(format!("{}/", self.url));
        let request = if data.is_empty() {
            request.body(sql.to_string())
        } else {
            request.query(&[("query", sql)]).body(data)
        };
        self.send(request, credentials).await.map(drop)
    }

    /// Sends `request` as `credentials` and reads the answer (at most [`MAX_ANSWER`] bytes); ClickHouse's
    /// exception when it refused.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        credentials: &Credentials,
    ) -> Result<Vec<u8>, ClickHouseError> {
        let response = request
            .basic_auth(&credentials.user, Some(&credentials.password))
            .send()
            .await
            .map_err(|e| {
                ClickHouseError::unreachable(format!("cannot reach ClickHouse at {}: {e}", self.url))
            })?;
        let status = response.status();
        let bytes = read_limited(response).await?;
        if !status.is_success() {
            return Err(ClickHouseError::from_body(&String::from_utf8_lossy(&bytes)));
        }
        Ok(bytes)
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, ClickHouseError> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > MAX_ANSWER {
                    return Err(ClickHouseError::unreachable(format!(
                        "ClickHouse's answer is larger than {MAX_ANSWER} bytes"
                    )));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(ClickHouseError::unreachable(format!(
                    "ClickHouse's answer broke off: {e}"
                )))
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
