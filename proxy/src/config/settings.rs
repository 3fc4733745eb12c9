//! Every setting of aurora-proxy, each written once: its field is the TOML key and, with '-' for '_', the
//! flag; `env` names its environment variable; `default_value…` is its default; the `///` text is its `--help`.
//! clap reads flags, the environment and defaults into [`Settings`]; serde reads the same struct from the
//! config file (`file.rs`). The sections group the keys in the code and in `--help`; the file stays
//! flat, as the keys have always been written.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default addresses follow ClickHouse's ports shifted by one so the proxy can run beside a local server.
pub const DEFAULT_NATIVE_LISTEN: &str = "127.0.0.1:9001";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8124";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_UPSTREAM_NATIVE: &str = "127.0.0.1:9000";
pub const DEFAULT_UPSTREAM_HTTP: &str = "http://127.0.0.1:8123";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
pub const DEFAULT_UNHEALTHY_AFTER: u32 = 2;
pub const DEFAULT_HEALTHY_AFTER: u32 = 2;
pub const DEFAULT_CIRCUIT_FAILURES: u32 = 3;
pub const DEFAULT_CIRCUIT_COOLDOWN: Duration = Duration::from_secs(5);
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_FRAMED_PACKET: u64 = 256 << 20;
pub const DEFAULT_MAX_FRAMING_MEMORY: u64 = 1 << 30;
/// ClickHouse's own `http_receive_timeout` default.
pub const DEFAULT_HTTP_RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a proxy user's query waits for a turn unless its `max_queue_time` says otherwise.
pub const DEFAULT_MAX_QUEUE_TIME: Duration = Duration::from_secs(10);
pub const DEFAULT_LLM_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_LLM_MAX_TOKENS: u32 = 512;
pub const DEFAULT_CATALOG_TTL: Duration = Duration::from_secs(60);
pub const DEFAULT_ASK_MAX_ROWS: u64 = 10_000;
pub const DEFAULT_ASK_TOKEN_BUDGET: usize = 3_000;
pub const DEFAULT_SEMANTIC_CACHE_THRESHOLD: f32 = 0.97;
pub const DEFAULT_ASK_CANDIDATES: u32 = 1;
pub const DEFAULT_ASK_REPAIR_ATTEMPTS: u32 = 1;
/// Where marks of ASK answers go unless configured.
pub const DEFAULT_FEEDBACK_TABLE: &str = "default.aurora_feedback";
/// Who writes and reads them unless configured (an empty user is this one too).
pub const DEFAULT_FEEDBACK_USER: &str = "default";

/// Every setting, by section. Field names are TOML keys, so a section's keys keep their prefix (`ask_…`).
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub listen: Listen,
    #[command(flatten)]
    #[serde(flatten)]
    pub upstream: Upstream,
    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: Cluster,
    #[command(flatten)]
    #[serde(flatten)]
    pub llm: Llm,
    #[command(flatten)]
    #[serde(flatten)]
    pub retrieval: Retrieval,
    #[command(flatten)]
    #[serde(flatten)]
    pub ask: Ask,
    #[command(flatten)]
    #[serde(flatten)]
    pub console: Console,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    #[serde(flatten)]
    pub gateway: Gateway,
    #[command(flatten)]
    #[serde(flatten)]
    pub log: Log,
}

