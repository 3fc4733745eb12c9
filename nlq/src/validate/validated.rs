//! What a query that passed validation hands on: its text, the tables it reads, its placeholders and the
//! literals [`crate::lift`] turns into parameters.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::param_type::ParamType;
use super::policy::TableName;

/// A placeholder name with its declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// Name, `[A-Za-z_][A-Za-z0-9_]*` (it becomes the HTTP parameter `param_<name>`).
    pub name: String,
    /// Declared type.
    pub ty: ParamType,
}

/// Where one `{name:Type}` sits in the validated SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceholderSite {
    /// Placeholder name.
    pub name: String,
    /// Byte range from `{` to `}` inclusive.
    pub range: Range<usize>,
}

/// A query that passed [`validate`](super::validate()): its text unchanged, what it reads and what it needs
/// bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedQuery {
    /// The SQL exactly as generated.
    pub sql: String,
    /// Placeholders by name, in order of first appearance, each with one declared type.
    pub placeholders: Vec<Placeholder>,
    /// Every placeholder occurrence, in text order.
    pub sites: Vec<PlaceholderSite>,
    /// Tables read (CTE names excluded), fully qualified.
    pub tables: BTreeSet<TableName>,
    /// Placeholders the model wrote without a type (`{tenant}`): `sql` holds them as `{tenant:String}`, and
    /// [`crate::lift`] types them from the column they are compared with.
    pub untyped: BTreeSet<String>,
    /// Literals compared with something that is not a literal, in text order: what [`crate::lift`] turns
    /// into query parameters.
    pub literals: Vec<LiteralSite>,
    /// What each placeholder occurrence is compared with, by the byte offset of its `{`.
    pub placeholder_comparands: BTreeMap<usize, Comparand>,
}

/// A literal of the validated SQL that sits in a comparison (`=`, `<>`, `<`, `>=`, `LIKE`, `IN (…)`,
/// `BETWEEN`) with an expression that is not a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralSite {
    /// Byte range of the literal's text (a leading unary minus included).
    pub range: Range<usize>,
    pub value: Literal,
    /// What it is compared with.
    pub comparand: Comparand,
}

/// A literal's value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// The string's content (quotes and escapes removed).
    String(String),
    /// The number's text, with its sign.
    Number(String),
}

/// The other side of a comparison, as far as typing a value for it needs: a column (possibly qualified)
/// and the function around it, if any (`toDate(timestamp)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparand {
    pub qualifier: Option<String>,
    pub column: Option<String>,
    /// Lower-case name of a one-column function around the column.
    pub function: Option<String>,
    /// `LIKE`/`ILIKE`: the value is a pattern, always a String.
    pub pattern: bool,
}
