//! The daemon's configuration: a TOML file (`--config`), pipelines declared in it or posted to the API.
//!
//! Every struct refuses unknown keys; [`PipelineSpec::validate`] and [`Config::validate`] run once after
//! loading and name the key that is wrong. Secrets (ClickHouse and SASL passwords) come from the file, an
//! environment variable or a file of their own, and never appear in `Debug` output or logs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aurora_common::secret::{self, SecretError, SecretKeys};
use serde::{Deserialize, Serialize};

use crate::columns::{envelope_columns, Column, ColumnType};
use crate::kafka_options;
use crate::table_keys::KeyExpr;

/// Largest batch: ClickHouse forms blocks of at most `max_insert_block_size` (1,048,576) rows, and a batch
/// must be one block so that it is written whole or not at all.
pub const MAX_BATCH_ROWS: usize = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP API, `/metrics` and `/health` listen. Loopback by default; the daemon warns at start
    /// when it is not.
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
    /// Refused with an explanation: the API token is never written in the config file itself.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Environment variable holding the bearer token that `/pipelines` requires (the CLI sends it too).
    #[serde(default)]
    pub api_token_env: Option<String>,
    /// File whose first line is that token.
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub pipelines: Vec<PipelineSpec>,
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8125))
}

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A secret: given inline, by environment variable name, or by file path (first line, trimmed).
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// The keys the API token is read through.
const API_TOKEN: SecretKeys = SecretKeys {
    what: "API token",
    env: "api_token_env",
    file: "api_token_file",
};
/// The keys ClickHouse's password is read through.
const PASSWORD: SecretKeys = SecretKeys {
    what: "password",
    env: "password_env",
    file: "password_file",
};
/// The keys the brokers' SASL password is read through.
const SASL_PASSWORD: SecretKeys = SecretKeys {
    what: "SASL password",
    env: "sasl_password_env",
    file: "sasl_password_file",
};

/// A secret given inline under `name`, or read through `keys` ([`aurora_common::secret`]): at most one of
/// the three. An empty value is taken as given (an empty password is no password; a short API token is refused
/// by its own check).
fn resolve_secret(
    name: &str,
    keys: SecretKeys,
    inline: &Option<Secret>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, String> {
    let only_one = || format!("give only one of {name}, {}, {}", keys.env, keys.file);
    if let Some(secret) = inline {
        return match (env, file) {
            (None, None) => Ok(Some(secret.clone())),
            _ => Err(only_one()),
        };
    }
    match secret::read(keys, env.as_deref(), file.as_deref()) {
        Ok(secret) => Ok(secret.map(Secret)),
        Err(SecretError::Both { .. }) => Err(only_one()),
        Err(SecretError::Empty { .. }) => Ok(Some(Secret(String::new()))),
        Err(e) => Err(format!("{}: {e}", e.key())),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface of ClickHouse; `https://` for TLS.
    #[serde(default = "default_ch_url")]
    pub url: String,
    #[serde(default = "default_ch_user")]
    pub user: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed ClickHouse's certificate (for `https://`; default: none trusted).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Limit for one request (an insert of a whole batch included).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// First pause after a failed insert; doubles up to `retry_max`.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
}

fn default_ch_url() -> String {
    "http://127.0.0.1:8123".into()
}
fn default_ch_user() -> String {
    "default".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_retry_initial() -> Duration {
    Duration::from_millis(200)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(5)
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults deserialize")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[serde(default = "default_security_protocol")]
    pub security_protocol: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[serde(default)]
    pub sasl_mechanism: Option<String>,
    #[serde(default)]
    pub sasl_username: Option<String>,
    #[serde(default)]
    pub sasl_password: Option<Secret>,
    #[serde(default)]
    pub sasl_password_env: Option<String>,
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// PEM CA file for the brokers' certificates.
    #[serde(default)]
    pub ssl_ca_file: Option<PathBuf>,
    /// More librdkafka consumer properties (`"session.timeout.ms" = "6000"`), for every pipeline.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn default_security_protocol() -> String {
    "plaintext".into()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults deserialize")
    }
}

/// Where refused messages go.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeadLetters {
    /// `<db>.<table>_dead_letters`
    #[default]
    Table,
    /// Counted and logged, not kept.
    Off,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartOffset {
    #[default]
    Earliest,
    Latest,
}

/// One column of a pipeline's mapping, as written in the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    /// Dotted path into the message; default: the column name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub required: bool,
}

/// One pipeline: topics → one ClickHouse table. Same keys in TOML (`[[pipelines]]`) and in `POST /pipelines`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub name: String,
    pub topics: Vec<String>,
    /// `database.table`
    pub table: String,
    /// Consumer group; default `aurora-ingest-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Only `json` (one JSON object per message).
    #[serde(default = "default_format")]
    pub format: String,
    /// Column mapping; default: the event envelope (see `columns::envelope_columns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<ColumnSpec>>,
    /// Create the table (and database) when missing.
    #[serde(default = "yes")]
    pub create_table: bool,
    /// ORDER BY of a created table; default (tenant_id, event_type, timestamp) for the envelope, else tuple().
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<Vec<String>>,
    /// PARTITION BY of a created table; default toYYYYMM(<first DateTime column>).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<String>,
    /// Create `<db>.<table>_per_minute` rollup and its view (`<db>.events_per_minute` for `events`).
    #[serde(default)]
    pub rollup: bool,
    #[serde(default)]
    pub dead_letters: DeadLetters,
    #[serde(default = "default_batch_max_rows")]
    pub batch_max_rows: usize,
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    #[serde(default = "default_batch_max_wait", with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// Consumers of this pipeline inside this daemon (members of the same group).
    #[serde(default = "one")]
    pub parallelism: usize,
    #[serde(default)]
    pub start_offset: StartOffset,
    /// librdkafka properties for this pipeline's consumers (over `[kafka.options]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka_options: BTreeMap<String, String>,
}