/// Where clients connect.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Listeners")]
pub struct Listen {
    /// Address for ClickHouse native-protocol clients.
    #[arg(long, env = "AURORA_NATIVE_LISTEN", default_value = DEFAULT_NATIVE_LISTEN)]
    pub native_listen: SocketAddr,
    /// Address for native-protocol clients over TLS (clickhouse-client --secure; ClickHouse uses 9440). Off unless
    /// set; needs --tls-cert-file and --tls-key-file.
    #[arg(long, env = "AURORA_NATIVE_TLS_LISTEN")]
    pub native_tls_listen: Option<SocketAddr>,
    /// Address for HTTPS clients (ClickHouse uses 8443). Off unless set; needs --tls-cert-file and
    /// --tls-key-file.
    #[arg(long, env = "AURORA_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain for --native-tls-listen and --https-listen.
    #[arg(long, env = "AURORA_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for --native-tls-listen and --https-listen.
    #[arg(long, env = "AURORA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Address for ClickHouse HTTP-interface clients.
    #[arg(long, env = "AURORA_HTTP_LISTEN", default_value = DEFAULT_HTTP_LISTEN)]
    pub http_listen: SocketAddr,
    /// Read endpoint for native clients: routes only to nodes of role read or any, and refuses every statement
    /// that writes with ClickHouse's READONLY error (code 164) before it reaches a node. Off unless set.
    #[arg(long, env = "AURORA_NATIVE_READ_LISTEN")]
    pub native_read_listen: Option<SocketAddr>,
    /// Read endpoint for HTTP clients (as --native-read-listen). Off unless set.
    #[arg(long, env = "AURORA_HTTP_READ_LISTEN")]
    pub http_read_listen: Option<SocketAddr>,
    /// Write endpoint for native clients: routes only to nodes of role write or any. Off unless set.
    #[arg(long, env = "AURORA_NATIVE_WRITE_LISTEN")]
    pub native_write_listen: Option<SocketAddr>,
    /// Write endpoint for HTTP clients (as --native-write-listen). Off unless set.
    #[arg(long, env = "AURORA_HTTP_WRITE_LISTEN")]
    pub http_write_listen: Option<SocketAddr>,
    /// Address of the Prometheus /metrics endpoint.
    #[arg(long, env = "AURORA_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
}

/// The ClickHouse the proxy forwards to.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "ClickHouse upstream")]
pub struct Upstream {
    /// ClickHouse native port, HOST:PORT.
    #[arg(long, env = "AURORA_UPSTREAM_NATIVE", default_value = DEFAULT_UPSTREAM_NATIVE)]
    pub upstream_native: String,
    /// ClickHouse HTTP interface URL, http:// only (put a TLS terminator next to ClickHouse for https).
    #[arg(long, env = "AURORA_UPSTREAM_HTTP", default_value = DEFAULT_UPSTREAM_HTTP)]
    pub upstream_http: String,
    /// Time allowed to connect to ClickHouse, e.g. "5s".
    #[arg(long, env = "AURORA_CONNECT_TIMEOUT", default_value_t = Span(DEFAULT_CONNECT_TIMEOUT))]
    pub connect_timeout: Span,
}

/// Many ClickHouse nodes behind the proxy: how clients are spread over them and how their health is probed.
/// Without `[[nodes]]` in the config file the one node is `upstream_native` + `upstream_http`.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Cluster")]
pub struct Cluster {
    /// How a node is chosen for a native connection or an HTTP request among the healthy ones of the
    /// listener's role.
    #[arg(long, env = "AURORA_BALANCE", value_enum, default_value_t = Balance::LeastConnections)]
    pub balance: Balance,
    /// Time between two health probes of a node (native Hello + Ping, HTTP /ping).
    #[arg(long, env = "AURORA_HEALTH_INTERVAL", default_value_t = Span(DEFAULT_HEALTH_INTERVAL))]
    pub health_interval: Span,
    /// Time one probe may take before it counts as failed.
    #[arg(long, env = "AURORA_HEALTH_TIMEOUT", default_value_t = Span(DEFAULT_HEALTH_TIMEOUT))]
    pub health_timeout: Span,
    /// Consecutive failed probes after which a node is taken out (a failed connect takes it out at once).
    #[arg(long, env = "AURORA_UNHEALTHY_AFTER", default_value_t = DEFAULT_UNHEALTHY_AFTER)]
    pub unhealthy_after: u32,
    /// Consecutive good probes after which a node that was out takes clients again.
    #[arg(long, env = "AURORA_HEALTHY_AFTER", default_value_t = DEFAULT_HEALTHY_AFTER)]
    pub healthy_after: u32,
    /// Consecutive failed connects to a node that open its circuit: it is skipped for circuit_cooldown, even
    /// when no other node is left, so clients fail fast (code 210). 0 turns the breaker off.
    #[arg(long, env = "AURORA_CIRCUIT_FAILURES", default_value_t = DEFAULT_CIRCUIT_FAILURES)]
    pub circuit_failures: u32,
    /// How long an open circuit skips its node; then the next connect tries it again.
    #[arg(long, env = "AURORA_CIRCUIT_COOLDOWN", default_value_t = Span(DEFAULT_CIRCUIT_COOLDOWN))]
    pub circuit_cooldown: Span,
    /// The nodes (config file only, `[[nodes]]` tables).
    #[arg(skip)]
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
}

