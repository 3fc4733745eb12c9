//! The upstream side: ClickHouse's HTTP interface behind a pooled keep-alive client.

use std::time::Duration;

use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::UpstreamBody;
use super::error::HttpError;

/// How long an idle pooled connection is kept. ClickHouse closes idle keep-alive connections after its
/// `keep_alive_timeout` (3 s by default in 18.x–22.x, longer since); staying below it keeps the proxy from
/// sending a request on a connection the server is closing at that moment.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// ClickHouse's HTTP interface and the client that reaches it.
pub struct Upstream {
    /// Pooled HTTP/1.1 client; connections are reused across client connections.
    client: Client<HttpConnector, UpstreamBody>,
    scheme: Scheme,
    authority: Authority,
    /// A path prefix from `upstream_http` (empty for the usual `http://host:8123`).
    base_path: String,
    /// `upstream_http` as configured, for messages.
    pub url: String,
}

impl Upstream {
    /// Builds the client for `url` (`http://host:port[/prefix]`).
    pub fn new(url: &str, connect_timeout: Duration) -> Result<Upstream, HttpError> {
        let invalid = |reason: &str| HttpError::UpstreamUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| invalid("no scheme"))?;
        if scheme != Scheme::HTTP {
            return Err(invalid(
                "only http:// is supported; put a TLS terminator next to ClickHouse for https",
            ));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if uri.query().is_some() {
            return Err(invalid("a query string in the upstream URL is not supported"));
        }
        let base_path = uri.path().trim_end_matches('/').to_string();

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Upstream {
            client,
            scheme,
            authority,
            base_path,
            url: url.to_string(),
        })
    }

    /// The upstream URI for a client's request URI: same path (under the base path) and query string.
    pub fn uri_for(&self, client_uri: &Uri) -> Result<Uri, HttpError> {
        let path_and_query = match (self.base_path.as_str(), client_uri.path_and_query()) {
            ("", Some(pq)) => pq.clone(),
            ("", None) => PathAndQuery::from_static("/"),
            (base, pq) => {
                let pq = pq.map_or("/", |pq| pq.as_str());
                format!("{base}{pq}")
                    .parse()
                    .map_err(|_| HttpError::UpstreamUrl {
                        url: self.url.clone(),
                        reason: "cannot join the base path and the request path".into(),
                    })?
            }
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| HttpError::UpstreamUrl {
                url: self.url.clone(),
                reason: e.to_string(),
            })
    }

    /// Sends a request; the future resolves with the response head, the body streams after.
    pub fn send(&self, request: hyper::Request<UpstreamBody>) -> hyper_util::client::legacy::ResponseFuture {
        self.client.request(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Upstream {
        Upstream::new(url, Duration::from_secs(1)).unwrap()
    }

    #[tokio::test]
    async fn request_uris_keep_path_and_query() {
        let u = upstream("http://127.0.0.1:8123");
        let client: Uri = "/?query=SELECT%201&database=db".parse().unwrap();
        assert_eq!(
            u.uri_for(&client).unwrap().to_string(),
            "http://127.0.0.1:8123/?query=SELECT%201&database=db"
        );
        let prefixed = upstream("http://ch.internal:8123/clickhouse/");
        let ping: Uri = "/ping".parse().unwrap();
        assert_eq!(
            prefixed.uri_for(&ping).unwrap().to_string(),
            "http://ch.internal:8123/clickhouse/ping"
        );
    }

    #[tokio::test]
    async fn unusable_upstream_urls_are_refused() {
        for url in ["https://ch:8443", "ch:8123", "http://ch:8123/?x=1"] {
            assert!(
                Upstream::new(url, Duration::from_secs(1)).is_err(),
                "{url} accepted"
            );
        }
    }
}
