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
use super::protocol::query::{Query, Setting, Settings};
use super::protocol::server_packet::{frame_server_packet, ServerPacket};
use super::protocol::wire::{put_bytes, put_varuint, Reader};
use super::protocol::{Context, DecodeError, Feature, Revision};
use crate::ask::{AskFailure, AskService, ParamMode, Prepared};
use crate::codes;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::telemetry::{self, Direction, Outcome, PassthroughCause, Protocol, QueryKind};
use crate::tls::ClientStream;

/// What ClickHouse answers on its native port to an HTTP request; the proxy answers the same.
const HTTP_ON_NATIVE_PORT: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\nThis is the ClickHouse native protocol port of aurora-proxy.\r\nUse the HTTP port for HTTP requests.\r\n";

/// Everything a session needs from the server around it.
pub struct SessionEnv {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub ask: Arc<AskService>,
    /// Memory shared by all client connections for packets still being framed (`max_framing_memory`).
    pub framing_budget: Arc<Budget>,
}

/// A statement whose answer has not ended yet.
struct InFlight {
    kind: QueryKind,
    started: Instant,
    cancelled: bool,
}

/// An ASK statement waiting for the client's end of external data before it is answered.
struct PendingAsk {
    started: Instant,
    statement: Result<nlq::AskStatement, nlq::AskSyntaxError>,
    /// The client's Query packet (settings, client info, compression), reused for the generated query.
    query: Option<Query>,
}

/// A generated query running upstream, watched until its first block: an exception before it means ClickHouse
/// rejected the query, which gets one correction instead of reaching the client.
struct AskRun {
    prepared: Prepared,
    ask: nlq::AskStatement,
    query: Query,
    corrected: bool,
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
        query: Option<QueryKind>,
        cancel: bool,
    },
    StartAsk(Result<nlq::AskStatement, nlq::AskSyntaxError>),
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
    ctx: Context,
    /// The client still owes its addendum (quota key) after the handshake.
    expect_addendum: bool,
    query: Option<InFlight>,
    ask: Option<PendingAsk>,
    ask_run: Option<AskRun>,
    /// Who the client logged in as, for the catalog of its ASK questions.
    asker: nlq::Asker,
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

