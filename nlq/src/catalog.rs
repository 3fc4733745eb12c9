//! The schema catalog: the databases, tables and columns one user can read, as ClickHouse itself reports them to
//! that user.
//!
//! The catalog is read from `system.tables` and `system.columns` with the asking user's own credentials, so
//! ClickHouse's access rules decide what it holds (a user restricted to one database sees that database only)
//! and a table the user cannot read never reaches a prompt. Catalogs are cached per user and password for a
//! TTL, and refreshed on demand (`SETTINGS aurora_refresh_catalog = 1`, or when ClickHouse reports an unknown
//! table or column for a generated query).
//!
//! A few distinct values of low-cardinality string columns help the model write `event_type = 'purchase'`
//! rather than guess: they are read lazily, only for tables a question touches, and cached with the catalog.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clickhouse::{value_text, ClickHouseError, ClickHouseHttp, Credentials};
use crate::validate::{Policy, TableName};

/// Databases that hold ClickHouse's own metadata, never part of a user's catalog.
const SYSTEM_DATABASES: &[&str] = &["system", "INFORMATION_SCHEMA", "information_schema"];

/// The most distinct values shown for a column; a column with more is not low-cardinality.
pub const MAX_SAMPLE_VALUES: usize = 12;
/// Rows read per table when sampling values.
const SAMPLE_ROWS: u64 = 200_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// The ClickHouse type, exactly as `system.columns` spells it.
    pub ty: String,
    /// The column's comment (empty when none).
    pub comment: String,
}

impl Column {
    /// String-like columns whose distinct values are worth showing.
    pub fn is_sampled_kind(&self) -> bool {
        let inner = self
            .ty
            .strip_prefix("LowCardinality(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(&self.ty);
        let inner = inner
            .strip_prefix("Nullable(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(inner);
        inner == "String" || inner.starts_with("FixedString(")
    }
}

/// Sampled distinct values of one table's string columns, by column name.
pub type Samples = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: TableName,
    pub engine: String,
    pub columns: Vec<Column>,
}

/// What one user can read, at one moment.
#[derive(Debug)]
pub struct Catalog {
    pub tables: Vec<Table>,
    /// `version()` of the server, e.g. `18.16.1`.
    pub server_version: String,
    /// The user's `readonly` setting (0, 1 or 2).
    pub readonly: u8,
    /// Changes whenever the tables, columns or server version change; part of cache keys.
    pub version: u64,
    pub read_at: Instant,
    samples: Mutex<HashMap<TableName, Arc<Samples>>>,
}

impl Catalog {
    pub fn new(tables: Vec<Table>, server_version: String, readonly: u8) -> Catalog {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        server_version.hash(&mut hasher);
        for table in &tables {
            table.name.hash(&mut hasher);
            for column in &table.columns {
                column.name.hash(&mut hasher);
                column.ty.hash(&mut hasher);
                column.comment.hash(&mut hasher);
            }
        }
        Catalog {
            tables,
            server_version,
            readonly,
            version: hasher.finish(),
            read_at: Instant::now(),
            samples: Mutex::new(HashMap::new()),
        }
    }

    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }

    /// The validation policy for queries over this catalog.
    pub fn policy(&self, default_database: &str, allow_system: bool) -> Policy {
        let mut policy = Policy::new(default_database);
        policy.allow_system = allow_system;
        for table in &self.tables {
            policy.allowed_tables.insert(table.name.clone());
        }
        policy
    }

    /// `(major, minor)` of the server version; `(0, 0)` when it cannot be read.
    pub fn server_major_minor(&self) -> (u32, u32) {
        let mut parts = self
            .server_version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// Whether the server takes `{name:Type}` query parameters (`param_<name>` over HTTP): 19.11 and later.
    /// Older servers (the 18.16 of the test ground) get typed literals instead.
    pub fn supports_parameters(&self) -> bool {
        self.server_major_minor() >= (19, 11)
    }

    /// What the server lacks that models write anyway: common table expressions (before 20.1), window functions
    /// (before 21.3), positional GROUP BY/ORDER BY (off before 22.7, where `GROUP BY 1` silently groups by the
    /// constant). (18.16 also allows one JOIN per SELECT; saying so led the 1.5B model to write two.) Told to the model so it does not write what the
    /// server rejects or misreads.
    pub fn dialect_notes(&self) -> Vec<&'static str> {
        let version = self.server_major_minor();
        let mut notes = Vec::new();
        if version < (20, 1) {
            notes.push("no common table expressions (WITH name AS (SELECT ...)); use subqueries");
            notes.push("no DateTime64; no toStartOfInterval; use toStartOfHour/toStartOfDay/toStartOfMonth");
        }
        if version < (21, 3) {
            notes.push("no window functions (OVER (...))");
        }
        if version < (22, 7) {
            notes.push(
                "no positional GROUP BY or ORDER BY (GROUP BY 1 groups by the constant 1); name the columns or aliases",
            );
        }
        notes
    }

