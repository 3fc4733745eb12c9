//! Lifting the literals of a validated query into typed query parameters.
//!
//! The model writes the ordinary ClickHouse SQL it is good at (`WHERE tenant_id = 'acme' AND timestamp >=
//! '2026-10-01'`); [`lift`] turns every literal that [`crate::validate`] found compared with a column into a
//! placeholder typed from that column (`tenant_id = {tenant_id:String} AND timestamp >= {timestamp:DateTime}`),
//! with the literal's value as the parameter. So what runs is parameterized whatever the model did, and the
//! values are checked as their types by [`crate::bind`] before anything runs. Placeholders the model wrote
//! without a type are typed the same way.
//!
//! What stays a literal: values that are not compared with anything (`round(x, 2)`, `INTERVAL 30 DAY`,
//! `LIMIT 10`, `toStartOfInterval(t, INTERVAL 5 MINUTE)`) — they shape the query rather than select data —
//! and literals compared with literals. Nothing here decides what is safe: the lifted SQL is validated again
//! with the same policy.
//!
//! Types: a string compared with a `Date` column (or `toDate(…)`, `toMonday(…)`, …) that reads as a day
//! becomes `Date`; with a `DateTime` column (or `toStartOfHour(…)`, …) that reads as a day or a time,
//! `DateTime`; any other string, and every `LIKE` pattern, `String`. A number compared with an integer column
//! or function (`toYYYYMM(…)`) becomes `Int64` (`UInt64` beyond it), any other number `Float64`. Each keeps
//! the literal's meaning: ClickHouse compares these exactly as it compares the literal.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Number, Value};

use crate::catalog::Catalog;
use crate::validate::{Comparand, Literal, ParamType, ValidatedQuery};

/// The query with its literals lifted.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifted {
    /// The SQL with `{name:Type}` in place of each lifted literal (and typed former untyped placeholders).
    pub sql: String,
    /// The model's own parameter values and one per lifted literal.
    pub params: Map<String, Value>,
    /// How many literals became parameters.
    pub lifted: usize,
}

/// Lifts the literals of `query` (see the module documentation). `params` are the model's own values.
pub fn lift(query: &ValidatedQuery, catalog: &Catalog, params: &Map<String, Value>) -> Lifted {
    let types = ColumnTypes::new(query, catalog);
    let mut taken: BTreeSet<String> = query.placeholders.iter().map(|p| p.name.clone()).collect();
    taken.extend(params.keys().cloned());
    let mut params = params.clone();
    // (range, replacement), in text order; literal and placeholder ranges never overlap.
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut by_value: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for site in &query.literals {
        let column_type = types.of(&site.comparand);
        let Some((ty, value)) = typed_value(&site.value, &site.comparand, column_type.as_deref()) else {
            continue;
        };
        let base = base_name(&site.comparand);
        let key = (base.clone(), ty.to_string(), value.to_string());
        let name = match by_value.get(&key) {
            Some(name) => name.clone(),
            None => {
                let name = unique_name(&base, &taken);
                taken.insert(name.clone());
                by_value.insert(key, name.clone());
                params.insert(name.clone(), value);
                name
            }
        };
        edits.push((site.range.clone(), format!("{{{name}:{ty}}}")));
    }
    let lifted = edits.len();
    for site in &query.sites {
        if !query.untyped.contains(&site.name) {
            continue;
        }
        let comparand = query.placeholder_comparands.get(&site.range.start);
        let column_type = comparand.and_then(|c| types.of(c));
        let ty = match (params.get(&site.name), comparand) {
            (Some(Value::String(s)), Some(c)) => {
                typed_value(&Literal::String(s.clone()), c, column_type.as_deref())
            }
            (Some(Value::Number(n)), Some(c)) => {
                typed_value(&Literal::Number(n.to_string()), c, column_type.as_deref())
            }
            (Some(Value::Number(n)), None) => Some((number_type(&n.to_string(), true), Value::Null)),
            (Some(Value::Bool(_)), _) => Some((ParamType::Bool, Value::Null)),
            _ => None,
        }
        .map_or(ParamType::String, |(ty, _)| ty);
        edits.push((site.range.clone(), format!("{{{}:{ty}}}", site.name)));
    }
    edits.sort_by_key(|(range, _)| range.start);
    let mut sql = String::with_capacity(query.sql.len() + 16 * edits.len());
    let mut cursor = 0;
    for (range, text) in edits {
        sql.push_str(&query.sql[cursor..range.start]);
        sql.push_str(&text);
        cursor = range.end;
    }
    sql.push_str(&query.sql[cursor..]);
    Lifted { sql, params, lifted }
}

