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
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Response, StatusCode};

use super::body::{ClientBody, UpstreamBody};
use super::classify::{self, Inspected};
use super::error::{exception_body, HttpError};
use super::gateway;
use super::headers::{append_forwarded_for, strip_hop_by_hop};
use super::route::RouteKey;
use super::HttpEnv;
use crate::cluster::Route;
use crate::gateway::audit::AuditRecord;
use crate::telemetry::StatementKind;

/// The header ClickHouse sets on error answers with the exception code.
const EXCEPTION_CODE: &str = "x-clickhouse-exception-code";

/// Answers one request (and, with an audit table, records it when the answer ends).
pub async fn handle(env: &HttpEnv, request: Request<Incoming>, peer: SocketAddr) -> Response<ClientBody> {
    let mut record = env.audit.enabled().then(|| AuditRecord {
        protocol: "http",
        client: peer.to_string(),
        kind: "sql",
        ..Default::default()
    });
    let response = answer(env, request, peer, record.as_mut()).await;
    match record {
        Some(mut record) => {
            record.code = response
                .headers()
                .get(EXCEPTION_CODE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            response.map(|body| body.auditing(record, env.audit.clone()))
        }
        None => response,
    }
}

async fn answer(
    env: &HttpEnv,
    request: Request<Incoming>,
    peer: SocketAddr,
    mut record: Option<&mut AuditRecord>,
) -> Response<ClientBody> {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    if let Some(record) = record.as_deref_mut() {
        record.clickhouse_user = super::answer::asker(&parts).credentials.user;
        record.proxy_user = record.clickhouse_user.clone();
    }
    let login = match gateway::login(env, &mut parts, peer) {
        Ok(login) => login,
        Err(error) => return error_answer(env, &error, StatementKind::Sql, started),
    };
    if let Some(record) = record.as_deref_mut() {
        match login.user() {
            Some(user) => {
                record.proxy_user = user.name().to_string();
                record.clickhouse_user = user.clickhouse_credentials().0.to_string();
            }
            None => record.proxy_user = String::new(),
        }
        let query = parts.uri.query().unwrap_or("");
        if let Some(text) = super::params::param(query, "query") {
            record.query = String::from_utf8_lossy(&text).into_owned();
        }
        if let Some(id) = super::params::param(query, "query_id") {
            record.query_id = String::from_utf8_lossy(&id).into_owned();
        }
    }
    if parts.uri.path() == "/ask" {
        if let Some(record) = record.as_deref_mut() {
            record.kind = "ask";
        }
        return match gateway::admit(env, &login, StatementKind::Ask).await {
            Ok(turn) => super::answer::answer_json(env, parts, body, peer)
                .await
                .map(|body| body.holding(turn)),
            Err(error) => error_answer(env, &error, StatementKind::Ask, started),
        };
    }
    let receive_timeout = env.config.http_receive_timeout;
    let inspected = match tokio::time::timeout(receive_timeout, classify::inspect(&parts, body)).await {
        Ok(inspected) => inspected,
        Err(_) => Err(HttpError::ReceiveTimeout(receive_timeout)),
    };
    match inspected {
        Ok(Inspected::Sql { reads: false, .. }) if env.route == Route::Read => {
            error_answer(env, &HttpError::ReadOnly, StatementKind::Sql, started)
        }
        Ok(Inspected::Sql {
            peeked,
            rest,
            reads,
            kills,
        }) => {
            if let Some(record) = record.as_deref_mut() {
                for frame in &peeked {
                    if let Some(data) = frame.data_ref() {
                        if record.query.len() < crate::gateway::audit::MAX_TEXT {
                            record.query.push_str(&String::from_utf8_lossy(data));
                        }
                    }
                }
            }
            let turn = match gateway::admit(env, &login, StatementKind::Sql).await {
                Ok(turn) => turn,
                Err(error) => return error_answer(env, &error, StatementKind::Sql, started),
            };
            let body = if parts.extensions.get::<nlq::tenant::TenantRule>().is_some() {
                match gateway::scope_request(env, &mut parts, peeked, rest).await {
                    Ok(Some(text)) => UpstreamBody::full(text, env.metrics.clone()),
                    Ok(None) => UpstreamBody::empty(env.metrics.clone()),
                    Err(error) => return error_answer(env, &error, StatementKind::Sql, started),
                }
            } else {
                UpstreamBody::new(peeked, rest, receive_timeout, env.metrics.clone())
            };
            let sent = Sent {
                reads,
                kills,
                peer,
                started,
                login: &login,
            };
            match forward(env, parts, body, sent, turn, record).await {
                Ok(response) => response,
                Err(error) => error_answer(env, &error, StatementKind::Sql, started),
            }
        }
        Ok(Inspected::Ask(statement)) => {
            if let (Some(record), Ok(ask)) = (record, &statement) {
                record.kind = "ask";
                record.question = ask.question.clone();
            }
            answer_ask(env, parts, statement, peer, started, &login).await
        }
        Err(error) => error_answer(env, &error, StatementKind::Sql, started),
    }
}

async fn answer_ask(
    env: &HttpEnv,
    parts: hyper::http::request::Parts,
    statement: Result<nlq::AskStatement, nlq::AskSyntaxError>,
    peer: SocketAddr,
    started: Instant,
    login: &crate::gateway::Login,
) -> Response<ClientBody> {
    match gateway::admit(env, login, StatementKind::Ask).await {
        Ok(turn) => super::answer::answer_statement(env, parts, statement, peer, started)
            .await
            .map(|body| body.holding(turn)),
        Err(error) => error_answer(env, &error, StatementKind::Ask, started),
    }
}

/// What is known of a request that goes upstream, beside its head and body.
struct Sent<'a> {
    reads: bool,
    kills: Option<String>,
    peer: SocketAddr,
    started: Instant,
    login: &'a crate::gateway::Login,
}

