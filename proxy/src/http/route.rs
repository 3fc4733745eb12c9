//! Which node answers an HTTP request, and the failover when it cannot be reached.
//!
//! Each request goes to a node [`crate::cluster::Cluster::choose`] picks for the listener's route. A request
//! whose connect fails (nothing of it sent) is sent to the next node; the failed one is out until probes bring
//! it back. Requests with a `session_id` stay on the node that holds that ClickHouse session: sessions live in
//! one server's memory and do not move, so when that node is out the request fails with a clear error instead
//! of starting an empty session elsewhere.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response, Uri};

use super::error::HttpError;
use super::pool::Lease;
use super::request_body::UpstreamBody;
use super::upstream::{SendError, Upstream};
use crate::cluster::{Cluster, Route};
use crate::telemetry::{self, Protocol};

/// Sessions remembered at most; beyond it, new sessions are placed by the strategy without being remembered.
const MAX_SESSIONS: usize = 65_536;
/// How long an unused session is remembered: ClickHouse's largest `session_timeout` by default
/// (`max_session_timeout`, 3600 s).
const SESSION_MEMORY: Duration = Duration::from_secs(3600);

/// The node of each `(user, session_id)` seen lately.
#[derive(Default)]
pub struct Sessions {
    nodes: Mutex<HashMap<(String, String), (usize, Instant)>>,
}

impl Sessions {
    fn get(&self, key: &(String, String)) -> Option<usize> {
        let mut nodes = self.nodes.lock().expect("sessions lock");
        let entry = nodes.get_mut(key)?;
        entry.1 = Instant::now();
        Some(entry.0)
    }

    fn remember(&self, key: (String, String), node: usize) {
        let mut nodes = self.nodes.lock().expect("sessions lock");
        if nodes.len() >= MAX_SESSIONS {
            let now = Instant::now();
            nodes.retain(|_, (_, used)| now.duration_since(*used) < SESSION_MEMORY);
            if nodes.len() >= MAX_SESSIONS {
                return;
            }
        }
        nodes.insert(key, (node, Instant::now()));
    }
}

/// Who asks and in which session, as far as routing needs it.
#[derive(Default)]
pub struct RouteKey {
    /// The ClickHouse user (for `hash_user` and to keep sessions of different users apart).
    pub user: String,
    /// The `session_id` parameter, if any.
    pub session: Option<String>,
    /// The request's `query_id` parameter: the query is remembered on its node while it runs.
    pub query_id: Option<String>,
    /// `KILL QUERY … WHERE query_id = '<this>'`: the request goes to the node running that query.
    pub kills: Option<String>,
}

