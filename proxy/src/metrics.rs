//! Prometheus metrics of the proxy and the `/metrics` endpoint that serves them.
//!
//! Names are stable (dashboards and alerts use them); labels are bounded sets, never user input.
//! Connections, queries, bytes and protocol errors are reported as events through [`crate::telemetry`], which
//! logs and counts in one place; the ASK service (`crate::ask`) counts its outcomes, stages, tokens and marks
//! itself, beside the ASK log events it writes.

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
    /// `aurora_ask_total{outcome}`: ASK statements by outcome (ok, rejected, llm_error, sql_error, error).
    pub ask_total: IntCounterVec,
    /// `aurora_ask_llm_duration_seconds`: time of each LLM call.
    pub ask_llm_duration: HistogramVec,
    /// `aurora_ask_llm_tokens_total{kind}`: tokens sent (prompt) and generated (completion).
    pub ask_llm_tokens: IntCounterVec,
    /// `aurora_ask_cache_hits_total{cache}`: ASKs answered from the exact or the semantic cache.
    pub ask_cache_hits: IntCounterVec,
    /// `aurora_ask_retries_total{reason}`: second LLM calls (malformed answer, ClickHouse error).
    pub ask_retries: IntCounterVec,
    /// `aurora_ask_feedback_total{verdict}`: answers users marked good or bad.
    pub ask_feedback: IntCounterVec,
    /// `aurora_ask_stage_duration_seconds{stage}`: time per pipeline stage (catalog, retrieval, context, llm,
    /// validate, execute).
    pub ask_stage_duration: HistogramVec,
    pub node_up: IntGaugeVec,
    pub node_active: IntGaugeVec,
    pub node_chosen: IntCounterVec,
    pub node_probe_duration: HistogramVec,
    /// `aurora_proxy_node_circuit_open_total{node}`: times a node's circuit opened.
    pub node_circuit_open: IntCounterVec,
    /// `aurora_proxy_logins_refused_total{protocol, code}`: logins the proxy users refused (192/193/516, 195).
    pub logins_refused: IntCounterVec,
    /// `aurora_proxy_user_queries_refused_total{user, reason}`: queries a user's limits refused (rate,
    /// queue_full, queue_timeout) or the proxy killed (max_execution_time).
    pub user_refused: IntCounterVec,
    /// `aurora_proxy_audit_records_total`: audit records stored in the audit table.
    pub audit_stored: prometheus::IntCounter,
    /// `aurora_proxy_audit_records_dropped_total{reason}`: audit records not stored (queue_full, clickhouse:
    /// those are in the log instead).
    pub audit_dropped: IntCounterVec,
    /// `aurora_proxy_user_queue_wait_seconds{user}`: how long admitted queries waited for a turn.
    pub user_queue_wait: HistogramVec,
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
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric definition");
            registry
                .register(Box::new(h.clone()))
                .expect("metric registered once");
            h
        };
        let ask_llm_duration = histogram(
            "aurora_ask_llm_duration_seconds",
            "Time of each LLM call made for an ASK.",
            &[],
            vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0],
        );
        let ask_stage_duration = histogram(
            "aurora_ask_stage_duration_seconds",
            "Time per ASK pipeline stage: catalog, retrieval, context, llm, validate, execute.",
            &["stage"],
            vec![
                0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
                120.0,
            ],
        );
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let node_probe_duration = histogram(
            "aurora_proxy_node_probe_duration_seconds",
            "Time of each health probe of a ClickHouse node (native Hello and Ping, then HTTP /ping), by result.",
            &["node", "result"],
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 10.0],
        );
        let metrics = Metrics {
            node_up: gauge(
                "aurora_proxy_node_up",
                "1 while a ClickHouse node takes clients, 0 while health probes or a failed connect hold it out.",
                &["node"],
            ),
            node_active: gauge(
                "aurora_proxy_node_active",
                "Native connections open and HTTP requests running on a ClickHouse node now.",
                &["node", "protocol"],
            ),
            node_chosen: counter(
                "aurora_proxy_node_chosen_total",
                "Native connections and HTTP requests sent to a ClickHouse node (failovers count on each node tried).",
                &["node", "protocol"],
            ),
            node_probe_duration,
            node_circuit_open: counter(
                "aurora_proxy_node_circuit_open_total",
                "Times a ClickHouse node's circuit opened after consecutive failed connects.",
                &["node"],
            ),
            logins_refused: counter(
                "aurora_proxy_logins_refused_total",
                "Client logins the proxy refused (unknown user, wrong password, address not allowed), by code.",
                &["protocol", "code"],
            ),
            user_refused: counter(
                "aurora_proxy_user_queries_refused_total",
                "Queries of a proxy user refused by its limits or killed at its max_execution_time, by reason.",
                &["user", "reason"],
            ),
            audit_stored: {
                let c = prometheus::IntCounter::new(
                    "aurora_proxy_audit_records_total",
                    "Audit records stored in the audit table.",
                )
                .expect("valid metric definition");
                registry.register(Box::new(c.clone())).expect("metric registered once");
                c
            },
            audit_dropped: counter(
                "aurora_proxy_audit_records_dropped_total",
                "Audit records not stored: queue_full (the writer fell behind), clickhouse (the insert failed; the records are in the log).",
                &["reason"],
            ),
            user_queue_wait: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "aurora_proxy_user_queue_wait_seconds",
                        "Time admitted queries of a proxy user waited for one of its concurrent slots.",
                    )
                    .buckets(vec![0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                    &["user"],
                )
                .expect("valid metric definition");
                registry.register(Box::new(h.clone())).expect("metric registered once");
                h
            },
            ask_total: counter(
                "aurora_ask_total",
                "ASK statements by outcome (ok, rejected, llm_error, sql_error, error).",
                &["outcome"],
            ),
            ask_llm_duration,
            ask_llm_tokens: counter(
                "aurora_ask_llm_tokens_total",
                "LLM tokens used by ASK, by kind (prompt, completion).",
                &["kind"],
            ),
            ask_cache_hits: counter(
                "aurora_ask_cache_hits_total",
                "ASKs answered from a cache (exact, semantic).",
                &["cache"],
            ),
            ask_retries: counter(
                "aurora_ask_retries_total",
                "Second LLM calls of an ASK, by reason (malformed, sql_error).",
                &["reason"],
            ),
            ask_feedback: counter(
                "aurora_ask_feedback_total",
                "ASK answers users marked, by verdict (good, bad).",
                &["verdict"],
            ),
            ask_stage_duration,
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
        };
        // Children with known labels exist from the start, so dashboards and alerts see zeros, not gaps.
        for outcome in ["ok", "rejected", "llm_error", "sql_error", "error"] {
            metrics.ask_total.with_label_values(&[outcome]);
        }
        for kind in ["prompt", "completion"] {
            metrics.ask_llm_tokens.with_label_values(&[kind]);
        }
        for cache in ["exact", "semantic"] {
            metrics.ask_cache_hits.with_label_values(&[cache]);
        }
        for reason in ["malformed", "sql_error"] {
            metrics.ask_retries.with_label_values(&[reason]);
        }
        for verdict in ["good", "bad"] {
            metrics.ask_feedback.with_label_values(&[verdict]);
        }
        metrics.ask_llm_duration.with_label_values(&[] as &[&str]);
        for stage in ["catalog", "retrieval", "context", "llm", "validate", "execute"] {
            metrics.ask_stage_duration.with_label_values(&[stage]);
        }
        Arc::new(metrics)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What `/health` answers: whether the proxy can serve (200, else 503) and a text that says why.
pub type HealthReport = Arc<dyn Fn() -> (bool, String) + Send + Sync>;

/// Serves `/metrics` and `/health` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: HealthReport,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener accept failed");
                    continue;
                }
            },
            _ = crate::listener::stopped(&mut shutdown) => return,
        };
        let metrics = metrics.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                let health = health.clone();
                async move { Ok::<_, Infallible>(metrics_response(&req, &metrics, &health)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn metrics_response(
    req: &Request<hyper::body::Incoming>,
    metrics: &Metrics,
    health: &HealthReport,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", metrics.render()),
        "/health" => {
            let (serving, nodes) = health();
            if serving {
                (StatusCode::OK, "text/plain", format!("ok\n{nodes}"))
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("no ClickHouse node is up\n{nodes}"),
                )
            }
        }
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