fn default_format() -> String {
    "json".into()
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_batch_max_rows() -> usize {
    200_000
}
fn default_batch_max_bytes() -> usize {
    64 << 20
}
fn default_batch_max_wait() -> Duration {
    Duration::from_secs(1)
}

/// A validation failure that names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Shortest API token accepted (bytes).
pub const MIN_API_TOKEN_LEN: usize = 16;

/// Databases no pipeline may write into, compared without regard to case.
pub const RESERVED_DATABASES: &[&str] = &["system", "information_schema"];

/// Prefixes of the tables aurora-ingest keeps for itself in every database it writes to (the ledger, the
/// stages and their views, the probe tables of `views_cascade`): no pipeline's table may start with them.
pub const RESERVED_TABLE_PREFIXES: &[&str] = &["aurora_ingest_", "aurora_stage_", "aurora_probe_"];

/// Suffixes of the tables a pipeline creates beside its target (dead letters, rollup and its view): another
/// pipeline's target may not be one of them.
pub const DERIVED_TABLE_SUFFIXES: &[&str] = &["_dead_letters", "_per_minute", "_per_minute_mv"];

/// A name ClickHouse accepts without quoting, and that Aurora may splice into its own object names.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PipelineSpec {
    /// Checks every key; `prefix` says where the pipeline was declared (`pipelines[2]`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let k = |key: &str| format!("{prefix}.{key}");
        if !is_identifier(&self.name) || self.name.len() > 48 {
            return Err(err(
                k("name"),
                "letters, digits and _ only, at most 48, not starting with a digit",
            ));
        }
        if self.topics.is_empty() {
            return Err(err(k("topics"), "at least one topic"));
        }
        for (i, t) in self.topics.iter().enumerate() {
            let ok = !t.is_empty()
                && t.len() <= 249
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(err(
                    format!("{prefix}.topics[{i}]"),
                    format!("not a Kafka topic name: {t:?}"),
                ));
            }
        }
        self.database_table().ok_or_else(|| {
            err(
                k("table"),
                format!(
                    "expected database.table (letters, digits, _), got {:?}",
                    self.table
                ),
            )
        })?;
        if self.format != "json" {
            return Err(err(
                k("format"),
                format!("unknown format {:?} (json is the only one)", self.format),
            ));
        }
        if let Some(columns) = &self.columns {
            if columns.is_empty() {
                return Err(err(k("columns"), "at least one column"));
            }
            let mut seen = std::collections::HashSet::new();
            for (i, c) in columns.iter().enumerate() {
                let ck = format!("{prefix}.columns[{i}]");
                if !is_identifier(&c.name) || c.name.starts_with("_aurora") {
                    return Err(err(
                        format!("{ck}.name"),
                        format!("not a column name: {:?}", c.name),
                    ));
                }
                if !seen.insert(c.name.as_str()) {
                    return Err(err(
                        format!("{ck}.name"),
                        format!("column {} appears twice", c.name),
                    ));
                }
                if ColumnType::parse(&c.ty).is_none() {
                    return Err(err(
                        format!("{ck}.type"),
                        format!("{:?} is not one of {}", c.ty, ColumnType::NAMES),
                    ));
                }
                if let Some(path) = &c.path {
                    if path.split('.').any(str::is_empty) {
                        return Err(err(format!("{ck}.path"), format!("empty segment in {path:?}")));
                    }
                }
            }
        }
        if self.batch_max_rows == 0 || self.batch_max_rows > MAX_BATCH_ROWS {
            return Err(err(
                k("batch_max_rows"),
                format!("between 1 and {MAX_BATCH_ROWS}"),
            ));
        }
        if self.batch_max_bytes < 1024 || self.batch_max_bytes > 1 << 30 {
            return Err(err(k("batch_max_bytes"), "between 1024 and 1073741824"));
        }
        if self.batch_max_wait.is_zero() || self.batch_max_wait > Duration::from_secs(600) {
            return Err(err(k("batch_max_wait"), "between 1ms and 10m"));
        }
        if self.parallelism == 0 || self.parallelism > 64 {
            return Err(err(k("parallelism"), "between 1 and 64"));
        }
        self.check_target(prefix)?;
        self.order_by_keys()
            .map_err(|(i, reason)| err(format!("{prefix}.order_by[{i}]"), reason))?;
        self.partition_key()
            .map_err(|reason| err(k("partition_by"), reason))?;
        for key in self.kafka_options.keys() {
            if let Some(reason) = kafka_options::operator_refusal(key) {
                return Err(err(format!("{prefix}.kafka_options.{key:?}"), reason));
            }
        }
        if self.rollup && !self.is_envelope_shape() {
            return Err(err(
                k("rollup"),
                "the per-minute rollup needs the columns timestamp, tenant_id, event_type and revenue",
            ));
        }
        Ok(())
    }

    /// The stricter check of a spec that came through the API: `kafka_options` only from the allowlist of
    /// tuning keys ([`kafka_options::API_ALLOWED`]). Run after [`PipelineSpec::validate`].
    pub fn check_api_options(&self, prefix: &str) -> Result<(), ConfigError> {
        for key in self.kafka_options.keys() {
            if let Some(reason) = kafka_options::api_refusal(key) {
                return Err(err(format!("{prefix}.kafka_options.{key:?}"), reason));
            }
        }
        Ok(())
    }

    /// System databases, the daemon's own tables and the tables other pipelines create are no targets; nor
    /// may the tables this pipeline would create beside its target land on such a name.
    fn check_target(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = format!("{prefix}.table");
        let Some((db, table)) = self.database_table() else {
            return Ok(());
        };
        if RESERVED_DATABASES.iter().any(|r| r.eq_ignore_ascii_case(db)) {
            return Err(err(
                key,
                format!("{db} is a system database; pipelines write to databases of their own"),
            ));
        }
        let mut created = vec![table.to_string()];
        if self.dead_letters == DeadLetters::Table {
            created.push(format!("{table}_dead_letters"));
        }
        if self.rollup {
            created.push(format!("{table}_per_minute"));
            created.push(format!("{table}_per_minute_mv"));
        }
        for name in &created {
            let lower = name.to_ascii_lowercase();
            if let Some(p) = RESERVED_TABLE_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
                return Err(err(
                    key,
                    format!(
                        "{db}.{name} would be one of aurora-ingest's own tables (names starting with {p})"
                    ),
                ));
            }
        }
        if let Some(s) = DERIVED_TABLE_SUFFIXES
            .iter()
            .find(|s| table.to_ascii_lowercase().ends_with(*s))
        {
            return Err(err(
                key,
                format!(
                    "{db}.{table}: names ending in {s} are the tables a pipeline creates beside its target"
                ),
            ));
        }
        Ok(())
    }

    /// The checked `order_by` expressions, or (index, reason) of the first that is refused.
    pub fn order_by_keys(&self) -> Result<Option<Vec<KeyExpr>>, (usize, String)> {
        let Some(order) = &self.order_by else {
            return Ok(None);
        };
        if order.is_empty() {
            return Err((0, "at least one expression (tuple() for none)".into()));
        }
        let columns = self.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        order
            .iter()
            .enumerate()
            .map(|(i, text)| KeyExpr::parse(text, &names).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The checked `partition_by` expression.
    pub fn partition_key(&self) -> Result<Option<KeyExpr>, String> {
        let Some(text) = &self.partition_by else {
            return Ok(None);
        };
        let columns = self.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        KeyExpr::parse(text, &names).map(Some)
    }

    /// `(database, table)` when `table` is `db.table`.
    pub fn database_table(&self) -> Option<(&str, &str)> {
        let (db, table) = self.table.split_once('.')?;
        (is_identifier(db) && is_identifier(table) && table.len() <= 60).then_some((db, table))
    }

    /// The mapping in effect (the envelope's when none is given).
    pub fn columns(&self) -> Vec<Column> {
        match &self.columns {
            None => envelope_columns(),
            Some(specs) => specs
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    path: c
                        .path
                        .as_deref()
                        .unwrap_or(&c.name)
                        .split('.')
                        .map(String::from)
                        .collect(),
                    ty: ColumnType::parse(&c.ty).unwrap_or(ColumnType::String),
                    required: c.required,
                })
                .collect(),
        }
    }

    fn is_envelope_shape(&self) -> bool {
        let cols = self.columns();
        let has = |n: &str, t: ColumnType| cols.iter().any(|c| c.name == n && c.ty == t);
        has("timestamp", ColumnType::DateTime)
            && has("tenant_id", ColumnType::String)
            && has("event_type", ColumnType::String)
            && has("revenue", ColumnType::Float64)
    }

    pub fn group_id(&self) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("aurora-ingest-{}", self.name))
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
            None => String::new(),
        };
        let where_ = path.map(|p| p.display().to_string()).unwrap_or_default();
        let config: Config = toml::from_str(&text).map_err(|e| format!("{where_}: {e}"))?;
        config.validate().map_err(|e| format!("{where_}: {e}"))?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let ch = &self.clickhouse;
        if !(ch.url.starts_with("http://") || ch.url.starts_with("https://")) {
            return Err(err("clickhouse.url", "must start with http:// or https://"));
        }
        self.clickhouse_password().map_err(|r| err("clickhouse", r))?;
        let kafka = &self.kafka;
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&kafka.security_protocol.as_str()) {
            return Err(err(
                "kafka.security_protocol",
                "plaintext, ssl, sasl_plaintext or sasl_ssl",
            ));
        }
        if let Some(m) = &kafka.sasl_mechanism {
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                return Err(err(
                    "kafka.sasl_mechanism",
                    "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                ));
            }
        }
        self.sasl_password().map_err(|r| err("kafka", r))?;
        for key in kafka.options.keys() {
            if let Some(reason) = kafka_options::operator_refusal(key) {
                return Err(err(format!("kafka.options.{key:?}"), reason));
            }
        }
        if self.api_token.is_some() {
            return Err(err(
                "api_token",
                "the API token is not written in the config file: use api_token_env or api_token_file",
            ));
        }
        self.api_token().map_err(|r| err("api_token", r))?;
        if kafka.security_protocol.starts_with("sasl") && kafka.sasl_mechanism.is_none() {
            return Err(err(
                "kafka.sasl_mechanism",
                "required with a sasl_* security_protocol",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.pipelines.iter().enumerate() {
            p.validate(&format!("pipelines[{i}]"))?;
            if !names.insert(&p.name) {
                return Err(err(
                    format!("pipelines[{i}].name"),
                    format!("{} is declared twice", p.name),
                ));
            }
        }
        Ok(())
    }

    /// The bearer token of the API (`None`: `/pipelines` refuses every request, saying how to configure one).
    pub fn api_token(&self) -> Result<Option<Secret>, String> {
        let token = resolve_secret(
            "api_token",
            API_TOKEN,
            &None,
            &self.api_token_env,
            &self.api_token_file,
        )?;
        match token {
            Some(Secret(t)) if t.len() < MIN_API_TOKEN_LEN => Err(format!(
                "the API token must be at least {MIN_API_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
            )),
            other => Ok(other),
        }
    }

    pub fn clickhouse_password(&self) -> Result<Option<Secret>, String> {
        let ch = &self.clickhouse;
        resolve_secret(
            "password",
            PASSWORD,
            &ch.password,
            &ch.password_env,
            &ch.password_file,
        )
    }

    pub fn sasl_password(&self) -> Result<Option<Secret>, String> {
        let k = &self.kafka;
        resolve_secret(
            "sasl_password",
            SASL_PASSWORD,
            &k.sasl_password,
            &k.sasl_password_env,
            &k.sasl_password_file,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_loads() {
        // The example names AURORA_INGEST_API_TOKEN; no other test reads that variable.
        std::env::set_var("AURORA_INGEST_API_TOKEN", "example-token-0123456789");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("aurora-ingest.example.toml");
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.pipelines.len(), 1);
        assert_eq!(config.pipelines[0].columns().len(), 8);
        assert_eq!(config.api_token().unwrap().unwrap().0, "example-token-0123456789");
    }

    fn pipeline_error(extra: &str) -> ConfigError {
        let text = format!("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\n{extra}");
        let c: Config = toml::from_str(&text).unwrap();
        c.validate().unwrap_err()
    }

    #[test]
    fn librdkafka_properties_that_run_code_are_refused_at_load() {
        let dir = std::env::temp_dir().join(format!("aurora-ingest-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plugin.toml");
        std::fs::write(
            &file,
            "[kafka.options]\n\"plugin.library.paths\" = \"/tmp/evil.so\"\n",
        )
        .unwrap();
        let e = Config::load(Some(&file)).unwrap_err();
        assert!(e.contains(&file.display().to_string()), "names the file: {e}");
        assert!(
            e.contains("kafka.options.\"plugin.library.paths\""),
            "names the key: {e}"
        );
        let e = pipeline_error("kafka_options = { 'sasl.kerberos.kinit.cmd' = 'touch /tmp/x' }");
        assert_eq!(e.key, "pipelines[0].kafka_options.\"sasl.kerberos.kinit.cmd\"");
        let e = pipeline_error("kafka_options = { 'group.id' = 'other' }");
        assert!(e.reason.contains("group_id"), "{e}");
        let c: Config =
            toml::from_str("[kafka.options]\ndebug = 'consumer'\n'fetch.wait.max.ms' = '50'").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn the_api_allows_tuning_options_only() {
        let spec: PipelineSpec = serde_json::from_str(
            r#"{"name":"p","topics":["t"],"table":"db.t","kafka_options":{"debug":"all"}}"#,
        )
        .unwrap();
        spec.validate("pipeline").unwrap();
        let e = spec.check_api_options("pipeline").unwrap_err();
        assert_eq!(e.key, "pipeline.kafka_options.\"debug\"");
        let spec: PipelineSpec = serde_json::from_str(
            r#"{"name":"p","topics":["t"],"table":"db.t","kafka_options":{"fetch.wait.max.ms":"50"}}"#,
        )
        .unwrap();
        spec.check_api_options("pipeline").unwrap();
    }

    #[test]
    fn the_api_token_never_sits_in_the_file() {
        let c: Config = toml::from_str("api_token = 'abcdefghijklmnopqrstuvwxyz'").unwrap();
        assert_eq!(c.validate().unwrap_err().key, "api_token");
        let c: Config = toml::from_str("api_token_env = 'AURORA_TEST_SURELY_UNSET_TOKEN_VAR'").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .reason
            .contains("AURORA_TEST_SURELY_UNSET_TOKEN_VAR"));
        let dir = std::env::temp_dir().join(format!("aurora-ingest-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let c: Config =
            toml::from_str(&format!("api_token_file = {:?}", short.display().to_string())).unwrap();
        assert!(c.validate().unwrap_err().reason.contains("at least 16"));
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123\nsecond line ignored\n").unwrap();
        let c: Config =
            toml::from_str(&format!("api_token_file = {:?}", good.display().to_string())).unwrap();
        c.validate().unwrap();
        assert_eq!(c.api_token().unwrap().unwrap().0, "0123456789abcdef0123");
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.api_token().unwrap(), None);
    }

    #[test]
    fn system_databases_and_aurora_tables_are_no_targets() {
        for (table, extra) in [
            ("system.x", ""),
            ("SYSTEM.x", ""),
            ("information_schema.x", ""),
            ("INFORMATION_SCHEMA.x", ""),
            ("db.aurora_ingest_ledger", ""),
            ("db.aurora_stage_other", ""),
            ("db.aurora_probe_1_a", ""),
            ("db.events_dead_letters", ""),
            ("db.events_per_minute", ""),
            ("db.events_per_minute_mv", ""),
        ] {
            let c: Config = toml::from_str(&format!(
                "[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = '{table}'\n{extra}"
            ))
            .unwrap();
            assert_eq!(c.validate().unwrap_err().key, "pipelines[0].table", "{table}");
        }
        let c: Config =
            toml::from_str("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.aurora_events'").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn keys_are_parsed_expressions_never_text() {
        let e = pipeline_error("partition_by = 'tuple() ORDER BY tuple() SETTINGS index_granularity = 3 --'");
        assert_eq!(e.key, "pipelines[0].partition_by");
        let e = pipeline_error("order_by = ['tenant_id', 'event_id) SETTINGS index_granularity = 3 --']");
        assert_eq!(e.key, "pipelines[0].order_by[1]");
        let e = pipeline_error("order_by = []");
        assert_eq!(e.key, "pipelines[0].order_by[0]");
        let c: Config = toml::from_str(
            "[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\npartition_by = 'toYYYYMMDD(timestamp)'\n\
             order_by = ['tenant_id', 'toStartOfHour(timestamp)']",
        )
        .unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let e = toml::from_str::<Config>("[kafka]\nbrokerz = 'x'").unwrap_err();
        assert!(e.to_string().contains("brokerz"), "{e}");
        let c: Config =
            toml::from_str("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\nbatch_max_rows = 0")
                .unwrap();
        assert_eq!(c.validate().unwrap_err().key, "pipelines[0].batch_max_rows");
        let c: Config = toml::from_str(
            "[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'db.t'\n[[pipelines.columns]]\nname='a'\ntype='Strin'",
        )
        .unwrap();
        assert_eq!(c.validate().unwrap_err().key, "pipelines[0].columns[0].type");
        let c: Config = toml::from_str("[[pipelines]]\nname = 'p'\ntopics = ['t']\ntable = 'nodot'").unwrap();
        assert_eq!(c.validate().unwrap_err().key, "pipelines[0].table");
    }

    #[test]
    fn secrets_are_not_printed() {
        let c: Config = toml::from_str("[clickhouse]\npassword = 'hunter2'").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c: Config = toml::from_str("[clickhouse]\npassword = 'a'\npassword_env = 'B'").unwrap();
        assert!(c.validate().is_err());
    }
}
