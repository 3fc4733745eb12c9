//! Prometheus metrics of the proxy and the `/metrics` endpoint that serves them.
//!
//! Names are stable (dashboards and alerts use them); labels are bounded sets, never user input.
//! Code does not touch these directly: it reports events through [`crate::telemetry`], which logs and counts
//! in one place.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    /// `aurora_proxy_connections_open{protocol}`: client connections open now.
    pub connections_open: IntGaugeVec,
    /// `aurora_proxy_connections_total{protocol}`: client connections accepted.
    pub connections_total: IntCounterVec,
    /// `aurora_proxy_queries_total{protocol, kind, outcome}`: statements by kind (sql, ask) and outcome.
    pub queries_total: IntCounterVec,
    /// `aurora_proxy_query_duration_seconds{protocol, kind}`: from the statement to the end of its answer.
    pub query_duration: HistogramVec,
    /// `aurora_proxy_transferred_bytes_total{protocol, direction}`: bytes relayed each way.
    pub transferred_bytes: IntCounterVec,
    /// `aurora_proxy_upstream_connect_errors_total{protocol}`: failed connections to ClickHouse.
    pub upstream_connect_errors: IntCounterVec,
    /// `aurora_proxy_native_passthrough_total{reason}`: connections the proxy stopped framing and relays as bytes.
    pub native_passthrough: IntCounterVec,
    /// `aurora_proxy_protocol_errors_total{protocol, side}`: connections closed for malformed input.
    pub protocol_errors: IntCounterVec,
    /// `aurora_proxy_http_responses_total{class, outcome}`: HTTP answers by status class (2xx … 5xx) and outcome.
    pub http_responses: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let connections_open = IntGaugeVec::new(
            Opts::new("aurora_proxy_connections_open", "Client connections open now."),
            &["protocol"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(connections_open.clone()))
            .expect("metric registered once");
        let query_duration = HistogramVec::new(
            HistogramOpts::new(
                "aurora_proxy_query_duration_seconds",
                "Time from a statement to the end of its answer.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0,
            ]),
            &["protocol", "kind"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(query_duration.clone()))
            .expect("metric registered once");
        Arc::new(Metrics {
            connections_open,
            connections_total: counter(
                "aurora_proxy_connections_total",
                "Client connections accepted.",
                &["protocol"],
            ),
            queries_total: counter(
                "aurora_proxy_queries_total",
                "Statements by kind (sql, ask) and outcome (ok, error, cancelled, aborted, passthrough).",
                &["protocol", "kind", "outcome"],
            ),
            query_duration,
            transferred_bytes: counter(
                "aurora_proxy_transferred_bytes_total",
                "Bytes relayed, by direction (client_to_upstream, upstream_to_client).",
                &["protocol", "direction"],
            ),
            upstream_connect_errors: counter(
                "aurora_proxy_upstream_connect_errors_total",
                "Failed attempts to connect to the upstream ClickHouse.",
                &["protocol"],
            ),
            native_passthrough: counter(
                "aurora_proxy_native_passthrough_total",
                "Native connections relayed as plain bytes because a packet could not be framed.",
                &["reason"],
            ),
            protocol_errors: counter(
                "aurora_proxy_protocol_errors_total",
                "Connections closed because a peer broke the protocol.",
                &["protocol", "side"],
            ),
            http_responses: counter(
                "aurora_proxy_http_responses_total",
                "HTTP answers by status class (1xx to 5xx) and outcome (ok, error, aborted).",
                &["class", "outcome"],
            ),
            registry,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Serves `/metrics` and `/health` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener accept failed");
                    continue;
                }
            },
            _ = crate::server::stopped(&mut shutdown) => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(metrics_response(&req, &metrics)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn metrics_response(req: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", metrics.render()),
        "/health" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /health\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
