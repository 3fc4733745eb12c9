//! Binding the model's parameter values to the placeholders of a [`ValidatedQuery`].
//!
//! The model writes `WHERE tenant_id = {tenant:String}` and returns `"params": {"tenant": "acme"}`.
//! [`check_params`] matches placeholders and values one to one and parses every value as its declared
//! ClickHouse type, so that a value that does not fit is refused before anything runs. A [`BoundParam`]
//! then renders in one of two ways:
//!
//! - as a ClickHouse query parameter ([`BoundParam::query_parameter_value`], [`query_parameters`]) for
//!   servers that have them (HTTP `param_<name>`, native revision ≥ 54459): the SQL is sent unchanged and
//!   the server does the substitution;
//! - as a typed, escaped SQL literal ([`BoundParam::sql_literal`]) for servers without query parameters
//!   (ClickHouse 18.16). [`substitute_literals`] puts the literals in place of the placeholders' byte ranges
//!   found by [`crate::validate`] through the parser (never by searching the text), checks that no literal
//!   merged with its neighbours into other tokens (`-{n:Int8}` with `-5` would otherwise open a `--`
//!   comment), and validates the result again: it must parse, read the same tables and hold no placeholder.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

pub use crate::error::BindError;
use crate::validate::{validate, ParamType, Placeholder, Policy, ValidatedQuery};

/// A value that parsed as its declared type; text forms are already canonical.
#[derive(Debug, Clone, PartialEq)]
pub enum BoundValue {
    /// `NULL` of a `Nullable(T)`.
    Null,
    /// Any of `UInt8` … `Int64`, range-checked.
    Integer(i128),
    /// `Float32` or `Float64`, finite.
    Float(f64),
    /// `Decimal(P, S)` as plain digits, with the declared precision and scale.
    Decimal {
        text: String,
        precision: u8,
        scale: u8,
    },
    String(String),
    /// `YYYY-MM-DD`, a real calendar day within ClickHouse's Date range.
    Date(String),
    /// `YYYY-MM-DD hh:mm:ss` (an ISO `T` separator is accepted and replaced by a space).
    DateTime(String),
    Bool(bool),
    /// Lowercase `8-4-4-4-12` hex.
    Uuid(String),
    Array(Vec<BoundValue>),
}

/// A placeholder with its checked value.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundParam {
    /// Placeholder name.
    pub name: String,
    /// Declared type.
    pub ty: ParamType,
    /// The value, parsed as `ty`.
    pub value: BoundValue,
}

impl BoundParam {
    /// The HTTP interface's parameter name: `param_<name>`.
    pub fn http_name(&self) -> String {
        format!("param_{}", self.name)
    }

    /// The value as ClickHouse reads a query parameter's text.
    ///
    /// ClickHouse parses a parameter's value with the declared type's *Escaped* (TabSeparated) text
    /// deserialization: `ReplaceQueryParameterVisitor::visitQueryParameter` in
    /// `src/Interpreters/ReplaceQueryParameterVisitor.cpp` calls `deserializeTextEscaped` and requires the
    /// whole value to be consumed. So a String is sent without quotes with `\`, tab, newline, CR, NUL,
    /// backspace and form feed backslash-escaped; NULL is `\N`; an Array is `[…]` whose elements are in
    /// *quoted* form (`['a\'b','c']`, `NULL` for a null element); Date, DateTime, UUID, numbers and Bool
    /// (`true`/`false`) are their plain text. The same text goes into `param_<name>` on HTTP (URL-encoded
    /// by the HTTP layer) and into the native protocol's parameters.
    pub fn query_parameter_value(&self) -> String {
        escaped_text(&self.value)
    }

    /// The value as a typed ClickHouse literal, for servers without query parameters: strings quoted with
    /// `\` and `'` (and control characters) escaped, numbers as validated digits (negative ones in
    /// parentheses), `toDate('…')`, `toDateTime('…')`, `toUUID('…')`, `CAST('…' AS Decimal(P, S))`, Bool as
    /// `1`/`0` (18.16 has no Bool type; modern servers compare Bool with 1/0), `[…]`, `NULL`.
    pub fn sql_literal(&self) -> String {
        let literal = sql_literal(&self.value);
        if literal.starts_with('-') {
            format!("({literal})")
        } else {
            literal
        }
    }
}