/// How a node is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// The node with the fewest open connections and running requests per unit of weight.
    #[default]
    LeastConnections,
    /// Each node in turn, as often as its weight says.
    RoundRobin,
    /// A node at random, weighted.
    Random,
    /// The first healthy node in the order of the file.
    FirstHealthy,
    /// The same node for the same user (by a hash of the user name) while it is healthy.
    HashUser,
}

/// What a node may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and writes.
    #[default]
    Any,
    /// Reads only (a read replica): the read endpoints route here.
    Read,
    /// Writes (and reads): the write endpoints route here.
    Write,
}

/// One `[[nodes]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique; names the node in metrics and logs (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Native port, HOST:PORT.
    pub native: String,
    /// HTTP interface, `http://host:port`.
    pub http: String,
    #[serde(default)]
    pub role: Role,
    /// Share of clients relative to the other nodes (1 to 1000).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Nodes of one shard are replicas of each other (informational today).
    #[serde(default)]
    pub shard: Option<u32>,
}

fn default_weight() -> u32 {
    1
}

/// The model that answers ASK.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Model")]
pub struct Llm {
    /// OpenAI-compatible endpoint for ASK (e.g. http://127.0.0.1:8080/v1).
    #[arg(long, env = "AURORA_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Model name sent to the LLM endpoint. The API key, if the endpoint needs one, is read from the
    /// environment variable AURORA_LLM_API_KEY only.
    #[arg(long, env = "AURORA_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Time allowed for one LLM answer.
    #[arg(long, env = "AURORA_LLM_TIMEOUT", default_value_t = Span(DEFAULT_LLM_TIMEOUT))]
    pub llm_timeout: Span,
    /// Most tokens the LLM may generate per answer.
    #[arg(long, env = "AURORA_LLM_MAX_TOKENS", default_value_t = DEFAULT_LLM_MAX_TOKENS)]
    pub llm_max_tokens: u32,
}

/// What the prompt is built from.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Retrieval")]
pub struct Retrieval {
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
    /// How long a user's catalog (tables and columns) is reused before it is read again.
    #[arg(long, env = "AURORA_CATALOG_TTL", default_value_t = Span(DEFAULT_CATALOG_TTL))]
    pub catalog_ttl: Span,
}

