//! What one ASK is about and what it produces: who asks ([`Asker`]) with which [`AskOptions`], the earlier
//! question a follow-up refines ([`Previous`]), the resulting [`Plan`] and its [`Executable`] form, and what
//! happened on the way ([`AskStats`], [`CacheHit`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::AskError;
use crate::bind::{quoted_string, substitute_literals, BoundParam};
use crate::catalog::Catalog;
use crate::clickhouse::Credentials;
use crate::feedback::Verdict;
use crate::llm::{Message, Usage};
use crate::retrieve::RankedTable;
use crate::validate::{validate, Policy, ValidatedQuery};

/// Who asks: their credentials decide the catalog; `database` is their current database.
#[derive(Debug, Clone)]
pub struct Asker {
    pub credentials: Credentials,
    /// The current database; empty means `default` (a native Hello may leave it empty).
    pub database: String,
    /// The session the question is asked in (a native connection, an HTTP `session_id`): a question may refine
    /// the one answered before it in the same session.
    pub session: Option<String>,
    /// The tenant whose rows alone the asker may see (proxy users with `tenant`): the query that answers is
    /// scoped through [`crate::tenant::scope`] after planning, so cached plans stay tenant-free.
    pub tenant: Option<crate::tenant::TenantRule>,
}

impl Asker {
    /// `database`, or `default` when it is empty.
    pub fn current_database(&self) -> &str {
        if self.database.is_empty() {
            "default"
        } else {
            &self.database
        }
    }
}

/// Options of one ASK (from its `SETTINGS`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AskOptions {
    /// Read the catalog again instead of using the cached one.
    pub refresh_catalog: bool,
    /// Skip the caches (the answer is still stored).
    pub no_cache: bool,
    /// `Some(true)`/`Some(false)`: the question refines the session's previous one or not
    /// (`SETTINGS aurora_follow_up`); `None`: decided by [`is_follow_up`](crate::engine::is_follow_up).
    pub follow_up: Option<bool>,
}

/// A question answered earlier in the same session, with the SQL that answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub question: String,
    pub sql: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHit {
    Exact,
    Semantic,
}

impl CacheHit {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheHit::Exact => "exact",
            CacheHit::Semantic => "semantic",
        }
    }
}

/// What happened while planning, for metrics and logs.
#[derive(Debug, Clone, Default)]
pub struct AskStats {
    /// Duration of each LLM call.
    pub llm_durations: Vec<Duration>,
    pub usage: Usage,
    pub malformed_retries: u32,
    /// Refused answers sent back to the model with the reason.
    pub repairs: u32,
    /// Answers that ran but found nothing, sent back to the model with that fact (`repair_empty`).
    pub empty_repairs: u32,
    /// With several candidates: how many ran, and how many of them agreed with the chosen one.
    pub candidates: Option<(usize, usize)>,
    pub cache: Option<CacheHit>,
    /// Time per stage: catalog, retrieval, context, llm, validate.
    pub stages: Vec<(&'static str, Duration)>,
}

/// A validated, checked query for one question.
#[derive(Debug, Clone)]
pub struct Plan {
    pub question: String,
    /// The validated SQL with every compared literal lifted into a `{name:Type}` placeholder (see [`crate::lift`]).
    pub sql: String,
    /// The SQL as the model wrote it.
    pub written_sql: String,
    pub params: Map<String, Value>,
    pub bound: Vec<BoundParam>,
    pub explanation: String,
    /// Tables the query reads, `database.table`.
    pub tables: Vec<String>,
    /// Tables retrieval put in the prompt, with why.
    pub chosen: Vec<RankedTable>,
    /// The earlier question this one refined (its question and SQL were in the prompt).
    pub follows: Option<Previous>,
    pub cached: Option<CacheHit>,
    pub catalog: Arc<Catalog>,
    pub(super) validated: ValidatedQuery,
    pub(super) policy: Policy,
    /// The conversation that produced it (for self-correction).
    pub(super) conversation: Vec<Message>,
    pub(super) answer: String,
}

/// A plan in the form one server takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Executable {
    /// The query under the row limit.
    pub sql: String,
    /// `(name, value)` of query parameters (without the `param_` prefix); empty when literals were substituted.
    pub parameters: Vec<(String, String)>,
    /// Whether to send `readonly=1` (the user's profile does not already set it).
    pub set_readonly: bool,
}

