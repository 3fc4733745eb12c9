//! The ClickHouse objects a pipeline uses, and the SQL that creates or checks them.
//!
//! For pipeline `p` writing `db.t`:
//! - `db.t` — the target (created when missing: MergeTree, partitioned by month, ordered for the queries);
//! - `db.t_dead_letters` — refused messages with their coordinates (ReplacingMergeTree on topic, partition,
//!   offset, so a message set aside twice after a crash is kept once after merges);
//! - `db.t_per_minute` + `db.t_per_minute_mv` — the optional per-minute rollup;
//! - `db.aurora_ingest_ledger` — one row per inserted batch and partition: the committed range record;
//! - `db.aurora_stage_p` (engine Null) with two materialized views, `db.aurora_stage_p_v1_rows` (→ `db.t`) and
//!   `db.aurora_stage_p_v3_ledger` (→ the ledger). A batch is ONE insert into the stage: the server writes its
//!   rows and its ledger entry within that one request, so no crash of the daemon can leave one without the
//!   other (see README, "Delivery guarantee").
//!
//! Every database, table and column name is written quoted ([`quote_ident`]); the keys of a created table are
//! printed from their checked syntax trees ([`crate::table_keys`]), never from the spec's text.

use std::fmt;

use crate::clickhouse::{ChError, ClickHouse};
use crate::columns::{Column, ColumnType};
use crate::config::PipelineSpec;
use crate::sql::{quote, quote_ident};

/// A table (or view) of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub database: String,
    pub name: String,
}

impl TableName {
    /// `` `db`.`name` ``, as it goes into SQL.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.database), quote_ident(&self.name))
    }
}

/// `db.name`, for messages and logs.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.name)
    }
}

/// Names of every object of one pipeline.
#[derive(Debug, Clone)]
pub struct Objects {
    pub database: String,
    /// `db.t`
    pub target: TableName,
    pub dead_letters: TableName,
    pub ledger: TableName,
    pub stage: TableName,
    pub stage_rows_view: TableName,
    pub stage_ledger_view: TableName,
    /// Only where the server does not feed a view's target table's own views (18.16): the rollup from the stage.
    pub stage_rollup_view: TableName,
    pub rollup: TableName,
    pub rollup_view: TableName,
}

/// Columns the stage adds to each row: where the message came from.
pub const STAGE_META: &str = "`_aurora_topic`, `_aurora_partition`, `_aurora_offset`";

impl Objects {
    pub fn new(spec: &PipelineSpec) -> Objects {
        let (db, table) = spec.database_table().unwrap_or(("default", "invalid"));
        let q = |name: String| TableName {
            database: db.to_string(),
            name,
        };
        Objects {
            database: db.to_string(),
            target: q(table.to_string()),
            dead_letters: q(format!("{table}_dead_letters")),
            ledger: q("aurora_ingest_ledger".to_string()),
            stage: q(format!("aurora_stage_{}", spec.name)),
            stage_rows_view: q(format!("aurora_stage_{}_v1_rows", spec.name)),
            stage_ledger_view: q(format!("aurora_stage_{}_v3_ledger", spec.name)),
            stage_rollup_view: q(format!("aurora_stage_{}_v2_rollup", spec.name)),
            rollup: q(format!("{table}_per_minute")),
            rollup_view: q(format!("{table}_per_minute_mv")),
        }
    }
}

pub const DEAD_LETTER_COLUMNS: &str = "`topic`, `partition`, `offset`, `error`, `raw`, `time`";

fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The column list of an insert into the stage.
pub fn stage_insert_columns(columns: &[Column]) -> String {
    format!("{}, {STAGE_META}", column_list(columns))
}

/// The target's CREATE TABLE. Its keys were checked by [`PipelineSpec::validate`]; a spec that skipped it gets
/// a configuration error here, never its text in the SQL.
fn target_ddl(
    spec: &PipelineSpec,
    o: &Objects,
    columns: &[Column],
    replicated: bool,
) -> Result<String, ChError> {
    let defs = columns
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.ty.sql()))
        .collect::<Vec<_>>()
        .join(", ");
    let partition_key = spec
        .partition_key()
        .map_err(|e| ChError::Config(format!("partition_by: {e}")))?;
    let partition = match partition_key {
        Some(key) => format!(" PARTITION BY {}", key.sql()),
        None => columns
            .iter()
            .find(|c| c.ty == ColumnType::DateTime)
            .map(|c| format!(" PARTITION BY toYYYYMM({})", quote_ident(&c.name)))
            .unwrap_or_default(),
    };
    let order_keys = spec
        .order_by_keys()
        .map_err(|(i, e)| ChError::Config(format!("order_by[{i}]: {e}")))?;
    let order = match order_keys {
        Some(keys) => keys.iter().map(|k| k.sql()).collect::<Vec<_>>().join(", "),
        None => {
            let wanted = ["tenant_id", "event_type", "timestamp"];
            if wanted.iter().all(|w| columns.iter().any(|c| c.name == *w)) {
                wanted.map(quote_ident).join(", ")
            } else {
                columns
                    .iter()
                    .find(|c| c.ty == ColumnType::DateTime)
                    .map(|c| quote_ident(&c.name))
                    .unwrap_or_else(|| "tuple()".to_string())
            }
        }
    };
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {} ({defs}) ENGINE = {}{partition} ORDER BY ({order})",
        o.target.sql(),
        engine("MergeTree", &o.target, replicated)
    ))
}

