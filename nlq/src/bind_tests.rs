//! Tests of `bind.rs`.

use serde_json::json;
use sqlparser::ast::{visit_expressions, Expr, Value as SqlValue};
use sqlparser::parser::Parser;

use super::*;

fn policy() -> Policy {
    Policy::new("analytics")
        .allow_table("analytics", "events")
        .allow_table("analytics", "purchases")
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

/// Validates, binds and substitutes; returns the bound params and the rewritten SQL.
fn bind(sql: &str, values: Value) -> Result<(Vec<BoundParam>, String), BindError> {
    let validated = validate(sql, &policy())?;
    let bound = check_params(&validated.placeholders, &params(values))?;
    let rewritten = substitute_literals(&validated, &bound, &policy())?;
    Ok((bound, rewritten))
}

fn one(ty: &str, value: Value) -> Result<BoundParam, BindError> {
    let validated = validate(&format!("SELECT {{v:{ty}}} FROM events"), &policy()).unwrap();
    check_params(&validated.placeholders, &params(json!({ "v": value }))).map(|mut b| b.remove(0))
}

fn invalid(ty: &str, value: Value) -> String {
    match one(ty, value.clone()) {
        Err(e @ BindError::InvalidValue { .. }) => e.to_string(),
        other => panic!("{ty} {value}: {other:?}"),
    }
}

/// The string literals of a parsed query, unescaped by sqlparser.
fn string_literals(sql: &str) -> Vec<String> {
    let statements = Parser::parse_sql(&ClickHouseDialect {}, sql).unwrap();
    let mut found = Vec::new();
    let _ = visit_expressions(&statements, |e| {
        if let Expr::Value(v) = e {
            if let SqlValue::SingleQuotedString(s) = &v.value {
                found.push(s.clone());
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// Checks `sql` with ClickHouse's own parser (`clickhouse-format` of 18.16) when it is installed.
fn clickhouse_parses(sql: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("clickhouse-format")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return;
    };
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ClickHouse's parser rejects {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_string_param_in_where_round_trips() {
    let sql = "SELECT event_type, count() AS n FROM events WHERE tenant_id = {tenant:String} \
               GROUP BY event_type ORDER BY n DESC LIMIT 10";
    let (bound, rewritten) = bind(sql, json!({"tenant": "acme"})).unwrap();
    assert_eq!(
        query_parameters(&bound),
        [("param_tenant".to_string(), "acme".to_string())]
    );
    assert_eq!(
        rewritten,
        "SELECT event_type, count() AS n FROM events WHERE tenant_id = 'acme' \
         GROUP BY event_type ORDER BY n DESC LIMIT 10"
    );
    clickhouse_parses(&rewritten);
}

#[test]
fn an_injection_attempt_stays_one_harmless_string_literal() {
    let evil = "x' OR 1=1 --";
    let sql = "SELECT * FROM events WHERE tenant_id = {tenant:String} AND event_type = 'click'";
    let (bound, rewritten) = bind(sql, json!({ "tenant": evil })).unwrap();
    assert_eq!(bound[0].sql_literal(), r"'x\' OR 1=1 --'");
    assert_eq!(bound[0].query_parameter_value(), evil);
    // Parsed again, the value is exactly one string literal and the rest of the query is intact.
    assert_eq!(string_literals(&rewritten), [evil, "click"]);
    clickhouse_parses(&rewritten);
    let tricky = "a\\' OR '1'='1\\";
    let (_, rewritten) = bind(sql, json!({ "tenant": tricky })).unwrap();
    assert_eq!(string_literals(&rewritten), [tricky, "click"]);
    clickhouse_parses(&rewritten);
}

#[test]
fn control_characters_are_escaped_in_both_renderings() {
    let b = one("String", json!("a\tb\nc\\d'e\0")).unwrap();
    assert_eq!(b.query_parameter_value(), r"a\tb\nc\\d'e\0");
    assert_eq!(b.sql_literal(), r"'a\tb\nc\\d\'e\0'");
}

#[test]
fn arrays_bind_for_in() {
    let sql = "SELECT user_id FROM events WHERE event_type IN {types:Array(String)} AND user_id IN {ids:Array(UInt64)}";
    let (bound, rewritten) = bind(sql, json!({"types": ["click", "it's"], "ids": [1, 2, 3]})).unwrap();
    assert_eq!(bound[0].query_parameter_value(), r"['click','it\'s']");
    assert_eq!(bound[1].query_parameter_value(), "[1,2,3]");
    assert_eq!(
        rewritten,
        r"SELECT user_id FROM events WHERE event_type IN ['click', 'it\'s'] AND user_id IN [1, 2, 3]"
    );
    clickhouse_parses(&rewritten);
    let b = one("Array(Nullable(String))", json!(["a", null])).unwrap();
    assert_eq!(b.query_parameter_value(), "['a',NULL]");
    assert_eq!(b.sql_literal(), "['a', NULL]");
    assert!(invalid("Array(UInt8)", json!([1, 300])).contains("element 1"));
    assert!(invalid("Array(UInt8)", json!("1,2")).contains("not a JSON array"));
}

#[test]
fn missing_params_are_named_and_unused_ones_dropped() {
    let sql = "SELECT * FROM events WHERE tenant_id = {tenant:String} AND user_id = {user:UInt64}";
    let e = bind(sql, json!({"tenant": "acme"})).unwrap_err();
    assert_eq!(
        e,
        BindError::MissingParams {
            names: vec!["user".into()]
        }
    );
    assert_eq!(e.to_string(), "no value given for placeholder(s): user");
    let (bound, _) = bind(sql, json!({"tenant": "acme", "user": 1, "zeta": 2, "alpha": 3})).unwrap();
    let names: Vec<&str> = bound.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["tenant", "user"]);
}

#[test]
fn integers_are_range_checked() {
    assert_eq!(one("UInt8", json!(255)).unwrap().sql_literal(), "255");
    assert_eq!(
        one("UInt64", json!(u64::MAX)).unwrap().query_parameter_value(),
        u64::MAX.to_string()
    );
    assert_eq!(
        one("Int64", json!(i64::MIN)).unwrap().value,
        BoundValue::Integer(i64::MIN.into())
    );
    assert_eq!(one("Int32", json!("42")).unwrap().value, BoundValue::Integer(42));
    assert!(invalid("UInt8", json!(256)).contains("out of range (0 to 255)"));
    assert!(invalid("UInt32", json!(-1)).contains("out of range"));
    assert!(invalid("Int16", json!(4.5)).contains("not an integer"));
    assert!(invalid("Int16", json!("1; DROP TABLE x")).contains("not an integer"));
    assert!(invalid("Int16", json!(true)).contains("not a number"));
}

#[test]
fn a_negative_number_cannot_open_a_comment() {
    // `x -{n:Int32}` with -5 spliced naively would read `x --5`: a comment to the end of the line.
    let sql = "SELECT amount -{n:Int32} AS a FROM purchases\nWHERE amount > 0";
    let (_, rewritten) = bind(sql, json!({"n": -5})).unwrap();
    assert_eq!(
        rewritten,
        "SELECT amount -(-5) AS a FROM purchases\nWHERE amount > 0"
    );
    clickhouse_parses(&rewritten);
    // The guard that would catch such a merge: the pieces' tokens differ from the joined text's.
    let joined = significant_tokens("SELECT x--5").unwrap();
    let pieces = [
        significant_tokens("SELECT x-").unwrap(),
        significant_tokens("-5").unwrap(),
    ]
    .concat();
    assert_ne!(joined, pieces);
}

#[test]
fn floats_and_decimals() {
    assert_eq!(one("Float64", json!(0.1)).unwrap().sql_literal(), "0.1");
    assert_eq!(one("Float64", json!(-2.5)).unwrap().sql_literal(), "(-2.5)");
    assert!(invalid("Float64", json!("NaN")).contains("finite"));
    assert!(invalid("Float32", json!(1e300)).contains("Float32"));
    let d = one("Decimal(10, 2)", json!("01234.50")).unwrap();
    assert_eq!(d.query_parameter_value(), "1234.5");
    assert_eq!(d.sql_literal(), "CAST('1234.5' AS Decimal(10, 2))");
    assert_eq!(
        one("Decimal(10, 2)", json!(19.99))
            .unwrap()
            .query_parameter_value(),
        "19.99"
    );
    assert!(invalid("Decimal(10, 2)", json!("1.234")).contains("more than 2 digits after"));
    assert!(invalid("Decimal(4, 2)", json!("123.4")).contains("more than 2 digits before"));
    assert!(invalid("Decimal(10, 2)", json!("1e5")).contains("plain digits"));
}

#[test]
fn dates_and_datetimes() {
    let d = one("Date", json!("2024-02-29")).unwrap();
    assert_eq!(
        (d.query_parameter_value(), d.sql_literal()),
        ("2024-02-29".into(), "toDate('2024-02-29')".into())
    );
    assert!(invalid("Date", json!("2023-02-29")).contains("day 29"));
    assert!(invalid("Date", json!("2024-13-01")).contains("month 13"));
    assert!(invalid("Date", json!("24-01-01")).contains("YYYY-MM-DD"));
    assert!(invalid("Date", json!("1960-01-01")).contains("range"));
    let t = one("DateTime", json!("2024-05-01T12:30:00")).unwrap();
    assert_eq!(t.query_parameter_value(), "2024-05-01 12:30:00");
    assert_eq!(t.sql_literal(), "toDateTime('2024-05-01 12:30:00')");
    assert!(invalid("DateTime", json!("2024-05-01 24:00:00")).contains("hh:mm:ss"));
    assert!(invalid("DateTime", json!("2024-05-01")).contains("hh:mm:ss"));
}

#[test]
fn bool_uuid_nullable_and_low_cardinality() {
    let b = one("Bool", json!(true)).unwrap();
    assert_eq!(
        (b.query_parameter_value(), b.sql_literal()),
        ("true".into(), "1".into())
    );
    assert!(invalid("Bool", json!("yes")).contains("true or false"));
    let u = one("UUID", json!("61F0C404-5CB3-11E7-907B-A6006AD3DBA0")).unwrap();
    assert_eq!(u.query_parameter_value(), "61f0c404-5cb3-11e7-907b-a6006ad3dba0");
    assert_eq!(u.sql_literal(), "toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0')");
    assert!(invalid("UUID", json!("not-a-uuid")).contains("not a UUID"));
    let n = one("Nullable(String)", json!(null)).unwrap();
    assert_eq!(
        (n.query_parameter_value(), n.sql_literal()),
        (r"\N".into(), "NULL".into())
    );
    assert!(invalid("String", json!(null)).contains("declare the type Nullable(String)"));
    assert_eq!(
        one("LowCardinality(String)", json!("de")).unwrap().sql_literal(),
        "'de'"
    );
}

#[test]
fn unsupported_types_are_named() {
    let e = one("Map(String, UInt64)", json!({"a": 1})).unwrap_err();
    assert_eq!(
        e,
        BindError::UnsupportedType {
            name: "v".into(),
            ty: "Map(String, UInt64)".into()
        }
    );
    assert!(matches!(
        one("DateTime('UTC')", json!("2024-01-01 00:00:00")),
        Err(BindError::UnsupportedType { .. })
    ));
}

#[test]
fn every_occurrence_is_replaced_and_only_those_bytes() {
    let sql = "WITH recent AS (SELECT * FROM events WHERE tenant_id = {tenant:String} AND timestamp >= {since:DateTime})\n\
               SELECT 'keep {tenant:String} here' AS note, count() FROM recent \
               WHERE tenant_id = {tenant : String} -- für {tenant:String}\nLIMIT {limit:UInt32}";
    let (bound, rewritten) = bind(
        sql,
        json!({"tenant": "acme", "since": "2024-05-01 00:00:00", "limit": 100}),
    )
    .unwrap();
    assert_eq!(bound.len(), 3);
    assert_eq!(
        rewritten,
        "WITH recent AS (SELECT * FROM events WHERE tenant_id = 'acme' AND timestamp >= toDateTime('2024-05-01 00:00:00'))\n\
         SELECT 'keep {tenant:String} here' AS note, count() FROM recent \
         WHERE tenant_id = 'acme' -- für {tenant:String}\nLIMIT 100"
    );
    let again = validate(&rewritten, &policy()).unwrap();
    assert!(again.placeholders.is_empty());
}

#[test]
fn round_trips_of_realistic_queries() {
    let cases = [
        (
            "SELECT p.tenant_id, sum(p.amount) AS revenue FROM purchases AS p JOIN events AS e ON e.user_id = p.user_id \
             WHERE p.timestamp >= {from:Date} AND p.amount > {min:Decimal(12, 2)} GROUP BY p.tenant_id \
             ORDER BY revenue DESC LIMIT {k:UInt8}",
            json!({"from": "2024-01-01", "min": "10.00", "k": 5}),
        ),
        (
            "SELECT count() FROM events WHERE user_id IN (SELECT user_id FROM purchases WHERE amount >= {x:Float64}) \
             AND event_type = {kind:LowCardinality(String)} AND session = {s:Nullable(UUID)}",
            json!({"x": 9.5, "kind": "page_view", "s": null}),
        ),
    ];
    for (sql, values) in cases {
        let (_, rewritten) = bind(sql, values).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let first = validate(sql, &policy()).unwrap();
        let second = validate(&rewritten, &policy()).unwrap();
        assert_eq!(first.tables, second.tables);
        assert!(second.sites.is_empty());
        clickhouse_parses(&rewritten);
    }
}
