//! A small client for ClickHouse's HTTP interface: statements, SELECTs read as TabSeparated, and inserts of
//! RowBinary bodies. Credentials travel in `X-ClickHouse-User`/`X-ClickHouse-Key` headers (never in the URL,
//! so they never reach a log); `https://` URLs use rustls with the configured CA.
//!
//! One connection per request: a batch is large, so the handshake is noise, and a dead server costs nothing.

use std::sync::Arc;
use std::time::Duration;

use aurora_common::{codes, exception};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

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

#[derive(Clone)]
pub struct ClickHouse {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    user: String,
    password: Option<Secret>,
    timeout: Duration,
}

impl std::fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClickHouse({}:{}, user {})", self.host, self.port, self.user)
    }
}

impl ClickHouse {
    pub fn new(config: &ClickHouseConfig, password: Option<Secret>) -> Result<ClickHouse, ChError> {
        let (tls, rest) = if let Some(rest) = config.url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = config.url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(ChError::Config(format!(
                "url must be http:// or https://: {}",
                config.url
            )));
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| ChError::Config(format!("bad port in {}", config.url)))?,
            ),
            None => (authority.to_string(), if tls { 8443 } else { 8123 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(ChError::Config(format!("no host in {}", config.url)));
        }
        let tls = if tls {
            let mut roots = RootCertStore::empty();
            if let Some(ca) = &config.ca_file {
                let certs = CertificateDer::pem_file_iter(ca)
                    .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| ChError::Config(format!("ca_file {}: {e}", ca.display())))?;
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| ChError::Config(format!("ca_file {}: {e}", ca.display())))?;
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls_config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ChError::Config(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(host.clone())
                .map_err(|e| ChError::Config(format!("server name {host}: {e}")))?;
            Some((TlsConnector::from(Arc::new(tls_config)), name))
        } else {
            None
        };
        Ok(ClickHouse {
            host,
            port,
            tls,
            user: config.user.clone(),
            password,
            timeout: config.request_timeout,
        })
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

    async fn request(&self, sql: &str, settings: &str, body: Bytes) -> Result<Bytes, ChError> {
        match tokio::time::timeout(self.timeout, self.request_inner(sql, settings, body)).await {
            Ok(r) => r,
            Err(_) => Err(ChError::Timeout(self.timeout)),
        }
    }

    async fn request_inner(&self, sql: &str, settings: &str, body: Bytes) -> Result<Bytes, ChError> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect(&addr).await.map_err(|e| ChError::Connect {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.send(tcp, sql, settings, body).await,
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| ChError::Connect {
                        addr,
                        reason: format!("TLS: {e}"),
                    })?;
                self.send(stream, sql, settings, body).await
            }
        }
    }

    async fn send<S>(&self, stream: S, sql: &str, settings: &str, body: Bytes) -> Result<Bytes, ChError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ChError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut uri = format!("/?query={}", percent_encode(sql));
        if !settings.is_empty() {
            uri.push('&');
            uri.push_str(settings);
        }
        let mut request = Request::post(uri)
            .header("host", &self.host)
            .header("X-ClickHouse-User", &self.user)
            .header("content-length", body.len());
        if let Some(p) = &self.password {
            request = request.header("X-ClickHouse-Key", &p.0);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ChError::Http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ChError::Http(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ChError::Http(e.to_string()))?
            .to_bytes();
        driver.abort();
        if status != StatusCode::OK {
            let message = String::from_utf8_lossy(&bytes).trim().to_string();
            return Err(ChError::Server {
                status: status.as_u16(),
                message,
            });
        }
        Ok(bytes)
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
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A string literal for ClickHouse SQL.
/// An identifier in backticks, with `\\` and `` ` `` escaped: how Aurora writes every database, table and
/// column name into its SQL, whatever was checked before.
pub fn quote_ident(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('`');
    for c in s.chars() {
        match c {
            '`' => out.push_str("\\`"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('`');
    out
}

pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(percent_encode("SELECT 1+1 ='a'"), "SELECT%201%2B1%20%3D%27a%27");
        assert_eq!(quote("it's \\"), "'it\\'s \\\\'");
        assert_eq!(quote_ident("events"), "`events`");
        assert_eq!(quote_ident("a`b\\"), "`a\\`b\\\\`");
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