/// Reads the client's Hello, connects upstream and relays the handshake with the revision rewritten.
/// `Ok(None)` when the connection ended during the handshake in an orderly way (refused login, bad upstream).
async fn handshake(
    stream: ClientStream,
    peer: SocketAddr,
    env: Arc<SessionEnv>,
) -> Result<Option<Session>, SessionError> {
    let mut client = Peer::new(stream);
    let hello = loop {
        if client.buf.starts_with(b"GET ")
            || client.buf.starts_with(b"POST")
            || client.buf.starts_with(b"HEAD")
        {
            client.send(HTTP_ON_NATIVE_PORT).await?;
            return Ok(None);
        }
        match ClientHello::decode(&client.buf) {
            Ok((hello, len)) => {
                client.consume(len);
                break hello;
            }
            Err(DecodeError::Incomplete { needed }) => client.needed = needed,
            Err(e) => {
                if let DecodeError::Rejected { code, reason } = &e {
                    // As ClickHouse does: the client learns why before the connection closes.
                    client.send(&encode_exception(*code, &format!("Aurora proxy: {reason}"))).await?;
                }
                return Err(SessionError::ClientProtocol(e));
            }
        }
        if client.read_more().await? == 0 {
            return Ok(None);
        }
    };
    tracing::debug!(%peer, ?hello, "client hello");

    let upstream_addr = env.config.upstream_native.as_str();
    let upstream_stream = match super::upstream::connect(upstream_addr, env.config.connect_timeout).await {
        Ok(stream) => stream,
        Err(error) => {
            telemetry::upstream_connect_failed(&env.metrics, Protocol::Native, upstream_addr, &error);
            let message = format!("Aurora proxy: cannot connect to ClickHouse at {upstream_addr}: {error}");
            client
                .send(&encode_exception(codes::NETWORK_ERROR, &message))
                .await?;
            return Ok(None);
        }
    };
    let mut upstream = Peer::new(upstream_stream);
    let announced = hello.revision.min(super::protocol::PROXY_MAX_REVISION);
    upstream.send(&hello.encode_with_revision(announced)).await?;

    // Relay until the server's Hello: an Exception (wrong password, unknown user) or the SSH challenge
    // exchange may come first.
    loop {
        while upstream.ready() {
            match frame_handshake_server_packet(&upstream.buf, announced) {
                Ok(HandshakeStep::Hello(server_hello, len)) => {
                    upstream.consume(len);
                    let revision = Revision::negotiate(hello.revision, server_hello.revision);
                    crate::dialect::learn(crate::dialect::Dialect::of_version(
                        server_hello.version_major,
                        server_hello.version_minor,
                    ));
                    client
                        .send(&server_hello.encode_with_revision(
                            server_hello.revision.min(super::protocol::PROXY_MAX_REVISION),
                        ))
                        .await?;
                    tracing::debug!(%peer, server = %server_hello.server_name, %revision, "handshake done");
                    let expect_addendum = revision.has(super::protocol::Feature::Addendum);
                    return Ok(Some(Session {
                        peer,
                        client,
                        upstream,
                        ctx: Context {
                            revision,
                            compression: false,
                        },
                        expect_addendum,
                        query: None,
                        ask: None,
                        ask_run: None,
                        asker: nlq::Asker {
                            credentials: nlq::clickhouse::Credentials::new(
                                String::from_utf8_lossy(&hello.user),
                                String::from_utf8_lossy(&hello.password),
                            ),
                            database: String::from_utf8_lossy(&hello.database).into_owned(),
                            // One connection is one session: a follow-up refines its previous ASK.
                            session: Some(format!("native/{}", next_session_id())),
                        },
                        client_frame: FrameState::default(),
                        upstream_frame: FrameState::default(),
                        client_memory: Reservation::new(env.framing_budget.clone()),
                        env,
                    }));
                }
                Ok(HandshakeStep::Relay(len)) => forward(&mut upstream, &mut client, len).await?,
                Ok(HandshakeStep::Refused(len)) => {
                    forward(&mut upstream, &mut client, len).await?;
                    return Ok(None);
                }
                Err(DecodeError::Incomplete { needed }) => upstream.needed = needed,
                Err(e) => return Err(SessionError::UpstreamProtocol(e)),
            }
        }
        while client.ready() {
            match frame_handshake_client_packet(&client.buf) {
                Ok(len) => forward(&mut client, &mut upstream, len).await?,
                Err(DecodeError::Incomplete { needed }) => client.needed = needed,
                Err(e) => return Err(SessionError::ClientProtocol(e)),
            }
        }
        tokio::select! {
            n = upstream.read_more() => if n? == 0 {
                let message = format!("Aurora proxy: ClickHouse at {upstream_addr} closed the connection during the handshake");
                client.send(&encode_exception(codes::NETWORK_ERROR, &message)).await?;
                return Ok(None);
            },
            n = client.read_more() => if n? == 0 { return Ok(None) },
        }
    }
}

enum HandshakeStep {
    Hello(ServerHello, usize),
    /// A packet to pass to the client before the Hello (SSH challenge).
    Relay(usize),
    /// An exception: the server refused the client.
    Refused(usize),
}

fn frame_handshake_server_packet(buf: &[u8], announced: Revision) -> Result<HandshakeStep, DecodeError> {
    let mut r = Reader::new(buf);
    match ServerCode::from_u64(r.varuint()?) {
        Some(ServerCode::Hello) => {
            let (hello, len) = ServerHello::decode(buf, announced)?;
            Ok(HandshakeStep::Hello(hello, len))
        }
        Some(ServerCode::Exception) => {
            super::protocol::exception::decode_exception(&mut r)?;
            Ok(HandshakeStep::Refused(r.position()))
        }
        Some(ServerCode::SshChallenge) => {
            r.bytes()?;
            Ok(HandshakeStep::Relay(r.position()))
        }
        _ => Err(DecodeError::malformed(
            "unexpected packet from the server during the handshake",
        )),
    }
}

/// Client packets allowed between Hello and the server's Hello: the SSH challenge exchange.
fn frame_handshake_client_packet(buf: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader::new(buf);
    match ClientCode::from_u64(r.varuint()?) {
        Some(ClientCode::SshChallengeRequest) => Ok(r.position()),
        Some(ClientCode::SshChallengeResponse) => {
            r.bytes_at_most(super::protocol::hello::MAX_HELLO_STRING, "SSH challenge response")?;
            Ok(r.position())
        }
        _ => Err(DecodeError::malformed(
            "unexpected packet from the client during the handshake",
        )),
    }
}