/// Column types of the tables a query reads, by column name.
struct ColumnTypes<'a> {
    /// (table, column, type) of every column of the read tables.
    columns: Vec<(&'a str, &'a str, &'a str)>,
}

impl<'a> ColumnTypes<'a> {
    fn new(query: &ValidatedQuery, catalog: &'a Catalog) -> Self {
        let columns = query
            .tables
            .iter()
            .filter_map(|name| catalog.table(name))
            .flat_map(|table| {
                table
                    .columns
                    .iter()
                    .map(|c| (table.name.table.as_str(), c.name.as_str(), c.ty.as_str()))
            })
            .collect();
        Self { columns }
    }

    /// The type of the compared column: the qualified table's when the qualifier names one, else the first
    /// read table that has the column (aliases are not resolved; a wrong guess only means a less precise type).
    fn of(&self, comparand: &Comparand) -> Option<String> {
        let column = comparand.column.as_deref()?;
        let matching = |t: &&(&str, &str, &str)| t.1 == column;
        self.columns
            .iter()
            .filter(matching)
            .find(|(table, _, _)| comparand.qualifier.as_deref() == Some(*table))
            .or_else(|| self.columns.iter().find(matching))
            .map(|(_, _, ty)| unwrap_type(ty).to_string())
    }
}

/// `Nullable(T)` and `LowCardinality(T)` → `T`.
fn unwrap_type(ty: &str) -> &str {
    for wrapper in ["Nullable(", "LowCardinality("] {
        if let Some(inner) = ty.strip_prefix(wrapper).and_then(|t| t.strip_suffix(')')) {
            return unwrap_type(inner);
        }
    }
    ty
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Date,
    DateTime,
    Integer,
    Float,
    Other,
}

/// What a comparison with `comparand` (of column type `column_type`) compares values as.
fn kind_of(comparand: &Comparand, column_type: Option<&str>) -> Kind {
    match comparand.function.as_deref() {
        Some(
            "todate" | "tostartofmonth" | "tostartofquarter" | "tostartofyear" | "tostartofweek" | "tomonday",
        ) => return Kind::Date,
        Some("todatetime" | "tostartofday" | "tostartofhour" | "tostartofminute") => return Kind::DateTime,
        Some("toyyyymm" | "toyyyymmdd" | "toyear" | "tomonth") => return Kind::Integer,
        Some(_) => return Kind::Other,
        None => {}
    }
    match column_type {
        Some("Date" | "Date32") => Kind::Date,
        // `DateTime('UTC')` reads a compared string in its own time zone, a DateTime parameter would be read
        // in the server's: such strings stay strings.
        Some("DateTime") => Kind::DateTime,
        Some(ty) if ty.starts_with("UInt") || ty.starts_with("Int") => Kind::Integer,
        Some("Float32" | "Float64") => Kind::Float,
        _ => Kind::Other,
    }
}

/// The parameter type and JSON value of a literal compared with `comparand`.
///
/// `None` for a number that no parameter type carries exactly (`0x1F`): it stays a literal.
fn typed_value(
    literal: &Literal,
    comparand: &Comparand,
    column_type: Option<&str>,
) -> Option<(ParamType, Value)> {
    let kind = kind_of(comparand, column_type);
    Some(match literal {
        Literal::String(text) if !comparand.pattern => {
            let day = is_day(text);
            match kind {
                Kind::Date if day => (ParamType::Date, Value::String(text.clone())),
                Kind::DateTime if day => (ParamType::DateTime, Value::String(format!("{text} 00:00:00"))),
                Kind::DateTime if is_time(text) => {
                    (ParamType::DateTime, Value::String(text.replacen('T', " ", 1)))
                }
                // `toYYYYMM(t) = '202611'`: ClickHouse reads the quoted number as the number it is compared
                // with; a String parameter there would be refused (code 43).
                Kind::Integer if text.parse::<i64>().is_ok() => {
                    (ParamType::Int64, Value::Number(text.parse::<i64>().ok()?.into()))
                }
                _ => (ParamType::String, Value::String(text.clone())),
            }
        }
        Literal::String(text) => (ParamType::String, Value::String(text.clone())),
        Literal::Number(text) => {
            let ty = number_type(text, kind != Kind::Float);
            let value = match ty {
                ParamType::Int64 => text.parse::<i64>().map(Number::from).ok(),
                ParamType::UInt64 => text.parse::<u64>().map(Number::from).ok(),
                _ => text
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(Number::from_f64),
            }?;
            (ty, Value::Number(value))
        }
    })
}

