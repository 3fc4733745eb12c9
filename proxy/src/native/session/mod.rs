//! One native client connection: handshake, then a relay loop that frames packets in both directions.
//!
//! The session forwards every packet's original bytes. It acts on a few of them: a Query whose text is an
//! `ASK` statement is answered by Aurora instead of ClickHouse; the end of each answer closes the query's
//! metrics; a client that goes away mid-query makes the proxy cancel the query upstream. A packet the codec
//! cannot frame (an opaque column type, an inter-server packet) turns the rest of the connection into a plain
//! byte relay, so the client still works; a malformed packet closes only this connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use nlq::Statement;
use tokio::sync::watch;

use super::budget::{Budget, Grown, Reservation};
use super::connection::{forward, ClientPeer, Peer};
use super::error::SessionError;
use super::protocol::block::FrameState;
use super::protocol::client_packet::{encode_empty_data, frame_client_packet, ClientPacket};
use super::protocol::exception::encode_exception;
use super::protocol::hello::{addendum_len, ClientHello, ServerHello};
use super::protocol::packets::{ClientCode, ServerCode};
use super::protocol::query::Query;
use super::protocol::server_packet::{frame_server_packet, ServerPacket};
use super::protocol::wire::Reader;
use super::protocol::{Context, DecodeError, Feature, Revision};
use crate::ask::{AskFailure, AskRun, AskService, ParamMode, Prepared};
use crate::codes;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::telemetry::{self, Direction, Outcome, PassthroughCause, Protocol, StatementKind};
use crate::tls::ClientStream;

mod ask;
mod gateway;
mod handshake;
mod relay;

use handshake::handshake;

/// What ClickHouse answers on its native port to an HTTP request; the proxy answers the same.
const HTTP_ON_NATIVE_PORT: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\nThis is the ClickHouse native protocol port of aurora-proxy.\r\nUse the HTTP port for HTTP requests.\r\n";

/// Everything a session needs from the server around it.
#[derive(Clone)]
pub struct SessionEnv {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub ask: Arc<AskService>,
    /// Memory shared by all client connections for packets still being framed (`max_framing_memory`).
    pub framing_budget: Arc<Budget>,
    /// The ClickHouse nodes a connection may be bound to.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// Which nodes this listener's clients go to.
    pub route: crate::cluster::Route,
    /// Proxy users and their limits.
    pub gateway: Arc<crate::gateway::Gateway>,
    /// The nodes' HTTP interfaces: where the proxy sends `KILL QUERY` for a query past its time.
    pub router: Arc<crate::http::route::Router>,
    /// Where each statement's audit record goes.
    pub audit: Arc<crate::gateway::audit::Audit>,
}

/// A statement whose answer has not ended yet.
struct InFlight {
    kind: StatementKind,
    started: Instant,
    cancelled: bool,
    /// The query id upstream (the client's, or one the proxy gave it); empty for an ASK's generated query.
    query_id: String,
    /// When the proxy user's `max_execution_time` runs out.
    deadline: Option<Instant>,
    /// Set when the deadline passed: the query was killed, the rest of its answer is dropped and the client
    /// gets a timeout exception at its end.
    expired: Option<std::time::Duration>,
    /// Its audit record, completed when it ends (`None` without an audit table).
    audit: Option<crate::gateway::audit::AuditRecord>,
}

/// An ASK statement waiting for the client's end of external data before it is answered.
struct PendingAsk {
    started: Instant,
    statement: Result<nlq::AskStatement, Refusal>,
    /// The client's Query packet (settings, client info, compression), reused for the generated query.
    query: Option<Query>,
}

/// Why an intercepted statement is answered with an exception.
enum Refusal {
    /// An ASK that does not parse.
    Syntax(nlq::AskSyntaxError),
    /// SQL that writes, on a read endpoint.
    ReadOnly,
    /// The proxy user's limits: too many queries, or ASK not allowed.
    Gateway {
        kind: StatementKind,
        code: i32,
        message: String,
    },
}

/// A generated query running upstream, watched until its first block: an exception before it means ClickHouse
/// rejected the query, which [`AskRun::rejected`] may correct instead of it reaching the client.
struct Generated {
    run: AskRun,
    /// The client's Query packet the generated query was built from (again for a corrected one).
    query: Query,
}

