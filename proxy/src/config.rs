//! Configuration: command-line flags, `AURORA_…` environment variables and a TOML file, in that order of
//! precedence, over named defaults. Unknown flags and unknown keys are errors that name the offender.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aurora_common::secret::{self, SecretError, SecretKeys};
use clap::Parser;
use serde::Deserialize;

/// Default addresses follow ClickHouse's ports shifted by one so the proxy can run beside a local server.
pub const DEFAULT_NATIVE_LISTEN: &str = "127.0.0.1:9001";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8124";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_UPSTREAM_NATIVE: &str = "127.0.0.1:9000";
pub const DEFAULT_UPSTREAM_HTTP: &str = "http://127.0.0.1:8123";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_FRAMED_PACKET: u64 = 256 << 20;
pub const DEFAULT_MAX_FRAMING_MEMORY: u64 = 1 << 30;
/// ClickHouse's own `http_receive_timeout` default.
pub const DEFAULT_HTTP_RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_LLM_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_LLM_MAX_TOKENS: u32 = 512;
pub const DEFAULT_CATALOG_TTL: Duration = Duration::from_secs(60);
pub const DEFAULT_ASK_MAX_ROWS: u64 = 10_000;
pub const DEFAULT_ASK_TOKEN_BUDGET: usize = 3_000;
pub const DEFAULT_SEMANTIC_CACHE_THRESHOLD: f32 = 0.97;
/// The environment variable that holds the LLM endpoint's API key (never a flag: flags show in `ps`).
pub const LLM_API_KEY_ENV: &str = "AURORA_LLM_API_KEY";

