//! The engine: a question and an asking user in, a validated and bound ClickHouse query out.
//!
//! ```text
//! catalog (user's own rights, cached) → exact cache → embedding → semantic cache → retrieval (tables, examples)
//!   → context (prompt within budget) → LLM (JSON; malformed → one retry) → validation → parameter check → Plan
//! ```
//!
//! A [`Plan`] is what the proxy runs: [`Plan::executable`] gives the SQL (with query parameters for servers
//! that take them, typed literals otherwise), always under a row limit and with `readonly` set when the user's
//! own profile does not already set it. If ClickHouse rejects it, [`Engine::correct`] sends the error back to
//! the model once. The engine does not execute anything itself: the proxy runs the query on the client's own
//! connection, so results come back in the client's protocol and format.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::bind::{check_params, quoted_string, substitute_literals, BoundParam};
use crate::catalog::{Catalog, CatalogCache};
use crate::clickhouse::{ClickHouseError, ClickHouseHttp, Credentials};
use crate::context::{build_prompt, ContextInput};
use crate::embed::{cosine, EmbedError, Embedder, EmbeddingStore, FastEmbedder, Vector};
use crate::error::{BindError, ValidationError};
use crate::feedback::{FeedbackConfig, FeedbackStore, Mark, Marks, Verdict};
use crate::lift::lift;
use crate::llm::{parse_draft, shorten, Draft, Llm, LlmConfig, LlmError, Message, Usage};
use crate::retrieve::{closest_examples, is_machinery, rank_tables, LexicalIndex, RankedTable};
use crate::semantic::{Example, SemanticError, SemanticFile};
use crate::validate::{validate, Policy, ValidatedQuery};

/// ClickHouse error codes the engine answers with (the proxy shows them as ClickHouse exceptions).
pub mod codes {
    pub const BAD_ARGUMENTS: i32 = 36;
    pub const UNKNOWN_TABLE: i32 = 60;
    pub const SYNTAX_ERROR: i32 = 62;
    pub const NOT_IMPLEMENTED: i32 = 48;
    pub const INCORRECT_DATA: i32 = 117;
    pub const TIMEOUT_EXCEEDED: i32 = 159;
    pub const NETWORK_ERROR: i32 = 210;
    pub const ACCESS_DENIED: i32 = 497;
}

/// Rows a candidate answer is run on when several are compared.
pub const CANDIDATE_ROWS: u64 = 100;

/// Everything the engine is configured with.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// ClickHouse's HTTP interface, for the catalog and sampled values.
    pub clickhouse_url: String,
    pub clickhouse_timeout: Duration,
    /// `None`: ASK answers that no model is configured.
    pub llm: Option<LlmConfig>,
    /// Directory with the sentence model (see `embed::MODEL_FILES`); `None`: lexical retrieval only.
    pub embed_model_dir: Option<PathBuf>,
    /// Where embeddings persist between runs.
    pub cache_dir: Option<PathBuf>,
    pub semantic_file: Option<PathBuf>,
    pub catalog_ttl: Duration,
    /// Rows a generated query may return.
    pub max_rows: u64,
    pub allow_system_tables: bool,
    pub max_tables: usize,
    pub examples: usize,
    pub token_budget: usize,
    pub exact_cache_entries: usize,
    /// Cosine similarity at or above which a cached question's plan is reused; `None` turns the semantic cache off.
    pub semantic_cache_threshold: Option<f32>,
    /// How many times an answer Aurora refuses (validation, parameters) goes back to the model with the reason.
    pub repair_attempts: u32,
    /// Answers asked of the model per question: above 1, the valid ones run read-only on a few rows and the
    /// one most of them agree with is kept (self-consistency).
    pub candidates: u32,
    /// Where users' marks of answers are stored and read back as examples; `None`: no feedback.
    pub feedback: Option<FeedbackConfig>,
}

impl EngineConfig {
    pub fn new(clickhouse_url: impl Into<String>) -> Self {
        Self {
            clickhouse_url: clickhouse_url.into(),
            clickhouse_timeout: Duration::from_secs(30),
            llm: None,
            embed_model_dir: None,
            cache_dir: None,
            semantic_file: None,
            catalog_ttl: Duration::from_secs(60),
            max_rows: 10_000,
            allow_system_tables: false,
            max_tables: 5,
            examples: 3,
            token_budget: 3_000,
            exact_cache_entries: 1_000,
            semantic_cache_threshold: Some(0.97),
            repair_attempts: 1,
            candidates: 1,
            feedback: None,
        }
    }
}

/// Who asks: their credentials decide the catalog; `database` is their current database.
#[derive(Debug, Clone)]
pub struct Asker {
    pub credentials: Credentials,
    /// The current database; empty means `default` (a native Hello may leave it empty).
    pub database: String,
    /// The session the question is asked in (a native connection, an HTTP `session_id`): a question may refine
    /// the one answered before it in the same session.
    pub session: Option<String>,
}

/// Options of one ASK (from its `SETTINGS`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AskOptions {
    /// Read the catalog again instead of using the cached one.
    pub refresh_catalog: bool,
    /// Skip the caches (the answer is still stored).
    pub no_cache: bool,
    /// `Some(true)`/`Some(false)`: the question refines the session's previous one or not
    /// (`SETTINGS aurora_follow_up`); `None`: decided by [`is_follow_up`].
    pub follow_up: Option<bool>,
}

