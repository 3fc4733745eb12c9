//! The daemon's configuration: a TOML file (`--config`), pipelines declared in it or posted to the API.
//!
//! - this file: the top level ([`Config`], `[clickhouse]`, `[kafka]`), loading and its validation;
//! - [`pipeline`]: one pipeline's spec ([`PipelineSpec`]) and its validation;
//! - [`secret`]: the API token and the passwords, inline or through a variable or a file;
//! - [`error`]: [`ConfigError`], one problem with the key it is about.
//!
//! Every struct refuses unknown keys; [`Config::validate`] and [`PipelineSpec::validate`] run once after
//! loading and name the key that is wrong; loading a file reports every problem, one line each. Secrets
//! never appear in `Debug` output or logs.

pub mod error;
pub mod pipeline;
pub mod secret;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use error::ConfigError;
pub use pipeline::{
    is_identifier, ColumnSpec, DeadLetters, PipelineSpec, StartOffset, DERIVED_TABLE_SUFFIXES,
    MAX_BATCH_ROWS, RESERVED_DATABASES, RESERVED_TABLE_PREFIXES,
};
pub use secret::{Secret, SecretError, MIN_API_TOKEN_LEN};

use error::{err, first};
use secret::{API_TOKEN, PASSWORD, SASL_PASSWORD};

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface of ClickHouse; `https://` for TLS. At most one of `url` and `urls`; neither:
    /// `http://127.0.0.1:8123`.
    #[serde(default)]
    pub url: Option<String>,
    /// The HTTP interfaces of the replicas of one shard, tried in this order: inserts go to one node and fail
    /// over to the next on a transient error. More than one needs `cluster`.
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// Name of the ClickHouse cluster (`remote_servers`) the nodes belong to: the tables that store data are
    /// created Replicated (`/clickhouse/tables/{shard}/<db>/<table>`, `{replica}`), on every node.
    #[serde(default)]
    pub cluster: Option<String>,
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

impl ClickHouseConfig {
    /// The nodes' URLs: `urls`, else `url`, else the default.
    pub fn node_urls(&self) -> Vec<String> {
        match (&self.urls, &self.url) {
            (Some(urls), _) => urls.clone(),
            (None, Some(url)) => vec![url.clone()],
            (None, None) => vec![default_ch_url()],
        }
    }
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

impl Config {
    /// Reads and checks the file (none: every default). The error names the file and, one line each, every
    /// problem with its key.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
            None => String::new(),
        };
        let where_ = path.map(|p| p.display().to_string()).unwrap_or_default();
        let config: Config = toml::from_str(&text).map_err(|e| format!("{where_}: {e}"))?;
        let problems = config.problems();
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(|e| format!("{where_}: {e}")).collect();
            return Err(lines.join("\n"));
        }
        Ok(config)
    }

    /// The first problem, if any ([`Config::problems`] has them all).
    pub fn validate(&self) -> Result<(), ConfigError> {
        first(self.problems())
    }

    /// Every problem of the configuration, in the order of its keys (the pipelines' last).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        let ch = &self.clickhouse;
        let is_http = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        match (&ch.url, &ch.urls) {
            (Some(_), Some(_)) => problems.push(err("clickhouse.urls", "set url or urls, not both")),
            (Some(url), None) if !is_http(url) => {
                problems.push(err("clickhouse.url", "must start with http:// or https://"))
            }
            (None, Some(urls)) => {
                if urls.is_empty() {
                    problems.push(err("clickhouse.urls", "lists no URL"));
                }
                let mut seen = std::collections::HashSet::new();
                for (i, url) in urls.iter().enumerate() {
                    if !is_http(url) {
                        problems.push(err(
                            format!("clickhouse.urls[{i}]"),
                            "must start with http:// or https://",
                        ));
                    } else if !seen.insert(url.trim_end_matches('/')) {
                        problems.push(err(
                            format!("clickhouse.urls[{i}]"),
                            format!("{url} is listed twice"),
                        ));
                    }
                }
                if urls.len() > 1 && ch.cluster.is_none() {
                    problems.push(err(
                        "clickhouse.cluster",
                        "required when urls lists more than one node: every node must see the same (replicated) \
                         ledger, or a failover would insert batches again",
                    ));
                }
            }
            _ => {}
        }
        if let Some(cluster) = &ch.cluster {
            if !is_identifier(cluster) {
                problems.push(err(
                    "clickhouse.cluster",
                    "a cluster name: letters, digits and _, not starting with a digit",
                ));
            }
        }
        if let Err(e) = self.clickhouse_password() {
            problems.push(err("clickhouse", e.to_string()));
        }
        let kafka = &self.kafka;
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&kafka.security_protocol.as_str()) {
            problems.push(err(
                "kafka.security_protocol",
                "plaintext, ssl, sasl_plaintext or sasl_ssl",
            ));
        }
        if let Some(m) = &kafka.sasl_mechanism {
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                problems.push(err(
                    "kafka.sasl_mechanism",
                    "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                ));
            }
        }
        if let Err(e) = self.sasl_password() {
            problems.push(err("kafka", e.to_string()));
        }
        for key in kafka.options.keys() {
            if let Some(reason) = crate::kafka_options::operator_refusal(key) {
                problems.push(err(format!("kafka.options.{key:?}"), reason));
            }
        }
        if self.api_token.is_some() {
            problems.push(err(
                "api_token",
                "the API token is not written in the config file: use api_token_env or api_token_file",
            ));
        }
        if let Err(e) = self.api_token() {
            problems.push(err("api_token", e.to_string()));
        }
        if kafka.security_protocol.starts_with("sasl") && kafka.sasl_mechanism.is_none() {
            problems.push(err(
                "kafka.sasl_mechanism",
                "required with a sasl_* security_protocol",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.pipelines.iter().enumerate() {
            p.check(&format!("pipelines[{i}]"), &mut problems);
            if !names.insert(&p.name) {
                problems.push(err(
                    format!("pipelines[{i}].name"),
                    format!("{} is declared twice", p.name),
                ));
            }
        }
        problems
    }

    /// The bearer token of the API (`None`: `/pipelines` refuses every request, saying how to configure one).
    pub fn api_token(&self) -> Result<Option<Secret>, SecretError> {
        let token = secret::resolve(
            "api_token",
            API_TOKEN,
            &None,
            &self.api_token_env,
            &self.api_token_file,
        )?;
        match token {
            Some(Secret(t)) if t.len() < MIN_API_TOKEN_LEN => Err(SecretError::ShortApiToken),
            other => Ok(other),
        }
    }

    pub fn clickhouse_password(&self) -> Result<Option<Secret>, SecretError> {
        let ch = &self.clickhouse;
        secret::resolve(
            "password",
            PASSWORD,
            &ch.password,
            &ch.password_env,
            &ch.password_file,
        )
    }

    pub fn sasl_password(&self) -> Result<Option<Secret>, SecretError> {
        let k = &self.kafka;
        secret::resolve(
            "sasl_password",
            SASL_PASSWORD,
            &k.sasl_password,
            &k.sasl_password_env,
            &k.sasl_password_file,
        )
    }
}
