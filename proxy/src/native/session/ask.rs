//! ASK on the native protocol: the pending statement is planned by [`AskRun`], and each query it prepares is
//! sent upstream in the client's own Query packet (its settings, client info and compression); the relay loop
//! reports the first answer packet back ([`Session::generated_query_failed`] or [`AskRun::accepted`]).

use super::*;

impl Session {
    /// Answers the pending ASK statement: plans it and sends the generated query upstream in the client's
    /// own Query packet (its settings, client info and compression), or answers with an exception.
    pub(super) async fn answer_ask(&mut self) -> Result<(), SessionError> {
        let Some(pending) = self.ask.take() else {
            return Ok(());
        };
        let ask = match pending.statement {
            Ok(ask) => ask,
            Err(Refusal::Syntax(syntax)) => {
                let failure = self.env.ask.syntax_error(&syntax);
                return self.fail_ask(&failure, pending.started).await;
            }
            Err(Refusal::Gateway { kind, code, message }) => {
                let failure = AskFailure { code, message };
                return self.fail_statement(&failure, kind, pending.started).await;
            }
            Err(Refusal::ReadOnly) => {
                let failure = AskFailure {
                    code: codes::READONLY,
                    message: crate::cluster::READ_ENDPOINT_REFUSAL.into(),
                };
                return self
                    .fail_statement(&failure, StatementKind::Sql, pending.started)
                    .await;
            }
        };
        let Some(query) = pending.query else {
            let failure = AskFailure {
                code: codes::SYNTAX_ERROR,
                message: "Aurora: the Query packet of this ASK could not be read".into(),
            };
            return self.fail_ask(&failure, pending.started).await;
        };
        match AskRun::begin(&self.env.ask, ask, &self.asker, self.param_mode()).await {
            Ok(run) => self.run_generated(run, query, pending.started).await,
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
        run: AskRun,
        query: Query,
        started: Instant,
    ) -> Result<(), SessionError> {
        let packet = match generated_query_packet(&query, run.prepared(), self.ctx.revision) {
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
            let mut in_flight = self.in_flight(StatementKind::Ask, started, String::new());
            let prepared = run.prepared();
            self.pending_audit = None;
            in_flight.audit =
                self.audit_record(StatementKind::Ask, "", &prepared.sql, &prepared.plan.question);
            self.query = Some(in_flight);
        }
        self.generated = Some(Generated { run, query });
        Ok(())
    }

    /// Answers the ASK with an exception and closes its metrics.
    async fn fail_ask(&mut self, failure: &AskFailure, started: Instant) -> Result<(), SessionError> {
        self.fail_statement(failure, StatementKind::Ask, started).await
    }

    /// Answers an intercepted statement with an exception and closes its metrics.
    async fn fail_statement(
        &mut self,
        failure: &AskFailure,
        kind: StatementKind,
        started: Instant,
    ) -> Result<(), SessionError> {
        self.client
            .send(&encode_exception(failure.code, &failure.message))
            .await?;
        self.admitted = None;
        let mut in_flight = self.query.take();
        // A statement refused or failed before (or instead of) reaching ClickHouse.
        let record = match in_flight.as_mut().and_then(|q| q.audit.take()) {
            Some(record) => Some(record),
            None => self
                .pending_audit
                .take()
                .or_else(|| self.audit_record(kind, "", "", "")),
        };
        let outcome = if failure.code == codes::TOO_MANY_SIMULTANEOUS_QUERIES
            || failure.code == codes::ACCESS_DENIED
            || failure.code == codes::READONLY
        {
            "refused"
        } else {
            "error"
        };
        self.audit_end(
            record,
            outcome,
            failure.code,
            in_flight.as_ref().map_or(started, |q| q.started),
        );
        telemetry::query_finished(
            &self.env.metrics,
            Protocol::Native,
            kind,
            Outcome::Error,
            in_flight.map_or(started, |q| q.started).elapsed(),
        );
        Ok(())
    }

    /// ClickHouse answered a generated query with an exception before any block: correct once, else report.
    pub(super) async fn generated_query_failed(
        &mut self,
        generated: Generated,
        code: i32,
        message: String,
    ) -> Result<(), SessionError> {
        let Generated { mut run, query } = generated;
        let started = self.query.as_ref().map_or(run.prepared().started, |q| q.started);
        match run
            .rejected(&self.env.ask, &self.asker, Some(code), &message)
            .await
        {
            Ok(()) => self.run_generated(run, query, started).await,
            Err(failure) => self.fail_ask(&failure, started).await,
        }
    }
}

/// Decodes a Query packet (code included) into its owned form; `None` if it does not decode (it was framed, so
/// this does not happen for well-formed traffic).
pub(super) fn decode_owned_query(packet: &[u8], revision: Revision) -> Option<Query> {
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
    let parameters: Vec<(String, Vec<u8>)> = prepared
        .parameters
        .iter()
        .map(|(name, value)| (name.clone(), nlq::bind::quoted_string(value).into_bytes()))
        .collect();
    original
        .restated(&prepared.sql, &parameters, &prepared.settings, revision)
        .map_err(|e| format!("Aurora: {e}"))
}