    /// Sampled distinct values for `table`'s string columns, read on first use (errors leave it empty).
    pub async fn samples(
        &self,
        ch: &ClickHouseHttp,
        credentials: &Credentials,
        table: &TableName,
    ) -> Arc<BTreeMap<String, Vec<String>>> {
        if let Some(found) = self.samples.lock().expect("samples lock").get(table) {
            return found.clone();
        }
        let read = match self.table(table) {
            Some(t) => read_samples(ch, credentials, t).await.unwrap_or_else(|error| {
                tracing::debug!(%table, %error, "cannot sample column values");
                BTreeMap::new()
            }),
            None => BTreeMap::new(),
        };
        let read = Arc::new(read);
        self.samples
            .lock()
            .expect("samples lock")
            .insert(table.clone(), read.clone());
        read
    }

    /// Sets `table`'s sampled values (benchmarks and tests build catalogs without a server).
    pub fn put_samples(&self, table: &TableName, values: BTreeMap<String, Vec<String>>) {
        self.samples
            .lock()
            .expect("samples lock")
            .insert(table.clone(), Arc::new(values));
    }

    /// How many tables have sampled values so far.
    pub fn sampled_tables(&self) -> usize {
        self.samples.lock().expect("samples lock").len()
    }

    /// Samples already read for `table`, without reading.
    pub fn cached_samples(&self, table: &TableName) -> Option<Arc<BTreeMap<String, Vec<String>>>> {
        self.samples.lock().expect("samples lock").get(table).cloned()
    }
}

async fn read_samples(
    ch: &ClickHouseHttp,
    credentials: &Credentials,
    table: &Table,
) -> Result<BTreeMap<String, Vec<String>>, ClickHouseError> {
    let columns: Vec<&Column> = table.columns.iter().filter(|c| c.is_sampled_kind()).collect();
    if columns.is_empty() || !table.engine.contains("MergeTree") && table.engine != "Memory" {
        return Ok(BTreeMap::new());
    }
    let arrays: Vec<String> = columns
        .iter()
        .map(|c| {
            // topK keeps bounded state on every version; 18.16's groupUniqArray takes no size limit. With at
            // most MAX_SAMPLE_VALUES distinct values, topK(MAX_SAMPLE_VALUES + 1) returns every one of them.
            format!("topK({})({})", MAX_SAMPLE_VALUES + 1, quote_ident(&c.name))
        })
        .collect();
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM {}.{} LIMIT {SAMPLE_ROWS})",
        arrays.join(", "),
        names.join(", "),
        quote_ident(&table.name.database),
        quote_ident(&table.name.table),
    );
    let result = ch.query(credentials, None, &sql, &[]).await?;
    let mut out = BTreeMap::new();
    if let Some(row) = result.rows.first() {
        for (column, value) in columns.iter().zip(row) {
            if let Some(values) = value.as_array() {
                if !values.is_empty() && values.len() <= MAX_SAMPLE_VALUES {
                    let mut texts: Vec<String> = values.iter().map(value_text).collect();
                    texts.sort();
                    out.insert(column.name.clone(), texts);
                }
            }
        }
    }
    Ok(out)
}

/// A ClickHouse identifier in backquotes when it is not a plain word.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
    }
}