impl Session {
    /// Relays packets until one side closes; returns why the connection ended.
    async fn relay(mut self, mut shutdown: watch::Receiver<bool>) -> &'static str {
        let mut draining = *shutdown.borrow();
        loop {
            let flow = match self.step(&mut shutdown, &mut draining).await {
                Ok(flow) => flow,
                Err(error) => {
                    log_session_error(&self.env.metrics, self.peer, &error);
                    self.fail_in_flight(&error).await;
                    return "error";
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(reason) => return reason,
                Flow::Passthrough(cause, detail) => return self.passthrough(cause, &detail).await,
            }
        }
    }

    /// Frames what is buffered, then waits for more bytes or for shutdown.
    async fn step(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        draining: &mut bool,
    ) -> Result<Flow, SessionError> {
        match self.drain_client().await? {
            Flow::Continue => {}
            other => return Ok(other),
        }
        match self.drain_upstream().await? {
            Flow::Continue => {}
            other => return Ok(other),
        }
        if *draining && self.is_idle() {
            return Ok(Flow::Close("shutdown"));
        }
        tokio::select! {
            n = self.client.read_more() => {
                if n? == 0 {
                    return Ok(self.client_gone().await);
                }
            }
            n = self.upstream.read_more() => {
                if n? == 0 {
                    return self.upstream_gone().await;
                }
            }
            _ = crate::server::stopped(shutdown), if !*draining => {
                *draining = true;
            }
        }
        Ok(Flow::Continue)
    }

    fn is_idle(&self) -> bool {
        self.query.is_none() && self.ask.is_none() && self.ask_run.is_none() && self.client.buf.is_empty()
    }

    /// Frames and handles complete client packets; forwards runs of them in one write.
    async fn drain_client(&mut self) -> Result<Flow, SessionError> {
        let mut pending = 0usize;
        loop {
            if self.client.buf.len() <= pending || self.client.buf.len() < self.client.needed {
                break;
            }
            let buf = &self.client.buf[pending..];
            if self.expect_addendum {
                match addendum_len(buf, self.ctx.revision) {
                    Ok(len) => {
                        self.expect_addendum = false;
                        pending += len;
                        continue;
                    }
                    Err(DecodeError::Incomplete { needed }) => {
                        self.client.needed = pending + needed;
                        break;
                    }
                    Err(e) => return Err(SessionError::ClientProtocol(e)),
                }
            }
            let raw_held = self.client.buf.len();
            self.client_frame
                .set_allowance(self.client_memory.allowance().saturating_sub(raw_held));
            let framed = frame_client_packet(buf, &self.ctx, &mut self.client_frame);
            let limit = self.env.config.max_framed_packet;
            let (action, len) = match framed {
                Ok((packet, len)) => (client_action(self.ask.is_some(), &mut self.ctx, packet), len),
                Err(e) => match stop(e, limit, self.client_frame.held(), "client") {
                    Stop::Wait(needed) => {
                        self.client.needed = pending + needed;
                        break;
                    }
                    Stop::Grow(needed) => {
                        // More decompressed bytes than this connection holds budget for: forward what is
                        // framed, then wait for budget (reading pauses meanwhile) and frame the packet on.
                        self.flush_client(pending).await?;
                        pending = 0;
                        let wanted = self.client.buf.len().saturating_add(needed);
                        match self.client_memory.grow_to(wanted).await {
                            Grown::Yes => continue,
                            refused => return Ok(self.budget_refused(refused, wanted)),
                        }
                    }
                    Stop::Passthrough(cause, detail) => {
                        self.flush_client(pending).await?;
                        return Ok(Flow::Passthrough(cause, detail));
                    }
                    Stop::Broken(e) => return Err(SessionError::ClientProtocol(e)),
                },
            };
            match action {
                ClientAction::Forward { query, cancel } => {
                    if let Some(kind) = query {
                        // A new answer: its blocks may be shaped differently from the last one's.
                        self.client_frame.forget_layout();
                        self.upstream_frame.forget_layout();
                        self.query = Some(InFlight {
                            kind,
                            started: Instant::now(),
                            cancelled: false,
                        });
                    }
                    if cancel {
                        if let Some(q) = &mut self.query {
                            q.cancelled = true;
                        }
                    }
                    pending += len;
                }
                ClientAction::StartAsk(statement) => {
                    self.flush_client(pending).await?;
                    pending = 0;
                    let query = decode_owned_query(&self.client.buf[..len], self.ctx.revision);
                    self.client.consume(len);
                    self.ask = Some(PendingAsk {
                        started: Instant::now(),
                        statement,
                        query,
                    });
                }
                ClientAction::SwallowForAsk { ends_data } => {
                    self.flush_client(pending).await?;
                    pending = 0;
                    self.client.consume(len);
                    if ends_data {
                        self.answer_ask().await?;
                    }
                }
            }
        }
        self.flush_client(pending).await?;
        // Reserve what the packet at the head of the buffer will need before reading on, and give back what a
        // packet that has left the buffer held.
        let needed = self.client.buf.len().max(self.client.needed);
        let held = needed.saturating_add(self.client_frame.held());
        if held > self.client_memory.allowance() {
            match self.client_memory.grow_to(held).await {
                Grown::Yes => {}
                refused => return Ok(self.budget_refused(refused, held)),
            }
        } else {
            self.client.compact();
            self.client_memory.shrink_to(held);
        }
        Ok(Flow::Continue)
    }