/// `kind` (MergeTree, ReplacingMergeTree, SummingMergeTree), or with `replicated` its Replicated form: one
/// ZooKeeper path per table of the shard, `{shard}` and `{replica}` from the server's macros.
fn engine(kind: &str, table: &TableName, replicated: bool) -> String {
    if !replicated {
        return kind.to_string();
    }
    let path = format!("/clickhouse/tables/{{shard}}/{}/{}", table.database, table.name);
    format!("Replicated{kind}({}, '{{replica}}')", quote(&path))
}

/// What [`prepare_all`] leaves: the nodes prepared for one pipeline (a node down then is prepared later, by
/// [`ensure_prepared`], before anything is inserted into it).
pub type PreparedNodes = tokio::sync::Mutex<Vec<bool>>;

/// [`prepare`] on every node: those that answer are prepared; a configuration error (on any node) is returned;
/// transient failures leave the node for later, unless no node could be prepared (then the last error).
pub async fn prepare_all(
    ch: &ClickHouse,
    spec: &PipelineSpec,
    columns: &[Column],
    prepared: &PreparedNodes,
) -> Result<(), ChError> {
    let mut done = prepared.lock().await;
    done.resize(ch.node_count(), false);
    let mut last_error = None;
    for node in 0..ch.node_count() {
        if done[node] {
            continue;
        }
        match prepare(&ch.on_node(node), spec, columns).await {
            Ok(()) => done[node] = true,
            Err(e @ ChError::Config(_)) => return Err(e),
            Err(e) => {
                if ch.node_count() > 1 {
                    tracing::warn!(pipeline = %spec.name, node = ch.node_label(node), error = %e,
                        "cannot prepare this ClickHouse node now; it is prepared before its first insert");
                }
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) if !done.iter().any(|d| *d) => Err(e),
        _ => Ok(()),
    }
}

/// Prepares node `node` for the pipeline unless that was done: the stage and its views must exist on a node
/// before a batch is inserted into it.
pub async fn ensure_prepared(
    ch: &ClickHouse,
    node: usize,
    spec: &PipelineSpec,
    columns: &[Column],
    prepared: &PreparedNodes,
) -> Result<(), ChError> {
    let mut done = prepared.lock().await;
    done.resize(ch.node_count(), false);
    if done[node] {
        return Ok(());
    }
    prepare(&ch.on_node(node), spec, columns).await?;
    tracing::info!(pipeline = %spec.name, node = ch.node_label(node), "ClickHouse node prepared");
    done[node] = true;
    Ok(())
}

/// Creates (when asked and missing) and checks everything the pipeline writes to.
pub async fn prepare(ch: &ClickHouse, spec: &PipelineSpec, columns: &[Column]) -> Result<(), ChError> {
    let o = Objects::new(spec);
    let replicated = ch.cluster().is_some();
    if let Some(cluster) = ch.cluster() {
        let rows = ch
            .query_rows(&format!(
                "SELECT count() FROM system.clusters WHERE cluster = {}",
                quote(cluster)
            ))
            .await?;
        if rows.first().and_then(|r| r.first()).map(String::as_str) == Some("0") {
            return Err(ChError::Config(format!(
                "clickhouse.cluster: the server has no cluster {cluster} (system.clusters)"
            )));
        }
    }
    if spec.create_table {
        ch.execute(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            quote_ident(&o.database)
        ))
        .await?;
        ch.execute(&target_ddl(spec, &o, columns, replicated)?).await?;
    }
    check_target(ch, &o, columns).await?;
    if spec.dead_letters == crate::config::DeadLetters::Table {
        ch.execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (`topic` String, `partition` Int32, `offset` Int64, `error` String, \
             `raw` String, `time` DateTime) ENGINE = {} ORDER BY (`topic`, `partition`, `offset`)",
            o.dead_letters.sql(),
            engine("ReplacingMergeTree", &o.dead_letters, replicated)
        ))
        .await?;
    }
    let mut rollup_from_stage = false;
    if spec.rollup {
        ch.execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (`minute` DateTime, `tenant_id` String, `event_type` String, \
             `events` UInt64, `revenue` Float64) ENGINE = {} PARTITION BY toYYYYMM(`minute`) \
             ORDER BY (`tenant_id`, `event_type`, `minute`)",
            o.rollup.sql(),
            engine("SummingMergeTree", &o.rollup, replicated)
        ))
        .await?;
        ch.execute(&format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {} TO {} AS {}",
            o.rollup_view.sql(),
            o.rollup.sql(),
            rollup_select(&o.target)
        ))
        .await?;
        rollup_from_stage = !views_cascade(ch, &o.database).await?;
    }
    ch.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (`pipeline` String, `topic` String, `partition` Int32, \
         `first_offset` Int64, `last_offset` Int64, `rows` UInt64, `inserted_at` DateTime) ENGINE = {} \
         ORDER BY (`pipeline`, `topic`, `partition`, `last_offset`)",
        o.ledger.sql(),
        engine("MergeTree", &o.ledger, replicated)
    ))
    .await?;
    prepare_stage(ch, spec, &o, columns, rollup_from_stage).await
}

