//! Configuration: command-line flags, `AURORA_…` environment variables and a TOML file, in that order of
//! precedence, over named defaults.
//!
//! - [`settings`]: every key, written once — its name (the TOML key; the flag with '-' for '_'), environment
//!   variable, default and documentation — in sections.
//! - [`cli`]: clap reads flags, the environment and defaults into those settings and remembers which keys a
//!   flag or the environment gave.
//! - `file`: the TOML file fills the keys they did not give; an unknown key is refused.
//! - `resolve`: one pass from settings to the [`Config`] the proxy runs with, checking every key.
//!
//! - [`upstream_url`]: the reading of `upstream_http`, which the HTTP side connects by.
//!
//! Every problem found is reported at once, each with its key ([`ConfigError::Invalid`]).

pub mod cli;
pub mod error;
mod file;
pub mod nodes;
mod resolve;
pub mod settings;
pub mod upstream_url;
pub mod users;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aurora_common::secret::SecretKeys;

pub use cli::Cli;
pub use error::{ConfigError, Problem};
pub use settings::*;

/// The environment variable that holds the LLM endpoint's API key (never a flag: flags show in `ps`).
pub const LLM_API_KEY_ENV: &str = "AURORA_LLM_API_KEY";

/// The proxy's configuration after merging and validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub native_listen: SocketAddr,
    /// TLS listener for native clients, with its certificate chain and key (all three or none).
    pub native_tls: Option<NativeTls>,
    /// HTTPS listener for the HTTP interface, with the same certificate and key.
    pub https: Option<Https>,
    pub http_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// Read and write endpoints (each off unless set).
    pub native_read_listen: Option<SocketAddr>,
    pub http_read_listen: Option<SocketAddr>,
    pub native_write_listen: Option<SocketAddr>,
    pub http_write_listen: Option<SocketAddr>,
    /// `host:port` of ClickHouse's native interface.
    pub upstream_native: String,
    /// Base URL of ClickHouse's HTTP interface (`http://`), without a trailing slash.
    /// (With `[[nodes]]` these two are the first node's: what the natural-language engine reads the catalog from.)
    pub upstream_http: String,
    /// The nodes behind the proxy, how they are chosen and probed.
    pub cluster: nodes::ClusterConfig,
    /// Proxy users (`[[users]]`); empty: clients' credentials pass through to ClickHouse.
    pub users: Vec<users::UserConfig>,
    /// The audit table and its writer; `None`: no audit records are kept.
    pub audit: Option<users::AuditConfig>,
    pub llm_base_url: Option<String>,
    pub llm_model: Option<String>,
    /// Base URL of aurora-ingest's HTTP API (no trailing slash), for the console's pipelines page.
    pub ingest_api_url: Option<String>,
    /// ClickHouse users who may change pipelines through the console; status is open to any user ClickHouse
    /// accepts.
    pub pipeline_admins: Vec<String>,
    /// aurora-ingest's API token, sent as `Authorization: Bearer …` with the console's requests to the daemon.
    pub ingest_api_token: Option<IngestApiToken>,
    /// Grafana's base URL (no trailing slash), for the console's Visualize page.
    pub grafana_url: Option<String>,
    pub llm_timeout: Duration,
    pub llm_max_tokens: u32,
    pub embed_model_dir: Option<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub semantic_file: Option<PathBuf>,
    pub catalog_ttl: Duration,
    pub ask_max_rows: u64,
    pub ask_allow_system_tables: bool,
    /// `None` when the semantic cache is off.
    pub ask_semantic_cache_threshold: Option<f32>,
    pub ask_token_budget: usize,
    pub ask_candidates: u32,
    pub ask_repair_attempts: u32,
    pub ask_repair_empty: bool,
    /// Where marks of answers are stored and who writes them; `None`: feedback is off.
    pub ask_feedback: Option<nlq::FeedbackConfig>,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
    pub max_framed_packet: u64,
    pub max_framing_memory: u64,
    pub http_receive_timeout: Duration,
    pub log_format: LogFormat,
}

/// Where the TLS listener binds and what it presents.
#[derive(Debug, Clone)]
pub struct NativeTls {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The PEM certificate chain and private key the TLS listeners present.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Where the HTTPS listener binds and what it presents.
#[derive(Debug, Clone)]
pub struct Https {
    pub listen: SocketAddr,
    pub files: TlsFiles,
}

/// aurora-ingest's API token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct IngestApiToken(pub String);

impl std::fmt::Debug for IngestApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestApiToken(***)")
    }
}

impl IngestApiToken {
    /// The config keys the token is read through.
    pub const KEYS: SecretKeys = SecretKeys {
        what: "token",
        env: "ingest_api_token_env",
        file: "ingest_api_token_file",
    };
}

impl Config {
    /// Lays the config file (if `cli` names one) under flags and environment (already in `cli`), over
    /// defaults, then checks the result; every problem found is in the error.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let Cli {
            config,
            settings,
            given,
        } = cli;
        let mut problems = Vec::new();
        let settings = match &config {
            Some(path) => file::overlay(settings, &given, path, &mut problems)?,
            None => settings,
        };
        let config = resolve::resolve(settings, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The natural-language engine's settings.
    pub fn engine_config(&self) -> nlq::EngineConfig {
        // The catalog, sampled values and feedback are read from the nodes that serve reads, in the file's order.
        let mut readers = self
            .cluster
            .nodes
            .iter()
            .filter(|n| n.role != Role::Write)
            .map(|n| n.http.clone());
        let mut engine = nlq::EngineConfig::new(readers.next().unwrap_or_else(|| self.upstream_http.clone()));
        engine.clickhouse_replicas = readers.collect();
        engine.clickhouse_timeout = self.connect_timeout.max(Duration::from_secs(30));
        engine.llm = match (&self.llm_base_url, &self.llm_model) {
            (Some(base_url), Some(model)) => Some(nlq::llm::LlmConfig {
                base_url: base_url.clone(),
                model: model.clone(),
                api_key: std::env::var(LLM_API_KEY_ENV).ok().filter(|k| !k.is_empty()),
                timeout: self.llm_timeout,
                max_tokens: self.llm_max_tokens,
            }),
            _ => None,
        };
        engine.embed_model_dir = self.embed_model_dir.clone();
        engine.cache_dir = self.cache_dir.clone();
        engine.semantic_file = self.semantic_file.clone();
        engine.catalog_ttl = self.catalog_ttl;
        engine.max_rows = self.ask_max_rows;
        engine.allow_system_tables = self.ask_allow_system_tables;
        engine.semantic_cache_threshold = self.ask_semantic_cache_threshold;
        engine.token_budget = self.ask_token_budget;
        engine.candidates = self.ask_candidates;
        engine.repair_attempts = self.ask_repair_attempts;
        engine.repair_empty = self.ask_repair_empty;
        engine.feedback = self.ask_feedback.clone();
        engine
    }
}