/// Reads the catalog `credentials` can see.
pub async fn read_catalog(
    ch: &ClickHouseHttp,
    credentials: &Credentials,
) -> Result<Catalog, ClickHouseError> {
    let system = SYSTEM_DATABASES
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let about = ch
        .query(
            credentials,
            None,
            "SELECT version(), (SELECT any(value) FROM system.settings WHERE name = 'readonly')",
            &[],
        )
        .await?;
    let (server_version, readonly) = match about.rows.first().map(|r| r.as_slice()) {
        Some([version, readonly]) => (value_text(version), value_text(readonly).parse().unwrap_or(0)),
        _ => (String::new(), 0),
    };
    let tables = ch
        .query(
            credentials,
            None,
            &format!(
                "SELECT database, name, engine FROM system.tables WHERE database NOT IN ({system}) AND NOT startsWith(name, '.inner')"
            ),
            &[],
        )
        .await?;
    let columns = ch
        .query(
            credentials,
            None,
            &format!("SELECT database, table, name, type, comment FROM system.columns WHERE database NOT IN ({system})"),
            &[],
        )
        .await?;
    let mut by_name: BTreeMap<TableName, Table> = BTreeMap::new();
    for row in &tables.rows {
        if let [database, name, engine] = row.as_slice() {
            let name = TableName::new(value_text(database), value_text(name));
            by_name.insert(
                name.clone(),
                Table {
                    name,
                    engine: value_text(engine),
                    columns: Vec::new(),
                },
            );
        }
    }
    for row in &columns.rows {
        if let [database, table, name, ty, comment] = row.as_slice() {
            let key = TableName::new(value_text(database), value_text(table));
            if let Some(table) = by_name.get_mut(&key) {
                table.columns.push(Column {
                    name: value_text(name),
                    ty: value_text(ty),
                    comment: value_text(comment),
                });
            }
        }
    }
    Ok(Catalog::new(
        by_name.into_values().collect(),
        server_version,
        readonly,
    ))
}

/// Catalogs per user (and password: a wrong password never reads someone's cached catalog), kept for `ttl`.
pub struct CatalogCache {
    ttl: Duration,
    hasher: RandomState,
    entries: Mutex<HashMap<(String, u64), Arc<Catalog>>>,
}

impl CatalogCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            hasher: RandomState::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, credentials: &Credentials) -> (String, u64) {
        (
            credentials.user.clone(),
            self.hasher.hash_one(&credentials.password),
        )
    }

    /// The cached catalog when fresh, otherwise a new read.
    pub async fn get(
        &self,
        ch: &ClickHouseHttp,
        credentials: &Credentials,
        refresh: bool,
    ) -> Result<(Arc<Catalog>, bool), ClickHouseError> {
        let key = self.key(credentials);
        if !refresh {
            if let Some(found) = self.entries.lock().expect("catalog lock").get(&key) {
                if found.read_at.elapsed() < self.ttl {
                    return Ok((found.clone(), true));
                }
            }
        }
        let catalog = Arc::new(read_catalog(ch, credentials).await?);
        self.entries
            .lock()
            .expect("catalog lock")
            .insert(key, catalog.clone());
        Ok((catalog, false))
    }

    /// Forgets `credentials`' catalog (ClickHouse reported a table or column the catalog does not match).
    pub fn invalidate(&self, credentials: &Credentials) {
        let key = self.key(credentials);
        self.entries.lock().expect("catalog lock").remove(&key);
    }

    /// Puts a catalog in place (benchmarks and tests build catalogs without a server).
    pub fn insert(&self, credentials: &Credentials, catalog: Arc<Catalog>) {
        let key = self.key(credentials);
        self.entries.lock().expect("catalog lock").insert(key, catalog);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            ty: ty.into(),
            comment: String::new(),
        }
    }

    #[test]
    fn sampled_kinds_are_strings() {
        assert!(column("a", "String").is_sampled_kind());
        assert!(column("a", "LowCardinality(String)").is_sampled_kind());
        assert!(column("a", "LowCardinality(Nullable(String))").is_sampled_kind());
        assert!(column("a", "FixedString(2)").is_sampled_kind());
        assert!(!column("a", "UInt64").is_sampled_kind());
        assert!(!column("a", "Array(String)").is_sampled_kind());
    }

    #[test]
    fn versions_decide_parameters_and_dialect_notes() {
        let old = Catalog::new(vec![], "18.16.1".into(), 0);
        assert!(!old.supports_parameters());
        assert_eq!(old.dialect_notes().len(), 4);
        let new = Catalog::new(vec![], "25.3.2.39".into(), 0);
        assert!(new.supports_parameters());
        assert!(new.dialect_notes().is_empty());
        assert_ne!(old.version, new.version);
    }

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(quote_ident("events"), "events");
        assert_eq!(quote_ident("my table"), "`my table`");
        assert_eq!(quote_ident("1x"), "`1x`");
        assert_eq!(quote_ident("a`b"), "`a\\`b`");
    }
}
