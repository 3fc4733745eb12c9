//! Errors of the natural-language engine's SQL checks: why generated SQL was refused ([`ValidationError`])
//! and why the model's parameter values could not be bound to it ([`BindError`]).
//!
//! Every message is written for the person who asked the question (or the model that gets it back for
//! self-correction): it names the table, function, setting or parameter at fault and says what is allowed.

use thiserror::Error;

/// Why a generated query was refused by [`crate::validate::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// Nothing but whitespace and comments.
    #[error("the generated SQL is empty")]
    Empty,

    /// `INTO OUTFILE` would write the result to the server's disk (sqlparser cannot parse it; the
    /// tokens are recognised after the parse fails).
    #[error("INTO OUTFILE is not allowed: a generated query may only return rows to the client")]
    IntoOutfile,

    /// The SQL does not parse with the ClickHouse dialect.
    #[error("the generated SQL does not parse: {message}")]
    Syntax {
        /// The parser's own message, with line and column.
        message: String,
    },

    /// More than one statement (`SELECT 1; DROP TABLE t`).
    #[error("exactly one SELECT statement is allowed, found {count} statements")]
    MultipleStatements {
        /// How many statements the text holds.
        count: usize,
    },

    /// A statement other than a query (INSERT, ALTER, SET, SYSTEM, DROP, …).
    #[error("only SELECT (or WITH … SELECT) is allowed, found {kind}")]
    NotASelect {
        /// The statement's leading words, e.g. `DROP TABLE`.
        kind: String,
    },

    /// A table that the asking user's catalog does not hold.
    #[error("table {database}.{table} is not in the catalog this question may use")]
    TableNotAllowed {
        /// Database, resolved with the policy's default database for unqualified names.
        database: String,
        /// Table name.
        table: String,
    },

    /// `system.*` or `information_schema.*` while the policy does not allow them.
    #[error("system table {database}.{table} is not allowed in generated queries")]
    SystemTable {
        /// `system`, `information_schema` or `INFORMATION_SCHEMA`.
        database: String,
        /// Table name.
        table: String,
    },

    /// A table name with more than two parts, or an empty one.
    #[error("table name {name} is not of the form table or database.table")]
    InvalidTableName {
        /// The name as written.
        name: String,
    },

    /// A table function that reaches outside ClickHouse's own tables (files, URLs, other servers, programs).
    /// Never allowed, whatever the policy's allow-list says.
    #[error("table function {name}() is not allowed: it reads data from outside the catalog (files, URLs, other servers or programs)")]
    ExternalTableFunction {
        /// The function's name as written.
        name: String,
    },

    /// Any other table function that is not on the policy's allow-list (`numbers`, `merge`, …).
    #[error("table function {name}() is not allowed; query the catalog's tables instead")]
    TableFunctionNotAllowed {
        /// The function's name as written.
        name: String,
    },

    /// A scalar function that reads outside the catalog (`file`, `joinGet`, `dictGet`, …).
    #[error("function {name}() is not allowed: it reads data outside the catalog's tables")]
    FunctionNotAllowed {
        /// The function's name as written.
        name: String,
    },

    /// A FROM item sqlparser knows but ClickHouse does not need here (`TABLE(…)`, `UNNEST`, `PIVOT`, …).
    #[error("{what} is not supported in generated queries")]
    UnsupportedTableExpression {
        /// What was found.
        what: String,
    },

    /// A `SETTINGS` clause entry that is not on the policy's allow-list (it could loosen limits).
    #[error("SETTINGS {name} is not allowed in generated queries: limits are set by Aurora")]
    SettingNotAllowed {
        /// The setting's name.
        name: String,
    },

    /// A `FORMAT` clause: the output format is the client's choice.
    #[error("FORMAT {format} is not allowed in generated queries: the client chooses the output format")]
    FormatClause {
        /// The format named.
        format: String,
    },

    /// `SELECT … INTO table` would create a table.
    #[error("SELECT … INTO {target} is not allowed: a generated query may not create tables")]
    SelectInto {
        /// The target named.
        target: String,
    },

    /// `?`, `$1`, `:name` or `@name`: only ClickHouse's typed `{name:Type}` placeholders are bound.
    #[error(
        "placeholder {text} is not supported; write typed ClickHouse placeholders such as {{name:String}}"
    )]
    UntypedPlaceholder {
        /// The placeholder as written.
        text: String,
    },

    /// Braces that are not a single `{name:Type}`.
    #[error("malformed placeholder {text}: {reason}")]
    MalformedPlaceholder {
        /// The braces' source text.
        text: String,
        /// What is wrong.
        reason: String,
    },

    /// One name declared with two different types.
    #[error("placeholder {name} is declared as {first} and as {second}; use one type per name")]
    PlaceholderTypeConflict {
        /// The placeholder's name.
        name: String,
        /// The type of its first appearance.
        first: String,
        /// The conflicting type.
        second: String,
    },
}

/// Why parameter values could not be bound to a validated query by [`crate::bind`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BindError {
    /// Placeholders without a value.
    #[error("no value given for placeholder(s): {}", .names.join(", "))]
    MissingParams {
        /// Their names, in order of first appearance in the SQL.
        names: Vec<String>,
    },

    /// A value that does not parse as its declared type.
    #[error("parameter {name} is declared {ty} but its value {value} {reason}")]
    InvalidValue {
        /// Parameter name.
        name: String,
        /// Declared type.
        ty: String,
        /// The value as JSON (shortened when long).
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A declared type that binding does not handle.
    #[error("parameter {name} has type {ty}, which Aurora cannot bind; supported: (U)Int8..64, Float32/64, Decimal(P, S), String, Date, DateTime, Bool, UUID, Nullable(T), Array(T), LowCardinality(T)")]
    UnsupportedType {
        /// Parameter name.
        name: String,
        /// Declared type.
        ty: String,
    },

    /// The literal substitution changed the query's structure (it must never happen; a guard).
    #[error("substituting literals changed the query's structure: {reason}")]
    RewriteChangedQuery {
        /// What changed.
        reason: String,
    },

    /// The rewritten query failed validation again.
    #[error("the query with literals substituted failed validation: {0}")]
    Revalidation(#[from] ValidationError),
}
