//! Errors of the engine: the ClickHouse error [`codes`] it answers with, [`AskError`] (why an ASK got no
//! query) and [`EngineError`] (why the engine could not be built).

use crate::clickhouse::ClickHouseError;
use crate::embed::EmbedError;
use crate::error::{BindError, ValidationError};
use crate::llm::LlmError;
use crate::semantic::SemanticError;

/// ClickHouse error codes the engine answers with (the proxy shows them as ClickHouse exceptions).
pub mod codes {
    pub use aurora_common::codes::{
        ACCESS_DENIED, BAD_ARGUMENTS, INCORRECT_DATA, NETWORK_ERROR, NOT_IMPLEMENTED, SYNTAX_ERROR,
        TIMEOUT_EXCEEDED, UNKNOWN_TABLE,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

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