    /// The shared framing budget cannot hold this connection's packet: it stops framing and relays its bytes
    /// as they are, which needs no more memory.
    fn budget_refused(&self, refused: Grown, wanted: usize) -> Flow {
        let limit = self.env.config.max_framing_memory;
        let detail = match refused {
            Grown::TimedOut => format!(
                "the proxy's framing memory (max_framing_memory = {limit} bytes) stayed in use by other connections for {} s",
                super::budget::MAX_WAIT.as_secs()
            ),
            _ => format!("the packet needs {wanted} bytes to frame, more than max_framing_memory = {limit}"),
        };
        Flow::Passthrough(PassthroughCause::MemoryBudget, detail)
    }

    async fn flush_client(&mut self, n: usize) -> Result<(), SessionError> {
        let direction = Direction::ClientToUpstream;
        forward_counted(
            &mut self.client,
            &mut self.upstream,
            n,
            &self.env.metrics,
            direction,
        )
        .await
    }

    /// Answers the pending ASK statement: plans it and sends the generated query upstream in the client's
    /// own Query packet (its settings, client info and compression), or answers with an exception.
    async fn answer_ask(&mut self) -> Result<(), SessionError> {
        let Some(pending) = self.ask.take() else {
            return Ok(());
        };
        let ask = match pending.statement {
            Ok(ask) => ask,
            Err(syntax) => {
                let failure = self.env.ask.syntax_error(&syntax);
                return self.fail_ask(&failure, pending.started).await;
            }
        };
        let Some(query) = pending.query else {
            let failure = AskFailure {
                code: codes::SYNTAX_ERROR,
                message: "Aurora: the Query packet of this ASK could not be read".into(),
            };
            return self.fail_ask(&failure, pending.started).await;
        };
        let mode = self.param_mode();
        match self.env.ask.plan(&ask, &self.asker, mode).await {
            Ok(prepared) => {
                self.run_generated(prepared, ask, query, false, pending.started)
                    .await
            }
            Err(failure) => self.fail_ask(&failure, pending.started).await,
        }
    }

    /// How this connection's server takes query parameters.
    fn param_mode(&self) -> ParamMode {
        if self.ctx.revision.has(Feature::Parameters) {
            ParamMode::Parameters
        } else {
            ParamMode::Literals
        }
    }