/// `aurora-proxy` command line. Every flag can also be set by its environment variable or config key.
#[derive(Debug, Parser, Default)]
#[command(
    name = "aurora-proxy",
    version,
    about = "ClickHouse native and HTTP proxy that answers ASK questions"
)]
pub struct Cli {
    /// TOML config file; its keys are the flag names with '_' for '-'.
    #[arg(long, env = "AURORA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address for ClickHouse native-protocol clients [default: 127.0.0.1:9001].
    #[arg(long, env = "AURORA_NATIVE_LISTEN")]
    pub native_listen: Option<SocketAddr>,
    /// Address for native-protocol clients over TLS (clickhouse-client --secure; ClickHouse uses 9440). Off unless
    /// set; needs --tls-cert-file and --tls-key-file.
    #[arg(long, env = "AURORA_NATIVE_TLS_LISTEN")]
    pub native_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for --native-tls-listen.
    #[arg(long, env = "AURORA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for --native-tls-listen.
    #[arg(long, env = "AURORA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Address for ClickHouse HTTP-interface clients [default: 127.0.0.1:8124].
    #[arg(long, env = "AURORA_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Address of the Prometheus /metrics endpoint [default: 127.0.0.1:9464].
    #[arg(long, env = "AURORA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// ClickHouse native port, HOST:PORT [default: 127.0.0.1:9000].
    #[arg(long, env = "AURORA_UPSTREAM_NATIVE")]
    pub upstream_native: Option<String>,
    /// ClickHouse HTTP interface URL [default: http://127.0.0.1:8123].
    #[arg(long, env = "AURORA_UPSTREAM_HTTP")]
    pub upstream_http: Option<String>,
    /// OpenAI-compatible endpoint for ASK (e.g. http://127.0.0.1:8080/v1).
    #[arg(long, env = "AURORA_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Model name sent to the LLM endpoint. The API key, if the endpoint needs one, is read from the
    /// environment variable AURORA_LLM_API_KEY only.
    #[arg(long, env = "AURORA_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// HTTP API of aurora-ingest that the console at /ui/ manages pipelines through (e.g.
    /// http://127.0.0.1:8125). Off unless set.
    #[arg(long, env = "AURORA_INGEST_API_URL")]
    pub ingest_api_url: Option<String>,
    /// ClickHouse users who may connect and disconnect pipelines from the console, comma-separated (any user
    /// ClickHouse accepts may see their status) [default: none].
    #[arg(long, env = "AURORA_PIPELINE_ADMINS", value_delimiter = ',')]
    pub pipeline_admins: Option<Vec<String>>,
    /// Name of the environment variable that holds aurora-ingest's API token (its api_token_env), sent by the
    /// console's requests to the daemon.
    #[arg(long, env = "AURORA_INGEST_API_TOKEN_ENV")]
    pub ingest_api_token_env: Option<String>,
    /// File whose first line is aurora-ingest's API token (its api_token_file).
    #[arg(long, env = "AURORA_INGEST_API_TOKEN_FILE")]
    pub ingest_api_token_file: Option<PathBuf>,
    /// Grafana's base URL, linked from the console's Visualize page (e.g. http://127.0.0.1:3000).
    #[arg(long, env = "AURORA_GRAFANA_URL")]
    pub grafana_url: Option<String>,
    /// Time allowed for one LLM answer [default: 120s].
    #[arg(long, env = "AURORA_LLM_TIMEOUT", value_parser = humantime::parse_duration)]
    pub llm_timeout: Option<Duration>,
    /// Most tokens the LLM may generate per answer [default: 512].
    #[arg(long, env = "AURORA_LLM_MAX_TOKENS")]
    pub llm_max_tokens: Option<u32>,
    /// Directory of the sentence-embedding model (model.onnx, tokenizer.json, config.json,
    /// special_tokens_map.json, tokenizer_config.json) for retrieval and the semantic cache; without it,
    /// retrieval matches words only. scripts/embeddings.sh fetches one.
    #[arg(long, env = "AURORA_EMBED_MODEL_DIR")]
    pub embed_model_dir: Option<PathBuf>,
    /// ONNX Runtime shared library for the embedding model (sets ORT_DYLIB_PATH) [default: ORT_DYLIB_PATH].
    #[arg(long, env = "AURORA_ORT_LIBRARY")]
    pub ort_library: Option<PathBuf>,
    /// Directory where computed embeddings persist between runs [default: none, memory only].
    #[arg(long, env = "AURORA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// YAML file of table/column descriptions, synonyms, join hints and example questions.
    #[arg(long, env = "AURORA_SEMANTIC_FILE")]
    pub semantic_file: Option<PathBuf>,
    /// How long a user's catalog (tables and columns) is reused before it is read again [default: 60s].
    #[arg(long, env = "AURORA_CATALOG_TTL", value_parser = humantime::parse_duration)]
    pub catalog_ttl: Option<Duration>,
    /// Most rows an ASK returns [default: 10000].
    #[arg(long, env = "AURORA_ASK_MAX_ROWS")]
    pub ask_max_rows: Option<u64>,
    /// Let generated queries read system tables (the user's own rights still apply) [default: false].
    #[arg(long, env = "AURORA_ASK_ALLOW_SYSTEM_TABLES")]
    pub ask_allow_system_tables: Option<bool>,
    /// Similarity (0..1) at which an earlier question's query is reused; 0 turns the semantic cache off
    /// [default: 0.97].
    #[arg(long, env = "AURORA_ASK_SEMANTIC_CACHE_THRESHOLD")]
    pub ask_semantic_cache_threshold: Option<f32>,
    /// Token budget of the prompt's schema context [default: 3000].
    #[arg(long, env = "AURORA_ASK_TOKEN_BUDGET")]
    pub ask_token_budget: Option<usize>,
    /// Answers asked of the model per question; above 1 they run read-only on a few rows and the answer most
    /// of them agree with wins (self-consistency) [default: 1, at most 5].
    #[arg(long, env = "AURORA_ASK_CANDIDATES")]
    pub ask_candidates: Option<u32>,
    /// Times an answer Aurora refuses goes back to the model with the reason [default: 1, at most 3].
    #[arg(long, env = "AURORA_ASK_REPAIR_ATTEMPTS")]
    pub ask_repair_attempts: Option<u32>,
    /// Table where users' marks of ASK answers (`SETTINGS aurora_feedback = 'good'|'bad'`, the console's
    /// buttons) are stored and read back as examples, `database.table`; `none` turns feedback off
    /// [default: default.aurora_feedback].
    #[arg(long, env = "AURORA_ASK_FEEDBACK_TABLE")]
    pub ask_feedback_table: Option<String>,
    /// ClickHouse user that writes and reads the feedback table (never the asking user) [default: default].
    #[arg(long, env = "AURORA_ASK_FEEDBACK_USER")]
    pub ask_feedback_user: Option<String>,
    /// Name of the environment variable that holds the feedback user's password [default: no password].
    #[arg(long, env = "AURORA_ASK_FEEDBACK_PASSWORD_ENV")]
    pub ask_feedback_password_env: Option<String>,
    /// Time allowed to connect to ClickHouse, e.g. "5s" [default: 5s].
    #[arg(long, env = "AURORA_CONNECT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Time allowed for a native client's handshake [default: 10s].
    #[arg(long, env = "AURORA_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// On SIGTERM/SIGINT, how long running queries may finish before connections are closed [default: 30s].
    #[arg(long, env = "AURORA_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Most client connections served at once per protocol; more wait in the listen queue [default: 4096].
    #[arg(long, env = "AURORA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest native packet the proxy frames in memory; a larger one switches that connection to a plain byte
    /// relay [default: 268435456].
    #[arg(long, env = "AURORA_MAX_FRAMED_PACKET")]
    pub max_framed_packet: Option<u64>,
    /// Bytes all native client connections together may hold for packets still being framed (raw and
    /// decompressed); past it, reading pauses, and a connection that waits 5 s relays the rest of its bytes
    /// unframed [default: 1073741824].
    #[arg(long, env = "AURORA_MAX_FRAMING_MEMORY")]
    pub max_framing_memory: Option<u64>,
    /// Longest pause allowed while an HTTP request body arrives, as ClickHouse's `http_receive_timeout`; also
    /// the whole time the proxy waits for the first bytes of a body to tell SQL from ASK [default: 30s].
    #[arg(long, env = "AURORA_HTTP_RECEIVE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub http_receive_timeout: Option<Duration>,
    /// Log format: "text" or "json" [default: text]. The level comes from RUST_LOG (default "info").
    #[arg(long, env = "AURORA_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The TOML file: the same keys as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    native_listen: Option<SocketAddr>,
    native_tls_listen: Option<SocketAddr>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    http_listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    upstream_native: Option<String>,
    upstream_http: Option<String>,
    llm_base_url: Option<String>,
    llm_model: Option<String>,
    ingest_api_url: Option<String>,
    pipeline_admins: Option<Vec<String>>,
    ingest_api_token_env: Option<String>,
    ingest_api_token_file: Option<PathBuf>,
    grafana_url: Option<String>,
    #[serde(default, with = "humantime_serde")]
    llm_timeout: Option<Duration>,
    llm_max_tokens: Option<u32>,
    embed_model_dir: Option<PathBuf>,
    ort_library: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    semantic_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    catalog_ttl: Option<Duration>,
    ask_max_rows: Option<u64>,
    ask_allow_system_tables: Option<bool>,
    ask_semantic_cache_threshold: Option<f32>,
    ask_token_budget: Option<usize>,
    ask_candidates: Option<u32>,
    ask_repair_attempts: Option<u32>,
    ask_feedback_table: Option<String>,
    ask_feedback_user: Option<String>,
    ask_feedback_password_env: Option<String>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    handshake_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    shutdown_timeout: Option<Duration>,
    max_connections: Option<usize>,
    max_framed_packet: Option<u64>,
    max_framing_memory: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    http_receive_timeout: Option<Duration>,
    log_format: Option<LogFormat>,
}

