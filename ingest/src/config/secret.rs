//! Secrets of the configuration (the API token, ClickHouse's password, the brokers' SASL password): given
//! inline (the passwords only), or read through an environment variable or a file ([`aurora_common::secret`]).
//! A secret never appears in `Debug` output, logs or errors; errors name the key at fault.

use std::fmt;
use std::path::PathBuf;

use aurora_common::secret::{self, SecretKeys};
use serde::Deserialize;

/// A secret: given inline, by environment variable name, or by file path (first line, trimmed).
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Shortest API token accepted (bytes).
pub const MIN_API_TOKEN_LEN: usize = 16;

/// The keys the API token is read through.
pub(super) const API_TOKEN: SecretKeys = SecretKeys {
    what: "API token",
    env: "api_token_env",
    file: "api_token_file",
};
/// The keys ClickHouse's password is read through.
pub(super) const PASSWORD: SecretKeys = SecretKeys {
    what: "password",
    env: "password_env",
    file: "password_file",
};
/// The keys the brokers' SASL password is read through.
pub(super) const SASL_PASSWORD: SecretKeys = SecretKeys {
    what: "SASL password",
    env: "sasl_password_env",
    file: "sasl_password_file",
};

/// Why a secret of the configuration cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// More than one of the inline key, its `…_env` and its `…_file`.
    #[error("give only one of {name}, {env}, {file}")]
    NotOne {
        name: &'static str,
        env: &'static str,
        file: &'static str,
    },
    /// The variable is not set or the file cannot be read; the message starts with the key at fault.
    #[error("{key}: {0}", key = .0.key())]
    Read(#[source] secret::SecretError),
    #[error("the API token must be at least {MIN_API_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)")]
    ShortApiToken,
}

/// A secret given inline under `name`, or read through `keys`: at most one of the three. An empty value is
/// taken as given (an empty password is no password; a short API token is refused by its own check).
pub(super) fn resolve(
    name: &'static str,
    keys: SecretKeys,
    inline: &Option<Secret>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, SecretError> {
    let not_one = || SecretError::NotOne {
        name,
        env: keys.env,
        file: keys.file,
    };
    if let Some(secret) = inline {
        return match (env, file) {
            (None, None) => Ok(Some(secret.clone())),
            _ => Err(not_one()),
        };
    }
    match secret::read(keys, env.as_deref(), file.as_deref()) {
        Ok(secret) => Ok(secret.map(Secret)),
        Err(secret::SecretError::Both { .. }) => Err(not_one()),
        Err(secret::SecretError::Empty { .. }) => Ok(Some(Secret(String::new()))),
        Err(e) => Err(SecretError::Read(e)),
    }
}