/// `(param_<name>, value)` pairs for the HTTP interface, in placeholder order.
pub fn query_parameters(bound: &[BoundParam]) -> Vec<(String, String)> {
    bound
        .iter()
        .map(|p| (p.http_name(), p.query_parameter_value()))
        .collect()
}

/// Matches placeholders and values one to one and parses each value as its declared type.
///
/// Missing values are an error naming all of them. Values for names the SQL does not use are dropped: they
/// cannot change what runs, and small models often echo the prompt's example parameters (DESIGN.md, ASK).
pub fn check_params(
    placeholders: &[Placeholder],
    params: &Map<String, Value>,
) -> Result<Vec<BoundParam>, BindError> {
    let missing: Vec<String> = placeholders
        .iter()
        .filter(|p| !params.contains_key(&p.name))
        .map(|p| p.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(BindError::MissingParams { names: missing });
    }
    placeholders
        .iter()
        .map(|placeholder| {
            let value = &params[&placeholder.name];
            if contains_other(&placeholder.ty) {
                return Err(BindError::UnsupportedType {
                    name: placeholder.name.clone(),
                    ty: placeholder.ty.to_string(),
                });
            }
            let bound = parse_value(&placeholder.ty, value).map_err(|reason| BindError::InvalidValue {
                name: placeholder.name.clone(),
                ty: placeholder.ty.to_string(),
                value: shorten(&value.to_string()),
                reason,
            })?;
            Ok(BoundParam {
                name: placeholder.name.clone(),
                ty: placeholder.ty.clone(),
                value: bound,
            })
        })
        .collect()
}

/// The query with each placeholder's byte range replaced by its value's [`BoundParam::sql_literal`], for
/// servers without query parameters; re-validated with `policy` (see the module documentation).
pub fn substitute_literals(
    query: &ValidatedQuery,
    bound: &[BoundParam],
    policy: &Policy,
) -> Result<String, BindError> {
    let by_name: BTreeMap<&str, &BoundParam> = bound.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut out = String::with_capacity(query.sql.len());
    let mut expected_tokens = Vec::new();
    let mut cursor = 0;
    for site in &query.sites {
        let Some(param) = by_name.get(site.name.as_str()) else {
            return Err(BindError::MissingParams {
                names: vec![site.name.clone()],
            });
        };
        let literal = param.sql_literal();
        let piece = &query.sql[cursor..site.range.start];
        expected_tokens.extend(significant_tokens(piece)?);
        expected_tokens.extend(significant_tokens(&literal)?);
        out.push_str(piece);
        out.push_str(&literal);
        cursor = site.range.end;
    }
    let rest = &query.sql[cursor..];
    expected_tokens.extend(significant_tokens(rest)?);
    out.push_str(rest);

    if significant_tokens(&out)? != expected_tokens {
        return Err(BindError::RewriteChangedQuery {
            reason: "a literal merged with the SQL around it into different tokens".into(),
        });
    }
    let again = validate(&out, policy)?;
    if let Some(left) = again.placeholders.first() {
        return Err(BindError::RewriteChangedQuery {
            reason: format!("placeholder {} is still there", left.name),
        });
    }
    if again.tables != query.tables {
        return Err(BindError::RewriteChangedQuery {
            reason: "it reads different tables".into(),
        });
    }
    Ok(out)
}

/// Tokens other than whitespace and comments.
fn significant_tokens(sql: &str) -> Result<Vec<Token>, BindError> {
    let tokens = Tokenizer::new(&ClickHouseDialect {}, sql)
        .tokenize()
        .map_err(|e| BindError::RewriteChangedQuery {
            reason: format!("a piece does not tokenize: {e}"),
        })?;
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect())
}

