//! Validation of LLM-generated SQL: the gate between what a model wrote and what reaches ClickHouse.
//!
//! [`validate`] parses the text with sqlparser's `ClickHouseDialect` and walks the syntax tree with a
//! [`Visitor`] (early exit through `ControlFlow`). It accepts exactly one query — `SELECT`, `WITH … SELECT`
//! or set operations of them — over tables of the asking user's [`Policy`], and refuses everything else
//! with a distinct [`ValidationError`]. No check here searches the SQL text; the tokenizer is used only to
//! find the braces of placeholders and to name `INTO OUTFILE`, both explained below.
//!
//! What sqlparser 0.63 does that shapes this module (measured in this crate's tests):
//! - `{name:Type}` parses as a DuckDB-style dictionary, `Expr::Dictionary` with one field whose key is the
//!   name and whose value is the type as an expression (`Array(UInt64)` is a function call). The
//!   dictionary's own span is empty (`Span::empty()`), and a function's span stops before its `)`. So a
//!   placeholder's byte range comes from the tokens around its key: the `{` before it and the matching `}`
//!   after it, located with the tokenizer's line/column spans. [`crate::bind`] replaces exactly those ranges.
//! - An unparenthesized `x IN <expr>` swallows the rest of the condition: `x IN t AND y = 1` is read as
//!   `x IN (t AND y = 1)`. ClickHouse reads `IN t` as a table, so the leftmost identifier right of a
//!   one-item `IN` is checked as a table reference (conservative: `x IN (col)` is refused unless `col`
//!   names an allowed table).
//! - `INTO OUTFILE` does not parse; after a parse failure the tokens are checked for `INTO OUTFILE` so the
//!   refusal says what was wrong.
//! - `SELECT … INTO t`, `FORMAT`, `SETTINGS`, `?`/`$1`/`:x` placeholders and `TABLE(…)` all parse and are
//!   refused explicitly.
//! - The printed form of the tree is not always valid ClickHouse (`x::String` prints as `x::STRING`), so
//!   nothing here prints SQL back: the validated text is the model's own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{ControlFlow, Range};

use sqlparser::ast::{
    DataType, DictionaryField, Expr, FormatClause, FunctionArg, FunctionArgExpr, FunctionArguments,
    ObjectName, Query, Select, Setting, Statement, TableFactor, Value, ValueWithSpan, Visit, Visitor,
};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub use crate::error::ValidationError;

/// Table functions that reach outside ClickHouse's own tables: files, URLs, object stores, other servers,
/// programs and dictionaries. Refused even when a policy lists them. Compared case-insensitively.
#[rustfmt::skip]
const EXTERNAL_TABLE_FUNCTIONS: &[&str] = &[
    "url", "urlcluster", "file", "filecluster", "s3", "s3cluster", "gcs", "oss", "cosn", "remote",
    "remotesecure", "cluster", "clusterallreplicas", "mysql", "postgresql", "jdbc", "odbc", "hdfs",
    "hdfscluster", "input", "executable", "azureblobstorage", "azureblobstoragecluster", "mongodb", "redis",
    "sqlite", "dictionary", "iceberg", "icebergs3", "icebergazure", "iceberghdfs", "deltalake", "hudi",
    "arrowflight",
];

