//! The reading of `upstream_http`, shared by the configuration (which refuses at load what would not run) and
//! the HTTP side (which connects to what it says).

use hyper::header::HeaderValue;
use hyper::http::uri::Scheme;
use hyper::Uri;

/// `http://host[:port][/prefix]` taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `host:port` to connect to (port 80 when the URL has none).
    pub address: String,
    /// The `Host` header of every upstream request: the authority as written.
    pub host: HeaderValue,
    /// A path prefix (empty for the usual `http://host:8123`), without its trailing `/`.
    pub base_path: String,
}

impl UpstreamUrl {
    /// Reads `url`, or says why it cannot be used.
    pub fn parse(url: &str) -> Result<UpstreamUrl, &'static str> {
        let uri: Uri = url.parse().map_err(|_| "not a URL")?;
        let scheme = uri.scheme().cloned().ok_or("no scheme")?;
        if scheme != Scheme::HTTP {
            return Err("only http:// is supported; put a TLS terminator next to ClickHouse for https");
        }
        let authority = uri.authority().cloned().ok_or("no host")?;
        if uri.query().is_some() {
            return Err("a query string in the upstream URL is not supported");
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| "not a valid host")?;
        Ok(UpstreamUrl {
            address: format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80)),
            host,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::UpstreamUrl;

    #[test]
    fn upstream_urls_are_read_or_refused_with_the_reason() {
        let url = UpstreamUrl::parse("http://ch:8123/prefix/").unwrap();
        assert_eq!(
            (url.address.as_str(), url.base_path.as_str()),
            ("ch:8123", "/prefix")
        );
        assert_eq!(url.host, "ch:8123");
        assert_eq!(UpstreamUrl::parse("http://ch").unwrap().address, "ch:80");
        assert!(UpstreamUrl::parse("https://ch:8443")
            .unwrap_err()
            .contains("only http://"));
        assert!(UpstreamUrl::parse("http://ch/?x=1")
            .unwrap_err()
            .contains("query string"));
        assert_eq!(UpstreamUrl::parse("ch:8123").unwrap_err(), "no scheme");
    }
}
