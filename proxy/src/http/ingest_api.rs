//! The console's way to the ingest daemon: `/ui/api/ingest/<path>` is sent to `<ingest_api_url>/<path>`
//! (`GET /pipelines`, `POST /pipelines`, `DELETE /pipelines/{name}`, `/health`) and the daemon's answer comes back
//! as it is.
//!
//! Who may do what:
//! - every request needs credentials ClickHouse accepts: before forwarding, the proxy runs `SELECT 1` upstream with
//!   the request's `X-ClickHouse-User`/`X-ClickHouse-Key` headers, or else its `Authorization: Basic` header (the
//!   same precedence as ClickHouse's; only the headers that name the user are sent, so the user checked is the
//!   user named);
//! - reading (`GET`, `HEAD`: the pipelines' status) is open to any such user;
//! - connecting and disconnecting (every other method) only to the users of `pipeline_admins` in the proxy's
//!   config (none by default: then nobody may), refused with 403 and code 497 (ACCESS_DENIED) otherwise.
//!
//! The daemon's own API wants its bearer token: the proxy sends the one of `ingest_api_token_env` /
//! `ingest_api_token_file` (never the user's ClickHouse credentials, which stay between proxy and ClickHouse).
//! Answers the proxy gives itself are JSON in the shape of
//! `/ask`'s errors, `{"error": {"code": N, "message": "…"}}`, with `"ingest": "not_configured" | "unreachable"`
//! when the daemon cannot be asked, so that the page can say why. Bodies are small JSON documents in both
//! directions and are read whole, within limits; the daemon is asked through the shared HTTP client
//! ([`aurora_common::http`]), one connection per request.

use std::time::{Duration, Instant};

use aurora_common::http;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode, Uri};

use super::body::{ClientBody, UpstreamBody};
use super::ui::json;
use super::HttpEnv;
use crate::codes;
use crate::telemetry::StatementKind;

/// The largest request body sent on to the daemon (a pipeline spec is a few hundred bytes).
pub const REQUEST_LIMIT: usize = 1 << 20;
/// The largest answer read from the daemon.
pub const RESPONSE_LIMIT: usize = 16 << 20;
/// How long the daemon may take to answer; `DELETE` waits for the pipeline to flush and commit.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The headers that carry ClickHouse credentials over HTTP, as ClickHouse reads them: `X-ClickHouse-User` and
/// `X-ClickHouse-Key` first, else `Authorization`.
const CLICKHOUSE_HEADERS: &[&str] = &["x-clickhouse-user", "x-clickhouse-key"];
const BASIC_HEADERS: &[&str] = &["authorization"];

/// Why the daemon was not asked, or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum IngestApiError {
    #[error(
        "Aurora proxy: the ingest daemon's API is not configured (start aurora-proxy with --ingest-api-url)"
    )]
    NotConfigured,
    #[error("Aurora proxy: ingest_api_url {0:?} cannot be used")]
    BadUrl(String),
    #[error("Aurora proxy: cannot reach the ingest daemon at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Aurora proxy: the ingest daemon at {url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("Aurora proxy: the request body is larger than {REQUEST_LIMIT} bytes or broke off")]
    RequestBody,
    #[error("Aurora proxy: cannot check the credentials with ClickHouse: {0}")]
    ClickHouse(String),
    /// ClickHouse refused the credentials (its code and message).
    #[error("{message}")]
    Refused { code: i32, message: String },
    /// The user may look at pipelines but not change them.
    #[error(
        "Aurora proxy: {user} may not connect or disconnect pipelines: only the users of pipeline_admins in the \
         proxy's config may (--pipeline-admins / AURORA_PIPELINE_ADMINS)"
    )]
    NotAdmin { user: String },
    /// The daemon refused the proxy's token (or the proxy has none).
    #[error(
        "Aurora proxy: the ingest daemon refused the proxy ({status}): {detail} — set ingest_api_token_env or \
         ingest_api_token_file in the proxy's config to the daemon's API token"
    )]
    DaemonRefused { status: u16, detail: String },
}