/// The stage and its two views; rebuilt when the mapping changed since they were made.
async fn prepare_stage(
    ch: &ClickHouse,
    spec: &PipelineSpec,
    o: &Objects,
    columns: &[Column],
    rollup_from_stage: bool,
) -> Result<(), ChError> {
    let mut wanted: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c.name.clone(), c.ty.sql().to_string()))
        .collect();
    wanted.push(("_aurora_topic".into(), "String".into()));
    wanted.push(("_aurora_partition".into(), "Int32".into()));
    wanted.push(("_aurora_offset".into(), "Int64".into()));
    let db = o.stage.database.as_str();
    let existing = describe(ch, &o.stage).await?;
    let mut views: Vec<String> = vec![o.stage_rows_view.name.clone(), o.stage_ledger_view.name.clone()];
    if rollup_from_stage {
        views.push(o.stage_rollup_view.name.clone());
    }
    views.sort();
    let all = [&o.stage_rows_view, &o.stage_rollup_view, &o.stage_ledger_view]
        .map(|v| quote(&v.name))
        .join(", ");
    let found: Vec<String> = ch
        .query_rows(&format!(
            "SELECT name FROM system.tables WHERE database = {} AND name IN ({all}) ORDER BY name",
            quote(db)
        ))
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    let views_exist = found == views;
    if existing == wanted && views_exist {
        return Ok(());
    }
    if !existing.is_empty() {
        tracing::info!(pipeline = %spec.name, stage = %o.stage, "rebuilding the stage: the mapping changed");
    }
    for view in [
        &o.stage_rows_view,
        &o.stage_ledger_view,
        &o.stage_rollup_view,
        &o.stage,
    ] {
        ch.execute(&format!("DROP TABLE IF EXISTS {}", view.sql()))
            .await?;
    }
    let defs = wanted
        .iter()
        .map(|(n, t)| format!("{} {t}", quote_ident(n)))
        .collect::<Vec<_>>()
        .join(", ");
    ch.execute(&format!("CREATE TABLE {} ({defs}) ENGINE = Null", o.stage.sql()))
        .await?;
    // The server feeds a table's views in the order of their names (a sorted set of dependencies), so the
    // rows view (`…_v1_rows`) and the rollup (`…_v2_rollup`) are written before the ledger view (`…_v3_ledger`): should the server itself die
    // between the two, the batch is inserted again (a double), never recorded without its rows (a loss).
    ch.execute(&format!(
        "CREATE MATERIALIZED VIEW {} TO {} AS SELECT {} AS `pipeline`, `_aurora_topic` AS `topic`, \
         `_aurora_partition` AS `partition`, min(`_aurora_offset`) AS `first_offset`, \
         max(`_aurora_offset`) AS `last_offset`, count() AS `rows`, now() AS `inserted_at` FROM {} \
         GROUP BY `_aurora_topic`, `_aurora_partition`",
        o.stage_ledger_view.sql(),
        o.ledger.sql(),
        quote(&spec.name),
        o.stage.sql()
    ))
    .await?;
    ch.execute(&format!(
        "CREATE MATERIALIZED VIEW {} TO {} AS SELECT {} FROM {}",
        o.stage_rows_view.sql(),
        o.target.sql(),
        column_list(columns),
        o.stage.sql()
    ))
    .await?;
    if rollup_from_stage {
        ch.execute(&format!(
            "CREATE MATERIALIZED VIEW {} TO {} AS {}",
            o.stage_rollup_view.sql(),
            o.rollup.sql(),
            rollup_select(&o.stage)
        ))
        .await?;
    }
    Ok(())
}

