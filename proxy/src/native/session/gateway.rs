//! What the proxy users' policies do to a native session: a statement waits for its turn among its user's
//! concurrent queries (or is refused), every query runs under a query id (the client's, or one the proxy
//! gives it), and a query past its user's `max_execution_time` is killed on the server, the rest of its
//! answer dropped, and the client told with ClickHouse's timeout exception.

use super::*;
use crate::gateway::audit::AuditRecord;
use crate::gateway::{refusal_message, timeout_message};

impl Session {
    /// A statement that starts now, with its user's deadline.
    pub(super) fn in_flight(&self, kind: StatementKind, started: Instant, query_id: String) -> InFlight {
        InFlight {
            kind,
            started,
            cancelled: false,
            query_id,
            deadline: self
                .login
                .user()
                .and_then(|user| user.max_execution_time())
                .map(|max| started + max),
            expired: None,
            audit: None,
        }
    }

    /// The audit record of a statement starting now (`None` without an audit table).
    pub(super) fn audit_record(
        &self,
        kind: StatementKind,
        query_id: &str,
        query: &str,
        question: &str,
    ) -> Option<AuditRecord> {
        if !self.env.audit.enabled() {
            return None;
        }
        Some(AuditRecord {
            proxy_user: self
                .login
                .user()
                .map(|u| u.name().to_string())
                .unwrap_or_default(),
            clickhouse_user: self.asker.credentials.user.clone(),
            client: self.peer.to_string(),
            protocol: "native",
            node: self.node.node().name().to_string(),
            query_id: query_id.to_string(),
            kind: match kind {
                StatementKind::Ask => "ask",
                _ => "sql",
            },
            query: query.to_string(),
            question: question.to_string(),
            ..Default::default()
        })
    }

    /// Completes and hands on the audit record of a statement that ended with `outcome` (and `code`).
    pub(super) fn audit_end(
        &self,
        record: Option<AuditRecord>,
        outcome: &'static str,
        code: i32,
        started: Instant,
    ) {
        if let Some(mut record) = record {
            record.outcome = outcome;
            record.code = code;
            record.duration_ms = started.elapsed().as_millis() as u64;
            self.env.audit.record(record);
        }
    }

    /// Gives the statement its proxy user's turn (waiting in the user's queue if need be), or the refusal
    /// the client gets instead. Pass-through clients always have their turn.
    pub(super) async fn admit(&mut self, kind: StatementKind) -> Result<(), Refusal> {
        let Some(user) = self.login.user().cloned() else {
            return Ok(());
        };
        if kind == StatementKind::Ask && !user.config.allow_ask {
            return Err(Refusal::Gateway {
                kind,
                code: codes::ACCESS_DENIED,
                message: format!("Aurora: user {} may not use ASK (allow_ask = false)", user.name()),
            });
        }
        match user.limiter.admit().await {
            Ok(admission) => {
                telemetry::user_query_admitted(&self.env.metrics, user.name(), admission.queued);
                self.admitted = Some(admission);
                Ok(())
            }
            Err(refused) => {
                telemetry::user_query_refused(&self.env.metrics, user.name(), refused.reason());
                let (code, message) = refusal_message(user.name(), &refused);
                Err(Refusal::Gateway { kind, code, message })
            }
        }
    }

