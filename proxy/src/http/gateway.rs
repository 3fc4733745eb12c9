//! The proxy users' policies on the HTTP side: the login is checked before anything goes upstream and the
//! request carries the user's ClickHouse credentials instead of the client's; each statement takes its turn
//! among its user's queries; every query runs under a query id (the client's, or one the proxy adds), which
//! the answer names in `X-ClickHouse-Query-Id`; a query past its user's `max_execution_time` is killed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::http::request::Parts;
use hyper::Uri;

use super::error::HttpError;
use super::params;
use super::HttpEnv;
use crate::gateway::{refusal_message, timeout_message, Login, ProxyUser, Turn};
use crate::telemetry::{self, Protocol, StatementKind};

/// The header ClickHouse names the query id in (since 19.x; the proxy sets it for every server).
pub const QUERY_ID_HEADER: &str = "x-clickhouse-query-id";

/// Checks the request's login against the proxy users and, for a proxy user, replaces the credentials it
/// carries with the user's ClickHouse ones.
pub fn login(env: &HttpEnv, parts: &mut Parts, peer: SocketAddr) -> Result<Login, HttpError> {
    // ClickHouse's service paths answer without a login (load balancers ask `/ping`), and so does the proxy.
    if !env.gateway.enabled() || super::classify::STATIC_PATHS.contains(&parts.uri.path()) {
        return Ok(Login::PassThrough);
    }
    let asker = super::answer::asker(parts);
    let login = env
        .gateway
        .login(
            &asker.credentials.user,
            asker.credentials.password.as_bytes(),
            peer.ip(),
        )
        .map_err(|refused| {
            tracing::info!(%peer, user = %asker.credentials.user, code = refused.code, "login refused");
            telemetry::login_refused(&env.metrics, Protocol::Http, refused.code);
            HttpError::Login(refused)
        })?;
    if let Some(user) = login.user() {
        if let Some(rule) = user.tenant_rule(&asker.database) {
            parts.extensions.insert(rule);
        }
        carry_credentials(parts, user)?;
    }
    Ok(login)
}

/// Every place a request may carry credentials loses them; the user's ClickHouse credentials go in
/// `Authorization: Basic`.
fn carry_credentials(parts: &mut Parts, user: &ProxyUser) -> Result<(), HttpError> {
    for name in [AUTHORIZATION.as_str(), "x-clickhouse-user", "x-clickhouse-key"] {
        parts.headers.remove(name);
    }
    let query = parts.uri.query().unwrap_or("");
    if params::param(query, "user").is_some() || params::param(query, "password").is_some() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                !matches!(&*params::decode(key), b"user" | b"password")
            })
            .collect();
        set_query(parts, &kept.join("&"))?;
    }
    let (name, password) = user.clickhouse_credentials();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    let value = HeaderValue::from_str(&format!("Basic {basic}")).map_err(|_| HttpError::Refused {
        code: crate::codes::BAD_ARGUMENTS,
        message: "Aurora proxy: the ClickHouse credentials of this proxy user cannot go in a header".into(),
        retry_after: None,
    })?;
    parts.headers.insert(AUTHORIZATION, value);
    Ok(())
}

fn set_query(parts: &mut Parts, query: &str) -> Result<(), HttpError> {
    let path_and_query = if query.is_empty() {
        parts.uri.path().to_string()
    } else {
        format!("{}?{query}", parts.uri.path())
    };
    parts.uri = Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| HttpError::UpstreamUrl {
            url: parts.uri.to_string(),
            reason: e.to_string(),
        })?;
    Ok(())
}

/// The request's query id: its `query_id` parameter, or a new one added to the query string of a request that
/// carries a query (ClickHouse's service paths — `/ping`, `/replicas_status`, `GET /` — take no parameters, and
/// `None` is returned for them).
pub fn query_id(parts: &mut Parts) -> Result<Option<String>, HttpError> {
    let query = parts.uri.query().unwrap_or("");
    if let Some(id) = params::param(query, "query_id").filter(|id| !id.is_empty()) {
        return Ok(Some(String::from_utf8_lossy(&id).into_owned()));
    }
    let carries_query = parts.uri.path() == "/"
        && (parts.method == hyper::Method::POST || params::param(query, "query").is_some());
    if !carries_query {
        return Ok(None);
    }
    let id = crate::gateway::new_query_id();
    let extended = if query.is_empty() {
        format!("query_id={id}")
    } else {
        format!("{query}&query_id={id}")
    };
    set_query(parts, &extended)?;
    Ok(Some(id))
}

/// The statement's turn among its proxy user's queries (waiting in the queue if need be); `None` for
/// pass-through clients.
pub async fn admit(env: &HttpEnv, login: &Login, kind: StatementKind) -> Result<Option<Turn>, HttpError> {
    let Some(user) = login.user() else {
        return Ok(None);
    };
    if kind == StatementKind::Ask && !user.config.allow_ask {
        return Err(HttpError::Refused {
            code: crate::codes::ACCESS_DENIED,
            message: format!("Aurora: user {} may not use ASK (allow_ask = false)", user.name()),
            retry_after: None,
        });
    }
    match user.limiter.admit().await {
        Ok(admission) => {
            telemetry::user_query_admitted(&env.metrics, user.name(), admission.queued);
            Ok(Some(Turn {
                admission: Some(admission),
                watchdog: None,
            }))
        }
        Err(refused) => {
            telemetry::user_query_refused(&env.metrics, user.name(), refused.reason());
            let (code, message) = refusal_message(user.name(), &refused);
            Err(HttpError::Refused {
                code,
                message,
                retry_after: refused.retry_after_secs(),
            })
        }
    }
}

