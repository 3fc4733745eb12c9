//! ASK over HTTP: the generated query runs as an ordinary ClickHouse HTTP request with the client's own
//! credentials, URL parameters (format, settings, database) and headers, and its answer streams back
//! untouched — so `ASK '…' FORMAT CSV`, `default_format=Native` (Grafana) and `enable_http_compression` all
//! work as they do for SQL. A rejection by ClickHouse before the answer starts goes back to the model once.
//!
//! `POST /ask` is the same pipeline for web tools: `{"question": "…", "explain": false}` in, one JSON object
//! out (`sql`, `params`, `tables`, `explanation`, `cached`, `columns`, `rows`, `elapsed_ms`). Optional fields:
//! `"session": "<id>"` (follow-ups refine the session's previous question; Aurora's own, not a ClickHouse
//! session), `"feedback": "good" | "bad"` (marks the earlier answer to the same question, see
//! `nlq::feedback`), `"refresh_catalog": true`.

use std::net::SocketAddr;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri};
use serde_json::{json, Value};

use super::body::{read_answer, ClientBody, UpstreamBody};
use super::error::{exception_body, status_for_code};
use super::params;
use super::HttpEnv;
use crate::ask::{AskFailure, AskRun, ParamMode, Prepared, MAX_ERROR_BODY};
use crate::codes;
use crate::telemetry::StatementKind;

/// URL parameters the generated request does not inherit from the client's: the statement itself, Aurora's
/// own `readonly`, and the client's query parameters (they belong to its SQL, not to the generated query).
fn inherited(name: &[u8]) -> bool {
    !(name == b"query" || name == b"readonly" || name.starts_with(b"param_"))
}

/// Who sent the request, as ClickHouse reads it: Basic auth, then `X-ClickHouse-User`/`Key`, then the `user` and
/// `password` parameters; `default` with no password otherwise. The database: `database` parameter or
/// `X-ClickHouse-Database`. The session (for follow-up questions): the `session_id` parameter.
pub fn asker(parts: &Parts) -> nlq::Asker {
    let query = parts.uri.query().unwrap_or("");
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let text = |v: std::borrow::Cow<'_, [u8]>| String::from_utf8_lossy(&v).into_owned();
    let basic = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())));
    let (user, password) = basic.unwrap_or_else(|| {
        let user = header("x-clickhouse-user")
            .or_else(|| params::param(query, "user").map(text))
            .unwrap_or_else(|| "default".into());
        let password = header("x-clickhouse-key")
            .or_else(|| params::param(query, "password").map(text))
            .unwrap_or_default();
        (user, password)
    });
    let database = params::param(query, "database")
        .map(text)
        .or_else(|| header("x-clickhouse-database"))
        .unwrap_or_else(|| "default".into());
    nlq::Asker {
        credentials: nlq::clickhouse::Credentials::new(
            if user.is_empty() { "default".into() } else { user },
            password,
        ),
        database,
        // Follow-up questions refine the previous one of the same HTTP session.
        session: params::param(query, "session_id")
            .map(text)
            .filter(|id| !id.is_empty())
            .map(|id| format!("http/{id}")),
        // Set by the gateway's login for a proxy user with a tenant.
        tenant: parts.extensions.get::<nlq::tenant::TenantRule>().cloned(),
    }
}