    /// Sends a generated query (and the empty block that ends its external data) upstream.
    async fn run_generated(
        &mut self,
        prepared: Prepared,
        ask: nlq::AskStatement,
        query: Query,
        corrected: bool,
        started: Instant,
    ) -> Result<(), SessionError> {
        let packet = match generated_query_packet(&query, &prepared, self.ctx.revision) {
            Ok(packet) => packet,
            Err(message) => {
                let failure = AskFailure {
                    code: codes::BAD_ARGUMENTS,
                    message,
                };
                return self.fail_ask(&failure, started).await;
            }
        };
        let mut bytes = Vec::with_capacity(packet.query.len() + 256);
        packet.encode(self.ctx.revision, &mut bytes);
        bytes.extend_from_slice(&encode_empty_data(query.compression));
        self.ctx.compression = query.compression;
        self.upstream_frame.forget_layout();
        self.upstream.send(&bytes).await?;
        telemetry::bytes_relayed(
            &self.env.metrics,
            Protocol::Native,
            Direction::ClientToUpstream,
            bytes.len(),
        );
        if self.query.is_none() {
            self.query = Some(InFlight {
                kind: QueryKind::Ask,
                started,
                cancelled: false,
            });
        }
        self.ask_run = Some(AskRun {
            prepared,
            ask,
            query,
            corrected,
        });
        Ok(())
    }

    /// Answers the ASK with an exception and closes its metrics.
    async fn fail_ask(&mut self, failure: &AskFailure, started: Instant) -> Result<(), SessionError> {
        self.client
            .send(&encode_exception(failure.code, &failure.message))
            .await?;
        let in_flight = self.query.take();
        telemetry::query_finished(
            &self.env.metrics,
            Protocol::Native,
            QueryKind::Ask,
            Outcome::Error,
            in_flight.map_or(started, |q| q.started).elapsed(),
        );
        Ok(())
    }

    /// ClickHouse answered a generated query with an exception before any block: correct once, else report.
    async fn generated_query_failed(
        &mut self,
        run: AskRun,
        code: i32,
        message: String,
    ) -> Result<(), SessionError> {
        let started = self.query.as_ref().map_or(run.prepared.started, |q| q.started);
        if run.corrected || run.prepared.explain || run.prepared.plan.cached.is_some() {
            let failure = self
                .env
                .ask
                .sql_rejected(&run.prepared, Some(code), &message, run.corrected);
            return self.fail_ask(&failure, started).await;
        }
        let mode = self.param_mode();
        match self
            .env
            .ask
            .correct(&run.prepared, &run.ask, &self.asker, mode, &message)
            .await
        {
            Ok(prepared) => {
                self.run_generated(prepared, run.ask, run.query, true, started)
                    .await
            }
            Err(failure) => self.fail_ask(&failure, started).await,
        }
    }

    /// Frames complete server packets and forwards them in one write.
    async fn drain_upstream(&mut self) -> Result<Flow, SessionError> {
        let mut pending = 0usize;
        loop {
            if self.upstream.buf.len() <= pending || self.upstream.buf.len() < self.upstream.needed {
                break;
            }
            let buf = &self.upstream.buf[pending..];
            let limit = self.env.config.max_framed_packet;
            self.upstream_frame
                .set_allowance((limit as usize).saturating_sub(self.upstream.buf.len()));
            match frame_server_packet(buf, &self.ctx, &mut self.upstream_frame) {
                Ok((packet, len)) => {
                    if self.ask_run.is_some() {
                        match packet {
                            ServerPacket::Exception(e) => {
                                // Rejected before any block: the client does not see this exception.
                                let run = self.ask_run.take().expect("checked above");
                                self.flush_upstream(pending).await?;
                                self.upstream.consume(len);
                                pending = 0;
                                self.generated_query_failed(run, e.code, e.message).await?;
                                continue;
                            }
                            ServerPacket::Data(_) | ServerPacket::EndOfStream => {
                                if let Some(run) = self.ask_run.take() {
                                    self.env.ask.answered(&run.prepared);
                                }
                            }
                            _ => {}
                        }
                    }
                    pending += len;
                    if packet.ends_query() {
                        self.finish_query(&packet);
                    }
                }
                Err(e) => match stop(e, limit, self.upstream_frame.held(), "server") {
                    Stop::Wait(needed) => {
                        self.upstream.needed = pending + needed;
                        break;
                    }
                    // The allowance is the whole packet limit: a larger answer block is relayed unframed.
                    Stop::Grow(_) => {
                        self.flush_upstream(pending).await?;
                        return Ok(Flow::Passthrough(
                            PassthroughCause::TooLarge,
                            format!("server packet larger than {limit} bytes decompressed"),
                        ));
                    }
                    Stop::Passthrough(cause, detail) => {
                        self.flush_upstream(pending).await?;
                        return Ok(Flow::Passthrough(cause, detail));
                    }
                    Stop::Broken(e) => {
                        self.flush_upstream(pending).await?;
                        return Err(SessionError::UpstreamProtocol(e));
                    }
                },
            }
        }
        self.flush_upstream(pending).await?;
        Ok(Flow::Continue)
    }

