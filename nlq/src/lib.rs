//! `nlq` — Aurora's natural-language engine.
//!
//! - [`statement`]: recognises Aurora's statements (`ASK '…'`, `EXPLAIN ASK '…'`) for both sides of the proxy.
//! - [`catalog`]: what the asking user can read, read with their own credentials ([`clickhouse`]).
//! - [`semantic`]: the optional file of descriptions, synonyms, join hints and examples.
//! - [`embed`] and [`retrieve`]: which tables and examples matter for a question (embeddings + words).
//! - [`context`]: the prompt, within a token budget.
//! - [`llm`]: any OpenAI-compatible endpoint, structured JSON answers.
//! - [`validate`], [`lift`] and [`bind`]: the gate between what a model wrote and what reaches ClickHouse; the
//!   literals of the model's SQL become typed query parameters.
//! - [`engine`]: all of the above in order, with caches and self-correction.
//! - [`feedback`]: users' marks of answers, stored in ClickHouse; good pairs become examples.
//! - [`compare`]: how questions (cache keys, marks) and results (accuracy, candidates) compare.
//! - [`eval`]: execution accuracy of the pipeline over a question set.

pub mod bind;
pub mod catalog;
pub mod clickhouse;
pub mod compare;
pub mod context;
pub mod dialect;
pub mod embed;
pub mod engine;
pub mod error;
pub mod eval;
pub mod feedback;
pub mod lift;
pub mod llm;
pub mod retrieve;
pub mod semantic;
pub mod statement;
pub mod tenant;
pub mod validate;

pub use bind::{check_params, query_parameters, substitute_literals, BoundParam, BoundValue};
pub use engine::{
    is_follow_up, AskError, AskOptions, AskStats, Asker, CacheHit, Engine, EngineConfig, Executable, Plan,
    Previous,
};
pub use error::{BindError, ValidationError};
pub use feedback::{FeedbackConfig, Verdict};
pub use statement::{
    classify, classify_prefix, reads_only, AskStatement, AskSyntaxError, Prefix, SettingValue, Statement,
};
pub use validate::{validate, ParamType, Placeholder, PlaceholderSite, Policy, TableName, ValidatedQuery};

/// Makes ring the process's TLS crypto provider (the HTTP clients are built without one, so nothing needs
/// cmake). Idempotent; a provider installed earlier stays.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