impl IngestApiError {
    fn status(&self) -> StatusCode {
        match self {
            IngestApiError::RequestBody => StatusCode::PAYLOAD_TOO_LARGE,
            IngestApiError::Refused { .. } | IngestApiError::NotAdmin { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    fn code(&self) -> i32 {
        match self {
            IngestApiError::RequestBody => codes::QUERY_IS_TOO_LARGE,
            IngestApiError::Refused { code, .. } => *code,
            IngestApiError::NotAdmin { .. } => codes::ACCESS_DENIED,
            IngestApiError::BadUrl(_) => codes::UNSUPPORTED_URI_SCHEME,
            _ => codes::NETWORK_ERROR,
        }
    }

    /// What the page shows about the daemon, when it is the daemon that cannot be asked.
    fn ingest_state(&self) -> Option<&'static str> {
        match self {
            IngestApiError::NotConfigured => Some("not_configured"),
            IngestApiError::DaemonRefused { .. } => Some("unauthorized"),
            IngestApiError::Unreachable { .. }
            | IngestApiError::Timeout { .. }
            | IngestApiError::BadUrl(_) => Some("unreachable"),
            _ => None,
        }
    }

    /// The JSON answer for this error.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut body = serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() },
        });
        if let Some(state) = self.ingest_state() {
            body["ingest"] = state.into();
        }
        json(self.status(), body.to_string())
    }
}

/// Forwards one console request to the daemon; `rest` is the path after `/ui/api/ingest`.
pub async fn forward(env: &HttpEnv, request: Request<Incoming>, rest: &str) -> Response<Full<Bytes>> {
    match try_forward(env, request, rest).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "console request to the ingest daemon failed");
            error.response()
        }
    }
}