    async fn flush_upstream(&mut self, n: usize) -> Result<(), SessionError> {
        let direction = Direction::UpstreamToClient;
        forward_counted(
            &mut self.upstream,
            &mut self.client,
            n,
            &self.env.metrics,
            direction,
        )
        .await
    }

    fn finish_query(&mut self, packet: &ServerPacket) {
        let Some(query) = self.query.take() else {
            return;
        };
        let outcome = match packet {
            ServerPacket::Exception(_) => Outcome::Error,
            _ if query.cancelled => Outcome::Cancelled,
            _ => Outcome::Ok,
        };
        telemetry::query_finished(
            &self.env.metrics,
            Protocol::Native,
            query.kind,
            outcome,
            query.started.elapsed(),
        );
    }

    /// The client closed its side. A running query is cancelled upstream before the connection closes.
    async fn client_gone(&mut self) -> Flow {
        if let Some(query) = self.query.take() {
            // Complete client packets were all forwarded, so the upstream stream is at a packet boundary.
            let _ = self.upstream.send(&[ClientCode::Cancel as u8]).await;
            telemetry::query_finished(
                &self.env.metrics,
                Protocol::Native,
                query.kind,
                Outcome::Aborted,
                query.started.elapsed(),
            );
            return Flow::Close("client closed during a query");
        }
        Flow::Close("client closed")
    }

    /// ClickHouse closed its side. A client waiting for an answer gets an exception that says so.
    async fn upstream_gone(&mut self) -> Result<Flow, SessionError> {
        if self.query.is_some() || !self.upstream.buf.is_empty() {
            let message = format!(
                "Aurora proxy: ClickHouse at {} closed the connection before the query's answer ended",
                self.env.config.upstream_native
            );
            self.fail_in_flight_with(codes::NETWORK_ERROR, &message).await;
            return Ok(Flow::Close("upstream closed during a query"));
        }
        Ok(Flow::Close("upstream closed"))
    }

    async fn fail_in_flight(&mut self, error: &SessionError) {
        if self.query.is_some() {
            // If the client is what failed, this cancels its query; if ClickHouse failed, it is harmless.
            let _ = self.upstream.send(&[ClientCode::Cancel as u8]).await;
        }
        let code = match error {
            SessionError::ClientProtocol(DecodeError::Rejected { code, .. }) => *code,
            SessionError::ClientProtocol(_) => codes::UNKNOWN_PACKET_FROM_CLIENT,
            _ => codes::NETWORK_ERROR,
        };
        let message = match error {
            SessionError::ClientProtocol(DecodeError::Rejected { reason, .. }) => {
                format!("Aurora proxy: {reason}")
            }
            SessionError::ClientProtocol(e) => {
                format!("Aurora proxy: malformed packet from the client: {e}")
            }
            SessionError::UpstreamProtocol(e) => {
                format!("Aurora proxy: malformed packet from ClickHouse: {e}")
            }
            SessionError::Io(e) => format!("Aurora proxy: connection error: {e}"),
        };
        self.fail_in_flight_with(code, &message).await;
    }

    /// Ends a running query with an exception to the client (the client side is always at a packet boundary:
    /// only complete packets are forwarded).
    async fn fail_in_flight_with(&mut self, code: i32, message: &str) {
        let _ = self.client.send(&encode_exception(code, message)).await;
        if let Some(query) = self.query.take() {
            telemetry::query_finished(
                &self.env.metrics,
                Protocol::Native,
                query.kind,
                Outcome::Aborted,
                query.started.elapsed(),
            );
        }
    }

