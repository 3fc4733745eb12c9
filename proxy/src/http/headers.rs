//! Header rules both ways of answering a request share (forwarding SQL, and the queries an ASK sends):
//! hop-by-hop headers are dropped, the client's address is appended to `X-Forwarded-For`.

use std::net::SocketAddr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus `Expect`, which the proxy's
/// own server side answers. None of them is forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Appends the client's address to `X-Forwarded-For` (ClickHouse logs it in `system.query_log`).
pub(super) fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {ip}"),
        _ => ip,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_end_to_end_ones_stay() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=3"),
            ("transfer-encoding", "chunked"),
            ("x-private", "1"),
            ("expect", "100-continue"),
            ("content-encoding", "gzip"),
            ("accept-encoding", "gzip"),
            ("authorization", "Basic YWxpY2U6YWxpY2Utc2VjcmV0"),
            ("x-clickhouse-user", "alice"),
            ("content-length", "42"),
        ] {
            headers.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "accept-encoding",
                "authorization",
                "content-encoding",
                "content-length",
                "x-clickhouse-user"
            ]
        );
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, "10.0.0.7:5555".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "10.0.0.7");
        append_forwarded_for(&mut headers, "[::1]:5555".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "10.0.0.7, ::1");
    }
}
