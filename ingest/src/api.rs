//! The daemon's HTTP API (JSON), `/metrics` and `/health`, on `api_listen`.
//!
//! - `GET /health` → `{"status":"ok"}`
//! - `GET /metrics` → Prometheus text
//! - `GET /pipelines` → `{"pipelines":[…]}`
//! - `POST /pipelines` (a pipeline spec) → 201 with the pipeline; 400 `{"error"}` naming the bad key; 409 if it exists
//! - `DELETE /pipelines/{name}` → 200 once flushed and committed; 404 if unknown

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::PipelineSpec;
use crate::metrics::Metrics;
use crate::pipeline::{Manager, ManagerError};

/// Largest request body accepted (a pipeline spec is small).
const MAX_BODY: usize = 1 << 20;

pub struct Api {
    pub manager: Arc<Manager>,
    pub metrics: Arc<Metrics>,
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

async fn handle(api: &Api, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
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