/// A question answered earlier in the same session, with the SQL that answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub question: String,
    pub sql: String,
}

/// Whether a question reads as a refinement of the one before (`and only for acme?`, `what about last week`,
/// `same for globex`): it starts with words that continue a conversation. Anything else stands alone (a short
/// question such as `count me` is a question of its own); `SETTINGS aurora_follow_up = 1` says otherwise.
pub fn is_follow_up(question: &str) -> bool {
    const OPENERS: &[&str] = &[
        "and", "but", "only", "now", "also", "same", "instead", "then", "just", "except", "without", "excluding",
        "what about", "how about", "what if", "split", "break it down", "sort", "order by",
        "limit it", "filter", "restrict", "exclude", "include",
    ];
    let lower = normalize_question(question);
    let words: Vec<&str> = lower.split_whitespace().collect();
    let starts = OPENERS.iter().any(|opener| {
        let opener: Vec<&str> = opener.split_whitespace().collect();
        words.len() >= opener.len()
            && words
                .iter()
                .zip(&opener)
                .all(|(w, o)| w.trim_matches(|c: char| !c.is_alphanumeric()) == *o)
    });
    starts
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
    validated: ValidatedQuery,
    policy: Policy,
    /// The conversation that produced it (for self-correction).
    conversation: Vec<Message>,
    answer: String,
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
        for message in self.conversation.iter().chain(std::iter::once(&Message::Assistant(self.answer.clone()))) {
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
        let own_placeholders = validate(&self.written_sql, &self.policy).map_or(true, |v| !v.placeholders.is_empty());
        if !own_placeholders {
            return self.written_sql.clone();
        }
        substitute_literals(&self.validated, &self.bound, &self.policy).unwrap_or_else(|_| self.written_sql.clone())
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

/// Why an ASK got no query.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(
        "ASK needs an LLM endpoint and none is configured (--llm-base-url, --llm-model); the question was not sent anywhere"
    )]
    NoLlm,
    #[error("cannot read the catalog: {0}")]
    Catalog(ClickHouseError),
    #[error("user {user} can read no tables, so there is nothing to ask about")]
    NoTables { user: String },
    #[error("{0}")]
    Llm(LlmError),
    #[error("the LLM's answer was not usable twice: {reason}. Its last answer: {answer}")]
    Malformed { reason: String, answer: String },
    #[error("the generated query was rejected: {error}. Generated SQL: {sql}")]
    Rejected { sql: String, error: ValidationError },
    #[error("the generated query's parameters were rejected: {error}. Generated SQL: {sql}")]
    Params { sql: String, error: BindError },
    #[error("feedback is not stored on this proxy (--ask-feedback-table is off)")]
    FeedbackOff,
    #[error("there is no earlier answer to \"{question}\" to mark: ask it first, then repeat the same ASK with SETTINGS aurora_feedback = 'good' or 'bad' (in the same session, or while the answer is cached)")]
    NothingToMark { question: String },
    #[error("cannot store the feedback in {table}: {error}")]
    Feedback { table: String, error: ClickHouseError },
}

impl AskError {
    /// The ClickHouse error code the client sees.
    pub fn code(&self) -> i32 {
        match self {
            AskError::NoLlm => codes::NOT_IMPLEMENTED,
            AskError::Catalog(e) => e.code.unwrap_or(codes::NETWORK_ERROR),
            AskError::NoTables { .. } => codes::UNKNOWN_TABLE,
            AskError::Llm(LlmError::Timeout { .. }) => codes::TIMEOUT_EXCEEDED,
            AskError::Llm(_) => codes::NETWORK_ERROR,
            AskError::Malformed { .. } => codes::INCORRECT_DATA,
            AskError::Rejected {
                error: ValidationError::Syntax { .. },
                ..
            } => codes::SYNTAX_ERROR,
            AskError::Rejected { .. } => codes::ACCESS_DENIED,
            AskError::Params { .. } => codes::BAD_ARGUMENTS,
            AskError::FeedbackOff => codes::NOT_IMPLEMENTED,
            AskError::NothingToMark { .. } => codes::BAD_ARGUMENTS,
            AskError::Feedback { error, .. } => error.code.unwrap_or(codes::NETWORK_ERROR),
        }
    }