/// When the user's `max_execution_time` of a query started at `started` runs out.
pub fn deadline(login: &Login, started: Instant) -> Option<Instant> {
    login.user()?.max_execution_time().map(|max| started + max)
}

/// Kills `query_id` as the user on each node (the query's node is not known yet when its answer has not
/// begun; on the others the KILL finds nothing), in the background.
pub fn kill_everywhere(env: &HttpEnv, login: &Login, query_id: &str) {
    let Some(user) = login.user() else { return };
    telemetry::user_query_refused(&env.metrics, user.name(), "max_execution_time");
    let (name, password) = user.clickhouse_credentials();
    let (name, password, query_id) = (name.to_string(), password.to_string(), query_id.to_string());
    let router = env.router.clone();
    tokio::spawn(async move {
        for node in 0..router.upstreams.len() {
            if let Err(error) = router.kill(node, &query_id, &name, &password).await {
                tracing::warn!(%query_id, %error, "cannot kill the query past its max_execution_time");
            }
        }
    });
}

/// The error of a query killed at its time before its answer began.
pub fn expired(login: &Login, started: Instant) -> HttpError {
    let max = login
        .user()
        .and_then(|u| u.max_execution_time())
        .unwrap_or(Duration::ZERO);
    HttpError::Expired {
        message: timeout_message(started.elapsed(), max).1,
    }
}

/// Watches an answer that streams: at `deadline` the query is killed on its node (ClickHouse then ends
/// the body with its own exception). The watch stops when the answer ends ([`Turn`]'s drop).
pub fn watch(env: &HttpEnv, login: &Login, node: usize, query_id: &str, deadline: Instant, turn: &mut Turn) {
    let Some(user) = login.user() else { return };
    let (name, password) = user.clickhouse_credentials();
    let (name, password, query_id) = (name.to_string(), password.to_string(), query_id.to_string());
    let router = env.router.clone();
    let metrics = env.metrics.clone();
    let user = user.name().to_string();
    let task = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        telemetry::user_query_refused(&metrics, &user, "max_execution_time");
        if let Err(error) = router.kill(node, &query_id, &name, &password).await {
            tracing::warn!(%query_id, %error, "cannot kill the query past its max_execution_time");
        }
    });
    turn.watchdog = Some(task.abort_handle());
}

/// Most bytes of a tenant user's statement the proxy reads to scope it.
pub const MAX_TENANT_STATEMENT: usize = 1 << 20;

/// A tenant user's SQL request, scoped: its statement (the `query` parameter or the body, not both, never
/// compressed) read whole, scoped to the tenant, and put back where it came from. Returns the body to send.
pub async fn scope_request(
    env: &HttpEnv,
    parts: &mut Parts,
    peeked: std::collections::VecDeque<hyper::body::Frame<bytes::Bytes>>,
    mut rest: hyper::body::Incoming,
) -> Result<Option<bytes::Bytes>, HttpError> {
    use hyper::body::Body as _;
    let refuse = |message: String| HttpError::Refused {
        code: crate::codes::ACCESS_DENIED,
        message: format!("Aurora: tenant scoping: {message}"),
        retry_after: None,
    };
    let query = parts.uri.query().unwrap_or("").to_string();
    if parts.headers.contains_key(hyper::header::CONTENT_ENCODING)
        || params::param(&query, "decompress").is_some()
    {
        return Err(refuse("a compressed request cannot be read to scope it".into()));
    }
    let mut body = Vec::new();
    for frame in peeked {
        if let Ok(data) = frame.into_data() {
            body.extend_from_slice(&data);
        }
    }
    let receive_timeout = env.config.http_receive_timeout;
    while !rest.is_end_stream() {
        let frame = tokio::time::timeout(receive_timeout, http_body_util::BodyExt::frame(&mut rest))
            .await
            .map_err(|_| HttpError::ReceiveTimeout(receive_timeout))?;
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            Some(Err(error)) => return Err(HttpError::ClientBody(error)),
        }
        if body.len() > MAX_TENANT_STATEMENT {
            return Err(refuse(format!(
                "the statement is longer than {MAX_TENANT_STATEMENT} bytes"
            )));
        }
    }
    let param = params::param(&query, "query")
        .map(|q| q.into_owned())
        .unwrap_or_default();
    let in_param = !param.is_empty();
    let text = match (in_param, body.iter().all(u8::is_ascii_whitespace)) {
        (true, false) => {
            return Err(refuse(
                "a statement with data in the body cannot be scoped".into(),
            ))
        }
        (true, true) => param,
        (false, _) => body,
    };
    let text = String::from_utf8(text).map_err(|_| refuse("the statement is not UTF-8".into()))?;
    let asker = super::answer::asker(parts);
    let scoped = env
        .ask
        .scope_sql(&asker, &text)
        .await
        .map_err(|failure| HttpError::Refused {
            code: failure.code,
            message: failure.message,
            retry_after: None,
        })?;
    if in_param {
        let kept: Vec<String> = query
            .split('&')
            .filter(|pair| &*params::decode(pair.split('=').next().unwrap_or("")) != b"query")
            .map(str::to_string)
            .chain(std::iter::once(format!(
                "query={}",
                params::encode(scoped.as_bytes())
            )))
            .collect();
        set_query(parts, &kept.join("&"))?;
        Ok(None)
    } else {
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
        Ok(Some(bytes::Bytes::from(scoped)))
    }
}