/// Sends the request upstream and returns its answer with a body that streams.
async fn forward(
    env: &HttpEnv,
    mut parts: hyper::http::request::Parts,
    body: UpstreamBody,
    sent: Sent<'_>,
    turn: Option<crate::gateway::Turn>,
    record: Option<&mut AuditRecord>,
) -> Result<Response<ClientBody>, HttpError> {
    let query_id = gateway::query_id(&mut parts)?;
    let mut record = record;
    if let (Some(record), Some(id)) = (record.as_deref_mut(), &query_id) {
        record.query_id = id.clone();
    }
    let key = route_key(&parts, env, sent.kills);
    strip_hop_by_hop(&mut parts.headers);
    // The router names the node in `Host`.
    parts.headers.remove(HOST);
    append_forwarded_for(&mut parts.headers, sent.peer);
    parts.version = hyper::Version::HTTP_11;

    let request = env
        .router
        .send(env.route, &key, Request::from_parts(parts, body), sent.reads);
    let deadline = gateway::deadline(sent.login, sent.started);
    let (response, connection) = match deadline {
        None => request.await?,
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), request).await {
            Ok(answer) => answer?,
            Err(_) => {
                if let Some(id) = &query_id {
                    gateway::kill_everywhere(env, sent.login, id);
                }
                return Err(gateway::expired(sent.login, sent.started));
            }
        },
    };
    if let (Some(record), Some(node)) = (record, connection.node.as_ref()) {
        record.node = node.node().name().to_string();
    }
    let mut turn = turn;
    if let (Some(deadline), Some(turn), Some(node), Some(id)) =
        (deadline, turn.as_mut(), connection.node.as_ref(), &query_id)
    {
        gateway::watch(env, sent.login, node.node().index, id, deadline, turn);
    }
    let (mut parts, incoming) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(id) = query_id.filter(|_| !parts.headers.contains_key(gateway::QUERY_ID_HEADER)) {
        if let Ok(value) = HeaderValue::from_str(&id) {
            parts.headers.insert(gateway::QUERY_ID_HEADER, value);
        }
    }
    let body = ClientBody::relay(
        incoming,
        connection,
        StatementKind::Sql,
        parts.status,
        sent.started,
        env.metrics.clone(),
    )
    .holding(turn);
    Ok(Response::from_parts(parts, body))
}

/// What routing needs of a request: its session, and its user when the session or `hash_user` needs it (the
/// user is read only then, off the hot path of plain requests).
fn route_key(parts: &hyper::http::request::Parts, env: &HttpEnv, kills: Option<String>) -> RouteKey {
    let query = parts.uri.query().unwrap_or("");
    let session = super::params::param(query, "session_id")
        .map(|id| String::from_utf8_lossy(&id).into_owned())
        .filter(|id| !id.is_empty());
    let by_user = env.config.cluster.balance == crate::config::Balance::HashUser;
    let user = if session.is_some() || by_user {
        super::answer::asker(parts).credentials.user
    } else {
        String::new()
    };
    let query_id = super::params::param(query, "query_id")
        .map(|id| String::from_utf8_lossy(&id).into_owned())
        .filter(|id| !id.is_empty());
    RouteKey {
        user,
        session,
        query_id,
        kills,
    }
}

/// An error of the proxy's own, in ClickHouse's shape.
fn error_answer(
    env: &HttpEnv,
    error: &HttpError,
    kind: StatementKind,
    started: Instant,
) -> Response<ClientBody> {
    let body = exception_body(error.code(), error.class(), &error.to_string());
    let mut response = local_answer(env, error.status(), error.code(), body, kind, started);
    let headers = response.headers_mut();
    match error {
        // As ClickHouse answers a refused login.
        HttpError::Login(_) if error.status() == StatusCode::UNAUTHORIZED => {
            headers.insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ClickHouse server HTTP API\""),
            );
        }
        HttpError::Refused {
            retry_after: Some(seconds),
            ..
        } => {
            headers.insert(hyper::header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        _ => {}
    }
    response
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