/// How questions are answered and answers marked.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "ASK")]
pub struct Ask {
    /// Most rows an ASK returns.
    #[arg(long, env = "AURORA_ASK_MAX_ROWS", default_value_t = DEFAULT_ASK_MAX_ROWS)]
    pub ask_max_rows: u64,
    /// Let generated queries read system tables (the user's own rights still apply).
    #[arg(long, env = "AURORA_ASK_ALLOW_SYSTEM_TABLES", action = clap::ArgAction::Set, default_value_t = false)]
    pub ask_allow_system_tables: bool,
    /// Similarity (0..1) at which an earlier question's query is reused; 0 turns the semantic cache off.
    #[arg(long, env = "AURORA_ASK_SEMANTIC_CACHE_THRESHOLD", default_value_t = DEFAULT_SEMANTIC_CACHE_THRESHOLD)]
    pub ask_semantic_cache_threshold: f32,
    /// Token budget of the prompt's schema context.
    #[arg(long, env = "AURORA_ASK_TOKEN_BUDGET", default_value_t = DEFAULT_ASK_TOKEN_BUDGET)]
    pub ask_token_budget: usize,
    /// Answers asked of the model per question; above 1 they run read-only on a few rows and the answer most
    /// of them agree with wins (self-consistency); 1 to 5.
    #[arg(long, env = "AURORA_ASK_CANDIDATES", default_value_t = DEFAULT_ASK_CANDIDATES)]
    pub ask_candidates: u32,
    /// Times an answer Aurora refuses goes back to the model with the reason; 0 to 3.
    #[arg(long, env = "AURORA_ASK_REPAIR_ATTEMPTS", default_value_t = DEFAULT_ASK_REPAIR_ATTEMPTS)]
    pub ask_repair_attempts: u32,
    /// Run an answer read-only on 100 rows first; one that finds nothing (no rows, only NULLs, one row of
    /// zeros) goes back to the model with that fact, within ask_repair_attempts.
    #[arg(long, env = "AURORA_ASK_REPAIR_EMPTY", action = clap::ArgAction::Set, default_value_t = false)]
    pub ask_repair_empty: bool,
    /// Table where users' marks of ASK answers (`SETTINGS aurora_feedback = 'good'|'bad'`, the console's
    /// buttons) are stored and read back as examples, `database.table`; `none` turns feedback off.
    #[arg(long, env = "AURORA_ASK_FEEDBACK_TABLE", default_value = DEFAULT_FEEDBACK_TABLE)]
    pub ask_feedback_table: String,
    /// ClickHouse user that writes and reads the feedback table (never the asking user).
    #[arg(long, env = "AURORA_ASK_FEEDBACK_USER", default_value = DEFAULT_FEEDBACK_USER)]
    pub ask_feedback_user: String,
    /// Name of the environment variable that holds the feedback user's password [default: no password].
    #[arg(long, env = "AURORA_ASK_FEEDBACK_PASSWORD_ENV")]
    pub ask_feedback_password_env: Option<String>,
}

/// The web console at /ui/ and what it reaches.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Console")]
pub struct Console {
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
}

/// What one client may hold and how long things may take.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Limits and timeouts")]
pub struct Limits {
    /// Time allowed for a native client's handshake.
    #[arg(long, env = "AURORA_HANDSHAKE_TIMEOUT", default_value_t = Span(DEFAULT_HANDSHAKE_TIMEOUT))]
    pub handshake_timeout: Span,
    /// On SIGTERM/SIGINT, how long running queries may finish before connections are closed.
    #[arg(long, env = "AURORA_SHUTDOWN_TIMEOUT", default_value_t = Span(DEFAULT_SHUTDOWN_TIMEOUT))]
    pub shutdown_timeout: Span,
    /// Most client connections served at once per listener; more wait in the listen queue.
    #[arg(long, env = "AURORA_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Largest native packet the proxy frames in memory; a larger one switches that connection to a plain byte
    /// relay.
    #[arg(long, env = "AURORA_MAX_FRAMED_PACKET", default_value_t = DEFAULT_MAX_FRAMED_PACKET)]
    pub max_framed_packet: u64,
    /// Bytes all native client connections together may hold for packets still being framed (raw and
    /// decompressed); past it, reading pauses, and a connection that waits 5 s relays the rest of its bytes
    /// unframed.
    #[arg(long, env = "AURORA_MAX_FRAMING_MEMORY", default_value_t = DEFAULT_MAX_FRAMING_MEMORY)]
    pub max_framing_memory: u64,
    /// Longest pause allowed while an HTTP request body arrives, as ClickHouse's `http_receive_timeout`; also
    /// the whole time the proxy waits for the first bytes of a body to tell SQL from ASK.
    #[arg(long, env = "AURORA_HTTP_RECEIVE_TIMEOUT", default_value_t = Span(DEFAULT_HTTP_RECEIVE_TIMEOUT))]
    pub http_receive_timeout: Span,
}