fn contains_other(ty: &ParamType) -> bool {
    match ty {
        ParamType::Other(_) => true,
        ParamType::Nullable(t) | ParamType::Array(t) | ParamType::LowCardinality(t) => contains_other(t),
        _ => false,
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// A JSON scalar's text for numeric and string parsing (`5`, `"5"`).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

fn integer_range(ty: &ParamType) -> Option<(i128, i128)> {
    Some(match ty {
        ParamType::UInt8 => (0, u8::MAX.into()),
        ParamType::UInt16 => (0, u16::MAX.into()),
        ParamType::UInt32 => (0, u32::MAX.into()),
        ParamType::UInt64 => (0, u64::MAX.into()),
        ParamType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        ParamType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        ParamType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        ParamType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// Parses `value` as `ty`; the error is the reason, completing "its value X …".
fn parse_value(ty: &ParamType, value: &Value) -> Result<BoundValue, String> {
    if value.is_null() {
        return match ty {
            ParamType::Nullable(_) => Ok(BoundValue::Null),
            _ => Err(format!("is null; declare the type Nullable({ty}) to allow NULL")),
        };
    }
    if let Some((min, max)) = integer_range(ty) {
        let text = scalar_text(value).ok_or("is not a number")?;
        let n: i128 = text.parse().map_err(|_| "is not an integer".to_string())?;
        if n < min || n > max {
            return Err(format!("is out of range ({min} to {max})"));
        }
        return Ok(BoundValue::Integer(n));
    }
    match ty {
        ParamType::Float32 | ParamType::Float64 => {
            let text = scalar_text(value).ok_or("is not a number")?;
            let x: f64 = text.parse().map_err(|_| "is not a number".to_string())?;
            if !x.is_finite() {
                return Err("is not a finite number".into());
            }
            if *ty == ParamType::Float32 && x.abs() > f64::from(f32::MAX) {
                return Err("is out of Float32's range".into());
            }
            Ok(BoundValue::Float(x))
        }
        ParamType::Decimal { precision, scale } => {
            let text = scalar_text(value).ok_or("is not a number")?;
            let text = parse_decimal(&text, *precision, *scale)?;
            Ok(BoundValue::Decimal {
                text,
                precision: *precision,
                scale: *scale,
            })
        }
        ParamType::String => match value {
            Value::String(s) => Ok(BoundValue::String(s.clone())),
            Value::Number(n) => Ok(BoundValue::String(n.to_string())),
            _ => Err("is not a string".into()),
        },
        ParamType::Date => {
            let Value::String(s) = value else {
                return Err("is not a string YYYY-MM-DD".into());
            };
            let date = s.trim();
            check_date(date)?;
            if !("1970-01-01"..="2149-06-06").contains(&date) {
                return Err("is outside Date's range 1970-01-01 to 2149-06-06".into());
            }
            Ok(BoundValue::Date(date.to_string()))
        }
        ParamType::DateTime => {
            let Value::String(s) = value else {
                return Err("is not a string YYYY-MM-DD hh:mm:ss".into());
            };
            let text = s.trim();
            let shape = "is not of the form YYYY-MM-DD hh:mm:ss";
            if text.len() != 19 || !text.is_char_boundary(10) || !matches!(&text[10..11], " " | "T") {
                return Err(shape.into());
            }
            check_date(&text[..10])?;
            let time: Vec<&str> = text[11..].split(':').collect();
            let limits = [24, 60, 60];
            let ok = time.len() == 3
                && time.iter().zip(limits).all(|(part, limit)| {
                    part.len() == 2
                        && part.bytes().all(|b| b.is_ascii_digit())
                        && part.parse::<u32>().is_ok_and(|v| v < limit)
                });
            if !ok {
                return Err(shape.into());
            }
            let canonical = format!("{} {}", &text[..10], &text[11..]);
            if !("1970-01-01 00:00:00"..="2106-02-07 06:28:15").contains(&canonical.as_str()) {
                return Err("is outside DateTime's range 1970-01-01 00:00:00 to 2106-02-07 06:28:15".into());
            }
            Ok(BoundValue::DateTime(canonical))
        }
        ParamType::Bool => match value {
            Value::Bool(b) => Ok(BoundValue::Bool(*b)),
            Value::Number(n) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                Ok(BoundValue::Bool(n.as_u64() == Some(1)))
            }
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(BoundValue::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(BoundValue::Bool(false)),
            _ => Err("is not true or false".into()),
        },
        ParamType::Uuid => {
            let Value::String(s) = value else {
                return Err("is not a UUID string".into());
            };
            let s = s.trim();
            let ok = s.len() == 36
                && s.char_indices().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                });
            if !ok {
                return Err("is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)".into());
            }
            Ok(BoundValue::Uuid(s.to_ascii_lowercase()))
        }
        ParamType::Nullable(inner) | ParamType::LowCardinality(inner) => parse_value(inner, value),
        ParamType::Array(inner) => {
            let Value::Array(items) = value else {
                return Err("is not a JSON array".into());
            };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    parse_value(inner, item).map_err(|reason| format!("has element {i} that {reason}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(BoundValue::Array)
        }
        ParamType::Other(_) => Err("has a type Aurora cannot bind".into()),
        _ => unreachable!("integer types are handled above"),
    }
}

/// `YYYY-MM-DD`, a real calendar day.
fn check_date(text: &str) -> Result<(), String> {
    let bad = || "is not a date YYYY-MM-DD".to_string();
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return Err(bad());
    }
    let (y, m, d): (u32, u32, u32) = (y.parse().unwrap(), m.parse().unwrap(), d.parse().unwrap());
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("has month {m}, not 01 to 12")),
    };
    if d == 0 || d > days {
        return Err(format!("has day {d}, not a day of that month"));
    }
    Ok(())
}

/// Plain decimal digits that fit `Decimal(precision, scale)`; returns the canonical text.
fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<String, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !plain(int) || !plain(frac) || (digits.contains('.') && frac.is_empty()) {
        return Err("is not a decimal number written as plain digits (e.g. \"1234.50\")".into());
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if frac.len() > usize::from(scale) {
        return Err(format!("has more than {scale} digits after the point"));
    }
    if int.len() > usize::from(precision - scale) {
        return Err(format!(
            "has more than {} digits before the point",
            precision - scale
        ));
    }
    let int = if int.is_empty() { "0" } else { int };
    let sign = if negative && (int != "0" || !frac.is_empty()) {
        "-"
    } else {
        ""
    };
    Ok(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

fn float_text(x: f64) -> String {
    // Debug prints the shortest text that reads back to the same f64 (`0.1`, `1e300`, `5.0`).
    format!("{x:?}")
}

/// Backslash escapes shared by ClickHouse's Escaped and Quoted text forms and its string literals.
fn push_escaped(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' if quote => out.push_str("\\'"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
}

/// A ClickHouse string literal: single quotes, with backslashes, quotes and control characters escaped.
pub fn quoted_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    push_escaped(&mut out, s, true);
    out.push('\'');
    out
}

fn number_or_bool_text(value: &BoundValue) -> Option<String> {
    match value {
        BoundValue::Integer(n) => Some(n.to_string()),
        BoundValue::Float(x) => Some(float_text(*x)),
        BoundValue::Decimal { text, .. } => Some(text.clone()),
        BoundValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Escaped (TabSeparated) text of a top-level value.
fn escaped_text(value: &BoundValue) -> String {
    match value {
        BoundValue::Null => "\\N".into(),
        BoundValue::String(s) => {
            let mut out = String::with_capacity(s.len());
            push_escaped(&mut out, s, false);
            out
        }
        BoundValue::Date(s) | BoundValue::DateTime(s) | BoundValue::Uuid(s) => s.clone(),
        BoundValue::Array(_) => quoted_text(value),
        other => number_or_bool_text(other).unwrap_or_default(),
    }
}

/// Quoted text, as elements of an Array are written.
fn quoted_text(value: &BoundValue) -> String {
    match value {
        BoundValue::Null => "NULL".into(),
        BoundValue::String(s) | BoundValue::Date(s) | BoundValue::DateTime(s) | BoundValue::Uuid(s) => {
            quoted_string(s)
        }
        BoundValue::Array(items) => format!(
            "[{}]",
            items.iter().map(quoted_text).collect::<Vec<_>>().join(",")
        ),
        other => number_or_bool_text(other).unwrap_or_default(),
    }
}

fn sql_literal(value: &BoundValue) -> String {
    match value {
        BoundValue::Null => "NULL".into(),
        BoundValue::Integer(n) => n.to_string(),
        BoundValue::Float(x) => float_text(*x),
        BoundValue::Decimal {
            text,
            precision,
            scale,
        } => {
            format!("CAST('{text}' AS Decimal({precision}, {scale}))")
        }
        BoundValue::String(s) => quoted_string(s),
        BoundValue::Date(s) => format!("toDate({})", quoted_string(s)),
        BoundValue::DateTime(s) => format!("toDateTime({})", quoted_string(s)),
        BoundValue::Bool(b) => if *b { "1" } else { "0" }.into(),
        BoundValue::Uuid(s) => format!("toUUID({})", quoted_string(s)),
        BoundValue::Array(items) => format!(
            "[{}]",
            items.iter().map(sql_literal).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
#[path = "bind_tests.rs"]
mod tests;