fn rollup_select(source: &TableName) -> String {
    format!(
        "SELECT toStartOfMinute(`timestamp`) AS `minute`, `tenant_id`, `event_type`, count() AS `events`, \
         sum(`revenue`) AS `revenue` FROM {} GROUP BY `minute`, `tenant_id`, `event_type`",
        source.sql()
    )
}

/// Whether rows a view writes into its `TO` table reach that table's own views. ClickHouse 18.16 does not
/// do this, newer servers do; measured once per pipeline start with three throwaway tables.
async fn views_cascade(ch: &ClickHouse, db: &str) -> Result<bool, ChError> {
    let probe = |suffix: &str| {
        TableName {
            database: db.to_string(),
            name: format!("aurora_probe_{}_{suffix}", std::process::id()),
        }
        .sql()
    };
    let [a, b, c, v1, v2] = ["a", "b", "c", "v1", "v2"].map(probe);
    let drop_all: Vec<String> = [&v2, &v1, &c, &b, &a]
        .iter()
        .map(|t| format!("DROP TABLE IF EXISTS {t}"))
        .collect();
    for sql in &drop_all {
        ch.execute(sql).await?;
    }
    let steps = [
        format!("CREATE TABLE {a} (`x` UInt8) ENGINE = Null"),
        format!("CREATE TABLE {b} (`x` UInt8) ENGINE = Memory"),
        format!("CREATE TABLE {c} (`x` UInt8) ENGINE = Memory"),
        format!("CREATE MATERIALIZED VIEW {v1} TO {b} AS SELECT `x` FROM {a}"),
        format!("CREATE MATERIALIZED VIEW {v2} TO {c} AS SELECT `x` FROM {b}"),
        format!("INSERT INTO {a} SELECT 1"),
    ];
    let mut result = Ok(false);
    for sql in &steps {
        if let Err(e) = ch.execute(sql).await {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = ch
            .query_rows(&format!("SELECT count() FROM {c}"))
            .await
            .map(|r| r.first().and_then(|r| r.first()).map(String::as_str) == Some("1"));
    }
    for sql in &drop_all {
        ch.execute(sql).await?;
    }
    result
}

/// `(name, type)` of each column of `table`, empty when the table does not exist.
async fn describe(ch: &ClickHouse, table: &TableName) -> Result<Vec<(String, String)>, ChError> {
    let rows = ch
        .query_rows(&format!(
            "SELECT name, type FROM system.columns WHERE database = {} AND table = {}",
            quote(&table.database),
            quote(&table.name)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.len() == 2)
        .map(|mut r| {
            let t = r.pop().unwrap_or_default();
            (r.pop().unwrap_or_default(), t)
        })
        .collect())
}

/// The target must exist and have every mapped column with the mapped type.
async fn check_target(ch: &ClickHouse, o: &Objects, columns: &[Column]) -> Result<(), ChError> {
    let existing = describe(ch, &o.target).await?;
    if existing.is_empty() {
        return Err(ChError::Config(format!(
            "table {} does not exist (set create_table = true to create it)",
            o.target
        )));
    }
    for c in columns {
        match existing.iter().find(|(n, _)| n == &c.name) {
            None => {
                return Err(ChError::Config(format!(
                    "table {} has no column {}",
                    o.target, c.name
                )))
            }
            Some((_, t)) if t != c.ty.sql() => {
                return Err(ChError::Config(format!(
                    "column {}.{} is {t}, the mapping says {}",
                    o.target,
                    c.name,
                    c.ty.sql()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The highest offset recorded per (topic, partition) for this pipeline. With several nodes: the highest any
/// node that answers records (a replica may not have fetched the newest ledger part yet); an error only when
/// no node answers.
pub async fn ledger_positions(
    ch: &ClickHouse,
    spec: &PipelineSpec,
) -> Result<Vec<(String, i32, i64)>, ChError> {
    if ch.node_count() == 1 {
        return ledger_positions_on(ch, spec).await;
    }
    let mut merged: Vec<(String, i32, i64)> = Vec::new();
    let mut answered = false;
    let mut last_error = None;
    for node in 0..ch.node_count() {
        match ledger_positions_on(&ch.on_node(node), spec).await {
            Ok(positions) => {
                answered = true;
                for (t, p, o) in positions {
                    match merged.iter_mut().find(|(mt, mp, _)| *mt == t && *mp == p) {
                        Some(entry) => entry.2 = entry.2.max(o),
                        None => merged.push((t, p, o)),
                    }
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    match (answered, last_error) {
        (false, Some(e)) => Err(e),
        _ => Ok(merged),
    }
}

async fn ledger_positions_on(
    ch: &ClickHouse,
    spec: &PipelineSpec,
) -> Result<Vec<(String, i32, i64)>, ChError> {
    let o = Objects::new(spec);
    let rows = ch
        .query_rows(&format!(
            "SELECT `topic`, `partition`, max(`last_offset`) FROM {} WHERE `pipeline` = {} \
             GROUP BY `topic`, `partition`",
            o.ledger.sql(),
            quote(&spec.name)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let [topic, partition, offset] = <[String; 3]>::try_from(r).ok()?;
            Some((topic, partition.parse().ok()?, offset.parse().ok()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> PipelineSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_created_table_quotes_every_name_and_prints_checked_keys() {
        let s = spec(r#"{"name":"p","topics":["t"],"table":"db.events"}"#);
        let ddl = target_ddl(&s, &Objects::new(&s), &s.columns(), false).unwrap();
        assert!(
            ddl.starts_with("CREATE TABLE IF NOT EXISTS `db`.`events` (`event_id` UUID, "),
            "{ddl}"
        );
        assert!(
            ddl.ends_with(
                "ENGINE = MergeTree PARTITION BY toYYYYMM(`timestamp`) ORDER BY (`tenant_id`, `event_type`, `timestamp`)"
            ),
            "{ddl}"
        );
        let s = spec(
            r#"{"name":"p","topics":["t"],"table":"db.events","partition_by":"toYYYYMMDD( timestamp )",
                "order_by":["tenant_id","intDiv(schema_version, 10)"]}"#,
        );
        s.validate("pipeline").unwrap();
        let ddl = target_ddl(&s, &Objects::new(&s), &s.columns(), false).unwrap();
        assert!(
            ddl.ends_with(
                "PARTITION BY toYYYYMMDD(`timestamp`) ORDER BY (`tenant_id`, intDiv(`schema_version`, 10))"
            ),
            "{ddl}"
        );
    }

    #[test]
    fn with_a_cluster_the_tables_that_store_data_are_replicated() {
        let s = spec(r#"{"name":"p","topics":["t"],"table":"db.events"}"#);
        let o = Objects::new(&s);
        let ddl = target_ddl(&s, &o, &s.columns(), true).unwrap();
        assert!(
            ddl.contains(
                "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/events', '{replica}') PARTITION BY"
            ),
            "{ddl}"
        );
        assert_eq!(
            engine("ReplacingMergeTree", &o.dead_letters, true),
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/events_dead_letters', '{replica}')"
        );
        assert_eq!(
            engine("SummingMergeTree", &o.rollup, true),
            "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/db/events_per_minute', '{replica}')"
        );
        assert_eq!(engine("MergeTree", &o.ledger, false), "MergeTree");
    }

    #[test]
    fn an_unchecked_spec_never_reaches_the_sql() {
        let s = spec(
            r#"{"name":"p","topics":["t"],"table":"db.events",
                "partition_by":"tuple() ORDER BY tuple() SETTINGS index_granularity = 3 --"}"#,
        );
        assert!(matches!(
            target_ddl(&s, &Objects::new(&s), &s.columns(), false),
            Err(ChError::Config(_))
        ));
    }

    #[test]
    fn objects_are_quoted_names() {
        let s = spec(r#"{"name":"p","topics":["t"],"table":"db.events","rollup":true}"#);
        let o = Objects::new(&s);
        assert_eq!(o.ledger.sql(), "`db`.`aurora_ingest_ledger`");
        assert_eq!(o.stage_rows_view.sql(), "`db`.`aurora_stage_p_v1_rows`");
        assert_eq!(o.dead_letters.to_string(), "db.events_dead_letters");
        assert_eq!(
            rollup_select(&o.target),
            "SELECT toStartOfMinute(`timestamp`) AS `minute`, `tenant_id`, `event_type`, count() AS `events`, \
             sum(`revenue`) AS `revenue` FROM `db`.`events` GROUP BY `minute`, `tenant_id`, `event_type`"
        );
    }
}