/// The nodes' HTTP interfaces, in the cluster's order, and the session placements.
pub struct Router {
    pub cluster: std::sync::Arc<Cluster>,
    pub upstreams: Vec<Upstream>,
    sessions: Sessions,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Router {
    pub fn new(
        cluster: std::sync::Arc<Cluster>,
        connect_timeout: Duration,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<Router, HttpError> {
        let upstreams = cluster
            .nodes()
            .iter()
            .map(|node| Upstream::new(&node.config.http, connect_timeout))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Router {
            cluster,
            upstreams,
            sessions: Sessions::default(),
            metrics,
        })
    }

    /// Sends `request` (its URI the client's, in origin form) to a node of `route` and returns the answer's
    /// head with the connection it came on (which counts the request on its node until the answer ends).
    /// `reads`: the request only reads, so it may be sent again when a pooled connection fails under it
    /// ([`Upstream::try_send`]).
    pub async fn send(
        &self,
        route: Route,
        key: &RouteKey,
        mut request: Request<UpstreamBody>,
        reads: bool,
    ) -> Result<(Response<Incoming>, Lease), HttpError> {
        let client_uri: Uri = request.uri().clone();
        // With one node there is nowhere else for a session to be.
        let session_key = key
            .session
            .as_ref()
            .filter(|_| self.upstreams.len() > 1)
            .map(|s| (key.user.clone(), s.clone()));
        // A KILL goes where its query runs (while that node is up); a session stays where it started.
        let kill_node = key
            .kills
            .as_deref()
            .and_then(|id| self.cluster.running_on(id))
            .filter(|&node| self.cluster.nodes()[node].is_up());
        let in_session = kill_node.is_none();
        let pinned = kill_node.or_else(|| session_key.as_ref().and_then(|k| self.sessions.get(k)));
        let mut tried: Vec<usize> = Vec::new();
        let mut last: Option<HttpError> = None;
        loop {
            let lease = match pinned {
                Some(index) if tried.contains(&index) => None,
                Some(index) => {
                    let node = &self.cluster.nodes()[index];
                    if !node.is_up() {
                        return Err(HttpError::SessionNodeDown {
                            node: node.name().to_string(),
                            reason: "health probes fail or a connect was refused".into(),
                        });
                    }
                    self.cluster.lease(index, Protocol::Http)
                }
                None => self.cluster.choose(route, &key.user, &tried, Protocol::Http),
            };
            let Some(mut lease) = lease else {
                return Err(last.unwrap_or_else(|| match self.cluster.circuits_open(route) {
                    Some(reason) => HttpError::CircuitOpen(reason),
                    None => HttpError::NoNode,
                }));
            };
            // Known from now on: ClickHouse may send the answer's head only when the query ends.
            if let Some(id) = &key.query_id {
                self.cluster.running(&mut lease, id);
            }
            let index = lease.node().index;
            let upstream = &self.upstreams[index];
            *request.uri_mut() = upstream.uri_for(&client_uri)?;
            match upstream.try_send(request, reads).await {
                Ok((response, mut connection)) => {
                    if !connection.reused {
                        self.cluster.connected(lease.node());
                    }
                    if let Some(k) = session_key {
                        if pinned.is_none() && in_session {
                            self.sessions.remember(k, index);
                        }
                    }
                    connection.node = Some(lease);
                    return Ok((response, connection));
                }
                Err((error, back)) => {
                    let (reason, connect) = match error {
                        SendError::Connect(reason) => (reason, true),
                        SendError::Failed(reason) => (reason, false),
                    };
                    if connect {
                        telemetry::upstream_connect_failed(
                            &self.metrics,
                            Protocol::Http,
                            &upstream.url,
                            &reason,
                        );
                        self.cluster.connect_failed(lease.node(), &reason);
                    }
                    let error = if connect {
                        HttpError::Connect {
                            upstream: upstream.url.clone(),
                            reason,
                        }
                    } else {
                        HttpError::Upstream {
                            upstream: upstream.url.clone(),
                            reason,
                        }
                    };
                    match back {
                        // Nothing was sent: the next node takes it (a pinned session has no next node).
                        Some(back) if pinned.is_none() => {
                            request = back;
                            tried.push(index);
                            last = Some(error);
                        }
                        Some(_) if connect && in_session => {
                            return Err(HttpError::SessionNodeDown {
                                node: lease.node().name().to_string(),
                                reason: error.to_string().trim_start_matches("Aurora proxy: ").to_string(),
                            })
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
    }
}

impl Router {
    pub fn metrics(&self) -> std::sync::Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// Kills the query `query_id` on the node at `index` (`KILL QUERY … ASYNC`, as `user`): what the proxy does
    /// when a query passes its proxy user's `max_execution_time`.
    pub async fn kill(&self, index: usize, query_id: &str, user: &str, password: &str) -> Result<(), String> {
        use base64::Engine as _;
        let sql = format!(
            "KILL QUERY WHERE query_id = {} ASYNC",
            nlq::bind::quoted_string(query_id)
        );
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let request = Request::post("/")
            .header(hyper::header::AUTHORIZATION, format!("Basic {credentials}"))
            .body(UpstreamBody::full(sql.into(), self.metrics.clone()));
        self.ask_node(index, request, "KILL QUERY", 64 << 10).await
    }

    /// The health probe of the node at `index`: `GET /ping` answers 200 `Ok.` on a live ClickHouse.
    pub async fn ping(&self, index: usize) -> Result<(), String> {
        let request = Request::get("/ping").body(UpstreamBody::empty(self.metrics.clone()));
        self.ask_node(index, request, "/ping", 4096).await
    }

    /// Sends the proxy's own `request` (its URI a path) to the node at `index` and reads the answer (at most
    /// `limit` bytes); an answer other than 2xx is an error naming `what` and the node's text.
    async fn ask_node(
        &self,
        index: usize,
        request: hyper::http::Result<Request<UpstreamBody>>,
        what: &str,
        limit: usize,
    ) -> Result<(), String> {
        let upstream = self.upstreams.get(index).ok_or("no such node")?;
        let fail = |reason: String| format!("HTTP {}: {reason}", upstream.url);
        let mut request = request.map_err(|e| fail(e.to_string()))?;
        let path = request.uri().clone();
        *request.uri_mut() = upstream.uri_for(&path).map_err(|e| fail(e.to_string()))?;
        let (response, lease) = upstream.send(request).await.map_err(|e| match e {
            SendError::Connect(reason) | SendError::Failed(reason) => fail(reason),
        })?;
        let status = response.status();
        let body = super::body::read_answer(response.into_body(), lease, limit)
            .await
            .map_err(fail)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(fail(format!(
                "{what} answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )))
        }
    }
}