/// The proxy's configuration after merging and validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub native_listen: SocketAddr,
    /// TLS listener for native clients, with its certificate chain and key (all three or none).
    pub native_tls: Option<NativeTls>,
    pub http_listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    /// `host:port` of ClickHouse's native interface.
    pub upstream_native: String,
    /// Base URL of ClickHouse's HTTP interface, without a trailing slash.
    pub upstream_http: String,
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
    const KEYS: SecretKeys = SecretKeys {
        what: "token",
        env: "ingest_api_token_env",
        file: "ingest_api_token_file",
    };

    /// The token from the environment variable named `env` or the first line of `file` (at most one of them).
    fn resolve(env: Option<String>, file: Option<PathBuf>) -> Result<Option<IngestApiToken>, ConfigError> {
        let token =
            secret::read(Self::KEYS, env.as_deref(), file.as_deref()).map_err(|e| ConfigError::Invalid {
                // An empty token has always been reported against ingest_api_token_env, from a file too.
                key: match e {
                    SecretError::Empty { .. } => Self::KEYS.env,
                    _ => e.key(),
                },
                message: e.to_string(),
            })?;
        Ok(token.map(IngestApiToken))
    }
}

/// The feedback table's setting: `none` turns it off; the password comes from the named environment variable.
fn feedback(
    table: Option<String>,
    user: Option<String>,
    password_env: Option<String>,
) -> Result<Option<nlq::FeedbackConfig>, ConfigError> {
    let table = table.unwrap_or_else(|| DEFAULT_FEEDBACK_TABLE.to_string());
    if table.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let table = nlq::FeedbackConfig::parse_table(table.trim()).map_err(|message| ConfigError::Invalid {
        key: "ask_feedback_table",
        message,
    })?;
    let password = match password_env {
        None => String::new(),
        Some(var) => std::env::var(&var).map_err(|_| ConfigError::Invalid {
            key: "ask_feedback_password_env",
            message: format!("environment variable {var} is not set"),
        })?,
    };
    let user = user.filter(|u| !u.is_empty()).unwrap_or_else(|| "default".into());
    Ok(Some(nlq::FeedbackConfig {
        table,
        credentials: nlq::clickhouse::Credentials::new(user, password),
    }))
}

