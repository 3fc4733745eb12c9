//! The engine's configuration: [`EngineConfig`] with its defaults, and [`CANDIDATE_ROWS`].

use std::path::PathBuf;
use std::time::Duration;

use crate::feedback::FeedbackConfig;
use crate::llm::LlmConfig;

/// Rows a candidate answer is run on when several are compared.
pub const CANDIDATE_ROWS: u64 = 100;

/// Everything the engine is configured with.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// ClickHouse's HTTP interface, for the catalog and sampled values.
    pub clickhouse_url: String,
    /// Replicas tried, in order, when `clickhouse_url` cannot be connected to.
    pub clickhouse_replicas: Vec<String>,
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
    /// Before a single answer is returned it runs read-only on [`CANDIDATE_ROWS`] rows; when it finds nothing
    /// (no rows, only NULLs, one row of zeros) it goes back to the model once with that fact, within `repair_attempts`. A repair
    /// that is refused keeps the first answer.
    pub repair_empty: bool,
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
            clickhouse_replicas: Vec::new(),
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
            repair_empty: false,
            candidates: 1,
            feedback: None,
        }
    }
}
