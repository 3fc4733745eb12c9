//! A validation problem: the key it is about and what is wrong with it.

/// A validation failure that names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

pub(super) fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The first of `problems`, for the callers that answer with one.
pub(super) fn first(problems: Vec<ConfigError>) -> Result<(), ConfigError> {
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}