    /// The metric outcome: rejected, llm_error or error.
    pub fn outcome(&self) -> &'static str {
        match self {
            AskError::Rejected { .. } | AskError::Params { .. } => "rejected",
            AskError::Llm(_) | AskError::Malformed { .. } => "llm_error",
            _ => "error",
        }
    }

    /// The generated SQL, when there was one.
    pub fn sql(&self) -> Option<&str> {
        match self {
            AskError::Rejected { sql, .. } | AskError::Params { sql, .. } => Some(sql),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Semantic(#[from] SemanticError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("{0}")]
    ClickHouse(#[from] ClickHouseError),
    #[error("{0}")]
    Llm(#[from] LlmError),
}

/// (normalized question, catalog version, who asks in which database).
type ExactKey = (String, u64, String);

fn cache_key(question: &str, catalog_version: u64, asker: &Asker) -> ExactKey {
    (
        normalize_question(question),
        catalog_version,
        format!("{}\n{}", asker.credentials.user, asker.current_database()),
    )
}

/// Whether `plan` (an answer from a cache for `question`) was marked bad.
fn marked_bad(marks: &Marks, question: &str, plan: &Plan) -> bool {
    if marks.bad.is_empty() {
        return false;
    }
    let sql = plan.example_sql();
    [question, plan.question.as_str()]
        .iter()
        .any(|q| marks.bad.contains(&(normalize_question(q), sql.clone())))
}

/// The pairs marked good that the asker may see: those whose SQL validates against the asker's own catalog
/// (so a pair over a table the asker cannot read is never shown to them).
fn learned_examples(marks: &Marks, catalog: &Catalog, asker: &Asker, allow_system_tables: bool) -> Vec<Example> {
    if marks.good.is_empty() {
        return Vec::new();
    }
    let policy = catalog.policy(asker.current_database(), allow_system_tables);
    marks
        .good
        .iter()
        .filter(|example| validate(&example.sql, &policy).is_ok())
        .cloned()
        .collect()
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

struct Caches {
    exact: HashMap<ExactKey, Plan>,
    order: VecDeque<ExactKey>,
    /// (who asks where, catalog version, question vector, exact key).
    semantic: Vec<(String, u64, Vector, ExactKey)>,
}

pub struct Engine {
    config: EngineConfig,
    clickhouse: ClickHouseHttp,
    catalogs: CatalogCache,
    semantic: SemanticFile,
    llm: Option<Llm>,
    store: Option<Arc<EmbeddingStore>>,
    caches: Mutex<Caches>,
    /// Lexical indexes by catalog version (and the number of sampled tables they saw).
    indexes: Mutex<HashMap<u64, (usize, Arc<LexicalIndex>)>>,
    sessions: Sessions,
    feedback: Option<FeedbackStore>,
}

/// The last question answered in each session, by (user, session), for follow-ups; bounded in number and age.
struct Sessions {
    /// The plans without their conversation (a session keeps what a follow-up or a mark needs, not the prompt).
    entries: Mutex<HashMap<(String, String), (Plan, Instant)>>,
}

impl Sessions {
    const MAX: usize = 10_000;
    const TTL: Duration = Duration::from_secs(30 * 60);

    fn key(asker: &Asker) -> Option<(String, String)> {
        Some((asker.credentials.user.clone(), asker.session.clone()?))
    }

    fn get(&self, asker: &Asker) -> Option<Previous> {
        self.last(asker).map(|plan| Previous {
            question: plan.question,
            sql: plan.written_sql,
        })
    }

    /// The session's last answered plan (without its conversation).
    fn last(&self, asker: &Asker) -> Option<Plan> {
        let key = Self::key(asker)?;
        let entries = self.entries.lock().expect("sessions lock");
        entries
            .get(&key)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(plan, _)| plan.clone())
    }

    fn put(&self, asker: &Asker, plan: &Plan) {
        let Some(key) = Self::key(asker) else { return };
        let mut entries = self.entries.lock().expect("sessions lock");
        if entries.len() >= Self::MAX {
            entries.retain(|_, (_, at)| at.elapsed() < Self::TTL);
            if entries.len() >= Self::MAX {
                if let Some(oldest) = entries.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone()) {
                    entries.remove(&oldest);
                }
            }
        }
        let kept = Plan {
            conversation: Vec::new(),
            answer: String::new(),
            ..plan.clone()
        };
        entries.insert(key, (kept, Instant::now()));
    }
}

/// A question as cache keys see it: trimmed, lower-case, single spaces, no trailing punctuation.
pub fn normalize_question(question: &str) -> String {
    question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_end_matches(['?', '.', '!'])
        .to_string()
}

impl Engine {
    /// Builds the engine: reads the semantic file and loads the embedding model now, so a bad setting fails
    /// at start, not at the first question.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        let semantic = match &config.semantic_file {
            Some(path) => SemanticFile::load(path)?,
            None => SemanticFile::default(),
        };
        let store = match &config.embed_model_dir {
            Some(dir) => {
                let started = Instant::now();
                let embedder: Arc<dyn Embedder> = Arc::new(FastEmbedder::load(dir)?);
                tracing::info!(dir = %dir.display(), elapsed = ?started.elapsed(), "embedding model loaded");
                Some(Arc::new(EmbeddingStore::open(
                    embedder,
                    config.cache_dir.as_deref(),
                )))
            }
            None => None,
        };
        Self::with_parts(config, semantic, store)
    }

    /// Builds the engine from parts (tests and benchmarks bring their own embedder or none).
    pub fn with_parts(
        config: EngineConfig,
        semantic: SemanticFile,
        store: Option<Arc<EmbeddingStore>>,
    ) -> Result<Engine, EngineError> {
        let clickhouse = ClickHouseHttp::new(&config.clickhouse_url, config.clickhouse_timeout)?;
        let llm = config.llm.clone().map(Llm::new).transpose()?;
        let feedback = config
            .feedback
            .clone()
            .map(|feedback| FeedbackStore::new(clickhouse.clone(), feedback, config.catalog_ttl));
        Ok(Engine {
            feedback,
            catalogs: CatalogCache::new(config.catalog_ttl),
            clickhouse,
            semantic,
            llm,
            store,
            caches: Mutex::new(Caches {
                exact: HashMap::new(),
                order: VecDeque::new(),
                semantic: Vec::new(),
            }),
            indexes: Mutex::new(HashMap::new()),
            sessions: Sessions {
                entries: Mutex::new(HashMap::new()),
            },
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn has_llm(&self) -> bool {
        self.llm.is_some()
    }

    pub fn catalogs(&self) -> &CatalogCache {
        &self.catalogs
    }

    pub fn clickhouse(&self) -> &ClickHouseHttp {
        &self.clickhouse
    }

    /// Turns `question` into a plan for `asker`.
    pub async fn plan(
        &self,
        question: &str,
        asker: &Asker,
        options: AskOptions,
    ) -> (Result<Plan, AskError>, AskStats) {
        let mut stats = AskStats::default();
        let result = self.plan_inner(question, asker, options, &mut stats).await;
        if let Ok(plan) = &result {
            self.sessions.put(asker, plan);
        }
        (result, stats)
    }

    async fn plan_inner(
        &self,
        question: &str,
        asker: &Asker,
        options: AskOptions,
        stats: &mut AskStats,
    ) -> Result<Plan, AskError> {
        // The catalog is read with the asker's own credentials before anything else: whoever ClickHouse does not
        // accept gets ClickHouse's refusal, and nothing else of Aurora (not even "no model configured").
        let stage = Instant::now();
        let (catalog, _) = self
            .catalogs
            .get(&self.clickhouse, &asker.credentials, options.refresh_catalog)
            .await
            .map_err(AskError::Catalog)?;
        stats.stages.push(("catalog", stage.elapsed()));
        let Some(llm) = &self.llm else {
            return Err(AskError::NoLlm);
        };
        if catalog.tables.is_empty() {
            return Err(AskError::NoTables {
                user: asker.credentials.user.clone(),
            });
        }

        let stage = Instant::now();
        let marks = self.marks(asker).await;
        // The question this one may refine: the last one answered in the asker's session.
        let follows = self
            .sessions
            .get(asker)
            .filter(|_| options.follow_up.unwrap_or_else(|| is_follow_up(question)));
        // A refinement's answer depends on what it refines: no cache serves or keeps it.
        let no_cache = options.no_cache || follows.is_some();
        let key = cache_key(question, catalog.version, asker);
        if !no_cache {
            if let Some(plan) = self.cached_exact(&key).filter(|plan| !marked_bad(&marks, question, plan)) {
                stats.cache = Some(CacheHit::Exact);
                stats.stages.push(("retrieval", stage.elapsed()));
                return Ok(plan);
            }
        }
        // Retrieval reads a refinement together with what it refines (`and only for acme?` names no table).
        let retrieval_text = match &follows {
            Some(previous) => format!("{} {}", previous.question, question),
            None => question.to_string(),
        };
        let question_vector = self.embed_question(&retrieval_text).await;
        if !no_cache {
            if let Some(plan) = self
                .cached_semantic(&key, question_vector.as_ref())
                .filter(|plan| !marked_bad(&marks, question, plan))
            {
                stats.cache = Some(CacheHit::Semantic);
                stats.stages.push(("retrieval", stage.elapsed()));
                return Ok(plan);
            }
        }
        if catalog.tables.len() <= 20 {
            for table in &catalog.tables {
                catalog
                    .samples(&self.clickhouse, &asker.credentials, &table.name)
                    .await;
            }
        }
        let learned = learned_examples(&marks, &catalog, asker, self.config.allow_system_tables);
        let (chosen, examples) = self.retrieve(
            &catalog,
            &retrieval_text,
            asker.current_database(),
            question_vector.as_ref(),
            &learned,
        );
        let mut samples = BTreeMap::new();
        for table in &chosen {
            let values = catalog
                .samples(&self.clickhouse, &asker.credentials, &table.name)
                .await;
            samples.insert(table.name.to_string(), values);
        }
        stats.stages.push(("retrieval", stage.elapsed()));

        let stage = Instant::now();
        let mut prompt = self.prompt(question, &catalog, &chosen, &samples, &examples);
        if let Some(previous) = &follows {
            prompt.user = crate::context::with_previous(&prompt.user, previous);
        }
        let marked_wrong = marks.bad_for(question);
        if !marked_wrong.is_empty() {
            prompt.user = crate::context::with_marked_wrong(&prompt.user, &marked_wrong);
        }
        stats.stages.push(("context", stage.elapsed()));

        let conversation = vec![Message::System(prompt.system), Message::User(prompt.user)];
        let mut plan = self
            .answer(llm, question, asker, &catalog, &chosen, conversation, stats)
            .await?;
        plan.follows = follows;
        if plan.follows.is_none() {
            self.remember(&key, &plan, question_vector);
        }
        Ok(plan)
    }

    /// The evaluation baseline: the same model and checks, with a bare prompt holding the columns and types of
    /// every table of the asker's database (of all databases when it has none) (no retrieval, no semantic file, no examples, no sampled values) and no caches.
    pub async fn plan_baseline(&self, question: &str, asker: &Asker) -> (Result<Plan, AskError>, AskStats) {
        let mut stats = AskStats::default();
        let result = async {
            let llm = self.llm.as_ref().ok_or(AskError::NoLlm)?;
            let (catalog, _) = self
                .catalogs
                .get(&self.clickhouse, &asker.credentials, false)
                .await
                .map_err(AskError::Catalog)?;
            let in_database = catalog
                .tables
                .iter()
                .any(|t| t.name.database == asker.current_database() && !is_machinery(&t.name));
            let all: Vec<RankedTable> = catalog
                .tables
                .iter()
                .filter(|t| {
                    !is_machinery(&t.name) && (!in_database || t.name.database == asker.current_database())
                })
                .map(|t| RankedTable {
                    name: t.name.clone(),
                    score: 0.0,
                    reasons: vec!["baseline: every table of the database".into()],
                })
                .collect();
            let bare = SemanticFile::default();
            let prompt = build_prompt(&ContextInput {
                question,
                catalog: &catalog,
                semantic: &bare,
                tables: &all,
                samples: &BTreeMap::new(),
                examples: &[],
                max_rows: self.config.max_rows,
                token_budget: usize::MAX,
            });
            let conversation = vec![Message::System(prompt.system), Message::User(prompt.user)];
            self.answer(llm, question, asker, &catalog, &all, conversation, &mut stats)
                .await
        }
        .await;
        (result, stats)
    }

    /// Sends ClickHouse's rejection of `plan` back to the model once and checks the new answer.
    pub async fn correct(
        &self,
        plan: &Plan,
        asker: &Asker,
        clickhouse_error: &str,
    ) -> (Result<Plan, AskError>, AskStats) {
        let mut stats = AskStats::default();
        self.forget(plan, asker);
        let Some(llm) = &self.llm else {
            return (Err(AskError::NoLlm), stats);
        };
        let mut conversation = plan.conversation.clone();
        conversation.push(Message::Assistant(plan.answer.clone()));
        // An unknown column is the most common rejection: say which table has it.
        let hint = crate::context::unknown_column_hint(&plan.catalog, &plan.tables, clickhouse_error)
            .map(|hint| format!("{hint}\n"))
            .unwrap_or_default();
        conversation.push(Message::User(format!(
            "ClickHouse rejected that query with this error:\n{}\n{hint}Write a corrected query for the same question. Answer with only the JSON object.",
            shorten(clickhouse_error, 1500)
        )));
        let result = self
            .answer(
                llm,
                &plan.question,
                asker,
                &plan.catalog,
                &plan.chosen,
                conversation,
                &mut stats,
            )
            .await
            .map(|mut corrected| {
                corrected.follows = plan.follows.clone();
                corrected
            });
        if let Ok(corrected) = &result {
            self.sessions.put(asker, corrected);
        }
        (result, stats)
    }

    /// The marks of the asker's database (none when feedback is off).
    async fn marks(&self, asker: &Asker) -> Arc<Marks> {
        match &self.feedback {
            Some(store) => store.marks(asker.current_database()).await,
            None => Arc::new(Marks::default()),
        }
    }

    /// Marks the answer Aurora gave `asker` earlier to `question` (the session's last answer when it was this
    /// question, else the exact cache's) and stores the mark. A bad answer also leaves the caches, so the next
    /// ASK of it asks the model again. Returns the marked plan.
    pub async fn mark(&self, question: &str, asker: &Asker, verdict: Verdict) -> Result<Plan, AskError> {
        let store = self.feedback.as_ref().ok_or(AskError::FeedbackOff)?;
        // Read with the asker's own credentials first: whoever ClickHouse does not accept marks nothing.
        let (catalog, _) = self
            .catalogs
            .get(&self.clickhouse, &asker.credentials, false)
            .await
            .map_err(AskError::Catalog)?;
        let wanted = normalize_question(question);
        let plan = self
            .sessions
            .last(asker)
            .filter(|plan| normalize_question(&plan.question) == wanted)
            .or_else(|| self.cached_exact(&cache_key(question, catalog.version, asker)))
            .ok_or_else(|| AskError::NothingToMark {
                question: question.to_string(),
            })?;
        let mark = Mark {
            database: asker.current_database().to_string(),
            user: asker.credentials.user.clone(),
            question: plan.question.clone(),
            sql: plan.example_sql(),
            verdict,
        };
        store.record(&mark).await.map_err(|error| AskError::Feedback {
            table: store.table().to_string(),
            error,
        })?;
        if verdict == Verdict::Bad {
            self.forget(&plan, asker);
        }
        Ok(plan)
    }

    /// Stores a mark of `sql` as the answer to `question` in the asker's database, without looking for an
    /// earlier answer (the evaluation marks answers it knows to be right).
    pub async fn record_mark(
        &self,
        question: &str,
        sql: &str,
        asker: &Asker,
        verdict: Verdict,
    ) -> Result<(), AskError> {
        let store = self.feedback.as_ref().ok_or(AskError::FeedbackOff)?;
        let mark = Mark {
            database: asker.current_database().to_string(),
            user: asker.credentials.user.clone(),
            question: question.to_string(),
            sql: sql.to_string(),
            verdict,
        };
        store.record(&mark).await.map_err(|error| AskError::Feedback {
            table: store.table().to_string(),
            error,
        })
    }

    /// Drops `plan`'s question from the caches (it failed in ClickHouse).
    pub fn forget(&self, plan: &Plan, asker: &Asker) {
        let key = cache_key(&plan.question, plan.catalog.version, asker);
        let mut caches = self.caches.lock().expect("cache lock");
        caches.exact.remove(&key);
        caches.order.retain(|k| k != &key);
        caches.semantic.retain(|(_, _, _, k)| k != &key);
    }

    /// The lexical index of `catalog`, built once per catalog version (again when more tables were sampled).
    fn lexical_index(&self, catalog: &Catalog) -> Arc<LexicalIndex> {
        let sampled = catalog.sampled_tables();
        if let Some((seen, index)) = self.indexes.lock().expect("index lock").get(&catalog.version) {
            if *seen == sampled {
                return index.clone();
            }
        }
        let index = Arc::new(LexicalIndex::build(catalog, &self.semantic));
        let mut indexes = self.indexes.lock().expect("index lock");
        if indexes.len() >= 64 {
            indexes.clear();
        }
        indexes.insert(catalog.version, (sampled, index.clone()));
        index
    }

    fn retrieve(
        &self,
        catalog: &Catalog,
        question: &str,
        database: &str,
        question_vector: Option<&Vector>,
        learned: &[Example],
    ) -> (Vec<RankedTable>, Vec<Example>) {
        let store = self.store.as_deref().filter(|_| question_vector.is_some());
        let index = self.lexical_index(catalog);
        let chosen = rank_tables(
            catalog,
            &index,
            &self.semantic,
            question,
            database,
            question_vector,
            store,
            self.config.max_tables,
        )
        .or_else(|error| {
            tracing::warn!(%error, "embedding failed; ranking tables by words only");
            rank_tables(
                catalog,
                &index,
                &self.semantic,
                question,
                database,
                None,
                None,
                self.config.max_tables,
            )
        })
        .unwrap_or_default();
        // The semantic file's examples and the pairs users marked good compete for the same few places.
        let all: Vec<Example> = self.semantic.examples.iter().chain(learned).cloned().collect();
        let examples = closest_examples(
            &all,
            catalog,
            question,
            question_vector,
            store,
            self.config.examples,
        )
        .or_else(|_| {
            closest_examples(
                &all,
                catalog,
                question,
                None,
                None,
                self.config.examples,
            )
        })
        .unwrap_or_default();
        (chosen, examples)
    }

    async fn embed_question(&self, question: &str) -> Option<Vector> {
        let store = self.store.clone()?;
        let text = question.to_string();
        match tokio::task::spawn_blocking(move || store.get(&text)).await {
            Ok(Ok(vector)) => Some(vector),
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot embed the question; lexical retrieval only");
                None
            }
            Err(_) => None,
        }
    }

    /// Asks the model; a malformed answer gets one retry that says what was wrong.
    async fn ask_model(
        &self,
        llm: &Llm,
        conversation: &mut Vec<Message>,
        stats: &mut AskStats,
    ) -> Result<(Draft, String), AskError> {
        let stage = Instant::now();
        let result = async {
            let mut attempt = 0;
            loop {
                let (text, usage, elapsed) = llm.complete(conversation).await.map_err(AskError::Llm)?;
                stats.llm_durations.push(elapsed);
                stats.usage.add(&usage);
                match parse_draft(&text) {
                    Ok(draft) => return Ok((draft, text)),
                    Err(reason) if attempt == 0 => {
                        attempt += 1;
                        stats.malformed_retries += 1;
                        tracing::info!(%reason, "malformed LLM answer; asking again");
                        conversation.push(Message::Assistant(text));
                        conversation.push(Message::User(format!(
                            "That answer was not usable: {reason}. Answer again with only the JSON object {{\"sql\": ..., \"params\": {{...}}, \"explanation\": ...}}."
                        )));
                    }
                    Err(reason) => {
                        return Err(AskError::Malformed {
                            reason,
                            answer: shorten(&text, 300),
                        })
                    }
                }
            }
        }
        .await;
        stats.stages.push(("llm", stage.elapsed()));
        result
    }

    /// Asks the model and checks its answer; an answer Aurora refuses goes back with the reason, up to
    /// `repair_attempts` times.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        llm: &Llm,
        question: &str,
        asker: &Asker,
        catalog: &Arc<Catalog>,
        chosen: &[RankedTable],
        mut conversation: Vec<Message>,
        stats: &mut AskStats,
    ) -> Result<Plan, AskError> {
        let mut repairs = 0;
        loop {
            let (draft, answer) = self.ask_model(llm, &mut conversation, stats).await?;
            let checked = self.check(
                question,
                asker,
                catalog.clone(),
                chosen.to_vec(),
                draft,
                answer.clone(),
                conversation.clone(),
                stats,
            );
            match checked {
                Err(error @ (AskError::Rejected { .. } | AskError::Params { .. }))
                    if repairs < self.config.repair_attempts =>
                {
                    repairs += 1;
                    stats.repairs += 1;
                    tracing::info!(code = error.code(), "refused answer; asking the model to repair it");
                    conversation.push(Message::Assistant(answer));
                    conversation.push(Message::User(format!(
                        "Aurora refused that query: {}\nWrite a corrected query for the question \"{}\", using only the tables and columns listed. Answer with only the JSON object.",
                        shorten(&error.to_string(), 1500),
                        shorten(question, 1000)
                    )));
                }
                Ok(plan) if self.config.candidates > 1 => {
                    return Ok(self.choose_candidate(llm, plan, asker, stats).await);
                }
                other => return other,
            }
        }
    }

    /// Asks for `candidates - 1` more answers (sampled, temperature 0.7) to the same prompt, runs every valid
    /// one read-only on at most [`CANDIDATE_ROWS`] rows, and keeps the first answer of the largest group of
    /// identical results (ties: the earlier group). Answers that fail to validate or to run do not vote.
    async fn choose_candidate(&self, llm: &Llm, first: Plan, asker: &Asker, stats: &mut AskStats) -> Plan {
        let mut plans = vec![first];
        for _ in 1..self.config.candidates {
            let stage = Instant::now();
            let called = llm.complete_sampled(&plans[0].conversation, 0.7).await;
            stats.stages.push(("llm", stage.elapsed()));
            let Ok((text, usage, elapsed)) = called else { continue };
            stats.llm_durations.push(elapsed);
            stats.usage.add(&usage);
            let Ok(draft) = parse_draft(&text) else { continue };
            let base = &plans[0];
            if let Ok(plan) = self.check(
                &base.question,
                asker,
                base.catalog.clone(),
                base.chosen.clone(),
                draft,
                text,
                base.conversation.clone(),
                stats,
            ) {
                plans.push(plan);
            }
        }
        let mut results = Vec::with_capacity(plans.len());
        for plan in &plans {
            results.push(self.execute(plan, asker, CANDIDATE_ROWS).await.ok());
        }
        // (index of the group's first plan, votes)
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for (i, result) in results.iter().enumerate() {
            let Some(rows) = result else { continue };
            match groups.iter_mut().find(|(g, _)| {
                results[*g]
                    .as_ref()
                    .is_some_and(|other| crate::eval::same_result(rows, other, false))
            }) {
                Some((_, votes)) => *votes += 1,
                None => groups.push((i, 1)),
            }
        }
        let ran = groups.iter().map(|(_, v)| v).sum();
        let (winner, votes) = groups
            .iter()
            .copied()
            .fold(None, |best: Option<(usize, usize)>, g| match best {
                Some(b) if b.1 >= g.1 => Some(b),
                _ => Some(g),
            })
            .unwrap_or((0, 0));
        stats.candidates = Some((ran, votes));
        tracing::debug!(candidates = plans.len(), ran, votes, "candidate chosen by agreement");
        plans.swap_remove(winner)
    }

    /// Runs `plan` as the proxy would over HTTP, on at most `max_rows` rows: with the asker's credentials and
    /// database, query parameters or literals by the server's version, `readonly` unless the profile sets it.
    pub async fn execute(
        &self,
        plan: &Plan,
        asker: &Asker,
        max_rows: u64,
    ) -> Result<crate::clickhouse::QueryResult, ClickHouseError> {
        let executable = plan
            .executable(plan.catalog.supports_parameters(), max_rows)
            .map_err(|e| ClickHouseError {
                code: Some(e.code()),
                message: e.to_string(),
            })?;
        let mut params: Vec<(String, String)> = executable
            .parameters
            .iter()
            .map(|(k, v)| (format!("param_{k}"), v.clone()))
            .collect();
        if executable.set_readonly {
            params.push(("readonly".into(), "1".into()));
        }
        self.clickhouse
            .query(&asker.credentials, Some(&asker.database), &executable.sql, &params)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        question: &str,
        asker: &Asker,
        catalog: Arc<Catalog>,
        chosen: Vec<RankedTable>,
        draft: Draft,
        answer: String,
        conversation: Vec<Message>,
        stats: &mut AskStats,
    ) -> Result<Plan, AskError> {
        let stage = Instant::now();
        let policy = catalog.policy(asker.current_database(), self.config.allow_system_tables);
        let result = validate(&draft.sql, &policy)
            .map_err(|error| AskError::Rejected {
                sql: draft.sql.clone(),
                error,
            })
            .and_then(|written| {
                // The model's literals become typed parameters; the lifted form is validated again, with the
                // same policy, and is what runs and what EXPLAIN ASK shows.
                let lifted = lift(&written, &catalog, &draft.params);
                let validated = validate(&lifted.sql, &policy).map_err(|error| AskError::Rejected {
                    sql: lifted.sql.clone(),
                    error,
                })?;
                let bound = check_params(&validated.placeholders, &lifted.params).map_err(|error| {
                    AskError::Params {
                        sql: lifted.sql.clone(),
                        error,
                    }
                })?;
                let params: Map<String, Value> = lifted
                    .params
                    .into_iter()
                    .filter(|(name, _)| validated.placeholders.iter().any(|p| &p.name == name))
                    .collect();
                Ok(Plan {
                    question: question.to_string(),
                    sql: lifted.sql,
                    written_sql: draft.sql.clone(),
                    params,
                    bound,
                    explanation: draft.explanation.clone(),
                    tables: validated.tables.iter().map(|t| t.to_string()).collect(),
                    chosen,
                    follows: None,
                    cached: None,
                    catalog: catalog.clone(),
                    validated,
                    policy,
                    conversation,
                    answer,
                })
            });
        stats.stages.push(("validate", stage.elapsed()));
        result
    }

    fn cached_exact(&self, key: &ExactKey) -> Option<Plan> {
        let caches = self.caches.lock().expect("cache lock");
        caches.exact.get(key).map(|plan| Plan {
            cached: Some(CacheHit::Exact),
            ..plan.clone()
        })
    }

    fn cached_semantic(&self, key: &ExactKey, vector: Option<&Vector>) -> Option<Plan> {
        let threshold = self.config.semantic_cache_threshold?;
        let vector = vector?;
        let caches = self.caches.lock().expect("cache lock");
        let (_, _, _, found) = caches
            .semantic
            .iter()
            .filter(|(user, version, _, _)| user == &key.2 && *version == key.1)
            .map(|entry| (cosine(vector, &entry.2), entry))
            .filter(|(similarity, _)| *similarity >= threshold)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, entry)| entry)?;
        caches.exact.get(found).map(|plan| Plan {
            cached: Some(CacheHit::Semantic),
            ..plan.clone()
        })
    }

    fn remember(&self, key: &ExactKey, plan: &Plan, vector: Option<Vector>) {
        if self.config.exact_cache_entries == 0 {
            return;
        }
        let mut caches = self.caches.lock().expect("cache lock");
        if caches.exact.insert(key.clone(), plan.clone()).is_none() {
            caches.order.push_back(key.clone());
            if let Some(vector) = vector {
                caches.semantic.push((key.2.clone(), key.1, vector, key.clone()));
            }
        }
        while caches.order.len() > self.config.exact_cache_entries {
            if let Some(old) = caches.order.pop_front() {
                caches.exact.remove(&old);
                caches.semantic.retain(|(_, _, _, k)| k != &old);
            }
        }
    }

    fn prompt(
        &self,
        question: &str,
        catalog: &Catalog,
        chosen: &[RankedTable],
        samples: &BTreeMap<String, Arc<crate::catalog::Samples>>,
        examples: &[crate::semantic::Example],
    ) -> crate::context::Prompt {
        build_prompt(&ContextInput {
            question,
            catalog,
            semantic: &self.semantic,
            tables: chosen,
            samples,
            examples,
            max_rows: self.config.max_rows,
            token_budget: self.config.token_budget,
        })
    }

    /// Retrieval and context for a question without the model: what the benchmark times.
    pub fn prepare_prompt(
        &self,
        catalog: &Catalog,
        question: &str,
    ) -> Result<crate::context::Prompt, EngineError> {
        let vector = match &self.store {
            Some(store) => Some(store.get(question)?),
            None => None,
        };
        let (chosen, examples) = self.retrieve(catalog, question, "", vector.as_ref(), &[]);
        let samples = chosen
            .iter()
            .filter_map(|t| catalog.cached_samples(&t.name).map(|s| (t.name.to_string(), s)))
            .collect();
        Ok(self.prompt(question, catalog, &chosen, &samples, &examples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_normalize_for_the_exact_cache() {
        assert_eq!(normalize_question("  Top 5   Tenants? "), "top 5 tenants");
        assert_eq!(normalize_question("top 5 tenants"), "top 5 tenants");
        assert_ne!(
            normalize_question("top 5 tenants"),
            normalize_question("top 6 tenants")
        );
    }

    #[test]
    fn follow_ups_are_told_by_their_first_words_or_their_length() {
        for q in [
            "and only for acme?",
            "And what about globex",
            "only purchases",
            "what about last week?",
            "same for November",
            "split it by plan",
        ] {
            assert!(is_follow_up(q), "{q}");
        }
        for q in [
            "How many events are there in total?",
            "top 5 tenants by revenue in October 2026",
            "Which tenant ids are on the enterprise plan?",
            "count me",
            "by country",
        ] {
            assert!(!is_follow_up(q), "{q}");
        }
    }

    #[test]
    fn a_follow_up_prompt_carries_the_previous_question_and_sql_before_the_new_one() {
        let previous = Previous {
            question: "revenue per tenant".into(),
            sql: "SELECT tenant_id, sum(revenue) FROM analytics.events GROUP BY tenant_id".into(),
        };
        let user = crate::context::with_previous("Tables:\nanalytics.events\n\nQuestion: and only acme?\nJSON:", &previous);
        let at = |needle: &str| user.find(needle).unwrap_or_else(|| panic!("{needle} missing in {user}"));
        assert!(at("Previous question: revenue per tenant") < at("Its SQL: SELECT tenant_id"));
        assert!(at("Its SQL: SELECT tenant_id") < at("Question: and only acme?"));
        assert!(user.starts_with("Tables:"));
    }

    #[test]
    fn error_codes_and_outcomes() {
        assert_eq!(AskError::NoLlm.code(), 48);
        let rejected = AskError::Rejected {
            sql: "DROP TABLE t".into(),
            error: ValidationError::NotASelect { kind: "DROP".into() },
        };
        assert_eq!(rejected.code(), 497);
        assert_eq!(rejected.outcome(), "rejected");
        assert!(rejected.to_string().contains("Generated SQL: DROP TABLE t"));
    }
}