/// `Int64` for integers (`UInt64` beyond its range) when integers are expected or allowed, else `Float64`.
fn number_type(text: &str, integers: bool) -> ParamType {
    let integral = !text.contains(['.', 'e', 'E', 'x', 'X']);
    if integers && integral {
        if text.parse::<i64>().is_ok() {
            return ParamType::Int64;
        }
        if text.parse::<u64>().is_ok() {
            return ParamType::UInt64;
        }
    }
    ParamType::Float64
}

/// `YYYY-MM-DD`.
fn is_day(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// `YYYY-MM-DD hh:mm:ss` (or with `T`).
fn is_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 19
        && is_day(&text[..10])
        && (b[10] == b' ' || b[10] == b'T')
        && b[11..].iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// The compared column's name as a placeholder name, or `value`.
fn base_name(comparand: &Comparand) -> String {
    let name: String = comparand
        .column
        .as_deref()
        .unwrap_or("value")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    match name.chars().next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => name,
        _ => format!("v_{name}"),
    }
}

fn unique_name(base: &str, taken: &BTreeSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !taken.contains(n))
        .expect("an unused name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};
    use crate::validate::{validate, TableName};

    fn catalog() -> Catalog {
        let column = |name: &str, ty: &str| Column {
            name: name.into(),
            ty: ty.into(),
            comment: String::new(),
        };
        Catalog::new(
            vec![
                Table {
                    name: TableName::new("analytics", "events"),
                    engine: "MergeTree".into(),
                    columns: vec![
                        column("tenant_id", "LowCardinality(String)"),
                        column("timestamp", "DateTime"),
                        column("revenue", "Float64"),
                        column("schema_version", "UInt8"),
                        column("day", "Nullable(Date)"),
                    ],
                },
                Table {
                    name: TableName::new("analytics", "tenants"),
                    engine: "MergeTree".into(),
                    columns: vec![column("tenant_id", "String"), column("plan", "String")],
                },
            ],
            "24.8.1".into(),
            0,
        )
    }

    fn lifted(sql: &str, params: Map<String, Value>) -> Lifted {
        let catalog = catalog();
        let policy = catalog.policy("analytics", false);
        let validated = validate(sql, &policy).unwrap();
        let lifted = lift(&validated, &catalog, &params);
        // The lifted form validates with the same policy and holds no literal left to lift.
        let again = validate(&lifted.sql, &policy).unwrap();
        assert!(again.literals.is_empty(), "{}", lifted.sql);
        assert!(again.untyped.is_empty());
        lifted
    }

    #[test]
    fn compared_literals_become_parameters_typed_from_their_columns() {
        let l = lifted(
            "SELECT count() FROM analytics.events WHERE tenant_id = 'acme' AND timestamp >= '2026-10-01' \
             AND timestamp < '2026-11-01 00:00:00' AND schema_version = 3 AND revenue > 10.5 AND -2 < revenue \
             AND day = '2026-10-02'",
            Map::new(),
        );
        assert_eq!(
            l.sql,
            "SELECT count() FROM analytics.events WHERE tenant_id = {tenant_id:String} AND timestamp >= \
             {timestamp:DateTime} AND timestamp < {timestamp_2:DateTime} AND schema_version = \
             {schema_version:Int64} AND revenue > {revenue:Float64} AND {revenue_2:Float64} < revenue AND day = \
             {day:Date}"
        );
        assert_eq!(l.lifted, 7);
        assert_eq!(l.params["timestamp"], "2026-10-01 00:00:00");
        assert_eq!(l.params["timestamp_2"], "2026-11-01 00:00:00");
        assert_eq!(l.params["schema_version"], 3);
        assert_eq!(l.params["revenue"], 10.5);
        assert_eq!(l.params["revenue_2"], -2.0);
        assert_eq!(l.params["day"], "2026-10-02");
    }

    #[test]
    fn functions_of_columns_lists_ranges_and_patterns() {
        let l = lifted(
            "SELECT e.tenant_id FROM analytics.events AS e JOIN analytics.tenants AS t ON e.tenant_id = t.tenant_id \
             WHERE toDate(e.timestamp) BETWEEN '2026-10-01' AND '2026-10-07' AND t.plan IN ('pro', 'enterprise') \
             AND toYYYYMM(timestamp) = 202610 AND t.tenant_id LIKE 'ac%' AND countIf(tenant_id = 'acme') > 0 \
             GROUP BY e.tenant_id HAVING sum(revenue) > 100 ORDER BY 1 LIMIT 5",
            Map::new(),
        );
        assert!(
            l.sql.contains("BETWEEN {timestamp:Date} AND {timestamp_2:Date}"),
            "{}",
            l.sql
        );
        assert!(l.sql.contains("t.plan IN ({plan:String}, {plan_2:String})"));
        assert!(l.sql.contains("toYYYYMM(timestamp) = {timestamp_3:Int64}"));
        assert!(l.sql.contains("LIKE {tenant_id:String}"));
        assert!(l.sql.contains("countIf(tenant_id = {tenant_id_2:String})"));
        // Compared with an aggregate: lifted, named `value`; not compared at all: kept.
        assert!(l
            .sql
            .contains("countIf(tenant_id = {tenant_id_2:String}) > {value:Int64}"));
        assert!(l.sql.contains("HAVING sum(revenue) > {value_2:Int64}"));
        assert!(l.sql.ends_with("ORDER BY 1 LIMIT 5"));
        assert_eq!(l.params["tenant_id"], "ac%");
    }

    #[test]
    fn one_value_compared_twice_is_one_parameter() {
        let l = lifted(
            "SELECT count() FROM analytics.events WHERE tenant_id = 'acme' OR tenant_id = 'acme'",
            Map::new(),
        );
        assert_eq!(l.params.len(), 1);
        assert_eq!(l.sql.matches("{tenant_id:String}").count(), 2);
    }

    #[test]
    fn names_never_collide_with_the_models_placeholders() {
        let mut params = Map::new();
        params.insert("tenant_id".into(), "globex".into());
        let l = lifted(
            "SELECT count() FROM analytics.events WHERE tenant_id = {tenant_id:String} OR tenant_id = 'acme'",
            params,
        );
        assert!(l
            .sql
            .ends_with("tenant_id = {tenant_id:String} OR tenant_id = {tenant_id_2:String}"));
        assert_eq!(l.params["tenant_id"], "globex");
        assert_eq!(l.params["tenant_id_2"], "acme");
    }

    #[test]
    fn untyped_placeholders_take_the_type_of_their_column() {
        let mut params = Map::new();
        params.insert("tenant".into(), "acme".into());
        params.insert("from".into(), "2026-10-01".into());
        params.insert("n".into(), 3.into());
        let l = lifted(
            "SELECT count() FROM analytics.events WHERE tenant_id = {tenant} AND timestamp >= {from} \
             AND schema_version = {n}",
            params,
        );
        assert_eq!(
            l.sql,
            "SELECT count() FROM analytics.events WHERE tenant_id = {tenant:String} AND timestamp >= \
             {from:DateTime} AND schema_version = {n:Int64}"
        );
    }

    #[test]
    fn a_quoted_number_compared_with_an_integer_becomes_an_integer() {
        let out = lifted(
            "SELECT count() FROM analytics.events WHERE toYYYYMM(timestamp) = '202611'",
            Map::new(),
        );
        assert_eq!(
            out.sql,
            "SELECT count() FROM analytics.events WHERE toYYYYMM(timestamp) = {timestamp:Int64}"
        );
        assert_eq!(out.params["timestamp"], serde_json::json!(202611));
    }

    #[test]
    fn a_string_that_is_no_date_stays_a_string() {
        let l = lifted(
            "SELECT count() FROM analytics.events WHERE timestamp > 'yesterday'",
            Map::new(),
        );
        assert!(l.sql.ends_with("timestamp > {timestamp:String}"));
    }
}
