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
//!
//! This module holds [`Engine`] and the order of the steps; the steps live in its sub-modules (their public
//! items are re-exported here):
//!
//! - `config`: [`EngineConfig`] and its defaults, [`CANDIDATE_ROWS`].
//! - `error`: the ClickHouse error [`codes`], [`AskError`], [`EngineError`].
//! - `plan`: [`Asker`], [`AskOptions`], [`Previous`], [`Plan`] and its [`Executable`] form, [`AskStats`],
//!   [`CacheHit`].
//! - `cache`: the exact and semantic answer caches, keyed by [`normalize_question`], catalog version and asker.
//! - `sessions`: each session's last answer, for follow-ups ([`is_follow_up`]).
//! - `answer`: the model's round trips: malformed retries, repairs, candidates, checks, [`Engine::execute`].

mod answer;
mod cache;
mod config;
mod error;
mod plan;
mod sessions;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::catalog::{Catalog, CatalogCache};
use crate::clickhouse::ClickHouseHttp;
use crate::context::{build_prompt, ContextInput};
use crate::embed::{Embedder, EmbeddingStore, FastEmbedder, Vector};
use crate::feedback::{FeedbackStore, Mark, Marks, Verdict};
use crate::llm::{shorten, Llm, Message};
use crate::retrieve::{closest_examples, is_machinery, rank_tables, LexicalIndex, RankedTable};
use crate::semantic::{Example, SemanticFile};
use crate::validate::validate;

use cache::{AnswerCache, CacheKey};
use sessions::Sessions;

pub use cache::normalize_question;
pub use config::{EngineConfig, CANDIDATE_ROWS};
pub use error::{codes, AskError, EngineError};
pub use plan::{AskOptions, AskStats, Asker, CacheHit, Executable, Plan, Previous};
pub use sessions::is_follow_up;

pub struct Engine {
    config: EngineConfig,
    clickhouse: ClickHouseHttp,
    catalogs: CatalogCache,
    semantic: SemanticFile,
    llm: Option<Llm>,
    store: Option<Arc<EmbeddingStore>>,
    caches: AnswerCache,
    /// Lexical indexes by catalog version (and the number of sampled tables they saw).
    indexes: Mutex<HashMap<u64, (usize, Arc<LexicalIndex>)>>,
    sessions: Sessions,
    feedback: Option<FeedbackStore>,
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
        let urls: Vec<&str> = std::iter::once(config.clickhouse_url.as_str())
            .chain(config.clickhouse_replicas.iter().map(String::as_str))
            .collect();
        let clickhouse = ClickHouseHttp::replicated(&urls, config.clickhouse_timeout)?;
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
            caches: AnswerCache::new(config.exact_cache_entries, config.semantic_cache_threshold),
            indexes: Mutex::new(HashMap::new()),
            sessions: Sessions::new(),
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
        let key = CacheKey::new(question, catalog.version, asker);
        if !no_cache {
            if let Some(plan) = self
                .caches
                .exact(&key)
                .filter(|plan| !marked_bad(&marks, question, plan))
            {
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
                .caches
                .semantic(&key, question_vector.as_ref())
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
            prompt.user = crate::context::with_previous(&prompt.user, &previous.question, &previous.sql);
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
            self.caches.remember(&key, &plan, question_vector);
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
        if self.feedback.is_none() {
            return Err(AskError::FeedbackOff);
        }
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
            .or_else(|| {
                self.caches
                    .exact(&CacheKey::new(question, catalog.version, asker))
            })
            .ok_or_else(|| AskError::NothingToMark {
                question: question.to_string(),
            })?;
        self.record_mark(&plan.question, &plan.example_sql(), asker, verdict)
            .await?;
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
        self.caches
            .forget(&CacheKey::new(&plan.question, plan.catalog.version, asker));
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
        .or_else(|_| closest_examples(&all, catalog, question, None, None, self.config.examples))
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
fn learned_examples(
    marks: &Marks,
    catalog: &Catalog,
    asker: &Asker,
    allow_system_tables: bool,
) -> Vec<Example> {
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