/// Scalar functions that read data outside the catalog's tables: `file()` reads a server file,
/// `joinGet` reads a table named in a string, the `dict*` family reads dictionaries.
fn is_denied_scalar_function(lowercase: &str) -> bool {
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

/// A placeholder's declared ClickHouse type, read from the syntax tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `Decimal(P, S)`; `Decimal32(S)` … `Decimal256(S)` map to precision 9, 18, 38, 76.
    Decimal {
        precision: u8,
        scale: u8,
    },
    String,
    Date,
    DateTime,
    Bool,
    Uuid,
    Nullable(Box<ParamType>),
    Array(Box<ParamType>),
    LowCardinality(Box<ParamType>),
    /// A type-shaped declaration that binding does not handle (`Map(String, UInt64)`, `DateTime('UTC')`):
    /// kept as written so that the refusal can name it.
    Other(String),
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::UInt8 => f.write_str("UInt8"),
            ParamType::UInt16 => f.write_str("UInt16"),
            ParamType::UInt32 => f.write_str("UInt32"),
            ParamType::UInt64 => f.write_str("UInt64"),
            ParamType::Int8 => f.write_str("Int8"),
            ParamType::Int16 => f.write_str("Int16"),
            ParamType::Int32 => f.write_str("Int32"),
            ParamType::Int64 => f.write_str("Int64"),
            ParamType::Float32 => f.write_str("Float32"),
            ParamType::Float64 => f.write_str("Float64"),
            ParamType::Decimal { precision, scale } => write!(f, "Decimal({precision}, {scale})"),
            ParamType::String => f.write_str("String"),
            ParamType::Date => f.write_str("Date"),
            ParamType::DateTime => f.write_str("DateTime"),
            ParamType::Bool => f.write_str("Bool"),
            ParamType::Uuid => f.write_str("UUID"),
            ParamType::Nullable(t) => write!(f, "Nullable({t})"),
            ParamType::Array(t) => write!(f, "Array({t})"),
            ParamType::LowCardinality(t) => write!(f, "LowCardinality({t})"),
            ParamType::Other(text) => f.write_str(text),
        }
    }
}

