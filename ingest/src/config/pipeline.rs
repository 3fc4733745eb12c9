//! One pipeline's spec (`[[pipelines]]` in the file, the body of `POST /pipelines`) and its validation: every
//! key checked, every problem reported with its key path (`pipelines[0].columns[2].type`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{err, first, ConfigError};
use crate::columns::{envelope_columns, Column, ColumnType};
use crate::kafka_options;
use crate::table_keys::KeyExpr;

/// Largest batch: ClickHouse forms blocks of at most `max_insert_block_size` (1,048,576) rows, and a batch
/// must be one block so that it is written whole or not at all.
pub const MAX_BATCH_ROWS: usize = 1_000_000;

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
    /// PARTITION BY of a created table; default `toYYYYMM(<first DateTime column>)`.
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
    /// Checks every key; `prefix` says where the pipeline was declared (`pipelines[2]`). The first problem
    /// found, if any ([`PipelineSpec::problems`] has them all).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        first(self.problems(prefix))
    }

    /// Every problem of this spec, in the order of its keys.
    pub fn problems(&self, prefix: &str) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        self.check(prefix, &mut problems);
        problems
    }

    /// Adds this spec's problems to `problems`.
    pub(super) fn check(&self, prefix: &str, problems: &mut Vec<ConfigError>) {
        let k = |key: &str| format!("{prefix}.{key}");
        if !is_identifier(&self.name) || self.name.len() > 48 {
            problems.push(err(
                k("name"),
                "letters, digits and _ only, at most 48, not starting with a digit",
            ));
        }
        if self.topics.is_empty() {
            problems.push(err(k("topics"), "at least one topic"));
        }
        for (i, t) in self.topics.iter().enumerate() {
            let ok = !t.is_empty()
                && t.len() <= 249
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                problems.push(err(
                    format!("{prefix}.topics[{i}]"),
                    format!("not a Kafka topic name: {t:?}"),
                ));
            }
        }
        if self.database_table().is_none() {
            problems.push(err(
                k("table"),
                format!(
                    "expected database.table (letters, digits, _), got {:?}",
                    self.table
                ),
            ));
        }
        if self.format != "json" {
            problems.push(err(
                k("format"),
                format!("unknown format {:?} (json is the only one)", self.format),
            ));
        }
        if let Some(columns) = &self.columns {
            if columns.is_empty() {
                problems.push(err(k("columns"), "at least one column"));
            }
            let mut seen = std::collections::HashSet::new();
            for (i, c) in columns.iter().enumerate() {
                let ck = format!("{prefix}.columns[{i}]");
                if !is_identifier(&c.name) || c.name.starts_with("_aurora") {
                    problems.push(err(
                        format!("{ck}.name"),
                        format!("not a column name: {:?}", c.name),
                    ));
                } else if !seen.insert(c.name.as_str()) {
                    problems.push(err(
                        format!("{ck}.name"),
                        format!("column {} appears twice", c.name),
                    ));
                }
                if ColumnType::parse(&c.ty).is_none() {
                    problems.push(err(
                        format!("{ck}.type"),
                        format!("{:?} is not one of {}", c.ty, ColumnType::NAMES),
                    ));
                }
                if let Some(path) = &c.path {
                    if path.split('.').any(str::is_empty) {
                        problems.push(err(format!("{ck}.path"), format!("empty segment in {path:?}")));
                    }
                }
            }
        }
        if self.batch_max_rows == 0 || self.batch_max_rows > MAX_BATCH_ROWS {
            problems.push(err(
                k("batch_max_rows"),
                format!("between 1 and {MAX_BATCH_ROWS}"),
            ));
        }
        if self.batch_max_bytes < 1024 || self.batch_max_bytes > 1 << 30 {
            problems.push(err(k("batch_max_bytes"), "between 1024 and 1073741824"));
        }
        if self.batch_max_wait.is_zero() || self.batch_max_wait > Duration::from_secs(600) {
            problems.push(err(k("batch_max_wait"), "between 1ms and 10m"));
        }
        if self.parallelism == 0 || self.parallelism > 64 {
            problems.push(err(k("parallelism"), "between 1 and 64"));
        }
        if let Err(e) = self.check_target(prefix) {
            problems.push(e);
        }
        if let Err((i, reason)) = self.order_by_keys() {
            problems.push(err(format!("{prefix}.order_by[{i}]"), reason));
        }
        if let Err(reason) = self.partition_key() {
            problems.push(err(k("partition_by"), reason));
        }
        for key in self.kafka_options.keys() {
            if let Some(reason) = kafka_options::operator_refusal(key) {
                problems.push(err(format!("{prefix}.kafka_options.{key:?}"), reason));
            }
        }
        if self.rollup && !self.is_envelope_shape() {
            problems.push(err(
                k("rollup"),
                "the per-minute rollup needs the columns timestamp, tenant_id, event_type and revenue",
            ));
        }
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
