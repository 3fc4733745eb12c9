//! One ASK from statement to outcome, written once for both protocols.
//!
//! ```text
//! AskRun::begin  → plan (or explain, or mark) → Prepared query
//!   front-end sends it its own way (native Query packet on the client's connection, HTTP request)
//!   ClickHouse accepts  → AskRun::accepted  (answered: metrics)
//!   ClickHouse rejects before the first block → AskRun::rejected
//!       → the one correction: a new Prepared query to send, or the failure to show
//! ```
//!
//! The rule of when a rejection goes back to the model lives here and nowhere else: once, never for
//! `EXPLAIN ASK`, a feedback mark or an answer from a cache. How a query is sent and how its first answer is
//! recognised stays with each protocol: the native session learns it from packets its relay loop frames
//! (while it also watches the client for a Cancel), the HTTP handler from a response status; so the run is a
//! small state machine the front-end drives, not a call over an executor.

use nlq::{AskStatement, Asker};

use super::{AskFailure, AskService, ParamMode, Prepared};

/// The state of one ASK between its statement and its outcome.
#[derive(Debug)]
pub struct AskRun {
    ask: AskStatement,
    prepared: Prepared,
    /// The one correction was used.
    corrected: bool,
    mode: ParamMode,
}

impl AskRun {
    /// Plans `ask` for `asker`: the first query to send, or the failure to answer with.
    pub async fn begin(
        service: &AskService,
        ask: AskStatement,
        asker: &Asker,
        mode: ParamMode,
    ) -> Result<AskRun, AskFailure> {
        let prepared = service.plan(&ask, asker, mode).await?;
        Ok(AskRun {
            ask,
            prepared,
            corrected: false,
            mode,
        })
    }

    /// The query to send now.
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// Whether the query to send is the corrected one.
    pub fn corrected(&self) -> bool {
        self.corrected
    }

    /// ClickHouse accepted the query (its first block or its end arrived): the ASK counts as answered.
    pub fn accepted(self, service: &AskService) -> Prepared {
        service.answered(&self.prepared);
        self.prepared
    }

    /// ClickHouse rejected the query before its first block with `code` and `message`. `Ok`: the corrected
    /// query is now [`AskRun::prepared`], send it. `Err`: the failure to show (a second rejection, or one that
    /// is not corrected, or a correction the model could not give).
    pub async fn rejected(
        &mut self,
        service: &AskService,
        asker: &Asker,
        code: Option<i32>,
        message: &str,
    ) -> Result<(), AskFailure> {
        let prepared = &self.prepared;
        if self.corrected || prepared.explain || prepared.plan.cached.is_some() {
            return Err(service.sql_rejected(prepared, code, message, self.corrected));
        }
        self.prepared = service
            .correct(prepared, &self.ask, asker, self.mode, message)
            .await?;
        self.corrected = true;
        Ok(())
    }
}