impl ParamType {
    /// Reads a type from the expression sqlparser made of it; `None` if it is not type-shaped at all.
    fn from_expr(expr: &Expr, source: &str) -> Option<ParamType> {
        let other = || {
            Some(ParamType::Other(
                source.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        };
        match expr {
            Expr::Identifier(ident) if ident.quote_style.is_none() => Some(match ident.value.as_str() {
                "UInt8" => ParamType::UInt8,
                "UInt16" => ParamType::UInt16,
                "UInt32" => ParamType::UInt32,
                "UInt64" => ParamType::UInt64,
                "Int8" => ParamType::Int8,
                "Int16" => ParamType::Int16,
                "Int32" => ParamType::Int32,
                "Int64" => ParamType::Int64,
                "Float32" => ParamType::Float32,
                "Float64" => ParamType::Float64,
                "String" => ParamType::String,
                "Date" => ParamType::Date,
                "DateTime" => ParamType::DateTime,
                "Bool" | "Boolean" => ParamType::Bool,
                "UUID" => ParamType::Uuid,
                _ => return other(),
            }),
            Expr::Function(function) => {
                let [part] = function.name.0.as_slice() else {
                    return None;
                };
                let name = part.as_ident()?.value.as_str();
                let FunctionArguments::List(list) = &function.args else {
                    return other();
                };
                let args: Vec<&Expr> = list
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect();
                if args.len() != list.args.len() {
                    return other();
                }
                let number = |e: &Expr| match e {
                    Expr::Value(ValueWithSpan {
                        value: Value::Number(n, _),
                        ..
                    }) => n.parse::<u8>().ok(),
                    _ => None,
                };
                let inner =
                    |e: &Expr| ParamType::from_expr(e, "").filter(|t| !matches!(t, ParamType::Other(_)));
                let decimal = |precision: u8, scale: Option<u8>| match scale {
                    Some(scale) if (1..=76).contains(&precision) && scale <= precision => {
                        Some(ParamType::Decimal { precision, scale })
                    }
                    _ => other(),
                };
                match (name, args.as_slice()) {
                    ("Nullable", [t]) => inner(t).map(|t| ParamType::Nullable(Box::new(t))).or_else(other),
                    ("Array", [t]) => inner(t).map(|t| ParamType::Array(Box::new(t))).or_else(other),
                    ("LowCardinality", [t]) => inner(t)
                        .map(|t| ParamType::LowCardinality(Box::new(t)))
                        .or_else(other),
                    ("Decimal", [p, s]) => match number(p) {
                        Some(p) => decimal(p, number(s)),
                        None => other(),
                    },
                    ("Decimal32", [s]) => decimal(9, number(s)),
                    ("Decimal64", [s]) => decimal(18, number(s)),
                    ("Decimal128", [s]) => decimal(38, number(s)),
                    ("Decimal256", [s]) => decimal(76, number(s)),
                    _ => other(),
                }
            }
            _ => None,
        }
    }
}

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

/// A query that passed [`validate`]: its text unchanged, what it reads and what it needs bound.
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

/// Checks generated SQL against `policy`; see the module documentation for what is refused.
pub fn validate(sql: &str, policy: &Policy) -> Result<ValidatedQuery, ValidationError> {
    let prepared = prepare_placeholders(sql);
    let shown = prepared.shown.as_str();
    let sql = prepared.parsed.as_str();
    let dialect = ClickHouseDialect {};
    let statements = match Parser::parse_sql(&dialect, sql) {
        Ok(statements) => statements,
        Err(error) => {
            if has_into_outfile(sql) {
                return Err(ValidationError::IntoOutfile);
            }
            return Err(ValidationError::Syntax {
                message: error.to_string(),
            });
        }
    };
    let query = match statements.as_slice() {
        [] => return Err(ValidationError::Empty),
        [Statement::Query(query)] => query,
        [other] => {
            return Err(ValidationError::NotASelect {
                kind: statement_kind(other),
            })
        }
        many => return Err(ValidationError::MultipleStatements { count: many.len() }),
    };
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| ValidationError::Syntax {
            message: e.to_string(),
        })?;

    let mut checker = Checker {
        policy,
        source: Source::new(sql, tokens),
        frames: Vec::new(),
        factor_names: Vec::new(),
        tables: BTreeSet::new(),
        sites: Vec::new(),
        literals: Vec::new(),
        comparands: BTreeMap::new(),
    };
    if let ControlFlow::Break(error) = query.visit(&mut checker) {
        return Err(error);
    }
    let rename = |name: &String| prepared.renamed.get(name).cloned().unwrap_or_else(|| name.clone());
    for (site, _) in &mut checker.sites {
        site.name = rename(&site.name);
    }
    let mut literals = checker.literals;
    literals.sort_by_key(|l| l.range.start);
    literals.dedup_by_key(|l| l.range.start);

    let mut sites = checker.sites;
    sites.sort_by_key(|(site, _)| site.range.start);
    let mut placeholders: Vec<Placeholder> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (site, ty) in &sites {
        match index.get(&site.name) {
            Some(&i) if placeholders[i].ty != *ty => {
                return Err(ValidationError::PlaceholderTypeConflict {
                    name: site.name.clone(),
                    first: placeholders[i].ty.to_string(),
                    second: ty.to_string(),
                });
            }
            Some(_) => {}
            None => {
                index.insert(site.name.clone(), placeholders.len());
                placeholders.push(Placeholder {
                    name: site.name.clone(),
                    ty: ty.clone(),
                });
            }
        }
    }
    Ok(ValidatedQuery {
        sql: shown.to_string(),
        placeholders,
        sites: sites.into_iter().map(|(site, _)| site).collect(),
        tables: checker.tables,
        untyped: prepared.untyped,
        literals,
        placeholder_comparands: checker.comparands,
    })
}

/// The SQL as sqlparser gets it, and as it is kept.
struct Prepared {
    /// What is validated and kept: the model's text, with untyped placeholders given the type String.
    shown: String,
    /// `shown` with placeholder names that sqlparser reads as ODBC escapes (`d`, `t`, `ts`, `fn`) swapped for
    /// unused names of the same length, so every byte offset is the same in both.
    parsed: String,
    /// Swapped name → the name as written.
    renamed: BTreeMap<String, String>,
    untyped: BTreeSet<String>,
}

/// Prepares ClickHouse placeholders for sqlparser, which reads `{d …}`, `{t …}`, `{ts …}` and `{fn …}` as ODBC
/// escapes and `{name}` not at all, although ClickHouse takes any identifier as a placeholder's name.
fn prepare_placeholders(sql: &str) -> Prepared {
    let unchanged = || Prepared {
        shown: sql.to_string(),
        parsed: sql.to_string(),
        renamed: BTreeMap::new(),
        untyped: BTreeSet::new(),
    };
    let Ok(tokens) = Tokenizer::new(&ClickHouseDialect {}, sql).tokenize_with_location() else {
        return unchanged();
    };
    let source = Source::new(sql, tokens);
    let significant: Vec<&TokenWithSpan> = source
        .tokens
        .iter()
        .filter(|t| !Source::is_trivia(&t.token))
        .collect();
    let used: BTreeSet<String> = significant
        .iter()
        .filter_map(|t| match &t.token {
            Token::Word(w) => Some(w.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    // (byte offset, bytes replaced, text, whether only the parsed form gets it)
    let mut edits: Vec<(usize, usize, String, bool)> = Vec::new();
    let mut renamed = BTreeMap::new();
    let mut untyped = BTreeSet::new();
    let mut swaps: BTreeMap<String, String> = BTreeMap::new();
    for window in significant.windows(3) {
        let [open, name, next] = window else { continue };
        let Token::Word(word) = &name.token else { continue };
        if open.token != Token::LBrace || word.quote_style.is_some() {
            continue;
        }
        let (Some(start), Some(end)) = (source.offset(name.span.start), source.offset(name.span.end)) else {
            continue;
        };
        if !matches!(next.token, Token::RBrace | Token::Colon) {
            continue;
        }
        if is_odbc_escape(&word.value) {
            let swap = match swaps.get(&word.value) {
                Some(swap) => swap.clone(),
                None => {
                    let taken: BTreeSet<&String> = swaps.values().collect();
                    let Some(swap) = unused_name(word.value.len(), &used, &taken) else { continue };
                    swaps.insert(word.value.clone(), swap.clone());
                    renamed.insert(swap.clone(), word.value.clone());
                    swap
                }
            };
            edits.push((start, end - start, swap, true));
        }
        if next.token == Token::RBrace {
            let Some(close) = source.offset(next.span.start) else { continue };
            edits.push((close, 0, ":String".into(), false));
            untyped.insert(word.value.clone());
        }
    }
    if edits.is_empty() {
        return unchanged();
    }
    let apply = |parsed: bool| {
        let mut out = String::with_capacity(sql.len() + 8 * edits.len());
        let mut cursor = 0;
        for (at, len, text, parse_only) in &edits {
            out.push_str(&sql[cursor..*at]);
            if *parse_only && !parsed {
                out.push_str(&sql[*at..*at + *len]);
            } else {
                out.push_str(text);
            }
            cursor = at + len;
        }
        out.push_str(&sql[cursor..]);
        out
    };
    Prepared {
        shown: apply(false),
        parsed: apply(true),
        renamed,
        untyped,
    }
}

/// sqlparser reads `{d …}`, `{t …}`, `{ts …}` and `{fn …}` as ODBC escapes, even in the ClickHouse dialect.
fn is_odbc_escape(name: &str) -> bool {
    ["d", "t", "ts", "fn"].iter().any(|e| name.eq_ignore_ascii_case(e))
}

/// A lower-case name of `len` letters that is no word of the SQL, no ODBC escape and not yet taken.
fn unused_name(len: usize, used: &BTreeSet<String>, taken: &BTreeSet<&String>) -> Option<String> {
    let letters = || ('a'..='z').map(String::from);
    let candidates: Box<dyn Iterator<Item = String>> = match len {
        1 => Box::new(letters()),
        2 => Box::new(letters().flat_map(move |a| letters().map(move |b| format!("{a}{b}")))),
        _ => return None,
    };
    candidates
        .into_iter()
        .find(|c| !is_odbc_escape(c) && !used.contains(c) && !taken.contains(c))
}

/// `INTO OUTFILE` among the tokens (used only after the parser failed, to name the refusal).
fn has_into_outfile(sql: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&ClickHouseDialect {}, sql).tokenize() else {
        return false;
    };
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    words.windows(2).any(|pair| match pair {
        [Token::Word(a), Token::Word(b)] => {
            a.value.eq_ignore_ascii_case("INTO") && b.value.eq_ignore_ascii_case("OUTFILE")
        }
        _ => false,
    })
}

fn odbc_name_error(name: &str) -> ValidationError {
    ValidationError::MalformedPlaceholder {
        text: format!("{{{name} …}}"),
        reason: "ODBC escapes ({d '…'}, {t '…'}, {ts '…'}, {fn …}) are not ClickHouse SQL; write toDate('…'), \
                 toDateTime('…') or the function itself"
            .into(),
    }
}

/// The leading keywords of a statement, for the refusal message (`DROP TABLE`, `INSERT INTO`, `SET`).
fn statement_kind(statement: &Statement) -> String {
    let printed = statement.to_string();
    let words: Vec<&str> = printed
        .split_whitespace()
        .take(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()) && w.chars().any(|c| c.is_ascii_uppercase()))
        .collect();
    if words.is_empty() {
        "a statement that is not a query".to_string()
    } else {
        words.join(" ")
    }
}

/// The SQL text with its tokens, for turning line/column spans into byte offsets.
struct Source<'a> {
    sql: &'a str,
    tokens: Vec<TokenWithSpan>,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    fn new(sql: &'a str, tokens: Vec<TokenWithSpan>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect::<Vec<_>>();
        Self {
            sql,
            tokens,
            line_starts,
        }
    }

    /// Byte offset of a tokenizer location (1-based line; 1-based column counted in chars).
    fn offset(&self, location: Location) -> Option<usize> {
        let start = *self.line_starts.get((location.line as usize).checked_sub(1)?)?;
        let column = (location.column as usize).checked_sub(1)?;
        let line = &self.sql[start..];
        match line.char_indices().nth(column) {
            Some((i, _)) => Some(start + i),
            None if line.chars().count() == column => Some(self.sql.len()),
            None => None,
        }
    }

    fn is_trivia(token: &Token) -> bool {
        matches!(token, Token::Whitespace(_))
    }

    /// The `{` … `}` around a dictionary whose first key starts at `key_start`: (open index, close index).
    fn braces_around(&self, key_start: Location) -> Option<(usize, usize)> {
        let key = self.tokens.iter().position(|t| t.span.start == key_start)?;
        let open = (0..key)
            .rev()
            .find(|&i| !Self::is_trivia(&self.tokens[i].token))?;
        if self.tokens[open].token != Token::LBrace {
            return None;
        }
        let mut depth = 0usize;
        for (i, t) in self.tokens.iter().enumerate().skip(open) {
            match t.token {
                Token::LBrace => depth += 1,
                Token::RBrace => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((open, i));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// CTE names visible in one query: in its body, and (for the CTEs' own queries) before each CTE.
struct Frame {
    /// Visible in the body: the enclosing scope plus all of this query's CTEs.
    visible: BTreeSet<String>,
    /// Visible to this query's enclosing scope.
    outer: BTreeSet<String>,
    /// This query's CTEs in order, by name and address, to recognise their queries when visited.
    ctes: Vec<(String, *const Query)>,
}

/// The visitor that applies the policy; the first refusal breaks the walk.
struct Checker<'a> {
    policy: &'a Policy,
    source: Source<'a>,
    frames: Vec<Frame>,
    /// Names of FROM items already checked, so that any relation met elsewhere is refused.
    factor_names: Vec<*const ObjectName>,
    tables: BTreeSet<TableName>,
    sites: Vec<(PlaceholderSite, ParamType)>,
    literals: Vec<LiteralSite>,
    /// Placeholder `{` offset → what it is compared with.
    comparands: BTreeMap<usize, Comparand>,
}

/// Functions of one column whose result a compared value takes the type of (see [`crate::lift`]).
const TYPED_WRAPPERS: &[&str] = &[
    "todate", "todatetime", "tostartofday", "tostartofhour", "tostartofminute", "tostartofmonth",
    "tostartofquarter", "tostartofyear", "tostartofweek", "tomonday", "toyyyymm", "toyyyymmdd", "toyear",
    "tomonth", "lower", "upper", "lowerutf8", "upperutf8",
];

impl Checker<'_> {
    /// The byte range of a literal value: the token its span starts at (sqlparser's value spans start right).
    fn literal(&self, expr: &Expr) -> Option<(Range<usize>, Literal)> {
        let (value, negative) = match expr {
            Expr::Value(value) => (value, false),
            Expr::UnaryOp {
                op: sqlparser::ast::UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(value) if matches!(value.value, Value::Number(..)) => (value, true),
                _ => return None,
            },
            _ => return None,
        };
        let literal = match &value.value {
            Value::SingleQuotedString(text) => Literal::String(text.clone()),
            Value::Number(text, _) => Literal::Number(if negative { format!("-{text}") } else { text.clone() }),
            _ => return None,
        };
        let tokens = &self.source.tokens;
        let at = tokens.iter().position(|t| t.span.start == value.span.start)?;
        let token_matches = matches!(
            (&tokens[at].token, &literal),
            (Token::SingleQuotedString(_), Literal::String(_)) | (Token::Number(..), Literal::Number(_))
        );
        if !token_matches {
            return None;
        }
        let mut start = self.source.offset(tokens[at].span.start)?;
        let end = self.source.offset(tokens[at].span.end)?;
        if negative {
            let minus = (0..at).rev().find(|&i| !Source::is_trivia(&tokens[i].token))?;
            if tokens[minus].token != Token::Minus {
                return None;
            }
            start = self.source.offset(tokens[minus].span.start)?;
        }
        Some((start..end, literal))
    }

    /// What a value compared with `expr` should be typed as, or `None` when `expr` is itself a literal.
    fn comparand(&self, expr: &Expr) -> Option<Comparand> {
        if self.literal(expr).is_some() || matches!(expr, Expr::Dictionary(_)) {
            return None;
        }
        let column = |expr: &Expr| match expr {
            Expr::Identifier(ident) => Some((None, ident.value.clone())),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => Some((
                Some(parts[parts.len() - 2].value.clone()),
                parts[parts.len() - 1].value.clone(),
            )),
            _ => None,
        };
        let mut expr = expr;
        while let Expr::Nested(inner) = expr {
            expr = inner;
        }
        if let Some((qualifier, name)) = column(expr) {
            return Some(Comparand {
                qualifier,
                column: Some(name),
                ..Comparand::default()
            });
        }
        if let Expr::Function(function) = expr {
            let name = function.name.to_string().to_ascii_lowercase();
            if let FunctionArguments::List(list) = &function.args {
                let first = list.args.first().and_then(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => column(e),
                    _ => None,
                });
                if let (Some((qualifier, column)), true) = (first, TYPED_WRAPPERS.contains(&name.as_str())) {
                    return Some(Comparand {
                        qualifier,
                        column: Some(column),
                        function: Some(name),
                        pattern: false,
                    });
                }
            }
        }
        Some(Comparand::default())
    }

    /// Records `value` (a literal or a placeholder) as compared with `comparand`.
    fn compared(&mut self, value: &Expr, comparand: &Comparand) {
        if let Some((range, literal)) = self.literal(value) {
            self.literals.push(LiteralSite {
                range,
                value: literal,
                comparand: comparand.clone(),
            });
        } else if let Expr::Dictionary(fields) = value {
            let open = fields
                .first()
                .and_then(|f| self.source.braces_around(f.key.span.start))
                .and_then(|(open, _)| self.source.offset(self.source.tokens[open].span.start));
            if let Some(open) = open {
                self.comparands.insert(open, comparand.clone());
            }
        }
    }

    /// Comparisons whose one side is a value and whose other side is not.
    fn record_comparison(&mut self, expr: &Expr) {
        use sqlparser::ast::BinaryOperator as Op;
        match expr {
            Expr::BinaryOp {
                left,
                op: Op::Eq | Op::NotEq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq,
                right,
            } => {
                if let Some(c) = self.comparand(left) {
                    self.compared(right, &c);
                }
                if let Some(c) = self.comparand(right) {
                    self.compared(left, &c);
                }
            }
            Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
                if let Some(mut c) = self.comparand(expr) {
                    c.pattern = true;
                    self.compared(pattern, &c);
                }
            }
            Expr::InList { expr, list, .. } => {
                if let Some(c) = self.comparand(expr) {
                    for item in list {
                        self.compared(item, &c);
                    }
                }
            }
            Expr::Between { expr, low, high, .. } => {
                if let Some(c) = self.comparand(expr) {
                    self.compared(low, &c);
                    self.compared(high, &c);
                }
            }
            _ => {}
        }
    }

    fn is_cte(&self, name: &str) -> bool {
        self.frames.last().is_some_and(|f| f.visible.contains(name))
    }

    fn check_table(&mut self, name: &ObjectName) -> Result<(), ValidationError> {
        let invalid = || ValidationError::InvalidTableName {
            name: name.to_string(),
        };
        let parts = name
            .0
            .iter()
            .map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect::<Option<Vec<_>>>();
        let table = match parts.ok_or_else(invalid)?.as_slice() {
            [table] if self.is_cte(table) => return Ok(()),
            [table] => TableName::new(self.policy.default_database.clone(), table.clone()),
            [database, table] => TableName::new(database.clone(), table.clone()),
            _ => return Err(invalid()),
        };
        let system = ["system", "information_schema"]
            .iter()
            .any(|s| table.database.eq_ignore_ascii_case(s));
        if system && !self.policy.allow_system {
            return Err(ValidationError::SystemTable {
                database: table.database,
                table: table.table,
            });
        }
        if !system && !self.policy.allowed_tables.contains(&table) {
            return Err(ValidationError::TableNotAllowed {
                database: table.database,
                table: table.table,
            });
        }
        self.tables.insert(table);
        Ok(())
    }

    fn check_table_function(&self, name: &ObjectName) -> Result<(), ValidationError> {
        let printed = name.to_string();
        let last = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase());
        let last = last.unwrap_or_default();
        if EXTERNAL_TABLE_FUNCTIONS.contains(&last.as_str()) {
            return Err(ValidationError::ExternalTableFunction { name: printed });
        }
        let allowed = name.0.len() == 1
            && self
                .policy
                .allowed_table_functions
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&last));
        if !allowed {
            return Err(ValidationError::TableFunctionNotAllowed { name: printed });
        }
        Ok(())
    }

    fn check_settings(&self, settings: &Option<Vec<Setting>>) -> Result<(), ValidationError> {
        for setting in settings.iter().flatten() {
            if !self.policy.allowed_settings.contains(&setting.key.value) {
                return Err(ValidationError::SettingNotAllowed {
                    name: setting.key.value.clone(),
                });
            }
        }
        Ok(())
    }

    fn placeholder(&mut self, fields: &[DictionaryField]) -> Result<(), ValidationError> {
        let malformed = |text: &str, reason: &str| ValidationError::MalformedPlaceholder {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let Some(first) = fields.first() else {
            return Err(malformed("{}", "expected {name:Type}"));
        };
        let Some((open, close)) = self.source.braces_around(first.key.span.start) else {
            return Err(malformed(
                &format!("{{{}: …}}", first.key.value),
                "its braces could not be located",
            ));
        };
        let tokens = &self.source.tokens;
        let start = self.source.offset(tokens[open].span.start);
        let end = self.source.offset(tokens[close].span.end);
        let colon = (open..close).find(|&i| tokens[i].token == Token::Colon);
        let type_start = colon.and_then(|i| self.source.offset(tokens[i].span.end));
        let type_end = self.source.offset(tokens[close].span.start);
        let (Some(start), Some(end), Some(type_start), Some(type_end)) = (start, end, type_start, type_end)
        else {
            return Err(malformed(
                &first.key.value,
                "its position in the SQL could not be located",
            ));
        };
        let text = &self.source.sql[start..end];
        if fields.len() != 1 {
            return Err(malformed(
                text,
                "a placeholder declares exactly one name and one type",
            ));
        }
        let name = &first.key.value;
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name || first.key.quote_style.is_some() {
            return Err(malformed(
                text,
                "the name must be a plain identifier (letters, digits, _)",
            ));
        }
        let declared = self.source.sql[type_start..type_end].trim();
        let Some(ty) = ParamType::from_expr(&first.value, declared) else {
            return Err(malformed(text, "the part after ':' is not a ClickHouse type"));
        };
        self.sites.push((
            PlaceholderSite {
                name: name.clone(),
                range: start..end,
            },
            ty,
        ));
        Ok(())
    }

    /// ClickHouse reads an identifier right of `IN` as a table. Because of sqlparser's unparenthesized-IN
    /// precedence (see the module header), the identifier is the leftmost leaf of the one list item.
    fn check_in_rhs(&mut self, item: &Expr) -> Result<(), ValidationError> {
        let mut leaf = item;
        loop {
            leaf = match leaf {
                Expr::BinaryOp { left, .. } => left,
                Expr::IsNull(e) | Expr::IsNotNull(e) => e,
                Expr::Between { expr, .. } | Expr::InList { expr, .. } | Expr::InSubquery { expr, .. } => {
                    expr
                }
                Expr::Like { expr, .. } | Expr::ILike { expr, .. } => expr,
                _ => break,
            };
        }
        match leaf {
            Expr::Identifier(ident) => self.check_table(&ObjectName::from(vec![ident.clone()])),
            Expr::CompoundIdentifier(parts) => self.check_table(&ObjectName::from(parts.clone())),
            _ => Ok(()),
        }
    }
}