/// The upstream request for a generated query: the client's path, parameters (minus [`inherited`]'s) and
/// end-to-end headers, the generated settings and parameters, and the SQL as the body.
fn generated_request(
    env: &HttpEnv,
    parts: &Parts,
    prepared: &Prepared,
    format: Option<&str>,
    peer: SocketAddr,
) -> Result<Request<UpstreamBody>, AskFailure> {
    let mut query = String::new();
    let mut push = |name: &[u8], value: &[u8]| {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&params::encode(name));
        query.push('=');
        query.push_str(&params::encode(value));
    };
    for (name, value) in params::pairs(parts.uri.query().unwrap_or("")) {
        let overridden = prepared.settings.iter().any(|(n, _)| n.as_bytes() == name);
        if inherited(&name) && !overridden {
            push(&name, &value);
        }
    }
    for (name, value) in &prepared.settings {
        push(name.as_bytes(), value.as_bytes());
    }
    for (name, value) in &prepared.parameters {
        push(format!("param_{name}").as_bytes(), value.as_bytes());
    }
    let path = if parts.uri.path() == "/ask" {
        "/"
    } else {
        parts.uri.path()
    };
    let client_uri: Uri = format!("{path}?{query}").parse().map_err(|_| AskFailure {
        code: codes::BAD_ARGUMENTS,
        message: "Aurora: cannot build the request for the generated query".into(),
    })?;
    let uri = client_uri;
    let mut sql = prepared.sql.clone();
    if let Some(format) = format {
        sql.push_str("\nFORMAT ");
        sql.push_str(format);
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let keep = name == AUTHORIZATION
            || name.as_str().starts_with("x-clickhouse-")
            || name == "accept-encoding"
            || name == "user-agent"
            || name == "x-forwarded-for";
        if keep {
            headers.append(name, value.clone());
        }
    }
    super::headers::append_forwarded_for(&mut headers, peer);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(sql.len()));
    let mut request = Request::new(UpstreamBody::full(Bytes::from(sql), env.metrics.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// What came back for one attempt.
enum Attempt {
    /// ClickHouse accepted the query; its answer streams.
    Accepted(Response<Incoming>, super::pool::Lease),
    /// ClickHouse refused it with this code and message.
    Rejected(Option<i32>, String),
}

async fn attempt(
    env: &HttpEnv,
    parts: &Parts,
    prepared: &Prepared,
    format: Option<&str>,
    peer: SocketAddr,
) -> Result<Attempt, AskFailure> {
    let request = generated_request(env, parts, prepared, format, peer)?;
    let key = super::route::RouteKey {
        user: asker(parts).credentials.user,
        ..Default::default()
    };
    // Generated queries only read: a read replica may answer them.
    let (response, lease) = env
        .router
        .send(env.route.for_reads(), &key, request, true)
        .await
        .map_err(|error| AskFailure {
            code: error.code(),
            message: error.to_string(),
        })?;
    if response.status().is_success() {
        return Ok(Attempt::Accepted(response, lease));
    }
    let (head, body) = response.into_parts();
    let code = head
        .headers
        .get("x-clickhouse-exception-code")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = match read_answer(body, lease, MAX_ERROR_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("(error body unreadable: {e})"),
    };
    let parsed = nlq::clickhouse::ClickHouseError::from_body(&text);
    Ok(Attempt::Rejected(code.or(parsed.code), parsed.message))
}

/// Runs the ASK (see [`AskRun`]): sends each query it prepares until ClickHouse accepts one; returns the
/// accepted answer, or the failure to show with the SQL that failed.
async fn run(
    env: &HttpEnv,
    parts: &Parts,
    ask: &nlq::AskStatement,
    asker: &nlq::Asker,
    format: Option<&str>,
    peer: SocketAddr,
) -> Result<(Prepared, Response<Incoming>, super::pool::Lease), (AskFailure, Option<String>)> {
    let mut run = AskRun::begin(&env.ask, ask.clone(), asker, ParamMode::ByServerVersion)
        .await
        .map_err(|f| (f, None))?;
    loop {
        let sql = Some(run.prepared().plan.sql.clone());
        match attempt(env, parts, run.prepared(), format, peer).await {
            Err(failure) => return Err((failure, sql)),
            Ok(Attempt::Accepted(response, lease)) => return Ok((run.accepted(&env.ask), response, lease)),
            Ok(Attempt::Rejected(code, message)) => {
                run.rejected(&env.ask, asker, code, &message)
                    .await
                    .map_err(|f| (f, sql))?;
            }
        }
    }
}

/// Answers an ASK statement of the ClickHouse HTTP interface.
pub async fn answer_statement(
    env: &HttpEnv,
    parts: Parts,
    statement: Result<nlq::AskStatement, nlq::AskSyntaxError>,
    peer: SocketAddr,
    started: Instant,
) -> Response<ClientBody> {
    let ask = match statement {
        Ok(ask) => ask,
        Err(syntax) => return failure_answer(env, &env.ask.syntax_error(&syntax), started),
    };
    let asker = asker(&parts);
    match run(env, &parts, &ask, &asker, ask.format.as_deref(), peer).await {
        Ok((_, response, lease)) => {
            let (mut head, incoming) = response.into_parts();
            super::headers::strip_hop_by_hop(&mut head.headers);
            let body = ClientBody::relay(
                incoming,
                lease,
                StatementKind::Ask,
                head.status,
                started,
                env.metrics.clone(),
            );
            Response::from_parts(head, body)
        }
        Err((failure, _)) => failure_answer(env, &failure, started),
    }
}

/// An ASK failure in ClickHouse's error shape.
fn failure_answer(env: &HttpEnv, failure: &AskFailure, started: Instant) -> Response<ClientBody> {
    let status = status_for_code(failure.code);
    let body = exception_body(failure.code, "DB::Exception", &failure.message);
    let mut response = local_response(env, status, "text/plain; charset=UTF-8", body, started);
    response
        .headers_mut()
        .insert("x-clickhouse-exception-code", HeaderValue::from(failure.code));
    response
}

/// An answer of the proxy's own, counted as an ASK.
fn local_response(
    env: &HttpEnv,
    status: StatusCode,
    content_type: &'static str,
    body: String,
    started: Instant,
) -> Response<ClientBody> {
    let mut response = Response::new(ClientBody::local(
        body,
        StatementKind::Ask,
        status,
        started,
        env.metrics.clone(),
    ));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The longest `"session"` of a `/ask` request.
const MAX_SESSION_ID: usize = 128;
/// The largest `/ask` request body.
const MAX_ASK_JSON: usize = 64 << 10;
/// The largest answer `/ask` reads from ClickHouse (it returns rows inline).
const MAX_ASK_ROWS_BYTES: usize = 64 << 20;

/// `POST /ask`: the JSON API for web tools.
pub async fn answer_json(
    env: &HttpEnv,
    parts: Parts,
    body: Incoming,
    peer: SocketAddr,
) -> Response<ClientBody> {
    let started = Instant::now();
    if parts.method != Method::POST {
        return json_answer(
            env,
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": {"code": codes::BAD_ARGUMENTS, "message": "POST a JSON object {\"question\": \"...\"} to /ask"}, "sql": null}),
            started,
        );
    }
    if parts
        .headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity")
    {
        return bad_request(env, "the /ask body must not be compressed", started);
    }
    let raw = match read_client_body(body, MAX_ASK_JSON, env.config.http_receive_timeout).await {
        Ok(raw) => raw,
        Err(message) => return bad_request(env, &message, started),
    };
    let request: Value = match serde_json::from_slice(&raw) {
        Ok(value) => value,
        Err(e) => return bad_request(env, &format!("the body is not JSON: {e}"), started),
    };
    let Some(question) = request
        .get("question")
        .and_then(Value::as_str)
        .filter(|q| !q.trim().is_empty())
    else {
        return bad_request(env, "the body needs a non-empty string \"question\"", started);
    };
    let explain = request.get("explain").and_then(Value::as_bool).unwrap_or(false);
    let refresh = request
        .get("refresh_catalog")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut settings = Vec::new();
    if refresh {
        settings.push((
            crate::ask::SETTING_REFRESH_CATALOG.to_string(),
            nlq::SettingValue::Number("1".into()),
        ));
    }
    match request.get("feedback") {
        None | Some(Value::Null) => {}
        Some(Value::String(verdict)) => settings.push((
            crate::ask::SETTING_FEEDBACK.to_string(),
            nlq::SettingValue::String(verdict.clone()),
        )),
        Some(_) => return bad_request(env, "\"feedback\" is \"good\" or \"bad\"", started),
    }
    let session = match request.get("session") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_SESSION_ID => Some(format!("ui/{id}")),
        Some(_) => {
            return bad_request(
                env,
                &format!("\"session\" is a non-empty string of at most {MAX_SESSION_ID} bytes"),
                started,
            )
        }
    };
    let ask = nlq::AskStatement {
        explain,
        question: question.to_string(),
        format: None,
        settings,
    };
    let mut asker = asker(&parts);
    if session.is_some() {
        asker.session = session;
    }
    match run(env, &parts, &ask, &asker, Some("JSONCompact"), peer).await {
        Err((failure, sql)) => {
            let status = status_for_code(failure.code);
            json_answer(
                env,
                status,
                json!({"error": {"code": failure.code, "message": failure.message}, "sql": sql}),
                started,
            )
        }
        Ok((prepared, response, lease)) => {
            let (_, incoming) = response.into_parts();
            let rows = match read_answer(incoming, lease, MAX_ASK_ROWS_BYTES).await {
                Ok(rows) => rows,
                Err(message) => {
                    return json_answer(
                        env,
                        StatusCode::BAD_GATEWAY,
                        json!({"error": {"code": codes::NETWORK_ERROR, "message": message}, "sql": prepared.plan.sql}),
                        started,
                    )
                }
            };
            let parsed: Value = serde_json::from_slice(&rows).unwrap_or(Value::Null);
            let columns: Vec<Value> = parsed["meta"]
                .as_array()
                .map(|meta| {
                    meta.iter()
                        .map(|m| json!({"name": m["name"], "type": m["type"]}))
                        .collect()
                })
                .unwrap_or_default();
            let plan = &prepared.plan;
            let body = json!({
                "question": plan.question,
                "sql": plan.sql,
                "executed_sql": prepared.sql,
                "params": plan.params,
                "tables": plan.tables,
                "explanation": plan.explanation,
                "cached": plan.cached.is_some(),
                "explain": explain,
                "feedback": prepared.feedback.map(|v| v.as_str()),
                "columns": columns,
                "rows": parsed.get("data").cloned().unwrap_or(Value::Array(vec![])),
                "elapsed_ms": started.elapsed().as_millis() as u64,
            });
            json_answer(env, StatusCode::OK, body, started)
        }
    }
}