async fn try_forward(
    env: &HttpEnv,
    request: Request<Incoming>,
    rest: &str,
) -> Result<Response<Full<Bytes>>, IngestApiError> {
    let base = env
        .config
        .ingest_api_url
        .as_deref()
        .ok_or(IngestApiError::NotConfigured)?;
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let identity = Identity::of(request.headers())?;
    authenticate(env, &identity).await?;
    if changes && !env.config.pipeline_admins.contains(&identity.user) {
        tracing::info!(user = %identity.user, "console request to change pipelines refused: not a pipeline admin");
        return Err(IngestApiError::NotAdmin { user: identity.user });
    }
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, REQUEST_LIMIT)
        .collect()
        .await
        .map_err(|_| IngestApiError::RequestBody)?
        .to_bytes();
    let target = target_uri(base, rest, parts.uri.query())?;
    let bad_url = || IngestApiError::BadUrl(base.to_string());
    let authority = target.authority().ok_or_else(bad_url)?;
    let options = http::Options {
        connect_timeout: env.config.connect_timeout,
        request_timeout: Some(RESPONSE_TIMEOUT),
        max_answer: RESPONSE_LIMIT,
        ..http::Options::default()
    };
    let client = http::Client::new(&format!("http://{authority}"), options).map_err(|_| bad_url())?;
    let mut outgoing = client
        .request(
            parts.method.clone(),
            target.path_and_query().map_or("/", |pq| pq.as_str()),
        )
        .body(body);
    for name in [CONTENT_TYPE, ACCEPT] {
        if let Some(value) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, value.clone());
        }
    }
    if let Some(token) = &env.config.ingest_api_token {
        outgoing = outgoing.auth(&http::Auth::Bearer(token.0.clone()));
    }
    let unreachable = |reason: String| IngestApiError::Unreachable {
        url: base.to_string(),
        reason,
    };
    let answer = outgoing.send().await.map_err(|e| match e {
        http::Error::Timeout { .. } => IngestApiError::Timeout {
            url: base.to_string(),
            seconds: RESPONSE_TIMEOUT.as_secs(),
        },
        http::Error::ConnectTimeout { .. } => unreachable("no connection within connect_timeout".into()),
        http::Error::Connect { error, .. } => unreachable(format!("tcp connect error: {error}")),
        http::Error::Request(_) => bad_url(),
        http::Error::Send { reason, .. } => unreachable(reason),
        http::Error::Body { reason, .. } => {
            unreachable(format!("the answer broke off or is too large: {reason}"))
        }
        other @ http::Error::TooLarge { .. } => {
            unreachable(format!("the answer broke off or is too large: {other}"))
        }
        other => unreachable(other.to_string()),
    })?;
    let http::Response {
        status,
        headers,
        body: bytes,
    } = answer;
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        return Err(IngestApiError::DaemonRefused {
            status: status.as_u16(),
            detail,
        });
    }
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    if let Some(value) = headers.get(CONTENT_TYPE) {
        response.headers_mut().insert(CONTENT_TYPE, value.clone());
    }
    response
        .headers_mut()
        .insert(hyper::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `<base><rest>?<query>`: the daemon's URL for a console path. `rest` is empty or starts with `/`; a path
/// that climbs out (`..`) is refused.
fn target_uri(base: &str, rest: &str, query: Option<&str>) -> Result<Uri, IngestApiError> {
    let bad = || IngestApiError::BadUrl(base.to_string());
    if rest.split('/').any(|segment| segment == ".." || segment == ".") {
        return Err(IngestApiError::Unreachable {
            url: base.to_string(),
            reason: "the path may not contain '.' or '..' segments".into(),
        });
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let text = match query {
        Some(q) => format!("{base}{rest}?{q}"),
        None => format!("{base}{rest}"),
    };
    let uri: Uri = text.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(bad());
    }
    Ok(uri)
}

/// The ClickHouse user a console request names, and the headers that name it.
#[derive(Debug)]
struct Identity {
    user: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Identity {
    /// `X-ClickHouse-User` (with its key) when present, else the user of `Authorization: Basic`.
    fn of(headers: &HeaderMap) -> Result<Identity, IngestApiError> {
        let collect = |names: &[&'static str]| {
            names
                .iter()
                .filter_map(|name| {
                    headers
                        .get(*name)
                        .map(|v| (HeaderName::from_static(name), v.clone()))
                })
                .collect::<Vec<_>>()
        };
        if let Some(user) = headers.get("x-clickhouse-user") {
            let user = user.to_str().map_err(|_| no_credentials())?.to_string();
            if user.is_empty() {
                return Err(no_credentials());
            }
            return Ok(Identity {
                user,
                headers: collect(CLICKHOUSE_HEADERS),
            });
        }
        let basic = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|pair| pair.split_once(':').map(|(user, _)| user.to_string()));
        match basic {
            // Without credentials ClickHouse would take the `default` user; the console always sends them.
            Some(user) if !user.is_empty() => Ok(Identity {
                user,
                headers: collect(BASIC_HEADERS),
            }),
            _ => Err(no_credentials()),
        }
    }
}

fn no_credentials() -> IngestApiError {
    IngestApiError::Refused {
        code: codes::AUTHENTICATION_FAILED,
        message:
            "Aurora proxy: log in first (no credentials in the request: X-ClickHouse-User/X-ClickHouse-Key \
                  or Authorization: Basic)"
                .into(),
    }
}

/// Checks the request's credentials with ClickHouse: `SELECT 1` as that user.
async fn authenticate(env: &HttpEnv, identity: &Identity) -> Result<(), IngestApiError> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri("/?query=SELECT%201")
        .header(hyper::header::CONTENT_LENGTH, "0")
        .body(UpstreamBody::empty(env.metrics.clone()))
        .expect("a constant request is valid");
    for (name, value) in &identity.headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    let started = Instant::now();
    let key = super::route::RouteKey {
        user: String::new(),
        ..Default::default()
    };
    let (response, lease) = env
        .router
        .send(env.route.for_reads(), &key, request, true)
        .await
        .map_err(|e| {
            IngestApiError::ClickHouse(e.to_string().trim_start_matches("Aurora proxy: ").to_string())
        })?;
    let (parts, incoming) = response.into_parts();
    let code = parts
        .headers
        .get("x-clickhouse-exception-code")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    let body = ClientBody::relay(
        incoming,
        lease,
        StatementKind::Sql,
        parts.status,
        started,
        env.metrics.clone(),
    );
    let text = Limited::new(body, 64 << 10)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if parts.status.is_success() {
        return Ok(());
    }
    let message = String::from_utf8_lossy(&text).trim().to_string();
    Err(IngestApiError::Refused {
        code: code
            .or_else(|| code_in_text(&message))
            .unwrap_or(codes::AUTHENTICATION_FAILED),
        message,
    })
}

