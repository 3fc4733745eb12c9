//! One HTTP request: recognise the statement, then either answer an ASK or forward the request to ClickHouse
//! and stream its answer back.
//!
//! Forwarding keeps the request's meaning: method, path, query string (byte for byte), every end-to-end
//! header (authentication, `Content-Encoding`, `Accept-Encoding`, `X-ClickHouse-*`) and the body as it arrives.
//! Only hop-by-hop headers are dropped, and `Host` names the upstream. The answer's status, headers and body
//! come back the same way, so `enable_http_compression` answers stay compressed end to end.

use std::net::SocketAddr;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Request, Response, StatusCode};

use super::classify::{self, Inspected};
use super::body::{ClientBody, UpstreamBody};
use super::error::{exception_body, HttpError};
use super::upstream::SendError;
use super::HttpEnv;
use crate::telemetry::{self, Protocol, StatementKind};

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

/// The header ClickHouse sets on error answers with the exception code.
const EXCEPTION_CODE: &str = "x-clickhouse-exception-code";

/// Answers one request.
pub async fn handle(env: &HttpEnv, request: Request<Incoming>, peer: SocketAddr) -> Response<ClientBody> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/ask" {
        return super::answer::answer_json(env, parts, body, peer).await;
    }
    let receive_timeout = env.config.http_receive_timeout;
    let inspected = match tokio::time::timeout(receive_timeout, classify::inspect(&parts, body)).await {
        Ok(inspected) => inspected,
        Err(_) => Err(HttpError::ReceiveTimeout(receive_timeout)),
    };
    match inspected {
        Ok(Inspected::Sql { peeked, rest }) => {
            let body = UpstreamBody::new(peeked, rest, receive_timeout, env.metrics.clone());
            match forward(env, parts, body, peer, started).await {
                Ok(response) => response,
                Err(error) => error_answer(env, &error, StatementKind::Sql, started),
            }
        }
        Ok(Inspected::Ask(statement)) => {
            super::answer::answer_statement(env, parts, statement, peer, started).await
        }
        Err(error) => error_answer(env, &error, StatementKind::Sql, started),
    }
}

/// Sends the request upstream and returns its answer with a body that streams.
async fn forward(
    env: &HttpEnv,
    mut parts: hyper::http::request::Parts,
    body: UpstreamBody,
    peer: SocketAddr,
    started: Instant,
) -> Result<Response<ClientBody>, HttpError> {
    parts.uri = env.upstream.uri_for(&parts.uri)?;
    strip_hop_by_hop(&mut parts.headers);
    // `Upstream::send` names the upstream in `Host`.
    parts.headers.remove(HOST);
    append_forwarded_for(&mut parts.headers, peer);
    parts.version = hyper::Version::HTTP_11;

    let (response, connection) = match env.upstream.send(Request::from_parts(parts, body)).await {
        Ok(answer) => answer,
        Err(SendError::Connect(reason)) => {
            telemetry::upstream_connect_failed(&env.metrics, Protocol::Http, &env.upstream.url, &reason);
            return Err(HttpError::Connect {
                upstream: env.upstream.url.clone(),
                reason,
            });
        }
        Err(SendError::Failed(reason)) => {
            return Err(HttpError::Upstream {
                upstream: env.upstream.url.clone(),
                reason,
            })
        }
    };
    let (mut parts, incoming) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = ClientBody::relay(
        incoming,
        connection,
        StatementKind::Sql,
        parts.status,
        started,
        env.metrics.clone(),
    );
    Ok(Response::from_parts(parts, body))
}

/// An error of the proxy's own, in ClickHouse's shape.
fn error_answer(env: &HttpEnv, error: &HttpError, kind: StatementKind, started: Instant) -> Response<ClientBody> {
    let body = exception_body(error.code(), error.class(), &error.to_string());
    local_answer(env, error.status(), error.code(), body, kind, started)
}

fn local_answer(
    env: &HttpEnv,
    status: StatusCode,
    code: i32,
    text: String,
    kind: StatementKind,
    started: Instant,
) -> Response<ClientBody> {
    let body = ClientBody::local(text, kind, status, started, env.metrics.clone());
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    headers.insert(EXCEPTION_CODE, HeaderValue::from(code));
    response
}

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
