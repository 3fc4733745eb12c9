//! The one small HTTP/1 client Aurora's crates use to talk to ClickHouse's HTTP interface (the engine's
//! catalog reads and queries, aurora-ingest's inserts, ledger and DDL) and to aurora-ingest's API (its CLI,
//! the console's forwarding through the proxy). Not the proxy's relay of clients' queries: that streams
//! bodies through its own pool (`proxy/src/http/upstream.rs`).
//!
//! What a request gets: a base URL read once ([`Endpoint`]: `http://` or `https://`, a path prefix), a
//! connect timeout (TCP and TLS) and a timeout of the whole exchange, credentials as ClickHouse reads them
//! ([`Auth`]: Basic, or `X-ClickHouse-User`/`X-ClickHouse-Key`) or a bearer token, query-string parameters,
//! a body, and an answer read up to [`Options::max_answer`] bytes — never unbounded. A refusal from ClickHouse
//! becomes an [`Exception`] with its code and message ([`Response::error_for_status`], read with
//! [`crate::exception`]).
//!
//! Built on hyper 1 and not reqwest, on purpose: hyper is already what the proxy and aurora-ingest serve and
//! relay with, so aurora-ingest takes on no second HTTP stack; reading the body frame by frame makes the
//! byte bound exact (refused on a declared length, or as the bytes pass it); and one connection per request
//! (see [`connection`]) is what the callers had, with nothing hidden — no pool that retries a request on a
//! dead connection, no proxy from the environment, no redirects. TLS is tokio-rustls with ring and the
//! caller's choice of root store ([`Roots`]).

mod connection;
mod endpoint;
mod error;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, HOST};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

pub use endpoint::{DefaultPorts, Endpoint, Scheme};
pub use error::{error_chain, Error, Exception};
pub use hyper::{HeaderMap, Method, StatusCode};
pub use tls::Roots;

/// How a client connects and how much it reads.
#[derive(Debug, Clone)]
pub struct Options {
    /// For the TCP connection and, on `https://`, the TLS handshake.
    pub connect_timeout: Duration,
    /// For the whole exchange, connect included; `None` waits as long as the server takes (aurora-ingest's
    /// CLI: a disconnect waits for the pipeline to flush).
    pub request_timeout: Option<Duration>,
    /// The most bytes of an answer's body read; a larger answer is [`Error::TooLarge`].
    pub max_answer: usize,
    /// Whom an `https://` server's certificate may chain to.
    pub roots: Roots,
    /// The port of a URL that names none.
    pub ports: DefaultPorts,
}

impl Default for Options {
    /// 10 s to connect, no request timeout, 16 MiB answers, the platform's CAs, ports 80 and 443.
    fn default() -> Options {
        Options {
            connect_timeout: Duration::from_secs(10),
            request_timeout: None,
            max_answer: 16 << 20,
            roots: Roots::Platform,
            ports: DefaultPorts::WEB,
        }
    }
}

/// Whose request it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Basic` (what ClickHouse's HTTP interface and reqwest's `basic_auth` send).
    Basic { user: String, password: String },
    /// `X-ClickHouse-User` and, when there is one, `X-ClickHouse-Key`: ClickHouse reads these before
    /// `Authorization`.
    ClickHouse { user: String, key: Option<String> },
    /// `Authorization: Bearer` (aurora-ingest's API token).
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    /// Never prints a password, key or token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::ClickHouse { user, .. } => f
                .debug_struct("ClickHouse")
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// A client of one base URL. Cheap to clone; each request opens its own connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// The base URL as given, without a trailing `/`.
    url: String,
    endpoint: Endpoint,
    /// For `https://`: the connector and the server's name.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    options: Options,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `url` (`http[s]://host[:port][/path]`); the URL, and for `https://` the root store, are
    /// checked now.
    pub fn new(url: &str, options: Options) -> Result<Client, Error> {
        let url = url.trim_end_matches('/');
        let endpoint = Endpoint::parse(url, options.ports)?;
        let tls = match endpoint.scheme {
            Scheme::Http => None,
            Scheme::Https => Some((
                tls::connector(&options.roots)?,
                connection::server_name(&endpoint.host)?,
            )),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                url: url.to_string(),
                endpoint,
                tls,
                options,
            }),
        })
    }

    /// The base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// A request for `path` (after the base URL's path; it may carry a query string).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            target: format!("{}{path}", self.inner.endpoint.path),
            headers: Vec::new(),
            body: Bytes::new(),
            error: None,
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }
}