/// The code of a ClickHouse error text (`Code: 193, e.displayText() = …` in 18.x, `Code: 516. DB::…` since),
/// for servers that do not send the `X-ClickHouse-Exception-Code` header.
fn code_in_text(text: &str) -> Option<i32> {
    aurora_common::exception::code(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths_map_onto_the_daemon() {
        let uri = target_uri("http://127.0.0.1:8125", "/pipelines", None).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:8125/pipelines");
        let uri = target_uri("http://127.0.0.1:8125/api", "/pipelines/orders", Some("x=1")).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:8125/api/pipelines/orders?x=1");
        assert_eq!(
            target_uri("http://h:1", "", None).unwrap().to_string(),
            "http://h:1/"
        );
        assert!(target_uri("http://h:1", "/pipelines/../metrics", None).is_err());
        assert!(target_uri("h:1", "/pipelines", None).is_err());
    }

    #[test]
    fn codes_are_read_from_both_error_styles() {
        assert_eq!(
            code_in_text("Code: 193, e.displayText() = DB::Exception: Wrong password for user alice"),
            Some(193)
        );
        assert_eq!(
            code_in_text("Code: 516. DB::Exception: alice: Authentication failed. (AUTHENTICATION_FAILED)"),
            Some(516)
        );
        assert_eq!(code_in_text("Bad gateway"), None);
    }

    async fn json_of(response: Response<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_daemon_that_cannot_be_asked_is_a_502_that_says_why() {
        let (status, body) = json_of(IngestApiError::NotConfigured.response()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["ingest"], "not_configured");
        assert_eq!(body["error"]["code"], 210);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--ingest-api-url"));

        let unreachable = IngestApiError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "tcp connect error: Connection refused".into(),
        };
        let (status, body) = json_of(unreachable.response()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["ingest"], "unreachable");
        assert_eq!(
            body["error"]["message"],
            "Aurora proxy: cannot reach the ingest daemon at http://127.0.0.1:1: tcp connect error: Connection refused"
        );

        let refused = IngestApiError::Refused {
            code: 193,
            message: "Code: 193, e.displayText() = DB::Exception: Wrong password".into(),
        };
        let (status, body) = json_of(refused.response()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], 193);
        assert!(body.get("ingest").is_none());

        let (status, body) = json_of(
            IngestApiError::NotAdmin {
                user: "reader".into(),
            }
            .response(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], 497);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pipeline_admins"));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn the_user_is_read_as_clickhouse_reads_it() {
        let id = Identity::of(&headers(&[
            ("x-clickhouse-user", "alice"),
            ("x-clickhouse-key", "pw"),
        ]))
        .unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.headers.len(), 2);
        // Basic: "bob:secret"
        let id = Identity::of(&headers(&[("authorization", "Basic Ym9iOnNlY3JldA==")])).unwrap();
        assert_eq!(id.user, "bob");
        assert_eq!(id.headers.len(), 1);
        // Both: ClickHouse takes X-ClickHouse-User, and only those headers are checked with it.
        let id = Identity::of(&headers(&[
            ("authorization", "Basic Ym9iOnNlY3JldA=="),
            ("x-clickhouse-user", "reader"),
        ]))
        .unwrap();
        assert_eq!(id.user, "reader");
        assert!(id.headers.iter().all(|(n, _)| n != AUTHORIZATION));
        for refused in [
            headers(&[]),
            headers(&[("x-clickhouse-key", "pw")]),
            headers(&[
                ("x-clickhouse-user", ""),
                ("authorization", "Basic Ym9iOnNlY3JldA=="),
            ]),
            headers(&[("authorization", "Bearer abc")]),
            headers(&[("authorization", "Basic !!!")]),
            headers(&[("authorization", "Basic OnB3")]), // ":pw", no user
        ] {
            assert!(Identity::of(&refused).is_err(), "{refused:?}");
        }
    }
}
