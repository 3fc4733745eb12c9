//! Validation of LLM-generated SQL: the gate between what a model wrote and what reaches ClickHouse.
//!
//! [`validate`] parses the text with sqlparser's `ClickHouseDialect` and walks the syntax tree with a
//! [`Visitor`](sqlparser::ast::Visitor) (early exit through `ControlFlow`). It accepts exactly one query —
//! `SELECT`, `WITH … SELECT` or set operations of them — over tables of the asking user's [`Policy`], and
//! refuses everything else with a distinct [`ValidationError`]. No check here searches the SQL text; the
//! tokenizer is used only to find the braces of placeholders and to name `INTO OUTFILE`, both explained below.
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
//!
//! The parts: `policy` (what a query may touch), `param_type` (a placeholder's declared type), `validated`
//! (what a query that passed hands on), `placeholders` (ClickHouse placeholders made readable for sqlparser),
//! `source` (tokens and byte offsets) and `checker` (the visitor that applies the policy).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{Statement, Visit};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

mod checker;
mod param_type;
pub(crate) mod placeholders;
mod policy;
pub(crate) mod source;
mod validated;

pub use crate::error::ValidationError;
pub use param_type::ParamType;
pub use policy::{Policy, TableName};
pub use validated::{Comparand, Literal, LiteralSite, Placeholder, PlaceholderSite, ValidatedQuery};

use checker::Checker;
use placeholders::prepare_placeholders;
use source::Source;

/// Checks generated SQL against `policy`; see the module documentation for what is refused.
pub fn validate(sql: &str, policy: &Policy) -> Result<ValidatedQuery, ValidationError> {
    let prepared = prepare_placeholders(sql);
    let shown = prepared.shown.as_str();
    // ClickHouse's `ANY LEFT JOIN` & co., which sqlparser does not read, blanked at the same offsets.
    let blanked = source::blank_join_strictness(&prepared.parsed);
    let sql = blanked.as_str();
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
    let rename = |name: &String| {
        prepared
            .renamed
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.clone())
    };
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

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