/// One request being put together; [`RequestBuilder::send`] sends it.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'a> {
    client: &'a Client,
    method: Method,
    /// Path and query string so far.
    target: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    /// The first thing that could not be added (a header value HTTP cannot carry), reported by `send`.
    error: Option<Error>,
}

impl RequestBuilder<'_> {
    /// Adds `name=value` to the query string, both percent-encoded.
    pub fn query(self, name: &str, value: &str) -> Self {
        let pair = format!("{}={}", percent_encode(name), percent_encode(value));
        self.query_encoded(&pair)
    }

    /// Adds each pair to the query string ([`RequestBuilder::query`]).
    pub fn queries<'p>(self, pairs: impl IntoIterator<Item = (&'p str, &'p str)>) -> Self {
        pairs
            .into_iter()
            .fold(self, |request, (name, value)| request.query(name, value))
    }

    /// Adds a fragment that is already a query string (`query_id=…&x=1`) as it is.
    pub fn query_encoded(mut self, fragment: &str) -> Self {
        if !fragment.is_empty() {
            self.target
                .push(if self.target.contains('?') { '&' } else { '?' });
            self.target.push_str(fragment);
        }
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The credentials' headers, marked sensitive (never in hyper's logs).
    pub fn auth(mut self, auth: &Auth) -> Self {
        let headers: Vec<(HeaderName, String)> = match auth {
            Auth::Basic { user, password } => {
                let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                vec![(AUTHORIZATION, format!("Basic {pair}"))]
            }
            Auth::ClickHouse { user, key } => {
                let mut headers = vec![(HeaderName::from_static("x-clickhouse-user"), user.clone())];
                if let Some(key) = key {
                    headers.push((HeaderName::from_static("x-clickhouse-key"), key.clone()));
                }
                headers
            }
            Auth::Bearer(token) => vec![(AUTHORIZATION, format!("Bearer {token}"))],
        };
        for (name, value) in headers {
            match HeaderValue::from_str(&value) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    self.headers.push((name, value));
                }
                Err(_) => {
                    let error = Error::Request(format!("the {name} header cannot carry these credentials"));
                    self.error.get_or_insert(error);
                }
            }
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request and reads the answer, whatever its status ([`Response::error_for_status`] turns a
    /// refusal into ClickHouse's exception).
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future closes the connection; the server may have received the request.
    pub async fn send(self) -> Result<Response, Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let inner = &self.client.inner;
        let target = if self.target.is_empty() || self.target.starts_with('?') {
            format!("/{}", self.target)
        } else {
            self.target
        };
        let mut request = hyper::Request::builder()
            .method(self.method.clone())
            .uri(target)
            .header(HOST, inner.endpoint.authority.as_str());
        // An empty POST gets its `Content-Length: 0` too: ClickHouse 18.16 wants one.
        if !self.body.is_empty() || !matches!(self.method, Method::GET | Method::HEAD) {
            request = request.header(CONTENT_LENGTH, self.body.len());
        }
        for (name, value) in self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(self.body))
            .map_err(|e| Error::Request(e.to_string()))?;
        let exchange = connection::exchange(inner, request);
        match inner.options.request_timeout {
            None => exchange.await,
            Some(after) => tokio::time::timeout(after, exchange)
                .await
                .map_err(|_| Error::Timeout {
                    addr: inner.endpoint.addr(),
                    after,
                })?,
        }
    }
}

/// An answer, read whole (within the client's bound).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The answer when its status is 2xx; otherwise the server's refusal as ClickHouse's [`Exception`]: its
    /// code from the `X-ClickHouse-Exception-Code` header or the text.
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.status.is_success() {
            return Ok(self);
        }
        let header_code = self
            .headers
            .get("x-clickhouse-exception-code")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Err(Error::Exception(Exception::read(
            self.status.as_u16(),
            header_code,
            &self.body,
        )))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests;