/// Where marks of ASK answers go unless configured.
pub const DEFAULT_FEEDBACK_TABLE: &str = "default.aurora_feedback";

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// The natural-language engine's settings.
    pub fn engine_config(&self) -> nlq::EngineConfig {
        let mut engine = nlq::EngineConfig::new(self.upstream_http.clone());
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
        engine.feedback = self.ask_feedback.clone();
        engine
    }

    /// Merges flags and environment (already in `cli`) over the config file over defaults, then validates.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let parse_default = |s: &str| s.parse::<SocketAddr>().expect("default address is valid");
        let tls_listen = cli.native_tls_listen.or(file.native_tls_listen);
        let cert_file = cli.tls_cert_file.or(file.tls_cert_file);
        let key_file = cli.tls_key_file.or(file.tls_key_file);
        let native_tls = match (tls_listen, cert_file, key_file) {
            (None, None, None) => None,
            (Some(listen), Some(cert_file), Some(key_file)) => Some(NativeTls {
                listen,
                cert_file,
                key_file,
            }),
            _ => {
                return Err(ConfigError::Invalid {
                    key: "native_tls_listen",
                    message: "native_tls_listen, tls_cert_file and tls_key_file are set together".into(),
                })
            }
        };
        let config = Config {
            native_tls,
            native_listen: cli
                .native_listen
                .or(file.native_listen)
                .unwrap_or_else(|| parse_default(DEFAULT_NATIVE_LISTEN)),
            http_listen: cli
                .http_listen
                .or(file.http_listen)
                .unwrap_or_else(|| parse_default(DEFAULT_HTTP_LISTEN)),
            metrics_listen: cli
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or_else(|| parse_default(DEFAULT_METRICS_LISTEN)),
            upstream_native: cli
                .upstream_native
                .or(file.upstream_native)
                .unwrap_or_else(|| DEFAULT_UPSTREAM_NATIVE.into()),
            upstream_http: cli
                .upstream_http
                .or(file.upstream_http)
                .unwrap_or_else(|| DEFAULT_UPSTREAM_HTTP.into())
                .trim_end_matches('/')
                .to_string(),
            llm_base_url: cli.llm_base_url.or(file.llm_base_url),
            llm_model: cli.llm_model.or(file.llm_model),
            ingest_api_url: cli
                .ingest_api_url
                .or(file.ingest_api_url)
                .map(|url| url.trim_end_matches('/').to_string()),
            pipeline_admins: cli
                .pipeline_admins
                .or(file.pipeline_admins)
                .unwrap_or_default()
                .into_iter()
                .map(|user| user.trim().to_string())
                .filter(|user| !user.is_empty())
                .collect(),
            ingest_api_token: IngestApiToken::resolve(
                cli.ingest_api_token_env.or(file.ingest_api_token_env),
                cli.ingest_api_token_file.or(file.ingest_api_token_file),
            )?,
            grafana_url: cli
                .grafana_url
                .or(file.grafana_url)
                .map(|url| url.trim_end_matches('/').to_string()),
            llm_timeout: cli
                .llm_timeout
                .or(file.llm_timeout)
                .unwrap_or(DEFAULT_LLM_TIMEOUT),
            llm_max_tokens: cli
                .llm_max_tokens
                .or(file.llm_max_tokens)
                .unwrap_or(DEFAULT_LLM_MAX_TOKENS),
            embed_model_dir: cli.embed_model_dir.or(file.embed_model_dir),
            ort_library: cli.ort_library.or(file.ort_library),
            cache_dir: cli.cache_dir.or(file.cache_dir),
            semantic_file: cli.semantic_file.or(file.semantic_file),
            catalog_ttl: cli
                .catalog_ttl
                .or(file.catalog_ttl)
                .unwrap_or(DEFAULT_CATALOG_TTL),
            ask_max_rows: cli
                .ask_max_rows
                .or(file.ask_max_rows)
                .unwrap_or(DEFAULT_ASK_MAX_ROWS),
            ask_allow_system_tables: cli
                .ask_allow_system_tables
                .or(file.ask_allow_system_tables)
                .unwrap_or(false),
            ask_semantic_cache_threshold: Some(
                cli.ask_semantic_cache_threshold
                    .or(file.ask_semantic_cache_threshold)
                    .unwrap_or(DEFAULT_SEMANTIC_CACHE_THRESHOLD),
            )
            .filter(|t| *t > 0.0),
            ask_token_budget: cli
                .ask_token_budget
                .or(file.ask_token_budget)
                .unwrap_or(DEFAULT_ASK_TOKEN_BUDGET),
            ask_candidates: cli.ask_candidates.or(file.ask_candidates).unwrap_or(1),
            ask_repair_attempts: cli.ask_repair_attempts.or(file.ask_repair_attempts).unwrap_or(1),
            ask_feedback: feedback(
                cli.ask_feedback_table.or(file.ask_feedback_table),
                cli.ask_feedback_user.or(file.ask_feedback_user),
                cli.ask_feedback_password_env.or(file.ask_feedback_password_env),
            )?,
            connect_timeout: cli
                .connect_timeout
                .or(file.connect_timeout)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            handshake_timeout: cli
                .handshake_timeout
                .or(file.handshake_timeout)
                .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
            shutdown_timeout: cli
                .shutdown_timeout
                .or(file.shutdown_timeout)
                .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            max_connections: cli
                .max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_framed_packet: cli
                .max_framed_packet
                .or(file.max_framed_packet)
                .unwrap_or(DEFAULT_MAX_FRAMED_PACKET),
            max_framing_memory: cli
                .max_framing_memory
                .or(file.max_framing_memory)
                .unwrap_or(DEFAULT_MAX_FRAMING_MEMORY),
            http_receive_timeout: cli
                .http_receive_timeout
                .or(file.http_receive_timeout)
                .unwrap_or(DEFAULT_HTTP_RECEIVE_TIMEOUT),
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        match self.upstream_native.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return invalid(
                    "upstream_native",
                    format!("{:?} is not HOST:PORT", self.upstream_native),
                )
            }
        }
        if !(self.upstream_http.starts_with("http://") || self.upstream_http.starts_with("https://")) {
            return invalid(
                "upstream_http",
                format!("{:?} is not an http:// or https:// URL", self.upstream_http),
            );
        }
        if self.llm_base_url.is_some() != self.llm_model.is_some() {
            return invalid(
                "llm_base_url",
                "llm_base_url and llm_model are set together".into(),
            );
        }
        if let Some(url) = &self.ingest_api_url {
            if !url.starts_with("http://") {
                return invalid(
                    "ingest_api_url",
                    format!("{url:?} is not an http:// URL (aurora-ingest's API speaks plain HTTP)"),
                );
            }
        }
        if let Some(url) = &self.grafana_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(
                    "grafana_url",
                    format!("{url:?} is not an http:// or https:// URL"),
                );
            }
        }
        if let Some(t) = self.ask_semantic_cache_threshold {
            if !(0.0..=1.0).contains(&t) {
                return invalid(
                    "ask_semantic_cache_threshold",
                    format!("{t} is not between 0 and 1"),
                );
            }
        }
        if self.ask_max_rows == 0 {
            return invalid("ask_max_rows", "must be at least 1".into());
        }
        if !(1..=5).contains(&self.ask_candidates) {
            return invalid("ask_candidates", "must be 1 to 5".into());
        }
        if self.ask_repair_attempts > 3 {
            return invalid("ask_repair_attempts", "must be 0 to 3".into());
        }
        if self.ask_token_budget < 200 {
            return invalid("ask_token_budget", "must be at least 200".into());
        }
        if self.llm_max_tokens == 0 {
            return invalid("llm_max_tokens", "must be at least 1".into());
        }
        for (key, path) in [
            ("embed_model_dir", &self.embed_model_dir),
            ("semantic_file", &self.semantic_file),
            ("ort_library", &self.ort_library),
        ] {
            if let Some(path) = path {
                if !path.exists() {
                    return invalid(key, format!("{} does not exist", path.display()));
                }
            }
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1".into());
        }
        if self.max_framed_packet < 1 << 20 {
            return invalid("max_framed_packet", "must be at least 1048576 (1 MiB)".into());
        }
        if self.max_framing_memory < self.max_framed_packet.min(64 << 20) {
            return invalid(
                "max_framing_memory",
                "must be at least 67108864 (64 MiB) or max_framed_packet, whichever is smaller".into(),
            );
        }
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("llm_timeout", self.llm_timeout),
            ("http_receive_timeout", self.http_receive_timeout),
        ] {
            if value.is_zero() {
                return invalid(key, "must be longer than zero".into());
            }
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("aurora-proxy").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_apply_and_flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("aurora-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        std::fs::write(&file, "upstream_native = \"10.0.0.1:9000\"\nshutdown_timeout = \"2s\"\nnative_listen = \"127.0.0.1:1\"\n").unwrap();
        let config = Config::load(
            cli(&[
                "--config",
                file.to_str().unwrap(),
                "--native-listen",
                "127.0.0.1:7000",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.native_listen.port(), 7000);
        assert_eq!(config.upstream_native, "10.0.0.1:9000");
        assert_eq!(config.shutdown_timeout, Duration::from_secs(2));
        assert_eq!(config.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(config.upstream_http, DEFAULT_UPSTREAM_HTTP);
    }

    #[test]
    fn unknown_flags_and_keys_are_named_in_the_error() {
        let err = cli(&["--natve-listen", "x"]).unwrap_err().to_string();
        assert!(err.contains("--natve-listen"), "{err}");
        let dir = std::env::temp_dir().join(format!("aurora-config-test-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("proxy.toml");
        std::fs::write(&file, "upstream_natve = \"x\"\n").unwrap();
        let err = Config::load(cli(&["--config", file.to_str().unwrap()]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstream_natve"), "{err}");
        let err = Config::load(cli(&["--upstream-native", "nohostport"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstream_native"), "{err}");
    }

    #[test]
    fn tls_needs_its_certificate_and_key() {
        let err = Config::load(cli(&["--native-tls-listen", "127.0.0.1:9440"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_cert_file"), "{err}");
        let config = Config::load(
            cli(&[
                "--native-tls-listen",
                "127.0.0.1:9440",
                "--tls-cert-file",
                "c.pem",
                "--tls-key-file",
                "k.pem",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.native_tls.unwrap().listen.port(), 9440);
    }

    #[test]
    fn console_urls_are_checked_and_lose_their_trailing_slash() {
        let config = Config::load(
            cli(&[
                "--ingest-api-url",
                "http://127.0.0.1:8125/",
                "--grafana-url",
                "https://grafana.example.com/",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.ingest_api_url.as_deref(), Some("http://127.0.0.1:8125"));
        assert_eq!(config.grafana_url.as_deref(), Some("https://grafana.example.com"));
        let err = Config::load(cli(&["--ingest-api-url", "127.0.0.1:8125"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ingest_api_url"), "{err}");
        let err = Config::load(cli(&["--grafana-url", "grafana:3000"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("grafana_url"), "{err}");
    }

    #[test]
    fn pipeline_admins_and_the_ingest_token_load_from_flags_and_file() {
        let dir = std::env::temp_dir().join(format!("aurora-config-test-ingest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "ingest-token-0123456789\n").unwrap();
        let config = Config::load(
            cli(&[
                "--pipeline-admins",
                "alice, bob",
                "--ingest-api-token-file",
                token.to_str().unwrap(),
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.pipeline_admins, ["alice", "bob"]);
        assert_eq!(config.ingest_api_token, Some(IngestApiToken("ingest-token-0123456789".into())));
        assert!(!format!("{config:?}").contains("ingest-token-0123456789"));
        let file = dir.join("proxy.toml");
        std::fs::write(&file, "pipeline_admins = [\"carol\"]\n").unwrap();
        let config = Config::load(cli(&["--config", file.to_str().unwrap()]).unwrap()).unwrap();
        assert_eq!(config.pipeline_admins, ["carol"]);
        assert_eq!(config.ingest_api_token, None);
        let err = Config::load(cli(&["--ingest-api-token-env", "AURORA_TEST_SURELY_UNSET_VAR"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("AURORA_TEST_SURELY_UNSET_VAR"), "{err}");
    }

    #[test]
    fn the_example_config_loads() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/aurora-proxy.example.toml");
        let config = Config::load(cli(&["--config", example]).unwrap()).unwrap();
        assert_eq!(config.native_listen.port(), 9001);
        let feedback = config.ask_feedback.expect("feedback on");
        assert_eq!(feedback.table.to_string(), "default.aurora_feedback");
    }

    #[test]
    fn feedback_is_on_by_default_off_with_none_and_its_table_is_checked() {
        let on = Config::load(cli(&[]).unwrap()).unwrap().ask_feedback.unwrap();
        assert_eq!((on.table.to_string().as_str(), on.credentials.user.as_str()), (DEFAULT_FEEDBACK_TABLE, "default"));
        assert!(Config::load(cli(&["--ask-feedback-table", "none"]).unwrap()).unwrap().ask_feedback.is_none());
        let err = Config::load(cli(&["--ask-feedback-table", "x.y;DROP TABLE z"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ask_feedback_table"), "{err}");
        let err = Config::load(cli(&["--ask-feedback-password-env", "AURORA_TEST_SURELY_UNSET_VAR"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("AURORA_TEST_SURELY_UNSET_VAR"), "{err}");
    }
}