    /// Relays the rest of the connection as plain bytes.
    async fn passthrough(mut self, cause: PassthroughCause, detail: &str) -> &'static str {
        telemetry::passthrough_started(&self.env.metrics, self.peer, cause, detail);
        if let Some(query) = self.query.take() {
            telemetry::query_finished(
                &self.env.metrics,
                Protocol::Native,
                query.kind,
                Outcome::Passthrough,
                query.started.elapsed(),
            );
        }
        let buffered_up = self.client.buf.len();
        let buffered_down = self.upstream.buf.len();
        if self.flush_client(buffered_up).await.is_err() || self.flush_upstream(buffered_down).await.is_err()
        {
            return "error";
        }
        // Nothing is framed from here on: what framing held goes back now, not when the connection ends.
        self.client_frame.reset();
        self.upstream_frame.reset();
        self.client.compact();
        self.upstream.compact();
        self.client_memory.shrink_to(0);
        match tokio::io::copy_bidirectional(&mut self.client.stream, &mut self.upstream.stream).await {
            Ok((up, down)) => {
                telemetry::bytes_relayed(
                    &self.env.metrics,
                    Protocol::Native,
                    Direction::ClientToUpstream,
                    up as usize,
                );
                telemetry::bytes_relayed(
                    &self.env.metrics,
                    Protocol::Native,
                    Direction::UpstreamToClient,
                    down as usize,
                );
                "closed after passthrough"
            }
            Err(_) => "error during passthrough",
        }
    }
}

/// Decodes a Query packet (code included) into its owned form; `None` if it does not decode (it was framed, so
/// this does not happen for well-formed traffic).
fn decode_owned_query(packet: &[u8], revision: Revision) -> Option<Query> {
    let mut r = Reader::new(packet);
    r.varuint().ok()?;
    Query::decode(&mut r, revision).ok()
}

/// The client's Query packet with the generated SQL, its parameters and the settings the ASK needs.
fn generated_query_packet(
    original: &Query,
    prepared: &Prepared,
    revision: Revision,
) -> Result<Query, String> {
    let mut query = original.clone();
    query.query = prepared.sql.clone().into_bytes();
    query.query_id = Vec::new();
    query.stage = Query::STAGE_COMPLETE;
    if revision.has(Feature::Parameters) {
        query.parameters = Some(
            prepared
                .parameters
                .iter()
                .map(|(name, value)| Setting {
                    name: name.clone().into_bytes(),
                    flags: Setting::CUSTOM,
                    value: nlq::bind::quoted_string(value).into_bytes(),
                })
                .collect(),
        );
    } else if !prepared.parameters.is_empty() {
        return Err("Aurora: this connection's protocol revision has no query parameters".into());
    }
    match &mut query.settings {
        Settings::Strings(list) => {
            for (name, value) in &prepared.settings {
                list.retain(|s| s.name != name.as_bytes());
                list.push(Setting {
                    name: name.clone().into_bytes(),
                    flags: Setting::IMPORTANT,
                    value: value.clone().into_bytes(),
                });
            }
        }
        Settings::Binary(raw) => {
            for (name, value) in &prepared.settings {
                // Before settings travelled as strings, each value is in its type's binary form. `readonly` is a
                // UInt64 (a varint); others have types only the server's version knows.
                if name != "readonly" {
                    return Err(format!(
                        "Aurora: this server's protocol sends settings in binary form, so ASK cannot pass SETTINGS {name}; run SET {name} = {value} before the ASK instead"
                    ));
                }
                let Ok(number) = value.parse::<u64>() else {
                    return Err(format!("Aurora: readonly = {value} is not a number"));
                };
                // The list ends with an empty name; insert before it.
                let end = raw.pop();
                debug_assert_eq!(end, Some(0), "binary settings end with an empty name");
                put_bytes(raw, name.as_bytes());
                put_varuint(raw, number);
                raw.push(0);
            }
        }
    }
    Ok(query)
}

/// Decides what to do with a client packet; `ask_pending` when an intercepted ASK awaits its end of data.
fn client_action(ask_pending: bool, ctx: &mut Context, packet: ClientPacket<'_>) -> ClientAction {
    if ask_pending {
        // Until the empty block that ends external data, everything belongs to the ASK.
        let ends_data = matches!(packet, ClientPacket::Data(shape) if shape.is_empty());
        return ClientAction::SwallowForAsk { ends_data };
    }
    match packet {
        ClientPacket::Query(query) => {
            ctx.compression = query.compression;
            match nlq::classify(query.query) {
                Ok(Statement::Sql) => ClientAction::Forward {
                    query: Some(QueryKind::Sql),
                    cancel: false,
                },
                Ok(Statement::Ask(ask)) => ClientAction::StartAsk(Ok(ask)),
                Err(syntax) => ClientAction::StartAsk(Err(syntax)),
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