/// Proxy users: who may log in to the proxy, as which ClickHouse user, from where, and within which limits.
/// Without `[[users]]` in the config file the proxy passes the client's credentials to ClickHouse as they are.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Gateway")]
pub struct Gateway {
    /// The column that holds the tenant in every table a proxy user with `tenant` may read: its queries (SQL and
    /// ASK) read each table filtered on it.
    #[arg(long, env = "AURORA_TENANT_COLUMN", default_value = "tenant_id")]
    pub tenant_column: String,
    /// Table (`database.table`) that keeps one record per statement (SQL and ASK, both protocols): who, from
    /// where, on which node, what, how it ended; created if missing. Empty: no audit table.
    #[arg(long, env = "AURORA_AUDIT_TABLE", default_value = "")]
    pub audit_table: String,
    /// ClickHouse user that creates and writes the audit table.
    #[arg(long, env = "AURORA_AUDIT_USER", default_value = "default")]
    pub audit_user: String,
    /// Environment variable with that user's password (none: no password).
    #[arg(long, env = "AURORA_AUDIT_PASSWORD_ENV")]
    pub audit_password_env: Option<String>,
    /// The proxy users (config file only, `[[users]]` tables; reloaded on SIGHUP).
    #[arg(skip)]
    #[serde(default)]
    pub users: Vec<UserSpec>,
}

/// One `[[users]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// What the client logs in as (native Hello; HTTP Basic, `X-ClickHouse-User` or `user=`).
    pub name: String,
    /// SHA-256 of the password, 64 hex digits (`echo -n 'secret' | sha256sum`).
    #[serde(default)]
    pub password_sha256: Option<String>,
    /// Or: the environment variable that holds the password (read at start and on SIGHUP).
    #[serde(default)]
    pub password_env: Option<String>,
    /// The ClickHouse user the proxy logs in as for this user (default: the same name).
    #[serde(default)]
    pub clickhouse_user: Option<String>,
    /// The environment variable with that ClickHouse user's password …
    #[serde(default)]
    pub clickhouse_password_env: Option<String>,
    /// … or a file whose first line is it (neither: no password).
    #[serde(default)]
    pub clickhouse_password_file: Option<PathBuf>,
    /// Client addresses allowed to log in as this user (CIDR, e.g. "10.0.0.0/8", "::1/128"); empty: any.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Queries (SQL and ASK, both protocols, every node) this user runs at once; absent: no limit.
    #[serde(default)]
    pub max_concurrent_queries: Option<u32>,
    /// Queries beyond the concurrency limit that wait for a turn; more are refused at once (code 202).
    #[serde(default)]
    pub max_queue_size: u32,
    /// How long a query waits in the queue before it is refused (code 202).
    #[serde(default = "default_queue_time")]
    pub max_queue_time: Span,
    /// Queries per minute (a token bucket refilled continuously); beyond it: code 202, `Retry-After` on HTTP.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Longest a query may run: then the proxy kills it on the server (`KILL QUERY`) and the client gets
    /// code 159 (TIMEOUT_EXCEEDED).
    #[serde(default)]
    pub max_execution_time: Option<Span>,
    /// Whether the user may ask questions (`ASK`); SQL is always allowed.
    #[serde(default = "default_true")]
    pub allow_ask: bool,
    /// The tenant this user's queries are scoped to: every table is read filtered on `tenant_column` = this,
    /// and a statement that cannot be proven scoped is refused.
    #[serde(default)]
    pub tenant: Option<String>,
}

fn default_queue_time() -> Span {
    Span(DEFAULT_MAX_QUEUE_TIME)
}

fn default_true() -> bool {
    true
}

/// How log lines are written.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
#[command(next_help_heading = "Logging")]
pub struct Log {
    /// Log format. The level comes from RUST_LOG (default "info").
    #[arg(long, env = "AURORA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl From<LogFormat> for aurora_common::telemetry::LogFormat {
    fn from(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => aurora_common::telemetry::LogFormat::Text,
            LogFormat::Json => aurora_common::telemetry::LogFormat::Json,
        }
    }
}

/// A duration as people write it ("5s", "2m", "1h 30m"), read the same way from a flag, the environment and
/// the file, and written back the same way in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = humantime::DurationError;

    fn from_str(text: &str) -> Result<Span, Self::Err> {
        humantime::parse_duration(text).map(Span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Span;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"5s\"")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Span, E> {
                text.parse()
                    .map_err(|e| E::custom(format!("{text:?} is not a duration such as \"5s\": {e}")))
            }
        }
        deserializer.deserialize_str(Text)
    }
}
