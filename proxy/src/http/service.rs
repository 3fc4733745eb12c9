//! What one HTTP request is for: the web console's pages ([`ui`]), the ingest daemon's API reached through the
//! console ([`ingest_api`]), or ClickHouse's HTTP interface ([`forward`]: SQL relayed, ASK answered).

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::body::ClientBody;
use super::ui::{self, Route};
use super::{forward, ingest_api, HttpEnv};
use crate::telemetry::{self, Outcome};

/// An answer of the HTTP side: relayed from ClickHouse (or a local ClickHouse-shaped answer), or one of the
/// console's.
pub type Answer = Either<ClientBody, Full<Bytes>>;

/// Answers one HTTP request: the console's paths here, everything else as the ClickHouse HTTP interface.
pub async fn handle(env: &HttpEnv, request: Request<Incoming>, peer: SocketAddr) -> Response<Answer> {
    let path = request.uri().path();
    if path == "/ui" || path.starts_with(ui::PREFIX) {
        let response = console(env, request).await;
        // Console answers are small and sent whole; they count by status class like every HTTP answer.
        let status = response.status();
        let outcome = if status.is_client_error() || status.is_server_error() {
            Outcome::Error
        } else {
            Outcome::Ok
        };
        telemetry::http_response_finished(&env.metrics, status.as_u16(), outcome);
        return response.map(Either::Right);
    }
    forward::handle(env, request, peer).await.map(Either::Left)
}

/// One request under `/ui`: the ingest daemon's API, or a page of the console.
async fn console(env: &HttpEnv, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    match ui::route(request.method(), &path) {
        Route::Ingest(rest) => ingest_api::forward(env, request, rest).await,
        route => ui::console(env, request, route),
    }
}