fn bad_request(env: &HttpEnv, message: &str, started: Instant) -> Response<ClientBody> {
    json_answer(
        env,
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": codes::BAD_ARGUMENTS, "message": format!("Aurora: {message}")}, "sql": null}),
        started,
    )
}

fn json_answer(env: &HttpEnv, status: StatusCode, body: Value, started: Instant) -> Response<ClientBody> {
    local_response(
        env,
        status,
        "application/json; charset=UTF-8",
        body.to_string(),
        started,
    )
}

async fn read_client_body(
    body: Incoming,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) => Err(format!("cannot read the body (at most {limit} bytes): {e}")),
        Err(_) => Err(format!(
            "the body did not arrive within {timeout:?} (http_receive_timeout)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_asker_is_read_like_clickhouse_reads_it() {
        let basic = parts(
            "/?database=analytics",
            &[("authorization", "Basic YWxpY2U6YWxpY2Utc2VjcmV0")],
        );
        let a = asker(&basic);
        assert_eq!(
            a.credentials,
            nlq::clickhouse::Credentials::new("alice", "alice-secret")
        );
        assert_eq!(a.database, "analytics");
        let headers = parts("/", &[("x-clickhouse-user", "reader"), ("x-clickhouse-key", "k")]);
        assert_eq!(
            asker(&headers).credentials,
            nlq::clickhouse::Credentials::new("reader", "k")
        );
        let url = parts("/?user=bob&password=p%26w", &[]);
        assert_eq!(
            asker(&url).credentials,
            nlq::clickhouse::Credentials::new("bob", "p&w")
        );
        let none = parts("/", &[]);
        assert_eq!(
            asker(&none).credentials,
            nlq::clickhouse::Credentials::new("default", "")
        );
        assert_eq!(asker(&none).database, "default");
    }

    #[test]
    fn generated_requests_drop_the_statement_and_client_parameters() {
        assert!(!inherited(b"query"));
        assert!(!inherited(b"readonly"));
        assert!(!inherited(b"param_x"));
        assert!(inherited(b"default_format"));
        assert!(inherited(b"max_threads"));
    }
}
