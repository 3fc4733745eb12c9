//! The relay loop of a native session: frames packets in both directions and forwards their original
//! bytes, acting on the few it must (an ASK Query, the end of an answer, a Cancel, a client gone mid-query).

use super::ask::decode_owned_query;
use super::*;

impl Session {
    /// Relays packets until one side closes; returns why the connection ended.
    pub(super) async fn relay(mut self, mut shutdown: watch::Receiver<bool>) -> &'static str {
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
        let deadline = self
            .query
            .as_ref()
            .filter(|q| q.expired.is_none())
            .and_then(|q| q.deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std)), if deadline.is_some() => {
                self.query_expired().await?;
            }
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
            _ = crate::listener::stopped(shutdown), if !*draining => {
                *draining = true;
            }
        }
        Ok(Flow::Continue)
    }

    fn is_idle(&self) -> bool {
        self.query.is_none() && self.ask.is_none() && self.generated.is_none() && self.client.buf.is_empty()
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
                Ok((packet, len)) => (
                    client_action(
                        self.ask.is_some(),
                        self.env.route == crate::cluster::Route::Read,
                        &mut self.ctx,
                        packet,
                    ),
                    len,
                ),
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
                ClientAction::Forward {
                    query: Some(kind), ..
                } => {
                    // A new statement: its turn among the user's queries, then upstream under a query id.
                    self.flush_client(pending).await?;
                    pending = 0;
                    let started = Instant::now();
                    let scoped = match self.admit(kind).await {
                        Ok(()) => self.scoped_text(len).await,
                        Err(refusal) => Err(refusal),
                    };
                    let text = match scoped {
                        Ok(text) => text,
                        Err(refusal) => {
                            // Refused like a write on a read endpoint: its external data is swallowed, then
                            // the client gets the exception (and the turn goes back with it).
                            if self.env.audit.enabled() {
                                let text = decode_owned_query(&self.client.buf[..len], self.ctx.revision)
                                    .map(|q| String::from_utf8_lossy(&q.query).into_owned())
                                    .unwrap_or_default();
                                self.pending_audit = self.audit_record(kind, "", &text, "");
                            }
                            self.client.consume(len);
                            self.ask = Some(PendingAsk {
                                started,
                                statement: Err(refusal),
                                query: None,
                            });
                            continue;
                        }
                    };
                    let sent_text = if self.env.audit.enabled() {
                        Some(match &text {
                            Some(scoped) => scoped.clone(),
                            None => {
                                super::ask::decode_owned_query(&self.client.buf[..len], self.ctx.revision)
                                    .map(|q| String::from_utf8_lossy(&q.query).into_owned())
                                    .unwrap_or_default()
                            }
                        })
                    } else {
                        None
                    };
                    let query_id = self.send_query(len, text).await?;
                    // A new answer: its blocks may be shaped differently from the last one's.
                    self.client_frame.forget_layout();
                    self.upstream_frame.forget_layout();
                    let mut in_flight = self.in_flight(kind, started, query_id);
                    if let Some(sent) = sent_text {
                        in_flight.audit = self.audit_record(kind, &in_flight.query_id, &sent, "");
                    }
                    self.query = Some(in_flight);
                }
                ClientAction::Forward { query: None, cancel } => {
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
                    if let Ok(ask) = &statement {
                        self.pending_audit = self.audit_record(StatementKind::Ask, "", "", &ask.question);
                    }
                    let statement = match statement {
                        Ok(ask) => self.admit(StatementKind::Ask).await.map(|()| ask),
                        refused => refused,
                    };
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
                crate::native::budget::MAX_WAIT.as_secs()
            ),
            _ => format!("the packet needs {wanted} bytes to frame, more than max_framing_memory = {limit}"),
        };
        Flow::Passthrough(PassthroughCause::MemoryBudget, detail)
    }

    pub(super) async fn flush_client(&mut self, n: usize) -> Result<(), SessionError> {
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
                    if let Some(elapsed) = self.query.as_ref().and_then(|q| q.expired) {
                        // Killed at its time: nothing more of its answer reaches the client.
                        let ends = packet.ends_query();
                        self.flush_upstream(pending).await?;
                        self.upstream.consume(len);
                        pending = 0;
                        if ends {
                            self.generated = None;
                            self.expired_query_ended(elapsed).await?;
                        }
                        continue;
                    }
                    if self.generated.is_some() {
                        match packet {
                            ServerPacket::Exception(e) => {
                                // Rejected before any block: the client does not see this exception.
                                let generated = self.generated.take().expect("checked above");
                                self.flush_upstream(pending).await?;
                                self.upstream.consume(len);
                                pending = 0;
                                self.generated_query_failed(generated, e.code, e.message).await?;
                                continue;
                            }
                            ServerPacket::Data(_) | ServerPacket::EndOfStream => {
                                if let Some(generated) = self.generated.take() {
                                    generated.run.accepted(&self.env.ask);
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
        self.admitted = None;
        let Some(mut query) = self.query.take() else {
            return;
        };
        let outcome = match packet {
            ServerPacket::Exception(_) => Outcome::Error,
            _ if query.cancelled => Outcome::Cancelled,
            _ => Outcome::Ok,
        };
        let (label, code) = match packet {
            ServerPacket::Exception(e) => ("error", e.code),
            _ if query.cancelled => ("cancelled", 0),
            _ => ("ok", 0),
        };
        let record = query.audit.take();
        self.audit_end(record, label, code, query.started);
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
                "Aurora proxy: ClickHouse at {} ({}) closed the connection before the query's answer ended",
                self.node.node().config.native,
                self.node.node().name()
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
        self.admitted = None;
        let _ = self.client.send(&encode_exception(code, message)).await;
        if let Some(mut query) = self.query.take() {
            let record = query.audit.take();
            self.audit_end(record, "aborted", code, query.started);
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
