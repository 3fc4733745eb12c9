//! A secret that configuration names rather than holds: the environment variable named by a `…_env` key, or
//! the first line of the file named by a `…_file` key. Both the proxy (aurora-ingest's API token) and
//! aurora-ingest (its API token, ClickHouse and SASL passwords) read secrets this way; the value is never in
//! an error message, only the key and the variable or file that failed.

use std::path::{Path, PathBuf};

/// The config keys through which one secret is read, for the errors that name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretKeys {
    /// What the secret is, in the message about an empty one: `token`, `password`.
    pub what: &'static str,
    /// The key whose value names the environment variable, e.g. `ingest_api_token_env`.
    pub env: &'static str,
    /// The key whose value is the file's path, e.g. `ingest_api_token_file`.
    pub file: &'static str,
}

/// Why a secret cannot be read. Each variant names the config key at fault ([`SecretError::key`]); the
/// message does not repeat it, so that each caller can put the key where its own errors put keys.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("give {env} or {file}, not both")]
    Both { env: &'static str, file: &'static str },
    #[error("environment variable {var} is not set")]
    EnvUnset { key: &'static str, var: String },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} is empty")]
    Empty { key: &'static str, what: &'static str },
}

impl SecretError {
    /// The config key at fault (`…_env` when both keys were given).
    pub fn key(&self) -> &'static str {
        match self {
            SecretError::Both { env, .. } => env,
            SecretError::EnvUnset { key, .. }
            | SecretError::Unreadable { key, .. }
            | SecretError::Empty { key, .. } => key,
        }
    }
}

/// The secret from the environment variable named `env` or the first line of `file` (at most one of them),
/// trimmed. `Ok(None)` when neither is given; an empty value is an error.
pub fn read(keys: SecretKeys, env: Option<&str>, file: Option<&Path>) -> Result<Option<String>, SecretError> {
    let (value, key) = match (env, file) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(SecretError::Both {
                env: keys.env,
                file: keys.file,
            })
        }
        (Some(var), None) => {
            let value = std::env::var(var).map_err(|_| SecretError::EnvUnset {
                key: keys.env,
                var: var.to_string(),
            })?;
            (value, keys.env)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| SecretError::Unreadable {
                key: keys.file,
                path: path.to_path_buf(),
                source,
            })?;
            (text.lines().next().unwrap_or("").to_string(), keys.file)
        }
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(SecretError::Empty { key, what: keys.what });
    }
    Ok(Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: SecretKeys = SecretKeys {
        what: "token",
        env: "token_env",
        file: "token_file",
    };

    fn file(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aurora-common-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_secret_is_the_first_line_of_its_file_trimmed() {
        let path = file("two-lines", "  s3cret \nsecond line ignored\n");
        assert_eq!(read(KEYS, None, Some(&path)).unwrap().as_deref(), Some("s3cret"));
        assert_eq!(read(KEYS, None, None).unwrap(), None);
    }

    #[test]
    fn a_secret_from_the_environment_is_trimmed() {
        // PATH is set wherever tests run and is never only whitespace.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            read(KEYS, Some("PATH"), None).unwrap(),
            Some(path.trim().to_string())
        );
    }

    #[test]
    fn errors_name_the_key_and_never_the_value() {
        let path = file("given", "s3cret\n");
        let both = read(KEYS, Some("PATH"), Some(&path)).unwrap_err();
        assert_eq!(
            (both.key(), both.to_string().as_str()),
            ("token_env", "give token_env or token_file, not both")
        );

        let unset = read(KEYS, Some("AURORA_TEST_SURELY_UNSET_SECRET_VAR"), None).unwrap_err();
        assert_eq!(unset.key(), "token_env");
        assert_eq!(
            unset.to_string(),
            "environment variable AURORA_TEST_SURELY_UNSET_SECRET_VAR is not set"
        );

        let missing = std::env::temp_dir().join("aurora-common-surely-no-such-file");
        let unreadable = read(KEYS, None, Some(&missing)).unwrap_err();
        assert_eq!(unreadable.key(), "token_file");
        assert!(
            unreadable
                .to_string()
                .starts_with(&format!("cannot read {}: ", missing.display())),
            "{unreadable}"
        );

        for contents in ["", "\n", "   \nsecond\n"] {
            let path = file("empty", contents);
            let empty = read(KEYS, None, Some(&path)).unwrap_err();
            assert_eq!(
                (empty.key(), empty.to_string().as_str()),
                ("token_file", "the token is empty")
            );
        }
    }
}