/// How the relay loop ended.
enum Flow {
    /// Keep relaying.
    Continue,
    /// Stop framing; relay the rest as bytes.
    Passthrough(PassthroughCause, String),
    /// Close the connection.
    Close(&'static str),
}

/// What to do with a framed client packet, decided while the packet still borrows the buffer.
enum ClientAction {
    Forward {
        query: Option<StatementKind>,
        cancel: bool,
    },
    StartAsk(Result<nlq::AskStatement, Refusal>),
    /// Swallowed because it belongs to an intercepted ASK; `ends_data` when it is the empty block.
    SwallowForAsk {
        ends_data: bool,
    },
}

pub struct Session {
    peer: SocketAddr,
    env: Arc<SessionEnv>,
    client: ClientPeer,
    upstream: Peer,
    /// The node `upstream` is connected to, counted there while the connection lives.
    node: crate::cluster::NodeLease,
    ctx: Context,
    /// The client still owes its addendum (quota key) after the handshake.
    expect_addendum: bool,
    query: Option<InFlight>,
    ask: Option<PendingAsk>,
    generated: Option<Generated>,
    /// Who the client logged in as, for the catalog of its ASK questions.
    asker: nlq::Asker,
    /// The proxy user the client logged in as (or pass-through).
    login: crate::gateway::Login,
    /// The running statement's turn among its proxy user's concurrent queries, given back when it ends.
    admitted: Option<crate::gateway::Admission>,
    /// The audit record of an intercepted statement (an ASK, a refused statement) until it is answered.
    pending_audit: Option<crate::gateway::audit::AuditRecord>,
    /// Framing progress of the incomplete packet at the head of each buffer.
    client_frame: FrameState,
    upstream_frame: FrameState,
    /// What this client's incomplete packet holds of the shared framing budget.
    client_memory: Reservation,
}

/// Serves one client connection to its end.
pub async fn run(
    stream: ClientStream,
    peer: SocketAddr,
    env: Arc<SessionEnv>,
    shutdown: watch::Receiver<bool>,
) {
    let metrics = env.metrics.clone();
    telemetry::connection_opened(&metrics, Protocol::Native, peer);
    let reason = match tokio::time::timeout(
        env.config.handshake_timeout,
        handshake(stream, peer, env.clone()),
    )
    .await
    {
        Err(_) => "handshake timed out",
        Ok(Err(error)) => {
            log_session_error(&metrics, peer, &error);
            "handshake failed"
        }
        Ok(Ok(None)) => "refused during handshake",
        Ok(Ok(Some(session))) => session.relay(shutdown).await,
    };
    telemetry::connection_closed(&metrics, Protocol::Native, peer, reason);
}

fn log_session_error(metrics: &Metrics, peer: SocketAddr, error: &SessionError) {
    match error {
        SessionError::ClientProtocol(e) => {
            telemetry::protocol_error(metrics, Protocol::Native, peer, "client", e)
        }
        SessionError::UpstreamProtocol(e) => {
            telemetry::protocol_error(metrics, Protocol::Native, peer, "upstream", e)
        }
        SessionError::Io(e) => tracing::debug!(%peer, error = %e, "connection ended by I/O error"),
    }
}

/// Decides what to do with a client packet; `ask_pending` when an intercepted ASK awaits its end of data.
/// On a read endpoint (`read_only`), a Query that writes is refused before it reaches ClickHouse.
fn client_action(
    ask_pending: bool,
    read_only: bool,
    ctx: &mut Context,
    packet: ClientPacket<'_>,
) -> ClientAction {
    if ask_pending {
        // Until the empty block that ends external data, everything belongs to the ASK.
        let ends_data = matches!(packet, ClientPacket::Data(shape) if shape.is_empty());
        return ClientAction::SwallowForAsk { ends_data };
    }
    match packet {
        ClientPacket::Query(query) => {
            ctx.compression = query.compression;
            match nlq::classify(query.query) {
                Ok(Statement::Sql) if read_only && nlq::reads_only(query.query, true) != Some(true) => {
                    ClientAction::StartAsk(Err(Refusal::ReadOnly))
                }
                Ok(Statement::Sql) => ClientAction::Forward {
                    query: Some(StatementKind::Sql),
                    cancel: false,
                },
                Ok(Statement::Ask(ask)) => ClientAction::StartAsk(Ok(ask)),
                Err(syntax) => ClientAction::StartAsk(Err(Refusal::Syntax(syntax))),
            }
        }
        ClientPacket::Cancel => ClientAction::Forward {
            query: None,
            cancel: true,
        },
        _ => ClientAction::Forward {
            query: None,
            cancel: false,
        },
    }
}

/// What a framing error means for the relay loop.
enum Stop {
    /// The packet is incomplete: wait until the buffer holds this many bytes.
    Wait(usize),
    /// Framing on needs this many decompressed bytes, more than the allowance (within the packet limit).
    Grow(usize),
    /// Valid traffic the proxy cannot frame (or a packet over the size limit): relay the rest as bytes.
    Passthrough(PassthroughCause, String),
    /// The peer broke the protocol.
    Broken(DecodeError),
}

/// `held` is what the packet already holds decompressed: `max_framed_packet` bounds raw and decompressed bytes
/// together.
fn stop(error: DecodeError, max_framed_packet: u64, held: usize, side: &str) -> Stop {
    let too_large = |bytes: usize| bytes as u64 > max_framed_packet;
    match error {
        DecodeError::Incomplete { needed } if too_large(needed.saturating_add(held)) => Stop::Passthrough(
            PassthroughCause::TooLarge,
            format!("{side} packet larger than {max_framed_packet} bytes"),
        ),
        DecodeError::Incomplete { needed } => Stop::Wait(needed),
        DecodeError::OverAllowance { needed } if too_large(needed) => Stop::Passthrough(
            PassthroughCause::TooLarge,
            format!("{side} packet larger than {max_framed_packet} bytes decompressed"),
        ),
        DecodeError::OverAllowance { needed } => Stop::Grow(needed),
        DecodeError::Unsupported(reason) => Stop::Passthrough(PassthroughCause::Unframeable, reason),
        broken @ (DecodeError::Malformed(_) | DecodeError::Rejected { .. }) => Stop::Broken(broken),
    }
}

/// Forwards the first `n` buffered bytes of `from` to `to` and counts them.
async fn forward_counted<A, B>(
    from: &mut Peer<A>,
    to: &mut Peer<B>,
    n: usize,
    metrics: &Metrics,
    direction: Direction,
) -> Result<(), SessionError>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if n > 0 {
        forward(from, to, n).await?;
        telemetry::bytes_relayed(metrics, Protocol::Native, direction, n);
    }
    Ok(())
}

/// A process-unique id for each native connection's ASK session.
fn next_session_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