fn flow(result: Result<(), ValidationError>) -> ControlFlow<ValidationError> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(error) => ControlFlow::Break(error),
    }
}

impl Visitor for Checker<'_> {
    type Break = ValidationError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<ValidationError> {
        if let Err(error) = self.check_settings(&query.settings) {
            return ControlFlow::Break(error);
        }
        if let Some(format) = &query.format_clause {
            let format = match format {
                FormatClause::Identifier(ident) => ident.value.clone(),
                FormatClause::Null => "Null".to_string(),
            };
            return ControlFlow::Break(ValidationError::FormatClause { format });
        }
        let outer = match self.frames.last() {
            None => BTreeSet::new(),
            Some(top) => match top.ctes.iter().position(|(_, q)| std::ptr::eq(*q, query)) {
                // A CTE's own query sees the enclosing scope and the CTEs defined before it, not itself.
                Some(i) => top
                    .outer
                    .iter()
                    .cloned()
                    .chain(top.ctes[..i].iter().map(|(n, _)| n.clone()))
                    .collect(),
                None => top.visible.clone(),
            },
        };
        let ctes: Vec<(String, *const Query)> = query
            .with
            .iter()
            .flat_map(|with| &with.cte_tables)
            .map(|cte| (cte.alias.name.value.clone(), &*cte.query as *const Query))
            .collect();
        let visible = outer
            .iter()
            .cloned()
            .chain(ctes.iter().map(|(n, _)| n.clone()))
            .collect();
        self.frames.push(Frame { visible, outer, ctes });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<ValidationError> {
        self.frames.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<ValidationError> {
        match &select.into {
            Some(into) => {
                let target = into
                    .targets
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                ControlFlow::Break(ValidationError::SelectInto { target })
            }
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<ValidationError> {
        match factor {
            TableFactor::Table { name, args: None, .. } => {
                self.factor_names.push(name);
                flow(self.check_table(name))
            }
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => {
                self.factor_names.push(name);
                flow(
                    self.check_table_function(name)
                        .and_then(|()| self.check_settings(&args.settings)),
                )
            }
            TableFactor::Function { name, .. } => flow(self.check_table_function(name)),
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            TableFactor::TableFunction { .. } => {
                ControlFlow::Break(ValidationError::UnsupportedTableExpression {
                    what: "TABLE(…)".into(),
                })
            }
            other => {
                let printed = other.to_string();
                let what = printed
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .next();
                let what = format!(
                    "FROM item {}",
                    what.filter(|w| !w.is_empty()).unwrap_or("of this kind")
                );
                ControlFlow::Break(ValidationError::UnsupportedTableExpression { what })
            }
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<ValidationError> {
        if self.factor_names.iter().any(|seen| std::ptr::eq(*seen, relation)) {
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(ValidationError::UnsupportedTableExpression {
            what: format!("a table reference outside FROM/JOIN ({relation})"),
        })
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<ValidationError> {
        self.record_comparison(expr);
        match expr {
            Expr::Dictionary(fields) => flow(self.placeholder(fields)),
            Expr::TypedString(typed) if typed.uses_odbc_syntax => {
                let name = match typed.data_type {
                    DataType::Date => "d",
                    DataType::Time(..) => "t",
                    _ => "ts",
                };
                ControlFlow::Break(odbc_name_error(name))
            }
            Expr::Function(function) if function.uses_odbc_syntax => {
                ControlFlow::Break(odbc_name_error("fn"))
            }
            Expr::Function(function) => {
                let name = function
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.to_ascii_lowercase());
                match name {
                    Some(name) if is_denied_scalar_function(&name) => {
                        ControlFlow::Break(ValidationError::FunctionNotAllowed {
                            name: function.name.to_string(),
                        })
                    }
                    _ => ControlFlow::Continue(()),
                }
            }
            Expr::InList { list, .. } if list.len() == 1 => flow(self.check_in_rhs(&list[0])),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<ValidationError> {
        match &value.value {
            Value::Placeholder(text) => {
                ControlFlow::Break(ValidationError::UntypedPlaceholder { text: text.clone() })
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
