//! The ClickHouse HTTP interface of the proxy.
//!
//! Flow of one request: [`server`] accepts the connection and runs hyper on it → [`service::handle`] sends the
//! web console's paths to [`ui`] (embedded pages) and [`ingest_api`] (the ingest daemon's API), and hands every
//! other request to [`forward`] → [`forward`] asks [`classify`] what the statement is (reading only the first
//! bytes of the body) → an `ASK` (or `POST /ask`) is answered by [`answer`], in ClickHouse's error shape
//! ([`error`]) when it fails; everything else goes to ClickHouse over a keep-alive connection of [`upstream`]
//! (from [`pool`]), with both bodies streaming ([`request_body`] up, [`body`] back) and nothing buffered whole;
//! the request's own task drives that connection, so the answer is read and relayed without a hop between
//! tasks. Both ways drop hop-by-hop headers (`headers`). URL parameters are read by [`params`] and never
//! rewritten: the upstream sees the query string the client sent.

pub mod answer;
pub mod audit;
pub mod body;
pub mod classify;
pub mod error;
pub mod forward;
pub mod gateway;
mod headers;
pub mod ingest_api;
pub mod params;
pub mod pool;
pub mod request_body;
pub mod route;
pub mod server;
pub mod service;
pub mod ui;
pub mod upstream;

use std::sync::Arc;

use crate::ask::AskService;
use crate::config::Config;
use crate::metrics::Metrics;

pub use error::HttpError;
pub use server::{serve, serve_tls};
pub use upstream::Upstream;

/// Everything the HTTP side needs from the process around it.
pub struct HttpEnv {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Aurora's answer to ASK statements, shared with the native side.
    pub ask: Arc<AskService>,
    /// The nodes' HTTP interfaces and which one takes each request (shared by every HTTP listener).
    pub router: Arc<route::Router>,
    /// Which nodes this listener's requests go to (and, for a read endpoint, that writes are refused).
    pub route: crate::cluster::Route,
    /// Proxy users and their limits.
    pub gateway: Arc<crate::gateway::Gateway>,
    /// Where each statement's audit record goes.
    pub audit: Arc<crate::gateway::audit::Audit>,
}

impl HttpEnv {
    /// Learns the upstream's error dialect from its answer to `SELECT version()` (or from the shape of its
    /// refusal, when the default user may not run it). `false` when ClickHouse could not be asked; the
    /// caller retries later.
    pub async fn probe_dialect(&self) -> bool {
        let Ok(request) = hyper::Request::get("/?query=SELECT%20version()")
            .body(body::UpstreamBody::empty(self.metrics.clone()))
        else {
            return false;
        };
        let key = route::RouteKey {
            user: "default".into(),
            ..Default::default()
        };
        let Ok((response, lease)) = self
            .router
            .send(self.route.for_reads(), &key, request, true)
            .await
        else {
            return false;
        };
        let ok = response.status().is_success();
        let Ok(answer) = body::read_answer(response.into_body(), lease, 64 << 10).await else {
            return false;
        };
        let text = String::from_utf8_lossy(&answer);
        let learnt = if ok {
            let mut parts = text.trim().split('.').map(|p| p.parse::<u64>().ok());
            match (parts.next().flatten(), parts.next().flatten()) {
                (Some(major), Some(minor)) => Some(crate::dialect::Dialect::of_version(major, minor)),
                _ => None,
            }
        } else {
            crate::dialect::Dialect::of_error_body(&text)
        };
        if let Some(dialect) = learnt {
            tracing::debug!(?dialect, "learnt the upstream's error dialect");
            crate::dialect::learn(dialect);
        }
        learnt.is_some()
    }

    /// Builds the environment, with one upstream per node of `cluster`.
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        ask: Arc<AskService>,
        cluster: Arc<crate::cluster::Cluster>,
        gateway: Arc<crate::gateway::Gateway>,
    ) -> Result<HttpEnv, HttpError> {
        let router_metrics = metrics.clone();
        let router = Arc::new(route::Router::new(
            cluster,
            config.connect_timeout,
            metrics.clone(),
        )?);
        Ok(HttpEnv {
            config,
            metrics,
            ask,
            router,
            route: crate::cluster::Route::Any,
            gateway,
            audit: crate::gateway::audit::Audit::off(router_metrics),
        })
    }

    /// The same environment for a listener of another route.
    pub fn with_route(&self, route: crate::cluster::Route) -> HttpEnv {
        HttpEnv {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            ask: self.ask.clone(),
            router: self.router.clone(),
            route,
            gateway: self.gateway.clone(),
            audit: self.audit.clone(),
        }
    }
}
