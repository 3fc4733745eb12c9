//! The daemon's HTTP API (JSON), `/metrics` and `/health`, on `api_listen`.
//!
//! - `GET /health` → `{"status":"ok"}`
//! - `GET /metrics` → Prometheus text
//! - `GET /pipelines` → `{"pipelines":[…]}`
//! - `POST /pipelines` (a pipeline spec) → 201 with the pipeline; 400 `{"error"}` naming the bad key; 409 if it exists
//! - `DELETE /pipelines/{name}` → 200 once flushed and committed; 404 if unknown
//!
//! `/pipelines` needs `Authorization: Bearer <token>` with the token of `api_token_env` / `api_token_file`
//! (compared in constant time): 401 without it or with another one, 403 while no token is configured (the
//! pipelines of the config file run all the same). `/health` and `/metrics` stay open. A posted spec may set only
//! the tuning properties of [`crate::kafka_options::API_ALLOWED`] in `kafka_options`.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{PipelineSpec, Secret};
use crate::metrics::Metrics;
use crate::pipeline::{Manager, ManagerError};

/// Largest request body accepted (a pipeline spec is small).
const MAX_BODY: usize = 1 << 20;

pub struct Api {
    pub manager: Arc<Manager>,
    pub metrics: Arc<Metrics>,
    /// The bearer token `/pipelines` requires; `None` closes `/pipelines` altogether.
    pub token: Option<Secret>,
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, api: Arc<Api>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let api = api.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(&api, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(status, json!({ "error": message.into() }))
}

/// Why a request to `/pipelines` is refused before anything else is done, as its answer (boxed: the
/// refusal is the rare path).
fn authorize(token: Option<&Secret>, headers: &HeaderMap) -> Result<(), Box<Response<Full<Bytes>>>> {
    let Some(Secret(expected)) = token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "the pipelines API is closed: no API token is configured. Set api_token_env (an environment \
             variable) or api_token_file (a file) in the daemon's config, restart it, and send \
             `Authorization: Bearer <token>` (aurora-ingest connect|disconnect|status read it from the same config)",
        )));
    };
    let unauthorized = |message: &str, challenge: &'static str| {
        let mut r = error(StatusCode::UNAUTHORIZED, message);
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        Box::new(r)
    };
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized(
            "this endpoint needs `Authorization: Bearer <token>` (the token of api_token_env / api_token_file)",
            "Bearer realm=\"aurora-ingest\"",
        ));
    };
    let given = value.as_bytes();
    let scheme = b"bearer ";
    let presented = match given.get(..scheme.len()) {
        Some(head) if head.eq_ignore_ascii_case(scheme) => given[scheme.len()..].trim_ascii(),
        _ => {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <token>`",
                "Bearer realm=\"aurora-ingest\"",
            ))
        }
    };
    if bool::from(presented.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(unauthorized(
            "wrong API token",
            "Bearer realm=\"aurora-ingest\", error=\"invalid_token\"",
        ))
    }
}

async fn handle(api: &Api, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let pipelines = path == "/pipelines" || path.starts_with("/pipelines/");
    if pipelines {
        if let Err(refused) = authorize(api.token.as_ref(), req.headers()) {
            tracing::debug!(method = %req.method(), status = refused.status().as_u16(), "API request refused");
            return *refused;
        }
    }
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/health") => json_response(StatusCode::OK, json!({"status": "ok"})),
        (Method::GET, "/metrics") => {
            respond(StatusCode::OK, "text/plain; version=0.0.4", api.metrics.render())
        }
        (Method::GET, "/pipelines") => {
            json_response(StatusCode::OK, json!({ "pipelines": api.manager.list().await }))
        }
        (Method::POST, "/pipelines") => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}")),
            };
            let spec: PipelineSpec = match serde_json::from_slice(&body) {
                Ok(s) => s,
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            // API callers are trusted less than the config file: tuning properties only.
            if let Err(e) = spec
                .validate("pipeline")
                .and_then(|()| spec.check_api_options("pipeline"))
            {
                return error(StatusCode::BAD_REQUEST, e.to_string());
            }
            match api.manager.add(spec).await {
                Ok(view) => json_response(StatusCode::CREATED, json!(view)),
                Err(e @ ManagerError::Exists(_)) => error(StatusCode::CONFLICT, e.to_string()),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        (Method::DELETE, p) if p.starts_with("/pipelines/") => {
            let name = &p["/pipelines/".len()..];
            match api.manager.remove(name).await {
                Ok(()) => json_response(StatusCode::OK, json!({ "removed": name })),
                Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
            }
        }
        (_, "/health" | "/metrics" | "/pipelines") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such resource: {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = authorization {
            h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    async fn body_of(r: Response<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
        let status = r.status();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn the_token_is_required_and_compared_whole() {
        let token = Secret("0123456789abcdef-token".into());
        assert!(authorize(Some(&token), &headers(Some("Bearer 0123456789abcdef-token"))).is_ok());
        assert!(authorize(Some(&token), &headers(Some("bearer  0123456789abcdef-token "))).is_ok());
        for wrong in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer 0123456789abcdef-toke"),
            Some("Bearer 0123456789abcdef-token2"),
            Some("Basic MDEyMzQ1Njc4OWFiY2RlZi10b2tlbg=="),
            Some("0123456789abcdef-token"),
        ] {
            let refused = authorize(Some(&token), &headers(wrong)).unwrap_err();
            assert!(refused.headers().contains_key(WWW_AUTHENTICATE), "{wrong:?}");
            let (status, body) = body_of(*refused).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
            assert!(
                !body.to_string().contains("0123456789abcdef"),
                "the token is never echoed"
            );
        }
    }

    #[tokio::test]
    async fn without_a_configured_token_the_answer_says_how_to_configure_one() {
        let (status, body) = body_of(*authorize(None, &headers(Some("Bearer anything"))).unwrap_err()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("api_token_env") && message.contains("api_token_file"),
            "{message}"
        );
    }
}