impl Plan {
    /// The query for a server that takes query parameters (`parameters`) or one that needs literals.
    pub fn executable(&self, parameters: bool, max_rows: u64) -> Result<Executable, AskError> {
        let (inner, params) = if parameters || self.bound.is_empty() {
            let params = self
                .bound
                .iter()
                .map(|b| (b.name.clone(), b.query_parameter_value()))
                .collect();
            (self.sql.clone(), params)
        } else {
            let sql = substitute_literals(&self.validated, &self.bound, &self.policy).map_err(|error| {
                AskError::Params {
                    sql: self.sql.clone(),
                    error,
                }
            })?;
            (sql, Vec::new())
        };
        Ok(Executable {
            sql: format!("SELECT * FROM (\n{inner}\n) LIMIT {max_rows}"),
            parameters: params,
            set_readonly: self.catalog.readonly == 0,
        })
    }

    /// The messages that produced the plan, as text (`role: content` blocks), for evaluation reports.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for message in self
            .conversation
            .iter()
            .chain(std::iter::once(&Message::Assistant(self.answer.clone())))
        {
            let (role, text) = match message {
                Message::System(t) => ("system", t),
                Message::User(t) => ("user", t),
                Message::Assistant(t) => ("assistant", t),
            };
            out.push_str(&format!("--- {role}\n{text}\n"));
        }
        out
    }

    /// `params` as one JSON object text.
    pub fn params_json(&self) -> String {
        Value::Object(self.params.clone()).to_string()
    }

    /// The plan as an example for later questions: the SQL as the model wrote it, or, when the model wrote
    /// placeholders of its own, the lifted SQL with every value written in as a typed literal (examples are
    /// shown as plain SQL and stored without parameters).
    pub fn example_sql(&self) -> String {
        let own_placeholders =
            validate(&self.written_sql, &self.policy).map_or(true, |v| !v.placeholders.is_empty());
        if !own_placeholders {
            return self.written_sql.clone();
        }
        substitute_literals(&self.validated, &self.bound, &self.policy)
            .unwrap_or_else(|_| self.written_sql.clone())
    }

    /// A one-row SELECT of literals that says what a feedback ASK marked: columns feedback (`good`/`bad`),
    /// question, sql (the marked answer, parameterized as it ran).
    pub fn mark_sql(&self, verdict: Verdict) -> String {
        format!(
            "SELECT {} AS feedback, {} AS question, {} AS sql",
            quoted_string(verdict.as_str()),
            quoted_string(&self.question),
            quoted_string(&self.sql),
        )
    }

    /// A one-row SELECT of literals that describes the plan (`EXPLAIN ASK`): columns sql, params, tables,
    /// explanation, cached, retrieved, follows (the earlier question it refined, or empty). ClickHouse formats
    /// it, so it reaches every client in its own format.
    pub fn explain_sql(&self) -> String {
        let tables: Vec<String> = self.tables.iter().map(|t| quoted_string(t)).collect();
        let chosen: Vec<String> = self
            .chosen
            .iter()
            .map(|t| quoted_string(&format!("{} ({})", t.name, t.reasons.join("; "))))
            .collect();
        format!(
            "SELECT {} AS sql, {} AS params, CAST([{}] AS Array(String)) AS tables, {} AS explanation, toUInt8({}) AS cached, CAST([{}] AS Array(String)) AS retrieved, {} AS follows",
            quoted_string(&self.sql),
            quoted_string(&self.params_json()),
            tables.join(", "),
            quoted_string(&self.explanation),
            u8::from(self.cached.is_some()),
            chosen.join(", "),
            quoted_string(self.follows.as_ref().map_or("", |p| p.question.as_str())),
        )
    }
}

#[cfg(test)]
impl Plan {
    /// A plan for `question` answered by `sql` (a query over no table, e.g. `SELECT 1`), over an empty catalog:
    /// what the unit tests store and compare.
    pub(crate) fn for_tests(question: &str, sql: &str) -> Plan {
        let policy = Policy::new("default");
        let validated = validate(sql, &policy).expect("a test plan's SQL validates");
        Plan {
            question: question.to_string(),
            sql: sql.to_string(),
            written_sql: sql.to_string(),
            params: Map::new(),
            bound: Vec::new(),
            explanation: String::new(),
            tables: Vec::new(),
            chosen: Vec::new(),
            follows: None,
            cached: None,
            catalog: Arc::new(Catalog::new(Vec::new(), "24.8.1".into(), 0)),
            validated,
            policy,
            conversation: Vec::new(),
            answer: String::new(),
        }
    }
}