    /// Sends the Query packet at the head of the client's buffer (`len` bytes) upstream under a query id:
    /// the client's, or a new one when it sent none (the packet is then written again with it). The query
    /// is remembered on its node, so a `KILL QUERY … WHERE query_id = …` through the proxy's HTTP side reaches
    /// it. Returns the id.
    /// `text`: the statement to send instead of the client's (a tenant user's scoped query).
    pub(super) async fn send_query(
        &mut self,
        len: usize,
        text: Option<String>,
    ) -> Result<String, SessionError> {
        let revision = self.ctx.revision;
        let given = {
            let mut r = Reader::new(&self.client.buf[..len]);
            r.varuint().map_err(SessionError::ClientProtocol)?;
            let packet = crate::native::protocol::query::decode_query(&mut r, revision)
                .map_err(SessionError::ClientProtocol)?;
            String::from_utf8_lossy(packet.query_id).into_owned()
        };
        let id = if given.is_empty() || text.is_some() {
            let id = if given.is_empty() {
                crate::gateway::new_query_id()
            } else {
                given
            };
            let mut query =
                super::ask::decode_owned_query(&self.client.buf[..len], revision).ok_or_else(|| {
                    SessionError::ClientProtocol(DecodeError::malformed(
                        "the Query packet could not be read again",
                    ))
                })?;
            query.query_id = id.clone().into_bytes();
            if let Some(text) = text {
                query.query = text.into_bytes();
            }
            let mut bytes = Vec::with_capacity(len + 40);
            query.encode(revision, &mut bytes);
            self.upstream.send(&bytes).await?;
            self.client.consume(len);
            telemetry::bytes_relayed(
                &self.env.metrics,
                Protocol::Native,
                Direction::ClientToUpstream,
                bytes.len(),
            );
            id
        } else {
            self.flush_client(len).await?;
            given
        };
        self.env.cluster.running(&mut self.node, &id);
        Ok(id)
    }

    /// A tenant user's SQL, scoped to its tenant: the text to send instead, or the refusal (code 497) when it
    /// cannot be proven scoped. `None` for other users.
    pub(super) async fn scoped_text(&mut self, len: usize) -> Result<Option<String>, Refusal> {
        if self.asker.tenant.is_none() {
            return Ok(None);
        }
        let refuse = |code, message| Refusal::Gateway {
            kind: StatementKind::Sql,
            code,
            message,
        };
        let query =
            super::ask::decode_owned_query(&self.client.buf[..len], self.ctx.revision).ok_or_else(|| {
                refuse(
                    codes::SYNTAX_ERROR,
                    "Aurora: the Query packet could not be read".into(),
                )
            })?;
        let text = String::from_utf8(query.query).map_err(|_| {
            refuse(
                codes::ACCESS_DENIED,
                "Aurora: tenant scoping: the statement is not UTF-8".into(),
            )
        })?;
        self.env
            .ask
            .scope_sql(&self.asker, &text)
            .await
            .map(Some)
            .map_err(|failure| refuse(failure.code, failure.message))
    }

    /// The running query passed its user's `max_execution_time`: it is cancelled on this connection and
    /// killed on its node, and what it still sends is dropped until it ends.
    pub(super) async fn query_expired(&mut self) -> Result<(), SessionError> {
        let Some(query) = self.query.as_mut() else {
            return Ok(());
        };
        let elapsed = query.started.elapsed();
        query.expired = Some(elapsed);
        let query_id = query.query_id.clone();
        // Complete client packets were all forwarded, so the upstream stream is at a packet boundary.
        self.upstream.send(&[ClientCode::Cancel as u8]).await?;
        if let Some(user) = self.login.user() {
            telemetry::user_query_refused(&self.env.metrics, user.name(), "max_execution_time");
            if !query_id.is_empty() {
                let (name, password) = user.clickhouse_credentials();
                let (name, password) = (name.to_string(), password.to_string());
                let router = self.env.router.clone();
                let node = self.node.node().index;
                tokio::spawn(async move {
                    if let Err(error) = router.kill(node, &query_id, &name, &password).await {
                        tracing::warn!(%query_id, %error, "cannot kill the query past its max_execution_time");
                    }
                });
            }
        }
        Ok(())
    }

    /// The end of an expired query's answer: the client gets the timeout exception instead.
    pub(super) async fn expired_query_ended(
        &mut self,
        elapsed: std::time::Duration,
    ) -> Result<(), SessionError> {
        let max = self
            .login
            .user()
            .and_then(|user| user.max_execution_time())
            .unwrap_or(elapsed);
        let (code, message) = timeout_message(elapsed, max);
        self.client.send(&encode_exception(code, &message)).await?;
        if let Some(mut query) = self.query.take() {
            let record = query.audit.take();
            self.audit_end(record, "timeout", code, query.started);
            telemetry::query_finished(
                &self.env.metrics,
                Protocol::Native,
                query.kind,
                Outcome::Error,
                query.started.elapsed(),
            );
        }
        self.admitted = None;
        Ok(())
    }
}
