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

use serde::{Deserialize, Serialize};

use crate::columns::{envelope_columns, Column, ColumnType};

/// Largest batch: ClickHouse forms blocks of at most `max_insert_block_size` (1,048,576) rows, and a batch
/// must be one block so that it is written whole or not at all.
pub const MAX_BATCH_ROWS: usize = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP API, `/metrics` and `/health` listen.
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
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

fn resolve_secret(
    what: &str,
    inline: &Option<Secret>,
    env: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, String> {
    match (inline, env, file) {
        (Some(s), None, None) => Ok(Some(s.clone())),
        (None, Some(var), None) => std::env::var(var)
            .map(|v| Some(Secret(v)))
            .map_err(|_| format!("{what}_env: environment variable {var} is not set")),
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .map(|v| Some(Secret(v.lines().next().unwrap_or("").trim().to_string())))
            .map_err(|e| format!("{what}_file: cannot read {}: {e}", path.display())),
        (None, None, None) => Ok(None),
        _ => Err(format!("give only one of {what}, {what}_env, {what}_file")),
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
        if let Some(order) = &self.order_by {
            if let Some(bad) = order
                .iter()
                .find(|c| !self.columns().iter().any(|col| &col.name == *c))
            {
                return Err(err(
                    k("order_by"),
                    format!("{bad} is not a column of the mapping"),
                ));
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

    pub fn clickhouse_password(&self) -> Result<Option<Secret>, String> {
        let ch = &self.clickhouse;
        resolve_secret("password", &ch.password, &ch.password_env, &ch.password_file)
    }

    pub fn sasl_password(&self) -> Result<Option<Secret>, String> {
        let k = &self.kafka;
        resolve_secret(
            "sasl_password",
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
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("aurora-ingest.example.toml");
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.pipelines.len(), 1);
        assert_eq!(config.pipelines[0].columns().len(), 8);
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
