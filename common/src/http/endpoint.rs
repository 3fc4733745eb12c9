//! The base URL a client talks to — scheme, host, port and a path prefix — read once, when the client is
//! built, so that a URL that cannot work is a configuration error and not a failure of every request.

use super::Error;

/// `http://` or `https://`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The port of a URL that names none. Callers differ: a ClickHouse URL without a port means ClickHouse's
/// ports (aurora-ingest's configuration says so), any other URL the web's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultPorts {
    pub http: u16,
    pub https: u16,
}

impl DefaultPorts {
    /// 80 and 443.
    pub const WEB: DefaultPorts = DefaultPorts { http: 80, https: 443 };
    /// 8123 and 8443, ClickHouse's HTTP and HTTPS interfaces (`http_port`, `https_port` of its config).
    pub const CLICKHOUSE: DefaultPorts = DefaultPorts {
        http: 8123,
        https: 8443,
    };
}

/// A base URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// The host without IPv6's brackets: what name resolution and TLS's server name take.
    pub host: String,
    pub port: u16,
    /// The host and port as the URL writes them (brackets kept, port only when it names one): the `Host`
    /// header.
    pub authority: String,
    /// The URL's path without its trailing `/` (empty for none); request paths are appended to it.
    pub path: String,
}

impl Endpoint {
    /// Reads `http[s]://host[:port][/path]`. A URL with credentials (`user@`), a query or a fragment is
    /// refused: credentials go in [`super::Auth`], parameters on each request.
    pub fn parse(url: &str, ports: DefaultPorts) -> Result<Endpoint, Error> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(Error::Url(format!("url must be http:// or https://: {url}")));
        };
        if rest.contains(['?', '#']) {
            return Err(Error::Url(format!("no query or fragment in a base URL: {url}")));
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(Error::Url(format!("no credentials in the URL: {url}")));
        }
        let bad_port = || Error::Url(format!("bad port in {url}"));
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| Error::Url(format!("no ']' after the IPv6 address in {url}")))?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad_port)?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(Error::Url(format!("an IPv6 address goes in brackets: {url}")))
                }
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| bad_port())?,
            None => match scheme {
                Scheme::Http => ports.http,
                Scheme::Https => ports.https,
            },
        };
        if host.is_empty() {
            return Err(Error::Url(format!("no host in {url}")));
        }
        Ok(Endpoint {
            scheme,
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// `host:port` (brackets around an IPv6 address), for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Endpoint, String> {
        Endpoint::parse(url, DefaultPorts::CLICKHOUSE).map_err(|e| e.to_string())
    }

    #[test]
    fn urls_are_read_into_scheme_host_port_and_path() {
        let e = parse("http://127.0.0.1:8125").unwrap();
        assert_eq!(
            (
                e.scheme,
                e.host.as_str(),
                e.port,
                e.authority.as_str(),
                e.path.as_str()
            ),
            (Scheme::Http, "127.0.0.1", 8125, "127.0.0.1:8125", "")
        );
        assert_eq!(parse("http://ch").unwrap().port, 8123);
        assert_eq!(parse("https://ch/").unwrap().port, 8443);
        assert_eq!(
            Endpoint::parse("https://ch", DefaultPorts::WEB).unwrap().port,
            443
        );
        let e = parse("http://h:1/api/v1/").unwrap();
        assert_eq!((e.authority.as_str(), e.path.as_str()), ("h:1", "/api/v1"));
        let e = parse("https://[::1]:9443/x").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.addr(), e.path.as_str()),
            ("::1", 9443, "[::1]:9443".to_string(), "/x")
        );
        assert_eq!(parse("http://[::1]").unwrap().port, 8123);
    }

    #[test]
    fn urls_that_cannot_work_are_refused_when_read() {
        for (url, says) in [
            ("ch:8123", "must be http:// or https://"),
            ("ftp://ch", "must be http:// or https://"),
            ("http://", "no host"),
            ("http://:8123", "no host"),
            ("http://ch:port", "bad port"),
            ("http://ch:70000", "bad port"),
            ("http://[::1]x", "bad port"),
            ("http://[::1", "no ']'"),
            ("http://::1:8123", "brackets"),
            ("http://ch:8123/?x=1", "no query"),
            ("http://alice:pw@ch:8123", "no credentials"),
        ] {
            let error = parse(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}
