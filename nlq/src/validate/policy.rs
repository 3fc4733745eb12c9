//! What a generated query may touch: the asking user's tables and switches ([`Policy`]), and what no policy
//! can allow (table functions and scalar functions that read outside ClickHouse's own tables).

use std::collections::BTreeSet;
use std::fmt;

/// Table functions that reach outside ClickHouse's own tables: files, URLs, object stores, other servers,
/// programs and dictionaries. Refused even when a policy lists them. Compared case-insensitively.
#[rustfmt::skip]
pub(super) const EXTERNAL_TABLE_FUNCTIONS: &[&str] = &[
    "url", "urlcluster", "file", "filecluster", "s3", "s3cluster", "gcs", "oss", "cosn", "remote",
    "remotesecure", "cluster", "clusterallreplicas", "mysql", "postgresql", "jdbc", "odbc", "hdfs",
    "hdfscluster", "input", "executable", "azureblobstorage", "azureblobstoragecluster", "mongodb", "redis",
    "sqlite", "dictionary", "iceberg", "icebergs3", "icebergazure", "iceberghdfs", "deltalake", "hudi",
    "arrowflight",
];

/// Scalar functions that read data outside the catalog's tables: `file()` reads a server file,
/// `joinGet` reads a table named in a string, the `dict*` family reads dictionaries.
pub(super) fn is_denied_scalar_function(lowercase: &str) -> bool {
    matches!(
        lowercase,
        "file" | "joinget" | "joingetornull" | "dicthas" | "dictisin"
    ) || lowercase.starts_with("dictget")
}

/// A table, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    /// Database name, exactly as ClickHouse spells it (names are case-sensitive).
    pub database: String,
    /// Table name.
    pub table: String,
}

impl TableName {
    /// `database.table`.
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// What a generated query may touch: the asking user's readable tables and a few explicit switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Database of unqualified table names (the session's current database).
    pub default_database: String,
    /// Tables the asking user can read (from the catalog, read with the user's own credentials).
    pub allowed_tables: BTreeSet<TableName>,
    /// Whether `system.*` and `information_schema.*` may be read. Off by default.
    pub allow_system: bool,
    /// Table functions allowed by name, case-insensitive (e.g. `numbers`). Empty by default; the
    /// functions of [`EXTERNAL_TABLE_FUNCTIONS`] stay refused whatever this holds.
    pub allowed_table_functions: BTreeSet<String>,
    /// `SETTINGS` names a generated query may carry. Empty by default: limits are Aurora's to set.
    pub allowed_settings: BTreeSet<String>,
}

impl Policy {
    /// A policy with no tables, no system tables, no table functions and no settings.
    pub fn new(default_database: impl Into<String>) -> Self {
        Self {
            default_database: default_database.into(),
            allowed_tables: BTreeSet::new(),
            allow_system: false,
            allowed_table_functions: BTreeSet::new(),
            allowed_settings: BTreeSet::new(),
        }
    }

    /// Adds a readable table.
    pub fn allow_table(mut self, database: impl Into<String>, table: impl Into<String>) -> Self {
        self.allowed_tables.insert(TableName::new(database, table));
        self
    }
}
